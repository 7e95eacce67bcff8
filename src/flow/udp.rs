//! UDP flows (REFERENCE.md §2.7): datagrams between two endpoints, each
//! reached through one [`End`]: the guest's link, a connected socket of
//! ours, or a forwarded port's socket and the peer that wrote to it.
//!
//! - Guest -> host: the guest's datagram opens a flow keyed by its address
//!   4-tuple; the host socket keeps the guest's source port (if that bind
//!   fails the datagram is dropped), is connected to the translated
//!   destination ([`nat::host_destination`]), and replies on it go back to
//!   the guest from the address and port it wrote to.
//! - Forwarded ports (`-u`, pasta's `-U`): a datagram on a forwarding
//!   socket from a new peer opens a flow whose first end is a duplicate of
//!   that socket plus the peer (replies leave from the forwarded port, so a
//!   remapped port answers from the port the peer used); the other end is
//!   the guest (through the link), or, for pasta's loopback paths, a
//!   socket connected inside the other namespace (a relay per datagram).
//!
//! Batching: guest datagrams of one link batch are staged (by frame
//! index and payload range: nothing is copied) and sent with `sendmmsg`
//! per flow at the end of the batch ([`UdpFlows::flush`], straight from
//! the batch's frames); sockets are read with `recvmmsg`, straight into
//! frame buffers whose headers are then written in front of each
//! payload.
//!
//! Invariants: a flow has at most one connected socket (its token's fd);
//! the staging area and receive buffers are allocated once and never grow;
//! flows expire after [`IDLE_TIMEOUT`] without traffic; datagrams are
//! dropped (counted, debug log), never queued, when a socket or the link
//! cannot take them. May call: `sys::mmsg`, rustix sockets, `wire::udp`,
//! `event`, [`nat`], [`super::table`].

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use rustix::net::{AddressFamily, SocketType, sockopt};

use super::listen::{DatagramListener, Listeners};
use super::table::{FlowId, FlowSide, Indexed, Pif, Protocol, Side};
use super::{Ctx, FlowState, Flows, family_of, loopback_like, nat, new_socket, unspecified_like};
use crate::event::{Interest, Token, TokenKind};
use crate::link::{Offload, PartialChecksum};
use crate::sys::mmsg::{self, MAX_BATCH, Received};
use crate::wire::ip::Endpoints;
use crate::wire::udp::{self as wire, Checksum, Datagram};

/// A flow without traffic for this long is removed (upstream's 180 s).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(180);
/// Datagrams read per `recvmmsg`.
const RECV_BATCH: usize = 32;
/// `recvmmsg` calls per readiness report, at most (the loop stays fair to
/// other sockets; a level-triggered socket reports again).
const RECV_ROUNDS: usize = 8;
/// One receive slot: the largest frame toward the guest, plus the room an
/// IPv4 payload received at the IPv6 offset needs.
const SLOT: usize = crate::link::MAX_FRAME + crate::wire::ip::IPV6_LEN - crate::wire::ip::IPV4_LEN;
/// Guest datagrams staged at most (a batch's frames; a longer batch
/// would only mean more `sendmmsg` calls).
const STAGE_DATAGRAMS: usize = 1024;
/// The DHCP and DHCPv6 server ports: what the local services do not answer
/// there goes nowhere.
const DHCP_PORT: u16 = 67;
const DHCPV6_PORT: u16 = 547;

/// How one endpoint of a flow is reached.
#[derive(Debug)]
enum End {
    /// Through the guest's link (frames built from the flow's guest side).
    Tap,
    /// A socket of ours connected to the endpoint, watched for reading.
    Socket(OwnedFd),
    /// A forwarded port's socket (a duplicate) and the peer that wrote to
    /// it.
    Listener { socket: OwnedFd, peer: SocketAddr },
}

/// A UDP flow's state: its two ends, by [`Side`].
#[derive(Debug)]
pub struct UdpState {
    ends: [End; 2],
    last_active: Instant,
}

impl UdpState {
    fn end(&self, side: Side) -> &End {
        &self.ends[side as usize]
    }

    /// The side whose end is a connected socket, if any.
    fn socket_side(&self) -> Option<Side> {
        [Side::Guest, Side::Host]
            .into_iter()
            .find(|&s| matches!(self.end(s), End::Socket(_)))
    }
}

/// Datagrams dropped and flows refused, by reason.
#[derive(Debug, Default, Clone, Copy)]
pub struct UdpCounters {
    pub refused_table_full: u64,
    pub socket_failures: u64,
    pub dropped_invalid: u64,
    pub dropped_send: u64,
    pub dropped_link: u64,
    pub dropped_oversize: u64,
}

