//! DHCPv6 server for the guest (REFERENCE.md §2.3): hands out the one
//! IPv6 address the guest has (IA_NA), with the nameservers and the search
//! list, for ever.
//!
//! Exchange: SOLICIT -> ADVERTISE; REQUEST and RENEW (carrying our server
//! ID), CONFIRM (carrying none) and REBIND -> REPLY; INFORMATION-REQUEST
//! (no IA) -> REPLY without IA. RELEASE, DECLINE, messages with another
//! server's ID and anything else get no answer; no Rapid Commit. When a
//! REQUEST, RENEW or CONFIRM holds an address that is not ours (in an IA_NA
//! or IA_TA), the REPLY returns that IA with status NotOnLink, and a CONFIRM
//! also gets NotOnLink as the message's status (RFC 8415 §18.3.3).
//! Differences from upstream: REBIND is answered without a server ID too
//! (RFC 8415 §18.2.5 forbids one, upstream wants it); IA_NA is only sent to
//! a client that asked for one (upstream adds one anyway).
//!
//! Replies: server ID (a DUID-LLT of our MAC and, in seconds since 2000,
//! the time this process first needed it), the client's ID, IA_NA with
//! the client's IAID, T1 = T2 = infinity and the address with infinite
//! lifetimes, DNS servers (option 23) and the search list (option 24) when
//! advertised. They go
//! from our link-local address port 547 to the client's source address
//! port 546 and its source MAC, with the transaction ID as flow label.
//! Nothing is answered when the guest has no IPv6 address (local mode).
//!
//! Addressed to the service: an IPv6 frame carrying UDP to port 547 and a
//! multicast destination (ff02::1:2; any multicast, as upstream). Refused
//! as malformed: a UDP length that disagrees with the IP payload, an
//! unspecified or multicast source, bad option framing, an option
//! `dhcproto` cannot decode, encapsulation deeper than `MAX_NESTING` or a
//! relay message inside, no client ID or one over 128 bytes.
//!
//! Messages are parsed and built with `dhcproto`. Before decoding, the
//! option framing is checked here (`check_options`): `dhcproto` trusts
//! the length of some fixed-size options (and underflows on short status
//! codes and vendor options), and decodes nested options recursively with
//! no depth limit. Option 24 is handed to it as raw data, encoded name by
//! name: its own encoder compresses names, which RFC 8415 §10 forbids.
//! Replies reuse the request's decoded header: `v6::Message::new()` draws
//! a random transaction ID (a `getrandom` call the seccomp filter need not
//! allow). Ethernet, IP and UDP with `etherparse`.
//!
//! Neighbours: the engine hands over guest frames (it should drop any UDP
//! datagram to port 547, answered or not: upstream never forwards them);
//! `conf` supplies the lease; `ndp` sends the router advertisements that
//! tell the guest to use DHCPv6 (M flag); `dhcp` is the IPv4 counterpart.

use std::net::Ipv6Addr;

use dhcproto::v6::{
    self, DhcpOption, DhcpOptions, HType, IAAddr, IANA, IATA, MessageType, OptionCode, Status,
    StatusCode, UnknownOption,
};
use dhcproto::{Decodable, Decoder, Encodable, Encoder, Name};
use etherparse::{
    IpHeaders, IpNumber, Ipv6FlowLabel, Ipv6Header, PacketBuilder, UdpHeaderSlice, UdpSlice,
};

use super::{Answer, LinkFacts, Refused};
use crate::conf::Config;

const MALFORMED: Refused = Refused::Malformed("DHCPv6");
const SERVER_PORT: u16 = v6::SERVER_PORT;
const CLIENT_PORT: u16 = v6::CLIENT_PORT;
/// Message type and transaction ID.
const HEADER_LEN: usize = 4;
/// Longest client ID accepted (RFC 8415 §11.1: DUIDs up to 128 bytes).
const MAX_CLIENT_ID: usize = 128;
/// Most levels of options holding options accepted (an IA_NA holding an
/// IAADDR holding a status code needs 2).
const MAX_NESTING: usize = 3;
/// Lifetimes and renewal times: infinite.
const INFINITY: u32 = u32::MAX;
/// Status message of NotOnLink, as upstream.
const NOT_ON_LINK: &str = "Prefix not appropriate for link.";
/// DUID type: link-layer address plus time.
const DUID_LLT: u16 = 1;
/// Unix time of 2000-01-01T00:00:00Z, the DUID-LLT epoch.
#[cfg(not(fuzzing))]
const Y2K: u64 = 946_684_800;
/// Hop limit of replies, as upstream.
const HOP_LIMIT: u8 = 255;

/// Answers a DHCPv6 message in `frame` with a reply built into `out`
/// (see the module comment for what is answered, and how).
pub fn answer(config: &Config, link: &LinkFacts, frame: &[u8], out: &mut [u8]) -> Answer {
    let Some(lease) = Lease::new(config) else {
        return Ok(None);
    };
    let Some(datagram) = Datagram::parse(frame)? else {
        return Ok(None);
    };
    let request = decode(datagram.payload)?;
    let Some(reply) = respond(&lease, request)? else {
        return Ok(None);
    };
    Ok(write_frame(link, &lease, &datagram, &reply, out))
}

