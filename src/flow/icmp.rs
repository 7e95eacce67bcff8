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
//! Invariants: flows live in the shared flow table (its capacity bounds
//! them; a request beyond it is dropped and counted); the flow's id is its
//! socket's event token, and a stale token finds nothing (generation
//! check).
//! If ping sockets are not permitted (`net.ipv4.ping_group_range`), echo
//! requests are dropped with one warning naming the sysctl.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType, ipproto};

use super::table::{FlowId, FlowSide, Indexed, Pif, Protocol};
use super::{FlowState, Flows, unspecified_like};
use crate::conf::Config;
use crate::event::{EventLoop, Interest, Token, TokenKind};
use crate::flow::nat;
use crate::wire::echo::{self, EchoRequest, ToGuest};

/// Idle time after which an echo flow is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Largest ICMP message handled (IPv4's maximum datagram minus headers).
const MAX_MESSAGE: usize = 65535;

/// An echo flow's own state in the flow table. Its guest side holds the
/// guest's address and identifier (as the endpoint) and the address it
/// pinged (as ours); the host side the translated destination.
pub struct PingState {
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

/// The echo path: ping sockets, a message buffer, counters. The flows
/// themselves live in the shared [`Flows`] table.
pub struct PingFlows {
    warned_permission: bool,
    buf: Box<[u8]>,
    pub counters: IcmpCounters,
}

impl Default for PingFlows {
    fn default() -> Self {
        PingFlows::new()
    }
}

fn protocol(addr: IpAddr) -> Protocol {
    if addr.is_ipv4() {
        Protocol::Icmp
    } else {
        Protocol::Icmpv6
    }
}

/// The guest side of the echo flow for `req`: the lookup key.
fn guest_side(req: &EchoRequest<'_>) -> FlowSide {
    FlowSide {
        pif: Pif::Tap,
        our_addr: req.dst,
        our_port: req.id,
        end_addr: req.src,
        end_port: req.id,
    }
}

impl PingFlows {
    /// Also probes whether ping sockets are allowed, so that the warning
    /// comes at start-up (while stderr is still on), not at the first ping.
    pub fn new() -> PingFlows {
        let mut flows = PingFlows {
            warned_permission: false,
            buf: vec![0; MAX_MESSAGE].into_boxed_slice(),
            counters: IcmpCounters::default(),
        };
        let probe = rustix::net::socket_with(
            AddressFamily::INET,
            SocketType::DGRAM,
            SocketFlags::CLOEXEC,
            Some(ipproto::ICMP),
        );
        if let Err(e) = probe {
            flows.socket_failed(&e.into());
        }
        flows
    }

    /// Sends a guest's echo request through its flow's ping socket,
    /// creating the flow if needed.
    pub fn from_guest(
        &mut self,
        flows: &mut Flows,
        config: &Config,
        events: &EventLoop,
        req: &EchoRequest<'_>,
    ) {
        self.counters.requests += 1;
        let key = guest_side(req);
        let id = match flows.lookup(protocol(req.dst), &key) {
            Some((id, _)) => id,
            None => match self.open(flows, config, events, key) {
                Some(id) => id,
                None => {
                    self.counters.dropped += 1;
                    return;
                }
            },
        };
        if let Err(e) = self.send(flows, config, id, req) {
            log::debug!("ICMP: echo to {} failed: {e}", req.dst);
            self.counters.dropped += 1;
        }
    }

    fn send(
        &mut self,
        flows: &mut Flows,
        config: &Config,
        id: FlowId,
        req: &EchoRequest<'_>,
    ) -> io::Result<()> {
        let Some(FlowState::Ping(ping)) = flows.get_mut(id).map(|f| &mut f.state) else {
            return Ok(());
        };
        ping.last_active = Instant::now();
        let v6 = req.dst.is_ipv6();
        let len = echo::socket_echo_request(v6, req.seq, req.payload, &mut self.buf)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "echo request too long"))?;
        let target = SocketAddr::new(nat::host_destination_without_port(config, req.dst), 0);
        rustix::net::sendto(&ping.socket, &self.buf[..len], SendFlags::DONTWAIT, &target)?;
        Ok(())
    }

    fn open(
        &mut self,
        flows: &mut Flows,
        config: &Config,
        events: &EventLoop,
        key: FlowSide,
    ) -> Option<FlowId> {
        let host_dst = nat::host_destination_without_port(config, key.our_addr);
        let host = FlowSide {
            pif: Pif::Host,
            our_addr: unspecified_like(host_dst),
            our_port: 0,
            end_addr: host_dst,
            end_port: 0,
        };
        let vacant = match flows.vacant(protocol(key.our_addr), key, host, Indexed::Guest) {
            Ok(v) => v,
            Err(e) => {
                log::debug!("ICMP: no flow for echo to {}: {e}", key.our_addr);
                return None;
            }
        };
        let socket = match ping_socket(config, key.our_addr) {
            Ok(s) => s,
            Err(e) => {
                self.socket_failed(&e);
                return None;
            }
        };
        let token = Token::new(TokenKind::Icmp, vacant.id().raw());
        if let Err(e) = events.add(&socket, token, Interest::READ) {
            log::debug!("ICMP: epoll: {e}");
            return None;
        }
        log::debug!(
            "ICMP: new flow {} -> {} id {}",
            key.end_addr,
            key.our_addr,
            key.end_port
        );
        Some(vacant.insert(FlowState::Ping(PingState {
            socket,
            last_active: Instant::now(),
        })))
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

    /// Reads the replies waiting on flow `id` and hands each as a frame
    /// (built in `out`) to `emit`.
    pub fn on_readable(
        &mut self,
        flows: &mut Flows,
        id: FlowId,
        macs: ([u8; 6], [u8; 6]),
        out: &mut [u8],
        mut emit: impl FnMut(&[u8]),
    ) {
        let Some(flow) = flows.get_mut(id) else {
            return;
        };
        let guest = *flow.side(super::table::Side::Guest);
        let FlowState::Ping(ping) = &mut flow.state else {
            return;
        };
        let v6 = guest.our_addr.is_ipv6();
        loop {
            let n = match rustix::net::recv(&ping.socket, &mut self.buf[..], RecvFlags::DONTWAIT) {
                Ok((n, _)) => n,
                Err(rustix::io::Errno::INTR) => continue,
                Err(_) => return,
            };
            ping.last_active = Instant::now();
            let Some((_, seq, payload)) = echo::parse_socket_echo_reply(&self.buf[..n], v6) else {
                continue;
            };
            let to = ToGuest {
                our_mac: macs.0,
                guest_mac: macs.1,
                src: guest.our_addr,
                dst: guest.end_addr,
            };
            if let Some(len) = echo::build_echo_reply(to, guest.end_port, seq, payload, out) {
                self.counters.replies += 1;
                emit(&out[..len]);
            }
        }
    }
}

