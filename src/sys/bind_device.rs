//! `SO_BINDTODEVICE`, which rustix does not wrap: `-t/-u` listeners bound
//! to an interface (`%IF/` in a port spec).
//!
//! The other listener options (`SO_REUSEADDR`, `IPV6_V6ONLY`,
//! `IP(V6)_FREEBIND`) go through rustix's `sockopt` directly. Nothing here
//! logs.

use std::io;
use std::os::fd::{AsFd, AsRawFd};

/// Binds the socket to the interface `name` (`SO_BINDTODEVICE`): it only
/// sees traffic of that interface. Unprivileged since Linux 5.7.
pub fn set_bind_to_device(fd: impl AsFd, name: &str) -> io::Result<()> {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() >= libc::IFNAMSIZ || bytes.contains(&0) {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    // Shorter than IFNAMSIZ (checked above), so the cast cannot truncate.
    let len = bytes.len() as libc::socklen_t;
    // SAFETY: the pointer and length describe `bytes`, which lives across
    // the call; the kernel only reads `len` bytes from it (and terminates
    // the name itself). The descriptor is borrowed, so it is open.
    let ret = unsafe {
        libc::setsockopt(
            fd.as_fd().as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_BINDTODEVICE,
            bytes.as_ptr().cast(),
            len,
        )
    };
    if ret == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_to_device_refuses_bad_names_before_the_kernel() {
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        for bad in ["", "a234567890123456", "l\0o"] {
            let err = set_bind_to_device(&sock, bad).unwrap_err();
            assert_eq!(err.raw_os_error(), Some(libc::EINVAL), "{bad:?}");
        }
    }

    #[test]
    fn bind_to_device_names_an_existing_interface() {
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        set_bind_to_device(&sock, "lo").unwrap();
        let err = set_bind_to_device(&sock, "prs-no-such-if").unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENODEV));
    }
}
