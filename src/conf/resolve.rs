//! [`Options`] + [`HostNet`] -> [`Config`]: upstream's defaults.
//!
//! Per family (IPv4, IPv6, unless `-6`/`-4`):
//! - template interface: `-i`, else `--outbound-if4/6`, else the interface
//!   of the default route with the lowest metric (discovery already put
//!   the highest-weight nexthop of a multipath route in `oif`), else the
//!   first interface with any route (not to a link-local prefix); loopback
//!   and down interfaces are skipped unless named explicitly;
//! - gateway: `-g`, else that interface's default route's gateway (an IPv6
//!   link-local gateway is kept: its scope is the template);
//! - address: `-a`, else the template's first address that is neither
//!   link-local nor deprecated; no address, no family. The prefix is `-n`
//!   (IPv4), else the prefix of the template address whose network holds
//!   the address, else classful (IPv4) or 64 (IPv6);
//! - IPv6 also needs a link-local address for us on the guest link: the
//!   gateway if link-local, else the host's link-local address.
//!
//! No family usable: local mode, 169.254.2.1/16 via 169.254.2.2 and an
//! IPv6 link with router fe80::1 and no address (`-a`/`-g`/`-n` still
//! apply; upstream overrides them there, and ignores `-4`/`-6`).
//! DNS (per family): `-D`, else resolv.conf's nameservers, at most 3. A
//! resolver the guest cannot reach as it is (loopback, or the
//! `--map-host-loopback` address, which means the host's loopback to the
//! guest) is advertised as the `--dns-forward` address if given, else as
//! the `--map-host-loopback` address, and DNS to that address is
//! redirected to the resolver ([`DnsRedirect`]); without either address it
//! is left out. `--dns-forward A` redirects A to `--dns-host`, else to the
//! first resolv.conf nameserver of the family (loopback included).
//! Services that cannot work are switched off (DHCP without an IPv4
//! gateway, DHCPv6 without an IPv6 address, RAs with `--config-net`).
//! Everything here is pure, except `--runas` names, read from
//! `/etc/passwd` and `/etc/group` through [`Accounts`].
//!
//! Neighbours: [`super::args`] produces the options, `crate::netlink` and
//! [`super::resolv`] the host facts ([`super::host::discover`]).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use super::accounts::{Accounts, resolve_runas};
use super::args::{DnsChoice, Options, Positional, SearchChoice};
use super::error::ConfError;
use super::host::{
    HostAddr, HostLink, HostNet, HostRoute, LOCAL_ADDR4, LOCAL_GW4, LOCAL_GW6, LOCAL_PREFIX4,
};
use super::ports::PortSpec;
use super::values::{MAX_DNS_PER_FAMILY, MAX_SEARCH};
use super::{
    Config, DEFAULT_LOG_SIZE, DEFAULT_MTU, DEFAULT_OUR_MAC, DnsConfig, DnsRedirect, Forwards,
    Ip4Config, Ip6Config, LogConfig, Mode, NatConfig, Notice, NsTarget, PasstConfig, PastaConfig,
    Services, TemplateIface,
};

/// Name of pasta's tap in local mode.
const LOCAL_TAP_NAME: &str = "tap0";
/// IPv6 prefix length when no host address gives one.
const DEFAULT_PREFIX6: u8 = 64;

/// The logging settings alone: known before host discovery, so that
/// discovery and resolution can log.
pub fn log_config(opts: &Options) -> LogConfig {
    LogConfig {
        debug: opts.debug || opts.trace,
        trace: opts.trace,
        quiet: opts.quiet,
        file: opts.log_file.clone(),
        file_size: opts.log_size.unwrap_or(DEFAULT_LOG_SIZE),
    }
}

/// Resolves the configuration; `--runas` names come from the system's
/// account files.
pub fn resolve(opts: Options, host: &HostNet) -> Result<Config, ConfError> {
    resolve_with(opts, host, &Accounts::System)
}

/// [`resolve`] with the account database given.
pub fn resolve_with(
    mut opts: Options,
    host: &HostNet,
    accounts: &Accounts,
) -> Result<Config, ConfError> {
    let mut notices = std::mem::take(&mut opts.notices);
    let mut ip4 = match opts.ipv6_only {
        true => None,
        false => ip4_from_host(&opts, host, &mut notices)?,
    };
    let mut ip6 = match opts.ipv4_only {
        true => None,
        false => ip6_from_host(&opts, host, &mut notices)?,
    };
    if ip4.is_none() && ip6.is_none() {
        notices.push(Notice::info(
            "No external interface as template, switch to local mode",
        ));
        ip4 = (!opts.ipv6_only).then(|| local_ip4(&opts));
        ip6 = (!opts.ipv4_only).then(|| local_ip6(&opts));
    }
    let template = ip4
        .as_ref()
        .and_then(|c| c.template.clone())
        .or_else(|| ip6.as_ref().and_then(|c| c.template.clone()));
    let runas = opts
        .runas
        .as_deref()
        .map(|raw| resolve_runas(raw, accounts))
        .transpose()?;
    let fwd = forwards(&mut opts, host, &mut notices);
    let nat = nat(&opts, ip4.as_ref(), ip6.as_ref());
    let dns = dns(
        &opts,
        host,
        &nat,
        ip4.is_some(),
        ip6.is_some(),
        &mut notices,
    );
    let pasta = pasta_config(&opts, template.as_ref());
    let spawns = opts.mode == Mode::Pasta && matches!(pasta.target, NsTarget::Spawn(_));
    Ok(Config {
        mode: opts.mode,
        log: log_config(&opts),
        foreground: opts.foreground || spawns,
        pid_file: opts.pid_file.clone(),
        pcap: opts.pcap.clone(),
        runas,
        mtu: opts.mtu.unwrap_or(DEFAULT_MTU),
        our_mac: opts.our_mac.unwrap_or(DEFAULT_OUR_MAC),
        template,
        services: services(&opts, ip4.as_ref(), ip6.as_ref()),
        dns,
        nat,
        ip4,
        ip6,
        fwd,
        passt: PasstConfig {
            socket_path: opts.socket_path.clone(),
            one_off: opts.one_off || opts.fd.is_some(),
            vhost_user: false,
        },
        pasta,
        fd: opts.fd,
        print_summary: !(opts.quiet || (spawns && !opts.debug)),
        notices,
    })
}

/// Which address family a lookup is for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Family {
    V4,
    V6,
}

impl Family {
    fn name(self) -> &'static str {
        match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        }
    }

    fn holds(self, addr: &IpAddr) -> bool {
        addr.is_ipv4() == (self == Family::V4)
    }
}

/// The template interface of `family`: named (`-i`, `--outbound-ifN`) or
/// found from the routes.
fn template<'h>(
    family: Family,
    opts: &Options,
    host: &'h HostNet,
    notices: &mut Vec<Notice>,
) -> Result<Option<&'h HostLink>, ConfError> {
    let outbound_if = match family {
        Family::V4 => &opts.outbound_if4,
        Family::V6 => &opts.outbound_if6,
    };
    match opts.interface.as_ref().or(outbound_if.as_ref()) {
        Some(name) => host.link_by_name(name).map(Some).ok_or_else(|| {
            ConfError::unusable(format!("Invalid interface name {name}: No such device"))
        }),
        None => Ok(template_from_routes(family, host, notices)),
    }
}

