//! The engine: receives the guest's frames from the link and dispatches
//! them by ethertype and protocol to the local services and the flows, and
//! sends what those produce back to the guest.
//!
//! Dispatch: ARP, DHCP (UDP to 67), DHCPv6 (UDP to 547) and NDP go to the
//! local services, which answer at once; ICMP/ICMPv6 echo requests go to
//! [`PingFlows`]; TCP segments to [`TcpFlows`] (which acknowledges at the
//! end of each batch of frames); other UDP datagrams to [`UdpFlows`]
//! (which sends them at the end of each batch); unsolicited router
//! advertisements leave on the tick. Frames no handler takes are counted
//! and dropped (debug log). The guest's addresses are learned from the
//! sources of its TCP, UDP and ICMP frames.
//!
//! Invariants: a malformed frame is dropped and counted, never a panic;
//! every frame of a wake-up is handled before the loop waits again; the
//! guest's MAC address is learned from the source of its frames.

use std::collections::HashMap;
use std::io;
use std::time::Instant;

use crate::conf::Config;
use crate::conf::ports::PortSet;
use crate::event::{EventLoop, Interest, Ready, Token, TokenKind};
use crate::flow::icmp::{self, PingFlows};
use crate::flow::listen::{Forward, ForwardSockets};
use crate::flow::table::{DEFAULT_CAPACITY, FlowId, MAX_CAPACITY};
use crate::flow::tcp::TcpFlows;
use crate::flow::tcp::splice::{SpliceSide, SplicedConns};
use crate::flow::udp::UdpFlows;
use crate::flow::{Ctx, Flows, GuestAddrs, GuestLink, NamespaceSockets};
use crate::link::{FrameBatch, Link, Offload, ReadStop};
use crate::services::ndp::RaSchedule;
use crate::services::{self, Answer, LinkFacts};
use crate::wire::{self, FrameClass, PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP};

/// A local service's entry point (see [`crate::services`]).
type ServiceFn = fn(&Config, &LinkFacts, &[u8], &mut [u8]) -> Answer;

/// Bytes of the guest-frame batch (upstream: 8 MiB packet buffer).
const BATCH_BYTES: usize = 8 << 20;
/// Frames per batch.
const BATCH_FRAMES: usize = 1024;
/// Distinct frame classes counted separately (bounded: the rest are summed).
const MAX_CLASSES: usize = 64;
/// Largest frame built toward the guest.
const OUT_FRAME_MAX: usize = 65535;
/// Test-only knob: the flow table's capacity (the flow-table limit is
/// tested with a small one).
const FLOW_CAPACITY_ENV: &str = "PASST_RS_TEST_MAX_FLOWS";

/// The flow table's capacity: [`DEFAULT_CAPACITY`] unless the test knob
/// sets another (1..=[`MAX_CAPACITY`]).
fn flow_capacity() -> usize {
    std::env::var(FLOW_CAPACITY_ENV)
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&n| (1..=MAX_CAPACITY).contains(&n))
        .unwrap_or(DEFAULT_CAPACITY)
}

impl GuestLink for Link {
    fn send_frame(&mut self, frame: &[u8]) -> bool {
        self.send_offloaded(frame, Offload::NONE)
    }

    fn offloads(&self) -> bool {
        Link::offloads(self)
    }

    fn send_offloaded(&mut self, frame: &[u8], offload: Offload) -> bool {
        match self.write_offloaded(frame, offload) {
            Ok(sent) => sent,
            Err(e) => {
                log::debug!("Frame to the guest failed: {e}");
                self.counters.dropped_out += 1;
                false
            }
        }
    }
}

/// Whether the guest link is still there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkState {
    Open,
    Closed,
}

/// Frames dropped, by reason.
#[derive(Debug, Default)]
pub struct DropCounters {
    pub malformed: u64,
    /// No handler for this kind of frame yet.
    pub unhandled: HashMap<FrameClass, u64>,
    pub unhandled_other: u64,
}

impl DropCounters {
    fn unhandled(&mut self, class: FrameClass, len: usize) {
        log::debug!("Dropped {class:?} frame ({len} bytes): no handler");
        let known = self.unhandled.len();
        match self.unhandled.get_mut(&class) {
            Some(n) => *n += 1,
            None if known < MAX_CLASSES => {
                self.unhandled.insert(class, 1);
            }
            None => self.unhandled_other += 1,
        }
    }
}

/// The guest link's event token.
pub const LINK_TOKEN: Token = Token::new(TokenKind::Link, 0);

