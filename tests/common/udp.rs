//! The UDP tests' shared parts (tests/udp.rs, tests/splice.rs,
//! tests/auto_ports.rs for pasta, tests/passt_udp.rs for passt): the Python
//! helper (`udp_helper.py`, written to the rig's temp dir) and the
//! scenarios both binaries run the same way whatever the guest is
//! ([`UdpGuest`]).
//!
//! The helper's echo server sends every datagram back unchanged from its
//! listening socket and logs one `RESULT` line per datagram with the peer's
//! address and port; its echo client sends random datagrams until the same
//! bytes come back and reports where the reply came from. So a test can
//! assert both ends' view of the ports: UDP keeps the guest's source port
//! on the host side, and replies leave from the port the client sent to.
//! Every wait in the helper is bounded (a datagram is sent again every
//! 0.25 s for at most 5 s; a server listener ends after 30 s of silence).
//!
//! Addresses as the guest sees them: see `common::tcp` ([`Fam`]).

use super::helper::Script;
use super::json::Json;
use super::tcp::{Fam, Obj};
use super::*;
use std::ops::Deref;
use std::path::Path;
use std::process::{Child, Output};
use std::time::Duration;

const HELPER: &str = include_str!("../udp_helper.py");

/// A datagram size that needs the 65520-byte MTU on the tap (and IP
/// fragments on the rig's 1500-byte veth).
pub const BIG_DATAGRAM: u64 = 60000;
/// The sizes each echo sends: a small datagram and a big one.
pub const SIZES: [u64; 2] = [100, BIG_DATAGRAM];
/// Bound for a UDP client run.
pub const UDP_RUN: Duration = Duration::from_secs(60);

/// The helper written into a rig's temp dir, and ways to start it (those
/// it shares with the TCP helper: [`Script`], which it derefs to).
pub struct Udp<'a>(Script<'a>);

impl<'a> Deref for Udp<'a> {
    type Target = Script<'a>;

    fn deref(&self) -> &Script<'a> {
        &self.0
    }
}

impl<'a> Udp<'a> {
    pub fn new(rig: &'a Rig) -> Udp<'a> {
        Udp(Script::new(
            rig,
            "udp_helper.py",
            HELPER,
            "UDP server did not bind",
        ))
    }

    /// argv of an echo server on `(host, port)` each, which creates
    /// `ready` once bound.
    pub fn echo_server_argv(&self, ready: &Path, listeners: &[(&str, u16)]) -> Vec<String> {
        let ls: Vec<Obj> = listeners
            .iter()
            .map(|(h, p)| Obj(Vec::new()).s("host", h).n("port", p))
            .collect();
        self.server_argv(ready, &ls)
    }

    /// Starts an echo server in the rig's namespace `ns`, logged as `name`.
    pub fn serve(&self, ns: &str, name: &str, listeners: &[(&str, u16)]) -> Child {
        let ready = self.rig.tmp_path(&format!("{name}.ready"));
        let argv = self.echo_server_argv(&ready, listeners);
        self.spawn_server(&mut self.rig.ns_cmd(ns, &argv), &ready, name)
    }

    /// The datagrams the server logged as `name` has received so far.
    pub fn seen(&self, name: &str) -> Vec<Datagram> {
        self.logged_results(name)
            .iter()
            .map(|j| Datagram {
                port: j.get("port").and_then(Json::as_u64).unwrap_or(0) as u16,
                peer: j.str_of("peer").to_string(),
                peer_port: j.get("peer_port").and_then(Json::as_u64).unwrap_or(0) as u16,
                len: j.get("len").and_then(Json::as_u64).unwrap_or(0),
            })
            .collect()
    }
}

/// One datagram an echo server received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Datagram {
    /// The listener's port.
    pub port: u16,
    pub peer: String,
    pub peer_port: u16,
    pub len: u64,
}

/// An echo of one datagram of each size in `sizes` to `host:port`.
pub fn echo(host: &str, port: u16, sizes: &[u64]) -> Obj {
    let sizes: Vec<String> = sizes.iter().map(u64::to_string).collect();
    Obj(Vec::new())
        .s("op", "echo")
        .s("host", host)
        .n("port", port)
        .n("sizes", format!("[{}]", sizes.join(",")))
}

/// Polls `host:port` with datagrams until ECONNREFUSED, for `within` s.
pub fn refused(host: &str, port: u16, within: f64) -> Obj {
    Obj(Vec::new())
        .s("op", "refused")
        .s("host", host)
        .n("port", port)
        .n("within", within)
}

/// The result of client operation `i`, which must have succeeded, with
/// every datagram echoed.
pub fn echoed<'r>(res: &'r [Json], i: usize, ctx: &str) -> &'r Json {
    let r = res
        .get(i)
        .unwrap_or_else(|| panic!("the client reported no result for operation {i}\n{ctx}"));
    if let Some(err) = r.get("error") {
        panic!(
            "echo to {} failed: {}\n{ctx}",
            r.str_of("to"),
            err.as_str().unwrap_or("?")
        );
    }
    for d in replies(r) {
        if let Some(err) = d.get("error") {
            panic!(
                "echo of a {}-byte datagram to {}: {}\n{ctx}",
                d.get("size").and_then(Json::as_u64).unwrap_or(0),
                r.str_of("to"),
                err.as_str().unwrap_or("?")
            );
        }
    }
    r
}

/// The per-size replies of an echo result.
pub fn replies(r: &Json) -> Vec<Json> {
    r.get("replies")
        .map(|a| a.items().to_vec())
        .unwrap_or_default()
}

/// The local port an echo client used.
pub fn local_port(r: &Json) -> u16 {
    r.get("local_port").and_then(Json::as_u64).unwrap_or(0) as u16
}

