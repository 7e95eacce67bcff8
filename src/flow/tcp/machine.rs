//! The connection state machine of one TCP connection, as plain data and
//! pure functions: no sockets, no clock reads, no frames. The caller
//! (`flow/tcp/mod.rs` and its neighbours) reads the socket facts, hands
//! them in with the time, and carries out what comes back (write these
//! payload bytes, discard that many from the socket, send an ACK, resend,
//! close).
//!
//! Sequence space toward the guest (RFC 9293 names): `snd_una` is the
//! guest's cumulative acknowledgement, `snd_nxt` the next sequence number
//! we send, `snd_max` the highest we ever sent (a rewind moves `snd_nxt`
//! back, never `snd_max`, so the guest may acknowledge up to `snd_max`).
//! Our SYN takes `isn`, our FIN takes `fin_seq` once the host's stream
//! ended. The data part of `snd_una..snd_nxt` is exactly the bytes at the
//! head of the host socket's receive queue that were sent already (the
//! peek offset). From the guest: `rcv_nxt` is the next byte expected;
//! everything before it was written to the host socket or kept.
//!
//! The rules (RFC 9293, RFC 5961, RFC 1122, RFC 6298, DESIGN.md §1):
//! - an ACK above `snd_max` acknowledges what was never sent: the segment
//!   is dropped and answered with an ACK; an ACK below `snd_una` is old
//!   and moves nothing, not even the window;
//! - a segment that is not acceptable (a keepalive or a zero-window probe
//!   at `rcv_nxt - 1`, old data) is answered with an ACK;
//! - an RST exactly at `rcv_nxt` closes; one elsewhere in the window gets
//!   a challenge ACK; a SYN on an open connection gets a challenge ACK
//!   (the guest, if it rebooted, answers with an RST at `rcv_nxt`, and its
//!   SYN is then taken as a new connection at once);
//! - the guest's MSS is clamped to at least 536 (IPv4) / 1220 (IPv6);
//! - retransmission: three duplicate ACKs rewind once per window (the
//!   recovery ends at the `snd_max` of that moment); a partial ACK during
//!   recovery resends the first segment at once; the timer runs from when
//!   data went out (restarted on progress), doubles on each expiry up to
//!   [`RTO_MAX`], and gives up after [`GIVE_UP`] without progress;
//! - persist: while the guest's window leaves no room and the host has
//!   data, a probe (an ACK at `snd_nxt - 1`) asks for the window, with
//!   back-off, for as long as the guest answers;
//! - timeouts: SYN 10 s; the FIN timeout only once both directions are
//!   closed; idle 2 h. A half-closed connection stays up.
//!
//! Invariants (checked by the property test below): `snd_una <= snd_nxt
//! <= snd_max` in sequence space; the data acknowledged never exceeds the
//! data sent; `rcv_nxt` only moves forward, by bytes taken or the FIN;
//! our FIN is sent once, at the end of the host's stream.
//! May call: nothing but std and `wire::tcp::flags`.

use std::ops::Range;
use std::time::{Duration, Instant};

use crate::wire::tcp::flags;

/// Largest window we offer and accept (upstream: 16 MiB, window scale 8).
pub const MAX_WINDOW: u32 = 16 << 20;
/// Our window scale toward the guest.
pub const OUR_WINDOW_SCALE: u8 = 8;
/// Largest window scale the guest may ask for (RFC 7323).
pub const MAX_WINDOW_SCALE: u8 = 14;
/// Guest MSS when its SYN has none (RFC 9293).
pub const DEFAULT_MSS: u16 = 536;
/// Smallest guest MSS taken, per family (RFC 9293 3.7.1; RFC 8200 §5).
pub const MIN_MSS4: u16 = 536;
pub const MIN_MSS6: u16 = 1220;
/// Duplicate ACKs that trigger a retransmission (as a TCP sender does).
pub const DUP_ACK_THRESHOLD: u8 = 3;

