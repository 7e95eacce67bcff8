//! Fuzzes the TCP translation with a real host peer: each input is a small
//! program of guest segments, host socket calls, event-loop rounds and
//! clock jumps, run against connections between the guest and the host's
//! loopback (the gateway, to the guest): outbound ones from the guest to a
//! listener of this target, or (byte 0 bit 4) inbound ones from the host
//! to a forwarded port (`-t`), which the flows accept from its listener
//! (`TcpFlows::on_listener`, as the engine does) and open toward the guest
//! with our SYN.
//!
//! The process first moves into an empty network namespace of its own with
//! `lo` up (root is needed, as for the tests). The TCP flows are driven the
//! way the engine drives them (`TcpFlows::from_guest` per frame and
//! `flush_acks` per batch, `on_socket` / `on_listener` per ready event,
//! `on_tick`), but directly rather than through `Engine`, for two reasons:
//! the frames the flows send the guest are captured in memory and checked
//! as they come, and `TcpFlows::on_tick` takes the time, so the timers fire
//! on a virtual clock (`Engine::on_tick` reads the real one).
//!
//! Two `TcpFlows` live across inputs: this kernel's, and one made with
//! `TcpFlows::without_peek_offset` (the path of kernels without
//! `SO_PEEK_OFF`, before 6.9: sent bytes are skipped on each peek), which
//! byte 0 bit 3 selects.
//!
//! Payload bytes are a function of their position in the stream (one
//! pattern per direction), so that whatever the fuzzer does with sequence
//! numbers, every byte either side receives can be checked exactly.
//!
//! Invariants checked (a failure panics):
//! - every frame to the guest parses, has valid IPv4 and TCP checksums, and
//!   goes from our MAC/gateway address/port to the guest's; a SYN or
//!   SYN-ACK carries an MSS and no payload, and keeps one ISN;
//! - the handshake: outbound, our SYN-ACK acknowledges the guest's SYN
//!   exactly; inbound, our SYN has no ACK and nothing else goes to the
//!   guest (no ACK, no data) until the flows take its SYN-ACK, which must
//!   acknowledge our ISN + 1 (the guest's numbers count from its ISN
//!   there), and no SYN follows it;
//! - guest-bound data starts after our SYN, is at most the guest's MSS
//!   (as the flows clamp it: at least 536 for IPv4, 1220 for IPv6) per
//!   segment, is the host's bytes at their stream offsets, never beyond
//!   what the host wrote nor beyond the guest's window (bounded by the
//!   highest acceptable ACK plus the largest window the guest announced);
//!   a segment without data or FIN may be one before the next byte (a
//!   zero-window probe); our FIN comes only after the host shut down,
//!   exactly at the end of what it wrote, and no data follows it;
//! - our ACK numbers never go back and never cover more than the guest
//!   could have sent in order (its FIN included);
//! - an RST to the guest leaves no connection behind; a segment for no
//!   connection (not an opening SYN) is answered by nothing;
//! - RFC 5961: a guest RST closes the connection if and only if it is
//!   exactly at the next expected byte (inbound before the SYN-ACK: if it
//!   acknowledges our SYN); one elsewhere in the window we offered gets a
//!   challenge ACK; a SYN on an open connection is answered (our SYN-ACK
//!   again, or a challenge ACK); a keepalive (no data, before the next
//!   expected byte) gets an ACK by the end of its batch;
//! - only a SYN without ACK, RST or FIN opens a connection from the guest,
//!   or the guest's RST that closes a connection right after such a SYN
//!   was challenged on it (required within 2 s, refused after 4 s: the
//!   flows take 3 s), and then from that SYN (the model starts over with
//!   it; inbound, the 4-tuple's host port has no listener: the connection
//!   is refused); a connection from the host opens only when the host
//!   connected, once;
//! - the host reads the guest's bytes at their stream offsets, never more
//!   than was acknowledged to the guest (unless the guest reset: its RST
//!   may cut off the ACK of data written in the same batch), and its end
//!   of stream only after the guest's FIN was acknowledged (or a reset);
//! - at the end of an input, with nobody reset and the handshake done:
//!   once the guest acknowledges everything with an open window and the
//!   host reads everything, the host has read exactly what was
//!   acknowledged to the guest (not checked once the host shrank its
//!   receive buffer: the kernel then drops segments and takes seconds to
//!   resend them), and the guest has received everything the host wrote
//!   (and our FIN if the host shut down). The kernels may hold data back
//!   for a delayed ACK or a retransmission timer, so a stalled exchange
//!   waits a little in real time (at most [`MAX_STALL`] without progress)
//!   before it is judged; the host side uses `TCP_NODELAY` and renews
//!   `TCP_QUICKACK` on each read to keep that rare.
//!
//! Between inputs the connection is reset from the guest (an RST exactly
//! at the next expected byte, which must remove it; again if it reopened
//! one) and the host side closed with RST; fresh `TcpFlows` per input
//! (8 MiB of frame buffers) run about 40% slower.
//!
//! Known bugs can be tolerated to look for others: `TCP_FLOW_TOLERATE`
//! takes a comma-separated list of `unacked-fin` (the guest's FIN that
//! completes a close is never acknowledged) and `syn-flags` (a SYN with
//! ACK, RST or FIN opens a connection) and `unsynced-data` (guest data or
//! FIN taken from a segment whose ACK does not acknowledge our SYN-ACK,
//! which RFC 9293 3.10.7.4 refuses). All three are fixed; the switches
//! stay for bisecting. `TCP_FLOW_TRACE` prints the segments both ways.
//! `TCP_FLOW_PIN` keeps a run to one mode whatever byte 0 says: a
//! comma-separated list of `fallback` and `inbound`, or `default` for
//! neither (outbound on this kernel's path).
//!
//! The guest link can refuse frames (byte 0 bit 2: a "limited" link): each
//! [`Op::Events`] step then gives it a capacity (frames it takes before it
//! refuses), and opcode 13 becomes [`Op::Writable`] (the link takes frames
//! again and `resume_blocked` runs if `link_waiters()`, as the engine does
//! on EPOLLOUT). A refused frame is not seen by the guest, so the checks
//! above also say that it was not counted as sent: the flows' data sent
//! (`snd_nxt`, less a FIN) never goes beyond what the link took, and
//! the closing exchange (link writable, `resume_blocked` each round) still
//! delivers everything. Of the control frames only RSTs are kept by the
//! flows (and sent first once the link takes frames again: a kept RST of
//! an earlier connection may arrive during a later one, and is accepted):
//! a refused ACK is as if lost (the host may read data whose ACK the guest
//! never got), a refused FIN, SYN or SYN-ACK is counted as sent and comes
//! again from the retransmission timer or three duplicate ACKs only (the
//! closing exchange lets the timer run a few times when it stalls), and a
//! guest that acknowledges what it never received is not expected to
//! receive it. The link can offload (byte 0 bit 1): data frames then come
//! through `send_offloaded` with a partial checksum (completed here before
//! the checks) and, beyond one MSS, GSO (segment size the connection's
//! MSS, header length Ethernet + IP + TCP, at most 64 KiB).
//!
//! Input: byte 0 picks the family (bit 0), offloads (bit 1), a limited
//! link (bit 2), the fallback path without `SO_PEEK_OFF` (bit 3) and
//! inbound connections (bit 4; the host connects at once, and
//! [`Op::Syn`] is the guest's SYN-ACK, or a new connection from the host
//! when there is none); bytes 1..5 the guest's ISN (of its SYN, or
//! inbound of its SYN-ACK), then steps, each an opcode byte and its
//! arguments (see [`Op`]); missing argument bytes read as zero. A guest's
//! SYN with no connection opens an outbound one in either mode.

#![no_main]

mod checks;

use std::cell::RefCell;
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use passt_rs::conf::{Config, Mode, fixture};
use passt_rs::event::{EventLoop, Ready, TokenKind};
use passt_rs::flow::Ctx;
use passt_rs::flow::listen::{Forward, Listeners};
use passt_rs::flow::table::FlowId;
use passt_rs::flow::tcp::splice::SplicedConns;
use passt_rs::flow::tcp::{
    ACK_TIMEOUT, FIN_TIMEOUT, GIVE_UP, IDLE_TIMEOUT, RTO_MAX, SYN_TIMEOUT, TcpFlows,
};
use passt_rs::flow::{FlowState, Flows, GuestLink};
use passt_rs::link::Offload;
use passt_rs::wire::tcp::{
    CHECKSUM_OFFSET, Control, Endpoints, Segment, TcpOptions, build_control, data_header_len,
    flags, parse_segment, write_data_headers,
};

/// The listener's port on the host's loopback (outbound connections).
const PORT: u16 = 8080;
/// The forwarded port (`-t`, to the same port on the guest): inbound
/// connections come to it on the host and go to it on the guest.
const FWD_PORT: u16 = 9090;
/// Host ports inbound connections come from, bound explicitly: outside
/// the ephemeral range, so that a connection the flows open toward one (a
/// guest's SYN on an inbound 4-tuple) is refused, never a self-connect.
const CLIENT_PORTS: std::ops::Range<u16> = 2000..8000;
/// The flows reopen a connection from a SYN they answered with a
/// challenge ACK if the guest's RST comes within 3 s (real time): the
/// harness requires it below `REOPEN_SURE` and forbids it from
/// `REOPEN_NEVER` on (between the two, either).
const REOPEN_SURE: Duration = Duration::from_secs(2);
const REOPEN_NEVER: Duration = Duration::from_secs(4);
/// The smallest guest MSS the flows take, per family (RFC 9293 3.7.1, RFC
/// 8200 5): a smaller one is raised to it.
const MIN_MSS4: u16 = 536;
const MIN_MSS6: u16 = 1220;
const GUEST_MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
/// Steps run per input at most.
const MAX_STEPS: usize = 512;
/// Salts of the two directions' payload patterns.
const GUEST_SALT: u32 = 0x6a09_e667;
const HOST_SALT: u32 = 0xbb67_ae85;
/// The largest guest window the flows take (their `MAX_WINDOW`).
const MAX_WINDOW: u64 = 16 << 20;
/// MSS assumed when the guest's SYN has none (RFC 9293).
const DEFAULT_MSS: u16 = 536;
/// Bytes the host writes per input at most (bounds the frames an input
/// makes the flows send with a tiny MSS).
const HOST_MAX: u32 = 256 << 10;
/// Event-loop rounds per step (each drains what is pending).
const EVENT_ROUNDS: usize = 16;
/// Rounds of the closing exchange before its checks.
const SETTLE_ROUNDS: usize = 4096;
/// Times the closing exchange lets the ACK timer run when it stalls after
/// the link refused frames (fewer than the flows' retries).
const SETTLE_TIMER_RUNS: u32 = 3;
/// Real time the closing exchange waits when it stalls: in steps of
/// `STALL_STEP`, at most `MAX_STALL` without progress and `MAX_WAIT` in
/// all (a 256 KiB tail drained through a tiny send buffer takes a few
/// hundred milliseconds).
const STALL_STEP: Duration = Duration::from_millis(5);
const MAX_STALL: Duration = Duration::from_millis(500);
const MAX_WAIT: Duration = Duration::from_secs(3);
/// Frame flags for the segment step: a table the fuzzer indexes, so that
/// the common combinations are one byte value away.
const FLAG_TABLE: [u8; 16] = [
    flags::ACK,
    flags::ACK | flags::PSH,
    flags::ACK,
    flags::ACK | flags::PSH,
    flags::ACK | flags::FIN,
    flags::ACK | flags::PSH | flags::FIN,
    flags::RST,
    flags::RST | flags::ACK,
    flags::SYN,
    flags::SYN | flags::ACK,
    flags::FIN,
    0,
    flags::ACK | flags::URG,
    flags::PSH,
    flags::SYN | flags::FIN,
    flags::ACK | flags::RST | flags::FIN,
];

