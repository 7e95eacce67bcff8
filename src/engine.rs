//! The engine: receives the guest's frames from the link and dispatches
//! them by ethertype and protocol to the local services and the flows, and
//! sends what those produce back to the guest.
//!
//! Dispatch today: ICMP/ICMPv6 echo requests go to [`PingFlows`]; frames no
//! handler takes yet are counted and dropped (debug log). The services (ARP,
//! DHCP, NDP, DHCPv6) and the TCP/UDP flows join as arms of
//! [`Core::dispatch`].
//!
//! Invariants: a malformed frame is dropped and counted, never a panic;
//! every frame of a wake-up is handled before the loop waits again; the
//! guest's MAC address is learned from the source of its frames.

use std::collections::HashMap;
use std::io;
use std::time::Instant;

use crate::conf::Config;
use crate::event::{EventLoop, Token, TokenKind};
use crate::flow::icmp::PingFlows;
use crate::link::{FrameBatch, Link, ReadStop};
use crate::wire::{self, FrameClass, PROTO_ICMP, PROTO_ICMPV6};

/// Bytes of the guest-frame batch (upstream: 8 MiB packet buffer).
const BATCH_BYTES: usize = 8 << 20;
/// Frames per batch.
const BATCH_FRAMES: usize = 1024;
/// Distinct frame classes counted separately (bounded: the rest are summed).
const MAX_CLASSES: usize = 64;
/// Largest frame built toward the guest.
const OUT_FRAME_MAX: usize = 65535;

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

impl DropCounters {
    fn unhandled(&mut self, class: FrameClass, len: usize) {
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

pub struct Engine {
    batch: FrameBatch,
    core: Core,
}

/// Everything but the batch being dispatched.
struct Core {
    config: Config,
    link: Link,
    our_mac: [u8; 6],
    guest_mac: [u8; 6],
    out: Box<[u8]>,
    ping: PingFlows,
    drops: DropCounters,
}

impl Engine {
    pub fn new(config: &Config, link: Link) -> Engine {
        Engine {
            batch: FrameBatch::new(BATCH_BYTES, BATCH_FRAMES),
            core: Core {
                config: config.clone(),
                link,
                our_mac: config.our_mac,
                guest_mac: [0xff; 6],
                out: vec![0; OUT_FRAME_MAX].into_boxed_slice(),
                ping: PingFlows::new(),
                drops: DropCounters::default(),
            },
        }
    }

    pub fn link(&self) -> &Link {
        &self.core.link
    }

    pub fn link_mut(&mut self) -> &mut Link {
        &mut self.core.link
    }

    pub fn drops(&self) -> &DropCounters {
        &self.core.drops
    }

    /// The guest's MAC when known from elsewhere (pasta: the tap's).
    pub fn set_guest_mac(&mut self, mac: [u8; 6]) {
        self.core.guest_mac = mac;
    }

    /// Reads the link until it would block, dispatching every frame.
    pub fn on_link_readable(&mut self, events: &EventLoop) -> io::Result<LinkState> {
        loop {
            let stop = self.core.link.read_batch(&mut self.batch)?;
            for frame in self.batch.iter() {
                self.core.dispatch(frame, events);
            }
            match stop {
                ReadStop::BatchFull => continue,
                ReadStop::Drained => return Ok(LinkState::Open),
                ReadStop::Closed => return Ok(LinkState::Closed),
            }
        }
    }

    /// A flow's socket is ready.
    pub fn on_flow_event(&mut self, token: Token) -> io::Result<()> {
        match token.kind {
            TokenKind::Icmp => self.core.ping_readable(token.index),
            _ => Ok(()),
        }
    }

    /// The periodic tick: timeouts.
    pub fn on_tick(&mut self, events: &EventLoop) {
        self.core.ping.expire(Instant::now(), events);
    }
}

impl Core {
    fn dispatch(&mut self, frame: &[u8], events: &EventLoop) {
        let class = wire::classify(frame);
        if class == FrameClass::Malformed {
            self.drops.malformed += 1;
            log::debug!("Dropped malformed frame ({} bytes)", frame.len());
            return;
        }
        self.learn_guest_mac(frame);
        match class {
            FrameClass::Ipv4(PROTO_ICMP) | FrameClass::Ipv6(PROTO_ICMPV6)
                if self.config.services.icmp =>
            {
                match wire::echo::parse_echo_request(frame) {
                    Some(req) => self.ping.from_guest(&self.config, events, &req),
                    None => self.drops.unhandled(class, frame.len()),
                }
            }
            _ => self.drops.unhandled(class, frame.len()),
        }
    }

    /// Upstream learns the guest's MAC from every frame it sends.
    fn learn_guest_mac(&mut self, frame: &[u8]) {
        if let Some(src) = frame.get(6..12) {
            let multicast = src[0] & 1 == 1;
            if !multicast {
                self.guest_mac.copy_from_slice(src);
            }
        }
    }

    fn ping_readable(&mut self, slot: u32) -> io::Result<()> {
        let Core {
            ping,
            link,
            out,
            our_mac,
            guest_mac,
            ..
        } = self;
        let mut result = Ok(());
        ping.on_readable(slot, (*our_mac, *guest_mac), out, |frame| {
            if result.is_ok() {
                result = link.write_frame(frame);
            }
        });
        result
    }
}
