//! One TCP connection's state: the sequence numbers of both directions,
//! the guest's window and MSS, the handshake and close progress, and the
//! bounded tail of guest data the host socket has not taken yet.
//!
//! Sequence bookkeeping, toward the guest: `seq_acked..seq_to_guest` is in
//! flight (our SYN and FIN count one each, as in TCP); the data part of it
//! is exactly the bytes at the head of the host socket's receive queue
//! that were already sent (the peek offset). From the guest:
//! `seq_from_guest` is the next byte expected; everything before it was
//! written to the host socket or kept in `tail`.
//!
//! The decisions on a guest ACK (how many bytes to discard from the
//! socket, when to retransmit) are pure functions here, unit-tested; the
//! socket calls live in the parent module.
//! May call: nothing but std and the parent's types.

use std::os::fd::OwnedFd;
use std::time::Instant;

/// Largest window we offer and accept (upstream: 16 MiB, window scale 8).
pub const MAX_WINDOW: u32 = 16 << 20;
/// Our window scale toward the guest.
pub const OUR_WINDOW_SCALE: u8 = 8;
/// Largest window scale the guest may ask for (RFC 7323).
pub const MAX_WINDOW_SCALE: u8 = 14;
/// Guest MSS when its SYN has none (RFC 9293).
pub const DEFAULT_MSS: u16 = 536;
/// Duplicate ACKs that trigger a retransmission (as a TCP sender does).
pub const DUP_ACK_THRESHOLD: u8 = 3;
/// Bytes of guest data kept when the host socket takes less than was sent.
pub const TAIL_MAX: usize = 256 << 10;

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
    /// Both sides connected (our SYN-ACK may still be unacknowledged).
    Established,
}

/// What a guest ACK means for the data we sent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AckOutcome {
    /// Data bytes newly acknowledged: drop them from the socket.
    pub discard: u32,
    /// Resend everything in flight (fast retransmit).
    pub rewind: bool,
    /// The ACK moved forward.
    pub progress: bool,
}

pub struct TcpConn {
    pub socket: OwnedFd,
    pub phase: Phase,
    /// Our initial sequence number toward the guest.
    pub isn: u32,
    /// Next sequence number we send to the guest.
    pub seq_to_guest: u32,
    /// The guest's cumulative acknowledgement.
    pub seq_acked: u32,
    /// Our SYN (or SYN-ACK) is not acknowledged yet.
    pub syn_unacked: bool,
    /// The guest's window in bytes (scaled, clamped to [`MAX_WINDOW`]).
    pub guest_window: u32,
    /// Shift of the guest's window field.
    pub guest_scale: u8,
    /// Shift of the window field we send.
    pub our_scale: u8,
    /// Largest payload per segment to the guest.
    pub mss: u16,
    pub dup_acks: u8,
    /// In fast recovery until the guest acknowledges this.
    pub recover: Option<u32>,
    /// Retransmissions on the ACK timer since the last progress.
    pub retries: u8,
    /// Next sequence number expected from the guest.
    pub seq_from_guest: u32,
    /// The last acknowledgement and window field sent to the guest.
    pub ack_sent: u32,
    pub window_sent: u16,
    /// The last window offered was below one MSS (sent as zero): send an
    /// update once the socket drains.
    pub window_closed: bool,
    /// An ACK is queued for the end of the batch.
    pub ack_queued: bool,
    /// Guest data accepted (acknowledged) but not yet taken by the socket.
    pub tail: Vec<u8>,
    /// The guest sent FIN (acknowledged).
    pub guest_fin: bool,
    /// `shutdown(SHUT_WR)` done on the socket.
    pub host_shut: bool,
    /// The socket's peer closed its side (EPOLLRDHUP): look for the end
    /// of the stream after the data.
    pub host_rdhup: bool,
    /// Data may be waiting on the socket that the guest's window held back.
    pub host_pending: bool,
    /// FIN sent to the guest (counted in `seq_to_guest`).
    pub fin_sent: bool,
    pub fin_acked: bool,
    /// EPOLLOUT is requested.
    pub want_out: bool,
    /// The guest link did not take all we sent: wait for it.
    pub link_blocked: bool,
    /// On the list of connections waiting for the guest link.
    pub waits_for_link: bool,
    /// When the guest last acknowledged something new.
    pub last_progress: Instant,
    /// Last traffic in either direction.
    pub last_active: Instant,
    /// When the connection was opened (SYN timeout).
    pub opened: Instant,
}

