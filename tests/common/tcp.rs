//! The TCP tests' shared parts (tests/tcp.rs for pasta, tests/passt_tcp.rs
//! for passt): the Python helper (`tcp_helper.py`, written to the rig's temp
//! dir) with its JSON arguments and `RESULT` lines, and the scenarios both
//! binaries run the same way whatever the guest is ([`Guest`]: pasta's own
//! namespace, or a [`super::guest::PasstGuest`] bridged to passt).
//!
//! The helper: servers that handle a given number of connections and print
//! one `RESULT <json>` line per listener, and clients that run a list of
//! operations and print one `RESULT` line each. Every socket operation in
//! the helper is bounded (10 s of silence, 5 s to connect), so a stalled
//! transfer fails with a message, and the callers' waits are bounded on top
//! of that.
//!
//! Addresses as the guest sees them: it shares the host's address
//! (192.0.2.1 / 2001:db8:1::1); the gateway (192.0.2.2 / 2001:db8:1::2)
//! stands for the host's loopback, so the remote namespace is reached on its
//! far addresses (198.51.100.2 / 2001:db8:2::2) behind the gateway.

use super::helper::Script;
use super::json::{self, Json};
use super::*;
use std::fmt::Display;
use std::fs;
use std::ops::Deref;
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Output};
use std::time::Duration;

const HELPER: &str = include_str!("../tcp_helper.py");

pub const SMALL: u64 = 1 << 20;
/// Bound for a run with bulk transfers (the helper fails any transfer that
/// stalls for 10 s long before this).
pub const BULK: Duration = Duration::from_secs(150);
/// Bound for a run without bulk transfers.
pub const QUICK: Duration = Duration::from_secs(60);
/// How long a refused connection may take, measured in the guest.
pub const REFUSED_WITHIN: f64 = 1.0;
/// How long a reset may take to reach the other end.
pub const RESET_WITHIN: f64 = 3.0;

/// The bulk transfer size through pasta started by `who`: 256 MiB for an
/// ordinary user (the normal case), 32 MiB for root, to keep the run time
/// of the files that test both callers (tests/tcp.rs, tests/splice.rs)
/// down.
pub fn pasta_bulk_size(who: As) -> u64 {
    match who {
        As::User => 256 << 20,
        As::Root => 32 << 20,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fam {
    V4,
    V6,
}

impl Fam {
    /// The remote namespace's address behind the gateway.
    pub fn far(self) -> &'static str {
        match self {
            Fam::V4 => FAR_IP4,
            Fam::V6 => FAR_IP6,
        }
    }

    /// The host's address, which the guest shares.
    pub fn host(self) -> &'static str {
        match self {
            Fam::V4 => HOST_IP4,
            Fam::V6 => HOST_IP6,
        }
    }

    /// The gateway: in the guest, the host's loopback.
    pub fn gw(self) -> &'static str {
        match self {
            Fam::V4 => REMOTE_IP4,
            Fam::V6 => REMOTE_IP6,
        }
    }

    /// The host's loopback address.
    pub fn lo(self) -> &'static str {
        match self {
            Fam::V4 => "127.0.0.1",
            Fam::V6 => "::1",
        }
    }
}

// ---------------------------------------------------------------------------
// JSON for the helper's arguments
// ---------------------------------------------------------------------------

