//! The Internet checksum (RFC 1071) over frames we build: IPv4 headers and
//! TCP segments, pseudo-header included.
//!
//! Hand-written instead of etherparse's `checksum` module because it runs
//! over every byte we send to the guest (64 KiB TCP payloads at 10+ Gbit/s)
//! and must take separate slices (header, then payload in place) without
//! copying them together. The `checksum_bench_vs_simple_loop` test (run with
//! `cargo test --release -- --ignored --nocapture checksum`) measures it
//! against a plain 16-bit loop.
//!
//! How: the one's-complement sum does not depend on byte order (RFC 1071
//! §2(B)), so the data is read as native-endian `u64` words into two `u128`
//! accumulators (no carry can be lost: that would take 2^64 words), folded
//! to 16 bits at the end, and byte-swapped once on little-endian machines.
//!
//! Invariants: no `unsafe`, no allocation, no panics on any input. A
//! partial sum is a `u32` congruent (mod 0xffff) to the one's-complement
//! sum; any `u32` is a valid `initial` value.
//!
//! Neighbours: only `std`; used by the builders in `wire`.

use std::net::IpAddr;

/// Bytes read per step of the main loop: two `u64` words, one per
/// accumulator, so the two add-with-carry chains run side by side.
const STEP: usize = 16;

/// One's-complement partial sum of `data` (big-endian 16-bit words; an odd
/// last byte is padded with zero), added to `initial`.
///
/// Sums can be chained, `partial(payload, partial(header, 0))`, as long as
/// every slice but the last has an even length (an odd one would shift the
/// word boundaries of the next).
pub fn partial(data: &[u8], initial: u32) -> u32 {
    let native = fold_u32(fold_u64(sum_native(data)));
    let words = fold_u16(native);
    let be = if cfg!(target_endian = "little") {
        words.swap_bytes()
    } else {
        words
    };
    fold_u32(u64::from(initial) + u64::from(be))
}

/// Folds a partial sum into the final (complemented) 16-bit checksum.
pub fn finish(sum: u32) -> u16 {
    !fold_u16(sum)
}

/// Partial sum of the IPv4 / IPv6 pseudo-header for upper-layer protocol
/// `proto` and length `len` (RFC 793 §3.1, RFC 8200 §8.1). The addresses
/// should be of the same family; if they are not, the result is some value
/// (the words of both addresses summed), never a panic.
pub fn pseudo_header(src: IpAddr, dst: IpAddr, proto: u8, len: u32) -> u32 {
    // The order of the words does not matter to the sum, so the IPv4 16-bit
    // length and the IPv6 32-bit length are both its two halves.
    address_sum(src) + address_sum(dst) + u32::from(proto) + (len >> 16) + (len & 0xffff)
}

/// Sum of the big-endian 16-bit words of an address (at most 8 x 0xffff).
fn address_sum(addr: IpAddr) -> u32 {
    match addr {
        IpAddr::V4(a) => words_sum(&a.octets()),
        IpAddr::V6(a) => words_sum(&a.octets()),
    }
}