/// One staged guest datagram: its flow, the index of its frame in the
/// link batch and where its payload is in that frame.
struct Staged {
    id: FlowId,
    frame: usize,
    payload: Range<usize>,
}

/// The UDP flows' shared buffers and counters (the flows themselves live in
/// the flow table).
pub struct UdpFlows {
    staged: Vec<Staged>,
    /// [`RECV_BATCH`] slots of [`SLOT`] bytes.
    rx: Box<[u8]>,
    pub counters: UdpCounters,
}

impl Default for UdpFlows {
    fn default() -> Self {
        UdpFlows::new()
    }
}

impl UdpFlows {
    pub fn new() -> UdpFlows {
        UdpFlows {
            staged: Vec::with_capacity(STAGE_DATAGRAMS),
            rx: vec![0; RECV_BATCH * SLOT].into_boxed_slice(),
            counters: UdpCounters::default(),
        }
    }

    /// A guest datagram, from frame `frame` of the link batch: staged for
    /// its flow (opened if new); sent by [`UdpFlows::flush`].
    pub fn from_guest(
        &mut self,
        flows: &mut Flows,
        ctx: &mut Ctx<'_>,
        dgram: &Datagram<'_>,
        frame: usize,
    ) {
        if !acceptable(dgram) {
            self.counters.dropped_invalid += 1;
            log::debug!(
                "UDP: dropped datagram {}:{} -> {}:{}",
                dgram.src,
                dgram.src_port,
                dgram.dst,
                dgram.dst_port
            );
            return;
        }
        let key = FlowSide {
            pif: Pif::Tap,
            our_addr: dgram.dst,
            our_port: dgram.dst_port,
            end_addr: dgram.src,
            end_port: dgram.src_port,
        };
        let id = match flows.lookup(Protocol::Udp, &key) {
            Some((id, Side::Guest)) => id,
            Some(_) => return,
            None => match self.open_from_guest(flows, ctx, key) {
                Some(id) => id,
                None => return,
            },
        };
        if self.staged.len() < STAGE_DATAGRAMS {
            let at = dgram.payload_at;
            self.staged.push(Staged {
                id,
                frame,
                payload: at..at + dgram.payload.len(),
            });
        } else {
            self.counters.dropped_send += 1;
        }
    }