/// SYN (either way) unanswered for this long: reset.
pub const SYN_TIMEOUT: Duration = Duration::from_secs(10);
/// The first retransmission timeout; it doubles on each expiry.
pub const ACK_TIMEOUT: Duration = Duration::from_secs(2);
/// The largest retransmission timeout.
pub const RTO_MAX: Duration = Duration::from_secs(60);
/// No progress from the guest for this long while data is in flight:
/// reset (a guest paused for a minute keeps its connections).
pub const GIVE_UP: Duration = Duration::from_secs(300);
/// The first persist (zero-window) probe; it doubles up to [`RTO_MAX`].
pub const PERSIST_TIMEOUT: Duration = Duration::from_secs(1);
/// Both directions closed, the last ACK missing for this long: reset.
pub const FIN_TIMEOUT: Duration = Duration::from_secs(60);
/// Any connection idle for this long: reset.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(7200);
/// A SYN answered by a challenge ACK opens a new connection if the
/// guest's RST comes within this time.
const REOPEN_WITHIN: Duration = Duration::from_secs(3);

/// `a` comes after `b` in sequence space.
pub fn seq_after(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Guest SYN seen; the host socket's `connect()` is in progress.
    Connecting,
    /// Accepted on a forwarded port; our SYN is out, waiting for the
    /// guest's SYN-ACK.
    SynSent,
    /// The host connected; our SYN-ACK is out, not acknowledged yet.
    SynReceived,
    /// Both sides connected.
    Established,
}

/// The guest's side of the stream toward the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FromGuest {
    Open,
    /// The guest's FIN was taken; the host socket is shut once what is
    /// kept for it is written.
    FinTaken,
    /// `shutdown(SHUT_WR)` done.
    Shut,
}

/// How a connection ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Close {
    /// Both sides closed in order.
    Done,
    /// Reset the host side (the guest reset, or gave up).
    ResetHost,
    /// Reset both sides.
    ResetBoth,
}

/// What the guest is to be told in answer to a segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply {
    Nothing,
    /// An ACK at the end of the batch (with a fresh window).
    Ack,
    /// An ACK now repeating the last acknowledgement and window exactly,
    /// so the guest counts it as a duplicate (out-of-order data).
    DuplicateAck,
    /// An ACK now with the current numbers (RFC 5961 challenge ACK, or
    /// the answer to an unacceptable segment or an ACK of unsent data).
    AckNow,
    /// Our SYN-ACK again (the guest resent its SYN).
    SynAck,
}

/// The parts of a guest segment the state machine looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Input {
    pub flags: u8,
    pub seq: u32,
    pub ack: u32,
    pub window: u16,
    pub payload_len: usize,
    pub mss: Option<u16>,
    pub window_scale: Option<u8>,
}

impl Input {
    fn has(&self, flag: u8) -> bool {
        self.flags & flag == flag
    }

    /// No payload, SYN or FIN: only these count as duplicate ACKs.
    fn is_pure_ack(&self) -> bool {
        self.payload_len == 0 && !self.has(flags::FIN) && !self.has(flags::SYN)
    }
}

/// What to do with a guest segment, in this order: discard, rewind or
/// resend the head, write `take` of the payload (then report with
/// [`Core::took`]), reply, send data; or close.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub close: Option<Close>,
    /// Data bytes newly acknowledged: drop them from the socket.
    pub discard: u32,
    /// Resend everything in flight (fast retransmit).
    pub rewind: bool,
    /// Resend the first segment in flight (partial ACK in recovery).
    pub resend_head: bool,
    /// Payload bytes to write to the host socket.
    pub take: Option<Range<usize>>,
    /// The guest's FIN follows `take`: taken if all of it is.
    pub fin: bool,
    pub reply: Option<Reply>,
    /// Send what the host has (the handshake completed).
    pub send: bool,
    /// The guest's RST answered a challenge ACK for a new SYN: open a new
    /// connection for that SYN once this one is closed.
    pub reopen: Option<Input>,
    /// Counted as dropped (not acceptable, or not understood).
    pub dropped: bool,
    /// Counted as out of order.
    pub out_of_order: bool,
}

/// What the retransmission, persist and close timers ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timer {
    /// Reset: the named timer ran out.
    Expired(&'static str),
    /// Resend what is in flight (or the SYN).
    Retransmit,
    /// Ask the guest for its window (zero-window probe).
    Persist,
}

