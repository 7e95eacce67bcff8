//! Connections driven through real sockets in a private network namespace
//! (root): the guest side is played by hand-built segments.

use super::*;
use crate::conf::{Mode, fixture};
use crate::event::EventLoop;
use crate::flow::testing::{Frames, in_private_netns};
use crate::wire::tcp::Control;
use rustix::net::Shutdown;
use std::io::Read;
use std::net::IpAddr;
use std::net::{TcpListener, TcpStream};

/// The TCP flows with a guest at its configured address, port 40000,
/// and a host listener behind the gateway (the host's loopback).
struct Rig {
    config: Config,
    events: EventLoop,
    flows: Flows,
    tcp: TcpFlows,
    link: Frames,
    listener: TcpListener,
}

const GUEST_PORT: u16 = 40000;

impl Rig {
    fn new() -> Rig {
        Rig::with(TcpFlows::new)
    }

    /// A rig whose flows skip sent data as on Linux before 6.9.
    fn without_peek_offset() -> Rig {
        Rig::with(TcpFlows::without_peek_offset)
    }

    fn with(tcp: fn(&Config) -> TcpFlows) -> Rig {
        let config = fixture::config(Mode::Passt, &[]);
        Rig {
            tcp: tcp(&config),
            config,
            events: EventLoop::new().unwrap(),
            flows: Flows::new(16),
            link: Frames::default(),
            listener: TcpListener::bind("127.0.0.1:0").unwrap(),
        }
    }