/// `a` comes after `b` in sequence space.
fn after(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

/// The byte at stream offset `pos` of the direction with `salt`.
fn pattern(salt: u32, pos: u32) -> u8 {
    let mut x = pos.wrapping_mul(0x9e37_79b1) ^ salt;
    x ^= x >> 15;
    x = x.wrapping_mul(0x85eb_ca6b);
    x ^= x >> 13;
    (x >> 24) as u8
}

fn fill_pattern(salt: u32, start: u32, out: &mut [u8]) {
    for (i, b) in out.iter_mut().enumerate() {
        *b = pattern(salt, start.wrapping_add(i as u32));
    }
}

/// The offset in `data` of its first byte that is not the pattern from
/// `start` on.
fn pattern_mismatch(salt: u32, start: u32, data: &[u8]) -> Option<usize> {
    (0..data.len()).find(|&i| data[i] != pattern(salt, start.wrapping_add(i as u32)))
}

/// Frames the flows send the guest, kept until checked.
#[derive(Default)]
struct Capture {
    bytes: Vec<u8>,
    ends: Vec<usize>,
    /// Per frame: its offload description (`None`: `send_frame`).
    offloads: Vec<Option<Offload>>,
    /// The link offloads (a tap with a virtio-net header); else it takes
    /// complete frames only (passt's stream socket).
    offloading: bool,
    /// Frames the link takes before it refuses them (`None`: no limit).
    capacity: Option<u32>,
    /// Frames refused (per input).
    refused: u64,
    /// Frames offered, taken or refused (ever).
    offered: u64,
    /// ACK number of the last refused frame with ACK.
    refused_ack: Option<u32>,
    /// Sequence numbers of the refused FINs.
    refused_fins: Vec<u32>,
    /// ISN of the last refused SYN-ACK.
    refused_isn: Option<u32>,
    /// Sequence space ends (data and FIN) of the refused frames.
    refused_ends: Vec<u32>,
    /// Print refused frames.
    trace: bool,
}

impl Capture {
    fn take(&mut self, frame: &[u8], offload: Option<Offload>) -> bool {
        self.offered += 1;
        if let Some(c) = &mut self.capacity {
            if *c == 0 {
                self.refused += 1;
                let seg = parse_segment(frame).expect("a refused frame parses as TCP");
                if self.trace {
                    eprintln!(
                        "link: refused flags {:#04x} len {}{}",
                        seg.flags,
                        seg.payload.len(),
                        if offload.is_some() {
                            " (offloaded)"
                        } else {
                            ""
                        }
                    );
                }
                // An RST's ACK acknowledges nothing (and a kept one may be
                // of an earlier connection).
                if seg.has(flags::ACK) && !seg.has(flags::RST) {
                    self.refused_ack = Some(seg.ack);
                }
                if seg.has(flags::FIN) && !seg.has(flags::RST) {
                    self.refused_fins.push(seg.seq);
                }
                if seg.has(flags::SYN) {
                    self.refused_isn = Some(seg.seq);
                } else if !seg.has(flags::RST) {
                    let fin = u32::from(seg.has(flags::FIN));
                    let len = seg.payload.len() as u32;
                    self.refused_ends.push(seg.seq.wrapping_add(len + fin));
                }
                return false;
            }
            *c -= 1;
        }
        self.bytes.extend_from_slice(frame);
        self.ends.push(self.bytes.len());
        self.offloads.push(offload);
        true
    }
}

impl GuestLink for Capture {
    fn send_frame(&mut self, frame: &[u8]) -> bool {
        self.take(frame, None)
    }

    fn offloads(&self) -> bool {
        self.offloading
    }

    fn send_offloaded(&mut self, frame: &[u8], offload: Offload) -> bool {
        assert!(
            self.offloading,
            "an offloaded frame ({offload:?}) on a link without offloads"
        );
        self.take(frame, Some(offload))
    }
}

/// A link capacity byte: below 0xc0 its low six bits (frames), else no
/// limit.
fn capacity(b: u8) -> Option<u32> {
    (b < 0xc0).then_some(u32::from(b & 0x3f))
}

/// The input, read from the front; bytes past its end read as zero.
struct Input<'a> {
    data: &'a [u8],
}

impl Input<'_> {
    fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }

    fn u32(&mut self) -> u32 {
        u32::from_be_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }
}

/// What one opcode byte does (`byte % 16`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    /// The guest's SYN: options byte (bit 0 MSS, bit 1 window scale, bit 2
    /// SACK permitted), MSS (u16), shift (u8), window (u16). Inbound, with
    /// the same arguments: the guest's SYN-ACK to our SYN (SYN on a
    /// connection the guest opened), or, with no connection, a new
    /// connection from the host (the guest's ISN: MSS << 16 | window).
    Syn,
    /// A guest segment: see [`World::segment_step`].
    Segment,
    /// The host accepts the connection.
    Accept,
    /// The host writes: length byte x 64 (bit 7 set: a u16 length follows
    /// instead); at most [`HOST_MAX`] bytes per input.
    HostWrite,
    /// The host reads: length as for [`Op::HostWrite`].
    HostRead,
    /// `shutdown(SHUT_WR)` on the host socket.
    HostShutdown,
    /// The host closes its socket.
    HostClose,
    /// The host closes its socket with `SO_LINGER` 0 (RST).
    HostReset,
    /// Event-loop rounds: the flows handle their sockets' readiness. On
    /// a limited link, a capacity byte first (see [`capacity`]): the
    /// frames the link takes from here on.
    Events,
    /// The clock jumps (selector byte below 0xf0, modulo 5: 1 s, ACK, SYN,
    /// FIN, idle timeout; from 0xf0, bit 0: the largest retransmission
    /// timeout, the retransmission give-up time) and the timers run.
    Tick,
    /// Socket buffer size: selector byte (engine SO_SNDBUF, host
    /// SO_RCVBUF, host SO_SNDBUF), size exponent byte.
    Tune,
    /// Limited link only (opcode 13): the link takes frames again
    /// (capacity byte, see [`capacity`]), and the connections waiting for
    /// it resume if any do.
    Writable,
}

impl Op {
    fn from_byte(b: u8, limited: bool) -> Op {
        match b % 16 {
            13 if limited => Op::Writable,
            0 => Op::Syn,
            1..=5 => Op::Segment,
            6 => Op::Accept,
            7 => Op::HostWrite,
            8 => Op::HostRead,
            9 => Op::HostShutdown,
            10 => Op::HostClose,
            11 => Op::HostReset,
            12 | 13 => Op::Events,
            14 => Op::Tick,
            _ => Op::Tune,
        }
    }
}

/// What the guest and the host side know of the current connection, and
/// the bounds the flows' frames are checked against. Offsets are relative
/// to the byte after each side's ISN (u32, compared in sequence space).
struct Model {
    guest: IpAddr,
    gw: IpAddr,
    guest_port: u16,
    /// Our port toward the guest: the listener's (outbound), the host
    /// peer's (inbound).
    our_port: u16,
    /// The host opened the connection (on the forwarded port): our SYN,
    /// the guest's SYN-ACK. Else the guest did: its SYN, our SYN-ACK.
    inbound: bool,
    /// The guest's ISN.
    g_isn: u32,
    /// The flows took the guest's ISN (its SYN; inbound, its SYN-ACK).
    synced: bool,
    /// A flow was created for this connection.
    opened: bool,
    /// Outbound: the local port of the flows' host socket (which of the
    /// connections on the listener is this one's).
    flow_port: Option<u16>,
    /// The last SYN on this open connection the flows answered with a
    /// challenge ACK that an RST at the next expected byte turns into a
    /// new connection (a SYN without ACK, RST or FIN), and when.
    challenged: Option<(Instant, SynSeg)>,
    /// MSS, window scale and window of the SYN that opened the flow.
    syn_mss: u16,
    /// Our MSS, from the SYN-ACK.
    our_mss: Option<u16>,
    /// End of the data frames the link took (highest).
    data_max: u32,
    syn_scale: Option<u8>,
    /// Next new byte the guest sends.
    snd_nxt: u32,
    /// The most the flows can have taken in order (the flows take data at
    /// or before what they expect only), and what that plus the guest's
    /// FIN can be acknowledged up to.
    prefix: u32,
    fin_bound: Option<u32>,
    /// Largest window (bytes) the guest announced.
    max_window: u64,
    guest_rst: bool,
    /// Our ISN, from the SYN-ACK.
    our_isn: Option<u32>,
    /// Contiguous data the guest received.
    rcv_nxt: u32,
    /// Offset of our FIN.
    fin_at: Option<u32>,
    /// Highest end (data and FIN) the flows sent.
    sent_max: i64,
    /// Highest guest ACK the flows can have taken (-1: not even the SYN).
    acked_bound: i64,
    /// Highest ACK number the flows sent the guest (relative offset).
    max_ack: Option<u32>,
    /// Highest ACK number of a frame the link refused (relative offset):
    /// the flows took the data up to it (the host may read it), but the
    /// guest never heard.
    refused_ack: Option<u32>,
    /// The link refused our FIN: the flows count it as sent all the same
    /// (as if lost on the way), so later segments may come after it.
    fin_refused: bool,
    /// Our ISN from a SYN-ACK the link refused.
    refused_isn: Option<u32>,
    /// Highest end of a frame the link refused (data and FIN).
    refused_max: i64,
    /// The guest acknowledged what it did not receive (what the link
    /// refused): the flows take it, and never send it again.
    acked_unreceived: bool,
    engine_rst: bool,
    /// The host's end of the connection, once accepted.
    host: Option<TcpStream>,
    host_written: u32,
    host_read: u32,
    host_eof: bool,
    /// The host shut down writing (or closed): our FIN may follow.
    host_fin: bool,
    /// The host closed its socket (normally or with RST).
    host_closed: bool,
    /// The host reset, or saw a reset.
    host_rst: bool,
    /// The host shrank its receive buffer: the kernel may drop segments
    /// already in flight and wait for its retransmission timer (seconds).
    rcvbuf_shrunk: bool,
}

