//! ICMP and ICMPv6 echo through unprivileged ping sockets (REFERENCE.md
//! §2.8): no raw sockets, no privilege.
//!
//! One flow per (guest address, destination, guest identifier): its own
//! ping socket (`SOCK_DGRAM`, `IPPROTO_ICMP(V6)`). The kernel picks the
//! identifier the host side uses; replies are rewritten back to the guest's
//! identifier and appear to come from the address the guest pinged (which
//! may have been translated, e.g. the gateway to the host's loopback).
//! Flows idle for 60 s are closed on the periodic tick.
//!
//! Invariants: at most [`MAX_FLOWS`] flows (a new one beyond that is
//! dropped and counted); a slot index is the flow's event token, and a slot
//! is only reused after its socket is closed and deregistered.
//! If ping sockets are not permitted (`net.ipv4.ping_group_range`), echo
//! requests are dropped with one warning naming the sysctl.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType, ipproto};

use crate::conf::Config;
use crate::event::{EventLoop, Interest, Token, TokenKind};
use crate::flow::nat;
use crate::wire::echo::{self, EchoRequest, ToGuest};

/// Idle time after which an echo flow is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Echo flows at most.
pub const MAX_FLOWS: usize = 4096;
/// Largest ICMP message handled (IPv4's maximum datagram minus headers).
const MAX_MESSAGE: usize = 65535;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct FlowKey {
    guest: IpAddr,
    dst: IpAddr,
    id: u16,
}

struct PingFlow {
    key: FlowKey,
    socket: OwnedFd,
    last_active: Instant,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IcmpCounters {
    pub requests: u64,
    pub replies: u64,
    /// Echo requests dropped: table full, socket or send failure.
    pub dropped: u64,
}

/// The echo flows.
pub struct PingFlows {
    slots: Vec<Option<PingFlow>>,
    by_key: HashMap<FlowKey, u32>,
    free: Vec<u32>,
    warned_permission: bool,
    buf: Box<[u8]>,
    pub counters: IcmpCounters,
}

impl Default for PingFlows {
    fn default() -> Self {
        PingFlows::new()
    }
}

impl PingFlows {
    pub fn new() -> PingFlows {
        PingFlows {
            slots: (0..MAX_FLOWS).map(|_| None).collect(),
            by_key: HashMap::with_capacity(MAX_FLOWS),
            free: (0..MAX_FLOWS as u32).rev().collect(),
            warned_permission: false,
            buf: vec![0; MAX_MESSAGE].into_boxed_slice(),
            counters: IcmpCounters::default(),
        }
    }

    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// Sends a guest's echo request through its flow's ping socket,
    /// creating the flow if needed.
    pub fn from_guest(&mut self, config: &Config, events: &EventLoop, req: &EchoRequest<'_>) {
        self.counters.requests += 1;
        let key = FlowKey {
            guest: req.src,
            dst: req.dst,
            id: req.id,
        };
        let slot = match self.by_key.get(&key) {
            Some(&slot) => slot,
            None => match self.open(config, events, key) {
                Some(slot) => slot,
                None => {
                    self.counters.dropped += 1;
                    return;
                }
            },
        };
        if let Err(e) = self.send(config, slot, req) {
            log::debug!("ICMP: echo to {} failed: {e}", req.dst);
            self.counters.dropped += 1;
        }
    }

