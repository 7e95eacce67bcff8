//! Host files the defaults come from: `/etc/resolv.conf` (nameservers and
//! search domains) and `/proc/sys/net/ipv4/ip_local_port_range` (the
//! ephemeral ports that `all` and exclusion-only port specs leave alone).
//!
//! The parsers are pure functions on text; the readers around them read a
//! bounded amount and never fail (a missing or unreadable file gives the
//! empty / kernel-default answer, as upstream). resolv.conf follows the
//! resolver's rules: `nameserver ADDR` (an IPv6 `%scope` suffix is
//! dropped), `search` and `domain` (the last of them wins), `#` and `;`
//! comments; lines longer than [`MAX_LINE`] are ignored, and at most
//! [`MAX_NAMESERVERS`] nameservers and [`MAX_SEARCH`] domains are kept.
//! Neighbours: [`super::host::discover`] stores the results in
//! [`super::host::HostNet`]; [`super::resolve()`] picks from them.

use std::fs::File;
use std::io::Read;
use std::net::IpAddr;
use std::path::Path;

use super::ports::{DEFAULT_EPHEMERAL, PortRange};

pub const RESOLV_CONF: &str = "/etc/resolv.conf";
pub const PORT_RANGE_SYSCTL: &str = "/proc/sys/net/ipv4/ip_local_port_range";

/// Lines longer than this are not resolver configuration.
pub const MAX_LINE: usize = 1024;
/// Nameservers kept from the file (the resolver itself uses 3).
pub const MAX_NAMESERVERS: usize = 16;
/// Search domains kept (the resolver's MAXDNSRCH).
pub const MAX_SEARCH: usize = 6;
/// Longest domain name.
pub const MAX_DOMAIN: usize = 253;
/// Bytes read from resolv.conf at most.
const MAX_FILE: u64 = 64 * 1024;

/// What resolv.conf says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResolvConf {
    /// In file order.
    pub nameservers: Vec<IpAddr>,
    /// From the last `search` or `domain` line.
    pub search: Vec<String>,
}

/// Parses resolv.conf text.
pub fn parse_resolv_conf(text: &str) -> ResolvConf {
    let mut conf = ResolvConf::default();
    for line in text.lines().filter(|line| line.len() <= MAX_LINE) {
        let mut words = line.split_ascii_whitespace();
        match words.next() {
            Some("nameserver") => {
                let server = words.next().and_then(parse_nameserver);
                if let Some(server) = server.filter(|_| conf.nameservers.len() < MAX_NAMESERVERS) {
                    conf.nameservers.push(server);
                }
            }
            Some("search" | "domain") => conf.search = search_domains(words),
            _ => {}
        }
    }
    conf
}

/// `ADDR` or `ADDR%SCOPE`.
fn parse_nameserver(word: &str) -> Option<IpAddr> {
    let addr = word.split_once('%').map_or(word, |(addr, _scope)| addr);
    addr.parse().ok()
}

fn search_domains<'a>(words: impl Iterator<Item = &'a str>) -> Vec<String> {
    words
        .take_while(|w| !w.starts_with(['#', ';']))
        .filter(|w| w.len() <= MAX_DOMAIN)
        .take(MAX_SEARCH)
        .map(str::to_string)
        .collect()
}

/// Reads `/etc/resolv.conf`; empty if it cannot be read.
pub fn read_resolv_conf() -> ResolvConf {
    read_resolv_conf_from(Path::new(RESOLV_CONF))
}

pub fn read_resolv_conf_from(path: &Path) -> ResolvConf {
    let mut text = String::new();
    let read = File::open(path).and_then(|f| f.take(MAX_FILE).read_to_string(&mut text));
    match read {
        Ok(_) => parse_resolv_conf(&text),
        Err(_) => ResolvConf::default(),
    }
}

/// Parses `ip_local_port_range` ("32768\t60999\n").
pub fn parse_port_range(text: &str) -> Option<PortRange> {
    let mut words = text.split_ascii_whitespace();
    let first = words.next()?.parse().ok()?;
    let last = words.next()?.parse().ok()?;
    (words.next().is_none() && first <= last).then_some(PortRange::new(first, last))
}

/// The host's ephemeral port range, or the kernel default.
pub fn read_ephemeral_ports() -> PortRange {
    std::fs::read_to_string(PORT_RANGE_SYSCTL)
        .ok()
        .and_then(|text| parse_port_range(&text))
        .unwrap_or(DEFAULT_EPHEMERAL)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn resolv_conf_nameservers_search_and_comments() {
        let text = "# generated\n\
                    ; also a comment\n\
                    nameserver 127.0.0.53\n\
                    nameserver 2001:db8::53\n\
                    nameserver   fe80::1%eth0  \n\
                    options edns0 trust-ad\n\
                    search example.org foo.test\n";
        let conf = parse_resolv_conf(text);
        assert_eq!(
            conf.nameservers,
            vec![
                IpAddr::V4(Ipv4Addr::new(127, 0, 0, 53)),
                "2001:db8::53".parse::<IpAddr>().unwrap(),
                IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1)),
            ]
        );
        assert_eq!(conf.search, vec!["example.org", "foo.test"]);
    }

    #[test]
    fn resolv_conf_last_search_or_domain_wins() {
        let conf = parse_resolv_conf("search a.test b.test\ndomain c.test\n");
        assert_eq!(conf.search, vec!["c.test"]);
        let conf = parse_resolv_conf("domain c.test\nsearch a.test b.test\n");
        assert_eq!(conf.search, vec!["a.test", "b.test"]);
    }

    #[test]
    fn resolv_conf_skips_garbage_and_bounds() {
        let long = format!("nameserver 192.0.2.1 {}\n", "x".repeat(MAX_LINE));
        let mut text = long.clone();
        text.push_str("nameserver\nnameserver not-an-address\nnameserverx 192.0.2.9\n");
        text.push_str("#nameserver 192.0.2.8\n");
        text.push_str("search a b c d e f g h\n");
        for i in 0..40 {
            text.push_str(&format!("nameserver 10.0.0.{i}\n"));
        }
        let conf = parse_resolv_conf(&text);
        assert_eq!(conf.nameservers.len(), MAX_NAMESERVERS);
        assert_eq!(conf.nameservers[0], IpAddr::V4(Ipv4Addr::new(10, 0, 0, 0)));
        assert_eq!(conf.search, vec!["a", "b", "c", "d", "e", "f"]);
    }

    #[test]
    fn resolv_conf_search_stops_at_comment() {
        let conf = parse_resolv_conf("search a.test # b.test\n");
        assert_eq!(conf.search, vec!["a.test"]);
    }

    #[test]
    fn missing_resolv_conf_is_empty() {
        let conf = read_resolv_conf_from(Path::new("/nonexistent/resolv.conf"));
        assert_eq!(conf, ResolvConf::default());
    }

    #[test]
    fn port_range_sysctl() {
        assert_eq!(
            parse_port_range("32768\t60999\n"),
            Some(PortRange::new(32768, 60999))
        );
        assert_eq!(parse_port_range("60999 32768"), None);
        assert_eq!(parse_port_range("1 2 3"), None);
        assert_eq!(parse_port_range("1"), None);
        assert_eq!(parse_port_range("1 70000"), None);
        assert_eq!(parse_port_range(""), None);
    }
}
