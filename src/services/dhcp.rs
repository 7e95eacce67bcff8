//! DHCP server for the guest (REFERENCE.md §2.3): hands out the one IPv4
//! address the guest has, with the host's netmask, gateway, nameservers
//! and search list, on an infinite lease.
//!
//! Exchange: DISCOVER -> OFFER, or ACK when the client asks for Rapid
//! Commit (option 80, echoed in the ACK); REQUEST and BOOTP (no option 53)
//! -> ACK. DECLINE, RELEASE, INFORM and anything else get no answer; there
//! is no NAK. Options: 1 mask, 3 router, 6 DNS (when advertised), 26 MTU
//! (unless `-m 0`), 51 lease time (infinite), 53 type, 54 server ID (the
//! gateway: our address on the link), 80 (Rapid Commit ACKs), 119 search
//! list (when advertised, RFC 1035 name compression), 121 classless routes
//! (`gw/32` and a default route via it) when the gateway lies outside the
//! guest's subnet. Order, as upstream (some clients expect 53 first): 53,
//! unless the client lists it in its parameter request list (55); then the
//! options the client requested, in its order; then the rest by code.
//!
//! The reply keeps the request's `xid`, `flags`, `ciaddr`, `giaddr`,
//! `chaddr` and magic cookie; `yiaddr` is the guest's address, `hops`,
//! `secs`, `siaddr`, `sname` and `file` are zero. Its options area is
//! padded to at least 60 bytes (a 300-byte BOOTP message) and the search
//! list is cut, name by name, to keep it within 308 bytes (a 576-byte IP
//! datagram, which every client accepts). It goes from the gateway port 67
//! to port 68: broadcast (IP and Ethernet) if the client set the broadcast
//! flag, else to the assigned address and the client's `chaddr`.
//!
//! Addressed to the service: an IPv4 frame carrying UDP to port 67 (any
//! destination address, as upstream). Refused as malformed: a UDP length
//! that disagrees with the IP payload, a message shorter than the fixed
//! BOOTP header plus magic cookie, or one that is not a BOOTREQUEST for
//! Ethernet (htype 1, hlen 6) with the RFC 1497 cookie. Options are read up
//! to the End option or the first truncated one.
//!
//! Messages are parsed and built with `dhcproto` (its lazily decoding
//! `borrowed::Message` for requests: only options 53 and 55 are decoded,
//! which keeps clear of the debug assertions some of its decoders have on
//! option lengths); Ethernet, IP and UDP with `etherparse`. The reply header
//! is decoded from the request's rather than built from
//! `v4::Message::default()`, which draws a random `xid` (a `getrandom`
//! call the seccomp filter need not allow).
//!
//! Neighbours: the engine hands over guest frames (it should drop any UDP
//! datagram to port 67, answered or not: upstream never forwards them);
//! `conf` supplies the lease (DHCP is switched off without an IPv4
//! gateway); `dhcpv6` is the IPv6 counterpart.

use std::net::Ipv4Addr;

use dhcproto::v4::{self, DhcpOption, HType, MessageType, Opcode, OptionCode, borrowed};
use dhcproto::{Decodable, Decoder, Encodable, Encoder, Name};
use etherparse::{
    EtherType, Ethernet2Slice, IpHeaders, IpNumber, Ipv4Header, Ipv4Slice, PacketBuilder,
    UdpHeaderSlice, UdpSlice,
};

use super::{Answer, LinkFacts, Refused};
use crate::conf::Config;

const MALFORMED: Refused = Refused::Malformed("DHCP");
const SERVER_PORT: u16 = v4::SERVER_PORT;
const CLIENT_PORT: u16 = v4::CLIENT_PORT;
/// The fixed BOOTP header plus the magic cookie: where options start.
const HEADER_LEN: usize = 240;
/// Offset of the magic cookie.
const MAGIC_AT: usize = 236;
/// Hardware address length of Ethernet.
const ETH_ALEN: u8 = 6;
/// Smallest options area of a reply (RFC 951: 300-byte messages).
const OPTIONS_MIN: usize = 60;
/// Largest options area of a reply (a 576-byte IP datagram).
const OPTIONS_MAX: usize = 308;
/// Lease, in seconds: infinite.
const LEASE_TIME: u32 = u32::MAX;
/// Time to live of replies, as upstream.
const TTL: u8 = 255;

