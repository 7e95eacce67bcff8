//! Fuzzes the UDP datagram view and header builder. Nothing may panic.
//!
//! Each input is first a guest frame for `parse_datagram`: a datagram it
//! returns must borrow its payload from the frame, right after a UDP header
//! whose ports are the datagram's and whose length field is the payload
//! length plus 8 (so trailing bytes are not payload), with the addresses
//! and source MAC of the frame's own headers; etherparse must read the same
//! ports and payload from it.
//!
//! The same input then picks the arguments of `write_headers` (layout in
//! [`Args::from`]): address families (mixed ones included), addresses,
//! MACs, ports, a payload length up to [`MAX_PAYLOAD`] (past the limits) or
//! near `usize::MAX`, full or partial checksum, and a buffer size around
//! the one the frame needs. It must return `Some` exactly when the families
//! match, the payload fits the length fields (65507 bytes over IPv4, 65527
//! over IPv6) and the buffer holds headers and payload. A built frame must
//! be `header_len + payload` long, leave the payload and the bytes after
//! the frame untouched, and read back through etherparse and through
//! `parse_datagram` with the MACs, addresses, ports, lengths and payload
//! given, an IPv4 header checksum that verifies, TTL / hop limit 255; its
//! UDP checksum must verify with an independent RFC 1071 sum (never 0) for
//! `Full`, and be the folded pseudo-header sum for `Partial`.

#![no_main]

mod checks;

use std::cell::RefCell;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use etherparse::{LinkSlice, NetSlice, SlicedPacket, TransportSlice};
use libfuzzer_sys::fuzz_target;
use passt_rs::wire::ip::Endpoints;
use passt_rs::wire::udp::{Checksum, Datagram, UDP_LEN, header_len, parse_datagram, write_headers};

/// Largest payload length tried (other than near `usize::MAX`): past both
/// limits and past what the 16-bit length fields can carry.
const MAX_PAYLOAD: usize = 65535 + 64;
/// How far the buffer size strays from what the frame needs, either way.
const SLACK: usize = 32768;
/// The largest buffer handed to `write_headers`.
const MAX_BUF: usize = 62 + MAX_PAYLOAD + SLACK;

thread_local! {
    /// The buffer, allocated once.
    static BUF: RefCell<Vec<u8>> = RefCell::new(vec![0; MAX_BUF]);
}

fuzz_target!(|data: &[u8]| {
    if let Some(d) = parse_datagram(data) {
        check_parsed(data, &d);
    }
    let args = Args::from(data);
    BUF.with_borrow_mut(|buf| check_built(&args, &mut buf[..args.buf_len]));
});

/// A datagram parsed from `frame` is the one its headers describe.
fn check_parsed(frame: &[u8], d: &Datagram<'_>) {
    let range = frame.as_ptr_range();
    let payload = d.payload.as_ptr_range();
    assert!(range.start <= payload.start && payload.end <= range.end);
    let at = payload.start as usize - range.start as usize;
    assert!(
        at >= header_len(false),
        "payload after Ethernet, IP and UDP"
    );
    let udp = &frame[at - UDP_LEN..at];
    assert_eq!(u16::from_be_bytes([udp[0], udp[1]]), d.src_port);
    assert_eq!(u16::from_be_bytes([udp[2], udp[3]]), d.dst_port);
    let length = usize::from(u16::from_be_bytes([udp[4], udp[5]]));
    assert_eq!(length, d.payload.len() + UDP_LEN, "UDP length field");
    assert_eq!(d.src_mac, frame[6..12]);
    let (src, dst): (IpAddr, IpAddr) = match [frame[12], frame[13]] {
        [0x08, 0x00] => {
            let ip = |i: usize| Ipv4Addr::from(<[u8; 4]>::try_from(&frame[i..i + 4]).unwrap());
            (ip(26).into(), ip(30).into())
        }
        [0x86, 0xdd] => {
            let ip = |i: usize| Ipv6Addr::from(<[u8; 16]>::try_from(&frame[i..i + 16]).unwrap());
            (ip(22).into(), ip(38).into())
        }
        other => panic!("parsed a datagram from ethertype {other:02x?}"),
    };
    assert_eq!((d.src, d.dst), (src, dst));
    let p = SlicedPacket::from_ethernet(frame).expect("etherparse reads the frame");
    let Some(TransportSlice::Udp(udp)) = p.transport else {
        panic!("etherparse finds no UDP in {:?}", p.net);
    };
    assert_eq!(
        (udp.source_port(), udp.destination_port()),
        (d.src_port, d.dst_port)
    );
    assert_eq!(
        udp.payload().as_ptr_range(),
        payload,
        "etherparse's payload"
    );
}

