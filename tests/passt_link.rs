//! passt's link to its guest (REFERENCE.md §1.6): a UNIX stream socket
//! (`-s PATH`) carrying qemu's `-netdev stream` framing, each Ethernet frame
//! preceded by its length as a 4-byte big-endian integer. One guest at a
//! time (a second connection is closed at once, the first keeps working); a
//! length outside 14..=65535 drops the connection; without `-1` passt keeps
//! listening after a guest leaves, with `-1` (or `-F FD`, an inherited
//! connected socket) it exits 0. A stale socket file is reused, a live one
//! refused. `-p` records the guest's frames; `-d` logs the dropped ones.
//!
//! passt runs in the rig's host namespace (as root or as the ordinary user),
//! always with a private `-s` path in the rig's temp dir: the default
//! `/tmp/passt_N.socket` is shared with the rest of the machine. The test
//! process plays the guest (qemu) over that path.

mod common;

use common::passt::*;
use common::*;
use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// The MAC address of the test's guest: its frames are told apart in the
/// capture from what passt itself sends.
const GUEST_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x10];
/// The source of the frames [`connect_guest`] sends to find out whether
/// passt took a connection.
const HELLO_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x11];

/// A broadcast ARP request from the guest, for 192.0.2.`n`.
fn guest_frame(n: u8) -> Vec<u8> {
    arp_request(GUEST_MAC, [192, 0, 2, 1], [192, 0, 2, n])
}

/// Waits until the capture `pcap` holds `want.len()` frames from
/// [`GUEST_MAC`], then checks that they are exactly `want`, in order.
fn assert_captured_in(pcap: &Path, want: &[Vec<u8>], ctx: &str) {
    wait_until(SHORT, || captured_from(pcap, GUEST_MAC).len() >= want.len());
    let got = captured_from(pcap, GUEST_MAC);
    assert!(
        got == want,
        "capture holds {} guest frames, want {}: {got:02x?}\n{ctx}",
        got.len(),
        want.len(),
    );
}

/// [`assert_captured_in`] for `passt`'s capture.
fn assert_captured(rig: &Rig, passt: &Passt, want: &[Vec<u8>]) {
    assert_captured_in(&passt.pcap, want, &rig.log(&passt.log));
}

/// Whether passt has closed the connection, judged within `within`: EOF,
/// or a reset (a close with data unread). What passt sends meanwhile (its
/// replies) is skipped.
fn closed_by_peer(s: &mut UnixStream, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    let mut buf = [0u8; 65536];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        s.set_read_timeout(Some(left)).expect("set_read_timeout");
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return false;
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return true,
            Err(e) => panic!("reading from passt: {e}"),
        }
    }
}

/// Connects a guest, as qemu does, and returns the connection once passt
/// took it: a hello frame it sent is in the capture. passt closes a
/// connection made while the previous guest's is still attached (its close
/// not yet handled): then try again, a bounded number of times.
fn connect_guest(rig: &Rig, passt: &Passt) -> UnixStream {
    for n in 0..10u8 {
        let mut s = UnixStream::connect(&passt.sock).expect("connect to passt");
        let hello = arp_request(HELLO_MAC, [192, 0, 2, 1], [192, 0, 2, 100 + n]);
        s.write_all(&qemu_framed(&[&hello])).expect("send hello");
        let mut refused = false;
        wait_until(SHORT, || {
            refused = closed_by_peer(&mut s, Duration::from_millis(20));
            refused || captured_from(&passt.pcap, HELLO_MAC).contains(&hello)
        });
        if !refused {
            return s;
        }
    }
    panic!(
        "passt refused 10 connections in a row\n{}",
        rig.log(&passt.log)
    );
}

/// Sends `bytes` in pieces cut at `cuts`, pausing between them so that
/// passt reads each piece on its own.
fn send_in_pieces(s: &mut UnixStream, bytes: &[u8], cuts: &[usize]) {
    let mut from = 0;
    for &to in cuts.iter().chain([&bytes.len()]) {
        s.write_all(&bytes[from..to]).expect("send to passt");
        std::thread::sleep(Duration::from_millis(30));
        from = to;
    }
}