/// The default route's interface, else the only (first) one with routes.
fn template_from_routes<'h>(
    family: Family,
    host: &'h HostNet,
    notices: &mut Vec<Notice>,
) -> Option<&'h HostLink> {
    let usable = |route: &&HostRoute| {
        family.holds(&route.dst)
            && !is_link_local_prefix(route)
            && host.link(route.oif).is_some_and(|l| l.up && !l.loopback)
    };
    let routes: Vec<&HostRoute> = host.routes.iter().filter(usable).collect();
    let default = routes
        .iter()
        .filter(|r| r.prefix_len == 0)
        .min_by_key(|r| r.metric);
    if let Some(route) = default {
        return host.link(route.oif);
    }
    let first = routes.first()?;
    if routes.iter().any(|r| r.oif != first.oif) {
        notices.push(Notice::info(format!(
            "Multiple interfaces with {} routes, picked first",
            family.name()
        )));
    }
    host.link(first.oif)
}

fn is_link_local_prefix(route: &HostRoute) -> bool {
    match route.dst {
        IpAddr::V4(a) => route.prefix_len >= 16 && a.octets()[..2] == [169, 254],
        IpAddr::V6(a) => route.prefix_len >= 10 && is_link_local6(&a),
    }
}

pub(crate) fn is_link_local6(addr: &Ipv6Addr) -> bool {
    addr.segments()[0] & 0xffc0 == 0xfe80
}

fn template_iface(link: &HostLink) -> TemplateIface {
    TemplateIface {
        name: link.name.clone(),
        index: link.index,
    }
}

/// The gateway of `index`'s default route of `family` (lowest metric).
fn default_gateway(host: &HostNet, index: u32, family: Family) -> Option<IpAddr> {
    host.routes
        .iter()
        .filter(|r| r.prefix_len == 0 && r.oif == index && family.holds(&r.dst))
        .filter(|r| r.gateway.is_some())
        .min_by_key(|r| r.metric)
        .and_then(|r| r.gateway)
}

/// The first usable (global, not deprecated) address of `family`.
fn first_global_addr(host: &HostNet, index: u32, family: Family) -> Option<&HostAddr> {
    host.addrs_of(index)
        .find(|a| family.holds(&a.addr) && !a.link_local && !a.deprecated)
}

/// The prefix length of the template address whose network holds `addr`.
fn matching_prefix(host: &HostNet, index: u32, addr: IpAddr) -> Option<u8> {
    host.addrs_of(index)
        .find(|a| same_network(a.addr, addr, a.prefix_len))
        .map(|a| a.prefix_len)
}

fn same_network(a: IpAddr, b: IpAddr, prefix_len: u8) -> bool {
    match (a, b) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let mask = u32::MAX
                .checked_shl(32 - u32::from(prefix_len.min(32)))
                .unwrap_or(0);
            u32::from(a) & mask == u32::from(b) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let mask = u128::MAX
                .checked_shl(128 - u32::from(prefix_len.min(128)))
                .unwrap_or(0);
            u128::from(a) & mask == u128::from(b) & mask
        }
        _ => false,
    }
}

/// Class A /8, B /16, C /24, else /32.
fn classful_prefix(addr: Ipv4Addr) -> u8 {
    match addr.octets()[0] {
        0..=127 => 8,
        128..=191 => 16,
        192..=223 => 24,
        _ => 32,
    }
}

/// `-n`, where 0 means "not given" (as upstream).
fn netmask_option(opts: &Options) -> Option<u8> {
    opts.prefix_len4.filter(|&n| n != 0)
}

fn ip4_from_host(
    opts: &Options,
    host: &HostNet,
    notices: &mut Vec<Notice>,
) -> Result<Option<Ip4Config>, ConfError> {
    let Some(link) = template(Family::V4, opts, host, notices)? else {
        notices.push(Notice::info("No interfaces with usable IPv4 routes"));
        return Ok(None);
    };
    let host_addr = first_global_addr(host, link.index, Family::V4).map(|a| a.addr);
    let Some(addr) = opts.addr4.or(host_addr.and_then(as_v4)) else {
        return Ok(None);
    };
    let prefix_len = netmask_option(opts)
        .or_else(|| matching_prefix(host, link.index, IpAddr::V4(addr)))
        .unwrap_or_else(|| classful_prefix(addr));
    let gateway = opts
        .gateway4
        .or_else(|| default_gateway(host, link.index, Family::V4).and_then(as_v4));
    Ok(Some(Ip4Config {
        template: Some(template_iface(link)),
        addr,
        prefix_len,
        gateway,
        outbound: opts.outbound4,
        outbound_if: opts.outbound_if4.clone(),
        addr_from_cmdline: opts.addr4.is_some(),
        gateway_from_cmdline: opts.gateway4.is_some(),
    }))
}

fn ip6_from_host(
    opts: &Options,
    host: &HostNet,
    notices: &mut Vec<Notice>,
) -> Result<Option<Ip6Config>, ConfError> {
    let Some(link) = template(Family::V6, opts, host, notices)? else {
        notices.push(Notice::info("No interfaces with usable IPv6 routes"));
        return Ok(None);
    };
    let host_addr = first_global_addr(host, link.index, Family::V6).map(|a| a.addr);
    let Some(addr) = opts.addr6.or(host_addr.and_then(as_v6)) else {
        return Ok(None);
    };
    let host_link_local = host
        .addrs_of(link.index)
        .filter_map(|a| as_v6(a.addr))
        .find(is_link_local6);
    let gateway = opts
        .gateway6
        .or_else(|| default_gateway(host, link.index, Family::V6).and_then(as_v6));
    let Some(our_link_local) = gateway.filter(is_link_local6).or(host_link_local) else {
        return Ok(None);
    };
    Ok(Some(Ip6Config {
        template: Some(template_iface(link)),
        addr,
        prefix_len: matching_prefix(host, link.index, IpAddr::V6(addr)).unwrap_or(DEFAULT_PREFIX6),
        gateway,
        host_link_local,
        our_link_local,
        outbound: opts.outbound6,
        outbound_if: opts.outbound_if6.clone(),
        addr_from_cmdline: opts.addr6.is_some(),
        gateway_from_cmdline: opts.gateway6.is_some(),
    }))
}

fn local_ip4(opts: &Options) -> Ip4Config {
    Ip4Config {
        template: None,
        addr: opts.addr4.unwrap_or(LOCAL_ADDR4),
        prefix_len: netmask_option(opts).unwrap_or(LOCAL_PREFIX4),
        gateway: Some(opts.gateway4.unwrap_or(LOCAL_GW4)),
        outbound: opts.outbound4,
        outbound_if: opts.outbound_if4.clone(),
        addr_from_cmdline: opts.addr4.is_some(),
        gateway_from_cmdline: opts.gateway4.is_some(),
    }
}

fn local_ip6(opts: &Options) -> Ip6Config {
    let gateway = opts.gateway6.unwrap_or(LOCAL_GW6);
    Ip6Config {
        template: None,
        addr: opts.addr6.unwrap_or(Ipv6Addr::UNSPECIFIED),
        prefix_len: DEFAULT_PREFIX6,
        gateway: Some(gateway),
        host_link_local: None,
        our_link_local: Some(gateway).filter(is_link_local6).unwrap_or(LOCAL_GW6),
        outbound: opts.outbound6,
        outbound_if: opts.outbound_if6.clone(),
        addr_from_cmdline: opts.addr6.is_some(),
        gateway_from_cmdline: opts.gateway6.is_some(),
    }
}

