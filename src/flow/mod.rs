//! Flows: guest traffic translated to host sockets and back. One file per
//! protocol ([`icmp`], [`tcp`], [`udp`]), plus the forwarding and NAT
//! decisions they share ([`nat`]), the listening sockets of forwarded
//! ports ([`listen`]), and what every handler is given ([`Ctx`]: the
//! configuration, the event loop, the guest link and its addresses, and
//! pasta's namespace).
//!
//! Invariants: every table here has a fixed capacity chosen at start-up;
//! nothing grows with guest input. Flows never parse frames themselves
//! beyond the views `wire` gives them.
//! May call: `sys`/rustix (sockets), `wire`, `event` (registration), `conf`,
//! and `link` for the offload description of frames toward the guest.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::OwnedFd;

use rustix::net::{AddressFamily, SocketType};

use crate::conf::Config;
use crate::event::EventLoop;

pub mod icmp;
pub mod listen;
pub mod nat;
pub mod table;
pub mod tcp;
#[cfg(test)]
pub(crate) mod testing;
pub mod udp;

/// Per-protocol state kept in a flow's slot: one table for every protocol,
/// so they share its capacity.
pub enum FlowState {
    Ping(icmp::PingState),
    Tcp(Box<tcp::TcpConn>),
    /// A TCP connection spliced between two local sockets (pasta).
    Splice(Box<tcp::splice::SpliceConn>),
    Udp(Box<udp::UdpState>),
}

/// What a handler needs from the engine besides the flow table.
pub struct Ctx<'a> {
    pub config: &'a Config,
    pub events: &'a EventLoop,
    pub our_mac: [u8; 6],
    pub guest_mac: [u8; 6],
    /// The guest's addresses as last seen in its frames.
    pub guest_addrs: GuestAddrs,
    pub link: &'a mut dyn GuestLink,
    /// pasta: makes sockets inside the namespace (spliced paths, `-T/-U`).
    pub namespace: Option<&'a dyn NamespaceSockets>,
}

impl<'a> Ctx<'a> {
    /// A context outside the engine (tests, fuzz targets): our MAC from
    /// `config`, the guest's configured addresses, no namespace.
    pub fn standalone(
        config: &'a Config,
        events: &'a EventLoop,
        guest_mac: [u8; 6],
        link: &'a mut dyn GuestLink,
    ) -> Ctx<'a> {
        Ctx {
            config,
            events,
            our_mac: config.our_mac,
            guest_mac,
            guest_addrs: GuestAddrs::new(config),
            link,
            namespace: None,
        }
    }
}

impl Ctx<'_> {
    /// pasta's loopback path (REFERENCE.md §2.4): a forwarded flow from
    /// `peer` on the host's loopback, with splicing on, is relayed inside
    /// the namespace instead of through the link. Gives the namespace's
    /// socket maker and the address to reach there (the namespace's
    /// observed address of `peer`'s family, its loopback with
    /// `--host-lo-to-ns-lo`); `None` when the flow goes through the link.
    pub fn splice_target(&self, peer: IpAddr) -> Option<(&dyn NamespaceSockets, IpAddr)> {
        let namespace = self.namespace?;
        if !self.config.pasta.splice || !peer.to_canonical().is_loopback() {
            return None;
        }
        let addr = match self.config.pasta.host_lo_to_ns_lo {
            true => loopback_like(peer),
            false => self.guest_addrs.like(peer)?,
        };
        Some((namespace, addr))
    }
}

/// The guest's addresses (upstream's `addr_seen`): the assigned ones until
/// the guest's frames show others.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GuestAddrs {
    pub v4: Option<Ipv4Addr>,
    pub v6: Option<Ipv6Addr>,
}

impl GuestAddrs {
    pub fn new(config: &Config) -> GuestAddrs {
        GuestAddrs {
            v4: config.ip4.as_ref().map(|c| c.addr),
            v6: config.ip6.as_ref().map(|c| c.addr),
        }
    }

