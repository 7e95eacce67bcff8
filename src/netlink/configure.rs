//! Configuring a link: flags, MTU, MAC, queue length, addresses and routes.
//! pasta's `--config-net` runs these inside the namespace, on the tap.

use std::io;
use std::net::{IpAddr, Ipv6Addr};

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE};
use netlink_packet_route::address::{AddressAttribute, AddressFlags, AddressMessage, AddressScope};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use netlink_packet_route::route::{
    RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use super::Netlink;
use crate::conf::host::{HostAddr, HostRoute};

impl Netlink {
    /// Brings link `index` up.
    pub fn set_link_up(&mut self, index: u32) -> io::Result<()> {
        self.set_link_flags(index, LinkFlags::Up, LinkFlags::Up)
    }

    /// Brings link `index` up with no duplicate address detection for its
    /// IPv6 link-local address, as upstream does for the tap: up with
    /// `IFF_NOARP` (the kernel skips DAD for the address it creates then),
    /// re-add that address with `IFA_F_NODAD`, clear `IFF_NOARP` (left
    /// cleared even if it was set before). Returns the link-local address;
    /// `None` if the link has none yet (IPv6 disabled, or no carrier).
    pub fn set_link_up_without_dad(&mut self, index: u32) -> io::Result<Option<Ipv6Addr>> {
        let up_noarp = LinkFlags::Up | LinkFlags::Noarp;
        self.set_link_flags(index, up_noarp, up_noarp)?;
        let link_local = self.mark_link_local_nodad(index);
        let noarp_cleared = self.set_link_flags(index, LinkFlags::empty(), LinkFlags::Noarp);
        let link_local = link_local?;
        noarp_cleared?;
        Ok(link_local)
    }

    pub fn set_mtu(&mut self, index: u32, mtu: u32) -> io::Result<()> {
        self.set_link_attribute(index, LinkAttribute::Mtu(mtu))
    }

    pub fn set_mac(&mut self, index: u32, mac: [u8; 6]) -> io::Result<()> {
        self.set_link_attribute(index, LinkAttribute::Address(mac.to_vec()))
    }

    /// Sets the transmit queue length, in frames.
    pub fn set_txqueuelen(&mut self, index: u32, frames: u32) -> io::Result<()> {
        self.set_link_attribute(index, LinkAttribute::TxQueueLen(frames))
    }

    /// Adds `addr` to link `index`, permanent (no lifetimes); IPv6
    /// addresses with `IFA_F_NODAD`, so that they are usable at once. An
    /// address that exists already is an `AlreadyExists` error.
    pub fn add_addr(&mut self, index: u32, addr: &HostAddr) -> io::Result<()> {
        let request = RouteNetlinkMessage::NewAddress(address_message(index, addr));
        self.execute(request, NLM_F_CREATE | NLM_F_EXCL).map(drop)
    }

    /// Adds `route` through link `index` (its `oif` is not used) to the
    /// main table. A route that exists already is an `AlreadyExists` error.
    pub fn add_route(&mut self, index: u32, route: &HostRoute) -> io::Result<()> {
        let request = RouteNetlinkMessage::NewRoute(route_message(index, route));
        self.execute(request, NLM_F_CREATE | NLM_F_EXCL).map(drop)
    }

    /// Adds `routes` through link `index` in an order the kernel accepts: a
    /// gateway must be reachable when its route is added, so routes without
    /// a gateway go first, and routes that fail are retried after the
    /// others for as long as some succeed. A route that exists already
    /// counts as added (addresses bring their prefix routes). A route that
    /// still can't be added is an error naming it.
    pub fn copy_routes(&mut self, index: u32, routes: &[HostRoute]) -> io::Result<()> {
        let mut pending: Vec<&HostRoute> = routes.iter().collect();
        pending.sort_by_key(|route| route.gateway.is_some());
        loop {
            let tried = pending.len();
            let mut first_failure = None;
            pending.retain(|route| match self.add_route(index, route) {
                Ok(()) => false,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => false,
                Err(e) => {
                    first_failure.get_or_insert((**route, e));
                    true
                }
            });
            match first_failure {
                None => return Ok(()),
                Some((route, e)) if pending.len() == tried => {
                    return Err(io::Error::new(
                        e.kind(),
                        format!("route {}: {e}", describe(&route)),
                    ));
                }
                Some(_) => {}
            }
        }
    }

    /// Re-adds the IPv6 link-local addresses of link `index` with
    /// `IFA_F_NODAD`; returns the first.
    fn mark_link_local_nodad(&mut self, index: u32) -> io::Result<Option<Ipv6Addr>> {
        let mut first = None;
        for (link, addr) in self.addrs()? {
            let IpAddr::V6(ip) = addr.addr else { continue };
            if link != index || !addr.link_local {
                continue;
            }
            let request = RouteNetlinkMessage::NewAddress(address_message(index, &addr));
            self.execute(request, NLM_F_REPLACE)?;
            first.get_or_insert(ip);
        }
        Ok(first)
    }

    fn set_link_flags(
        &mut self,
        index: u32,
        flags: LinkFlags,
        change_mask: LinkFlags,
    ) -> io::Result<()> {
        let mut message = LinkMessage::default();
        message.header.index = index;
        message.header.flags = flags;
        message.header.change_mask = change_mask;
        self.execute(RouteNetlinkMessage::SetLink(message), 0)
            .map(drop)
    }

    fn set_link_attribute(&mut self, index: u32, attribute: LinkAttribute) -> io::Result<()> {
        let mut message = LinkMessage::default();
        message.header.index = index;
        message.attributes.push(attribute);
        self.execute(RouteNetlinkMessage::SetLink(message), 0)
            .map(drop)
    }
}

fn address_message(index: u32, addr: &HostAddr) -> AddressMessage {
    let mut message = AddressMessage::default();
    message.header.family = family_of(addr.addr);
    message.header.prefix_len = addr.prefix_len;
    message.header.scope = if addr.link_local {
        AddressScope::Link
    } else {
        AddressScope::Universe
    };
    message.header.index = index;
    message.attributes = vec![
        AddressAttribute::Local(addr.addr),
        AddressAttribute::Address(addr.addr),
    ];
    if addr.addr.is_ipv6() {
        message
            .attributes
            .push(AddressAttribute::Flags(AddressFlags::Nodad));
    }
    message
}

fn route_message(index: u32, route: &HostRoute) -> RouteMessage {
    let mut message = RouteMessage::default();
    let header = &mut message.header;
    header.address_family = family_of(route.dst);
    header.destination_prefix_length = route.prefix_len;
    header.table = RouteHeader::RT_TABLE_MAIN;
    header.protocol = RouteProtocol::Boot;
    header.scope = match route.gateway {
        Some(_) => RouteScope::Universe,
        None => RouteScope::Link,
    };
    header.kind = RouteType::Unicast;
    let attributes = &mut message.attributes;
    if route.prefix_len > 0 {
        attributes.push(RouteAttribute::Destination(route.dst.into()));
    }
    if let Some(gateway) = route.gateway {
        attributes.push(RouteAttribute::Gateway(gateway.into()));
    }
    attributes.push(RouteAttribute::Oif(index));
    if route.metric != 0 {
        attributes.push(RouteAttribute::Priority(route.metric));
    }
    message
}

fn family_of(ip: IpAddr) -> AddressFamily {
    match ip {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    }
}

/// `192.0.2.0/24`, `0.0.0.0/0 via 192.0.2.1`.
fn describe(route: &HostRoute) -> String {
    let dst = format!("{}/{}", route.dst, route.prefix_len);
    match route.gateway {
        Some(gateway) => format!("{dst} via {gateway}"),
        None => dst,
    }
}
