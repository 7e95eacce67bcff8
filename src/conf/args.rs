//! The command line to typed [`Options`]: `getopt_long` semantics, pure (no
//! I/O), driven by [`super::table`].
//!
//! Syntax, as glibc's getopt with upstream's optstring (leading `+`):
//! short clusters (`-fq`, `-dft80`), values attached or separate (`-t80`,
//! `-t 80`, `--mtu=1500`, `--mtu 1500`; a value may start with `-`),
//! unambiguous long prefixes (`--conf`; an exact name wins), parsing stops
//! at the first non-option or after `--`. What follows is pasta's `PID` or
//! `CMD ARGS` (passt takes none). `lexopt` splits the arguments; this
//! module does the rest (prefixes, the table, values).
//!
//! Semantics: the last of a repeated option wins, except the ones upstream
//! accumulates (`-D`, `-S`, the port specs; `-a`, `-g`, `-o`,
//! `--dns-forward`, `--dns-host` keep one value per family, and a second
//! `--dns-forward`/`--dns-host` of a family warns). `-h`/`--version`
//! answer at once, like upstream, and so does an option of the other
//! program. Port specs are parsed after the walk, once
//! `--no-tcp`/`--no-udp` are known (upstream's second pass). Options not
//! implemented yet ([`super::table::Status`]) are refused last, after
//! every value has been validated, so that a malformed value is reported
//! whatever comes before it. Deprecation warnings travel in
//! [`Options::notices`].
//!
//! Neighbours: [`super::values`] parses single values, [`super::ports`] the
//! port specs; [`super::resolve()`] turns [`Options`] into the `Config`.

use std::ffi::OsString;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use lexopt::Arg;

use super::error::ConfError;
use super::ports::{PortOption, PortSpec};
use super::table::{self, LongMatch, Opt, OptionSpec};
use super::values::{self, DnsList};
use super::{Mode, Notice, Services, usage};

/// What the command line asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(clippy::large_enum_variant, reason = "made once per run")]
pub enum ParseOutcome {
    Run(Options),
    /// `-h/--help`: print this on stdout, exit 0.
    Help(String),
    /// `--version`: print this on stdout, exit 0.
    Version(String),
}

/// `-D`: where nameservers come from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum DnsChoice {
    /// resolv.conf.
    #[default]
    FromHost,
    /// `-D none`.
    Disabled,
    Given(DnsList),
}

/// `-S`: where search domains come from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum SearchChoice {
    /// resolv.conf.
    #[default]
    FromHost,
    /// `-S none`.
    Disabled,
    Given(Vec<String>),
}

/// pasta's positional arguments.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Positional {
    #[default]
    None,
    /// A single argument of digits.
    Pid(u32),
    Command(Vec<OsString>),
}

/// Validated option values, before any host discovery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    pub mode: Mode,
    pub debug: bool,
    pub trace: bool,
    pub quiet: bool,
    pub foreground: bool,
    pub log_file: Option<PathBuf>,
    pub log_size: Option<u64>,
    /// `--runas`, as given (names are looked up when resolving).
    pub runas: Option<String>,
    pub pcap: Option<PathBuf>,
    pub pid_file: Option<PathBuf>,
    pub mtu: Option<u32>,
    pub addr4: Option<Ipv4Addr>,
    pub addr6: Option<Ipv6Addr>,
    /// `-n`, as a prefix length.
    pub prefix_len4: Option<u8>,
    pub our_mac: Option<[u8; 6]>,
    pub gateway4: Option<Ipv4Addr>,
    pub gateway6: Option<Ipv6Addr>,
    /// `-i`.
    pub interface: Option<String>,
    pub outbound4: Option<Ipv4Addr>,
    pub outbound6: Option<Ipv6Addr>,
    pub outbound_if4: Option<String>,
    pub outbound_if6: Option<String>,
    pub ipv4_only: bool,
    pub ipv6_only: bool,
    pub dns: DnsChoice,
    pub search: SearchChoice,
    /// `--no-tcp` ... `--no-ra` switch these off.
    pub services: Services,
    pub no_dhcp_dns: bool,
    pub no_dhcp_search: bool,
    /// pasta: `--dhcp-dns`, `--dhcp-search`.
    pub dhcp_dns: bool,
    pub dhcp_search: bool,
    pub no_map_gw: bool,
    /// `--map-host-loopback`, one per family; `none` sets `no_map_gw`.
    pub map_host_loopback4: Option<Ipv4Addr>,
    pub map_host_loopback6: Option<Ipv6Addr>,
    /// `--map-guest-addr`, one per family (`none` clears them).
    pub map_guest_addr4: Option<Ipv4Addr>,
    pub map_guest_addr6: Option<Ipv6Addr>,
    /// `--dns-forward`, one per family: DNS to it is redirected.
    pub dns_forward4: Option<Ipv4Addr>,
    pub dns_forward6: Option<Ipv6Addr>,
    /// `--dns-host`, one per family: where redirected DNS goes.
    pub dns_host4: Option<Ipv4Addr>,
    pub dns_host6: Option<Ipv6Addr>,
    pub no_splice: bool,
    /// `--freebind`.
    pub freebind: bool,
    /// `-t`, `-u`, `-T`, `-U`; `None` if not given.
    pub tcp_ports: Option<PortSpec>,
    pub udp_ports: Option<PortSpec>,
    pub tcp_ns: Option<PortSpec>,
    pub udp_ns: Option<PortSpec>,
    pub fd: Option<i32>,
    /// passt: `-s/--socket`.
    pub socket_path: Option<PathBuf>,
    /// passt: `-1/--one-off`.
    pub one_off: bool,
    pub ns_ifname: Option<String>,
    pub userns: Option<PathBuf>,
    /// `--netns`, a bare NAME already turned into `/run/netns/NAME`.
    pub netns: Option<PathBuf>,
    pub netns_only: bool,
    pub no_netns_quit: bool,
    pub config_net: bool,
    pub no_copy_routes: bool,
    pub no_copy_addrs: bool,
    pub ns_mac: Option<[u8; 6]>,
    /// pasta: `--host-lo-to-ns-lo`.
    pub host_lo_to_ns_lo: bool,
    pub positional: Positional,
    /// Warnings for the log (deprecated options).
    pub notices: Vec<Notice>,
}