pub struct Engine {
    batch: FrameBatch,
    core: Core,
    /// EPOLLOUT is requested on the link (frames wait for room).
    link_out: bool,
}

/// Everything but the batch being dispatched.
struct Core {
    config: Config,
    link: Link,
    facts: LinkFacts,
    out: Box<[u8]>,
    flows: Flows,
    ping: PingFlows,
    tcp: TcpFlows,
    spliced: SplicedConns,
    udp: UdpFlows,
    /// The sockets of forwarded ports.
    forwards: ForwardSockets,
    guest_addrs: GuestAddrs,
    /// pasta: makes sockets inside the namespace.
    namespace: Option<Box<dyn NamespaceSockets>>,
    ra: RaSchedule,
    drops: DropCounters,
}

impl Engine {
    pub fn new(config: &Config, link: Link) -> Engine {
        Engine {
            batch: FrameBatch::new(BATCH_BYTES, BATCH_FRAMES),
            core: Core {
                config: config.clone(),
                link,
                facts: LinkFacts::new(config),
                out: vec![0; OUT_FRAME_MAX].into_boxed_slice(),
                flows: Flows::new(flow_capacity()),
                ping: PingFlows::new(),
                tcp: TcpFlows::new(config),
                spliced: SplicedConns::new(),
                udp: UdpFlows::new(),
                forwards: ForwardSockets::default(),
                guest_addrs: GuestAddrs::new(config),
                namespace: None,
                ra: RaSchedule::new(Instant::now()),
                drops: DropCounters::default(),
            },
            link_out: false,
        }
    }

    /// Takes over the sockets of forwarded ports.
    pub fn set_forwards(&mut self, forwards: ForwardSockets) {
        self.core.forwards = forwards;
    }

    /// pasta: how sockets inside the namespace are made.
    pub fn set_namespace(&mut self, namespace: Box<dyn NamespaceSockets>) {
        self.core.namespace = Some(namespace);
    }

    pub fn namespace(&self) -> Option<&dyn NamespaceSockets> {
        self.core.namespace.as_deref()
    }

    /// The ports `forward`'s sockets are bound to.
    pub fn forward_ports(&self, forward: Forward) -> PortSet {
        self.core.forwards.of(forward).ports()
    }

    /// `auto`: binds and releases `forward`'s sockets to match `wanted`.
    pub fn sync_forward(&mut self, events: &EventLoop, forward: Forward, wanted: &PortSet) {
        let Core {
            config,
            forwards,
            namespace,
            ..
        } = &mut self.core;
        forwards
            .of_mut(forward)
            .sync_ports(config, events, namespace.as_deref(), wanted);
    }

    pub fn link(&self) -> &Link {
        &self.core.link
    }

    pub fn link_mut(&mut self) -> &mut Link {
        &mut self.core.link
    }

    /// The guest's MAC when known from elsewhere (pasta: the tap's).
    pub fn set_guest_mac(&mut self, mac: [u8; 6]) {
        self.core.facts.guest_mac = mac;
    }

    /// Reads the link until it would block, dispatching every frame.
    pub fn on_link_readable(&mut self, events: &EventLoop) -> io::Result<LinkState> {
        loop {
            let stop = self.core.link.read_batch(&mut self.batch)?;
            for (index, frame) in self.batch.iter().enumerate() {
                self.core.dispatch(frame, index, events);
            }
            let batch = &self.batch;
            self.core.end_of_batch(events, |i| batch.get(i));
            match stop {
                ReadStop::BatchFull => continue,
                ReadStop::Drained => return Ok(LinkState::Open),
                ReadStop::Closed => return Ok(LinkState::Closed),
            }
        }
    }

    /// The guest went away (passt): frames are dropped until the next one
    /// attaches, registered for reading only.
    pub fn detach_link(&mut self) {
        self.core.link.detach();
        self.link_out = false;
    }

    /// The link can take frames again: what waited goes out, then the
    /// connections that stopped for it resume.
    pub fn on_link_writable(&mut self, events: &EventLoop) -> io::Result<()> {
        if self.core.link.flush()? {
            self.core
                .with_flows(events, |h, ctx| h.tcp.resume_blocked(h.flows, ctx));
        }
        self.watch_link(events);
        Ok(())
    }

