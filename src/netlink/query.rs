//! Reading links, addresses and routes, converted to the plain data of
//! `crate::conf::host`.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use netlink_packet_route::AddressFamily;
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::address::{AddressAttribute, AddressFlags, AddressMessage, AddressScope};
use netlink_packet_route::link::{LinkAttribute, LinkExtentMask, LinkFlags, LinkMessage};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteNextHop, RouteType,
};

use super::Netlink;
use super::socket::invalid_reply;
use crate::conf::host::{HostAddr, HostLink, HostRoute};

impl Netlink {
    /// All links of the namespace.
    pub fn links(&mut self) -> io::Result<Vec<HostLink>> {
        self.dump(
            RouteNetlinkMessage::GetLink(link_request()),
            |message| match message {
                RouteNetlinkMessage::NewLink(link) => Some(host_link(&link)),
                _ => None,
            },
        )
    }

    /// All addresses of all families, with the index of their link.
    pub fn addrs(&mut self) -> io::Result<Vec<(u32, HostAddr)>> {
        let request = RouteNetlinkMessage::GetAddress(AddressMessage::default());
        self.dump(request, |message| match message {
            RouteNetlinkMessage::NewAddress(address) => {
                Some((address.header.index, host_addr(&address)?))
            }
            _ => None,
        })
    }

    /// The unicast routes of the main table, IPv4 and IPv6.
    pub fn routes(&mut self) -> io::Result<Vec<HostRoute>> {
        let mut request = RouteMessage::default();
        request.header.table = RouteHeader::RT_TABLE_MAIN;
        self.dump(
            RouteNetlinkMessage::GetRoute(request),
            |message| match message {
                RouteNetlinkMessage::NewRoute(route) => host_route(&route),
                _ => None,
            },
        )
    }

    /// The index of the link called `name`, or `None` if there is none.
    pub fn link_index(&mut self, name: &str) -> io::Result<Option<u32>> {
        let mut request = link_request();
        request
            .attributes
            .push(LinkAttribute::IfName(name.to_owned()));
        match self.get_link(request) {
            Ok(link) => Ok(Some(link.header.index)),
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The MAC address of link `index` (`None` for links without one).
    pub fn link_mac(&mut self, index: u32) -> io::Result<Option<[u8; 6]>> {
        let mut request = link_request();
        request.header.index = index;
        Ok(host_link(&self.get_link(request)?).mac)
    }

    /// The one link `request` selects (by index or by name).
    pub(super) fn get_link(&mut self, request: LinkMessage) -> io::Result<LinkMessage> {
        self.execute(RouteNetlinkMessage::GetLink(request), 0)?
            .into_iter()
            .find_map(|message| match message {
                RouteNetlinkMessage::NewLink(link) => Some(link),
                _ => None,
            })
            .ok_or_else(|| invalid_reply("no link in the answer to RTM_GETLINK"))
    }
}

/// A link request that leaves out the statistics (smaller replies).
fn link_request() -> LinkMessage {
    let mut request = LinkMessage::default();
    request
        .attributes
        .push(LinkAttribute::ExtMask(vec![LinkExtentMask::SkipStats]));
    request
}

fn host_link(link: &LinkMessage) -> HostLink {
    let flags = link.header.flags;
    let mut host = HostLink {
        index: link.header.index,
        name: String::new(),
        mtu: 0,
        mac: None,
        up: flags.contains(LinkFlags::Up),
        loopback: flags.contains(LinkFlags::Loopback),
    };
    for attribute in &link.attributes {
        match attribute {
            LinkAttribute::IfName(name) => host.name.clone_from(name),
            LinkAttribute::Mtu(mtu) => host.mtu = *mtu,
            LinkAttribute::Address(mac) => host.mac = mac.as_slice().try_into().ok(),
            _ => {}
        }
    }
    host
}

/// The address (`IFA_LOCAL`, else `IFA_ADDRESS`: on point-to-point links
/// the latter is the peer's) with its prefix length and usability.
fn host_addr(message: &AddressMessage) -> Option<HostAddr> {
    let header = &message.header;
    let mut local = None;
    let mut address = None;
    let mut flags = AddressFlags::from_bits_retain(u32::from(header.flags.bits()));
    for attribute in &message.attributes {
        match attribute {
            AddressAttribute::Local(ip) => local = Some(*ip),
            AddressAttribute::Address(ip) => address = Some(*ip),
            AddressAttribute::Flags(all_flags) => flags = *all_flags,
            _ => {}
        }
    }
    let addr = local.or(address)?;
    let unusable = AddressFlags::Deprecated | AddressFlags::Tentative | AddressFlags::Dadfailed;
    Some(HostAddr {
        addr,
        prefix_len: header.prefix_len,
        link_local: header.scope == AddressScope::Link || is_link_local(addr),
        deprecated: flags.intersects(unusable),
    })
}

fn is_link_local(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(ip) => ip.is_link_local(),
        IpAddr::V6(ip) => ip.is_unicast_link_local(),
    }
}

/// A main-table unicast IPv4 or IPv6 route; `None` for anything else.
fn host_route(message: &RouteMessage) -> Option<HostRoute> {
    let header = &message.header;
    if header.kind != RouteType::Unicast
        || route_table(message) != u32::from(RouteHeader::RT_TABLE_MAIN)
    {
        return None;
    }
    let dst = match header.address_family {
        AddressFamily::Inet => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        AddressFamily::Inet6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        _ => return None,
    };
    let mut route = HostRoute {
        dst,
        prefix_len: header.destination_prefix_length,
        gateway: gateway_of(&message.attributes),
        oif: 0,
        metric: 0,
    };
    for attribute in &message.attributes {
        match attribute {
            RouteAttribute::Destination(dst) => route.dst = ip_of(dst)?,
            RouteAttribute::Oif(oif) => route.oif = *oif,
            RouteAttribute::Priority(metric) => route.metric = *metric,
            RouteAttribute::MultiPath(nexthops) => use_heaviest_nexthop(&mut route, nexthops),
            _ => {}
        }
    }
    Some(route)
}

/// `RTA_TABLE` when present (tables above 255), else the header's table.
fn route_table(message: &RouteMessage) -> u32 {
    message
        .attributes
        .iter()
        .find_map(|attribute| match attribute {
            RouteAttribute::Table(table) => Some(*table),
            _ => None,
        })
        .unwrap_or(u32::from(message.header.table))
}

/// As upstream: a multipath route is reported by the nexthop of the highest
/// weight (of equal weights, the last).
fn use_heaviest_nexthop(route: &mut HostRoute, nexthops: &[RouteNextHop]) {
    if let Some(heaviest) = nexthops.iter().max_by_key(|nexthop| nexthop.hops) {
        route.oif = heaviest.interface_index;
        route.gateway = gateway_of(&heaviest.attributes);
    }
}

fn gateway_of(attributes: &[RouteAttribute]) -> Option<IpAddr> {
    attributes.iter().find_map(|attribute| match attribute {
        RouteAttribute::Gateway(gateway) => ip_of(gateway),
        _ => None,
    })
}

fn ip_of(address: &RouteAddress) -> Option<IpAddr> {
    match address {
        RouteAddress::Inet(ip) => Some(IpAddr::V4(*ip)),
        RouteAddress::Inet6(ip) => Some(IpAddr::V6(*ip)),
        _ => None,
    }
}