impl Options {
    /// Nothing given: the defaults of `mode`.
    pub fn new(mode: Mode) -> Options {
        Options {
            mode,
            debug: false,
            trace: false,
            quiet: false,
            foreground: false,
            log_file: None,
            log_size: None,
            runas: None,
            pcap: None,
            pid_file: None,
            mtu: None,
            addr4: None,
            addr6: None,
            prefix_len4: None,
            our_mac: None,
            gateway4: None,
            gateway6: None,
            interface: None,
            outbound4: None,
            outbound6: None,
            outbound_if4: None,
            outbound_if6: None,
            ipv4_only: false,
            ipv6_only: false,
            dns: DnsChoice::FromHost,
            search: SearchChoice::FromHost,
            services: Services::default(),
            no_dhcp_dns: false,
            no_dhcp_search: false,
            dhcp_dns: false,
            dhcp_search: false,
            no_map_gw: false,
            map_host_loopback4: None,
            map_host_loopback6: None,
            map_guest_addr4: None,
            map_guest_addr6: None,
            dns_forward4: None,
            dns_forward6: None,
            dns_host4: None,
            dns_host6: None,
            no_splice: false,
            freebind: false,
            tcp_ports: None,
            udp_ports: None,
            tcp_ns: None,
            udp_ns: None,
            fd: None,
            socket_path: None,
            one_off: false,
            ns_ifname: None,
            userns: None,
            netns: None,
            netns_only: false,
            no_netns_quit: false,
            config_net: false,
            no_copy_routes: false,
            no_copy_addrs: false,
            ns_mac: None,
            host_lo_to_ns_lo: false,
            positional: Positional::None,
            notices: Vec::new(),
        }
    }
}

/// Parses the arguments (without argv\[0\]) of `mode`.
pub fn parse_args(
    mode: Mode,
    args: impl IntoIterator<Item = OsString>,
) -> Result<ParseOutcome, ConfError> {
    let mut parser = lexopt::Parser::from_args(args);
    parser.set_short_equals(false);
    let mut walk = Walk {
        opts: Options::new(mode),
        port_args: Vec::new(),
        unsupported: None,
    };
    loop {
        match next_step(&mut parser, mode.name())? {
            Step::Option(spec, value) => {
                if let Some(answer) = walk.apply(spec, value)? {
                    return Ok(answer);
                }
            }
            Step::Positional(args) => return walk.finish(args).map(ParseOutcome::Run),
        }
    }
}

