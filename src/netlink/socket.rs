//! The socket and its request/reply protocol: framing, sequence numbers,
//! multipart dumps, acknowledgements and kernel errors.

use std::io;
use std::time::Duration;

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_ACK_TLVS, NLM_F_CAPPED, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REQUEST,
    NLMSG_DONE, NLMSG_ERROR, NetlinkBuffer, NetlinkHeader, NetlinkMessage, NetlinkPayload,
    NlasIterator, ParseableParametrized,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::protocols::NETLINK_ROUTE;
use netlink_sys::{Socket, SocketAddr};
use rustix::net::sockopt::{Timeout, set_socket_timeout};

/// Size of the receive buffer: one datagram of a reply must fit (as
/// upstream's `NLBUFSIZ`).
const RECV_BUF_LEN: usize = 64 * 1024;
/// How long to wait for the kernel's next reply datagram.
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);
/// How often a dump is tried when concurrent changes interrupt it.
const DUMP_ATTEMPTS: usize = 3;
/// Length of `struct nlmsghdr`.
const HEADER_LEN: usize = 16;
/// Message types below this are netlink control messages (noop, overrun...).
const NLMSG_MIN_TYPE: u16 = 0x10;
/// Extended-ack attribute carrying the kernel's error text.
const NLMSGERR_ATTR_MSG: u16 = 1;

/// A synchronous `NETLINK_ROUTE` socket in the network namespace of the
/// thread that opened it.
pub struct Netlink {
    socket: Socket,
    seq: u32,
    recv_buf: Box<[u8]>,
}

impl Netlink {
    /// Opens a socket in the calling thread's network namespace.
    pub fn open() -> io::Result<Netlink> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind_auto()?;
        // Errors echo only the request's header, plus the kernel's text.
        socket.set_cap_ack(true)?;
        socket.set_ext_ack(true)?;
        set_socket_timeout(&socket, Timeout::Recv, Some(REPLY_TIMEOUT))?;
        Ok(Netlink {
            socket,
            seq: 0,
            recv_buf: vec![0; RECV_BUF_LEN].into_boxed_slice(),
        })
    }

    /// Dumps with `request` and keeps what `convert` makes of each message.
    pub(super) fn dump<T>(
        &mut self,
        request: RouteNetlinkMessage,
        mut convert: impl FnMut(RouteNetlinkMessage) -> Option<T>,
    ) -> io::Result<Vec<T>> {
        for _ in 0..DUMP_ATTEMPTS {
            let mut found = Vec::new();
            let seq = self.send(request.clone(), NLM_F_DUMP)?;
            let interrupted = self.receive(seq, |message| found.extend(convert(message)))?;
            if !interrupted {
                return Ok(found);
            }
        }
        Err(io::Error::other(
            "netlink dump kept being interrupted by concurrent changes",
        ))
    }

    /// Sends `request` (with extra `NLM_F_*` flags) and waits for the
    /// kernel's acknowledgement; returns the messages that came before it
    /// (the answer to a get).
    pub(super) fn execute(
        &mut self,
        request: RouteNetlinkMessage,
        flags: u16,
    ) -> io::Result<Vec<RouteNetlinkMessage>> {
        let seq = self.send(request, NLM_F_ACK | flags)?;
        let mut replies = Vec::new();
        self.receive(seq, |message| replies.push(message))?;
        Ok(replies)
    }

    fn send(&mut self, request: RouteNetlinkMessage, flags: u16) -> io::Result<u32> {
        self.seq = self.seq.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | flags;
        header.sequence_number = self.seq;
        let mut message = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(request));
        message.finalize();
        let mut bytes = vec![0; message.buffer_len()];
        message.serialize(&mut bytes);
        self.socket.send_to(&bytes, &SocketAddr::new(0, 0), 0)?;
        Ok(self.seq)
    }

    /// Reads the replies to `seq` until `NLMSG_DONE` or `NLMSG_ERROR`,
    /// handing every decodable message to `each`. Returns whether the
    /// kernel marked the dump as interrupted.
    fn receive(&mut self, seq: u32, mut each: impl FnMut(RouteNetlinkMessage)) -> io::Result<bool> {
        let mut interrupted = false;
        loop {
            let len = self.recv_datagram()?;
            for frame in Frames(&self.recv_buf[..len]) {
                let frame = frame?;
                if frame.seq != seq {
                    continue;
                }
                interrupted |= frame.flags & NLM_F_DUMP_INTR != 0;
                match frame.kind {
                    NLMSG_DONE => return done_status(&frame).map(|()| interrupted),
                    NLMSG_ERROR => return ack_status(&frame).map(|()| interrupted),
                    _ => decode(&frame).into_iter().for_each(&mut each),
                }
            }
        }
    }

    /// Receives one datagram into the buffer, returning its length.
    fn recv_datagram(&mut self) -> io::Result<usize> {
        loop {
            let mut free: &mut [u8] = &mut self.recv_buf;
            match self.socket.recv(&mut free, libc::MSG_TRUNC) {
                Ok(len) if len > RECV_BUF_LEN => {
                    return Err(io::Error::other(format!(
                        "netlink reply of {len} bytes exceeds the {RECV_BUF_LEN}-byte buffer"
                    )));
                }
                Ok(len) => return Ok(len),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "no netlink reply from the kernel",
                    ));
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// One netlink message of a datagram, its length checked.
struct Frame<'a> {
    kind: u16,
    flags: u16,
    seq: u32,
    payload: &'a [u8],
}

