//! Flows: guest traffic translated to host sockets and back. One file per
//! protocol ([`icmp`], [`tcp`]; UDP follows), plus the forwarding and
//! NAT decisions they share ([`nat`]) and the host-side listeners of
//! forwarded ports ([`listen`]).
//!
//! Invariants: every table here has a fixed capacity chosen at start-up;
//! nothing grows with guest input. Flows never parse frames themselves
//! beyond the views `wire` gives them.
//! May call: `sys`/rustix (sockets), `wire`, `event` (registration), `conf`,
//! and `link` for the offload description of frames toward the guest.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::OwnedFd;

use crate::conf::Config;

pub mod icmp;
pub mod listen;
pub mod nat;
pub mod table;
pub mod tcp;
#[cfg(test)]
mod testing;

/// Per-protocol state kept in a flow's slot: one table for every protocol,
/// so they share its capacity.
pub enum FlowState {
    Ping(icmp::PingState),
    Tcp(Box<tcp::TcpConn>),
    /// A pasta TCP connection spliced between two local sockets.
    Splice(Box<tcp::splice::SpliceConn>),
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

/// Binds a new host socket of one family to what `-o` and
/// `--outbound-if4/6` name for it: the interface (`SO_BINDTODEVICE`), then
/// the source address (port chosen by the kernel). Every protocol's
/// outbound sockets go through here.
pub fn bind_outbound(config: &Config, socket: &OwnedFd, v6: bool) -> io::Result<()> {
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
    if let Some(addr) = addr {
        rustix::net::bind(socket, &SocketAddr::new(addr, 0))?;
    }
    Ok(())
}
