//! TCP segments between the guest and us: the view of a guest's segment
//! ([`parse_segment`]) and the builders of segments toward the guest
//! ([`build_control`] for segments without payload, [`write_data_headers`]
//! for data whose payload a socket read already put in place).
//!
//! The Ethernet and IP layers, both ways, are [`super::ip`]'s (IPv4 read
//! by hand, IPv6 extension headers walked by etherparse, upstream's
//! conventions for generated headers). Only the fields the TCP translation
//! uses are kept. Checksums are not verified: the segment is translated to
//! a socket, the guest kernel that sent it computed them, and a tap may
//! deliver partial checksums.
//!
//! Header fields are written straight into the frame:
//! `write_data_headers` runs once per frame at millions of frames per
//! second, so it neither allocates nor copies the payload.
//!
//! Invariants: no `unsafe`, no allocation, no panics on any input; every
//! length is checked before a slice is taken.
//!
//! Neighbours: [`super::ip`], [`super::checksum`]; used by
//! `flow::tcp`.

use std::net::IpAddr;

pub use super::ip::Endpoints;
use super::{checksum, ip};

/// TCP header flags (the low six bits of byte 13).
pub mod flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub const URG: u8 = 0x20;
}

/// The TCP options we understand; others are skipped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpOptions {
    /// Maximum segment size (kind 2).
    pub mss: Option<u16>,
    /// Window scale shift (kind 3), at most [`MAX_WINDOW_SCALE`].
    pub window_scale: Option<u8>,
    /// SACK permitted (kind 4).
    pub sack_permitted: bool,
}

/// A guest's TCP segment, borrowed from its frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment<'a> {
    pub src_mac: [u8; 6],
    pub src: IpAddr,
    pub dst: IpAddr,
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: u32,
    pub ack: u32,
    /// The six flags of [`flags`]; ECN's ECE and CWR are masked off (we
    /// never negotiate ECN, so a SYN asking for it reads as a plain SYN).
    pub flags: u8,
    /// The window field as sent (not scaled).
    pub window: u16,
    pub options: TcpOptions,
    /// The payload, bounded by the IP length (Ethernet padding excluded).
    pub payload: &'a [u8],
}

impl Segment<'_> {
    /// Whether every flag bit in `flag` is set.
    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag == flag
    }
}

/// Largest window scale shift (RFC 7323 §2.3); larger values read as this.
pub const MAX_WINDOW_SCALE: u8 = 14;

/// The sequence/ack/flags/window of a segment toward the guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Control {
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub window: u16,
}

const TCP_LEN: usize = 20;
const PROTO_TCP: u8 = super::PROTO_TCP;
/// The flags kept by the parser.
const FLAGS_MASK: u8 = 0x3f;
/// Longest option block [`build_control`] writes: MSS, NOP + window scale,
/// NOP + NOP + SACK permitted.
const MAX_BUILT_OPTIONS: usize = 12;

/// Ethernet + IP + TCP header bytes of a data segment without TCP options:
/// 54 for IPv4, 74 for IPv6. The payload of a frame completed by
/// [`write_data_headers`] starts here.
pub const fn data_header_len(v6: bool) -> usize {
    ip::header_len(v6) + TCP_LEN
}

/// The TCP segment in a guest Ethernet frame, or `None` if the frame is not
/// TCP or is malformed.
///
/// IPv4: not fragmented (MF clear, offset 0), IHL >= 5 and within the total
/// length, the total length within the frame. IPv6: a payload length
/// within the frame and not zero (no jumbograms), extension headers walked
/// as etherparse does, not a fragment. TCP: data offset >= 5 and within
/// the segment. The payload ends where the IP length says (trailing
/// Ethernet padding is excluded).
///
/// Options: MSS (kind 2, length 4), window scale (kind 3, length 3,
/// capped at [`MAX_WINDOW_SCALE`]), SACK permitted (kind 4, length 2); NOP
/// and EOL handled; other options, and known kinds with an unexpected
/// length, are skipped by their length. A malformed option list (a length
/// below 2, or past the header) ends option parsing, keeping the segment
/// and the options read so far. Checksums are not verified.
pub fn parse_segment(frame: &[u8]) -> Option<Segment<'_>> {
    let ip::Transport {
        src_mac,
        src,
        dst,
        payload: segment,
        ..
    } = ip::transport(frame, PROTO_TCP)?;
    let (tcp, _) = segment.split_first_chunk::<TCP_LEN>()?;
    let header_len = usize::from(tcp[12] >> 4) * 4;
    if header_len < TCP_LEN {
        return None;
    }
    let (header, payload) = segment.split_at_checked(header_len)?;
    Some(Segment {
        src_mac,
        src,
        dst,
        src_port: u16::from_be_bytes([tcp[0], tcp[1]]),
        dst_port: u16::from_be_bytes([tcp[2], tcp[3]]),
        seq: u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]),
        ack: u32::from_be_bytes([tcp[8], tcp[9], tcp[10], tcp[11]]),
        flags: tcp[13] & FLAGS_MASK,
        window: u16::from_be_bytes([tcp[14], tcp[15]]),
        options: parse_options(header.get(TCP_LEN..).unwrap_or_default()),
        payload,
    })
}