    fn with_ctx(&mut self, f: impl FnOnce(&mut TcpFlows, &mut Flows, &mut Ctx<'_>)) {
        let Rig {
            config,
            events,
            flows,
            tcp,
            link,
            ..
        } = self;
        let mut ctx = Ctx::standalone(config, events, [2; 6], link);
        f(tcp, flows, &mut ctx);
    }

    /// One guest segment as a batch of its own.
    fn guest(&mut self, flag_bits: u8, seq: u32, ack: u32, payload: &[u8]) {
        self.guest_with_window(flag_bits, seq, ack, 65535, payload);
    }

    fn guest_with_window(
        &mut self,
        flag_bits: u8,
        seq: u32,
        ack: u32,
        window: u16,
        payload: &[u8],
    ) {
        let ends = Endpoints {
            our_mac: [2; 6],
            guest_mac: self.config.our_mac,
            src: IpAddr::V4(self.config.ip4.as_ref().unwrap().addr),
            dst: IpAddr::V4(self.config.nat.map_host_loopback4.unwrap()),
            src_port: GUEST_PORT,
            dst_port: self.listener.local_addr().unwrap().port(),
        };
        let ctl = Control {
            seq,
            ack,
            flags: flag_bits,
            window,
        };
        let mut frame = vec![0; 2048];
        let start = wire::data_header_len(false);
        frame[start..start + payload.len()].copy_from_slice(payload);
        let len = wire::write_data_headers(&ends, &ctl, &mut frame, payload.len()).unwrap();
        let seg = wire::parse_segment(&frame[..len]).unwrap();
        self.with_ctx(|tcp, flows, ctx| {
            tcp.from_guest(flows, ctx, &seg);
            tcp.flush_acks(flows, ctx);
        });
    }

    /// Handles the ready sockets until none is.
    fn events(&mut self) {
        let mut ready = Vec::new();
        for _ in 0..16 {
            std::thread::sleep(Duration::from_millis(10));
            self.events.poll(&mut ready).unwrap();
            if ready.is_empty() {
                return;
            }
            for r in &ready {
                let id = FlowId::from_raw(r.token.index);
                self.with_ctx(|tcp, flows, ctx| tcp.on_socket(flows, ctx, id, r));
            }
        }
    }

    /// The segments sent to the guest since the last call.
    fn sent(&mut self) -> Vec<(u8, u32, u32)> {
        let frames = std::mem::take(&mut self.link.sent);
        let segs = frames.iter().map(|f| wire::parse_segment(f).unwrap());
        segs.map(|s| (s.flags, s.seq, s.ack)).collect()
    }

    /// Handshake from the guest (ISN `g_isn`); returns our ISN and the
    /// host's end of the connection.
    fn connect(&mut self, g_isn: u32) -> (u32, TcpStream) {
        self.guest(flags::SYN, g_isn, 0, &[]);
        self.events();
        let sent = self.sent();
        assert_eq!(sent.len(), 1);
        let (flag_bits, isn, ack) = sent[0];
        assert_eq!((flag_bits, ack), (flags::SYN | flags::ACK, g_isn + 1));
        self.guest(flags::ACK, g_isn + 1, isn.wrapping_add(1), &[]);
        let (host, _) = self.listener.accept().unwrap();
        (isn, host)
    }
}

/// The usual close when the host side closes first: our FIN, then the
/// guest's FIN (with the ACK of ours). The guest's FIN must be
/// acknowledged, or the guest stays in LAST-ACK resending it to a
/// connection that is gone.
/// An RST the guest link refuses (a full passt socket) is kept and
/// sent first once the link is writable; nothing else waits for it.
#[test]
fn tcp_reset_refused_by_the_link_is_sent_when_it_is_writable() {
    in_private_netns(|| {
        let mut rig = Rig::new();
        // The host port stops listening: the guest's SYN gets an RST.
        rustix::net::shutdown(&rig.listener, Shutdown::Read).unwrap();
        rig.link.refusing = true;
        rig.guest(flags::SYN, 1000, 0, &[]);
        rig.events();
        assert!(rig.sent().is_empty());
        rig.with_ctx(|tcp, _, _| assert!(tcp.link_waiters(), "EPOLLOUT wanted"));
        rig.with_ctx(|tcp, flows, ctx| tcp.resume_blocked(flows, ctx));
        assert!(rig.sent().is_empty(), "still refused: kept");
        rig.link.refusing = false;
        rig.with_ctx(|tcp, flows, ctx| tcp.resume_blocked(flows, ctx));
        assert_eq!(rig.sent(), vec![(flags::RST | flags::ACK, 0, 1001)]);
        rig.with_ctx(|tcp, _, _| assert!(!tcp.link_waiters()));
    });
}

#[test]
fn tcp_guest_fin_that_completes_the_close_is_acknowledged() {
    in_private_netns(|| {
        let mut rig = Rig::new();
        let (isn, mut host) = rig.connect(1000);
        let (isn1, isn2) = (isn.wrapping_add(1), isn.wrapping_add(2));
        rig.guest(flags::ACK | flags::PSH, 1001, isn1, b"hello");
        host.shutdown(std::net::Shutdown::Write).unwrap();
        rig.events();
        let sent = rig.sent();
        assert!(
            sent.contains(&(flags::FIN | flags::ACK, isn1, 1006)),
            "our FIN: {sent:?}"
        );
        rig.guest(flags::FIN | flags::ACK, 1006, isn2, &[]);
        let sent = rig.sent();
        assert_eq!(
            sent,
            [(flags::ACK, isn2, 1007)],
            "the guest's FIN is acknowledged"
        );
        assert!(rig.flows.is_empty());
        let mut got = Vec::new();
        host.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"hello");
    });
}

/// Data from a guest that has not acknowledged our SYN-ACK (its ACK
/// does not cover our ISN) is not taken: it cannot know our sequence
/// numbers (RFC 9293 3.10.7.4).
#[test]
fn tcp_data_before_the_handshake_completes_is_not_taken() {
    in_private_netns(|| {
        let mut rig = Rig::new();
        rig.guest(flags::SYN, 1000, 0, &[]);
        rig.events();
        let (_, isn, _) = rig.sent()[0];
        rig.guest(flags::ACK | flags::PSH, 1001, isn, b"early");
        assert!(rig.sent().is_empty(), "nothing acknowledged");
        let (mut host, _) = rig.listener.accept().unwrap();
        host.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 16];
        assert!(host.read(&mut buf).is_err(), "the host got nothing");
        rig.guest(flags::ACK | flags::PSH, 1001, isn.wrapping_add(1), b"late");
        host.set_nonblocking(false).unwrap();
        host.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let n = host.read(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"late");
    });
}

