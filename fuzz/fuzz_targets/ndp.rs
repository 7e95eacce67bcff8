//! Fuzzes the NDP responder with arbitrary guest frames: it must never
//! panic, and a reply must fit the buffer and be a well-formed IPv6 frame
//! with a valid ICMPv6 checksum. The first input byte picks one of a few
//! configurations (RAs with DNS options, local mode, RAs off).

#![no_main]

mod checks;

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use passt_rs::conf::{Config, Mode, fixture};
use passt_rs::services::{LinkFacts, REPLY_MAX, ndp};
use passt_rs::wire::{FrameClass, PROTO_ICMPV6, classify};

static CONFIGS: LazyLock<[Config; 3]> = LazyLock::new(|| {
    let mut local = fixture::config(Mode::Passt, &[]);
    if let Some(ip6) = local.ip6.as_mut() {
        ip6.addr = std::net::Ipv6Addr::UNSPECIFIED;
    }
    local.mtu = 0;
    [
        fixture::config(Mode::Passt, &[]),
        local,
        fixture::config(Mode::Pasta, &["--config-net"]),
    ]
});

fuzz_target!(|input: &[u8]| {
    let Some((&selector, frame)) = input.split_first() else {
        return;
    };
    let config = &CONFIGS[usize::from(selector) % CONFIGS.len()];
    let link = LinkFacts::new(config);
    let mut out = vec![0; REPLY_MAX];
    if let Ok(Some(len)) = ndp::answer(config, &link, frame, &mut out) {
        check_reply(&out[..len]);
    }
});

/// The reply is IPv6 carrying ICMPv6 (no extension headers), hop limit
/// 255, with exact lengths and a valid checksum.
fn check_reply(reply: &[u8]) {
    assert_eq!(classify(reply), FrameClass::Ipv6(PROTO_ICMPV6));
    let (ip, icmp) = reply[14..].split_at(40);
    assert_eq!(
        (ip[6], ip[7]),
        (PROTO_ICMPV6, 255),
        "next header, hop limit"
    );
    assert_eq!(usize::from(u16::from_be_bytes([ip[4], ip[5]])), icmp.len());
    let pseudo = [
        &ip[8..40],
        &(icmp.len() as u32).to_be_bytes(),
        &[0, 0, 0, PROTO_ICMPV6],
    ]
    .concat();
    assert_eq!(
        checks::ones_complement_sum(&[pseudo.as_slice(), icmp].concat()),
        0xffff,
        "checksum"
    );
}
