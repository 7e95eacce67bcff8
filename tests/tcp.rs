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
//! - half-closed connections keep carrying data the other way, 200 at
//!   once; resets travel both ways; a closed port is refused at once;
//! - pasta's file descriptors return to their count once connections are
//!   gone, and a full flow table refuses new connections quickly while the
//!   open ones keep working (`PASST_RS_TEST_MAX_FLOWS`).
//!
//! Addresses as the guest sees them: it shares the host's address
//! (192.0.2.1 / 2001:db8:1::1); the gateway (192.0.2.2 / 2001:db8:1::2)
//! stands for the host's loopback, so the remote namespace is reached on its
//! far addresses (198.51.100.2 / 2001:db8:2::2) behind the gateway.
//!
//! The programs on both ends are one Python helper (`tcp_helper.py`,
//! written to the rig's temp dir): servers that handle a given number of
//! connections and print one `RESULT <json>` line per listener, and clients
//! that run a list of operations and print one `RESULT` line each. Every
//! socket operation in the helper is bounded (10 s of silence, 5 s to
//! connect), so a stalled transfer fails with a message, and the test's own
//! waits are bounded on top of that. The bulk size is 256 MiB with pasta
//! started by an ordinary user (the normal case) and 32 MiB with pasta
//! started by root, to keep the file's run time down.

mod common;

use common::json::{self, Json};
use common::*;
use std::fmt::Display;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::Duration;

const HELPER: &str = include_str!("tcp_helper.py");

/// Bulk transfer size with pasta started by an ordinary user.
const BIG: u64 = 256 << 20;
/// Bulk transfer size with pasta started by root.
const MEDIUM: u64 = 32 << 20;
/// Size for the checks that are not about volume.
const SMALL: u64 = 1 << 20;
/// Bound for a run with bulk transfers (the helper fails any transfer that
/// stalls for 10 s long before this).
const BULK: Duration = Duration::from_secs(150);
/// Bound for a run without bulk transfers.
const QUICK: Duration = Duration::from_secs(60);
/// How long a refused connection may take, measured in the guest.
const REFUSED_WITHIN: f64 = 1.0;
/// How long a reset may take to reach the other end.
const RESET_WITHIN: f64 = 3.0;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fam {
    V4,
    V6,
}

impl Fam {
    /// The remote namespace's address behind the gateway.
    fn far(self) -> &'static str {
        match self {
            Fam::V4 => FAR_IP4,
            Fam::V6 => FAR_IP6,
        }
    }

    /// The host's address, which the guest shares.
    fn host(self) -> &'static str {
        match self {
            Fam::V4 => HOST_IP4,
            Fam::V6 => HOST_IP6,
        }
    }

    /// The gateway: in the guest, the host's loopback.
    fn gw(self) -> &'static str {
        match self {
            Fam::V4 => REMOTE_IP4,
            Fam::V6 => REMOTE_IP6,
        }
    }

    /// The host's loopback address.
    fn lo(self) -> &'static str {
        match self {
            Fam::V4 => "127.0.0.1",
            Fam::V6 => "::1",
        }
    }
}

/// The bulk transfer size for pasta started by `who`.
fn bulk_size(who: As) -> u64 {
    match who {
        As::User => BIG,
        As::Root => MEDIUM,
    }
}

// ---------------------------------------------------------------------------
// JSON for the helper's arguments
// ---------------------------------------------------------------------------