/// The options we understand in a TCP option block (header bytes after
/// the first 20).
fn parse_options(mut block: &[u8]) -> TcpOptions {
    let mut options = TcpOptions::default();
    while let Some((&kind, rest)) = block.split_first() {
        match kind {
            0 => break, // end of option list
            1 => {
                block = rest; // no-operation
                continue;
            }
            _ => {}
        }
        let Some(len) = rest.first().map(|&len| usize::from(len)) else {
            break;
        };
        let Some((option, next)) = block.split_at_checked(len).filter(|_| len >= 2) else {
            break; // malformed: stop here, keep what we have
        };
        match (kind, option.get(2..).unwrap_or_default()) {
            (2, &[hi, lo]) => options.mss = Some(u16::from_be_bytes([hi, lo])),
            (3, &[shift]) => options.window_scale = Some(shift.min(MAX_WINDOW_SCALE)),
            (4, []) => options.sack_permitted = true,
            _ => {} // unknown, or a known kind with the wrong length
        }
        block = next;
    }
    options
}

/// Completes a data segment whose payload is already in place at
/// `frame[data_header_len(v6)..][..payload_len]` (`v6` =
/// `ends.dst.is_ipv6()`): writes the Ethernet, IP and TCP headers (no TCP
/// options) in front of it, and the IPv4 header and TCP checksums.
///
/// Returns the frame length, or `None` if `frame` is too short, the
/// addresses are of different families, or the IP length field would
/// overflow: IPv4 total length (20 + 20 + payload) or IPv6 payload length
/// (20 + payload) above 65535, so at most 65495 / 65515 payload bytes.
pub fn write_data_headers(
    ends: &Endpoints,
    ctl: &Control,
    frame: &mut [u8],
    payload_len: usize,
) -> Option<usize> {
    write_segment(ends, ctl, &[], payload_len, frame, Checksum::Full)
}

/// [`write_data_headers`] for a link that lets the receiver finish the TCP
/// checksum (a virtio-net header with `NEEDS_CSUM`): the checksum field
/// holds the folded pseudo-header sum only, as a kernel leaves it for
/// checksum offload. The TCP checksum starts `data_header_len(v6) - 20`
/// bytes into the frame; its field is 16 bytes further.
pub fn write_data_headers_partial(
    ends: &Endpoints,
    ctl: &Control,
    frame: &mut [u8],
    payload_len: usize,
) -> Option<usize> {
    write_segment(ends, ctl, &[], payload_len, frame, Checksum::Partial)
}

/// Offset of the checksum field in the TCP header.
pub const CHECKSUM_OFFSET: u16 = 16;

/// How much of the TCP checksum we compute.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Checksum {
    Full,
    /// The pseudo-header sum, folded, not complemented.
    Partial,
}

/// Builds a segment without payload (SYN, SYN+ACK, ACK, FIN, RST...) into
/// `out` with the given options: MSS if `Some`, NOP + window scale (capped
/// at [`MAX_WINDOW_SCALE`]) if `Some`, NOP + NOP + SACK permitted if set;
/// each takes 4 bytes, so the block needs no padding.
///
/// Returns the frame length, or `None` if `out` is too short or the
/// addresses are of different families.
pub fn build_control(
    ends: &Endpoints,
    ctl: &Control,
    options: &TcpOptions,
    out: &mut [u8],
) -> Option<usize> {
    let mut block = [0u8; MAX_BUILT_OPTIONS];
    let len = encode_options(options, &mut block);
    write_segment(ends, ctl, block.get(..len)?, 0, out, Checksum::Full)
}

