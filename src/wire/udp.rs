//! UDP datagrams between the guest and us: the view of a guest's datagram
//! ([`parse_datagram`]) and the headers of datagrams toward the guest
//! ([`write_headers`], written in front of a payload a socket read already
//! put in place).
//!
//! Parsing: the Ethernet and IP layers are [`super::ip`]'s; the UDP length
//! field must cover the header and fit in the IP payload, and it bounds the
//! payload (trailing bytes are ignored). Checksums are not verified: the
//! datagram is handed to a socket, and a tap may deliver partial checksums.
//! Ports are taken as they are; the flow code refuses port 0.
//!
//! Building: a full checksum (0 sent as 0xffff, as RFC 768 asks), or for a
//! link that lets the receiver finish it, the folded pseudo-header sum
//! only ([`Checksum::Partial`]).
//!
//! Invariants: no `unsafe`, no allocation, no panics on any input.
//! Neighbours: [`super::ip`], [`super::checksum`]; used by `flow::udp`.

use std::net::IpAddr;

use super::ip::{self, Endpoints};
use super::{PROTO_UDP, checksum};

/// Bytes of the UDP header.
pub const UDP_LEN: usize = 8;
/// Offset of the checksum field in the UDP header.
pub const CHECKSUM_OFFSET: u16 = 6;

/// A guest's UDP datagram.
#[derive(Debug)]
pub struct Datagram<'a> {
    pub src_mac: [u8; 6],
    pub src: IpAddr,
    pub dst: IpAddr,
    pub src_port: u16,
    pub dst_port: u16,
    pub payload: &'a [u8],
    /// Where `payload` starts in the frame.
    pub payload_at: usize,
}

/// Ethernet + IP + UDP header bytes: the payload of a frame completed by
/// [`write_headers`] starts here (42 for IPv4, 62 for IPv6).
pub const fn header_len(v6: bool) -> usize {
    ip::header_len(v6) + UDP_LEN
}

/// The UDP datagram in a guest frame, or `None` if the frame is not UDP or
/// is malformed.
pub fn parse_datagram(frame: &[u8]) -> Option<Datagram<'_>> {
    let t = ip::transport(frame, PROTO_UDP)?;
    let (udp, _) = t.payload.split_first_chunk::<UDP_LEN>()?;
    let length = usize::from(u16::from_be_bytes([udp[4], udp[5]]));
    if length < UDP_LEN {
        return None;
    }
    let payload = t.payload.get(UDP_LEN..length)?;
    Some(Datagram {
        src_mac: t.src_mac,
        src: t.src,
        dst: t.dst,
        src_port: u16::from_be_bytes([udp[0], udp[1]]),
        dst_port: u16::from_be_bytes([udp[2], udp[3]]),
        payload,
        payload_at: t.payload_at + UDP_LEN,
    })
}

/// How much of the UDP checksum we compute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Checksum {
    Full,
    /// The pseudo-header sum, folded, not complemented: the receiver
    /// finishes it (`NEEDS_CSUM`).
    Partial,
}

