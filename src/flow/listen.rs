//! The sockets of forwarded ports, REFERENCE.md §1.7: `-t` (TCP) and `-u`
//! (UDP) on the host, and pasta's `-T` / `-U` on the namespace's loopback
//! addresses. Binding them, accepting the connections a TCP one receives;
//! what happens to a connection or a datagram is the flows' business
//! (`super::tcp`, `super::udp`). One [`Listeners`] set per [`Forward`].
//!
//! Which sockets: one per forwarded port and bind prefix. `-T` / `-U`:
//! 127.0.0.1 and ::1 (IPv6 only) inside the namespace, for the enabled
//! families, made by [`NamespaceSockets`]. Otherwise, without an
//! address, one dual-stack `::` socket if both IPv4 and IPv6 are enabled
//! (else, or if that fails, one socket per enabled family, as upstream);
//! with `ADDR/`, that address only (`IPV6_V6ONLY` for an IPv6 one); `%IF/`
//! binds the socket to the interface (`SO_BINDTODEVICE`). Every listener
//! has `SO_REUSEADDR`, `IP(V6)_FREEBIND` with `--freebind`, (TCP) a
//! backlog of 128, and is non-blocking and close-on-exec.
//!
//! Failures, worded as upstream's: a port of an explicit list that cannot
//! be bound stops the program; `all` and exclusion-only lists skip such
//! ports (debug log) and fail only if none binds, or if the process runs
//! out of descriptors ([`crate::sys::process::raise_fd_limit`] first).
//! When several rules forward the same port on the same prefix, the last
//! one wins, as in [`crate::conf::PortRules::port_map`] (the configuration
//! already warned).
//!
//! Invariants: a listener's event token index is its place in the list and
//! never changes while it lives; each listener knows the port its port
//! maps to on the other side (`P:Q` remaps). `auto` binds nothing here:
//! pasta's port scan adds and removes listeners while it runs. May call:
//! rustix sockets, `crate::sys::socket`, `crate::event` (registration),
//! `crate::conf` (the specs), [`NamespaceSockets`].

use std::cell::{Cell, RefCell};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::OwnedFd;

use rustix::io::Errno;
use rustix::net::{AddressFamily, SocketFlags, SocketType, sockopt};

use super::NamespaceSockets;
use super::table::Pif;
use crate::conf::ports::{PortRange, PortRule, PortRules, PortSet};
use crate::conf::{Config, PortSpec};
use crate::event::{EventLoop, Interest, Token, TokenKind};
use crate::sys::socket::set_bind_to_device;

/// `listen()` backlog of every forwarding socket (upstream's).
pub const BACKLOG: i32 = 128;

/// A connection accepted on a forwarded port.
#[derive(Debug)]
pub struct Accepted {
    /// Non-blocking, close-on-exec.
    pub socket: OwnedFd,
    /// Who connected (an IPv4-mapped address is given as IPv4).
    pub peer: SocketAddr,
    /// The host address and port it connected to (same rule).
    pub local: SocketAddr,
    /// The port this connection goes to on the guest.
    pub guest_port: u16,
}

/// What a set of listeners forwards.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Forward {
    /// `-t`: TCP, host to guest.
    TcpIn,
    /// `-u`: UDP, host to guest.
    UdpIn,
    /// `-T` (pasta): TCP, namespace loopback to host loopback.
    TcpOut,
    /// `-U` (pasta): UDP, namespace loopback to host loopback.
    UdpOut,
}

impl Forward {
    fn kind(self) -> TokenKind {
        match self {
            Forward::TcpIn => TokenKind::TcpListener,
            Forward::UdpIn => TokenKind::UdpListener,
            Forward::TcpOut => TokenKind::NsTcpListener,
            Forward::UdpOut => TokenKind::NsUdpListener,
        }
    }

    fn letter(self) -> char {
        match self {
            Forward::TcpIn => 't',
            Forward::UdpIn => 'u',
            Forward::TcpOut => 'T',
            Forward::UdpOut => 'U',
        }
    }

    fn socket_type(self) -> SocketType {
        match self {
            Forward::TcpIn | Forward::TcpOut => SocketType::STREAM,
            Forward::UdpIn | Forward::UdpOut => SocketType::DGRAM,
        }
    }

    /// Where the sockets are: the host, or pasta's namespace.
    pub fn pif(self) -> Pif {
        match self {
            Forward::TcpIn | Forward::UdpIn => Pif::Host,
            Forward::TcpOut | Forward::UdpOut => Pif::Splice,
        }
    }

    /// The forward's port spec in `config`.
    pub fn spec(self, config: &Config) -> &PortSpec {
        match self {
            Forward::TcpIn => &config.fwd.tcp_in,
            Forward::UdpIn => &config.fwd.udp_in,
            Forward::TcpOut => &config.fwd.tcp_out,
            Forward::UdpOut => &config.fwd.udp_out,
        }
    }
}

/// One bound socket, its address, and the port its port maps to on the
/// other side.
#[derive(Debug)]
struct Listener {
    fd: OwnedFd,
    /// The bound address (IPv4-mapped as IPv4).
    bound: SocketAddr,
    target_port: u16,
}