/// Writes `options` as an option block into `block`; returns its length
/// (a multiple of 4).
fn encode_options(options: &TcpOptions, block: &mut [u8; MAX_BUILT_OPTIONS]) -> usize {
    let mut parts = [[0u8; 4]; 3];
    let mut count = 0;
    if let Some(mss) = options.mss {
        let [hi, lo] = mss.to_be_bytes();
        parts[count] = [2, 4, hi, lo];
        count += 1;
    }
    if let Some(shift) = options.window_scale {
        parts[count] = [1, 3, 3, shift.min(MAX_WINDOW_SCALE)];
        count += 1;
    }
    if options.sack_permitted {
        parts[count] = [1, 1, 4, 2];
        count += 1;
    }
    for (dst, part) in block.chunks_exact_mut(4).zip(&parts[..count]) {
        dst.copy_from_slice(part);
    }
    count * 4
}

/// Writes Ethernet, IP and TCP headers, then `options` after the TCP
/// header, in front of a payload of `payload_len` bytes already in place,
/// and both checksums; returns the frame length.
fn write_segment(
    ends: &Endpoints,
    ctl: &Control,
    options: &[u8],
    payload_len: usize,
    frame: &mut [u8],
    checksum: Checksum,
) -> Option<usize> {
    let tcp_len = payload_len.checked_add(TCP_LEN + options.len())?;
    let (ip_len, segment) = ip::write_headers(frame, ends, PROTO_TCP, tcp_len)?;
    let (tcp, after) = segment.split_first_chunk_mut::<TCP_LEN>()?;
    let header_words = u8::try_from((TCP_LEN + options.len()) / 4).ok()?;
    write_tcp(tcp, ends, ctl, header_words);
    after.get_mut(..options.len())?.copy_from_slice(options);
    let sum = checksum::pseudo_header(ends.src, ends.dst, PROTO_TCP, tcp_len as u32);
    let tcp_checksum = match checksum {
        Checksum::Full => checksum::finish(checksum::partial(segment, sum)),
        Checksum::Partial => !checksum::finish(sum),
    };
    segment
        .get_mut(16..18)?
        .copy_from_slice(&tcp_checksum.to_be_bytes());
    Some(ip_len + tcp_len)
}

/// TCP header with a zero checksum and urgent pointer.
fn write_tcp(tcp: &mut [u8; TCP_LEN], ends: &Endpoints, ctl: &Control, header_words: u8) {
    let [sp0, sp1] = ends.src_port.to_be_bytes();
    let [dp0, dp1] = ends.dst_port.to_be_bytes();
    let [s0, s1, s2, s3] = ctl.seq.to_be_bytes();
    let [a0, a1, a2, a3] = ctl.ack.to_be_bytes();
    let [w0, w1] = ctl.window.to_be_bytes();
    #[rustfmt::skip]
    let header = [
        sp0, sp1, dp0, dp1,
        s0, s1, s2, s3,
        a0, a1, a2, a3,
        header_words << 4, ctl.flags, w0, w1,
        0, 0, 0, 0,
    ];
    *tcp = header;
}

#[cfg(test)]
mod tests {
    use super::flags::*;
    use super::*;
    use crate::wire::ip::{ETH_LEN, IPV6_LEN};
    use etherparse::IpNumber;
    use etherparse::{
        IpHeaders, Ipv4Header, Ipv6Extensions, Ipv6Header, Ipv6RawExtHeader, NetSlice,
        PacketBuilder, SlicedPacket, TcpHeader, TransportSlice,
    };

    const GUEST_MAC: [u8; 6] = [0x52, 0x54, 0, 0x12, 0x34, 0x56];
    const OUR_MAC: [u8; 6] = [0x9a, 0x55, 0x9a, 0x55, 0x9a, 0x55];