fn as_v4(addr: IpAddr) -> Option<Ipv4Addr> {
    match addr {
        IpAddr::V4(a) => Some(a),
        IpAddr::V6(_) => None,
    }
}

fn as_v6(addr: IpAddr) -> Option<Ipv6Addr> {
    match addr {
        IpAddr::V6(a) => Some(a),
        IpAddr::V4(_) => None,
    }
}

/// The switches, minus services that cannot work.
fn services(opts: &Options, ip4: Option<&Ip4Config>, ip6: Option<&Ip6Config>) -> Services {
    let has_gateway4 = ip4.is_some_and(|c| c.gateway.is_some());
    let has_addr6 = ip6.is_some_and(|c| !c.addr.is_unspecified());
    let s = opts.services;
    Services {
        dhcp: s.dhcp && has_gateway4,
        ndp: s.ndp && ip6.is_some(),
        dhcpv6: s.dhcpv6 && has_addr6,
        ra: s.ra && ip6.is_some() && !opts.config_net,
        ..s
    }
}

/// `--map-host-loopback` per family: the given address, else the gateway
/// unless `--no-map-gw` (or `--map-host-loopback none`); `--map-guest-addr`
/// as given. Only for enabled families.
fn nat(opts: &Options, ip4: Option<&Ip4Config>, ip6: Option<&Ip6Config>) -> NatConfig {
    let map_gw = !opts.no_map_gw;
    NatConfig {
        map_host_loopback4: ip4
            .and_then(|c| opts.map_host_loopback4.or(c.gateway.filter(|_| map_gw))),
        map_host_loopback6: ip6
            .and_then(|c| opts.map_host_loopback6.or(c.gateway.filter(|_| map_gw))),
        map_guest_addr4: ip4.and(opts.map_guest_addr4),
        map_guest_addr6: ip6.and(opts.map_guest_addr6),
    }
}

/// Nameservers, search list and DNS redirection; warns as upstream when
/// resolv.conf gives no usable nameserver, and when `--dns-forward` has
/// nowhere to go.
fn dns(
    opts: &Options,
    host: &HostNet,
    nat: &NatConfig,
    has4: bool,
    has6: bool,
    notices: &mut Vec<Notice>,
) -> DnsConfig {
    let resolvers4: Vec<Ipv4Addr> = host.nameservers.iter().filter_map(|&a| as_v4(a)).collect();
    let resolvers6: Vec<Ipv6Addr> = host.nameservers.iter().filter_map(|&a| as_v6(a)).collect();
    let (given4, given6) = match &opts.dns {
        DnsChoice::Given(list) => (&list.v4[..], &list.v6[..]),
        DnsChoice::FromHost | DnsChoice::Disabled => (&[][..], &[][..]),
    };
    let enabled = opts.dns != DnsChoice::Disabled;
    let family4 = FamilyDnsSources {
        resolvers: &resolvers4,
        given: given4,
        dns_forward: opts.dns_forward4,
        dns_host: opts.dns_host4,
        map_host_loopback: nat.map_host_loopback4,
    };
    let family6 = FamilyDnsSources {
        resolvers: &resolvers6,
        given: given6,
        dns_forward: opts.dns_forward6,
        dns_host: opts.dns_host6,
        map_host_loopback: nat.map_host_loopback6,
    };
    let (servers4, redirect4) = match has4 {
        true => family4.resolve(enabled, Ipv4Addr::is_loopback),
        false => (Vec::new(), None),
    };
    let (servers6, redirect6) = match has6 {
        true => family6.resolve(enabled, Ipv6Addr::is_loopback),
        false => (Vec::new(), None),
    };
    if opts.dns == DnsChoice::FromHost && servers4.is_empty() && servers6.is_empty() {
        notices.push(Notice::warn("Couldn't get any nameserver address"));
    }
    let unforwarded4 = opts.dns_forward4.filter(|_| has4 && redirect4.is_none());
    let unforwarded6 = opts.dns_forward6.filter(|_| has6 && redirect6.is_none());
    let unforwarded = [unforwarded4.map(IpAddr::V4), unforwarded6.map(IpAddr::V6)];
    for forward in unforwarded.into_iter().flatten() {
        notices.push(Notice::warn(format!(
            "No host nameserver to forward DNS queries to {forward} to, use --dns-host"
        )));
    }
    let search = match &opts.search {
        SearchChoice::Disabled => Vec::new(),
        SearchChoice::Given(list) => list.clone(),
        SearchChoice::FromHost => host.search.iter().take(MAX_SEARCH).cloned().collect(),
    };
    let passt = opts.mode == Mode::Passt;
    DnsConfig {
        servers4,
        servers6,
        search,
        advertise_servers: if passt {
            !opts.no_dhcp_dns
        } else {
            opts.dhcp_dns
        },
        advertise_search: if passt {
            !opts.no_dhcp_search
        } else {
            opts.dhcp_search
        },
        redirect4,
        redirect6,
    }
}

/// What one family's nameservers and DNS redirection are made of.
struct FamilyDnsSources<'a, A> {
    /// resolv.conf's nameservers of the family, in order.
    resolvers: &'a [A],
    /// `-D` addresses of the family.
    given: &'a [A],
    dns_forward: Option<A>,
    dns_host: Option<A>,
    map_host_loopback: Option<A>,
}

impl<A: Copy + PartialEq> FamilyDnsSources<'_, A> {
    /// The nameservers to advertise and the redirection. `enabled`: not
    /// `-D none`.
    fn resolve(
        &self,
        enabled: bool,
        is_loopback: fn(&A) -> bool,
    ) -> (Vec<A>, Option<DnsRedirect<A>>) {
        let (servers, automatic) = match (enabled, self.given.is_empty()) {
            (false, _) => (Vec::new(), None),
            (true, false) => (self.given.to_vec(), None),
            (true, true) => self.resolv_conf_servers(is_loopback),
        };
        let redirect = match self.dns_forward {
            Some(forward) => self
                .dns_host
                .or_else(|| self.resolvers.first().copied())
                .map(|host_addr| DnsRedirect {
                    match_addr: forward,
                    host_addr,
                }),
            None => automatic.map(|found| DnsRedirect {
                host_addr: self.dns_host.unwrap_or(found.host_addr),
                ..found
            }),
        };
        (servers, redirect)
    }

    /// resolv.conf's nameservers as the guest reaches them (each once, at
    /// most 3), and the redirection of the `--map-host-loopback` address to
    /// the first resolver it stands for, if any.
    fn resolv_conf_servers(&self, is_loopback: fn(&A) -> bool) -> (Vec<A>, Option<DnsRedirect<A>>) {
        let mut servers: Vec<A> = Vec::new();
        let mut automatic: Option<DnsRedirect<A>> = None;
        for &resolver in self.resolvers {
            let hidden = is_loopback(&resolver) || Some(resolver) == self.map_host_loopback;
            let advertised = match (hidden, self.dns_forward, self.map_host_loopback) {
                (false, _, _) => resolver,
                (true, Some(forward), _) => forward,
                (true, None, Some(mapped)) => {
                    automatic.get_or_insert(DnsRedirect {
                        match_addr: mapped,
                        host_addr: resolver,
                    });
                    mapped
                }
                // The guest cannot reach it at all.
                (true, None, None) => continue,
            };
            if servers.len() < MAX_DNS_PER_FAMILY && !servers.contains(&advertised) {
                servers.push(advertised);
            }
        }
        (servers, automatic)
    }
}

