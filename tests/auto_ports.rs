//! pasta's automatic port forwarding (REFERENCE.md §1.7: `auto` scans the
//! other side's listening sockets every second and binds or unbinds to
//! match), observed from outside: servers started after pasta.
//!
//! What is proven, with pasta started by an ordinary user:
//! - `-t auto`, and the default (no `-t` at all): a TCP server started in
//!   the namespace after pasta becomes reachable from the host's loopback
//!   (127.0.0.1 and ::1) within [`WITHIN`], and once it stops, connections
//!   to its port on the host's loopback are refused within [`WITHIN`] (pasta
//!   released the port);
//! - `-u auto`: a UDP echo server started in the namespace after pasta
//!   answers a client on the host's loopback within [`WITHIN`] (release is
//!   not checked for UDP: a flow keeps a duplicate of the listening socket,
//!   bound to the port, until it expires);
//! - `-T auto`: a TCP server started on the host's loopback after pasta
//!   becomes reachable from the namespace's loopback within [`WITHIN`], and
//!   is refused there within [`WITHIN`] once it stops;
//! - `-U auto`: a UDP echo server started on the host's loopback after
//!   pasta answers a client on the namespace's loopback within [`WITHIN`].
//!
//! The namespace is held open by `pasta --config-net ... -- sleep`; the
//! test starts and stops programs in it with `nsenter --net`
//! (`common::pasta::PastaNs`).

mod common;

use common::pasta::PastaNs;
use common::tcp::{self, *};
use common::udp::{self, Udp, echo, echoed};
use common::*;
use std::process::Child;
use std::time::Instant;

/// How soon a new or vanished listener must show on the other side (pasta
/// scans once a second).
const WITHIN: f64 = 2.0;

/// Starts the TCP helper's echo server on `[::]:port` with `cmd`, logged
/// as `name`, and returns it once it listens.
fn tcp_echo_server(
    t: &Tcp,
    cmd: impl FnOnce(&[String]) -> std::process::Command,
    port: u16,
    name: &str,
) -> Child {
    let ready = t.rig.tmp_path(&format!("{name}.ready"));
    let argv = t.server_argv(&ready, &[listener("echo", "::", port, None)]);
    t.spawn_server(&mut cmd(&argv), &ready, name)
}

/// One echo over a new connection to `host:port` (loopback addresses of
/// both families), retrying refused connections for [`WITHIN`].
fn reach_ops(port: u16) -> Vec<Obj> {
    ["127.0.0.1", "::1"]
        .iter()
        .map(|h| op("echo_batch", h, port).n("n", 1).n("retry", WITHIN))
        .collect()
}

/// Connections to `host:port` until one is refused, for [`WITHIN`].
fn release_ops(port: u16) -> Vec<Obj> {
    ["127.0.0.1", "::1"]
        .iter()
        .map(|h| op("until_refused", h, port).n("within", WITHIN))
        .collect()
}

/// One 100-byte UDP echo off `host:port` (loopback addresses of both
/// families), sent again every 0.1 s for [`WITHIN`].
fn udp_reach_ops(port: u16) -> Vec<Obj> {
    ["127.0.0.1", "::1"]
        .iter()
        .map(|h| echo(h, port, &[100]).n("within", WITHIN).n("wait", 0.1))
        .collect()
}

/// Both echoes of [`udp_reach_ops`] came back from the address and `port`
/// they went to.
fn assert_udp_reached(res: &[common::json::Json], port: u16, ctx: &str) {
    udp::assert_replies_from(echoed(res, 0, ctx), "127.0.0.1", port, ctx);
    udp::assert_replies_from(echoed(res, 1, ctx), "::1", port, ctx);
}

/// The client's output, then the logs of the server started as `server`
/// and of pasta.
fn context(rig: &Rig, out: &std::process::Output, server: &str) -> String {
    format!("{}\n{}\n{}", text(out), rig.log(server), rig.log("pasta"))
}

fn assert_reached(res: &[common::json::Json], started: Instant, what: &str, ctx: &str) {
    for i in 0..2 {
        let r = res.get(i);
        let err = r
            .and_then(|r| r.get("error"))
            .and_then(|e| e.as_str().map(String::from));
        assert!(
            r.is_some() && err.is_none(),
            "{what}: no echo from {} within {WITHIN} s of the server listening \
             ({:.2} s since then): {}\n{ctx}",
            r.map_or("?", |r| r.str_of("to")),
            started.elapsed().as_secs_f64(),
            err.unwrap_or_else(|| "no result".into())
        );
    }
}

