//! The state machine's rules, each on its own, and a property test that
//! random segment sequences never break its invariants. No sockets.

use super::*;
use crate::flow::testing::Rng;

const ISN: u32 = 0xffff_fff0; // wraps soon after the handshake
const GUEST_ISN: u32 = 1000;
const LINK_MSS: u16 = 65480;

fn input(flag_bits: u8, seq: u32, ack: u32, window: u16, payload_len: usize) -> Input {
    Input {
        flags: flag_bits,
        seq,
        ack,
        window,
        payload_len,
        mss: None,
        window_scale: None,
    }
}

fn guest_syn(mss: Option<u16>, window_scale: Option<u8>) -> Input {
    Input {
        mss,
        window_scale,
        ..input(flags::SYN, GUEST_ISN, 0, 65535, 0)
    }
}

/// A connection the guest opened, established, window scale 0 both ways.
fn established(t0: Instant) -> Core {
    let mut c = Core::from_guest_syn(&guest_syn(Some(1460), None), ISN, LINK_MSS, false, t0);
    c.connected(t0);
    let plan = c.on_segment(&ack_seg(ISN.wrapping_add(1), 65535), LINK_MSS, false, t0);
    assert!(plan.send && plan.close.is_none());
    assert_eq!(c.phase(), Phase::Established);
    c
}

fn ack_seg(ack: u32, window: u16) -> Input {
    input(flags::ACK, GUEST_ISN + 1, ack, window, 0)
}

fn on(c: &mut Core, seg: Input, now: Instant) -> Plan {
    c.on_segment(&seg, LINK_MSS, false, now)
}

#[test]
fn tcp_keepalive_and_window_probes_get_an_ack() {
    let t0 = Instant::now();
    let mut c = established(t0);
    let probe = input(
        flags::ACK,
        c.rcv_nxt().wrapping_sub(1),
        c.snd_nxt(),
        65535,
        0,
    );
    assert_eq!(on(&mut c, probe, t0).reply, Some(Reply::Ack));
    let at_rcv_nxt = input(flags::ACK, c.rcv_nxt(), c.snd_nxt(), 65535, 0);
    assert_eq!(on(&mut c, at_rcv_nxt, t0).reply, None, "a plain ACK");
}

#[test]
fn tcp_persist_timer_asks_for_a_closed_window_with_backoff() {
    let t0 = Instant::now();
    let mut c = established(t0);
    c.sent_data(1000, t0);
    let nxt = c.snd_nxt();
    on(&mut c, ack_seg(nxt, 0), t0);
    assert_eq!(c.send_room(), 0);
    c.window_full(t0);
    assert_eq!(c.timer_due(t0), None);
    let t1 = t0 + PERSIST_TIMEOUT;
    assert_eq!(c.timer_due(t1), Some(Timer::Persist));
    c.on_persist(t1);
    assert_eq!(c.timer_due(t1 + PERSIST_TIMEOUT), None, "backed off");
    assert_eq!(c.timer_due(t1 + 2 * PERSIST_TIMEOUT), Some(Timer::Persist));
    assert_eq!(c.probe_seq(), c.snd_nxt().wrapping_sub(1));
    let nxt = c.snd_nxt();
    on(&mut c, ack_seg(nxt, 1000), t1);
    assert_eq!(c.timer_due(t1 + RTO_MAX), None, "the window opened");
}

#[test]
fn tcp_half_closed_connection_has_no_fin_timeout() {
    let t0 = Instant::now();
    let mut c = established(t0);
    let fin = input(flags::ACK | flags::FIN, c.rcv_nxt(), c.snd_nxt(), 65535, 0);
    let plan = on(&mut c, fin, t0);
    assert_eq!((plan.take, plan.fin), (Some(0..0), true));
    assert_eq!(c.took(0, 0, true), Reply::Ack);
    c.host_shut();
    assert_eq!(c.timer_due(t0 + FIN_TIMEOUT + FIN_TIMEOUT), None);
    c.sent_fin(t0);
    let later = t0 + FIN_TIMEOUT;
    assert_eq!(
        c.timer_due(later),
        Some(Timer::Expired("FIN")),
        "both closed"
    );
}

