//! The configuration summary printed at start-up (unless `-q`), in
//! upstream's layout: template and outbound interfaces, pasta's tap name,
//! our MAC, then per family the loopback mapping, what DHCP or NDP/DHCPv6
//! hand out, and the nameservers and search list.
//!
//! Checked against upstream's output for the same host. The nameservers
//! listed are the ones the guest is told (a loopback resolver appears as
//! the address it is reached at, see `super::resolve`); like upstream, the
//! DNS redirection is not listed.
//! Neighbour: the caller decides whether to print ([`Config::print_summary`]).

use std::fmt::Write as _;
use std::io::Write;
use std::net::Ipv6Addr;

use super::{Config, Ip4Config, Ip6Config, Mode};

/// Writes the summary to `out` (stderr, where upstream's informational
/// messages go). Best effort: a failed write is not an error.
pub fn print_summary(config: &Config, out: &mut dyn Write) {
    let _ = out.write_all(summary_text(config).as_bytes());
}

/// The summary as text, one item per line.
pub fn summary_text(config: &Config) -> String {
    let mut text = String::new();
    let ip4 = config.ip4.as_ref();
    let ip6 = config.ip6.as_ref();
    let per_family = |v4: Option<String>, v6: Option<String>| match (v4, v6) {
        (None, None) => None,
        (Some(a), None) => Some(format!("{a} (IPv4)")),
        (None, Some(b)) => Some(format!("{b} (IPv6)")),
        (Some(a), Some(b)) => Some(format!("{a} (IPv4), {b} (IPv6)")),
    };
    let templates = per_family(
        ip4.and_then(|c| c.template.as_ref())
            .map(|t| t.name.clone()),
        ip6.and_then(|c| c.template.as_ref())
            .map(|t| t.name.clone()),
    );
    if let Some(line) = templates {
        line_to(&mut text, 0, format_args!("Template interface: {line}"));
    }
    let outbound_ifs = per_family(
        ip4.and_then(|c| c.outbound_if.clone()),
        ip6.and_then(|c| c.outbound_if.clone()),
    );
    if let Some(line) = outbound_ifs {
        line_to(&mut text, 0, format_args!("Outbound interface: {line}"));
    }
    let outbound: Vec<String> = [
        ip4.and_then(|c| c.outbound).map(|a| a.to_string()),
        ip6.and_then(|c| c.outbound).map(|a| a.to_string()),
    ]
    .into_iter()
    .flatten()
    .collect();
    if !outbound.is_empty() {
        line_to(
            &mut text,
            0,
            format_args!("Outbound address: {}", outbound.join(", ")),
        );
    }
    if config.mode == Mode::Pasta {
        line_to(
            &mut text,
            0,
            format_args!("Namespace interface: {}", config.pasta.ns_ifname),
        );
    }
    line_to(&mut text, 0, format_args!("MAC:"));
    line_to(
        &mut text,
        1,
        format_args!("host: {}", mac_text(&config.our_mac)),
    );
    if let Some(ip4) = ip4 {
        ip4_part(&mut text, config, ip4);
    }
    if let Some(ip6) = ip6 {
        ip6_part(&mut text, config, ip6);
    }
    text
}

fn ip4_part(text: &mut String, config: &Config, ip4: &Ip4Config) {
    if let Some(mapped) = config.nat.map_host_loopback4 {
        line_to(text, 1, format_args!("NAT to host 127.0.0.1: {mapped}"));
    }
    if config.services.dhcp {
        line_to(text, 0, format_args!("DHCP:"));
        line_to(text, 1, format_args!("assign: {}", ip4.addr));
        line_to(text, 1, format_args!("mask: {}", netmask4(ip4.prefix_len)));
        if let Some(gateway) = ip4.gateway {
            line_to(text, 1, format_args!("router: {gateway}"));
        }
    }
    list_to(text, "DNS:", &config.dns.servers4);
    list_to(text, "DNS search list:", &config.dns.search);
}