    fn send(&mut self, config: &Config, slot: u32, req: &EchoRequest<'_>) -> io::Result<()> {
        let Some(flow) = self.slots[slot as usize].as_mut() else {
            return Ok(());
        };
        flow.last_active = Instant::now();
        let v6 = req.dst.is_ipv6();
        let len = echo::socket_echo_request(v6, req.seq, req.payload, &mut self.buf)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "echo request too long"))?;
        let target = SocketAddr::new(nat::host_destination(config, req.dst), 0);
        rustix::net::sendto(&flow.socket, &self.buf[..len], SendFlags::DONTWAIT, &target)?;
        Ok(())
    }

    fn open(&mut self, config: &Config, events: &EventLoop, key: FlowKey) -> Option<u32> {
        let Some(slot) = self.free.pop() else {
            log::debug!("ICMP: flow table full, dropping echo to {}", key.dst);
            return None;
        };
        let socket = match ping_socket(config, key.dst) {
            Ok(s) => s,
            Err(e) => {
                self.free.push(slot);
                self.socket_failed(&e);
                return None;
            }
        };
        if let Err(e) = events.add(&socket, Token::new(TokenKind::Icmp, slot), Interest::READ) {
            log::debug!("ICMP: epoll: {e}");
            self.free.push(slot);
            return None;
        }
        log::debug!("ICMP: new flow {} -> {} id {}", key.guest, key.dst, key.id);
        self.slots[slot as usize] = Some(PingFlow {
            key,
            socket,
            last_active: Instant::now(),
        });
        self.by_key.insert(key, slot);
        Some(slot)
    }

    fn socket_failed(&mut self, e: &io::Error) {
        let denied = matches!(e.raw_os_error(), Some(libc::EACCES | libc::EPERM));
        if denied && !self.warned_permission {
            self.warned_permission = true;
            log::warn!(
                "Cannot open ping sockets ({e}): ICMP echo will not work; \
                 allow this group in net.ipv4.ping_group_range"
            );
        } else {
            log::debug!("ICMP: ping socket: {e}");
        }
    }

    /// Reads the replies waiting on flow `slot` and hands each as a frame
    /// (built in `out`) to `emit`.
    pub fn on_readable(
        &mut self,
        slot: u32,
        macs: ([u8; 6], [u8; 6]),
        out: &mut [u8],
        mut emit: impl FnMut(&[u8]),
    ) {
        let Some(flow) = self.slots.get_mut(slot as usize).and_then(Option::as_mut) else {
            return;
        };
        let v6 = flow.key.dst.is_ipv6();
        loop {
            let n = match rustix::net::recv(&flow.socket, &mut self.buf[..], RecvFlags::DONTWAIT) {
                Ok((n, _)) => n,
                Err(rustix::io::Errno::INTR) => continue,
                Err(_) => return,
            };
            flow.last_active = Instant::now();
            let Some((_, seq, payload)) = echo::parse_socket_echo_reply(&self.buf[..n], v6) else {
                continue;
            };
            let to = ToGuest {
                our_mac: macs.0,
                guest_mac: macs.1,
                src: flow.key.dst,
                dst: flow.key.guest,
            };
            if let Some(len) = echo::build_echo_reply(to, flow.key.id, seq, payload, out) {
                self.counters.replies += 1;
                emit(&out[..len]);
            }
        }
    }

    /// Closes the flows idle for [`IDLE_TIMEOUT`].
    pub fn expire(&mut self, now: Instant, events: &EventLoop) {
        for slot in 0..self.slots.len() {
            let idle = matches!(&self.slots[slot], Some(f) if now.duration_since(f.last_active) >= IDLE_TIMEOUT);
            if idle && let Some(flow) = self.slots[slot].take() {
                let _ = events.delete(&flow.socket);
                self.by_key.remove(&flow.key);
                self.free.push(slot as u32);
                log::debug!(
                    "ICMP: flow {} -> {} id {} expired",
                    flow.key.guest,
                    flow.key.dst,
                    flow.key.id
                );
            }
        }
    }
}

