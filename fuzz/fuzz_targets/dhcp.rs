//! Fuzzes the DHCP server: it must never panic, and a reply must be a
//! whole Ethernet/IPv4/UDP frame from port 67 to 68 with valid checksums,
//! carrying a BOOTREPLY of 300 to 548 bytes.
//!
//! The first input byte is a selector: its low bits pick one of a few
//! configurations (the fixture; an off-subnet gateway with a long search
//! list, a /30 and no MTU; pasta, advertising nothing); bit 7 says whether
//! the rest is a whole frame, or a DHCP message to wrap in a valid frame
//! to port 67 (which reaches the message parser far more often).

#![no_main]

mod checks;
mod selector;

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use passt_rs::conf::{Config, Mode, fixture};
use passt_rs::services::{LinkFacts, REPLY_MAX, dhcp};

static CONFIGS: LazyLock<[Config; 3]> = LazyLock::new(|| {
    let mut odd = fixture::config(Mode::Passt, &[]);
    if let Some(ip4) = odd.ip4.as_mut() {
        ip4.gateway = Some([198, 51, 100, 1].into());
        ip4.prefix_len = 30;
    }
    odd.mtu = 0;
    let label = "a".repeat(50);
    odd.dns.search = (0..6)
        .map(|i| format!("{label}.{i}.example.test"))
        .collect();
    [
        fixture::config(Mode::Passt, &[]),
        odd,
        fixture::config(Mode::Pasta, &[]),
    ]
});

fuzz_target!(|input: &[u8]| {
    let Some((config, frame)) = selector::select(input, &CONFIGS[..], udp_frame) else {
        return;
    };
    let frame = &frame[..];
    let link = LinkFacts::new(config);
    let mut out = vec![0; REPLY_MAX];
    if let Ok(Some(len)) = dhcp::answer(config, &link, frame, &mut out) {
        check_reply(&out[..len]);
    }
});

/// `message` as a UDP datagram from 0.0.0.0:68 to 255.255.255.255:67, in
/// a broadcast Ethernet frame (the IPv4 checksum is left zero: it is
/// never verified).
fn udp_frame(message: &[u8]) -> Vec<u8> {
    let udp_len = (8 + message.len()) as u16;
    let ip_len = 20 + udp_len;
    let mut frame = vec![0xff; 6];
    frame.extend([0x52, 0x54, 0, 0x12, 0x34, 0x56, 0x08, 0x00]);
    frame.extend([
        0x45, 0, 0, 0, 0, 0, 0, 0, 64, 17, 0, 0, 0, 0, 0, 0, 255, 255, 255, 255,
    ]);
    frame[16..18].copy_from_slice(&ip_len.to_be_bytes());
    frame.extend([0, 68, 0, 67]);
    frame.extend(udp_len.to_be_bytes());
    frame.extend([0, 0]);
    frame.extend(message);
    frame
}

/// IPv4 without options carrying UDP 67 -> 68, exact lengths, valid
/// checksums, and a BOOTREPLY with the magic cookie.
fn check_reply(reply: &[u8]) {
    assert_eq!(reply[12..14], [0x08, 0x00], "ethertype IPv4");
    let (ip, udp) = reply[14..].split_at(20);
    assert_eq!((ip[0], ip[9]), (0x45, 17), "IPv4 header, UDP");
    assert_eq!(
        usize::from(u16::from_be_bytes([ip[2], ip[3]])),
        20 + udp.len()
    );
    assert_eq!(checks::ones_complement_sum(ip), 0xffff, "IPv4 checksum");
    assert_eq!(udp[..4], [0, 67, 0, 68], "ports");
    assert_eq!(usize::from(u16::from_be_bytes([udp[4], udp[5]])), udp.len());
    let pseudo = [&ip[12..20], &[0, 17], &udp[4..6]].concat();
    assert_eq!(
        checks::ones_complement_sum(&[pseudo.as_slice(), udp].concat()),
        0xffff,
        "UDP checksum"
    );
    let message = &udp[8..];
    assert!(
        (300..=548).contains(&message.len()),
        "{} bytes",
        message.len()
    );
    assert_eq!(
        (message[0], message[1], message[2]),
        (2, 1, 6),
        "BOOTREPLY, Ethernet"
    );
    assert_eq!(message[236..240], [99, 130, 83, 99], "magic cookie");
}