    /// Asks for EPOLLOUT on the link while frames or connections wait for
    /// it, and stops asking once none do. Called after each event.
    pub fn watch_link(&mut self, events: &EventLoop) {
        let want = self.core.link.blocked() || self.core.tcp.link_waiters();
        if want == self.link_out {
            return;
        }
        let Some(fd) = self.core.link.fd() else {
            return;
        };
        let interest = Interest {
            writable: want,
            ..Interest::READ
        };
        match events.modify(fd, LINK_TOKEN, interest) {
            Ok(()) => self.link_out = want,
            Err(e) => log::debug!("epoll (guest link): {e}"),
        }
    }

    /// Handles one guest frame as if the link had delivered it (the fuzz
    /// target of the dispatcher drives the engine through this).
    pub fn handle_guest_frame(&mut self, frame: &[u8], events: &EventLoop) {
        self.core.dispatch(frame, 0, events);
        self.core
            .end_of_batch(events, |i| (i == 0).then_some(frame));
    }

    /// A flow's socket (or a forwarded port's socket) is ready.
    pub fn on_flow_event(&mut self, ready: &Ready, events: &EventLoop) -> io::Result<()> {
        let index = ready.token.index;
        let id = FlowId::from_raw(index);
        let kind = ready.token.kind;
        match kind {
            TokenKind::Icmp => return self.core.ping_readable(id),
            TokenKind::Tcp => self
                .core
                .with_flows(events, |h, ctx| h.tcp.on_socket(h.flows, ctx, id, ready)),
            TokenKind::TcpListener | TokenKind::NsTcpListener => {
                self.core.with_flows(events, |h, ctx| {
                    if let Some(listeners) = h.forwards.of_kind(kind) {
                        h.tcp.on_listener(h.flows, ctx, h.spliced, listeners, index)
                    }
                })
            }
            TokenKind::SpliceAccepted | TokenKind::SpliceTarget => {
                self.core.with_flows(events, |h, ctx| {
                    if let Some(side) = SpliceSide::from_token(kind) {
                        h.spliced.on_socket(h.flows, ctx.events, id, side, ready)
                    }
                })
            }
            TokenKind::Udp => self
                .core
                .with_flows(events, |h, ctx| h.udp.on_socket(h.flows, ctx, id)),
            TokenKind::UdpListener | TokenKind::NsUdpListener => {
                self.core.with_flows(events, |h, ctx| {
                    if let Some(listeners) = h.forwards.of_kind(kind) {
                        h.udp.on_listener(h.flows, ctx, listeners, index)
                    }
                })
            }
            _ => {}
        }
        Ok(())
    }

    /// The periodic tick: timeouts and unsolicited router advertisements.
    pub fn on_tick(&mut self, events: &EventLoop) {
        let now = Instant::now();
        icmp::expire(&mut self.core.flows, now, events);
        self.core.with_flows(events, |h, ctx| {
            h.tcp.on_tick(h.flows, ctx, now);
            h.spliced.on_tick(h.flows, ctx.events, now);
            h.udp.expire(h.flows, ctx, now);
        });
        self.core.forwards.resume(events);
        if self.core.ra.due(now) {
            self.core.unsolicited_ra();
        }
    }
}

/// The flow handlers and the tables they share, for one event.
struct Handlers<'a> {
    flows: &'a mut Flows,
    tcp: &'a mut TcpFlows,
    spliced: &'a mut SplicedConns,
    udp: &'a mut UdpFlows,
    forwards: &'a ForwardSockets,
}

impl Core {
    /// Handles `frame`, frame `index` of the link batch.
    fn dispatch(&mut self, frame: &[u8], index: usize, events: &EventLoop) {
        let class = wire::classify(frame);
        if class == FrameClass::Malformed {
            self.drops.malformed += 1;
            log::debug!("Dropped malformed frame ({} bytes)", frame.len());
            return;
        }
        self.learn_guest_mac(frame);
        let handled = match class {
            FrameClass::Arp => self.serve(services::arp::answer, frame),
            FrameClass::Ipv4(PROTO_UDP) => {
                self.serve(services::dhcp::answer, frame) || self.udp(frame, index, events)
            }
            FrameClass::Ipv6(PROTO_UDP) => {
                self.serve(services::dhcpv6::answer, frame) || self.udp(frame, index, events)
            }
            FrameClass::Ipv4(PROTO_ICMP) => self.echo(frame, events),
            FrameClass::Ipv4(PROTO_TCP) | FrameClass::Ipv6(PROTO_TCP) => self.tcp(frame, events),
            FrameClass::Ipv6(PROTO_ICMPV6) => {
                self.serve(services::ndp::answer, frame) || self.echo(frame, events)
            }
            _ => false,
        };
        if !handled {
            self.drops.unhandled(class, frame.len());
        }
    }