/// What the checks read of the one flow's state machine.
#[derive(Clone, Debug)]
struct FlowView {
    /// `Connecting`, `SynSent`, `SynReceived` or `Established`.
    phase: String,
    isn: u32,
    snd_nxt: u32,
    rcv_nxt: u32,
    window_sent: u16,
}

/// What the flows keep of a guest SYN they challenged.
#[derive(Clone, Copy, Debug)]
struct SynSeg {
    seq: u32,
    window: u16,
    mss: Option<u16>,
    window_scale: Option<u8>,
}

impl Model {
    fn new(guest: IpAddr, gw: IpAddr, ports: (u16, u16), g_isn: u32, inbound: bool) -> Model {
        Model {
            guest,
            gw,
            guest_port: ports.0,
            our_port: ports.1,
            inbound,
            g_isn,
            synced: !inbound,
            opened: false,
            flow_port: None,
            challenged: None,
            syn_mss: DEFAULT_MSS,
            our_mss: None,
            data_max: 0,
            syn_scale: None,
            snd_nxt: 0,
            prefix: 0,
            fin_bound: None,
            max_window: 0,
            guest_rst: false,
            our_isn: None,
            rcv_nxt: 0,
            fin_at: None,
            sent_max: 0,
            acked_bound: -1,
            max_ack: None,
            refused_ack: None,
            fin_refused: false,
            refused_isn: None,
            refused_max: 0,
            acked_unreceived: false,
            engine_rst: false,
            host: None,
            host_written: 0,
            host_read: 0,
            host_eof: false,
            host_fin: false,
            host_closed: false,
            host_rst: false,
            rcvbuf_shrunk: false,
        }
    }

    /// What the guest acknowledges: everything received in order, our FIN
    /// included once all data before it arrived.
    fn rcv_ack(&self) -> u32 {
        let fin = self.fin_at == Some(self.rcv_nxt);
        self.our_isn
            .unwrap_or(0)
            .wrapping_add(1)
            .wrapping_add(self.rcv_nxt)
            .wrapping_add(u32::from(fin))
    }

    /// The most the flows may acknowledge (relative offset).
    fn ack_bound(&self) -> u32 {
        match self.fin_bound {
            Some(f) if after(f, self.prefix) => f,
            _ => self.prefix,
        }
    }

    /// The guest's next sequence number as the flows see it: their last
    /// ACK (retransmission from there), else the guest's own.
    fn retransmit_seq(&self) -> u32 {
        let off = self.max_ack.unwrap_or(self.snd_nxt);
        self.g_isn.wrapping_add(1).wrapping_add(off)
    }

    /// The highest ACK the flows sent, whether or not the link took it.
    fn ack_tried(&self) -> Option<u32> {
        match (self.max_ack, self.refused_ack) {
            (Some(a), Some(r)) if after(r, a) => Some(r),
            (None, r) => r,
            (a, _) => a,
        }
    }

    /// Both sides have the other's ISN (as far as the guest knows).
    fn established(&self) -> bool {
        self.our_isn.is_some() && self.synced
    }

    /// The guest's MSS and window scale from its SYN (or SYN-ACK), as the
    /// flows take them.
    fn take_syn_options(&mut self, mss: Option<u16>, window_scale: Option<u8>, window: u16) {
        let floor = if self.guest.is_ipv6() {
            MIN_MSS6
        } else {
            MIN_MSS4
        };
        self.syn_mss = mss.unwrap_or(DEFAULT_MSS).max(floor);
        self.syn_scale = window_scale;
        self.max_window = self.max_window.max(u64::from(window));
    }

    /// The connection's MSS toward the guest: the guest's, bounded by
    /// ours.
    fn mss(&self) -> u16 {
        self.syn_mss.min(self.our_mss.unwrap_or(u16::MAX))
    }

    /// Nobody reset and the host still has its socket.
    fn orderly(&self) -> bool {
        !(self.guest_rst || self.engine_rst || self.host_rst || self.host_closed)
            && self.host.is_some()
    }
}

struct World {
    config: Config,
    events: EventLoop,
    flows: Flows,
    /// The flows of this input; `other_tcp` the ones of the other path
    /// (with or without `SO_PEEK_OFF`), swapped in when an input asks.
    tcp: TcpFlows,
    other_tcp: TcpFlows,
    link: Capture,
    listener4: TcpListener,
    listener6: Option<TcpListener>,
    /// The forwarded port's listener (`-t FWD_PORT`), as the engine's.
    forwards: Listeners,
    spliced: SplicedConns,
    ready: Vec<Ready>,
    /// This input's connections come from the host (byte 0 bit 4).
    inbound: bool,
    /// Guest ports go round from here, one per connection.
    next_port: u16,
    /// Host ports of inbound connections go round from here.
    next_client_port: u16,
    /// Frame being built toward the flows.
    frame: Vec<u8>,
    /// Host-side read/write buffer.
    buf: Vec<u8>,
    /// The virtual clock's lead over the real one (per input).
    clock: Duration,
    /// Guest segments dispatched since the last `flush_acks`.
    batch_open: bool,
    /// A keepalive was sent in this batch: an ACK is due by its end
    /// (frames offered to the link before, the connection's ISN).
    reply_due: Option<(u64, u32)>,
    /// `TCP_FLOW_TRACE` set: print the segments both ways.
    trace: bool,
    /// `TCP_FLOW_PIN`: byte 0's bits 3 and 4 (the fallback path, inbound)
    /// as `pin.1` says, whatever the input has (`pin.0`: the mask).
    pin: (u8, u8),
    /// `TCP_FLOW_TOLERATE=unacked-fin`: a known bug (the guest's FIN that
    /// completes the close is never acknowledged) does not fail the input.
    tolerate_unacked_fin: bool,
    /// `TCP_FLOW_TOLERATE=syn-flags`: a known bug (a SYN with ACK, RST or
    /// FIN opens a connection) does not fail the input.
    tolerate_syn_flags: bool,
    /// `TCP_FLOW_TOLERATE=unsynced-data`: a known bug (guest data or FIN
    /// taken while our SYN is unacknowledged, from a segment whose ACK does
    /// not acknowledge it) does not fail the input.
    tolerate_unsynced_data: bool,
}

thread_local! {
    /// libFuzzer calls the target on one thread; the namespace is that
    /// thread's, entered before any socket exists.
    static WORLD: RefCell<World> = RefCell::new(World::new());
}

fn set_sysctl(path: &str, value: &str) {
    if let Err(e) = std::fs::write(path, value) {
        eprintln!("tcp_flow: {path}: {e}");
    }
}

/// `TCP_FLOW_PIN` (comma-separated `fallback`, `inbound`; `default`
/// alone for neither): the mask and the values of byte 0's bits 3 and 4,
/// so that a run keeps to one mode.
fn pinned_mode() -> (u8, u8) {
    let Ok(pin) = std::env::var("TCP_FLOW_PIN") else {
        return (0, 0);
    };
    let mut bits = 0;
    for word in pin.split(',') {
        bits |= match word {
            "fallback" => 8,
            "inbound" => 16,
            "default" | "" => 0,
            other => panic!("TCP_FLOW_PIN: {other}? (fallback, inbound, default)"),
        };
    }
    (8 | 16, bits)
}

/// Whether `TCP_FLOW_TOLERATE` (comma-separated) names known bug `name`.
fn tolerated(name: &str) -> bool {
    std::env::var("TCP_FLOW_TOLERATE").is_ok_and(|v| v.split(',').any(|k| k == name))
}

fn reset_close(stream: TcpStream) {
    let _ = rustix::net::sockopt::set_socket_linger(&stream, Some(Duration::ZERO));
    drop(stream);
}

impl World {
    fn new() -> World {
        passt_rs::sys::ns::unshare_net_thread().expect("an empty network namespace (run as root)");
        let mut nl = passt_rs::netlink::Netlink::open().expect("netlink");
        let lo = nl.link_index("lo").expect("lo").expect("lo exists");
        nl.set_link_up(lo).expect("lo up");
        // /proc/sys/net is the opening thread's namespace: this one. No
        // TIME_WAIT (connections are many and short), all ports ephemeral.
        set_sysctl("/proc/sys/net/ipv4/tcp_max_tw_buckets", "0");
        set_sysctl("/proc/sys/net/ipv4/ip_local_port_range", "10000 65000");
        let listener4 = TcpListener::bind(("127.0.0.1", PORT)).expect("IPv4 listener");
        listener4.set_nonblocking(true).unwrap();
        let listener6 = TcpListener::bind(("::1", PORT)).ok();
        if let Some(l) = &listener6 {
            l.set_nonblocking(true).unwrap();
        }
        let config = fixture::config(Mode::Passt, &["-t", &FWD_PORT.to_string()]);
        let events = EventLoop::new().expect("epoll");
        let forwards = Listeners::bind(&config, &events, Forward::TcpIn, None)
            .expect("the forwarded port's listener");
        // This kernel's path, and the fallback of kernels without
        // SO_PEEK_OFF (the same if this one has none).
        let tcp = TcpFlows::new(&config);
        let other_tcp = match tcp.peek_fallback() {
            true => TcpFlows::new(&config),
            false => TcpFlows::without_peek_offset(&config),
        };
        World {
            tcp,
            other_tcp,
            config,
            events,
            flows: Flows::new(64),
            link: Capture::default(),
            listener4,
            listener6,
            forwards,
            spliced: SplicedConns::new(),
            ready: Vec::with_capacity(64),
            inbound: false,
            next_port: 20000,
            next_client_port: CLIENT_PORTS.start,
            frame: vec![0; 65536],
            buf: vec![0; 65536],
            clock: Duration::ZERO,
            batch_open: false,
            reply_due: None,
            trace: std::env::var_os("TCP_FLOW_TRACE").is_some(),
            pin: pinned_mode(),
            tolerate_unacked_fin: tolerated("unacked-fin"),
            tolerate_syn_flags: tolerated("syn-flags"),
            tolerate_unsynced_data: tolerated("unsynced-data"),
        }
    }