/// Answers a DHCP or BOOTP request in `frame` with a reply built into
/// `out` (see the module comment for what is answered, and how).
pub fn answer(config: &Config, link: &LinkFacts, frame: &[u8], out: &mut [u8]) -> Answer {
    let Some(lease) = Lease::new(config) else {
        return Ok(None);
    };
    let Some(payload) = request_payload(frame)? else {
        return Ok(None);
    };
    let request = Request::parse(payload)?;
    let Some(kind) = request.reply_kind() else {
        return Ok(None);
    };
    request.log(kind);
    let Some(message) = reply_message(&lease, &request, kind, payload) else {
        return Ok(None);
    };
    Ok(write_frame(link, &lease, &request, &message, out))
}

/// What the guest is told, from the configuration.
struct Lease<'a> {
    addr: Ipv4Addr,
    prefix_len: u8,
    gateway: Ipv4Addr,
    /// Option 26, unless `-m 0` (or a value that cannot be one).
    mtu: Option<u16>,
    dns: &'a [Ipv4Addr],
    search: &'a [String],
}

impl<'a> Lease<'a> {
    /// `None` when DHCP is off, IPv4 is disabled or there is no gateway.
    fn new(config: &'a Config) -> Option<Lease<'a>> {
        let ip4 = config.ip4.as_ref().filter(|_| config.services.dhcp)?;
        let dns = &config.dns;
        Some(Lease {
            addr: ip4.addr,
            prefix_len: ip4.prefix_len,
            gateway: ip4.gateway?,
            mtu: u16::try_from(config.mtu).ok().filter(|&m| m != 0),
            dns: if dns.advertise_servers {
                &dns.servers4
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

    fn netmask(&self) -> Ipv4Addr {
        let host_bits = 32u32.saturating_sub(u32::from(self.prefix_len));
        Ipv4Addr::from(u32::MAX.checked_shl(host_bits).unwrap_or(0))
    }

    /// The gateway is not inside the guest's subnet: routes need option 121.
    fn gateway_off_subnet(&self) -> bool {
        let mask = u32::from(self.netmask());
        u32::from(self.addr) & mask != u32::from(self.gateway) & mask
    }
}

/// The search domains as DNS names; invalid and root-only ones are skipped.
fn search_names(search: &[String]) -> Vec<Name> {
    let names = search.iter().filter_map(|s| Name::from_ascii(s).ok());
    names.filter(|n| !n.is_root()).collect()
}

/// The UDP payload of an IPv4 frame to port 67; `None` if the frame is
/// not one (or is an IP fragment).
fn request_payload(frame: &[u8]) -> Result<Option<&[u8]>, Refused> {
    let Ok(eth) = Ethernet2Slice::from_slice_without_fcs(frame) else {
        return Ok(None);
    };
    if eth.ether_type() != EtherType::IPV4 {
        return Ok(None);
    }
    let Ok(ip) = Ipv4Slice::from_slice(eth.payload_slice()) else {
        return Ok(None);
    };
    if ip.payload_ip_number() != IpNumber::UDP || ip.is_payload_fragmented() {
        return Ok(None);
    }
    let l4 = ip.payload().payload;
    match UdpHeaderSlice::from_slice(l4) {
        Ok(udp) if udp.destination_port() == SERVER_PORT => {}
        _ => return Ok(None),
    }
    let udp = UdpSlice::from_slice(l4).map_err(|_| MALFORMED)?;
    if usize::from(udp.length()) != l4.len() {
        return Err(MALFORMED);
    }
    Ok(Some(udp.payload()))
}

/// The reply due to a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ReplyKind {
    Offer,
    Ack,
    /// ACK to a DISCOVER with Rapid Commit: carries option 80.
    RapidAck,
}

/// What a request asks for.
struct Request {
    /// Option 53; `None` for BOOTP.
    message_type: Option<MessageType>,
    /// Option 55, in the client's order.
    requested: Vec<OptionCode>,
    /// Option 80 is present.
    rapid_commit: bool,
    broadcast: bool,
    chaddr: [u8; 6],
}

impl Request {
    fn parse(payload: &[u8]) -> Result<Request, Refused> {
        let msg = borrowed::Message::new(payload).map_err(|_| MALFORMED)?;
        let for_ethernet = msg.htype() == HType::Eth && msg.hlen() == ETH_ALEN;
        let cookie = payload.get(MAGIC_AT..HEADER_LEN) == Some(&v4::MAGIC[..]);
        if msg.opcode() != Opcode::BootRequest || !for_ethernet || !cookie {
            return Err(MALFORMED);
        }
        let chaddr = msg.chaddr().try_into().map_err(|_| MALFORMED)?;
        let mut request = Request {
            message_type: None,
            requested: Vec::new(),
            rapid_commit: false,
            broadcast: msg.flags().broadcast(),
            chaddr,
        };
        for opt in msg.opts() {
            request.take_option(opt)?;
        }
        Ok(request)
    }

    /// Notes one option of the request; only 53 and 55 are decoded.
    fn take_option(&mut self, opt: borrowed::DhcpOption<'_>) -> Result<(), Refused> {
        match opt.code() {
            OptionCode::MessageType => match opt.into_option() {
                Ok(DhcpOption::MessageType(t)) => self.message_type = Some(t),
                _ => return Err(MALFORMED),
            },
            OptionCode::ParameterRequestList => {
                if let Ok(DhcpOption::ParameterRequestList(codes)) = opt.into_option() {
                    self.requested = codes;
                }
            }
            OptionCode::RapidCommit => self.rapid_commit = true,
            _ => {}
        }
        Ok(())
    }

    /// `None`: no answer due (DECLINE, RELEASE, INFORM, others).
    fn reply_kind(&self) -> Option<ReplyKind> {
        match self.message_type {
            None | Some(MessageType::Request) => Some(ReplyKind::Ack),
            Some(MessageType::Discover) if self.rapid_commit => Some(ReplyKind::RapidAck),
            Some(MessageType::Discover) => Some(ReplyKind::Offer),
            Some(_) => None,
        }
    }

    /// Upstream's log lines for a request being answered.
    fn log(&self, kind: ReplyKind) {
        let what = match kind {
            ReplyKind::Offer => "DHCP: offer to discover",
            ReplyKind::RapidAck => "DHCP: ack to discover (Rapid Commit)",
            ReplyKind::Ack if self.message_type.is_none() => "BOOTP: ack to request",
            ReplyKind::Ack => "DHCP: ack to request",
        };
        let [a, b, c, d, e, f] = self.chaddr;
        log::info!("{what}");
        log::info!("    from {a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{f:02x}");
    }

    /// IP and Ethernet destination of the reply.
    fn reply_destination(&self, lease: &Lease<'_>) -> (Ipv4Addr, [u8; 6]) {
        if self.broadcast {
            (Ipv4Addr::BROADCAST, [0xff; 6])
        } else {
            (lease.addr, self.chaddr)
        }
    }
}

/// The encoded reply message (header and options); `None` if encoding
/// fails, which our own values never make it do.
fn reply_message(
    lease: &Lease<'_>,
    request: &Request,
    kind: ReplyKind,
    payload: &[u8],
) -> Option<Vec<u8>> {
    let header = reply_header(lease, payload.get(..HEADER_LEN)?)?;
    let mut options = server_options(lease, kind);
    let names = search_names(lease.search);
    if let Some(search) = search_option(&names, room_for_search(&options)?) {
        let at = options.partition_point(|o| OptionCode::from(o) < OptionCode::DomainSearch);
        options.insert(at, search);
    }
    let options = in_client_order(options, &request.requested);

    let mut buf = Vec::with_capacity(HEADER_LEN + OPTIONS_MAX);
    let mut encoder = Encoder::new(&mut buf);
    header.encode(&mut encoder).ok()?;
    for option in options.iter().chain([&DhcpOption::End]) {
        option.encode(&mut encoder).ok()?;
    }
    buf.resize(buf.len().max(HEADER_LEN + OPTIONS_MIN), 0);
    Some(buf)
}

/// The request's header and cookie, turned into a reply's (no options).
fn reply_header(lease: &Lease<'_>, request_header: &[u8]) -> Option<v4::Message> {
    let mut header = v4::Message::decode(&mut Decoder::new(request_header)).ok()?;
    header
        .set_opcode(Opcode::BootReply)
        .set_hops(0)
        .set_secs(0)
        .set_yiaddr(lease.addr)
        .set_siaddr(Ipv4Addr::UNSPECIFIED);
    header.clear_sname();
    header.clear_fname();
    Some(header)
}

/// Every option of the reply except the search list, by code.
fn server_options(lease: &Lease<'_>, kind: ReplyKind) -> Vec<DhcpOption> {
    let message_type = match kind {
        ReplyKind::Offer => MessageType::Offer,
        ReplyKind::Ack | ReplyKind::RapidAck => MessageType::Ack,
    };
    let mut options = vec![
        DhcpOption::SubnetMask(lease.netmask()),
        DhcpOption::Router(vec![lease.gateway]),
    ];
    if !lease.dns.is_empty() {
        options.push(DhcpOption::DomainNameServer(lease.dns.to_vec()));
    }
    if let Some(mtu) = lease.mtu {
        options.push(DhcpOption::InterfaceMtu(mtu));
    }
    options.push(DhcpOption::AddressLeaseTime(LEASE_TIME));
    options.push(DhcpOption::MessageType(message_type));
    options.push(DhcpOption::ServerIdentifier(lease.gateway));
    if kind == ReplyKind::RapidAck {
        options.push(DhcpOption::RapidCommit);
    }
    if lease.gateway_off_subnet() {
        let host_route = (lease.gateway.into(), Ipv4Addr::UNSPECIFIED);
        let default_route = (Default::default(), lease.gateway);
        options.push(DhcpOption::ClasslessStaticRoute(vec![
            host_route,
            default_route,
        ]));
    }
    options
}

/// Bytes left for option 119 in the options area, after `options` and
/// the End option.
fn room_for_search(options: &[DhcpOption]) -> Option<usize> {
    let mut used = 1;
    for option in options {
        used += encoded_len(option)?;
    }
    Some(OPTIONS_MAX.saturating_sub(used))
}

/// Option 119 with as many of `names` (from the first) as fit in `room`
/// bytes; `None` if not even the first one does.
fn search_option(names: &[Name], room: usize) -> Option<DhcpOption> {
    (1..=names.len())
        .rev()
        .map(|n| DhcpOption::DomainSearch(names[..n].to_vec()))
        .find(|option| encoded_len(option).is_some_and(|len| len <= room))
}

fn encoded_len(option: &DhcpOption) -> Option<usize> {
    let mut buf = Vec::new();
    option.encode(&mut Encoder::new(&mut buf)).ok()?;
    Some(buf.len())
}

/// 53 first unless the client requested it; then what the client
/// requested, in its order; then the rest, in their order.
fn in_client_order(mut rest: Vec<DhcpOption>, requested: &[OptionCode]) -> Vec<DhcpOption> {
    let mut ordered = Vec::with_capacity(rest.len());
    let mut take = |code: OptionCode| {
        if let Some(i) = rest.iter().position(|o| OptionCode::from(o) == code) {
            ordered.push(rest.remove(i));
        }
    };
    if !requested.contains(&OptionCode::MessageType) {
        take(OptionCode::MessageType);
    }
    requested.iter().for_each(|&code| take(code));
    ordered.append(&mut rest);
    ordered
}

/// Wraps `message` in UDP, IPv4 and Ethernet; `None` if `out` is too small.
fn write_frame(
    link: &LinkFacts,
    lease: &Lease<'_>,
    request: &Request,
    message: &[u8],
    out: &mut [u8],
) -> Option<usize> {
    let (dst_ip, dst_mac) = request.reply_destination(lease);
    let ip = Ipv4Header {
        source: lease.gateway.octets(),
        destination: dst_ip.octets(),
        time_to_live: TTL,
        dont_fragment: false,
        ..Default::default()
    };
    PacketBuilder::ethernet2(link.our_mac, dst_mac)
        .ip(IpHeaders::Ipv4(ip, Default::default()))
        .udp(SERVER_PORT, CLIENT_PORT)
        .write_to_slice(out, message)
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conf::{Mode, fixture};
    use crate::services::REPLY_MAX;
    use etherparse::{Ipv4HeaderSlice, UdpHeader};

    const CLIENT_MAC: [u8; 6] = [0x52, 0x54, 0, 0x12, 0x34, 0x56];
    const XID: u32 = 0x1234_5678;

    fn config() -> Config {
        fixture::config(Mode::Passt, &[])
    }

    /// A request from `CLIENT_MAC` with `options` (dhcproto encodes them
    /// by code), as the UDP payload to port 67.
    fn message(options: Vec<DhcpOption>) -> v4::Message {
        let unspecified = Ipv4Addr::UNSPECIFIED;
        let mut msg = v4::Message::new_with_id(
            XID,
            unspecified,
            unspecified,
            unspecified,
            unspecified,
            &CLIENT_MAC,
        );
        options
            .into_iter()
            .for_each(|o| _ = msg.opts_mut().insert(o));
        msg
    }

    fn encode(msg: &v4::Message) -> Vec<u8> {
        let mut buf = Vec::new();
        msg.encode(&mut Encoder::new(&mut buf)).unwrap();
        buf
    }

    fn frame_with_port(payload: &[u8], dst_port: u16) -> Vec<u8> {
        let builder = PacketBuilder::ethernet2(CLIENT_MAC, [0xff; 6])
            .ipv4([0; 4], [255; 4], 64)
            .udp(CLIENT_PORT, dst_port);
        let mut frame = Vec::new();
        builder.write(&mut frame, payload).unwrap();
        frame
    }

    fn frame(payload: &[u8]) -> Vec<u8> {
        frame_with_port(payload, SERVER_PORT)
    }

    fn request(msg_type: MessageType, extra: Vec<DhcpOption>) -> Vec<u8> {
        let mut options = vec![DhcpOption::MessageType(msg_type)];
        options.extend(extra);
        frame(&encode(&message(options)))
    }

    fn run(config: &Config, frame: &[u8]) -> Answer {
        let mut out = vec![0; REPLY_MAX];
        answer(config, &LinkFacts::new(config), frame, &mut out)
    }

    /// A reply, checked for its layers and checksums.
    struct Reply {
        eth_dst: [u8; 6],
        eth_src: [u8; 6],
        ip_src: Ipv4Addr,
        ip_dst: Ipv4Addr,
        ttl: u8,
        payload: Vec<u8>,
        msg: v4::Message,
    }

    impl Reply {
        /// Option codes in wire order.
        fn order(&self) -> Vec<u8> {
            let msg = borrowed::Message::new(&self.payload).unwrap();
            msg.opts().map(|o| u8::from(o.code())).collect()
        }

        fn raw(&self, code: OptionCode) -> Vec<u8> {
            let msg = borrowed::Message::new(&self.payload).unwrap();
            let opt = msg.opts().find(|o| o.code() == code).unwrap();
            opt.data().to_vec()
        }

        fn get(&self, code: OptionCode) -> Option<&DhcpOption> {
            self.msg.opts().get(code)
        }

        /// Bytes of the options area (from the cookie to the end).
        fn options_len(&self) -> usize {
            self.payload.len() - HEADER_LEN
        }
    }

    fn reply(config: &Config, frame: &[u8]) -> Reply {
        let mut out = vec![0; REPLY_MAX];
        let len = answer(config, &LinkFacts::new(config), frame, &mut out)
            .unwrap()
            .expect("a reply");
        parse_reply(&out[..len])
    }

    fn parse_reply(frame: &[u8]) -> Reply {
        let eth = Ethernet2Slice::from_slice_without_fcs(frame).unwrap();
        assert_eq!(eth.ether_type(), EtherType::IPV4);
        let ip = Ipv4Slice::from_slice(eth.payload_slice()).unwrap();
        let ip_header = Ipv4HeaderSlice::from_slice(eth.payload_slice()).unwrap();
        assert_eq!(
            ip_header.to_header().calc_header_checksum(),
            ip_header.header_checksum()
        );
        assert_eq!(ip.payload_ip_number(), IpNumber::UDP);
        let udp = UdpSlice::from_slice(ip.payload().payload).unwrap();
        assert_eq!((udp.source_port(), udp.destination_port()), (67, 68));
        assert_eq!(usize::from(udp.length()), ip.payload().payload.len());
        let udp_header: UdpHeader = udp.to_header();
        let sum = udp_header.calc_checksum_ipv4(&ip_header.to_header(), udp.payload());
        assert_eq!(sum.unwrap(), udp.checksum(), "UDP checksum");
        let payload = udp.payload().to_vec();
        let msg = v4::Message::decode(&mut Decoder::new(&payload)).unwrap();
        Reply {
            eth_dst: eth.destination(),
            eth_src: eth.source(),
            ip_src: ip_header.source_addr(),
            ip_dst: ip_header.destination_addr(),
            ttl: ip_header.ttl(),
            payload,
            msg,
        }
    }

    fn v4(text: &str) -> Ipv4Addr {
        text.parse().unwrap()
    }

    /// The fixture: 192.0.2.10/24 via 192.0.2.1, DNS 192.0.2.53, search
    /// example.test, MTU 65520.
    #[test]
    fn discover_gets_offer_with_every_option() {
        let config = config();
        let r = reply(&config, &request(MessageType::Discover, vec![]));
        assert_eq!(r.eth_src, config.our_mac);
        assert_eq!(r.eth_dst, CLIENT_MAC);
        assert_eq!(
            (r.ip_src, r.ip_dst, r.ttl),
            (v4("192.0.2.1"), v4("192.0.2.10"), 255)
        );

        let m = &r.msg;
        assert_eq!(m.opcode(), Opcode::BootReply);
        assert_eq!(
            (m.htype(), m.hlen(), m.hops(), m.secs()),
            (HType::Eth, 6, 0, 0)
        );
        assert_eq!(m.xid(), XID);
        assert_eq!(m.chaddr(), CLIENT_MAC);
        assert_eq!(m.yiaddr(), v4("192.0.2.10"));
        assert_eq!(
            (m.ciaddr(), m.siaddr()),
            (Ipv4Addr::UNSPECIFIED, Ipv4Addr::UNSPECIFIED)
        );
        assert_eq!((m.sname(), m.fname()), (None, None));

        assert_eq!(r.order(), [53, 1, 3, 6, 26, 51, 54, 119]);
        assert_eq!(m.opts().msg_type(), Some(MessageType::Offer));
        let expect = [
            DhcpOption::SubnetMask(v4("255.255.255.0")),
            DhcpOption::Router(vec![v4("192.0.2.1")]),
            DhcpOption::DomainNameServer(vec![v4("192.0.2.53")]),
            DhcpOption::InterfaceMtu(65520),
            DhcpOption::AddressLeaseTime(0xffff_ffff),
            DhcpOption::ServerIdentifier(v4("192.0.2.1")),
        ];
        for option in expect {
            assert_eq!(r.get(OptionCode::from(&option)), Some(&option));
        }
        assert_eq!(r.raw(OptionCode::DomainSearch), b"\x07example\x04test\x00");
        assert!(r.options_len() >= OPTIONS_MIN && r.payload.len() >= 300);
    }

    #[test]
    fn request_gets_ack() {
        let config = config();
        let extra = vec![DhcpOption::RequestedIpAddress(v4("192.0.2.10"))];
        let r = reply(&config, &request(MessageType::Request, extra));
        assert_eq!(r.msg.opts().msg_type(), Some(MessageType::Ack));
        assert_eq!(r.order()[0], 53);
        assert_eq!(r.msg.yiaddr(), v4("192.0.2.10"));
        assert_eq!(r.get(OptionCode::RapidCommit), None);
    }

    #[test]
    fn bootp_gets_ack() {
        let config = config();
        let r = reply(&config, &frame(&encode(&message(vec![]))));
        assert_eq!(r.msg.opts().msg_type(), Some(MessageType::Ack));
        assert_eq!(r.msg.yiaddr(), v4("192.0.2.10"));
        assert!(r.payload.len() >= 300);
    }

    #[test]
    fn rapid_commit_discover_gets_ack_with_option_80() {
        let config = config();
        let r = reply(
            &config,
            &request(MessageType::Discover, vec![DhcpOption::RapidCommit]),
        );
        assert_eq!(r.msg.opts().msg_type(), Some(MessageType::Ack));
        assert_eq!(
            r.get(OptionCode::RapidCommit),
            Some(&DhcpOption::RapidCommit)
        );
        assert_eq!(r.order(), [53, 1, 3, 6, 26, 51, 54, 80, 119]);
    }

    #[test]
    fn broadcast_flag_gets_broadcast_reply() {
        let config = config();
        let mut msg = message(vec![DhcpOption::MessageType(MessageType::Discover)]);
        msg.set_flags(v4::Flags::default().set_broadcast());
        let r = reply(&config, &frame(&encode(&msg)));
        assert_eq!((r.eth_dst, r.ip_dst), ([0xff; 6], Ipv4Addr::BROADCAST));
        assert!(r.msg.flags().broadcast());
    }

    #[test]
    fn ciaddr_and_giaddr_are_echoed() {
        let config = config();
        let mut msg = message(vec![DhcpOption::MessageType(MessageType::Request)]);
        msg.set_ciaddr(v4("192.0.2.10"))
            .set_giaddr(v4("192.0.2.99"));
        msg.set_siaddr(v4("192.0.2.98")).set_hops(3).set_secs(9);
        let r = reply(&config, &frame(&encode(&msg)));
        assert_eq!(
            (r.msg.ciaddr(), r.msg.giaddr()),
            (v4("192.0.2.10"), v4("192.0.2.99"))
        );
        assert_eq!(
            (r.msg.siaddr(), r.msg.hops(), r.msg.secs()),
            (Ipv4Addr::UNSPECIFIED, 0, 0)
        );
    }

    #[test]
    fn options_follow_the_parameter_request_list() {
        let config = config();
        let prl = |codes: &[u8]| {
            let codes = codes.iter().map(|&c| OptionCode::from(c)).collect();
            vec![DhcpOption::ParameterRequestList(codes)]
        };
        let r = reply(
            &config,
            &request(MessageType::Discover, prl(&[6, 3, 1, 200, 119])),
        );
        assert_eq!(r.order(), [53, 6, 3, 1, 119, 26, 51, 54]);
        let r = reply(
            &config,
            &request(MessageType::Discover, prl(&[1, 53, 3, 3])),
        );
        assert_eq!(r.order(), [1, 53, 3, 6, 26, 51, 54, 119]);
    }

    #[test]
    fn decline_release_inform_and_others_are_ignored() {
        let config = config();
        for t in [
            MessageType::Decline,
            MessageType::Release,
            MessageType::Inform,
            MessageType::Offer,
            MessageType::Ack,
            MessageType::Nak,
            MessageType::Unknown(200),
        ] {
            assert_eq!(run(&config, &request(t, vec![])), Ok(None), "{t:?}");
        }
    }

    #[test]
    fn other_frames_are_not_for_dhcp() {
        let config = config();
        let payload = encode(&message(vec![DhcpOption::MessageType(
            MessageType::Discover,
        )]));
        assert_eq!(run(&config, &frame_with_port(&payload, 68)), Ok(None));
        assert_eq!(run(&config, &[]), Ok(None));
        let mut tcp = Vec::new();
        PacketBuilder::ethernet2(CLIENT_MAC, [0xff; 6])
            .ipv4([0; 4], [255; 4], 64)
            .tcp(68, 67, 1, 1000)
            .write(&mut tcp, &payload)
            .unwrap();
        assert_eq!(run(&config, &tcp), Ok(None));
        let mut v6 = Vec::new();
        PacketBuilder::ethernet2(CLIENT_MAC, [0xff; 6])
            .ipv6([0xfe; 16], [0xff; 16], 64)
            .udp(68, 67)
            .write(&mut v6, &payload)
            .unwrap();
        assert_eq!(run(&config, &v6), Ok(None));
    }

    #[test]
    fn nothing_without_dhcp_or_gateway() {
        let discover = request(MessageType::Discover, vec![]);
        let mut config = config();
        config.services.dhcp = false;
        assert_eq!(run(&config, &discover), Ok(None));
        let mut config = self::config();
        config.ip4.as_mut().unwrap().gateway = None;
        assert_eq!(run(&config, &discover), Ok(None));
        let mut config = self::config();
        config.ip4 = None;
        assert_eq!(run(&config, &discover), Ok(None));
    }

    #[test]
    fn malformed_requests_are_refused() {
        let config = config();
        let good = encode(&message(vec![DhcpOption::MessageType(
            MessageType::Discover,
        )]));
        let patched = |at: usize, value: u8| {
            let mut payload = good.clone();
            payload[at] = value;
            frame(&payload)
        };
        let cases = [
            ("BOOTREPLY", patched(0, 2)),
            ("htype", patched(1, 6)),
            ("hlen", patched(2, 16)),
            ("hlen 255", patched(2, 255)),
            ("magic", patched(MAGIC_AT, 0)),
            ("short", frame(&good[..HEADER_LEN - 1])),
            ("option 53 empty", {
                let mut payload = good[..HEADER_LEN].to_vec();
                payload.extend([53, 0, 255]);
                frame(&payload)
            }),
            ("UDP length", {
                let mut f = frame(&good);
                let at = 14 + 20 + 4;
                f[at..at + 2].copy_from_slice(&100u16.to_be_bytes());
                f
            }),
        ];
        for (what, f) in cases {
            assert_eq!(run(&config, &f), Err(MALFORMED), "{what}");
        }
    }

    /// Every truncation of a valid frame, and of its DHCP payload with
    /// consistent headers: an answer or a refusal, never a panic.
    #[test]
    fn truncations_never_panic() {
        let config = config();
        let prl =
            DhcpOption::ParameterRequestList(vec![OptionCode::Router, OptionCode::MessageType]);
        let f = request(MessageType::Discover, vec![prl, DhcpOption::RapidCommit]);
        for len in 0..f.len() {
            assert_ne!(run(&config, &f[..len]), Ok(Some(0)), "{len}");
        }
        let payload = &f[14 + 20 + 8..];
        for len in 0..payload.len() {
            let result = run(&config, &frame(&payload[..len]));
            assert_eq!(result.is_err(), len < HEADER_LEN, "{len}");
        }
    }

    /// Options whose decoding would trip `dhcproto`'s debug assertions are
    /// only skipped, never decoded.
    #[test]
    fn odd_option_lengths_are_skipped() {
        let config = config();
        let mut payload = encode(&message(vec![]));
        payload.truncate(HEADER_LEN);
        payload.extend([
            53, 1, 1, 80, 3, 1, 2, 3, 94, 0, 151, 0, 81, 1, 0, 152, 0, 255,
        ]);
        let r = reply(&config, &frame(&payload));
        assert_eq!(r.msg.opts().msg_type(), Some(MessageType::Ack));
        assert_eq!(
            r.get(OptionCode::RapidCommit),
            Some(&DhcpOption::RapidCommit)
        );
    }

    #[test]
    fn search_list_is_compressed() {
        let mut config = config();
        config.dns.search = [
            "example.test",
            "sub.example.test",
            "other.test",
            "example.test.",
        ]
        .map(String::from)
        .to_vec();
        let r = reply(&config, &request(MessageType::Discover, vec![]));
        let expect: &[u8] = b"\x07example\x04test\x00\x03sub\xc0\x00\x05other\xc0\x08\xc0\x00";
        assert_eq!(r.raw(OptionCode::DomainSearch), expect);
        let names = [
            "example.test.",
            "sub.example.test.",
            "other.test.",
            "example.test.",
        ];
        let names = names.map(|n| Name::from_ascii(n).unwrap()).to_vec();
        assert_eq!(
            r.get(OptionCode::DomainSearch),
            Some(&DhcpOption::DomainSearch(names))
        );
    }

    #[test]
    fn long_search_list_is_cut_to_fit() {
        let mut config = config();
        let label = "a".repeat(60);
        config.dns.search = (0..6).map(|i| format!("{label}.{i}{label}.test")).collect();
        let r = reply(&config, &request(MessageType::Discover, vec![]));
        assert!(r.options_len() <= OPTIONS_MAX, "{}", r.options_len());
        let Some(DhcpOption::DomainSearch(names)) = r.get(OptionCode::DomainSearch) else {
            panic!("no search list");
        };
        // 129 bytes for the first name, 125 for the next (".test" is
        // compressed): two fit with the other options, three would not.
        assert_eq!(names.len(), 2);
    }

    #[test]
    fn nothing_advertised_when_switched_off() {
        let mut config = config();
        config.dns.advertise_servers = false;
        config.dns.advertise_search = false;
        config.mtu = 0;
        let r = reply(&config, &request(MessageType::Discover, vec![]));
        assert_eq!(r.order(), [53, 1, 3, 51, 54]);
        assert_eq!(r.options_len(), OPTIONS_MIN);
    }

    #[test]
    fn off_subnet_gateway_gets_classless_routes() {
        let mut config = config();
        config.ip4.as_mut().unwrap().gateway = Some(v4("198.51.100.1"));
        let r = reply(&config, &request(MessageType::Discover, vec![]));
        assert_eq!(r.order(), [53, 1, 3, 6, 26, 51, 54, 119, 121]);
        assert_eq!(
            r.raw(OptionCode::ClasslessStaticRoute),
            [32, 198, 51, 100, 1, 0, 0, 0, 0, 0, 198, 51, 100, 1]
        );
        assert_eq!(r.ip_src, v4("198.51.100.1"));
        let id = r.get(OptionCode::ServerIdentifier);
        assert_eq!(id, Some(&DhcpOption::ServerIdentifier(v4("198.51.100.1"))));
    }

    #[test]
    fn prefix_lengths_give_masks() {
        let mut config = config();
        for (prefix_len, mask) in [
            (0, "0.0.0.0"),
            (8, "255.0.0.0"),
            (30, "255.255.255.252"),
            (32, "255.255.255.255"),
        ] {
            config.ip4.as_mut().unwrap().prefix_len = prefix_len;
            let r = reply(&config, &request(MessageType::Discover, vec![]));
            assert_eq!(
                r.get(OptionCode::SubnetMask),
                Some(&DhcpOption::SubnetMask(v4(mask)))
            );
        }
    }

    #[test]
    fn small_buffer_gets_no_reply() {
        let config = config();
        let mut out = [0; 100];
        let discover = request(MessageType::Discover, vec![]);
        assert_eq!(
            answer(&config, &LinkFacts::new(&config), &discover, &mut out),
            Ok(None)
        );
    }
}
