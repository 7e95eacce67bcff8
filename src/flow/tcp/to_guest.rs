//! Segments toward the guest: data peeked from the host socket (up to
//! [`super::TX_SLOTS`] frames per read, GSO frames on an offloading link),
//! our FIN at the end of the host's stream, ACKs with the window offered,
//! SYN / SYN-ACK, zero-window probes, resends, and RSTs (kept while the
//! link refuses them).
//!
//! Invariant: only frames the link took count as sent; what it refused
//! is sent again when it is writable (data, a refused ACK, kept RSTs).
//! May call: `machine`, `conn`, `sys::socket`, `wire::tcp`, `link` (offload
//! descriptions).

use std::io;
use std::time::Instant;

use super::conn::TcpConn;
use super::machine::{Close, Room};
use super::{Ctx, Flows, MAX_FRAME, TX_SLOT, TX_SLOTS, TcpFlows, conn_of};
use crate::link::{Gso, Offload, PartialChecksum};
use crate::sys::socket::{self as sock, Peeked, SegmentLayout};
use crate::wire::tcp::{self as wire, Control, Endpoints, Segment, TcpOptions, flags};

/// RSTs toward the guest kept while its link refuses frames, at most.
const KEPT_RESETS: usize = 256;
/// Room for a control segment toward the guest (IPv6 + the longest
/// option block).
const CONTROL_FRAME_MAX: usize = 128;
/// The send buffer is accounted with per-buffer overhead (`truesize`): at
/// most 1/this of its free room is offered as payload room.
const SEND_BUFFER_OVERHEAD: usize = 2;

/// A built control frame and its length.
pub type ControlFrame = ([u8; CONTROL_FRAME_MAX], usize);

impl TcpFlows {
    /// RST for a guest segment that has no connection (refused, failed).
    pub(super) fn reset_unknown(&mut self, ctx: &mut Ctx<'_>, ends: &Endpoints, seg: &Segment<'_>) {
        let syn_fin = u32::from(seg.has(flags::SYN)) + u32::from(seg.has(flags::FIN));
        let ack = seg
            .seq
            .wrapping_add(seg.payload.len() as u32)
            .wrapping_add(syn_fin);
        match seg.has(flags::ACK) {
            true => self.send_reset(ctx, ends, seg.ack, ack, flags::RST),
            false => self.send_reset(ctx, ends, 0, ack, flags::RST | flags::ACK),
        }
    }

    /// Sends an RST to the guest; if the link refuses it, keeps it for
    /// [`TcpFlows::resume_blocked`].
    pub(super) fn send_reset(
        &mut self,
        ctx: &mut Ctx<'_>,
        ends: &Endpoints,
        seq: u32,
        ack: u32,
        flag_bits: u8,
    ) {
        self.counters.resets_to_guest += 1;
        let ctl = Control {
            seq,
            ack,
            flags: flag_bits,
            window: 0,
        };
        let mut frame = [0u8; CONTROL_FRAME_MAX];
        let Some(len) = wire::build_control(ends, &ctl, &TcpOptions::default(), &mut frame) else {
            return;
        };
        if !ctx.link.send_frame(&frame[..len]) && self.refused_resets.len() < KEPT_RESETS {
            self.refused_resets.push((frame, len));
        }
    }

    /// The window field to offer now (see [`super::machine::Core::window_field`]).
    pub(super) fn window_field(&self, conn: &mut TcpConn) -> u16 {
        let buffer = sock::send_buffer_use(&conn.socket)
            .unwrap_or(sock::SendBufferUse { size: 0, queued: 0 });
        let staged = match self.staged_for {
            Some(_) => self.staged.len(),
            None => 0,
        };
        let room = Room {
            socket: buffer.free() as usize / SEND_BUFFER_OVERHEAD,
            keep: self.kept.room_for(conn).saturating_sub(staged),
            buffer: buffer.size as usize,
        };
        conn.core.window_field(room)
    }

    pub(super) fn send_ack(&mut self, ctx: &mut Ctx<'_>, ends: &Endpoints, conn: &mut TcpConn) {
        let window = self.window_field(conn);
        self.send_ack_with(ctx, ends, conn, window);
    }

    /// An ACK offering `window`; a refused one is sent again when the link
    /// is writable (it may be the window update the guest waits for).
    pub(super) fn send_ack_with(
        &mut self,
        ctx: &mut Ctx<'_>,
        ends: &Endpoints,
        conn: &mut TcpConn,
        window: u16,
    ) {
        let numbers = conn.core.sending_ack(window);
        conn.ack_refused = !send_pure_ack(ctx, ends, conn.core.snd_nxt(), numbers);
    }

