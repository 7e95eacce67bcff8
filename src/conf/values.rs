//! Parsers for single option values: numbers, MAC and IP addresses with
//! the checks upstream applies, netmasks, interface names, DNS lists.
//!
//! Each returns the typed value or the one-line [`ConfError`] the user
//! sees (upstream's wording); none panics, whatever the input. Numbers
//! follow `strtol(..., 0)`: decimal, `0x` hexadecimal or leading-`0` octal,
//! nothing else (no sign, no spaces, no trailing text). Neighbour:
//! [`super::args`] calls these while it walks the command line.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::error::ConfError;

/// Smallest MTU (IPv4's minimum datagram).
pub const MIN_MTU: u32 = 68;
/// Largest MTU we accept.
pub const MAX_MTU: u32 = 65535;
/// `--log-size` minimum: 5 * max(BUFSIZ (8192), page size (4096)).
pub const MIN_LOG_SIZE: u64 = 5 * 8192;
/// Longest interface name (IFNAMSIZ - 1).
pub const IFNAME_MAX: usize = 15;
/// Nameservers per family (`-D`).
pub const MAX_DNS_PER_FAMILY: usize = 3;
/// Search domains (`-S`).
pub const MAX_SEARCH: usize = 6;
/// Longest domain name.
const MAX_DOMAIN: usize = 253;

/// An unsigned number as `strtoul(text, NULL, 0)` reads a whole string.
pub fn parse_c_number(text: &str) -> Option<u64> {
    let (digits, radix) = if let Some(hex) = text.strip_prefix("0x").or(text.strip_prefix("0X")) {
        (hex, 16)
    } else if text.len() > 1 && text.starts_with('0') {
        (&text[1..], 8)
    } else {
        (text, 10)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    u64::from_str_radix(digits, radix).ok()
}

/// `-m`: 0 (don't advertise) or 68-65535.
pub fn mtu(text: &str) -> Result<u32, ConfError> {
    parse_c_number(text)
        .and_then(|n| u32::try_from(n).ok())
        .filter(|&n| n == 0 || (MIN_MTU..=MAX_MTU).contains(&n))
        .ok_or_else(|| ConfError::invalid("MTU", text))
}

/// `--log-size`, bytes.
pub fn log_size(text: &str) -> Result<u64, ConfError> {
    parse_c_number(text)
        .filter(|&n| n >= MIN_LOG_SIZE)
        .ok_or_else(|| ConfError::invalid("--log-size", text))
}

/// `-F`: an inherited descriptor, not stdin/stdout/stderr.
pub fn fd(text: &str) -> Result<i32, ConfError> {
    parse_c_number(text)
        .and_then(|n| i32::try_from(n).ok())
        .filter(|&n| n > 2)
        .ok_or_else(|| ConfError::invalid("--fd", text))
}

/// `xx:xx:xx:xx:xx:xx`, two hex digits per byte.
pub fn mac(text: &str) -> Result<[u8; 6], ConfError> {
    let invalid = || ConfError::invalid("MAC address", text);
    let mut mac = [0u8; 6];
    let mut parts = text.split(':');
    for byte in &mut mac {
        let part = parts.next().ok_or_else(invalid)?;
        if part.len() != 2 || !part.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(invalid());
        }
        *byte = u8::from_str_radix(part, 16).map_err(|_| invalid())?;
    }
    match parts.next() {
        Some(_) => Err(invalid()),
        None => Ok(mac),
    }
}

/// `-a`: an address the guest can have.
pub fn guest_address(text: &str) -> Result<IpAddr, ConfError> {
    let addr = text.parse::<IpAddr>().ok().filter(|addr| match addr {
        IpAddr::V4(a) => {
            !(a.is_unspecified() || a.is_loopback() || a.is_multicast() || a.is_broadcast())
        }
        IpAddr::V6(a) => {
            !(a.is_unspecified() || a.is_loopback() || a.is_multicast() || embeds_ipv4(a))
        }
    });
    addr.ok_or_else(|| ConfError::invalid("address", text))
}

/// IPv4-mapped (`::ffff:a.b.c.d`) or IPv4-compatible (`::a.b.c.d`).
fn embeds_ipv4(addr: &Ipv6Addr) -> bool {
    addr.to_ipv4_mapped().is_some() || addr.segments()[..6] == [0; 6]
}

