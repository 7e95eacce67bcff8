//! The splice path with real sockets in private network namespaces.

use super::*;
use crate::flow::testing::in_private_netns;
use rustix::net::{AddressFamily, SocketFlags, SocketType};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;

const MIB: usize = 1 << 20;

struct Rig {
    events: EventLoop,
    flows: Flows,
    splice: SplicedConns,
    ready: Vec<Ready>,
}

impl Rig {
    fn new(capacity: usize) -> Rig {
        Rig {
            events: EventLoop::new().unwrap(),
            flows: Flows::new(capacity),
            splice: SplicedConns::new(),
            ready: Vec::new(),
        }
    }

    /// Accepts the next client of `front` and splices it to `dst`.
    fn splice_next(&mut self, front: &TcpListener, dst: SocketAddr) -> Result<FlowId, OpenError> {
        let (accepted, peer) = front.accept().unwrap();
        let origin = Origin {
            pif: Pif::Host,
            peer,
            local: accepted.local_addr().unwrap(),
        };
        let target = rustix::net::socket_with(
            AddressFamily::INET,
            SocketType::STREAM,
            SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
            None,
        )
        .unwrap();
        let accepted = OwnedFd::from(accepted);
        self.splice
            .open(&mut self.flows, &self.events, accepted, origin, target, dst)
    }

    /// Handles one batch of events (waiting for it if `block`); returns
    /// how many there were.
    fn step(&mut self, block: bool) -> usize {
        let mut ready = std::mem::take(&mut self.ready);
        let tick = match block {
            true => self.events.wait(&mut ready).unwrap(),
            false => {
                self.events.poll(&mut ready).unwrap();
                false
            }
        };
        for r in &ready {
            let side = SpliceSide::from_token(r.token.kind).unwrap();
            let id = FlowId::from_raw(r.token.index);
            self.splice
                .on_socket(&mut self.flows, &self.events, id, side, r);
        }
        if tick {
            self.splice
                .on_tick(&mut self.flows, &self.events, Instant::now());
        }
        let n = ready.len();
        self.ready = ready;
        n
    }

    /// Runs the loop until every connection is gone (30 s at most).
    fn run_until_closed(&mut self) {
        let end = Instant::now() + Duration::from_secs(30);
        while !self.flows.is_empty() {
            assert!(Instant::now() < end, "connections still open");
            self.step(true);
        }
    }

    /// Runs the loop for `time`; returns the events handled.
    fn run_for(&mut self, time: Duration) -> usize {
        let end = Instant::now() + time;
        let mut handled = 0;
        while Instant::now() < end {
            handled += self.step(false);
            thread::sleep(Duration::from_millis(2));
        }
        handled
    }

    fn conn(&mut self, id: FlowId) -> &mut SpliceConn {
        conn_mut(&mut self.flows, id).unwrap()
    }
}

fn listener() -> (TcpListener, SocketAddr) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    (l, addr)
}

/// `len` reproducible bytes that differ per `seed`.
fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Sends `data` then shuts the write side, while reading to the end;
/// returns what was read.
fn exchange(stream: TcpStream, data: &[u8]) -> Vec<u8> {
    let mut writer = stream.try_clone().unwrap();
    let mut reader = stream;
    thread::scope(|s| {
        s.spawn(move || {
            writer.write_all(data).unwrap();
            writer.shutdown(std::net::Shutdown::Write).unwrap();
        });
        let mut got = Vec::new();
        reader.read_to_end(&mut got).unwrap();
        got
    })
}

fn assert_same(got: &[u8], want: &[u8], what: &str) {
    let first_diff = got.iter().zip(want).position(|(a, b)| a != b);
    assert!(
        got == want,
        "{what}: {} bytes, {} expected, first difference at {first_diff:?}",
        got.len(),
        want.len()
    );
}