/// `write_headers`'s arguments, taken from an input.
#[derive(Debug)]
struct Args {
    ends: Endpoints,
    payload_len: usize,
    checksum: Checksum,
    buf_len: usize,
    /// Payload bytes, repeated (a position pattern if empty).
    fill: Vec<u8>,
}

impl Args {
    /// Layout (missing bytes are zero): byte 0 has flags (bit 0: IPv6
    /// source, bit 1: IPv6 destination, bit 2: partial checksum, bit 3:
    /// payload length `usize::MAX - byte 7`); bytes 1-4 the ports; bytes
    /// 5-7 the payload length (24 bits, modulo `MAX_PAYLOAD + 1`); bytes
    /// 8-9 the buffer size's distance from the frame's length (signed,
    /// clamped to the buffer); 10-25 and 26-41 the addresses (IPv4 takes
    /// the first four bytes); 42-53 the guest's and our MACs; the rest the
    /// payload bytes.
    fn from(data: &[u8]) -> Args {
        let mut b = [0u8; 54];
        let n = data.len().min(b.len());
        b[..n].copy_from_slice(&data[..n]);
        let addr = |v6: bool, at: usize| -> IpAddr {
            let bytes: [u8; 16] = b[at..at + 16].try_into().unwrap();
            match v6 {
                true => Ipv6Addr::from(bytes).into(),
                false => Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]).into(),
            }
        };
        let ends = Endpoints {
            guest_mac: b[42..48].try_into().unwrap(),
            our_mac: b[48..54].try_into().unwrap(),
            src: addr(b[0] & 1 != 0, 10),
            dst: addr(b[0] & 2 != 0, 26),
            src_port: u16::from_be_bytes([b[1], b[2]]),
            dst_port: u16::from_be_bytes([b[3], b[4]]),
        };
        let payload_len = match b[0] & 8 != 0 {
            true => usize::MAX - usize::from(b[7]),
            false => usize::from_be_bytes([0, 0, 0, 0, 0, b[5], b[6], b[7]]) % (MAX_PAYLOAD + 1),
        };
        let needed = header_len(ends.dst.is_ipv6()).saturating_add(payload_len);
        let offset = i16::from_be_bytes([b[8], b[9]]);
        let buf_len = needed
            .saturating_add_signed(isize::from(offset))
            .min(MAX_BUF);
        Args {
            ends,
            payload_len,
            checksum: if b[0] & 4 != 0 {
                Checksum::Partial
            } else {
                Checksum::Full
            },
            buf_len,
            fill: data.get(54..).unwrap_or_default().to_vec(),
        }
    }

    /// The first `len` bytes of the buffer past the headers.
    fn after_headers(&self, len: usize) -> Vec<u8> {
        let pattern: Vec<u8> = match self.fill.is_empty() {
            true => (0..251).collect(),
            false => self.fill.clone(),
        };
        // Whole copies of the pattern, then its head: memcpy, not a loop
        // over bytes (a 64 KiB payload per input).
        let mut out = Vec::with_capacity(len + pattern.len());
        while out.len() < len {
            out.extend_from_slice(&pattern);
        }
        out.truncate(len);
        out
    }
}

