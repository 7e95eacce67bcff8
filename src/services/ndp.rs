//! Neighbour Discovery (RFC 4861) answered for the guest (REFERENCE.md
//! §2.3): we are the only other node on the link and its router.
//!
//! - A Neighbor Solicitation from a real (non-`::`) source gets a Neighbor
//!   Advertisement for *any* target (R, S, O flags, target link-layer
//!   address = our MAC), so every IPv6 destination resolves to us. DAD
//!   probes (source `::`) get nothing: the guest's address must stay free.
//! - A Router Solicitation gets a Router Advertisement (unless `--no-ra`):
//!   cur hop limit 255, router lifetime 65535 s, M=1 O=0 (upstream always
//!   sets M, even with `--no-dhcpv6`), then the options Prefix Information
//!   (the /64 of the assigned address, L and A, infinite lifetimes; none in
//!   local mode without an address; the bits after the prefix are zeroed
//!   as RFC 4861 §4.6.2 asks, where upstream copies the whole address), MTU (unless 0), RDNSS (RFC 8106: up to
//!   three servers, infinite lifetime, when nameservers are advertised),
//!   DNSSL (the search list in DNS wire format, only together with RDNSS,
//!   when the search list is advertised) and source link-layer address.
//!   The reply is unicast to the solicitation's source, or sent to ff02::1
//!   if that is `::` (RFC 4861 §6.2.6).
//! - [`unsolicited_ra`] builds the same RA for ff02::1; [`RaSchedule`] says
//!   when one is due (random 200-600 s intervals, the first one after one
//!   interval, as upstream's `ndp_timer()`).
//!
//! Everything we send comes from our link-local address
//! (`Ip6Config::our_link_local`) and our MAC, with hop limit 255 and a
//! correct ICMPv6 checksum (the guest's kernel drops anything else). Frames
//! go to the Ethernet source of the solicitation; unsolicited RAs go to the
//! guest's MAC as last seen, as upstream (broadcast until it is known).
//!
//! Invariants: solicitations are validated before they are answered (RFC
//! 4861 §6.1.1, §7.1.1: hop limit 255, code 0, NS length and a unicast
//! target, every option of non-zero length within the message), otherwise
//! refused as malformed; other ICMPv6 (including RAs and NAs from the guest),
//! fragments and unparsable IPv6 are not ours (`Ok(None)`). Replies are
//! written through a bounds-checked cursor and never exceed `out`.
//! Neighbours: dispatched from `engine` for ICMPv6 frames before the ICMP
//! echo flows; the event loop drives [`RaSchedule`]; reads `conf` and
//! [`LinkFacts`] only. `etherparse` parses, and writes the fixed headers and
//! the options it models; RDNSS and DNSSL, which it does not model, are
//! written here.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use etherparse::icmpv6::{
    NdpOptionType, NdpOptionsIterator, NeighborAdvertisementHeader,
    NeighborSolicitationPayloadSlice, PrefixInformation, RouterAdvertisementHeader,
    RouterAdvertisementPayload, TYPE_NEIGHBOR_SOLICITATION, TYPE_ROUTER_SOLICITATION,
};
use etherparse::{
    EtherType, Ethernet2Header, Icmpv6Header, Icmpv6Slice, Icmpv6Type, IpNumber, Ipv6Header,
};

use super::{Answer, LinkFacts, Refused};
use crate::conf::{Config, DnsConfig, Ip6Config};

const MALFORMED: Refused = Refused::Malformed("NDP");

/// Hop limit of every NDP message, sent and accepted (RFC 4861).
const NDP_HOP_LIMIT: u8 = 255;
/// Router lifetime in RAs, seconds (the maximum, RFC 8319).
const ROUTER_LIFETIME: u16 = 65535;
/// "Infinity" for prefix, RDNSS and DNSSL lifetimes.
const INFINITE: u32 = u32::MAX;
/// Length of the advertised prefix.
const PREFIX_LEN: u8 = 64;
/// All-nodes multicast address, destination of unsolicited RAs.
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
/// Option types RFC 8106 adds and `etherparse` does not name.
const OPT_RDNSS: u8 = 25;
const OPT_DNSSL: u8 = 31;
/// Upstream advertises at most this many nameservers and search domains.
const MAX_SERVERS: usize = 3;
const MAX_SEARCH: usize = 6;
/// NDP options are sized in units of 8 bytes.
const OPTION_UNIT: usize = 8;
/// Ethernet, IPv6 and the fixed ICMPv6 header before a message body.
const HEADERS_LEN: usize = Ethernet2Header::LEN + Ipv6Header::LEN + Icmpv6Header::MIN_LEN;