    /// Takes `src`, the source of a guest's TCP, UDP or ICMP frame, as its
    /// address (not unspecified ones, nor IPv6 link-local ones).
    pub fn learn(&mut self, src: IpAddr) {
        match src {
            IpAddr::V4(a) if !a.is_unspecified() => self.v4 = Some(a),
            IpAddr::V6(a) if !a.is_unspecified() && !a.is_unicast_link_local() => self.v6 = Some(a),
            _ => {}
        }
    }

    /// The guest's address of the family of `like`.
    pub fn like(&self, like: IpAddr) -> Option<IpAddr> {
        match like {
            IpAddr::V4(_) => self.v4.map(IpAddr::V4),
            IpAddr::V6(a) if a.to_ipv4_mapped().is_some() => self.v4.map(IpAddr::V4),
            IpAddr::V6(_) => self.v6.map(IpAddr::V6),
        }
    }
}

/// Makes sockets inside pasta's network namespace (a socket belongs to the
/// namespace it was created in, whichever thread uses it later).
pub trait NamespaceSockets {
    /// A non-blocking, close-on-exec socket of `family` and `kind`.
    fn socket(&self, family: AddressFamily, kind: SocketType) -> io::Result<OwnedFd>;
}

/// Where flows send frames toward the guest (the engine's link).
pub trait GuestLink {
    /// Sends one frame; `false` if the link could not take it now (it is
    /// dropped and counted there; TCP keeps its data and sends it again
    /// once [`GuestLink`] is writable).
    fn send_frame(&mut self, frame: &[u8]) -> bool;
    /// Whether [`GuestLink::send_offloaded`] frames reach the guest's
    /// kernel with their offload description.
    fn offloads(&self) -> bool;
    /// Sends a frame the guest's kernel finishes (see
    /// [`crate::link::Offload`]); only when [`GuestLink::offloads`].
    fn send_offloaded(&mut self, frame: &[u8], offload: crate::link::Offload) -> bool;
}

/// The flow table as the engine instantiates it.
pub type Flows = table::FlowTable<FlowState>;

/// A non-blocking, close-on-exec socket of `family` and `kind` in the
/// calling thread's network namespace (the host's, but for pasta's helper
/// threads).
pub fn new_socket(family: AddressFamily, kind: SocketType) -> io::Result<OwnedFd> {
    let flags = rustix::net::SocketFlags::NONBLOCK | rustix::net::SocketFlags::CLOEXEC;
    rustix::net::socket_with(family, kind, flags, None).map_err(io::Error::from)
}

/// The loopback address of `like`'s family.
pub fn loopback_like(like: IpAddr) -> IpAddr {
    match like.to_canonical() {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
    }
}

/// The unspecified address of `like`'s family.
pub fn unspecified_like(like: IpAddr) -> IpAddr {
    match like {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    }
}

/// The socket address family of `addr`.
pub fn family_of(addr: SocketAddr) -> AddressFamily {
    match addr {
        SocketAddr::V4(_) => AddressFamily::INET,
        SocketAddr::V6(_) => AddressFamily::INET6,
    }
}

/// Binds a new host socket of one family to what `-o` and
/// `--outbound-if4/6` name for it: the interface (`SO_BINDTODEVICE`), then
/// the source address and `port` (0: chosen by the kernel; UDP keeps the
/// guest's). Every protocol's outbound sockets go through here.
pub fn bind_outbound(config: &Config, socket: &OwnedFd, v6: bool, port: u16) -> io::Result<()> {
    let (addr, iface) = match v6 {
        false => config
            .ip4
            .as_ref()
            .map(|c| (c.outbound.map(IpAddr::V4), &c.outbound_if)),
        true => config
            .ip6
            .as_ref()
            .map(|c| (c.outbound.map(IpAddr::V6), &c.outbound_if)),
    }
    .unwrap_or((None, &None));
    if let Some(name) = iface {
        crate::sys::socket::set_bind_to_device(socket, name)?;
    }
    let unspecified = match v6 {
        false => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        true => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    match (addr, port) {
        (None, 0) => Ok(()),
        (addr, port) => {
            let addr = SocketAddr::new(addr.unwrap_or(unspecified), port);
            rustix::net::bind(socket, &addr).map_err(io::Error::from)
        }
    }
}