/// A JSON string literal.
fn q(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A JSON object built member by member.
#[derive(Clone, Debug)]
struct Obj(Vec<(&'static str, String)>);

impl Obj {
    /// A string member.
    fn s(mut self, key: &'static str, value: &str) -> Obj {
        self.0.push((key, q(value)));
        self
    }

    /// A number (or any JSON text) member.
    fn n(mut self, key: &'static str, value: impl Display) -> Obj {
        self.0.push((key, value.to_string()));
        self
    }

    /// An array of strings member.
    fn list(mut self, key: &'static str, values: &[&str]) -> Obj {
        let items: Vec<String> = values.iter().map(|v| q(v)).collect();
        self.0.push((key, format!("[{}]", items.join(","))));
        self
    }
}

impl Display for Obj {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let members: Vec<String> = self
            .0
            .iter()
            .map(|(k, v)| format!("{}:{v}", q(k)))
            .collect();
        write!(f, "{{{}}}", members.join(","))
    }
}

fn json_array(items: &[Obj]) -> String {
    let items: Vec<String> = items.iter().map(Obj::to_string).collect();
    format!("[{}]", items.join(","))
}

/// A server listener: `role` on `host:port` for `count` connections (for
/// ever if `None`; the rig ends such servers).
fn listener(role: &str, host: &str, port: u16, count: Option<usize>) -> Obj {
    let count = count.map_or_else(|| "null".to_string(), |c| c.to_string());
    Obj(Vec::new())
        .s("role", role)
        .s("host", host)
        .n("port", port)
        .n("count", count)
}

/// A client operation `op` towards `host:port`.
fn op(op: &str, host: &str, port: u16) -> Obj {
    Obj(Vec::new()).s("op", op).s("host", host).n("port", port)
}

// ---------------------------------------------------------------------------
// Reading the helper's results
// ---------------------------------------------------------------------------

/// The `RESULT` lines of a helper's output.
fn results(stdout: &[u8]) -> Vec<Json> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("RESULT "))
        .map(|l| json::parse(l).unwrap_or_else(|e| panic!("bad RESULT line ({e}): {l}")))
        .collect()
}

fn num(j: &Json, key: &str) -> f64 {
    match j.get(key) {
        Some(Json::Num(n)) => *n,
        _ => f64::NAN,
    }
}

fn count(j: &Json, key: &str) -> u64 {
    j.get(key).and_then(Json::as_u64).unwrap_or(u64::MAX)
}

/// The strings of an array member.
fn strings(j: &Json, key: &str) -> Vec<String> {
    j.get(key)
        .map(|a| {
            a.items()
                .iter()
                .filter_map(Json::as_str)
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

/// The result of client operation `i`, which must have succeeded.
fn op_ok<'r>(res: &'r [Json], i: usize, ctx: &str) -> &'r Json {
    let r = res
        .get(i)
        .unwrap_or_else(|| panic!("client reported no result for operation {i}\n{ctx}"));
    if let Some(err) = r.get("error") {
        panic!(
            "{} to {} failed: {}\n{ctx}",
            r.str_of("op"),
            r.str_of("to"),
            err.as_str().unwrap_or("?")
        );
    }
    r
}

/// The result of a server's listener on `port`, which must have served
/// `n` connections without an error.
fn served<'r>(res: &'r [Json], port: u16, n: u64, ctx: &str) -> &'r Json {
    let r = res
        .iter()
        .find(|r| count(r, "port") == u64::from(port))
        .unwrap_or_else(|| panic!("server reported nothing for port {port}\n{ctx}"));
    let errors = strings(r, "errors");
    assert!(
        errors.is_empty() && count(r, "n") == n && count(r, "ok") == n,
        "server on port {port}: {} of {n} connections accepted, {} handled well; errors: {errors:?}\n{ctx}",
        count(r, "n"),
        count(r, "ok")
    );
    r
}

/// Fact `i` (one per connection) of a server result.
fn fact(r: &Json, i: usize) -> &Json {
    r.get("facts")
        .and_then(|f| f.items().get(i))
        .expect("a fact per connection")
}

fn assert_same_data(r: &Json, data: &Data, what: &str, ctx: &str) {
    assert_eq!(
        (r.str_of("sha"), count(r, "len")),
        (data.sha.as_str(), data.len),
        "{what}: the data arrived changed (SHA-256, length), want the file's\n{ctx}"
    );
}

// ---------------------------------------------------------------------------
// Running the helper
// ---------------------------------------------------------------------------