    /// Runs `f` on the flows as the engine would.
    fn engine<R>(&mut self, f: impl FnOnce(&mut TcpFlows, &mut Flows, &mut Ctx<'_>) -> R) -> R {
        let World {
            config,
            events,
            flows,
            tcp,
            link,
            ..
        } = self;
        let mut ctx = Ctx::standalone(config, events, GUEST_MAC, link);
        f(tcp, flows, &mut ctx)
    }

    /// The forwarded port's listener `index` is ready: the flows accept
    /// (the engine's `on_flow_event`).
    fn on_listener(&mut self, index: u32) {
        let World {
            config,
            events,
            flows,
            tcp,
            link,
            forwards,
            spliced,
            ..
        } = self;
        let mut ctx = Ctx::standalone(config, events, GUEST_MAC, link);
        tcp.on_listener(flows, &mut ctx, spliced, forwards, index);
    }

    fn listener(&self, m: &Model) -> &TcpListener {
        match (m.guest, &self.listener6) {
            (IpAddr::V6(_), Some(l)) => l,
            _ => &self.listener4,
        }
    }

    /// Whether a guest segment with `seg_flags` opens a connection when
    /// there is none: a SYN without ACK, RST or FIN (with the known bug
    /// tolerated, also a SYN with any but all three of them).
    fn opens(&self, seg_flags: u8) -> bool {
        let others = flags::ACK | flags::RST | flags::FIN;
        match self.tolerate_syn_flags {
            false => seg_flags & (flags::SYN | others) == flags::SYN,
            true => seg_flags & flags::SYN != 0 && seg_flags & others != others,
        }
    }

    /// The flow's next expected guest sequence number and whether our
    /// SYN is still unacknowledged.
    fn handshake_state(&self) -> Option<(u32, bool)> {
        let flow = self.flows.get(self.flow_id()?)?;
        match &flow.state {
            FlowState::Tcp(conn) => Some((conn.core().rcv_nxt(), conn.core().syn_unacked())),
            _ => None,
        }
    }

    /// The flow's next expected guest sequence number and whether it has
    /// the guest's FIN (the state the tolerance of a known bug needs).
    fn expected_from_guest(&self) -> Option<(u32, bool)> {
        let flow = self.flows.get(self.flow_id()?)?;
        match &flow.state {
            FlowState::Tcp(conn) => Some((conn.core().rcv_nxt(), conn.core().guest_closed())),
            _ => None,
        }
    }

    fn has_flow(&self) -> bool {
        !self.flows.is_empty()
    }

    /// The one flow's state machine, as far as the checks read it.
    fn flow_view(&self) -> Option<FlowView> {
        let flow = self.flows.get(self.flow_id()?)?;
        match &flow.state {
            FlowState::Tcp(conn) => {
                let core = conn.core();
                Some(FlowView {
                    phase: format!("{:?}", core.phase()),
                    isn: core.isn(),
                    snd_nxt: core.snd_nxt(),
                    rcv_nxt: core.rcv_nxt(),
                    window_sent: core.window_sent(),
                })
            }
            _ => None,
        }
    }

    /// The local port of the one flow's host socket.
    fn flow_local_port(&self) -> Option<u16> {
        let flow = self.flows.get(self.flow_id()?)?;
        match &flow.state {
            FlowState::Tcp(conn) => {
                let addr = rustix::net::getsockname(&conn.socket).ok()?;
                SocketAddr::try_from(addr).ok().map(|a| a.port())
            }
            _ => None,
        }
    }

    /// Connections the guest opened, or tried to (refused at once).
    fn guest_opens(&self) -> u64 {
        let c = &self.tcp.counters;
        c.opened_from_guest + c.connect_failed + c.refused_table_full
    }

    /// The one TCP flow's id, if any.
    fn flow_id(&self) -> Option<FlowId> {
        self.flows.iter().map(|(id, _)| id).next()
    }

    /// The model of a new connection from the guest (to the listener).
    fn new_model(&mut self, v6: bool, g_isn: u32) -> Model {
        let (guest, gw) = self.addresses(v6);
        self.next_port = self
            .next_port
            .checked_add(1)
            .filter(|&p| p < 60000)
            .unwrap_or(20000);
        Model::new(guest, gw, (self.next_port, PORT), g_isn, false)
    }

    /// The guest's and the gateway's address of family `v6` (IPv4 if the
    /// host has no IPv6 loopback).
    fn addresses(&self, v6: bool) -> (IpAddr, IpAddr) {
        if v6 && self.listener6.is_some() {
            let ip6 = self.config.ip6.as_ref().unwrap();
            let gw = self.config.nat.map_host_loopback6.unwrap();
            (IpAddr::V6(ip6.addr), IpAddr::V6(gw))
        } else {
            let ip4 = self.config.ip4.as_ref().unwrap();
            let gw = self.config.nat.map_host_loopback4.unwrap();
            (IpAddr::V4(ip4.addr), IpAddr::V4(gw))
        }
    }

    fn run(&mut self, data: &[u8]) {
        let mut input = Input { data };
        let mode = (input.u8() & !self.pin.0) | self.pin.1;
        let v6 = mode & 1 == 1;
        let limited = mode & 4 != 0;
        let fallback = mode & 8 != 0;
        self.inbound = mode & 16 != 0;
        if self.tcp.peek_fallback() != fallback && self.other_tcp.peek_fallback() == fallback {
            std::mem::swap(&mut self.tcp, &mut self.other_tcp);
        }
        assert!(self.tcp.peek_fallback() || !fallback, "the fallback path");
        self.link.offloading = mode & 2 != 0;
        self.link.capacity = None;
        self.link.refused = 0;
        self.link.refused_ack = None;
        self.link.refused_fins.clear();
        self.link.refused_isn = None;
        self.link.refused_ends.clear();
        self.link.trace = self.trace;
        let g_isn = input.u32();
        self.clock = Duration::ZERO;
        let mut m = self.new_model(v6, g_isn);
        if self.inbound {
            self.connect_from_host(&mut m, v6, g_isn);
        }
        for _ in 0..MAX_STEPS {
            if input.is_empty() {
                break;
            }
            let op = Op::from_byte(input.u8(), limited);
            if op != Op::Segment {
                self.flush(&mut m);
            }
            match op {
                Op::Syn => self.syn_step(&mut m, &mut input),
                Op::Segment => self.segment_step(&mut m, &mut input),
                Op::Accept => self.accept(&mut m),
                Op::HostWrite => {
                    let len = length(&mut input);
                    self.host_write(&mut m, len);
                }
                Op::HostRead => {
                    let len = length(&mut input);
                    self.host_read(&mut m, len);
                }
                Op::HostShutdown => self.host_shutdown(&mut m),
                Op::HostClose => self.host_close(&mut m, false),
                Op::HostReset => self.host_close(&mut m, true),
                Op::Events => {
                    if limited {
                        self.link.capacity = capacity(input.u8());
                    }
                    self.events(&mut m);
                }
                Op::Writable => {
                    self.link.capacity = capacity(input.u8());
                    self.resume(&mut m);
                }
                Op::Tick => {
                    let jump = match input.u8() {
                        b @ 0xf0.. if b & 1 == 0 => RTO_MAX,
                        0xf0.. => GIVE_UP,
                        b => match b % 5 {
                            0 => Duration::from_secs(1),
                            1 => ACK_TIMEOUT,
                            2 => SYN_TIMEOUT,
                            3 => FIN_TIMEOUT,
                            _ => IDLE_TIMEOUT,
                        },
                    };
                    self.tick(&mut m, jump);
                }
                Op::Tune => {
                    let which = input.u8();
                    let size = 1024usize << (input.u8() % 8);
                    self.tune(&mut m, which, size);
                }
            }
        }
        self.flush(&mut m);
        if self.trace && self.link.refused > 0 {
            eprintln!("link: {} frames refused", self.link.refused);
        }
        // The link takes everything from here on.
        self.link.capacity = None;
        self.resume(&mut m);
        self.settle(&mut m);
        self.teardown(&mut m);
    }

    /// The link is writable: the connections waiting for it resume (the
    /// engine's `on_link_writable`).
    fn resume(&mut self, m: &mut Model) {
        if self.tcp.link_waiters() {
            if self.trace {
                eprintln!("link: writable, resuming");
            }
            self.engine(|tcp, flows, ctx| tcp.resume_blocked(flows, ctx));
            self.check_frames(m);
        }
    }

    // --- guest side -------------------------------------------------

    fn guest_ends(&self, m: &Model) -> Endpoints {
        // The builders make frames toward the guest; swapped, the guest's.
        Endpoints {
            our_mac: GUEST_MAC,
            guest_mac: self.config.our_mac,
            src: m.guest,
            dst: m.gw,
            src_port: m.guest_port,
            dst_port: m.our_port,
        }
    }

    fn syn_step(&mut self, m: &mut Model, input: &mut Input<'_>) {
        let which = input.u8();
        let mss = input.u16();
        let shift = input.u8();
        let window = input.u16();
        let options = TcpOptions {
            mss: (which & 1 != 0).then_some(mss),
            window_scale: (which & 2 != 0).then_some(shift),
            sack_permitted: which & 4 != 0,
        };
        let has_flow = self.has_flow();
        if self.inbound && !has_flow {
            let v6 = m.guest.is_ipv6();
            let g_isn = (u32::from(mss) << 16) | u32::from(window);
            self.connect_from_host(m, v6, g_isn);
            return;
        }
        let (seq, ack, seg_flags) = match (m.inbound, has_flow) {
            (true, _) => (m.g_isn, m.rcv_ack(), flags::SYN | flags::ACK),
            (false, true) => (m.g_isn, 0, flags::SYN),
            (false, false) => (self.opening(m, m.g_isn), 0, flags::SYN),
        };
        let ctl = Control {
            seq,
            ack,
            flags: seg_flags,
            window,
        };
        if self.trace {
            eprintln!(
                "guest: flags {seg_flags:#04x} (isn) ack {} win {window} {options:?}",
                ack.wrapping_sub(m.our_isn.unwrap_or(0).wrapping_add(1)) as i32,
            );
        }
        let len = build_control(&self.guest_ends(m), &ctl, &options, &mut self.frame)
            .expect("a SYN fits");
        self.send_guest_frame(m, len);
        self.flush(m);
    }

    /// A connection from the host to the forwarded port (from the next
    /// client port that binds), accepted by the flows at once: our SYN
    /// goes to the guest. The previous connection, if any, is over.
    fn connect_from_host(&mut self, m: &mut Model, v6: bool, g_isn: u32) {
        self.flush(m);
        if m.opened || m.host.is_some() {
            self.end_host_side(m);
        }
        let (guest, gw) = self.addresses(v6);
        let loopback = match guest {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
        };
        let mut stream = None;
        for _ in 0..64 {
            let port = self.next_client_port;
            self.next_client_port = match port + 1 {
                p if p < CLIENT_PORTS.end => p,
                _ => CLIENT_PORTS.start,
            };
            match client_socket(SocketAddr::new(loopback, port), FWD_PORT) {
                Ok(s) => {
                    stream = Some((s, port));
                    break;
                }
                // A connection of this port still closing.
                Err(e)
                    if matches!(e.kind(), ErrorKind::AddrInUse | ErrorKind::AddrNotAvailable) => {}
                Err(e) => panic!("connecting to the forwarded port from {loopback}:{port}: {e}"),
            }
        }
        let (stream, port) = stream.expect("a free client port");
        stream.set_nonblocking(true).unwrap();
        let _ = stream.set_nodelay(true);
        *m = Model::new(guest, gw, (FWD_PORT, port), g_isn, true);
        m.host = Some(stream);
        if self.trace {
            eprintln!("host: connects from port {port}");
        }
        self.events(m);
        assert!(m.opened, "the flows did not accept the host's connection");
    }

    /// An opening SYN at `seq` is about to go out with no flow: a new
    /// connection (the previous one, if any, is over). Returns `seq`.
    fn opening(&mut self, m: &mut Model, seq: u32) -> u32 {
        if m.opened || m.inbound {
            self.flush(m);
            self.end_host_side(m);
            let v6 = m.guest.is_ipv6();
            *m = self.new_model(v6, seq);
        }
        m.g_isn = seq;
        seq
    }

    /// A guest segment. Arguments: flags byte (below 0xc0: an index into
    /// [`FLAG_TABLE`], else the low six bits), mode byte (bits 0-2: the
    /// sequence number, 3-5: the ACK number, 6: more segments follow in
    /// this batch, 7: a window u16 follows, else 65535), then the
    /// mode-dependent numbers and a length selector.
    fn segment_step(&mut self, m: &mut Model, input: &mut Input<'_>) {
        let f = input.u8();
        let seg_flags = if f < 0xc0 {
            FLAG_TABLE[usize::from(f % 16)]
        } else {
            f & 0x3f
        };
        let mode = input.u8();
        let base = m.g_isn.wrapping_add(1);
        let mut seq = match mode & 7 {
            0..=2 => base.wrapping_add(m.snd_nxt),
            3 => m.retransmit_seq(),
            4 => base
                .wrapping_add(m.snd_nxt)
                .wrapping_sub(u32::from(input.u8())),
            5 => base
                .wrapping_add(m.snd_nxt)
                .wrapping_add(u32::from(input.u8())),
            6 => base
                .wrapping_add(m.snd_nxt)
                .wrapping_add(input.u16() as i16 as i32 as u32),
            _ => input.u32(),
        };
        let rcv = m.rcv_ack();
        let ack = match (mode >> 3) & 7 {
            0..=2 => rcv,
            3 => rcv.wrapping_sub(u32::from(input.u8())),
            4 => rcv.wrapping_add(u32::from(input.u8())),
            5 => rcv.wrapping_sub(u32::from(input.u16())),
            6 => m.our_isn.unwrap_or(0),
            _ => input.u32(),
        };
        let more = mode & 0x40 != 0;
        let window = if mode & 0x80 != 0 {
            input.u16()
        } else {
            u16::MAX
        };
        let len = match input.u8() {
            l @ 0..=0x7f => usize::from(l),
            0x80..=0xef => usize::from(input.u16()) % 4097,
            _ => usize::from(input.u16()) % 65001,
        };
        if self.opens(seg_flags) && !self.has_flow() {
            // A new connection starts at this SYN.
            self.opening(m, seq);
            seq = m.g_isn;
        }
        // The stream offset of the payload's first byte (a SYN's data
        // follows the SYN).
        let syn = u32::from(seg_flags & flags::SYN != 0);
        let off = seq.wrapping_add(syn).wrapping_sub(m.g_isn.wrapping_add(1));
        let ends = self.guest_ends(m);
        let ctl = Control {
            seq,
            ack,
            flags: seg_flags,
            window,
        };
        let start = data_header_len(m.guest.is_ipv6());
        fill_pattern(GUEST_SALT, off, &mut self.frame[start..start + len]);
        let frame_len =
            write_data_headers(&ends, &ctl, &mut self.frame, len).expect("a guest frame fits");
        if self.trace {
            eprintln!(
                "guest: flags {seg_flags:#04x} off {off} len {len} ack {} win {window}{}",
                ack.wrapping_sub(m.our_isn.unwrap_or(0).wrapping_add(1)) as i32,
                if more { " (more)" } else { "" }
            );
        }
        self.model_guest_segment(m, seg_flags, off, len as u32, ack, window);
        self.send_guest_frame(m, frame_len);
        if !more {
            self.flush(m);
        }
    }

    /// What a guest segment lets the flows do, as bounds.
    fn model_guest_segment(
        &mut self,
        m: &mut Model,
        seg_flags: u8,
        off: u32,
        len: u32,
        ack: u32,
        window: u16,
    ) {
        let end = off.wrapping_add(len);
        if after(end, m.snd_nxt) {
            m.snd_nxt = end;
        }
        let has = |f: u8| seg_flags & f == f;
        // Before the flows have the guest's ISN (inbound: its SYN-ACK),
        // they take nothing from its segments: the bounds start over then.
        if !has(flags::ACK) || has(flags::SYN) || has(flags::RST) || !m.synced {
            return;
        }
        let prefix = m.prefix;
        if !after(off, prefix) && after(end, prefix) {
            m.prefix = end;
        }
        if has(flags::FIN) && !after(off, prefix) && !after(prefix, end) {
            let fin = end.wrapping_add(1);
            if m.fin_bound.is_none_or(|b| after(fin, b)) {
                m.fin_bound = Some(fin);
            }
        }
        let scale = if m.opened {
            m.syn_scale.unwrap_or(0)
        } else {
            14
        };
        debug_assert!(scale <= 14, "parse_segment clamps window scales");
        let scaled = (u64::from(window) << scale).min(MAX_WINDOW);
        m.max_window = m.max_window.max(scaled);
        if let Some(isn) = m.our_isn {
            let a = i64::from(ack.wrapping_sub(isn.wrapping_add(1)) as i32);
            // The flows take ACKs of what they sent, whether or not the
            // link took it.
            let sent = m.sent_max.max(m.refused_max);
            if a >= -1 && a <= sent && a > m.acked_bound {
                m.acked_bound = a;
            }
            let received = i64::from(m.rcv_ack().wrapping_sub(isn.wrapping_add(1)) as i32);
            if a > received && a <= sent {
                m.acked_unreceived = true;
            }
        }
    }

    /// Dispatches the guest frame in `self.frame[..len]` to the flows.
    fn send_guest_frame(&mut self, m: &mut Model, len: usize) {
        let frame = std::mem::take(&mut self.frame);
        let seg = parse_segment(&frame[..len]).expect("the guest's frame parses");
        let opening = self.opens(seg.flags);
        let view = self.flow_view();
        let had_flow = view.is_some();
        let before = self.expected_from_guest();
        let shake = self.handshake_state();
        let opens = self.guest_opens();
        let offered = self.link.offered;
        self.engine(|tcp, flows, ctx| tcp.from_guest(flows, ctx, &seg));
        self.batch_open = true;
        if let (Some((from, true)), Some((to, true))) = (shake, self.handshake_state()) {
            // The segment did not acknowledge our SYN: RFC 9293 3.10.7.4
            // (SYN-RECEIVED) takes nothing from it.
            assert!(
                from == to || self.tolerate_unsynced_data,
                "the flows took guest data or FIN ({} bytes of sequence space) from a \
                 segment whose ACK {:#x} does not acknowledge our SYN",
                to.wrapping_sub(from),
                seg.ack
            );
        }
        let opened = self.guest_opens() - opens;
        let answered = self.link.offered - offered;
        assert!(opened <= 1, "one guest segment opened {opened} connections");
        let now = self.flow_view();
        let same = |v: &FlowView| now.as_ref().is_some_and(|n| n.isn == v.isn) && opened == 0;
        if let Some(v) = &view {
            self.check_open_segment(m, &seg, v, (same(v), opened > 0), answered);
        }
        if opened > 0 && !had_flow {
            assert!(
                opening,
                "a guest segment with flags {:#04x} opened a connection: only a SYN \
                 without ACK, RST or FIN may",
                seg.flags
            );
            m.opened = true;
            m.flow_port = self.flow_local_port();
            m.take_syn_options(seg.options.mss, seg.options.window_scale, seg.window);
        } else if opened > 0 {
            self.reopened(m, &seg);
        }
        if let (Some(v), Some(n)) = (&view, &now) {
            if m.inbound && !m.synced && same(v) && n.phase != v.phase {
                self.synced(m, &seg, n);
            }
        }
        // Where this segment's FIN is, if the flows take it now: they
        // expected a byte within the segment (or just after it) and had
        // no FIN yet.
        let end = seg.seq.wrapping_add(seg.payload.len() as u32);
        let fin_now = match before {
            Some((expected, false)) => {
                seg.has(flags::ACK | flags::FIN)
                    && !seg.has(flags::RST)
                    && !after(seg.seq, expected)
                    && !after(expected, end)
            }
            _ => false,
        };
        let fin_end = fin_now.then(|| end.wrapping_sub(m.g_isn.wrapping_add(1)).wrapping_add(1));
        self.frame = frame;
        let quiet = !had_flow && !opening;
        let sent = self.check_frames(m);
        assert!(
            !quiet || sent == 0,
            "{sent} frames in answer to a segment for no connection"
        );
        let closed_in_order = had_flow && !self.has_flow() && !m.engine_rst;
        if let (true, true, Some(fin)) = (self.tolerate_unacked_fin, closed_in_order, fin_end) {
            // Known: the FIN that completes the close is not acknowledged;
            // count it as if it were, to look for other trouble.
            m.max_ack = Some(fin);
        }
    }

    /// A guest segment for an open connection (`v` before it, `same`: the
    /// connection is still there after it, `reopened`: a new one replaced
    /// it, `answered`: frames the flows sent meanwhile): RSTs and SYNs
    /// (RFC 5961) and keepalives.
    fn check_open_segment(
        &mut self,
        m: &mut Model,
        seg: &Segment<'_>,
        v: &FlowView,
        (same, reopened): (bool, bool),
        answered: u64,
    ) {
        let open = v.phase == "SynReceived" || v.phase == "Established";
        if seg.has(flags::RST) {
            let exact = match v.phase.as_str() {
                "SynSent" => seg.has(flags::ACK) && seg.ack == v.isn.wrapping_add(1),
                _ => seg.seq == v.rcv_nxt,
            };
            assert_eq!(
                !same, exact,
                "an RST at {} (next expected {}, phase {}): it closes the connection if \
                 exactly at the next expected byte, only then",
                seg.seq, v.rcv_nxt, v.phase
            );
            if exact {
                m.guest_rst = true;
                if let Some((at, _)) = m.challenged {
                    let elapsed = at.elapsed();
                    assert!(
                        reopened || elapsed >= REOPEN_SURE,
                        "the guest's RST answered the challenge ACK to its SYN {elapsed:?} \
                         after it: no new connection"
                    );
                }
                return;
            }
            let scale = if m.syn_scale.is_some() { 8 } else { 0 };
            let window = (u32::from(v.window_sent) << scale).max(1);
            if v.phase != "SynSent" && seg.seq.wrapping_sub(v.rcv_nxt) < window {
                assert!(
                    answered > 0,
                    "an RST in the window, not exact: no challenge ACK"
                );
            }
            return;
        }
        if seg.has(flags::SYN) && open {
            assert!(answered > 0, "a SYN on an open connection: no answer");
            let resent = v.phase == "SynReceived"
                && !seg.has(flags::ACK)
                && seg.seq.wrapping_add(1) == v.rcv_nxt;
            if !resent {
                let fresh = !seg.has(flags::ACK) && !seg.has(flags::FIN);
                m.challenged = fresh.then(|| {
                    let syn = SynSeg {
                        seq: seg.seq,
                        window: seg.window,
                        mss: seg.options.mss,
                        window_scale: seg.options.window_scale,
                    };
                    (Instant::now(), syn)
                });
            }
            return;
        }
        let keepalive = seg.has(flags::ACK)
            && !seg.has(flags::SYN)
            && !seg.has(flags::FIN)
            && seg.payload.is_empty()
            && after(v.rcv_nxt, seg.seq);
        if keepalive && v.phase == "Established" && same {
            // Answered at once or at the end of the batch.
            self.reply_due = Some((self.link.offered - answered, v.isn));
        }
    }

    /// The guest's RST answered our challenge ACK to its SYN: the flows
    /// closed the connection and opened one for the SYN (or tried to).
    fn reopened(&mut self, m: &mut Model, seg: &Segment<'_>) {
        let (at, syn) = m.challenged.unwrap_or_else(|| {
            panic!(
                "a guest segment with flags {:#04x} replaced an open connection: only an \
                 RST answering a challenged SYN may",
                seg.flags
            )
        });
        assert!(
            seg.has(flags::RST),
            "a connection replaced by a segment without RST"
        );
        let elapsed = at.elapsed();
        assert!(
            elapsed < REOPEN_NEVER,
            "a SYN challenged {elapsed:?} before the guest's RST opened a connection"
        );
        if self.trace {
            eprintln!("guest: RST reopens with its SYN of {elapsed:?} ago");
        }
        if let Some(stream) = m.host.take() {
            reset_close(stream);
        }
        let mut new = Model::new(m.guest, m.gw, (m.guest_port, m.our_port), syn.seq, false);
        new.opened = true;
        new.take_syn_options(syn.mss, syn.window_scale, syn.window);
        new.flow_port = self.flow_local_port();
        if let Some(v) = self.flow_view() {
            assert_eq!(
                v.rcv_nxt,
                syn.seq.wrapping_add(1),
                "the new connection does not start at the challenged SYN"
            );
        }
        *m = new;
    }

    /// Inbound: the flows took the guest's SYN-ACK (`seg`; `n` the flow
    /// after it). The guest's numbers start over from its ISN there.
    fn synced(&mut self, m: &mut Model, seg: &Segment<'_>, n: &FlowView) {
        let has = |f: u8| seg.flags & f == f;
        assert!(
            has(flags::SYN | flags::ACK) && !has(flags::RST),
            "the flows took a segment with flags {:#04x} as the guest's SYN-ACK",
            seg.flags
        );
        let isn = m
            .our_isn
            .or(m.refused_isn)
            .expect("the guest's SYN-ACK taken before our SYN went out");
        assert_eq!(
            seg.ack,
            isn.wrapping_add(1),
            "the flows took a SYN-ACK that does not acknowledge our SYN"
        );
        assert_eq!(n.rcv_nxt, seg.seq.wrapping_add(1), "the guest's ISN");
        if self.trace {
            eprintln!("guest: SYN-ACK taken, ISN {:#x}", seg.seq);
        }
        m.synced = true;
        m.g_isn = seg.seq;
        m.snd_nxt = 0;
        m.prefix = 0;
        m.fin_bound = None;
        m.max_ack = None;
        m.refused_ack = None;
        m.max_window = 0;
        m.take_syn_options(seg.options.mss, seg.options.window_scale, seg.window);
        m.acked_bound = 0;
    }

    /// End of a batch of guest frames: staged data is written, ACKs go out.
    fn flush(&mut self, m: &mut Model) {
        if self.batch_open {
            self.batch_open = false;
            self.engine(|tcp, flows, ctx| tcp.flush_acks(flows, ctx));
            self.check_frames(m);
        }
        if let Some((mark, isn)) = self.reply_due.take() {
            if self.flow_view().is_some_and(|v| v.isn == isn) {
                assert!(
                    self.link.offered > mark,
                    "a keepalive (no data, before the next expected byte) got no ACK"
                );
            }
        }
    }

    // --- the flows' frames --------------------------------------------

    /// Checks and takes in the frames the flows sent; returns how many.
    fn check_frames(&mut self, m: &mut Model) -> usize {
        let mut bytes = std::mem::take(&mut self.link.bytes);
        let mut ends = std::mem::take(&mut self.link.ends);
        let mut offloads = std::mem::take(&mut self.link.offloads);
        let mut start = 0;
        let mut rst = false;
        for (&end, &offload) in ends.iter().zip(&offloads) {
            rst |= self.check_frame(m, &bytes[start..end], offload);
            start = end;
        }
        let count = ends.len();
        bytes.clear();
        ends.clear();
        offloads.clear();
        self.link.bytes = bytes;
        self.link.ends = ends;
        self.link.offloads = offloads;
        if let Some(isn) = self.link.refused_isn.take() {
            if let Some(prev) = m.our_isn.or(m.refused_isn) {
                assert_eq!(isn, prev, "the (refused) SYN-ACK's ISN changed");
            }
            m.refused_isn = Some(isn);
        }
        for end in std::mem::take(&mut self.link.refused_ends) {
            let isn = m
                .our_isn
                .or(m.refused_isn)
                .expect("a segment before the SYN-ACK");
            let end = i64::from(end.wrapping_sub(isn.wrapping_add(1)) as i32);
            m.refused_max = m.refused_max.max(end);
        }
        for seq in std::mem::take(&mut self.link.refused_fins) {
            let isn = m
                .our_isn
                .or(m.refused_isn)
                .expect("a FIN before the SYN-ACK");
            let off = seq.wrapping_sub(isn.wrapping_add(1));
            assert!(m.host_fin, "FIN to the guest: the host did not shut down");
            assert_eq!(
                off, m.host_written,
                "our (refused) FIN is not at the end of what the host wrote"
            );
            m.fin_refused = true;
        }
        if let Some(a) = self.link.refused_ack.take() {
            let a = a.wrapping_sub(m.g_isn.wrapping_add(1));
            if m.refused_ack.is_none_or(|r| after(a, r)) {
                m.refused_ack = Some(a);
            }
        }
        assert!(
            !rst || !self.has_flow(),
            "an RST to the guest left its connection in the table"
        );
        self.check_sent(m);
        count
    }

    /// What the flows count as sent to the guest is what the link took:
    /// their data sent (`snd_nxt`, less a FIN) never goes beyond the
    /// end of the data frames the guest got.
    fn check_sent(&self, m: &Model) {
        let Some(flow) = self.flow_id().and_then(|id| self.flows.get(id)) else {
            return;
        };
        let FlowState::Tcp(c) = &flow.state else {
            return;
        };
        let core = c.core();
        if m.our_isn != Some(core.isn()) {
            return;
        }
        // Our FIN (at the end of what the host wrote) is no data.
        let mut sent = core.snd_nxt().wrapping_sub(core.isn().wrapping_add(1));
        if core.fin_sent() && after(sent, m.host_written) {
            sent = m.host_written;
        }
        assert!(
            !after(sent, m.data_max),
            "the flows count data up to {sent} as sent: the link took data up to {} \
             ({} frames refused)",
            m.data_max,
            self.link.refused
        );
    }

    /// Checks one frame toward the guest; returns whether it is an RST.
    fn check_frame(&self, m: &mut Model, frame: &[u8], offload: Option<Offload>) -> bool {
        let seg = parse_segment(frame).expect("a frame to the guest parses as TCP");
        let v6 = m.guest.is_ipv6();
        let header_len = data_header_len(v6);
        match offload {
            None => check_checksums(frame, &seg),
            Some(o) => {
                assert!(frame.len() <= 65535, "a frame of {} bytes", frame.len());
                let partial = o
                    .partial_checksum
                    .expect("an offloaded frame without a partial checksum");
                assert_eq!(
                    usize::from(partial.start),
                    header_len - 20,
                    "partial checksum start"
                );
                assert_eq!(partial.offset, CHECKSUM_OFFSET, "partial checksum field");
                assert_eq!(
                    usize::from(frame[header_len - 20 + 12] >> 4) * 4,
                    20,
                    "an offloaded frame with TCP options"
                );
                assert!(!seg.payload.is_empty(), "an offloaded frame without data");
                // What the guest's kernel does: the sum from `start` on
                // (the field holds the pseudo-header's), complemented,
                // into the field.
                let mut full = frame.to_vec();
                let field = usize::from(partial.start + partial.offset);
                let sum = checks::ones_complement_sum(&full[usize::from(partial.start)..]);
                full[field..field + 2].copy_from_slice(&(!sum).to_be_bytes());
                check_checksums(&full, &seg);
            }
        }
        assert_eq!(frame[..6], GUEST_MAC, "destination MAC");
        assert_eq!(seg.src_mac, self.config.our_mac, "source MAC");
        assert_eq!((seg.src, seg.dst), (m.gw, m.guest), "addresses");
        let ports = (seg.src_port, seg.dst_port);
        if seg.flags & flags::RST != 0 && ports != (m.our_port, m.guest_port) {
            // The RST of an earlier connection that the link refused, sent
            // once it took frames again (the flows keep refused RSTs).
            return false;
        }
        assert_eq!(ports, (m.our_port, m.guest_port), "ports");
        let has = |f: u8| seg.flags & f == f;
        let len = seg.payload.len() as u32;
        if self.trace {
            eprintln!(
                "engine: flags {:#04x} seq {} len {len} ack {} win {}{}",
                seg.flags,
                seg.seq
                    .wrapping_sub(m.our_isn.unwrap_or(seg.seq).wrapping_add(1))
                    as i32,
                seg.ack.wrapping_sub(m.g_isn.wrapping_add(1)) as i32,
                seg.window,
                match offload.and_then(|o| o.gso) {
                    Some(g) => format!(" (gso {})", g.segment_size),
                    None if offload.is_some() => " (offloaded)".to_string(),
                    None => String::new(),
                }
            );
        }
        if has(flags::RST) {
            m.engine_rst = true;
            return true;
        }
        if has(flags::SYN) && m.inbound {
            assert!(!has(flags::ACK), "our SYN to the guest with ACK");
            assert!(seg.payload.is_empty(), "our SYN with payload");
            assert!(!has(flags::FIN), "SYN with FIN");
            assert!(seg.options.mss.is_some(), "our SYN without MSS");
            assert!(
                !m.synced,
                "our SYN again after the guest's SYN-ACK was taken"
            );
            m.our_mss = seg.options.mss;
            if let Some(isn) = m.our_isn.or(m.refused_isn) {
                assert_eq!(seg.seq, isn, "our SYN's ISN changed");
            }
            m.our_isn = Some(seg.seq);
            return false;
        }
        assert!(
            m.synced,
            "a segment with flags {:#04x} to the guest before its SYN-ACK was taken",
            seg.flags
        );
        if has(flags::SYN) {
            assert!(
                has(flags::ACK),
                "a SYN without ACK to a connection the guest opened"
            );
            assert!(seg.payload.is_empty(), "a SYN-ACK with payload");
            assert!(!has(flags::FIN), "SYN with FIN");
            assert!(seg.options.mss.is_some(), "a SYN-ACK without MSS");
            m.our_mss = seg.options.mss;
            match m.our_isn.or(m.refused_isn) {
                None => {}
                Some(isn) => assert_eq!(seg.seq, isn, "the SYN-ACK's ISN changed"),
            }
            m.our_isn = Some(seg.seq);
        }
        if has(flags::ACK) {
            let a = seg.ack.wrapping_sub(m.g_isn.wrapping_add(1));
            let bound = m.ack_bound();
            assert!(
                !after(a, bound),
                "ACK of {a} bytes: the guest sent at most {bound} in order (FIN included)"
            );
            if let Some(prev) = m.max_ack {
                assert!(!after(prev, a), "ACK went back from {prev} to {a}");
            }
            if has(flags::SYN) {
                assert_eq!(a, 0, "our SYN-ACK does not acknowledge the guest's SYN");
            }
            m.max_ack = Some(a);
        } else {
            panic!("a segment to the guest without ACK: flags {:#x}", seg.flags);
        }
        if has(flags::SYN) {
            return false;
        }
        // The guest may not have our ISN (the link refused the SYN-ACK):
        // the flows have it all the same.
        let isn = m
            .our_isn
            .or(m.refused_isn)
            .expect("data, ACK or FIN to the guest before the SYN-ACK");
        let off = seg.seq.wrapping_sub(isn.wrapping_add(1));
        // A zero-window probe is one before the next byte: our ISN if no
        // data went out yet.
        let earliest = if len == 0 && !has(flags::FIN) { -1 } else { 0 };
        assert!(
            (off as i32) >= earliest,
            "segment before our ISN: offset {} ({len} bytes, flags {:#04x})",
            off as i32,
            seg.flags
        );
        if off as i32 == -1 {
            return false;
        }
        let end = off.wrapping_add(len);
        let gso = offload.and_then(|o| o.gso);
        if let Some(gso) = gso {
            assert_eq!(gso.v6, v6, "GSO family");
            assert_eq!(usize::from(gso.header_len), header_len, "GSO header length");
            assert_eq!(
                gso.segment_size,
                m.mss(),
                "GSO segment size: the guest's MSS is {}, ours {:?}",
                m.syn_mss,
                m.our_mss
            );
            assert!(
                len > u32::from(gso.segment_size),
                "GSO for {len} bytes: one segment of {}",
                gso.segment_size
            );
            assert!(
                len as usize <= 65535 - header_len,
                "GSO for {len} bytes: beyond 64 KiB with headers"
            );
            assert!(!has(flags::FIN), "a GSO frame with FIN");
        }
        if len > 0 {
            assert!(
                gso.is_some() || len <= u32::from(m.mss()),
                "{len} bytes in a segment: the guest's MSS is {}, ours {:?}",
                m.syn_mss,
                m.our_mss
            );
            assert!(
                end <= m.host_written,
                "data up to {end} sent: the host wrote {}",
                m.host_written
            );
            if let Some(i) = pattern_mismatch(HOST_SALT, off, seg.payload) {
                panic!(
                    "byte {} of the stream to the guest is wrong (segment at {off}, {len} bytes)",
                    off as usize + i
                );
            }
            assert!(
                i64::from(end) <= m.acked_bound + m.max_window as i64,
                "data up to {end}: the guest acknowledged at most {} with windows of at most {}",
                m.acked_bound,
                m.max_window
            );
            if let Some(fin) = m.fin_at {
                assert!(end <= fin, "data up to {end} after our FIN at {fin}");
            }
            if !after(off, m.rcv_nxt) && after(end, m.rcv_nxt) {
                m.rcv_nxt = end;
            }
            if after(end, m.data_max) {
                m.data_max = end;
            }
        } else {
            let fin = m.fin_at.is_some() || m.fin_refused;
            assert!(
                off <= m.host_written + u32::from(fin),
                "sequence {off} beyond the host's {} bytes",
                m.host_written
            );
        }
        if has(flags::FIN) {
            assert!(m.host_fin, "FIN to the guest: the host did not shut down");
            assert_eq!(
                end, m.host_written,
                "our FIN is not at the end of what the host wrote"
            );
            if let Some(fin) = m.fin_at {
                assert_eq!(fin, end, "our FIN moved");
            }
            m.fin_at = Some(end);
        }
        m.sent_max = m.sent_max.max(i64::from(end) + i64::from(has(flags::FIN)));
        false
    }

    // --- the event loop and the clock -------------------------------

    fn events(&mut self, m: &mut Model) {
        for _ in 0..EVENT_ROUNDS {
            let mut ready = std::mem::take(&mut self.ready);
            self.events.poll(&mut ready).expect("epoll");
            let any = !ready.is_empty();
            for r in &ready {
                match r.token.kind {
                    TokenKind::Tcp => {
                        let id = FlowId::from_raw(r.token.index);
                        self.engine(|tcp, flows, ctx| tcp.on_socket(flows, ctx, id, r));
                    }
                    TokenKind::TcpListener => {
                        let opened = self.tcp.counters.opened_from_host;
                        self.on_listener(r.token.index);
                        let opened = self.tcp.counters.opened_from_host - opened;
                        if opened > 0 {
                            assert!(
                                opened == 1 && m.inbound && !m.opened && m.host.is_some(),
                                "{opened} connections from the host: it made none"
                            );
                            m.opened = true;
                        }
                    }
                    kind => panic!("an event of kind {kind:?}"),
                }
                self.check_frames(m);
            }
            self.ready = ready;
            if !any {
                break;
            }
        }
    }

    fn tick(&mut self, m: &mut Model, jump: Duration) {
        self.clock += jump;
        let now = Instant::now() + self.clock;
        self.engine(|tcp, flows, ctx| tcp.on_tick(flows, ctx, now));
        self.check_frames(m);
    }

    fn tune(&self, m: &mut Model, which: u8, size: usize) {
        use rustix::net::sockopt::{set_socket_recv_buffer_size, set_socket_send_buffer_size};
        let _ = match which % 3 {
            0 => match self.flow_id().and_then(|id| self.flows.get(id)) {
                Some(flow) => match &flow.state {
                    FlowState::Tcp(conn) => set_socket_send_buffer_size(&conn.socket, size),
                    _ => Ok(()),
                },
                None => Ok(()),
            },
            1 => match &m.host {
                Some(s) => {
                    m.rcvbuf_shrunk = true;
                    set_socket_recv_buffer_size(s, size)
                }
                None => Ok(()),
            },
            _ => match &m.host {
                Some(s) => set_socket_send_buffer_size(s, size),
                None => Ok(()),
            },
        };
    }

    // --- host side --------------------------------------------------

    fn accept(&mut self, m: &mut Model) {
        if m.host.is_some() || m.host_closed || !m.opened || m.inbound {
            return;
        }
        // An error: nothing yet (or a connection reset before it was
        // accepted).
        while let Ok((stream, peer)) = self.listener(m).accept() {
            if m.flow_port.is_some_and(|p| p != peer.port()) {
                // An earlier connection's, on the same 4-tuple (its SYN
                // reopened it), reset by now.
                reset_close(stream);
                continue;
            }
            stream.set_nonblocking(true).unwrap();
            // The host side sends what it is given at once (the closing
            // checks do not wait for Nagle's algorithm).
            let _ = stream.set_nodelay(true);
            m.host = Some(stream);
            break;
        }
    }

    fn host_write(&mut self, m: &mut Model, len: usize) {
        self.accept(m);
        let Some(stream) = &mut m.host else { return };
        let len = len.min((HOST_MAX - m.host_written) as usize);
        if m.host_fin || len == 0 {
            return;
        }
        fill_pattern(HOST_SALT, m.host_written, &mut self.buf[..len]);
        match stream.write(&self.buf[..len]) {
            Ok(n) => m.host_written += n as u32,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) if matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe) => {
                m.host_rst = true
            }
            Err(e) => panic!("host write: {e}"),
        }
    }

    /// Reads up to `len` bytes; returns how many.
    fn host_read(&mut self, m: &mut Model, len: usize) -> usize {
        self.accept(m);
        let Some(stream) = &mut m.host else { return 0 };
        if len == 0 {
            return 0;
        }
        // Acknowledge at once what arrives (no delayed ACK holding the
        // flows' socket back): the kernel leaves quick-ACK mode on its
        // own, so this is renewed on every read.
        let _ = rustix::net::sockopt::set_tcp_quickack(&*stream, true);
        match stream.read(&mut self.buf[..len]) {
            Ok(0) => {
                // After a reset, reads give 0 too.
                if !m.host_eof && !m.host_rst {
                    m.host_eof = true;
                    let fin_acked = m
                        .ack_tried()
                        .is_some_and(|a| !after(m.host_read.wrapping_add(1), a));
                    // A guest that reset the connection right after its FIN
                    // (same batch) needs no ACK of it any more.
                    assert!(
                        fin_acked || m.engine_rst || m.guest_rst,
                        "the host saw the end of the stream at {}: the guest's FIN \
                         was never acknowledged (last ACK {:?})",
                        m.host_read,
                        m.max_ack
                    );
                }
                0
            }
            Ok(n) => {
                assert!(!m.host_eof, "data after the end of the stream");
                if let Some(i) = pattern_mismatch(GUEST_SALT, m.host_read, &self.buf[..n]) {
                    panic!(
                        "byte {} of the stream to the host is wrong",
                        m.host_read as usize + i
                    );
                }
                m.host_read += n as u32;
                // A guest RST may cut off the ACK of data the flows wrote
                // in the same batch: the host may read it all the same.
                let acked = m.ack_tried().unwrap_or(0);
                assert!(
                    m.guest_rst || !after(m.host_read, acked),
                    "the host read {} bytes: {acked} were acknowledged to the guest",
                    m.host_read
                );
                n
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => 0,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {
                m.host_rst = true;
                0
            }
            Err(e) => panic!("host read: {e}"),
        }
    }

    fn host_shutdown(&mut self, m: &mut Model) {
        self.accept(m);
        if let Some(stream) = &m.host {
            match stream.shutdown(Shutdown::Write) {
                Ok(()) => m.host_fin = true,
                Err(e) if e.kind() == ErrorKind::NotConnected => m.host_rst = true,
                Err(e) => panic!("host shutdown: {e}"),
            }
        }
    }

    fn host_close(&mut self, m: &mut Model, reset: bool) {
        self.accept(m);
        let Some(stream) = m.host.take() else { return };
        m.host_closed = true;
        if reset {
            m.host_rst = true;
            reset_close(stream);
        } else {
            // Unread data makes the kernel reset instead: our FIN is
            // allowed either way, an RST too.
            m.host_fin = true;
            drop(stream);
        }
    }

    /// Resets the host's end of the connection and anything still
    /// waiting on the listener.
    fn end_host_side(&mut self, m: &mut Model) {
        if let Some(stream) = m.host.take() {
            reset_close(stream);
        }
        m.host_closed = true;
        while let Ok((stream, _)) = self.listener(m).accept() {
            reset_close(stream);
        }
    }

    // --- end of an input ------------------------------------------

    /// With nobody reset: the guest acknowledges everything with an open
    /// window and the host reads everything, until nothing moves; then
    /// both directions must be complete.
    fn settle(&mut self, m: &mut Model) {
        self.events(m);
        if !m.opened {
            return;
        }
        self.accept(m);
        if !m.orderly() {
            return;
        }
        let mut stalled = Duration::ZERO;
        let mut waited = Duration::ZERO;
        let mut timer_runs = 0;
        for _ in 0..SETTLE_ROUNDS {
            let before = (m.rcv_nxt, m.fin_at, m.host_read, m.host_eof, m.max_ack);
            self.resume(m);
            if m.established() && self.has_flow() {
                self.guest_ack(m);
            }
            self.events(m);
            while self.host_read(m, 65536) > 0 {}
            self.events(m);
            while self.host_read(m, 65536) > 0 {}
            if !m.orderly() {
                return;
            }
            if before != (m.rcv_nxt, m.fin_at, m.host_read, m.host_eof, m.max_ack) {
                stalled = Duration::ZERO;
                continue;
            }
            // Stalled: the kernels may hold data back for a while (a
            // delayed ACK, a retransmission timer, the wake-up of a socket
            // whose send buffer was made tiny): wait a little in real time
            // before judging.
            let read = m.host_read.wrapping_add(u32::from(m.host_eof));
            let to_host = after(m.ack_tried().unwrap_or(0), read) && !m.rcvbuf_shrunk;
            let to_guest = self.has_flow()
                && m.established()
                && !m.acked_unreceived
                && (m.rcv_nxt != m.host_written || (m.host_fin && m.fin_at.is_none()));
            if !(to_host || to_guest) || stalled >= MAX_STALL || waited >= MAX_WAIT {
                break;
            }
            // A control frame the link refused (our FIN, the SYN-ACK) is
            // sent again by the ACK timer only (a lost frame, as far as
            // the flows know): let it run, a few times at most.
            if to_guest && self.link.refused > 0 && timer_runs < SETTLE_TIMER_RUNS {
                timer_runs += 1;
                if self.trace {
                    eprintln!("settle: stalled, the ACK timer runs");
                }
                self.tick(m, RTO_MAX);
                continue;
            }
            if self.trace && stalled.is_zero() {
                eprintln!("settle: stalled after {waited:?} of waits");
            }
            std::thread::sleep(STALL_STEP);
            stalled += STALL_STEP;
            waited += STALL_STEP;
        }
        if self.trace {
            self.trace_conn("settled");
        }
        let acked = m.ack_tried().unwrap_or(0);
        let read = m.host_read.wrapping_add(u32::from(m.host_eof));
        assert!(
            m.rcvbuf_shrunk || read == acked,
            "the host read {} bytes (end of stream: {}): {acked} were acknowledged to the guest",
            m.host_read,
            m.host_eof
        );
        if m.established() && self.has_flow() && !m.acked_unreceived {
            assert_eq!(
                m.rcv_nxt, m.host_written,
                "the guest received {} bytes: the host wrote {}",
                m.rcv_nxt, m.host_written
            );
            if m.host_fin {
                assert_eq!(
                    m.fin_at,
                    Some(m.host_written),
                    "no FIN after the host's shutdown"
                );
            }
        }
    }

    /// Prints the flow's state (tracing).
    fn trace_conn(&self, when: &str) {
        let Some(flow) = self.flow_id().and_then(|id| self.flows.get(id)) else {
            eprintln!("{when}: no flow");
            return;
        };
        if let FlowState::Tcp(c) = &flow.state {
            eprintln!(
                "{when}: phase {:?} kept {} want_out {} window_closed {} from_guest {:?} \
                 host_pending {} fin_sent {} in_flight {}",
                c.core().phase(),
                c.kept(),
                c.want_out,
                c.core().window_closed(),
                c.core().from_guest(),
                c.host_pending,
                c.core().fin_sent(),
                c.core().in_flight()
            );
        }
    }

    /// A pure ACK of everything received, window fully open.
    fn guest_ack(&mut self, m: &mut Model) {
        let seq = m.retransmit_seq();
        let ctl = Control {
            seq,
            ack: m.rcv_ack(),
            flags: flags::ACK,
            window: u16::MAX,
        };
        let ends = self.guest_ends(m);
        let len = build_control(&ends, &ctl, &TcpOptions::default(), &mut self.frame).unwrap();
        let off = seq.wrapping_sub(m.g_isn.wrapping_add(1));
        self.model_guest_segment(m, flags::ACK, off, 0, ctl.ack, ctl.window);
        self.send_guest_frame(m, len);
        self.flush(m);
    }

    /// Resets the connection from the guest, closes the host's end, and
    /// checks that nothing is left.
    fn teardown(&mut self, m: &mut Model) {
        self.flush(m);
        if self.trace {
            eprintln!("counters: {:?}", self.tcp.counters);
        }
        // The RST may answer a challenge ACK to a SYN of the guest's: then
        // the new connection it opens is reset in turn.
        for _ in 0..2 {
            let Some(v) = self.flow_view() else { break };
            // Exactly at the next expected byte (our SYN, if the guest's
            // SYN-ACK is missing, acknowledged).
            let ctl = Control {
                seq: v.rcv_nxt,
                ack: v.snd_nxt,
                flags: flags::RST | flags::ACK,
                window: 0,
            };
            let ends = self.guest_ends(m);
            let len = build_control(&ends, &ctl, &TcpOptions::default(), &mut self.frame).unwrap();
            if self.trace {
                self.trace_conn("teardown");
            }
            self.send_guest_frame(m, len);
            self.flush(m);
        }
        assert!(
            !self.has_flow(),
            "an RST at the expected sequence number left the connection open"
        );
        self.end_host_side(m);
        self.events(m);
        assert!(!self.has_flow(), "a connection outlived the input");
    }
}

