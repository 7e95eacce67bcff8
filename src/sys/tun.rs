//! `/dev/net/tun`: create a tap device (`IFF_TAP | IFF_NO_PI |
//! IFF_VNET_HDR`) in the network namespace of the calling thread, and turn
//! on its offloads.
//!
//! Invariant: the returned fd is non-blocking and close-on-exec; every
//! `read`/`write` carries one whole Ethernet frame behind a virtio-net
//! header of [`VNET_HDR_LEN`] bytes.

use std::fs::OpenOptions;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;

/// Bytes of the virtio-net header in front of each frame (the kernel's
/// default `struct virtio_net_hdr`, without `num_buffers`).
pub const VNET_HDR_LEN: usize = 10;

/// Linux's `IFNAMSIZ`, including the terminating NUL.
pub const IFNAMSIZ: usize = libc::IFNAMSIZ;

/// `struct ifreq` reduced to what TUNSETIFF reads and writes: the name and
/// the flags (the kernel's union is larger; pad to its size).
#[repr(C)]
struct IfReqFlags {
    name: [libc::c_char; IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

/// Opens `/dev/net/tun` and attaches a tap device named `name` (created if it
/// does not exist) in the calling thread's network namespace. Returns the fd
/// and the name the kernel gave the device.
pub fn create_tap(name: &str) -> io::Result<(OwnedFd, String)> {
    if name.is_empty() || name.len() >= IFNAMSIZ || name.contains('/') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid interface name '{name}'"),
        ));
    }
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open("/dev/net/tun")?;
    let fd = OwnedFd::from(file);
    let mut req = IfReqFlags {
        name: [0; IFNAMSIZ],
        flags: (libc::IFF_TAP | libc::IFF_NO_PI | libc::IFF_VNET_HDR) as libc::c_short,
        _pad: [0; 22],
    };
    for (dst, src) in req.name.iter_mut().zip(name.bytes()) {
        *dst = src as libc::c_char;
    }
    // SAFETY: TUNSETIFF reads and writes a `struct ifreq`; `req` is a live,
    // properly aligned buffer at least as large as `struct ifreq` (40 bytes
    // on 64-bit Linux), and `fd` is an open /dev/net/tun descriptor.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETIFF, &mut req as *mut IfReqFlags) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    let actual: Vec<u8> = req
        .name
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    Ok((fd, String::from_utf8_lossy(&actual).into_owned()))
}

/// Lets the guest's kernel hand us frames with partial checksums and TCP
/// segments larger than the MTU (TSO: one frame per up to 64 KiB of a
/// connection's data, described by the virtio-net header).
pub fn enable_offloads(fd: &OwnedFd) -> io::Result<()> {
    let features = libc::TUN_F_CSUM | libc::TUN_F_TSO4 | libc::TUN_F_TSO6;
    // SAFETY: TUNSETOFFLOAD takes its argument by value (an unsigned long
    // of feature bits); no memory is passed. `fd` is an open tap.
    let rc = unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            libc::TUNSETOFFLOAD,
            libc::c_ulong::from(features),
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tun_ifreq_matches_kernel_size() {
        assert_eq!(
            std::mem::size_of::<IfReqFlags>(),
            std::mem::size_of::<libc::ifreq>()
        );
    }

    #[test]
    fn tun_rejects_bad_names() {
        assert!(create_tap("").is_err());
        assert!(create_tap("a/b").is_err());
        assert!(create_tap("0123456789abcdef").is_err());
    }

    #[test]
    fn tun_creates_tap_in_private_namespace() {
        std::thread::spawn(|| {
            crate::sys::ns::unshare_net_thread().expect("unshare");
            let (fd, name) = create_tap("ptest0").expect("tap");
            assert_eq!(name, "ptest0");
            enable_offloads(&fd).expect("offloads");
            assert!(std::path::Path::new("/sys/class/net").exists());
        })
        .join()
        .expect("thread");
    }
}