/// The messages of a datagram, in order; a malformed header ends it.
struct Frames<'a>(&'a [u8]);

impl<'a> Iterator for Frames<'a> {
    type Item = io::Result<Frame<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.0;
        if rest.is_empty() {
            return None;
        }
        let header = match NetlinkBuffer::new_checked(rest) {
            Ok(header) => header,
            Err(e) => {
                self.0 = &[];
                return Some(Err(invalid_reply(e)));
            }
        };
        // new_checked() made sure HEADER_LEN <= len <= rest.len().
        let len = header.length() as usize;
        self.0 = rest.get(align4(len)..).unwrap_or_default();
        Some(Ok(Frame {
            kind: header.message_type(),
            flags: header.flags(),
            seq: header.sequence_number(),
            payload: &rest[HEADER_LEN..len],
        }))
    }
}

fn align4(len: usize) -> usize {
    len.next_multiple_of(4)
}

pub(super) fn invalid_reply(error: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("malformed netlink reply: {error}"),
    )
}

/// The message, if the parser understands it; anything else is skipped.
fn decode(frame: &Frame) -> Option<RouteNetlinkMessage> {
    if frame.kind < NLMSG_MIN_TYPE {
        return None;
    }
    RouteNetlinkMessage::parse_with_param(frame.payload, frame.kind)
        .inspect_err(|e| log::debug!("skipping netlink message of type {}: {e}", frame.kind))
        .ok()
}

/// `NLMSG_DONE` carries the dump's status (may be empty: success).
fn done_status(frame: &Frame) -> io::Result<()> {
    match errno_code(frame.payload) {
        None | Some(0) => Ok(()),
        Some(code) => Err(kernel_error(code, frame)),
    }
}

/// `NLMSG_ERROR` is an acknowledgement when its code is 0.
fn ack_status(frame: &Frame) -> io::Result<()> {
    match errno_code(frame.payload) {
        None => Err(invalid_reply("NLMSG_ERROR without an error code")),
        Some(0) => Ok(()),
        Some(code) => Err(kernel_error(code, frame)),
    }
}

fn errno_code(payload: &[u8]) -> Option<i32> {
    let bytes = payload.get(..4)?.try_into().ok()?;
    Some(i32::from_ne_bytes(bytes))
}

/// The negative errno `code` as an error. The kernel's extended-ack text,
/// if any, goes to the debug log: the error keeps its plain errno so that
/// callers can match on it.
fn kernel_error(code: i32, frame: &Frame) -> io::Error {
    let error = io::Error::from_raw_os_error(code.wrapping_neg());
    if let Some(text) = extended_ack_text(frame) {
        log::debug!("netlink: {error}: {text}");
    }
    error
}

