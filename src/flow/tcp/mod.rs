//! TCP translation without a TCP stack (DESIGN.md §1, REFERENCE.md §2.5):
//! each guest connection is one host `SOCK_STREAM` socket, and the two
//! kernels do segmentation, retransmission to the far end and congestion
//! control.
//!
//! Toward the guest, the host socket's receive queue is the retransmission
//! buffer: data is read with `MSG_PEEK` (`SO_PEEK_OFF` keeps the offset of
//! what was sent; without it, on Linux before 6.9, the sent part is
//! skipped into a discard buffer on every read), cut to the guest's MSS,
//! limited by its window, and dropped from the queue only when the guest
//! acknowledges it. Our FIN goes out only once the host's stream ended and
//! every byte before it was sent.
//!
//! From the guest, in-order data is written to the socket at once and
//! acknowledged when written (DESIGN §1 rule 1, "ACK on write"); the window
//! offered is the free room of the socket's send buffer (`SO_MEMINFO`) plus
//! what may still be kept, never the far end's window. A short write keeps
//! the rest within one process-wide budget (rule 2, `conn::KeptBytes`)
//! written on EPOLLOUT; a window below one MSS is offered as zero and
//! reopened by an update as soon as the socket drains (rule 3);
//! out-of-order data is answered with an immediate duplicate ACK (rule 4);
//! ACKs go out at the end of each batch of guest frames (rule 5).
//!
//! The rooms: `machine.rs` decides (the state machine, pure), `conn.rs` holds
//! a connection and its kept bytes, `guest.rs` carries out what a guest
//! segment asks for, `to_guest.rs` builds and sends our segments, and this
//! file opens, schedules and closes connections.
//!
//! Invariants: every connection lives in the shared flow table (capacity
//! bounds them; a SYN beyond it gets RST and is counted); nothing from the
//! guest allocates beyond the kept-bytes budget; a segment for an unknown
//! connection is dropped (a SYN opens one); timers run on the engine's 1 s
//! tick (`machine::Core::timer_due`).
//! May call: `sys` (socket options), rustix (sockets), `wire::tcp`,
//! `event`, `conf`, `flow::nat`, `flow::listen`.

mod conn;
mod guest;
mod isn;
mod machine;
pub mod splice;
mod to_guest;

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use rustix::io::Errno;
use rustix::net::{AddressFamily, SocketFlags, SocketType};

use self::conn::KeptBytes;
pub use self::conn::TcpConn;
use self::isn::IsnSource;
pub use self::machine::{
    ACK_TIMEOUT, Close, Core, FIN_TIMEOUT, GIVE_UP, IDLE_TIMEOUT, Input, RTO_MAX, SYN_TIMEOUT,
    Timer,
};
use self::splice::SplicedConns;
use super::Ctx;
use super::listen::{Accepted, Listeners};
use super::table::{FlowId, FlowSide, Indexed, Pif, Protocol, Side};
use super::{FlowState, Flows, nat, unspecified_like};
use crate::conf::Config;
use crate::event::{Interest, Ready, Token, TokenKind};
use crate::sys::socket as sock;
use crate::wire::tcp::{self as wire, Endpoints, Segment, flags};

