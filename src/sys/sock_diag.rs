//! `NETLINK_SOCK_DIAG` (inet_diag) dumps: the local ports of the TCP or UDP
//! sockets of one address family in a set of states, as `ss -l` finds them.
//!
//! Used by pasta's bound-port scan instead of `/proc/net/{tcp,udp}*`: a
//! `SOCK_DIAG_BY_FAMILY` dump of TCP asking only for `TCP_LISTEN` makes the
//! kernel walk just its listening hash (`inet_diag_dump_icsk()` skips the
//! established hash then), where reading `/proc/net/tcp` walks both. UDP
//! sockets that are bound and not connected report `TCP_CLOSE`.
//!
//! A socket answers for the network namespace it was created in, whatever
//! thread uses it later.
//!
//! Invariants: one dump at a time per socket, read to its end
//! (`NLMSG_DONE` or `NLMSG_ERROR`); a dump left unfinished (an error while
//! reading it) is drained before the next request, as the kernel refuses a
//! new dump while one is running. Replies are untrusted: every length is
//! checked against the datagram, a malformed reply is an
//! `InvalidData` error, never a panic, and a message in a state or family
//! that was not asked for is ignored. Memory is one fixed receive buffer;
//! a datagram that does not fit is an error. Replies to other sequence
//! numbers are skipped.
//!
//! May call: rustix (socket, send, recv, `SO_RCVTIMEO`), libc constants.
//! No `unsafe` code is needed here.

use std::io;
use std::os::fd::OwnedFd;
use std::time::Duration;

use rustix::io::Errno;
use rustix::net::sockopt::{Timeout, set_socket_timeout};
use rustix::net::{
    AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType, netlink, recv, send, socket_with,
};

/// `TCP_LISTEN` in `include/net/tcp_states.h`.
pub const TCP_LISTEN: u8 = 10;
/// `TCP_CLOSE`: what a bound, unconnected UDP socket reports.
pub const TCP_CLOSE: u8 = 7;

/// Address family of a dump.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    Inet,
    Inet6,
}

impl Family {
    fn raw(self) -> u8 {
        match self {
            Family::Inet => libc::AF_INET as u8,
            Family::Inet6 => libc::AF_INET6 as u8,
        }
    }
}

/// Transport protocol of a dump.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    fn raw(self) -> u8 {
        match self {
            Protocol::Tcp => libc::IPPROTO_TCP as u8,
            Protocol::Udp => libc::IPPROTO_UDP as u8,
        }
    }
}

/// `SOCK_DIAG_BY_FAMILY` in `linux/sock_diag.h`.
const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
/// `NLM_F_ROOT | NLM_F_MATCH`.
const NLM_F_DUMP: u16 = 0x300;
/// `struct nlmsghdr`.
const NLMSG_HDRLEN: usize = 16;
/// `struct inet_diag_req_v2`: family, protocol, extensions, pad, states
/// (4 bytes), then `struct inet_diag_sockid` (48 bytes).
const REQ_V2_LEN: usize = 56;
const REQUEST_LEN: usize = NLMSG_HDRLEN + REQ_V2_LEN;
/// `struct inet_diag_msg`: family, state, timer, retrans, then the sockid
/// (source port first, big-endian), then five 32-bit fields.
const INET_DIAG_MSG_LEN: usize = 72;
/// Receive buffer: the kernel sizes a dump datagram by the reader's buffer
/// but caps it below 32 KiB (`netlink_recvmsg()`), or one page.
const RECV_BUF_LEN: usize = 32 * 1024;
/// How long to wait for the next datagram of a reply.
const REPLY_TIMEOUT: Duration = Duration::from_secs(1);
/// Most datagrams read while draining an unfinished dump.
const MAX_DRAIN: usize = 4096;

