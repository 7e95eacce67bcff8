//! TCP translation end to end: the guest's connections become host sockets
//! and back, with real kernels on both ends (DESIGN.md §5).
//!
//! What is proven, for IPv4 and IPv6:
//! - bulk data arrives intact (SHA-256 of a random file) guest -> remote,
//!   remote -> guest, through `-t` port forwards (also remapped), and
//!   guest -> gateway -> the host's loopback (`--map-host-loopback`
//!   default);
//! - clients in the host namespace reach the guest through `-t` on the
//!   loopback and on the host's address;
//! - downloads a server writes in bursts with pauses arrive whole;
//! - half-closed connections keep carrying data the other way, 200 at
//!   once; resets travel both ways; a closed port is refused at once;
//! - pasta's file descriptors return to their count once connections are
//!   gone, and a full flow table refuses new connections quickly while the
//!   open ones keep working (`PASST_RS_TEST_MAX_FLOWS`).
//!
//! The programs on both ends are one Python helper, and the scenarios are
//! shared with passt's tests (tests/passt_tcp.rs): see `common::tcp` for
//! both and for the addresses as the guest sees them. Here the guest is
//! pasta's own namespace: each guest program is the command of a new
//! `pasta --config-net` (`common::pasta::PastaGuest`). The bulk size is 256 MiB with pasta started by an
//! ordinary user (the normal case) and 32 MiB with pasta started by root,
//! to keep the file's run time down.

mod common;

use common::json::Json;
use common::pasta::PastaGuest;
use common::tcp::*;
use common::*;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::Duration;

family_and_caller_tests! {
    tcp_guest_to_remote_upload_and_download_arrive_intact => guest_to_remote;
    tcp_remote_to_guest_through_port_forwards_arrives_intact => remote_to_guest_forwarded;
    tcp_guest_to_gateway_reaches_the_host_loopback_intact => guest_to_host_loopback;
    tcp_half_closed_connections_keep_carrying_data_200_at_once => half_close;
    tcp_resets_travel_both_ways => resets;
}

family_and_caller_tests! {
    tcp_bursty_downloads_arrive_whole => bursty_download {
        v4_as_user: (User, V4),
        v6_as_user: (User, V6),
    };
}

root_and_user_tests! {
    tcp_host_reaches_guest_through_port_forward_on_loopback_and_host_address => host_to_guest_forwarded;
    tcp_closed_port_is_refused_within_a_second => refused;
}

// ---------------------------------------------------------------------------
// The scenarios (common::tcp) with pasta's guest
// ---------------------------------------------------------------------------

/// Runs `scenario` in a new rig, with pasta's guest started by `who` with
/// `opts`.
fn with_pasta(who: As, opts: &[&str], scenario: impl FnOnce(&Tcp, &dyn Guest)) {
    let rig = Rig::new();
    let t = Tcp::new(&rig);
    scenario(&t, &PastaGuest { who, opts });
}

fn guest_to_remote(who: As, fam: Fam) {
    with_pasta(who, &[], |t, g| {
        common::tcp::guest_to_remote(t, g, fam, pasta_bulk_size(who));
    });
}

fn remote_to_guest_forwarded(who: As, fam: Fam) {
    let opts = ["-t", "5001", "-t", "5002", "-t", "6003:5003"];
    with_pasta(who, &opts, |t, g| {
        common::tcp::remote_to_guest_forwarded(t, g, fam, pasta_bulk_size(who));
    });
}

fn guest_to_host_loopback(who: As, fam: Fam) {
    with_pasta(who, &[], |t, g| {
        common::tcp::guest_to_host_loopback(t, g, fam, pasta_bulk_size(who));
    });
}

/// 16 MiB, four times.
fn bursty_download(who: As, fam: Fam) {
    with_pasta(who, &[], |t, g| {
        common::tcp::bursty_download(t, g, fam, 16 << 20);
    });
}

fn host_to_guest_forwarded(who: As) {
    with_pasta(who, &["-t", "5001"], common::tcp::host_to_guest_forwarded);
}