fn frames_are_recorded(who: As) {
    let rig = Rig::new();
    let passt = start_passt(&rig, who, "passt", &[]);
    let mut guest = UnixStream::connect(&passt.sock).expect("connect to passt");
    let frames: Vec<Vec<u8>> = (2..5).map(guest_frame).collect();
    let bytes = qemu_framed(&frames);
    let one = bytes.len() / 3;
    // Inside the first length; inside the first frame; inside the second
    // length; inside the third frame.
    let cuts = [2, 30, one + 2, 2 * one + 20];
    send_in_pieces(&mut guest, &bytes, &cuts);
    assert_captured(&rig, &passt, &frames);
    let mac = format!("{} >", mac_text(GUEST_MAC));
    let shown: Vec<String> = tcpdump_read(&passt.pcap)
        .into_iter()
        .filter(|l| l.contains(&mac))
        .collect();
    assert_eq!(shown.len(), 3, "tcpdump: {shown:#?}");
    for (line, n) in shown.iter().zip(2..5) {
        assert!(
            line.contains(&format!("Request who-has 192.0.2.{n} tell 192.0.2.1")),
            "tcpdump shows {line:?} for ARP request {n}"
        );
    }
}

fn second_client_is_refused(who: As) {
    let rig = Rig::new();
    let mut passt = start_passt(&rig, who, "passt", &[]);
    let mut first = UnixStream::connect(&passt.sock).expect("connect to passt");
    first.write_all(&qemu_framed(&[guest_frame(2)])).unwrap();
    assert_captured(&rig, &passt, &[guest_frame(2)]);
    let mut second = UnixStream::connect(&passt.sock).expect("second connect");
    assert!(
        closed_by_peer(&mut second, SHORT),
        "passt kept a second guest connection\n{}",
        rig.log(&passt.log)
    );
    // The first guest is still served.
    first.write_all(&qemu_framed(&[guest_frame(3)])).unwrap();
    assert_captured(&rig, &passt, &[guest_frame(2), guest_frame(3)]);
    assert!(
        !closed_by_peer(&mut first, Duration::from_millis(200)),
        "passt closed the first guest's connection\n{}",
        rig.log(&passt.log)
    );
    passt.assert_running(&rig);
}

fn one_off_exits_0_on_disconnect(who: As) {
    let rig = Rig::new();
    let mut passt = start_passt(&rig, who, "passt", &["-1"]);
    let mut guest = UnixStream::connect(&passt.sock).expect("connect to passt");
    guest.write_all(&qemu_framed(&[guest_frame(2)])).unwrap();
    assert_captured(&rig, &passt, &[guest_frame(2)]);
    passt.assert_running(&rig);
    drop(guest);
    let code = passt.exit_code(&rig);
    assert_eq!(code, Some(0), "{}", rig.log(&passt.log));
}

root_and_user_tests! {
    guest_frames_split_across_writes_are_recorded_in_the_pcap => frames_are_recorded;
    second_client_is_refused_while_the_first_keeps_working => second_client_is_refused;
    one_off_passt_exits_0_when_the_client_disconnects => one_off_exits_0_on_disconnect;
}

#[test]
fn bad_frame_length_drops_the_connection_and_one_off_passt_exits_0() {
    let rig = Rig::new();
    for (i, len) in [0u32, 13, 65536, 70000].into_iter().enumerate() {
        let tag = format!("passt{i}");
        let mut passt = start_passt(&rig, As::User, &tag, &["--one-off"]);
        let mut guest = UnixStream::connect(&passt.sock).expect("connect to passt");
        // A good frame first: it is taken; then the bad length ends it all.
        guest.write_all(&qemu_framed(&[guest_frame(2)])).unwrap();
        assert_captured(&rig, &passt, &[guest_frame(2)]);
        let mut bad = len.to_be_bytes().to_vec();
        bad.extend([0u8; 20]);
        guest.write_all(&bad).unwrap();
        assert!(
            closed_by_peer(&mut guest, SHORT),
            "length {len}: passt kept the connection\n{}",
            rig.log(&tag)
        );
        let code = passt.exit_code(&rig);
        assert_eq!(code, Some(0), "length {len}\n{}", rig.log(&tag));
    }
}

