//! TCP behaviour applications take for granted from any network path, and
//! that a translator between two kernels (DESIGN.md §1) can easily break
//! without any transfer test noticing: keepalive probes answered, a
//! half-closed connection left open for as long as the peer likes, a
//! rebooted guest reconnecting from the same port at once, and memory
//! that does not grow with stalled connections.
//!
//! Guest: pasta's own namespace, pasta started by the ordinary user (the
//! normal case: podman, rootlesskit), each guest program the command of a
//! new `pasta --config-net` (`common::pasta::PastaGuest`); the programs on
//! both ends are the TCP helper (`common::tcp`). Each test runs for IPv4
//! and IPv6.
//!
//! Run times: the keepalive test idles 10 s; the half-close test waits
//! **70 s** on purpose (longer than a 60 s timer a translator might put on
//! half-closed connections; it runs in parallel with the others, nothing
//! serializes it); the 1,000-connection test takes 10-20 s.

mod common;

use common::pasta::PastaGuest;
use common::tcp::*;
use common::*;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

family_tests! {
    tcp_keepalive_probes_keep_an_idle_connection_alive => keepalive;
    tcp_half_closed_connection_gets_a_late_answer => late_answer;
    tcp_guest_reusing_a_forgotten_four_tuple_connects_within_a_second => reuse_tuple;
    tcp_thousand_stalled_connections_keep_memory_bounded => stalled_connections;
}