/// Unsolicited RA intervals (upstream: MinRtrAdvInterval 200 s, and
/// MaxRtrAdvInterval 600 s, exclusive).
const RA_INTERVAL_MIN_SECS: u64 = 200;
const RA_INTERVAL_MAX_SECS: u64 = 600;

/// Answers a Neighbor or Router Solicitation in `frame`, writing the
/// advertisement into `out`.
pub fn answer(config: &Config, link: &LinkFacts, frame: &[u8], out: &mut [u8]) -> Answer {
    let Some(ip6) = ndp_enabled(config) else {
        return Ok(None);
    };
    let Some(solicitation) = parse(frame)? else {
        return Ok(None);
    };
    let route = |dst| Route {
        src_mac: link.our_mac,
        dst_mac: solicitation.mac,
        src: ip6.our_link_local,
        dst,
    };
    let source = solicitation.source;
    match solicitation.kind {
        Kind::Neighbor { target } if !source.is_unspecified() => {
            Ok(write_na(&route(source), target, out))
        }
        Kind::Router if config.services.ra => {
            let dst = if source.is_unspecified() {
                ALL_NODES
            } else {
                source
            };
            Ok(write_ra(config, ip6, &route(dst), out))
        }
        _ => Ok(None),
    }
}

/// Builds an unsolicited RA for ff02::1 into `out`; `None` if RAs are off
/// (no IPv6, `--no-ndp`, `--no-ra`) or `out` is too short.
pub fn unsolicited_ra(config: &Config, link: &LinkFacts, out: &mut [u8]) -> Option<usize> {
    let ip6 = ndp_enabled(config).filter(|_| config.services.ra)?;
    let route = Route {
        src_mac: link.our_mac,
        dst_mac: link.guest_mac,
        src: ip6.our_link_local,
        dst: ALL_NODES,
    };
    write_ra(config, ip6, &route, out)
}

/// When the next unsolicited RA is due: a random 200-600 s after the
/// previous one (or after start). Upstream's PRNG is `random()`; here it is
/// SplitMix64 seeded from std's per-process random keys (getrandom), which
/// is plenty for spreading timers.
#[derive(Debug)]
pub struct RaSchedule {
    next: Instant,
    rng: u64,
}

impl RaSchedule {
    /// A schedule whose first RA is due one random interval after `now`.
    pub fn new(now: Instant) -> RaSchedule {
        let mut schedule = RaSchedule {
            next: now,
            rng: RandomState::new().build_hasher().finish(),
        };
        schedule.next = now + schedule.interval();
        schedule
    }

    /// When the next RA is due (for the event loop's timeout).
    pub fn next_due(&self) -> Instant {
        self.next
    }

    /// Whether an RA is due at `now`; if so, the next one is scheduled one
    /// random interval after `now`.
    pub fn due(&mut self, now: Instant) -> bool {
        if now < self.next {
            return false;
        }
        self.next = now + self.interval();
        true
    }

    /// A random interval in [200 s, 600 s), in whole seconds.
    fn interval(&mut self) -> Duration {
        let spread = RA_INTERVAL_MAX_SECS - RA_INTERVAL_MIN_SECS;
        Duration::from_secs(RA_INTERVAL_MIN_SECS + self.next_random() % spread)
    }

