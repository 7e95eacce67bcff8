//! TCP translation without a TCP stack (DESIGN.md §1, REFERENCE.md §2.5):
//! each guest connection is one host `SOCK_STREAM` socket, and the two
//! kernels do segmentation, retransmission to the far end and congestion
//! control.
//!
//! Toward the guest, the host socket's receive queue is the retransmission
//! buffer: data is read with `MSG_PEEK` (`SO_PEEK_OFF` keeps the offset of
//! what was sent; without it the sent part is skipped into a discard
//! buffer), cut to the guest's MSS, limited by its window, and dropped from
//! the queue only when the guest acknowledges it. Three duplicate ACKs or
//! the 2 s ACK timer rewind and resend.
//!
//! From the guest, in-order data is written to the socket at once and
//! acknowledged when written (DESIGN §1 rule 1, "ACK on write"); the window
//! offered is the free room of the socket's send buffer (`SO_MEMINFO`),
//! never the far end's window. A short write keeps the rest in a bounded
//! tail (rule 2) flushed on EPOLLOUT; a window below one MSS is offered as
//! zero and reopened by an update as soon as the socket drains (rule 3);
//! out-of-order data is answered with an immediate duplicate ACK (rule 4);
//! ACKs go out at the end of each batch of guest frames (rule 5).
//!
//! Invariants: every connection lives in the shared flow table (capacity
//! bounds them; a SYN beyond it gets RST and is counted); nothing from the
//! guest allocates beyond a connection's bounded tail; a segment for an
//! unknown connection is dropped (a SYN opens one); timers run on the
//! engine's 1 s tick: SYN 10 s, ACK 2 s (7 retries), FIN 60 s, idle 2 h.
//! May call: `sys` (socket options), rustix (sockets), `wire::tcp`,
//! `event`, `conf`, `flow::nat`, `flow::listen`.

mod conn;
mod isn;
pub mod splice;

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use rustix::io::Errno;
use rustix::net::{AddressFamily, SendFlags, Shutdown, SocketFlags, SocketType};

pub use self::conn::TcpConn;
use self::conn::{MAX_WINDOW, MAX_WINDOW_SCALE, OUR_WINDOW_SCALE, Phase, TAIL_MAX};
use self::isn::IsnSource;
use self::splice::SplicedConns;
use super::Ctx;
use super::listen::{Accepted, Listeners};
use super::table::{FlowId, FlowSide, Indexed, Pif, Protocol, Side};
use super::{FlowState, Flows, nat, unspecified_like};
use crate::conf::Config;
use crate::event::{Interest, Ready, Token, TokenKind};
use crate::link::{Gso, Offload, PartialChecksum};
use crate::sys::socket::{self as sock, SegmentLayout};
use crate::wire::tcp::{self as wire, Control, Endpoints, Segment, TcpOptions, flags};

/// SYN (either way) unanswered for this long: reset.
pub const SYN_TIMEOUT: Duration = Duration::from_secs(10);
/// Data to the guest unacknowledged for this long: resend.
pub const ACK_TIMEOUT: Duration = Duration::from_secs(2);
/// Resends on the ACK timer before giving up.
pub const MAX_RETRIES: u8 = 7;
/// A closing connection idle for this long: reset.
pub const FIN_TIMEOUT: Duration = Duration::from_secs(60);
/// Any connection idle for this long: reset.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(7200);

/// Frames built per socket read (upstream: 128).
const TX_SLOTS: usize = 128;
/// Bytes per frame slot: room for the largest frame.
const TX_SLOT: usize = 65536;
/// The largest frame.
const MAX_FRAME: usize = crate::link::MAX_FRAME;
/// Largest IP packet, the bound of our MSS whatever the MTU.
const MAX_IP_PACKET: usize = 65535;
/// Bounds of the MSS set on host sockets (the kernel refuses values above
/// 32767, its largest unscaled window).
const MIN_MSS: u16 = 536;
const MAX_MSS: u16 = 32767;
/// The send buffer is accounted with per-buffer overhead (`truesize`): at
/// most 1/this of its free room is offered as payload room.
const SEND_BUFFER_OVERHEAD: usize = 2;
/// Connections accepted per listener wake-up (the listener is
/// level-triggered: the rest come on the next one).
const ACCEPT_BURST: usize = 64;
/// RSTs toward the guest kept while its link refuses frames, at most.
const KEPT_RESETS: usize = 256;
/// Room for a control segment toward the guest (IPv6 + the longest
/// option block).
const CONTROL_FRAME_MAX: usize = 128;

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
    /// Guest data refused: neither the socket nor the tail had room (the
    /// guest resends it; should stay 0).
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
    /// a batch, written at once (at most [`TAIL_MAX`] bytes).
    staged: Vec<u8>,
    staged_for: Option<FlowId>,
    /// Connections waiting for the guest link to take frames again.
    blocked: Vec<FlowId>,
    /// RSTs the guest link refused, sent first once it takes frames again
    /// (a lost RST leaves the guest's connection to its timeouts); at most
    /// [`KEPT_RESETS`], the rest are dropped.
    refused_resets: Vec<([u8; CONTROL_FRAME_MAX], usize)>,
    /// Our MSS toward the guest, per family, from the MTU.
    link_mss4: u16,
    link_mss6: u16,
    /// SO_SNDBUF set on host sockets (see [`send_buffer_size`]).
    sndbuf: Option<usize>,
    pub counters: TcpCounters,
}

/// How a connection ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Close {
    /// Both sides closed in order.
    Done,
    /// Reset the host side (the guest reset, or gave up).
    ResetHost,
    /// Reset both sides.
    ResetBoth,
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

