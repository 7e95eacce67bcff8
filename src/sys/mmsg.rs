//! Batched datagram I/O: `recvmmsg` (with each datagram's source address)
//! and `sendmmsg` (to a connected peer or one given address).
//!
//! Invariants: at most [`MAX_BATCH`] datagrams per call, so every kernel
//! structure lives on the stack; a datagram longer than its buffer is
//! reported as truncated (`MSG_TRUNC` in its flags), never overrun.
//! May call: libc (the only `unsafe` here, each block commented).

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsFd, AsRawFd};

/// Datagrams per call, at most.
pub const MAX_BATCH: usize = 64;

/// One received datagram.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Received {
    /// Bytes placed in the buffer.
    pub len: usize,
    /// The datagram did not fit its buffer (the rest was discarded).
    pub truncated: bool,
    /// Its source (IPv4-mapped IPv6 given as IPv4); `None` if the socket
    /// reported none.
    pub from: Option<SocketAddr>,
}

/// Receives up to one datagram per buffer of `bufs` (at most
/// `out.len()` and [`MAX_BATCH`]) without blocking; fills `out` and returns
/// how many arrived (`Ok(0)` when none waited).
pub fn recv_many<'b>(
    fd: impl AsFd,
    bufs: impl IntoIterator<Item = &'b mut [u8]>,
    out: &mut [Received],
) -> io::Result<usize> {
    // SAFETY: all-zero is a valid value of these plain C structures.
    let mut names: [libc::sockaddr_storage; MAX_BATCH] = unsafe { zeroed() };
    // SAFETY: as above.
    let mut iovs: [libc::iovec; MAX_BATCH] = unsafe { zeroed() };
    // SAFETY: as above.
    let mut msgs: [libc::mmsghdr; MAX_BATCH] = unsafe { zeroed() };
    let limit = out.len().min(MAX_BATCH);
    let mut count = 0;
    for (i, buf) in bufs.into_iter().take(limit).enumerate() {
        count = i + 1;
        iovs[i] = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        msgs[i].msg_hdr.msg_name = (&raw mut names[i]).cast();
        msgs[i].msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        msgs[i].msg_hdr.msg_iov = &raw mut iovs[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }
    if count == 0 {
        return Ok(0);
    }
    // SAFETY: `msgs[..count]` point at `count` iovecs covering buffers
    // borrowed mutably for this call and at `count` sockaddr_storage
    // entries whose size is given; the kernel writes within those bounds.
    let n = unsafe {
        libc::recvmmsg(
            fd.as_fd().as_raw_fd(),
            msgs.as_mut_ptr(),
            count as libc::c_uint,
            libc::MSG_DONTWAIT,
            std::ptr::null_mut(),
        )
    };
    if n < 0 {
        let e = io::Error::last_os_error();
        return match e.kind() {
            io::ErrorKind::WouldBlock => Ok(0),
            _ => Err(e),
        };
    }
    let n = (n as usize).min(count);
    for i in 0..n {
        let hdr = &msgs[i].msg_hdr;
        out[i] = Received {
            len: (msgs[i].msg_len as usize).min(iovs[i].iov_len),
            truncated: hdr.msg_flags & libc::MSG_TRUNC != 0,
            from: socket_addr(&names[i], hdr.msg_namelen),
        };
    }
    Ok(n)
}

/// Sends `datagrams` (at most [`MAX_BATCH`] per call) on `fd`: to its
/// connected peer, or to `to`. Returns how many the kernel took; a short
/// count means the socket's buffer is full or the next one failed.
pub fn send_many<'d>(
    fd: impl AsFd,
    datagrams: impl IntoIterator<Item = &'d [u8]>,
    to: Option<SocketAddr>,
) -> io::Result<usize> {
    let mut name = to.map(sockaddr);
    // SAFETY: all-zero is a valid value of these plain C structures.
    let mut iovs: [libc::iovec; MAX_BATCH] = unsafe { zeroed() };
    // SAFETY: as above.
    let mut msgs: [libc::mmsghdr; MAX_BATCH] = unsafe { zeroed() };
    let mut count = 0;
    for (i, datagram) in datagrams.into_iter().take(MAX_BATCH).enumerate() {
        count = i + 1;
        iovs[i] = libc::iovec {
            iov_base: datagram.as_ptr().cast_mut().cast(),
            iov_len: datagram.len(),
        };
        if let Some((storage, len)) = &mut name {
            msgs[i].msg_hdr.msg_name = (storage as *mut libc::sockaddr_storage).cast();
            msgs[i].msg_hdr.msg_namelen = *len;
        }
        msgs[i].msg_hdr.msg_iov = &raw mut iovs[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }
    if count == 0 {
        return Ok(0);
    }
    // SAFETY: `msgs[..count]` point at iovecs over the borrowed datagrams
    // (only read by sendmmsg) and at one valid socket address of the given
    // length, all alive for the call.
    let n = unsafe {
        libc::sendmmsg(
            fd.as_fd().as_raw_fd(),
            msgs.as_mut_ptr(),
            count as libc::c_uint,
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    };
    if n < 0 {
        let e = io::Error::last_os_error();
        return match e.kind() {
            io::ErrorKind::WouldBlock => Ok(0),
            _ => Err(e),
        };
    }
    Ok((n as usize).min(count))
}

/// A socket address as the kernel takes it.
fn sockaddr(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut storage: libc::sockaddr_storage = unsafe { zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for
            // sockaddr_in.
            unsafe { std::ptr::write((&raw mut storage).cast(), sin) };
            size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: sockaddr_storage is larger than and aligned for
            // sockaddr_in6.
            unsafe { std::ptr::write((&raw mut storage).cast(), sin6) };
            size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}

/// The address the kernel wrote, IPv4-mapped IPv6 as IPv4.
fn socket_addr(storage: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
    let len = len as usize;
    match i32::from(storage.ss_family) {
        libc::AF_INET if len >= size_of::<libc::sockaddr_in>() => {
            // SAFETY: the family says the storage holds a sockaddr_in of
            // the checked length; storage is aligned for it.
            let sin: &libc::sockaddr_in = unsafe { &*(storage as *const _ as *const _) };
            let ip = Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes());
            Some(SocketAddrV4::new(ip, u16::from_be(sin.sin_port)).into())
        }
        libc::AF_INET6 if len >= size_of::<libc::sockaddr_in6>() => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6: &libc::sockaddr_in6 = unsafe { &*(storage as *const _ as *const _) };
            let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            let port = u16::from_be(sin6.sin6_port);
            Some(match ip.to_ipv4_mapped() {
                Some(v4) => SocketAddrV4::new(v4, port).into(),
                None => SocketAddrV6::new(ip, port, sin6.sin6_flowinfo, sin6.sin6_scope_id).into(),
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;

    #[test]
    fn mmsg_round_trip_with_sources_and_truncation() {
        for any in ["127.0.0.1:0", "[::1]:0"] {
            let a = UdpSocket::bind(any).unwrap();
            let b = UdpSocket::bind(any).unwrap();
            let to = b.local_addr().unwrap();
            let payloads: Vec<Vec<u8>> = (0..5).map(|i| vec![i as u8; 100 * (i + 1)]).collect();
            let refs: Vec<&[u8]> = payloads.iter().map(|p| &p[..]).collect();
            assert_eq!(send_many(&a, refs.iter().copied(), Some(to)).unwrap(), 5);
            let mut storage = vec![vec![0u8; 300]; 8];
            let mut out = [Received::default(); 8];
            let n = (0..100)
                .find_map(|_| {
                    let bufs = storage.iter_mut().map(|b| &mut b[..]);
                    match recv_many(&b, bufs, &mut out).unwrap() {
                        0 => {
                            std::thread::sleep(std::time::Duration::from_millis(5));
                            None
                        }
                        n => Some(n),
                    }
                })
                .unwrap();
            assert_eq!(n, 5);
            for (i, r) in out[..n].iter().enumerate() {
                assert_eq!(r.from, Some(a.local_addr().unwrap()));
                assert_eq!(r.len, (100 * (i + 1)).min(300));
                assert_eq!(r.truncated, i >= 3);
            }
            let bufs = storage.iter_mut().map(|b| &mut b[..]);
            assert_eq!(recv_many(&b, bufs, &mut out).unwrap(), 0);
        }
    }

    #[test]
    fn mmsg_connected_send_and_mapped_sources() {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("[::]:0").unwrap();
        let port = b.local_addr().unwrap().port();
        a.connect(("127.0.0.1", port)).unwrap();
        assert_eq!(send_many(&a, [&b"x"[..], b"yz"], None).unwrap(), 2);
        let mut s1 = [0u8; 8];
        let mut s2 = [0u8; 8];
        let mut bufs: [&mut [u8]; 2] = [&mut s1, &mut s2];
        let mut out = [Received::default(); 2];
        let mut got = 0;
        for _ in 0..100 {
            let rest = bufs[got..].iter_mut().map(|b| &mut b[..]);
            got += recv_many(&b, rest, &mut out[got..]).unwrap();
            if got == 2 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(got, 2);
        assert_eq!(out[0].from, Some(a.local_addr().unwrap()), "mapped as IPv4");
        assert_eq!(send_many(&a, [], None).unwrap(), 0);
    }
}
