//! Fuzzes the DHCPv6 server: it must never panic, and a reply must be a
//! whole Ethernet/IPv6/UDP frame from port 547 to 546 with a valid
//! checksum, carrying an ADVERTISE or a REPLY with the request's
//! transaction ID.
//!
//! The first input byte is a selector: its low bits pick one of a few
//! configurations (the fixture; a long search list; pasta, advertising
//! nothing); bit 7 says whether the rest is a whole frame, or a DHCPv6
//! message to wrap in a valid frame to ff02::1:2 port 547 (which reaches
//! the message parser far more often). Under `cfg(fuzzing)` our DUID has
//! a fixed time, so inputs that carry our server ID replay.

#![no_main]

mod checks;
mod selector;

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use passt_rs::conf::{Config, Mode, fixture};
use passt_rs::services::{LinkFacts, REPLY_MAX, dhcpv6};

static CONFIGS: LazyLock<[Config; 3]> = LazyLock::new(|| {
    let mut long_search = fixture::config(Mode::Passt, &[]);
    let label = "a".repeat(50);
    long_search.dns.search = (0..6)
        .map(|i| format!("{label}.{i}.example.test"))
        .collect();
    [
        fixture::config(Mode::Passt, &[]),
        long_search,
        fixture::config(Mode::Pasta, &[]),
    ]
});

/// The client's link-local address.
const CLIENT: [u8; 16] = [
    0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0x50, 0x54, 0, 0xff, 0xfe, 0x12, 0x34, 0x56,
];
/// All_DHCP_Relay_Agents_and_Servers.
const SERVERS: [u8; 16] = [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 2];

fuzz_target!(|input: &[u8]| {
    let Some((config, frame)) = selector::select(input, &CONFIGS[..], udp_frame) else {
        return;
    };
    let frame = &frame[..];
    let link = LinkFacts::new(config);
    let mut out = vec![0; REPLY_MAX];
    if let Ok(Some(len)) = dhcpv6::answer(config, &link, frame, &mut out) {
        check_reply(&out[..len], frame);
    }
});

/// `message` as a UDP datagram from the client's [`CLIENT`]:546 to
/// [`SERVERS`]:547 (UDP checksum left zero: it is never verified).
fn udp_frame(message: &[u8]) -> Vec<u8> {
    let udp_len = ((8 + message.len()) as u16).to_be_bytes();
    let mut frame = vec![
        0x33, 0x33, 0, 1, 0, 2, 0x52, 0x54, 0, 0x12, 0x34, 0x56, 0x86, 0xdd,
    ];
    frame.extend([0x60, 0, 0, 0, udp_len[0], udp_len[1], 17, 1]);
    frame.extend(CLIENT);
    frame.extend(SERVERS);
    frame.extend([2, 34, 2, 35, udp_len[0], udp_len[1], 0, 0]);
    frame.extend(message);
    frame
}

/// IPv6 without extension headers carrying UDP 547 -> 546, exact lengths,
/// a valid checksum, and an ADVERTISE or REPLY echoing the transaction ID
/// of the `request` frame (checked when UDP follows its IPv6 header).
fn check_reply(reply: &[u8], request: &[u8]) {
    assert_eq!(reply[12..14], [0x86, 0xdd], "ethertype IPv6");
    let (ip, udp) = reply[14..].split_at(40);
    assert_eq!(
        (ip[0] >> 4, ip[6], ip[7]),
        (6, 17, 255),
        "IPv6, UDP, hop limit"
    );
    assert_eq!(usize::from(u16::from_be_bytes([ip[4], ip[5]])), udp.len());
    assert_eq!(udp[..4], [2, 35, 2, 34], "ports");
    assert_eq!(usize::from(u16::from_be_bytes([udp[4], udp[5]])), udp.len());
    let pseudo = [
        &ip[8..40],
        &(udp.len() as u32).to_be_bytes(),
        &[0, 0, 0, 17],
    ]
    .concat();
    assert_eq!(
        checks::ones_complement_sum(&[pseudo.as_slice(), udp].concat()),
        0xffff,
        "UDP checksum"
    );
    let message = &udp[8..];
    assert!(message[0] == 2 || message[0] == 7, "ADVERTISE or REPLY");
    if request[20] == 17 {
        assert_eq!(message[1..4], request[63..66], "transaction ID");
    }
}
