//! pasta's link: a tap device (`IFF_TAP | IFF_NO_PI`, no vnet header), one
//! Ethernet frame per `read`/`write`.
//!
//! Reads drain the device until it would block or the batch is full
//! (DESIGN.md rule 6: read the tap until EAGAIN on every wake-up). Writes
//! are one `write` per frame (the tap has no batched write); a full queue
//! drops the frame, as a NIC would, and counts it.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use super::{FrameBatch, MAX_FRAME, MIN_FRAME};
use crate::pcap::Pcap;

/// Why a read stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadStop {
    /// Nothing more to read now.
    Drained,
    /// The batch is full; more may be waiting.
    BatchFull,
    /// The device is gone.
    Closed,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TapCounters {
    pub frames_in: u64,
    pub frames_out: u64,
    pub runts_in: u64,
    pub dropped_out: u64,
}

pub struct Tap {
    fd: OwnedFd,
    pcap: Option<Pcap>,
    pub counters: TapCounters,
}

impl Tap {
    pub fn new(fd: OwnedFd, pcap: Option<Pcap>) -> Tap {
        Tap {
            fd,
            pcap,
            counters: TapCounters::default(),
        }
    }

    /// Reads frames into `batch` (cleared first) until the device would
    /// block, the batch is full, or the device is gone.
    pub fn read_batch(&mut self, batch: &mut FrameBatch) -> io::Result<ReadStop> {
        batch.clear();
        let stop = loop {
            let Some(spare) = batch.spare(MAX_FRAME) else {
                break ReadStop::BatchFull;
            };
            match rustix::io::read(&self.fd, &mut spare[..MAX_FRAME]) {
                Ok(0) => break ReadStop::Closed,
                Ok(n) if n < MIN_FRAME => self.counters.runts_in += 1,
                Ok(n) => {
                    batch.commit(n);
                    self.counters.frames_in += 1;
                }
                Err(rustix::io::Errno::AGAIN) => break ReadStop::Drained,
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        };
        if let Some(pcap) = &self.pcap {
            pcap.record_batch(batch.iter());
        }
        Ok(stop)
    }

    /// Sends one frame to the guest. A full device queue drops it (counted).
    pub fn write_frame(&mut self, frame: &[u8]) -> io::Result<()> {
        if let Some(pcap) = &self.pcap {
            pcap.record(frame);
        }
        loop {
            match rustix::io::write(&self.fd, frame) {
                Ok(_) => {
                    self.counters.frames_out += 1;
                    return Ok(());
                }
                Err(rustix::io::Errno::INTR) => continue,
                Err(rustix::io::Errno::AGAIN | rustix::io::Errno::NOBUFS) => {
                    self.counters.dropped_out += 1;
                    return Ok(());
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}

impl AsFd for Tap {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
