//! Fuzzes the ARP responder with arbitrary guest frames: it must never
//! panic, and a reply must fit the buffer and be a whole ARP reply frame.

#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use passt_rs::conf::{Config, Mode, fixture};
use passt_rs::services::{LinkFacts, REPLY_MAX, arp};

static CONFIG: LazyLock<Config> = LazyLock::new(|| fixture::config(Mode::Passt, &[]));

fuzz_target!(|frame: &[u8]| {
    let link = LinkFacts::new(&CONFIG);
    let mut out = vec![0; REPLY_MAX];
    if let Ok(Some(len)) = arp::answer(&CONFIG, &link, frame, &mut out) {
        assert_eq!(len, 42);
        assert_eq!(out[12..14], [0x08, 0x06], "ethertype ARP");
        assert_eq!(out[20..22], [0, 2], "ARP reply");
    }
});