/// A file of random bytes in the rig's temp dir, readable by everyone.
struct Data {
    path: String,
    sha: String,
    len: u64,
}

/// The helper written into a rig's temp dir, and ways to start it.
struct Tcp<'a> {
    rig: &'a Rig,
    python: PathBuf,
    helper: PathBuf,
}

impl<'a> Tcp<'a> {
    fn new(rig: &'a Rig) -> Tcp<'a> {
        let helper = rig.tmp_path("tcp_helper.py");
        fs::write(&helper, HELPER).expect("write the helper");
        fs::set_permissions(&helper, fs::Permissions::from_mode(0o644)).expect("chmod helper");
        Tcp {
            rig,
            python: tool("python3"),
            helper,
        }
    }

    fn argv(&self, mode: &str, spec: String) -> Vec<String> {
        vec![
            self.python.to_string_lossy().into_owned(),
            self.helper.to_string_lossy().into_owned(),
            mode.to_string(),
            spec,
        ]
    }

    fn random_file(&self, name: &str, len: u64) -> Data {
        let path = self.rig.tmp_path(name);
        let p = path.to_string_lossy().into_owned();
        run_ok(
            Command::new(tool("sh"))
                .args(["-c", &format!("head -c {len} /dev/urandom > '{p}'")])
                .env("PATH", STD_PATH),
        );
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod data");
        let sum = run_ok(Command::new(tool("sha256sum")).arg(&path));
        let sha = sum.split_whitespace().next().expect("a sum").to_string();
        Data { path: p, sha, len }
    }

    /// Starts a server in namespace `ns` (the rig's remote or host one),
    /// logged as `name`, and returns it once it listens.
    fn serve(&self, ns: &str, name: &str, listeners: &[Obj]) -> Child {
        let ready = self.rig.tmp_path(&format!("{name}.ready"));
        let spec = Obj(Vec::new())
            .s("ready", &ready.to_string_lossy())
            .n("listen", json_array(listeners));
        let mut cmd = self.rig.ns_cmd(ns, &self.argv("serve", spec.to_string()));
        let mut child = self.rig.spawn_logged(&mut cmd, name);
        self.wait_ready(&mut child, &ready, name);
        child
    }

    /// Starts `pasta --config-net OPTS -- <helper server>` as `who`, logged
    /// as "pasta", and returns it once the server in the guest listens.
    fn guest_serve(&self, who: As, opts: &[&str], listeners: &[Obj]) -> Child {
        let ready = self.rig.tmp_path("guest.ready");
        let spec = Obj(Vec::new())
            .s("ready", &ready.to_string_lossy())
            .n("listen", json_array(listeners));
        let mut args: Vec<String> = vec!["--config-net".into()];
        args.extend(opts.iter().map(|o| o.to_string()));
        args.push("--".into());
        args.extend(self.argv("serve", spec.to_string()));
        let mut child = self
            .rig
            .spawn_logged(&mut self.rig.pasta_cmd(who, &args), "pasta");
        self.wait_ready(&mut child, &ready, "pasta");
        child
    }

    fn wait_ready(&self, child: &mut Child, ready: &Path, name: &str) {
        let mut exited = None;
        wait_until(SHORT, || {
            if let Ok(Some(st)) = child.try_wait() {
                exited = Some(st);
            }
            exited.is_some() || ready.exists()
        });
        if !ready.exists() {
            let how = exited.map_or_else(|| format!("not within {SHORT:?}"), describe_status);
            panic!(
                "{name}: the server did not start listening ({how})\n{}",
                self.rig.log(name)
            );
        }
    }

    /// `pasta --config-net OPTS -- <helper client OPS>` as `who`.
    fn guest_cmd(&self, who: As, opts: &[&str], ops: &[Obj]) -> Command {
        let mut args: Vec<String> = vec!["--config-net".into()];
        args.extend(opts.iter().map(|o| o.to_string()));
        args.push("--".into());
        args.extend(self.argv("client", json_array(ops)));
        self.rig.pasta_cmd(who, &args)
    }

    /// Runs `cmd` (a client) to its end within `timeout`; its output and
    /// results.
    fn run(&self, cmd: &mut Command, timeout: Duration) -> (Output, Vec<Json>) {
        let out = self.rig.run(cmd, timeout);
        let res = results(&out.stdout);
        (out, res)
    }

    /// Runs the client `ops` in the guest of a pasta started by `who`.
    fn guest_client(
        &self,
        who: As,
        opts: &[&str],
        ops: &[Obj],
        timeout: Duration,
    ) -> (Output, Vec<Json>) {
        self.run(&mut self.guest_cmd(who, opts, ops), timeout)
    }

    /// Runs the client `ops` as root in namespace `ns`.
    fn client(&self, ns: &str, ops: &[Obj], timeout: Duration) -> (Output, Vec<Json>) {
        let argv = self.argv("client", json_array(ops));
        self.run(&mut self.rig.ns_cmd(ns, &argv), timeout)
    }

    /// Waits for a server started as `name` (a bounded one) to finish and
    /// returns its results.
    fn finish(&self, child: &mut Child, name: &str, ctx: &str) -> (String, Vec<Json>) {
        let why = "after its clients finished";
        let status = wait_exit(self.rig, child, SHORT, name, why);
        let log = self.rig.log(name);
        let out = fs::read(self.rig.tmp_path(&format!("{name}.out"))).unwrap_or_default();
        let res = results(&out);
        let ctx = format!(
            "{ctx}\n--- {name} ended: {}\n{log}",
            describe_status(status)
        );
        (ctx, res)
    }
}

/// Declares, for each `name => body`, a module `name` with the tests
/// `v4_as_root`, `v4_as_user`, `v6_as_root` and `v6_as_user` calling
/// `body(who, family)`.
macro_rules! family_and_caller_tests {
    ($($name:ident => $body:ident;)+) => {
        $(
            mod $name {
                use super::{As, Fam};

                #[test]
                fn v4_as_root() {
                    super::$body(As::Root, Fam::V4);
                }

                #[test]
                fn v4_as_user() {
                    super::$body(As::User, Fam::V4);
                }

                #[test]
                fn v6_as_root() {
                    super::$body(As::Root, Fam::V6);
                }

                #[test]
                fn v6_as_user() {
                    super::$body(As::User, Fam::V6);
                }
            }
        )+
    };
}

family_and_caller_tests! {
    tcp_guest_to_remote_upload_and_download_arrive_intact => guest_to_remote;
    tcp_remote_to_guest_through_port_forwards_arrives_intact => remote_to_guest_forwarded;
    tcp_guest_to_gateway_reaches_the_host_loopback_intact => guest_to_host_loopback;
    tcp_half_closed_connections_keep_carrying_data_200_at_once => half_close;
    tcp_resets_travel_both_ways => resets;
}

root_and_user_tests! {
    tcp_host_reaches_guest_through_port_forward_on_loopback_and_host_address => host_to_guest_forwarded;
    tcp_closed_port_is_refused_within_a_second => refused;
}

// ---------------------------------------------------------------------------
// Bulk transfers
// ---------------------------------------------------------------------------

/// The guest connects out to a server in the remote namespace: uploads the
/// file (the server hashes it) and downloads it (the guest hashes it). The
/// server sees the connection come from the host's address.
fn guest_to_remote(who: As, fam: Fam) {
    let rig = Rig::new();
    let t = Tcp::new(&rig);
    let data = t.random_file("data", bulk_size(who));
    let far = fam.far();
    let mut server = t.serve(
        &rig.remote,
        "server",
        &[
            listener("sink", far, 5001, Some(1)),
            listener("source", far, 5002, Some(1)).s("file", &data.path),
        ],
    );
    let ops = [
        op("upload", far, 5001).s("file", &data.path),
        op("download", far, 5002),
    ];
    let (out, res) = t.guest_client(who, &[], &ops, BULK);
    let ctx = format!("{}\n{}", text(&out), rig.log("server"));
    assert_same_data(
        op_ok(&res, 0, &ctx),
        &data,
        "upload (the server's hash)",
        &ctx,
    );
    assert_same_data(
        op_ok(&res, 1, &ctx),
        &data,
        "download (the guest's hash)",
        &ctx,
    );
    assert_eq!(out.status.code(), Some(0), "{ctx}");
    let (ctx, srv) = t.finish(&mut server, "server", &ctx);
    let sink = served(&srv, 5001, 1, &ctx);
    assert_same_data(fact(sink, 0), &data, "upload (the server's log)", &ctx);
    served(&srv, 5002, 1, &ctx);
    for port in [5001, 5002] {
        let peer = fact(served(&srv, port, 1, &ctx), 0).str_of("peer");
        assert_eq!(
            peer,
            fam.host(),
            "the remote saw the connection on port {port} come from {peer}, not from the host\n{ctx}"
        );
    }
}

/// `-t 5001 -t 5002 -t 6003:5003`: a client in the remote namespace
/// uploads to the guest's server on 5001, downloads from it on 5002, and
/// uploads through host port 6003 to guest port 5003. Host port 5003 is not
/// forwarded: it is refused.
fn remote_to_guest_forwarded(who: As, fam: Fam) {
    let rig = Rig::new();
    let t = Tcp::new(&rig);
    let data = t.random_file("data", bulk_size(who));
    let small = t.random_file("small", SMALL);
    let mut pasta = t.guest_serve(
        who,
        &["-t", "5001", "-t", "5002", "-t", "6003:5003"],
        &[
            listener("sink", "::", 5001, Some(1)),
            listener("source", "::", 5002, Some(1)).s("file", &data.path),
            listener("sink", "::", 5003, Some(1)),
        ],
    );
    let h = fam.host();
    let ops = [
        // pasta's listeners may still be coming up: retry refusals.
        op("upload", h, 5001).s("file", &data.path).n("retry", 5),
        op("download", h, 5002).n("retry", 5),
        op("upload", h, 6003).s("file", &small.path).n("retry", 5),
        op("refused", h, 5003),
    ];
    let (out, res) = t.client(&rig.remote, &ops, BULK);
    let ctx = format!("{}\n{}", text(&out), rig.log("pasta"));
    assert_same_data(op_ok(&res, 0, &ctx), &data, "upload to the guest", &ctx);
    assert_same_data(op_ok(&res, 1, &ctx), &data, "download from the guest", &ctx);
    assert_same_data(
        op_ok(&res, 2, &ctx),
        &small,
        "upload through 6003:5003",
        &ctx,
    );
    let r = op_ok(&res, 3, &ctx);
    assert_eq!(
        r.str_of("err"),
        "ECONNREFUSED",
        "host port 5003 (only a target of 6003) should not be forwarded\n{ctx}"
    );
    assert_eq!(out.status.code(), Some(0), "{ctx}");
    let (ctx, guest) = t.finish(&mut pasta, "pasta", &ctx);
    assert_same_data(
        fact(served(&guest, 5001, 1, &ctx), 0),
        &data,
        "upload (the guest's log)",
        &ctx,
    );
    served(&guest, 5002, 1, &ctx);
    assert_same_data(
        fact(served(&guest, 5003, 1, &ctx), 0),
        &small,
        "remapped upload (the guest's log)",
        &ctx,
    );
}

/// The guest connects to the gateway address, which pasta maps to the
/// host's loopback, where a server listens: a bulk upload and a small
/// download.
fn guest_to_host_loopback(who: As, fam: Fam) {
    let rig = Rig::new();
    let t = Tcp::new(&rig);
    let data = t.random_file("data", bulk_size(who));
    let small = t.random_file("small", 8 * SMALL);
    let lo = fam.lo();
    let mut server = t.serve(
        &rig.host,
        "server",
        &[
            listener("sink", lo, 5001, Some(1)),
            listener("source", lo, 5002, Some(1)).s("file", &small.path),
        ],
    );
    let gw = fam.gw();
    let ops = [
        op("upload", gw, 5001).s("file", &data.path),
        op("download", gw, 5002),
    ];
    let (out, res) = t.guest_client(who, &[], &ops, BULK);
    let ctx = format!("{}\n{}", text(&out), rig.log("server"));
    assert_same_data(
        op_ok(&res, 0, &ctx),
        &data,
        "upload to the host's loopback",
        &ctx,
    );
    assert_same_data(
        op_ok(&res, 1, &ctx),
        &small,
        "download from the host's loopback",
        &ctx,
    );
    assert_eq!(out.status.code(), Some(0), "{ctx}");
    let (ctx, srv) = t.finish(&mut server, "server", &ctx);
    assert_same_data(
        fact(served(&srv, 5001, 1, &ctx), 0),
        &data,
        "upload (the server's log)",
        &ctx,
    );
    served(&srv, 5002, 1, &ctx);
}

/// `-t 5001`: clients in the host namespace itself reach the guest's server
/// on 127.0.0.1, 192.0.2.1, ::1 and 2001:db8:1::1 (connections from the
/// host's loopback or its own address, which the guest shares, appear to
/// the guest to come from the gateway).
fn host_to_guest_forwarded(who: As) {
    let rig = Rig::new();
    let t = Tcp::new(&rig);
    let data = t.random_file("data", SMALL);
    let mut pasta = t.guest_serve(
        who,
        &["-t", "5001"],
        &[listener("sink", "::", 5001, Some(4))],
    );
    let targets = [Fam::V4.lo(), HOST_IP4, Fam::V6.lo(), HOST_IP6];
    let ops: Vec<Obj> = targets
        .iter()
        .map(|h| op("upload", h, 5001).s("file", &data.path).n("retry", 5))
        .collect();
    let (out, res) = t.client(&rig.host, &ops, QUICK);
    let ctx = format!("{}\n{}", text(&out), rig.log("pasta"));
    for (i, h) in targets.iter().enumerate() {
        let what = format!("upload from the host to {h}:5001");
        assert_same_data(op_ok(&res, i, &ctx), &data, &what, &ctx);
    }
    assert_eq!(out.status.code(), Some(0), "{ctx}");
    let (ctx, guest) = t.finish(&mut pasta, "pasta", &ctx);
    let sink = served(&guest, 5001, 4, &ctx);
    for i in 0..4 {
        assert_same_data(fact(sink, i), &data, "upload (the guest's log)", &ctx);
    }
}

// ---------------------------------------------------------------------------
// Connection life cycle
// ---------------------------------------------------------------------------

/// 200 connections open at once from the guest to the remote. On port 5001
/// each client sends 64 KiB and shuts down writing, then reads the reply the
/// server only sends after that EOF (the data reversed). On port 5002 the
/// server sends 64 KiB and shuts down writing first; each client reads to
/// EOF and then sends 128 KiB, all of which the server must receive.
fn half_close(who: As, fam: Fam) {
    const N: usize = 200;
    const SIZE: u64 = 64 << 10;
    let rig = Rig::new();
    let t = Tcp::new(&rig);
    let far = fam.far();
    let mut server = t.serve(
        &rig.remote,
        "server",
        &[
            listener("reverse_echo", far, 5001, Some(N)).n("size", SIZE),
            listener("send_first", far, 5002, Some(N)).n("size", SIZE),
        ],
    );
    let ops = [
        op("halfclose", far, 5001).n("n", N).n("size", SIZE),
        op("halfclose_rev", far, 5002).n("n", N).n("size", SIZE),
    ];
    let (out, res) = t.guest_client(who, &[], &ops, QUICK);
    let ctx = format!("{}\n{}", text(&out), rig.log("server"));
    for (i, what) in [
        "guest shuts down writing first",
        "remote shuts down writing first",
    ]
    .iter()
    .enumerate()
    {
        let r = op_ok(&res, i, &ctx);
        assert_eq!(
            count(r, "ok"),
            N as u64,
            "{what}: {} of {N} connections exchanged all their data; errors: {:?}\n{ctx}",
            count(r, "ok"),
            strings(r, "errors")
        );
    }
    assert_eq!(out.status.code(), Some(0), "{ctx}");
    let (ctx, srv) = t.finish(&mut server, "server", &ctx);
    served(&srv, 5001, N as u64, &ctx);
    served(&srv, 5002, N as u64, &ctx);
}

/// A reset from the remote (close with SO_LINGER {1, 0}) reaches the guest
/// as ECONNRESET, and a reset from the guest reaches the remote the same
/// way, both within [`RESET_WITHIN`].
fn resets(who: As, fam: Fam) {
    let rig = Rig::new();
    let t = Tcp::new(&rig);
    let far = fam.far();
    let mut server = t.serve(
        &rig.remote,
        "server",
        &[
            listener("rst", far, 5001, Some(1)),
            listener("rst_expect", far, 5002, Some(1)),
        ],
    );
    let ops = [op("rst_recv", far, 5001), op("rst_send", far, 5002)];
    let (out, res) = t.guest_client(who, &[], &ops, QUICK);
    let ctx = format!("{}\n{}", text(&out), rig.log("server"));
    let r = op_ok(&res, 0, &ctx);
    let (outcome, secs) = (r.str_of("outcome"), num(r, "secs"));
    assert!(
        matches!(outcome, "ECONNRESET" | "EPIPE") && secs < RESET_WITHIN,
        "the remote reset the connection; the guest saw {outcome} after {secs:.2} s, \
         want ECONNRESET within {RESET_WITHIN} s\n{ctx}"
    );
    assert_eq!(op_ok(&res, 1, &ctx).str_of("greeting"), "g", "{ctx}");
    let (ctx, srv) = t.finish(&mut server, "server", &ctx);
    let f = fact(served(&srv, 5002, 1, &ctx), 0);
    let (outcome, secs) = (f.str_of("outcome"), num(f, "secs"));
    assert!(
        outcome == "ECONNRESET" && secs < RESET_WITHIN,
        "the guest reset the connection; the remote saw {outcome} after {secs:.2} s, \
         want ECONNRESET within {RESET_WITHIN} s\n{ctx}"
    );
}

/// Connections to a port nobody listens on, at the remote and at the
/// gateway (the host's loopback), are refused within [`REFUSED_WITHIN`].
fn refused(who: As) {
    let rig = Rig::new();
    let t = Tcp::new(&rig);
    let targets = [FAR_IP4, REMOTE_IP4, FAR_IP6, REMOTE_IP6];
    let ops: Vec<Obj> = targets.iter().map(|h| op("refused", h, 5009)).collect();
    let (out, res) = t.guest_client(who, &[], &ops, QUICK);
    let ctx = text(&out);
    for (i, h) in targets.iter().enumerate() {
        let r = op_ok(&res, i, &ctx);
        let (err, secs) = (r.str_of("err"), num(r, "secs"));
        assert!(
            err == "ECONNREFUSED" && secs < REFUSED_WITHIN,
            "connecting to {h}:5009 (closed) gave {err} after {secs:.2} s, \
             want ECONNREFUSED within {REFUSED_WITHIN} s\n{ctx}"
        );
    }
}

// ---------------------------------------------------------------------------
// Resources
// ---------------------------------------------------------------------------

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
    let mut cmd = t.guest_cmd(As::User, &["-t", "5003", "-P", &pid_arg], &[batch]);
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
    let mut cmd = t.guest_cmd(As::User, &[], &[probe]);
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