#[test]
fn tcp_retransmission_backs_off_and_outlasts_a_paused_guest() {
    let t0 = Instant::now();
    let mut c = established(t0);
    c.sent_data(5000, t0);
    assert_eq!(c.timer_due(t0 + ACK_TIMEOUT / 2), None);
    let mut t = t0 + ACK_TIMEOUT;
    let mut timeouts = Vec::new();
    while t < t0 + Duration::from_secs(70) {
        match c.timer_due(t) {
            Some(Timer::Retransmit) => {
                timeouts.push((t - t0).as_secs());
                c.on_retransmit(t);
                c.sent_data(5000, t);
            }
            Some(other) => panic!("{other:?} at {:?}", t - t0),
            None => {}
        }
        t += Duration::from_secs(1);
    }
    assert_eq!(timeouts, [2, 6, 14, 30, 62], "doubling from 2 s");
    let nxt = c.snd_nxt();
    let ack = on(&mut c, ack_seg(nxt, 65535), t);
    assert_eq!(ack.discard, 5000, "the paused guest came back");
    c.sent_data(100, t);
    assert_eq!(
        c.timer_due(t + ACK_TIMEOUT),
        Some(Timer::Retransmit),
        "reset"
    );
}

#[test]
fn tcp_retransmission_gives_up_after_the_bound() {
    let t0 = Instant::now();
    let mut c = established(t0);
    c.sent_data(5000, t0);
    let late = t0 + GIVE_UP + RTO_MAX;
    assert_eq!(c.timer_due(late), Some(Timer::Expired("retransmission")));
}

#[test]
fn tcp_retransmission_timer_counts_from_when_data_was_sent() {
    let t0 = Instant::now();
    let mut c = established(t0);
    let t1 = t0 + Duration::from_secs(100);
    c.sent_data(500, t1);
    assert_eq!(c.timer_due(t1), None, "not from the last ACK");
    assert_eq!(c.timer_due(t1 + ACK_TIMEOUT), Some(Timer::Retransmit));
}

#[test]
fn tcp_partial_ack_in_recovery_resends_the_head_at_once() {
    let t0 = Instant::now();
    let mut c = established(t0);
    let una = c.snd_una();
    c.sent_data(10_000, t0);
    for _ in 0..DUP_ACK_THRESHOLD - 1 {
        assert!(!on(&mut c, ack_seg(una, 65535), t0).rewind);
    }
    assert!(
        on(&mut c, ack_seg(una, 65535), t0).rewind,
        "third duplicate"
    );
    assert_eq!(c.snd_nxt(), una);
    c.sent_data(10_000, t0);
    let partial = on(&mut c, ack_seg(una.wrapping_add(4000), 65535), t0);
    assert!(partial.resend_head && !partial.rewind);
    assert_eq!(partial.discard, 4000);
    let full = on(&mut c, ack_seg(una.wrapping_add(10_000), 65535), t0);
    assert!(!full.resend_head, "recovery over");
}

#[test]
fn tcp_ack_of_what_was_sent_before_a_rewind_is_taken() {
    let t0 = Instant::now();
    let mut c = established(t0);
    let una = c.snd_una();
    c.sent_data(3000, t0);
    c.on_retransmit(t0 + ACK_TIMEOUT);
    assert_eq!(c.snd_nxt(), una);
    let plan = on(&mut c, ack_seg(una.wrapping_add(3000), 65535), t0);
    assert_eq!(plan.discard, 3000);
    assert_eq!((c.snd_una(), c.snd_nxt()), (una + 3000, una + 3000));
}

#[test]
fn tcp_ack_of_unsent_data_is_answered_and_refused() {
    let t0 = Instant::now();
    let mut c = established(t0);
    c.sent_data(100, t0);
    let window = c.guest_window();
    let seg = input(flags::ACK, c.rcv_nxt(), c.snd_nxt() + 1, 7, 500);
    let plan = on(&mut c, seg, t0);
    assert_eq!(plan.reply, Some(Reply::AckNow));
    assert!(plan.take.is_none() && plan.dropped && plan.discard == 0);
    assert_eq!(c.guest_window(), window, "the window did not move");
}

#[test]
fn tcp_old_ack_moves_no_window() {
    let t0 = Instant::now();
    let mut c = established(t0);
    c.sent_data(100, t0);
    let nxt = c.snd_nxt();
    on(&mut c, ack_seg(nxt, 40_000), t0);
    let nxt = c.snd_nxt();
    let old = on(&mut c, ack_seg(nxt.wrapping_sub(50), 5), t0);
    assert_eq!(old.discard, 0);
    assert_eq!(c.guest_window(), 40_000);
}

