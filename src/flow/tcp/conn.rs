//! One TCP connection as the flow table holds it: the host socket, the
//! state machine (`machine::Core`), the bytes of guest data the socket has
//! not taken yet (the "kept" bytes, DESIGN §1 rule 2), and the few flags
//! that schedule its I/O (epoll interest, waiting for the guest link, an
//! ACK due at the end of the batch).
//!
//! Kept bytes come out of one budget for the whole process
//! ([`KEPT_BUDGET`]), at most [`TAIL_MAX`] per connection; a connection's
//! buffer grows only as far as it holds bytes and is freed once it is
//! written, so a guest cannot inflate memory by opening connections to
//! receivers that never read: once the budget is spent it is simply not
//! acknowledged (it resends, and the window offered stays honest).
//! May call: `machine`, rustix (send), std.

use std::io;
use std::os::fd::OwnedFd;

use rustix::io::Errno;
use rustix::net::SendFlags;

use super::machine::Core;

/// Most bytes kept for one connection.
pub const TAIL_MAX: usize = 256 << 10;
/// Most bytes kept for all connections together.
pub const KEPT_BUDGET: usize = 4 << 20;

pub struct TcpConn {
    pub socket: OwnedFd,
    pub core: Core,
    /// Guest data accepted (acknowledged) but not yet taken by the socket.
    tail: Vec<u8>,
    /// EPOLLOUT is requested.
    pub want_out: bool,
    /// An ACK is queued for the end of the batch.
    pub ack_queued: bool,
    /// The guest link refused an ACK: send one when it is writable.
    pub ack_refused: bool,
    /// The socket's peer closed its side (EPOLLRDHUP): look for the end
    /// of the stream after the data.
    pub host_rdhup: bool,
    /// Data may be waiting on the socket that the guest's window held back.
    pub host_pending: bool,
    /// The guest link did not take all we sent: wait for it.
    pub link_blocked: bool,
    /// On the list of connections waiting for the guest link.
    pub waits_for_link: bool,
}

impl TcpConn {
    pub fn new(socket: OwnedFd, core: Core) -> TcpConn {
        TcpConn {
            socket,
            core,
            tail: Vec::new(),
            want_out: false,
            ack_queued: false,
            ack_refused: false,
            host_rdhup: false,
            host_pending: false,
            link_blocked: false,
            waits_for_link: false,
        }
    }

    /// The state machine (read-only: checks and tests).
    pub fn core(&self) -> &Core {
        &self.core
    }

    /// Bytes kept for the socket.
    pub fn kept(&self) -> usize {
        self.tail.len()
    }
}

/// The process-wide budget of kept bytes.
#[derive(Debug, Default)]
pub struct KeptBytes {
    used: usize,
}

impl KeptBytes {
    /// Bytes in use, over all connections.
    pub fn used(&self) -> usize {
        self.used
    }

    /// How many more bytes `conn` may keep.
    pub fn room_for(&self, conn: &TcpConn) -> usize {
        (TAIL_MAX - conn.tail.len()).min(KEPT_BUDGET - self.used)
    }

    /// Keeps as much of `data` as the budget allows; returns how much.
    pub fn keep(&mut self, conn: &mut TcpConn, data: &[u8]) -> usize {
        let n = data.len().min(self.room_for(conn));
        conn.tail.extend_from_slice(&data[..n]);
        self.used += n;
        n
    }

    /// Writes guest data to the socket after what is kept, keeping what
    /// it does not take as far as the budget allows; returns the bytes
    /// accepted (written or kept).
    pub fn write_or_keep(&mut self, conn: &mut TcpConn, data: &[u8]) -> io::Result<usize> {
        if data.is_empty() {
            return Ok(0);
        }
        self.write_tail(conn)?;
        let written = match conn.tail.is_empty() {
            true => send(&conn.socket, data)?,
            false => 0,
        };
        Ok(written + self.keep(conn, &data[written..]))
    }

    /// Writes as much of the kept bytes as the socket takes now; the
    /// buffer is freed once empty.
    pub fn write_tail(&mut self, conn: &mut TcpConn) -> io::Result<()> {
        if conn.tail.is_empty() {
            return Ok(());
        }
        let written = send(&conn.socket, &conn.tail)?;
        conn.tail.drain(..written);
        self.used -= written;
        if conn.tail.is_empty() {
            conn.tail = Vec::new();
        }
        Ok(())
    }

    /// The connection goes: its kept bytes return to the budget.
    pub fn release(&mut self, conn: &mut TcpConn) {
        self.used -= conn.tail.len();
        conn.tail = Vec::new();
    }
}

/// A non-blocking send; a full socket takes 0 bytes.
pub fn send(socket: &OwnedFd, data: &[u8]) -> io::Result<usize> {
    loop {
        match rustix::net::send(socket, data, SendFlags::DONTWAIT | SendFlags::NOSIGNAL) {
            Err(Errno::INTR) => continue,
            Err(Errno::AGAIN) => return Ok(0),
            other => return other.map_err(io::Error::from),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::testing::tcp_pair;
    use std::time::Instant;

    fn conn_to_receiver_that_never_reads() -> (TcpConn, std::net::TcpStream) {
        let (client, server) = tcp_pair();
        let socket = OwnedFd::from(client);
        let core = Core::from_host(0, Instant::now());
        (TcpConn::new(socket, core), server)
    }

    /// A stalled receiver: what the socket does not take is kept up to the
    /// per-connection bound, and the budget is shared by all connections.
    #[test]
    fn kept_bytes_stay_within_the_budget() {
        let mut kept = KeptBytes::default();
        let chunk = vec![7u8; 1 << 20];
        let mut conns = Vec::new();
        for _ in 0..(KEPT_BUDGET / TAIL_MAX + 4) {
            let (mut conn, server) = conn_to_receiver_that_never_reads();
            while kept.room_for(&conn) > 0 {
                if kept.write_or_keep(&mut conn, &chunk).unwrap() == 0 {
                    break;
                }
            }
            assert!(conn.kept() <= TAIL_MAX);
            conns.push((conn, server));
        }
        assert_eq!(
            kept.used(),
            KEPT_BUDGET,
            "the budget is spent, not exceeded"
        );
        let (conn, _) = &mut conns[0];
        assert_eq!(kept.keep(conn, &chunk), 0, "nothing more kept");
        for (conn, _) in &mut conns {
            kept.release(conn);
        }
        assert_eq!(kept.used(), 0);
    }
}
