//! ICMP and ICMPv6 echo messages: the request a guest sends, and the reply
//! frame we build for it.
//!
//! Built frames follow upstream's conventions for generated packets
//! (REFERENCE.md §2.9): IPv4 TTL 255, ID 0, DF unset; IPv6 hop limit 255.

use std::io::Cursor;
use std::net::IpAddr;

use etherparse::{
    IcmpEchoHeader, Icmpv4Type, Icmpv6Type, IpHeaders, Ipv4Header, NetSlice, PacketBuilder,
    SlicedPacket, TransportSlice,
};

/// A guest's echo request, borrowed from its frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EchoRequest<'a> {
    pub src_mac: [u8; 6],
    pub src: IpAddr,
    pub dst: IpAddr,
    pub id: u16,
    pub seq: u16,
    pub payload: &'a [u8],
}

/// The echo request in `frame`, if it is one (IPv4 fragments are not).
pub fn parse_echo_request(frame: &[u8]) -> Option<EchoRequest<'_>> {
    let packet = SlicedPacket::from_ethernet(frame).ok()?;
    let src_mac = match &packet.link {
        Some(etherparse::LinkSlice::Ethernet2(eth)) => eth.source(),
        _ => return None,
    };
    let (src, dst) = match packet.net.as_ref()? {
        NetSlice::Ipv4(ip) if !ip.is_payload_fragmented() => (
            IpAddr::V4(ip.header().source_addr()),
            IpAddr::V4(ip.header().destination_addr()),
        ),
        NetSlice::Ipv6(ip) => (
            IpAddr::V6(ip.header().source_addr()),
            IpAddr::V6(ip.header().destination_addr()),
        ),
        _ => return None,
    };
    let (echo, payload) = match packet.transport.as_ref()? {
        TransportSlice::Icmpv4(icmp) if src.is_ipv4() => match icmp.icmp_type() {
            Icmpv4Type::EchoRequest(echo) => (echo, icmp.payload()),
            _ => return None,
        },
        TransportSlice::Icmpv6(icmp) if src.is_ipv6() => match icmp.icmp_type() {
            Icmpv6Type::EchoRequest(echo) => (echo, icmp.payload()),
            _ => return None,
        },
        _ => return None,
    };
    Some(EchoRequest {
        src_mac,
        src,
        dst,
        id: echo.id,
        seq: echo.seq,
        payload,
    })
}

/// The echo part of an ICMP message as a ping socket returns it (header +
/// payload, no IP header): `(id, seq, payload)` if it is an echo reply of
/// the right family.
pub fn parse_socket_echo_reply(msg: &[u8], v6: bool) -> Option<(u16, u16, &[u8])> {
    let reply_type = if v6 { 129 } else { 0 };
    if msg.len() < 8 || msg[0] != reply_type || msg[1] != 0 {
        return None;
    }
    let id = u16::from_be_bytes([msg[4], msg[5]]);
    let seq = u16::from_be_bytes([msg[6], msg[7]]);
    Some((id, seq, &msg[8..]))
}

/// Writes an ICMP echo request header for a ping socket (the kernel sets
/// the identifier and the checksum) followed by `payload` into `out`;
/// returns the message length, or `None` if it does not fit.
pub fn socket_echo_request(v6: bool, seq: u16, payload: &[u8], out: &mut [u8]) -> Option<usize> {
    let len = 8 + payload.len();
    let msg = out.get_mut(..len)?;
    msg[..8].copy_from_slice(&[if v6 { 128 } else { 8 }, 0, 0, 0, 0, 0, 0, 0]);
    msg[6..8].copy_from_slice(&seq.to_be_bytes());
    msg[8..].copy_from_slice(payload);
    Some(len)
}

/// Addresses of a frame toward the guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ToGuest {
    pub our_mac: [u8; 6],
    pub guest_mac: [u8; 6],
    /// The address the reply appears to come from.
    pub src: IpAddr,
    /// The guest's address.
    pub dst: IpAddr,
}