/// Frames built per socket read (upstream: 128).
const TX_SLOTS: usize = 128;
/// Bytes per frame slot: room for the largest frame.
const TX_SLOT: usize = 65536;
/// The largest frame.
const MAX_FRAME: usize = crate::link::MAX_FRAME;
/// Largest IP packet, the bound of our MSS whatever the MTU.
const MAX_IP_PACKET: usize = 65535;
/// The largest MSS set on host sockets (the kernel refuses values above
/// 32767, its largest unscaled window).
const MAX_MSS: u16 = 32767;
/// Connections accepted per listener wake-up (the listener is
/// level-triggered: the rest come on the next one).
const ACCEPT_BURST: usize = 64;
/// Test-only knob: behave as on a kernel without `SO_PEEK_OFF` for TCP
/// (Linux before 6.9), so the fallback runs on any kernel.
const NO_PEEK_OFF_ENV: &str = "PASST_RS_TEST_NO_PEEK_OFF";
/// Test-only knob: this instead of `net.core.wmem_max` (which is global,
/// so tests cannot change it for one process).
const WMEM_MAX_ENV: &str = "PASST_RS_TEST_WMEM_MAX";

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpCounters {
    pub opened_from_guest: u64,
    pub opened_from_host: u64,
    /// New connections refused: the flow table is full (or the 4-tuple is
    /// taken).
    pub refused_table_full: u64,
    /// Connections the host refused or that failed to connect.
    pub connect_failed: u64,
    pub resets_to_guest: u64,
    /// Guest segments for no connection (not a SYN) or not acceptable.
    pub dropped_segments: u64,
    /// Guest data beyond the next expected byte (answered by a dup ACK).
    pub out_of_order: u64,
    pub retransmissions: u64,
    /// Challenge ACKs (RFC 5961) and answers to unacceptable segments.
    pub challenge_acks: u64,
    /// Zero-window probes toward the guest.
    pub window_probes: u64,
    /// Guest data refused: neither the socket nor the kept-bytes budget
    /// had room (the guest resends it).
    pub refused_bytes: u64,
}

/// The TCP side of the engine: buffers and settings shared by every
/// connection; the connections themselves are in the flow table.
pub struct TcpFlows {
    isn: IsnSource,
    /// Frame slots for data toward the guest.
    tx: Box<[u8]>,
    /// Where already-sent bytes are peeked when `SO_PEEK_OFF` is missing.
    skip: Option<Box<[u8]>>,
    /// Connections with an ACK due at the end of the batch.
    ack_due: Vec<FlowId>,
    /// In-order guest data of one connection (`staged_for`) gathered over
    /// a batch, written at once (never more than that connection may
    /// keep, so what the socket does not take is kept).
    staged: Vec<u8>,
    staged_for: Option<FlowId>,
    /// Guest data the sockets did not take yet, over all connections.
    kept: KeptBytes,
    /// Connections waiting for the guest link to take frames again.
    blocked: Vec<FlowId>,
    /// RSTs the guest link refused, sent first once it takes frames again.
    refused_resets: Vec<to_guest::ControlFrame>,
    /// Our MSS toward the guest, per family, from the MTU.
    link_mss4: u16,
    link_mss6: u16,
    /// SO_SNDBUF set on host sockets (see [`send_buffer_size`]).
    sndbuf: Option<usize>,
    pub counters: TcpCounters,
}

fn token(id: FlowId) -> Token {
    Token::new(TokenKind::Tcp, id.raw())
}

fn interest(want_out: bool) -> Interest {
    Interest {
        readable: true,
        writable: want_out,
        edge: true,
    }
}

/// Our MSS toward the guest for a link MTU (0: not advertised, use the
/// largest).
fn link_mss(mtu: u32, ip_header: usize) -> u16 {
    let mtu = match mtu {
        0 => MAX_IP_PACKET,
        m => (m as usize).min(MAX_IP_PACKET),
    };
    let max_frame_payload = MAX_FRAME - wire::data_header_len(ip_header == 40);
    (mtu - ip_header - 20).min(max_frame_payload) as u16
}

impl TcpFlows {
    pub fn new(config: &Config) -> TcpFlows {
        let peek_offset = probe_peek_offset() && std::env::var_os(NO_PEEK_OFF_ENV).is_none();
        if !peek_offset {
            log::debug!("TCP: no SO_PEEK_OFF, sent data is skipped on each read");
        }
        TcpFlows::with_peek_offset(config, peek_offset)
    }

    /// TCP flows that skip sent data on each read as on a kernel without
    /// `SO_PEEK_OFF` for TCP, whatever this kernel has (tests, fuzzing).
    pub fn without_peek_offset(config: &Config) -> TcpFlows {
        TcpFlows::with_peek_offset(config, false)
    }