/// 200 connections at once.
fn half_close(who: As, fam: Fam) {
    with_pasta(who, &[], |t, g| common::tcp::half_close(t, g, fam, 200));
}

fn resets(who: As, fam: Fam) {
    with_pasta(who, &[], |t, g| common::tcp::resets(t, g, fam));
}

fn refused(who: As) {
    with_pasta(who, &[], common::tcp::refused);
}

// ---------------------------------------------------------------------------
// Resources
// ---------------------------------------------------------------------------

/// `pasta --config-net OPTS -- <helper client OPS>` as the ordinary user.
fn guest_cmd(t: &Tcp, opts: &[&str], ops: &[Obj]) -> Command {
    PastaGuest {
        who: As::User,
        opts,
    }
    .cmd(t.rig, &t.client_argv(ops))
}

/// pasta's open file descriptors: (count, "fd -> target" lines).
fn fds(pid: u32) -> (usize, Vec<String>) {
    let dir = format!("/proc/{pid}/fd");
    let mut lines: Vec<String> = fs::read_dir(&dir)
        .map(|d| {
            d.filter_map(|e| {
                let e = e.ok()?;
                let target = fs::read_link(e.path()).ok()?;
                Some(format!(
                    "{} -> {}",
                    e.file_name().to_string_lossy(),
                    target.display()
                ))
            })
            .collect()
        })
        .unwrap_or_default();
    lines.sort();
    (lines.len(), lines)
}

/// pasta's TCP sockets that are not listeners and not fresh unbound ones
/// (a pool opened in advance): the sockets of its connections, one line
/// each (`socket:[inode] st STATE local HEX remote HEX`, as
/// `/proc/PID/net/tcp{,6}` of pasta's own namespace shows them).
fn connection_sockets(pid: u32) -> Vec<String> {
    let mut table = std::collections::HashMap::new();
    for file in ["tcp", "tcp6"] {
        let text = fs::read_to_string(format!("/proc/{pid}/net/{file}")).unwrap_or_default();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // sl local rem st tx:rx tr:when retrnsmt uid timeout inode
            if f.len() > 9 && f[3] != "0A" && f[9] != "0" {
                let desc = format!("st {} local {} remote {}", f[3], f[1], f[2]);
                table.insert(format!("socket:[{}]", f[9]), desc);
            }
        }
    }
    let mut held: Vec<String> = fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.filter_map(|e| {
                let target = fs::read_link(e.ok()?.path()).ok()?;
                let target = target.to_string_lossy().into_owned();
                let desc = table.get(&target)?;
                Some(format!("{target} {desc}"))
            })
            .collect()
        })
        .unwrap_or_default();
    held.sort();
    held
}

/// Steps of the guest program in the file descriptor test (files it and the
/// test create in a shared directory).
struct Steps<'a> {
    rig: &'a Rig,
    dir: PathBuf,
}

impl Steps<'_> {
    fn touch(&self, name: &str) {
        fs::write(self.dir.join(name), "1\n").expect("write a step file");
    }

    /// Waits until the guest reached step `name`; panics if pasta ends or
    /// `timeout` passes first.
    fn wait(&self, pasta: &mut Child, name: &str, timeout: Duration) {
        let path = self.dir.join(name);
        let mut ended = false;
        wait_until(timeout, || {
            ended = matches!(pasta.try_wait(), Ok(Some(_)));
            ended || path.exists()
        });
        assert!(
            path.exists(),
            "the guest did not reach step `{name}` within {timeout:?} (pasta ended: {ended})\n{}",
            self.rig.log("pasta")
        );
    }
}