impl TcpConn {
    pub fn new(socket: OwnedFd, phase: Phase, isn: u32, now: Instant) -> TcpConn {
        TcpConn {
            socket,
            phase,
            isn,
            seq_to_guest: isn,
            seq_acked: isn,
            syn_unacked: false,
            guest_window: 0,
            guest_scale: 0,
            our_scale: 0,
            mss: DEFAULT_MSS,
            dup_acks: 0,
            recover: None,
            retries: 0,
            seq_from_guest: 0,
            ack_sent: 0,
            window_sent: 0,
            window_closed: false,
            ack_queued: false,
            tail: Vec::new(),
            guest_fin: false,
            host_shut: false,
            host_rdhup: false,
            host_pending: false,
            fin_sent: false,
            fin_acked: false,
            want_out: false,
            link_blocked: false,
            waits_for_link: false,
            last_progress: now,
            last_active: now,
            opened: now,
        }
    }

    /// Sequence space in flight toward the guest (data, SYN, FIN).
    pub fn in_flight(&self) -> u32 {
        self.seq_to_guest.wrapping_sub(self.seq_acked)
    }

    /// Data bytes in flight: the socket's peek offset.
    pub fn data_in_flight(&self) -> u32 {
        self.in_flight() - u32::from(self.syn_unacked) - u32::from(self.fin_sent && !self.fin_acked)
    }

    /// Room the guest's window leaves for new data.
    pub fn send_room(&self) -> u32 {
        self.guest_window.saturating_sub(self.in_flight())
    }

    /// The guest's window field, scaled and clamped.
    pub fn scaled_window(&self, field: u16) -> u32 {
        (u32::from(field) << self.guest_scale).min(MAX_WINDOW)
    }

    /// Applies a guest acknowledgement `ack` with window field `window` to
    /// the state and says what to do with the socket. `pure_ack`: the
    /// segment carries no data, SYN or FIN (only those count as duplicates).
    pub fn on_guest_ack(
        &mut self,
        ack: u32,
        window: u16,
        pure_ack: bool,
        now: Instant,
    ) -> AckOutcome {
        let mut out = AckOutcome::default();
        let acked = ack.wrapping_sub(self.seq_acked);
        let in_flight = self.in_flight();
        let window = self.scaled_window(window);
        if acked > 0 && acked <= in_flight {
            let mut data = acked;
            if self.syn_unacked {
                self.syn_unacked = false;
                data -= 1;
            }
            if self.fin_sent && ack == self.seq_to_guest {
                self.fin_acked = true;
                data = data.saturating_sub(1);
            }
            out.discard = data;
            out.progress = true;
            self.seq_acked = ack;
            self.dup_acks = 0;
            self.retries = 0;
            self.last_progress = now;
            if self.recover.is_some_and(|r| !seq_after(r, ack)) {
                self.recover = None;
            }
        } else if acked == 0 && pure_ack && in_flight > 0 && window == self.guest_window {
            self.dup_acks = self.dup_acks.saturating_add(1);
            if self.dup_acks >= DUP_ACK_THRESHOLD && self.recover.is_none() {
                self.recover = Some(self.seq_to_guest);
                out.rewind = true;
            }
        }
        self.guest_window = window;
        out
    }

    /// Forgets what was sent after the guest's acknowledgement, so it is
    /// sent again (the socket's peek offset must go back to 0 with it).
    pub fn rewind(&mut self) {
        if self.fin_sent && !self.fin_acked {
            self.fin_sent = false;
        }
        let syn = u32::from(self.syn_unacked);
        self.seq_to_guest = self.seq_acked.wrapping_add(syn);
        self.dup_acks = 0;
    }