/// What the guest is told, from the configuration.
struct Lease<'a> {
    addr: Ipv6Addr,
    our_link_local: Ipv6Addr,
    /// For our server ID.
    our_mac: [u8; 6],
    dns: &'a [Ipv6Addr],
    search: &'a [String],
}

impl<'a> Lease<'a> {
    /// `None` when DHCPv6 is off or the guest has no IPv6 address.
    fn new(config: &'a Config) -> Option<Lease<'a>> {
        let ip6 = config.ip6.as_ref().filter(|_| config.services.dhcpv6)?;
        if ip6.addr.is_unspecified() {
            return None;
        }
        let dns = &config.dns;
        Some(Lease {
            addr: ip6.addr,
            our_link_local: ip6.our_link_local,
            our_mac: config.our_mac,
            dns: if dns.advertise_servers {
                &dns.servers6
            } else {
                &[]
            },
            search: if dns.advertise_search {
                &dns.search
            } else {
                &[]
            },
        })
    }
}

/// Our DUID-LLT: type, hardware type (Ethernet), time, MAC.
fn server_duid(mac: [u8; 6]) -> Vec<u8> {
    let hardware = u16::from(HType::Eth).to_be_bytes();
    let time = duid_time().to_be_bytes();
    [&DUID_LLT.to_be_bytes()[..], &hardware, &time, &mac].concat()
}

/// Seconds from 2000 to the first use in this process (modulo 2^32).
#[cfg(not(fuzzing))]
fn duid_time() -> u32 {
    static TIME: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *TIME.get_or_init(|| {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
        now.map_or(0, |d| d.as_secs().saturating_sub(Y2K) as u32)
    })
}

/// Fuzzing: a fixed time, so that inputs carrying our server ID replay.
#[cfg(fuzzing)]
fn duid_time() -> u32 {
    0
}

/// The search list as option 24 data: each name's labels and a root
/// label, no compression; root-only and invalid names are skipped.
fn search_list(search: &[String]) -> Vec<u8> {
    let names = search.iter().filter_map(|s| Name::from_ascii(s).ok());
    let mut wire = Vec::new();
    for name in names.filter(|n| !n.is_root()) {
        for label in name.iter() {
            wire.push(label.len() as u8);
            wire.extend_from_slice(label);
        }
        wire.push(0);
    }
    wire
}

/// A UDP datagram to the DHCPv6 server port, with where it came from.
struct Datagram<'a> {
    src_mac: [u8; 6],
    src_addr: Ipv6Addr,
    payload: &'a [u8],
}