fn read_error(stream: &mut TcpStream) -> io::ErrorKind {
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buf = [0u8; 64];
    match stream.read(&mut buf) {
        Ok(0) => io::ErrorKind::UnexpectedEof,
        Ok(n) => panic!("{n} unexpected bytes"),
        Err(e) => e.kind(),
    }
}

fn reset(stream: TcpStream) {
    rustix::net::sockopt::set_socket_linger(&stream, Some(Duration::ZERO)).unwrap();
}

#[test]
fn splice_moves_8_mib_each_way_intact() {
    in_private_netns(|| {
        let mut rig = Rig::new(16);
        let ((front, front_addr), (back, back_addr)) = (listener(), listener());
        let (up, down) = (pattern(1, 8 * MIB), pattern(2, 8 * MIB));
        thread::scope(|s| {
            let client = s.spawn(|| exchange(TcpStream::connect(front_addr).unwrap(), &up));
            let server = s.spawn(|| exchange(back.accept().unwrap().0, &down));
            rig.splice_next(&front, back_addr).unwrap();
            rig.run_until_closed();
            assert_same(&server.join().unwrap(), &up, "to the server");
            assert_same(&client.join().unwrap(), &down, "to the client");
        });
        let c = rig.splice.counters;
        assert_eq!((c.opened, c.closed, c.reset), (1, 1, 0));
    });
}

/// One peer shuts its write side first; the other still sends a
/// while, then closes; both see everything and the end of stream.
fn half_close(client_first: bool) {
    in_private_netns(|| {
        let mut rig = Rig::new(16);
        let ((front, front_addr), (back, back_addr)) = (listener(), listener());
        let answer = pattern(3, MIB);
        let first_then_answer = |mut first: TcpStream, mut second: TcpStream| {
            first.write_all(b"question").unwrap();
            first.shutdown(std::net::Shutdown::Write).unwrap();
            let mut question = Vec::new();
            second.read_to_end(&mut question).unwrap();
            assert_eq!(question, b"question");
            second.write_all(&answer).unwrap();
            drop(second);
            let mut got = Vec::new();
            first.read_to_end(&mut got).unwrap();
            assert_same(&got, &answer, "answer after the half-close");
        };
        thread::scope(|s| {
            let peers = s.spawn(|| {
                let client = TcpStream::connect(front_addr).unwrap();
                let server = back.accept().unwrap().0;
                match client_first {
                    true => first_then_answer(client, server),
                    false => first_then_answer(server, client),
                }
            });
            rig.splice_next(&front, back_addr).unwrap();
            rig.run_until_closed();
            peers.join().unwrap();
        });
        assert_eq!(rig.splice.counters.closed, 1);
    });
}

#[test]
fn splice_client_half_close_lets_the_server_answer() {
    half_close(true);
}

#[test]
fn splice_server_half_close_lets_the_client_send() {
    half_close(false);
}

#[test]
fn splice_refused_connect_resets_the_client() {
    in_private_netns(|| {
        let mut rig = Rig::new(16);
        let (front, front_addr) = listener();
        let closed = listener().1;
        let mut client = TcpStream::connect(front_addr).unwrap();
        let start = Instant::now();
        // Refused at once or on the first event, either way.
        let _ = rig.splice_next(&front, closed);
        rig.run_until_closed();
        let kind = read_error(&mut client);
        assert_eq!(kind, io::ErrorKind::ConnectionReset);
        assert!(start.elapsed() < Duration::from_secs(1));
        assert_eq!(rig.splice.counters.connect_failed, 1);
    });
}