    fn ends(v6: bool) -> Endpoints {
        let (src, dst): (IpAddr, IpAddr) = if v6 {
            (
                "2001:db8:2::2".parse().unwrap(),
                "2001:db8:1::10".parse().unwrap(),
            )
        } else {
            (
                "198.51.100.2".parse().unwrap(),
                "192.0.2.10".parse().unwrap(),
            )
        };
        Endpoints {
            our_mac: OUR_MAC,
            guest_mac: GUEST_MAC,
            src,
            dst,
            src_port: 443,
            dst_port: 40000,
        }
    }

    fn ctl(flags: u8) -> Control {
        Control {
            seq: 0xfedc_ba98,
            ack: 0x0123_4567,
            flags,
            window: 0xabcd,
        }
    }

    const ALL_OPTIONS: TcpOptions = TcpOptions {
        mss: Some(65480),
        window_scale: Some(7),
        sack_permitted: true,
    };

    /// Checks a frame we built with etherparse: header conventions, fields,
    /// and both checksums. Returns the TCP header and payload.
    fn validate(frame: &[u8], e: &Endpoints, c: &Control) -> (TcpHeader, Vec<u8>) {
        let p = SlicedPacket::from_ethernet(frame).expect("etherparse parses it");
        let Some(etherparse::LinkSlice::Ethernet2(eth)) = &p.link else {
            panic!("no Ethernet")
        };
        assert_eq!((eth.source(), eth.destination()), (e.our_mac, e.guest_mac));
        let Some(TransportSlice::Tcp(tcp)) = &p.transport else {
            panic!("not TCP")
        };
        let header = tcp.to_header();
        let payload = tcp.payload().to_vec();
        let expected_sum = match p.net.as_ref().unwrap() {
            NetSlice::Ipv4(ip) => {
                let h = ip.header().to_header();
                assert_eq!((h.time_to_live, h.identification), (255, 0));
                assert!(!h.dont_fragment && !h.more_fragments && h.options.is_empty());
                assert_eq!(h.header_checksum, h.calc_header_checksum());
                assert_eq!(IpAddr::V4(h.source.into()), e.src);
                assert_eq!(IpAddr::V4(h.destination.into()), e.dst);
                assert_eq!(usize::from(h.total_len), frame.len() - ETH_LEN);
                header.calc_checksum_ipv4(&h, &payload).unwrap()
            }
            NetSlice::Ipv6(ip) => {
                let h = ip.header().to_header();
                assert_eq!(
                    (h.hop_limit, h.flow_label.value(), h.traffic_class),
                    (255, 0, 0)
                );
                assert_eq!(h.next_header, IpNumber::TCP);
                assert_eq!(IpAddr::V6(h.source.into()), e.src);
                assert_eq!(IpAddr::V6(h.destination.into()), e.dst);
                assert_eq!(
                    usize::from(h.payload_length),
                    frame.len() - ETH_LEN - IPV6_LEN
                );
                header.calc_checksum_ipv6(&h, &payload).unwrap()
            }
            _ => panic!("not IP"),
        };
        assert_eq!(header.checksum, expected_sum, "TCP checksum");
        assert_eq!(
            (header.source_port, header.destination_port),
            (e.src_port, e.dst_port)
        );
        assert_eq!(
            (header.sequence_number, header.acknowledgment_number),
            (c.seq, c.ack)
        );
        assert_eq!(header.window_size, c.window);
        assert_eq!(header.urgent_pointer, 0);
        (header, payload)
    }

    fn check_round_trip(frame: &[u8], e: &Endpoints, c: &Control, o: &TcpOptions, payload: &[u8]) {
        let s = parse_segment(frame).expect("parses back");
        assert_eq!(s.src_mac, e.our_mac);
        assert_eq!(
            (s.src, s.dst, s.src_port, s.dst_port),
            (e.src, e.dst, e.src_port, e.dst_port)
        );
        assert_eq!(
            (s.seq, s.ack, s.flags, s.window),
            (c.seq, c.ack, c.flags, c.window)
        );
        assert_eq!(s.options, *o);
        assert_eq!(s.payload, payload);
    }