    /// Sends the staged guest datagrams, one `sendmmsg` per run of
    /// datagrams of the same flow; `frames` gives the link batch's frames
    /// by index.
    pub fn flush<'f>(&mut self, flows: &mut Flows, frames: impl Fn(usize) -> Option<&'f [u8]>) {
        let mut at = 0;
        while at < self.staged.len() {
            let id = self.staged[at].id;
            let run = self.staged[at..]
                .iter()
                .take(MAX_BATCH)
                .take_while(|s| s.id == id)
                .count();
            let datagrams = self.staged[at..at + run]
                .iter()
                .filter_map(|s| frames(s.frame)?.get(s.payload.clone()));
            let sent = send_toward_host(flows, id, datagrams);
            self.counters.dropped_send += (run - sent) as u64;
            at += run;
        }
        self.staged.clear();
    }

    /// A guest datagram for a new flow: a host socket bound to the guest's
    /// source port and connected to the translated destination.
    fn open_from_guest(
        &mut self,
        flows: &mut Flows,
        ctx: &mut Ctx<'_>,
        guest: FlowSide,
    ) -> Option<FlowId> {
        let dst = SocketAddr::new(
            nat::host_destination(ctx.config, guest.our_addr, guest.our_port),
            guest.our_port,
        );
        let socket = match outbound_socket(ctx, dst, guest.end_port) {
            Ok(socket) => socket,
            Err(e) => {
                self.counters.socket_failures += 1;
                log::debug!("UDP: no socket from port {} to {dst}: {e}", guest.end_port);
                return None;
            }
        };
        let host = connected_side(Pif::Host, &socket, dst)?;
        let ends = [End::Tap, End::Socket(socket)];
        self.insert(flows, ctx, guest, host, Indexed::Guest, ends)
    }

    /// Adds a flow and watches its connected socket, if any.
    fn insert(
        &mut self,
        flows: &mut Flows,
        ctx: &mut Ctx<'_>,
        guest: FlowSide,
        host: FlowSide,
        indexed: Indexed,
        ends: [End; 2],
    ) -> Option<FlowId> {
        let vacant = match flows.vacant(Protocol::Udp, guest, host, indexed) {
            Ok(v) => v,
            Err(e) => {
                self.counters.refused_table_full += 1;
                log::debug!("UDP: no flow for {guest:?}: {e}");
                return None;
            }
        };
        let state = UdpState {
            ends,
            last_active: Instant::now(),
        };
        if let Some(side) = state.socket_side()
            && let End::Socket(fd) = state.end(side)
            && let Err(e) = ctx.events.add(fd, token(vacant.id()), Interest::READ)
        {
            log::debug!("UDP: epoll: {e}");
            return None;
        }
        Some(vacant.insert(FlowState::Udp(Box::new(state))))
    }

    /// A flow's connected socket is readable: its datagrams go to the
    /// flow's other end.
    pub fn on_socket(&mut self, flows: &mut Flows, ctx: &mut Ctx<'_>, id: FlowId) {
        for _ in 0..RECV_ROUNDS {
            let mut received = [Received::default(); RECV_BATCH];
            let Some((side, headroom, count)) = self.receive_on_flow(flows, id, &mut received)
            else {
                return;
            };
            for (i, r) in received[..count].iter().enumerate() {
                self.deliver_slot(flows, ctx, id, side.other(), (i, headroom), r);
            }
            if count < RECV_BATCH {
                return;
            }
        }
    }

    /// Reads flow `id`'s connected socket into the receive slots; the side
    /// the socket is on, the payloads' offset in the slots and how many
    /// datagrams arrived.
    fn receive_on_flow(
        &mut self,
        flows: &Flows,
        id: FlowId,
        out: &mut [Received; RECV_BATCH],
    ) -> Option<(Side, usize, usize)> {
        let FlowState::Udp(state) = &flows.get(id)?.state else {
            return None;
        };
        let side = state.socket_side()?;
        let End::Socket(fd) = state.end(side) else {
            return None;
        };
        let headroom = wire::header_len(flows.get(id)?.side(side).end_addr.is_ipv6());
        match receive(&mut self.rx, fd, headroom, out) {
            Ok(n) => Some((side, headroom, n)),
            Err(e) => {
                log::debug!("UDP: receive on flow {id:?}: {e}");
                None
            }
        }
    }

    /// Datagrams on a forwarded port's socket (`-u`, `-U`): each goes to
    /// its flow's other end, opening a flow for a new peer.
    pub fn on_listener(
        &mut self,
        flows: &mut Flows,
        ctx: &mut Ctx<'_>,
        listeners: &Listeners,
        index: u32,
    ) {
        let Some(listener) = listeners.datagram_listener(index) else {
            return;
        };
        for _ in 0..RECV_ROUNDS {
            let mut received = [Received::default(); RECV_BATCH];
            let headroom = wire::header_len(true);
            let count = match receive(&mut self.rx, listener.socket, headroom, &mut received) {
                Ok(n) => n,
                Err(e) => {
                    log::debug!("UDP: receive on port {}: {e}", listener.bound.port());
                    return;
                }
            };
            for (i, r) in received[..count].iter().enumerate() {
                let Some(peer) = r.from else { continue };
                let Some((id, side)) = self.listener_flow(flows, ctx, &listener, peer) else {
                    continue;
                };
                self.deliver_slot(flows, ctx, id, side.other(), (i, headroom), r);
            }
            if count < RECV_BATCH {
                return;
            }
        }
    }

    /// The flow of `peer`'s datagrams on `listener`, opened if new; and the
    /// side the listener is on.
    fn listener_flow(
        &mut self,
        flows: &mut Flows,
        ctx: &mut Ctx<'_>,
        listener: &DatagramListener<'_>,
        peer: SocketAddr,
    ) -> Option<(FlowId, Side)> {
        let key = FlowSide {
            pif: listener.pif,
            our_addr: listener.bound.ip().to_canonical(),
            our_port: listener.bound.port(),
            end_addr: peer.ip(),
            end_port: peer.port(),
        };
        if let Some(found) = flows.lookup(Protocol::Udp, &key) {
            return Some(found);
        }
        if peer.port() == 0 || peer.ip().is_unspecified() || peer.ip().is_multicast() {
            self.counters.dropped_invalid += 1;
            return None;
        }
        let socket = match rustix::io::fcntl_dupfd_cloexec(listener.socket, 0) {
            Ok(fd) => fd,
            Err(e) => {
                self.counters.socket_failures += 1;
                log::debug!("UDP: duplicating a forwarded port's socket: {e}");
                return None;
            }
        };
        let first = End::Listener { socket, peer };
        let (id, side) = match listener.pif {
            Pif::Splice => (
                self.open_to_host(flows, ctx, key, first, listener.target_port)?,
                Side::Guest,
            ),
            _ if ctx.splice_target(peer.ip()).is_some() => (
                self.open_to_namespace(flows, ctx, key, first, listener.target_port)?,
                Side::Host,
            ),
            _ => (
                self.open_to_guest(flows, ctx, key, first, listener.target_port)?,
                Side::Host,
            ),
        };
        Some((id, side))
    }

    /// `-u` through the link: the guest sees the peer at the address
    /// [`nat::guest_source`] gives and gets the datagrams on `port`.
    fn open_to_guest(
        &mut self,
        flows: &mut Flows,
        ctx: &mut Ctx<'_>,
        host: FlowSide,
        first: End,
        port: u16,
    ) -> Option<FlowId> {
        let peer = host.end_addr;
        let (Some(source), Some(guest_addr)) = (
            nat::guest_source(ctx.config, peer),
            ctx.guest_addrs.like(peer),
        ) else {
            self.counters.dropped_invalid += 1;
            log::debug!("UDP: no guest address to forward {peer} to");
            return None;
        };
        let guest = FlowSide {
            pif: Pif::Tap,
            our_addr: source,
            our_port: host.end_port,
            end_addr: guest_addr,
            end_port: port,
        };
        self.insert(flows, ctx, guest, host, Indexed::Both, [End::Tap, first])
    }

    /// pasta, `-u` from the host's loopback: relayed to a socket connected
    /// inside the namespace, to the namespace's address (its loopback with
    /// `--host-lo-to-ns-lo`), keeping the peer's port if it can.
    fn open_to_namespace(
        &mut self,
        flows: &mut Flows,
        ctx: &mut Ctx<'_>,
        host: FlowSide,
        first: End,
        port: u16,
    ) -> Option<FlowId> {
        let (namespace, target_addr) = ctx.splice_target(host.end_addr)?;
        let dst = SocketAddr::new(target_addr, port);
        let make = |family| namespace.socket(family, SocketType::DGRAM);
        let socket = self.relay_socket(make, dst, host.end_port)?;
        let guest = connected_side(Pif::Splice, &socket, dst)?;
        self.insert(
            flows,
            ctx,
            guest,
            host,
            Indexed::Host,
            [End::Socket(socket), first],
        )
    }

    /// pasta, `-U`: a datagram to a loopback port inside the namespace is
    /// relayed to the same loopback address family on the host, at `port`.
    fn open_to_host(
        &mut self,
        flows: &mut Flows,
        ctx: &mut Ctx<'_>,
        ns_side: FlowSide,
        first: End,
        port: u16,
    ) -> Option<FlowId> {
        let dst = SocketAddr::new(loopback_like(ns_side.end_addr), port);
        let socket = self.relay_socket(host_socket, dst, ns_side.end_port)?;
        let host = connected_side(Pif::Host, &socket, dst)?;
        self.insert(
            flows,
            ctx,
            ns_side,
            host,
            Indexed::Guest,
            [first, End::Socket(socket)],
        )
    }

    /// A relay socket (made by `make`) connected to `dst`, bound to the
    /// loopback-side peer's `port` if free, else to a port the kernel
    /// picks; `None` (counted) if it cannot be made.
    fn relay_socket(
        &mut self,
        make: impl Fn(AddressFamily) -> io::Result<OwnedFd>,
        dst: SocketAddr,
        port: u16,
    ) -> Option<OwnedFd> {
        let made = make(family_of(dst)).and_then(|socket| {
            prepare(&socket, dst)?;
            let any = SocketAddr::new(unspecified_like(dst.ip()), port);
            if let Err(e) = rustix::net::bind(&socket, &any) {
                log::trace!("UDP: relay socket keeps no port {port}: {e}");
            }
            rustix::net::connect(&socket, &dst)?;
            Ok(socket)
        });
        made.map_err(|e| {
            self.counters.socket_failures += 1;
            log::debug!("UDP: no relay socket to {dst}: {e}");
        })
        .ok()
    }

    /// Sends datagram `r` of flow `id`, at `headroom` in receive slot
    /// `slot`, to the flow's end `to`.
    fn deliver_slot(
        &mut self,
        flows: &mut Flows,
        ctx: &mut Ctx<'_>,
        id: FlowId,
        to: Side,
        (slot, headroom): (usize, usize),
        r: &Received,
    ) {
        let Some(flow) = flows.get_mut(id) else {
            return;
        };
        let guest = *flow.side(Side::Guest);
        let FlowState::Udp(state) = &mut flow.state else {
            return;
        };
        state.last_active = Instant::now();
        if r.truncated {
            self.counters.dropped_oversize += 1;
            return;
        }
        let Some(frame_area) = self.rx.get_mut(slot * SLOT..(slot + 1) * SLOT) else {
            return;
        };
        let delivered = match state.end(to) {
            End::Tap => {
                let payload_at = wire::header_len(guest.end_addr.is_ipv6());
                if payload_at != headroom {
                    frame_area.copy_within(headroom..headroom + r.len, payload_at);
                }
                to_guest(ctx, &guest, &mut frame_area[..], r.len)
            }
            End::Socket(fd) => {
                let payload = &frame_area[headroom..headroom + r.len];
                mmsg::send_many(fd, [payload], None).is_ok_and(|n| n == 1)
            }
            End::Listener { socket, peer } => {
                let payload = &frame_area[headroom..headroom + r.len];
                mmsg::send_many(socket, [payload], Some(*peer)).is_ok_and(|n| n == 1)
            }
        };
        if !delivered {
            match state.end(to) {
                End::Tap => self.counters.dropped_link += 1,
                _ => self.counters.dropped_send += 1,
            }
        }
    }

    /// Removes the flows idle for [`IDLE_TIMEOUT`].
    pub fn expire(&mut self, flows: &mut Flows, ctx: &Ctx<'_>, now: Instant) {
        flows.retain(|_, flow| {
            let FlowState::Udp(state) = &flow.state else {
                return true;
            };
            if now.duration_since(state.last_active) < IDLE_TIMEOUT {
                return true;
            }
            if let Some(side) = state.socket_side()
                && let End::Socket(fd) = state.end(side)
            {
                let _ = ctx.events.delete(fd);
            }
            log::debug!("UDP: flow {:?} expired", flow.side(Side::Guest));
            false
        });
    }
}

