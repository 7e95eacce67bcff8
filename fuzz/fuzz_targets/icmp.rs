//! Fuzzes the ICMP echo path without sockets: parsing a guest frame as an
//! echo request, building the reply frame for it, and parsing what a ping
//! socket returns. Nothing may panic; a built reply must parse back as an
//! echo reply with the guest's identifier, sequence and payload.

#![no_main]

use libfuzzer_sys::fuzz_target;
use passt_rs::wire::echo::{ToGuest, build_echo_reply, parse_echo_request, parse_socket_echo_reply};

fuzz_target!(|data: &[u8]| {
    let _ = parse_socket_echo_reply(data, false);
    let _ = parse_socket_echo_reply(data, true);
    let Some(req) = parse_echo_request(data) else {
        return;
    };
    let to = ToGuest {
        our_mac: [0x9a, 0x55, 0x9a, 0x55, 0x9a, 0x55],
        guest_mac: req.src_mac,
        src: req.dst,
        dst: req.src,
    };
    let mut out = vec![0; 65535];
    if let Some(len) = build_echo_reply(to, req.id, req.seq, req.payload, &mut out) {
        let reply = &out[..len];
        assert!(parse_echo_request(reply).is_none(), "a reply is not a request");
        assert!(reply.len() >= 14 + 20 + 8 + req.payload.len());
        assert!(reply.ends_with(req.payload));
    }
});
