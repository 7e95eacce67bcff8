//! Port-forward specs: the values of `-t/--tcp-ports`, `-u/--udp-ports`
//! (host to guest) and pasta's `-T/--tcp-ns`, `-U/--udp-ns` (namespace to
//! host), REFERENCE.md §1.7.
//!
//! A spec is `none`, `auto` (pasta only), `all` (passt only) or a list:
//! an optional `ADDR/`, `ADDR%IF/` or `%IF/` prefix (`-t/-u` only; an
//! address may be in brackets), then comma-separated items `P`, `P1-P2`,
//! `P:Q`, `P1-P2:Q1-Q2` (ranges of equal size) and exclusions `~P`,
//! `~P1-P2` anywhere in the list. A list of exclusions only means every
//! non-ephemeral port except those. Repeated options accumulate: each list
//! becomes one [`PortRule`] of [`PortRules`]; `none/auto/all` cannot be
//! combined with anything.
//!
//! Parsing ([`PortSpec::parse_more`]) only reads text, so that a malformed
//! spec is reported before anything is bound. The ephemeral range is a
//! host fact: exclusion-only rules keep it open until [`PortRules::port_map`]
//! is given the range (from `/proc/sys/net/ipv4/ip_local_port_range`) and
//! builds the dense per-port table (65536 entries) the forwarding code
//! looks ports up in. Later rules override earlier ones port by port
//! ([`PortRules::remapped_specs`] names the rules that did, for upstream's
//! warning). Invariants: a [`PortRule`] holds only ports 1-65535, ranges
//! with `first <= last`, targets that stay within 1-65535, and exclusions
//! that do not overlap. Neighbours: `super::args` calls the parser,
//! `super::resolve` supplies the ephemeral range.

use std::fmt;
use std::net::IpAddr;

use super::Mode;

/// Number of port numbers (0-65535); port 0 is never forwarded.
pub const NUM_PORTS: usize = 65536;
/// Longest interface name (IFNAMSIZ - 1).
const IFNAME_MAX: usize = 15;

/// An inclusive range of port numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

impl PortRange {
    pub const fn new(first: u16, last: u16) -> PortRange {
        PortRange { first, last }
    }

    pub fn contains(&self, port: u16) -> bool {
        (self.first..=self.last).contains(&port)
    }

    fn ports(&self) -> std::ops::RangeInclusive<u16> {
        self.first..=self.last
    }
}

/// The kernel's default `ip_local_port_range`.
pub const DEFAULT_EPHEMERAL: PortRange = PortRange::new(49152, 65535);

/// Which option a spec was given to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortOption {
    /// `-t/--tcp-ports`.
    Tcp,
    /// `-u/--udp-ports`.
    Udp,
    /// `-T/--tcp-ns` (pasta).
    TcpNs,
    /// `-U/--udp-ns` (pasta).
    UdpNs,
}

impl PortOption {
    pub fn letter(self) -> char {
        match self {
            PortOption::Tcp => 't',
            PortOption::Udp => 'u',
            PortOption::TcpNs => 'T',
            PortOption::UdpNs => 'U',
        }
    }

    fn is_tcp(self) -> bool {
        matches!(self, PortOption::Tcp | PortOption::TcpNs)
    }

    /// Only host-side listeners can be bound to an address or interface.
    fn allows_bind_prefix(self) -> bool {
        matches!(self, PortOption::Tcp | PortOption::Udp)
    }
}

/// A port-forward spec, after all repetitions of its option.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum PortSpec {
    /// Forward nothing.
    #[default]
    None,
    /// pasta: follow the ports bound on the other side.
    Auto,
    /// passt: every non-ephemeral port.
    All,
    /// Explicit lists.
    Rules(PortRules),
}