fn token(id: FlowId) -> Token {
    Token::new(TokenKind::Udp, id.raw())
}

/// Whether a guest datagram may open or use a flow: ports not zero, a
/// unicast destination, not for the DHCP servers (answered locally or not
/// at all).
fn acceptable(d: &Datagram<'_>) -> bool {
    let dhcp = match d.dst {
        IpAddr::V4(_) => d.dst_port == DHCP_PORT,
        IpAddr::V6(_) => d.dst_port == DHCPV6_PORT,
    };
    let unicast = match d.dst {
        IpAddr::V4(a) => !(a.is_unspecified() || a.is_multicast() || a.is_broadcast()),
        IpAddr::V6(a) => !(a.is_unspecified() || a.is_multicast()),
    };
    d.src_port != 0 && d.dst_port != 0 && unicast && !dhcp
}

/// A datagram socket in our own namespace.
fn host_socket(family: AddressFamily) -> io::Result<OwnedFd> {
    new_socket(family, SocketType::DGRAM)
}

/// Options every flow socket gets: address reuse (several flows may share
/// a source port toward different peers), IPv6 only for IPv6.
fn prepare(socket: &OwnedFd, dst: SocketAddr) -> io::Result<()> {
    sockopt::set_socket_reuseaddr(socket, true)?;
    if dst.is_ipv6() {
        sockopt::set_ipv6_v6only(socket, true)?;
    }
    Ok(())
}

