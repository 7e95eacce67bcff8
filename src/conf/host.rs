//! What host discovery found: the facts [`super::resolve()`] turns into
//! defaults. Plain data, filled by `crate::netlink` and [`super::resolv`]
//! ([`discover`] does both), so that resolution can be unit-tested with
//! made-up hosts.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::ports::{DEFAULT_EPHEMERAL, PortRange};
use super::resolv;

/// One interface of the host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostLink {
    pub index: u32,
    pub name: String,
    pub mtu: u32,
    pub mac: Option<[u8; 6]>,
    /// IFF_UP.
    pub up: bool,
    pub loopback: bool,
}

/// One address on a host interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostAddr {
    pub addr: IpAddr,
    pub prefix_len: u8,
    /// Link-local scope (fe80::/10, 169.254/16).
    pub link_local: bool,
    /// IFA_F_DEPRECATED or tentative: not to be used as the guest's address.
    pub deprecated: bool,
}

/// One route of the host's main table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostRoute {
    /// Destination network; `prefix_len == 0` is a default route.
    pub dst: IpAddr,
    pub prefix_len: u8,
    pub gateway: Option<IpAddr>,
    /// Output interface (for multipath: the highest-weight nexthop's).
    pub oif: u32,
    pub metric: u32,
}

/// Everything discovery found. Addresses and routes of all interfaces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostNet {
    pub links: Vec<HostLink>,
    /// (ifindex, address)
    pub addrs: Vec<(u32, HostAddr)>,
    pub routes: Vec<HostRoute>,
    /// Nameservers from resolv.conf, in file order (all of them).
    pub nameservers: Vec<IpAddr>,
    /// `search` domains from resolv.conf, in file order.
    pub search: Vec<String>,
    /// `net.ipv4.ip_local_port_range`, for `all` and exclusion-only specs
    /// (default: the kernel's 49152-65535).
    pub ephemeral_ports: PortRange,
}

impl Default for HostNet {
    fn default() -> Self {
        HostNet {
            links: Vec::new(),
            addrs: Vec::new(),
            routes: Vec::new(),
            nameservers: Vec::new(),
            search: Vec::new(),
            ephemeral_ports: DEFAULT_EPHEMERAL,
        }
    }
}

/// Discovers the host of the calling thread's network namespace: links,
/// addresses and routes over netlink, then resolv.conf and the ephemeral
/// port range.
pub fn discover() -> io::Result<HostNet> {
    let resolv = resolv::read_resolv_conf();
    Ok(HostNet {
        nameservers: resolv.nameservers,
        search: resolv.search,
        ephemeral_ports: resolv::read_ephemeral_ports(),
        ..crate::netlink::discover_host()?
    })
}

impl HostNet {
    pub fn link(&self, index: u32) -> Option<&HostLink> {
        self.links.iter().find(|l| l.index == index)
    }

    pub fn link_by_name(&self, name: &str) -> Option<&HostLink> {
        self.links.iter().find(|l| l.name == name)
    }

    pub fn addrs_of(&self, index: u32) -> impl Iterator<Item = &HostAddr> {
        self.addrs
            .iter()
            .filter(move |(i, _)| *i == index)
            .map(|(_, a)| a)
    }

    pub fn default_routes4(&self) -> impl Iterator<Item = &HostRoute> {
        self.routes
            .iter()
            .filter(|r| r.prefix_len == 0 && r.dst.is_ipv4())
    }

    pub fn default_routes6(&self) -> impl Iterator<Item = &HostRoute> {
        self.routes
            .iter()
            .filter(|r| r.prefix_len == 0 && r.dst.is_ipv6())
    }
}

/// Local mode addresses (no usable host interface).
pub const LOCAL_ADDR4: Ipv4Addr = Ipv4Addr::new(169, 254, 2, 1);
pub const LOCAL_PREFIX4: u8 = 16;
pub const LOCAL_GW4: Ipv4Addr = Ipv4Addr::new(169, 254, 2, 2);
pub const LOCAL_GW6: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);