/// `--map-host-loopback` / `--map-guest-addr`: an address the guest uses to
/// reach something else, or `none` (`Ok(None)`).
pub fn remap_address(what: &'static str, text: &str) -> Result<Option<IpAddr>, ConfError> {
    if text == "none" {
        return Ok(None);
    }
    let addr = text
        .parse::<IpAddr>()
        .ok()
        .filter(|a| !(a.is_unspecified() || a.is_loopback() || a.is_multicast()));
    addr.map(Some).ok_or_else(|| ConfError::invalid(what, text))
}

/// `--dns-forward`: an address the guest sends DNS queries to, which we
/// redirect (not unspecified, loopback or broadcast).
pub fn dns_forward_address(text: &str) -> Result<IpAddr, ConfError> {
    let addr = text.parse::<IpAddr>().ok().filter(|addr| match addr {
        IpAddr::V4(a) => !(a.is_unspecified() || a.is_loopback() || a.is_broadcast()),
        IpAddr::V6(a) => !(a.is_unspecified() || a.is_loopback()),
    });
    addr.ok_or_else(|| ConfError::invalid("DNS forwarding address", text))
}

/// `--dns-host`: the host's nameserver redirected queries go to (a
/// loopback resolver is fine; unspecified and broadcast are not).
pub fn dns_host_address(text: &str) -> Result<IpAddr, ConfError> {
    let addr = text.parse::<IpAddr>().ok().filter(|addr| match addr {
        IpAddr::V4(a) => !(a.is_unspecified() || a.is_broadcast()),
        IpAddr::V6(a) => !a.is_unspecified(),
    });
    addr.ok_or_else(|| ConfError::invalid("host nameserver address", text))
}

/// `-g`: a default gateway.
pub fn gateway(text: &str) -> Result<IpAddr, ConfError> {
    let addr = text.parse::<IpAddr>().ok().filter(|addr| match addr {
        IpAddr::V4(a) => !(a.is_unspecified() || a.is_loopback() || a.is_broadcast()),
        IpAddr::V6(a) => !(a.is_unspecified() || a.is_loopback()),
    });
    addr.ok_or_else(|| ConfError::invalid("gateway address", text))
}

/// `-o`: a source address for outbound sockets.
pub fn outbound_address(text: &str) -> Result<IpAddr, ConfError> {
    let addr = text.parse::<IpAddr>().ok().filter(|addr| match addr {
        IpAddr::V4(a) => !(a.is_unspecified() || a.is_broadcast() || a.is_multicast()),
        IpAddr::V6(a) => !(a.is_unspecified() || a.is_loopback() || a.is_multicast()),
    });
    addr.ok_or_else(|| {
        ConfError::unusable(format!("Invalid or redundant outbound address: {text}"))
    })
}

/// `-n`: dotted (contiguous) mask or a bit count, as a prefix length.
pub fn netmask(text: &str) -> Result<u8, ConfError> {
    let invalid = || ConfError::invalid("netmask", text);
    if let Ok(mask) = text.parse::<Ipv4Addr>() {
        let bits = u32::from(mask);
        let prefix_len = bits.leading_ones();
        return match bits.checked_shl(prefix_len).unwrap_or(0) {
            0 => Ok(prefix_len as u8),
            _ => Err(invalid()),
        };
    }
    parse_c_number(text)
        .filter(|&n| n <= 32)
        .map(|n| n as u8)
        .ok_or_else(invalid)
}

/// `-i`, `-I`, `--outbound-if4/6`: a possible interface name.
pub fn ifname(text: &str) -> Result<String, ConfError> {
    match text.is_empty() || text.len() > IFNAME_MAX {
        true => Err(ConfError::invalid("interface name", text)),
        false => Ok(text.to_string()),
    }
}

/// Nameservers given with `-D`, at most [`MAX_DNS_PER_FAMILY`] each.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DnsList {
    pub v4: Vec<Ipv4Addr>,
    pub v6: Vec<Ipv6Addr>,
}

impl DnsList {
    /// Adds one `-D ADDR`.
    pub fn add(&mut self, text: &str) -> Result<(), ConfError> {
        let cannot = || ConfError::unusable(format!("Cannot use DNS address {text}"));
        match text.parse::<IpAddr>().map_err(|_| cannot())? {
            IpAddr::V4(a) if self.v4.len() < MAX_DNS_PER_FAMILY => self.v4.push(a),
            IpAddr::V6(a) if self.v6.len() < MAX_DNS_PER_FAMILY => self.v6.push(a),
            _ => return Err(cannot()),
        }
        Ok(())
    }
}