fn ip6_part(text: &mut String, config: &Config, ip6: &Ip6Config) {
    if let Some(mapped) = config.nat.map_host_loopback6 {
        line_to(text, 1, format_args!("NAT to host ::1: {mapped}"));
    }
    let heading = match (config.services.ndp, config.services.dhcpv6) {
        (true, true) => Some("NDP/DHCPv6:"),
        (true, false) => Some("NDP:"),
        (false, true) => Some("DHCPv6:"),
        (false, false) => None,
    };
    if let Some(heading) = heading {
        let router = ip6.gateway.unwrap_or(Ipv6Addr::UNSPECIFIED);
        line_to(text, 0, format_args!("{heading}"));
        line_to(text, 1, format_args!("assign: {}", ip6.addr));
        line_to(text, 1, format_args!("router: {router}"));
        line_to(
            text,
            1,
            format_args!("our link-local: {}", ip6.our_link_local),
        );
    }
    list_to(text, "DNS:", &config.dns.servers6);
    list_to(text, "DNS search list:", &config.dns.search);
}

/// A line, indented by four spaces per level.
fn line_to(text: &mut String, level: usize, line: std::fmt::Arguments<'_>) {
    let _ = writeln!(text, "{:indent$}{line}", "", indent = 4 * level);
}

/// A heading and one indented line per item; nothing for an empty list.
fn list_to<T: std::fmt::Display>(text: &mut String, heading: &str, items: &[T]) {
    if items.is_empty() {
        return;
    }
    line_to(text, 0, format_args!("{heading}"));
    for item in items {
        line_to(text, 1, format_args!("{item}"));
    }
}

fn netmask4(prefix_len: u8) -> std::net::Ipv4Addr {
    let bits = u32::MAX
        .checked_shl(32 - u32::from(prefix_len.min(32)))
        .unwrap_or(0);
    std::net::Ipv4Addr::from(bits)
}