/// A host socket bound to `-o`/`--outbound-if` and the guest's source
/// `port`, connected to `dst`.
fn outbound_socket(ctx: &Ctx<'_>, dst: SocketAddr, port: u16) -> io::Result<OwnedFd> {
    let socket = host_socket(family_of(dst))?;
    prepare(&socket, dst)?;
    super::bind_outbound(ctx.config, &socket, dst.is_ipv6(), port)?;
    rustix::net::connect(&socket, &dst)?;
    Ok(socket)
}

/// The flow side of a connected socket: its local address and port, and
/// `dst`.
fn connected_side(pif: Pif, socket: &OwnedFd, dst: SocketAddr) -> Option<FlowSide> {
    let local = rustix::net::getsockname(socket)
        .ok()
        .and_then(|a| SocketAddr::try_from(a).ok())?;
    Some(FlowSide {
        pif,
        our_addr: local.ip().to_canonical(),
        our_port: local.port(),
        end_addr: dst.ip().to_canonical(),
        end_port: dst.port(),
    })
}

/// Reads up to [`RECV_BATCH`] datagrams from `socket` into the receive
/// slots of `rx`, each `headroom` bytes into its slot (the payload offset
/// of a frame of the expected family; [`UdpFlows::deliver_slot`] moves a
/// payload whose frame needs another).
fn receive(
    rx: &mut [u8],
    socket: impl AsFd,
    headroom: usize,
    out: &mut [Received],
) -> io::Result<usize> {
    let bufs = rx
        .chunks_exact_mut(SLOT)
        .map(|slot| slot.get_mut(headroom..).unwrap_or_default());
    mmsg::recv_many(socket, bufs, out)
}