    #[test]
    fn wire_tcp_control_round_trips_with_all_options() {
        for v6 in [false, true] {
            let (e, c) = (ends(v6), ctl(SYN | ACK));
            let mut out = [0u8; 200];
            let n = build_control(&e, &c, &ALL_OPTIONS, &mut out).unwrap();
            assert_eq!(n, data_header_len(v6) + 12);
            let (header, payload) = validate(&out[..n], &e, &c);
            assert!(header.syn && header.ack && !header.fin && !header.rst && !header.psh);
            assert!(payload.is_empty());
            assert_eq!(
                header.options.as_slice(),
                &[2, 4, 0xff, 0xc8, 1, 3, 3, 7, 1, 1, 4, 2]
            );
            check_round_trip(&out[..n], &e, &c, &ALL_OPTIONS, &[]);
        }
    }

    #[test]
    fn wire_tcp_control_option_subsets() {
        let e = ends(false);
        let mut out = [0u8; 100];
        for mask in 0..8 {
            let o = TcpOptions {
                mss: (mask & 1 != 0).then_some(1460),
                window_scale: (mask & 2 != 0).then_some(14),
                sack_permitted: mask & 4 != 0,
            };
            for f in [SYN, ACK, FIN | ACK, RST, RST | ACK, PSH | ACK | URG] {
                let c = ctl(f);
                let n = build_control(&e, &c, &o, &mut out).unwrap();
                let (header, _) = validate(&out[..n], &e, &c);
                assert_eq!(header.options.len() % 4, 0);
                check_round_trip(&out[..n], &e, &c, &o, &[]);
            }
        }
        let big_shift = TcpOptions {
            window_scale: Some(200),
            ..TcpOptions::default()
        };
        let n = build_control(&e, &ctl(SYN), &big_shift, &mut out).unwrap();
        assert_eq!(
            parse_segment(&out[..n]).unwrap().options.window_scale,
            Some(14)
        );
    }

    #[test]
    fn wire_tcp_control_rejects_short_buffers_and_mixed_families() {
        let c = ctl(ACK);
        for v6 in [false, true] {
            let e = ends(v6);
            let need = data_header_len(v6) + 12;
            for len in 0..need {
                let mut out = vec![0u8; len];
                assert_eq!(build_control(&e, &c, &ALL_OPTIONS, &mut out), None, "{len}");
            }
            let mut out = vec![0u8; need];
            assert_eq!(build_control(&e, &c, &ALL_OPTIONS, &mut out), Some(need));
        }
        let mut mixed = ends(false);
        mixed.dst = ends(true).dst;
        let mut out = [0u8; 200];
        assert_eq!(build_control(&mixed, &c, &ALL_OPTIONS, &mut out), None);
        assert_eq!(write_data_headers(&mixed, &c, &mut out, 10), None);
    }

    fn data_frame(v6: bool, payload: &[u8], c: &Control) -> Vec<u8> {
        let start = data_header_len(v6);
        let mut frame = vec![0xee; start + payload.len() + 7]; // slack: not part of the frame
        frame[start..][..payload.len()].copy_from_slice(payload);
        let n = write_data_headers(&ends(v6), c, &mut frame, payload.len()).unwrap();
        assert_eq!(n, start + payload.len());
        frame.truncate(n);
        frame
    }

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    #[test]
    fn wire_tcp_data_round_trips() {
        for v6 in [false, true] {
            let max_mtu_payload = if v6 { 65460 } else { 65480 };
            for len in [0, 1, 2, 3, 535, 1460, 1461, max_mtu_payload] {
                let payload = pattern(len);
                let (e, c) = (ends(v6), ctl(PSH | ACK));
                let frame = data_frame(v6, &payload, &c);
                let (header, parsed) = validate(&frame, &e, &c);
                assert!(header.psh && header.ack && header.options.is_empty());
                assert_eq!(parsed, payload);
                check_round_trip(&frame, &e, &c, &TcpOptions::default(), &payload);
            }
        }
    }

    #[test]
    fn wire_tcp_data_length_limits() {
        for v6 in [false, true] {
            // The IP length field: IPv4 total length, IPv6 payload length.
            let max = if v6 { 65535 - 20 } else { 65535 - 40 };
            let (e, c) = (ends(v6), ctl(ACK));
            let mut frame = vec![0u8; data_header_len(v6) + max + 1];
            assert_eq!(write_data_headers(&e, &c, &mut frame, max + 1), None);
            assert_eq!(write_data_headers(&e, &c, &mut frame, usize::MAX), None);
            let n = write_data_headers(&e, &c, &mut frame, max).unwrap();
            validate(&frame[..n], &e, &c);
            assert_eq!(parse_segment(&frame[..n]).unwrap().payload.len(), max);
            // Too short for the payload, or for the headers alone.
            assert_eq!(write_data_headers(&e, &c, &mut frame[..n - 1], max), None);
            let mut tiny = vec![0u8; data_header_len(v6) - 1];
            assert_eq!(write_data_headers(&e, &c, &mut tiny, 0), None);
        }
    }