/// One step of the walk.
enum Step {
    /// An option and its value, if it takes one.
    Option(&'static OptionSpec, Option<OsString>),
    /// The first non-option and everything after it (maybe nothing).
    Positional(Vec<OsString>),
}

fn next_step(parser: &mut lexopt::Parser, prog: &'static str) -> Result<Step, ConfError> {
    let lexed = |e: lexopt::Error| ConfError::unusable(e.to_string());
    match parser.next().map_err(lexed)? {
        None => Ok(Step::Positional(Vec::new())),
        Some(Arg::Short(letter)) => {
            let spec = table::find_short(letter).ok_or(ConfError::InvalidShort { prog, letter })?;
            let missing = || ConfError::MissingShortValue { prog, letter };
            let value = match spec.takes_value {
                true => Some(parser.value().map_err(|_| missing())?),
                false => None,
            };
            Ok(Step::Option(spec, value))
        }
        Some(Arg::Long(name)) => {
            let typed = format!("--{name}");
            let spec = find_long(prog, &typed)?;
            let long = spec.long;
            let value = match spec.takes_value {
                true => Some(
                    parser
                        .value()
                        .map_err(|_| ConfError::MissingLongValue { prog, long })?,
                ),
                false if parser.optional_value().is_some() => {
                    return Err(ConfError::UnexpectedValue { prog, long });
                }
                false => None,
            };
            Ok(Step::Option(spec, value))
        }
        Some(Arg::Value(first)) => {
            let mut args = vec![first];
            args.extend(parser.raw_args().map_err(lexed)?);
            Ok(Step::Positional(args))
        }
    }
}

fn find_long(prog: &'static str, typed: &str) -> Result<&'static OptionSpec, ConfError> {
    match table::find_long(&typed[2..]) {
        LongMatch::Found(spec) => Ok(spec),
        LongMatch::Unknown => Err(ConfError::UnrecognizedOption {
            prog,
            option: typed.to_string(),
        }),
        LongMatch::Ambiguous(names) => Err(ConfError::Ambiguous {
            prog,
            option: typed.to_string(),
            candidates: names.iter().map(|n| format!(" '--{n}'")).collect(),
        }),
    }
}

/// The state of the walk over the options.
struct Walk {
    opts: Options,
    /// Port specs in command-line order, parsed by [`Walk::finish`].
    port_args: Vec<(PortOption, String)>,
    /// The first option met that is not supported yet.
    unsupported: Option<&'static OptionSpec>,
}

impl Walk {
    /// Applies one option; `Some` for `-h`/`--version`.
    fn apply(
        &mut self,
        spec: &'static OptionSpec,
        value: Option<OsString>,
    ) -> Result<Option<ParseOutcome>, ConfError> {
        let mode = self.opts.mode;
        if !spec.modes.includes(mode) {
            return Err(spec.wrong_mode());
        }
        if !spec.supported_in(mode) {
            // Refused in `finish`; the value is still checked below where
            // a parser exists (`-F` in passt).
            self.unsupported.get_or_insert(spec);
        }
        let raw = value.unwrap_or_default();
        let text = raw.to_string_lossy().into_owned();
        let o = &mut self.opts;
        match spec.opt {
            Opt::Help => return Ok(Some(ParseOutcome::Help(usage::usage(mode)))),
            Opt::Version => return Ok(Some(ParseOutcome::Version(usage::version(mode)))),
            Opt::Debug => (o.debug, o.quiet) = (true, false),
            Opt::Trace => (o.trace, o.debug, o.quiet) = (true, true, false),
            Opt::Quiet => (o.quiet, o.debug, o.trace) = (true, false, false),
            Opt::Foreground => o.foreground = true,
            Opt::Stderr => o
                .notices
                .push(Notice::warn("--stderr will be dropped soon")),
            Opt::LogFile => o.log_file = Some(path(raw, "log file", &text)?),
            Opt::LogSize => o.log_size = Some(values::log_size(&text)?),
            Opt::Runas => o.runas = Some(values::runas(&text)?),
            Opt::Pcap => o.pcap = Some(path(raw, "pcap path", &text)?),
            Opt::Pid => o.pid_file = Some(path(raw, "PID file", &text)?),
            Opt::Fd => o.fd = Some(values::fd(&text)?),
            Opt::Mtu => o.mtu = Some(values::mtu(&text)?),
            Opt::Address => match values::guest_address(&text)? {
                IpAddr::V4(a) => o.addr4 = Some(a),
                IpAddr::V6(a) => o.addr6 = Some(a),
            },
            Opt::Netmask => o.prefix_len4 = Some(values::netmask(&text)?),
            Opt::MacAddr => o.our_mac = Some(values::mac(&text)?),
            Opt::Gateway => match values::gateway(&text)? {
                IpAddr::V4(a) => o.gateway4 = Some(a),
                IpAddr::V6(a) => o.gateway6 = Some(a),
            },
            Opt::Interface => o.interface = Some(values::ifname(&text)?),
            Opt::Outbound => match values::outbound_address(&text)? {
                IpAddr::V4(a) => o.outbound4 = Some(a),
                IpAddr::V6(a) => o.outbound6 = Some(a),
            },
            Opt::OutboundIf4 => o.outbound_if4 = Some(values::ifname(&text)?),
            Opt::OutboundIf6 => o.outbound_if6 = Some(values::ifname(&text)?),
            Opt::Ipv4Only => o.ipv4_only = true,
            Opt::Ipv6Only => o.ipv6_only = true,
            Opt::Dns => o.dns = more_dns(std::mem::take(&mut o.dns), &text)?,
            Opt::Search => o.search = more_search(std::mem::take(&mut o.search), &text)?,
            Opt::NoTcp => o.services.tcp = false,
            Opt::NoUdp => o.services.udp = false,
            Opt::NoIcmp => o.services.icmp = false,
            Opt::NoDhcp => o.services.dhcp = false,
            Opt::NoDhcpv6 => o.services.dhcpv6 = false,
            Opt::NoNdp => o.services.ndp = false,
            Opt::NoRa => o.services.ra = false,
            Opt::NoSplice => o.no_splice = true,
            Opt::NoMapGw => o.no_map_gw = true,
            Opt::Freebind => o.freebind = true,
            Opt::MapHostLoopback => {
                match values::remap_address("address to remap to host", &text)? {
                    Some(IpAddr::V4(a)) => o.map_host_loopback4 = Some(a),
                    Some(IpAddr::V6(a)) => o.map_host_loopback6 = Some(a),
                    None => o.no_map_gw = true,
                }
            }
            Opt::MapGuestAddr => match values::remap_address("address to remap to guest", &text)? {
                Some(IpAddr::V4(a)) => o.map_guest_addr4 = Some(a),
                Some(IpAddr::V6(a)) => o.map_guest_addr6 = Some(a),
                None => (o.map_guest_addr4, o.map_guest_addr6) = (None, None),
            },
            Opt::NoDhcpDns => o.no_dhcp_dns = true,
            Opt::DhcpDns => o.dhcp_dns = true,
            Opt::DhcpSearch => o.dhcp_search = true,
            Opt::NoDhcpSearch => o.no_dhcp_search = true,
            Opt::TcpPorts => self.port_args.push((PortOption::Tcp, text)),
            Opt::UdpPorts => self.port_args.push((PortOption::Udp, text)),
            Opt::TcpNs => self.port_args.push((PortOption::TcpNs, text)),
            Opt::UdpNs => self.port_args.push((PortOption::UdpNs, text)),
            Opt::NsIfname => o.ns_ifname = Some(values::ifname(&text)?),
            Opt::Userns => o.userns = Some(path(raw, "--userns", &text)?),
            Opt::Netns => o.netns = Some(netns_path(raw, &text)?),
            Opt::NetnsOnly => o.netns_only = true,
            Opt::NoNetnsQuit => o.no_netns_quit = true,
            Opt::ConfigNet => o.config_net = true,
            Opt::NoCopyRoutes => {
                o.no_copy_routes = true;
                o.notices
                    .push(Notice::warn("--no-copy-routes will be dropped soon"));
            }
            Opt::NoCopyAddrs => {
                o.no_copy_addrs = true;
                o.notices
                    .push(Notice::warn("--no-copy-addrs will be dropped soon"));
            }
            Opt::NsMacAddr => o.ns_mac = Some(values::mac(&text)?),
            Opt::HostLoToNsLo => o.host_lo_to_ns_lo = true,
            Opt::DnsForward => {
                let addr = values::dns_forward_address(&text)?;
                let (v4, v6) = (&mut o.dns_forward4, &mut o.dns_forward6);
                if let Some(notice) = set_per_family(v4, v6, addr, "--dns-forward") {
                    o.notices.push(notice);
                }
            }
            Opt::DnsHost => {
                let addr = values::dns_host_address(&text)?;
                let (v4, v6) = (&mut o.dns_host4, &mut o.dns_host6);
                if let Some(notice) = set_per_family(v4, v6, addr, "--dns-host") {
                    o.notices.push(notice);
                }
            }
            Opt::Socket => o.socket_path = Some(path(raw, "socket path", &text)?),
            Opt::OneOff => o.one_off = true,
            // No behaviour yet: refused whatever the table says, so that
            // flipping a status without the code cannot accept them.
            Opt::Hostname
            | Opt::Fqdn
            | Opt::VhostUser
            | Opt::PrintCapabilities
            | Opt::RepairPath => {
                self.unsupported.get_or_insert(spec);
            }
        }
        Ok(None)
    }

    /// Checks that need all options, the positional arguments, then the
    /// refusal of what is not supported yet.
    fn finish(mut self, positional: Vec<OsString>) -> Result<Options, ConfError> {
        self.parse_port_specs()?;
        let o = &mut self.opts;
        if o.ipv4_only && o.ipv6_only {
            return Err(ConfError::unusable(
                "Options ipv4-only and ipv6-only are mutually exclusive",
            ));
        }
        if o.no_copy_routes && !o.config_net {
            return Err(ConfError::unusable("--no-copy-routes needs --config-net"));
        }
        if o.no_copy_addrs && !o.config_net {
            return Err(ConfError::unusable("--no-copy-addrs needs --config-net"));
        }
        o.positional = positional_args(o.mode, o.netns.is_some(), positional)?;
        match self.unsupported {
            Some(spec) => Err(spec.not_supported()),
            None => Ok(self.opts),
        }
    }

    fn parse_port_specs(&mut self) -> Result<(), ConfError> {
        let o = &mut self.opts;
        for (option, text) in self.port_args.drain(..) {
            let enabled = match option {
                PortOption::Tcp | PortOption::TcpNs => o.services.tcp,
                PortOption::Udp | PortOption::UdpNs => o.services.udp,
            };
            let slot = match option {
                PortOption::Tcp => &mut o.tcp_ports,
                PortOption::Udp => &mut o.udp_ports,
                PortOption::TcpNs => &mut o.tcp_ns,
                PortOption::UdpNs => &mut o.udp_ns,
            };
            *slot = Some(PortSpec::parse_more(
                slot.take(),
                &text,
                option,
                o.mode,
                enabled,
            )?);
        }
        Ok(())
    }
}

/// Stores `addr` in the slot of its family (the last one given wins); a
/// warning if that family already had one.
fn set_per_family(
    v4: &mut Option<Ipv4Addr>,
    v6: &mut Option<Ipv6Addr>,
    addr: IpAddr,
    option: &str,
) -> Option<Notice> {
    let (previous, family) = match addr {
        IpAddr::V4(a) => (v4.replace(a).map(IpAddr::V4), "IPv4"),
        IpAddr::V6(a) => (v6.replace(a).map(IpAddr::V6), "IPv6"),
    };
    previous.map(|previous| {
        Notice::warn(format!(
            "{option} given twice for {family}: {addr} replaces {previous}"
        ))
    })
}

/// A file path value: anything but empty.
fn path(raw: OsString, what: &'static str, text: &str) -> Result<PathBuf, ConfError> {
    match raw.is_empty() {
        true => Err(ConfError::invalid(what, text)),
        false => Ok(PathBuf::from(raw)),
    }
}

/// `--netns PATH|NAME`: a NAME (no `/`) is `/run/netns/NAME`.
fn netns_path(raw: OsString, text: &str) -> Result<PathBuf, ConfError> {
    let path = path(raw, "--netns", text)?;
    match text.contains('/') {
        true => Ok(path),
        false => Ok(PathBuf::from("/run/netns").join(path)),
    }
}

fn more_dns(previous: DnsChoice, text: &str) -> Result<DnsChoice, ConfError> {
    if text == "none" {
        return Ok(DnsChoice::Disabled);
    }
    let mut list = match previous {
        DnsChoice::Given(list) => list,
        DnsChoice::FromHost | DnsChoice::Disabled => DnsList::default(),
    };
    list.add(text)?;
    Ok(DnsChoice::Given(list))
}

fn more_search(previous: SearchChoice, text: &str) -> Result<SearchChoice, ConfError> {
    if text == "none" {
        return Ok(SearchChoice::Disabled);
    }
    let mut list = match previous {
        SearchChoice::Given(list) => list,
        SearchChoice::FromHost | SearchChoice::Disabled => Vec::new(),
    };
    values::add_search_domains(&mut list, text)?;
    Ok(SearchChoice::Given(list))
}

/// pasta: one argument of digits is a PID, anything else a command;
/// passt takes none.
fn positional_args(mode: Mode, netns: bool, args: Vec<OsString>) -> Result<Positional, ConfError> {
    let Some(first) = args.first() else {
        return Ok(Positional::None);
    };
    if mode == Mode::Passt {
        let first = first.to_string_lossy();
        return Err(ConfError::unusable(format!(
            "Extra non-option argument: {first}"
        )));
    }
    if netns {
        return Err(ConfError::unusable("Both --netns and PID or command given"));
    }
    let text = first.to_string_lossy();
    let looks_like_pid =
        args.len() == 1 && !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    if !looks_like_pid {
        return Ok(Positional::Command(args));
    }
    text.parse::<u32>()
        .ok()
        .filter(|&pid| pid > 0 && i32::try_from(pid).is_ok())
        .map(Positional::Pid)
        .ok_or_else(|| ConfError::unusable(format!("Invalid PID {text}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(mode: Mode, args: &[&str]) -> Result<ParseOutcome, ConfError> {
        parse_args(mode, args.iter().map(OsString::from))
    }

    fn pasta(args: &[&str]) -> Options {
        match parse(Mode::Pasta, args) {
            Ok(ParseOutcome::Run(opts)) => opts,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    fn passt(args: &[&str]) -> Options {
        match parse(Mode::Passt, args) {
            Ok(ParseOutcome::Run(opts)) => opts,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    fn error(mode: Mode, args: &[&str]) -> String {
        match parse(mode, args) {
            Err(e) => e.to_string(),
            other => panic!("{args:?}: {other:?}"),
        }
    }

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    #[test]
    fn no_options_give_the_defaults() {
        assert_eq!(pasta(&[]), Options::new(Mode::Pasta));
        assert_eq!(passt(&[]), Options::new(Mode::Passt));
    }

    #[test]
    fn short_clusters_and_attached_values() {
        let o = pasta(&["-fq", "-m1500", "-dfm", "9000"]);
        assert!(o.foreground && o.debug && !o.quiet);
        assert_eq!(o.mtu, Some(9000));
        let o = passt(&["-dft", "none"]);
        assert!(o.debug && o.foreground);
        assert_eq!(o.tcp_ports, Some(PortSpec::None));
        let o = passt(&["-dftnone"]);
        assert_eq!(o.tcp_ports, Some(PortSpec::None));
    }

    #[test]
    fn long_values_with_equals_or_separate() {
        assert_eq!(pasta(&["--mtu=1500"]).mtu, Some(1500));
        assert_eq!(pasta(&["--mtu", "1500"]).mtu, Some(1500));
        assert_eq!(pasta(&["--mt", "1500"]).mtu, Some(1500));
        assert_eq!(
            pasta(&["--ns-ifname=tap0"]).ns_ifname.as_deref(),
            Some("tap0")
        );
    }

    #[test]
    fn a_value_may_look_like_an_option() {
        assert_eq!(error(Mode::Passt, &["-m", "-f"]), "Invalid MTU: -f");
        assert_eq!(
            pasta(&["-S", "-weird.test"]).search,
            SearchChoice::Given(vec!["-weird.test".into()])
        );
    }

    #[test]
    fn short_equals_is_part_of_the_value_as_in_getopt() {
        assert_eq!(error(Mode::Passt, &["-m=1500"]), "Invalid MTU: =1500");
    }

    #[test]
    fn unambiguous_prefixes_and_exact_names() {
        assert!(pasta(&["--conf"]).config_net);
        assert!(pasta(&["--fore"]).foreground);
        assert_eq!(
            pasta(&["--netns", "x"]).netns,
            Some(PathBuf::from("/run/netns/x"))
        );
        assert!(pasta(&["--netns-o"]).netns_only);
        assert!(!pasta(&["--no-dhcp"]).services.dhcp);
        assert!(pasta(&["--no-dhcp"]).services.dhcpv6);
    }

    #[test]
    fn getopt_errors_name_the_program_and_want_usage() {
        let cases: &[(Mode, &[&str], &str)] = &[
            (
                Mode::Passt,
                &["--bogus"],
                "passt: unrecognized option '--bogus'",
            ),
            (
                Mode::Pasta,
                &["--bogus=1"],
                "pasta: unrecognized option '--bogus'",
            ),
            (Mode::Passt, &["-x"], "passt: invalid option -- 'x'"),
            (Mode::Passt, &["-fx"], "passt: invalid option -- 'x'"),
            (
                Mode::Passt,
                &["-t"],
                "passt: option requires an argument -- 't'",
            ),
            (
                Mode::Passt,
                &["--tcp-ports"],
                "passt: option '--tcp-ports' requires an argument",
            ),
            (
                Mode::Passt,
                &["--tcp-p"],
                "passt: option '--tcp-ports' requires an argument",
            ),
            (
                Mode::Passt,
                &["--debug=1"],
                "passt: option '--debug' doesn't allow an argument",
            ),
            (
                Mode::Passt,
                &["--deb=1"],
                "passt: option '--debug' doesn't allow an argument",
            ),
            (
                Mode::Passt,
                &["--conf=x"],
                "passt: option '--config-net' doesn't allow an argument",
            ),
            (
                Mode::Passt,
                &["--netn"],
                "passt: option '--netn' is ambiguous; possibilities: '--netns' '--netns-only'",
            ),
            (
                Mode::Pasta,
                &["--tcp"],
                "pasta: option '--tcp' is ambiguous; possibilities: '--tcp-ports' '--tcp-ns'",
            ),
        ];
        for (mode, args, want) in cases {
            let err = parse(*mode, args).unwrap_err();
            assert_eq!(err.to_string(), *want, "{args:?}");
            assert!(err.wants_usage(), "{args:?}");
        }
        assert!(!parse(Mode::Passt, &["-m", "x"]).unwrap_err().wants_usage());
    }

    #[test]
    fn help_and_version_answer_at_once() {
        assert!(
            matches!(parse(Mode::Pasta, &["-h", "--bogus"]), Ok(ParseOutcome::Help(t)) if t.starts_with("Usage: pasta"))
        );
        assert!(
            matches!(parse(Mode::Passt, &["--help"]), Ok(ParseOutcome::Help(t)) if t.starts_with("Usage: passt"))
        );
        assert!(
            matches!(parse(Mode::Pasta, &["--version"]), Ok(ParseOutcome::Version(t)) if t.starts_with("pasta "))
        );
        assert!(
            matches!(parse(Mode::Passt, &["--vers"]), Ok(ParseOutcome::Version(t)) if t.starts_with("passt "))
        );
        assert!(parse(Mode::Passt, &["--bogus", "-h"]).is_err());
    }

    #[test]
    fn options_of_the_other_mode() {
        let cases: &[(Mode, &[&str], &str)] = &[
            (
                Mode::Passt,
                &["--config-net"],
                "--config-net is for pasta mode only",
            ),
            (
                Mode::Passt,
                &["--conf"],
                "--config-net is for pasta mode only",
            ),
            (Mode::Passt, &["-I", "x"], "-I is for pasta mode only"),
            (
                Mode::Passt,
                &["--ns-ifname", "x"],
                "-I is for pasta mode only",
            ),
            (Mode::Passt, &["-T", "22"], "-T is for pasta mode only"),
            (
                Mode::Passt,
                &["--udp-ns", "22"],
                "-U is for pasta mode only",
            ),
            (
                Mode::Passt,
                &["--dhcp-dns"],
                "--dhcp-dns is for pasta mode only",
            ),
            (
                Mode::Passt,
                &["--host-lo-to-ns-lo"],
                "--host-lo-to-ns-lo is for pasta mode only",
            ),
            (
                Mode::Pasta,
                &["--socket", "x"],
                "-s is for passt / vhost-user mode only",
            ),
            (
                Mode::Pasta,
                &["-s", "x"],
                "-s is for passt / vhost-user mode only",
            ),
            (Mode::Pasta, &["-1"], "--one-off is for passt mode only"),
            (
                Mode::Pasta,
                &["--no-dhcp-search"],
                "--no-dhcp-search is for passt mode only",
            ),
            (
                Mode::Pasta,
                &["--repair-path", "x"],
                "--repair-path is for vhost-user mode only",
            ),
        ];
        for (mode, args, want) in cases {
            assert_eq!(error(*mode, args), *want, "{args:?}");
        }
    }

    #[test]
    fn passt_transport_options_are_parsed() {
        let o = passt(&["-1", "--socket-path", "/tmp/x", "-F", "5"]);
        assert_eq!(o.socket_path, Some(PathBuf::from("/tmp/x")));
        assert!(o.one_off);
        assert_eq!(o.fd, Some(5));
    }

    #[test]
    fn not_supported_yet_names_the_long_option() {
        let cases: &[(Mode, &[&str], &str)] = &[
            (
                Mode::Passt,
                &["--vhost-user"],
                "--vhost-user: not supported yet",
            ),
            (
                Mode::Passt,
                &["--print-capabilities"],
                "--print-capabilities: not supported yet",
            ),
            (Mode::Pasta, &["-F", "5"], "--fd: not supported yet"),
            (
                Mode::Pasta,
                &["--fqdn", "x.test", "-t", "auto"],
                "--fqdn: not supported yet",
            ),
            (Mode::Pasta, &["-H", "x"], "--hostname: not supported yet"),
        ];
        for (mode, args, want) in cases {
            assert_eq!(error(*mode, args), *want, "{args:?}");
        }
    }

    #[test]
    fn tcp_ports_and_freebind_are_accepted() {
        let o = passt(&["-t", "8080", "--freebind"]);
        assert!(o.freebind);
        assert!(matches!(o.tcp_ports, Some(PortSpec::Rules(ref r)) if r.rules.len() == 1));
        assert_eq!(passt(&["-t", "all"]).tcp_ports, Some(PortSpec::All));
        let o = pasta(&["-t", "127.0.0.1/22,~25", "-t", "80:8080", "--config-net"]);
        assert!(matches!(o.tcp_ports, Some(PortSpec::Rules(ref r)) if r.rules.len() == 2));
        assert!(!o.freebind);
        assert_eq!(pasta(&["-t", "none"]).tcp_ports, Some(PortSpec::None));
    }

    #[test]
    fn every_port_option_takes_every_spec_form_of_its_mode() {
        let forms = [
            "22",
            "22:23",
            "22,25",
            "22-80",
            "22-80:32-90",
            "2000-5000,~3000-3010",
            "~20000-20010",
        ];
        for form in forms {
            let o = pasta(&["-t", form, "-u", form, "-T", form, "-U", form]);
            for spec in [&o.tcp_ports, &o.udp_ports, &o.tcp_ns, &o.udp_ns] {
                assert!(
                    matches!(spec, Some(PortSpec::Rules(r)) if r.rules.len() == 1),
                    "{form}"
                );
            }
            let o = passt(&["-t", form, "-u", form]);
            assert!(matches!(o.udp_ports, Some(PortSpec::Rules(_))), "{form}");
        }
        let prefixed = ["192.0.2.1/22", "192.0.2.1%eth0/22", "%eth0/22", "[::1]/22"];
        for form in prefixed {
            let o = passt(&["-u", form]);
            assert!(matches!(o.udp_ports, Some(PortSpec::Rules(_))), "{form}");
        }
        let o = pasta(&["-u", "8080", "-u", "9000:90"]);
        assert!(matches!(o.udp_ports, Some(PortSpec::Rules(ref r)) if r.rules.len() == 2));
    }

    #[test]
    fn auto_is_accepted_in_pasta_and_all_in_passt() {
        let o = pasta(&["-t", "auto", "-u", "auto", "-T", "auto", "-U", "auto"]);
        assert_eq!(
            (o.tcp_ports, o.udp_ports, o.tcp_ns, o.udp_ns),
            (
                Some(PortSpec::Auto),
                Some(PortSpec::Auto),
                Some(PortSpec::Auto),
                Some(PortSpec::Auto)
            )
        );
        assert_eq!(
            pasta(&["--tcp-ports=auto", "--freebind"]).tcp_ports,
            Some(PortSpec::Auto)
        );
        let o = passt(&["-t", "all", "-u", "all"]);
        assert_eq!(
            (o.tcp_ports, o.udp_ports),
            (Some(PortSpec::All), Some(PortSpec::All))
        );
        // Not given: filled with the mode's default when resolving.
        assert_eq!(pasta(&[]).udp_ns, None);
    }

    #[test]
    fn auto_all_and_lists_errors_are_upstreams() {
        let cases: &[(Mode, &[&str], &str)] = &[
            (
                Mode::Passt,
                &["-u", "auto"],
                "'auto' port forwarding is only allowed for pasta",
            ),
            (
                Mode::Pasta,
                &["-u", "all"],
                "'all' port forwarding is only allowed for passt",
            ),
            (
                Mode::Pasta,
                &["-T", "all"],
                "'all' port forwarding is only allowed for passt",
            ),
            (
                Mode::Pasta,
                &["-U", "all"],
                "'all' port forwarding is only allowed for passt",
            ),
            (
                Mode::Pasta,
                &["-t", "auto", "-t", "22"],
                "Specific ports cannot be specified together with all/none/auto",
            ),
            (
                Mode::Pasta,
                &["-U", "22", "-U", "auto"],
                "Port forwarding mode 'auto' conflicts with previous mode",
            ),
            (
                Mode::Pasta,
                &["-T", "auto", "-T", "auto"],
                "Port forwarding mode 'auto' conflicts with previous mode",
            ),
            (
                Mode::Pasta,
                &["-u", "auto,22"],
                "Invalid port specifier auto,22",
            ),
            (
                Mode::Passt,
                &["-u", "all", "-u", "22"],
                "Specific ports cannot be specified together with all/none/auto",
            ),
            // -T/-U bind the namespace's loopback: no address prefix.
            (
                Mode::Pasta,
                &["-T", "127.0.0.1/22"],
                "Invalid port specifier 127.0.0.1/22",
            ),
            (
                Mode::Pasta,
                &["-U", "%lo/22"],
                "Invalid port specifier %lo/22",
            ),
            (
                Mode::Pasta,
                &["--no-udp", "-U", "53"],
                "UDP port forwarding requested but UDP is disabled",
            ),
        ];
        for (mode, args, want) in cases {
            assert_eq!(error(*mode, args), *want, "{args:?}");
        }
    }

    #[test]
    fn dns_forward_dns_host_and_host_lo_to_ns_lo() {
        let o = pasta(&[
            "--dns-forward",
            "169.254.1.1",
            "--dns-forward",
            "fd00::53",
            "--dns-host",
            "127.0.0.53",
            "--host-lo-to-ns-lo",
        ]);
        assert_eq!(o.dns_forward4, Some(Ipv4Addr::new(169, 254, 1, 1)));
        assert_eq!(o.dns_forward6, Some("fd00::53".parse().unwrap()));
        assert_eq!(o.dns_host4, Some(Ipv4Addr::new(127, 0, 0, 53)));
        assert_eq!(o.dns_host6, None);
        assert!(o.host_lo_to_ns_lo && o.notices.is_empty());
        assert!(!pasta(&[]).host_lo_to_ns_lo);
        let o = passt(&["--dns-forward", "192.0.2.9", "--dns-forward", "192.0.2.8"]);
        assert_eq!(
            o.dns_forward4,
            Some(Ipv4Addr::new(192, 0, 2, 8)),
            "last wins"
        );
        assert_eq!(
            o.notices,
            vec![Notice::warn(
                "--dns-forward given twice for IPv4: 192.0.2.8 replaces 192.0.2.9"
            )]
        );
        let o = passt(&["--dns-host", "::1", "--dns-host", "2001:db8::53"]);
        assert_eq!(o.dns_host6, Some("2001:db8::53".parse().unwrap()));
        assert_eq!(o.notices.len(), 1);
        assert_eq!(
            error(Mode::Passt, &["--dns-forward", "127.0.0.1"]),
            "Invalid DNS forwarding address: 127.0.0.1"
        );
        assert_eq!(
            error(Mode::Pasta, &["--dns-host", "0.0.0.0"]),
            "Invalid host nameserver address: 0.0.0.0"
        );
    }

    #[test]
    fn malformed_values_come_before_not_supported_yet() {
        assert_eq!(
            error(Mode::Passt, &["-s", "/tmp/x", "-m", "abc"]),
            "Invalid MTU: abc"
        );
        assert_eq!(
            error(Mode::Passt, &["-s", "/tmp/x", "-t", "0"]),
            "Can't forward port 0 for option '-t 0'"
        );
        assert_eq!(
            error(Mode::Passt, &["-t", "22", "-u", "foo"]),
            "Invalid port specifier foo"
        );
        assert_eq!(error(Mode::Passt, &["-F", "2"]), "Invalid --fd: 2");
        assert_eq!(
            error(Mode::Passt, &["-t", "auto"]),
            "'auto' port forwarding is only allowed for pasta"
        );
        assert_eq!(
            error(Mode::Pasta, &["-t", "all"]),
            "'all' port forwarding is only allowed for passt"
        );
    }

    #[test]
    fn port_specs_none_accepted_and_accumulate() {
        let o = pasta(&["-t", "none", "-u", "none", "-T", "none", "-U", "none"]);
        assert_eq!(
            (o.tcp_ports, o.udp_ports, o.tcp_ns, o.udp_ns),
            (
                Some(PortSpec::None),
                Some(PortSpec::None),
                Some(PortSpec::None),
                Some(PortSpec::None)
            )
        );
        assert_eq!(
            error(Mode::Passt, &["-t", "none", "-t", "none"]),
            "Port forwarding mode 'none' conflicts with previous mode"
        );
        assert_eq!(
            error(Mode::Passt, &["--no-tcp", "-t", "none", "-t", "22"]),
            "TCP port forwarding requested but TCP is disabled"
        );
        assert_eq!(
            error(Mode::Passt, &["-u", "22", "--no-udp"]),
            "UDP port forwarding requested but UDP is disabled"
        );
    }

    #[test]
    fn last_wins_for_single_values() {
        let o = passt(&[
            "-m",
            "1500",
            "-m",
            "0",
            "-P",
            "/a",
            "-P",
            "/b",
            "-o",
            "192.0.2.1",
            "-o",
            "192.0.2.2",
        ]);
        assert_eq!(o.mtu, Some(0));
        assert_eq!(o.pid_file, Some(PathBuf::from("/b")));
        assert_eq!(o.outbound4, Some(Ipv4Addr::new(192, 0, 2, 2)));
        let o = passt(&["-a", "192.0.2.1", "-a", "2001:db8::1", "-a", "192.0.2.2"]);
        assert_eq!(o.addr4, Some(Ipv4Addr::new(192, 0, 2, 2)));
        assert_eq!(o.addr6, Some("2001:db8::1".parse().unwrap()));
        let o = passt(&["-g", "192.0.2.1", "-g", "fe80::1"]);
        assert_eq!(
            (o.gateway4, o.gateway6),
            (
                Some(Ipv4Addr::new(192, 0, 2, 1)),
                Some("fe80::1".parse().unwrap())
            )
        );
    }

    #[test]
    fn debug_quiet_and_trace_override_each_other() {
        let o = passt(&["-d", "-q"]);
        assert!(o.quiet && !o.debug);
        let o = passt(&["-q", "-d"]);
        assert!(!o.quiet && o.debug);
        let o = passt(&["-q", "--trace"]);
        assert!(!o.quiet && o.debug && o.trace);
        let o = passt(&["--trace", "-q"]);
        assert!(o.quiet && !o.debug && !o.trace);
    }

    #[test]
    fn dns_and_search_lists() {
        let o = passt(&[
            "-D",
            "192.0.2.1",
            "-D",
            "2001:db8::1",
            "-S",
            "a.test b.test",
            "-S",
            "c.test",
        ]);
        let DnsChoice::Given(list) = o.dns else {
            panic!()
        };
        assert_eq!((list.v4.len(), list.v6.len()), (1, 1));
        assert_eq!(
            o.search,
            SearchChoice::Given(vec!["a.test".into(), "b.test".into(), "c.test".into()])
        );
        assert_eq!(passt(&["-D", "none"]).dns, DnsChoice::Disabled);
        assert_eq!(passt(&["-S", "none"]).search, SearchChoice::Disabled);
        assert!(matches!(
            passt(&["-D", "none", "-D", "192.0.2.1"]).dns,
            DnsChoice::Given(_)
        ));
        assert_eq!(
            passt(&["-D", "192.0.2.1", "-D", "none"]).dns,
            DnsChoice::Disabled
        );
        assert_eq!(
            error(Mode::Passt, &["-D", "foo"]),
            "Cannot use DNS address foo"
        );
        assert_eq!(
            error(
                Mode::Passt,
                &[
                    "-D", "1.1.1.1", "-D", "1.1.1.2", "-D", "1.1.1.3", "-D", "1.1.1.4"
                ]
            ),
            "Cannot use DNS address 1.1.1.4"
        );
        assert_eq!(
            error(Mode::Passt, &["-S", "a b c d e f g"]),
            "Cannot use DNS search domain g"
        );
    }

    #[test]
    fn value_errors() {
        let cases: &[(&[&str], &str)] = &[
            (&["-m", "67"], "Invalid MTU: 67"),
            (&["-m", "65536"], "Invalid MTU: 65536"),
            (&["--mtu=abc"], "Invalid MTU: abc"),
            (&["-a", "127.0.0.1"], "Invalid address: 127.0.0.1"),
            (
                &["-a", "::ffff:192.0.2.1"],
                "Invalid address: ::ffff:192.0.2.1",
            ),
            (&["-n", "255.0.255.0"], "Invalid netmask: 255.0.255.0"),
            (&["-M", "12:34"], "Invalid MAC address: 12:34"),
            (
                &["-g", "not-an-address"],
                "Invalid gateway address: not-an-address",
            ),
            (&["-o", "::1"], "Invalid or redundant outbound address: ::1"),
            (
                &["--map-host-loopback", "127.0.0.1"],
                "Invalid address to remap to host: 127.0.0.1",
            ),
            (
                &["--map-guest-addr", "ff02::1"],
                "Invalid address to remap to guest: ff02::1",
            ),
            (
                &["-i", "a234567890123456"],
                "Invalid interface name: a234567890123456",
            ),
            (&["--outbound-if4", ""], "Invalid interface name: "),
            (&["--log-size", "40959"], "Invalid --log-size: 40959"),
            (&["--runas", "1:2:3"], "Invalid --runas option: 1:2:3"),
            (&["-P", ""], "Invalid PID file: "),
            (&["-p", ""], "Invalid pcap path: "),
            (&["-l", ""], "Invalid log file: "),
            (
                &["-4", "-6"],
                "Options ipv4-only and ipv6-only are mutually exclusive",
            ),
        ];
        for (args, want) in cases {
            assert_eq!(error(Mode::Passt, args), *want, "{args:?}");
        }
        assert_eq!(error(Mode::Pasta, &["-I", ""]), "Invalid interface name: ");
        assert_eq!(
            error(Mode::Pasta, &["--ns-mac-addr", "zz"]),
            "Invalid MAC address: zz"
        );
        assert_eq!(error(Mode::Pasta, &["-F", "2"]), "Invalid --fd: 2");
        assert_eq!(error(Mode::Pasta, &["--netns", ""]), "Invalid --netns: ");
    }

    #[test]
    fn deprecated_options_warn() {
        let o = passt(&["-e"]);
        assert_eq!(
            o.notices,
            vec![Notice::warn("--stderr will be dropped soon")]
        );
        let o = pasta(&["--config-net", "--no-copy-routes", "--no-copy-addrs"]);
        assert!(o.no_copy_routes && o.no_copy_addrs);
        assert_eq!(o.notices.len(), 2);
        assert_eq!(
            error(Mode::Pasta, &["--no-copy-routes"]),
            "--no-copy-routes needs --config-net"
        );
        assert_eq!(
            error(Mode::Pasta, &["--no-copy-addrs"]),
            "--no-copy-addrs needs --config-net"
        );
    }

    #[test]
    fn pasta_positional_pid_or_command() {
        assert_eq!(pasta(&["1234"]).positional, Positional::Pid(1234));
        assert_eq!(
            pasta(&["-f", "--", "1234"]).positional,
            Positional::Pid(1234)
        );
        assert_eq!(
            pasta(&["12x"]).positional,
            Positional::Command(os(&["12x"]))
        );
        assert_eq!(
            pasta(&["1", "2"]).positional,
            Positional::Command(os(&["1", "2"]))
        );
        assert_eq!(pasta(&["+5"]).positional, Positional::Command(os(&["+5"])));
        assert_eq!(
            error(Mode::Pasta, &["2147483648"]),
            "Invalid PID 2147483648"
        );
        assert_eq!(error(Mode::Pasta, &["0"]), "Invalid PID 0");
        assert_eq!(
            error(Mode::Pasta, &["99999999999999999999"]),
            "Invalid PID 99999999999999999999"
        );
    }

    #[test]
    fn parsing_stops_at_the_first_non_option() {
        let o = pasta(&["-f", "sh", "-c", "--config-net"]);
        assert!(!o.config_net);
        assert_eq!(
            o.positional,
            Positional::Command(os(&["sh", "-c", "--config-net"]))
        );
        let o = pasta(&["--", "-q"]);
        assert!(!o.quiet);
        assert_eq!(o.positional, Positional::Command(os(&["-q"])));
        let o = pasta(&["-", "x"]);
        assert_eq!(o.positional, Positional::Command(os(&["-", "x"])));
    }

    #[test]
    fn netns_paths_and_conflicts() {
        assert_eq!(
            pasta(&["--netns", "/proc/1/ns/net"]).netns,
            Some(PathBuf::from("/proc/1/ns/net"))
        );
        assert_eq!(
            pasta(&["--netns", "ctr"]).netns,
            Some(PathBuf::from("/run/netns/ctr"))
        );
        assert_eq!(
            error(Mode::Pasta, &["--netns", "x", "123"]),
            "Both --netns and PID or command given"
        );
        assert_eq!(
            error(Mode::Pasta, &["--netns", "x", "--", "true"]),
            "Both --netns and PID or command given"
        );
    }

    #[test]
    fn passt_takes_no_positional_arguments() {
        assert_eq!(
            error(Mode::Passt, &["true"]),
            "Extra non-option argument: true"
        );
        assert_eq!(
            error(Mode::Passt, &["--", "-f"]),
            "Extra non-option argument: -f"
        );
    }

    #[test]
    fn switches_are_recorded() {
        let o = passt(&[
            "--no-tcp",
            "--no-udp",
            "--no-icmp",
            "--no-dhcp",
            "--no-ndp",
            "--no-dhcpv6",
            "--no-ra",
            "--no-map-gw",
            "--no-splice",
            "--no-dhcp-dns",
            "--no-dhcp-search",
        ]);
        let s = o.services;
        assert!(!(s.tcp || s.udp || s.icmp || s.dhcp || s.ndp || s.dhcpv6 || s.ra));
        assert!(o.no_map_gw && o.no_splice && o.no_dhcp_dns && o.no_dhcp_search);
    }

    #[test]
    fn podman_and_rootlesskit_command_lines_parse() {
        let podman = [
            "--config-net",
            "--pid",
            "/tmp/p",
            "-t",
            "none",
            "-u",
            "none",
            "-T",
            "none",
            "-U",
            "none",
            "--no-map-gw",
            "--quiet",
            "--netns",
            "/run/netns/x",
        ];
        let o = pasta(&podman);
        assert!(o.config_net && o.quiet && o.no_map_gw);
        let mut with_dns_forward = podman.to_vec();
        with_dns_forward.extend(["--dns-forward", "169.254.1.1"]);
        let o = pasta(&with_dns_forward);
        assert_eq!(o.dns_forward4, Some(Ipv4Addr::new(169, 254, 1, 1)));
        let rootlesskit = [
            "--stderr",
            "--ns-ifname=tap0",
            "--mtu=65520",
            "--config-net",
            "--address=10.0.2.100",
            "--netmask=24",
            "--gateway=10.0.2.2",
            "--no-map-gw",
            "--ipv4-only",
            "1234",
        ];
        let o = pasta(&rootlesskit);
        assert_eq!(o.addr4, Some(Ipv4Addr::new(10, 0, 2, 100)));
        assert_eq!(o.prefix_len4, Some(24));
        assert_eq!(o.positional, Positional::Pid(1234));
    }

    #[test]
    fn non_utf8_values_are_errors_not_panics() {
        use std::os::unix::ffi::OsStringExt;
        let bad = OsString::from_vec(vec![b'1', 0xff]);
        let err = parse_args(Mode::Passt, vec![OsString::from("-m"), bad]).unwrap_err();
        assert_eq!(err.to_string(), "Invalid MTU: 1\u{fffd}");
        let bad_opt = OsString::from_vec(vec![b'-', 0xff]);
        assert!(parse_args(Mode::Passt, vec![bad_opt]).is_err());
        let path = OsString::from_vec(vec![b'/', 0xff]);
        let o = parse_args(Mode::Passt, vec![OsString::from("-P"), path.clone()]).unwrap();
        assert!(matches!(o, ParseOutcome::Run(o) if o.pid_file == Some(PathBuf::from(path))));
    }
}
