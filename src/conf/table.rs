//! The option table: every option of both programs, once. It drives the
//! command-line parser (names, short letters, whether a value follows),
//! the mode check (an option of the other program is refused with
//! upstream's wording) and the implementation status, so that enabling an
//! option later is a one-field change here (plus its behaviour elsewhere).
//!
//! Order matters: it is upstream's long-option order, which is the order
//! glibc lists candidates in for an ambiguous prefix. Aliases (`--socket`
//! and `--socket-path`) are separate rows with the same [`Opt`]; a prefix
//! matching only rows of one [`Opt`] is not ambiguous.
//!
//! Neighbours: [`super::args`] looks options up here; integration tests
//! enumerate [`option_table`].

use super::Mode;
use super::error::ConfError;

/// What an option is, independent of its spelling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opt {
    Debug,
    Quiet,
    Foreground,
    Stderr,
    LogFile,
    Help,
    Socket,
    Fd,
    NsIfname,
    Pcap,
    Pid,
    Mtu,
    Address,
    Netmask,
    MacAddr,
    Gateway,
    Interface,
    Outbound,
    Dns,
    Search,
    Hostname,
    NoTcp,
    NoUdp,
    NoIcmp,
    NoDhcp,
    NoDhcpv6,
    NoNdp,
    NoRa,
    NoSplice,
    Freebind,
    NoMapGw,
    Ipv4Only,
    Ipv6Only,
    OneOff,
    TcpPorts,
    UdpPorts,
    TcpNs,
    UdpNs,
    Userns,
    Netns,
    NsMacAddr,
    DhcpDns,
    NoDhcpDns,
    DhcpSearch,
    NoDhcpSearch,
    DnsForward,
    NoNetnsQuit,
    Trace,
    Runas,
    LogSize,
    Version,
    OutboundIf4,
    OutboundIf6,
    ConfigNet,
    NoCopyRoutes,
    NoCopyAddrs,
    NetnsOnly,
    MapHostLoopback,
    MapGuestAddr,
    HostLoToNsLo,
    DnsHost,
    VhostUser,
    PrintCapabilities,
    Fqdn,
    RepairPath,
}

/// Which program accepts an option.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Modes {
    Both,
    Passt,
    Pasta,
}

impl Modes {
    pub fn includes(self, mode: Mode) -> bool {
        match self {
            Modes::Both => true,
            Modes::Passt => mode == Mode::Passt,
            Modes::Pasta => mode == Mode::Pasta,
        }
    }
}

/// How far an option is implemented.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Implemented.
    Supported,
    /// Accepted: it only switches something off. Recorded in the
    /// configuration; the feature it switches off reads it.
    Recorded,
    /// Implemented in this mode only; "not supported yet" in the other.
    OnlyIn(Mode),
    /// Refused with "`--name`: not supported yet".
    NotYet,
}

/// One row of the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OptionSpec {
    /// Long name, without the dashes.
    pub long: &'static str,
    pub short: Option<char>,
    pub takes_value: bool,
    pub modes: Modes,
    pub status: Status,
    pub opt: Opt,
}

impl OptionSpec {
    /// Whether the option works in `mode` (false: an error names it).
    pub fn supported_in(&self, mode: Mode) -> bool {
        match self.status {
            Status::Supported | Status::Recorded => true,
            Status::OnlyIn(only) => only == mode,
            Status::NotYet => false,
        }
    }

    /// The name errors use: `--long`, the canonical long name for aliases.
    pub fn display_name(&self) -> String {
        format!("--{}", canonical(self.opt).long)
    }

    /// "`--long`: not supported yet".
    pub fn not_supported(&self) -> ConfError {
        ConfError::NotSupported {
            option: self.display_name(),
        }
    }