    fn with_peek_offset(config: &Config, peek_offset: bool) -> TcpFlows {
        TcpFlows {
            isn: IsnSource::new(),
            tx: vec![0; TX_SLOTS * TX_SLOT].into_boxed_slice(),
            skip: (!peek_offset).then(|| vec![0; machine::MAX_WINDOW as usize].into_boxed_slice()),
            ack_due: Vec::with_capacity(1024),
            staged: Vec::with_capacity(conn::TAIL_MAX),
            staged_for: None,
            kept: KeptBytes::default(),
            blocked: Vec::new(),
            refused_resets: Vec::new(),
            link_mss4: link_mss(config.mtu, 20),
            link_mss6: link_mss(config.mtu, 40),
            sndbuf: send_buffer_size(),
            counters: TcpCounters::default(),
        }
    }

    fn link_mss(&self, v6: bool) -> u16 {
        if v6 { self.link_mss6 } else { self.link_mss4 }
    }

    /// Whether sent data is skipped on each read (no `SO_PEEK_OFF`).
    pub fn peek_fallback(&self) -> bool {
        self.skip.is_some()
    }

    /// Guest data kept for the sockets, over all connections.
    pub fn kept_bytes(&self) -> usize {
        self.kept.used()
    }

    /// A TCP segment from the guest.
    pub fn from_guest(&mut self, flows: &mut Flows, ctx: &mut Ctx<'_>, seg: &Segment<'_>) {
        let key = FlowSide {
            pif: Pif::Tap,
            our_addr: seg.dst,
            our_port: seg.dst_port,
            end_addr: seg.src,
            end_port: seg.src_port,
        };
        match flows.lookup(Protocol::Tcp, &key) {
            Some((id, Side::Guest)) => self.segment_for(flows, ctx, id, seg),
            Some(_) => self.counters.dropped_segments += 1,
            None => self.open_from_guest(flows, ctx, key, seg),
        }
    }

    /// A guest SYN for a new connection: a host socket connects for it.
    fn open_from_guest(
        &mut self,
        flows: &mut Flows,
        ctx: &mut Ctx<'_>,
        key: FlowSide,
        seg: &Segment<'_>,
    ) {
        let handshake_bits = flags::SYN | flags::ACK | flags::RST | flags::FIN;
        let is_syn = seg.flags & handshake_bits == flags::SYN;
        if !is_syn || !connectable(seg) {
            self.counters.dropped_segments += 1;
            log::trace!("TCP: dropped segment for no connection");
            return;
        }
        let dst = SocketAddr::new(
            nat::host_destination(ctx.config, seg.dst, seg.dst_port),
            seg.dst_port,
        );
        let host = FlowSide {
            pif: Pif::Host,
            our_addr: unspecified_like(dst.ip()),
            our_port: 0,
            end_addr: dst.ip(),
            end_port: dst.port(),
        };
        let ends = guest_endpoints(ctx, &key);
        let vacant = match flows.vacant(Protocol::Tcp, key, host, Indexed::Guest) {
            Ok(v) => v,
            Err(e) => {
                log::debug!("TCP: refusing {} -> {}: {e}", seg.src, seg.dst);
                self.counters.refused_table_full += 1;
                self.reset_unknown(ctx, &ends, seg);
                return;
            }
        };
        let guest_mss = seg.options.mss.unwrap_or(machine::DEFAULT_MSS);
        let socket = match connect_socket(ctx.config, dst, self.sndbuf, guest_mss) {
            Ok(s) => s,
            Err(e) => {
                log::debug!("TCP: connect to {dst}: {e}");
                self.counters.connect_failed += 1;
                self.reset_unknown(ctx, &ends, seg);
                return;
            }
        };
        if let Err(e) = ctx.events.add(&socket, token(vacant.id()), interest(true)) {
            log::debug!("TCP: epoll: {e}");
            self.reset_unknown(ctx, &ends, seg);
            return;
        }
        let isn = self.isn.isn(seg.dst, seg.dst_port, seg.src, seg.src_port);
        let v6 = dst.is_ipv6();
        let input = guest::input_of(seg);
        let core = Core::from_guest_syn(&input, isn, self.link_mss(v6), v6, Instant::now());
        let mut conn = TcpConn::new(socket, core);
        conn.want_out = true;
        self.counters.opened_from_guest += 1;
        log::debug!(
            "TCP: {}:{} -> {}:{} connecting to {dst}",
            seg.src,
            seg.src_port,
            seg.dst,
            seg.dst_port
        );
        vacant.insert(FlowState::Tcp(Box::new(conn)));
    }

