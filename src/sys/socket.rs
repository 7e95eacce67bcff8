//! Socket options and calls that rustix does not wrap: `SO_PEEK_OFF`,
//! `SO_MEMINFO`, `TCP_MAXSEG`, `SO_BINDTODEVICE`, and discarding received
//! bytes without copying them (`MSG_TRUNC`).
//!
//! Invariant: every call takes a borrowed descriptor and passes the kernel
//! only pointers to locals of the right size (or none).

use std::io;
use std::os::fd::{AsFd, AsRawFd};

/// `SO_MEMINFO` entries (`SK_MEMINFO_*` in linux/sock_diag.h).
const SK_MEMINFO_VARS: usize = 9;
const SK_MEMINFO_SNDBUF: usize = 3;
const SK_MEMINFO_WMEM_QUEUED: usize = 5;

fn check(ret: libc::c_int) -> io::Result<()> {
    match ret {
        0 => Ok(()),
        _ => Err(io::Error::last_os_error()),
    }
}

fn set_int(fd: impl AsFd, level: libc::c_int, name: libc::c_int, value: i32) -> io::Result<()> {
    let value: libc::c_int = value;
    // SAFETY: the kernel reads `size_of::<c_int>()` bytes from a live local.
    check(unsafe {
        libc::setsockopt(
            fd.as_fd().as_raw_fd(),
            level,
            name,
            (&raw const value).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    })
}

/// Sets `SO_PEEK_OFF`: `MSG_PEEK` reads then start `offset` bytes into the
/// receive queue and advance the offset (TCP: Linux 6.9 and later).
pub fn set_peek_offset(fd: impl AsFd, offset: i32) -> io::Result<()> {
    set_int(fd, libc::SOL_SOCKET, libc::SO_PEEK_OFF, offset)
}

/// The send buffer's size and the bytes queued in it, both in the kernel's
/// accounting (payload plus overhead), from `SO_MEMINFO`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SendBufferUse {
    pub size: u32,
    pub queued: u32,
}

impl SendBufferUse {
    /// Room left before writes start to fail.
    pub fn free(self) -> u32 {
        self.size.saturating_sub(self.queued)
    }
}

pub fn send_buffer_use(fd: impl AsFd) -> io::Result<SendBufferUse> {
    let mut info = [0u32; SK_MEMINFO_VARS];
    let mut len = size_of_val(&info) as libc::socklen_t;
    // SAFETY: the kernel writes at most `len` bytes (the whole array) into
    // a live local array and updates `len`, also a live local.
    check(unsafe {
        libc::getsockopt(
            fd.as_fd().as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_MEMINFO,
            info.as_mut_ptr().cast(),
            &raw mut len,
        )
    })?;
    Ok(SendBufferUse {
        size: info[SK_MEMINFO_SNDBUF],
        queued: info[SK_MEMINFO_WMEM_QUEUED],
    })
}

/// Sets `TCP_MAXSEG` (the MSS announced on connect).
pub fn set_tcp_maxseg(fd: impl AsFd, mss: u16) -> io::Result<()> {
    set_int(fd, libc::IPPROTO_TCP, libc::TCP_MAXSEG, i32::from(mss))
}

/// Drops up to `len` bytes from the head of a TCP socket's receive queue
/// without copying them (`MSG_TRUNC`); returns how many were dropped.
pub fn discard(fd: impl AsFd, len: usize) -> io::Result<usize> {
    // SAFETY: with MSG_TRUNC on a TCP socket the kernel copies nothing, so
    // the null buffer is never written.
    let n = unsafe {
        libc::recv(
            fd.as_fd().as_raw_fd(),
            std::ptr::null_mut(),
            len,
            libc::MSG_TRUNC | libc::MSG_DONTWAIT,
        )
    };
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}

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

/// Where [`peek_segments`] puts what it reads: segment `i` goes to
/// `buf[i * stride + offset..]`, `len` bytes each, `total` bytes at most
/// over all segments (so the last one may be shorter).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentLayout {
    pub stride: usize,
    pub offset: usize,
    pub len: usize,
    pub total: usize,
}

impl SegmentLayout {
    /// How many segments `total` bytes take.
    pub fn count(&self) -> usize {
        self.total.div_ceil(self.len.max(1))
    }

    /// Length of segment `i`.
    pub fn len_of(&self, i: usize) -> usize {
        self.len.min(self.total.saturating_sub(i * self.len))
    }
}

/// Most segments one [`peek_segments`] call reads.
pub const MAX_PEEK_SEGMENTS: usize = 256;

/// What a [`peek_segments`] call found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Peeked {
    /// This many new bytes were placed in the buffer's segments.
    New(usize),
    /// The queue holds only the bytes skipped (already sent): nothing new
    /// yet. Not the end of the stream: that shows only once the skipped
    /// bytes are gone from the queue.
    Nothing,
    /// The queue is empty and the peer closed its side.
    End,
}