/// Errors in a spec, worded as upstream's.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PortError {
    #[error("Invalid port specifier {0}")]
    Invalid(String),
    #[error("Can't forward port 0 for option '-{letter} {spec}'")]
    PortZero { letter: char, spec: String },
    #[error("Overlapping excluded ranges {0}")]
    OverlappingExclusions(String),
    #[error("'auto' port forwarding is only allowed for pasta")]
    AutoInPasst,
    #[error("'all' port forwarding is only allowed for passt")]
    AllInPasta,
    #[error("Port forwarding mode '{0}' conflicts with previous mode")]
    ModeConflict(String),
    #[error("Specific ports cannot be specified together with all/none/auto")]
    ListAfterMode,
    #[error("{0} port forwarding requested but {0} is disabled")]
    ProtocolDisabled(&'static str),
}

impl PortSpec {
    /// Adds one occurrence of the option to what earlier ones gave
    /// (`previous`, `None` for the first). `enabled`: the protocol is not
    /// switched off (`--no-tcp`/`--no-udp`).
    pub fn parse_more(
        previous: Option<PortSpec>,
        text: &str,
        option: PortOption,
        mode: Mode,
        enabled: bool,
    ) -> Result<PortSpec, PortError> {
        if text == "none" {
            return match previous {
                None => Ok(PortSpec::None),
                Some(_) => Err(PortError::ModeConflict(text.into())),
            };
        }
        if !enabled {
            let proto = if option.is_tcp() { "TCP" } else { "UDP" };
            return Err(PortError::ProtocolDisabled(proto));
        }
        match (text, previous) {
            ("auto" | "all", Some(_)) => Err(PortError::ModeConflict(text.into())),
            ("auto", None) if mode == Mode::Passt => Err(PortError::AutoInPasst),
            ("auto", None) => Ok(PortSpec::Auto),
            ("all", None) if mode == Mode::Pasta => Err(PortError::AllInPasta),
            ("all", None) => Ok(PortSpec::All),
            (_, Some(PortSpec::None | PortSpec::Auto | PortSpec::All)) => {
                Err(PortError::ListAfterMode)
            }
            (_, Some(PortSpec::Rules(mut rules))) => {
                rules.rules.push(PortRule::parse(text, option)?);
                Ok(PortSpec::Rules(rules))
            }
            (_, None) => Ok(PortSpec::Rules(PortRules {
                rules: vec![PortRule::parse(text, option)?],
            })),
        }
    }
}

/// The lists given to one option, in command-line order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortRules {
    pub rules: Vec<PortRule>,
}

/// One list: where to listen and which ports go where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortRule {
    /// The spec as given, for messages.
    pub spec: String,
    /// `ADDR/`: listen on this address only.
    pub addr: Option<IpAddr>,
    /// `%IF/`: bind the listeners to this interface.
    pub iface: Option<String>,
    /// Forwarded ranges with their targets; empty for an exclusion-only
    /// list (every non-ephemeral port).
    pub ranges: Vec<MappedRange>,
    /// `~` ranges, never forwarded by this rule.
    pub excluded: Vec<PortRange>,
}

/// `P1-P2:Q1-Q2`: port `P1 + i` goes to `Q1 + i`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MappedRange {
    pub ports: PortRange,
    pub target_first: u16,
}

impl MappedRange {
    fn target_of(&self, port: u16) -> u16 {
        self.target_first + (port - self.ports.first)
    }
}

/// One comma-separated item of a list.
enum Item {
    Forward(MappedRange),
    Exclude(PortRange),
}

