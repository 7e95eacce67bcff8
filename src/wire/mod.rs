//! Frame views on top of `etherparse`: checked once at construction, then
//! plain accessors. Services and flows parse deeper with their own views.
//!
//! Invariant: nothing here panics on any input; a frame that does not parse
//! is reported as [`FrameClass::Malformed`].

pub mod checksum;
pub mod echo;
pub mod ip;
pub mod tcp;
pub mod udp;

use etherparse::{EtherType, Ethernet2Slice, IpNumber, Ipv4Slice, Ipv6Slice};

/// What a guest frame carries, as far as dispatch needs to know.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FrameClass {
    Arp,
    /// IPv4 with its protocol number.
    Ipv4(u8),
    /// IPv6 with the upper-layer protocol after extension headers.
    Ipv6(u8),
    /// Any other ethertype.
    OtherEtherType(u16),
    /// Too short, bad lengths or headers.
    Malformed,
}

/// Classifies a guest frame by ethertype and IP protocol.
pub fn classify(frame: &[u8]) -> FrameClass {
    let Ok(eth) = Ethernet2Slice::from_slice_without_fcs(frame) else {
        return FrameClass::Malformed;
    };
    match eth.ether_type() {
        EtherType::ARP => FrameClass::Arp,
        EtherType::IPV4 => match Ipv4Slice::from_slice(eth.payload_slice()) {
            Ok(ip) => FrameClass::Ipv4(ip.payload_ip_number().0),
            Err(_) => FrameClass::Malformed,
        },
        EtherType::IPV6 => match Ipv6Slice::from_slice(eth.payload_slice()) {
            Ok(ip) => FrameClass::Ipv6(ip.payload().ip_number.0),
            Err(_) => FrameClass::Malformed,
        },
        other => FrameClass::OtherEtherType(other.0),
    }
}

/// The Ethernet and IPv6 layers of `frame`, if it is a well-formed IPv6
/// frame carrying upper-layer protocol `proto` unfragmented.
pub fn ipv6_carrying(frame: &[u8], proto: IpNumber) -> Option<(Ethernet2Slice<'_>, Ipv6Slice<'_>)> {
    let eth = Ethernet2Slice::from_slice_without_fcs(frame).ok()?;
    if eth.ether_type() != EtherType::IPV6 {
        return None;
    }
    let ip = Ipv6Slice::from_slice(eth.payload_slice()).ok()?;
    let payload = ip.payload();
    if payload.ip_number != proto || payload.fragmented {
        return None;
    }
    Some((eth, ip))
}

/// IP protocol numbers used in dispatch.
pub const PROTO_TCP: u8 = IpNumber::TCP.0;
pub const PROTO_UDP: u8 = IpNumber::UDP.0;
pub const PROTO_ICMP: u8 = IpNumber::ICMP.0;
pub const PROTO_ICMPV6: u8 = IpNumber::IPV6_ICMP.0;

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::PacketBuilder;

    fn udp4() -> Vec<u8> {
        let b = PacketBuilder::ethernet2([1; 6], [2; 6])
            .ipv4([192, 0, 2, 1], [192, 0, 2, 2], 64)
            .udp(1000, 53);
        let mut out = Vec::new();
        b.write(&mut out, b"hello").unwrap();
        out
    }

    #[test]
    fn wire_classifies_udp_over_ipv4() {
        assert_eq!(classify(&udp4()), FrameClass::Ipv4(PROTO_UDP));
    }

    #[test]
    fn wire_classifies_icmpv6() {
        let b = PacketBuilder::ethernet2([1; 6], [2; 6])
            .ipv6([0xfe; 16], [0xff; 16], 255)
            .icmpv6_echo_request(1, 1);
        let mut out = Vec::new();
        b.write(&mut out, b"x").unwrap();
        assert_eq!(classify(&out), FrameClass::Ipv6(PROTO_ICMPV6));
    }

    #[test]
    fn wire_truncated_frames_are_malformed_not_panics() {
        let f = udp4();
        for len in 0..f.len() {
            let c = classify(&f[..len]);
            if len < 14 + 20 {
                assert_eq!(c, FrameClass::Malformed, "len {len}");
            }
        }
        let mut bad = f.clone();
        bad[14] = 0x4f; // IHL 15 words: beyond the frame
        assert_eq!(classify(&bad), FrameClass::Malformed);
    }
}