/// `write_headers` succeeds exactly when it should, and what it builds is
/// the frame asked for.
fn check_built(args: &Args, buf: &mut [u8]) {
    let ends = &args.ends;
    let v6 = ends.dst.is_ipv6();
    let hl = header_len(v6);
    // Headers area: junk to be overwritten; the rest: payload and tail.
    let marked = hl.min(buf.len());
    let after = args.after_headers(buf.len() - marked);
    buf[..marked].fill(0x5a);
    buf[marked..].copy_from_slice(&after);

    let same_family = ends.src.is_ipv6() == v6;
    let max_payload = 65535 - UDP_LEN - if v6 { 0 } else { 20 };
    let fits = args.payload_len <= max_payload && hl + args.payload_len <= buf.len();
    let built = write_headers(ends, buf, args.payload_len, args.checksum);
    assert_eq!(
        built.is_some(),
        same_family && fits,
        "families match: {same_family}, fits: {fits}, {args:?}"
    );
    let Some(n) = built else { return };

    assert_eq!(n, hl + args.payload_len);
    assert!(buf[hl..] == after, "payload or tail bytes changed");
    let frame = &buf[..n];
    let payload = &frame[hl..];

    let p = SlicedPacket::from_ethernet(frame).expect("etherparse reads a built frame");
    let Some(LinkSlice::Ethernet2(eth)) = p.link else {
        panic!("no Ethernet")
    };
    assert_eq!(
        (eth.destination(), eth.source()),
        (ends.guest_mac, ends.our_mac)
    );
    let pseudo = match p.net.expect("an IP layer") {
        NetSlice::Ipv4(ip) => {
            let h = ip.header();
            assert_eq!(h.ihl(), 5);
            assert_eq!(usize::from(h.total_len()), n - 14);
            assert_eq!(h.ttl(), 255);
            assert!(!h.is_fragmenting_payload());
            assert_eq!(
                checks::ones_complement_sum(&frame[14..34]),
                0xffff,
                "IPv4 checksum"
            );
            assert_eq!(
                (
                    IpAddr::from(h.source_addr()),
                    IpAddr::from(h.destination_addr())
                ),
                (ends.src, ends.dst)
            );
            [&h.source()[..], &h.destination()].concat()
        }
        NetSlice::Ipv6(ip) => {
            let h = ip.header();
            assert_eq!(usize::from(h.payload_length()), n - 54);
            assert_eq!(h.hop_limit(), 255);
            assert_eq!(
                h.next_header(),
                etherparse::IpNumber::UDP,
                "no extension headers"
            );
            assert_eq!(
                (
                    IpAddr::from(h.source_addr()),
                    IpAddr::from(h.destination_addr())
                ),
                (ends.src, ends.dst)
            );
            [&h.source()[..], &h.destination()].concat()
        }
        NetSlice::Arp(_) => panic!("ARP"),
    };
    let Some(TransportSlice::Udp(udp)) = p.transport else {
        panic!("no UDP")
    };
    assert_eq!(
        (udp.source_port(), udp.destination_port()),
        (ends.src_port, ends.dst_port)
    );
    assert_eq!(usize::from(udp.length()), args.payload_len + UDP_LEN);
    assert_eq!(udp.payload().as_ptr_range(), payload.as_ptr_range());

    let segment = &frame[hl - UDP_LEN..];
    let len = u32::try_from(segment.len()).unwrap().to_be_bytes();
    let pseudo = [&pseudo[..], &len, &[0, 0, 0, 17]].concat();
    match args.checksum {
        Checksum::Full => {
            assert_ne!(udp.checksum(), 0, "0 means no checksum");
            // The pseudo-header's length is even: the sums add up.
            let sum = checks::ones_complement_sum(
                &[
                    checks::ones_complement_sum(&pseudo),
                    checks::ones_complement_sum(segment),
                ]
                .map(u16::to_be_bytes)
                .concat(),
            );
            assert_eq!(sum, 0xffff, "UDP checksum");
        }
        Checksum::Partial => {
            assert_eq!(
                udp.checksum(),
                checks::ones_complement_sum(&pseudo),
                "pseudo-header sum"
            );
        }
    }

    let d = parse_datagram(frame).expect("a built frame parses");
    assert_eq!(d.src_mac, ends.our_mac);
    assert_eq!((d.src, d.dst), (ends.src, ends.dst));
    assert_eq!((d.src_port, d.dst_port), (ends.src_port, ends.dst_port));
    assert_eq!(d.payload.as_ptr_range(), payload.as_ptr_range());
}