impl PortRule {
    fn parse(text: &str, option: PortOption) -> Result<PortRule, PortError> {
        let invalid = || PortError::Invalid(text.into());
        let (addr, iface, list) = match text.split_once('/') {
            Some(_) if !option.allows_bind_prefix() => return Err(invalid()),
            Some((prefix, list)) => {
                let (addr, iface) = parse_bind_prefix(prefix).ok_or_else(invalid)?;
                (addr, iface, list)
            }
            None => (None, None, text),
        };
        let items = list
            .split(',')
            .map(parse_item)
            .collect::<Option<Vec<Item>>>()
            .ok_or_else(invalid)?;
        let mut rule = PortRule {
            spec: text.into(),
            addr,
            iface,
            ranges: Vec::new(),
            excluded: Vec::new(),
        };
        for item in items {
            match item {
                Item::Forward(range) => rule.ranges.push(range),
                Item::Exclude(range) => rule.excluded.push(range),
            }
        }
        rule.check_exclusions_disjoint()?;
        rule.check_no_port_zero(option)?;
        Ok(rule)
    }

    fn check_exclusions_disjoint(&self) -> Result<(), PortError> {
        let mut seen = PortSet::new();
        for port in self.excluded.iter().flat_map(PortRange::ports) {
            if !seen.insert(port) {
                return Err(PortError::OverlappingExclusions(self.spec.clone()));
            }
        }
        Ok(())
    }

    fn check_no_port_zero(&self, option: PortOption) -> Result<(), PortError> {
        if self.ranges.iter().any(|r| r.ports.first == 0) {
            return Err(PortError::PortZero {
                letter: option.letter(),
                spec: self.spec.clone(),
            });
        }
        Ok(())
    }

    /// A list of exclusions only.
    pub fn is_exclusion_only(&self) -> bool {
        self.ranges.is_empty()
    }

    fn is_excluded(&self, port: u16) -> bool {
        self.excluded.iter().any(|r| r.contains(port))
    }

    /// Every (port, target) pair this rule forwards.
    pub fn forwards(&self, ephemeral: PortRange) -> impl Iterator<Item = (u16, u16)> + '_ {
        let exclusion_only = self.is_exclusion_only();
        let ranges = if exclusion_only {
            std::slice::from_ref(&EVERY_PORT)
        } else {
            &self.ranges[..]
        };
        ranges
            .iter()
            .flat_map(|range| {
                range
                    .ports
                    .ports()
                    .map(|port| (port, range.target_of(port)))
            })
            .filter(move |&(port, _)| {
                let left_to_the_kernel = exclusion_only && ephemeral.contains(port);
                !(self.is_excluded(port) || left_to_the_kernel)
            })
    }
}

/// What an exclusion-only list starts from (before the ephemeral range).
const EVERY_PORT: MappedRange = MappedRange {
    ports: PortRange::new(1, u16::MAX),
    target_first: 1,
};

/// `ADDR`, `ADDR%IF`, `%IF`, `[ADDR]`, `[ADDR]%IF`.
fn parse_bind_prefix(prefix: &str) -> Option<(Option<IpAddr>, Option<String>)> {
    let (addr_text, iface) = match prefix.split_once('%') {
        Some((addr, iface)) if !iface.is_empty() && iface.len() <= IFNAME_MAX => {
            (addr, Some(iface.to_string()))
        }
        Some(_) => return None,
        None => (prefix, None),
    };
    if addr_text.is_empty() {
        return iface.map(|iface| (None, Some(iface)));
    }
    let unbracketed = addr_text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(addr_text);
    let addr: IpAddr = unbracketed.parse().ok()?;
    Some((Some(addr), iface))
}

fn parse_item(item: &str) -> Option<Item> {
    if let Some(excluded) = item.strip_prefix('~') {
        return parse_range(excluded).map(Item::Exclude);
    }
    let (ports, target) = match item.split_once(':') {
        Some((ports, target)) => (parse_range(ports)?, parse_range(target)?),
        None => (parse_range(item)?, parse_range(item)?),
    };
    let same_size = target.last - target.first == ports.last - ports.first;
    // Port 0 as a target is garbage; as a source it gets its own message.
    let zero_target = target.first == 0 && ports.first != 0;
    (same_size && !zero_target).then_some(Item::Forward(MappedRange {
        ports,
        target_first: target.first,
    }))
}