    /// The end of every handler of connection `id`: its epoll interest
    /// follows its state, and it closes as `verdict` says, or in order once
    /// both directions are done.
    fn settle(&mut self, flows: &mut Flows, ctx: &mut Ctx<'_>, id: FlowId, verdict: Option<Close>) {
        let Some((_, conn)) = conn_of(flows, ctx, id) else {
            return;
        };
        self.update_interest(ctx, id, conn);
        let verdict = verdict.or_else(|| conn.core.finished().then_some(Close::Done));
        if let Some(how) = verdict {
            self.close(flows, ctx, id, how);
        }
    }

    /// EPOLLOUT while connecting, while bytes are kept, and while the
    /// window offered is closed; a connection the guest link stopped
    /// joins the ones waiting for it.
    fn update_interest(&mut self, ctx: &mut Ctx<'_>, id: FlowId, conn: &mut TcpConn) {
        let waits = conn.link_blocked || conn.ack_refused;
        if waits && !conn.waits_for_link {
            conn.waits_for_link = true;
            self.blocked.push(id);
        }
        let connecting = conn.core.phase() == machine::Phase::Connecting;
        let want_out = connecting || conn.kept() > 0 || conn.core.window_closed();
        if want_out != conn.want_out {
            conn.want_out = want_out;
            if let Err(e) = ctx
                .events
                .modify(&conn.socket, token(id), interest(want_out))
            {
                log::debug!("TCP: epoll: {e}");
            }
        }
    }

    /// Connection `id`'s host socket is ready.
    pub fn on_socket(&mut self, flows: &mut Flows, ctx: &mut Ctx<'_>, id: FlowId, ready: &Ready) {
        let Some((ends, conn)) = conn_of(flows, ctx, id) else {
            return;
        };
        let now = Instant::now();
        conn.core.touch(now);
        let verdict = match conn.core.phase() {
            machine::Phase::Connecting => self.connect_done(ctx, &ends, conn, now),
            _ => self.socket_ready(ctx, &ends, conn, ready),
        };
        self.settle(flows, ctx, id, verdict);
    }

    fn connect_done(
        &mut self,
        ctx: &mut Ctx<'_>,
        ends: &Endpoints,
        conn: &mut TcpConn,
        now: Instant,
    ) -> Option<Close> {
        let failed = match rustix::net::sockopt::socket_error(&conn.socket) {
            Ok(Ok(())) => None,
            Ok(Err(Errno::INPROGRESS | Errno::ALREADY)) => return None,
            Ok(Err(e)) | Err(e) => Some(e),
        };
        if let Some(e) = failed {
            log::debug!("TCP: connect to {}:{}: {e}", ends.src, ends.src_port);
            self.counters.connect_failed += 1;
            let ack = conn.core.rcv_nxt();
            self.send_reset(ctx, ends, 0, ack, flags::RST | flags::ACK);
            return Some(Close::ResetHost);
        }
        if rustix::net::getpeername(&conn.socket).is_err() {
            return None; // still in progress
        }
        conn.core.connected(now);
        if self.skip.is_none() {
            start_peek_offset(&conn.socket);
        }
        self.send_syn(ctx, ends, conn);
        None
    }

    fn socket_ready(
        &mut self,
        ctx: &mut Ctx<'_>,
        ends: &Endpoints,
        conn: &mut TcpConn,
        ready: &Ready,
    ) -> Option<Close> {
        if ready.error {
            let e = rustix::net::sockopt::socket_error(&conn.socket);
            log::debug!("TCP: host socket error: {e:?}");
            return Some(Close::ResetBoth);
        }
        if ready.closed {
            conn.host_rdhup = true;
        }
        if ready.writable {
            if let Err(e) = self.flush_kept(ctx, ends, conn) {
                log::debug!("TCP: write to host socket: {e}");
                return Some(Close::ResetBoth);
            }
        }
        if ready.readable || ready.closed {
            conn.host_pending = true;
            return self.send_data(ctx, ends, conn).err();
        }
        None
    }