/// A UDP forwarding socket, as the UDP flows see it.
pub struct DatagramListener<'a> {
    pub socket: &'a OwnedFd,
    /// Its bound address and port (IPv4-mapped as IPv4).
    pub bound: SocketAddr,
    /// The port datagrams go to on the other side.
    pub target_port: u16,
    /// Where the socket is.
    pub pif: Pif,
}

/// The forwarding listeners of one [`Forward`], in token-index order.
#[derive(Debug)]
pub struct Listeners {
    forward: Forward,
    /// By token index; `None` for a port `auto` released (its index is
    /// reused by the next port bound).
    entries: Vec<Option<Listener>>,
    /// EMFILE/ENFILE on accept was already reported.
    warned_fd_limit: Cell<bool>,
    /// Listeners taken out of the event loop because no descriptor was
    /// left to accept with (a level-triggered listener would wake the loop
    /// without end); [`Listeners::resume`] puts them back on the tick.
    paused: RefCell<Vec<u32>>,
}

/// Why the listeners could not be set up; the text is upstream's.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// A port of an explicit list could not be bound.
    #[error(
        "Failed to bind port {port} ({}) for option '-{letter} {spec}', exiting",
        os_message(.source)
    )]
    Port {
        letter: char,
        port: u16,
        spec: String,
        source: io::Error,
    },
    /// `all` or an exclusion-only list: not a single port could be bound.
    #[error("Failed to bind any port for '-{letter} {spec}', exiting")]
    NoPort { letter: char, spec: String },
    /// Out of file descriptors while binding `all` or an exclusion list.
    #[error("Can't open enough sockets for port specifier: {spec}")]
    TooManyFiles { spec: String },
    /// The event loop refused a listener (not an upstream message).
    #[error("Failed to watch the listening socket of port {port}: {}", os_message(.source))]
    Register { port: u16, source: io::Error },
}

/// The sockets of every forwarded port, one [`Listeners`] set per
/// [`Forward`].
#[derive(Debug)]
pub struct ForwardSockets {
    pub tcp_in: Listeners,
    pub udp_in: Listeners,
    pub tcp_out: Listeners,
    pub udp_out: Listeners,
}

impl Default for ForwardSockets {
    fn default() -> Self {
        ForwardSockets {
            tcp_in: Listeners::none(Forward::TcpIn),
            udp_in: Listeners::none(Forward::UdpIn),
            tcp_out: Listeners::none(Forward::TcpOut),
            udp_out: Listeners::none(Forward::UdpOut),
        }
    }
}

impl ForwardSockets {
    /// Binds every forward's sockets (`-T` / `-U` only with a namespace).
    pub fn bind(
        config: &Config,
        events: &EventLoop,
        namespace: Option<&dyn NamespaceSockets>,
    ) -> Result<ForwardSockets, BindError> {
        let mut sockets = ForwardSockets {
            tcp_in: Listeners::bind(config, events, Forward::TcpIn, None)?,
            udp_in: Listeners::bind(config, events, Forward::UdpIn, None)?,
            ..ForwardSockets::default()
        };
        if namespace.is_some() {
            sockets.tcp_out = Listeners::bind(config, events, Forward::TcpOut, namespace)?;
            sockets.udp_out = Listeners::bind(config, events, Forward::UdpOut, namespace)?;
        }
        Ok(sockets)
    }

    /// The set of `forward`.
    pub fn of(&self, forward: Forward) -> &Listeners {
        match forward {
            Forward::TcpIn => &self.tcp_in,
            Forward::UdpIn => &self.udp_in,
            Forward::TcpOut => &self.tcp_out,
            Forward::UdpOut => &self.udp_out,
        }
    }

    pub fn of_mut(&mut self, forward: Forward) -> &mut Listeners {
        match forward {
            Forward::TcpIn => &mut self.tcp_in,
            Forward::UdpIn => &mut self.udp_in,
            Forward::TcpOut => &mut self.tcp_out,
            Forward::UdpOut => &mut self.udp_out,
        }
    }

    /// The set registered with token kind `kind`.
    pub fn of_kind(&self, kind: TokenKind) -> Option<&Listeners> {
        self.all().into_iter().find(|l| l.forward.kind() == kind)
    }

    pub fn all(&self) -> [&Listeners; 4] {
        [&self.tcp_in, &self.udp_in, &self.tcp_out, &self.udp_out]
    }

    /// [`Listeners::resume`] for every set.
    pub fn resume(&self, events: &EventLoop) {
        for listeners in self.all() {
            listeners.resume(events);
        }
    }
}

/// An OS error as `strerror()` words it, without Rust's "(os error N)".
fn os_message(error: &io::Error) -> String {
    let text = error.to_string();
    match text.rfind(" (os error ") {
        Some(at) if text.ends_with(')') => text[..at].to_string(),
        _ => text,
    }
}

