//! Round trips through a real kernel. Each test runs on a thread of its own
//! in a fresh, empty network namespace (root needed), so nothing touches the
//! host's network. Links are veth pairs: the kernel here has no dummy
//! driver. Addresses come from the documentation ranges only.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::address::{AddressAttribute, AddressFlags, AddressMessage};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::route::{
    RouteAttribute, RouteHeader, RouteMessage, RouteNextHop, RouteProtocol, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use super::{Netlink, discover_host};
use crate::conf::host::{HostAddr, HostLink, HostRoute};

const MAC: [u8; 6] = [0x02, 0x00, 0x5e, 0x00, 0x53, 0x01];
const ADDR4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
const GW4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const ADDR6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10);
const GW6: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);
/// The kernel's metric for IPv6 routes added without one.
const IP6_DEFAULT_METRIC: u32 = 1024;

/// Runs `test` on a new thread in a new network namespace.
fn in_fresh_netns(test: impl FnOnce() + Send + 'static) {
    let thread = std::thread::spawn(|| {
        crate::sys::ns::unshare_net_thread().expect("unshare(CLONE_NEWNET): run the tests as root");
        test();
    });
    if let Err(panic) = thread.join() {
        std::panic::resume_unwind(panic);
    }
}

/// Creates the veth pair `name`/`peer` with the peer up (so that `name`
/// gets a carrier when it goes up); returns `name`'s index.
fn add_veth(nl: &mut Netlink, name: &str, peer: &str) -> u32 {
    let mut peer_link = LinkMessage::default();
    peer_link
        .attributes
        .push(LinkAttribute::IfName(peer.into()));
    let mut link = LinkMessage::default();
    link.attributes = vec![
        LinkAttribute::IfName(name.into()),
        LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer_link))),
        ]),
    ];
    nl.execute(
        RouteNetlinkMessage::NewLink(link),
        NLM_F_CREATE | NLM_F_EXCL,
    )
    .expect("creating a veth pair");
    let peer_index = nl.link_index(peer).unwrap().expect("veth peer");
    nl.set_link_up(peer_index).unwrap();
    nl.link_index(name).unwrap().expect("veth")
}

/// The kernel's view of link `index`.
fn link_message(nl: &mut Netlink, index: u32) -> LinkMessage {
    let mut request = LinkMessage::default();
    request.header.index = index;
    nl.get_link(request).unwrap()
}

/// Adds a default route over `nexthops`: (link, gateway, weight).
fn add_multipath_default(nl: &mut Netlink, nexthops: &[(u32, IpAddr, u8)]) {
    let mut route = RouteMessage::default();
    route.header.address_family = match nexthops[0].1 {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    };
    route.header.table = RouteHeader::RT_TABLE_MAIN;
    route.header.protocol = RouteProtocol::Boot;
    route.header.kind = RouteType::Unicast;
    let nexthops = nexthops
        .iter()
        .map(|&(index, gateway, weight)| {
            let mut nexthop = RouteNextHop::default();
            nexthop.interface_index = index;
            nexthop.hops = weight - 1;
            nexthop.attributes = vec![RouteAttribute::Gateway(gateway.into())];
            nexthop
        })
        .collect();
    route.attributes = vec![RouteAttribute::MultiPath(nexthops)];
    nl.execute(
        RouteNetlinkMessage::NewRoute(route),
        NLM_F_CREATE | NLM_F_EXCL,
    )
    .expect("adding a multipath route");
}

fn global(addr: impl Into<IpAddr>, prefix_len: u8) -> HostAddr {
    HostAddr {
        addr: addr.into(),
        prefix_len,
        link_local: false,
        deprecated: false,
    }
}

fn route(dst: impl Into<IpAddr>, prefix_len: u8, gateway: Option<IpAddr>) -> HostRoute {
    HostRoute {
        dst: dst.into(),
        prefix_len,
        gateway,
        oif: 0,
        metric: 0,
    }
}