/// Staged guest datagrams of flow `id` to its host end; how many were sent.
fn send_toward_host<'d>(
    flows: &mut Flows,
    id: FlowId,
    datagrams: impl IntoIterator<Item = &'d [u8]>,
) -> usize {
    let Some(flow) = flows.get_mut(id) else {
        return 0;
    };
    let FlowState::Udp(state) = &mut flow.state else {
        return 0;
    };
    state.last_active = Instant::now();
    let result = match state.end(Side::Host) {
        End::Socket(fd) => mmsg::send_many(fd, datagrams, None),
        End::Listener { socket, peer } => mmsg::send_many(socket, datagrams, Some(*peer)),
        End::Tap => Ok(0),
    };
    result.unwrap_or_else(|e| {
        log::debug!("UDP: send on flow {id:?}: {e}");
        0
    })
}

/// Writes the headers of a datagram from the flow's `guest` side in front
/// of the `len` payload bytes at `frame[wire::header_len(v6)..]` and sends
/// the frame to the guest.
fn to_guest(ctx: &mut Ctx<'_>, guest: &FlowSide, frame: &mut [u8], len: usize) -> bool {
    let ends = Endpoints {
        our_mac: ctx.our_mac,
        guest_mac: ctx.guest_mac,
        src: guest.our_addr,
        dst: guest.end_addr,
        src_port: guest.our_port,
        dst_port: guest.end_port,
    };
    let v6 = ends.dst.is_ipv6();
    let offload = ctx.link.offloads();
    let checksum = match offload {
        true => Checksum::Partial,
        false => Checksum::Full,
    };
    let Some(n) = wire::write_headers(&ends, frame, len, checksum) else {
        return false;
    };
    let frame = &frame[..n];
    match offload {
        true => {
            let start = crate::wire::ip::header_len(v6) as u16;
            let partial = PartialChecksum {
                start,
                offset: wire::CHECKSUM_OFFSET,
            };
            let offload = Offload {
                partial_checksum: Some(partial),
                gso: None,
            };
            ctx.link.send_offloaded(frame, offload)
        }
        false => ctx.link.send_frame(frame),
    }
}

#[cfg(test)]
mod socket_tests {
    use super::*;
    use crate::conf::{Config, Mode, fixture};
    use crate::event::{EventLoop, Ready};
    use crate::flow::listen::{Forward, Listeners};
    use crate::flow::testing::{Frames, in_private_netns};
    use std::net::UdpSocket;

    const GUEST_PORT: u16 = 40000;

    /// UDP flows with a guest at its configured address, a frame-keeping
    /// link, and the `-u` sockets of `args`.
    struct Rig {
        config: Config,
        events: EventLoop,
        flows: Flows,
        udp: UdpFlows,
        link: Frames,
        listeners: Listeners,
    }

    impl Rig {
        fn new(args: &[&str], capacity: usize) -> Rig {
            let config = fixture::config(Mode::Passt, args);
            let events = EventLoop::new().unwrap();
            let listeners = Listeners::bind(&config, &events, Forward::UdpIn, None).unwrap();
            Rig {
                config,
                events,
                flows: Flows::new(capacity),
                udp: UdpFlows::new(),
                link: Frames::default(),
                listeners,
            }
        }

        fn with_ctx(
            &mut self,
            f: impl FnOnce(&mut UdpFlows, &mut Flows, &Listeners, &mut Ctx<'_>),
        ) {
            let Rig {
                config,
                events,
                flows,
                udp,
                link,
                listeners,
            } = self;
            let mut ctx = Ctx::standalone(config, events, [2; 6], link);
            f(udp, flows, listeners, &mut ctx);
        }

        fn guest_addr(&self) -> IpAddr {
            IpAddr::V4(self.config.ip4.as_ref().unwrap().addr)
        }

        fn gateway(&self) -> IpAddr {
            IpAddr::V4(self.config.nat.map_host_loopback4.unwrap())
        }

        /// Guest datagrams from `src_port` to `dst`, as one batch.
        fn guest(&mut self, src_port: u16, dst: SocketAddr, payloads: &[&[u8]]) {
            let frames: Vec<Vec<u8>> = payloads
                .iter()
                .map(|p| guest_frame(self.guest_addr(), src_port, dst, p))
                .collect();
            self.batch(&frames);
        }

        /// `frames` as one link batch.
        fn batch(&mut self, frames: &[Vec<u8>]) {
            self.with_ctx(|udp, flows, _, ctx| {
                for (i, frame) in frames.iter().enumerate() {
                    udp.from_guest(flows, ctx, &wire::parse_datagram(frame).unwrap(), i);
                }
                udp.flush(flows, |i| frames.get(i).map(|f| &f[..]));
            });
        }

        /// One IPv6 guest datagram from `src_port` to `dst`.
        fn guest6(&mut self, src_port: u16, dst: SocketAddr, payload: &[u8]) {
            let src = IpAddr::V6(self.config.ip6.as_ref().unwrap().addr);
            self.batch(&[guest_frame(src, src_port, dst, payload)]);
        }

        /// Handles the ready sockets until none is.
        fn events(&mut self) {
            let mut ready: Vec<Ready> = Vec::new();
            for _ in 0..16 {
                std::thread::sleep(Duration::from_millis(10));
                self.events.poll(&mut ready).unwrap();
                if ready.is_empty() {
                    return;
                }
                for r in &ready {
                    let (kind, index) = (r.token.kind, r.token.index);
                    self.with_ctx(|udp, flows, listeners, ctx| match kind {
                        TokenKind::Udp => udp.on_socket(flows, ctx, FlowId::from_raw(index)),
                        _ => udp.on_listener(flows, ctx, listeners, index),
                    });
                }
            }
        }

        /// The datagrams sent to the guest since the last call: (source,
        /// destination, payload).
        fn sent(&mut self) -> Vec<(SocketAddr, SocketAddr, Vec<u8>)> {
            let frames = std::mem::take(&mut self.link.sent);
            frames
                .iter()
                .map(|f| {
                    let d = wire::parse_datagram(f).unwrap();
                    assert_eq!(f.len(), wire::header_len(d.dst.is_ipv6()) + d.payload.len());
                    (
                        SocketAddr::new(d.src, d.src_port),
                        SocketAddr::new(d.dst, d.dst_port),
                        d.payload.to_vec(),
                    )
                })
                .collect()
        }
    }

