//! Test support shared by the flow modules' tests: running a closure in a
//! private network namespace, where sockets cannot reach anything real,
//! and a guest link that keeps what it is sent.

use super::GuestLink;
use crate::link::Offload;

/// Frames sent to the guest, kept for the test to look at; while
/// `refusing`, the link takes none (a full guest link).
#[derive(Default)]
pub struct Frames {
    pub sent: Vec<Vec<u8>>,
    pub refusing: bool,
}

impl GuestLink for Frames {
    fn send_frame(&mut self, frame: &[u8]) -> bool {
        if self.refusing {
            return false;
        }
        self.sent.push(frame.to_vec());
        true
    }

    fn offloads(&self) -> bool {
        false
    }

    fn send_offloaded(&mut self, frame: &[u8], _: Offload) -> bool {
        self.send_frame(frame)
    }
}

/// Runs `f` on a thread of its own in a fresh network namespace with `lo`
/// up (needs root).
pub fn in_private_netns(f: impl FnOnce() + Send) {
    std::thread::scope(|s| {
        s.spawn(|| {
            crate::sys::ns::unshare_net_thread().expect("unshare");
            let mut nl = crate::netlink::Netlink::open().unwrap();
            let lo = nl.link_index("lo").unwrap().unwrap();
            nl.set_link_up(lo).unwrap();
            f();
        })
        .join()
        .unwrap();
    });
}

/// xorshift64*: a small deterministic generator for the model and
/// property tests, so a failure names its seed and replays.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A value below `n` (0 for `n` = 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}