impl<'a> Datagram<'a> {
    /// `None` if `frame` is not IPv6 carrying UDP to port 547 and a
    /// multicast destination (or is a fragment).
    fn parse(frame: &'a [u8]) -> Result<Option<Datagram<'a>>, Refused> {
        let Some((eth, ip)) = crate::wire::ipv6_carrying(frame, IpNumber::UDP) else {
            return Ok(None);
        };
        let header = ip.header();
        if !header.destination_addr().is_multicast() {
            return Ok(None);
        }
        let l4 = ip.payload().payload;
        match UdpHeaderSlice::from_slice(l4) {
            Ok(udp) if udp.destination_port() == SERVER_PORT => {}
            _ => return Ok(None),
        }
        let udp = UdpSlice::from_slice(l4).map_err(|_| MALFORMED)?;
        let src_addr = header.source_addr();
        if usize::from(udp.length()) != l4.len()
            || src_addr.is_unspecified()
            || src_addr.is_multicast()
        {
            return Err(MALFORMED);
        }
        Ok(Some(Datagram {
            src_mac: eth.source(),
            src_addr,
            payload: udp.payload(),
        }))
    }
}

/// Decodes a message whose options `check_options` accepts, and in
/// which `dhcproto` decodes every top-level option.
fn decode(payload: &[u8]) -> Result<v6::Message, Refused> {
    let options = payload.get(HEADER_LEN..).ok_or(MALFORMED)?;
    let count = check_options(options, 0)?;
    let message = v6::Message::decode(&mut Decoder::new(payload)).map_err(|_| MALFORMED)?;
    if message.opts().iter().count() != count {
        return Err(MALFORMED);
    }
    Ok(message)
}

/// Checks the framing of `options` (code, length, data), and of options
/// encapsulated in them, down to `MAX_NESTING`; returns how many there
/// are at this level.
fn check_options(options: &[u8], depth: usize) -> Result<usize, Refused> {
    let mut decoder = Decoder::new(options);
    let mut count = 0;
    while !decoder.buffer().is_empty() {
        let code = decoder.read_u16().map_err(|_| MALFORMED)?;
        let len = decoder.read_u16().map_err(|_| MALFORMED)?;
        let data = decoder
            .read_slice(usize::from(len))
            .map_err(|_| MALFORMED)?;
        check_option(OptionCode::from(code), data, depth)?;
        count += 1;
    }
    Ok(count)
}

/// Checks one option's length where `dhcproto` relies on it, and the
/// options it encapsulates.
fn check_option(code: OptionCode, data: &[u8], depth: usize) -> Result<(), Refused> {
    let len = data.len();
    let length_ok = match code {
        OptionCode::RelayMsg => false,
        OptionCode::RapidCommit | OptionCode::ReconfAccept => len == 0,
        OptionCode::Preference | OptionCode::ReconfMsg => len == 1,
        OptionCode::ElapsedTime => len == 2,
        OptionCode::ServerUnicast => len == 16,
        OptionCode::StatusCode => len >= 2,
        OptionCode::VendorClass => len >= 4,
        _ => true,
    };
    if !length_ok {
        return Err(MALFORMED);
    }
    let Some(fixed) = encapsulation(code) else {
        return Ok(());
    };
    if depth >= MAX_NESTING {
        return Err(MALFORMED);
    }
    let inner = data.get(fixed..).ok_or(MALFORMED)?;
    check_options(inner, depth + 1).map(|_| ())
}

/// Options `dhcproto` decodes options inside: the length of the fixed
/// part before them.
fn encapsulation(code: OptionCode) -> Option<usize> {
    match code {
        OptionCode::IANA | OptionCode::IAPD => Some(12),
        OptionCode::IATA | OptionCode::VendorOpts => Some(4),
        OptionCode::IAAddr => Some(24),
        OptionCode::IAPrefix => Some(25),
        _ => None,
    }
}

/// The reply to `request`, if one is due.
fn respond(lease: &Lease<'_>, mut request: v6::Message) -> Result<Option<v6::Message>, Refused> {
    let client_id = match request.opts().get(OptionCode::ClientId) {
        Some(DhcpOption::ClientId(id)) if id.len() <= MAX_CLIENT_ID => id.clone(),
        _ => return Err(MALFORMED),
    };
    let our_id = server_duid(lease.our_mac);
    let server_id = match request.opts().get(OptionCode::ServerId) {
        Some(DhcpOption::ServerId(id)) => Some(id == &our_id),
        _ => None,
    };
    let Some(kind) = reply_kind(request.msg_type(), server_id, request.opts()) else {
        return Ok(None);
    };
    let options = reply_options(lease, kind, client_id, our_id, request.opts());
    request.set_msg_type(kind.reply_type().0).set_opts(options);
    Ok(Some(request))
}

/// Both IDs, then NotOnLink for an address that is not ours, else the
/// configuration.
fn reply_options(
    lease: &Lease<'_>,
    kind: Kind,
    client_id: Vec<u8>,
    server_id: Vec<u8>,
    request: &DhcpOptions,
) -> DhcpOptions {
    let mut options = DhcpOptions::new();
    options.insert(DhcpOption::ClientId(client_id));
    options.insert(DhcpOption::ServerId(server_id));
    let off_link = off_link_ia(request, lease.addr).filter(|_| kind.checks_addresses());
    match off_link {
        Some(ia) => {
            log::info!(
                "DHCPv6: received {}, sending NotOnLink status in REPLY",
                kind.name()
            );
            not_on_link(&mut options, ia, kind);
        }
        None => {
            log::info!(
                "DHCPv6: received {}, sending {}",
                kind.name(),
                kind.reply_type().1
            );
            configuration(&mut options, lease, kind, request);
        }
    }
    options
}

/// Requests that get an answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Solicit,
    /// REQUEST or RENEW.
    Request,
    Confirm,
    Rebind,
    InformationRequest,
}

impl Kind {
    /// The client's addresses must be ours, or it is told NotOnLink.
    fn checks_addresses(self) -> bool {
        matches!(self, Kind::Request | Kind::Confirm)
    }

    /// For the log, as upstream.
    fn name(self) -> &'static str {
        match self {
            Kind::Solicit => "SOLICIT",
            Kind::Request => "REQUEST/RENEW",
            Kind::Confirm => "CONFIRM",
            Kind::Rebind => "REBIND",
            Kind::InformationRequest => "INFORMATION_REQUEST",
        }
    }

    /// The reply's type, and its name for the log.
    fn reply_type(self) -> (MessageType, &'static str) {
        match self {
            Kind::Solicit => (MessageType::Advertise, "ADVERTISE"),
            _ => (MessageType::Reply, "REPLY"),
        }
    }
}