#[test]
fn tcp_syn_on_an_open_connection_is_challenged_and_reopens_on_reset() {
    let t0 = Instant::now();
    let mut c = established(t0);
    let syn = guest_syn(Some(1460), Some(7));
    let syn = Input { seq: 77, ..syn };
    assert_eq!(on(&mut c, syn, t0).reply, Some(Reply::AckNow));
    // The guest, in SYN-SENT, answers the ACK with an RST at its number.
    let rst = input(flags::RST, c.rcv_nxt(), 0, 0, 0);
    let plan = on(&mut c, rst, t0 + Duration::from_millis(1));
    assert_eq!(plan.close, Some(Close::ResetHost));
    assert_eq!(plan.reopen, Some(syn));
}

#[test]
fn tcp_resent_syn_gets_the_syn_ack_again() {
    let t0 = Instant::now();
    let syn = guest_syn(None, None);
    let mut c = Core::from_guest_syn(&syn, ISN, LINK_MSS, false, t0);
    c.connected(t0);
    assert_eq!(on(&mut c, syn, t0).reply, Some(Reply::SynAck));
}

#[test]
fn tcp_reset_only_at_rcv_nxt_closes() {
    let t0 = Instant::now();
    let mut c = established(t0);
    let window = c.window_field(Room {
        socket: 60_000,
        keep: 0,
        buffer: 120_000,
    });
    c.sending_ack(window);
    let inside = input(flags::RST, c.rcv_nxt() + 100, 0, 0, 0);
    let plan = on(&mut c, inside, t0);
    assert_eq!((plan.close, plan.reply), (None, Some(Reply::AckNow)));
    let outside = input(flags::RST, c.rcv_nxt() + 100_000, 0, 0, 0);
    let plan = on(&mut c, outside, t0);
    assert_eq!((plan.close, plan.reply, plan.dropped), (None, None, true));
    let exact = input(flags::RST | flags::ACK, c.rcv_nxt(), 0, 0, 0);
    let plan = on(&mut c, exact, t0);
    assert_eq!((plan.close, plan.reopen), (Some(Close::ResetHost), None));
}

#[test]
fn tcp_guest_mss_is_clamped_per_family() {
    let t0 = Instant::now();
    let tiny = guest_syn(Some(88), None);
    assert_eq!(
        Core::from_guest_syn(&tiny, 0, LINK_MSS, false, t0).mss(),
        536
    );
    assert_eq!(
        Core::from_guest_syn(&tiny, 0, LINK_MSS, true, t0).mss(),
        1220
    );
    let huge = guest_syn(Some(65000), None);
    assert_eq!(Core::from_guest_syn(&huge, 0, 1460, false, t0).mss(), 1460);
}

#[test]
fn tcp_data_before_our_syn_ack_is_acknowledged_is_not_taken() {
    let t0 = Instant::now();
    let syn = guest_syn(None, None);
    let mut c = Core::from_guest_syn(&syn, ISN, LINK_MSS, false, t0);
    c.connected(t0);
    let early = input(flags::ACK | flags::PSH, GUEST_ISN + 1, ISN, 65535, 5);
    let plan = on(&mut c, early, t0);
    assert!(plan.take.is_none() && plan.dropped);
    let late = input(
        flags::ACK | flags::PSH,
        GUEST_ISN + 1,
        ISN.wrapping_add(1),
        65535,
        4,
    );
    assert_eq!(on(&mut c, late, t0).take, Some(0..4));
}

#[test]
fn tcp_third_duplicate_ack_rewinds_once_per_window() {
    let t0 = Instant::now();
    let mut c = established(t0);
    let una = c.snd_una();
    c.sent_data(4000, t0);
    let data = input(flags::ACK, c.rcv_nxt(), una, 65535, 10);
    let plan = on(&mut c, data, t0);
    assert!(!plan.rewind, "data: not a duplicate");
    c.took(10, 10, false);
    for _ in 0..2 {
        assert!(!on(&mut c, ack_seg(una, 65535), t0).rewind);
    }
    assert!(on(&mut c, ack_seg(una, 65535), t0).rewind);
    c.sent_data(4000, t0);
    for _ in 0..5 {
        assert!(!on(&mut c, ack_seg(una, 65535), t0).rewind, "in recovery");
    }
    for w in [100, 200, 300, 400] {
        assert!(!on(&mut c, ack_seg(una, w), t0).rewind, "window updates");
    }
}