    /// Upstream's refusal of an option of the other program.
    pub fn wrong_mode(&self) -> ConfError {
        let (option, modes) = match self.opt {
            Opt::Socket => ("-s".to_string(), "passt / vhost-user"),
            Opt::RepairPath => (self.display_name(), "vhost-user"),
            Opt::NsIfname => ("-I".to_string(), "pasta"),
            Opt::TcpNs => ("-T".to_string(), "pasta"),
            Opt::UdpNs => ("-U".to_string(), "pasta"),
            _ if self.modes == Modes::Passt => (self.display_name(), "passt"),
            _ => (self.display_name(), "pasta"),
        };
        ConfError::WrongMode { option, modes }
    }
}

const fn flag(
    long: &'static str,
    short: Option<char>,
    modes: Modes,
    status: Status,
    opt: Opt,
) -> OptionSpec {
    OptionSpec {
        long,
        short,
        takes_value: false,
        modes,
        status,
        opt,
    }
}

const fn valued(
    long: &'static str,
    short: Option<char>,
    modes: Modes,
    status: Status,
    opt: Opt,
) -> OptionSpec {
    OptionSpec {
        long,
        short,
        takes_value: true,
        modes,
        status,
        opt,
    }
}

use Modes::{Both, Passt, Pasta};
use Status::{NotYet, OnlyIn, Recorded, Supported};