/// Counts pasta's file descriptors before a batch of connections (after one
/// connection of each kind, to warm up) and after they are all gone: 40 to the remote, 10 to the host's loopback through
/// the gateway, 10 refused ones, and 10 from the remote into the guest
/// through `-t`; half of the connections end with a FIN, half with a reset.
/// Within 10 s of the last close the count must be back at (or below: an
/// engine may keep a pool of sockets opened in advance and refill it later,
/// as upstream does) the count before, and pasta must hold no connected TCP
/// socket any more (pool sockets, unbound, are not counted as such; while
/// the batch is open there must be one per outbound connection).
#[test]
fn tcp_connections_leave_no_file_descriptors_behind() {
    const N_FAR: usize = 40;
    const N_GW: usize = 10;
    let rig = Rig::new();
    let t = Tcp::new(&rig);
    let mut remote = t.serve(
        &rig.remote,
        "server",
        &[
            listener("echo", FAR_IP4, 5001, None),
            listener("echo", FAR_IP6, 5001, None),
        ],
    );
    let mut host = t.serve(
        &rig.host,
        "hostserver",
        &[
            listener("echo", "127.0.0.1", 5002, None),
            listener("echo", "::1", 5002, None),
        ],
    );
    let steps = Steps {
        rig: &rig,
        dir: rig.tmp_path("steps"),
    };
    fs::create_dir(&steps.dir).expect("create the steps dir");
    fs::set_permissions(&steps.dir, fs::Permissions::from_mode(0o777)).expect("chmod steps");
    let batch = Obj(Vec::new())
        .s("op", "fdbatch")
        .s("dir", &steps.dir.to_string_lossy())
        .list("far", &[FAR_IP4, FAR_IP6])
        .n("far_port", 5001)
        .list("gw", &[REMOTE_IP4, REMOTE_IP6])
        .n("gw_port", 5002)
        .n("closed_port", 5009)
        .n("n_far", N_FAR)
        .n("n_gw", N_GW)
        .n("n_refused", 10)
        .n("listen_port", 5003);
    let pid_file = rig.tmp_path("pasta.pid");
    let pid_arg = pid_file.to_string_lossy().into_owned();
    let mut cmd = guest_cmd(&t, &["-t", "5003", "-P", &pid_arg], &[batch]);
    let mut pasta = rig.spawn_logged(&mut cmd, "pasta");
    let pid = match wait_ready(&mut pasta, &pid_file, SHORT) {
        Started::Ready(pid) => pid,
        how => panic!("pasta did not start: {how:?}\n{}", rig.log("pasta")),
    };
    steps.wait(&mut pasta, "ready", SHORT);
    // Warm-up of the inbound path too (the guest did the outbound one).
    let warm = [
        op("echo_batch", HOST_IP4, 5003).n("n", 1).n("retry", 5),
        op("echo_batch", HOST_IP6, 5003).n("n", 1),
    ];
    let (out, res) = t.client(&rig.remote, &warm, QUICK);
    let ctx = format!("{}\n{}", text(&out), rig.log("pasta"));
    op_ok(&res, 0, &ctx);
    op_ok(&res, 1, &ctx);
    // The count before: once it holds still for a moment.
    let (mut before, mut before_list) = fds(pid);
    wait_until(Duration::from_secs(3), || {
        std::thread::sleep(Duration::from_millis(300));
        let now = fds(pid);
        let still = now.0 == before;
        (before, before_list) = now;
        still
    });
    steps.touch("go");
    steps.wait(&mut pasta, "open", QUICK);
    let inbound = [
        op("echo_batch", HOST_IP4, 5003).n("n", 5),
        op("echo_batch", HOST_IP6, 5003).n("n", 5),
    ];
    let (out, res) = t.client(&rig.remote, &inbound, QUICK);
    let ctx = format!("{}\n{}", text(&out), rig.log("pasta"));
    op_ok(&res, 0, &ctx);
    op_ok(&res, 1, &ctx);
    let open = fds(pid).0;
    let conns = connection_sockets(pid).len();
    assert!(
        conns >= N_FAR + N_GW,
        "with {} outbound connections open pasta holds {conns} connected TCP sockets \
         (the check would see nothing)\n{}",
        N_FAR + N_GW,
        rig.log("pasta")
    );
    steps.touch("close");
    steps.wait(&mut pasta, "closed", QUICK);
    let (mut after, mut left) = (fds(pid), Vec::new());
    let back = wait_until(Duration::from_secs(10), || {
        (after, left) = (fds(pid), connection_sockets(pid));
        after.0 <= before && left.is_empty()
    });
    assert!(
        back,
        "pasta had {before} descriptors before the connections, {open} with them open \
         ({conns} connected sockets), and 10 s after they all closed {} descriptors \
         and {} connected sockets\n--- connected:\n{}\n--- before:\n{}\n--- after:\n{}",
        after.0,
        left.len(),
        left.join("\n"),
        before_list.join("\n"),
        after.1.join("\n")
    );
    steps.touch("exit");
    let status = wait_exit(&rig, &mut pasta, SHORT, "pasta", "after the last step");
    let log = fs::read(rig.tmp_path("pasta.out")).unwrap_or_default();
    let ctx = format!("{}\n{}", describe_status(status), rig.log("pasta"));
    let r = op_ok(&results(&log), 0, &ctx).clone();
    assert_eq!(
        (count(&r, "opened"), count(&r, "refused")),
        ((N_FAR + N_GW) as u64, 10),
        "connections opened, refused\n{ctx}"
    );
    assert_eq!(status.code(), Some(0), "{ctx}");
    stop(&mut remote);
    stop(&mut host);
}