#[test]
fn tcp_ack_discards_data_and_fin_counts_once() {
    let t0 = Instant::now();
    let mut c = established(t0);
    let una = c.snd_una();
    c.sent_data(500, t0);
    assert_eq!(on(&mut c, ack_seg(una + 200, 65535), t0).discard, 200);
    c.sent_fin(t0);
    assert_eq!(c.data_in_flight(), 300);
    assert!(!c.may_send_data(), "nothing after our FIN");
    assert_eq!(on(&mut c, ack_seg(una + 501, 65535), t0).discard, 300);
    assert_eq!(c.data_in_flight(), 0);
}

#[test]
fn tcp_fin_is_resent_after_a_rewind_at_its_place() {
    let t0 = Instant::now();
    let mut c = established(t0);
    c.sent_data(100, t0);
    let fin_at = c.snd_nxt();
    c.sent_fin(t0);
    c.on_retransmit(t0 + ACK_TIMEOUT);
    assert!(c.fin_due(), "the FIN goes again after the data");
    c.sent_data(100, t0);
    assert_eq!(c.snd_nxt(), fin_at);
    c.sent_fin(t0);
    let plan = on(&mut c, ack_seg(fin_at + 1, 65535), t0);
    assert_eq!(plan.discard, 100);
}

#[test]
fn tcp_small_window_is_offered_as_zero_until_it_opens() {
    let t0 = Instant::now();
    let mut c = established(t0);
    let small = Room {
        socket: 100,
        keep: 0,
        buffer: 100_000,
    };
    assert_eq!(c.window_field(small), 0);
    assert!(c.window_closed());
    let open = Room {
        socket: 30_000,
        keep: 10_000,
        ..small
    };
    assert_eq!(c.window_field(open), 40_000);
    assert!(!c.window_closed());
}

#[test]
fn tcp_syn_timer_resets_an_unanswered_handshake() {
    let t0 = Instant::now();
    let c = Core::from_host(ISN, t0);
    assert_eq!(c.timer_due(t0 + ACK_TIMEOUT), Some(Timer::Retransmit));
    assert_eq!(c.timer_due(t0 + SYN_TIMEOUT), Some(Timer::Expired("SYN")));
    let c = Core::from_guest_syn(&guest_syn(None, None), ISN, LINK_MSS, false, t0);
    assert_eq!(c.timer_due(t0 + ACK_TIMEOUT), None, "connecting: no resend");
    assert_eq!(c.timer_due(t0 + SYN_TIMEOUT), Some(Timer::Expired("SYN")));
}

#[test]
fn tcp_idle_timer() {
    let t0 = Instant::now();
    let c = established(t0);
    assert_eq!(c.timer_due(t0 + FIN_TIMEOUT), None, "open and quiet");
    assert_eq!(c.timer_due(t0 + IDLE_TIMEOUT), Some(Timer::Expired("idle")));
}

#[test]
fn tcp_seq_after_wraps() {
    assert!(seq_after(1, 0));
    assert!(seq_after(5, u32::MAX - 5));
    assert!(!seq_after(u32::MAX - 5, 5));
    assert!(!seq_after(7, 7));
}

/// Offsets for the property test's segments.
trait Near {
    /// A value near 0: mostly small, sometimes anything.
    fn offset(&mut self, span: u32) -> u32;
}

impl Near for Rng {
    fn offset(&mut self, span: u32) -> u32 {
        match self.below(10) {
            0 => self.next() as u32,
            _ => (self.below(2 * u64::from(span) + 1) as u32).wrapping_sub(span),
        }
    }
}

/// The host side as the state machine's caller sees it.
struct Model {
    /// Bytes the host wrote into the socket, and whether it closed.
    host_written: u64,
    host_closed: bool,
    /// Bytes the guest acknowledged (discarded from the socket).
    discarded: u64,
    /// The most data bytes ever sent.
    sent_high: u64,
    rcv_nxt: u32,
    fin_seq: Option<u32>,
}

fn seq_le(a: u32, b: u32) -> bool {
    !seq_after(a, b)
}