fn assert_released(res: &[common::json::Json], what: &str, ctx: &str) {
    for i in 0..2 {
        let r = op_ok(res, i, ctx);
        assert!(
            r.get("refused") == Some(&common::json::Json::Bool(true)),
            "{what}: connections to {} not refused within {WITHIN} s of the server \
             stopping (last: {})\n{ctx}",
            r.str_of("to"),
            r.str_of("last")
        );
    }
}

/// pasta with `opts`; then a TCP server in the namespace on 5101: reached
/// from the host's loopback, then released once it stops.
fn tcp_ns_server_appears_on_host_loopback(who: As, opts: &[&str]) {
    let rig = Rig::new();
    let t = Tcp::new(&rig);
    let mut ns = PastaNs::start(&rig, who, opts);
    let mut server = tcp_echo_server(&t, |argv| ns.cmd(&rig, argv), 5101, "nsserver");
    let started = Instant::now();
    let (out, res) = t.client(&rig.host, &reach_ops(5101), tcp::QUICK);
    let ctx = context(&rig, &out, "nsserver");
    assert_reached(
        &res,
        started,
        "TCP server in the namespace, client on the host",
        &ctx,
    );
    stop(&mut server);
    let (out, res) = t.client(&rig.host, &release_ops(5101), tcp::QUICK);
    let ctx = format!("{}\n{}", text(&out), rig.log("pasta"));
    assert_released(&res, "TCP server in the namespace stopped", &ctx);
    ns.assert_running(&rig);
}

#[test]
fn auto_tcp_t_auto_forwards_a_namespace_server_started_later_and_releases_it() {
    tcp_ns_server_appears_on_host_loopback(As::User, &["-t", "auto"]);
}

#[test]
fn auto_tcp_t_auto_forwards_a_namespace_server_started_later_and_releases_it_as_root() {
    tcp_ns_server_appears_on_host_loopback(As::Root, &["-t", "auto"]);
}

#[test]
fn auto_tcp_default_forwards_a_namespace_server_started_later_and_releases_it() {
    tcp_ns_server_appears_on_host_loopback(As::User, &[]);
}

#[test]
fn auto_udp_u_auto_forwards_a_namespace_server_started_later() {
    let rig = Rig::new();
    let u = Udp::new(&rig);
    let ns = PastaNs::start(&rig, As::User, &["-u", "auto"]);
    let ready = rig.tmp_path("nsserver.ready");
    let argv = u.echo_server_argv(&ready, &[("::", 5102)]);
    let mut server = u.spawn_server(&mut ns.cmd(&rig, &argv), &ready, "nsserver");
    let (out, res) = u.client(&rig.host, &udp_reach_ops(5102), udp::UDP_RUN);
    let ctx = context(&rig, &out, "nsserver");
    assert_udp_reached(&res, 5102, &ctx);
    stop(&mut server);
}

#[test]
fn auto_tcp_capital_t_auto_forwards_a_host_server_started_later_and_releases_it() {
    let rig = Rig::new();
    let t = Tcp::new(&rig);
    let mut ns = PastaNs::start(&rig, As::User, &["-T", "auto"]);
    let mut server = tcp_echo_server(&t, |argv| rig.host_cmd(argv), 5103, "hostserver");
    let started = Instant::now();
    let run = |ops: &[Obj]| t.run(&mut ns.cmd(&rig, &t.client_argv(ops)), tcp::QUICK);
    let (out, res) = run(&reach_ops(5103));
    let ctx = context(&rig, &out, "hostserver");
    assert_reached(
        &res,
        started,
        "TCP server on the host, client in the namespace",
        &ctx,
    );
    stop(&mut server);
    let (out, res) = run(&release_ops(5103));
    let ctx = format!("{}\n{}", text(&out), rig.log("pasta"));
    assert_released(&res, "TCP server on the host stopped", &ctx);
    ns.assert_running(&rig);
}

#[test]
fn auto_udp_capital_u_auto_forwards_a_host_server_started_later() {
    let rig = Rig::new();
    let u = Udp::new(&rig);
    let ns = PastaNs::start(&rig, As::User, &["-U", "auto"]);
    let mut server = u.serve(&rig.host, "hostserver", &[("::", 5104)]);
    let argv = u.client_argv(&udp_reach_ops(5104));
    let (out, res) = u.run(&mut ns.cmd(&rig, &argv), udp::UDP_RUN);
    let ctx = context(&rig, &out, "hostserver");
    assert_udp_reached(&res, 5104, &ctx);
    stop(&mut server);
}