    /// Both directions are closed and acknowledged.
    pub fn finished(&self) -> bool {
        self.guest_fin && self.host_shut && self.fin_acked
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(isn: u32) -> TcpConn {
        let socket = rustix::io::dup(std::io::stderr()).unwrap();
        let mut c = TcpConn::new(socket, Phase::Established, isn, Instant::now());
        c.guest_window = 65535;
        c
    }

    #[test]
    fn tcp_seq_after_wraps() {
        assert!(seq_after(1, 0));
        assert!(seq_after(5, u32::MAX - 5));
        assert!(!seq_after(u32::MAX - 5, 5));
        assert!(!seq_after(7, 7));
    }

    #[test]
    fn tcp_ack_of_syn_discards_no_data() {
        let mut c = conn(u32::MAX);
        c.seq_to_guest = 0; // SYN sent at u32::MAX
        c.syn_unacked = true;
        let out = c.on_guest_ack(0, 100, true, Instant::now());
        assert_eq!(out.discard, 0);
        assert!(out.progress && !c.syn_unacked);
        assert_eq!(c.guest_window, 100);
    }

    #[test]
    fn tcp_ack_discards_data_and_fin_counts_once() {
        let mut c = conn(1000);
        c.seq_to_guest = 1500;
        let out = c.on_guest_ack(1200, 1000, true, Instant::now());
        assert_eq!((out.discard, c.seq_acked), (200, 1200));
        c.fin_sent = true;
        c.seq_to_guest = 1501;
        assert_eq!(c.data_in_flight(), 300);
        let out = c.on_guest_ack(1501, 1000, true, Instant::now());
        assert_eq!(out.discard, 300);
        assert!(c.fin_acked);
    }

    #[test]
    fn tcp_ack_beyond_what_was_sent_is_ignored() {
        let mut c = conn(1000);
        c.seq_to_guest = 1100;
        let out = c.on_guest_ack(1200, 1000, true, Instant::now());
        assert_eq!(out, AckOutcome::default());
        let out = c.on_guest_ack(900, 1000, true, Instant::now());
        assert_eq!(out.discard, 0, "an old ACK");
        assert_eq!(c.seq_acked, 1000);
    }

    #[test]
    fn tcp_third_duplicate_ack_rewinds_once_per_window() {
        let mut c = conn(1000);
        c.seq_to_guest = 5000;
        let now = Instant::now();
        assert!(!c.on_guest_ack(1000, 65535, true, now).rewind);
        assert!(!c.on_guest_ack(1000, 65535, true, now).rewind);
        assert!(
            !c.on_guest_ack(1000, 65535, false, now).rewind,
            "data: not a dup"
        );
        assert!(c.on_guest_ack(1000, 65535, true, now).rewind);
        c.rewind();
        assert_eq!(c.seq_to_guest, 1000);
        c.seq_to_guest = 5000;
        for _ in 0..5 {
            assert!(
                !c.on_guest_ack(1000, 65535, true, now).rewind,
                "in recovery"
            );
        }
        c.on_guest_ack(5000, 65535, true, now);
        assert_eq!(c.recover, None);
    }

    #[test]
    fn tcp_window_update_is_not_a_duplicate() {
        let mut c = conn(1000);
        c.seq_to_guest = 5000;
        let now = Instant::now();
        for w in [100, 200, 300, 400] {
            assert!(!c.on_guest_ack(1000, w, true, now).rewind);
        }
    }

    #[test]
    fn tcp_rewind_resends_fin_and_keeps_syn() {
        let mut c = conn(1000);
        c.seq_to_guest = 1001;
        c.syn_unacked = true;
        c.rewind();
        assert_eq!(c.seq_to_guest, 1001);
        c.syn_unacked = false;
        c.seq_acked = 1001;
        c.seq_to_guest = 1502;
        c.fin_sent = true;
        c.rewind();
        assert_eq!((c.seq_to_guest, c.fin_sent), (1001, false));
    }

    #[test]
    fn tcp_scaled_window_is_clamped() {
        let mut c = conn(0);
        c.guest_scale = 14;
        assert_eq!(c.scaled_window(65535), MAX_WINDOW);
        c.guest_scale = 2;
        assert_eq!(c.scaled_window(1000), 4000);
    }
}
