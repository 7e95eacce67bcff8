//! Link-local services answered by passt-rs itself: ARP, DHCP, NDP (with
//! router advertisements) and DHCPv6 (REFERENCE.md §2.3).
//!
//! Every service has the same shape: [`Service::answer`]-style functions
//! take the resolved [`Config`], the run-time [`LinkFacts`] and one whole
//! guest Ethernet frame, and either build one reply frame into `out`
//! (returning its length), decline (`Ok(None)`: not for this service, or no
//! answer due), or report the frame malformed (`Err`). Services keep no
//! state beyond what they are given, so they are easy to test and to fuzz.
//!
//! Invariants: input is parsed through bounds-checked views only; nothing
//! panics on any input; a reply never exceeds `out` (callers pass a buffer
//! of at least [`REPLY_MAX`] bytes).
//! May call: `wire`, `conf` (read-only), packet crates (`etherparse`,
//! `dhcproto`).

pub mod arp;
pub mod dhcp;
pub mod dhcpv6;
pub mod ndp;

use crate::conf::Config;

/// Largest reply a service builds (an Ethernet frame at the default MTU).
pub const REPLY_MAX: usize = 65535;

/// What the services know about the link besides the configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkFacts {
    /// Our MAC address on the link (`-M`).
    pub our_mac: [u8; 6],
    /// The guest's MAC address, as last seen (broadcast until known).
    pub guest_mac: [u8; 6],
}

impl LinkFacts {
    pub fn new(config: &Config) -> LinkFacts {
        LinkFacts {
            our_mac: config.our_mac,
            guest_mac: [0xff; 6],
        }
    }
}

/// Why a service refused a frame that was addressed to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// Truncated, inconsistent lengths, bad option encoding...
    #[error("malformed {0} message")]
    Malformed(&'static str),
}

/// Result of offering a frame to a service.
pub type Answer = Result<Option<usize>, Refused>;