/// Every reply of echo result `r` came from `addr:port`.
pub fn assert_replies_from(r: &Json, addr: &str, port: u16, ctx: &str) {
    for d in replies(r) {
        let from = (
            d.str_of("from").to_string(),
            d.get("from_port").and_then(Json::as_u64).unwrap_or(0),
        );
        assert_eq!(
            from,
            (addr.to_string(), u64::from(port)),
            "the echo of a {}-byte datagram sent to {} came back from (address, port), \
             want the address and port the client sent to\n{ctx}",
            d.get("size").and_then(Json::as_u64).unwrap_or(0),
            r.str_of("to")
        );
    }
}

/// The server's listener on `port` received a datagram of each length in
/// `lens`, each from `peer:peer_port` (the first datagram of that length
/// is looked at: resends are copies).
pub fn assert_seen(
    seen: &[Datagram],
    port: u16,
    lens: &[u64],
    peer: &str,
    peer_port: u16,
    ctx: &str,
) {
    for &len in lens {
        let d = seen
            .iter()
            .find(|d| d.port == port && d.len == len)
            .unwrap_or_else(|| {
                panic!("the server on port {port} logged no {len}-byte datagram: {seen:?}\n{ctx}")
            });
        assert_eq!(
            (d.peer.as_str(), d.peer_port),
            (peer, peer_port),
            "the server on port {port} saw the {len}-byte datagram come from (address, port)\n{ctx}"
        );
    }
}

// ---------------------------------------------------------------------------
// Scenarios, for any guest
// ---------------------------------------------------------------------------

/// Where a scenario runs its guest-side programs.
pub trait UdpGuest {
    /// Runs the helper's client `ops` in the guest to the end.
    fn client(&self, u: &Udp, ops: &[Obj]) -> (Output, Vec<Json>);

    /// Starts the helper's echo server on `listeners` in the guest and
    /// returns it once bound, with the name it is logged as
    /// ([`Udp::seen`]).
    fn serve(&self, u: &Udp, listeners: &[(&str, u16)]) -> (Child, String);

    /// What to show about the guest when a check fails.
    fn describe(&self) -> String {
        String::new()
    }
}

/// The guest's client, bound to port 40001, echoes a small and a 60000-byte
/// datagram off a server on the remote's far address: both come back
/// intact from the server's address and port, and the remote saw them come
/// from the host's address and the guest's own source port.
pub fn guest_to_remote(u: &Udp, guest: &dyn UdpGuest, fam: Fam) {
    let rig = u.rig;
    let far = fam.far();
    let mut server = u.serve(&rig.remote, "server", &[(far, 5001)]);
    let ops = [echo(far, 5001, &SIZES).n("bind_port", 40001)];
    let (out, res) = guest.client(u, &ops);
    let ctx = format!("{}\n{}{}", text(&out), rig.log("server"), guest.describe());
    let r = echoed(&res, 0, &ctx);
    assert_eq!(local_port(r), 40001, "{ctx}");
    assert_replies_from(r, far, 5001, &ctx);
    assert_eq!(out.status.code(), Some(0), "{ctx}");
    assert_seen(&u.seen("server"), 5001, &SIZES, fam.host(), 40001, &ctx);
    stop(&mut server);
}

/// The guest echoes datagrams off a server on the host's loopback through
/// the gateway address: replies come from the gateway and the server's
/// port, and the server saw the host's loopback address and the guest's
/// source port.
pub fn guest_to_host_loopback(u: &Udp, guest: &dyn UdpGuest, fam: Fam) {
    let rig = u.rig;
    let lo = fam.lo();
    let mut server = u.serve(&rig.host, "server", &[(lo, 5002)]);
    let gw = fam.gw();
    let ops = [echo(gw, 5002, &SIZES).n("bind_port", 40002)];
    let (out, res) = guest.client(u, &ops);
    let ctx = format!("{}\n{}{}", text(&out), rig.log("server"), guest.describe());
    let r = echoed(&res, 0, &ctx);
    assert_replies_from(r, gw, 5002, &ctx);
    assert_eq!(out.status.code(), Some(0), "{ctx}");
    assert_seen(&u.seen("server"), 5002, &SIZES, lo, 40002, &ctx);
    stop(&mut server);
}

/// The port forwards `-u 5001 -u 5000:6000` (the guest's caller sets them
/// up): a client in the remote namespace, bound to its far address, echoes
/// datagrams off the guest's server through the host's address on port
/// 5001 and on port 5000 (which the guest's server receives on 6000).
/// Replies come from the host's address and the port the client sent to
/// (5000, not 6000), and the guest saw the client's address and port.
pub fn remote_to_guest_forwarded(u: &Udp, guest: &dyn UdpGuest, fam: Fam) {
    let rig = u.rig;
    let (mut server, name) = guest.serve(u, &[("::", 5001), ("::", 6000)]);
    let (h, far) = (fam.host(), fam.far());
    let ops = [
        echo(h, 5001, &SIZES).s("bind", far).n("bind_port", 40003),
        echo(h, 5000, &SIZES).s("bind", far).n("bind_port", 40004),
    ];
    let (out, res) = u.client(&rig.remote, &ops, UDP_RUN);
    let ctx = format!("{}\n{}{}", text(&out), rig.log(&name), guest.describe());
    assert_replies_from(echoed(&res, 0, &ctx), h, 5001, &ctx);
    assert_replies_from(echoed(&res, 1, &ctx), h, 5000, &ctx);
    assert_eq!(out.status.code(), Some(0), "{ctx}");
    let seen = u.seen(&name);
    assert_seen(&seen, 5001, &SIZES, far, 40003, &ctx);
    assert_seen(&seen, 6000, &SIZES, far, 40004, &ctx);
    stop(&mut server);
}
