//! The input layout of the DHCP and DHCPv6 targets: the first byte picks a
//! configuration (low bits) and whether the rest is a whole frame or a
//! message to wrap in a valid Ethernet/IP/UDP frame (top bit), so the
//! fuzzer reaches the message parser without having to guess checksums.

use std::borrow::Cow;

use passt_rs::conf::Config;

/// Top bit of the selector byte: wrap the rest with the target's framing.
const WRAP: u8 = 0x80;

/// The configuration and frame an input stands for; `None` for empty input.
pub fn select<'a>(
    input: &'a [u8],
    configs: &'a [Config],
    wrap: impl FnOnce(&[u8]) -> Vec<u8>,
) -> Option<(&'a Config, Cow<'a, [u8]>)> {
    let (&selector, rest) = input.split_first()?;
    let config = &configs[usize::from(selector & !WRAP) % configs.len()];
    let frame = if selector & WRAP != 0 {
        Cow::Owned(wrap(rest))
    } else {
        Cow::Borrowed(rest)
    };
    Some((config, frame))
}