    /// An ACK that repeats the last acknowledgement and window exactly: a
    /// sender counts it as a duplicate only if the window is unchanged, and
    /// three of them make it resend at once instead of waiting for its timer
    /// (DESIGN §1 rule 4).
    pub(super) fn send_duplicate_ack(
        &mut self,
        ctx: &mut Ctx<'_>,
        ends: &Endpoints,
        conn: &mut TcpConn,
    ) {
        send_pure_ack(ctx, ends, conn.core.snd_nxt(), conn.core.duplicate_ack());
    }

    /// A zero-window probe: an ACK one before `snd_nxt`, which the guest
    /// answers with its window (RFC 9293 3.8.6.1).
    pub(super) fn send_window_probe(
        &mut self,
        ctx: &mut Ctx<'_>,
        ends: &Endpoints,
        conn: &mut TcpConn,
    ) {
        let window = self.window_field(conn);
        let numbers = conn.core.sending_ack(window);
        send_pure_ack(ctx, ends, conn.core.probe_seq(), numbers);
    }

    /// Our SYN (inbound) or SYN-ACK (outbound), at sequence `isn`.
    pub(super) fn send_syn(&mut self, ctx: &mut Ctx<'_>, ends: &Endpoints, conn: &mut TcpConn) {
        let inbound = conn.core.phase() == super::machine::Phase::SynSent;
        let (flag_bits, ack) = match inbound {
            true => (flags::SYN, 0),
            false => (flags::SYN | flags::ACK, conn.core.rcv_nxt()),
        };
        let free = sock::send_buffer_use(&conn.socket).map_or(0, |u| u.free());
        let options = TcpOptions {
            mss: Some(self.link_mss(ends.dst.is_ipv6())),
            window_scale: conn
                .core
                .offers_window_scale()
                .then_some(super::machine::OUR_WINDOW_SCALE),
            sack_permitted: false,
        };
        let window = free.clamp(14600, u32::from(u16::MAX)) as u16;
        let ctl = Control {
            seq: conn.core.isn(),
            ack,
            flags: flag_bits,
            window,
        };
        send_control(ctx, ends, &ctl, &options);
    }