/// Room to offer the guest, from the host socket and what we may keep.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Room {
    /// Payload bytes the socket's send buffer takes now.
    pub socket: usize,
    /// Bytes we may still keep when the socket takes less.
    pub keep: usize,
    /// The send buffer's size (silly window avoidance: no window below
    /// half of it or one MSS, whichever is less).
    pub buffer: usize,
}

pub struct Core {
    phase: Phase,
    isn: u32,
    snd_una: u32,
    snd_nxt: u32,
    snd_max: u32,
    /// Our FIN's sequence number, once sent.
    fin_seq: Option<u32>,
    rcv_nxt: u32,
    from_guest: FromGuest,
    /// The guest's window in bytes (scaled, clamped to [`MAX_WINDOW`]).
    guest_window: u32,
    guest_scale: u8,
    our_scale: u8,
    mss: u16,
    dup_acks: u8,
    /// In fast recovery until the guest acknowledges this.
    recover: Option<u32>,
    /// The last acknowledgement and window field sent to the guest.
    ack_sent: u32,
    window_sent: u16,
    /// The last window offered was below one MSS (sent as zero): send an
    /// update once the socket drains.
    window_closed: bool,
    /// Retransmissions since the last progress (the back-off).
    retries: u8,
    /// When the retransmission timer started (data in flight).
    rto_from: Option<Instant>,
    last_progress: Instant,
    /// Zero-window probing: since when, and probes sent.
    persist: Option<(Instant, u8)>,
    /// A SYN answered by a challenge ACK, and when.
    challenged_syn: Option<(Instant, Input)>,
    last_active: Instant,
    opened: Instant,
}

impl Core {
    /// A connection the guest opened with a SYN (`input`); the host
    /// socket is connecting. `link_mss`: our MSS toward the guest.
    pub fn from_guest_syn(input: &Input, isn: u32, link_mss: u16, v6: bool, now: Instant) -> Core {
        let mut core = Core::new(Phase::Connecting, isn, now);
        core.rcv_nxt = input.seq.wrapping_add(1);
        core.take_syn_options(input, link_mss, v6);
        core
    }

    /// A connection accepted on the host: our SYN goes to the guest.
    pub fn from_host(isn: u32, now: Instant) -> Core {
        let mut core = Core::new(Phase::SynSent, isn, now);
        core.snd_nxt = isn.wrapping_add(1);
        core.snd_max = core.snd_nxt;
        core.rto_from = Some(now);
        core
    }

    fn new(phase: Phase, isn: u32, now: Instant) -> Core {
        Core {
            phase,
            isn,
            snd_una: isn,
            snd_nxt: isn,
            snd_max: isn,
            fin_seq: None,
            rcv_nxt: 0,
            from_guest: FromGuest::Open,
            guest_window: 0,
            guest_scale: 0,
            our_scale: 0,
            mss: DEFAULT_MSS,
            dup_acks: 0,
            recover: None,
            ack_sent: 0,
            window_sent: 0,
            window_closed: false,
            retries: 0,
            rto_from: None,
            last_progress: now,
            persist: None,
            challenged_syn: None,
            last_active: now,
            opened: now,
        }
    }