/// Reads queued bytes without consuming them (`MSG_PEEK`, non-blocking):
/// first `skip.len()` bytes into `skip` (what was already sent, when the
/// kernel has no `SO_PEEK_OFF` for TCP), then up to `layout.total` bytes
/// into `buf`'s segments. Nothing queued (and no end of stream) is
/// `WouldBlock`.
pub fn peek_segments(
    fd: impl AsFd,
    skip: &mut [u8],
    buf: &mut [u8],
    layout: SegmentLayout,
) -> io::Result<Peeked> {
    let count = layout.count();
    let last_end = count
        .checked_sub(1)
        .and_then(|last| last.checked_mul(layout.stride))
        .and_then(|start| start.checked_add(layout.offset + layout.len));
    let fits = layout.len <= layout.stride && last_end.is_some_and(|end| end <= buf.len());
    if count == 0 || count > MAX_PEEK_SEGMENTS || !fits {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    let empty = libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    };
    let mut iov = [empty; MAX_PEEK_SEGMENTS + 1];
    let mut used = 0;
    if !skip.is_empty() {
        iov[0] = libc::iovec {
            iov_base: skip.as_mut_ptr().cast(),
            iov_len: skip.len(),
        };
        used = 1;
    }
    for i in 0..count {
        let start = i * layout.stride + layout.offset;
        let seg = &mut buf[start..start + layout.len_of(i)];
        iov[used] = libc::iovec {
            iov_base: seg.as_mut_ptr().cast(),
            iov_len: seg.len(),
        };
        used += 1;
    }
    // SAFETY: msghdr is plain data; zeroed is a valid empty header.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iov.as_mut_ptr();
    msg.msg_iovlen = used as _;
    // SAFETY: every iovec points into `skip` or `buf`, disjoint ranges
    // checked above to lie inside them, both borrowed mutably for the
    // call; the kernel writes at most each iov_len bytes there.
    let n = unsafe {
        libc::recvmsg(
            fd.as_fd().as_raw_fd(),
            &raw mut msg,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    let n = usize::try_from(n).map_err(|_| io::Error::last_os_error())?;
    Ok(match n {
        0 => Peeked::End,
        n if n <= skip.len() => Peeked::Nothing,
        n => Peeked::New(n - skip.len()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::testing::tcp_pair as pair;
    use std::io::{Read, Write};

    #[test]
    fn socket_discard_drops_bytes_and_peek_offset_follows() {
        let (mut client, mut server) = pair();
        client.write_all(b"0123456789").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(50));
        set_peek_offset(&server, 0).unwrap();
        let mut buf = [0u8; 4];
        let n = rustix::net::recv(&server, &mut buf, rustix::net::RecvFlags::PEEK)
            .unwrap()
            .0;
        assert_eq!(&buf[..n], b"0123");
        assert_eq!(discard(&server, 2).unwrap(), 2);
        let n = rustix::net::recv(&server, &mut buf, rustix::net::RecvFlags::PEEK)
            .unwrap()
            .0;
        assert_eq!(&buf[..n], b"4567", "the peek offset moved back by 2");
        let mut rest = [0u8; 8];
        let n = server.read(&mut rest).unwrap();
        assert_eq!(&rest[..n], b"23456789");
    }

    #[test]
    fn socket_peek_segments_scatters_and_skips() {
        let (mut client, server) = pair();
        client.write_all(b"abcdefghij").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(50));
        let mut buf = [0u8; 30];
        let layout = SegmentLayout {
            stride: 10,
            offset: 2,
            len: 3,
            total: 9,
        };
        let mut skip = [0u8; 2];
        let n = peek_segments(&server, &mut skip, &mut buf, layout).unwrap();
        assert_eq!(n, Peeked::New(8));
        assert_eq!(&skip, b"ab");
        assert_eq!(&buf[2..5], b"cde");
        assert_eq!(&buf[12..15], b"fgh");
        assert_eq!(&buf[22..24], b"ij");
        let too_far = SegmentLayout {
            total: 12,
            ..layout
        };
        assert!(peek_segments(&server, &mut [], &mut buf, too_far).is_err());
    }

    /// Without `SO_PEEK_OFF`, a queue that holds only bytes already sent
    /// is "nothing new", never the end of the stream, even once the peer
    /// closed (the data before its FIN is still queued); the end shows
    /// once the queue is empty.
    #[test]
    fn socket_peek_of_only_skipped_bytes_is_not_the_end() {
        let (mut client, server) = pair();
        client.write_all(b"abcd").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(50));
        let layout = SegmentLayout {
            stride: 10,
            offset: 0,
            len: 10,
            total: 10,
        };
        let mut buf = [0u8; 10];
        let mut skip = [0u8; 4];
        let peeked = peek_segments(&server, &mut skip, &mut buf, layout).unwrap();
        assert_eq!(peeked, Peeked::Nothing);
        drop(client);
        std::thread::sleep(std::time::Duration::from_millis(50));
        let peeked = peek_segments(&server, &mut skip, &mut buf, layout).unwrap();
        assert_eq!(peeked, Peeked::Nothing, "data still queued before the FIN");
        assert_eq!(discard(&server, 4).unwrap(), 4);
        let peeked = peek_segments(&server, &mut [], &mut buf, layout).unwrap();
        assert_eq!(peeked, Peeked::End);
    }

    #[test]
    fn socket_send_buffer_use_and_maxseg() {
        let (client, _server) = pair();
        let used = send_buffer_use(&client).unwrap();
        assert!(used.size > 0 && used.free() > 0);
        let fresh = rustix::net::socket(
            rustix::net::AddressFamily::INET,
            rustix::net::SocketType::STREAM,
            None,
        )
        .unwrap();
        set_tcp_maxseg(&fresh, 1000).unwrap();
        assert!(set_tcp_maxseg(&fresh, 40000).is_err(), "above 32767");
    }

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