/// A `NETLINK_SOCK_DIAG` socket of the namespace it was opened in.
pub struct SockDiag {
    fd: OwnedFd,
    seq: u32,
    /// A request was sent and its reply not read to the end.
    in_dump: bool,
    buf: Box<[u8]>,
}

/// Where a reply stands after one datagram.
#[derive(Debug, PartialEq, Eq)]
enum Progress {
    /// No end yet: more datagrams follow.
    More,
    /// `NLMSG_DONE`, or an `NLMSG_ERROR` acknowledgement of 0.
    Done,
    /// The kernel ended the reply with this errno.
    Failed(i32),
}

impl SockDiag {
    /// Opens a socket in the calling thread's network namespace
    /// (close-on-exec). Fails with `EPROTONOSUPPORT` on a kernel without
    /// sock_diag.
    pub fn open() -> io::Result<SockDiag> {
        let fd = socket_with(
            AddressFamily::NETLINK,
            SocketType::DGRAM,
            SocketFlags::CLOEXEC,
            Some(netlink::SOCK_DIAG),
        )?;
        set_socket_timeout(&fd, Timeout::Recv, Some(REPLY_TIMEOUT))?;
        Ok(SockDiag {
            fd,
            seq: 0,
            in_dump: false,
            buf: vec![0; RECV_BUF_LEN].into_boxed_slice(),
        })
    }

    /// Dumps the `protocol` sockets of `family` whose state is in `states`
    /// (a mask of `1 << state`), calling `each` with every local port.
    /// A kernel without the handler for the protocol (`tcp_diag`,
    /// `udp_diag`) fails with `ENOENT`. On any error, `each` may have seen
    /// part of the sockets.
    pub fn dump_ports(
        &mut self,
        family: Family,
        protocol: Protocol,
        states: u32,
        each: impl FnMut(u16),
    ) -> io::Result<()> {
        self.dump_raw(family, protocol.raw(), states, each)
    }

