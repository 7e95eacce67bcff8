//! The engine: receives the guest's frames from the link and dispatches
//! them by ethertype and protocol to the local services and the flows.
//!
//! Today no protocol handler is wired in yet, so every frame is classified,
//! counted and dropped (debug log). Later issues add the services (ARP,
//! DHCP, NDP, DHCPv6) and the flow handlers (TCP, UDP, ICMP) as arms of
//! [`Engine::dispatch`].
//!
//! Invariants: a malformed frame is dropped and counted, never a panic;
//! every frame of a wake-up is handled before the loop waits again.

use std::collections::HashMap;
use std::io;

use crate::link::{FrameBatch, Link, ReadStop};
use crate::wire::{self, FrameClass};

/// Bytes of the guest-frame batch (upstream: 8 MiB packet buffer).
const BATCH_BYTES: usize = 8 << 20;
/// Frames per batch.
const BATCH_FRAMES: usize = 1024;
/// Distinct frame classes counted separately (bounded: the rest are summed).
const MAX_CLASSES: usize = 64;

/// Whether the guest link is still there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkState {
    Open,
    Closed,
}

/// Frames dropped, by reason.
#[derive(Debug, Default)]
pub struct DropCounters {
    pub malformed: u64,
    /// No handler for this kind of frame yet.
    pub unhandled: HashMap<FrameClass, u64>,
    pub unhandled_other: u64,
}

pub struct Engine {
    link: Link,
    batch: FrameBatch,
    pub drops: DropCounters,
}

impl Engine {
    pub fn new(link: Link) -> Engine {
        Engine {
            link,
            batch: FrameBatch::new(BATCH_BYTES, BATCH_FRAMES),
            drops: DropCounters::default(),
        }
    }

    pub fn link(&self) -> &Link {
        &self.link
    }

    pub fn link_mut(&mut self) -> &mut Link {
        &mut self.link
    }

    /// Reads the link until it would block, dispatching every frame.
    pub fn on_link_readable(&mut self) -> io::Result<LinkState> {
        loop {
            let stop = self.link.read_batch(&mut self.batch)?;
            for frame in self.batch.iter() {
                self.drops.dispatch(frame);
            }
            match stop {
                ReadStop::BatchFull => continue,
                ReadStop::Drained => return Ok(LinkState::Open),
                ReadStop::Closed => return Ok(LinkState::Closed),
            }
        }
    }
}

impl DropCounters {
    /// Today's dispatch: classify and count (no handler is wired in yet).
    fn dispatch(&mut self, frame: &[u8]) {
        match wire::classify(frame) {
            FrameClass::Malformed => {
                self.malformed += 1;
                log::debug!("Dropped malformed frame ({} bytes)", frame.len());
            }
            class => self.drop_unhandled(class, frame.len()),
        }
    }

    fn drop_unhandled(&mut self, class: FrameClass, len: usize) {
        log::debug!("Dropped {class:?} frame ({len} bytes): no handler");
        let known = self.unhandled.len();
        match self.unhandled.get_mut(&class) {
            Some(n) => *n += 1,
            None if known < MAX_CLASSES => {
                self.unhandled.insert(class, 1);
            }
            None => self.unhandled_other += 1,
        }
    }
}