fn is_fd_limit(error: &io::Error) -> bool {
    matches!(error.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

/// What one spec, or one rule of a list, asks to bind.
struct Plan<'c> {
    /// The spec as given, for messages.
    spec: &'c str,
    addr: Option<IpAddr>,
    iface: Option<&'c str>,
    /// (host port, guest port), ascending host ports.
    pairs: Vec<(u16, u16)>,
    /// `all`, exclusion-only: skip ports that fail, unless all do.
    tolerant: bool,
}

impl<'c> Plan<'c> {
    /// `all`: every non-ephemeral port, to the same port.
    fn all(ephemeral: PortRange) -> Plan<'static> {
        Plan {
            spec: "all",
            addr: None,
            iface: None,
            pairs: (1..=u16::MAX)
                .filter(|&port| !ephemeral.contains(port))
                .map(|port| (port, port))
                .collect(),
            tolerant: true,
        }
    }

    fn of_rule(rule: &'c PortRule, pairs: Vec<(u16, u16)>) -> Plan<'c> {
        Plan {
            spec: &rule.spec,
            addr: rule.addr,
            iface: rule.iface.as_deref(),
            pairs,
            tolerant: rule.is_exclusion_only(),
        }
    }
}

/// One plan per rule, each without the ports a later rule (or a later item
/// of the same rule) forwards on the same address and interface.
fn rule_plans(rules: &PortRules, ephemeral: PortRange) -> Vec<Plan<'_>> {
    let mut taken: Vec<(Option<IpAddr>, Option<&str>, PortSet)> = Vec::new();
    let mut plans = Vec::new();
    for rule in rules.rules.iter().rev() {
        let set = taken_on(&mut taken, rule);
        let forwards: Vec<(u16, u16)> = rule.forwards(ephemeral).collect();
        let mut pairs: Vec<(u16, u16)> = forwards
            .into_iter()
            .rev()
            .filter(|&(port, _)| set.insert(port))
            .collect();
        pairs.reverse();
        plans.push(Plan::of_rule(rule, pairs));
    }
    plans.reverse();
    plans
}

/// The ports already claimed on `rule`'s address and interface.
fn taken_on<'t, 'r>(
    taken: &'t mut Vec<(Option<IpAddr>, Option<&'r str>, PortSet)>,
    rule: &'r PortRule,
) -> &'t mut PortSet {
    let key = (rule.addr, rule.iface.as_deref());
    let at = match taken.iter().position(|(a, i, _)| (*a, *i) == key) {
        Some(at) => at,
        None => {
            taken.push((key.0, key.1, PortSet::new()));
            taken.len() - 1
        }
    };
    &mut taken[at].2
}

/// How listeners are made: which families are enabled, `--freebind`, the
/// socket type, and where (pasta's namespace for `-T` / `-U`).
struct Binder<'n> {
    v4: bool,
    v6: bool,
    freebind: bool,
    socket_type: SocketType,
    namespace: Option<&'n dyn NamespaceSockets>,
}

impl<'n> Binder<'n> {
    fn new(
        config: &Config,
        forward: Forward,
        namespace: Option<&'n dyn NamespaceSockets>,
    ) -> Binder<'n> {
        Binder {
            v4: config.ip4.is_some(),
            v6: config.ip6.is_some(),
            freebind: config.fwd.freebind,
            socket_type: forward.socket_type(),
            namespace: namespace.filter(|_| forward.pif() == Pif::Splice),
        }
    }

    /// The socket(s) for one port of a plan.
    fn bind_port(&self, plan: &Plan<'_>, port: u16) -> io::Result<Vec<OwnedFd>> {
        match (plan.addr, self.namespace) {
            (Some(addr), _) => Ok(vec![self.bind_one(
                SocketAddr::new(addr, port),
                true,
                plan.iface,
            )?]),
            (None, Some(_)) => self.bind_loopback(port),
            (None, None) => self.bind_unspecified(plan.iface, port),
        }
    }

    /// `auto`'s sockets for `port`: on every address (the namespace's
    /// loopback ones for `-T` / `-U`).
    fn bind_any(&self, port: u16) -> io::Result<Vec<OwnedFd>> {
        match self.namespace {
            Some(_) => self.bind_loopback(port),
            None => self.bind_unspecified(None, port),
        }
    }

    /// `-T` / `-U`: 127.0.0.1 and ::1 of the enabled families; an error
    /// only if neither could be bound.
    fn bind_loopback(&self, port: u16) -> io::Result<Vec<OwnedFd>> {
        let lo4 = SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port);
        let lo6 = SocketAddr::new(Ipv6Addr::LOCALHOST.into(), port);
        self.bind_per_family([lo4, lo6], None)
    }

    /// One IPv6-only (or IPv4) socket on each of `addrs` whose family is
    /// enabled; an error only if none could be bound.
    fn bind_per_family(
        &self,
        addrs: [SocketAddr; 2],
        iface: Option<&str>,
    ) -> io::Result<Vec<OwnedFd>> {
        let mut fds = Vec::new();
        let mut first_error = None;
        let enabled = |a: &SocketAddr| if a.is_ipv4() { self.v4 } else { self.v6 };
        for addr in addrs.into_iter().filter(enabled) {
            match self.bind_one(addr, true, iface) {
                Ok(fd) => fds.push(fd),
                Err(e) => _ = first_error.get_or_insert(e),
            }
        }
        match first_error {
            Some(e) if fds.is_empty() => Err(e),
            _ if fds.is_empty() => Err(Errno::AFNOSUPPORT.into()),
            _ => Ok(fds),
        }
    }

    /// No address given: dual-stack if both families are enabled, else
    /// (or if that fails) one socket per enabled family; an error only if
    /// none could be bound.
    fn bind_unspecified(&self, iface: Option<&str>, port: u16) -> io::Result<Vec<OwnedFd>> {
        let any4 = SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), port);
        let any6 = SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), port);
        if self.v4 && self.v6 {
            match self.bind_one(any6, false, iface) {
                Ok(fd) => return Ok(vec![fd]),
                Err(e) if is_fd_limit(&e) => return Err(e),
                Err(e) => log::trace!("TCP: no dual-stack listener on port {port}: {e}"),
            }
        }
        self.bind_per_family([any4, any6], iface)
    }

    /// One listening socket on `addr`.
    fn bind_one(&self, addr: SocketAddr, v6only: bool, iface: Option<&str>) -> io::Result<OwnedFd> {
        let (family, enabled) = match addr {
            SocketAddr::V4(_) => (AddressFamily::INET, self.v4),
            SocketAddr::V6(_) => (AddressFamily::INET6, self.v6),
        };
        if !enabled {
            return Err(Errno::AFNOSUPPORT.into());
        }
        let fd = match self.namespace {
            Some(namespace) => namespace.socket(family, self.socket_type)?,
            None => super::new_socket(family, self.socket_type)?,
        };
        sockopt::set_socket_reuseaddr(&fd, true)?;
        if addr.is_ipv6() {
            sockopt::set_ipv6_v6only(&fd, v6only)?;
        }
        if let Some(name) = iface {
            set_bind_to_device(&fd, name)?;
        }
        if self.freebind {
            match addr {
                SocketAddr::V4(_) => sockopt::set_ip_freebind(&fd, true)?,
                SocketAddr::V6(_) => sockopt::set_ipv6_freebind(&fd, true)?,
            }
        }
        rustix::net::bind(&fd, &addr)?;
        if self.socket_type == SocketType::STREAM {
            rustix::net::listen(&fd, BACKLOG)?;
        }
        Ok(fd)
    }
}