/// Closes the echo flows idle for [`IDLE_TIMEOUT`] (called on the tick).
pub fn expire(flows: &mut Flows, now: Instant, events: &EventLoop) {
    flows.retain(|_, flow| {
        let FlowState::Ping(ping) = &flow.state else {
            return true;
        };
        if now.duration_since(ping.last_active) < IDLE_TIMEOUT {
            return true;
        }
        let _ = events.delete(&ping.socket);
        log::debug!(
            "ICMP: flow to {} expired",
            flow.side(super::table::Side::Guest).our_addr
        );
        false
    });
}

/// A non-blocking ping socket for `dst`'s family, bound to the outbound
/// address and interface if given.
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
    super::bind_outbound(config, &socket, dst.is_ipv6(), 0)?;
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
        crate::flow::testing::in_private_netns(|| {
            // /proc/sys/net is the opening thread's namespace.
            std::fs::write("/proc/sys/net/ipv4/ping_group_range", "0 0").unwrap();
            f();
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
            let mut table = Flows::new(16);
            let mut ping = PingFlows::new();
            let frame = echo_frame(gw, 0xbeef, 9);
            let req = echo::parse_echo_request(&frame).unwrap();
            ping.from_guest(&mut table, &config, &events, &req);
            assert_eq!((table.len(), ping.counters.dropped), (1, 0));
            let (id, _) = table.lookup(Protocol::Icmp, &guest_side(&req)).unwrap();
            let mut out = vec![0u8; 65535];
            let mut replies = Vec::new();
            for _ in 0..100 {
                ping.on_readable(&mut table, id, ([4; 6], [2; 6]), &mut out, |f| {
                    replies.push(f.to_vec())
                });
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
    fn icmp_full_flow_table_drops_new_flows_and_keeps_old_ones() {
        in_private_netns(|| {
            let config = fixture::config(Mode::Pasta, &[]);
            let events = EventLoop::new().unwrap();
            let mut table = Flows::new(1);
            let mut ping = PingFlows::new();
            let first = echo_frame([127, 0, 0, 1], 1, 1);
            let second = echo_frame([127, 0, 0, 1], 2, 1);
            ping.from_guest(
                &mut table,
                &config,
                &events,
                &echo::parse_echo_request(&first).unwrap(),
            );
            ping.from_guest(
                &mut table,
                &config,
                &events,
                &echo::parse_echo_request(&second).unwrap(),
            );
            assert_eq!((table.len(), ping.counters.dropped), (1, 1));
            ping.from_guest(
                &mut table,
                &config,
                &events,
                &echo::parse_echo_request(&first).unwrap(),
            );
            assert_eq!(ping.counters.dropped, 1, "the existing flow still works");
        });
    }

    #[test]
    fn icmp_idle_flows_expire() {
        in_private_netns(|| {
            let config = fixture::config(Mode::Pasta, &[]);
            let events = EventLoop::new().unwrap();
            let mut table = Flows::new(16);
            let mut ping = PingFlows::new();
            let frame = echo_frame([127, 0, 0, 1], 1, 1);
            ping.from_guest(
                &mut table,
                &config,
                &events,
                &echo::parse_echo_request(&frame).unwrap(),
            );
            expire(&mut table, Instant::now(), &events);
            assert_eq!(table.len(), 1);
            expire(&mut table, Instant::now() + IDLE_TIMEOUT, &events);
            assert!(table.is_empty());
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
                let mut table = Flows::new(16);
                let mut ping = PingFlows::new();
                let frame = echo_frame([198, 51, 100, 2], 1, 1);
                ping.from_guest(
                    &mut table,
                    &config,
                    &events,
                    &echo::parse_echo_request(&frame).unwrap(),
                );
                assert_eq!((table.len(), ping.counters.dropped), (0, 1));
                assert!(ping.warned_permission);
            })
            .join()
            .unwrap();
        });
    }
}