    /// SplitMix64 (Steele, Lea, Flood 2014): any state is a good state.
    fn next_random(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// The IPv6 configuration if NDP is answered at all.
fn ndp_enabled(config: &Config) -> Option<&Ip6Config> {
    config.ip6.as_ref().filter(|_| config.services.ndp)
}

/// A validated solicitation, as far as the answer needs it.
struct Solicitation {
    /// Ethernet source: where the answer goes.
    mac: [u8; 6],
    /// IPv6 source (may be `::`).
    source: Ipv6Addr,
    kind: Kind,
}

enum Kind {
    Router,
    Neighbor { target: Ipv6Addr },
}

/// The solicitation in `frame`, `None` if the frame is no solicitation.
fn parse(frame: &[u8]) -> Result<Option<Solicitation>, Refused> {
    let Some((eth, ip)) = crate::wire::ipv6_carrying(frame, IpNumber::IPV6_ICMP) else {
        return Ok(None);
    };
    let payload = ip.payload();
    let Ok(icmp) = Icmpv6Slice::from_slice(payload.payload) else {
        return Ok(None);
    };
    let (kind, options) = match icmp.type_u8() {
        TYPE_ROUTER_SOLICITATION => (Kind::Router, icmp.payload()),
        TYPE_NEIGHBOR_SOLICITATION => {
            let ns = NeighborSolicitationPayloadSlice::from_slice(icmp.payload())
                .map_err(|_| MALFORMED)?;
            let target = ns.target_address();
            if target.is_multicast() {
                return Err(MALFORMED);
            }
            (Kind::Neighbor { target }, ns.options())
        }
        _ => return Ok(None),
    };
    let options_ok = NdpOptionsIterator::from_slice(options).all(|option| option.is_ok());
    if ip.header().hop_limit() != NDP_HOP_LIMIT || icmp.code_u8() != 0 || !options_ok {
        return Err(MALFORMED);
    }
    Ok(Some(Solicitation {
        mac: eth.source(),
        source: ip.header().source_addr(),
        kind,
    }))
}

/// Link and network addresses of a reply.
struct Route {
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: Ipv6Addr,
    dst: Ipv6Addr,
}

/// "`target` is at our MAC", as the router and with override.
fn write_na(route: &Route, target: Ipv6Addr, out: &mut [u8]) -> Option<usize> {
    let flags = NeighborAdvertisementHeader {
        router: true,
        solicited: true,
        r#override: true,
    };
    emit(
        route,
        Icmpv6Type::NeighborAdvertisement(flags),
        out,
        |body| {
            body.put(&target.octets())?;
            put_link_layer_address(
                body,
                NdpOptionType::TARGET_LINK_LAYER_ADDRESS,
                route.src_mac,
            )
        },
    )
}

/// The router advertisement described in the module comment.
fn write_ra(config: &Config, ip6: &Ip6Config, route: &Route, out: &mut [u8]) -> Option<usize> {
    let header = RouterAdvertisementHeader {
        cur_hop_limit: NDP_HOP_LIMIT,
        managed_address_config: true,
        other_config: false,
        router_lifetime: ROUTER_LIFETIME,
    };
    emit(
        route,
        Icmpv6Type::RouterAdvertisement(header),
        out,
        |body| {
            let timers = RouterAdvertisementPayload {
                reachable_time: 0,
                retrans_timer: 0,
            };
            body.put(&timers.to_bytes())?;
            put_prefix(body, ip6.addr)?;
            put_mtu(body, config.mtu)?;
            if put_rdnss(body, &config.dns)? && config.dns.advertise_search {
                put_dnssl(body, &config.dns.search)?;
            }
            put_link_layer_address(
                body,
                NdpOptionType::SOURCE_LINK_LAYER_ADDRESS,
                route.src_mac,
            )
        },
    )
}

/// Writes a whole frame: `body` writes the ICMPv6 message after its fixed
/// header, then the headers go in front, checksum included. Returns the
/// frame length, `None` if it does not fit in `out`.
fn emit(
    route: &Route,
    icmp_type: Icmpv6Type,
    out: &mut [u8],
    body: impl FnOnce(&mut Cursor) -> Option<()>,
) -> Option<usize> {
    let (headers, rest) = out.split_at_mut_checked(HEADERS_LEN)?;
    let mut cursor = Cursor { buf: rest, len: 0 };
    body(&mut cursor)?;
    let body = &cursor.buf[..cursor.len];
    let icmp = icmp_type
        .to_header(route.src.octets(), route.dst.octets(), body)
        .ok()?;
    let ip = Ipv6Header {
        payload_length: u16::try_from(Icmpv6Header::MIN_LEN + body.len()).ok()?,
        next_header: IpNumber::IPV6_ICMP,
        hop_limit: NDP_HOP_LIMIT,
        source: route.src.octets(),
        destination: route.dst.octets(),
        ..Ipv6Header::default()
    };
    let eth = Ethernet2Header {
        source: route.src_mac,
        destination: route.dst_mac,
        ether_type: EtherType::IPV6,
    };
    let (eth_out, rest) = headers.split_at_mut(Ethernet2Header::LEN);
    let (ip_out, icmp_out) = rest.split_at_mut(Ipv6Header::LEN);
    eth_out.copy_from_slice(&eth.to_bytes());
    ip_out.copy_from_slice(&ip.to_bytes());
    icmp_out.copy_from_slice(&icmp.to_bytes());
    Some(HEADERS_LEN + body.len())
}

/// Bounds-checked writer appending to a reply buffer.
struct Cursor<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl Cursor<'_> {
    fn put(&mut self, bytes: &[u8]) -> Option<()> {
        let end = self.len.checked_add(bytes.len())?;
        self.buf.get_mut(self.len..end)?.copy_from_slice(bytes);
        self.len = end;
        Some(())
    }

    /// Type, length in 8-byte units and two reserved bytes, then a 32-bit
    /// lifetime: the common start of RDNSS and DNSSL.
    fn put_option_start(&mut self, option_type: u8, units: usize, lifetime: u32) -> Option<()> {
        self.put(&[option_type, u8::try_from(units).ok()?, 0, 0])?;
        self.put(&lifetime.to_be_bytes())
    }
}

fn put_link_layer_address(
    body: &mut Cursor,
    option_type: NdpOptionType,
    mac: [u8; 6],
) -> Option<()> {
    body.put(&[option_type.0, 1])?;
    body.put(&mac)
}

/// Prefix Information for the /64 of `addr`; nothing if it is `::`.
fn put_prefix(body: &mut Cursor, addr: Ipv6Addr) -> Option<()> {
    if addr.is_unspecified() {
        return Some(());
    }
    let prefix = u128::from(addr) & (u128::MAX << (128 - u32::from(PREFIX_LEN)));
    let info = PrefixInformation {
        prefix_length: PREFIX_LEN,
        on_link: true,
        autonomous_address_configuration: true,
        valid_lifetime: INFINITE,
        preferred_lifetime: INFINITE,
        prefix: prefix.to_be_bytes(),
    };
    body.put(&info.to_bytes())
}

/// MTU option; nothing if the MTU is 0 ("don't advertise").
fn put_mtu(body: &mut Cursor, mtu: u32) -> Option<()> {
    if mtu == 0 {
        return Some(());
    }
    body.put(&[NdpOptionType::MTU.0, 1, 0, 0])?;
    body.put(&mtu.to_be_bytes())
}

/// RDNSS with the IPv6 nameservers, if they are advertised and there are
/// any; says whether it was written.
fn put_rdnss(body: &mut Cursor, dns: &DnsConfig) -> Option<bool> {
    let servers = &dns.servers6[..dns.servers6.len().min(MAX_SERVERS)];
    if !dns.advertise_servers || servers.is_empty() {
        return Some(false);
    }
    body.put_option_start(OPT_RDNSS, 1 + 2 * servers.len(), INFINITE)?;
    for server in servers {
        body.put(&server.octets())?;
    }
    Some(true)
}

/// DNSSL with the search domains that can be encoded, zero-padded to a
/// whole option unit; nothing if there are none.
fn put_dnssl(body: &mut Cursor, search: &[String]) -> Option<()> {
    let names = search.iter().take(MAX_SEARCH);
    let names = names.filter_map(|domain| Some((domain, wire_len(domain)?)));
    let names_len: usize = names.clone().map(|(_, len)| len).sum();
    if names_len == 0 {
        return Some(());
    }
    let padded = names_len.next_multiple_of(OPTION_UNIT);
    body.put_option_start(OPT_DNSSL, 1 + padded / OPTION_UNIT, INFINITE)?;
    for (domain, _) in names {
        put_wire_name(body, domain)?;
    }
    body.put(&[0; OPTION_UNIT][..padded - names_len])
}

/// Labels of a domain name; empty labels (a trailing dot) are dropped.
fn labels(domain: &str) -> impl Iterator<Item = &str> {
    domain.split('.').filter(|label| !label.is_empty())
}

/// Length of `domain` in DNS wire format (RFC 1035 §3.1: length-prefixed
/// labels, then the root's 0), or `None` if it cannot be encoded there (no
/// label, a label over 63 bytes, a name over 255).
fn wire_len(domain: &str) -> Option<usize> {
    let mut len = 1;
    for label in labels(domain) {
        if label.len() > 63 {
            return None;
        }
        len += 1 + label.len();
    }
    (len > 1 && len <= 255).then_some(len)
}

/// Writes a domain that [`wire_len`] accepts.
fn put_wire_name(body: &mut Cursor, domain: &str) -> Option<()> {
    for label in labels(domain) {
        body.put(&[u8::try_from(label.len()).ok()?])?;
        body.put(label.as_bytes())?;
    }
    body.put(&[0])
}

#[cfg(test)]
mod tests {
    use etherparse::icmpv6::RouterAdvertisementPayloadSlice;
    use etherparse::{Icmpv6Type, NetSlice, PacketBuilder, SlicedPacket, TransportSlice};