/// A JSON string literal.
pub fn q(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A JSON object built member by member.
#[derive(Clone, Debug)]
pub struct Obj(pub Vec<(&'static str, String)>);

impl Obj {
    /// A string member.
    pub fn s(mut self, key: &'static str, value: &str) -> Obj {
        self.0.push((key, q(value)));
        self
    }

    /// A number (or any JSON text) member.
    pub fn n(mut self, key: &'static str, value: impl Display) -> Obj {
        self.0.push((key, value.to_string()));
        self
    }

    /// An array of strings member.
    pub fn list(mut self, key: &'static str, values: &[&str]) -> Obj {
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

pub fn json_array(items: &[Obj]) -> String {
    let items: Vec<String> = items.iter().map(Obj::to_string).collect();
    format!("[{}]", items.join(","))
}

/// A server listener: `role` on `host:port` for `count` connections (for
/// ever if `None`; the rig ends such servers).
pub fn listener(role: &str, host: &str, port: u16, count: Option<usize>) -> Obj {
    let count = count.map_or_else(|| "null".to_string(), |c| c.to_string());
    Obj(Vec::new())
        .s("role", role)
        .s("host", host)
        .n("port", port)
        .n("count", count)
}

/// A client operation `op` towards `host:port`.
pub fn op(op: &str, host: &str, port: u16) -> Obj {
    Obj(Vec::new()).s("op", op).s("host", host).n("port", port)
}

// ---------------------------------------------------------------------------
// Reading the helper's results
// ---------------------------------------------------------------------------

/// The `RESULT` lines of a helper's output.
pub fn results(stdout: &[u8]) -> Vec<Json> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("RESULT "))
        .map(|l| json::parse(l).unwrap_or_else(|e| panic!("bad RESULT line ({e}): {l}")))
        .collect()
}

pub fn num(j: &Json, key: &str) -> f64 {
    match j.get(key) {
        Some(Json::Num(n)) => *n,
        _ => f64::NAN,
    }
}

pub fn count(j: &Json, key: &str) -> u64 {
    j.get(key).and_then(Json::as_u64).unwrap_or(u64::MAX)
}

/// The strings of an array member.
pub fn strings(j: &Json, key: &str) -> Vec<String> {
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
pub fn op_ok<'r>(res: &'r [Json], i: usize, ctx: &str) -> &'r Json {
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
pub fn served<'r>(res: &'r [Json], port: u16, n: u64, ctx: &str) -> &'r Json {
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
pub fn fact(r: &Json, i: usize) -> &Json {
    r.get("facts")
        .and_then(|f| f.items().get(i))
        .expect("a fact per connection")
}

pub fn assert_same_data(r: &Json, data: &Data, what: &str, ctx: &str) {
    assert_eq!(
        (r.str_of("sha"), count(r, "len")),
        (data.sha.as_str(), data.len),
        "{what}: the data arrived changed (SHA-256, length), want the file's\n{ctx}"
    );
}

/// Client operation `i` succeeded and moved `expected[i].0` intact (what
/// it is: `expected[i].1`), for each `i`.
pub fn assert_transfers(res: &[Json], expected: &[(&Data, &str)], ctx: &str) {
    for (i, (data, what)) in expected.iter().enumerate() {
        assert_same_data(op_ok(res, i, ctx), data, what, ctx);
    }
}

// ---------------------------------------------------------------------------
// Running the helper
// ---------------------------------------------------------------------------

/// A file of random bytes in the rig's temp dir, readable by everyone.
pub struct Data {
    pub path: String,
    pub sha: String,
    pub len: u64,
}

/// The helper written into a rig's temp dir, and ways to start it (those
/// it shares with the UDP helper: [`Script`], which it derefs to).
pub struct Tcp<'a>(Script<'a>);

impl<'a> Deref for Tcp<'a> {
    type Target = Script<'a>;

    fn deref(&self) -> &Script<'a> {
        &self.0
    }
}

