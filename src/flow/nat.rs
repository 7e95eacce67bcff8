//! Address translation between the guest's view and the host's
//! (REFERENCE.md §2.4): which host address a guest destination means, and
//! which address replies appear to come from.
//!
//! Guest -> host, first match wins: the `--map-host-loopback` address
//! (default: the gateway) is the host's loopback; the `--map-guest-addr`
//! address is the guest's own assigned address as the host has it (so the
//! guest can reach host services on the address they share); everything
//! else is itself. Replies always appear to come from the address the guest
//! used. (The DNS-forward rule joins with the DNS issue.)

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::conf::Config;

/// The host address a guest's destination `dst` stands for.
pub fn host_destination(config: &Config, dst: IpAddr) -> IpAddr {
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
            host_destination(&c, IpAddr::V4(gw4)),
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        );
        let other: IpAddr = "198.51.100.7".parse().unwrap();
        assert_eq!(host_destination(&c, other), other);
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
            host_destination(&c, v4("192.0.2.88")),
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        );
        let gw4 = IpAddr::V4(c.ip4.as_ref().unwrap().gateway.unwrap());
        assert_eq!(
            host_destination(&c, gw4),
            gw4,
            "the gateway is no longer mapped"
        );
        let guest6 = IpAddr::V6(c.ip6.as_ref().unwrap().addr);
        assert_eq!(host_destination(&c, v6("2001:db8::77")), guest6);
    }

    #[test]
    fn nat_no_map_gw_keeps_the_gateway() {
        let c = fixture::config(Mode::Pasta, &["--no-map-gw"]);
        let gw4 = IpAddr::V4(c.ip4.as_ref().unwrap().gateway.unwrap());
        assert_eq!(host_destination(&c, gw4), gw4);
    }
}