    use super::*;
    use crate::conf::{Mode, fixture};
    use crate::services::REPLY_MAX;

    const GUEST_MAC: [u8; 6] = [0x52, 0x54, 0, 0x12, 0x34, 0x56];
    const GUEST_LL: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0x5054, 0xff, 0xfe12, 0x3456);
    const NS_LEN: usize = 24;
    const SLLA: [u8; 8] = [1, 1, 0x52, 0x54, 0, 0x12, 0x34, 0x56];

    /// passt on the fixture host: RAs on, nameservers and search list
    /// advertised (2001:db8::53, example.test).
    fn config() -> Config {
        fixture::config(Mode::Passt, &[])
    }

    fn our_ll(config: &Config) -> Ipv6Addr {
        config.ip6.as_ref().unwrap().our_link_local
    }

    fn frame(
        src: Ipv6Addr,
        dst: Ipv6Addr,
        hop_limit: u8,
        icmp_type: Icmpv6Type,
        body: &[u8],
    ) -> Vec<u8> {
        let builder = PacketBuilder::ethernet2(GUEST_MAC, [0x33, 0x33, 0, 0, 0, 2])
            .ipv6(src.octets(), dst.octets(), hop_limit)
            .icmpv6(icmp_type);
        let mut frame = Vec::new();
        builder.write(&mut frame, body).unwrap();
        frame
    }