    fn dump_raw(
        &mut self,
        family: Family,
        protocol: u8,
        states: u32,
        mut each: impl FnMut(u16),
    ) -> io::Result<()> {
        if self.in_dump {
            self.drain()?;
        }
        self.seq = self.seq.wrapping_add(1);
        let request = request(self.seq, family.raw(), protocol, states);
        loop {
            match send(&self.fd, &request, SendFlags::empty()) {
                Ok(n) if n == request.len() => break,
                Ok(n) => {
                    return Err(io::Error::other(format!(
                        "sock_diag request: sent {n} of {} bytes",
                        request.len()
                    )));
                }
                Err(Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        self.in_dump = true;
        loop {
            let len = self.recv(RecvFlags::empty())?;
            let datagram = self.buf.get(..len).unwrap_or_default();
            match parse_datagram(datagram, self.seq, family.raw(), states, &mut each)? {
                Progress::More => {}
                Progress::Done => {
                    self.in_dump = false;
                    return Ok(());
                }
                Progress::Failed(errno) => {
                    self.in_dump = false;
                    return Err(io::Error::from_raw_os_error(errno));
                }
            }
        }
    }

    /// Reads and drops what is left of an unfinished dump: each read lets
    /// the kernel queue the next part, so the queue runs dry once the dump
    /// has ended.
    fn drain(&mut self) -> io::Result<()> {
        for _ in 0..MAX_DRAIN {
            match self.recv(RecvFlags::DONTWAIT) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.in_dump = false;
                    return Ok(());
                }
                // A bad datagram is dropped all the same.
                Err(e) if e.kind() == io::ErrorKind::InvalidData => {}
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::other("sock_diag: unfinished dump does not end"))
    }

    /// Receives one datagram into the buffer, returning its length. Without
    /// `DONTWAIT`, no datagram within the timeout is `TimedOut`.
    fn recv(&mut self, flags: RecvFlags) -> io::Result<usize> {
        loop {
            match recv(&self.fd, &mut self.buf[..], flags | RecvFlags::TRUNC) {
                Ok((_, len)) if len > self.buf.len() => {
                    return Err(invalid(format!(
                        "datagram of {len} bytes exceeds the {}-byte buffer",
                        self.buf.len()
                    )));
                }
                Ok((_, len)) => return Ok(len),
                Err(Errno::INTR) => continue,
                Err(Errno::AGAIN) if !flags.contains(RecvFlags::DONTWAIT) => {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "no sock_diag reply from the kernel",
                    ));
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// `nlmsghdr` + `inet_diag_req_v2` asking for a dump; no extensions, any
/// address and port.
fn request(seq: u32, family: u8, protocol: u8, states: u32) -> [u8; REQUEST_LEN] {
    // Fixed offsets into a fixed-size array: no bounds can fail.
    let mut bytes = [0u8; REQUEST_LEN];
    bytes[0..4].copy_from_slice(&(REQUEST_LEN as u32).to_ne_bytes());
    bytes[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    bytes[6..8].copy_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    bytes[8..12].copy_from_slice(&seq.to_ne_bytes());
    // nlmsg_pid 0: to the kernel. Then inet_diag_req_v2; its sockid stays
    // zero (any address, any port).
    bytes[16..20].copy_from_slice(&[family, protocol, 0, 0]);
    bytes[20..24].copy_from_slice(&states.to_ne_bytes());
    bytes
}

fn invalid(what: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("malformed sock_diag reply: {what}"),
    )
}

fn ne_u16(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

fn ne_u32(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

/// Goes through the messages of one reply datagram to request `seq`,
/// handing `each` the local port of every socket of `family` in `states`.
/// Messages to other requests, and of types other than the dump's, the
/// end and errors, are skipped. A header whose length does not fit the
/// datagram, or a socket message shorter than `inet_diag_msg`, is an error.
fn parse_datagram(
    datagram: &[u8],
    seq: u32,
    family: u8,
    states: u32,
    each: &mut impl FnMut(u16),
) -> io::Result<Progress> {
    let mut rest = datagram;
    while !rest.is_empty() {
        let (Some(len), Some(kind), Some(msg_seq)) =
            (ne_u32(rest, 0), ne_u16(rest, 4), ne_u32(rest, 8))
        else {
            return Err(invalid(format!("{}-byte message header", rest.len())));
        };
        let len = len as usize;
        if len < NLMSG_HDRLEN || len > rest.len() {
            return Err(invalid(format!(
                "message length {len} with {} bytes left",
                rest.len()
            )));
        }
        let payload = rest.get(NLMSG_HDRLEN..len).unwrap_or_default();
        rest = rest.get(len.next_multiple_of(4)..).unwrap_or_default();
        if msg_seq != seq {
            continue;
        }
        match kind {
            NLMSG_DONE => {
                // The status may be left out: success.
                return Ok(match ne_u32(payload, 0).map(|c| c as i32) {
                    None | Some(0) => Progress::Done,
                    Some(code) => Progress::Failed(code.wrapping_neg()),
                });
            }
            NLMSG_ERROR => {
                return match ne_u32(payload, 0).map(|c| c as i32) {
                    None => Err(invalid("NLMSG_ERROR without an error code")),
                    Some(0) => Ok(Progress::Done),
                    Some(code) => Ok(Progress::Failed(code.wrapping_neg())),
                };
            }
            SOCK_DIAG_BY_FAMILY => {
                let Some(msg) = payload.get(..INET_DIAG_MSG_LEN) else {
                    return Err(invalid(format!("inet_diag_msg of {} bytes", payload.len())));
                };
                let (msg_family, state) = (msg[0], msg[1]);
                let wanted = 1u32.checked_shl(u32::from(state)).unwrap_or(0) & states != 0;
                if msg_family == family && wanted {
                    each(u16::from_be_bytes([msg[4], msg[5]]));
                }
            }
            _ => {}
        }
    }
    Ok(Progress::More)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream, UdpSocket};

    const SEQ: u32 = 42;
    const V4: u8 = libc::AF_INET as u8;
    const V6: u8 = libc::AF_INET6 as u8;
    const LISTEN: u32 = 1 << TCP_LISTEN;

    /// A message with `len_field` as its length and `payload`, padded.
    fn message(len_field: u32, kind: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
        let mut bytes = Vec::new();
        bytes.extend(len_field.to_ne_bytes());
        bytes.extend(kind.to_ne_bytes());
        bytes.extend(2u16.to_ne_bytes()); // NLM_F_MULTI
        bytes.extend(seq.to_ne_bytes());
        bytes.extend(1234u32.to_ne_bytes());
        bytes.extend(payload);
        bytes.resize(bytes.len().next_multiple_of(4), 0);
        bytes
    }

    fn well_formed(kind: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
        message((NLMSG_HDRLEN + payload.len()) as u32, kind, seq, payload)
    }

    fn diag_msg(family: u8, state: u8, port: u16) -> Vec<u8> {
        let mut msg = vec![0u8; INET_DIAG_MSG_LEN];
        msg[0] = family;
        msg[1] = state;
        msg[4..6].copy_from_slice(&port.to_be_bytes());
        msg[6..8].copy_from_slice(&9999u16.to_be_bytes()); // remote port
        msg
    }

    fn socket(family: u8, state: u8, port: u16) -> Vec<u8> {
        well_formed(SOCK_DIAG_BY_FAMILY, SEQ, &diag_msg(family, state, port))
    }

    fn parse(datagram: &[u8], family: u8, states: u32) -> (io::Result<Progress>, Vec<u16>) {
        let mut ports = Vec::new();
        let result = parse_datagram(datagram, SEQ, family, states, &mut |p| ports.push(p));
        (result, ports)
    }

    #[test]
    fn request_layout() {
        let bytes = request(7, V6, libc::IPPROTO_UDP as u8, 1 << TCP_CLOSE);
        assert_eq!(bytes.len(), 72);
        assert_eq!(ne_u32(&bytes, 0), Some(72));
        assert_eq!(ne_u16(&bytes, 4), Some(SOCK_DIAG_BY_FAMILY));
        assert_eq!(ne_u16(&bytes, 6), Some(NLM_F_REQUEST | NLM_F_DUMP));
        assert_eq!(ne_u32(&bytes, 8), Some(7));
        assert_eq!(ne_u32(&bytes, 12), Some(0));
        assert_eq!(&bytes[16..20], &[V6, 17, 0, 0]);
        assert_eq!(ne_u32(&bytes, 20), Some(0x80));
        assert!(bytes[24..].iter().all(|&b| b == 0));
    }

    #[test]
    fn sockets_then_done() {
        let mut datagram = socket(V4, TCP_LISTEN, 80);
        datagram.extend(socket(V4, TCP_LISTEN, 0xfffe));
        // Another request's message, a socket of the other family and one
        // in a state not asked for are ignored; so is a NOOP.
        datagram.extend(well_formed(
            SOCK_DIAG_BY_FAMILY,
            SEQ + 1,
            &diag_msg(V4, TCP_LISTEN, 1),
        ));
        datagram.extend(socket(V6, TCP_LISTEN, 2));
        datagram.extend(socket(V4, 1, 3));
        datagram.extend(socket(V4, 200, 4));
        datagram.extend(well_formed(1, SEQ, &[]));
        let (result, ports) = parse(&datagram, V4, LISTEN);
        assert_eq!((result.unwrap(), ports), (Progress::More, vec![80, 0xfffe]));
        // A longer message (future fields, attributes) is fine.
        let mut longer = diag_msg(V4, TCP_LISTEN, 22);
        longer.extend([1, 2, 3, 4, 5]);
        datagram.extend(well_formed(SOCK_DIAG_BY_FAMILY, SEQ, &longer));
        datagram.extend(well_formed(NLMSG_DONE, SEQ, &0i32.to_ne_bytes()));
        datagram.extend(socket(V4, TCP_LISTEN, 23)); // after the end
        let (result, ports) = parse(&datagram, V4, LISTEN);
        assert_eq!(result.unwrap(), Progress::Done);
        assert_eq!(ports, vec![80, 0xfffe, 22]);
        // Several states at once.
        let (_, ports) = parse(&datagram, V4, LISTEN | 1 << 1);
        assert_eq!(ports, vec![80, 0xfffe, 3, 22]);
    }

    #[test]
    fn ends_and_kernel_errors() {
        let cases = [
            (well_formed(NLMSG_DONE, SEQ, &[]), Progress::Done),
            (
                well_formed(NLMSG_DONE, SEQ, &(-16i32).to_ne_bytes()),
                Progress::Failed(libc::EBUSY),
            ),
            (
                well_formed(NLMSG_ERROR, SEQ, &(-2i32).to_ne_bytes()),
                Progress::Failed(libc::ENOENT),
            ),
            (
                well_formed(NLMSG_ERROR, SEQ, &0i32.to_ne_bytes()),
                Progress::Done,
            ),
            (
                well_formed(NLMSG_ERROR, SEQ, &i32::MIN.to_ne_bytes()),
                Progress::Failed(i32::MIN),
            ),
            (Vec::new(), Progress::More),
            (well_formed(NLMSG_DONE, SEQ + 1, &[]), Progress::More),
        ];
        for (datagram, expected) in cases {
            assert_eq!(parse(&datagram, V4, LISTEN).0.unwrap(), expected);
        }
        let error = well_formed(NLMSG_ERROR, SEQ, &[0xff, 0xff]);
        assert!(parse(&error, V4, LISTEN).0.is_err());
    }

    #[test]
    fn malformed_datagrams_are_errors_not_panics() {
        let good = socket(V4, TCP_LISTEN, 80);
        let mut short_msg = well_formed(SOCK_DIAG_BY_FAMILY, SEQ, &diag_msg(V4, 10, 81)[..71]);
        short_msg.splice(0..0, good.iter().copied());
        let cases = [
            good[..10].to_vec(),           // truncated header
            good[..NLMSG_HDRLEN].to_vec(), // header says more than there is
            good[..good.len() - 1].to_vec(),
            message(8, NLMSG_DONE, SEQ, &[0; 8]), // length below the header
            message(0, NLMSG_DONE, SEQ, &[]),
            message(u32::MAX, SOCK_DIAG_BY_FAMILY, SEQ, &diag_msg(V4, 10, 1)),
            short_msg,
            well_formed(SOCK_DIAG_BY_FAMILY, SEQ, &[]),
        ];
        for (i, datagram) in cases.iter().enumerate() {
            let (result, _) = parse(datagram, V4, LISTEN);
            let error = result.expect_err(&format!("case {i}"));
            assert_eq!(error.kind(), io::ErrorKind::InvalidData, "case {i}");
        }
        // Every truncation of a valid reply is either an error or an
        // incomplete reply, never a panic; ports come only from whole
        // messages.
        let mut reply = good.clone();
        reply.extend(socket(V4, TCP_LISTEN, 81));
        reply.extend(well_formed(NLMSG_DONE, SEQ, &0i32.to_ne_bytes()));
        for cut in 0..reply.len() {
            let (result, ports) = parse(&reply[..cut], V4, LISTEN);
            assert_ne!(result.ok(), Some(Progress::Done), "cut {cut}");
            assert!(ports.len() <= 2);
        }
        // A message whose aligned length runs past the end is the last.
        let mut unaligned = well_formed(NLMSG_DONE, SEQ + 1, &[0; 4]);
        unaligned.truncate(NLMSG_HDRLEN + 1);
        unaligned[..4].copy_from_slice(&((NLMSG_HDRLEN + 1) as u32).to_ne_bytes());
        assert_eq!(parse(&unaligned, V4, LISTEN).0.unwrap(), Progress::More);
    }

    fn dumped(diag: &mut SockDiag, family: Family, protocol: Protocol, state: u8) -> Vec<u16> {
        let mut ports = Vec::new();
        diag.dump_ports(family, protocol, 1 << state, |p| ports.push(p))
            .unwrap();
        ports.sort_unstable();
        ports
    }

    #[test]
    fn dumps_a_private_namespace() {
        crate::flow::testing::in_private_netns(|| {
            let mut diag = SockDiag::open().unwrap();
            for family in [Family::Inet, Family::Inet6] {
                for (protocol, state) in [(Protocol::Tcp, TCP_LISTEN), (Protocol::Udp, TCP_CLOSE)] {
                    assert!(dumped(&mut diag, family, protocol, state).is_empty());
                }
            }
            let _tcp4 = TcpListener::bind("127.0.0.1:4242").unwrap();
            let tcp6 = TcpListener::bind("[::]:4244").unwrap();
            let _udp4 = UdpSocket::bind("127.0.0.1:4243").unwrap();
            let _udp6 = UdpSocket::bind("[::1]:4245").unwrap();
            let _client = TcpStream::connect("[::1]:4244").unwrap();
            let _accepted = tcp6.accept().unwrap();
            let connected = UdpSocket::bind("127.0.0.1:0").unwrap();
            connected.connect("127.0.0.1:4243").unwrap();
            let local = connected.local_addr().unwrap().port();

            assert_eq!(
                dumped(&mut diag, Family::Inet, Protocol::Tcp, TCP_LISTEN),
                [4242]
            );
            assert_eq!(
                dumped(&mut diag, Family::Inet6, Protocol::Tcp, TCP_LISTEN),
                [4244]
            );
            assert_eq!(
                dumped(&mut diag, Family::Inet, Protocol::Udp, TCP_CLOSE),
                [4243]
            );
            assert_eq!(
                dumped(&mut diag, Family::Inet6, Protocol::Udp, TCP_CLOSE),
                [4245]
            );
            // Connected sockets are in another state.
            assert_eq!(dumped(&mut diag, Family::Inet, Protocol::Udp, 1), [local]);
            let mut established = dumped(&mut diag, Family::Inet6, Protocol::Tcp, 1);
            established.dedup();
            assert_eq!(established.len(), 2);
            assert!(established.contains(&4244));

            // A protocol the kernel has no handler for fails cleanly and
            // the socket stays usable.
            let error = diag
                .dump_raw(Family::Inet, 200, LISTEN, |_| ())
                .unwrap_err();
            assert_eq!(error.raw_os_error(), Some(libc::ENOENT), "{error}");
            assert_eq!(
                dumped(&mut diag, Family::Inet, Protocol::Tcp, TCP_LISTEN),
                [4242]
            );
        });
    }

    #[test]
    fn an_unfinished_dump_is_drained_first() {
        crate::flow::testing::in_private_netns(|| {
            let mut sockets = Vec::new();
            for port in 20000..20600u16 {
                sockets.push(TcpListener::bind(("127.0.0.1", port)).unwrap());
            }
            let mut diag = SockDiag::open().unwrap();
            // A dump (several datagrams long) abandoned after its first
            // datagram.
            let request = request(99, V4, libc::IPPROTO_TCP as u8, LISTEN);
            send(&diag.fd, &request, SendFlags::empty()).unwrap();
            diag.in_dump = true;
            diag.recv(RecvFlags::empty()).unwrap();
            let ports = dumped(&mut diag, Family::Inet, Protocol::Tcp, TCP_LISTEN);
            assert_eq!(ports, (20000..20600).collect::<Vec<_>>());
            assert!(!diag.in_dump);
        });
    }
}
