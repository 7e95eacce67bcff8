//! Fuzzes the `/proc/net/{tcp,tcp6,udp,udp6}` parser of pasta's bound-port
//! detection with arbitrary bytes as the file's text. Nothing may panic.
//!
//! The result is compared with an independent model of the documented rules
//! (`pasta::bound_ports`): the first line is the header; a line (split at
//! `\n`) longer than `MAX_LINE` bytes counts for nothing; a line counts if
//! its first four whitespace-separated fields are `N:` (decimal digits),
//! `ADDR:PORT` twice (8 or 32 hex digits, then 1 to 4 hex digits) and a
//! state of 1 or 2 hex digits; its local port is reported when the state is
//! the one asked for. So every port reported is the local port of such a
//! line in that state, and every such line's port is reported. Checked for
//! LISTEN (0x0A), UDP bound (0x07), up to eight states the model finds in
//! the text and one it does not; the parser must only add to the set it is
//! given.
//!
//! The streamed scan (`ProcNetFiles::scan`, a fixed chunk with lines carried
//! across chunks) reads only the real `/proc` files and its chunk size is
//! not reachable from outside the crate; its unit tests compare it with
//! this whole-text parse for every chunk size up to 300.

#![no_main]

use std::collections::{BTreeMap, BTreeSet};

use libfuzzer_sys::fuzz_target;
use passt_rs::conf::ports::PortSet;
use passt_rs::pasta::bound_ports::{MAX_LINE, TCP_LISTEN, UDP_BOUND, parse_proc_net};

fuzz_target!(|text: &[u8]| {
    let model = model(text);
    let mut states: BTreeSet<u8> = model.keys().copied().take(8).collect();
    states.extend([TCP_LISTEN, UDP_BOUND]);
    states.extend((0..=255).find(|s| !model.contains_key(s)));
    // A port already in the set stays; a port the text names is added.
    let kept = text.len() as u16;
    for state in states {
        let mut out = PortSet::new();
        out.insert(kept);
        parse_proc_net(text, state, &mut out);
        let mut expected = model.get(&state).cloned().unwrap_or_default();
        expected.insert(kept);
        // `PortSet::iter` walks all 65536 ports: the count and membership
        // say the same, faster.
        for &port in &expected {
            assert!(out.contains(port), "state {state:#04x}: port {port} missed");
        }
        assert_eq!(
            out.len(),
            expected.len(),
            "state {state:#04x}: extra ports {:?}",
            out.iter()
                .filter(|p| !expected.contains(p))
                .collect::<Vec<_>>()
        );
    }
});

/// State -> local ports of the lines that count, by the documented rules.
fn model(text: &[u8]) -> BTreeMap<u8, BTreeSet<u16>> {
    let mut found: BTreeMap<u8, BTreeSet<u16>> = BTreeMap::new();
    for line in text.split(|&b| b == b'\n').skip(1) {
        if line.len() > MAX_LINE {
            continue;
        }
        if let Some((port, state)) = line_fields(line) {
            found.entry(state).or_default().insert(port);
        }
    }
    found
}

/// (local port, state) of a line of the right shape.
fn line_fields(line: &[u8]) -> Option<(u16, u8)> {
    let mut fields = line
        .split(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\x0c'))
        .filter(|f| !f.is_empty());
    let [slot, local, remote, state] = [(); 4].map(|()| fields.next());
    let slot = slot?;
    let (&colon, digits) = slot.split_last()?;
    if colon != b':' || digits.is_empty() || digits.iter().any(|b| !b.is_ascii_digit()) {
        return None;
    }
    let port = address_port(local?)?;
    address_port(remote?)?;
    let state = hex_value(state?, 2)?;
    Some((port as u16, state as u8))
}

/// The port of `ADDR:PORT`, the address 8 or 32 hex digits.
fn address_port(field: &[u8]) -> Option<u32> {
    let addr_len = [8, 32].into_iter().find(|&n| field.get(n) == Some(&b':'))?;
    if field[..addr_len].iter().any(|b| !b.is_ascii_hexdigit()) {
        return None;
    }
    hex_value(&field[addr_len + 1..], 4)
}

/// 1 to `max` hex digits, by the standard library (which also takes a
/// sign: refused first).
fn hex_value(field: &[u8], max: usize) -> Option<u32> {
    if !(1..=max).contains(&field.len()) || !field.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    u32::from_str_radix(std::str::from_utf8(field).ok()?, 16).ok()
}
