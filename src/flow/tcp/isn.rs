//! Initial sequence numbers per RFC 6528: a keyed hash of the connection's
//! addresses and ports plus a clock ticking every 32 ns (upstream's
//! granularity), so that numbers are neither guessable across connections
//! nor reused soon for the same one.
//!
//! May call: std only (keyed SipHash through `RandomState`).

use std::hash::{BuildHasher, RandomState};
use std::net::IpAddr;
use std::time::Instant;

pub struct IsnSource {
    key: RandomState,
    start: Instant,
}

impl IsnSource {
    pub fn new() -> IsnSource {
        IsnSource {
            key: RandomState::new(),
            start: Instant::now(),
        }
    }

    /// The ISN for a connection from `(src, src_port)` to `(dst, dst_port)`.
    pub fn isn(&self, src: IpAddr, src_port: u16, dst: IpAddr, dst_port: u16) -> u32 {
        let hash = self.key.hash_one((src, src_port, dst, dst_port)) as u32;
        let clock = (self.start.elapsed().as_nanos() >> 5) as u32;
        hash.wrapping_add(clock)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn isn_differs_per_connection_and_advances_with_time() {
        let isn = IsnSource::new();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "198.51.100.2".parse().unwrap();
        let first = isn.isn(a, 1000, b, 80);
        assert_ne!(first, isn.isn(a, 1001, b, 80));
        std::thread::sleep(std::time::Duration::from_millis(1));
        let later = isn.isn(a, 1000, b, 80);
        let advanced = later.wrapping_sub(first);
        assert!(advanced >= 1_000_000 / 32, "clock part advanced {advanced}");
        assert_ne!(IsnSource::new().isn(a, 1000, b, 80), first, "keyed");
    }
}
