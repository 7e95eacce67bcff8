//! pasta's link: a tap device with a virtio-net header in front of each
//! frame (`IFF_VNET_HDR`), one Ethernet frame per `read`/`write`.
//!
//! The header is what lets frames skip work in both kernels: the guest may
//! send TCP segments larger than the MTU (TSO) with partial checksums, and
//! TCP frames toward it may carry a partial checksum and a segment size
//! for the guest's kernel to treat them as already-merged (GRO) segments
//! ([`Offload`]). Headers of frames read are dropped: nothing here checks
//! checksums (the TCP translation does not need them; local services
//! parse their own).
//!
//! Reads drain the device until it would block or the batch is full
//! (DESIGN.md rule 6: read the tap until EAGAIN on every wake-up). Writes
//! are one `writev` per frame (header + frame; the tap has no batched
//! write); a full queue drops the frame, as a NIC would.

use std::io::{self, IoSlice};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use super::{FrameBatch, MAX_FRAME, MIN_FRAME, Offload, ReadStop};
use crate::sys::tun::VNET_HDR_LEN;

/// `virtio_net_hdr` flags and GSO types.
const NEEDS_CSUM: u8 = 1;
const GSO_TCPV4: u8 = 1;
const GSO_TCPV6: u8 = 4;

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
            let Some(spare) = batch.spare(VNET_HDR_LEN + MAX_FRAME) else {
                return Ok(ReadStop::BatchFull);
            };
            match rustix::io::read(&self.fd, &mut spare[..VNET_HDR_LEN + MAX_FRAME]) {
                Ok(0) => return Ok(ReadStop::Closed),
                Ok(n) if n < VNET_HDR_LEN + MIN_FRAME => self.runts_in += 1,
                Ok(n) => batch.commit_after(VNET_HDR_LEN, n),
                Err(rustix::io::Errno::AGAIN) => return Ok(ReadStop::Drained),
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Sends one frame with its offload description; `false` if the
    /// device queue is full (dropped).
    pub fn write_frame(&mut self, frame: &[u8], offload: Offload) -> io::Result<bool> {
        let header = vnet_header(offload);
        let parts = [IoSlice::new(&header), IoSlice::new(frame)];
        loop {
            match rustix::io::writev(&self.fd, &parts) {
                Ok(_) => return Ok(true),
                Err(rustix::io::Errno::INTR) => continue,
                Err(rustix::io::Errno::AGAIN | rustix::io::Errno::NOBUFS) => return Ok(false),
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// The virtio-net header (native byte order, the tap's default) for a
/// frame described by `offload`.
fn vnet_header(offload: Offload) -> [u8; VNET_HDR_LEN] {
    let mut h = [0u8; VNET_HDR_LEN];
    if let Some(csum) = offload.partial_checksum {
        h[0] = NEEDS_CSUM;
        h[6..8].copy_from_slice(&csum.start.to_ne_bytes());
        h[8..10].copy_from_slice(&csum.offset.to_ne_bytes());
    }
    if let Some(gso) = offload.gso {
        h[1] = if gso.v6 { GSO_TCPV6 } else { GSO_TCPV4 };
        h[2..4].copy_from_slice(&gso.header_len.to_ne_bytes());
        h[4..6].copy_from_slice(&gso.segment_size.to_ne_bytes());
    }
    h
}

impl AsFd for Tap {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::link::{Gso, PartialChecksum};

    #[test]
    fn tap_vnet_header_describes_the_offload() {
        assert_eq!(vnet_header(Offload::NONE), [0; VNET_HDR_LEN]);
        let h = vnet_header(Offload {
            partial_checksum: Some(PartialChecksum {
                start: 34,
                offset: 16,
            }),
            gso: Some(Gso {
                v6: false,
                header_len: 54,
                segment_size: 1460,
            }),
        });
        assert_eq!((h[0], h[1]), (NEEDS_CSUM, GSO_TCPV4));
        assert_eq!(u16::from_ne_bytes([h[2], h[3]]), 54);
        assert_eq!(u16::from_ne_bytes([h[4], h[5]]), 1460);
        assert_eq!(u16::from_ne_bytes([h[6], h[7]]), 34);
        assert_eq!(u16::from_ne_bytes([h[8], h[9]]), 16);
    }
}