/// Port specs with the mode's defaults (passt: none, pasta: auto; none for
/// a protocol switched off with `--no-tcp` / `--no-udp`, whose explicit
/// specs the parser already refused), and upstream's warning for ports
/// mapped twice.
fn forwards(opts: &mut Options, host: &HostNet, notices: &mut Vec<Notice>) -> Forwards {
    let default = match opts.mode {
        Mode::Passt => PortSpec::None,
        Mode::Pasta => PortSpec::Auto,
    };
    let (tcp, udp) = (opts.services.tcp, opts.services.udp);
    let take = |spec: &mut Option<PortSpec>, enabled: bool| {
        spec.take().unwrap_or_else(|| match enabled {
            true => default.clone(),
            false => PortSpec::None,
        })
    };
    let fwd = Forwards {
        tcp_in: take(&mut opts.tcp_ports, tcp),
        udp_in: take(&mut opts.udp_ports, udp),
        tcp_out: take(&mut opts.tcp_ns, tcp),
        udp_out: take(&mut opts.udp_ns, udp),
        ephemeral_ports: host.ephemeral_ports,
        freebind: opts.freebind,
    };
    for spec in [&fwd.tcp_in, &fwd.udp_in, &fwd.tcp_out, &fwd.udp_out] {
        if let PortSpec::Rules(rules) = spec {
            for remapped in rules.remapped_specs(fwd.ephemeral_ports) {
                notices.push(Notice::warn(format!(
                    "Altering mapping of already mapped port number: {remapped}"
                )));
            }
        }
    }
    fwd
}