fn check(c: &Core, m: &Model, seed: u64, step: usize) {
    let at = format!("seed {seed:#x} step {step}");
    assert!(seq_le(c.snd_una(), c.snd_nxt()), "una <= nxt, {at}");
    assert!(seq_le(c.snd_nxt(), c.snd_max), "nxt <= max, {at}");
    assert!(m.discarded <= m.sent_high, "acked only what was sent, {at}");
    let queued = m.host_written - m.discarded;
    assert!(
        u64::from(c.data_in_flight()) <= queued,
        "in flight is queued, {at}"
    );
    assert!(
        seq_le(m.rcv_nxt, c.rcv_nxt()),
        "rcv_nxt never goes back, {at}"
    );
    if let Some(fin) = c.fin_seq {
        assert!(m.host_closed, "our FIN only after the host's end, {at}");
        let end = ISN.wrapping_add(1).wrapping_add(m.host_written as u32);
        assert_eq!(fin, end, "our FIN at the end of the stream, {at}");
        assert!(m.fin_seq.is_none_or(|f| f == fin), "one FIN, {at}");
    }
}

/// Random guest segments, host data, timers and rewinds never break the
/// invariants of [`check`].
#[test]
fn tcp_random_segment_sequences_keep_the_invariants() {
    for seed in 1..=400u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let mut now = Instant::now();
        let mut c = established(now);
        let mut m = Model {
            host_written: 0,
            host_closed: false,
            discarded: 0,
            sent_high: 0,
            rcv_nxt: c.rcv_nxt(),
            fin_seq: None,
        };
        for step in 0..300 {
            match rng.below(8) {
                0 if !m.host_closed => {
                    m.host_written += rng.below(20_000);
                    m.host_closed = rng.below(20) == 0;
                }
                1 | 2 => send_some(&mut c, &mut m, &mut rng, now),
                3 => {
                    now += Duration::from_millis(rng.below(5000));
                    match c.timer_due(now) {
                        Some(Timer::Retransmit) => c.on_retransmit(now),
                        Some(Timer::Persist) => c.on_persist(now),
                        Some(Timer::Expired(_)) | None => {}
                    }
                }
                _ => {
                    if guest_segment(&mut c, &mut m, &mut rng, now) {
                        break;
                    }
                }
            }
            check(&c, &m, seed, step);
            m.rcv_nxt = c.rcv_nxt();
            m.fin_seq = c.fin_seq;
        }
    }
}

fn send_some(c: &mut Core, m: &mut Model, rng: &mut Rng, now: Instant) {
    if !c.may_send_data() {
        return;
    }
    let queued_new = m.host_written - m.discarded - u64::from(c.data_in_flight());
    let n = queued_new
        .min(u64::from(c.send_room()))
        .min(rng.below(30_000) + 1);
    if n > 0 {
        c.sent_data(n as u32, now);
        let sent = m.discarded + u64::from(c.data_in_flight());
        m.sent_high = m.sent_high.max(sent);
    } else if queued_new == 0 && m.host_closed && c.fin_due() {
        c.sent_fin(now);
    } else if c.send_room() == 0 {
        c.window_full(now);
    }
}

/// One random guest segment; `true` if the connection closed.
fn guest_segment(c: &mut Core, m: &mut Model, rng: &mut Rng, now: Instant) -> bool {
    let flag_choices = [
        flags::ACK,
        flags::ACK | flags::PSH,
        flags::ACK | flags::FIN,
        flags::SYN,
        flags::RST,
        flags::RST | flags::ACK,
        0,
    ];
    let flag_bits = flag_choices[rng.below(flag_choices.len() as u64) as usize];
    let span = c.snd_max.wrapping_sub(c.snd_una()) + 4;
    let ack = c
        .snd_una()
        .wrapping_add(rng.offset(span / 2))
        .wrapping_add(span / 2);
    let seg = Input {
        flags: flag_bits,
        seq: c.rcv_nxt().wrapping_add(rng.offset(3000)),
        ack,
        window: rng.below(65536) as u16,
        payload_len: rng.below(3000) as usize,
        mss: None,
        window_scale: None,
    };
    let plan = c.on_segment(&seg, LINK_MSS, false, now);
    if plan.close.is_some() {
        return true;
    }
    m.discarded += u64::from(plan.discard);
    if let Some(take) = plan.take {
        assert!(take.end <= seg.payload_len);
        let wanted = take.len();
        let taken = rng.below(wanted as u64 + 1) as usize;
        let before = c.rcv_nxt();
        c.took(taken, wanted, plan.fin);
        let fin = u32::from(taken == wanted && plan.fin);
        assert_eq!(c.rcv_nxt(), before.wrapping_add(taken as u32 + fin));
    }
    false
}
