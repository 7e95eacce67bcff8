//! Address translation between the guest's view and the host's
//! (REFERENCE.md §2.4): which host address a guest destination means, and
//! which address replies appear to come from.
//!
//! Guest -> host, first match wins: the `--map-host-loopback` address
//! (default: the gateway) is the host's loopback; everything else is
//! itself. Replies always appear to come from the address the guest used.

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
    fn nat_no_map_gw_keeps_the_gateway() {
        let c = fixture::config(Mode::Pasta, &["--no-map-gw"]);
        let gw4 = IpAddr::V4(c.ip4.as_ref().unwrap().gateway.unwrap());
        assert_eq!(host_destination(&c, gw4), gw4);
    }
}