    /// A guest frame built with etherparse (an independent builder).
    fn guest_frame(src: IpAddr, src_port: u16, dst: SocketAddr, payload: &[u8]) -> Vec<u8> {
        let b = etherparse::PacketBuilder::ethernet2([2; 6], [4; 6]);
        let b = match (src, dst.ip()) {
            (IpAddr::V4(s), IpAddr::V4(d)) => b.ipv4(s.octets(), d.octets(), 64),
            (IpAddr::V6(s), IpAddr::V6(d)) => b.ipv6(s.octets(), d.octets(), 64),
            _ => panic!("mixed families"),
        };
        let mut out = Vec::new();
        b.udp(src_port, dst.port())
            .write(&mut out, payload)
            .unwrap();
        out
    }

    fn recv(socket: &UdpSocket) -> (Vec<u8>, SocketAddr) {
        socket
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let mut buf = vec![0; 70000];
        let (n, from) = socket.recv_from(&mut buf).unwrap();
        buf.truncate(n);
        (buf, from)
    }

    #[test]
    fn udp_guest_to_host_loopback_keeps_the_port_and_replies_come_back() {
        in_private_netns(|| {
            let mut rig = Rig::new(&[], 16);
            let host = UdpSocket::bind("127.0.0.1:0").unwrap();
            let dst = SocketAddr::new(rig.gateway(), host.local_addr().unwrap().port());
            rig.guest(GUEST_PORT, dst, &[b"one", b"two"]);
            let (first, from) = recv(&host);
            assert_eq!((&first[..], from.port()), (&b"one"[..], GUEST_PORT));
            assert_eq!(recv(&host).0, b"two", "in order, one flow");
            assert_eq!(rig.flows.len(), 1);
            let big = vec![7u8; 60000];
            host.send_to(&big, from).unwrap();
            host.send_to(b"short", from).unwrap();
            rig.events();
            let sent = rig.sent();
            let to_guest = SocketAddr::new(rig.guest_addr(), GUEST_PORT);
            assert_eq!(sent.len(), 2);
            assert_eq!(sent[0], (dst, to_guest, big));
            assert_eq!(sent[1].2, b"short");
        });
    }