    fn guest_v4(options: &[u8], payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        PacketBuilder::ethernet2(GUEST_MAC, OUR_MAC)
            .ipv4([192, 0, 2, 10], [198, 51, 100, 2], 64)
            .tcp(40000, 80, 1000, 29200)
            .syn()
            .options_raw(options)
            .unwrap()
            .write(&mut out, payload)
            .unwrap();
        out
    }

    fn guest_v6(exts: Ipv6Extensions, payload: &[u8]) -> Vec<u8> {
        let ip = Ipv6Header {
            hop_limit: 64,
            source: [0x20, 0x01, 0xd, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10],
            destination: [0x20, 0x01, 0xd, 0xb8, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
            ..Ipv6Header::default()
        };
        let mut out = Vec::new();
        PacketBuilder::ethernet2(GUEST_MAC, OUR_MAC)
            .ip(IpHeaders::Ipv6(ip, exts))
            .tcp(40000, 80, 5, 100)
            .ack(77)
            .fin()
            .write(&mut out, payload)
            .unwrap();
        out
    }

    #[test]
    fn wire_tcp_parses_guest_syn_with_options() {
        // MSS, NOP, WS 20 (capped), unknown kind 30 with 4 bytes, SACK
        // permitted, timestamps (skipped), EOL padding.
        let options = [
            2, 4, 0x05, 0xb4, 1, 3, 3, 20, 30, 6, 9, 9, 9, 9, 4, 2, 8, 10, 1, 2, 3, 4, 5, 6, 7, 8,
            0, 0, 0, 0,
        ];
        let f = guest_v4(&options, b"");
        let s = parse_segment(&f).unwrap();
        assert_eq!(s.src_mac, GUEST_MAC);
        assert_eq!(s.src, "192.0.2.10".parse::<IpAddr>().unwrap());
        assert_eq!(s.dst, "198.51.100.2".parse::<IpAddr>().unwrap());
        assert_eq!(
            (s.src_port, s.dst_port, s.seq, s.window),
            (40000, 80, 1000, 29200)
        );
        assert_eq!(s.flags, SYN);
        assert!(s.has(SYN) && !s.has(ACK) && !s.has(SYN | ACK));
        assert_eq!(
            s.options,
            TcpOptions {
                mss: Some(1460),
                window_scale: Some(14),
                sack_permitted: true
            }
        );
        assert!(s.payload.is_empty());
    }

    #[test]
    fn wire_tcp_option_edge_cases() {
        let cases: &[(&[u8], TcpOptions)] = &[
            // Linux's SYN layout: MSS, SACK_PERM, TS, NOP, WS.
            (
                &[
                    2, 4, 0x3f, 0xd8, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7,
                ],
                TcpOptions {
                    mss: Some(16344),
                    window_scale: Some(7),
                    sack_permitted: true,
                },
            ),
            // Options after EOL are ignored.
            (&[0, 0, 0, 0, 2, 4, 1, 0], TcpOptions::default()),
            // MSS with a wrong length is skipped by its length.
            (
                &[2, 3, 1, 4, 2, 1, 1],
                TcpOptions {
                    sack_permitted: true,
                    ..Default::default()
                },
            ),
            // Malformed: length 1 stops parsing, keeping the MSS before it.
            (
                &[2, 4, 1, 0, 30, 1, 4, 2],
                TcpOptions {
                    mss: Some(256),
                    ..Default::default()
                },
            ),
            // Malformed: length 0.
            (
                &[1, 1, 3, 3, 2, 30, 0, 0],
                TcpOptions {
                    window_scale: Some(2),
                    ..Default::default()
                },
            ),
            // Malformed: an option running past the header.
            (
                &[4, 2, 2, 8, 1, 0, 0, 0],
                TcpOptions {
                    sack_permitted: true,
                    ..Default::default()
                },
            ),
            // A kind byte with no room for its length.
            (&[1, 1, 1, 2], TcpOptions::default()),
        ];
        for (options, expected) in cases {
            let f = guest_v4(options, b"data");
            let s = parse_segment(&f).expect("the segment is kept");
            assert_eq!(s.options, *expected, "{options:?}");
            assert_eq!(s.payload, b"data");
        }
    }

    #[test]
    fn wire_tcp_ipv6_with_extension_headers() {
        let hop = Ipv6RawExtHeader::new_raw(IpNumber::TCP, &[1, 4, 0, 0, 0, 0]).unwrap();
        let dest =
            Ipv6RawExtHeader::new_raw(IpNumber::TCP, &[1, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])
                .unwrap();
        let variants = [
            Ipv6Extensions::default(),
            Ipv6Extensions {
                hop_by_hop_options: Some(hop.clone()),
                ..Default::default()
            },
            Ipv6Extensions {
                destination_options: Some(dest.clone()),
                ..Default::default()
            },
            Ipv6Extensions {
                hop_by_hop_options: Some(hop),
                destination_options: Some(dest),
                ..Default::default()
            },
        ];
        for exts in variants {
            let f = guest_v6(exts, b"hello");
            let s = parse_segment(&f).expect("TCP after extension headers");
            assert_eq!(s.dst, "2001:db8:2::2".parse::<IpAddr>().unwrap());
            assert_eq!((s.ack, s.flags, s.payload), (77, ACK | FIN, &b"hello"[..]));
            assert!(s.has(FIN | ACK));
        }
    }

    #[test]
    fn wire_tcp_ipv6_fragments_and_jumbo_lengths_rejected() {
        let fragment = etherparse::Ipv6FragmentHeader::new(
            IpNumber::TCP,
            etherparse::IpFragOffset::ZERO,
            true,
            1,
        );
        let exts = Ipv6Extensions {
            fragment: Some(fragment),
            ..Default::default()
        };
        assert_eq!(parse_segment(&guest_v6(exts, b"x")), None);
        let mut f = guest_v6(Ipv6Extensions::default(), b"x");
        f[ETH_LEN + 4] = 0;
        f[ETH_LEN + 5] = 0;
        assert_eq!(parse_segment(&f), None);
    }

    #[test]
    fn wire_tcp_truncation_sweep() {
        let frames = [
            guest_v4(&[2, 4, 5, 0xb4, 1, 3, 3, 7], b"payload!"),
            guest_v6(Ipv6Extensions::default(), b"payload!"),
            guest_v6(
                Ipv6Extensions {
                    hop_by_hop_options: Some(
                        Ipv6RawExtHeader::new_raw(IpNumber::TCP, &[0; 6]).unwrap(),
                    ),
                    ..Default::default()
                },
                b"p",
            ),
            data_frame(false, b"abc", &ctl(ACK)),
            data_frame(true, b"abc", &ctl(ACK)),
        ];
        for f in frames {
            assert!(parse_segment(&f).is_some());
            for len in 0..f.len() {
                // Every length field now points past the end: always None.
                assert_eq!(parse_segment(&f[..len]), None, "len {len}");
            }
        }
    }

    #[test]
    fn wire_tcp_ethernet_padding_is_not_payload() {
        let mut f = guest_v4(&[], b"");
        assert_eq!(f.len(), 54);
        f.extend_from_slice(&[0xaa; 6]); // minimum Ethernet frame: 60 bytes
        let s = parse_segment(&f).unwrap();
        assert!(s.payload.is_empty());
        let mut f = guest_v6(Ipv6Extensions::default(), b"ab");
        f.extend_from_slice(&[0; 30]);
        assert_eq!(parse_segment(&f).unwrap().payload, b"ab");
    }

    #[test]
    fn wire_tcp_ipv4_fragments_rejected() {
        for (flags_hi, offset_lo) in [(0x20, 0), (0x00, 1), (0x20, 0xb9), (0x1f, 0xff)] {
            let mut f = guest_v4(&[], b"frag");
            f[ETH_LEN + 6] = flags_hi;
            f[ETH_LEN + 7] = offset_lo;
            assert_eq!(parse_segment(&f), None, "{flags_hi:#x} {offset_lo:#x}");
        }
        let mut df = guest_v4(&[], b"df");
        df[ETH_LEN + 6] = 0x40; // DF alone is fine
        assert!(parse_segment(&df).is_some());
    }

    #[test]
    fn wire_tcp_bad_headers_rejected() {
        let good = guest_v4(&[1, 1, 1, 1], b"xyzwv");
        for doff in 0..5u8 {
            let mut f = good.clone();
            f[ETH_LEN + 20 + 12] = doff << 4;
            assert_eq!(parse_segment(&f), None, "data offset {doff}");
        }
        let mut f = good.clone();
        f[ETH_LEN + 20 + 12] = 15 << 4; // 60 bytes: past the segment
        assert_eq!(parse_segment(&f), None);
        let mut f = good.clone();
        f[ETH_LEN + 20 + 12] = 7 << 4; // 28 bytes: options eat the payload
        assert_eq!(parse_segment(&f).unwrap().payload, b"v");
        let mut f = good.clone();
        f[ETH_LEN] = 0x44; // IHL 4
        assert_eq!(parse_segment(&f), None);
        let mut f = good.clone();
        f[ETH_LEN] = 0x4f; // IHL 15: beyond the total length
        assert_eq!(parse_segment(&f), None);
        let mut f = good.clone();
        f[ETH_LEN] = 0x65; // version 6 in an IPv4 ethertype
        assert_eq!(parse_segment(&f), None);
        let mut f = good.clone();
        f[ETH_LEN + 9] = 17; // UDP
        assert_eq!(parse_segment(&f), None);
        let mut f = good.clone();
        f[12] = 0x08;
        f[13] = 0x06; // ARP
        assert_eq!(parse_segment(&f), None);
        let mut f = good.clone();
        f[ETH_LEN + 3] -= 1; // total length cuts the payload
        assert_eq!(parse_segment(&f).unwrap().payload, b"xyzw");
        let mut f = good.clone();
        f[ETH_LEN + 3] += 1; // total length past the frame
        assert_eq!(parse_segment(&f), None);
    }

    #[test]
    fn wire_tcp_ipv4_options_and_ecn_flags() {
        let mut ip = Ipv4Header::new(0, 64, IpNumber::TCP, [10, 0, 0, 1], [10, 0, 0, 2]).unwrap();
        ip.options = [1, 1, 1, 0][..].try_into().unwrap();
        let mut f = Vec::new();
        PacketBuilder::ethernet2(GUEST_MAC, OUR_MAC)
            .ip(IpHeaders::Ipv4(ip, Default::default()))
            .tcp(1, 2, 3, 4)
            .syn()
            .ece()
            .cwr()
            .write(&mut f, b"data")
            .unwrap();
        let s = parse_segment(&f).unwrap();
        assert_eq!((s.src_port, s.flags, s.payload), (1, SYN, &b"data"[..]));
    }

    #[test]
    fn wire_tcp_partial_checksum_completes_to_the_full_one() {
        for (src, dst) in [
            ("192.0.2.2", "192.0.2.1"),
            ("2001:db8:2::2", "2001:db8:1::1"),
        ] {
            let ends = Endpoints {
                our_mac: [2; 6],
                guest_mac: [4; 6],
                src: src.parse().unwrap(),
                dst: dst.parse().unwrap(),
                src_port: 80,
                dst_port: 40000,
            };
            let ctl = Control {
                seq: 7,
                ack: 9,
                flags: flags::ACK,
                window: 100,
            };
            let offset = data_header_len(ends.dst.is_ipv6());
            let mut full = vec![0u8; offset + 1001];
            for (i, b) in full[offset..].iter_mut().enumerate() {
                *b = (i * 7) as u8;
            }
            let mut partial = full.clone();
            let n = write_data_headers(&ends, &ctl, &mut full, 1001).unwrap();
            write_data_headers_partial(&ends, &ctl, &mut partial, 1001).unwrap();
            let tcp = offset - 20;
            let completed = checksum::finish(checksum::partial(&partial[tcp..n], 0));
            let field = usize::from(CHECKSUM_OFFSET);
            assert_eq!(completed.to_be_bytes(), full[tcp + field..tcp + field + 2]);
        }
    }
}
