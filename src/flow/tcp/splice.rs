//! pasta's TCP fast path (REFERENCE.md §2.6, upstream `tcp_splice.c`): a
//! connection between two local sockets, one on each side of the
//! namespace boundary, whose bytes move socket -> pipe -> socket with
//! `splice(2)`, never copied to user space.
//!
//! # A spliced connection
//! The *accepted* socket comes from a forwarding listener (`-t` on the
//! host, `-T` inside the namespace); the *target* socket is a fresh
//! non-blocking TCP socket the caller made in the other namespace, which
//! [`SplicedConns::open`] connects to the forwarded address. Each
//! direction has a pipe of its own, of the size probed once by
//! [`crate::sys::splice::max_pipe_size`] (8 MiB at most); spare pipes are
//! kept for the next connection.
//!
//! # Moving bytes
//! A direction (from one socket, its *in* side, to the other, its *out*
//! side) is pumped the same way on every readiness report: first the pipe
//! is written out until it is empty or the out side would block, then, only
//! if the pipe is empty, the in side is read into it, and round again. So
//! the in side is read only into an empty pipe: the kernel counts a pipe's
//! room in slots, not bytes, and an `EAGAIN` from reading into an empty
//! pipe can only mean the socket is drained. Writes carry `SPLICE_F_MORE`
//! while the pipe is at least 90% full (more will follow: the socket need
//! not push a partial segment).
//!
//! When the out side would block, the direction waits for EPOLLOUT there
//! and stops reading its in side (EPOLLIN off), so what one connection
//! holds is bounded by its two pipes. The sockets are registered
//! edge-triggered, and their interest always says exactly what is awaited:
//! EPOLLIN while the in side is to be read (connected, no end of stream
//! yet, pipe empty), EPOLLOUT while connecting (target) or while the pipe
//! toward it holds bytes. Nothing wakes the loop for work it will not do.
//! A direction moves at most [`ROUNDS_PER_EVENT`] pipefuls per report, for
//! fairness; one that stops early re-arms its sockets so that the rest
//! comes with the next wait.
//!
//! # Opening and closing
//! The target connects without blocking; EPOLLOUT then `SO_ERROR` tell the
//! outcome. A failure (or no answer within [`CONNECT_TIMEOUT`]) closes the
//! accepted socket with a reset (`SO_LINGER` 0), so the client sees the
//! refusal. An end of stream read from one side is passed on as
//! `shutdown(SHUT_WR)` of the other once the pipe between them has
//! drained; when both directions have ended that way, both sockets close
//! normally. An error on either side (a reset, a write to a closed peer)
//! closes both with `SO_LINGER` 0, so the reset reaches the other peer too.
//! Nothing else times out: upstream has no idle timeout for spliced flows.
//!
//! Invariants: every connection is a flow of the shared table
//! ([`FlowState::Splice`], protocol TCP, sides not indexed: the sockets'
//! tokens carry the id); a connection holds at most two pipes; no runtime
//! path panics.
//! May call: `sys::splice`, rustix (socket options, connect, shutdown),
//! `event` (registration), `flow::table`.

use std::io;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use rustix::io::Errno;
use rustix::net::{Shutdown, SocketType};

use crate::event::{EventLoop, Interest, Ready, Token, TokenKind};
use crate::flow::listen::{Accepted, Forward};
use crate::flow::table::{FlowId, FlowSide, Indexed, InsertError, Pif, Protocol, Side};
use crate::flow::{Ctx, FlowState, Flows, family_of, loopback_like, new_socket, unspecified_like};
use crate::sys::splice::{self as sys_splice, Pipe};

/// A target that has not connected after this long: both sides close
/// (the accepted one with a reset).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Spare pipes kept for new connections (16 connections' worth).
const SPARE_PIPES: usize = 32;

/// Pipefuls one direction moves per readiness report before it yields.
const ROUNDS_PER_EVENT: usize = 8;

/// Writes carry `SPLICE_F_MORE` while the pipe is at least this many
/// tenths full.
const MORE_AT_TENTHS: usize = 9;

/// One of the two sockets of a spliced connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpliceSide {
    /// The socket a forwarding listener accepted.
    Accepted = 0,
    /// The socket connected to the forwarded address.
    Target = 1,
}

impl SpliceSide {
    const BOTH: [SpliceSide; 2] = [SpliceSide::Accepted, SpliceSide::Target];

