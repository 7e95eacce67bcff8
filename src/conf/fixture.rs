//! Made-up hosts and configurations for unit tests and fuzz targets
//! (compiled only for them): a dual-stack host with documentation
//! addresses, and a `Config` resolved from it with any options.

use std::ffi::OsString;
use std::net::IpAddr;

use super::host::{HostAddr, HostLink, HostNet, HostRoute};
use super::ports::PortRange;
use super::resolve::{is_link_local6, resolve};
use super::{Config, Mode, ParseOutcome, parse_args};

pub fn link(index: u32, name: &str) -> HostLink {
    HostLink {
        index,
        name: name.into(),
        mtu: 1500,
        mac: Some([2, 0, 0, 0, 0, index as u8]),
        up: true,
        loopback: false,
    }
}

pub fn addr(index: u32, text: &str, prefix_len: u8) -> (u32, HostAddr) {
    let addr: IpAddr = text.parse().unwrap();
    let link_local = match addr {
        IpAddr::V4(a) => a.is_link_local(),
        IpAddr::V6(a) => is_link_local6(&a),
    };
    let host_addr = HostAddr {
        addr,
        prefix_len,
        link_local,
        deprecated: false,
    };
    (index, host_addr)
}

pub fn route(dst: &str, prefix_len: u8, gateway: Option<&str>, oif: u32, metric: u32) -> HostRoute {
    HostRoute {
        dst: dst.parse().unwrap(),
        prefix_len,
        gateway: gateway.map(|g| g.parse().unwrap()),
        oif,
        metric,
    }
}

/// lo, plus eth0 (index 2) with 192.0.2.10/24 via 192.0.2.1 and
/// 2001:db8::10/64 via fe80::1, and resolv.conf nameservers.
pub fn dual_stack_host() -> HostNet {
    let mut lo = link(1, "lo");
    lo.loopback = true;
    HostNet {
        links: vec![lo, link(2, "eth0")],
        addrs: vec![
            addr(1, "127.0.0.1", 8),
            addr(1, "::1", 128),
            addr(2, "192.0.2.10", 24),
            addr(2, "fe80::10", 64),
            addr(2, "2001:db8::10", 64),
        ],
        routes: vec![
            route("::1", 128, None, 1, 256),
            route("192.0.2.0", 24, None, 2, 0),
            route("0.0.0.0", 0, Some("192.0.2.1"), 2, 0),
            route("fe80::", 64, None, 2, 256),
            route("2001:db8::", 64, None, 2, 256),
            route("::", 0, Some("fe80::1"), 2, 1024),
        ],
        nameservers: vec![
            "192.0.2.53".parse().unwrap(),
            "2001:db8::53".parse().unwrap(),
        ],
        search: vec!["example.test".into()],
        ephemeral_ports: PortRange::new(32768, 60999),
    }
}

/// The configuration `args` give on [`dual_stack_host`]; panics on a bad
/// command line (fixtures are for tests).
pub fn config(mode: Mode, args: &[&str]) -> Config {
    let opts = match parse_args(mode, args.iter().map(OsString::from)) {
        Ok(ParseOutcome::Run(opts)) => opts,
        other => panic!("{args:?}: {other:?}"),
    };
    resolve(opts, &dual_stack_host()).unwrap_or_else(|e| panic!("{args:?}: {e}"))
}