    /// MSS and window scaling from the guest's SYN or SYN-ACK: scaling is
    /// used only if both sides offer it; the MSS is clamped to the
    /// family's minimum and our link's MSS.
    fn take_syn_options(&mut self, input: &Input, link_mss: u16, v6: bool) {
        let floor = if v6 { MIN_MSS6 } else { MIN_MSS4 };
        let mss = input.mss.unwrap_or(DEFAULT_MSS).max(floor);
        self.mss = mss.min(link_mss).max(1);
        (self.guest_scale, self.our_scale) = match input.window_scale {
            Some(ws) => (ws.min(MAX_WINDOW_SCALE), OUR_WINDOW_SCALE),
            None => (0, 0),
        };
        self.guest_window = u32::from(input.window);
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    pub fn isn(&self) -> u32 {
        self.isn
    }

    pub fn mss(&self) -> u16 {
        self.mss
    }

    /// Whether our window scale option goes in our SYN / SYN-ACK.
    pub fn offers_window_scale(&self) -> bool {
        self.our_scale > 0 || self.phase == Phase::SynSent
    }

    /// Next sequence number toward the guest.
    pub fn snd_nxt(&self) -> u32 {
        self.snd_nxt
    }

    /// The first unacknowledged sequence number toward the guest.
    pub fn snd_una(&self) -> u32 {
        self.snd_una
    }

    /// Next sequence number expected from the guest.
    pub fn rcv_nxt(&self) -> u32 {
        self.rcv_nxt
    }

    pub fn from_guest(&self) -> FromGuest {
        self.from_guest
    }

    /// The guest's FIN was taken.
    pub fn guest_closed(&self) -> bool {
        self.from_guest != FromGuest::Open
    }

    /// Our SYN or SYN-ACK is out and not acknowledged yet.
    pub fn syn_unacked(&self) -> bool {
        matches!(self.phase, Phase::SynSent | Phase::SynReceived)
    }

    /// Something sent is not acknowledged yet (also after a rewind).
    fn outstanding(&self) -> bool {
        self.snd_max != self.snd_una
    }

    /// Our FIN was sent (at some point).
    pub fn fin_sent(&self) -> bool {
        self.fin_seq.is_some()
    }

    fn fin_in_flight(&self) -> bool {
        self.fin_seq.is_some_and(|s| seq_after(self.snd_nxt, s))
    }

    fn fin_acked(&self) -> bool {
        self.fin_seq.is_some_and(|s| seq_after(self.snd_una, s))
    }

    /// Both directions are closed and acknowledged.
    pub fn finished(&self) -> bool {
        self.from_guest == FromGuest::Shut && self.fin_acked()
    }

    /// The last window field sent.
    pub fn window_sent(&self) -> u16 {
        self.window_sent
    }

    /// The last window offered was closed for lack of room.
    pub fn window_closed(&self) -> bool {
        self.window_closed
    }

    /// Sequence space in flight toward the guest (data, SYN, FIN).
    pub fn in_flight(&self) -> u32 {
        self.snd_nxt.wrapping_sub(self.snd_una)
    }

    /// Data bytes in flight: the socket's peek offset.
    pub fn data_in_flight(&self) -> u32 {
        let syn = u32::from(self.syn_unacked() && self.in_flight() > 0);
        self.in_flight() - syn - u32::from(self.fin_in_flight() && !self.fin_acked())
    }

    /// Room the guest's window leaves for new data.
    pub fn send_room(&self) -> u32 {
        self.guest_window.saturating_sub(self.in_flight())
    }

    /// Data may go to the guest: the handshake is done and our FIN is not
    /// in flight.
    pub fn may_send_data(&self) -> bool {
        self.phase == Phase::Established && !self.fin_in_flight()
    }

    fn scaled_window(&self, field: u16) -> u32 {
        (u32::from(field) << self.guest_scale).min(MAX_WINDOW)
    }

    /// Traffic in either direction (the idle timer).
    pub fn touch(&mut self, now: Instant) {
        self.last_active = now;
    }

    /// The host socket connected: our SYN-ACK goes out.
    pub fn connected(&mut self, now: Instant) {
        self.phase = Phase::SynReceived;
        self.snd_nxt = self.isn.wrapping_add(1);
        self.snd_max = self.snd_nxt;
        self.rto_from = Some(now);
        self.last_progress = now;
    }

    /// A segment from the guest, with the time; `link_mss` and `v6` for
    /// the options of a SYN-ACK.
    pub fn on_segment(&mut self, input: &Input, link_mss: u16, v6: bool, now: Instant) -> Plan {
        self.last_active = now;
        if input.has(flags::RST) {
            return self.on_reset(input, now);
        }
        match self.phase {
            Phase::Connecting => return Plan::default(),
            Phase::SynSent => return self.on_syn_ack(input, link_mss, v6, now),
            Phase::SynReceived | Phase::Established => {}
        }
        if input.has(flags::SYN) {
            return self.on_syn(input, now);
        }
        if !input.has(flags::ACK) {
            return dropped();
        }
        let mut plan = self.on_ack(input, now);
        if plan.reply.is_some() || plan.close.is_some() {
            return plan;
        }
        if self.phase == Phase::SynReceived {
            // Data before the guest acknowledged our SYN-ACK: it cannot
            // know our sequence numbers (RFC 9293 3.10.7.4): not taken.
            plan.dropped |= !input.is_pure_ack();
            return plan;
        }
        self.plan_data(input, &mut plan);
        plan
    }

    /// RFC 5961 §3: exactly at `rcv_nxt` closes; elsewhere in the window
    /// a challenge ACK; outside it, nothing.
    fn on_reset(&mut self, input: &Input, now: Instant) -> Plan {
        let exact = match self.phase {
            Phase::SynSent => input.has(flags::ACK) && input.ack == self.isn.wrapping_add(1),
            _ => input.seq == self.rcv_nxt,
        };
        if exact {
            let reopen = self
                .challenged_syn
                .filter(|(at, _)| now.saturating_duration_since(*at) < REOPEN_WITHIN)
                .map(|(_, syn)| syn);
            return Plan {
                close: Some(Close::ResetHost),
                reopen,
                ..Plan::default()
            };
        }
        let window = (u32::from(self.window_sent) << self.our_scale).max(1);
        let in_window = input.seq.wrapping_sub(self.rcv_nxt) < window;
        match in_window && self.phase != Phase::SynSent {
            true => reply(Reply::AckNow),
            false => dropped(),
        }
    }

    /// The guest answers our SYN (a connection accepted on the host).
    fn on_syn_ack(&mut self, input: &Input, link_mss: u16, v6: bool, now: Instant) -> Plan {
        let expected = self.isn.wrapping_add(1);
        if !(input.has(flags::SYN) && input.has(flags::ACK)) || input.ack != expected {
            return dropped();
        }
        self.rcv_nxt = input.seq.wrapping_add(1);
        self.take_syn_options(input, link_mss, v6);
        self.snd_una = expected;
        self.phase = Phase::Established;
        self.progress(now);
        Plan {
            reply: Some(Reply::Ack),
            send: true,
            ..Plan::default()
        }
    }

    /// A SYN on an open connection: the guest resent its SYN (our SYN-ACK
    /// is resent), or it forgot the connection (a challenge ACK, RFC 5961
    /// §4: a guest that rebooted answers with an RST).
    fn on_syn(&mut self, input: &Input, now: Instant) -> Plan {
        let resent = self.phase == Phase::SynReceived
            && !input.has(flags::ACK)
            && input.seq.wrapping_add(1) == self.rcv_nxt;
        if resent {
            return reply(Reply::SynAck);
        }
        let fresh = !input.has(flags::ACK) && !input.has(flags::FIN);
        self.challenged_syn = fresh.then_some((now, *input));
        reply(Reply::AckNow)
    }

    /// The acknowledgement and window of a segment.
    fn on_ack(&mut self, input: &Input, now: Instant) -> Plan {
        let mut plan = Plan::default();
        let acked = input.ack.wrapping_sub(self.snd_una);
        if seq_after(self.snd_una, input.ack) {
            return plan; // old: moves nothing
        }
        if acked > self.snd_max.wrapping_sub(self.snd_una) {
            // Acknowledges what was never sent (RFC 9293 3.10.7.4).
            plan.reply = Some(Reply::AckNow);
            plan.dropped = true;
            return plan;
        }
        let window = self.scaled_window(input.window);
        if acked > 0 {
            plan.discard = self.take_ack(input.ack, now);
            if self.phase == Phase::SynReceived {
                self.phase = Phase::Established;
                plan.send = true;
            }
            if let Some(recover) = self.recover {
                match seq_after(recover, input.ack) {
                    true => plan.resend_head = self.in_flight() > 0,
                    false => self.recover = None,
                }
            }
        } else if input.is_pure_ack() && self.in_flight() > 0 && window == self.guest_window {
            self.dup_acks = self.dup_acks.saturating_add(1);
            if self.dup_acks >= DUP_ACK_THRESHOLD && self.recover.is_none() {
                self.recover = Some(self.snd_max);
                self.rewind();
                plan.rewind = true;
            }
        }
        // A window that grew matters only if host data waits for it: the
        // caller knows (`host_pending`), and a peek per segment otherwise
        // costs uploads a system call each.
        self.guest_window = window;
        if self.send_room() > 0 {
            self.persist = None;
        }
        plan
    }

    /// Moves `snd_una` to `ack` (after it, within `snd_max`); returns the
    /// data bytes acknowledged.
    fn take_ack(&mut self, ack: u32, now: Instant) -> u32 {
        let mut data = ack.wrapping_sub(self.snd_una);
        if self.syn_unacked() {
            data -= 1; // our SYN
        }
        if let Some(fin) = self.fin_seq {
            if seq_after(ack, fin) && !self.fin_acked() {
                data -= 1;
            }
        }
        self.snd_una = ack;
        if seq_after(ack, self.snd_nxt) {
            self.snd_nxt = ack;
        }
        self.progress(now);
        data
    }

    /// The guest acknowledged something new: the retransmission state
    /// starts over, and the timer restarts for what is still in flight.
    fn progress(&mut self, now: Instant) {
        self.dup_acks = 0;
        self.retries = 0;
        self.last_progress = now;
        self.rto_from = self.outstanding().then_some(now);
    }

    /// Forgets what was sent after the guest's acknowledgement, so it is
    /// sent again (the socket's peek offset must go back to 0 with it).
    pub fn rewind(&mut self) {
        let syn = u32::from(self.syn_unacked());
        self.snd_nxt = self.snd_una.wrapping_add(syn);
        self.dup_acks = 0;
    }

    /// Payload and FIN of a segment whose ACK was taken.
    fn plan_data(&mut self, input: &Input, plan: &mut Plan) {
        let fin = input.has(flags::FIN);
        if input.payload_len == 0 && !fin {
            // Zero-length: acceptable at rcv_nxt or ahead of it; before
            // it (a keepalive, a zero-window probe) it asks for an ACK.
            if seq_after(self.rcv_nxt, input.seq) {
                plan.reply = Some(Reply::Ack);
            }
            return;
        }
        if seq_after(input.seq, self.rcv_nxt) {
            plan.out_of_order = true;
            plan.reply = Some(Reply::DuplicateAck);
            return;
        }
        plan.reply = Some(Reply::Ack);
        let seen = self.rcv_nxt.wrapping_sub(input.seq) as usize;
        if self.from_guest != FromGuest::Open || seen > input.payload_len {
            return; // all seen already (and the FIN, if any)
        }
        plan.take = Some(seen..input.payload_len);
        plan.fin = fin;
    }

    /// `taken` of the `wanted` payload bytes of [`Plan::take`] were
    /// written or kept; `fin`: the FIN follows them. Returns the reply:
    /// bytes refused make it a duplicate ACK (the guest resends them).
    pub fn took(&mut self, taken: usize, wanted: usize, fin: bool) -> Reply {
        self.rcv_nxt = self.rcv_nxt.wrapping_add(taken as u32);
        if taken < wanted {
            return Reply::DuplicateAck;
        }
        if fin && self.from_guest == FromGuest::Open {
            self.rcv_nxt = self.rcv_nxt.wrapping_add(1);
            self.from_guest = FromGuest::FinTaken;
        }
        Reply::Ack
    }

    /// The host socket was shut for writing after the guest's FIN.
    pub fn host_shut(&mut self) {
        self.from_guest = FromGuest::Shut;
    }

    /// `len` data bytes went to the guest at `snd_nxt`.
    pub fn sent_data(&mut self, len: u32, now: Instant) {
        if !self.outstanding() {
            self.rto_from = Some(now);
        }
        self.snd_nxt = self.snd_nxt.wrapping_add(len);
        if seq_after(self.snd_nxt, self.snd_max) {
            self.snd_max = self.snd_nxt;
        }
        self.persist = None;
    }

    /// The host's stream ended and everything before it was sent: our
    /// FIN is due now (`true`) unless it is in flight already.
    pub fn fin_due(&self) -> bool {
        self.may_send_data()
    }

    /// Our FIN went out at `snd_nxt`.
    pub fn sent_fin(&mut self, now: Instant) {
        self.fin_seq.get_or_insert(self.snd_nxt);
        self.sent_data(1, now);
    }

    /// The guest's window leaves no room while the host has data: start
    /// the persist timer if it is not running and nothing is in flight
    /// (else the retransmission timer asks for the window).
    pub fn window_full(&mut self, now: Instant) {
        if !self.outstanding() && self.persist.is_none() {
            self.persist = Some((now, 0));
        }
    }

    /// The acknowledgement and window field of an ACK or data segment
    /// about to go out.
    pub fn sending_ack(&mut self, window: u16) -> (u32, u16) {
        self.ack_sent = self.rcv_nxt;
        self.window_sent = window;
        (self.rcv_nxt, window)
    }

    /// The ACK that repeats the last acknowledgement and window exactly
    /// (a duplicate the guest counts).
    pub fn duplicate_ack(&self) -> (u32, u16) {
        (self.rcv_nxt, self.window_sent)
    }

    /// The window field to offer from `room` (DESIGN §1 rule 1: never
    /// more than we can take). Small windows are not offered (receiver
    /// side silly window avoidance, RFC 1122 4.2.3.3): below one MSS or
    /// half the buffer, whichever is less, the window is zero, and an
    /// update follows when the socket drains (rule 3).
    pub fn window_field(&mut self, room: Room) -> u16 {
        let room_bytes = (room.socket + room.keep).min(MAX_WINDOW as usize);
        let smallest = usize::from(self.mss).min(room.buffer / 2).max(1);
        let closed_by_fin = self.from_guest != FromGuest::Open;
        if closed_by_fin || room_bytes < smallest {
            self.window_closed = !closed_by_fin;
            return 0;
        }
        self.window_closed = false;
        (room_bytes >> self.our_scale).min(usize::from(u16::MAX)) as u16
    }

    /// The timer due at `now`, if any.
    pub fn timer_due(&self, now: Instant) -> Option<Timer> {
        let since = |t: Instant| now.saturating_duration_since(t);
        let handshake = self.phase != Phase::Established;
        if handshake && since(self.opened) >= SYN_TIMEOUT {
            return Some(Timer::Expired("SYN"));
        }
        let both_closed = self.from_guest != FromGuest::Open && self.fin_sent();
        if both_closed && since(self.last_active) >= FIN_TIMEOUT {
            return Some(Timer::Expired("FIN"));
        }
        if since(self.last_active) >= IDLE_TIMEOUT {
            return Some(Timer::Expired("idle"));
        }
        if let Some(from) = self.rto_from.filter(|_| self.phase != Phase::Connecting) {
            if since(from) < backoff(ACK_TIMEOUT, self.retries) {
                return None;
            }
            if since(self.last_progress) >= GIVE_UP {
                return Some(Timer::Expired("retransmission"));
            }
            return Some(Timer::Retransmit);
        }
        match self.persist {
            Some((from, probes)) if since(from) >= backoff(PERSIST_TIMEOUT, probes) => {
                Some(Timer::Persist)
            }
            _ => None,
        }
    }

    /// The retransmission timer fired: back off, and rewind (the caller
    /// resends the SYN or the data).
    pub fn on_retransmit(&mut self, now: Instant) {
        self.retries = self.retries.saturating_add(1);
        self.rto_from = Some(now);
        self.rewind();
    }

    /// A persist probe went out.
    pub fn on_persist(&mut self, now: Instant) {
        let probes = self.persist.map_or(0, |(_, n)| n);
        self.persist = Some((now, probes.saturating_add(1)));
    }

    /// The sequence number of a zero-window probe: one before `snd_nxt`,
    /// so the guest answers with an ACK carrying its window.
    pub fn probe_seq(&self) -> u32 {
        self.snd_nxt.wrapping_sub(1)
    }

    /// The window offered to the guest reopened: stop waiting for it.
    pub fn window_reopened(&mut self) {
        self.window_closed = false;
    }

    /// The guest's window field in bytes (for tests and checks).
    pub fn guest_window(&self) -> u32 {
        self.guest_window
    }
}

/// `base` doubled `times` times, at most [`RTO_MAX`].
fn backoff(base: Duration, times: u8) -> Duration {
    base.saturating_mul(1 << times.min(16)).min(RTO_MAX)
}

fn dropped() -> Plan {
    Plan {
        dropped: true,
        ..Plan::default()
    }
}

fn reply(reply: Reply) -> Plan {
    Plan {
        reply: Some(reply),
        ..Plan::default()
    }
}

#[cfg(test)]
#[path = "machine_tests.rs"]
mod tests;