fn pasta_config(opts: &Options, template: Option<&TemplateIface>) -> PastaConfig {
    let target = match (&opts.positional, &opts.netns) {
        (Positional::Pid(pid), _) => NsTarget::Pid(*pid),
        (Positional::Command(args), _) => NsTarget::Spawn(args.clone()),
        (Positional::None, Some(path)) => NsTarget::Netns(path.clone()),
        (Positional::None, None) => NsTarget::Spawn(Vec::new()),
    };
    let netns_only =
        opts.netns_only || (matches!(target, NsTarget::Netns(_)) && opts.userns.is_none());
    let userns = match &target {
        _ if netns_only => None,
        NsTarget::Pid(pid) => Some(
            opts.userns
                .clone()
                .unwrap_or_else(|| PathBuf::from(format!("/proc/{pid}/ns/user"))),
        ),
        NsTarget::Netns(_) => opts.userns.clone(),
        NsTarget::Spawn(_) => None,
    };
    let local = template.is_none();
    PastaConfig {
        target,
        ns_ifname: opts
            .ns_ifname
            .clone()
            .or_else(|| template.map(|t| t.name.clone()))
            .unwrap_or_else(|| LOCAL_TAP_NAME.to_string()),
        userns,
        netns_only,
        netns_quit: !opts.no_netns_quit,
        config_net: opts.config_net,
        copy_routes: !opts.no_copy_routes
            && !local
            && opts.gateway4.is_none()
            && opts.gateway6.is_none(),
        copy_addrs: !opts.no_copy_addrs && !local && opts.addr4.is_none() && opts.addr6.is_none(),
        ns_mac: opts.ns_mac,
        splice: !opts.no_splice,
        host_lo_to_ns_lo: opts.host_lo_to_ns_lo,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conf::args::parse_args;
    use crate::conf::fixture::{addr, dual_stack_host, link, route};
    use crate::conf::{ParseOutcome, PortRange};
    use std::ffi::OsString;

    fn opts(mode: Mode, args: &[&str]) -> Options {
        match parse_args(mode, args.iter().map(OsString::from)) {
            Ok(ParseOutcome::Run(opts)) => opts,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    fn config(mode: Mode, args: &[&str], host: &HostNet) -> Config {
        resolve(opts(mode, args), host).unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    fn error(mode: Mode, args: &[&str], host: &HostNet) -> String {
        resolve(opts(mode, args), host).unwrap_err().to_string()
    }

    fn v4(text: &str) -> Ipv4Addr {
        text.parse().unwrap()
    }

    fn v6(text: &str) -> Ipv6Addr {
        text.parse().unwrap()
    }

    #[test]
    fn default_template_addresses_and_gateways() {
        let c = config(Mode::Passt, &[], &dual_stack_host());
        let ip4 = c.ip4.as_ref().unwrap();
        let eth0 = Some(TemplateIface {
            name: "eth0".into(),
            index: 2,
        });
        assert_eq!(ip4.template, eth0);
        assert_eq!(
            (ip4.addr, ip4.prefix_len, ip4.gateway),
            (v4("192.0.2.10"), 24, Some(v4("192.0.2.1")))
        );
        assert!(!ip4.addr_from_cmdline && !ip4.gateway_from_cmdline);
        let ip6 = c.ip6.as_ref().unwrap();
        assert_eq!(ip6.template, eth0);
        assert_eq!((ip6.addr, ip6.prefix_len), (v6("2001:db8::10"), 64));
        assert_eq!(ip6.gateway, Some(v6("fe80::1")));
        assert_eq!(ip6.host_link_local, Some(v6("fe80::10")));
        assert_eq!(ip6.our_link_local, v6("fe80::1"));
        assert_eq!(c.template, eth0);
        assert!(!c.local_mode());
        assert_eq!(c.mtu, DEFAULT_MTU);
        assert_eq!(c.our_mac, DEFAULT_OUR_MAC);
        assert_eq!(c.nat.map_host_loopback4, Some(v4("192.0.2.1")));
        assert_eq!(c.nat.map_host_loopback6, Some(v6("fe80::1")));
        assert_eq!(c.services, Services::default());
        assert_eq!(c.fwd.tcp_in, PortSpec::None);
        assert_eq!(c.fwd.ephemeral_ports, PortRange::new(32768, 60999));
        assert!(c.print_summary && !c.foreground);
    }

    #[test]
    fn lowest_metric_default_route_picks_the_template() {
        let mut host = dual_stack_host();
        host.links.push(link(3, "wlan0"));
        host.addrs.push(addr(3, "198.51.100.7", 16));
        host.routes
            .push(route("0.0.0.0", 0, Some("198.51.100.1"), 3, 600));
        host.routes
            .push(route("0.0.0.0", 0, Some("198.51.100.254"), 3, 10));
        host.routes[2].metric = 100;
        let c = config(Mode::Passt, &[], &host);
        let ip4 = c.ip4.unwrap();
        assert_eq!(ip4.template.unwrap().name, "wlan0");
        assert_eq!((ip4.addr, ip4.prefix_len), (v4("198.51.100.7"), 16));
        assert_eq!(ip4.gateway, Some(v4("198.51.100.254")));
        assert_eq!(c.ip6.unwrap().template.unwrap().name, "eth0");
    }

    #[test]
    fn multipath_uses_the_nexthop_discovery_chose() {
        // Discovery reports a multipath default route with the
        // highest-weight nexthop's interface and gateway.
        let mut host = dual_stack_host();
        host.links.push(link(3, "eth1"));
        host.addrs.push(addr(3, "203.0.113.5", 24));
        host.routes[2] = route("0.0.0.0", 0, Some("203.0.113.1"), 3, 0);
        let ip4 = config(Mode::Passt, &[], &host).ip4.unwrap();
        assert_eq!(ip4.template.unwrap().name, "eth1");
        assert_eq!(
            (ip4.addr, ip4.gateway),
            (v4("203.0.113.5"), Some(v4("203.0.113.1")))
        );
    }

    #[test]
    fn ipv4_only_host() {
        let mut host = dual_stack_host();
        host.routes.retain(|r| r.dst.is_ipv4());
        host.addrs.retain(|(_, a)| a.addr.is_ipv4());
        let c = config(Mode::Passt, &[], &host);
        assert!(c.ip4.is_some() && c.ip6.is_none());
        assert!(!c.services.ndp && !c.services.dhcpv6 && !c.services.ra && c.services.dhcp);
        assert!(c.dns.servers6.is_empty());
        assert!(
            c.notices
                .contains(&Notice::info("No interfaces with usable IPv6 routes"))
        );
    }

    #[test]
    fn family_switches() {
        let c = config(Mode::Passt, &["-4"], &dual_stack_host());
        assert!(c.ip4.is_some() && c.ip6.is_none());
        let c = config(Mode::Passt, &["-6"], &dual_stack_host());
        assert!(c.ip4.is_none() && c.ip6.is_some());
        assert_eq!(c.template.unwrap().name, "eth0");
        assert!(!c.services.dhcp);
    }

    #[test]
    fn no_address_means_no_family() {
        let mut host = dual_stack_host();
        host.addrs
            .retain(|(_, a)| !a.addr.is_ipv4() || a.addr.is_loopback());
        let c = config(Mode::Passt, &[], &host);
        assert!(c.ip4.is_none() && c.ip6.is_some());
        // Deprecated or link-local addresses are not used either.
        let mut host = dual_stack_host();
        for (_, a) in &mut host.addrs {
            a.deprecated |= a.addr == "2001:db8::10".parse::<IpAddr>().unwrap();
        }
        assert!(config(Mode::Passt, &[], &host).ip6.is_none());
    }

    #[test]
    fn ipv6_needs_a_link_local_address_for_us() {
        let mut host = dual_stack_host();
        host.routes[5].gateway = Some("2001:db8::1".parse().unwrap());
        let ip6 = config(Mode::Passt, &[], &host).ip6.unwrap();
        assert_eq!(ip6.our_link_local, v6("fe80::10"));
        host.addrs
            .retain(|(_, a)| a.addr != "fe80::10".parse::<IpAddr>().unwrap());
        assert!(config(Mode::Passt, &[], &host).ip6.is_none());
    }

    #[test]
    fn only_interface_with_routes_without_default_route() {
        let mut host = dual_stack_host();
        host.routes.retain(|r| r.prefix_len != 0);
        host.routes
            .push(route("10.0.0.0", 8, Some("192.0.2.1"), 2, 0));
        let c = config(Mode::Passt, &[], &host);
        let ip4 = c.ip4.unwrap();
        assert_eq!(ip4.template.unwrap().name, "eth0");
        assert_eq!(ip4.gateway, None);
        assert!(!c.services.dhcp, "no gateway, no DHCP");
        assert_eq!(c.nat.map_host_loopback4, None);
    }

    #[test]
    fn loopback_and_down_interfaces_are_skipped() {
        let mut host = dual_stack_host();
        host.links[1].up = false;
        let c = config(Mode::Passt, &[], &host);
        assert!(c.local_mode());
        assert!(
            c.notices
                .contains(&Notice::info("No interfaces with usable IPv4 routes"))
        );
    }

    #[test]
    fn local_mode() {
        let mut lo = link(1, "lo");
        lo.loopback = true;
        let host = HostNet {
            links: vec![lo],
            routes: vec![route("::1", 128, None, 1, 256)],
            ..HostNet::default()
        };
        let c = config(Mode::Pasta, &[], &host);
        assert!(c.local_mode() && c.template.is_none());
        let ip4 = c.ip4.as_ref().unwrap();
        assert_eq!(
            (ip4.addr, ip4.prefix_len, ip4.gateway),
            (LOCAL_ADDR4, 16, Some(LOCAL_GW4))
        );
        let ip6 = c.ip6.as_ref().unwrap();
        assert_eq!(
            (ip6.addr, ip6.gateway, ip6.our_link_local),
            (Ipv6Addr::UNSPECIFIED, Some(LOCAL_GW6), LOCAL_GW6)
        );
        assert!(c.services.dhcp && c.services.ndp && !c.services.dhcpv6);
        assert_eq!(c.nat.map_host_loopback4, Some(LOCAL_GW4));
        assert_eq!(c.nat.map_host_loopback6, Some(LOCAL_GW6));
        assert_eq!(c.pasta.ns_ifname, "tap0");
        assert!(!c.pasta.copy_addrs && !c.pasta.copy_routes);
        assert!(c.notices.contains(&Notice::info(
            "No external interface as template, switch to local mode"
        )));
        assert_eq!(c.fwd.ephemeral_ports, PortRange::new(49152, 65535));
    }

    #[test]
    fn local_mode_keeps_command_line_values_and_family_switches() {
        let c = config(
            Mode::Passt,
            &["-4", "-a", "10.0.2.15", "-n", "24", "-g", "10.0.2.2"],
            &HostNet::default(),
        );
        assert!(c.local_mode() && c.ip6.is_none());
        let ip4 = c.ip4.unwrap();
        assert_eq!(
            (ip4.addr, ip4.prefix_len, ip4.gateway),
            (v4("10.0.2.15"), 24, Some(v4("10.0.2.2")))
        );
    }

    #[test]
    fn interface_option_overrides_routes() {
        let mut host = dual_stack_host();
        host.links.push(link(3, "eth1"));
        host.addrs.push(addr(3, "203.0.113.5", 24));
        let c = config(Mode::Pasta, &["-i", "eth1"], &host);
        let ip4 = c.ip4.as_ref().unwrap();
        assert_eq!(ip4.template.as_ref().unwrap().name, "eth1");
        assert_eq!((ip4.addr, ip4.gateway), (v4("203.0.113.5"), None));
        assert!(c.ip6.is_none(), "eth1 has no IPv6 address");
        assert_eq!(c.pasta.ns_ifname, "eth1");
        assert_eq!(
            error(Mode::Passt, &["-i", "nosuch0"], &host),
            "Invalid interface name nosuch0: No such device"
        );
        let c = config(Mode::Passt, &["--outbound-if4", "eth1"], &host);
        let ip4 = c.ip4.unwrap();
        assert_eq!(ip4.template.unwrap().name, "eth1");
        assert_eq!(ip4.outbound_if.as_deref(), Some("eth1"));
        assert_eq!(c.ip6.unwrap().template.unwrap().name, "eth0");
    }

    #[test]
    fn address_netmask_and_gateway_overrides() {
        let host = dual_stack_host();
        let c = config(
            Mode::Pasta,
            &["-a", "10.0.2.100", "-n", "255.255.255.0", "-g", "10.0.2.2"],
            &host,
        );
        let ip4 = c.ip4.as_ref().unwrap();
        assert_eq!(
            (ip4.addr, ip4.prefix_len, ip4.gateway),
            (v4("10.0.2.100"), 24, Some(v4("10.0.2.2")))
        );
        assert!(ip4.addr_from_cmdline && ip4.gateway_from_cmdline);
        assert!(!c.pasta.copy_addrs && !c.pasta.copy_routes);
        assert_eq!(c.nat.map_host_loopback4, Some(v4("10.0.2.2")));
        // -a without -n: the matching host prefix, else classful.
        assert_eq!(
            config(Mode::Passt, &["-a", "192.0.2.99"], &host)
                .ip4
                .unwrap()
                .prefix_len,
            24
        );
        assert_eq!(
            config(Mode::Passt, &["-a", "10.1.2.3"], &host)
                .ip4
                .unwrap()
                .prefix_len,
            8
        );
        assert_eq!(
            config(Mode::Passt, &["-a", "172.16.1.1"], &host)
                .ip4
                .unwrap()
                .prefix_len,
            16
        );
        assert_eq!(
            config(Mode::Passt, &["-a", "203.0.113.9"], &host)
                .ip4
                .unwrap()
                .prefix_len,
            24
        );
        assert_eq!(
            config(Mode::Passt, &["-a", "240.0.0.1"], &host)
                .ip4
                .unwrap()
                .prefix_len,
            32
        );
        assert_eq!(
            config(Mode::Passt, &["-n", "16"], &host)
                .ip4
                .unwrap()
                .prefix_len,
            16
        );
        assert_eq!(
            config(Mode::Passt, &["-n", "0"], &host)
                .ip4
                .unwrap()
                .prefix_len,
            24
        );
        let ip6 = config(
            Mode::Passt,
            &["-a", "2001:db8:1::5", "-g", "2001:db8::1"],
            &host,
        )
        .ip6
        .unwrap();
        assert_eq!(
            (ip6.addr, ip6.prefix_len, ip6.gateway),
            (v6("2001:db8:1::5"), 64, Some(v6("2001:db8::1")))
        );
        assert_eq!(ip6.our_link_local, v6("fe80::10"));
        let c = config(Mode::Pasta, &["-a", "2001:db8::99"], &host);
        assert!(!c.pasta.copy_addrs && c.pasta.copy_routes);
    }

    #[test]
    fn dns_from_resolv_conf_with_limits() {
        let mut host = dual_stack_host();
        host.nameservers = [
            "192.0.2.1",
            "192.0.2.2",
            "192.0.2.3",
            "192.0.2.4",
            "2001:db8::1",
            "fe80::53",
        ]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
        host.search = (1..=8).map(|i| format!("d{i}.test")).collect();
        let c = config(Mode::Passt, &[], &host);
        assert_eq!(
            c.dns.servers4,
            vec![v4("192.0.2.1"), v4("192.0.2.2"), v4("192.0.2.3")]
        );
        assert_eq!(c.dns.servers6, vec![v6("2001:db8::1"), v6("fe80::53")]);
        assert_eq!(c.dns.search.len(), 6);
        // 192.0.2.1 is the gateway, which means the host's loopback to
        // the guest: its DNS is redirected back to it.
        assert_eq!(
            (c.dns.redirect4, c.dns.redirect6),
            (redirect(v4("192.0.2.1"), v4("192.0.2.1")), None)
        );
        assert!(c.dns.advertise_servers && c.dns.advertise_search);
        let c = config(Mode::Pasta, &[], &host);
        assert!(!c.dns.advertise_servers && !c.dns.advertise_search);
        assert_eq!(
            c.dns.servers4.len(),
            3,
            "pasta knows them, but does not advertise them"
        );
        let c = config(Mode::Passt, &["--no-dhcp-dns", "--no-dhcp-search"], &host);
        assert!(!c.dns.advertise_servers && !c.dns.advertise_search);
        let c = config(Mode::Pasta, &["--dhcp-dns"], &host);
        assert!(c.dns.advertise_servers && !c.dns.advertise_search);
        let c = config(Mode::Pasta, &["--dhcp-search"], &host);
        assert!(!c.dns.advertise_servers && c.dns.advertise_search);
    }

    fn with_resolvers(resolvers: &[&str]) -> HostNet {
        let mut host = dual_stack_host();
        host.nameservers = resolvers.iter().map(|a| a.parse().unwrap()).collect();
        host
    }

    fn redirect<A>(match_addr: A, host_addr: A) -> Option<DnsRedirect<A>> {
        Some(DnsRedirect {
            match_addr,
            host_addr,
        })
    }

    #[test]
    fn loopback_resolver_is_advertised_as_the_mapped_address_in_its_place() {
        let host = with_resolvers(&["192.0.2.53", "127.0.0.53", "127.0.0.1", "::1"]);
        let c = config(Mode::Passt, &[], &host);
        assert_eq!(
            c.dns.servers4,
            vec![v4("192.0.2.53"), v4("192.0.2.1")],
            "in place of 127.0.0.53, once"
        );
        assert_eq!(c.dns.servers6, vec![v6("fe80::1")]);
        assert_eq!(c.dns.redirect4, redirect(v4("192.0.2.1"), v4("127.0.0.53")));
        assert_eq!(
            c.dns.redirect6,
            redirect(v6("fe80::1"), Ipv6Addr::LOCALHOST)
        );
        assert!(c.notices.is_empty());
        // Its own --map-host-loopback address.
        let c = config(Mode::Passt, &["--map-host-loopback", "192.0.2.99"], &host);
        assert_eq!(c.dns.servers4, vec![v4("192.0.2.53"), v4("192.0.2.99")]);
        assert_eq!(
            c.dns.redirect4,
            redirect(v4("192.0.2.99"), v4("127.0.0.53"))
        );
        // pasta advertises nothing by default, the redirection still holds.
        let c = config(Mode::Pasta, &[], &host);
        assert!(!c.dns.advertise_servers);
        assert_eq!(c.dns.redirect4, redirect(v4("192.0.2.1"), v4("127.0.0.53")));
    }

    #[test]
    fn loopback_resolver_without_mapped_address_is_left_out() {
        let c = config(
            Mode::Passt,
            &["--no-map-gw"],
            &with_resolvers(&["127.0.0.53", "::1"]),
        );
        assert!(c.dns.servers4.is_empty() && c.dns.servers6.is_empty());
        assert_eq!((c.dns.redirect4, c.dns.redirect6), (None, None));
        assert!(
            c.notices
                .contains(&Notice::warn("Couldn't get any nameserver address")),
            "as upstream"
        );
    }

    #[test]
    fn gateway_resolver_is_redirected_to_itself() {
        // The gateway means the host's loopback to the guest: DNS to it
        // must still reach the real gateway.
        let c = config(Mode::Passt, &[], &with_resolvers(&["192.0.2.1"]));
        assert_eq!(c.dns.servers4, vec![v4("192.0.2.1")]);
        assert_eq!(c.dns.redirect4, redirect(v4("192.0.2.1"), v4("192.0.2.1")));
    }

    #[test]
    fn dns_forward_and_dns_host() {
        let host = with_resolvers(&["192.0.2.53", "2001:db8::53"]);
        let args = ["--dns-forward", "169.254.1.1", "--dns-host", "192.0.2.54"];
        let c = config(Mode::Pasta, &args, &host);
        assert_eq!(
            c.dns.redirect4,
            redirect(v4("169.254.1.1"), v4("192.0.2.54"))
        );
        assert_eq!(c.dns.redirect6, None);
        assert_eq!(c.dns.servers4, vec![v4("192.0.2.53")], "not advertised");
        // Default --dns-host: the first resolver of the family.
        let c = config(Mode::Passt, &["--dns-forward", "fd00::53"], &host);
        assert_eq!(
            c.dns.redirect6,
            redirect(v6("fd00::53"), v6("2001:db8::53"))
        );
        // A loopback resolver is advertised as the --dns-forward address,
        // which goes to the first resolver (the loopback one here).
        let host = with_resolvers(&["127.0.0.53", "192.0.2.53"]);
        let c = config(
            Mode::Passt,
            &["--dns-forward", "10.0.2.3", "--no-map-gw"],
            &host,
        );
        assert_eq!(c.dns.servers4, vec![v4("10.0.2.3"), v4("192.0.2.53")]);
        assert_eq!(c.dns.redirect4, redirect(v4("10.0.2.3"), v4("127.0.0.53")));
        // --dns-host alone changes nothing; -D none keeps an explicit
        // --dns-forward but drops the automatic redirection.
        let c = config(
            Mode::Passt,
            &["--dns-host", "192.0.2.54", "--no-map-gw"],
            &host,
        );
        assert_eq!(c.dns.redirect4, None);
        let c = config(
            Mode::Passt,
            &["-D", "none", "--dns-forward", "10.0.2.3"],
            &host,
        );
        assert!(c.dns.servers4.is_empty());
        assert_eq!(c.dns.redirect4, redirect(v4("10.0.2.3"), v4("127.0.0.53")));
        let c = config(Mode::Passt, &["-D", "none"], &host);
        assert_eq!(c.dns.redirect4, None);
        // -D replaces resolv.conf for its family: no automatic redirection.
        let c = config(Mode::Passt, &["-D", "198.51.100.1"], &host);
        assert_eq!(c.dns.servers4, vec![v4("198.51.100.1")]);
        assert_eq!(c.dns.redirect4, None);
        // A disabled family has none.
        let c = config(Mode::Passt, &["-6", "--dns-forward", "10.0.2.3"], &host);
        assert_eq!(c.dns.redirect4, None);
        assert!(!c.notices.iter().any(|n| n.text.contains("10.0.2.3")));
    }

    #[test]
    fn dns_forward_with_no_nameserver_warns() {
        let host = with_resolvers(&["2001:db8::53"]);
        let c = config(Mode::Passt, &["--dns-forward", "10.0.2.3"], &host);
        assert_eq!(c.dns.redirect4, None);
        assert!(c.notices.contains(&Notice::warn(
            "No host nameserver to forward DNS queries to 10.0.2.3 to, use --dns-host"
        )));
    }

    #[test]
    fn host_lo_to_ns_lo_reaches_the_pasta_config() {
        let host = dual_stack_host();
        assert!(
            config(Mode::Pasta, &["--host-lo-to-ns-lo"], &host)
                .pasta
                .host_lo_to_ns_lo
        );
        assert!(!config(Mode::Pasta, &[], &host).pasta.host_lo_to_ns_lo);
    }

    #[test]
    fn port_options_get_each_modes_defaults() {
        let host = dual_stack_host();
        let c = config(Mode::Passt, &[], &host);
        let f = &c.fwd;
        assert_eq!(
            [&f.tcp_in, &f.udp_in, &f.tcp_out, &f.udp_out],
            [&PortSpec::None; 4]
        );
        let c = config(Mode::Pasta, &["-u", "53", "-T", "none"], &host);
        let f = &c.fwd;
        assert_eq!(
            (&f.tcp_in, &f.tcp_out, &f.udp_out),
            (&PortSpec::Auto, &PortSpec::None, &PortSpec::Auto)
        );
        let PortSpec::Rules(rules) = &f.udp_in else {
            panic!("{:?}", f.udp_in)
        };
        assert_eq!(rules.port_map(f.ephemeral_ports).target(53), Some(53));
        let c = config(Mode::Passt, &["-u", "all", "-t", "all"], &host);
        assert_eq!(
            (&c.fwd.tcp_in, &c.fwd.udp_in),
            (&PortSpec::All, &PortSpec::All)
        );
    }

    #[test]
    fn disabled_protocol_forwards_nothing_by_default() {
        let host = dual_stack_host();
        let c = config(Mode::Pasta, &["--no-udp"], &host);
        let f = &c.fwd;
        assert_eq!(
            [&f.tcp_in, &f.udp_in, &f.tcp_out, &f.udp_out],
            [
                &PortSpec::Auto,
                &PortSpec::None,
                &PortSpec::Auto,
                &PortSpec::None
            ]
        );
        let c = config(Mode::Pasta, &["--no-tcp", "-t", "none", "-u", "53"], &host);
        assert_eq!(
            (&c.fwd.tcp_in, &c.fwd.tcp_out),
            (&PortSpec::None, &PortSpec::None)
        );
    }

    #[test]
    fn dns_options() {
        let host = dual_stack_host();
        let c = config(
            Mode::Passt,
            &["-D", "198.51.100.1", "-S", "a.test b.test"],
            &host,
        );
        assert_eq!(c.dns.servers4, vec![v4("198.51.100.1")]);
        assert_eq!(
            c.dns.servers6,
            vec![v6("2001:db8::53")],
            "-D replaces one family"
        );
        assert_eq!(c.dns.search, vec!["a.test", "b.test"]);
        assert_eq!(c.dns.redirect4, None);
        let c = config(Mode::Passt, &["-D", "127.0.0.1"], &host);
        assert_eq!(c.dns.servers4, vec![Ipv4Addr::LOCALHOST], "-D is verbatim");
        let c = config(Mode::Passt, &["-D", "none", "-S", "none"], &host);
        assert!(c.dns.servers4.is_empty() && c.dns.servers6.is_empty() && c.dns.search.is_empty());
        assert!(c.notices.is_empty(), "no DNS asked for, no warning");
        let mut v4_resolvers_only = dual_stack_host();
        v4_resolvers_only.nameservers.retain(IpAddr::is_ipv4);
        let c = config(Mode::Passt, &["-6"], &v4_resolvers_only);
        let warning = Notice::warn("Couldn't get any nameserver address");
        assert!(c.notices.contains(&warning));
        let c = config(Mode::Passt, &["-6", "-D", "198.51.100.1"], &host);
        assert!(c.dns.servers4.is_empty());
    }

    #[test]
    fn map_options_replace_the_gateway_default() {
        let host = dual_stack_host();
        let c = config(Mode::Pasta, &["--map-host-loopback", "192.0.2.88"], &host);
        assert_eq!(c.nat.map_host_loopback4, Some(v4("192.0.2.88")));
        assert_eq!(
            c.nat.map_host_loopback6,
            Some(v6("fe80::1")),
            "v6 keeps the default"
        );
        let c = config(Mode::Pasta, &["--map-host-loopback", "none"], &host);
        assert_eq!(
            (c.nat.map_host_loopback4, c.nat.map_host_loopback6),
            (None, None)
        );
        let args = [
            "--map-guest-addr",
            "192.0.2.77",
            "--map-guest-addr",
            "2001:db8::77",
        ];
        let c = config(Mode::Passt, &args, &host);
        assert_eq!(c.nat.map_guest_addr4, Some(v4("192.0.2.77")));
        assert_eq!(c.nat.map_guest_addr6, Some(v6("2001:db8::77")));
        let args = ["--map-guest-addr", "192.0.2.77", "--map-guest-addr", "none"];
        assert_eq!(config(Mode::Passt, &args, &host).nat.map_guest_addr4, None);
        let c = config(
            Mode::Passt,
            &["-6", "--map-guest-addr", "192.0.2.77"],
            &host,
        );
        assert_eq!(c.nat.map_guest_addr4, None, "IPv4 is off");
    }

    #[test]
    fn no_map_gw_and_service_switches() {
        let host = dual_stack_host();
        let c = config(
            Mode::Passt,
            &["--no-map-gw", "--no-dhcp", "--no-ndp"],
            &host,
        );
        assert_eq!(c.nat, NatConfig::default());
        assert!(!c.services.dhcp && !c.services.ndp && c.services.dhcpv6);
        let c = config(Mode::Pasta, &["--config-net"], &host);
        assert!(!c.services.ra, "--config-net implies --no-ra");
    }

    #[test]
    fn pasta_targets() {
        let host = dual_stack_host();
        let c = config(Mode::Pasta, &[], &host);
        assert_eq!(c.pasta.target, NsTarget::Spawn(Vec::new()));
        assert!(c.foreground && !c.print_summary && c.pasta.userns.is_none());
        assert_eq!(c.pasta.ns_ifname, "eth0");
        assert!(c.pasta.copy_addrs && c.pasta.copy_routes && c.pasta.netns_quit && c.pasta.splice);
        assert_eq!(c.fwd.tcp_in, PortSpec::Auto);
        assert_eq!(c.fwd.udp_out, PortSpec::Auto);
        let c = config(Mode::Pasta, &["-d", "sh", "-c", "true"], &host);
        assert_eq!(
            c.pasta.target,
            NsTarget::Spawn(vec!["sh".into(), "-c".into(), "true".into()])
        );
        assert!(c.print_summary && c.foreground);
        let c = config(Mode::Pasta, &["1234"], &host);
        assert_eq!(c.pasta.target, NsTarget::Pid(1234));
        assert_eq!(c.pasta.userns, Some(PathBuf::from("/proc/1234/ns/user")));
        assert!(!c.pasta.netns_only && !c.foreground && c.print_summary);
        let c = config(Mode::Pasta, &["--netns-only", "1234"], &host);
        assert!(c.pasta.netns_only && c.pasta.userns.is_none());
        let c = config(Mode::Pasta, &["--userns", "/u", "1234"], &host);
        assert_eq!(c.pasta.userns, Some(PathBuf::from("/u")));
        let c = config(Mode::Pasta, &["--netns", "ctr"], &host);
        assert_eq!(
            c.pasta.target,
            NsTarget::Netns(PathBuf::from("/run/netns/ctr"))
        );
        assert!(c.pasta.netns_only && c.pasta.userns.is_none());
        let c = config(
            Mode::Pasta,
            &["--netns", "/n", "--userns", "/u", "--no-netns-quit"],
            &host,
        );
        assert!(!c.pasta.netns_only && !c.pasta.netns_quit);
        assert_eq!(c.pasta.userns, Some(PathBuf::from("/u")));
        let c = config(
            Mode::Pasta,
            &[
                "-q",
                "-I",
                "tap9",
                "--ns-mac-addr",
                "02:00:00:00:00:09",
                "1",
            ],
            &host,
        );
        assert!(!c.print_summary);
        assert_eq!(
            (c.pasta.ns_ifname.as_str(), c.pasta.ns_mac),
            ("tap9", Some([2, 0, 0, 0, 0, 9]))
        );
    }

    #[test]
    fn process_and_log_settings() {
        let c = config(
            Mode::Pasta,
            &[
                "--trace",
                "-l",
                "/tmp/l",
                "--log-size",
                "65536",
                "-P",
                "/tmp/p",
                "-p",
                "/tmp/c",
                "-m",
                "1500",
            ],
            &dual_stack_host(),
        );
        assert!(c.log.debug && c.log.trace && !c.log.quiet);
        assert_eq!(
            (c.log.file.as_deref(), c.log.file_size),
            (Some(std::path::Path::new("/tmp/l")), 65536)
        );
        assert_eq!(c.pid_file, Some(PathBuf::from("/tmp/p")));
        assert_eq!(c.pcap, Some(PathBuf::from("/tmp/c")));
        assert_eq!((c.mtu, c.fd), (1500, None));
        assert_eq!(
            config(Mode::Passt, &[], &dual_stack_host()).log.file_size,
            DEFAULT_LOG_SIZE
        );
    }

    #[test]
    fn runas_is_resolved() {
        let accounts = Accounts::Text {
            passwd: "nobody:x:65534:65534::/:/bin/false\n".into(),
            group: "nogroup:x:65534:\n".into(),
        };
        let host = dual_stack_host();
        let resolved = |args: &[&str]| resolve_with(opts(Mode::Passt, args), &host, &accounts);
        let runas = resolved(&["--runas", "nobody"]).unwrap().runas.unwrap();
        assert_eq!((runas.uid, runas.gid), (65534, 65534));
        let runas = resolved(&["--runas", "1000:nogroup"])
            .unwrap()
            .runas
            .unwrap();
        assert_eq!((runas.uid, runas.gid), (1000, 65534));
        assert_eq!(resolved(&[]).unwrap().runas, None);
        assert_eq!(
            resolved(&["--runas", "ghost"]).unwrap_err().to_string(),
            "Invalid --runas option: ghost"
        );
    }

    #[test]
    fn notices_keep_parse_warnings_and_remapped_ports() {
        let c = config(Mode::Pasta, &["-e", "--config-net"], &dual_stack_host());
        assert_eq!(c.notices[0], Notice::warn("--stderr will be dropped soon"));
        let mut o = opts(Mode::Passt, &[]);
        o.tcp_ports = Some(
            ["20-25", "22:30"]
                .iter()
                .try_fold(None, |spec, text| {
                    PortSpec::parse_more(
                        spec,
                        text,
                        crate::conf::ports::PortOption::Tcp,
                        Mode::Passt,
                        true,
                    )
                    .map(Some)
                })
                .unwrap()
                .unwrap(),
        );
        let c = resolve(o, &dual_stack_host()).unwrap();
        assert!(c.notices.contains(&Notice::warn(
            "Altering mapping of already mapped port number: 22:30"
        )));
    }

    #[test]
    fn tcp_ports_and_freebind_reach_the_config() {
        let host = dual_stack_host();
        let c = config(Mode::Passt, &["-t", "8080:80", "--freebind"], &host);
        assert!(c.fwd.freebind);
        let PortSpec::Rules(rules) = &c.fwd.tcp_in else {
            panic!("{:?}", c.fwd.tcp_in)
        };
        assert_eq!(rules.port_map(c.fwd.ephemeral_ports).target(8080), Some(80));
        assert!(!config(Mode::Passt, &[], &host).fwd.freebind);
    }
}