    /// The opposite socket.
    pub const fn other(self) -> SpliceSide {
        match self {
            SpliceSide::Accepted => SpliceSide::Target,
            SpliceSide::Target => SpliceSide::Accepted,
        }
    }

    /// The side an event token of kind `kind` names, if it names one.
    pub fn from_token(kind: TokenKind) -> Option<SpliceSide> {
        match kind {
            TokenKind::SpliceAccepted => Some(SpliceSide::Accepted),
            TokenKind::SpliceTarget => Some(SpliceSide::Target),
            _ => None,
        }
    }

    const fn token_kind(self) -> TokenKind {
        match self {
            SpliceSide::Accepted => TokenKind::SpliceAccepted,
            SpliceSide::Target => TokenKind::SpliceTarget,
        }
    }

    const fn index(self) -> usize {
        self as usize
    }
}

/// Where a spliced connection comes from: what its accepted socket saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Origin {
    /// Where the accepted socket lives: [`Pif::Host`] for a `-t` port
    /// (the target is inside pasta's namespace), [`Pif::Splice`] for a
    /// `-T` port (the target is on the host).
    pub pif: Pif,
    /// Who connected.
    pub peer: SocketAddr,
    /// The address and port it connected to.
    pub local: SocketAddr,
}

/// Why [`SplicedConns::open`] made no connection. The accepted socket was
/// closed with a reset in every case.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("no flow for the connection: {0}")]
    Table(#[from] InsertError),
    #[error("no pipe for the connection: {0}")]
    Pipe(io::Error),
    #[error("connect failed: {0}")]
    Connect(io::Error),
    #[error("epoll: {0}")]
    Epoll(io::Error),
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SpliceCounters {
    pub opened: u64,
    /// Connections refused before connecting: table full, no pipe, no
    /// epoll registration.
    pub refused: u64,
    /// Targets that refused or failed to connect.
    pub connect_failed: u64,
    /// Targets that did not connect within [`CONNECT_TIMEOUT`].
    pub connect_timeouts: u64,
    /// Connections closed in order (both ends of stream passed on).
    pub closed: u64,
    /// Connections closed by an error or reset on either side.
    pub reset: u64,
}

/// How a connection ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Close {
    /// Both directions ended and drained: plain close of both sockets.
    Done,
    /// The target failed to connect: reset the accepted socket.
    ConnectFailed,
    /// The target did not connect in time: reset the accepted socket.
    TimedOut,
    /// An error on a side: reset both.
    Reset,
}

/// One direction of a connection: bytes read from its in side wait in the
/// pipe for its out side.
#[derive(Debug)]
struct Direction {
    pipe: Pipe,
    /// Bytes in the pipe.
    queued: usize,
    /// The in side reached its end of stream.
    eof: bool,
    /// The end of stream was passed on: the out side is shut for writing.
    shut: bool,
}

impl Direction {
    fn new(pipe: Pipe) -> Direction {
        Direction {
            pipe,
            queued: 0,
            eof: false,
            shut: false,
        }
    }

    /// Moves bytes `from` -> pipe -> `to` until the in side is drained or
    /// at its end, or `to` would block; returns whether the round budget
    /// ran out first (more may be waiting without a new edge).
    fn pump(&mut self, from: &OwnedFd, to: &OwnedFd) -> io::Result<bool> {
        let mut budget_spent = true;
        for _ in 0..ROUNDS_PER_EVENT {
            if !self.drain(to)? || self.eof || !self.fill(from)? {
                budget_spent = false;
                break;
            }
        }
        if self.eof && self.queued == 0 && !self.shut {
            rustix::net::shutdown(to, Shutdown::Write)?;
            self.shut = true;
        }
        Ok(budget_spent)
    }