/// `frame[header_len(v6)..][..payload_len]` (`v6` = `ends.dst.is_ipv6()`)
/// holds the payload: writes the Ethernet, IP and UDP headers in front of
/// it. Returns the frame length, or `None` if `frame` is too short, the
/// addresses are of different families, or the lengths would overflow
/// (at most 65507 payload bytes over IPv4, 65527 over IPv6).
pub fn write_headers(
    ends: &Endpoints,
    frame: &mut [u8],
    payload_len: usize,
    checksum: Checksum,
) -> Option<usize> {
    let udp_len = payload_len.checked_add(UDP_LEN)?;
    let udp_len16 = u16::try_from(udp_len).ok()?;
    let (ip_len, datagram) = ip::write_headers(frame, ends, PROTO_UDP, udp_len)?;
    let [s0, s1] = ends.src_port.to_be_bytes();
    let [d0, d1] = ends.dst_port.to_be_bytes();
    let [l0, l1] = udp_len16.to_be_bytes();
    let (udp, _) = datagram.split_first_chunk_mut::<UDP_LEN>()?;
    *udp = [s0, s1, d0, d1, l0, l1, 0, 0];
    let sum = checksum::pseudo_header(ends.src, ends.dst, PROTO_UDP, u32::from(udp_len16));
    let value = match checksum {
        Checksum::Full => match checksum::finish(checksum::partial(datagram, sum)) {
            0 => 0xffff,
            v => v,
        },
        Checksum::Partial => !checksum::finish(sum),
    };
    datagram
        .get_mut(6..8)?
        .copy_from_slice(&value.to_be_bytes());
    Some(ip_len + udp_len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{PacketBuilder, SlicedPacket, TransportSlice};

    const GUEST_MAC: [u8; 6] = [0x52, 0x54, 0, 0x12, 0x34, 0x56];
    const OUR_MAC: [u8; 6] = [0x9a, 0x55, 0x9a, 0x55, 0x9a, 0x55];

    fn ends(v6: bool) -> Endpoints {
        let (src, dst): (IpAddr, IpAddr) = match v6 {
            true => (
                "2001:db8::1".parse().unwrap(),
                "2001:db8::2".parse().unwrap(),
            ),
            false => ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap()),
        };
        Endpoints {
            our_mac: OUR_MAC,
            guest_mac: GUEST_MAC,
            src,
            dst,
            src_port: 53,
            dst_port: 40000,
        }
    }

    fn guest_frame(v6: bool, payload: &[u8]) -> Vec<u8> {
        let b = PacketBuilder::ethernet2(GUEST_MAC, OUR_MAC);
        let b = match v6 {
            true => b.ipv6(
                [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
                [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
                64,
            ),
            false => b.ipv4([192, 0, 2, 2], [192, 0, 2, 1], 64),
        };
        let b = b.udp(40000, 53);
        let mut out = Vec::new();
        b.write(&mut out, payload).unwrap();
        out
    }

    #[test]
    fn wire_udp_parses_guest_datagrams() {
        for v6 in [false, true] {
            let frame = guest_frame(v6, b"hello");
            let d = parse_datagram(&frame).unwrap();
            assert_eq!(
                (d.src_port, d.dst_port, d.payload),
                (40000, 53, &b"hello"[..])
            );
            assert_eq!(d.src_mac, GUEST_MAC);
            assert_eq!(d.dst, ends(v6).src);
            assert_eq!(&frame[d.payload_at..][..5], b"hello");
            // Ethernet padding is not payload.
            let mut padded = frame.clone();
            padded.extend_from_slice(&[0; 8]);
            assert_eq!(parse_datagram(&padded).unwrap().payload, b"hello");
        }
    }

    #[test]
    fn wire_udp_refuses_bad_lengths() {
        for v6 in [false, true] {
            let frame = guest_frame(v6, b"hello");
            let udp_at = ip::header_len(v6);
            for bad in [0u16, 7, 14] {
                let mut f = frame.clone();
                f[udp_at + 4..udp_at + 6].copy_from_slice(&bad.to_be_bytes());
                assert!(parse_datagram(&f).is_none(), "UDP length {bad}");
            }
            for cut in 0..udp_at + UDP_LEN {
                assert!(parse_datagram(&frame[..cut]).is_none());
            }
            // A shorter UDP length bounds the payload.
            let mut f = frame.clone();
            f[udp_at + 4..udp_at + 6].copy_from_slice(&10u16.to_be_bytes());
            assert_eq!(parse_datagram(&f).unwrap().payload, b"he");
        }
    }

    #[test]
    fn wire_udp_builds_valid_frames() {
        for v6 in [false, true] {
            for len in [0usize, 1, 1400, 60000] {
                let e = ends(v6);
                let mut frame = vec![0u8; header_len(v6) + len];
                for (i, b) in frame[header_len(v6)..].iter_mut().enumerate() {
                    *b = i as u8;
                }
                let n = write_headers(&e, &mut frame, len, Checksum::Full).unwrap();
                assert_eq!(n, frame.len());
                let p = SlicedPacket::from_ethernet(&frame).unwrap();
                let Some(TransportSlice::Udp(udp)) = p.transport else {
                    panic!("not UDP")
                };
                assert_eq!((udp.source_port(), udp.destination_port()), (53, 40000));
                assert_eq!(udp.payload().len(), len);
                let expected = match p.net.unwrap() {
                    etherparse::NetSlice::Ipv4(ip) => udp
                        .to_header()
                        .calc_checksum_ipv4(&ip.header().to_header(), udp.payload()),
                    etherparse::NetSlice::Ipv6(ip) => udp
                        .to_header()
                        .calc_checksum_ipv6(&ip.header().to_header(), udp.payload()),
                    _ => panic!("not IP"),
                }
                .unwrap();
                assert_eq!(udp.checksum(), expected, "v6 {v6} len {len}");
                // Our own parser reads it back (guest and host swapped).
                let back = parse_datagram(&frame).unwrap();
                assert_eq!(back.payload.len(), len);
            }
        }
    }

    #[test]
    fn wire_udp_partial_checksum_is_the_pseudo_header_sum() {
        let e = ends(false);
        let mut frame = vec![0u8; header_len(false) + 100];
        let n = write_headers(&e, &mut frame, 100, Checksum::Partial).unwrap();
        let at = ip::header_len(false) + usize::from(CHECKSUM_OFFSET);
        let field = u16::from_be_bytes([frame[at], frame[at + 1]]);
        let sum = checksum::pseudo_header(e.src, e.dst, PROTO_UDP, 108);
        assert_eq!(field, !checksum::finish(sum));
        assert_eq!(n, frame.len());
    }

    #[test]
    fn wire_udp_length_limits() {
        for v6 in [false, true] {
            let e = ends(v6);
            let max = 65535 - UDP_LEN - if v6 { 0 } else { ip::IPV4_LEN };
            let mut frame = vec![0u8; header_len(v6) + max + 1];
            assert!(write_headers(&e, &mut frame, max, Checksum::Full).is_some());
            assert!(write_headers(&e, &mut frame, max + 1, Checksum::Full).is_none());
            assert!(write_headers(&e, &mut frame, usize::MAX, Checksum::Full).is_none());
            assert!(
                write_headers(&e, &mut frame[..header_len(v6) - 1], 0, Checksum::Full).is_none()
            );
        }
    }
}
