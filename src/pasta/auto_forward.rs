//! pasta's `auto` port forwarding (REFERENCE.md §1.7): on every tick, the
//! ports bound on the other side are scanned ([`super::bound_ports`]) and
//! the forwarding sockets of each `auto` forward are bound or released to
//! match.
//!
//! - `-t auto` / `-u auto` follow the namespace's listening TCP ports and
//!   bound UDP ports (UDP also follows listening TCP ports);
//! - `-T auto` / `-U auto` follow the host's.
//!
//! Ports we hold ourselves for the other direction are left out (our `-T`
//! listeners in the namespace are not namespace services to forward to,
//! and so on), so the two directions never chase each other. A scan that
//! fails leaves the forwards as they are.
//!
//! Invariants: scans only the sides some `auto` forward needs; binds only
//! through a [`ForwardTable`] (the engine's forwarding sockets, handed in
//! by the program). May call: `bound_ports`, `conf`, `flow::listen`'s
//! [`Forward`] names.

use std::io;

use super::bound_ports::{BoundPorts, PortScanner};
use super::netns::NetNs;
use crate::conf::ports::PortSet;
use crate::conf::{Config, PortSpec};
use crate::flow::listen::Forward;

/// The forwarding sockets `auto` maintains (the engine's, through the
/// program's glue).
pub trait ForwardTable {
    /// The ports `forward`'s sockets are bound to.
    fn ports(&self, forward: Forward) -> PortSet;
    /// Binds and releases `forward`'s sockets to match `wanted`.
    fn sync(&mut self, forward: Forward, wanted: &PortSet);
}

/// The `auto` forwards and the scanners of the sides they follow.
pub struct AutoForward {
    config: Config,
    /// The namespace's scanner (for `-t auto` / `-u auto`).
    namespace: Option<PortScanner>,
    /// The host's scanner (for `-T auto` / `-U auto`).
    host: Option<PortScanner>,
}

fn is_auto(config: &Config, forward: Forward) -> bool {
    *forward.spec(config) == PortSpec::Auto
}

impl AutoForward {
    /// `None` if no forward is `auto`.
    pub fn new(config: &Config, netns: &NetNs) -> io::Result<Option<AutoForward>> {
        let inbound = is_auto(config, Forward::TcpIn) || is_auto(config, Forward::UdpIn);
        let outbound = is_auto(config, Forward::TcpOut) || is_auto(config, Forward::UdpOut);
        if !inbound && !outbound {
            return Ok(None);
        }
        Ok(Some(AutoForward {
            config: config.clone(),
            namespace: inbound.then(|| PortScanner::open_in(netns)).transpose()?,
            host: outbound.then(PortScanner::open_here).transpose()?,
        }))
    }

    /// Scans and brings the `auto` forwards in line with what is bound.
    pub fn update(&mut self, table: &mut impl ForwardTable) {
        if let Some(bound) = scan(&mut self.namespace) {
            self.sync(table, &bound, [Forward::TcpIn, Forward::UdpIn]);
        }
        if let Some(bound) = scan(&mut self.host) {
            self.sync(table, &bound, [Forward::TcpOut, Forward::UdpOut]);
        }
    }

    /// Syncs the (TCP, UDP) pair of forwards `pair` from `bound`, the
    /// ports bound on the side they forward to.
    fn sync(&self, table: &mut impl ForwardTable, bound: &BoundPorts, [tcp, udp]: [Forward; 2]) {
        let (reverse_tcp, reverse_udp) = match tcp {
            Forward::TcpIn => (Forward::TcpOut, Forward::UdpOut),
            _ => (Forward::TcpIn, Forward::UdpIn),
        };
        let ours_tcp = table.ports(reverse_tcp);
        if is_auto(&self.config, tcp) {
            table.sync(tcp, &bound.tcp_auto(&ours_tcp));
        }
        if is_auto(&self.config, udp) {
            let mut ours = table.ports(reverse_udp);
            ours.union_with(&ours_tcp);
            table.sync(udp, &bound.udp_auto(&ours));
        }
    }
}

/// A scan with `scanner`, if there is one and the scan went through.
fn scan(scanner: &mut Option<PortScanner>) -> Option<BoundPorts> {
    let scanner = scanner.as_mut()?;
    match scanner.scan() {
        Ok(bound) => Some(bound),
        Err(e) => {
            log::debug!("Port scan failed: {e}");
            None
        }
    }
}