/// `P` or `P1-P2` with `P1 <= P2 <= 65535`.
fn parse_range(text: &str) -> Option<PortRange> {
    let (first, last) = match text.split_once('-') {
        Some((first, last)) => (parse_port(first)?, parse_port(last)?),
        None => (parse_port(text)?, parse_port(text)?),
    };
    (first <= last).then_some(PortRange::new(first, last))
}

fn parse_port(text: &str) -> Option<u16> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

impl PortRules {
    /// The per-port table of all rules; a later rule overrides an earlier
    /// one for the ports they share.
    pub fn port_map(&self, ephemeral: PortRange) -> PortMap {
        let mut map = PortMap::new();
        for rule in &self.rules {
            for (port, target) in rule.forwards(ephemeral) {
                map.set(port, target);
            }
        }
        map
    }

    /// The specs of rules that re-map a port an earlier rule forwards
    /// (upstream warns: "Altering mapping of already mapped port number").
    pub fn remapped_specs(&self, ephemeral: PortRange) -> Vec<&str> {
        let mut seen = PortSet::new();
        let mut remapped = Vec::new();
        for rule in &self.rules {
            let mut altered = false;
            for (port, _) in rule.forwards(ephemeral) {
                altered |= !seen.insert(port);
            }
            if altered {
                remapped.push(rule.spec.as_str());
            }
        }
        remapped
    }
}

/// A set of port numbers (a 65536-bit bitmap).
#[derive(Clone, PartialEq, Eq)]
pub struct PortSet {
    words: Box<[u64]>,
}

impl PortSet {
    pub fn new() -> PortSet {
        PortSet {
            words: vec![0; NUM_PORTS / 64].into_boxed_slice(),
        }
    }

    /// Adds `port`; false if it was already there.
    pub fn insert(&mut self, port: u16) -> bool {
        let (word, bit) = (usize::from(port) / 64, port % 64);
        let was_there = self.words[word] & (1 << bit) != 0;
        self.words[word] |= 1 << bit;
        !was_there
    }

    /// Removes `port`; false if it was not there.
    pub fn remove(&mut self, port: u16) -> bool {
        let (word, bit) = (usize::from(port) / 64, port % 64);
        let was_there = self.words[word] & (1 << bit) != 0;
        self.words[word] &= !(1 << bit);
        was_there
    }

    pub fn contains(&self, port: u16) -> bool {
        self.words[usize::from(port) / 64] & (1 << (port % 64)) != 0
    }

    /// Adds every port of `other`.
    pub fn union_with(&mut self, other: &PortSet) {
        for (w, o) in self.words.iter_mut().zip(other.words.iter()) {
            *w |= o;
        }
    }

    /// Removes every port of `other`.
    pub fn subtract(&mut self, other: &PortSet) {
        for (w, o) in self.words.iter_mut().zip(other.words.iter()) {
            *w &= !o;
        }
    }

    /// The ports in `self` but not in `other`, ascending (word by word).
    pub fn difference<'a>(&'a self, other: &'a PortSet) -> impl Iterator<Item = u16> + 'a {
        self.words
            .iter()
            .zip(other.words.iter())
            .enumerate()
            .flat_map(|(i, (w, o))| {
                let mut bits = w & !o;
                std::iter::from_fn(move || {
                    (bits != 0).then(|| {
                        let bit = bits.trailing_zeros();
                        bits &= bits - 1;
                        // i < 1024 and bit < 64: the result fits in a u16.
                        (i as u32 * 64 + bit) as u16
                    })
                })
            })
    }

    pub fn iter(&self) -> impl Iterator<Item = u16> + '_ {
        (0..=u16::MAX).filter(|&port| self.contains(port))
    }

    pub fn len(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.words.iter().all(|&w| w == 0)
    }
}

impl Default for PortSet {
    fn default() -> Self {
        PortSet::new()
    }
}

impl fmt::Debug for PortSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PortSet({} ports)", self.len())
    }
}