/// What to answer, given the message type, whether the server ID is ours
/// (`None`: there is none) and the options.
fn reply_kind(msg_type: MessageType, server_id: Option<bool>, opts: &DhcpOptions) -> Option<Kind> {
    let has_ia = opts.get(OptionCode::IANA).is_some() || opts.get(OptionCode::IATA).is_some();
    match (msg_type, server_id) {
        (MessageType::Solicit, None) => Some(Kind::Solicit),
        (MessageType::Request | MessageType::Renew, Some(true)) => Some(Kind::Request),
        (MessageType::Confirm, None) => Some(Kind::Confirm),
        (MessageType::Rebind, None | Some(true)) => Some(Kind::Rebind),
        (MessageType::InformationRequest, None | Some(true)) if !has_ia => {
            Some(Kind::InformationRequest)
        }
        _ => None,
    }
}

/// The first IA_NA, then IA_TA, holding an address other than `addr`.
fn off_link_ia(opts: &DhcpOptions, addr: Ipv6Addr) -> Option<&DhcpOption> {
    let mut ias = opts
        .iter()
        .filter(|o| matches!(o, DhcpOption::IANA(_) | DhcpOption::IATA(_)));
    ias.find(|ia| {
        let inner = match ia {
            DhcpOption::IANA(ia) => &ia.opts,
            DhcpOption::IATA(ia) => &ia.opts,
            _ => return false,
        };
        inner
            .iter()
            .any(|o| matches!(o, DhcpOption::IAAddr(a) if a.addr != addr))
    })
}

/// The offending IA, with status NotOnLink inside (and, for CONFIRM, as
/// the message's status too).
fn not_on_link(options: &mut DhcpOptions, ia: &DhcpOption, kind: Kind) {
    let status = || {
        DhcpOption::StatusCode(StatusCode {
            status: Status::NotOnLink,
            msg: NOT_ON_LINK.to_string(),
        })
    };
    let opts = DhcpOptions::from_iter([status()]);
    match ia {
        DhcpOption::IANA(ia) => options.insert(DhcpOption::IANA(IANA {
            id: ia.id,
            t1: ia.t1,
            t2: ia.t2,
            opts,
        })),
        DhcpOption::IATA(ia) => options.insert(DhcpOption::IATA(IATA { id: ia.id, opts })),
        _ => {}
    }
    if kind == Kind::Confirm {
        options.insert(status());
    }
}

/// The address (when the client asked for an IA_NA, unless this is an
/// INFORMATION-REQUEST), the nameservers and the search list.
fn configuration(options: &mut DhcpOptions, lease: &Lease<'_>, kind: Kind, request: &DhcpOptions) {
    if let Some(DhcpOption::IANA(ia)) = request.get(OptionCode::IANA) {
        if kind != Kind::InformationRequest {
            options.insert(DhcpOption::IANA(address(lease, ia.id)));
        }
    }
    if !lease.dns.is_empty() {
        options.insert(DhcpOption::DomainNameServers(lease.dns.to_vec()));
    }
    let search = search_list(lease.search);
    if !search.is_empty() {
        let search = UnknownOption::new(OptionCode::DomainSearchList, search);
        options.insert(DhcpOption::Unknown(search));
    }
}

/// IA_NA `iaid` holding the guest's address, for ever.
fn address(lease: &Lease<'_>, iaid: u32) -> IANA {
    let addr = IAAddr {
        addr: lease.addr,
        preferred_life: INFINITY,
        valid_life: INFINITY,
        opts: DhcpOptions::new(),
    };
    IANA {
        id: iaid,
        t1: INFINITY,
        t2: INFINITY,
        opts: DhcpOptions::from_iter([DhcpOption::IAAddr(addr)]),
    }
}