    /// EPOLLOUT: writes the kept bytes, finishes a pending shutdown, and
    /// reopens a closed window.
    fn flush_kept(
        &mut self,
        ctx: &mut Ctx<'_>,
        ends: &Endpoints,
        conn: &mut TcpConn,
    ) -> io::Result<()> {
        self.kept.write_tail(conn)?;
        guest::shutdown_when_flushed(conn)?;
        if conn.core.window_closed() && conn.core.phase() == machine::Phase::Established {
            let window = self.window_field(conn);
            if window > 0 {
                self.send_ack_with(ctx, ends, conn, window);
            }
        }
        Ok(())
    }

    /// Connections wait on a forwarded port's listener: each is spliced
    /// (pasta's loopback paths, see [`SplicedConns::open_forwarded`]) or
    /// goes to the guest.
    pub fn on_listener(
        &mut self,
        flows: &mut Flows,
        ctx: &mut Ctx<'_>,
        spliced: &mut SplicedConns,
        listeners: &Listeners,
        index: u32,
    ) {
        for _ in 0..ACCEPT_BURST {
            let Some(accepted) = listeners.accept(index, ctx.events) else {
                return;
            };
            if let Some(accepted) =
                spliced.open_forwarded(flows, ctx, listeners.forward(), accepted)
            {
                self.open_from_host(flows, ctx, accepted);
            }
        }
    }

    /// A connection accepted on the host: our SYN goes to the guest.
    fn open_from_host(&mut self, flows: &mut Flows, ctx: &mut Ctx<'_>, acc: Accepted) {
        let peer = SocketAddr::new(acc.peer.ip().to_canonical(), acc.peer.port());
        let guest_addr = ctx.guest_addrs.like(peer.ip());
        let source = nat::guest_source(ctx.config, peer.ip());
        let (Some(guest_addr), Some(source)) = (guest_addr, source) else {
            log::debug!("TCP: no guest address to forward {peer} to");
            reset_socket(&acc.socket);
            return;
        };
        let guest = FlowSide {
            pif: Pif::Tap,
            our_addr: source,
            our_port: peer.port(),
            end_addr: guest_addr,
            end_port: acc.guest_port,
        };
        let host = FlowSide {
            pif: Pif::Host,
            our_addr: acc.local.ip(),
            our_port: acc.local.port(),
            end_addr: peer.ip(),
            end_port: peer.port(),
        };
        let ends = guest_endpoints(ctx, &guest);
        let vacant = match flows.vacant(Protocol::Tcp, guest, host, Indexed::Guest) {
            Ok(v) => v,
            Err(e) => {
                log::debug!("TCP: refusing connection from {peer}: {e}");
                self.counters.refused_table_full += 1;
                reset_socket(&acc.socket);
                return;
            }
        };
        if let Err(e) = ctx
            .events
            .add(&acc.socket, token(vacant.id()), interest(false))
        {
            log::debug!("TCP: epoll: {e}");
            reset_socket(&acc.socket);
            return;
        }
        tune_socket(&acc.socket, self.sndbuf);
        if self.skip.is_none() {
            start_peek_offset(&acc.socket);
        }
        let isn = self
            .isn
            .isn(source, peer.port(), guest_addr, acc.guest_port);
        let mut conn = TcpConn::new(acc.socket, Core::from_host(isn, Instant::now()));
        conn.host_pending = true;
        self.send_syn(ctx, &ends, &mut conn);
        self.counters.opened_from_host += 1;
        log::debug!(
            "TCP: {peer} -> {}:{} forwarded to {guest_addr}:{}",
            acc.local.ip(),
            acc.local.port(),
            acc.guest_port
        );
        vacant.insert(FlowState::Tcp(Box::new(conn)));
    }

