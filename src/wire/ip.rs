//! The Ethernet and IP layers shared by the transport protocols: finding
//! an unfragmented transport payload in a guest frame ([`transport`]) and
//! writing the Ethernet and IP headers of frames toward the guest
//! ([`write_headers`]).
//!
//! Parsing: IPv4 is read by hand (a fixed header plus length checks); IPv6
//! goes through etherparse, which walks the extension headers. The
//! transport payload ends where the IP length says (trailing Ethernet
//! padding is excluded). Fragments are refused: upstream does not
//! reassemble either.
//!
//! Building follows upstream's conventions for generated packets
//! (REFERENCE.md §2.9): IPv4 TTL 255, identification 0, DF unset, no IP
//! options, header checksum set; IPv6 hop limit 255, traffic class and flow
//! label 0, no extension headers.
//!
//! Invariants: no `unsafe`, no allocation, no panics on any input; every
//! length is checked before a slice is taken. Neighbours: `etherparse`,
//! [`super::checksum`]; used by [`super::tcp`] and [`super::udp`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use etherparse::{IpNumber, Ipv6Slice};

use super::checksum;

pub const ETH_LEN: usize = 14;
pub const IPV4_LEN: usize = 20;
pub const IPV6_LEN: usize = 40;
const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;

/// The addresses of a frame toward the guest: MACs, IP addresses and
/// ports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Endpoints {
    pub our_mac: [u8; 6],
    pub guest_mac: [u8; 6],
    pub src: IpAddr,
    pub dst: IpAddr,
    pub src_port: u16,
    pub dst_port: u16,
}

/// The transport layer of a guest frame.
pub struct Transport<'a> {
    pub src_mac: [u8; 6],
    pub src: IpAddr,
    pub dst: IpAddr,
    /// Transport header and payload, as long as the IP length says.
    pub payload: &'a [u8],
    /// Where `payload` starts in the frame.
    pub payload_at: usize,
}

/// Ethernet + IP header bytes in front of a transport header.
pub const fn header_len(v6: bool) -> usize {
    ETH_LEN + if v6 { IPV6_LEN } else { IPV4_LEN }
}

/// The payload of protocol `proto` in an unfragmented IPv4 or IPv6 guest
/// frame; `None` for anything else or anything malformed.
pub fn transport(frame: &[u8], proto: u8) -> Option<Transport<'_>> {
    let (eth, packet) = frame.split_first_chunk::<ETH_LEN>()?;
    let (src, dst, payload) = match u16::from_be_bytes([eth[12], eth[13]]) {
        ETHERTYPE_IPV4 => ipv4_payload(packet, proto)?,
        ETHERTYPE_IPV6 => ipv6_payload(packet, proto)?,
        _ => return None,
    };
    Some(Transport {
        src_mac: [eth[6], eth[7], eth[8], eth[9], eth[10], eth[11]],
        src,
        dst,
        payload_at: offset_in(frame, payload),
        payload,
    })
}

/// Where `inner`, a subslice of `outer`, starts in it.
fn offset_in(outer: &[u8], inner: &[u8]) -> usize {
    (inner.as_ptr() as usize).saturating_sub(outer.as_ptr() as usize)
}

/// Addresses and payload of an unfragmented IPv4 packet carrying `proto`.
fn ipv4_payload(packet: &[u8], proto: u8) -> Option<(IpAddr, IpAddr, &[u8])> {
    let (ip, _) = packet.split_first_chunk::<IPV4_LEN>()?;
    let header_len = usize::from(ip[0] & 0x0f) * 4;
    let total_len = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    let fragment = u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff; // MF + offset
    if ip[0] >> 4 != 4 || header_len < IPV4_LEN || fragment != 0 || ip[9] != proto {
        return None;
    }
    let payload = packet.get(..total_len)?.get(header_len..)?;
    let src = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
    let dst = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
    Some((src.into(), dst.into(), payload))
}