/// IPv4-mapped IPv6 addresses (from dual-stack sockets) as plain IPv4.
fn unmapped(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(v4.into(), v6.port()),
            None => addr,
        },
        SocketAddr::V4(_) => addr,
    }
}

impl Listeners {
    /// No listeners.
    pub fn none(forward: Forward) -> Listeners {
        Listeners {
            forward,
            entries: Vec::new(),
            warned_fd_limit: Cell::new(false),
            paused: RefCell::new(Vec::new()),
        }
    }

    /// Binds the listeners of `forward`'s spec (a list or `all`; `none`
    /// and `auto` bind nothing) and registers each with `events` as
    /// `Token::new(kind, i)`, `kind` the forward's token kind and `i` its
    /// place in the list. `namespace` makes pasta's `-T` / `-U` sockets.
    pub fn bind(
        config: &Config,
        events: &EventLoop,
        forward: Forward,
        namespace: Option<&dyn NamespaceSockets>,
    ) -> Result<Listeners, BindError> {
        let ephemeral = config.fwd.ephemeral_ports;
        let plans = match forward.spec(config) {
            PortSpec::None | PortSpec::Auto => return Ok(Listeners::none(forward)),
            PortSpec::All => vec![Plan::all(ephemeral)],
            PortSpec::Rules(rules) => rule_plans(rules, ephemeral),
        };
        let binder = Binder::new(config, forward, namespace);
        let mut listeners = Listeners::none(forward);
        for plan in &plans {
            listeners.bind_plan(&binder, plan)?;
        }
        listeners.register(events)?;
        Ok(listeners)
    }

    /// What these listeners forward.
    pub fn forward(&self) -> Forward {
        self.forward
    }