fn would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
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
        let peek_offset = probe_peek_offset();
        if !peek_offset {
            log::debug!("TCP: no SO_PEEK_OFF, sent data is skipped on each read");
        }
        TcpFlows {
            isn: IsnSource::new(),
            tx: vec![0; TX_SLOTS * TX_SLOT].into_boxed_slice(),
            skip: (!peek_offset).then(|| vec![0; MAX_WINDOW as usize].into_boxed_slice()),
            ack_due: Vec::with_capacity(1024),
            staged: Vec::with_capacity(TAIL_MAX),
            staged_for: None,
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
        let guest_mss = seg.options.mss.unwrap_or(conn::DEFAULT_MSS);
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
        let mut conn = TcpConn::new(socket, Phase::Connecting, isn, Instant::now());
        conn.want_out = true;
        conn.seq_from_guest = seg.seq.wrapping_add(1);
        self.take_guest_syn_options(&mut conn, seg, dst.is_ipv6());
        conn.guest_window = u32::from(seg.window);
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

    /// MSS and window scaling from the guest's SYN (or SYN-ACK): scaling is
    /// used only if both sides offer it.
    fn take_guest_syn_options(&self, conn: &mut TcpConn, seg: &Segment<'_>, v6: bool) {
        let mss = seg.options.mss.unwrap_or(conn::DEFAULT_MSS).max(1);
        conn.mss = mss.min(self.link_mss(v6));
        match seg.options.window_scale {
            Some(ws) => {
                conn.guest_scale = ws.min(MAX_WINDOW_SCALE);
                conn.our_scale = OUR_WINDOW_SCALE;
            }
            None => {
                conn.guest_scale = 0;
                conn.our_scale = 0;
            }
        }
    }

    /// RST for a guest segment that has no connection (refused, failed).
    fn reset_unknown(&mut self, ctx: &mut Ctx<'_>, ends: &Endpoints, seg: &Segment<'_>) {
        let syn_fin = u32::from(seg.has(flags::SYN)) + u32::from(seg.has(flags::FIN));
        let ack = seg
            .seq
            .wrapping_add(seg.payload.len() as u32)
            .wrapping_add(syn_fin);
        let (seq, flag_bits) = match seg.has(flags::ACK) {
            true => (seg.ack, flags::RST),
            false => (0, flags::RST | flags::ACK),
        };
        let ctl = Control {
            seq,
            ack,
            flags: flag_bits,
            window: 0,
        };
        self.send_reset(ctx, ends, &ctl);
    }

    /// Sends an RST to the guest; if the link refuses it, keeps it for
    /// [`TcpFlows::resume_blocked`].
    fn send_reset(&mut self, ctx: &mut Ctx<'_>, ends: &Endpoints, ctl: &Control) {
        self.counters.resets_to_guest += 1;
        let mut frame = [0u8; CONTROL_FRAME_MAX];
        let Some(len) = wire::build_control(ends, ctl, &TcpOptions::default(), &mut frame) else {
            return;
        };
        if !ctx.link.send_frame(&frame[..len]) && self.refused_resets.len() < KEPT_RESETS {
            self.refused_resets.push((frame, len));
        }
    }

    /// A guest segment for connection `id`.
    fn segment_for(&mut self, flows: &mut Flows, ctx: &mut Ctx<'_>, id: FlowId, seg: &Segment<'_>) {
        if self.staged_for.is_some_and(|staged| staged != id) {
            self.flush_staged(flows, ctx);
        }
        let Some((ends, conn)) = conn_of(flows, ctx, id) else {
            return;
        };
        let now = Instant::now();
        conn.last_active = now;
        let verdict = self.guest_segment(ctx, id, &ends, conn, seg, now);
        self.settle(flows, ctx, id, verdict);
    }

    /// The end of every handler of connection `id`: its epoll interest
    /// follows its state, and it closes as `verdict` says, or in order once
    /// both directions are done.
    fn settle(&mut self, flows: &mut Flows, ctx: &mut Ctx<'_>, id: FlowId, verdict: Option<Close>) {
        let Some((_, conn)) = conn_of(flows, ctx, id) else {
            return;
        };
        self.update_interest(ctx, id, conn);
        let verdict = verdict.or_else(|| conn.finished().then_some(Close::Done));
        if let Some(how) = verdict {
            self.close(flows, ctx, id, how);
        }
    }

    fn guest_segment(
        &mut self,
        ctx: &mut Ctx<'_>,
        id: FlowId,
        ends: &Endpoints,
        conn: &mut TcpConn,
        seg: &Segment<'_>,
        now: Instant,
    ) -> Option<Close> {
        if seg.has(flags::RST) {
            return acceptable_reset(conn, seg).then_some(Close::ResetHost);
        }
        match conn.phase {
            Phase::Connecting => return None,
            Phase::SynSent => return self.guest_syn_ack(ctx, ends, conn, seg),
            Phase::Established => {}
        }
        if seg.has(flags::SYN) {
            if conn.syn_unacked && !seg.has(flags::ACK) {
                self.send_syn(ctx, ends, conn);
            }
            return None;
        }
        if !seg.has(flags::ACK) {
            self.counters.dropped_segments += 1;
            return None;
        }
        let pure_ack = seg.payload.is_empty() && !seg.has(flags::FIN);
        let outcome = conn.on_guest_ack(seg.ack, seg.window, pure_ack, now);
        if outcome.discard > 0 {
            if let Err(e) = sock::discard(&conn.socket, outcome.discard as usize) {
                log::debug!("TCP: discarding acknowledged data: {e}");
                return Some(Close::ResetBoth);
            }
        }
        if outcome.rewind {
            self.counters.retransmissions += 1;
            self.rewind(conn);
        }
        if conn.syn_unacked && !pure_ack {
            // Data before the guest acknowledged our SYN-ACK: it cannot
            // know our sequence numbers (RFC 9293 3.10.7.4): not taken.
            self.counters.dropped_segments += 1;
            return None;
        }
        if !pure_ack {
            if let Err(e) = self.guest_data(ctx, id, ends, conn, seg) {
                log::debug!("TCP: write to host socket: {e}");
                return Some(Close::ResetBoth);
            }
        }
        if conn.host_pending || outcome.rewind {
            return self.send_data(ctx, ends, conn).err();
        }
        None
    }

    /// The guest answers our SYN (a connection accepted on the host).
    fn guest_syn_ack(
        &mut self,
        ctx: &mut Ctx<'_>,
        ends: &Endpoints,
        conn: &mut TcpConn,
        seg: &Segment<'_>,
    ) -> Option<Close> {
        let expected = conn.isn.wrapping_add(1);
        if !(seg.has(flags::SYN) && seg.has(flags::ACK)) || seg.ack != expected {
            self.counters.dropped_segments += 1;
            return None;
        }
        conn.seq_from_guest = seg.seq.wrapping_add(1);
        self.take_guest_syn_options(conn, seg, ends.dst.is_ipv6());
        conn.syn_unacked = false;
        conn.seq_acked = expected;
        conn.guest_window = u32::from(seg.window);
        conn.phase = Phase::Established;
        conn.last_progress = Instant::now();
        self.send_ack(ctx, ends, conn);
        self.send_data(ctx, ends, conn).err()
    }

    /// Payload and FIN of a guest segment: written to the socket in order.
    fn guest_data(
        &mut self,
        ctx: &mut Ctx<'_>,
        id: FlowId,
        ends: &Endpoints,
        conn: &mut TcpConn,
        seg: &Segment<'_>,
    ) -> io::Result<()> {
        let expected = conn.seq_from_guest;
        if conn::seq_after(seg.seq, expected) {
            self.counters.out_of_order += 1;
            send_duplicate_ack(ctx, ends, conn);
            return Ok(());
        }
        let seen = expected.wrapping_sub(seg.seq) as usize;
        let new = seg.payload.get(seen..).unwrap_or(&[]);
        let accepted = if conn.guest_fin {
            0
        } else {
            self.take_data(id, conn, new)?
        };
        if accepted < new.len() {
            self.counters.refused_bytes += (new.len() - accepted) as u64;
            log::debug!(
                "TCP: no room for {} bytes of guest data",
                new.len() - accepted
            );
            conn.seq_from_guest = expected.wrapping_add(accepted as u32);
            send_duplicate_ack(ctx, ends, conn);
            return Ok(());
        }
        conn.seq_from_guest = expected.wrapping_add(accepted as u32);
        let fin_now = accepted == new.len() && seg.has(flags::FIN) && !conn.guest_fin;
        let fin_is_next = seen <= seg.payload.len();
        if fin_now && fin_is_next {
            conn.seq_from_guest = conn.seq_from_guest.wrapping_add(1);
            conn.guest_fin = true;
            self.write_staged(conn)?;
            shutdown_when_flushed(conn)?;
        }
        self.queue_ack(id, conn);
        Ok(())
    }

    /// Takes in-order guest data: staged while the batch lasts, so that
    /// consecutive segments of one connection go out in one write (the
    /// tail is empty whenever data is staged, so what the socket does not
    /// take fits in it). Returns the bytes accepted.
    fn take_data(&mut self, id: FlowId, conn: &mut TcpConn, data: &[u8]) -> io::Result<usize> {
        if self.staged.len() + data.len() > TAIL_MAX {
            self.write_staged(conn)?;
        }
        if !conn.tail.is_empty() || data.len() > TAIL_MAX {
            return write_or_keep(conn, data);
        }
        self.staged.extend_from_slice(data);
        self.staged_for = Some(id);
        Ok(data.len())
    }

    /// Writes the staged data of `conn` (the connection it belongs to);
    /// what the socket does not take goes to the tail.
    fn write_staged(&mut self, conn: &mut TcpConn) -> io::Result<()> {
        self.staged_for = None;
        if self.staged.is_empty() {
            return Ok(());
        }
        let written = match send(&conn.socket, &self.staged) {
            Ok(n) => n,
            Err(e) if would_block(&e) => 0,
            Err(e) => {
                self.staged.clear();
                return Err(e);
            }
        };
        let rest = &self.staged[written..];
        if !rest.is_empty() && conn.tail.capacity() == 0 {
            conn.tail.reserve_exact(TAIL_MAX);
        }
        conn.tail.extend_from_slice(rest);
        self.staged.clear();
        Ok(())
    }

    /// Writes the staged data to its connection's socket (end of a batch,
    /// or another connection's segment is next).
    fn flush_staged(&mut self, flows: &mut Flows, ctx: &mut Ctx<'_>) {
        let Some(id) = self.staged_for else {
            return;
        };
        let Some((_, conn)) = conn_of(flows, ctx, id) else {
            self.staged.clear();
            self.staged_for = None;
            return;
        };
        let result = self
            .write_staged(conn)
            .and_then(|()| shutdown_when_flushed(conn));
        let verdict = result.err().map(|e| {
            log::debug!("TCP: write to host socket: {e}");
            Close::ResetBoth
        });
        self.settle(flows, ctx, id, verdict);
    }

    fn queue_ack(&mut self, id: FlowId, conn: &mut TcpConn) {
        if !conn.ack_queued {
            conn.ack_queued = true;
            self.ack_due.push(id);
        }
    }

    /// Writes the staged guest data, then sends the ACKs due after a batch
    /// of guest frames.
    pub fn flush_acks(&mut self, flows: &mut Flows, ctx: &mut Ctx<'_>) {
        self.flush_staged(flows, ctx);
        let mut due = std::mem::take(&mut self.ack_due);
        for &id in &due {
            if let Some((ends, conn)) = conn_of(flows, ctx, id) {
                conn.ack_queued = false;
                self.send_ack(ctx, &ends, conn);
                self.update_interest(ctx, id, conn);
            }
        }
        due.clear();
        self.ack_due = due;
    }

    /// The window field to offer: the room in the socket's send buffer
    /// plus the room left in the connection's tail (rule 1: never more than
    /// we can take). Small windows are not offered (receiver-side silly window
    /// avoidance, RFC 1122 4.2.3.3): below one MSS or half the buffer,
    /// whichever is less, the window is zero, and an update follows when
    /// the socket drains (rule 3).
    fn window_field(&self, conn: &mut TcpConn) -> u16 {
        let buffer = sock::send_buffer_use(&conn.socket)
            .unwrap_or(sock::SendBufferUse { size: 0, queued: 0 });
        let tail_room = TAIL_MAX.saturating_sub(conn.tail.len() + self.staged.len());
        let payload_room = buffer.free() as usize / SEND_BUFFER_OVERHEAD;
        let room = (payload_room + tail_room).min(MAX_WINDOW as usize);
        let smallest = usize::from(conn.mss).min(buffer.size as usize / 2).max(1);
        if conn.guest_fin || room < smallest {
            conn.window_closed = !conn.guest_fin;
            return 0;
        }
        conn.window_closed = false;
        (room >> conn.our_scale).min(usize::from(u16::MAX)) as u16
    }

    fn send_ack(&mut self, ctx: &mut Ctx<'_>, ends: &Endpoints, conn: &mut TcpConn) {
        let window = self.window_field(conn);
        let ctl = Control {
            seq: conn.seq_to_guest,
            ack: conn.seq_from_guest,
            flags: flags::ACK,
            window,
        };
        conn.ack_sent = ctl.ack;
        conn.window_sent = window;
        send_control(ctx, ends, &ctl, &TcpOptions::default());
    }

    /// Our SYN (inbound) or SYN-ACK (outbound), at sequence `isn`.
    fn send_syn(&mut self, ctx: &mut Ctx<'_>, ends: &Endpoints, conn: &mut TcpConn) {
        let (flag_bits, ack) = match conn.phase {
            Phase::SynSent => (flags::SYN, 0),
            _ => (flags::SYN | flags::ACK, conn.seq_from_guest),
        };
        let free = sock::send_buffer_use(&conn.socket).map_or(0, |u| u.free());
        let options = TcpOptions {
            mss: Some(self.link_mss(ends.dst.is_ipv6())),
            window_scale: (conn.our_scale > 0 || conn.phase == Phase::SynSent)
                .then_some(OUR_WINDOW_SCALE),
            sack_permitted: false,
        };
        let ctl = Control {
            seq: conn.isn,
            ack,
            flags: flag_bits,
            window: free.clamp(14600, u32::from(u16::MAX)) as u16,
        };
        conn.ack_sent = ack;
        send_control(ctx, ends, &ctl, &options);
    }

    /// Sends what the socket holds beyond what is in flight, as far as the
    /// guest's window allows; the end of the stream becomes our FIN.
    fn send_data(
        &mut self,
        ctx: &mut Ctx<'_>,
        ends: &Endpoints,
        conn: &mut TcpConn,
    ) -> Result<(), Close> {
        if conn.phase != Phase::Established || conn.syn_unacked || conn.fin_sent {
            return Ok(());
        }
        let offset = wire::data_header_len(ends.dst.is_ipv6());
        let mss = usize::from(conn.mss).min(MAX_FRAME - offset);
        let frame_payload = match ctx.link.offloads() {
            true => (MAX_FRAME - offset) / mss * mss,
            false => mss,
        };
        let mut window = None;
        loop {
            let room = conn.send_room() as usize;
            if room == 0 {
                conn.host_pending = true;
                return Ok(());
            }
            let layout = SegmentLayout {
                stride: TX_SLOT,
                offset,
                len: frame_payload,
                total: room.min(TX_SLOTS * frame_payload),
            };
            let skip_len = conn.data_in_flight() as usize;
            let skip = match &mut self.skip {
                Some(buf) => buf.get_mut(..skip_len).unwrap_or_default(),
                None => &mut [][..],
            };
            let n = match sock::peek_segments(&conn.socket, skip, &mut self.tx, layout) {
                Ok(n) => n,
                Err(e) if would_block(&e) => {
                    conn.host_pending = false;
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::debug!("TCP: read from host socket: {e}");
                    return Err(Close::ResetBoth);
                }
            };
            if n == 0 {
                conn.host_pending = false;
                self.send_fin(ctx, ends, conn);
                return Ok(());
            }
            let window = *window.get_or_insert_with(|| self.window_field(conn));
            if !self.emit_segments(ctx, ends, conn, layout, n, window) {
                self.link_blocked(conn);
                return Ok(());
            }
            if n < layout.total && !conn.host_rdhup {
                conn.host_pending = false;
                return Ok(());
            }
        }
    }

    /// Completes and sends the frames of `n` bytes just peeked into `tx`;
    /// `false` if the link stopped taking them (what was not sent does not
    /// count as sent). On a link with offloads a frame carries up to
    /// 64 KiB for the guest's kernel to take as MSS-sized segments, with a
    /// partial checksum.
    fn emit_segments(
        &mut self,
        ctx: &mut Ctx<'_>,
        ends: &Endpoints,
        conn: &mut TcpConn,
        layout: SegmentLayout,
        n: usize,
        window: u16,
    ) -> bool {
        let read = SegmentLayout { total: n, ..layout };
        let count = read.count();
        let offloads = ctx.link.offloads();
        let mut all_sent = true;
        for i in 0..count {
            let len = read.len_of(i);
            let last = i + 1 == count;
            let ctl = Control {
                seq: conn.seq_to_guest,
                ack: conn.seq_from_guest,
                flags: if last {
                    flags::ACK | flags::PSH
                } else {
                    flags::ACK
                },
                window,
            };
            let slot = &mut self.tx[i * TX_SLOT..(i + 1) * TX_SLOT];
            let sent = if offloads {
                let offload = segment_offload(ends.dst.is_ipv6(), len, conn.mss);
                wire::write_data_headers_partial(ends, &ctl, slot, len)
                    .is_some_and(|frame_len| ctx.link.send_offloaded(&slot[..frame_len], offload))
            } else {
                wire::write_data_headers(ends, &ctl, slot, len)
                    .is_some_and(|frame_len| ctx.link.send_frame(&slot[..frame_len]))
            };
            if !sent {
                all_sent = false;
                break;
            }
            conn.seq_to_guest = conn.seq_to_guest.wrapping_add(len as u32);
        }
        conn.ack_sent = conn.seq_from_guest;
        conn.window_sent = window;
        all_sent
    }

    /// The link took only part of what was peeked: the peek offset goes
    /// back to what was sent, and the connection waits for the link.
    fn link_blocked(&mut self, conn: &mut TcpConn) {
        conn.host_pending = true;
        conn.link_blocked = true;
        if self.skip.is_none() {
            let offset = i32::try_from(conn.data_in_flight()).unwrap_or(i32::MAX);
            if let Err(e) = sock::set_peek_offset(&conn.socket, offset) {
                log::debug!("TCP: SO_PEEK_OFF: {e}");
            }
        }
    }

    /// Connections waiting for the guest link to take frames again.
    pub fn link_waiters(&self) -> bool {
        !self.blocked.is_empty() || !self.refused_resets.is_empty()
    }

    /// The guest link is writable again: the RSTs it refused go first, then
    /// the connections that were waiting for it send, in turn, until the
    /// link is full again.
    pub fn resume_blocked(&mut self, flows: &mut Flows, ctx: &mut Ctx<'_>) {
        let sent = self
            .refused_resets
            .iter()
            .take_while(|(frame, len)| ctx.link.send_frame(&frame[..*len]))
            .count();
        self.refused_resets.drain(..sent);
        if !self.refused_resets.is_empty() {
            return;
        }
        let waiting = std::mem::take(&mut self.blocked);
        let mut rest = waiting.iter();
        for &id in rest.by_ref() {
            if let Some((ends, conn)) = conn_of(flows, ctx, id) {
                conn.link_blocked = false;
                conn.waits_for_link = false;
                let verdict = self.send_data(ctx, &ends, conn).err();
                self.settle(flows, ctx, id, verdict);
            }
            if !self.blocked.is_empty() {
                break;
            }
        }
        self.blocked.extend(rest.copied());
    }

    fn send_fin(&mut self, ctx: &mut Ctx<'_>, ends: &Endpoints, conn: &mut TcpConn) {
        let window = self.window_field(conn);
        let ctl = Control {
            seq: conn.seq_to_guest,
            ack: conn.seq_from_guest,
            flags: flags::FIN | flags::ACK,
            window,
        };
        conn.seq_to_guest = conn.seq_to_guest.wrapping_add(1);
        conn.fin_sent = true;
        conn.ack_sent = ctl.ack;
        send_control(ctx, ends, &ctl, &TcpOptions::default());
    }

    fn rewind(&mut self, conn: &mut TcpConn) {
        conn.rewind();
        if self.skip.is_none() {
            if let Err(e) = sock::set_peek_offset(&conn.socket, 0) {
                log::debug!("TCP: SO_PEEK_OFF: {e}");
            }
        }
    }

    /// EPOLLOUT while connecting, while a tail waits, and while the window
    /// offered is closed; a connection the guest link stopped joins the
    /// ones waiting for it.
    fn update_interest(&mut self, ctx: &mut Ctx<'_>, id: FlowId, conn: &mut TcpConn) {
        if conn.link_blocked && !conn.waits_for_link {
            conn.waits_for_link = true;
            self.blocked.push(id);
        }
        let connecting = conn.phase == Phase::Connecting;
        let want_out = connecting || !conn.tail.is_empty() || conn.window_closed;
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
        conn.last_active = Instant::now();
        let verdict = match conn.phase {
            Phase::Connecting => self.connect_done(ctx, &ends, conn),
            _ => self.socket_ready(ctx, &ends, conn, ready),
        };
        self.settle(flows, ctx, id, verdict);
    }

    fn connect_done(
        &mut self,
        ctx: &mut Ctx<'_>,
        ends: &Endpoints,
        conn: &mut TcpConn,
    ) -> Option<Close> {
        match rustix::net::sockopt::socket_error(&conn.socket) {
            Ok(Ok(())) => {}
            Ok(Err(Errno::INPROGRESS | Errno::ALREADY)) => return None,
            Ok(Err(e)) => return self.connect_failed(ctx, ends, conn, e.into()),
            Err(e) => return self.connect_failed(ctx, ends, conn, e.into()),
        }
        if rustix::net::getpeername(&conn.socket).is_err() {
            return None; // still in progress
        }
        conn.phase = Phase::Established;
        conn.syn_unacked = true;
        conn.seq_to_guest = conn.isn.wrapping_add(1);
        conn.seq_acked = conn.isn;
        conn.last_progress = Instant::now();
        if self.skip.is_none() {
            start_peek_offset(&conn.socket);
        }
        self.send_syn(ctx, ends, conn);
        None
    }

    fn connect_failed(
        &mut self,
        ctx: &mut Ctx<'_>,
        ends: &Endpoints,
        conn: &mut TcpConn,
        e: io::Error,
    ) -> Option<Close> {
        log::debug!("TCP: connect to {}:{}: {e}", ends.src, ends.src_port);
        self.counters.connect_failed += 1;
        let ctl = Control {
            seq: 0,
            ack: conn.seq_from_guest,
            flags: flags::RST | flags::ACK,
            window: 0,
        };
        self.send_reset(ctx, ends, &ctl);
        Some(Close::ResetHost)
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
            if let Err(e) = self.flush_tail(ctx, ends, conn) {
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

    /// EPOLLOUT: writes the kept tail, finishes a pending shutdown, and
    /// reopens a closed window.
    fn flush_tail(
        &mut self,
        ctx: &mut Ctx<'_>,
        ends: &Endpoints,
        conn: &mut TcpConn,
    ) -> io::Result<()> {
        write_tail(conn)?;
        if conn.tail.is_empty() {
            shutdown_when_flushed(conn)?;
        }
        let reopened = conn.window_closed && self.window_field(conn) > 0;
        if reopened && conn.phase == Phase::Established {
            self.send_ack(ctx, ends, conn);
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
        let mut conn = TcpConn::new(acc.socket, Phase::SynSent, isn, Instant::now());
        conn.syn_unacked = true;
        conn.seq_to_guest = isn.wrapping_add(1);
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

    /// The periodic tick: SYN, ACK, FIN and idle timers.
    pub fn on_tick(&mut self, flows: &mut Flows, ctx: &mut Ctx<'_>, now: Instant) {
        let mut due = Vec::new();
        for (id, flow) in flows.iter() {
            let FlowState::Tcp(conn) = &flow.state else {
                continue;
            };
            if let Some(timer) = timer_due(conn, now) {
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
                conn.retries += 1;
                conn.last_progress = now;
                self.counters.retransmissions += 1;
                if conn.syn_unacked {
                    self.send_syn(ctx, &ends, conn);
                    None
                } else {
                    self.rewind(conn);
                    self.send_data(ctx, &ends, conn).err()
                }
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
        let _ = ctx.events.delete(&conn.socket);
        if how == Close::Done && conn.ack_queued {
            // The guest's FIN that completed the close is acknowledged
            // before the connection goes (else the guest resends it to a
            // connection that is gone).
            self.send_ack(ctx, &guest_endpoints(ctx, &guest), &mut conn);
        }
        if how == Close::ResetBoth {
            let ends = guest_endpoints(ctx, &guest);
            let ctl = Control {
                seq: conn.seq_to_guest,
                ack: conn.seq_from_guest,
                flags: flags::RST | flags::ACK,
                window: 0,
            };
            self.send_reset(ctx, &ends, &ctl);
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

/// The offload description of a data frame of `len` payload bytes: a
/// partial checksum, and GSO when it holds more than one `mss` segment.
fn segment_offload(v6: bool, len: usize, mss: u16) -> Offload {
    let header_len = wire::data_header_len(v6) as u16;
    Offload {
        partial_checksum: Some(PartialChecksum {
            start: header_len - 20,
            offset: wire::CHECKSUM_OFFSET,
        }),
        gso: (len > usize::from(mss)).then_some(Gso {
            v6,
            header_len,
            segment_size: mss,
        }),
    }
}

/// A timer that fired for a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Timer {
    /// Reset: the named timer ran out.
    Expired(&'static str),
    /// Resend what is in flight.
    Retransmit,
}

fn timer_due(conn: &TcpConn, now: Instant) -> Option<Timer> {
    let since = |t: Instant| now.saturating_duration_since(t);
    let handshake = conn.phase != Phase::Established || conn.syn_unacked;
    if handshake && since(conn.opened) >= SYN_TIMEOUT {
        return Some(Timer::Expired("SYN"));
    }
    let closing = conn.guest_fin || conn.fin_sent;
    if closing && since(conn.last_active) >= FIN_TIMEOUT {
        return Some(Timer::Expired("FIN"));
    }
    if since(conn.last_active) >= IDLE_TIMEOUT {
        return Some(Timer::Expired("idle"));
    }
    let waiting = conn.in_flight() > 0 && conn.phase != Phase::Connecting;
    if waiting && since(conn.last_progress) >= ACK_TIMEOUT {
        if conn.retries >= MAX_RETRIES {
            return Some(Timer::Expired("ACK"));
        }
        return Some(Timer::Retransmit);
    }
    None
}

/// Once both the guest's FIN arrived and the tail is written: shut the
/// host socket's writing side.
fn shutdown_when_flushed(conn: &mut TcpConn) -> io::Result<()> {
    if conn.guest_fin && conn.tail.is_empty() && !conn.host_shut {
        rustix::net::shutdown(&conn.socket, Shutdown::Write)?;
        conn.host_shut = true;
    }
    Ok(())
}

/// Writes guest data to the socket (after what the tail holds), keeping
/// what it does not take in the bounded tail; returns the bytes accepted
/// (written or kept).
fn write_or_keep(conn: &mut TcpConn, data: &[u8]) -> io::Result<usize> {
    if data.is_empty() {
        return Ok(0);
    }
    write_tail(conn)?;
    let written = match conn.tail.is_empty() {
        true => match send(&conn.socket, data) {
            Ok(n) => n,
            Err(e) if would_block(&e) => 0,
            Err(e) => return Err(e),
        },
        false => 0,
    };
    let rest = &data[written..];
    let keep = rest.len().min(TAIL_MAX - conn.tail.len());
    if keep > 0 && conn.tail.capacity() == 0 {
        conn.tail.reserve_exact(TAIL_MAX);
    }
    conn.tail.extend_from_slice(&rest[..keep]);
    Ok(written + keep)
}

/// Writes as much of the tail as the socket takes now.
fn write_tail(conn: &mut TcpConn) -> io::Result<()> {
    if conn.tail.is_empty() {
        return Ok(());
    }
    let written = match send(&conn.socket, &conn.tail) {
        Ok(n) => n,
        Err(e) if would_block(&e) => 0,
        Err(e) => return Err(e),
    };
    conn.tail.drain(..written);
    Ok(())
}

fn send(socket: &OwnedFd, data: &[u8]) -> io::Result<usize> {
    loop {
        match rustix::net::send(socket, data, SendFlags::DONTWAIT | SendFlags::NOSIGNAL) {
            Err(Errno::INTR) => continue,
            other => return other.map_err(io::Error::from),
        }
    }
}

/// An RST whose sequence number is inside what we expect (RFC 5961's
/// spirit, loosely: within the window we offered).
fn acceptable_reset(conn: &TcpConn, seg: &Segment<'_>) -> bool {
    if conn.phase == Phase::SynSent {
        return seg.has(flags::ACK) && seg.ack == conn.isn.wrapping_add(1);
    }
    let offset = seg.seq.wrapping_sub(conn.seq_from_guest);
    let window = (u32::from(conn.window_sent) << conn.our_scale).max(1);
    offset <= window || seg.seq == conn.seq_from_guest.wrapping_sub(1)
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

/// An ACK that repeats the last acknowledgement and window exactly: a
/// sender counts it as a duplicate only if the window is unchanged, and
/// three of them make it resend at once instead of waiting for its timer
/// (DESIGN §1 rule 4).
fn send_duplicate_ack(ctx: &mut Ctx<'_>, ends: &Endpoints, conn: &mut TcpConn) {
    let ctl = Control {
        seq: conn.seq_to_guest,
        ack: conn.seq_from_guest,
        flags: flags::ACK,
        window: conn.window_sent,
    };
    conn.ack_sent = ctl.ack;
    send_control(ctx, ends, &ctl, &TcpOptions::default());
}

fn send_control(ctx: &mut Ctx<'_>, ends: &Endpoints, ctl: &Control, options: &TcpOptions) {
    let mut frame = [0u8; CONTROL_FRAME_MAX];
    if let Some(len) = wire::build_control(ends, ctl, options, &mut frame) {
        ctx.link.send_frame(&frame[..len]);
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
    if let Err(e) = sock::set_tcp_maxseg(&socket, guest_mss.clamp(MIN_MSS, MAX_MSS)) {
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
/// `wmem_max` (under 1 MiB) the kernel's autotuning is left alone, as it
/// would give more on long paths.
fn send_buffer_size() -> Option<usize> {
    let max: usize = std::fs::read_to_string("/proc/sys/net/core/wmem_max")
        .ok()?
        .trim()
        .parse()
        .ok()?;
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

    fn conn(phase: Phase, now: Instant) -> TcpConn {
        let socket = rustix::io::dup(std::io::stderr()).unwrap();
        TcpConn::new(socket, phase, 1000, now)
    }

    #[test]
    fn tcp_syn_timer_resets_an_unanswered_handshake() {
        let t0 = Instant::now();
        let c = conn(Phase::Connecting, t0);
        assert_eq!(timer_due(&c, t0 + Duration::from_secs(9)), None);
        assert_eq!(timer_due(&c, t0 + SYN_TIMEOUT), Some(Timer::Expired("SYN")));
        let mut c = conn(Phase::SynSent, t0);
        c.seq_to_guest = 1001;
        c.syn_unacked = true;
        assert_eq!(
            timer_due(&c, t0 + ACK_TIMEOUT),
            Some(Timer::Retransmit),
            "SYN resent"
        );
        assert_eq!(timer_due(&c, t0 + SYN_TIMEOUT), Some(Timer::Expired("SYN")));
    }

    #[test]
    fn tcp_ack_timer_resends_then_gives_up() {
        let t0 = Instant::now();
        let mut c = conn(Phase::Established, t0);
        c.seq_acked = 1001;
        c.seq_to_guest = 1001;
        assert_eq!(timer_due(&c, t0 + ACK_TIMEOUT), None, "nothing in flight");
        c.seq_to_guest = 5001;
        assert_eq!(timer_due(&c, t0 + Duration::from_secs(1)), None);
        assert_eq!(timer_due(&c, t0 + ACK_TIMEOUT), Some(Timer::Retransmit));
        c.retries = MAX_RETRIES;
        assert_eq!(timer_due(&c, t0 + ACK_TIMEOUT), Some(Timer::Expired("ACK")));
    }

    #[test]
    fn tcp_fin_and_idle_timers() {
        let t0 = Instant::now();
        let mut c = conn(Phase::Established, t0);
        c.seq_acked = 1001;
        c.seq_to_guest = 1001;
        assert_eq!(timer_due(&c, t0 + FIN_TIMEOUT), None, "open and quiet");
        assert_eq!(
            timer_due(&c, t0 + IDLE_TIMEOUT),
            Some(Timer::Expired("idle"))
        );
        c.guest_fin = true;
        assert_eq!(timer_due(&c, t0 + FIN_TIMEOUT), Some(Timer::Expired("FIN")));
    }

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

    #[test]
    fn tcp_gso_only_for_frames_beyond_one_segment() {
        let one = segment_offload(false, 1460, 1460);
        assert!(one.gso.is_none());
        assert_eq!(one.partial_checksum.unwrap().start, 34);
        let many = segment_offload(true, 14600, 1440);
        let gso = many.gso.unwrap();
        assert_eq!((gso.header_len, gso.segment_size, gso.v6), (74, 1440, true));
    }
}

/// Connections driven through real sockets in a private network namespace
/// (root): the guest side is played by hand-built segments.
#[cfg(test)]
mod socket_tests {
    use super::*;
    use crate::conf::{Mode, fixture};
    use crate::event::EventLoop;
    use crate::flow::testing::{Frames, in_private_netns};
    use std::io::Read;
    use std::net::{TcpListener, TcpStream};

    /// The TCP flows with a guest at its configured address, port 40000,
    /// and a host listener behind the gateway (the host's loopback).
    struct Rig {
        config: Config,
        events: EventLoop,
        flows: Flows,
        tcp: TcpFlows,
        link: Frames,
        listener: TcpListener,
    }

    const GUEST_PORT: u16 = 40000;

    impl Rig {
        fn new() -> Rig {
            let config = fixture::config(Mode::Passt, &[]);
            Rig {
                tcp: TcpFlows::new(&config),
                config,
                events: EventLoop::new().unwrap(),
                flows: Flows::new(16),
                link: Frames::default(),
                listener: TcpListener::bind("127.0.0.1:0").unwrap(),
            }
        }

        fn with_ctx(&mut self, f: impl FnOnce(&mut TcpFlows, &mut Flows, &mut Ctx<'_>)) {
            let Rig {
                config,
                events,
                flows,
                tcp,
                link,
                ..
            } = self;
            let mut ctx = Ctx::standalone(config, events, [2; 6], link);
            f(tcp, flows, &mut ctx);
        }

        /// One guest segment as a batch of its own.
        fn guest(&mut self, flag_bits: u8, seq: u32, ack: u32, payload: &[u8]) {
            let ends = Endpoints {
                our_mac: [2; 6],
                guest_mac: self.config.our_mac,
                src: IpAddr::V4(self.config.ip4.as_ref().unwrap().addr),
                dst: IpAddr::V4(self.config.nat.map_host_loopback4.unwrap()),
                src_port: GUEST_PORT,
                dst_port: self.listener.local_addr().unwrap().port(),
            };
            let ctl = Control {
                seq,
                ack,
                flags: flag_bits,
                window: 65535,
            };
            let mut frame = vec![0; 2048];
            let start = wire::data_header_len(false);
            frame[start..start + payload.len()].copy_from_slice(payload);
            let len = wire::write_data_headers(&ends, &ctl, &mut frame, payload.len()).unwrap();
            let seg = wire::parse_segment(&frame[..len]).unwrap();
            self.with_ctx(|tcp, flows, ctx| {
                tcp.from_guest(flows, ctx, &seg);
                tcp.flush_acks(flows, ctx);
            });
        }

        /// Handles the ready sockets until none is.
        fn events(&mut self) {
            let mut ready = Vec::new();
            for _ in 0..16 {
                std::thread::sleep(Duration::from_millis(10));
                self.events.poll(&mut ready).unwrap();
                if ready.is_empty() {
                    return;
                }
                for r in &ready {
                    let id = FlowId::from_raw(r.token.index);
                    self.with_ctx(|tcp, flows, ctx| tcp.on_socket(flows, ctx, id, r));
                }
            }
        }

        /// The segments sent to the guest since the last call.
        fn sent(&mut self) -> Vec<(u8, u32, u32)> {
            let frames = std::mem::take(&mut self.link.sent);
            let segs = frames.iter().map(|f| wire::parse_segment(f).unwrap());
            segs.map(|s| (s.flags, s.seq, s.ack)).collect()
        }

        /// Handshake from the guest (ISN `g_isn`); returns our ISN and the
        /// host's end of the connection.
        fn connect(&mut self, g_isn: u32) -> (u32, TcpStream) {
            self.guest(flags::SYN, g_isn, 0, &[]);
            self.events();
            let sent = self.sent();
            assert_eq!(sent.len(), 1);
            let (flag_bits, isn, ack) = sent[0];
            assert_eq!((flag_bits, ack), (flags::SYN | flags::ACK, g_isn + 1));
            self.guest(flags::ACK, g_isn + 1, isn.wrapping_add(1), &[]);
            let (host, _) = self.listener.accept().unwrap();
            (isn, host)
        }
    }

    /// The usual close when the host side closes first: our FIN, then the
    /// guest's FIN (with the ACK of ours). The guest's FIN must be
    /// acknowledged, or the guest stays in LAST-ACK resending it to a
    /// connection that is gone.
    /// An RST the guest link refuses (a full passt socket) is kept and
    /// sent first once the link is writable; nothing else waits for it.
    #[test]
    fn tcp_reset_refused_by_the_link_is_sent_when_it_is_writable() {
        in_private_netns(|| {
            let mut rig = Rig::new();
            // The host port stops listening: the guest's SYN gets an RST.
            rustix::net::shutdown(&rig.listener, Shutdown::Read).unwrap();
            rig.link.refusing = true;
            rig.guest(flags::SYN, 1000, 0, &[]);
            rig.events();
            assert!(rig.sent().is_empty());
            rig.with_ctx(|tcp, _, _| assert!(tcp.link_waiters(), "EPOLLOUT wanted"));
            rig.with_ctx(|tcp, flows, ctx| tcp.resume_blocked(flows, ctx));
            assert!(rig.sent().is_empty(), "still refused: kept");
            rig.link.refusing = false;
            rig.with_ctx(|tcp, flows, ctx| tcp.resume_blocked(flows, ctx));
            assert_eq!(rig.sent(), vec![(flags::RST | flags::ACK, 0, 1001)]);
            rig.with_ctx(|tcp, _, _| assert!(!tcp.link_waiters()));
        });
    }

    #[test]
    fn tcp_guest_fin_that_completes_the_close_is_acknowledged() {
        in_private_netns(|| {
            let mut rig = Rig::new();
            let (isn, mut host) = rig.connect(1000);
            let (isn1, isn2) = (isn.wrapping_add(1), isn.wrapping_add(2));
            rig.guest(flags::ACK | flags::PSH, 1001, isn1, b"hello");
            host.shutdown(std::net::Shutdown::Write).unwrap();
            rig.events();
            let sent = rig.sent();
            assert!(
                sent.contains(&(flags::FIN | flags::ACK, isn1, 1006)),
                "our FIN: {sent:?}"
            );
            rig.guest(flags::FIN | flags::ACK, 1006, isn2, &[]);
            let sent = rig.sent();
            assert_eq!(
                sent,
                [(flags::ACK, isn2, 1007)],
                "the guest's FIN is acknowledged"
            );
            assert!(rig.flows.is_empty());
            let mut got = Vec::new();
            host.read_to_end(&mut got).unwrap();
            assert_eq!(got, b"hello");
        });
    }

    /// Data from a guest that has not acknowledged our SYN-ACK (its ACK
    /// does not cover our ISN) is not taken: it cannot know our sequence
    /// numbers (RFC 9293 3.10.7.4).
    #[test]
    fn tcp_data_before_the_handshake_completes_is_not_taken() {
        in_private_netns(|| {
            let mut rig = Rig::new();
            rig.guest(flags::SYN, 1000, 0, &[]);
            rig.events();
            let (_, isn, _) = rig.sent()[0];
            rig.guest(flags::ACK | flags::PSH, 1001, isn, b"early");
            assert!(rig.sent().is_empty(), "nothing acknowledged");
            let (mut host, _) = rig.listener.accept().unwrap();
            host.set_nonblocking(true).unwrap();
            let mut buf = [0u8; 16];
            assert!(host.read(&mut buf).is_err(), "the host got nothing");
            rig.guest(flags::ACK | flags::PSH, 1001, isn.wrapping_add(1), b"late");
            host.set_nonblocking(false).unwrap();
            host.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let n = host.read(&mut buf).unwrap();
            assert_eq!(&buf[..n], b"late");
        });
    }

    /// Only a SYN without ACK, RST or FIN opens a connection; a SYN-ACK
    /// for no connection (stale or forged) must not make the host connect.
    #[test]
    fn tcp_syn_with_ack_rst_or_fin_opens_nothing() {
        in_private_netns(|| {
            let mut rig = Rig::new();
            for other in [flags::ACK, flags::RST, flags::FIN] {
                rig.guest(flags::SYN | other, 1000, 0, &[]);
                assert!(
                    rig.flows.is_empty(),
                    "SYN with {other:#04x} opened a connection"
                );
            }
            assert_eq!(rig.tcp.counters.opened_from_guest, 0);
            rig.listener.set_nonblocking(true).unwrap();
            assert!(rig.listener.accept().is_err(), "the host saw a connection");
        });
    }
}