/// Builds an echo reply frame into `out`; returns its length, or `None` if
/// the addresses are of different families or the frame does not fit.
pub fn build_echo_reply(
    to: ToGuest,
    id: u16,
    seq: u16,
    payload: &[u8],
    out: &mut [u8],
) -> Option<usize> {
    let eth = PacketBuilder::ethernet2(to.our_mac, to.guest_mac);
    let echo = IcmpEchoHeader { id, seq };
    let mut cursor = Cursor::new(out);
    match (to.src, to.dst) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => {
            let mut ip = Ipv4Header::new(
                0,
                255,
                etherparse::IpNumber::ICMP,
                src.octets(),
                dst.octets(),
            )
            .ok()?;
            ip.dont_fragment = false;
            eth.ip(IpHeaders::Ipv4(ip, Default::default()))
                .icmpv4(Icmpv4Type::EchoReply(echo))
                .write(&mut cursor, payload)
                .ok()?;
        }
        (IpAddr::V6(src), IpAddr::V6(dst)) => {
            eth.ipv6(src.octets(), dst.octets(), 255)
                .icmpv6(Icmpv6Type::EchoReply(echo))
                .write(&mut cursor, payload)
                .ok()?;
        }
        _ => return None,
    }
    usize::try_from(cursor.position()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request_v4() -> Vec<u8> {
        let mut out = Vec::new();
        PacketBuilder::ethernet2([2; 6], [4; 6])
            .ipv4([192, 0, 2, 10], [198, 51, 100, 2], 64)
            .icmpv4_echo_request(0x1234, 7)
            .write(&mut out, b"ping!")
            .unwrap();
        out
    }

    #[test]
    fn echo_request_v4_is_parsed() {
        let f = request_v4();
        let r = parse_echo_request(&f).unwrap();
        assert_eq!((r.id, r.seq, r.payload), (0x1234, 7, &b"ping!"[..]));
        assert_eq!(r.src_mac, [2; 6]);
        assert_eq!(r.dst, "198.51.100.2".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn echo_truncations_never_panic() {
        let f = request_v4();
        for len in 0..f.len() {
            let _ = parse_echo_request(&f[..len]);
        }
    }

    #[test]
    fn echo_reply_round_trips_with_valid_checksum() {
        let to = ToGuest {
            our_mac: [4; 6],
            guest_mac: [2; 6],
            src: "2001:db8::1".parse().unwrap(),
            dst: "2001:db8::10".parse().unwrap(),
        };
        let mut out = [0u8; 200];
        let n = build_echo_reply(to, 9, 3, b"abc", &mut out).unwrap();
        let p = SlicedPacket::from_ethernet(&out[..n]).unwrap();
        let Some(TransportSlice::Icmpv6(icmp)) = p.transport else {
            panic!()
        };
        assert_eq!(
            icmp.icmp_type(),
            Icmpv6Type::EchoReply(IcmpEchoHeader { id: 9, seq: 3 })
        );
        let Some(NetSlice::Ipv6(ip)) = p.net else {
            panic!()
        };
        let sum = icmp
            .header()
            .icmp_type
            .calc_checksum(
                ip.header().source(),
                ip.header().destination(),
                icmp.payload(),
            )
            .unwrap();
        assert_eq!(sum, icmp.checksum());
    }

    #[test]
    fn echo_socket_messages() {
        let mut out = [0u8; 16];
        let n = socket_echo_request(false, 5, b"xy", &mut out).unwrap();
        assert_eq!(&out[..n], &[8, 0, 0, 0, 0, 0, 0, 5, b'x', b'y']);
        let reply = [0u8, 0, 0xaa, 0xbb, 0, 42, 0, 5, b'x'];
        assert_eq!(
            parse_socket_echo_reply(&reply, false),
            Some((42, 5, &b"x"[..]))
        );
        assert_eq!(parse_socket_echo_reply(&reply, true), None);
        assert!(socket_echo_request(true, 1, &[0; 20], &mut out).is_none());
    }
}