    fn bind_plan(&mut self, binder: &Binder<'_>, plan: &Plan<'_>) -> Result<(), BindError> {
        let letter = self.forward.letter();
        let mut bound_any = false;
        for &(port, target_port) in &plan.pairs {
            match binder.bind_port(plan, port) {
                Ok(fds) => {
                    bound_any = true;
                    let bound = fds.into_iter().map(|fd| Listener {
                        bound: local_addr(&fd)
                            .unwrap_or(SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), port)),
                        fd,
                        target_port,
                    });
                    self.entries.extend(bound.map(Some));
                }
                Err(e) if plan.tolerant && is_fd_limit(&e) => {
                    let spec = plan.spec.to_string();
                    return Err(BindError::TooManyFiles { spec });
                }
                Err(e) if plan.tolerant => log::debug!("Failed to bind port {port}: {e}"),
                Err(source) => {
                    let spec = plan.spec.to_string();
                    return Err(BindError::Port {
                        letter,
                        port,
                        spec,
                        source,
                    });
                }
            }
        }
        if plan.tolerant && !bound_any && !plan.pairs.is_empty() {
            let spec = plan.spec.to_string();
            return Err(BindError::NoPort { letter, spec });
        }
        Ok(())
    }

    fn register(&self, events: &EventLoop) -> Result<(), BindError> {
        for (i, listener) in self.entries.iter().enumerate() {
            let Some(listener) = listener else { continue };
            let index = u32::try_from(i).unwrap_or(u32::MAX);
            events
                .add(
                    &listener.fd,
                    Token::new(self.forward.kind(), index),
                    Interest::READ,
                )
                .map_err(|source| BindError::Register {
                    port: listener.bound.port(),
                    source,
                })?;
        }
        Ok(())
    }

    /// Accepts one waiting connection on listener `index` (a token
    /// index). `None` when nothing waits, the index is unknown, or accept
    /// failed (logged).
    pub fn accept(&self, index: u32, events: &EventLoop) -> Option<Accepted> {
        let listener = self.entry(index)?;
        let flags = SocketFlags::NONBLOCK | SocketFlags::CLOEXEC;
        let (socket, peer) = match rustix::net::acceptfrom_with(&listener.fd, flags) {
            Ok(accepted) => accepted,
            Err(e) => {
                self.accept_failed(e);
                if matches!(e, Errno::MFILE | Errno::NFILE) {
                    self.pause(index, &listener.fd, events);
                }
                return None;
            }
        };
        let peer = peer.and_then(|a| SocketAddr::try_from(a).ok());
        let local = rustix::net::getsockname(&socket)
            .ok()
            .and_then(|a| SocketAddr::try_from(a).ok());
        let (Some(peer), Some(local)) = (peer, local) else {
            log::debug!("TCP: accepted a connection without addresses, closed");
            return None;
        };
        Some(Accepted {
            socket,
            peer: unmapped(peer),
            local: unmapped(local),
            guest_port: listener.target_port,
        })
    }

    /// UDP listener `index` (a token index), if it is one.
    pub fn datagram_listener(&self, index: u32) -> Option<DatagramListener<'_>> {
        let listener = self.entry(index)?;
        (self.forward.socket_type() == SocketType::DGRAM).then_some(DatagramListener {
            socket: &listener.fd,
            bound: listener.bound,
            target_port: listener.target_port,
            pif: self.forward.pif(),
        })
    }

    fn pause(&self, index: u32, fd: &OwnedFd, events: &EventLoop) {
        if events.delete(fd).is_ok() {
            self.paused.borrow_mut().push(index);
        }
    }

    /// Watches the paused listeners again (on the periodic tick: maybe
    /// descriptors were freed).
    pub fn resume(&self, events: &EventLoop) {
        for index in self.paused.borrow_mut().drain(..) {
            if let Some(listener) = self.entry(index) {
                let token = Token::new(self.forward.kind(), index);
                if let Err(e) = events.add(&listener.fd, token, Interest::READ) {
                    log::debug!("TCP: watching a forwarded port again: {e}");
                }
            }
        }
    }

    fn accept_failed(&self, error: Errno) {
        match error {
            Errno::AGAIN => {}
            Errno::MFILE | Errno::NFILE if !self.warned_fd_limit.replace(true) => log::warn!(
                "Can't accept forwarded TCP connections: {} (open files limit)",
                os_message(&error.into())
            ),
            _ => log::debug!("TCP: accept on a forwarded port failed: {error}"),
        }
    }

    fn entry(&self, index: u32) -> Option<&Listener> {
        self.entries.get(usize::try_from(index).ok()?)?.as_ref()
    }

    /// Sockets bound.
    pub fn len(&self) -> usize {
        self.entries.iter().flatten().count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The ports bound.
    pub fn ports(&self) -> PortSet {
        let mut ports = PortSet::new();
        for listener in self.entries.iter().flatten() {
            ports.insert(listener.bound.port());
        }
        ports
    }

    /// `auto`: binds the ports of `wanted` not bound yet, each to the same
    /// port on the other side (a port that cannot be bound is skipped, and
    /// tried again next time), and releases the bound ports not in it.
    pub fn sync_ports(
        &mut self,
        config: &Config,
        events: &EventLoop,
        namespace: Option<&dyn NamespaceSockets>,
        wanted: &PortSet,
    ) {
        let bound = self.ports();
        for port in bound.difference(wanted) {
            self.release(port, events);
        }
        let binder = Binder::new(config, self.forward, namespace);
        for port in wanted.difference(&bound) {
            match binder.bind_any(port) {
                Ok(fds) => {
                    for fd in fds {
                        self.add(fd, port, events);
                    }
                }
                Err(e) => log::debug!("{:?}: port {port} not bound: {e}", self.forward),
            }
        }
    }

    /// Watches `fd`, bound to `port`, in a free slot.
    fn add(&mut self, fd: OwnedFd, port: u16, events: &EventLoop) {
        let slot = match self.entries.iter().position(Option::is_none) {
            Some(free) => free,
            None => {
                self.entries.push(None);
                self.entries.len() - 1
            }
        };
        let token = Token::new(self.forward.kind(), u32::try_from(slot).unwrap_or(u32::MAX));
        if let Err(e) = events.add(&fd, token, Interest::READ) {
            log::debug!("{:?}: port {port} not watched: {e}", self.forward);
            return;
        }
        let bound = local_addr(&fd).unwrap_or(SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), port));
        self.entries[slot] = Some(Listener {
            fd,
            bound,
            target_port: port,
        });
    }

    /// Closes the sockets bound to `port`.
    fn release(&mut self, port: u16, events: &EventLoop) {
        for entry in &mut self.entries {
            if entry.as_ref().is_some_and(|l| l.bound.port() == port)
                && let Some(listener) = entry.take()
            {
                let _ = events.delete(&listener.fd);
            }
        }
    }
}