    /// Sends what the socket holds beyond what is in flight, as far as the
    /// guest's window allows; the end of the stream becomes our FIN.
    pub(super) fn send_data(
        &mut self,
        ctx: &mut Ctx<'_>,
        ends: &Endpoints,
        conn: &mut TcpConn,
    ) -> Result<(), Close> {
        if !conn.core.may_send_data() {
            return Ok(());
        }
        let offset = wire::data_header_len(ends.dst.is_ipv6());
        let mss = usize::from(conn.core.mss()).min(MAX_FRAME - offset);
        let frame_payload = match ctx.link.offloads() {
            true => (MAX_FRAME - offset) / mss * mss,
            false => mss,
        };
        let mut window = None;
        loop {
            let room = conn.core.send_room() as usize;
            if room == 0 {
                conn.host_pending = true;
                conn.core.window_full(Instant::now());
                return Ok(());
            }
            let layout = SegmentLayout {
                stride: TX_SLOT,
                offset,
                len: frame_payload,
                total: room.min(TX_SLOTS * frame_payload),
            };
            let n = match self.peek(conn, layout) {
                Ok(Peeked::New(n)) => n,
                Ok(Peeked::Nothing) => {
                    // Only bytes in flight are queued: the end of the
                    // stream, if it came, shows once they are acknowledged.
                    conn.host_pending = conn.host_rdhup;
                    return Ok(());
                }
                Ok(Peeked::End) => {
                    conn.host_pending = false;
                    self.send_fin(ctx, ends, conn);
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    conn.host_pending = false;
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::debug!("TCP: read from host socket: {e}");
                    return Err(Close::ResetBoth);
                }
            };
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

    /// Peeks new data into the frame slots, skipping what is in flight
    /// when the kernel keeps no peek offset.
    fn peek(&mut self, conn: &TcpConn, layout: SegmentLayout) -> io::Result<Peeked> {
        let skip_len = conn.core.data_in_flight() as usize;
        let skip = match &mut self.skip {
            Some(buf) => buf.get_mut(..skip_len).unwrap_or_default(),
            None => &mut [][..],
        };
        sock::peek_segments(&conn.socket, skip, &mut self.tx, layout)
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
        let (ack, window) = conn.core.sending_ack(window);
        let now = Instant::now();
        for i in 0..count {
            let len = read.len_of(i);
            let last = i + 1 == count;
            let ctl = Control {
                seq: conn.core.snd_nxt(),
                ack,
                flags: if last {
                    flags::ACK | flags::PSH
                } else {
                    flags::ACK
                },
                window,
            };
            let slot = &mut self.tx[i * TX_SLOT..(i + 1) * TX_SLOT];
            if !send_data_frame(ctx, ends, &ctl, slot, len, conn.core.mss()) {
                return false;
            }
            conn.core.sent_data(len as u32, now);
        }
        true
    }

    /// Resends the first segment in flight (a partial ACK in recovery:
    /// the next hole), leaving what else is in flight as it is.
    pub(super) fn resend_head(&mut self, ctx: &mut Ctx<'_>, ends: &Endpoints, conn: &mut TcpConn) {
        let offset = wire::data_header_len(ends.dst.is_ipv6());
        let len = usize::from(conn.core.mss())
            .min(MAX_FRAME - offset)
            .min(conn.core.data_in_flight() as usize);
        if len == 0 {
            return;
        }
        let layout = SegmentLayout {
            stride: TX_SLOT,
            offset,
            len,
            total: len,
        };
        if self.skip.is_none() {
            set_peek_offset(conn, 0);
        }
        let peeked = sock::peek_segments(&conn.socket, &mut [], &mut self.tx, layout);
        if self.skip.is_none() {
            set_peek_offset(conn, conn.core.data_in_flight());
        }
        let Ok(Peeked::New(n)) = peeked else {
            return;
        };
        let window = self.window_field(conn);
        let (ack, window) = conn.core.sending_ack(window);
        let ctl = Control {
            seq: conn.core.snd_una(),
            ack,
            flags: flags::ACK | flags::PSH,
            window,
        };
        send_data_frame(ctx, ends, &ctl, &mut self.tx[..TX_SLOT], n, conn.core.mss());
    }

    /// The link took only part of what was peeked: the peek offset goes
    /// back to what was sent, and the connection waits for the link.
    fn link_blocked(&mut self, conn: &mut TcpConn) {
        conn.host_pending = true;
        conn.link_blocked = true;
        if self.skip.is_none() {
            set_peek_offset(conn, conn.core.data_in_flight());
        }
    }

    /// The peek offset follows a rewind of the state machine.
    pub(super) fn rewind_peek(&mut self, conn: &mut TcpConn) {
        if self.skip.is_none() {
            set_peek_offset(conn, conn.core.data_in_flight());
        }
    }

    /// Connections waiting for the guest link to take frames again.
    pub fn link_waiters(&self) -> bool {
        !self.blocked.is_empty() || !self.refused_resets.is_empty()
    }

    /// The guest link is writable again: the RSTs it refused go first, then
    /// the connections that were waiting for it send (a refused ACK, then
    /// data), in turn, until the link is full again.
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
                if conn.ack_refused && !conn.core.syn_unacked() {
                    self.send_ack(ctx, &ends, conn);
                }
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
        let (ack, window) = conn.core.sending_ack(window);
        let ctl = Control {
            seq: conn.core.snd_nxt(),
            ack,
            flags: flags::FIN | flags::ACK,
            window,
        };
        conn.core.sent_fin(Instant::now());
        send_control(ctx, ends, &ctl, &TcpOptions::default());
    }
}

/// Completes the headers of a data frame of `len` payload bytes in `slot`
/// and sends it; `false` if the link refused it.
fn send_data_frame(
    ctx: &mut Ctx<'_>,
    ends: &Endpoints,
    ctl: &Control,
    slot: &mut [u8],
    len: usize,
    mss: u16,
) -> bool {
    if ctx.link.offloads() {
        let offload = segment_offload(ends.dst.is_ipv6(), len, mss);
        wire::write_data_headers_partial(ends, ctl, slot, len)
            .is_some_and(|frame_len| ctx.link.send_offloaded(&slot[..frame_len], offload))
    } else {
        wire::write_data_headers(ends, ctl, slot, len)
            .is_some_and(|frame_len| ctx.link.send_frame(&slot[..frame_len]))
    }
}

/// Sends an ACK without data at `seq` with `(ack, window)`; `false` if
/// the link refused it.
fn send_pure_ack(ctx: &mut Ctx<'_>, ends: &Endpoints, seq: u32, (ack, window): (u32, u16)) -> bool {
    let ctl = Control {
        seq,
        ack,
        flags: flags::ACK,
        window,
    };
    send_control(ctx, ends, &ctl, &TcpOptions::default())
}

/// Sends a control segment; `false` if the link refused it.
fn send_control(ctx: &mut Ctx<'_>, ends: &Endpoints, ctl: &Control, options: &TcpOptions) -> bool {
    let mut frame = [0u8; CONTROL_FRAME_MAX];
    wire::build_control(ends, ctl, options, &mut frame)
        .is_some_and(|len| ctx.link.send_frame(&frame[..len]))
}

fn set_peek_offset(conn: &TcpConn, offset: u32) {
    let offset = i32::try_from(offset).unwrap_or(i32::MAX);
    if let Err(e) = sock::set_peek_offset(&conn.socket, offset) {
        log::debug!("TCP: SO_PEEK_OFF: {e}");
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

#[cfg(test)]
mod tests {
    use super::*;

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
