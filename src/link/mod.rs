//! The guest's link: where Ethernet frames enter and leave.
//!
//! pasta's link is a tap device ([`tap`]); passt's is a qemu stream socket
//! (a later issue). Both read frames into a [`FrameBatch`] (many frames per
//! wake-up, one buffer allocated at start-up) and write frames out; the
//! optional pcap capture is hooked here, so every frame in both directions
//! is recorded exactly once.
//!
//! Invariants: frames handed out are whole (14..=65535 bytes); nothing here
//! parses beyond the length. May call: `sys` (fds), `pcap`.

pub mod batch;
pub mod tap;

pub use batch::FrameBatch;
pub use tap::Tap;

/// Smallest frame: an Ethernet header.
pub const MIN_FRAME: usize = 14;
/// Largest frame the link carries (65535, upstream's limit).
pub const MAX_FRAME: usize = 65535;