/// The address and port a socket is bound to (IPv4-mapped as IPv4).
fn local_addr(fd: &OwnedFd) -> Option<SocketAddr> {
    rustix::net::getsockname(fd)
        .ok()
        .and_then(|a| SocketAddr::try_from(a).ok())
        .map(unmapped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conf::{Mode, fixture};
    use crate::event::Ready;
    use crate::flow::testing::in_private_netns;
    use std::net::TcpStream;
    use std::time::Duration;

    fn bind(mode: Mode, args: &[&str]) -> Result<Listeners, BindError> {
        let config = fixture::config(mode, args);
        Listeners::bind(&config, &EventLoop::new().unwrap(), Forward::TcpIn, None)
    }

    fn bound(mode: Mode, args: &[&str]) -> Listeners {
        bind(mode, args).unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    fn bind_error(mode: Mode, args: &[&str]) -> String {
        match bind(mode, args) {
            Ok(l) => panic!("{args:?}: {} listeners", l.len()),
            Err(e) => e.to_string(),
        }
    }

    /// Binds with the ephemeral range changed (to keep `all` small).
    fn bound_with_ephemeral(args: &[&str], ephemeral: PortRange) -> Result<Listeners, BindError> {
        let mut config = fixture::config(Mode::Passt, args);
        config.fwd.ephemeral_ports = ephemeral;
        Listeners::bind(&config, &EventLoop::new().unwrap(), Forward::TcpIn, None)
    }

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    /// The listener indices bound to `port`.
    fn indices_of(listeners: &Listeners, port: u16) -> Vec<u32> {
        (0..listeners.len())
            .filter(|&i| listeners.entries[i].as_ref().unwrap().bound.port() == port)
            .map(|i| i as u32)
            .collect()
    }

    /// Accepts on `index`, retrying briefly.
    fn accept_soon(listeners: &Listeners, index: u32) -> Accepted {
        let events = EventLoop::new().unwrap();
        for _ in 0..100 {
            if let Some(accepted) = listeners.accept(index, &events) {
                return accepted;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        panic!("nothing to accept on listener {index}");
    }

    /// Connects to `to`, accepts on the only listener of its port, checks
    /// the addresses and returns the guest port.
    fn connect_and_accept(listeners: &Listeners, to: &str) -> u16 {
        let to = addr(to);
        let client = TcpStream::connect(to).unwrap_or_else(|e| panic!("{to}: {e}"));
        let [index] = indices_of(listeners, to.port())[..] else {
            panic!("not one listener on {to}")
        };
        let accepted = accept_soon(listeners, index);
        assert_eq!(accepted.peer, client.local_addr().unwrap());
        assert_eq!(accepted.local, to);
        accepted.guest_port
    }

    fn refused(to: &str) -> bool {
        let err = TcpStream::connect(addr(to)).unwrap_err();
        err.kind() == io::ErrorKind::ConnectionRefused
    }

    #[test]
    fn listen_single_port_dual_stack_reports_its_token() {
        in_private_netns(|| {
            let config = fixture::config(Mode::Passt, &["-t", "8080"]);
            let mut events = EventLoop::new().unwrap();
            let listeners = Listeners::bind(&config, &events, Forward::TcpIn, None).unwrap();
            assert_eq!(listeners.len(), 1);
            let _client = TcpStream::connect("127.0.0.1:8080").unwrap();
            let mut ready: Vec<Ready> = Vec::new();
            events.wait(&mut ready).unwrap();
            let token = Token::new(TokenKind::TcpListener, 0);
            assert!(ready.iter().any(|r| r.token == token && r.readable));
            let accepted = listeners.accept(0, &events).unwrap();
            assert_eq!(accepted.guest_port, 8080);
            assert_eq!(accepted.local, addr("127.0.0.1:8080"));
        });
    }

    #[test]
    fn listen_dual_stack_accepts_both_families_with_plain_addresses() {
        in_private_netns(|| {
            let listeners = bound(Mode::Pasta, &["-t", "8080"]);
            assert_eq!(listeners.len(), 1);
            for to in ["127.0.0.1:8080", "[::1]:8080"] {
                // The peer compares equal to the client's own (plain IPv4
                // for 127.0.0.1, not ::ffff:127.0.0.1).
                assert_eq!(connect_and_accept(&listeners, to), 8080, "{to}");
            }
        });
    }

    #[test]
    fn listen_one_family_only() {
        in_private_netns(|| {
            let v4 = bound(Mode::Passt, &["-4", "-t", "8080"]);
            assert_eq!(v4.len(), 1);
            assert_eq!(connect_and_accept(&v4, "127.0.0.1:8080"), 8080);
            assert!(refused("[::1]:8080"));
            drop(v4);
            let v6 = bound(Mode::Passt, &["-6", "-t", "8080"]);
            assert_eq!(connect_and_accept(&v6, "[::1]:8080"), 8080);
            assert!(refused("127.0.0.1:8080"));
        });
    }

    #[test]
    fn listen_remap_gives_the_target_port() {
        in_private_netns(|| {
            let listeners = bound(Mode::Passt, &["-t", "8080:80"]);
            assert_eq!(listeners.len(), 1);
            assert_eq!(connect_and_accept(&listeners, "127.0.0.1:8080"), 80);
            assert!(refused("127.0.0.1:80"));
        });
    }

    #[test]
    fn listen_range_and_mapped_range() {
        in_private_netns(|| {
            let listeners = bound(Mode::Passt, &["-t", "8000-8009"]);
            assert_eq!(listeners.len(), 10);
            assert_eq!(indices_of(&listeners, 8005), vec![5]);
            assert_eq!(connect_and_accept(&listeners, "127.0.0.1:8005"), 8005);
            drop(listeners);
            let listeners = bound(Mode::Passt, &["-t", "8000-8009:9000-9009"]);
            assert_eq!(connect_and_accept(&listeners, "[::1]:8009"), 9009);
        });
    }

    #[test]
    fn listen_with_exclusions() {
        in_private_netns(|| {
            let listeners = bound(Mode::Passt, &["-t", "8000-8010,~8003-8005"]);
            assert_eq!(listeners.len(), 8);
            assert!(refused("127.0.0.1:8004"));
            assert_eq!(connect_and_accept(&listeners, "127.0.0.1:8006"), 8006);
        });
    }

    #[test]
    fn listen_exclusion_only_binds_the_other_non_ephemeral_ports() {
        in_private_netns(|| {
            crate::sys::process::raise_fd_limit().unwrap();
            let ephemeral = PortRange::new(1025, 65535);
            let listeners = bound_with_ephemeral(&["-t", "~22,~80-89"], ephemeral).unwrap();
            assert_eq!(listeners.len(), 1024 - 11);
            assert!(refused("127.0.0.1:22") && refused("127.0.0.1:85"));
            assert_eq!(connect_and_accept(&listeners, "127.0.0.1:90"), 90);
        });
    }

    #[test]
    fn listen_address_bound_rule_listens_only_there() {
        in_private_netns(|| {
            let listeners = bound(Mode::Passt, &["-t", "127.0.0.1/8080"]);
            assert_eq!(listeners.len(), 1);
            assert!(refused("127.0.0.2:8080"));
            assert!(refused("[::1]:8080"));
            assert_eq!(connect_and_accept(&listeners, "127.0.0.1:8080"), 8080);
            drop(listeners);
            let listeners = bound(Mode::Passt, &["-t", "[::1]/8080:80"]);
            assert!(refused("127.0.0.1:8080"), "IPV6_V6ONLY");
            assert_eq!(connect_and_accept(&listeners, "[::1]:8080"), 80);
        });
    }

    #[test]
    fn listen_interface_bound_rule() {
        in_private_netns(|| {
            let listeners = bound(Mode::Passt, &["-t", "%lo/8080"]);
            assert_eq!(connect_and_accept(&listeners, "127.0.0.1:8080"), 8080);
            drop(listeners);
            let err = bind_error(Mode::Passt, &["-t", "%prsnoif0/8080"]);
            assert_eq!(
                err,
                "Failed to bind port 8080 (No such device) for option \
                 '-t %prsnoif0/8080', exiting"
            );
        });
    }

    #[test]
    fn listen_later_rule_wins_a_shared_port() {
        in_private_netns(|| {
            let args = ["-t", "8000-8002", "-t", "8001:9001"];
            let listeners = bound(Mode::Passt, &args);
            assert_eq!(listeners.len(), 3);
            assert_eq!(connect_and_accept(&listeners, "127.0.0.1:8001"), 9001);
            assert_eq!(connect_and_accept(&listeners, "127.0.0.1:8002"), 8002);
            let listeners = bound(Mode::Passt, &["-t", "9000:1,9000:2"]);
            assert_eq!(listeners.len(), 1);
            assert_eq!(connect_and_accept(&listeners, "127.0.0.1:9000"), 2);
        });
    }

    #[test]
    fn listen_all_binds_non_ephemeral_ports_and_skips_taken_ones() {
        in_private_netns(|| {
            crate::sys::process::raise_fd_limit().unwrap();
            let taken = std::net::TcpListener::bind("[::]:1500").unwrap();
            let ephemeral = PortRange::new(2001, 65535);
            let listeners = bound_with_ephemeral(&["-t", "all"], ephemeral).unwrap();
            assert_eq!(listeners.len(), 1999);
            assert!(indices_of(&listeners, 1500).is_empty());
            assert!(indices_of(&listeners, 2001).is_empty());
            assert_eq!(connect_and_accept(&listeners, "[::1]:1999"), 1999);
            let _client = TcpStream::connect("127.0.0.1:1500").unwrap();
            assert!(taken.accept().is_ok(), "the taken port stays its owner's");
        });
    }

    #[test]
    fn listen_all_fails_only_if_no_port_binds() {
        in_private_netns(|| {
            let _taken = std::net::TcpListener::bind("[::]:1").unwrap();
            let ephemeral = PortRange::new(2, 65535);
            let err = bound_with_ephemeral(&["-t", "all"], ephemeral).unwrap_err();
            assert_eq!(
                err.to_string(),
                "Failed to bind any port for '-t all', exiting"
            );
        });
    }

    #[test]
    fn listen_explicit_port_taken_is_an_error() {
        in_private_netns(|| {
            let _taken = std::net::TcpListener::bind("[::]:8080").unwrap();
            assert_eq!(
                bind_error(Mode::Passt, &["-t", "8079-8081"]),
                "Failed to bind port 8080 (Address already in use) for option \
                 '-t 8079-8081', exiting"
            );
            let _taken4 = std::net::TcpListener::bind("127.0.0.1:9090").unwrap();
            assert_eq!(
                bind_error(Mode::Pasta, &["-t", "127.0.0.1/9090"]),
                "Failed to bind port 9090 (Address already in use) for option \
                 '-t 127.0.0.1/9090', exiting"
            );
        });
    }

    #[test]
    fn listen_address_of_a_disabled_family_is_an_error() {
        in_private_netns(|| {
            assert_eq!(
                bind_error(Mode::Passt, &["-4", "-t", "::1/8080"]),
                "Failed to bind port 8080 (Address family not supported by protocol) \
                 for option '-t ::1/8080', exiting"
            );
        });
    }

    #[test]
    fn listen_freebind_allows_a_foreign_address() {
        in_private_netns(|| {
            assert_eq!(
                bind_error(Mode::Passt, &["-t", "192.0.2.99/8080"]),
                "Failed to bind port 8080 (Cannot assign requested address) for \
                 option '-t 192.0.2.99/8080', exiting"
            );
            let listeners = bound(Mode::Passt, &["--freebind", "-t", "192.0.2.99/8080"]);
            assert_eq!(listeners.len(), 1);
            let args = ["--freebind", "-t", "[2001:db8::99]/8080"];
            assert_eq!(bound(Mode::Passt, &args).len(), 1);
            assert!(bind(Mode::Passt, &["-t", "[2001:db8::99]/8080"]).is_err());
        });
    }

    #[test]
    fn listen_accept_returns_none_when_nothing_waits() {
        in_private_netns(|| {
            let listeners = bound(Mode::Passt, &["-t", "8080"]);
            let events = EventLoop::new().unwrap();
            assert!(listeners.accept(0, &events).is_none());
            assert!(listeners.accept(1, &events).is_none());
            assert!(listeners.accept(u32::MAX, &events).is_none());
        });
    }

    #[test]
    fn listen_none_and_auto_bind_nothing() {
        in_private_netns(|| {
            assert!(bound(Mode::Passt, &[]).is_empty());
            assert!(bound(Mode::Passt, &["-t", "none"]).is_empty());
            assert!(bound(Mode::Pasta, &[]).is_empty(), "pasta's default: auto");
            let events = EventLoop::new().unwrap();
            assert!(Listeners::none(Forward::TcpIn).accept(0, &events).is_none());
        });
    }

    #[test]
    fn listen_auto_sync_binds_and_releases_ports() {
        in_private_netns(|| {
            let config = fixture::config(Mode::Pasta, &[]);
            let events = EventLoop::new().unwrap();
            for forward in [Forward::TcpIn, Forward::UdpIn] {
                let mut listeners = Listeners::none(forward);
                let wanted = |ports: &[u16]| {
                    let mut set = PortSet::new();
                    ports.iter().for_each(|&p| _ = set.insert(p));
                    set
                };
                listeners.sync_ports(&config, &events, None, &wanted(&[7001, 7002]));
                assert_eq!(listeners.ports(), wanted(&[7001, 7002]));
                assert_eq!(listeners.len(), 2, "one dual-stack socket per port");
                if forward == Forward::TcpIn {
                    connect_and_accept(&listeners, "127.0.0.1:7001");
                    connect_and_accept(&listeners, "[::1]:7002");
                } else {
                    let index = (0..2)
                        .find(|&i| listeners.datagram_listener(i).unwrap().bound.port() == 7002)
                        .unwrap();
                    let target = listeners.datagram_listener(index).unwrap().target_port;
                    assert_eq!(target, 7002);
                }
                listeners.sync_ports(&config, &events, None, &wanted(&[7002, 7003]));
                assert_eq!(listeners.ports(), wanted(&[7002, 7003]));
                assert_eq!(listeners.len(), 2, "7001's slot reused");
                let free = SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), 7001);
                let socket =
                    rustix::net::socket(AddressFamily::INET6, forward.socket_type(), None).unwrap();
                // TIME_WAIT of the connection above needs address reuse
                // (which never lets TCP bind next to a listener; for UDP
                // it would, so not there).
                let tcp = forward == Forward::TcpIn;
                sockopt::set_socket_reuseaddr(&socket, tcp).unwrap();
                rustix::net::bind(&socket, &free).expect("7001 released");
                listeners.sync_ports(&config, &events, None, &PortSet::new());
                assert!(listeners.is_empty());
            }
        });
    }

    #[test]
    fn listen_os_message_drops_the_error_number() {
        let e = io::Error::from_raw_os_error(libc::EADDRINUSE);
        assert_eq!(os_message(&e), "Address already in use");
        let custom = io::Error::other("plain");
        assert_eq!(os_message(&custom), "plain");
    }
}