impl<'a> Tcp<'a> {
    pub fn new(rig: &'a Rig) -> Tcp<'a> {
        let not_ready = "server did not start listening";
        Tcp(Script::new(rig, "tcp_helper.py", HELPER, not_ready))
    }

    pub fn random_file(&self, name: &str, len: u64) -> Data {
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
    pub fn serve(&self, ns: &str, name: &str, listeners: &[Obj]) -> Child {
        let ready = self.rig.tmp_path(&format!("{name}.ready"));
        let argv = self.server_argv(&ready, listeners);
        self.spawn_server(&mut self.rig.ns_cmd(ns, &argv), &ready, name)
    }

    /// Waits for a server started as `name` (a bounded one) to finish and
    /// returns its results.
    pub fn finish(&self, child: &mut Child, name: &str, ctx: &str) -> (String, Vec<Json>) {
        let why = "after its clients finished";
        let status = wait_exit(self.rig, child, SHORT, name, why);
        let log = self.rig.log(name);
        let res = self.logged_results(name);
        let ctx = format!(
            "{ctx}\n--- {name} ended: {}\n{log}",
            describe_status(status)
        );
        (ctx, res)
    }
}

// ---------------------------------------------------------------------------
// Scenarios, for any guest
// ---------------------------------------------------------------------------

/// Where a scenario runs its guest-side programs.
pub trait Guest {
    /// Runs the helper's client `ops` in the guest to the end, within
    /// `timeout`: its output and results.
    fn client(&self, t: &Tcp, ops: &[Obj], timeout: Duration) -> (Output, Vec<Json>);

    /// Starts the helper's server with `listeners` in the guest and returns
    /// it once it listens, with the name its output is logged under
    /// ([`Rig::log`], [`Tcp::finish`]).
    fn serve(&self, t: &Tcp, listeners: &[Obj]) -> (Child, String);

    /// What to show about the guest when a check fails (e.g. the link's
    /// counters); empty by default.
    fn describe(&self) -> String {
        String::new()
    }
}

/// The guest connects out to a server in the remote namespace: uploads a
/// file of `size` bytes (the server hashes it) and downloads it (the guest
/// hashes it). The server sees the connection come from the host's address.
pub fn guest_to_remote(t: &Tcp, guest: &dyn Guest, fam: Fam, size: u64) {
    let rig = t.rig;
    let data = t.random_file("data", size);
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
    let (out, res) = guest.client(t, &ops, BULK);
    let ctx = format!("{}\n{}{}", text(&out), rig.log("server"), guest.describe());
    let expected = [
        (&data, "upload (the server's hash)"),
        (&data, "download (the guest's hash)"),
    ];
    assert_transfers(&res, &expected, &ctx);
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

/// Downloads a server writes in bursts: the remote server sends a file of
/// `size` bytes in chunks of 64 KiB to 1 MiB with a pause of 20 to 50 ms
/// after each, then closes; the guest downloads it [`BURSTY_DOWNLOADS`]
/// times, one after the other (every other time reading slowly), and each
/// must arrive whole (SHA-256 and length): the data a socket receives in
/// bursts, read while more is still coming, must not be cut short by an
/// early FIN (seen with the fallback for kernels without `SO_PEEK_OFF`).
pub fn bursty_download(t: &Tcp, guest: &dyn Guest, fam: Fam, size: u64) {
    let rig = t.rig;
    let data = t.random_file("data", size);
    let far = fam.far();
    let mut server = t.serve(
        &rig.remote,
        "server",
        &[listener("burst_source", far, 5002, Some(BURSTY_DOWNLOADS))
            .s("file", &data.path)
            .n("min_chunk", 64 << 10)
            .n("max_chunk", 1 << 20)
            .n("min_pause_ms", 20)
            .n("max_pause_ms", 50)],
    );
    // Every other download reads slowly (64 KiB, then 5 ms of sleep), so
    // that the guest's window fills and opens again during the bursts.
    let ops: Vec<Obj> = (0..BURSTY_DOWNLOADS)
        .map(|i| match i % 2 {
            0 => op("download", far, 5002),
            _ => op("download", far, 5002)
                .n("read_size", 64 << 10)
                .n("read_pause_ms", 5),
        })
        .collect();
    let (out, res) = guest.client(t, &ops, BULK);
    let ctx = format!("{}\n{}{}", text(&out), rig.log("server"), guest.describe());
    for i in 0..BURSTY_DOWNLOADS {
        let what = format!("bursty download {} of {BURSTY_DOWNLOADS}", i + 1);
        assert_same_data(op_ok(&res, i, &ctx), &data, &what, &ctx);
    }
    assert_eq!(out.status.code(), Some(0), "{ctx}");
    let (ctx, srv) = t.finish(&mut server, "server", &ctx);
    served(&srv, 5002, BURSTY_DOWNLOADS as u64, &ctx);
}

/// Downloads in [`bursty_download`].
pub const BURSTY_DOWNLOADS: usize = 4;

/// The port forwards `-t 5001 -t 5002 -t 6003:5003` (the guest's caller
/// sets them up): a client in the remote namespace uploads a file of `size`
/// bytes to the guest's server on 5001, downloads it from it on 5002, and
/// uploads a small file through host port 6003 to guest port 5003. Host
/// port 5003 is not forwarded: it is refused.
pub fn remote_to_guest_forwarded(t: &Tcp, guest: &dyn Guest, fam: Fam, size: u64) {
    let rig = t.rig;
    let data = t.random_file("data", size);
    let small = t.random_file("small", SMALL);
    let (mut server, name) = guest.serve(
        t,
        &[
            listener("sink", "::", 5001, Some(1)),
            listener("source", "::", 5002, Some(1)).s("file", &data.path),
            listener("sink", "::", 5003, Some(1)),
        ],
    );
    let h = fam.host();
    let ops = [
        // The forwarder's listeners may still be coming up: retry refusals.
        op("upload", h, 5001).s("file", &data.path).n("retry", 5),
        op("download", h, 5002).n("retry", 5),
        op("upload", h, 6003).s("file", &small.path).n("retry", 5),
        op("refused", h, 5003),
    ];
    let (out, res) = t.client(&rig.remote, &ops, BULK);
    let ctx = format!("{}\n{}{}", text(&out), rig.log(&name), guest.describe());
    let expected = [
        (&data, "upload to the guest"),
        (&data, "download from the guest"),
        (&small, "upload through 6003:5003"),
    ];
    assert_transfers(&res, &expected, &ctx);
    let r = op_ok(&res, 3, &ctx);
    assert_eq!(
        r.str_of("err"),
        "ECONNREFUSED",
        "host port 5003 (only a target of 6003) should not be forwarded\n{ctx}"
    );
    assert_eq!(out.status.code(), Some(0), "{ctx}");
    let (ctx, in_guest) = t.finish(&mut server, &name, &ctx);
    assert_same_data(
        fact(served(&in_guest, 5001, 1, &ctx), 0),
        &data,
        "upload (the guest's log)",
        &ctx,
    );
    served(&in_guest, 5002, 1, &ctx);
    assert_same_data(
        fact(served(&in_guest, 5003, 1, &ctx), 0),
        &small,
        "remapped upload (the guest's log)",
        &ctx,
    );
}

/// The guest connects to the gateway address, which stands for the host's
/// loopback, where a server listens: an upload of `size` bytes and an
/// 8 MiB download.
pub fn guest_to_host_loopback(t: &Tcp, guest: &dyn Guest, fam: Fam, size: u64) {
    let rig = t.rig;
    let data = t.random_file("data", size);
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
    let (out, res) = guest.client(t, &ops, BULK);
    let ctx = format!("{}\n{}{}", text(&out), rig.log("server"), guest.describe());
    let expected = [
        (&data, "upload to the host's loopback"),
        (&small, "download from the host's loopback"),
    ];
    assert_transfers(&res, &expected, &ctx);
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

/// `n` connections open at once from the guest to the remote. On port 5001
/// each client sends 64 KiB and shuts down writing, then reads the reply the
/// server only sends after that EOF (the data reversed). On port 5002 the
/// server sends 64 KiB and shuts down writing first; each client reads to
/// EOF and then sends 128 KiB, all of which the server must receive.
pub fn half_close(t: &Tcp, guest: &dyn Guest, fam: Fam, n: usize) {
    const SIZE: u64 = 64 << 10;
    let rig = t.rig;
    let far = fam.far();
    let mut server = t.serve(
        &rig.remote,
        "server",
        &[
            listener("reverse_echo", far, 5001, Some(n)).n("size", SIZE),
            listener("send_first", far, 5002, Some(n)).n("size", SIZE),
        ],
    );
    let ops = [
        op("halfclose", far, 5001).n("n", n).n("size", SIZE),
        op("halfclose_rev", far, 5002).n("n", n).n("size", SIZE),
    ];
    let (out, res) = guest.client(t, &ops, QUICK);
    let ctx = format!("{}\n{}{}", text(&out), rig.log("server"), guest.describe());
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
            n as u64,
            "{what}: {} of {n} connections exchanged all their data; errors: {:?}\n{ctx}",
            count(r, "ok"),
            strings(r, "errors")
        );
    }
    assert_eq!(out.status.code(), Some(0), "{ctx}");
    let (ctx, srv) = t.finish(&mut server, "server", &ctx);
    served(&srv, 5001, n as u64, &ctx);
    served(&srv, 5002, n as u64, &ctx);
}

/// A reset from the remote (close with SO_LINGER {1, 0}) reaches the guest
/// as ECONNRESET, and a reset from the guest reaches the remote the same
/// way, both within [`RESET_WITHIN`].
pub fn resets(t: &Tcp, guest: &dyn Guest, fam: Fam) {
    let rig = t.rig;
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
    let (out, res) = guest.client(t, &ops, QUICK);
    let ctx = format!("{}\n{}{}", text(&out), rig.log("server"), guest.describe());
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
pub fn refused(t: &Tcp, guest: &dyn Guest) {
    let targets = [FAR_IP4, REMOTE_IP4, FAR_IP6, REMOTE_IP6];
    let ops: Vec<Obj> = targets.iter().map(|h| op("refused", h, 5009)).collect();
    let (out, res) = guest.client(t, &ops, QUICK);
    let ctx = format!("{}{}", text(&out), guest.describe());
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

/// The port forward `-t 5001` (the guest's caller sets it up): clients in
/// the host namespace itself reach the guest's server on 127.0.0.1,
/// 192.0.2.1, ::1 and 2001:db8:1::1 (connections from the host's loopback
/// or its own address, which the guest shares, appear to the guest to come
/// from the gateway).
pub fn host_to_guest_forwarded(t: &Tcp, guest: &dyn Guest) {
    let rig = t.rig;
    let data = t.random_file("data", SMALL);
    let (mut server, name) = guest.serve(t, &[listener("sink", "::", 5001, Some(4))]);
    let targets = [Fam::V4.lo(), HOST_IP4, Fam::V6.lo(), HOST_IP6];
    let ops: Vec<Obj> = targets
        .iter()
        .map(|h| op("upload", h, 5001).s("file", &data.path).n("retry", 5))
        .collect();
    let (out, res) = t.client(&rig.host, &ops, QUICK);
    let ctx = format!("{}\n{}{}", text(&out), rig.log(&name), guest.describe());
    for (i, h) in targets.iter().enumerate() {
        let what = format!("upload from the host to {h}:5001");
        assert_same_data(op_ok(&res, i, &ctx), &data, &what, &ctx);
    }
    assert_eq!(out.status.code(), Some(0), "{ctx}");
    let (ctx, in_guest) = t.finish(&mut server, &name, &ctx);
    let sink = served(&in_guest, 5001, 4, &ctx);
    for i in 0..4 {
        assert_same_data(fact(sink, i), &data, "upload (the guest's log)", &ctx);
    }
}