    #[test]
    fn udp_batch_longer_than_one_sendmmsg_arrives_in_order() {
        in_private_netns(|| {
            let mut rig = Rig::new(&[], 16);
            let host = UdpSocket::bind("127.0.0.1:0").unwrap();
            let port = host.local_addr().unwrap().port();
            let dst = SocketAddr::new(rig.gateway(), port);
            let other = UdpSocket::bind("127.0.0.1:0").unwrap();
            let dst2 = SocketAddr::new(rig.gateway(), other.local_addr().unwrap().port());
            let payloads: Vec<Vec<u8>> = (0..150u32).map(|i| i.to_be_bytes().to_vec()).collect();
            let frames: Vec<Vec<u8>> = payloads
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    let to = if i % 50 == 49 { dst2 } else { dst };
                    guest_frame(rig.guest_addr(), GUEST_PORT, to, p)
                })
                .collect();
            rig.batch(&frames);
            let expected: Vec<&Vec<u8>> = payloads
                .iter()
                .enumerate()
                .filter(|(i, _)| i % 50 != 49)
                .map(|(_, p)| p)
                .collect();
            for want in expected {
                assert_eq!(&recv(&host).0, want);
            }
            for _ in 0..3 {
                assert_eq!(recv(&other).1.port(), GUEST_PORT);
            }
            assert_eq!(rig.udp.counters.dropped_send, 0);
        });
    }

    #[test]
    fn udp_refuses_dhcp_ports_zero_ports_and_multicast() {
        in_private_netns(|| {
            let mut rig = Rig::new(&[], 16);
            let gw = rig.gateway();
            rig.guest(GUEST_PORT, SocketAddr::new(gw, DHCP_PORT), &[b"x"]);
            rig.guest(0, SocketAddr::new(gw, 53), &[b"x"]);
            rig.guest(GUEST_PORT, SocketAddr::new(gw, 0), &[b"x"]);
            let multicast: IpAddr = "224.0.0.251".parse().unwrap();
            rig.guest(GUEST_PORT, SocketAddr::new(multicast, 5353), &[b"x"]);
            assert_eq!(rig.udp.counters.dropped_invalid, 4);
            assert!(rig.flows.is_empty());
        });
    }

    #[test]
    fn udp_forwarded_port_remaps_and_replies_leave_from_it() {
        in_private_netns(|| {
            let mut rig = Rig::new(&["-u", "5000:6000"], 16);
            let client = UdpSocket::bind("127.0.0.1:0").unwrap();
            client.send_to(b"ping", "127.0.0.1:5000").unwrap();
            rig.events();
            let sent = rig.sent();
            assert_eq!(sent.len(), 1);
            let (src, dst, payload) = &sent[0];
            assert_eq!(payload, b"ping");
            assert_eq!(*dst, SocketAddr::new(rig.guest_addr(), 6000));
            let client_port = client.local_addr().unwrap().port();
            assert_eq!(
                *src,
                SocketAddr::new(rig.gateway(), client_port),
                "loopback as the gateway"
            );
            // The guest answers from 6000 to what it saw.
            rig.guest(6000, *src, &[b"pong"]);
            let (reply, from) = recv(&client);
            assert_eq!((&reply[..], from.port()), (&b"pong"[..], 5000));
            // Another datagram of the same peer uses the same flow.
            client.send_to(b"again", "127.0.0.1:5000").unwrap();
            rig.events();
            assert_eq!(rig.sent().len(), 1);
            assert_eq!(rig.flows.len(), 1);
        });
    }

    #[test]
    fn udp_forwards_port_65535() {
        in_private_netns(|| {
            let mut rig = Rig::new(&["-u", "65535"], 16);
            let client = UdpSocket::bind("[::1]:0").unwrap();
            client.send_to(b"top", "[::1]:65535").unwrap();
            rig.events();
            let sent = rig.sent();
            assert_eq!(sent.len(), 1);
            assert_eq!(sent[0].1.port(), 65535);
            rig.guest6(65535, sent[0].0, b"back");
            let (reply, from) = recv(&client);
            assert_eq!((&reply[..], from.port()), (&b"back"[..], 65535));
        });
    }

    #[test]
    fn udp_flows_expire_when_idle() {
        in_private_netns(|| {
            let mut rig = Rig::new(&[], 16);
            let host = UdpSocket::bind("127.0.0.1:0").unwrap();
            let dst = SocketAddr::new(rig.gateway(), host.local_addr().unwrap().port());
            rig.guest(GUEST_PORT, dst, &[b"x"]);
            assert_eq!(rig.flows.len(), 1);
            let now = Instant::now();
            rig.with_ctx(|udp, flows, _, ctx| udp.expire(flows, ctx, now));
            assert_eq!(rig.flows.len(), 1, "not idle yet");
            let later = now + IDLE_TIMEOUT + Duration::from_secs(1);
            rig.with_ctx(|udp, flows, _, ctx| udp.expire(flows, ctx, later));
            assert!(rig.flows.is_empty());
            // The port is free again: its socket was closed.
            UdpSocket::bind(("0.0.0.0", GUEST_PORT)).unwrap();
        });
    }

    #[test]
    fn udp_full_table_refuses_new_flows() {
        in_private_netns(|| {
            let mut rig = Rig::new(&[], 1);
            let host = UdpSocket::bind("127.0.0.1:0").unwrap();
            let dst = SocketAddr::new(rig.gateway(), host.local_addr().unwrap().port());
            rig.guest(GUEST_PORT, dst, &[b"a"]);
            rig.guest(GUEST_PORT + 1, dst, &[b"b"]);
            assert_eq!(rig.udp.counters.refused_table_full, 1);
            assert_eq!(recv(&host).0, b"a");
            rig.guest(GUEST_PORT, dst, &[b"c"]);
            assert_eq!(recv(&host).0, b"c", "the open flow keeps working");
        });
    }
}