#[test]
fn without_one_off_a_new_client_connects_after_the_first_left() {
    let rig = Rig::new();
    let mut passt = start_passt(&rig, As::User, "passt", &[]);
    let mut first = UnixStream::connect(&passt.sock).expect("connect to passt");
    first.write_all(&qemu_framed(&[guest_frame(2)])).unwrap();
    assert_captured(&rig, &passt, &[guest_frame(2)]);
    drop(first);
    // A guest that leaves by closing its end...
    let mut second = connect_guest(&rig, &passt);
    second.write_all(&qemu_framed(&[guest_frame(3)])).unwrap();
    assert_captured(&rig, &passt, &[guest_frame(2), guest_frame(3)]);
    // ...or that passt drops for a bad length: the next one is served.
    second.write_all(&0u32.to_be_bytes()).unwrap();
    assert!(
        closed_by_peer(&mut second, SHORT),
        "passt kept a connection with a bad length\n{}",
        rig.log(&passt.log)
    );
    passt.assert_running(&rig);
    let mut third = connect_guest(&rig, &passt);
    third.write_all(&qemu_framed(&[guest_frame(4)])).unwrap();
    let all = [guest_frame(2), guest_frame(3), guest_frame(4)];
    assert_captured(&rig, &passt, &all);
    passt.assert_running(&rig);
}

fn fd_socketpair(who: As) {
    let rig = Rig::new();
    let pcap = rig.tmp_path("passt.pcap");
    let pid_file = rig.tmp_path("passt.pid");
    let (mut ours, theirs) = UnixStream::pair().expect("socketpair");
    // The other end becomes passt's FD 5, as qemu or libvirt would pass it.
    let passt = passt_bin().to_string_lossy().into_owned();
    let argv = [
        "sh",
        "-c",
        "exec \"$0\" \"$@\" 5<&0 </dev/null",
        &passt,
        "-f",
        "-F",
        "5",
        "-P",
        pid_file.to_str().unwrap(),
        "-p",
        pcap.to_str().unwrap(),
    ];
    let mut cmd = rig.host_cmd_as(who, &argv);
    cmd.stdin(Stdio::from(std::os::fd::OwnedFd::from(theirs)));
    let child = rig.spawn_logged(&mut cmd, "passt");
    let mut passt = Passt {
        child,
        sock: PathBuf::new(),
        pcap,
        log: "passt".into(),
    };
    match wait_ready(&mut passt.child, &pid_file, SHORT) {
        Started::Ready(_) => {}
        other => panic!("passt -F did not start: {other:?}\n{}", rig.log("passt")),
    }
    let frames: Vec<Vec<u8>> = (2..4).map(guest_frame).collect();
    ours.write_all(&qemu_framed(&frames)).unwrap();
    assert_captured(&rig, &passt, &frames);
    passt.assert_running(&rig);
    // -F implies --one-off: the guest goes, passt goes.
    drop(ours);
    let code = passt.exit_code(&rig);
    assert_eq!(code, Some(0), "{}", rig.log("passt"));
}

fn daemonized_passt(who: As) {
    let rig = Rig::new();
    let sock = rig.tmp_path("passt.socket");
    let pcap = rig.tmp_path("passt.pcap");
    let pid_file = rig.tmp_path("passt.pid");
    let args = [
        "-1",
        "-s",
        sock.to_str().unwrap(),
        "-P",
        pid_file.to_str().unwrap(),
        "-p",
        pcap.to_str().unwrap(),
    ];
    let (pid, _) = run_daemon(&rig, &mut passt_cmd(&rig, who, &args), &pid_file);
    // Bound before the parent exited: the first connect succeeds.
    let mut guest = UnixStream::connect(&sock)
        .unwrap_or_else(|e| panic!("socket not bound once passt returned: {e}"));
    guest.write_all(&qemu_framed(&[guest_frame(2)])).unwrap();
    assert_captured_in(&pcap, &[guest_frame(2)], "(a daemon: no output to show)");
    drop(guest);
    assert!(
        wait_pid_gone(pid, SHORT),
        "one-off passt daemon {pid} still running after its guest left"
    );
}

