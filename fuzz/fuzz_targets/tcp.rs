//! Fuzzes the TCP segment view and builders with arbitrary guest frames.
//! Nothing may panic. A parsed segment must borrow its payload from the
//! frame and keep the window scale within 14; its fields, sent back through
//! `build_control` (with its options) and `write_data_headers` (with its
//! payload), must parse again to the same fields, with IPv4 header and TCP
//! checksums that verify with an independent RFC 1071 sum.

#![no_main]

mod checks;

use std::cell::RefCell;
use std::net::IpAddr;

use libfuzzer_sys::fuzz_target;
use passt_rs::wire::tcp::{
    Control, Endpoints, Segment, TcpOptions, build_control, data_header_len, parse_segment,
    write_data_headers,
};

thread_local! {
    /// The largest frame the builders can make, allocated once.
    static OUT: RefCell<Vec<u8>> = RefCell::new(vec![0; data_header_len(true) + 65535]);
}

fuzz_target!(|frame: &[u8]| {
    let Some(seg) = parse_segment(frame) else {
        return;
    };
    check_bounds(frame, &seg);
    OUT.with_borrow_mut(|out| {
        let (ends, ctl) = sent_back(&seg);
        let len = build_control(&ends, &ctl, &seg.options, out).expect("a control segment fits");
        check_built(&out[..len], &seg, &seg.options, &[]);
        let start = data_header_len(seg.dst.is_ipv6());
        out[start..][..seg.payload.len()].copy_from_slice(seg.payload);
        let len = write_data_headers(&ends, &ctl, out, seg.payload.len())
            .expect("a parsed payload fits the IP length field");
        check_built(&out[..len], &seg, &TcpOptions::default(), seg.payload);
    });
});

/// The payload is a subslice of the frame; the options are in range.
fn check_bounds(frame: &[u8], seg: &Segment<'_>) {
    let frame_range = frame.as_ptr_range();
    let payload = seg.payload.as_ptr_range();
    assert!(frame_range.start <= payload.start && payload.end <= frame_range.end);
    assert!(seg.payload.len() + 54 <= frame.len());
    assert!(seg.options.window_scale.is_none_or(|shift| shift <= 14));
    assert_eq!(seg.flags & !0x3f, 0, "only the six classic flags");
    assert_eq!(seg.src.is_ipv6(), seg.dst.is_ipv6());
}

/// The segment's own fields as the endpoints and control of a built one.
fn sent_back(seg: &Segment<'_>) -> (Endpoints, Control) {
    let ends = Endpoints {
        our_mac: seg.src_mac,
        guest_mac: [0x9a, 0x55, 0x9a, 0x55, 0x9a, 0x55],
        src: seg.src,
        dst: seg.dst,
        src_port: seg.src_port,
        dst_port: seg.dst_port,
    };
    let ctl = Control {
        seq: seg.seq,
        ack: seg.ack,
        flags: seg.flags,
        window: seg.window,
    };
    (ends, ctl)
}

/// A built frame parses back to `seg`'s fields with `options` and
/// `payload`, and its checksums verify.
fn check_built(built: &[u8], seg: &Segment<'_>, options: &TcpOptions, payload: &[u8]) {
    let again = parse_segment(built).expect("a built frame parses");
    let expected = Segment {
        options: *options,
        payload,
        ..*seg
    };
    assert_eq!(again, expected);
    assert_eq!(&built[..6], &[0x9a, 0x55, 0x9a, 0x55, 0x9a, 0x55]);
    let (ip_len, pseudo) = match (seg.src, seg.dst) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => {
            assert_eq!(
                checks::ones_complement_sum(&built[14..34]),
                0xffff,
                "IPv4 checksum"
            );
            (20, [&src.octets()[..], &dst.octets()].concat())
        }
        (IpAddr::V6(src), IpAddr::V6(dst)) => (40, [&src.octets()[..], &dst.octets()].concat()),
        _ => unreachable!("parse_segment returns one family"),
    };
    let segment = &built[14 + ip_len..];
    let len = u32::try_from(segment.len()).unwrap();
    let pseudo = [&pseudo[..], &len.to_be_bytes(), &[0, 0, 0, 6], segment].concat();
    assert_eq!(checks::ones_complement_sum(&pseudo), 0xffff, "TCP checksum");
}