/// Plain sum of big-endian 16-bit words, for short fixed-size arrays.
fn words_sum(bytes: &[u8]) -> u32 {
    bytes
        .chunks_exact(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum::<u32>()
}

/// Sum of `data` read as native-endian `u64` words, the tail padded with
/// zeros. Congruent (mod 0xffff) to the native-endian 16-bit word sum.
#[inline]
fn sum_native(data: &[u8]) -> u128 {
    let mut chunks = data.chunks_exact(STEP);
    let (mut a, mut b) = (0u128, 0u128);
    for chunk in &mut chunks {
        let (lo, hi) = split_words(chunk);
        a += u128::from(lo);
        b += u128::from(hi);
    }
    let mut tail = [0u8; STEP];
    let rest = chunks.remainder();
    if let Some(dst) = tail.get_mut(..rest.len()) {
        dst.copy_from_slice(rest);
    }
    let (lo, hi) = split_words(&tail);
    a + b + u128::from(lo) + u128::from(hi)
}

/// The two native-endian `u64` words of a 16-byte chunk (zero if shorter).
#[inline(always)]
fn split_words(chunk: &[u8]) -> (u64, u64) {
    let word = |range: std::ops::Range<usize>| {
        chunk
            .get(range)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map_or(0, u64::from_ne_bytes)
    };
    (word(0..8), word(8..16))
}

/// End-around-carry fold of a 128-bit sum into 64 bits.
fn fold_u64(sum: u128) -> u64 {
    let (r, carry) = (sum as u64).overflowing_add((sum >> 64) as u64);
    r + u64::from(carry)
}

/// End-around-carry fold of a 64-bit sum into 32 bits.
fn fold_u32(sum: u64) -> u32 {
    let (r, carry) = (sum as u32).overflowing_add((sum >> 32) as u32);
    r + u32::from(carry)
}

/// End-around-carry fold of a 32-bit sum into 16 bits.
fn fold_u16(sum: u32) -> u16 {
    let (r, carry) = (sum as u16).overflowing_add((sum >> 16) as u16);
    r + u16::from(carry)
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{Ipv4Header, PacketBuilder, SlicedPacket, TransportSlice};
    use std::net::{Ipv4Addr, Ipv6Addr};

    /// xorshift64: deterministic test data without a dependency.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn bytes(&mut self, len: usize) -> Vec<u8> {
            (0..len).map(|_| self.next() as u8).collect()
        }
    }

    /// RFC 1071 by the letter: 16-bit big-endian words, folded each step.
    fn reference(data: &[u8], initial: u32) -> u16 {
        let mut sum = u64::from(initial);
        for pair in data.chunks(2) {
            sum += u64::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]));
            sum = (sum & 0xffff) + (sum >> 16);
        }
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        !(sum as u16)
    }

    #[test]
    fn checksum_matches_reference_on_random_data() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for _ in 0..2000 {
            let len = (rng.next() % 3000) as usize;
            let offset = (rng.next() % 8) as usize; // unaligned starts too
            let buf = rng.bytes(len + offset);
            let data = &buf[offset..];
            let initial = match rng.next() % 3 {
                0 => 0,
                1 => u32::MAX,
                _ => rng.next() as u32,
            };
            assert_eq!(
                finish(partial(data, initial)),
                reference(data, initial),
                "len {len} offset {offset} initial {initial:#x}"
            );
        }
    }

    #[test]
    fn checksum_extremes() {
        for len in 0..300 {
            for fill in [0u8, 0xff, 0x80, 0x01] {
                let data = vec![fill; len];
                assert_eq!(
                    finish(partial(&data, 0)),
                    reference(&data, 0),
                    "{len} {fill}"
                );
            }
        }
        let big = vec![0xff; 65536 + 13];
        assert_eq!(finish(partial(&big, u32::MAX)), reference(&big, u32::MAX));
    }

    #[test]
    fn checksum_chains_over_even_slices() {
        let mut rng = Rng(42);
        for _ in 0..500 {
            let len = (rng.next() % 2000) as usize;
            let data = rng.bytes(len);
            let cut = (rng.next() as usize % (data.len() + 1)) & !1;
            let (head, tail) = data.split_at(cut);
            let chained = partial(tail, partial(head, 7));
            assert_eq!(finish(chained), finish(partial(&data, 7)));
        }
    }

    #[test]
    fn checksum_pseudo_header_words() {
        let v4 = pseudo_header(
            Ipv4Addr::new(192, 0, 2, 1).into(),
            Ipv4Addr::new(198, 51, 100, 2).into(),
            6,
            20,
        );
        assert_eq!(v4, 0xc000 + 0x0201 + 0xc633 + 0x6402 + 6 + 20);
        let mixed = pseudo_header(
            Ipv4Addr::LOCALHOST.into(),
            Ipv6Addr::LOCALHOST.into(),
            6,
            !0,
        );
        let _ = finish(mixed);
    }

    /// The TCP checksum of an etherparse-built frame, recomputed here.
    fn recomputed_tcp_checksum(frame: &[u8]) -> (u16, u16) {
        let packet = SlicedPacket::from_ethernet(frame).unwrap();
        let Some(TransportSlice::Tcp(tcp)) = packet.transport else {
            panic!("not TCP")
        };
        let ip = packet.net.unwrap();
        let (src, dst): (IpAddr, IpAddr) = match &ip {
            etherparse::NetSlice::Ipv4(ip) => (
                ip.header().source_addr().into(),
                ip.header().destination_addr().into(),
            ),
            etherparse::NetSlice::Ipv6(ip) => (
                ip.header().source_addr().into(),
                ip.header().destination_addr().into(),
            ),
            _ => panic!(),
        };
        let segment = tcp.slice();
        let mut zeroed = segment.to_vec();
        zeroed[16] = 0;
        zeroed[17] = 0;
        let header_len = tcp.header_len();
        let (header, payload) = zeroed.split_at(header_len);
        let sum = partial(
            payload,
            partial(header, pseudo_header(src, dst, 6, segment.len() as u32)),
        );
        (finish(sum), tcp.checksum())
    }

    #[test]
    fn checksum_agrees_with_etherparse_tcp_v4_and_v6() {
        let mut rng = Rng(7);
        for len in [0usize, 1, 2, 3, 15, 16, 17, 1000, 1459, 1460, 9001] {
            let payload = rng.bytes(len);
            let mut v4 = Vec::new();
            PacketBuilder::ethernet2([1; 6], [2; 6])
                .ipv4([192, 0, 2, 1], [198, 51, 100, 200], 64)
                .tcp(40000, 443, 0xdead_beef, 65535)
                .ack(0x0102_0304)
                .psh()
                .write(&mut v4, &payload)
                .unwrap();
            let (ours, theirs) = recomputed_tcp_checksum(&v4);
            assert_eq!(ours, theirs, "v4 len {len}");
            let mut v6 = Vec::new();
            PacketBuilder::ethernet2([1; 6], [2; 6])
                .ipv6([0x20; 16], [0xfe; 16], 64)
                .tcp(40000, 443, 0xffff_ffff, 1)
                .syn()
                .options_raw(&[2, 4, 5, 0xb4, 1, 3, 3, 7])
                .unwrap()
                .write(&mut v6, &payload)
                .unwrap();
            let (ours, theirs) = recomputed_tcp_checksum(&v6);
            assert_eq!(ours, theirs, "v6 len {len}");
        }
    }

    #[test]
    fn checksum_agrees_with_etherparse_ipv4_header() {
        let header = Ipv4Header::new(1000, 255, 6.into(), [10, 0, 2, 15], [10, 0, 2, 2]).unwrap();
        let mut bytes = header.to_bytes().to_vec();
        bytes[10] = 0;
        bytes[11] = 0;
        assert_eq!(finish(partial(&bytes, 0)), header.calc_header_checksum());
    }

    #[test]
    #[ignore = "micro-benchmark: cargo test --release -- --ignored --nocapture checksum"]
    fn checksum_bench_vs_simple_loop() {
        use std::hint::black_box;
        use std::time::Instant;
        let buf = Rng(1).bytes(65536);
        let rounds = 20_000;
        let measure = |f: &dyn Fn(&[u8]) -> u16| {
            for _ in 0..rounds / 10 {
                black_box(f(black_box(&buf)));
            }
            let start = Instant::now();
            for _ in 0..rounds {
                black_box(f(black_box(&buf)));
            }
            (buf.len() * rounds) as f64 / start.elapsed().as_secs_f64() / 1e9
        };
        let ours = measure(&|d| finish(partial(d, 0)));
        let simple = measure(&|d| reference(d, 0));
        println!("checksum over 64 KiB: partial() {ours:.1} GB/s, 16-bit loop {simple:.1} GB/s");
    }
}
