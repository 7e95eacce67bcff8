//! The guest's link: where Ethernet frames enter and leave.
//!
//! pasta's link is a tap device ([`tap`]); passt's is a qemu stream socket
//! ([`stream`]: 4-byte big-endian length, then the frame). Both read frames
//! into a [`FrameBatch`] (many frames per wake-up, one buffer allocated at
//! start-up) and write frames one at a time. [`Link`] wraps whichever is
//! attached and is the one pcap hook: every frame, in both directions, is
//! recorded exactly once, here.
//!
//! Invariants: frames handed out are whole (14..=65535 bytes); nothing here
//! parses beyond the length. passt's link can be detached (no guest
//! connected): frames written then are dropped and counted.
//! May call: `sys` (fds), `pcap`.

pub mod batch;
pub mod listener;
pub mod stream;
pub mod tap;

use std::io;
use std::os::fd::{AsFd, BorrowedFd};

pub use batch::FrameBatch;
pub use stream::StreamLink;
pub use tap::Tap;

use crate::pcap::Pcap;

/// Smallest frame: an Ethernet header.
pub const MIN_FRAME: usize = 14;
/// Largest frame the link carries (65535, upstream's limit).
pub const MAX_FRAME: usize = 65535;

/// What the guest's kernel may skip for a frame we send (tap links only;
/// others ignore it, so the frame must be complete without it unless
/// [`Link::offloads`] says the link honours it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Offload {
    /// The transport checksum field holds only the pseudo-header sum; the
    /// rest is left to the receiver, which trusts it (`NEEDS_CSUM`).
    pub partial_checksum: Option<PartialChecksum>,
    /// A TCP segment longer than the MSS, to be taken as that many
    /// segments of `segment_size` (GSO).
    pub gso: Option<Gso>,
}

impl Offload {
    pub const NONE: Offload = Offload {
        partial_checksum: None,
        gso: None,
    };
}

/// Where the checksum starts (from the frame's start) and where its field
/// is (from there).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartialChecksum {
    pub start: u16,
    pub offset: u16,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gso {
    pub v6: bool,
    /// Ethernet + IP + TCP header bytes.
    pub header_len: u16,
    /// Payload bytes per segment (the MSS).
    pub segment_size: u16,
}

/// Why a read stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadStop {
    /// Nothing more to read now.
    Drained,
    /// The batch is full; more may be waiting.
    BatchFull,
    /// The guest side is gone (tap closed, client disconnected).
    Closed,
}

/// The transport under the link.
pub enum LinkIo {
    Tap(Tap),
    Stream(StreamLink),
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkCounters {
    pub frames_in: u64,
    pub frames_out: u64,
    /// Frames toward the guest dropped: queue full, or no guest attached.
    pub dropped_out: u64,
}

/// The guest link: an optional transport plus the pcap hook.
pub struct Link {
    io: Option<LinkIo>,
    pcap: Option<Pcap>,
    pub counters: LinkCounters,
}

impl Link {
    pub fn new(io: Option<LinkIo>, pcap: Option<Pcap>) -> Link {
        Link {
            io,
            pcap,
            counters: LinkCounters::default(),
        }
    }

    pub fn is_attached(&self) -> bool {
        self.io.is_some()
    }

    /// Attaches a transport (passt: a client connected).
    pub fn attach(&mut self, io: LinkIo) {
        self.io = Some(io);
    }

    /// Detaches the transport (passt: the client went away).
    pub fn detach(&mut self) -> Option<LinkIo> {
        self.io.take()
    }

    /// Reads frames into `batch` (cleared first).
    pub fn read_batch(&mut self, batch: &mut FrameBatch) -> io::Result<ReadStop> {
        batch.clear();
        let stop = match &mut self.io {
            Some(LinkIo::Tap(tap)) => tap.read_batch(batch)?,
            Some(LinkIo::Stream(stream)) => stream.read_batch(batch)?,
            None => ReadStop::Closed,
        };
        self.counters.frames_in += batch.len() as u64;
        if let Some(pcap) = &self.pcap {
            pcap.record_batch(batch.iter());
        }
        Ok(stop)
    }

    /// Sends one frame to the guest; dropped (and counted) if the transport
    /// cannot take it now or no guest is attached.
    pub fn write_frame(&mut self, frame: &[u8]) -> io::Result<()> {
        self.write_offloaded(frame, Offload::NONE).map(drop)
    }

    /// A frame waits for room in the transport: wait for it to be
    /// writable, then [`Link::flush`].
    pub fn blocked(&self) -> bool {
        match &self.io {
            Some(LinkIo::Stream(stream)) => stream.blocked(),
            _ => false,
        }
    }

    /// Sends what waits for room; `true` once nothing does.
    pub fn flush(&mut self) -> io::Result<bool> {
        match &mut self.io {
            Some(LinkIo::Stream(stream)) => stream.flush(),
            _ => Ok(true),
        }
    }

    /// Whether frames written with an [`Offload`] reach the guest's kernel
    /// with it (a tap with a virtio-net header).
    pub fn offloads(&self) -> bool {
        matches!(self.io, Some(LinkIo::Tap(_)))
    }

    /// [`Link::write_frame`] with an offload description (only for links
    /// that [`Link::offloads`]); `Ok(false)` if the frame was not sent
    /// (counted as dropped; a sender that keeps what it sends may try
    /// again once the link is writable).
    pub fn write_offloaded(&mut self, frame: &[u8], offload: Offload) -> io::Result<bool> {
        if let Some(pcap) = &self.pcap {
            pcap.record(frame);
        }
        let sent = match &mut self.io {
            Some(LinkIo::Tap(tap)) => tap.write_frame(frame, offload)?,
            Some(LinkIo::Stream(stream)) => stream.write_frame(frame)?,
            None => false,
        };
        if sent {
            self.counters.frames_out += 1;
        } else {
            self.counters.dropped_out += 1;
        }
        Ok(sent)
    }

    /// The transport's fd, for the event loop.
    pub fn fd(&self) -> Option<BorrowedFd<'_>> {
        match &self.io {
            Some(LinkIo::Tap(tap)) => Some(tap.as_fd()),
            Some(LinkIo::Stream(stream)) => Some(stream.as_fd()),
            None => None,
        }
    }
}