/// Only a SYN without ACK, RST or FIN opens a connection; a SYN-ACK
/// for no connection (stale or forged) must not make the host connect.
#[test]
fn tcp_syn_with_ack_rst_or_fin_opens_nothing() {
    in_private_netns(|| {
        let mut rig = Rig::new();
        for other in [flags::ACK, flags::RST, flags::FIN] {
            rig.guest(flags::SYN | other, 1000, 0, &[]);
            assert!(
                rig.flows.is_empty(),
                "SYN with {other:#04x} opened a connection"
            );
        }
        assert_eq!(rig.tcp.counters.opened_from_guest, 0);
        rig.listener.set_nonblocking(true).unwrap();
        assert!(rig.listener.accept().is_err(), "the host saw a connection");
    });
}

/// Without `SO_PEEK_OFF` (Linux before 6.9), a wake-up that finds only
/// bytes already sent is no end of stream: no FIN goes to the guest while
/// the host's connection is open, and the FIN follows the host's close
/// only after every byte (downloads arrived cut short before this).
#[test]
fn tcp_fallback_sends_no_fin_before_the_host_stream_ends() {
    in_private_netns(|| {
        let mut rig = Rig::without_peek_offset();
        assert!(rig.tcp.peek_fallback());
        let (isn, mut host) = rig.connect(1000);
        let isn1 = isn.wrapping_add(1);
        std::io::Write::write_all(&mut host, &[7u8; 3000]).unwrap();
        rig.events();
        let data: u32 = 3000;
        assert!(rig.sent().iter().all(|s| s.0 & flags::FIN == 0));
        // Window updates without new data make the flows look again.
        rig.guest_with_window(flags::ACK, 1001, isn1, 100, &[]);
        rig.guest_with_window(flags::ACK, 1001, isn1, 60000, &[]);
        rig.guest(flags::ACK, 1001, isn1 + 1000, &[]);
        rig.events();
        let sent = rig.sent();
        assert!(
            sent.iter().all(|s| s.0 & flags::FIN == 0),
            "no FIN: {sent:?}"
        );
        host.shutdown(std::net::Shutdown::Write).unwrap();
        rig.events();
        let sent = rig.sent();
        assert!(
            sent.iter().all(|s| s.0 & flags::FIN == 0),
            "data unacknowledged"
        );
        rig.guest(flags::ACK, 1001, isn1 + data, &[]);
        rig.events();
        let sent = rig.sent();
        assert_eq!(sent, [(flags::FIN | flags::ACK, isn1 + data, 1001)]);
    });
}

/// A guest that forgot a connection and opens its 4-tuple again gets a
/// challenge ACK; its RST answering it ends the old connection, and the
/// SYN is taken at once: a new connection to the host.
#[test]
fn tcp_syn_on_an_open_four_tuple_reconnects_after_the_guest_resets() {
    in_private_netns(|| {
        let mut rig = Rig::new();
        let (isn, mut old) = rig.connect(1000);
        rig.guest(flags::SYN, 5000, 0, &[]);
        let sent = rig.sent();
        assert_eq!(
            sent,
            [(flags::ACK, isn.wrapping_add(1), 1001)],
            "challenge ACK"
        );
        rig.guest(flags::RST, 1001, 0, &[]);
        rig.events();
        let sent = rig.sent();
        assert_eq!(sent.len(), 1, "{sent:?}");
        assert_eq!((sent[0].0, sent[0].2), (flags::SYN | flags::ACK, 5001));
        let mut buf = [0u8; 1];
        assert!(
            old.read(&mut buf).is_err(),
            "the old host connection was reset"
        );
        rig.listener.set_nonblocking(true).unwrap();
        assert!(rig.listener.accept().is_ok(), "a new host connection");
    });
}