/// A non-blocking ping socket for `dst`'s family, bound to `-o` if given.
fn ping_socket(config: &Config, dst: IpAddr) -> io::Result<OwnedFd> {
    let (family, proto) = match dst {
        IpAddr::V4(_) => (AddressFamily::INET, ipproto::ICMP),
        IpAddr::V6(_) => (AddressFamily::INET6, ipproto::ICMPV6),
    };
    let socket = rustix::net::socket_with(
        family,
        SocketType::DGRAM,
        SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
        Some(proto),
    )?;
    let outbound = match dst {
        IpAddr::V4(_) => config.ip4.as_ref().and_then(|c| c.outbound).map(IpAddr::V4),
        IpAddr::V6(_) => config.ip6.as_ref().and_then(|c| c.outbound).map(IpAddr::V6),
    };
    if let Some(addr) = outbound {
        rustix::net::bind(&socket, &SocketAddr::new(addr, 0))?;
    }
    Ok(socket)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conf::{Mode, fixture};
    use etherparse::PacketBuilder;

    /// Runs `f` in a fresh network namespace with `lo` up and ping sockets
    /// allowed for root.
    fn in_private_netns(f: impl FnOnce() + Send) {
        std::thread::scope(|s| {
            s.spawn(|| {
                crate::sys::ns::unshare_net_thread().expect("unshare");
                let mut nl = crate::netlink::Netlink::open().unwrap();
                let lo = nl.link_index("lo").unwrap().unwrap();
                nl.set_link_up(lo).unwrap();
                // /proc/sys/net is the opening thread's namespace.
                std::fs::write("/proc/sys/net/ipv4/ping_group_range", "0 0").unwrap();
                f();
            })
            .join()
            .unwrap();
        });
    }

    fn echo_frame(dst: [u8; 4], id: u16, seq: u16) -> Vec<u8> {
        let mut out = Vec::new();
        PacketBuilder::ethernet2([2; 6], [4; 6])
            .ipv4([192, 0, 2, 10], dst, 64)
            .icmpv4_echo_request(id, seq)
            .write(&mut out, b"hello")
            .unwrap();
        out
    }

    #[test]
    fn icmp_echo_to_gateway_reaches_host_loopback_and_returns_guest_id() {
        in_private_netns(|| {
            let config = fixture::config(Mode::Pasta, &[]);
            let gw = config.ip4.as_ref().unwrap().gateway.unwrap().octets();
            let events = EventLoop::new().unwrap();
            let mut flows = PingFlows::new();
            let frame = echo_frame(gw, 0xbeef, 9);
            let req = echo::parse_echo_request(&frame).unwrap();
            flows.from_guest(&config, &events, &req);
            assert_eq!((flows.len(), flows.counters.dropped), (1, 0));
            let mut out = vec![0u8; 65535];
            let mut replies = Vec::new();
            for _ in 0..100 {
                flows.on_readable(0, ([4; 6], [2; 6]), &mut out, |f| replies.push(f.to_vec()));
                if !replies.is_empty() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let p = etherparse::SlicedPacket::from_ethernet(&replies[0]).unwrap();
            let Some(etherparse::NetSlice::Ipv4(ip)) = p.net else {
                panic!()
            };
            assert_eq!(
                ip.header().source(),
                gw,
                "reply comes from the address pinged"
            );
            assert_eq!(ip.header().destination(), [192, 0, 2, 10]);
            let Some(etherparse::TransportSlice::Icmpv4(icmp)) = p.transport else {
                panic!()
            };
            assert_eq!(
                icmp.icmp_type(),
                etherparse::Icmpv4Type::EchoReply(etherparse::IcmpEchoHeader {
                    id: 0xbeef,
                    seq: 9
                })
            );
            assert_eq!(icmp.payload(), b"hello");
        });
    }

    #[test]
    fn icmp_idle_flows_expire() {
        in_private_netns(|| {
            let config = fixture::config(Mode::Pasta, &[]);
            let events = EventLoop::new().unwrap();
            let mut flows = PingFlows::new();
            let frame = echo_frame([127, 0, 0, 1], 1, 1);
            flows.from_guest(&config, &events, &echo::parse_echo_request(&frame).unwrap());
            flows.expire(Instant::now(), &events);
            assert_eq!(flows.len(), 1);
            flows.expire(Instant::now() + IDLE_TIMEOUT, &events);
            assert!(flows.is_empty());
        });
    }

    #[test]
    fn icmp_refused_ping_sockets_drop_requests_without_panic() {
        std::thread::scope(|s| {
            s.spawn(|| {
                crate::sys::ns::unshare_net_thread().expect("unshare");
                std::fs::write("/proc/sys/net/ipv4/ping_group_range", "1 0").unwrap();
                let config = fixture::config(Mode::Pasta, &[]);
                let events = EventLoop::new().unwrap();
                let mut flows = PingFlows::new();
                let frame = echo_frame([198, 51, 100, 2], 1, 1);
                flows.from_guest(&config, &events, &echo::parse_echo_request(&frame).unwrap());
                assert_eq!((flows.len(), flows.counters.dropped), (0, 1));
                assert!(flows.warned_permission);
            })
            .join()
            .unwrap();
        });
    }
}