    fn ns_from(src: Ipv6Addr, target: Ipv6Addr) -> Vec<u8> {
        let body = [&target.octets()[..], &SLLA].concat();
        let dst = "ff02::1:ff00:1".parse().unwrap();
        frame(src, dst, 255, Icmpv6Type::NeighborSolicitation, &body)
    }

    fn ns(target: &str) -> Vec<u8> {
        ns_from(GUEST_LL, target.parse().unwrap())
    }

    fn rs_from(src: Ipv6Addr) -> Vec<u8> {
        let body = if src.is_unspecified() {
            &[][..]
        } else {
            &SLLA[..]
        };
        frame(
            src,
            "ff02::2".parse().unwrap(),
            255,
            Icmpv6Type::RouterSolicitation,
            body,
        )
    }

    fn run(config: &Config, frame: &[u8]) -> (Answer, Vec<u8>) {
        let mut out = vec![0; REPLY_MAX];
        let answer = answer(config, &LinkFacts::new(config), frame, &mut out);
        out.truncate(answer.ok().flatten().unwrap_or(0));
        (answer, out)
    }

    /// A reply as sent: Ethernet and IPv6 headers, ICMPv6 type and body,
    /// after checking the lengths, the hop limit and the checksum.
    struct Reply {
        eth: Ethernet2Header,
        ip: Ipv6Header,
        icmp_type: Icmpv6Type,
        body: Vec<u8>,
    }

    fn parse_reply(frame: &[u8]) -> Reply {
        let packet = SlicedPacket::from_ethernet(frame).unwrap();
        let eth = Ethernet2Header::from_slice(frame).unwrap().0;
        let Some(NetSlice::Ipv6(ip)) = packet.net else {
            panic!("not IPv6")
        };
        let Some(TransportSlice::Icmpv6(icmp)) = packet.transport else {
            panic!("not ICMPv6")
        };
        let ip = ip.header().to_header();
        assert_eq!(ip.hop_limit, 255);
        assert_eq!(
            usize::from(ip.payload_length),
            frame.len() - 54,
            "payload length"
        );
        assert!(
            icmp.is_checksum_valid(ip.source, ip.destination),
            "checksum"
        );
        Reply {
            eth,
            ip,
            icmp_type: icmp.icmp_type(),
            body: icmp.payload().to_vec(),
        }
    }

    fn ra_options(config: &Config, frame: &[u8]) -> Vec<Vec<u8>> {
        let reply = parse_reply(frame);
        assert_eq!(reply.eth.source, config.our_mac);
        assert_eq!(reply.ip.source, our_ll(config).octets());
        let Icmpv6Type::RouterAdvertisement(header) = reply.icmp_type else {
            panic!("not an RA")
        };
        let expected = RouterAdvertisementHeader {
            cur_hop_limit: 255,
            managed_address_config: true,
            other_config: false,
            router_lifetime: 65535,
        };
        assert_eq!(header, expected);
        let payload = RouterAdvertisementPayloadSlice::from_slice(&reply.body).unwrap();
        assert_eq!((payload.reachable_time(), payload.retrans_timer()), (0, 0));
        let options = payload
            .options_iterator()
            .map(|option| option.unwrap().as_bytes().to_vec());
        options.collect()
    }

    fn solicited_ra_options(config: &Config) -> Vec<Vec<u8>> {
        let (answer, frame) = run(config, &rs_from(GUEST_LL));
        assert!(matches!(answer, Ok(Some(_))), "{answer:?}");
        ra_options(config, &frame)
    }

    fn option_types(options: &[Vec<u8>]) -> Vec<u8> {
        options.iter().map(|option| option[0]).collect()
    }

    fn prefix_option(prefix: &str) -> Vec<u8> {
        let info = PrefixInformation {
            prefix_length: 64,
            on_link: true,
            autonomous_address_configuration: true,
            valid_lifetime: u32::MAX,
            preferred_lifetime: u32::MAX,
            prefix: prefix.parse::<Ipv6Addr>().unwrap().octets(),
        };
        info.to_bytes().to_vec()
    }

    fn source_ll_option(config: &Config) -> Vec<u8> {
        [&[1, 1][..], &config.our_mac].concat()
    }