#[rustfmt::skip]
static TABLE: &[OptionSpec] = &[
    flag("debug", Some('d'), Both, Supported, Opt::Debug),
    flag("quiet", Some('q'), Both, Supported, Opt::Quiet),
    flag("foreground", Some('f'), Both, Supported, Opt::Foreground),
    flag("stderr", Some('e'), Both, Supported, Opt::Stderr),
    valued("log-file", Some('l'), Both, Supported, Opt::LogFile),
    flag("help", Some('h'), Both, Supported, Opt::Help),
    valued("socket", Some('s'), Passt, Supported, Opt::Socket),
    valued("fd", Some('F'), Both, OnlyIn(Mode::Passt), Opt::Fd),
    valued("ns-ifname", Some('I'), Pasta, Supported, Opt::NsIfname),
    valued("pcap", Some('p'), Both, Supported, Opt::Pcap),
    valued("pid", Some('P'), Both, Supported, Opt::Pid),
    valued("mtu", Some('m'), Both, Supported, Opt::Mtu),
    valued("address", Some('a'), Both, Supported, Opt::Address),
    valued("netmask", Some('n'), Both, Supported, Opt::Netmask),
    valued("mac-addr", Some('M'), Both, Supported, Opt::MacAddr),
    valued("gateway", Some('g'), Both, Supported, Opt::Gateway),
    valued("interface", Some('i'), Both, Supported, Opt::Interface),
    valued("outbound", Some('o'), Both, Supported, Opt::Outbound),
    valued("dns", Some('D'), Both, Supported, Opt::Dns),
    valued("search", Some('S'), Both, Supported, Opt::Search),
    valued("hostname", Some('H'), Both, NotYet, Opt::Hostname),
    flag("no-tcp", None, Both, Recorded, Opt::NoTcp),
    flag("no-udp", None, Both, Recorded, Opt::NoUdp),
    flag("no-icmp", None, Both, Recorded, Opt::NoIcmp),
    flag("no-dhcp", None, Both, Recorded, Opt::NoDhcp),
    flag("no-dhcpv6", None, Both, Recorded, Opt::NoDhcpv6),
    flag("no-ndp", None, Both, Recorded, Opt::NoNdp),
    flag("no-ra", None, Both, Recorded, Opt::NoRa),
    flag("no-splice", None, Both, Recorded, Opt::NoSplice),
    flag("freebind", None, Both, Supported, Opt::Freebind),
    flag("no-map-gw", None, Both, Recorded, Opt::NoMapGw),
    flag("ipv4-only", Some('4'), Both, Supported, Opt::Ipv4Only),
    flag("ipv6-only", Some('6'), Both, Supported, Opt::Ipv6Only),
    flag("one-off", Some('1'), Passt, Supported, Opt::OneOff),
    valued("tcp-ports", Some('t'), Both, Supported, Opt::TcpPorts),
    valued("udp-ports", Some('u'), Both, Supported, Opt::UdpPorts),
    valued("tcp-ns", Some('T'), Pasta, Supported, Opt::TcpNs),
    valued("udp-ns", Some('U'), Pasta, Supported, Opt::UdpNs),
    valued("userns", None, Pasta, Supported, Opt::Userns),
    valued("netns", None, Pasta, Supported, Opt::Netns),
    valued("ns-mac-addr", None, Pasta, Supported, Opt::NsMacAddr),
    flag("dhcp-dns", None, Pasta, Supported, Opt::DhcpDns),
    flag("no-dhcp-dns", None, Passt, Recorded, Opt::NoDhcpDns),
    flag("dhcp-search", None, Pasta, Supported, Opt::DhcpSearch),
    flag("no-dhcp-search", None, Passt, Recorded, Opt::NoDhcpSearch),
    valued("dns-forward", None, Both, Supported, Opt::DnsForward),
    flag("no-netns-quit", None, Pasta, Supported, Opt::NoNetnsQuit),
    flag("trace", None, Both, Supported, Opt::Trace),
    valued("runas", None, Both, Supported, Opt::Runas),
    valued("log-size", None, Both, Supported, Opt::LogSize),
    flag("version", None, Both, Supported, Opt::Version),
    valued("outbound-if4", None, Both, Supported, Opt::OutboundIf4),
    valued("outbound-if6", None, Both, Supported, Opt::OutboundIf6),
    flag("config-net", None, Pasta, Supported, Opt::ConfigNet),
    flag("no-copy-routes", None, Pasta, Supported, Opt::NoCopyRoutes),
    flag("no-copy-addrs", None, Pasta, Supported, Opt::NoCopyAddrs),
    flag("netns-only", None, Pasta, Supported, Opt::NetnsOnly),
    valued("map-host-loopback", None, Both, Supported, Opt::MapHostLoopback),
    valued("map-guest-addr", None, Both, Supported, Opt::MapGuestAddr),
    flag("host-lo-to-ns-lo", None, Pasta, Supported, Opt::HostLoToNsLo),
    valued("dns-host", None, Both, Supported, Opt::DnsHost),
    flag("vhost-user", None, Passt, NotYet, Opt::VhostUser),
    flag("print-capabilities", None, Passt, NotYet, Opt::PrintCapabilities),
    valued("socket-path", Some('s'), Passt, Supported, Opt::Socket),
    valued("fqdn", None, Both, NotYet, Opt::Fqdn),
    valued("repair-path", None, Passt, NotYet, Opt::RepairPath),
];

/// Every option of both programs, in upstream's long-option order.
pub fn option_table() -> &'static [OptionSpec] {
    TABLE
}

/// The first row of `opt` (its canonical long name). Every [`Opt`] has one.
pub fn canonical(opt: Opt) -> &'static OptionSpec {
    TABLE
        .iter()
        .find(|spec| spec.opt == opt)
        .unwrap_or(&TABLE[0])
}

/// The row for a short letter.
pub fn find_short(letter: char) -> Option<&'static OptionSpec> {
    TABLE.iter().find(|spec| spec.short == Some(letter))
}

