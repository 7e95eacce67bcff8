//! Namespace-side set-up, run on a thread inside the target network
//! namespace: bring `lo` up, create the tap, and with `--config-net` give it
//! the MTU, the template's addresses (or `-a`) and routes (or `-g`), then
//! bring it up.
//!
//! Addresses are copied with IFA_F_NODAD so they are usable at once; routes
//! are copied after the link is up (gateway routes need their on-link route
//! first: `Netlink::copy_routes` orders them). The tap gets a long transmit
//! queue (DESIGN.md rule 6) so bursts toward the guest are not dropped.

use std::io;
use std::net::IpAddr;
use std::os::fd::OwnedFd;

use crate::conf::Config;
use crate::conf::host::{HostAddr, HostNet, HostRoute};
use crate::netlink::Netlink;
use crate::sys::tun::{create_tap, enable_offloads};

/// Transmit queue length of the tap, in frames.
const TAP_TXQUEUELEN: u32 = 16384;

/// The tap as created in the namespace.
pub struct NsTap {
    pub fd: OwnedFd,
    pub name: String,
    pub mac: [u8; 6],
}

/// Brings `lo` up, creates the tap and configures it per `config`.
pub fn create_and_configure(config: &Config, host: &HostNet) -> io::Result<NsTap> {
    let mut nl = Netlink::open()?;
    if let Some(lo) = nl.link_index("lo")? {
        nl.set_link_up(lo)?;
    }
    let (fd, name) = create_tap(&config.pasta.ns_ifname).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("creating tap {}: {e}", config.pasta.ns_ifname),
        )
    })?;
    if let Err(e) = enable_offloads(&fd) {
        log::debug!("Tap offloads (TSO, checksum) not available: {e}");
    }
    let index = nl
        .link_index(&name)?
        .ok_or_else(|| io::Error::other(format!("tap {name} vanished")))?;
    nl.set_txqueuelen(index, TAP_TXQUEUELEN)?;
    if let Some(mac) = config.pasta.ns_mac {
        nl.set_mac(index, mac)?;
    }
    if config.pasta.config_net {
        configure_network(&mut nl, index, config, host)?;
    }
    let mac = nl.link_mac(index)?.unwrap_or([0; 6]);
    Ok(NsTap { fd, name, mac })
}

fn configure_network(
    nl: &mut Netlink,
    index: u32,
    config: &Config,
    host: &HostNet,
) -> io::Result<()> {
    if config.mtu != 0 {
        nl.set_mtu(index, config.mtu)?;
    }
    nl.set_link_up_without_dad(index)?;
    for addr in addresses(config, host) {
        nl.add_addr(index, &addr).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("adding address {}/{}: {e}", addr.addr, addr.prefix_len),
            )
        })?;
    }
    nl.copy_routes(index, &routes(config, host))
}

/// The template's global addresses per enabled family, or the configured
/// one (`-a`, or `--no-copy-addrs`).
fn addresses(config: &Config, host: &HostNet) -> Vec<HostAddr> {
    let mut out = Vec::new();
    let copy = config.pasta.copy_addrs;
    if let Some(ip4) = &config.ip4 {
        match (copy, &ip4.template) {
            (true, Some(t)) => out.extend(
                host.addrs_of(t.index)
                    .filter(|a| a.addr.is_ipv4() && !a.link_local)
                    .copied(),
            ),
            _ => out.push(configured(IpAddr::V4(ip4.addr), ip4.prefix_len)),
        }
    }
    if let Some(ip6) = &config.ip6 {
        match (copy, &ip6.template) {
            (true, Some(t)) => out.extend(
                host.addrs_of(t.index)
                    .filter(|a| a.addr.is_ipv6() && !a.link_local)
                    .copied(),
            ),
            _ if !ip6.addr.is_unspecified() => {
                out.push(configured(IpAddr::V6(ip6.addr), ip6.prefix_len))
            }
            _ => {}
        }
    }
    out
}

fn configured(addr: IpAddr, prefix_len: u8) -> HostAddr {
    HostAddr {
        addr,
        prefix_len,
        link_local: false,
        deprecated: false,
    }
}

/// The template's routes per enabled family, or just a default route via
/// the configured gateway (`-g`, or `--no-copy-routes`).
fn routes(config: &Config, host: &HostNet) -> Vec<HostRoute> {
    let mut out = Vec::new();
    let copy = config.pasta.copy_routes;
    if let Some(ip4) = &config.ip4 {
        match (copy, &ip4.template) {
            (true, Some(t)) => out.extend(template_routes(host, t.index, true)),
            _ => out.extend(ip4.gateway.map(|gw| default_via(IpAddr::V4(gw)))),
        }
    }
    if let Some(ip6) = &config.ip6 {
        match (copy, &ip6.template) {
            (true, Some(t)) => out.extend(template_routes(host, t.index, false)),
            _ => out.extend(ip6.gateway.map(|gw| default_via(IpAddr::V6(gw)))),
        }
    }
    out
}

fn template_routes(host: &HostNet, index: u32, v4: bool) -> impl Iterator<Item = HostRoute> + '_ {
    host.routes
        .iter()
        .filter(move |r| r.oif == index && r.dst.is_ipv4() == v4)
        .copied()
}

fn default_via(gateway: IpAddr) -> HostRoute {
    let dst = match gateway {
        IpAddr::V4(_) => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
    };
    HostRoute {
        dst,
        prefix_len: 0,
        gateway: Some(gateway),
        oif: 0,
        metric: 0,
    }
}