    #[test]
    fn neighbor_solicitation_gets_our_mac() {
        let config = config();
        let (answer, frame) = run(&config, &ns("fe80::1"));
        assert_eq!(answer, Ok(Some(54 + 8 + 16 + 8)));
        let reply = parse_reply(&frame);
        assert_eq!(reply.eth.destination, GUEST_MAC);
        assert_eq!(reply.eth.source, config.our_mac);
        assert_eq!(reply.eth.ether_type, EtherType::IPV6);
        assert_eq!(reply.ip.source, our_ll(&config).octets());
        assert_eq!(reply.ip.destination, GUEST_LL.octets());
        let flags = NeighborAdvertisementHeader {
            router: true,
            solicited: true,
            r#override: true,
        };
        assert_eq!(reply.icmp_type, Icmpv6Type::NeighborAdvertisement(flags));
        let target_option = [&[2, 1][..], &config.our_mac].concat();
        let expected = [
            &"fe80::1".parse::<Ipv6Addr>().unwrap().octets()[..],
            &target_option,
        ]
        .concat();
        assert_eq!(reply.body, expected);
    }

    #[test]
    fn any_target_is_ours_but_dad_probes_get_nothing() {
        let config = config();
        for target in [
            "2001:db8::1",
            "2001:db8::10",
            "2001:db8:ffff::1",
            "fe80::abcd",
        ] {
            let (answer, frame) = run(&config, &ns(target));
            assert!(matches!(answer, Ok(Some(_))), "{target}: {answer:?}");
            assert_eq!(
                parse_reply(&frame).body[..16],
                target.parse::<Ipv6Addr>().unwrap().octets()
            );
        }
        let dad = ns_from(Ipv6Addr::UNSPECIFIED, "2001:db8::10".parse().unwrap());
        assert_eq!(run(&config, &dad).0, Ok(None));
    }

    #[test]
    fn router_solicitation_gets_a_full_router_advertisement() {
        let config = config();
        let (_, frame) = run(&config, &rs_from(GUEST_LL));
        let reply = parse_reply(&frame);
        assert_eq!(reply.eth.destination, GUEST_MAC);
        assert_eq!(reply.ip.destination, GUEST_LL.octets());
        let rdnss = [
            &[25, 3, 0, 0, 0xff, 0xff, 0xff, 0xff][..],
            &"2001:db8::53".parse::<Ipv6Addr>().unwrap().octets(),
        ]
        .concat();
        let dnssl = [
            &[31, 3, 0, 0, 0xff, 0xff, 0xff, 0xff][..],
            b"\x07example\x04test\0\0\0",
        ]
        .concat();
        let expected = vec![
            prefix_option("2001:db8::"),
            vec![5, 1, 0, 0, 0, 0, 0xff, 0xf0],
            rdnss,
            dnssl,
            source_ll_option(&config),
        ];
        assert_eq!(ra_options(&config, &frame), expected);
    }

    #[test]
    fn solicitation_from_unspecified_gets_a_multicast_ra() {
        let config = config();
        let (_, frame) = run(&config, &rs_from(Ipv6Addr::UNSPECIFIED));
        let reply = parse_reply(&frame);
        assert_eq!(reply.ip.destination, ALL_NODES.octets());
        assert_eq!(reply.eth.destination, GUEST_MAC);
    }

    #[test]
    fn prefix_is_the_64_of_the_assigned_address() {
        let mut config = config();
        config.ip6.as_mut().unwrap().addr = "2001:db8:1:2:3:4:5:6".parse().unwrap();
        assert_eq!(
            solicited_ra_options(&config)[0],
            prefix_option("2001:db8:1:2::")
        );
        config.ip6.as_mut().unwrap().addr = Ipv6Addr::UNSPECIFIED;
        assert_eq!(option_types(&solicited_ra_options(&config)), [5, 25, 31, 1]);
    }

    #[test]
    fn mtu_option_follows_the_configuration() {
        let mut config = config();
        config.mtu = 1500;
        assert_eq!(
            solicited_ra_options(&config)[1],
            [5, 1, 0, 0, 0, 0, 0x05, 0xdc]
        );
        config.mtu = 0;
        assert_eq!(option_types(&solicited_ra_options(&config)), [3, 25, 31, 1]);
    }

