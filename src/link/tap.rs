//! pasta's link: a tap device (`IFF_TAP | IFF_NO_PI`, no vnet header), one
//! Ethernet frame per `read`/`write`.
//!
//! Reads drain the device until it would block or the batch is full
//! (DESIGN.md rule 6: read the tap until EAGAIN on every wake-up). Writes
//! are one `write` per frame (the tap has no batched write); a full queue
//! drops the frame, as a NIC would.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use super::{FrameBatch, MAX_FRAME, MIN_FRAME, ReadStop};

pub struct Tap {
    fd: OwnedFd,
    /// Reads shorter than an Ethernet header (never expected from a tap).
    pub runts_in: u64,
}

impl Tap {
    pub fn new(fd: OwnedFd) -> Tap {
        Tap { fd, runts_in: 0 }
    }

    /// Reads frames into `batch` until the device would block, the batch is
    /// full, or the device is gone.
    pub fn read_batch(&mut self, batch: &mut FrameBatch) -> io::Result<ReadStop> {
        loop {
            let Some(spare) = batch.spare(MAX_FRAME) else {
                return Ok(ReadStop::BatchFull);
            };
            match rustix::io::read(&self.fd, &mut spare[..MAX_FRAME]) {
                Ok(0) => return Ok(ReadStop::Closed),
                Ok(n) if n < MIN_FRAME => self.runts_in += 1,
                Ok(n) => batch.commit(n),
                Err(rustix::io::Errno::AGAIN) => return Ok(ReadStop::Drained),
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Sends one frame; `false` if the device queue is full (dropped).
    pub fn write_frame(&mut self, frame: &[u8]) -> io::Result<bool> {
        loop {
            match rustix::io::write(&self.fd, frame) {
                Ok(_) => return Ok(true),
                Err(rustix::io::Errno::INTR) => continue,
                Err(rustix::io::Errno::AGAIN | rustix::io::Errno::NOBUFS) => return Ok(false),
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