/// pasta's guest, started by the ordinary user with `opts`.
fn user_guest<'o>(opts: &'o [&'o str]) -> PastaGuest<'o> {
    PastaGuest {
        who: As::User,
        opts,
    }
}

// ---------------------------------------------------------------------------
// Keepalive
// ---------------------------------------------------------------------------

/// How long the keepalive test's connection stays idle, in seconds.
const KEEPALIVE_IDLE: u64 = 10;

/// Proves: a guest connection with TCP keepalive on (SO_KEEPALIVE, the
/// first probe after 1 s idle, then one a second, given up after 3
/// unanswered) survives 10 s of silence and then carries data both ways;
/// the guest really probed (its `TcpExt: TCPKeepAlive` counter grew by at
/// least 5 meanwhile).
///
/// Why users need it: ssh (`ServerAliveInterval`, `TCPKeepAlive`),
/// database connection pools, message brokers and HTTP/2 clients turn
/// keepalive on so that an idle connection stays open and a dead peer is
/// noticed. A probe is a segment with the sequence number one below the
/// next byte the peer expects and no payload, which the daemon must
/// answer with an ACK like any old duplicate (RFC 9293 §3.8.4); if it
/// stays silent the guest's kernel gives up after the last probe and
/// resets the connection, and every idle session dies after a few
/// keepalive intervals.
fn keepalive(fam: Fam) {
    let rig = Rig::new();
    let t = Tcp::new(&rig);
    let far = fam.far();
    // The server's reads may stay silent for longer than the idle time.
    let mut server = t.serve(
        &rig.remote,
        "server",
        &[listener("echo", far, 5001, Some(1)).n("idle", 3 * KEEPALIVE_IDLE)],
    );
    let ops = [op("keepalive", far, 5001).n("idle", KEEPALIVE_IDLE)];
    let (out, res) = user_guest(&[]).client(&t, &ops, QUICK);
    let ctx = format!("{}\n{}", text(&out), rig.log("server"));
    let r = op_ok(&res, 0, &ctx);
    let probes = count(r, "probes");
    eprintln!("{fam:?}: {probes} keepalive probes in {KEEPALIVE_IDLE} s idle");
    assert!(
        probes >= 5,
        "the guest sent {probes} keepalive probes in {KEEPALIVE_IDLE} s idle, want at least 5 \
         (else this test does not test keepalive)\n{ctx}"
    );
    assert_eq!(out.status.code(), Some(0), "{ctx}");
    let (ctx, srv) = t.finish(&mut server, "server", &ctx);
    served(&srv, 5001, 1, &ctx);
}

// ---------------------------------------------------------------------------
// Half-closed connections
// ---------------------------------------------------------------------------

/// SLOW: how long the server waits after the client's FIN before it
/// answers, in seconds (beyond a 60 s timer on half-closed connections).
const LATE_ANSWER_DELAY: u64 = 70;
/// Request size; the answer is the request reversed, [`LATE_ANSWER_REPEAT`]
/// times.
const LATE_REQUEST: u64 = 64 << 10;
const LATE_ANSWER_REPEAT: u64 = 16;
/// Bound for the clients' runs: the delay, plus time for everything else.
const LATE_RUN: Duration = Duration::from_secs(LATE_ANSWER_DELAY + 60);

/// Proves (SLOW: 70 s): a half-closed connection stays open as long as
/// the side still sending likes. Both ways at once:
/// - outbound: a guest client sends a 64 KiB request and shuts down
///   writing; the remote server reads to EOF, waits 70 s, then answers
///   with 1 MiB and closes; the guest receives all of it;
/// - inbound, through `-t 5003`: a remote client does the same to a
///   server in the guest, which answers after 70 s.
///
/// Why users need it: "send the request, FIN, read the answer" is how
/// rsh/rsync-style tools, `nc -N`/`socat` pipes, many RPC and backup
/// protocols and batch jobs mark the end of their input; the answer can
/// come minutes later (a long query, a compression, a remote build).
/// TCP puts no time limit on the half-closed state: a translator that
/// resets such a connection after a minute loses the answer of every
/// slow job.
fn late_answer(fam: Fam) {
    let rig = Rig::new();
    let t = Tcp::new(&rig);
    let far = fam.far();
    let server = |host: &str, port: u16| {
        listener("late_answer", host, port, Some(1))
            .n("size", LATE_REQUEST)
            .n("delay", LATE_ANSWER_DELAY)
            .n("repeat", LATE_ANSWER_REPEAT)
    };
    let client = |host: &str, port: u16| {
        op("late_answer", host, port)
            .n("size", LATE_REQUEST)
            .n("repeat", LATE_ANSWER_REPEAT)
            .n("wait", LATE_ANSWER_DELAY + 20)
    };
    let mut remote = t.serve(&rig.remote, "server", &[server(far, 5001)]);
    let fwd = ["-t", "5003"];
    let (mut in_guest, name) = user_guest(&fwd).serve(&t, &[server("::", 5003)]);
    let outbound = [client(far, 5001)];
    let inbound = [client(fam.host(), 5003).n("retry", 5)];
    let ((out, res), (in_out, in_res)) = std::thread::scope(|s| {
        let inbound = s.spawn(|| t.client(&rig.remote, &inbound, LATE_RUN));
        let outbound = user_guest(&[]).client(&t, &outbound, LATE_RUN);
        (
            outbound,
            inbound.join().expect("the inbound client's thread"),
        )
    });
    let ctx = format!(
        "--- outbound client (in the guest):\n{}\n--- inbound client (in the remote):\n{}\n{}\n{}",
        text(&out),
        text(&in_out),
        rig.log("server"),
        rig.log(&name)
    );
    for (what, res) in [
        ("outbound (guest client, remote server)", &res),
        ("inbound (remote client, guest server through -t)", &in_res),
    ] {
        let r = op_ok(res, 0, &format!("{what}\n{ctx}"));
        eprintln!("{fam:?} {what}: answer after {:.1} s", num(r, "secs"));
        assert_eq!(
            count(r, "len"),
            LATE_REQUEST * LATE_ANSWER_REPEAT,
            "{what}: the answer {LATE_ANSWER_DELAY} s after the client's FIN\n{ctx}"
        );
    }
    assert_eq!(out.status.code(), Some(0), "{ctx}");
    assert_eq!(in_out.status.code(), Some(0), "{ctx}");
    let (ctx, srv) = t.finish(&mut remote, "server", &ctx);
    served(&srv, 5001, 1, &ctx);
    let (ctx, srv) = t.finish(&mut in_guest, &name, &ctx);
    served(&srv, 5003, 1, &ctx);
}

// ---------------------------------------------------------------------------
// A rebooted guest
// ---------------------------------------------------------------------------

/// The guest's fixed source port in the reuse test.
const REUSED_PORT: u16 = 40_123;
/// How long the new connection may take, in seconds.
const REUSE_WITHIN: f64 = 1.0;

/// Proves: after the guest lost a connection without telling anyone, a new
/// connection from the same source port to the same destination (the same
/// four-tuple, which the daemon still has in its table) is established
/// within a second and carries data both ways.
///
/// How the guest forgets: the guest program connects from port 40123 to
/// the remote, exchanges data, then turns TCP_REPAIR on for the socket and
/// closes it. In repair mode Linux drops the connection silently, with
/// neither FIN nor RST (the way CRIU takes a connection away), so the
/// guest's kernel no longer knows the connection while the daemon still
/// holds it, as after a guest reboot, a VM restored from a snapshot or a
/// container restarted with its network kept. No firewall rule is needed.
/// Then it connects again from port 40123 and times `connect()`.
///
/// Why users need it: clients that bind fixed source ports (NFS and other
/// services on reserved ports below 1024, rsh, some VPN and
/// game clients, anything that reconnects with `SO_REUSEADDR` and a
/// chosen port) reconnect right after a reboot with the same four-tuple.
/// The daemon must take a SYN for a connection the guest has obviously
/// forgotten as a new connection (or at least answer it so that the
/// guest's reset clears the old one) instead of dropping it: a dropped SYN
/// costs the guest its 1 s, 3 s, 7 s... retransmission timeouts, or the
/// connection fails outright.
fn reuse_tuple(fam: Fam) {
    let rig = Rig::new();
    let t = Tcp::new(&rig);
    let far = fam.far();
    // For ever: the forgotten connection's handler ends on its own (or
    // with the rig); only the new connection is checked, by the guest.
    let mut server = t.serve(&rig.remote, "server", &[listener("echo", far, 5001, None)]);
    let ops = [op("reuse_tuple", far, 5001)
        .n("sport", REUSED_PORT)
        .n("within", 5)];
    let (out, res) = user_guest(&[]).client(&t, &ops, QUICK);
    stop(&mut server);
    let ctx = format!("{}\n{}", text(&out), rig.log("server"));
    let r = op_ok(&res, 0, &ctx);
    let (err, secs) = (r.str_of("err"), num(r, "secs"));
    eprintln!("{fam:?}: reusing the four-tuple: {err} after {secs:.3} s");
    assert!(
        err == "connected" && secs < REUSE_WITHIN,
        "connecting again from port {REUSED_PORT} after the guest forgot its connection: \
         {err} after {secs:.2} s, want connected within {REUSE_WITHIN} s\n{ctx}"
    );
    assert_eq!(out.status.code(), Some(0), "{ctx}");
}

// ---------------------------------------------------------------------------
// Memory with stalled connections
// ---------------------------------------------------------------------------

/// Connections in the memory test.
const STALLED: usize = 1000;
/// Bytes the guest tries to write to each.
const STALLED_WRITE: u64 = 1 << 20;
/// The bound on pasta's resident memory, now and at its peak.
const RSS_LIMIT_KIB: u64 = 64 << 10;

/// Proves: 1,000 connections whose receivers stopped reading, each with
/// as much data as the guest manages to write (up to 1 MiB tried on each),
/// keep pasta's resident memory (VmRSS, and its peak VmHWM, from
/// `/proc/PID/status`) below 64 MiB.
///
/// Why users need it: a stalled peer is normal (a slow client, a full
/// disk, a paused consumer, a crawler holding many connections), and the
/// kernel already queues for every socket within limits the administrator
/// set. If the daemon keeps a user-space buffer per connection on top, its
/// memory grows with the number of stalled connections, one container can
/// push its network daemon into the OOM killer (taking every other
/// connection of that container with it), and memory limits on the
/// container's cgroup are hit by the daemon rather than by the
/// application.
fn stalled_connections(fam: Fam) {
    let rig = Rig::new();
    let t = Tcp::new(&rig);
    let far = fam.far();
    let mut server = t.serve(&rig.remote, "server", &[listener("hold", far, 5001, None)]);
    let dir = rig.tmp_path("steps");
    fs::create_dir(&dir).expect("create the steps dir");
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).expect("chmod steps");
    let stall = op("stall_many", far, 5001)
        .n("n", STALLED)
        .n("per_conn", STALLED_WRITE)
        .s("dir", &dir.to_string_lossy());
    let pid_file = rig.tmp_path("pasta.pid");
    let pid_arg = pid_file.to_string_lossy().into_owned();
    let opts = ["-P", pid_arg.as_str()];
    let guest = user_guest(&opts);
    let mut cmd = guest.cmd(&rig, &t.client_argv(&[stall]));
    let mut pasta = rig.spawn_logged(&mut cmd, "pasta");
    let pid = match wait_ready(&mut pasta, &pid_file, SHORT) {
        Started::Ready(pid) => pid,
        how => panic!("pasta did not start: {how:?}\n{}", rig.log("pasta")),
    };
    let stalled = dir.join("stalled");
    let mut ended = false;
    wait_until(Duration::from_secs(90), || {
        ended = matches!(pasta.try_wait(), Ok(Some(_)));
        ended || stalled.exists()
    });
    assert!(
        stalled.exists(),
        "the guest did not get its {STALLED} connections stalled within 90 s \
         (pasta ended: {ended})\n{}",
        rig.log("pasta")
    );
    // Let pasta take in what is still in flight.
    std::thread::sleep(Duration::from_secs(1));
    let (rss, hwm) = (status_kib(pid, "VmRSS"), status_kib(pid, "VmHWM"));
    fs::write(dir.join("done"), "1\n").expect("write the done step");
    let status = wait_exit(&rig, &mut pasta, SHORT, "pasta", "after the last step");
    stop(&mut server);
    let log = fs::read(rig.tmp_path("pasta.out")).unwrap_or_default();
    let ctx = format!("{}\n{}", describe_status(status), rig.log("pasta"));
    let res = results(&log);
    let r = op_ok(&res, 0, &ctx);
    let (opened, least) = (count(r, "opened"), count(r, "least"));
    let written = count(r, "written");
    eprintln!(
        "{fam:?}: {opened} stalled connections, {} MiB written ({}..{} KiB each): \
         pasta VmRSS {rss} KiB, VmHWM {hwm} KiB",
        written >> 20,
        least >> 10,
        count(r, "most") >> 10
    );
    assert!(
        opened == STALLED as u64 && least > 0,
        "the guest opened {opened} of {STALLED} connections and wrote at least {least} \
         bytes to each: the test did not stall them all\n{ctx}"
    );
    assert!(
        rss < RSS_LIMIT_KIB && hwm < RSS_LIMIT_KIB,
        "with {STALLED} stalled connections ({} MiB written by the guest, {}..{} KiB each) \
         pasta holds VmRSS {} MiB, peak VmHWM {} MiB; want both below {} MiB\n{ctx}",
        written >> 20,
        least >> 10,
        count(r, "most") >> 10,
        rss >> 10,
        hwm >> 10,
        RSS_LIMIT_KIB >> 10
    );
    assert_eq!(status.code(), Some(0), "{ctx}");
}

/// A `kB` line of `/proc/PID/status` (VmRSS, VmHWM), in KiB.
fn status_kib(pid: u32, key: &str) -> u64 {
    let status = fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("status"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/status: {e}"));
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in /proc/{pid}/status:\n{status}"))
}