/// Forwarded ports and the port each one goes to on the other side.
#[derive(Clone, PartialEq, Eq)]
pub struct PortMap {
    forwarded: PortSet,
    targets: Box<[u16]>,
}

impl PortMap {
    pub fn new() -> PortMap {
        PortMap {
            forwarded: PortSet::new(),
            targets: vec![0; NUM_PORTS].into_boxed_slice(),
        }
    }

    pub fn set(&mut self, port: u16, target: u16) {
        self.forwarded.insert(port);
        self.targets[usize::from(port)] = target;
    }

    /// Where `port` is forwarded to, if it is.
    pub fn target(&self, port: u16) -> Option<u16> {
        self.forwarded
            .contains(port)
            .then(|| self.targets[usize::from(port)])
    }

    /// The forwarded ports, ascending.
    pub fn ports(&self) -> &PortSet {
        &self.forwarded
    }
}

impl Default for PortMap {
    fn default() -> Self {
        PortMap::new()
    }
}

impl fmt::Debug for PortMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PortMap({} ports)", self.forwarded.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_in(mode: Mode, option: PortOption, specs: &[&str]) -> Result<PortSpec, PortError> {
        let mut spec = None;
        for text in specs {
            spec = Some(PortSpec::parse_more(spec, text, option, mode, true)?);
        }
        Ok(spec.expect("at least one spec"))
    }

    fn rules(specs: &[&str]) -> PortRules {
        match parse_in(Mode::Passt, PortOption::Tcp, specs) {
            Ok(PortSpec::Rules(rules)) => rules,
            other => panic!("{specs:?}: {other:?}"),
        }
    }

    fn rule(text: &str) -> PortRule {
        rules(&[text]).rules.remove(0)
    }

    fn error(option: PortOption, text: &str) -> String {
        parse_in(Mode::Pasta, option, &[text])
            .unwrap_err()
            .to_string()
    }

    /// The (port, target) pairs of the map, ascending.
    fn forwarded(rules: &PortRules) -> Vec<(u16, u16)> {
        let map = rules.port_map(DEFAULT_EPHEMERAL);
        map.ports()
            .iter()
            .map(|p| (p, map.target(p).unwrap()))
            .collect()
    }

    fn range(first: u16, last: u16, target_first: u16) -> MappedRange {
        MappedRange {
            ports: PortRange::new(first, last),
            target_first,
        }
    }

    #[test]
    fn single_port() {
        let r = rule("22");
        assert_eq!((r.addr, r.iface.as_deref()), (None, None));
        assert_eq!(r.ranges, vec![range(22, 22, 22)]);
        assert_eq!(forwarded(&rules(&["22"])), vec![(22, 22)]);
    }

    #[test]
    fn port_to_other_port() {
        assert_eq!(rule("22:23").ranges, vec![range(22, 22, 23)]);
        assert_eq!(forwarded(&rules(&["22:23"])), vec![(22, 23)]);
    }

    #[test]
    fn list_of_ports() {
        assert_eq!(forwarded(&rules(&["22,25"])), vec![(22, 22), (25, 25)]);
    }

    #[test]
    fn port_range() {
        let map = forwarded(&rules(&["22-80"]));
        assert_eq!(map.len(), 59);
        assert_eq!((map[0], map[58]), ((22, 22), (80, 80)));
    }

    #[test]
    fn mapped_range_keeps_the_offset() {
        assert_eq!(rule("22-80:32-90").ranges, vec![range(22, 80, 32)]);
        let map = rules(&["22-80:32-90"]).port_map(DEFAULT_EPHEMERAL);
        assert_eq!(map.target(22), Some(32));
        assert_eq!(map.target(50), Some(60));
        assert_eq!(map.target(80), Some(90));
        assert_eq!(map.target(81), None);
    }

    #[test]
    fn bind_address() {
        let r = rule("192.0.2.1/22");
        assert_eq!(r.addr, Some("192.0.2.1".parse().unwrap()));
        assert_eq!(r.iface, None);
        assert_eq!(r.ranges, vec![range(22, 22, 22)]);
    }

    #[test]
    fn bind_address_and_interface() {
        let r = rule("192.0.2.1%eth0/22");
        assert_eq!(r.addr, Some("192.0.2.1".parse().unwrap()));
        assert_eq!(r.iface.as_deref(), Some("eth0"));
        assert_eq!(r.ranges, vec![range(22, 22, 22)]);
    }

    #[test]
    fn bind_interface_only() {
        let r = rule("%eth0/22");
        assert_eq!((r.addr, r.iface.as_deref()), (None, Some("eth0")));
    }

    #[test]
    fn ipv6_bind_address_with_or_without_brackets() {
        for text in ["[2001:db8::1]/22", "2001:db8::1/22"] {
            assert_eq!(
                rule(text).addr,
                Some("2001:db8::1".parse().unwrap()),
                "{text}"
            );
        }
        let r = rule("[2001:db8::1]%eth0/22");
        assert_eq!(r.iface.as_deref(), Some("eth0"));
        assert_eq!(
            rule("[192.0.2.1]/22").addr,
            Some("192.0.2.1".parse().unwrap())
        );
    }

    #[test]
    fn range_with_exclusion() {
        let r = rule("2000-5000,~3000-3010");
        assert_eq!(r.excluded, vec![PortRange::new(3000, 3010)]);
        let map = rules(&["2000-5000,~3000-3010"]).port_map(DEFAULT_EPHEMERAL);
        assert_eq!(map.ports().len(), 3001 - 11);
        assert_eq!(map.target(2999), Some(2999));
        assert_eq!(map.target(3000), None);
        assert_eq!(map.target(3010), None);
        assert_eq!(map.target(3011), Some(3011));
    }

    #[test]
    fn address_range_and_exclusion() {
        let r = rule("192.0.2.1/20-30,~25");
        assert_eq!(r.addr, Some("192.0.2.1".parse().unwrap()));
        let ports: Vec<u16> = forwarded(&rules(&["192.0.2.1/20-30,~25"]))
            .iter()
            .map(|p| p.0)
            .collect();
        assert_eq!(ports, vec![20, 21, 22, 23, 24, 26, 27, 28, 29, 30]);
    }

    #[test]
    fn exclusion_first_is_the_same() {
        assert_eq!(
            forwarded(&rules(&["~25,20-30"])),
            forwarded(&rules(&["20-30,~25"]))
        );
    }

    #[test]
    fn exclusions_only_mean_all_non_ephemeral_ports() {
        let r = rule("~20000-20010");
        assert!(r.is_exclusion_only());
        let map = rules(&["~20000-20010"]).port_map(DEFAULT_EPHEMERAL);
        assert_eq!(map.target(0), None);
        assert_eq!(map.target(1), Some(1));
        assert_eq!(map.target(19999), Some(19999));
        assert_eq!(map.target(20000), None);
        assert_eq!(map.target(20010), None);
        assert_eq!(map.target(20011), Some(20011));
        assert_eq!(map.target(49151), Some(49151));
        assert_eq!(map.target(49152), None);
        assert_eq!(map.target(65535), None);
        assert_eq!(map.ports().len(), 49151 - 11);
    }

    #[test]
    fn exclusions_only_follow_the_host_ephemeral_range() {
        let map = rules(&["~22"]).port_map(PortRange::new(32768, 60999));
        assert_eq!(map.target(32767), Some(32767));
        assert_eq!(map.target(32768), None);
        assert_eq!(map.target(61000), Some(61000));
        assert_eq!(map.target(65535), Some(65535));
    }

    #[test]
    fn highest_port_works() {
        assert_eq!(forwarded(&rules(&["65535"])), vec![(65535, 65535)]);
        assert_eq!(forwarded(&rules(&["1:65535"])), vec![(1, 65535)]);
        let map = rules(&["5-10:65530-65535"]).port_map(DEFAULT_EPHEMERAL);
        assert_eq!(map.target(10), Some(65535));
        assert_eq!(
            rules(&["65535"])
                .port_map(DEFAULT_EPHEMERAL)
                .ports()
                .iter()
                .last(),
            Some(65535)
        );
    }

    #[test]
    fn keywords() {
        assert_eq!(
            parse_in(Mode::Passt, PortOption::Tcp, &["none"]),
            Ok(PortSpec::None)
        );
        assert_eq!(
            parse_in(Mode::Pasta, PortOption::Tcp, &["none"]),
            Ok(PortSpec::None)
        );
        assert_eq!(
            parse_in(Mode::Passt, PortOption::Udp, &["all"]),
            Ok(PortSpec::All)
        );
        assert_eq!(
            parse_in(Mode::Pasta, PortOption::TcpNs, &["auto"]),
            Ok(PortSpec::Auto)
        );
    }

    #[test]
    fn all_is_passt_only_and_auto_pasta_only() {
        assert_eq!(
            parse_in(Mode::Pasta, PortOption::Tcp, &["all"])
                .unwrap_err()
                .to_string(),
            "'all' port forwarding is only allowed for passt"
        );
        assert_eq!(
            parse_in(Mode::Passt, PortOption::Tcp, &["auto"])
                .unwrap_err()
                .to_string(),
            "'auto' port forwarding is only allowed for pasta"
        );
    }

    #[test]
    fn repeated_options_accumulate() {
        let r = rules(&["22", "80-81:8080-8081"]);
        assert_eq!(r.rules.len(), 2);
        assert_eq!(forwarded(&r), vec![(22, 22), (80, 8080), (81, 8081)]);
        assert!(r.remapped_specs(DEFAULT_EPHEMERAL).is_empty());
    }

    #[test]
    fn remapping_a_port_is_reported_and_the_later_rule_wins() {
        let r = rules(&["20-25", "22:30"]);
        assert_eq!(r.remapped_specs(DEFAULT_EPHEMERAL), vec!["22:30"]);
        assert_eq!(r.port_map(DEFAULT_EPHEMERAL).target(22), Some(30));
        assert_eq!(
            rules(&["22,22"]).remapped_specs(DEFAULT_EPHEMERAL),
            vec!["22,22"]
        );
    }

    #[test]
    fn keywords_do_not_mix_with_anything() {
        let conflict = |mode, specs: &[&str]| {
            parse_in(mode, PortOption::Tcp, specs)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            conflict(Mode::Passt, &["22", "none"]),
            "Port forwarding mode 'none' conflicts with previous mode"
        );
        assert_eq!(
            conflict(Mode::Passt, &["none", "none"]),
            "Port forwarding mode 'none' conflicts with previous mode"
        );
        assert_eq!(
            conflict(Mode::Passt, &["22", "all"]),
            "Port forwarding mode 'all' conflicts with previous mode"
        );
        assert_eq!(
            conflict(Mode::Pasta, &["auto", "auto"]),
            "Port forwarding mode 'auto' conflicts with previous mode"
        );
        assert_eq!(
            conflict(Mode::Passt, &["none", "22"]),
            "Specific ports cannot be specified together with all/none/auto"
        );
        assert_eq!(
            conflict(Mode::Passt, &["all", "22"]),
            "Specific ports cannot be specified together with all/none/auto"
        );
        for mixed in ["none,22", "22,none", "all,22", "22,all", "auto,22"] {
            assert_eq!(
                error(PortOption::Tcp, mixed),
                format!("Invalid port specifier {mixed}")
            );
        }
    }

    #[test]
    fn malformed_specs() {
        for bad in [
            "",
            "foo",
            "22x",
            "x22",
            "22-",
            "-22",
            "22:",
            ":22",
            "22-20",
            "~22-20",
            "22,,23",
            "22,",
            ",22",
            "~",
            "65536",
            "70000",
            "1-65536",
            "22-80:32",
            "22:32-90",
            "22-80:32-40",
            "10-20:30-50",
            "80-70:1-11",
            "5-10:65531-65536",
            "22:0",
            "+22",
            " 22",
            "192.0.2.1",
            "192.0.2.1/",
            "/22",
            "300.0.0.1/22",
            "[::1%lo]/22",
            "%/22",
            "192.0.2.1%/22",
            "%abcdefghijklmnop/22",
            "192.0.2.1%eth0",
            "[192.0.2.1/22",
        ] {
            assert_eq!(
                error(PortOption::Tcp, bad),
                format!("Invalid port specifier {bad}"),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn bind_prefix_is_for_host_side_options_only() {
        assert_eq!(
            error(PortOption::TcpNs, "192.0.2.1/22"),
            "Invalid port specifier 192.0.2.1/22"
        );
        assert_eq!(
            error(PortOption::UdpNs, "%eth0/22"),
            "Invalid port specifier %eth0/22"
        );
        assert!(parse_in(Mode::Pasta, PortOption::Udp, &["%eth0/22"]).is_ok());
    }

    #[test]
    fn port_zero() {
        assert_eq!(
            error(PortOption::Tcp, "0"),
            "Can't forward port 0 for option '-t 0'"
        );
        assert_eq!(
            error(PortOption::Udp, "0-5"),
            "Can't forward port 0 for option '-u 0-5'"
        );
        assert_eq!(
            error(PortOption::TcpNs, "0:80"),
            "Can't forward port 0 for option '-T 0:80'"
        );
    }

    #[test]
    fn overlapping_exclusions() {
        for bad in ["~20-30,~25", "~20-30,~25-35", "~30,~30", "1-100,~10-20,~20"] {
            assert_eq!(
                error(PortOption::Tcp, bad),
                format!("Overlapping excluded ranges {bad}")
            );
        }
        assert!(parse_in(Mode::Pasta, PortOption::Tcp, &["~20-30,~31"]).is_ok());
    }

    #[test]
    fn disabled_protocol() {
        let err = |option, text| {
            PortSpec::parse_more(None, text, option, Mode::Pasta, false)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            err(PortOption::Tcp, "22"),
            "TCP port forwarding requested but TCP is disabled"
        );
        assert_eq!(
            err(PortOption::UdpNs, "auto"),
            "UDP port forwarding requested but UDP is disabled"
        );
        assert_eq!(
            PortSpec::parse_more(None, "none", PortOption::Tcp, Mode::Pasta, false),
            Ok(PortSpec::None)
        );
    }

    #[test]
    fn port_set_bounds() {
        let mut set = PortSet::new();
        assert!(set.is_empty());
        assert!(set.insert(0) && set.insert(65535) && !set.insert(65535));
        assert!(set.contains(0) && set.contains(65535) && !set.contains(1));
        assert_eq!(set.iter().collect::<Vec<_>>(), vec![0, 65535]);
        assert_eq!(set.len(), 2);
    }

    #[test]
    fn port_set_operations() {
        let set = |ports: &[u16]| {
            let mut s = PortSet::new();
            ports.iter().for_each(|&p| {
                s.insert(p);
            });
            s
        };
        let mut a = set(&[0, 1, 63, 64, 4000, 65535]);
        let b = set(&[1, 64, 65535, 80]);
        assert_eq!(a.difference(&b).collect::<Vec<_>>(), vec![0, 63, 4000]);
        assert_eq!(b.difference(&a).collect::<Vec<_>>(), vec![80]);
        assert!(a.remove(63) && !a.remove(63) && !a.contains(63));
        a.union_with(&b);
        assert_eq!(a, set(&[0, 1, 64, 80, 4000, 65535]));
        a.subtract(&b);
        assert_eq!(a, set(&[0, 4000]));
    }
}