/// Result of looking up a long name as typed.
#[derive(Debug, PartialEq, Eq)]
pub enum LongMatch {
    Found(&'static OptionSpec),
    /// Names of the options the prefix matches, in table order.
    Ambiguous(Vec<&'static str>),
    Unknown,
}

/// getopt_long's rule: an exact name wins; otherwise a prefix of exactly
/// one option (aliases count once).
pub fn find_long(name: &str) -> LongMatch {
    if name.is_empty() {
        return LongMatch::Unknown;
    }
    if let Some(spec) = TABLE.iter().find(|spec| spec.long == name) {
        return LongMatch::Found(spec);
    }
    let mut matches: Vec<&'static OptionSpec> = Vec::new();
    for spec in TABLE.iter().filter(|spec| spec.long.starts_with(name)) {
        if !matches.iter().any(|m| m.opt == spec.opt) {
            matches.push(spec);
        }
    }
    match matches.as_slice() {
        [] => LongMatch::Unknown,
        [only] => LongMatch::Found(only),
        several => LongMatch::Ambiguous(several.iter().map(|spec| spec.long).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_names_are_unique_and_shorts_map_to_one_option() {
        for (i, a) in TABLE.iter().enumerate() {
            for b in &TABLE[i + 1..] {
                assert_ne!(a.long, b.long);
                if a.short.is_some() && a.short == b.short {
                    assert_eq!(a.opt, b.opt, "-{:?}", a.short);
                }
            }
        }
    }

    #[test]
    fn canonical_rows() {
        let long = |opt| canonical(opt).long;
        assert_eq!(long(Opt::TcpPorts), "tcp-ports");
        assert_eq!(long(Opt::UdpNs), "udp-ns");
        assert_eq!(long(Opt::Socket), "socket");
        for spec in TABLE {
            assert_eq!(canonical(spec.opt).opt, spec.opt);
        }
    }

    #[test]
    fn exact_name_beats_longer_names() {
        assert_eq!(find_long("netns").found().opt, Opt::Netns);
        assert_eq!(find_long("no-dhcp").found().opt, Opt::NoDhcp);
        assert_eq!(find_long("dns").found().opt, Opt::Dns);
    }

    #[test]
    fn unique_prefix_and_aliases() {
        assert_eq!(find_long("conf").found().opt, Opt::ConfigNet);
        assert_eq!(find_long("sock").found().opt, Opt::Socket);
        assert_eq!(find_long("socket-p").found().opt, Opt::Socket);
        assert_eq!(find_long("bogus"), LongMatch::Unknown);
        assert_eq!(find_long(""), LongMatch::Unknown);
    }

    #[test]
    fn ambiguous_prefix_lists_candidates_in_upstream_order() {
        assert_eq!(
            find_long("netn"),
            LongMatch::Ambiguous(vec!["netns", "netns-only"])
        );
        assert_eq!(
            find_long("tcp"),
            LongMatch::Ambiguous(vec!["tcp-ports", "tcp-ns"])
        );
        assert_eq!(
            find_long("no"),
            LongMatch::Ambiguous(vec![
                "no-tcp",
                "no-udp",
                "no-icmp",
                "no-dhcp",
                "no-dhcpv6",
                "no-ndp",
                "no-ra",
                "no-splice",
                "no-map-gw",
                "no-dhcp-dns",
                "no-dhcp-search",
                "no-netns-quit",
                "no-copy-routes",
                "no-copy-addrs",
            ])
        );
    }

    #[test]
    fn wrong_mode_wording_matches_upstream() {
        let msg = |name: &str| find_long(name).found().wrong_mode().to_string();
        assert_eq!(msg("config-net"), "--config-net is for pasta mode only");
        assert_eq!(msg("ns-ifname"), "-I is for pasta mode only");
        assert_eq!(msg("tcp-ns"), "-T is for pasta mode only");
        assert_eq!(msg("udp-ns"), "-U is for pasta mode only");
        assert_eq!(msg("socket-path"), "-s is for passt / vhost-user mode only");
        assert_eq!(msg("one-off"), "--one-off is for passt mode only");
        assert_eq!(msg("no-dhcp-dns"), "--no-dhcp-dns is for passt mode only");
    }

    impl LongMatch {
        fn found(self) -> &'static OptionSpec {
            match self {
                LongMatch::Found(spec) => spec,
                other => panic!("{other:?}"),
            }
        }
    }
}