/// A reset from one peer reaches the other as a reset.
fn reset_propagates(client_resets: bool) {
    in_private_netns(|| {
        let mut rig = Rig::new(16);
        let ((front, front_addr), (back, back_addr)) = (listener(), listener());
        thread::scope(|s| {
            let peers = s.spawn(|| {
                let mut client = TcpStream::connect(front_addr).unwrap();
                let mut server = back.accept().unwrap().0;
                client.write_all(b"hi").unwrap();
                let mut buf = [0u8; 2];
                server.read_exact(&mut buf).unwrap();
                server.write_all(b"ok").unwrap();
                client.read_exact(&mut buf).unwrap();
                let (resetting, mut other) = match client_resets {
                    true => (client, server),
                    false => (server, client),
                };
                reset(resetting);
                read_error(&mut other)
            });
            rig.splice_next(&front, back_addr).unwrap();
            rig.run_until_closed();
            assert_eq!(peers.join().unwrap(), io::ErrorKind::ConnectionReset);
        });
        assert_eq!(rig.splice.counters.reset, 1);
    });
}

#[test]
fn splice_client_reset_reaches_the_server() {
    reset_propagates(true);
}

#[test]
fn splice_server_reset_reaches_the_client() {
    reset_propagates(false);
}

#[test]
fn splice_connect_timeout_resets_the_client() {
    in_private_netns(|| {
        let mut rig = Rig::new(16);
        let ((front, front_addr), (_back, back_addr)) = (listener(), listener());
        let mut client = TcpStream::connect(front_addr).unwrap();
        // No event handled: as far as the flow knows, still connecting.
        rig.splice_next(&front, back_addr).unwrap();
        let now = Instant::now();
        rig.splice
            .on_tick(&mut rig.flows, &rig.events, now + CONNECT_TIMEOUT / 2);
        assert_eq!(rig.flows.len(), 1);
        rig.splice
            .on_tick(&mut rig.flows, &rig.events, now + CONNECT_TIMEOUT);
        assert!(rig.flows.is_empty());
        assert_eq!(read_error(&mut client), io::ErrorKind::ConnectionReset);
        assert_eq!(rig.splice.counters.connect_timeouts, 1);
        assert_eq!(rig.run_for(Duration::from_millis(20)), 0, "nothing left");
    });
}

#[test]
fn splice_full_table_resets_the_client() {
    in_private_netns(|| {
        let mut rig = Rig::new(1);
        let ((front, front_addr), (_back, back_addr)) = (listener(), listener());
        let _first = TcpStream::connect(front_addr).unwrap();
        rig.splice_next(&front, back_addr).unwrap();
        let mut second = TcpStream::connect(front_addr).unwrap();
        let refused = rig.splice_next(&front, back_addr);
        assert!(matches!(refused, Err(OpenError::Table(InsertError::Full))));
        assert_eq!(read_error(&mut second), io::ErrorKind::ConnectionReset);
        assert_eq!(rig.splice.counters.refused, 1);
    });
}

/// A server that does not read: the pipe toward it fills, the client's
/// socket stops being read (EPOLLIN off) and the loop goes quiet; once
/// the server reads, everything arrives intact.
#[test]
fn splice_backpressure_stops_reading_and_resumes() {
    in_private_netns(|| {
        let mut rig = Rig::new(16);
        let ((front, front_addr), (back, back_addr)) = (listener(), listener());
        let up = pattern(4, 64 * MIB);
        thread::scope(|s| {
            let client = s.spawn(|| exchange(TcpStream::connect(front_addr).unwrap(), &up));
            let id = rig.splice_next(&front, back_addr).unwrap();
            let server = back.accept().unwrap().0;
            rig.run_for(Duration::from_millis(300));
            let handled = rig.run_for(Duration::from_millis(100));
            assert_eq!(handled, 0, "a blocked connection wakes nobody");
            let conn = rig.conn(id);
            assert!(conn.dirs[0].queued > 0, "the pipe holds data");
            let (accepted, target) = (conn.interest[0], conn.interest[1]);
            assert!(!accepted.readable && !accepted.writable, "{accepted:?}");
            assert!(target.readable && target.writable, "{target:?}");
            let server = s.spawn(|| exchange(server, b""));
            rig.run_until_closed();
            assert_same(&server.join().unwrap(), &up, "to the server");
            assert!(client.join().unwrap().is_empty());
        });
    });
}