/// A blocking TCP connection from `local` (`SO_REUSEADDR`) to the
/// loopback of its family, port `port`.
fn client_socket(local: SocketAddr, port: u16) -> std::io::Result<TcpStream> {
    use rustix::net::{AddressFamily, SocketFlags, SocketType, sockopt};
    let family = match local {
        SocketAddr::V4(_) => AddressFamily::INET,
        SocketAddr::V6(_) => AddressFamily::INET6,
    };
    let socket = rustix::net::socket_with(family, SocketType::STREAM, SocketFlags::CLOEXEC, None)?;
    sockopt::set_socket_reuseaddr(&socket, true)?;
    rustix::net::bind(&socket, &local)?;
    rustix::net::connect(&socket, &SocketAddr::new(local.ip(), port))?;
    Ok(TcpStream::from(socket))
}

/// A host read/write length: one byte, or a u16 if its top bit is set.
fn length(input: &mut Input<'_>) -> usize {
    match input.u8() {
        l @ 0..=0x7f => usize::from(l) * 64,
        _ => usize::from(input.u16()),
    }
}

/// The IPv4 header checksum and the TCP checksum verify.
fn check_checksums(frame: &[u8], seg: &Segment<'_>) {
    let (ip_len, pseudo) = match (seg.src, seg.dst) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => {
            assert_eq!(
                checks::ones_complement_sum(&frame[14..34]),
                0xffff,
                "IPv4 checksum"
            );
            (20, [&src.octets()[..], &dst.octets()].concat())
        }
        (IpAddr::V6(src), IpAddr::V6(dst)) => (40, [&src.octets()[..], &dst.octets()].concat()),
        _ => unreachable!("parse_segment returns one family"),
    };
    let segment = &frame[14 + ip_len..];
    let len = u32::try_from(segment.len()).unwrap();
    let pseudo = [&pseudo[..], &len.to_be_bytes(), &[0, 0, 0, 6], segment].concat();
    assert_eq!(checks::ones_complement_sum(&pseudo), 0xffff, "TCP checksum");
}

fuzz_target!(|data: &[u8]| {
    WORLD.with_borrow_mut(|world| world.run(data));
});