fn stale_socket_is_reused(who: As) {
    let rig = Rig::new();
    let sock = rig.tmp_path("stale.socket");
    // A socket file nobody listens on any more, as a killed passt leaves.
    drop(UnixListener::bind(&sock).expect("bind"));
    if who == As::User {
        std::os::unix::fs::chown(&sock, Some(USER_UID), Some(USER_GID)).expect("chown");
    }
    let passt = start_passt_at(&rig, who, "passt", &sock, &[]);
    let mut guest = UnixStream::connect(&sock).expect("connect to passt");
    guest.write_all(&qemu_framed(&[guest_frame(2)])).unwrap();
    assert_captured(&rig, &passt, &[guest_frame(2)]);
}

fn live_socket_is_refused(who: As) {
    let rig = Rig::new();
    let mut first = start_passt(&rig, who, "first", &[]);
    let sock = first.sock.to_str().unwrap().to_string();
    let pid_file = rig.tmp_path("second.pid");
    let args = ["-f", "-s", &sock, "-P", pid_file.to_str().unwrap()];
    let out = rig.run(&mut passt_cmd(&rig, who, &args), SHORT);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&sock), "message does not name {sock}: {err}");
    // The first passt still owns the path and serves a guest (its check of
    // the path looked like a guest connecting and leaving).
    let mut guest = connect_guest(&rig, &first);
    guest.write_all(&qemu_framed(&[guest_frame(2)])).unwrap();
    assert_captured(&rig, &first, &[guest_frame(2)]);
    first.assert_running(&rig);
}

root_and_user_tests! {
    fd_option_serves_an_inherited_socketpair_end_and_exits_0_when_it_closes => fd_socketpair;
    daemonized_passt_pid_file_names_the_daemon_and_socket_is_bound => daemonized_passt;
    stale_socket_file_at_the_path_is_reused => stale_socket_is_reused;
    socket_path_with_a_live_listener_is_refused_with_exit_1 => live_socket_is_refused;
}

#[test]
fn unhandled_guest_frames_are_logged_as_dropped_with_debug() {
    let rig = Rig::new();
    let passt = start_passt(&rig, As::User, "passt", &["-d"]);
    let mut guest = UnixStream::connect(&passt.sock).expect("connect to passt");
    let frame = eth_frame(BROADCAST, GUEST_MAC, EXPERIMENTAL_ETHERTYPE, &[0x5a; 46]);
    guest.write_all(&qemu_framed(&[&frame])).unwrap();
    assert_captured(&rig, &passt, &[frame]);
    let logged = wait_until(SHORT, || rig.log("passt").contains("Dropped"));
    assert!(logged, "no \"Dropped\" line\n{}", rig.log("passt"));
}

/// Reads one qemu-framed frame from `s` (bounded by the socket timeout).
fn read_framed(s: &mut UnixStream) -> Vec<u8> {
    s.set_read_timeout(Some(SHORT)).expect("timeout");
    let mut len = [0u8; 4];
    s.read_exact(&mut len).expect("frame length from passt");
    let mut frame = vec![0u8; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut frame).expect("frame from passt");
    frame
}

fn arp_is_answered_over_the_socket(who: As) {
    let rig = Rig::new();
    let passt = start_passt(&rig, who, "passt", &[]);
    let mut guest = UnixStream::connect(&passt.sock).expect("connect to passt");
    let gateway = [192, 0, 2, 2];
    guest
        .write_all(&qemu_framed(&[arp_request(
            GUEST_MAC,
            [192, 0, 2, 1],
            gateway,
        )]))
        .expect("send ARP request");
    let reply = read_framed(&mut guest);
    assert_eq!(reply.len(), 42, "{reply:02x?}");
    assert_eq!(reply[..6], GUEST_MAC, "to the requester");
    assert_eq!(reply[12..14], [0x08, 0x06], "ARP");
    assert_eq!(reply[20..22], [0, 2], "reply");
    assert_eq!(
        reply[22..28],
        [0x9a, 0x55, 0x9a, 0x55, 0x9a, 0x55],
        "our MAC"
    );
    assert_eq!(reply[28..32], gateway, "for the address asked");
}

root_and_user_tests! {
    guest_arp_request_is_answered_over_the_socket => arp_is_answered_over_the_socket;
}
