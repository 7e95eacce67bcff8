//! Address translation between the guest's view and the host's
//! (REFERENCE.md §2.4): which host address a guest destination means, and
//! which address replies appear to come from.
//!
//! Guest -> host ([`host_destination`]), first match wins: TCP or UDP to
//! the DNS match address (`--dns-forward`, or the `--map-host-loopback`
//! address standing for a loopback resolver) on port 53 or 853 goes to the
//! DNS host address (`--dns-host`, or that resolver), see
//! [`crate::conf::DnsRedirect`]; the `--map-host-loopback` address
//! (default: the gateway) is the host's loopback; the `--map-guest-addr`
//! address is the guest's own assigned address as the host has it (so the
//! guest can reach host services on the address they share); everything
//! else is itself. ICMP has no port: [`host_destination_without_port`]
//! applies the address rules only.
//!
//! Replies always appear to come from the address the guest used: a flow
//! keeps its guest-side addresses and ports, and replies are built from
//! those, so no reverse translation is needed (nor offered) for this
//! direction, DNS included.
//!
//! Host -> guest ([`guest_source`], for connections accepted on forwarded
//! ports): the host's loopback appears as the `--map-host-loopback`
//! address, the guest's own address as the `--map-guest-addr` address;
//! other sources the guest could not answer (loopback, unspecified, its own
//! address) appear as our address on the link; the rest are unchanged.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::conf::Config;

/// Destination ports of DNS: plain DNS and DNS over TLS.
pub const DNS_PORTS: [u16; 2] = [53, 853];

/// The host address a guest's TCP or UDP destination `dst`:`dst_port`
/// stands for.
pub fn host_destination(config: &Config, dst: IpAddr, dst_port: u16) -> IpAddr {
    let dns_host = match dst {
        IpAddr::V4(a) => (config.dns.redirect4)
            .filter(|r| r.match_addr == a)
            .map(|r| IpAddr::V4(r.host_addr)),
        IpAddr::V6(a) => (config.dns.redirect6)
            .filter(|r| r.match_addr == a)
            .map(|r| IpAddr::V6(r.host_addr)),
    };
    match dns_host {
        Some(host) if DNS_PORTS.contains(&dst_port) => host,
        _ => host_destination_without_port(config, dst),
    }
}

/// The host address a guest's destination `dst` stands for, by address
/// alone (no DNS rule): for ICMP, which has no port.
pub fn host_destination_without_port(config: &Config, dst: IpAddr) -> IpAddr {
    match dst {
        IpAddr::V4(a) if Some(a) == config.nat.map_host_loopback4 => {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        }
        IpAddr::V6(a) if Some(a) == config.nat.map_host_loopback6 => {
            IpAddr::V6(Ipv6Addr::LOCALHOST)
        }
        IpAddr::V4(a) if Some(a) == config.nat.map_guest_addr4 => match &config.ip4 {
            Some(ip4) => IpAddr::V4(ip4.addr),
            None => dst,
        },
        IpAddr::V6(a) if Some(a) == config.nat.map_guest_addr6 => match &config.ip6 {
            Some(ip6) => IpAddr::V6(ip6.addr),
            None => dst,
        },
        other => other,
    }
}

/// The address a host-side peer `src` appears as to the guest; `None` if
/// the guest could not reach it and we have no address on the link.
pub fn guest_source(config: &Config, src: IpAddr) -> Option<IpAddr> {
    match src.to_canonical() {
        IpAddr::V4(a) => guest_source4(config, a).map(IpAddr::V4),
        IpAddr::V6(a) => guest_source6(config, a).map(IpAddr::V6),
    }
}

fn guest_source4(config: &Config, src: Ipv4Addr) -> Option<Ipv4Addr> {
    let ip4 = config.ip4.as_ref()?;
    let mapped = match src {
        Ipv4Addr::LOCALHOST => config.nat.map_host_loopback4,
        a if a == ip4.addr => config.nat.map_guest_addr4,
        _ => None,
    };
    let unreachable = src.is_loopback() || src.is_unspecified() || src == ip4.addr;
    match (mapped, unreachable) {
        (Some(a), _) => Some(a),
        (None, true) => ip4.gateway,
        (None, false) => Some(src),
    }
}