/// Addresses and payload of an unfragmented IPv6 packet carrying `proto`,
/// after any extension headers.
fn ipv6_payload(packet: &[u8], proto: u8) -> Option<(IpAddr, IpAddr, &[u8])> {
    let ip = Ipv6Slice::from_slice(packet).ok()?;
    let header = ip.header();
    let payload = ip.payload();
    // Length 0 would be a jumbogram: etherparse then takes the whole frame.
    if header.payload_length() == 0 || payload.fragmented || payload.ip_number != IpNumber(proto) {
        return None;
    }
    let src = Ipv6Addr::from(header.source());
    let dst = Ipv6Addr::from(header.destination());
    Some((src.into(), dst.into(), payload.payload))
}

/// Writes the Ethernet and IP headers of a frame carrying `transport_len`
/// bytes of protocol `proto` from `ends.src` to `ends.dst`; returns the
/// header length and the transport bytes (`transport_len` of them, right
/// after the headers). `None` if `frame` is too short, the addresses are
/// of different families, or the IP length field would overflow.
pub fn write_headers<'f>(
    frame: &'f mut [u8],
    ends: &Endpoints,
    proto: u8,
    transport_len: usize,
) -> Option<(usize, &'f mut [u8])> {
    let (eth, rest) = frame.split_first_chunk_mut::<ETH_LEN>()?;
    match (ends.src, ends.dst) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => {
            let (ip, after) = rest.split_first_chunk_mut::<IPV4_LEN>()?;
            let total_len = u16::try_from(IPV4_LEN + transport_len).ok()?;
            let transport = after.get_mut(..transport_len)?;
            write_eth(eth, ends, ETHERTYPE_IPV4);
            write_ipv4(ip, src, dst, total_len, proto);
            Some((ETH_LEN + IPV4_LEN, transport))
        }
        (IpAddr::V6(src), IpAddr::V6(dst)) => {
            let (ip, after) = rest.split_first_chunk_mut::<IPV6_LEN>()?;
            let payload_len = u16::try_from(transport_len).ok()?;
            let transport = after.get_mut(..transport_len)?;
            write_eth(eth, ends, ETHERTYPE_IPV6);
            write_ipv6(ip, src, dst, payload_len, proto);
            Some((ETH_LEN + IPV6_LEN, transport))
        }
        _ => None,
    }
}

/// Ethernet header toward the guest.
fn write_eth(eth: &mut [u8; ETH_LEN], ends: &Endpoints, ethertype: u16) {
    let [m0, m1, m2, m3, m4, m5] = ends.guest_mac;
    let [o0, o1, o2, o3, o4, o5] = ends.our_mac;
    let [t0, t1] = ethertype.to_be_bytes();
    *eth = [m0, m1, m2, m3, m4, m5, o0, o1, o2, o3, o4, o5, t0, t1];
}

/// IPv4 header with its checksum: no options, ID 0, DF unset, TTL 255.
fn write_ipv4(ip: &mut [u8; IPV4_LEN], src: Ipv4Addr, dst: Ipv4Addr, total_len: u16, proto: u8) {
    let [l0, l1] = total_len.to_be_bytes();
    let [s0, s1, s2, s3] = src.octets();
    let [d0, d1, d2, d3] = dst.octets();
    #[rustfmt::skip]
    let header = [
        0x45, 0, l0, l1,
        0, 0, 0, 0,
        255, proto, 0, 0,
        s0, s1, s2, s3,
        d0, d1, d2, d3,
    ];
    *ip = header;
    let [c0, c1] = checksum::finish(checksum::partial(ip, 0)).to_be_bytes();
    ip[10] = c0;
    ip[11] = c1;
}

/// IPv6 header: traffic class and flow label 0, hop limit 255.
fn write_ipv6(ip: &mut [u8; IPV6_LEN], src: Ipv6Addr, dst: Ipv6Addr, payload_len: u16, proto: u8) {
    let [l0, l1] = payload_len.to_be_bytes();
    ip[..8].copy_from_slice(&[0x60, 0, 0, 0, l0, l1, proto, 255]);
    ip[8..24].copy_from_slice(&src.octets());
    ip[24..].copy_from_slice(&dst.octets());
}