/// `NLMSGERR_ATTR_MSG` from the attributes after the echoed request.
fn extended_ack_text(frame: &Frame) -> Option<String> {
    if frame.flags & NLM_F_ACK_TLVS == 0 {
        return None;
    }
    let echoed = frame.payload.get(4..)?;
    let echoed_len = if frame.flags & NLM_F_CAPPED != 0 {
        HEADER_LEN
    } else {
        NetlinkBuffer::new_checked(echoed).ok()?.length() as usize
    };
    let attributes = echoed.get(align4(echoed_len)..)?;
    let text = NlasIterator::new(attributes)
        .map_while(Result::ok)
        .find(|nla| nla.kind() == NLMSGERR_ATTR_MSG)?;
    let text = text.value().split(|&b| b == 0).next().unwrap_or_default();
    Some(String::from_utf8_lossy(text).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A netlink message: header (length from `len_field`) and payload.
    fn message(len_field: u32, kind: u16, flags: u16, payload: &[u8]) -> Vec<u8> {
        let mut bytes = Vec::new();
        bytes.extend(len_field.to_ne_bytes());
        bytes.extend(kind.to_ne_bytes());
        bytes.extend(flags.to_ne_bytes());
        bytes.extend(7u32.to_ne_bytes());
        bytes.extend(0u32.to_ne_bytes());
        bytes.extend(payload);
        bytes
    }

    fn well_formed(kind: u16, flags: u16, payload: &[u8]) -> Vec<u8> {
        let len = (HEADER_LEN + payload.len()) as u32;
        let mut bytes = message(len, kind, flags, payload);
        bytes.resize(align4(bytes.len()), 0);
        bytes
    }

    #[test]
    fn frames_split_a_datagram_and_stop_at_a_bad_header() {
        let mut datagram = well_formed(NLMSG_DONE, 0, &0i32.to_ne_bytes());
        datagram.extend(well_formed(NLMSG_ERROR, 0, &(-17i32).to_ne_bytes()));
        datagram.extend(message(1000, NLMSG_DONE, 0, &[]));
        let frames: Vec<_> = Frames(&datagram).collect();
        assert_eq!(frames.len(), 3);
        let second = frames[1].as_ref().unwrap();
        assert_eq!((second.kind, second.seq), (NLMSG_ERROR, 7));
        let error = ack_status(second).unwrap_err();
        assert_eq!(error.raw_os_error(), Some(libc::EEXIST));
        assert_eq!(
            frames[2].as_ref().err().map(io::Error::kind),
            Some(io::ErrorKind::InvalidData)
        );
    }

    #[test]
    fn malformed_replies_are_errors_not_panics() {
        let too_short_length = message(4, NLMSG_DONE, 0, &[0; 12]);
        let truncated_header = vec![0u8; 10];
        for datagram in [too_short_length, truncated_header] {
            assert!(Frames(&datagram).all(|frame| frame.is_err()));
        }
        let empty_error = well_formed(NLMSG_ERROR, 0, &[]);
        let frame = Frames(&empty_error).next().unwrap().unwrap();
        assert!(ack_status(&frame).is_err());
        let unknown_type = well_formed(0x7fff, 0, &[1, 2, 3]);
        let frame = Frames(&unknown_type).next().unwrap().unwrap();
        assert!(decode(&frame).is_none());
        let empty_done = well_formed(NLMSG_DONE, 0, &[]);
        let frame = Frames(&empty_done).next().unwrap().unwrap();
        assert!(done_status(&frame).is_ok());
    }

    #[test]
    fn extended_ack_text_is_read_and_garbage_ignored() {
        let mut payload = (-22i32).to_ne_bytes().to_vec();
        payload.extend(message(HEADER_LEN as u32, 24, 0, &[]));
        let text = b"Invalid prefix\0";
        payload.extend(((4 + text.len()) as u16).to_ne_bytes());
        payload.extend(NLMSGERR_ATTR_MSG.to_ne_bytes());
        payload.extend(text);
        let flags = NLM_F_CAPPED | NLM_F_ACK_TLVS;
        let datagram = well_formed(NLMSG_ERROR, flags, &payload);
        let frame = Frames(&datagram).next().unwrap().unwrap();
        assert_eq!(extended_ack_text(&frame).as_deref(), Some("Invalid prefix"));
        assert_eq!(
            ack_status(&frame).unwrap_err().raw_os_error(),
            Some(libc::EINVAL)
        );

        let garbage = well_formed(NLMSG_ERROR, flags, &[0xff; 9]);
        let frame = Frames(&garbage).next().unwrap().unwrap();
        assert_eq!(extended_ack_text(&frame), None);
        assert!(ack_status(&frame).is_err());
    }
}