    /// Offers `frame` to a local service and sends its reply; `false` if
    /// the frame was not for it.
    fn serve(&mut self, answer: ServiceFn, frame: &[u8]) -> bool {
        match answer(&self.config, &self.facts, frame, &mut self.out) {
            Ok(Some(len)) => {
                let reply = &self.out[..len.min(self.out.len())];
                if let Err(e) = self.link.write_frame(reply) {
                    log::debug!("Reply to the guest failed: {e}");
                }
                true
            }
            Ok(None) => false,
            Err(refused) => {
                self.drops.malformed += 1;
                log::debug!("Dropped frame: {refused}");
                true
            }
        }
    }

    fn unsolicited_ra(&mut self) {
        if let Some(len) = services::ndp::unsolicited_ra(&self.config, &self.facts, &mut self.out) {
            if let Err(e) = self.link.write_frame(&self.out[..len.min(self.out.len())]) {
                log::debug!("Router advertisement to the guest failed: {e}");
            }
        }
    }

    /// An ICMP echo request goes to its ping flow.
    fn echo(&mut self, frame: &[u8], events: &EventLoop) -> bool {
        if !self.config.services.icmp {
            return false;
        }
        match wire::echo::parse_echo_request(frame) {
            Some(req) => {
                self.guest_addrs.learn(req.src);
                self.ping
                    .from_guest(&mut self.flows, &self.config, events, &req);
                true
            }
            None => false,
        }
    }

    /// A TCP segment goes to its connection.
    fn tcp(&mut self, frame: &[u8], events: &EventLoop) -> bool {
        if !self.config.services.tcp {
            return false;
        }
        match wire::tcp::parse_segment(frame) {
            Some(seg) => {
                self.guest_addrs.learn(seg.src);
                self.with_flows(events, |h, ctx| h.tcp.from_guest(h.flows, ctx, &seg));
                true
            }
            None => false,
        }
    }

    /// A UDP datagram goes to its flow (sent at the end of the batch).
    fn udp(&mut self, frame: &[u8], index: usize, events: &EventLoop) -> bool {
        if !self.config.services.udp {
            return false;
        }
        match wire::udp::parse_datagram(frame) {
            Some(dgram) => {
                self.guest_addrs.learn(dgram.src);
                self.with_flows(events, |h, ctx| {
                    h.udp.from_guest(h.flows, ctx, &dgram, index)
                });
                true
            }
            None => false,
        }
    }

    /// After a batch of guest frames (`frames` by index): staged datagrams
    /// go out, due ACKs too.
    fn end_of_batch<'f>(&mut self, events: &EventLoop, frames: impl Fn(usize) -> Option<&'f [u8]>) {
        self.with_flows(events, |h, ctx| {
            h.udp.flush(h.flows, frames);
            h.tcp.flush_acks(h.flows, ctx);
        });
    }

    /// Runs `f` with the flow handlers, their tables and the context they
    /// act in.
    fn with_flows<R>(
        &mut self,
        events: &EventLoop,
        f: impl FnOnce(Handlers<'_>, &mut Ctx<'_>) -> R,
    ) -> R {
        let Core {
            config,
            link,
            facts,
            flows,
            tcp,
            spliced,
            udp,
            forwards,
            guest_addrs,
            namespace,
            ..
        } = self;
        let mut ctx = Ctx {
            config,
            events,
            our_mac: facts.our_mac,
            guest_mac: facts.guest_mac,
            guest_addrs: *guest_addrs,
            link,
            namespace: namespace.as_deref(),
        };
        let handlers = Handlers {
            flows,
            tcp,
            spliced,
            udp,
            forwards,
        };
        f(handlers, &mut ctx)
    }

    /// Upstream learns the guest's MAC from every frame it sends.
    fn learn_guest_mac(&mut self, frame: &[u8]) {
        if let Some(src) = frame.get(6..12) {
            let multicast = src[0] & 1 == 1;
            if !multicast {
                self.facts.guest_mac.copy_from_slice(src);
            }
        }
    }

    fn ping_readable(&mut self, id: FlowId) -> io::Result<()> {
        let Core {
            flows,
            ping,
            link,
            out,
            facts,
            ..
        } = self;
        let mut result = Ok(());
        ping.on_readable(flows, id, (facts.our_mac, facts.guest_mac), out, |frame| {
            if result.is_ok() {
                result = link.write_frame(frame);
            }
        });
        result
    }
}