    #[test]
    fn rdnss_carries_up_to_three_servers() {
        let mut config = config();
        let servers: Vec<Ipv6Addr> = (1..=4)
            .map(|i| Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, i))
            .collect();
        config.dns.servers6 = servers.clone();
        let rdnss = solicited_ra_options(&config)[2].clone();
        assert_eq!(rdnss[..8], [25, 7, 0, 0, 0xff, 0xff, 0xff, 0xff]);
        let addresses: Vec<u8> = servers[..3].iter().flat_map(|s| s.octets()).collect();
        assert_eq!(rdnss[8..], addresses);
    }

    #[test]
    fn dns_options_follow_the_advertise_switches() {
        let base = config();
        let mut config = base.clone();
        config.dns.advertise_search = false;
        assert_eq!(option_types(&solicited_ra_options(&config)), [3, 5, 25, 1]);
        let mut config = base.clone();
        config.dns.advertise_servers = false;
        assert_eq!(
            option_types(&solicited_ra_options(&config)),
            [3, 5, 1],
            "no DNSSL without RDNSS"
        );
        let mut config = base.clone();
        config.dns.servers6.clear();
        assert_eq!(option_types(&solicited_ra_options(&config)), [3, 5, 1]);
        let pasta = fixture::config(Mode::Pasta, &[]);
        assert_eq!(option_types(&solicited_ra_options(&pasta)), [3, 5, 1]);
    }

    #[test]
    fn dnssl_encodes_names_and_pads_to_eight_bytes() {
        let mut config = config();
        let too_long = format!("{}.test", "a".repeat(64));
        config.dns.search = ["a.test.", "", too_long.as_str(), "bc.d", "."]
            .map(String::from)
            .to_vec();
        let dnssl = solicited_ra_options(&config)[3].clone();
        // 8 (a.test) + 6 (bc.d) = 14 bytes of names, 2 of padding.
        let expected = [
            &[31, 3, 0, 0, 0xff, 0xff, 0xff, 0xff][..],
            b"\x01a\x04test\0\x02bc\x01d\0\0\0",
        ]
        .concat();
        assert_eq!(dnssl, expected);
        config.dns.search = vec!["abcd.e".into()];
        let dnssl = solicited_ra_options(&config)[3].clone();
        assert_eq!(
            dnssl[8..],
            *b"\x04abcd\x01e\0",
            "exactly 8 bytes: no padding"
        );
        config.dns.search = vec!["..".into()];
        assert_eq!(option_types(&solicited_ra_options(&config)), [3, 5, 25, 1]);
    }

    #[test]
    fn wire_len_limits() {
        let label63 = "a".repeat(63);
        assert_eq!(wire_len(&label63), Some(65));
        assert_eq!(wire_len(&"a".repeat(64)), None);
        let name255 = [label63.as_str(); 4].join(".")[..253].to_string();
        assert_eq!(wire_len(&name255), Some(255));
        assert_eq!(wire_len(&format!("{name255}a")), None);
        assert_eq!(wire_len(""), None);
    }

    #[test]
    fn unsolicited_ra_goes_to_all_nodes() {
        let config = config();
        let mut link = LinkFacts::new(&config);
        let mut out = vec![0; REPLY_MAX];
        let len = unsolicited_ra(&config, &link, &mut out).unwrap();
        let reply = parse_reply(&out[..len]);
        assert_eq!(reply.eth.destination, [0xff; 6], "guest MAC not known yet");
        assert_eq!(reply.ip.destination, ALL_NODES.octets());
        assert_eq!(
            ra_options(&config, &out[..len]),
            solicited_ra_options(&config)
        );
        link.guest_mac = GUEST_MAC;
        let len = unsolicited_ra(&config, &link, &mut out).unwrap();
        assert_eq!(parse_reply(&out[..len]).eth.destination, GUEST_MAC);
    }

    #[test]
    fn switches_and_families_turn_answers_off() {
        let mut out = vec![0; REPLY_MAX];
        for args in [&["--no-ra"][..], &["--no-ndp"], &["-4"]] {
            let config = fixture::config(Mode::Passt, args);
            let link = LinkFacts::new(&config);
            assert_eq!(run(&config, &rs_from(GUEST_LL)).0, Ok(None), "{args:?}");
            assert_eq!(unsolicited_ra(&config, &link, &mut out), None, "{args:?}");
        }
        let no_ra = fixture::config(Mode::Passt, &["--no-ra"]);
        assert!(matches!(run(&no_ra, &ns("fe80::1")).0, Ok(Some(_))));
        for args in [&["--no-ndp"][..], &["-4"]] {
            let config = fixture::config(Mode::Passt, args);
            assert_eq!(run(&config, &ns("fe80::1")).0, Ok(None), "{args:?}");
        }
    }

    #[test]
    fn other_messages_are_not_ours() {
        let config = config();
        let dst = our_ll(&config);
        let echo = Icmpv6Type::EchoRequest(etherparse::IcmpEchoHeader { id: 1, seq: 1 });
        let na = Icmpv6Type::NeighborAdvertisement(NeighborAdvertisementHeader {
            router: false,
            solicited: true,
            r#override: true,
        });
        let ra = Icmpv6Type::RouterAdvertisement(RouterAdvertisementHeader {
            cur_hop_limit: 64,
            managed_address_config: false,
            other_config: false,
            router_lifetime: 1800,
        });
        for icmp_type in [echo, na, ra] {
            let frame = frame(GUEST_LL, dst, 255, icmp_type, &[0; 24]);
            assert_eq!(run(&config, &frame).0, Ok(None), "{icmp_type:?}");
        }
        let mut udp = Vec::new();
        let builder = PacketBuilder::ethernet2(GUEST_MAC, config.our_mac)
            .ipv6(GUEST_LL.octets(), dst.octets(), 255)
            .udp(546, 547);
        builder.write(&mut udp, &[0; 8]).unwrap();
        assert_eq!(run(&config, &udp).0, Ok(None));
        let mut arp = ns("fe80::1");
        arp[12..14].copy_from_slice(&EtherType::ARP.0.to_be_bytes());
        assert_eq!(run(&config, &arp).0, Ok(None));
    }

    #[test]
    fn invalid_solicitations_are_malformed() {
        let config = config();
        let target = "fe80::1".parse::<Ipv6Addr>().unwrap().octets();
        let ns_type = Icmpv6Type::NeighborSolicitation;
        let ns_code1 = Icmpv6Type::Unknown {
            type_u8: TYPE_NEIGHBOR_SOLICITATION,
            code_u8: 1,
            bytes5to8: [0; 4],
        };
        let rs_code1 = Icmpv6Type::Unknown {
            type_u8: TYPE_ROUTER_SOLICITATION,
            code_u8: 1,
            bytes5to8: [0; 4],
        };
        let zero_length_option = [&target[..], &[1, 0, 0, 0, 0, 0, 0, 0]].concat();
        let overlong_option = [&target[..], &[1, 2, 0, 0, 0, 0, 0, 0]].concat();
        let multicast_target = [&ALL_NODES.octets()[..], &SLLA].concat();
        let good_ns = [&target[..], &SLLA].concat();
        let cases: [(u8, Icmpv6Type, &[u8]); 8] = [
            (64, ns_type, &good_ns),
            (255, ns_code1, &good_ns),
            (255, ns_type, &target[..15]),
            (255, ns_type, &zero_length_option),
            (255, ns_type, &overlong_option),
            (255, ns_type, &multicast_target),
            (64, Icmpv6Type::RouterSolicitation, &SLLA),
            (255, rs_code1, &SLLA),
        ];
        for (hop_limit, icmp_type, body) in cases {
            let frame = frame(GUEST_LL, ALL_NODES, hop_limit, icmp_type, body);
            assert_eq!(
                run(&config, &frame).0,
                Err(MALFORMED),
                "{hop_limit} {icmp_type:?} {body:?}"
            );
        }
    }

    /// Every prefix of `frame`, first as it is (the IPv6 length then
    /// overruns the frame), then with the IPv6 payload length fixed up (the
    /// ICMPv6 message itself is cut): never a panic, and an answer only
    /// for the lengths in `whole`, which end on an option boundary.
    fn check_truncations(config: &Config, frame: &[u8], whole: &[usize]) {
        for len in 0..frame.len() {
            assert!(
                !matches!(run(config, &frame[..len]).0, Ok(Some(_))),
                "raw length {len}"
            );
        }
        for icmp_len in 0..frame.len() - 54 {
            let mut cut = frame[..54 + icmp_len].to_vec();
            cut[18..20].copy_from_slice(&(icmp_len as u16).to_be_bytes());
            let answered = matches!(run(config, &cut).0, Ok(Some(_)));
            assert_eq!(
                answered,
                whole.contains(&icmp_len),
                "ICMPv6 length {icmp_len}"
            );
        }
    }

    #[test]
    fn every_truncation_is_refused_or_ignored() {
        let config = config();
        check_truncations(&config, &ns("fe80::1"), &[NS_LEN]);
        check_truncations(&config, &rs_from(GUEST_LL), &[8]);
        let mut out = [0; REPLY_MAX];
        let link = LinkFacts::new(&config);
        let full = answer(&config, &link, &rs_from(GUEST_LL), &mut out)
            .unwrap()
            .unwrap();
        for len in 0..full {
            assert_eq!(
                unsolicited_ra(&config, &link, &mut out[..len]),
                None,
                "output {len}"
            );
        }
    }

    #[test]
    fn ra_schedule_stays_within_bounds() {
        let start = Instant::now();
        let mut intervals = Vec::new();
        for _ in 0..64 {
            let mut schedule = RaSchedule::new(start);
            let first = schedule.next_due() - start;
            assert!((200..600).contains(&first.as_secs()), "{first:?}");
            assert!(!schedule.due(start));
            assert!(!schedule.due(schedule.next_due() - Duration::from_nanos(1)));
            let late = schedule.next_due() + Duration::from_secs(1000);
            assert!(schedule.due(late));
            let next = schedule.next_due() - late;
            assert!((200..600).contains(&next.as_secs()), "{next:?}");
            assert!(!schedule.due(late));
            intervals.push(first);
        }
        intervals.sort();
        intervals.dedup();
        assert!(intervals.len() > 1, "intervals are random");
    }
}