fn default4(gateway: Ipv4Addr) -> HostRoute {
    route(Ipv4Addr::UNSPECIFIED, 0, Some(gateway.into()))
}

fn default6(gateway: Ipv6Addr) -> HostRoute {
    route(Ipv6Addr::UNSPECIFIED, 0, Some(gateway.into()))
}

fn on_link(route: HostRoute, oif: u32, metric: u32) -> HostRoute {
    HostRoute {
        oif,
        metric,
        ..route
    }
}

#[test]
fn configured_link_reads_back_through_discover_host() {
    in_fresh_netns(|| {
        let mut nl = Netlink::open().unwrap();
        let index = add_veth(&mut nl, "nl0", "nl0peer");
        nl.set_mtu(index, 1400).unwrap();
        nl.set_mac(index, MAC).unwrap();
        nl.set_txqueuelen(index, 16384).unwrap();
        nl.set_link_up(index).unwrap();
        nl.add_addr(index, &global(ADDR4, 24)).unwrap();
        nl.add_addr(index, &global(ADDR6, 64)).unwrap();
        nl.add_route(index, &default4(GW4)).unwrap();
        nl.add_route(index, &default6(GW6)).unwrap();

        let host = discover_host().unwrap();

        let expected_link = HostLink {
            index,
            name: "nl0".into(),
            mtu: 1400,
            mac: Some(MAC),
            up: true,
            loopback: false,
        };
        assert_eq!(host.link(index), Some(&expected_link));
        assert!(host.link_by_name("lo").unwrap().loopback);
        assert!(
            link_message(&mut nl, index)
                .attributes
                .contains(&LinkAttribute::TxQueueLen(16384))
        );

        // Not tentative although the link has a carrier: added with NODAD.
        let addrs: Vec<_> = host.addrs_of(index).copied().collect();
        assert!(addrs.contains(&global(ADDR4, 24)), "{addrs:?}");
        assert!(addrs.contains(&global(ADDR6, 64)), "{addrs:?}");

        let defaults4: Vec<_> = host.default_routes4().copied().collect();
        assert_eq!(defaults4, [on_link(default4(GW4), index, 0)]);
        let defaults6: Vec<_> = host.default_routes6().copied().collect();
        assert_eq!(
            defaults6,
            [on_link(default6(GW6), index, IP6_DEFAULT_METRIC)]
        );
        let prefix_route = on_link(route(Ipv4Addr::new(192, 0, 2, 0), 24, None), index, 0);
        assert!(host.routes.contains(&prefix_route), "{:?}", host.routes);

        assert!(host.nameservers.is_empty() && host.search.is_empty());
    });
}

#[test]
fn multipath_default_routes_report_the_heaviest_nexthop() {
    in_fresh_netns(|| {
        let mut nl = Netlink::open().unwrap();
        let first = add_veth(&mut nl, "mp0", "mp0peer");
        let second = add_veth(&mut nl, "mp1", "mp1peer");
        for (index, addr) in [(first, ADDR4), (second, Ipv4Addr::new(192, 0, 2, 138))] {
            nl.set_link_up(index).unwrap();
            nl.add_addr(index, &global(addr, 25)).unwrap();
        }
        let gw_second = IpAddr::from([192, 0, 2, 129]);
        add_multipath_default(&mut nl, &[(first, GW4.into(), 1), (second, gw_second, 3)]);
        let gw6_second = IpAddr::from(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 2));
        add_multipath_default(&mut nl, &[(first, GW6.into(), 2), (second, gw6_second, 1)]);

        let host = discover_host().unwrap();

        let default4 = host.default_routes4().next().expect("IPv4 default route");
        assert_eq!((default4.gateway, default4.oif), (Some(gw_second), second));
        let default6 = host.default_routes6().next().expect("IPv6 default route");
        assert_eq!((default6.gateway, default6.oif), (Some(GW6.into()), first));
    });
}