/// Open descriptors of this process.
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Runs the calling test (`name`, in this module) again in a process
/// of its own, where no other test opens descriptors meanwhile; `true`
/// in that process, `false` (after checking it passed) in this one.
fn alone_in_a_process(name: &str) -> bool {
    const CHILD: &str = "PASST_RS_SPLICE_TEST_CHILD";
    if std::env::var_os(CHILD).is_some() {
        return true;
    }
    let module = module_path!().split_once("::").unwrap().1;
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([&format!("{module}::{name}"), "--exact", "--test-threads=1"])
        .env(CHILD, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("1 passed"),
        "the test did not run: {stdout}"
    );
    false
}

#[test]
fn splice_leaves_no_descriptor_behind() {
    if !alone_in_a_process("splice_leaves_no_descriptor_behind") {
        return;
    }
    in_private_netns(|| {
        let before = open_fds();
        let ((front, front_addr), (back, back_addr)) = (listener(), listener());
        let mut rig = Rig::new(16);
        // In order, refused, reset: every way a connection ends.
        thread::scope(|s| {
            let peers = s.spawn(|| {
                let client = TcpStream::connect(front_addr).unwrap();
                let server = back.accept().unwrap().0;
                let echo = s.spawn(|| exchange(server, b"back"));
                assert_eq!(exchange(client, b"forth"), b"back");
                assert_eq!(echo.join().unwrap(), b"forth");
            });
            rig.splice_next(&front, back_addr).unwrap();
            rig.run_until_closed();
            peers.join().unwrap();
        });
        let _refused = TcpStream::connect(front_addr).unwrap();
        let _ = rig.splice_next(&front, listener().1);
        rig.run_until_closed();
        let client = TcpStream::connect(front_addr).unwrap();
        rig.splice_next(&front, back_addr).unwrap();
        let server = back.accept().unwrap().0;
        rig.run_for(Duration::from_millis(20));
        reset(client);
        rig.run_until_closed();
        drop((server, _refused, front, back));
        assert!(rig.splice.spare.len() <= SPARE_PIPES);
        drop(rig);
        assert_eq!(open_fds(), before);
    });
}

#[test]
fn splice_sides_follow_the_namespace_of_each_socket() {
    let peer: SocketAddr = "127.0.0.1:40000".parse().unwrap();
    let local: SocketAddr = "127.0.0.1:8080".parse().unwrap();
    let dst: SocketAddr = "10.0.0.2:80".parse().unwrap();
    // -t: accepted on the host, target in the namespace.
    let origin = Origin {
        pif: Pif::Host,
        peer,
        local,
    };
    let (guest, host) = flow_sides(&origin, dst);
    assert_eq!(
        (guest.pif, guest.end_addr, guest.end_port),
        (Pif::Splice, dst.ip(), 80)
    );
    assert_eq!(
        (host.pif, host.end_port, host.our_port),
        (Pif::Host, 40000, 8080)
    );
    assert_eq!(table_side(Pif::Host, SpliceSide::Target), Side::Guest);
    // -T: accepted in the namespace, target on the host.
    let origin = Origin {
        pif: Pif::Splice,
        ..origin
    };
    let (guest, host) = flow_sides(&origin, dst);
    assert_eq!((guest.pif, guest.end_port), (Pif::Splice, 40000));
    assert_eq!((host.pif, host.end_addr), (Pif::Host, dst.ip()));
    assert_eq!(table_side(Pif::Splice, SpliceSide::Target), Side::Host);
}

#[test]
fn splice_side_comes_from_the_token_kind() {
    for side in SpliceSide::BOTH {
        assert_eq!(SpliceSide::from_token(side.token_kind()), Some(side));
        assert_eq!(side.other().other(), side);
    }
    assert_eq!(SpliceSide::from_token(TokenKind::Tcp), None);
}