/// Adds the domains of one `-S LIST` (space-separated) to `list`.
pub fn add_search_domains(list: &mut Vec<String>, text: &str) -> Result<(), ConfError> {
    let cannot =
        |domain: &str| ConfError::unusable(format!("Cannot use DNS search domain {domain}"));
    let mut domains = text.split_ascii_whitespace().peekable();
    if domains.peek().is_none() {
        return Err(cannot(text));
    }
    for domain in domains {
        if domain.len() > MAX_DOMAIN || list.len() >= MAX_SEARCH {
            return Err(cannot(domain));
        }
        list.push(domain.to_string());
    }
    Ok(())
}

/// `--runas`: `UID[:GID]` or `LOGIN[:GROUP]`, checked for shape only (the
/// names are looked up when the configuration is resolved).
pub fn runas(text: &str) -> Result<String, ConfError> {
    let well_formed = match text.split_once(':') {
        Some((user, group)) => !user.is_empty() && !group.is_empty() && !group.contains(':'),
        None => !text.is_empty(),
    };
    match well_formed {
        true => Ok(text.to_string()),
        false => Err(ConfError::invalid("--runas option", text)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c_numbers() {
        assert_eq!(parse_c_number("1500"), Some(1500));
        assert_eq!(parse_c_number("0x100"), Some(256));
        assert_eq!(parse_c_number("0100"), Some(64));
        assert_eq!(parse_c_number("0"), Some(0));
        for bad in [
            "",
            "1500x",
            "-5",
            "+5",
            " 5",
            "0x",
            "08",
            "99999999999999999999999",
        ] {
            assert_eq!(parse_c_number(bad), None, "{bad}");
        }
    }

    #[test]
    fn mtu_range() {
        assert_eq!(mtu("0").unwrap(), 0);
        assert_eq!(mtu("68").unwrap(), 68);
        assert_eq!(mtu("65535").unwrap(), 65535);
        assert_eq!(mtu("0x5dc").unwrap(), 1500);
        for bad in ["67", "65536", "abc", "1500x", "", "-1", "4294967297"] {
            assert_eq!(
                mtu(bad).unwrap_err().to_string(),
                format!("Invalid MTU: {bad}")
            );
        }
    }

    #[test]
    fn log_size_minimum() {
        assert_eq!(log_size("40960").unwrap(), 40960);
        assert_eq!(log_size("1048576").unwrap(), 1 << 20);
        for bad in ["40959", "100", "100K", "abc", "99999999999999999999"] {
            assert_eq!(
                log_size(bad).unwrap_err().to_string(),
                format!("Invalid --log-size: {bad}")
            );
        }
    }

    #[test]
    fn fd_above_stderr() {
        assert_eq!(fd("3").unwrap(), 3);
        for bad in ["0", "2", "abc", "99999999999"] {
            assert_eq!(
                fd(bad).unwrap_err().to_string(),
                format!("Invalid --fd: {bad}")
            );
        }
    }

    #[test]
    fn mac_addresses() {
        assert_eq!(
            mac("9a:55:9A:55:9a:55").unwrap(),
            [0x9a, 0x55, 0x9a, 0x55, 0x9a, 0x55]
        );
        for bad in [
            "1:2:3",
            "zz:00:00:00:00:00",
            "02:00:00:00:00:0",
            "02:00:00:00:00:001",
            "02-00-00-00-00-01",
            "2:0:0:0:0:1",
            "02:00:00:00:00:01:02",
            "",
        ] {
            assert_eq!(
                mac(bad).unwrap_err().to_string(),
                format!("Invalid MAC address: {bad}")
            );
        }
    }

    #[test]
    fn guest_addresses() {
        assert_eq!(
            guest_address("192.0.2.1").unwrap(),
            "192.0.2.1".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            guest_address("2001:db8::1").unwrap(),
            "2001:db8::1".parse::<IpAddr>().unwrap()
        );
        for bad in [
            "0.0.0.0",
            "127.0.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "ff02::1",
            "::ffff:1.2.3.4",
            "::1.2.3.4",
            "foo",
            "192.0.2.300",
        ] {
            assert_eq!(
                guest_address(bad).unwrap_err().to_string(),
                format!("Invalid address: {bad}")
            );
        }
    }

    #[test]
    fn gateways_and_outbound() {
        assert!(gateway("fe80::1").is_ok());
        for bad in [
            "foo",
            "0.0.0.0",
            "127.0.0.1",
            "::",
            "::1",
            "255.255.255.255",
        ] {
            assert_eq!(
                gateway(bad).unwrap_err().to_string(),
                format!("Invalid gateway address: {bad}")
            );
        }
        assert!(outbound_address("fe80::1").is_ok());
        assert!(outbound_address("192.0.2.1").is_ok());
        for bad in ["foo", "::1", "224.0.0.1", "0.0.0.0", "::"] {
            assert_eq!(
                outbound_address(bad).unwrap_err().to_string(),
                format!("Invalid or redundant outbound address: {bad}")
            );
        }
    }

    #[test]
    fn dns_forward_and_host_addresses() {
        assert_eq!(
            dns_forward_address("192.0.2.9").unwrap(),
            IpAddr::from([192, 0, 2, 9])
        );
        assert!(dns_forward_address("fd00::53").is_ok());
        for bad in [
            "foo",
            "0.0.0.0",
            "127.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
        ] {
            assert_eq!(
                dns_forward_address(bad).unwrap_err().to_string(),
                format!("Invalid DNS forwarding address: {bad}")
            );
        }
        assert!(dns_host_address("127.0.0.53").is_ok());
        assert!(dns_host_address("::1").is_ok());
        for bad in ["foo", "0.0.0.0", "255.255.255.255", "::"] {
            assert_eq!(
                dns_host_address(bad).unwrap_err().to_string(),
                format!("Invalid host nameserver address: {bad}")
            );
        }
    }

    #[test]
    fn netmasks() {
        assert_eq!(netmask("255.255.255.0").unwrap(), 24);
        assert_eq!(netmask("255.255.255.255").unwrap(), 32);
        assert_eq!(netmask("0.0.0.0").unwrap(), 0);
        assert_eq!(netmask("255.255.128.0").unwrap(), 17);
        assert_eq!(netmask("16").unwrap(), 16);
        assert_eq!(netmask("32").unwrap(), 32);
        for bad in ["33", "255.0.255.0", "foo", "24x", "0.255.255.255", ""] {
            assert_eq!(
                netmask(bad).unwrap_err().to_string(),
                format!("Invalid netmask: {bad}")
            );
        }
    }

    #[test]
    fn interface_names() {
        assert_eq!(ifname("eth0").unwrap(), "eth0");
        assert_eq!(ifname("a23456789012345").unwrap(), "a23456789012345");
        for bad in ["", "a234567890123456"] {
            assert_eq!(
                ifname(bad).unwrap_err().to_string(),
                format!("Invalid interface name: {bad}")
            );
        }
    }

    #[test]
    fn dns_lists() {
        let mut list = DnsList::default();
        for addr in ["192.0.2.1", "192.0.2.2", "2001:db8::1", "192.0.2.3"] {
            list.add(addr).unwrap();
        }
        assert_eq!(list.v4.len(), 3);
        assert_eq!(list.v6.len(), 1);
        assert_eq!(
            list.add("192.0.2.4").unwrap_err().to_string(),
            "Cannot use DNS address 192.0.2.4"
        );
        assert_eq!(
            list.add("foo").unwrap_err().to_string(),
            "Cannot use DNS address foo"
        );
        assert_eq!(
            list.add("").unwrap_err().to_string(),
            "Cannot use DNS address "
        );
    }

    #[test]
    fn search_domains() {
        let mut list = Vec::new();
        add_search_domains(&mut list, "a.test b.test").unwrap();
        add_search_domains(&mut list, "c.test").unwrap();
        assert_eq!(list, vec!["a.test", "b.test", "c.test"]);
        add_search_domains(&mut list, "d e f").unwrap();
        assert_eq!(
            add_search_domains(&mut list, "g").unwrap_err().to_string(),
            "Cannot use DNS search domain g"
        );
        assert_eq!(
            add_search_domains(&mut Vec::new(), "")
                .unwrap_err()
                .to_string(),
            "Cannot use DNS search domain "
        );
        let long = "x".repeat(254);
        assert!(add_search_domains(&mut Vec::new(), &long).is_err());
    }

    #[test]
    fn runas_shapes() {
        for good in ["1000", "1000:1000", "nobody", "user:group"] {
            assert_eq!(runas(good).unwrap(), good);
        }
        for bad in ["", ":", "1000:", ":1000", "1:2:3"] {
            assert_eq!(
                runas(bad).unwrap_err().to_string(),
                format!("Invalid --runas option: {bad}")
            );
        }
    }
}