    /// The periodic tick: the timers of every connection.
    pub fn on_tick(&mut self, flows: &mut Flows, ctx: &mut Ctx<'_>, now: Instant) {
        let mut due = Vec::new();
        for (id, flow) in flows.iter() {
            let FlowState::Tcp(conn) = &flow.state else {
                continue;
            };
            if let Some(timer) = conn.core.timer_due(now) {
                due.push((id, timer));
            }
        }
        for (id, timer) in due {
            self.timer_fired(flows, ctx, id, timer, now);
        }
    }

    fn timer_fired(
        &mut self,
        flows: &mut Flows,
        ctx: &mut Ctx<'_>,
        id: FlowId,
        timer: Timer,
        now: Instant,
    ) {
        let Some((ends, conn)) = conn_of(flows, ctx, id) else {
            return;
        };
        let verdict = match timer {
            Timer::Expired(what) => {
                log::debug!(
                    "TCP: {what} timeout, resetting {}:{}",
                    ends.dst,
                    ends.dst_port
                );
                Some(Close::ResetBoth)
            }
            Timer::Retransmit => {
                self.counters.retransmissions += 1;
                conn.core.on_retransmit(now);
                self.rewind_peek(conn);
                if conn.core.syn_unacked() {
                    self.send_syn(ctx, &ends, conn);
                    None
                } else {
                    let verdict = self.send_data(ctx, &ends, conn).err();
                    if verdict.is_none() && conn.core.send_room() == 0 {
                        // Nothing fits the guest's window: ask for it.
                        self.send_window_probe(ctx, &ends, conn);
                    }
                    verdict
                }
            }
            Timer::Persist => {
                self.counters.window_probes += 1;
                conn.core.on_persist(now);
                self.send_window_probe(ctx, &ends, conn);
                None
            }
        };
        self.settle(flows, ctx, id, verdict);
    }

    /// Removes connection `id`: RST to the guest and/or the host side as
    /// `how` says.
    fn close(&mut self, flows: &mut Flows, ctx: &mut Ctx<'_>, id: FlowId, how: Close) {
        let Some(flow) = flows.remove(id) else {
            return;
        };
        if self.staged_for == Some(id) {
            self.staged.clear();
            self.staged_for = None;
        }
        let guest = *flow.side(Side::Guest);
        let FlowState::Tcp(mut conn) = flow.state else {
            return;
        };
        self.kept.release(&mut conn);
        let _ = ctx.events.delete(&conn.socket);
        let ends = guest_endpoints(ctx, &guest);
        if how == Close::Done && conn.ack_queued {
            // The guest's FIN that completed the close is acknowledged
            // before the connection goes (else the guest resends it to a
            // connection that is gone).
            self.send_ack(ctx, &ends, &mut conn);
        }
        if how == Close::ResetBoth {
            let (seq, ack) = (conn.core.snd_nxt(), conn.core.rcv_nxt());
            self.send_reset(ctx, &ends, seq, ack, flags::RST | flags::ACK);
        }
        if how != Close::Done {
            reset_socket(&conn.socket);
        }
        log::debug!(
            "TCP: {}:{} <-> {}:{} closed ({how:?})",
            guest.end_addr,
            guest.end_port,
            guest.our_addr,
            guest.our_port
        );
    }
}

/// The guest may open connections to unicast destinations only, from
/// non-zero ports.
fn connectable(seg: &Segment<'_>) -> bool {
    let unicast = match seg.dst {
        IpAddr::V4(a) => !(a.is_unspecified() || a.is_broadcast() || a.is_multicast()),
        IpAddr::V6(a) => !(a.is_unspecified() || a.is_multicast()),
    };
    unicast && seg.src_port != 0 && seg.dst_port != 0
}

/// A socket closed with SO_LINGER 0 sends RST instead of FIN.
fn reset_socket(socket: &OwnedFd) {
    let _ = rustix::net::sockopt::set_socket_linger(socket, Some(Duration::ZERO));
}

/// Frames toward the guest for the connection whose guest side is `side`.
fn guest_endpoints(ctx: &Ctx<'_>, side: &FlowSide) -> Endpoints {
    Endpoints {
        our_mac: ctx.our_mac,
        guest_mac: ctx.guest_mac,
        src: side.our_addr,
        dst: side.end_addr,
        src_port: side.our_port,
        dst_port: side.end_port,
    }
}