#[test]
fn copy_routes_adds_on_link_routes_before_gateway_routes() {
    in_fresh_netns(|| {
        let mut nl = Netlink::open().unwrap();
        let index = add_veth(&mut nl, "cp0", "cp0peer");
        nl.set_link_up(index).unwrap();
        // A /32 brings no prefix route: only the copied one reaches GW4.
        nl.add_addr(index, &global(ADDR4, 32)).unwrap();
        let subnet = route(Ipv4Addr::new(192, 0, 2, 0), 25, None);
        let default_route = default4(GW4);

        // The duplicate exists by the time it is added: not an error.
        nl.copy_routes(index, &[default_route, subnet, subnet])
            .unwrap();

        let routes = nl.routes().unwrap();
        assert!(
            routes.contains(&on_link(default_route, index, 0)),
            "{routes:?}"
        );
        assert!(routes.contains(&on_link(subnet, index, 0)), "{routes:?}");

        let unreachable = route(
            Ipv4Addr::new(192, 0, 2, 128),
            25,
            Some(IpAddr::from([192, 0, 2, 200])),
        );
        let error = nl.copy_routes(index, &[unreachable]).unwrap_err();
        assert!(
            error.to_string().contains("192.0.2.128/25 via 192.0.2.200"),
            "{error}"
        );
    });
}

#[test]
fn requests_for_missing_links_fail_cleanly() {
    in_fresh_netns(|| {
        let mut nl = Netlink::open().unwrap();
        const MISSING: u32 = 999;
        assert_eq!(nl.link_index("missing0").unwrap(), None);
        let subnet = route(Ipv4Addr::new(192, 0, 2, 0), 24, None);
        let error = nl.add_route(MISSING, &subnet).unwrap_err();
        assert_eq!(error.raw_os_error(), Some(libc::ENODEV), "{error}");
        assert!(nl.add_route(MISSING, &default4(GW4)).is_err());
        assert!(nl.copy_routes(MISSING, &[subnet]).is_err());
        assert!(nl.add_addr(MISSING, &global(ADDR4, 24)).is_err());
        assert!(nl.set_mtu(MISSING, 1500).is_err());
        assert!(nl.link_mac(MISSING).is_err());
        // The socket is still in step after the errors.
        assert!(nl.links().unwrap().iter().any(|link| link.loopback));
    });
}

#[test]
fn tap_comes_up_without_duplicate_address_detection() {
    in_fresh_netns(|| {
        let mut nl = Netlink::open().unwrap();
        // The fd gives the tap its carrier, as in pasta.
        let (_tap, name) = crate::sys::tun::create_tap("tap0").unwrap();
        let index = nl.link_index(&name).unwrap().unwrap();

        let link_local = nl
            .set_link_up_without_dad(index)
            .unwrap()
            .expect("link-local address");

        assert!(link_local.is_unicast_link_local());
        let flags = link_message(&mut nl, index).header.flags;
        assert!(
            flags.contains(LinkFlags::Up) && !flags.contains(LinkFlags::Noarp),
            "{flags:?}"
        );
        // Whenever the kernel's DAD work runs, NODAD makes it skip the probes.
        let ll_flags = address_flags(&mut nl, index, link_local.into());
        assert!(ll_flags.contains(AddressFlags::Nodad), "{ll_flags:?}");
    });
}

/// The `IFA_FLAGS` of address `ip` on link `index`.
fn address_flags(nl: &mut Netlink, index: u32, ip: IpAddr) -> AddressFlags {
    let request = RouteNetlinkMessage::GetAddress(AddressMessage::default());
    let flags = nl.dump(request, |message| match message {
        RouteNetlinkMessage::NewAddress(address) if address.header.index == index => {
            let listed = address.attributes.contains(&AddressAttribute::Address(ip));
            let flags = address
                .attributes
                .iter()
                .find_map(|attribute| match attribute {
                    AddressAttribute::Flags(flags) => Some(*flags),
                    _ => None,
                });
            flags.filter(|_| listed)
        }
        _ => None,
    });
    flags.unwrap().pop().expect("address listed with IFA_FLAGS")
}
