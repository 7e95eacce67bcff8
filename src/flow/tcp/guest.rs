//! Guest segments of open connections: the state machine (`machine`) plans,
//! this file carries the plan out on the host socket: discard what the
//! guest acknowledged, rewind or resend, write its data (staged over a
//! batch, so consecutive segments of one connection go out in one
//! `send()`), shut the socket after its FIN, and answer.
//! May call: `machine`, `conn`, `to_guest` (through `TcpFlows`), `sys`.

use std::io;
use std::time::Instant;

use rustix::net::Shutdown;

use super::conn::TcpConn;
use super::machine::{Close, FromGuest, Input, Plan, Reply};
use super::{Ctx, Flows, TcpFlows, conn_of};
use crate::flow::table::FlowId;
use crate::sys::socket as sock;
use crate::wire::tcp::{Endpoints, Segment};

/// The parts of `seg` the state machine looks at.
pub fn input_of(seg: &Segment<'_>) -> Input {
    Input {
        flags: seg.flags,
        seq: seg.seq,
        ack: seg.ack,
        window: seg.window,
        payload_len: seg.payload.len(),
        mss: seg.options.mss,
        window_scale: seg.options.window_scale,
    }
}

impl TcpFlows {
    /// A guest segment for connection `id`.
    pub(super) fn segment_for(
        &mut self,
        flows: &mut Flows,
        ctx: &mut Ctx<'_>,
        id: FlowId,
        seg: &Segment<'_>,
    ) {
        if self.staged_for.is_some_and(|staged| staged != id) {
            self.flush_staged(flows, ctx);
        }
        let Some((ends, conn)) = conn_of(flows, ctx, id) else {
            return;
        };
        let v6 = ends.dst.is_ipv6();
        let plan = conn
            .core
            .on_segment(&input_of(seg), self.link_mss(v6), v6, Instant::now());
        self.counters.dropped_segments += u64::from(plan.dropped);
        self.counters.out_of_order += u64::from(plan.out_of_order);
        let verdict = self.carry_out(ctx, id, &ends, conn, seg, &plan);
        let reopen = plan.reopen.filter(|_| verdict == Some(Close::ResetHost));
        self.settle(flows, ctx, id, verdict);
        if let Some(syn) = reopen {
            self.reopen(flows, ctx, seg, &syn);
        }
    }

    /// The guest forgot a connection and opened it again (its RST answered
    /// our challenge ACK to its SYN): the SYN opens the new one now,
    /// instead of after the guest's SYN retransmission timer.
    fn reopen(&mut self, flows: &mut Flows, ctx: &mut Ctx<'_>, rst: &Segment<'_>, syn: &Input) {
        let seg = Segment {
            flags: syn.flags,
            seq: syn.seq,
            ack: syn.ack,
            window: syn.window,
            options: crate::wire::tcp::TcpOptions {
                mss: syn.mss,
                window_scale: syn.window_scale,
                sack_permitted: false,
            },
            payload: &[],
            ..*rst
        };
        log::debug!("TCP: {}:{} reconnects", seg.src, seg.src_port);
        self.from_guest(flows, ctx, &seg);
    }

    /// Carries out `plan` for `seg`; returns how the connection ends, if
    /// it does.
    fn carry_out(
        &mut self,
        ctx: &mut Ctx<'_>,
        id: FlowId,
        ends: &Endpoints,
        conn: &mut TcpConn,
        seg: &Segment<'_>,
        plan: &Plan,
    ) -> Option<Close> {
        if plan.close.is_some() {
            return plan.close;
        }
        if plan.discard > 0 {
            if let Err(e) = sock::discard(&conn.socket, plan.discard as usize) {
                log::debug!("TCP: discarding acknowledged data: {e}");
                return Some(Close::ResetBoth);
            }
        }
        if plan.rewind {
            self.counters.retransmissions += 1;
            self.rewind_peek(conn);
        }
        if plan.resend_head {
            self.counters.retransmissions += 1;
            self.resend_head(ctx, ends, conn);
        }
        let mut reply = plan.reply;
        if let Some(range) = plan.take.clone() {
            let wanted = range.len();
            let taken = match self.take_data(id, conn, &seg.payload[range]) {
                Ok(n) => n,
                Err(e) => {
                    log::debug!("TCP: write to host socket: {e}");
                    return Some(Close::ResetBoth);
                }
            };
            if taken < wanted {
                self.counters.refused_bytes += (wanted - taken) as u64;
                log::debug!("TCP: no room for {} bytes of guest data", wanted - taken);
            }
            reply = Some(conn.core.took(taken, wanted, plan.fin));
            if conn.core.from_guest() == FromGuest::FinTaken {
                let done = self
                    .write_staged(conn)
                    .and_then(|()| shutdown_when_flushed(conn));
                if let Err(e) = done {
                    log::debug!("TCP: write to host socket: {e}");
                    return Some(Close::ResetBoth);
                }
            }
        }
        self.answer(ctx, id, ends, conn, reply);
        if conn.host_pending || plan.send || plan.rewind {
            return self.send_data(ctx, ends, conn).err();
        }
        None
    }

    fn answer(
        &mut self,
        ctx: &mut Ctx<'_>,
        id: FlowId,
        ends: &Endpoints,
        conn: &mut TcpConn,
        reply: Option<Reply>,
    ) {
        match reply {
            None | Some(Reply::Nothing) => {}
            Some(Reply::Ack) => self.queue_ack(id, conn),
            Some(Reply::DuplicateAck) => self.send_duplicate_ack(ctx, ends, conn),
            Some(Reply::AckNow) => {
                self.counters.challenge_acks += 1;
                self.send_ack(ctx, ends, conn);
            }
            Some(Reply::SynAck) => self.send_syn(ctx, ends, conn),
        }
    }

    /// Takes in-order guest data: staged while the batch lasts (never
    /// more than the connection may keep, so what the socket does not
    /// take fits); directly written or kept when bytes are kept already
    /// or the stage is full. Returns the bytes accepted.
    fn take_data(&mut self, id: FlowId, conn: &mut TcpConn, data: &[u8]) -> io::Result<usize> {
        let room = self.kept.room_for(conn);
        if self.staged.len() + data.len() > room {
            self.write_staged(conn)?;
        }
        if conn.kept() > 0 || data.len() > self.kept.room_for(conn) {
            return self.kept.write_or_keep(conn, data);
        }
        self.staged.extend_from_slice(data);
        self.staged_for = Some(id);
        Ok(data.len())
    }

    /// Writes the staged data of `conn` (the connection it belongs to);
    /// what the socket does not take is kept.
    pub(super) fn write_staged(&mut self, conn: &mut TcpConn) -> io::Result<()> {
        self.staged_for = None;
        if self.staged.is_empty() {
            return Ok(());
        }
        let result = self.kept.write_or_keep(conn, &self.staged);
        let staged = self.staged.len();
        self.staged.clear();
        match result? {
            n if n == staged => Ok(()),
            // Cannot happen: staging stays within what may be kept.
            n => Err(io::Error::other(format!(
                "{} staged bytes lost",
                staged - n
            ))),
        }
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
}

/// Once the guest's FIN was taken and every kept byte is written: shut
/// the host socket's writing side.
pub fn shutdown_when_flushed(conn: &mut TcpConn) -> io::Result<()> {
    if conn.core.from_guest() == FromGuest::FinTaken && conn.kept() == 0 {
        rustix::net::shutdown(&conn.socket, Shutdown::Write)?;
        conn.core.host_shut();
    }
    Ok(())
}