/// Encodes `reply` and wraps it in UDP, IPv6 and Ethernet back to the
/// client; `None` if `out` is too small (or encoding fails, which our own
/// values never make it do).
fn write_frame(
    link: &LinkFacts,
    lease: &Lease<'_>,
    client: &Datagram<'_>,
    reply: &v6::Message,
    out: &mut [u8],
) -> Option<usize> {
    let mut message = Vec::new();
    reply.encode(&mut Encoder::new(&mut message)).ok()?;
    let ip = Ipv6Header {
        flow_label: Ipv6FlowLabel::try_new(reply.xid_num() & Ipv6FlowLabel::MAX_U32).ok()?,
        hop_limit: HOP_LIMIT,
        source: lease.our_link_local.octets(),
        destination: client.src_addr.octets(),
        ..Default::default()
    };
    PacketBuilder::ethernet2(link.our_mac, client.src_mac)
        .ip(IpHeaders::Ipv6(ip, Default::default()))
        .udp(SERVER_PORT, CLIENT_PORT)
        .write_to_slice(out, &message)
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conf::{Mode, fixture};
    use crate::services::REPLY_MAX;
    use etherparse::{EtherType, Ethernet2Slice, Ipv6HeaderSlice, Ipv6Slice};

    const CLIENT_MAC: [u8; 6] = [0x52, 0x54, 0, 0x12, 0x34, 0x56];
    const ALL_SERVERS_MAC: [u8; 6] = [0x33, 0x33, 0, 1, 0, 2];
    const XID: [u8; 3] = [0xab, 0xcd, 0xef];
    const IAID: u32 = 0x0102_0304;
    const CLIENT_DUID: &[u8] = &[0, 3, 0, 1, 0x52, 0x54, 0, 0x12, 0x34, 0x56];

    fn config() -> Config {
        fixture::config(Mode::Passt, &[])
    }

    fn v6(text: &str) -> Ipv6Addr {
        text.parse().unwrap()
    }

    fn client_ll() -> Ipv6Addr {
        v6("fe80::5054:ff:fe12:3456")
    }

    fn our_duid(config: &Config) -> Vec<u8> {
        server_duid(config.our_mac)
    }

    fn ia_na(addrs: &[&str]) -> DhcpOption {
        let addr = |a: &&str| {
            DhcpOption::IAAddr(IAAddr {
                addr: v6(a),
                preferred_life: 0,
                valid_life: 0,
                opts: DhcpOptions::new(),
            })
        };
        let opts = addrs.iter().map(addr).collect();
        DhcpOption::IANA(IANA {
            id: IAID,
            t1: 0,
            t2: 0,
            opts,
        })
    }

    fn encode(msg_type: MessageType, options: Vec<DhcpOption>) -> Vec<u8> {
        let mut msg = v6::Message::new_with_id(msg_type, XID);
        options.into_iter().for_each(|o| msg.opts_mut().insert(o));
        let mut payload = Vec::new();
        msg.encode(&mut Encoder::new(&mut payload)).unwrap();
        payload
    }

    fn frame_to(dst: Ipv6Addr, dst_port: u16, payload: &[u8]) -> Vec<u8> {
        let mut frame = Vec::new();
        PacketBuilder::ethernet2(CLIENT_MAC, ALL_SERVERS_MAC)
            .ipv6(client_ll().octets(), dst.octets(), 1)
            .udp(CLIENT_PORT, dst_port)
            .write(&mut frame, payload)
            .unwrap();
        frame
    }

    fn frame(payload: &[u8]) -> Vec<u8> {
        frame_to(v6("ff02::1:2"), SERVER_PORT, payload)
    }

    /// A message with the client's ID and `options`.
    fn request(msg_type: MessageType, options: Vec<DhcpOption>) -> Vec<u8> {
        let mut all = vec![DhcpOption::ClientId(CLIENT_DUID.to_vec())];
        all.extend(options);
        frame(&encode(msg_type, all))
    }

    fn run(config: &Config, frame: &[u8]) -> Answer {
        let mut out = vec![0; REPLY_MAX];
        answer(config, &LinkFacts::new(config), frame, &mut out)
    }

    /// A reply, checked for its layers, checksum and addressing.
    fn reply(config: &Config, frame: &[u8]) -> v6::Message {
        let payload = reply_payload(config, frame);
        let msg = v6::Message::decode(&mut Decoder::new(&payload)).unwrap();
        assert_eq!(msg.xid(), XID);
        msg
    }

    /// The reply's DHCPv6 message, with its frame checked.
    fn reply_payload(config: &Config, frame: &[u8]) -> Vec<u8> {
        let mut out = vec![0; REPLY_MAX];
        let len = answer(config, &LinkFacts::new(config), frame, &mut out)
            .unwrap()
            .expect("a reply");
        let frame = &out[..len];
        let eth = Ethernet2Slice::from_slice_without_fcs(frame).unwrap();
        assert_eq!(
            (eth.source(), eth.destination()),
            (config.our_mac, CLIENT_MAC)
        );
        assert_eq!(eth.ether_type(), EtherType::IPV6);
        let ip = Ipv6Slice::from_slice(eth.payload_slice()).unwrap();
        let header = Ipv6HeaderSlice::from_slice(eth.payload_slice()).unwrap();
        let our_ll = config.ip6.as_ref().unwrap().our_link_local;
        assert_eq!(
            (header.source_addr(), header.destination_addr()),
            (our_ll, client_ll())
        );
        assert_eq!(header.hop_limit(), 255);
        assert_eq!(header.flow_label().value(), 0xbcdef);
        let udp = UdpSlice::from_slice(ip.payload().payload).unwrap();
        assert_eq!((udp.source_port(), udp.destination_port()), (547, 546));
        let sum = udp
            .to_header()
            .calc_checksum_ipv6(&header.to_header(), udp.payload());
        assert_eq!(sum.unwrap(), udp.checksum(), "UDP checksum");
        udp.payload().to_vec()
    }

    fn option(msg: &v6::Message, code: OptionCode) -> Option<&DhcpOption> {
        msg.opts().get(code)
    }

    fn leased(iaid: u32, addr: &str) -> DhcpOption {
        let addr = IAAddr {
            addr: v6(addr),
            preferred_life: u32::MAX,
            valid_life: u32::MAX,
            opts: DhcpOptions::new(),
        };
        let opts = DhcpOptions::from_iter([DhcpOption::IAAddr(addr)]);
        DhcpOption::IANA(IANA {
            id: iaid,
            t1: u32::MAX,
            t2: u32::MAX,
            opts,
        })
    }

    /// Data of the reply's option 24, as sent.
    fn search_bytes(config: &Config, frame: &[u8]) -> Vec<u8> {
        let payload = reply_payload(config, frame);
        let mut options = Decoder::new(&payload[HEADER_LEN..]);
        loop {
            let code = options.read_u16().unwrap();
            let len = options.read_u16().unwrap();
            let data = options.read_slice(usize::from(len)).unwrap();
            if code == 24 {
                return data.to_vec();
            }
        }
    }

    fn not_on_link() -> DhcpOption {
        DhcpOption::StatusCode(StatusCode {
            status: Status::NotOnLink,
            msg: NOT_ON_LINK.into(),
        })
    }

    /// The fixture: 2001:db8::10, our link-local fe80::1 (the gateway),
    /// DNS 2001:db8::53, search example.test.
    #[test]
    fn solicit_gets_advertise_with_address_and_dns() {
        let config = config();
        let msg = reply(&config, &request(MessageType::Solicit, vec![ia_na(&[])]));
        assert_eq!(msg.msg_type(), MessageType::Advertise);
        let client_id = DhcpOption::ClientId(CLIENT_DUID.to_vec());
        assert_eq!(option(&msg, OptionCode::ClientId), Some(&client_id));
        let duid = [
            &[0, 1, 0, 1][..],
            &duid_time().to_be_bytes(),
            &config.our_mac,
        ]
        .concat();
        assert_eq!(
            option(&msg, OptionCode::ServerId),
            Some(&DhcpOption::ServerId(duid))
        );
        assert_eq!(
            option(&msg, OptionCode::IANA),
            Some(&leased(IAID, "2001:db8::10"))
        );
        let dns = DhcpOption::DomainNameServers(vec![v6("2001:db8::53")]);
        assert_eq!(option(&msg, OptionCode::DomainNameServers), Some(&dns));
        let search = search_bytes(&config, &request(MessageType::Solicit, vec![]));
        assert_eq!(search, b"\x07example\x04test\x00");
        assert_eq!(msg.opts().iter().count(), 5);
    }

    #[test]
    fn solicit_without_ia_gets_no_address() {
        let config = config();
        let msg = reply(&config, &request(MessageType::Solicit, vec![]));
        assert_eq!(option(&msg, OptionCode::IANA), None);
        assert!(option(&msg, OptionCode::DomainNameServers).is_some());
    }

    #[test]
    fn request_and_renew_need_our_server_id() {
        let config = config();
        let ours = DhcpOption::ServerId(our_duid(&config));
        let other = DhcpOption::ServerId(vec![0, 3, 0, 1, 1, 2, 3, 4, 5, 6]);
        for t in [MessageType::Request, MessageType::Renew] {
            let msg = reply(
                &config,
                &request(t, vec![ours.clone(), ia_na(&["2001:db8::10"])]),
            );
            assert_eq!(msg.msg_type(), MessageType::Reply);
            assert_eq!(
                option(&msg, OptionCode::IANA),
                Some(&leased(IAID, "2001:db8::10"))
            );
            assert_eq!(option(&msg, OptionCode::StatusCode), None);
            assert_eq!(
                run(&config, &request(t, vec![other.clone(), ia_na(&[])])),
                Ok(None)
            );
            assert_eq!(run(&config, &request(t, vec![ia_na(&[])])), Ok(None));
        }
    }

    #[test]
    fn request_for_another_address_gets_not_on_link() {
        let config = config();
        let ours = DhcpOption::ServerId(our_duid(&config));
        let ia = ia_na(&["2001:db8::10", "2001:db8::99"]);
        let msg = reply(&config, &request(MessageType::Request, vec![ours, ia]));
        assert_eq!(msg.msg_type(), MessageType::Reply);
        let opts = DhcpOptions::from_iter([not_on_link()]);
        let ia = DhcpOption::IANA(IANA {
            id: IAID,
            t1: 0,
            t2: 0,
            opts,
        });
        assert_eq!(option(&msg, OptionCode::IANA), Some(&ia));
        assert_eq!(option(&msg, OptionCode::StatusCode), None);
        assert_eq!(option(&msg, OptionCode::DomainNameServers), None);
        assert!(option(&msg, OptionCode::ClientId).is_some());
        assert!(option(&msg, OptionCode::ServerId).is_some());
    }

    #[test]
    fn confirm_checks_the_address() {
        let config = config();
        let msg = reply(
            &config,
            &request(MessageType::Confirm, vec![ia_na(&["2001:db8::10"])]),
        );
        assert_eq!(msg.msg_type(), MessageType::Reply);
        assert_eq!(
            option(&msg, OptionCode::IANA),
            Some(&leased(IAID, "2001:db8::10"))
        );

        let msg = reply(
            &config,
            &request(MessageType::Confirm, vec![ia_na(&["2001:db8:1::10"])]),
        );
        assert_eq!(option(&msg, OptionCode::StatusCode), Some(&not_on_link()));
        let Some(DhcpOption::IANA(ia)) = option(&msg, OptionCode::IANA) else {
            panic!("no IA_NA");
        };
        assert_eq!(ia.opts.iter().collect::<Vec<_>>(), [&not_on_link()]);

        let ours = DhcpOption::ServerId(our_duid(&config));
        let with_id = request(MessageType::Confirm, vec![ours, ia_na(&["2001:db8::10"])]);
        assert_eq!(run(&config, &with_id), Ok(None));
    }

    #[test]
    fn temporary_address_not_ours_gets_not_on_link() {
        let config = config();
        let addr = IAAddr {
            addr: v6("2001:db8::77"),
            preferred_life: 0,
            valid_life: 0,
            opts: DhcpOptions::new(),
        };
        let opts = DhcpOptions::from_iter([DhcpOption::IAAddr(addr)]);
        let ia_ta = DhcpOption::IATA(IATA { id: 7, opts });
        let msg = reply(&config, &request(MessageType::Confirm, vec![ia_ta]));
        let opts = DhcpOptions::from_iter([not_on_link()]);
        assert_eq!(
            option(&msg, OptionCode::IATA),
            Some(&DhcpOption::IATA(IATA { id: 7, opts }))
        );
    }

    #[test]
    fn rebind_gets_reply_unless_for_another_server() {
        let config = config();
        let msg = reply(
            &config,
            &request(MessageType::Rebind, vec![ia_na(&["2001:db8::10"])]),
        );
        assert_eq!(msg.msg_type(), MessageType::Reply);
        assert_eq!(
            option(&msg, OptionCode::IANA),
            Some(&leased(IAID, "2001:db8::10"))
        );
        let ours = DhcpOption::ServerId(our_duid(&config));
        let msg = reply(
            &config,
            &request(MessageType::Rebind, vec![ours, ia_na(&[])]),
        );
        assert_eq!(msg.msg_type(), MessageType::Reply);
        let other = DhcpOption::ServerId(vec![0, 3, 0, 1, 1, 2, 3, 4, 5, 6]);
        assert_eq!(
            run(&config, &request(MessageType::Rebind, vec![other])),
            Ok(None)
        );
    }

    #[test]
    fn information_request_gets_reply_without_ia() {
        let config = config();
        let msg = reply(&config, &request(MessageType::InformationRequest, vec![]));
        assert_eq!(msg.msg_type(), MessageType::Reply);
        assert_eq!(option(&msg, OptionCode::IANA), None);
        assert!(option(&msg, OptionCode::DomainNameServers).is_some());
        let with_ia = request(MessageType::InformationRequest, vec![ia_na(&[])]);
        assert_eq!(run(&config, &with_ia), Ok(None));
    }

    #[test]
    fn release_decline_and_others_are_ignored() {
        let config = config();
        let ours = DhcpOption::ServerId(our_duid(&config));
        for t in [
            MessageType::Release,
            MessageType::Decline,
            MessageType::Advertise,
            MessageType::Reply,
            MessageType::Unknown(200),
        ] {
            let f = request(t, vec![ours.clone(), ia_na(&["2001:db8::10"])]);
            assert_eq!(run(&config, &f), Ok(None), "{t:?}");
        }
        let solicit_with_id = request(MessageType::Solicit, vec![ours]);
        assert_eq!(run(&config, &solicit_with_id), Ok(None));
    }

    #[test]
    fn other_frames_are_not_for_dhcpv6() {
        let config = config();
        let payload = encode(
            MessageType::Solicit,
            vec![DhcpOption::ClientId(CLIENT_DUID.into())],
        );
        assert_eq!(
            run(&config, &frame_to(v6("fe80::1"), SERVER_PORT, &payload)),
            Ok(None)
        );
        assert_eq!(
            run(&config, &frame_to(v6("ff02::1:2"), 546, &payload)),
            Ok(None)
        );
        assert_eq!(run(&config, &[]), Ok(None));
        let mut v4 = Vec::new();
        PacketBuilder::ethernet2(CLIENT_MAC, [0xff; 6])
            .ipv4([0; 4], [255; 4], 64)
            .udp(546, 547)
            .write(&mut v4, &payload)
            .unwrap();
        assert_eq!(run(&config, &v4), Ok(None));
    }

    #[test]
    fn nothing_without_dhcpv6_or_address() {
        let solicit = request(MessageType::Solicit, vec![ia_na(&[])]);
        let mut config = config();
        config.services.dhcpv6 = false;
        assert_eq!(run(&config, &solicit), Ok(None));
        let mut config = self::config();
        config.ip6.as_mut().unwrap().addr = Ipv6Addr::UNSPECIFIED;
        assert_eq!(run(&config, &solicit), Ok(None));
        let mut config = self::config();
        config.ip6 = None;
        assert_eq!(run(&config, &solicit), Ok(None));
    }

    #[test]
    fn nothing_advertised_when_switched_off() {
        let mut config = config();
        config.dns.advertise_servers = false;
        config.dns.advertise_search = false;
        let msg = reply(&config, &request(MessageType::Solicit, vec![ia_na(&[])]));
        assert_eq!(msg.opts().iter().count(), 3);
    }

    #[test]
    fn search_list_is_not_compressed() {
        let mut config = config();
        config.dns.search = ["example.test.", "sub.example.test", ".", "other.test"]
            .map(String::from)
            .to_vec();
        let search = search_bytes(&config, &request(MessageType::Solicit, vec![]));
        let expect: &[u8] =
            b"\x07example\x04test\x00\x03sub\x07example\x04test\x00\x05other\x04test\x00";
        assert_eq!(search, expect);
    }

    /// Option bytes: code, length, data.
    fn raw_option(code: u16, data: &[u8]) -> Vec<u8> {
        let len = u16::try_from(data.len()).unwrap();
        [&code.to_be_bytes()[..], &len.to_be_bytes(), data].concat()
    }

    fn raw_message(msg_type: u8, options: &[Vec<u8>]) -> Vec<u8> {
        let client_id = raw_option(1, CLIENT_DUID);
        let mut payload = vec![msg_type, XID[0], XID[1], XID[2]];
        payload.extend(client_id);
        options.iter().for_each(|o| payload.extend(o));
        payload
    }

    /// An IA_NA nested `depth` times in IA_NAs.
    fn nested_ia(depth: usize) -> Vec<u8> {
        (0..depth).fold(Vec::new(), |inner, _| {
            raw_option(3, &[&[0u8; 12][..], &inner].concat())
        })
    }

    #[test]
    fn malformed_messages_are_refused() {
        let config = config();
        let solicit = 1;
        let cases = [
            ("no client ID", frame(&encode(MessageType::Solicit, vec![]))),
            ("long client ID", {
                let id = DhcpOption::ClientId(vec![1; 129]);
                frame(&encode(MessageType::Solicit, vec![id]))
            }),
            ("short header", frame(&[1, 2, 3])),
            ("option overrun", {
                let mut payload = raw_message(solicit, &[]);
                payload.extend([0, 8, 0, 10, 0]);
                frame(&payload)
            }),
            (
                "short status code",
                frame(&raw_message(solicit, &[raw_option(13, &[0])])),
            ),
            (
                "long elapsed time",
                frame(&raw_message(solicit, &[raw_option(8, &[0; 3])])),
            ),
            (
                "rapid commit data",
                frame(&raw_message(solicit, &[raw_option(14, &[0])])),
            ),
            (
                "short vendor class",
                frame(&raw_message(solicit, &[raw_option(16, &[0; 3])])),
            ),
            (
                "relay message",
                frame(&raw_message(solicit, &[raw_option(9, &[12; 40])])),
            ),
            (
                "short IA_NA",
                frame(&raw_message(solicit, &[raw_option(3, &[0; 8])])),
            ),
            (
                "deep nesting",
                frame(&raw_message(solicit, &[nested_ia(MAX_NESTING + 1)])),
            ),
            (
                "very deep nesting",
                frame(&raw_message(solicit, &[nested_ia(4000)])),
            ),
            ("UDP length", {
                let mut f = request(MessageType::Solicit, vec![]);
                let at = 14 + 40 + 4;
                f[at..at + 2].copy_from_slice(&9u16.to_be_bytes());
                f
            }),
            ("unspecified source", {
                let mut f = request(MessageType::Solicit, vec![]);
                f[14 + 8..14 + 24].fill(0);
                f
            }),
        ];
        for (what, f) in cases {
            assert_eq!(run(&config, &f), Err(MALFORMED), "{what}");
        }
        let nested_ok = raw_message(solicit, &[nested_ia(MAX_NESTING)]);
        assert!(run(&config, &frame(&nested_ok)).unwrap().is_some());
    }

    /// Every truncation of a valid frame, and of its DHCPv6 payload with
    /// consistent headers: an answer or a refusal, never a panic.
    #[test]
    fn truncations_never_panic() {
        let config = config();
        let ours = DhcpOption::ServerId(our_duid(&config));
        let status = DhcpOption::StatusCode(StatusCode {
            status: Status::Success,
            msg: "ok".into(),
        });
        let options = vec![
            ours,
            ia_na(&["2001:db8::10"]),
            DhcpOption::ElapsedTime(3),
            status,
        ];
        let f = request(MessageType::Request, options);
        for len in 0..f.len() {
            assert_ne!(run(&config, &f[..len]), Ok(Some(0)), "{len}");
        }
        let payload = &f[14 + 40 + 8..];
        for len in 0..payload.len() {
            let result = run(&config, &frame(&payload[..len]));
            assert!(len >= HEADER_LEN || result.is_err(), "{len}");
        }
    }
}