fn guest_source6(config: &Config, src: Ipv6Addr) -> Option<Ipv6Addr> {
    let ip6 = config.ip6.as_ref()?;
    let mapped = match src {
        Ipv6Addr::LOCALHOST => config.nat.map_host_loopback6,
        a if a == ip6.addr => config.nat.map_guest_addr6,
        _ => None,
    };
    let unreachable = src.is_loopback() || src.is_unspecified() || src == ip6.addr;
    match (mapped, unreachable) {
        (Some(a), _) => Some(a),
        (None, true) => Some(ip6.our_link_local),
        (None, false) => Some(src),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conf::Mode;
    use crate::conf::fixture;

    #[test]
    fn nat_gateway_means_host_loopback_by_default() {
        let c = fixture::config(Mode::Pasta, &[]);
        let gw4 = c.ip4.as_ref().unwrap().gateway.unwrap();
        assert_eq!(
            host_destination(&c, IpAddr::V4(gw4), 80),
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        );
        let other: IpAddr = "198.51.100.7".parse().unwrap();
        assert_eq!(host_destination(&c, other, 80), other);
    }

    #[test]
    fn nat_map_options_translate_their_addresses() {
        let c = fixture::config(
            Mode::Pasta,
            &[
                "--map-host-loopback",
                "192.0.2.88",
                "--map-guest-addr",
                "2001:db8::77",
            ],
        );
        let v4 = |s: &str| IpAddr::V4(s.parse().unwrap());
        let v6 = |s: &str| IpAddr::V6(s.parse().unwrap());
        assert_eq!(
            host_destination(&c, v4("192.0.2.88"), 80),
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        );
        let gw4 = IpAddr::V4(c.ip4.as_ref().unwrap().gateway.unwrap());
        assert_eq!(
            host_destination(&c, gw4, 80),
            gw4,
            "the gateway is no longer mapped"
        );
        let guest6 = IpAddr::V6(c.ip6.as_ref().unwrap().addr);
        assert_eq!(host_destination(&c, v6("2001:db8::77"), 80), guest6);
    }

    #[test]
    fn nat_guest_source_maps_loopback_and_own_address() {
        let c = fixture::config(Mode::Pasta, &[]);
        let ip4 = c.ip4.as_ref().unwrap();
        let gw4 = IpAddr::V4(ip4.gateway.unwrap());
        let lo4 = IpAddr::V4(Ipv4Addr::LOCALHOST);
        assert_eq!(guest_source(&c, lo4), Some(gw4));
        assert_eq!(guest_source(&c, IpAddr::V4(ip4.addr)), Some(gw4));
        let other: IpAddr = "198.51.100.7".parse().unwrap();
        assert_eq!(guest_source(&c, other), Some(other));
        let mapped: IpAddr = "::ffff:198.51.100.7".parse().unwrap();
        assert_eq!(guest_source(&c, mapped), Some(other));
        let lo6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
        let gw6 = c.nat.map_host_loopback6.map(IpAddr::V6);
        let ll6 = IpAddr::V6(c.ip6.as_ref().unwrap().our_link_local);
        assert_eq!(guest_source(&c, lo6), gw6.or(Some(ll6)));
        let none = fixture::config(Mode::Pasta, &["--map-host-loopback", "none"]);
        assert_eq!(guest_source(&none, lo4), Some(gw4), "our link address");
    }

    /// A configuration of [`fixture::dual_stack_host`] with these
    /// resolv.conf nameservers.
    fn config_with_resolvers(args: &[&str], resolvers: &[&str]) -> Config {
        let opts =
            match crate::conf::parse_args(Mode::Passt, args.iter().map(std::ffi::OsString::from)) {
                Ok(crate::conf::ParseOutcome::Run(opts)) => opts,
                other => panic!("{args:?}: {other:?}"),
            };
        let mut host = fixture::dual_stack_host();
        host.nameservers = resolvers.iter().map(|a| a.parse().unwrap()).collect();
        crate::conf::resolve(opts, &host).unwrap()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn nat_dns_forward_goes_to_dns_host_on_ports_53_and_853_only() {
        let c = config_with_resolvers(
            &["--dns-forward", "192.0.2.200", "--dns-host", "192.0.2.53"],
            &["198.51.100.53"],
        );
        let forward = ip("192.0.2.200");
        assert_eq!(host_destination(&c, forward, 53), ip("192.0.2.53"));
        assert_eq!(host_destination(&c, forward, 853), ip("192.0.2.53"));
        assert_eq!(host_destination(&c, forward, 54), forward);
        assert_eq!(host_destination(&c, forward, 80), forward);
        assert_eq!(host_destination_without_port(&c, forward), forward);
        let other = ip("192.0.2.201");
        assert_eq!(host_destination(&c, other, 53), other);
        // Only the match address is redirected: port 53 of the gateway is
        // the host's loopback, as any other port of it.
        let gw4 = ip("192.0.2.1");
        assert_eq!(host_destination(&c, gw4, 53), ip("127.0.0.1"));
    }

    #[test]
    fn nat_dns_forward_without_dns_host_uses_the_first_resolver() {
        let c = config_with_resolvers(
            &["--dns-forward", "fd00::53", "--dns-forward", "10.0.2.3"],
            &["127.0.0.53", "192.0.2.53", "2001:db8::53"],
        );
        assert_eq!(
            host_destination(&c, ip("10.0.2.3"), 53),
            ip("127.0.0.53"),
            "loopback resolvers count"
        );
        assert_eq!(
            host_destination(&c, ip("fd00::53"), 853),
            ip("2001:db8::53")
        );
        assert_eq!(host_destination(&c, ip("fd00::53"), 5353), ip("fd00::53"));
    }

    #[test]
    fn nat_loopback_resolver_is_reached_through_the_mapped_address() {
        let c = config_with_resolvers(&[], &["127.0.0.53", "::1"]);
        let gw4 = ip("192.0.2.1");
        let gw6 = ip("fe80::1");
        assert_eq!(host_destination(&c, gw4, 53), ip("127.0.0.53"));
        assert_eq!(host_destination(&c, gw4, 853), ip("127.0.0.53"));
        assert_eq!(host_destination(&c, gw4, 54), ip("127.0.0.1"));
        assert_eq!(host_destination_without_port(&c, gw4), ip("127.0.0.1"));
        assert_eq!(host_destination(&c, gw6, 53), ip("::1"));
        assert_eq!(host_destination(&c, ip("192.0.2.53"), 53), ip("192.0.2.53"));
        // --dns-host picks where the mapped resolver's traffic goes.
        let c = config_with_resolvers(&["--dns-host", "127.0.0.54"], &["127.0.0.53"]);
        assert_eq!(host_destination(&c, gw4, 53), ip("127.0.0.54"));
        // Without a --map-host-loopback address, nothing is mapped.
        let c = config_with_resolvers(&["--no-map-gw"], &["127.0.0.53"]);
        assert_eq!(host_destination(&c, gw4, 53), gw4);
    }

    #[test]
    fn nat_gateway_resolver_keeps_its_dns_while_the_gateway_is_the_host() {
        let c = config_with_resolvers(&[], &["192.0.2.1"]);
        let gw4 = ip("192.0.2.1");
        assert_eq!(host_destination(&c, gw4, 53), gw4);
        assert_eq!(host_destination(&c, gw4, 22), ip("127.0.0.1"));
    }

    #[test]
    fn nat_no_map_gw_keeps_the_gateway() {
        let c = fixture::config(Mode::Pasta, &["--no-map-gw"]);
        let gw4 = IpAddr::V4(c.ip4.as_ref().unwrap().gateway.unwrap());
        assert_eq!(host_destination(&c, gw4, 53), gw4);
    }
}