fn mac_text(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    //! Expected texts are upstream's output for the same host (a veth `d0`
    //! with 192.0.2.10/24 via 192.0.2.1 and 2001:db8::10/64 via fe80::1),
    //! captured with `pasta --config-net -f PID` and `passt -f`.

    use super::*;
    use crate::conf::args::parse_args;
    use crate::conf::host::{HostAddr, HostLink, HostNet, HostRoute};
    use crate::conf::{ParseOutcome, resolve};
    use std::ffi::OsString;
    use std::net::IpAddr;

    fn host() -> HostNet {
        let addr = |text: &str, prefix_len, link_local| {
            let host_addr = HostAddr {
                addr: text.parse().unwrap(),
                prefix_len,
                link_local,
                deprecated: false,
            };
            (2, host_addr)
        };
        let route = |dst: &str, gateway: &str| HostRoute {
            dst: dst.parse().unwrap(),
            prefix_len: 0,
            gateway: Some(gateway.parse().unwrap()),
            oif: 2,
            metric: 0,
        };
        HostNet {
            links: vec![HostLink {
                index: 2,
                name: "d0".into(),
                mtu: 1500,
                mac: None,
                up: true,
                loopback: false,
            }],
            addrs: vec![
                addr("192.0.2.10", 24, false),
                addr("2001:db8::10", 64, false),
                addr("fe80::10", 64, true),
            ],
            routes: vec![route("0.0.0.0", "192.0.2.1"), route("::", "fe80::1")],
            nameservers: vec![IpAddr::from([192, 0, 2, 53])],
            ..HostNet::default()
        }
    }

    fn summary(mode: Mode, args: &[&str], host: &HostNet) -> String {
        let opts = match parse_args(mode, args.iter().map(OsString::from)) {
            Ok(ParseOutcome::Run(opts)) => opts,
            other => panic!("{other:?}"),
        };
        summary_text(&resolve(opts, host).unwrap())
    }

    #[test]
    fn pasta_dual_stack_with_resolv_conf() {
        let mut host = host();
        host.nameservers = ["127.0.0.53", "192.0.2.53", "2001:db8::53", "fe80::53"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        host.search = vec!["example.org".into(), "foo.test".into()];
        // 192.0.2.1: the loopback resolver, as the guest reaches it.
        let want = "\
Template interface: d0 (IPv4), d0 (IPv6)
Namespace interface: d0
MAC:
    host: 9a:55:9a:55:9a:55
    NAT to host 127.0.0.1: 192.0.2.1
DHCP:
    assign: 192.0.2.10
    mask: 255.255.255.0
    router: 192.0.2.1
DNS:
    192.0.2.1
    192.0.2.53
DNS search list:
    example.org
    foo.test
    NAT to host ::1: fe80::1
NDP/DHCPv6:
    assign: 2001:db8::10
    router: fe80::1
    our link-local: fe80::1
DNS:
    2001:db8::53
    fe80::53
DNS search list:
    example.org
    foo.test
";
        assert_eq!(summary(Mode::Pasta, &["--config-net", "1"], &host), want);
    }

    #[test]
    fn outbound_settings_and_switched_off_services() {
        let want = "\
Template interface: d0 (IPv4), d0 (IPv6)
Outbound interface: d0 (IPv4)
Outbound address: 192.0.2.10, 2001:db8::10
Namespace interface: d0
MAC:
    host: 9a:55:9a:55:9a:55
    NAT to host 127.0.0.1: 192.0.2.1
DNS:
    192.0.2.53
    NAT to host ::1: fe80::1
DHCPv6:
    assign: 2001:db8::10
    router: fe80::1
    our link-local: fe80::1
";
        let args = [
            "--outbound-if4",
            "d0",
            "-o",
            "192.0.2.10",
            "-o",
            "2001:db8::10",
            "--no-dhcp",
            "--no-ndp",
            "1",
        ];
        assert_eq!(summary(Mode::Pasta, &args, &host()), want);
    }

    #[test]
    fn overrides_and_no_map_gw() {
        let want = "\
Template interface: d0 (IPv4), d0 (IPv6)
Namespace interface: d0
MAC:
    host: 02:00:00:00:00:01
DHCP:
    assign: 192.0.2.10
    mask: 255.255.255.0
    router: 192.0.2.1
DNS:
    192.0.2.53
NDP:
    assign: 2001:db8::99
    router: fe80::1
    our link-local: fe80::1
";
        let args = [
            "--no-dhcpv6",
            "--no-map-gw",
            "-M",
            "02:00:00:00:00:01",
            "-a",
            "2001:db8::99",
            "1",
        ];
        assert_eq!(summary(Mode::Pasta, &args, &host()), want);
        let want = "\
Template interface: d0 (IPv4)
Namespace interface: d0
MAC:
    host: 9a:55:9a:55:9a:55
    NAT to host 127.0.0.1: 10.0.0.1
DHCP:
    assign: 10.0.0.5
    mask: 255.255.0.0
    router: 10.0.0.1
DNS:
    192.0.2.53
";
        let args = ["-a", "10.0.0.5", "-n", "16", "-g", "10.0.0.1", "-4", "1"];
        assert_eq!(summary(Mode::Pasta, &args, &host()), want);
    }

    #[test]
    fn passt_local_mode() {
        let host = HostNet {
            nameservers: vec![IpAddr::from([10, 255, 255, 53])],
            ..HostNet::default()
        };
        let want = "\
MAC:
    host: 9a:55:9a:55:9a:55
    NAT to host 127.0.0.1: 169.254.2.2
DHCP:
    assign: 169.254.2.1
    mask: 255.255.0.0
    router: 169.254.2.2
DNS:
    10.255.255.53
    NAT to host ::1: fe80::1
NDP:
    assign: ::
    router: fe80::1
    our link-local: fe80::1
";
        assert_eq!(summary(Mode::Passt, &[], &host), want);
    }

    #[test]
    fn print_summary_writes_the_text() {
        let mut out = Vec::new();
        let opts = match parse_args(Mode::Passt, Vec::<OsString>::new()) {
            Ok(ParseOutcome::Run(opts)) => opts,
            other => panic!("{other:?}"),
        };
        let config = resolve(opts, &host()).unwrap();
        print_summary(&config, &mut out);
        assert_eq!(String::from_utf8(out).unwrap(), summary_text(&config));
    }
}
