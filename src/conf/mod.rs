//! Configuration: the command line, port-forward specs, host discovery and the
//! resolved [`Config`] every other module reads.
//!
//! Flow: [`args`] turns argv into typed [`Options`] (pure, no I/O, getopt_long
//! semantics) driven by the option [`table`], with [`values`] and [`ports`]
//! parsing single values and port-forward specs; [`host`] describes what was
//! discovered on the host (links, addresses, routes, [`resolv`]: resolv.conf
//! and the ephemeral ports); [`resolve`](mod@resolve) combines both into a [`Config`]
//! (defaults as upstream, local mode when no interface is usable; [`accounts`]
//! resolves `--runas`). [`summary`] prints it, [`usage`](mod@usage) holds `--help` and
//! `--version`, [`error`] the one-line errors.
//!
//! For the caller: print a [`ConfError`] as it is (its text is upstream's
//! line), followed by [`usage()`] on stderr when
//! [`ConfError::wants_usage`]; exit 1. Log [`Config::notices`] once logging
//! is set up; print the summary when [`Config::print_summary`].
//!
//! Invariants: a `Config` is complete and consistent (a family is either
//! disabled, `None`, or has a configuration; only local-mode IPv6 has no
//! address, `::`); nothing later re-reads argv; nothing here logs.
//! May call: `crate::netlink` (discovery only, via `host`), std I/O for
//! `/etc/resolv.conf`, `/proc/sys`, `/etc/passwd` and `/etc/group`.

pub mod accounts;
pub mod args;
pub mod error;
#[cfg(any(test, fuzzing))]
pub mod fixture;
pub mod host;
pub mod ports;
pub mod resolv;
pub mod resolve;
pub mod summary;
pub mod table;
pub mod usage;
pub mod values;

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

pub use args::{Options, ParseOutcome, parse_args};
pub use error::ConfError;
pub use ports::{PortMap, PortRange, PortRule, PortRules, PortSpec};
pub use resolve::resolve;
pub use table::{OptionSpec, Status, option_table};
pub use usage::usage;

/// Which program we are: decided from argv\[0\] (see [`Mode::from_argv0`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Guest on a UNIX stream socket (qemu `-netdev stream`).
    Passt,
    /// Tap device inside a network namespace.
    Pasta,
}

impl Mode {
    /// Upstream rule: a basename containing "pasta" selects pasta, one
    /// containing "passt" selects passt; otherwise the binary's own default.
    pub fn from_argv0(argv0: &std::ffi::OsStr, default: Mode) -> Mode {
        let base = std::path::Path::new(argv0)
            .file_name()
            .map(|b| b.to_string_lossy().into_owned())
            .unwrap_or_default();
        if base.contains("pasta") {
            Mode::Pasta
        } else if base.contains("passt") {
            Mode::Passt
        } else {
            default
        }
    }

    /// The program name used in messages, `--version` and the log header.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Passt => "passt",
            Mode::Pasta => "pasta",
        }
    }
}

/// Upstream's default MTU: 65535 minus the Ethernet header, rounded down to 4.
pub const DEFAULT_MTU: u32 = 65520;
/// Upstream's default MAC address of our end of the link.
pub const DEFAULT_OUR_MAC: [u8; 6] = [0x9a, 0x55, 0x9a, 0x55, 0x9a, 0x55];
/// Default `--log-size`.
pub const DEFAULT_LOG_SIZE: u64 = 1024 * 1024;

/// The resolved configuration of one run.
#[derive(Clone, Debug)]
pub struct Config {
    pub mode: Mode,
    pub log: LogConfig,
    /// `-f`: stay in the foreground (implied when pasta spawns a command).
    pub foreground: bool,
    /// `-P/--pid`.
    pub pid_file: Option<PathBuf>,
    /// `-p/--pcap`.
    pub pcap: Option<PathBuf>,
    /// `--runas`, resolved to numeric ids.
    pub runas: Option<RunAs>,
    /// `-m`; 0 means "don't advertise".
    pub mtu: u32,
    /// `-M`: our MAC address on the guest link.
    pub our_mac: [u8; 6],
    /// The template interface of IPv4, else of IPv6 (each family has its
    /// own: [`Ip4Config::template`], [`Ip6Config::template`]); `None` in
    /// local mode.
    pub template: Option<TemplateIface>,
    /// IPv4 settings, `None` when IPv4 is disabled.
    pub ip4: Option<Ip4Config>,
    /// IPv6 settings, `None` when IPv6 is disabled.
    pub ip6: Option<Ip6Config>,
    pub dns: DnsConfig,
    pub services: Services,
    pub nat: NatConfig,
    pub fwd: Forwards,
    pub passt: PasstConfig,
    pub pasta: PastaConfig,
    /// `-F/--fd`: an inherited tap (pasta) or connected socket (passt).
    pub fd: Option<i32>,
    /// Print the configuration summary ([`summary::print_summary`]): not
    /// with `-q`, nor when pasta spawns a command without `-d` (upstream
    /// hides it then, without changing the log level).
    pub print_summary: bool,
    /// Messages for the log, in order, from parsing and resolving (the
    /// configuration code does no logging itself).
    pub notices: Vec<Notice>,
}