/// With a flow table of 8 (`PASST_RS_TEST_MAX_FLOWS=8`, nothing else using
/// flows in this test) the guest opens connections to the remote,
/// alternating IPv4 and IPv6, until one fails: exactly 8 succeed, the 9th
/// is refused (or reset) within [`REFUSED_WITHIN`], the 8 still carry data
/// afterwards, and once one of them is closed a new one gets through within
/// 10 s.
#[test]
fn tcp_flow_table_limit_refuses_the_next_connection_and_keeps_the_others() {
    const MAX: u64 = 8;
    let rig = Rig::new();
    let t = Tcp::new(&rig);
    let mut server = t.serve(
        &rig.remote,
        "server",
        &[
            listener("echo", FAR_IP4, 5001, None),
            listener("echo", FAR_IP6, 5001, None),
        ],
    );
    let probe = Obj(Vec::new())
        .s("op", "flowlimit")
        .list("hosts", &[FAR_IP4, FAR_IP6])
        .n("port", 5001)
        .n("max", 2 * MAX + 4)
        .n("reuse_within", 10);
    let mut cmd = guest_cmd(&t, &[], &[probe]);
    cmd.env("PASST_RS_TEST_MAX_FLOWS", MAX.to_string());
    let (out, res) = t.run(&mut cmd, QUICK);
    stop(&mut server);
    let ctx = format!("{}\n{}", text(&out), rig.log("server"));
    let r = op_ok(&res, 0, &ctx);
    let fail = r.get("fail").cloned().unwrap_or(Json::Null);
    let (err, secs) = (fail.str_of("err"), num(&fail, "secs"));
    let then = match fail {
        Json::Null => "and none failed".to_string(),
        _ => format!("then one failed: {err} after {secs:.2} s"),
    };
    assert_eq!(
        count(r, "opened"),
        MAX,
        "connections that got through with a table of {MAX}, {then}\n{ctx}"
    );
    assert!(
        matches!(err, "ECONNREFUSED" | "ECONNRESET") && secs < REFUSED_WITHIN,
        "connection {} with the table full: {err} after {secs:.2} s, want ECONNREFUSED or \
         ECONNRESET within {REFUSED_WITHIN} s\n{ctx}",
        MAX + 1
    );
    let after = strings(r, "after_errors");
    assert!(
        after.is_empty(),
        "open connections broke once the table was full: {after:?}\n{ctx}"
    );
    let reuse = r.get("reuse").cloned().unwrap_or(Json::Null);
    assert!(
        reuse.get("secs").is_some(),
        "no new connection within 10 s after one of the {MAX} closed (last: {})\n{ctx}",
        reuse.str_of("err")
    );
    assert_eq!(out.status.code(), Some(0), "{ctx}");
}