    /// Writes the pipe out to `to`: `true` once it is empty, `false` if
    /// `to` would block first.
    fn drain(&mut self, to: &OwnedFd) -> io::Result<bool> {
        while self.queued > 0 {
            let more = self.queued * 10 >= self.pipe.size() * MORE_AT_TENTHS;
            match sys_splice::splice_from_pipe(&self.pipe, to, self.queued, more) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.queued = self.queued.saturating_sub(n),
                Err(e) if would_block(&e) => return Ok(false),
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    /// Reads `from` into the (empty) pipe: `true` if bytes came, `false`
    /// if it is drained or at its end of stream (noted).
    fn fill(&mut self, from: &OwnedFd) -> io::Result<bool> {
        let room = self.pipe.size().saturating_sub(self.queued);
        match sys_splice::splice_to_pipe(from, &self.pipe, room) {
            Ok(0) => {
                self.eof = true;
                Ok(false)
            }
            Ok(n) => {
                self.queued += n;
                Ok(true)
            }
            Err(e) if would_block(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// A spliced connection's state (kept in the flow table).
#[derive(Debug)]
pub struct SpliceConn {
    /// By [`SpliceSide`].
    sockets: [OwnedFd; 2],
    /// By the [`SpliceSide`] the direction reads from.
    dirs: [Direction; 2],
    connected: bool,
    opened: Instant,
    /// What each socket is registered for.
    interest: [Interest; 2],
    /// The table side of the target socket.
    target_side: Side,
}

impl SpliceConn {
    fn socket(&self, side: SpliceSide) -> &OwnedFd {
        &self.sockets[side.index()]
    }

    /// What `side`'s socket has to be watched for now.
    fn wanted(&self, side: SpliceSide) -> Interest {
        let reading = &self.dirs[side.index()];
        let writing = &self.dirs[side.other().index()];
        let connecting = !self.connected && side == SpliceSide::Target;
        Interest {
            readable: self.connected && !reading.eof && reading.queued == 0,
            writable: connecting || writing.queued > 0,
            edge: true,
        }
    }

    /// Both directions ended and were passed on.
    fn finished(&self) -> bool {
        self.dirs.iter().all(|d| d.shut)
    }

    fn connect_expired(&self, now: Instant) -> bool {
        !self.connected && now.saturating_duration_since(self.opened) >= CONNECT_TIMEOUT
    }

    fn register(&mut self, events: &EventLoop, id: FlowId) -> io::Result<()> {
        for side in SpliceSide::BOTH {
            let want = self.wanted(side);
            if let Err(e) = events.add(self.socket(side), token(side, id), want) {
                if side == SpliceSide::Target {
                    let _ = events.delete(self.socket(SpliceSide::Accepted));
                }
                return Err(e);
            }
            self.interest[side.index()] = want;
        }
        Ok(())
    }

    /// Brings both registrations up to date; `rearm` forces a fresh edge
    /// for whatever is ready.
    fn update_interest(&mut self, events: &EventLoop, id: FlowId, rearm: bool) -> io::Result<()> {
        for side in SpliceSide::BOTH {
            let want = self.wanted(side);
            if rearm || want != self.interest[side.index()] {
                events.modify(self.socket(side), token(side, id), want)?;
                self.interest[side.index()] = want;
            }
        }
        Ok(())
    }

    /// Handles a readiness report for `side`; `Ok(rearm)` to go on.
    fn on_ready(&mut self, side: SpliceSide, ready: &Ready) -> Result<bool, Close> {
        if ready.error {
            self.check_error(side)?;
        }
        if !self.connected {
            let answered = ready.writable || ready.closed || ready.error;
            if side == SpliceSide::Accepted || !answered || !self.finish_connect()? {
                return Ok(false);
            }
            let rearm = self.pump(SpliceSide::Accepted)? | self.pump(SpliceSide::Target)?;
            return Ok(rearm);
        }
        let mut rearm = false;
        if ready.readable || ready.closed || ready.error {
            rearm |= self.pump(side)?;
        }
        if ready.writable {
            rearm |= self.pump(side.other())?;
        }
        if self.finished() {
            return Err(Close::Done);
        }
        Ok(rearm)
    }

    /// The pending error of `side`'s socket, if any, ends the connection.
    fn check_error(&self, side: SpliceSide) -> Result<(), Close> {
        let error = match rustix::net::sockopt::socket_error(self.socket(side)) {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(e)) | Err(e) => e,
        };
        log::debug!("TCP splice: {side:?} socket: {error}");
        match (self.connected, side) {
            (false, SpliceSide::Target) => Err(Close::ConnectFailed),
            _ => Err(Close::Reset),
        }
    }

    /// EPOLLOUT (or a hang-up) on the connecting target: `Ok(true)` once
    /// it is connected, `Ok(false)` while it is still in progress.
    fn finish_connect(&mut self) -> Result<bool, Close> {
        let target = self.socket(SpliceSide::Target);
        match rustix::net::sockopt::socket_error(target) {
            Ok(Ok(())) => {}
            Ok(Err(Errno::INPROGRESS | Errno::ALREADY)) => return Ok(false),
            Ok(Err(e)) | Err(e) => {
                log::debug!("TCP splice: connect: {e}");
                return Err(Close::ConnectFailed);
            }
        }
        if rustix::net::getpeername(target).is_err() {
            return Ok(false);
        }
        self.connected = true;
        Ok(true)
    }

    /// Pumps the direction that reads from `from`.
    fn pump(&mut self, from: SpliceSide) -> Result<bool, Close> {
        let (src, dst) = (
            &self.sockets[from.index()],
            &self.sockets[from.other().index()],
        );
        self.dirs[from.index()].pump(src, dst).map_err(|e| {
            log::debug!("TCP splice: {from:?} -> {:?}: {e}", from.other());
            Close::Reset
        })
    }
}

/// The spliced connections' shared parts: spare pipes, the pipe size and
/// the counters. The connections themselves are in the flow table.
pub struct SplicedConns {
    spare: Vec<Pipe>,
    pipe_size: usize,
    pub counters: SpliceCounters,
}

impl Default for SplicedConns {
    fn default() -> Self {
        SplicedConns::new()
    }
}

impl SplicedConns {
    /// Probes the pipe size (once per process) if not done yet.
    pub fn new() -> SplicedConns {
        let pipe_size = sys_splice::max_pipe_size();
        log::debug!("TCP splice: pipes of {pipe_size} bytes");
        SplicedConns {
            spare: Vec::with_capacity(SPARE_PIPES),
            pipe_size,
            counters: SpliceCounters::default(),
        }
    }

    /// A connection accepted on a forwarded port, if pasta splices it:
    /// from `-T` (to the host's loopback, same family, the target port), or
    /// from `-t` with a loopback client and splicing on (to the
    /// namespace's address of that family, its loopback with
    /// `--host-lo-to-ns-lo`). Returns the connection back if it is not
    /// for splicing (it goes to the guest through the link).
    pub fn open_forwarded(
        &mut self,
        flows: &mut Flows,
        ctx: &Ctx<'_>,
        forward: Forward,
        accepted: Accepted,
    ) -> Option<Accepted> {
        let peer = accepted.peer;
        let made = match forward {
            Forward::TcpOut => {
                let dst = SocketAddr::new(loopback_like(peer.ip()), accepted.guest_port);
                host_socket(dst).map(|socket| (socket, dst))
            }
            _ => {
                let Some((ns, addr)) = ctx.splice_target(peer.ip()) else {
                    return Some(accepted);
                };
                let dst = SocketAddr::new(addr, accepted.guest_port);
                ns.socket(family_of(dst), SocketType::STREAM)
                    .map(|socket| (socket, dst))
            }
        };
        let origin = Origin {
            pif: forward.pif(),
            peer,
            local: accepted.local,
        };
        match made {
            Ok((target, dst)) => {
                if let Err(e) = self.open(flows, ctx.events, accepted.socket, origin, target, dst) {
                    log::debug!("TCP splice: {peer} -> {dst}: {e}");
                }
            }
            Err(e) => {
                let refused = OpenError::Connect(e);
                self.refuse(&accepted.socket, &origin, refused);
            }
        }
        None
    }

    /// Splices `accepted` (from a forwarding listener, see [`Origin`]) to
    /// `target`, a fresh TCP socket of `dst`'s family in the other
    /// namespace, which this connects to `dst`. Both sockets are made
    /// non-blocking with `TCP_NODELAY`, registered with `events` (tokens
    /// [`TokenKind::SpliceAccepted`] / [`TokenKind::SpliceTarget`], index
    /// the flow id), and owned by the flow from now on. On error both are
    /// closed, the accepted one with a reset.
    pub fn open(
        &mut self,
        flows: &mut Flows,
        events: &EventLoop,
        accepted: OwnedFd,
        origin: Origin,
        target: OwnedFd,
        dst: SocketAddr,
    ) -> Result<FlowId, OpenError> {
        let (guest, host) = flow_sides(&origin, dst);
        let vacant = match flows.vacant(Protocol::Tcp, guest, host, Indexed::Neither) {
            Ok(vacant) => vacant,
            Err(e) => return Err(self.refuse(&accepted, &origin, OpenError::Table(e))),
        };
        let id = vacant.id();
        let pipes = match self.take_pipes() {
            Ok(pipes) => pipes,
            Err(e) => return Err(self.refuse(&accepted, &origin, OpenError::Pipe(e))),
        };
        tune_socket(&accepted);
        tune_socket(&target);
        if let Err(e) = start_connect(&target, dst) {
            self.counters.connect_failed += 1;
            log::debug!("TCP splice: {} -> {dst}: connect: {e}", origin.peer);
            pipes.into_iter().for_each(|p| self.recycle(p));
            reset_socket(&accepted);
            return Err(OpenError::Connect(e));
        }
        let mut conn = SpliceConn {
            sockets: [accepted, target],
            dirs: pipes.map(Direction::new),
            connected: false,
            opened: Instant::now(),
            interest: [Interest::READ; 2],
            target_side: table_side(origin.pif, SpliceSide::Target),
        };
        if let Err(e) = conn.register(events, id) {
            self.counters.refused += 1;
            conn.sockets.iter().for_each(reset_socket);
            return Err(OpenError::Epoll(e));
        }
        vacant.insert(FlowState::Splice(Box::new(conn)));
        self.counters.opened += 1;
        log::debug!(
            "TCP splice: {} -> {} spliced to {dst}",
            origin.peer,
            origin.local
        );
        Ok(id)
    }

    /// Counts and logs a refused connection and resets its socket.
    fn refuse(&mut self, accepted: &OwnedFd, origin: &Origin, e: OpenError) -> OpenError {
        self.counters.refused += 1;
        log::debug!("TCP splice: refusing {}: {e}", origin.peer);
        reset_socket(accepted);
        e
    }

    fn take_pipes(&mut self) -> io::Result<[Pipe; 2]> {
        let first = self.take_pipe()?;
        match self.take_pipe() {
            Ok(second) => Ok([first, second]),
            Err(e) => {
                self.recycle(first);
                Err(e)
            }
        }
    }

    fn take_pipe(&mut self) -> io::Result<Pipe> {
        match self.spare.pop() {
            Some(pipe) => Ok(pipe),
            None => Pipe::with_size(self.pipe_size),
        }
    }

    /// Keeps an empty pipe of the usual size for the next connection, or
    /// closes it.
    fn recycle(&mut self, pipe: Pipe) {
        if pipe.size() == self.pipe_size && self.spare.len() < SPARE_PIPES {
            self.spare.push(pipe);
        }
    }

    /// Socket `side` of connection `id` is ready.
    pub fn on_socket(
        &mut self,
        flows: &mut Flows,
        events: &EventLoop,
        id: FlowId,
        side: SpliceSide,
        ready: &Ready,
    ) {
        let Some(conn) = conn_mut(flows, id) else {
            return;
        };
        let was_connected = conn.connected;
        let outcome = conn.on_ready(side, ready).and_then(|rearm| {
            conn.update_interest(events, id, rearm).map_err(|e| {
                log::debug!("TCP splice: epoll: {e}");
                Close::Reset
            })
        });
        let connected = conn.connected;
        match outcome {
            Err(how) => self.close(flows, events, id, how),
            Ok(()) if connected && !was_connected => record_target_address(flows, id),
            Ok(()) => {}
        }
    }

    /// The periodic tick: targets that did not connect in time.
    pub fn on_tick(&mut self, flows: &mut Flows, events: &EventLoop, now: Instant) {
        let expired: Vec<FlowId> = flows
            .iter()
            .filter_map(|(id, flow)| match &flow.state {
                FlowState::Splice(conn) if conn.connect_expired(now) => Some(id),
                _ => None,
            })
            .collect();
        for id in expired {
            self.close(flows, events, id, Close::TimedOut);
        }
    }

    /// Removes connection `id` and closes its sockets as `how` says.
    fn close(&mut self, flows: &mut Flows, events: &EventLoop, id: FlowId, how: Close) {
        if conn_mut(flows, id).is_none() {
            return;
        }
        let Some(flow) = flows.remove(id) else {
            return;
        };
        let (guest, host) = (*flow.side(Side::Guest), *flow.side(Side::Host));
        let FlowState::Splice(conn) = flow.state else {
            return;
        };
        let SpliceConn { sockets, dirs, .. } = *conn;
        for socket in &sockets {
            let _ = events.delete(socket);
            if how != Close::Done {
                reset_socket(socket);
            }
        }
        for dir in dirs {
            if dir.queued == 0 {
                self.recycle(dir.pipe);
            }
        }
        match how {
            Close::Done => self.counters.closed += 1,
            Close::Reset => self.counters.reset += 1,
            Close::ConnectFailed => self.counters.connect_failed += 1,
            Close::TimedOut => self.counters.connect_timeouts += 1,
        }
        log::debug!(
            "TCP splice: {}:{} <-> {}:{} closed ({how:?})",
            guest.end_addr,
            guest.end_port,
            host.end_addr,
            host.end_port
        );
    }
}

fn token(side: SpliceSide, id: FlowId) -> Token {
    Token::new(side.token_kind(), id.raw())
}

fn would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

fn conn_mut(flows: &mut Flows, id: FlowId) -> Option<&mut SpliceConn> {
    match &mut flows.get_mut(id)?.state {
        FlowState::Splice(conn) => Some(conn),
        _ => None,
    }
}

/// The table side of a connection's socket: the namespace socket faces
/// the guest ([`Side::Guest`]), the host socket the host.
fn table_side(accepted_pif: Pif, side: SpliceSide) -> Side {
    let accepted = match accepted_pif {
        Pif::Splice => Side::Guest,
        Pif::Host | Pif::Tap => Side::Host,
    };
    match side {
        SpliceSide::Accepted => accepted,
        SpliceSide::Target => accepted.other(),
    }
}

/// The flow's (guest, host) sides. The target's own address is not known
/// before it connects ([`record_target_address`] fills it in).
fn flow_sides(origin: &Origin, dst: SocketAddr) -> (FlowSide, FlowSide) {
    let accepted = FlowSide {
        pif: origin.pif,
        our_addr: origin.local.ip(),
        our_port: origin.local.port(),
        end_addr: origin.peer.ip(),
        end_port: origin.peer.port(),
    };
    let target = FlowSide {
        pif: match origin.pif {
            Pif::Splice => Pif::Host,
            Pif::Host | Pif::Tap => Pif::Splice,
        },
        our_addr: unspecified_like(dst.ip()),
        our_port: 0,
        end_addr: dst.ip(),
        end_port: dst.port(),
    };
    match table_side(origin.pif, SpliceSide::Accepted) {
        Side::Guest => (accepted, target),
        Side::Host => (target, accepted),
    }
}

/// Puts the address and port the kernel chose for the target socket into
/// its flow side.
fn record_target_address(flows: &mut Flows, id: FlowId) {
    let Some(flow) = flows.get(id) else {
        return;
    };
    let FlowState::Splice(conn) = &flow.state else {
        return;
    };
    let side = conn.target_side;
    let local = rustix::net::getsockname(conn.socket(SpliceSide::Target))
        .ok()
        .and_then(|a| SocketAddr::try_from(a).ok());
    if let Some(local) = local {
        let new = FlowSide {
            our_addr: local.ip(),
            our_port: local.port(),
            ..*flow.side(side)
        };
        // Not indexed: nothing to collide with.
        let _ = flows.set_side(id, side, new, false);
    }
}

/// Non-blocking (the event loop must never wait in a splice), and
/// `TCP_NODELAY`/`TCP_QUICKACK`: what arrives is passed on at once, so
/// neither end should hold it back.
fn tune_socket(socket: &OwnedFd) {
    if let Err(e) = rustix::io::ioctl_fionbio(socket, true) {
        log::debug!("TCP splice: FIONBIO: {e}");
    }
    if let Err(e) = rustix::net::sockopt::set_tcp_nodelay(socket, true) {
        log::debug!("TCP splice: TCP_NODELAY: {e}");
    }
    if let Err(e) = rustix::net::sockopt::set_tcp_quickack(socket, true) {
        log::debug!("TCP splice: TCP_QUICKACK: {e}");
    }
}

fn start_connect(socket: &OwnedFd, dst: SocketAddr) -> io::Result<()> {
    match rustix::net::connect(socket, &dst) {
        Ok(()) | Err(Errno::INPROGRESS) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// A socket closed with SO_LINGER 0 sends RST instead of FIN.
fn reset_socket(socket: &OwnedFd) {
    let _ = rustix::net::sockopt::set_socket_linger(socket, Some(Duration::ZERO));
}

/// Spliced connections between real sockets in a private network
/// namespace (root): a client connects to a "forwarding" listener, whose
/// accepted socket is spliced to a server's listener.
/// A stream socket in our own namespace for `dst`, bound to the loopback
/// address of its family (`-T` keeps the loopback source).
fn host_socket(dst: SocketAddr) -> io::Result<OwnedFd> {
    let socket = new_socket(family_of(dst), SocketType::STREAM)?;
    rustix::net::bind(&socket, &SocketAddr::new(loopback_like(dst.ip()), 0))?;
    Ok(socket)
}

#[cfg(test)]
#[path = "splice_tests.rs"]
mod tests;