impl Config {
    /// No host interface was usable: link-local addresses, nothing copied.
    pub fn local_mode(&self) -> bool {
        self.template.is_none()
    }
}

/// A message for the log, produced while configuring.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    pub level: log::Level,
    pub text: String,
}

impl Notice {
    pub fn info(text: impl Into<String>) -> Notice {
        Notice {
            level: log::Level::Info,
            text: text.into(),
        }
    }

    pub fn warn(text: impl Into<String>) -> Notice {
        Notice {
            level: log::Level::Warn,
            text: text.into(),
        }
    }

    /// Sends it to the `log` facade.
    pub fn log(&self) {
        log::log!(self.level, "{}", self.text);
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogConfig {
    pub debug: bool,
    pub trace: bool,
    pub quiet: bool,
    /// `-l/--log-file`.
    pub file: Option<PathBuf>,
    /// `--log-size`, bytes.
    pub file_size: u64,
}

/// `--runas`, resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunAs {
    pub uid: u32,
    pub gid: u32,
}

/// The host interface whose addresses and routes the guest copies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateIface {
    pub name: String,
    pub index: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ip4Config {
    /// The host interface IPv4 settings come from; `None` in local mode.
    pub template: Option<TemplateIface>,
    /// Address assigned to the guest (`-a`, or the template's).
    pub addr: Ipv4Addr,
    /// Prefix length (`-n`, or the template's, or classful).
    pub prefix_len: u8,
    /// Default gateway (`-g`, or the host's); `None` if there is none.
    pub gateway: Option<Ipv4Addr>,
    /// `-o`: source address for outbound sockets.
    pub outbound: Option<Ipv4Addr>,
    /// `--outbound-if4`.
    pub outbound_if: Option<String>,
    /// `-a` was given (pasta: don't copy the template's addresses).
    pub addr_from_cmdline: bool,
    /// `-g` was given (pasta: don't copy the template's routes).
    pub gateway_from_cmdline: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ip6Config {
    /// The host interface IPv6 settings come from; `None` in local mode.
    pub template: Option<TemplateIface>,
    /// Address assigned to the guest (`-a`, or the template's global one);
    /// unspecified (`::`) in local mode without `-a`: then the guest only
    /// gets NDP (no DHCPv6).
    pub addr: Ipv6Addr,
    /// The template address's prefix length (64 with `-a` or in local mode).
    pub prefix_len: u8,
    /// Default gateway; link-local gateways are scoped to the template.
    pub gateway: Option<Ipv6Addr>,
    /// The host's link-local address on the template interface, if any.
    pub host_link_local: Option<Ipv6Addr>,
    /// Our link-local address on the guest link (source of RAs and
    /// DHCPv6): the gateway if it is link-local, else the host's
    /// link-local address, else `fe80::1`.
    pub our_link_local: Ipv6Addr,
    pub outbound: Option<Ipv6Addr>,
    pub outbound_if: Option<String>,
    pub addr_from_cmdline: bool,
    pub gateway_from_cmdline: bool,
}

/// Nameservers and search list for the guest, and where its DNS traffic
/// goes (REFERENCE.md §1.3).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DnsConfig {
    /// Nameservers to advertise (at most 3 per family): `-D` verbatim, else
    /// resolv.conf's, where a loopback one (or one equal to the
    /// `--map-host-loopback` address) is replaced by the address the guest
    /// reaches it at ([`DnsRedirect::match_addr`]).
    pub servers4: Vec<Ipv4Addr>,
    pub servers6: Vec<Ipv6Addr>,
    /// Search domains (at most 6).
    pub search: Vec<String>,
    /// Advertise the nameservers (passt default on, pasta `--dhcp-dns`).
    pub advertise_servers: bool,
    /// Advertise the search list.
    pub advertise_search: bool,
    /// DNS redirection per family (`--dns-forward`, or a loopback
    /// resolver reached through the `--map-host-loopback` address); applies
    /// whether or not the servers are advertised.
    pub redirect4: Option<DnsRedirect<Ipv4Addr>>,
    pub redirect6: Option<DnsRedirect<Ipv6Addr>>,
}

/// TCP and UDP to `match_addr` on port 53 or 853 go to `host_addr` instead
/// (upstream's `dns_match` and `dns_host`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DnsRedirect<A> {
    /// The address the guest sends its queries to.
    pub match_addr: A,
    /// The host's nameserver they go to.
    pub host_addr: A,
}