/// The guest-facing endpoints and state of TCP connection `id`.
fn conn_of<'f>(
    flows: &'f mut Flows,
    ctx: &Ctx<'_>,
    id: FlowId,
) -> Option<(Endpoints, &'f mut TcpConn)> {
    let flow = flows.get_mut(id)?;
    let ends = guest_endpoints(ctx, flow.side(Side::Guest));
    match &mut flow.state {
        FlowState::Tcp(conn) => Some((ends, conn)),
        _ => None,
    }
}

/// A non-blocking socket connecting to `dst`, bound to the `-o` address
/// and the `--outbound-if4/6` interface if given, announcing the guest's
/// MSS to the far end (MSS clamping: the far end sends segments the guest
/// could have taken).
fn connect_socket(
    config: &Config,
    dst: SocketAddr,
    sndbuf: Option<usize>,
    guest_mss: u16,
) -> io::Result<OwnedFd> {
    let socket = super::new_socket(super::family_of(dst), SocketType::STREAM)?;
    super::bind_outbound(config, &socket, dst.is_ipv6(), 0)?;
    tune_socket(&socket, sndbuf);
    if let Err(e) = sock::set_tcp_maxseg(&socket, guest_mss.clamp(machine::MIN_MSS4, MAX_MSS)) {
        log::debug!("TCP: TCP_MAXSEG: {e}");
    }
    match rustix::net::connect(&socket, &dst) {
        Ok(()) | Err(Errno::INPROGRESS) => Ok(socket),
        Err(e) => Err(e.into()),
    }
}

/// The send buffer to set on host sockets: as large as the system allows
/// (`net.core.wmem_max`, at most 8 MiB), so the window offered to the
/// guest (the free room in it) is not held small by a buffer that only
/// grows once the connection is congestion-window limited. With a small
/// `wmem_max` (under 1 MiB, the usual distribution default) the kernel's
/// autotuning is left alone, as it would give more on long paths.
fn send_buffer_size() -> Option<usize> {
    let max: usize = match std::env::var(WMEM_MAX_ENV) {
        Ok(value) => value.trim().parse().ok()?,
        Err(_) => std::fs::read_to_string("/proc/sys/net/core/wmem_max")
            .ok()?
            .trim()
            .parse()
            .ok()?,
    };
    (max >= 1 << 20).then_some(max.min(8 << 20))
}

/// Host socket options shared by both directions: the send buffer and
/// `TCP_NODELAY` (what the guest sent was acknowledged already: holding it
/// back for Nagle's algorithm only adds latency).
fn tune_socket(socket: &OwnedFd, sndbuf: Option<usize>) {
    if let Err(e) = rustix::net::sockopt::set_tcp_nodelay(socket, true) {
        log::debug!("TCP: TCP_NODELAY: {e}");
    }
    if let Some(size) = sndbuf {
        if let Err(e) = rustix::net::sockopt::set_socket_send_buffer_size(socket, size) {
            log::debug!("TCP: SO_SNDBUF: {e}");
        }
    }
}

/// Starts the peek offset of a connected socket at 0 (`SO_PEEK_OFF`).
fn start_peek_offset(socket: &OwnedFd) {
    if let Err(e) = sock::set_peek_offset(socket, 0) {
        log::debug!("TCP: SO_PEEK_OFF: {e}");
    }
}

/// Whether this kernel keeps a peek offset on TCP sockets (Linux 6.9+).
fn probe_peek_offset() -> bool {
    let probe = rustix::net::socket_with(
        AddressFamily::INET,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    );
    probe.is_ok_and(|s| sock::set_peek_offset(&s, 0).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_link_mss_follows_the_mtu() {
        assert_eq!(link_mss(1500, 20), 1460);
        assert_eq!(link_mss(1500, 40), 1440);
        assert_eq!(link_mss(65520, 20), 65480);
        assert_eq!(
            link_mss(0, 40),
            (MAX_FRAME - 74) as u16,
            "bounded by the frame"
        );
    }
}

#[cfg(test)]
mod socket_tests;