/// Protocol handlers and local services; all on unless switched off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Services {
    pub tcp: bool,
    pub udp: bool,
    pub icmp: bool,
    pub dhcp: bool,
    pub ndp: bool,
    pub dhcpv6: bool,
    pub ra: bool,
}

impl Default for Services {
    fn default() -> Self {
        Services {
            tcp: true,
            udp: true,
            icmp: true,
            dhcp: true,
            ndp: true,
            dhcpv6: true,
            ra: true,
        }
    }
}

/// Address translation (REFERENCE.md §1.5, §2.4).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NatConfig {
    /// `--map-host-loopback` (default: the gateway unless `--no-map-gw`).
    pub map_host_loopback4: Option<Ipv4Addr>,
    pub map_host_loopback6: Option<Ipv6Addr>,
    /// `--map-guest-addr`.
    pub map_guest_addr4: Option<Ipv4Addr>,
    pub map_guest_addr6: Option<Ipv6Addr>,
}

/// Port forwarding rules per direction and protocol.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Forwards {
    /// `-t`: host -> guest TCP.
    pub tcp_in: PortSpec,
    /// `-u`: host -> guest UDP.
    pub udp_in: PortSpec,
    /// `-T`: namespace -> host TCP (pasta).
    pub tcp_out: PortSpec,
    /// `-U`: namespace -> host UDP (pasta).
    pub udp_out: PortSpec,
    /// The host's ephemeral ports, which `all` and exclusion-only specs
    /// leave alone ([`PortRules::port_map`]).
    pub ephemeral_ports: PortRange,
    /// `--freebind`: `-t/-u` listeners may bind addresses the host does
    /// not have (yet).
    pub freebind: bool,
}

/// passt-only transport settings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PasstConfig {
    /// `-s/--socket`.
    pub socket_path: Option<PathBuf>,
    /// `-1/--one-off` (implied by `--fd`).
    pub one_off: bool,
    /// `--vhost-user`.
    pub vhost_user: bool,
}

/// What pasta attaches to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NsTarget {
    /// Spawn `CMD ARGS` (empty: the user's login shell) in new namespaces.
    Spawn(Vec<std::ffi::OsString>),
    /// Join the namespaces of a running process.
    Pid(u32),
    /// Join a network namespace by path (`--netns`; a bare NAME is
    /// `/run/netns/NAME`).
    Netns(PathBuf),
}

/// pasta-only settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PastaConfig {
    pub target: NsTarget,
    /// `-I`: tap name (default: the template's name, `tap0` in local mode).
    pub ns_ifname: String,
    /// `--userns`.
    pub userns: Option<PathBuf>,
    /// `--netns-only` (implied by `--netns` or PID without `--userns`).
    pub netns_only: bool,
    /// `--no-netns-quit` inverted.
    pub netns_quit: bool,
    /// `--config-net`.
    pub config_net: bool,
    /// `--config-net` copies the template's routes / addresses. Off with
    /// the deprecated `--no-copy-*`, in local mode, and with `-g` / `-a`
    /// for any family. (Upstream decides per family: `ip4/ip6`
    /// `gateway_from_cmdline` / `addr_from_cmdline` say which family the
    /// option was given for.)
    pub copy_routes: bool,
    pub copy_addrs: bool,
    /// `--ns-mac-addr`.
    pub ns_mac: Option<[u8; 6]>,
    /// `--no-splice` inverted.
    pub splice: bool,
    /// `--host-lo-to-ns-lo`.
    pub host_lo_to_ns_lo: bool,
}
