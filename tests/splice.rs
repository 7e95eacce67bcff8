//! pasta's loopback paths (REFERENCE.md §1.7, §2.4, §2.6): traffic between
//! the host's loopback and the namespace that pasta relays socket to socket
//! (the splice fast path) instead of through the tap.
//!
//! What is proven, for IPv4 and IPv6:
//! - `-t`: 256 MiB (32 MiB with pasta started by root) from a client on the
//!   host's loopback to the namespace's server and back (the server sends)
//!   arrive intact (SHA-256 on both ends); the server sees the connection
//!   come from the namespace's own address (spliced: a socket inside the
//!   namespace connects to it), not from the gateway;
//! - `--no-splice`: the same port forward still works, through the tap (the
//!   server sees the gateway address, which stands for the host's
//!   loopback), for TCP and UDP;
//! - `-T`: a client on the namespace's loopback reaches a server on the
//!   host's loopback, upload and download intact;
//! - `-U`: a client on the namespace's loopback echoes a 100-byte and a
//!   60000-byte datagram off a server on the host's loopback: replies come
//!   from the address and port it sent to, and the server saw the client's
//!   port (UDP keeps it);
//! - `-u` from the host's loopback (the spliced UDP relay): echoes through
//!   `-u 5001` and the remapped `-u 5000:6000` come back from the port the
//!   client sent to, and the namespace's server saw the client's port;
//! - `--host-lo-to-ns-lo`: the same `-t` and `-u` paths reach the
//!   namespace's server from the namespace's loopback address.
//!
//! Clients and servers are tests/tcp_helper.py and tests/udp_helper.py.

mod common;

use common::pasta::PastaGuest;
use common::tcp::{self, *};
use common::udp::{self, Udp, echo, echoed};
use common::*;

family_and_caller_tests! {
    splice_tcp_host_loopback_to_namespace_through_t_both_directions_intact => tcp_in_spliced;
}

family_tests! {
    splice_tcp_no_splice_still_forwards_host_loopback_through_the_tap => tcp_in_no_splice;
    splice_tcp_namespace_loopback_to_host_loopback_through_capital_t => tcp_out_spliced;
    splice_udp_namespace_loopback_to_host_loopback_through_capital_u => udp_out_spliced;
    splice_udp_host_loopback_to_namespace_through_u_replies_from_the_forwarded_port => udp_in_spliced;
    splice_udp_no_splice_still_forwards_host_loopback_through_the_tap => udp_in_no_splice;
    splice_tcp_host_lo_to_ns_lo_reaches_the_namespace_loopback => tcp_in_to_ns_lo;
    splice_udp_host_lo_to_ns_lo_reaches_the_namespace_loopback => udp_in_to_ns_lo;
}

// ---------------------------------------------------------------------------
// TCP
// ---------------------------------------------------------------------------

/// With `opts` (which forward 5001 and 5002): the namespace's server takes
/// an upload of `size` bytes on 5001 and sends the same file on 5002; the
/// client on the host's loopback checks both; the server must have seen
/// both connections come from `peer`.
fn tcp_in(who: As, fam: Fam, opts: &[&str], size: u64, peer: &str, why: &str) {
    let rig = Rig::new();
    let t = Tcp::new(&rig);
    let data = t.random_file("data", size);
    let guest = PastaGuest { who, opts };
    let (mut server, name) = tcp::Guest::serve(
        &guest,
        &t,
        &[
            listener("sink", "::", 5001, Some(1)),
            listener("source", "::", 5002, Some(1)).s("file", &data.path),
        ],
    );
    let lo = fam.lo();
    let ops = [
        op("upload", lo, 5001).s("file", &data.path).n("retry", 5),
        op("download", lo, 5002).n("retry", 5),
    ];
    let (out, res) = t.client(&rig.host, &ops, BULK);
    let ctx = format!("{}\n{}", text(&out), rig.log(&name));
    let expected = [
        (&data, "upload from the host's loopback"),
        (&data, "download to the host's loopback"),
    ];
    assert_transfers(&res, &expected, &ctx);
    assert_eq!(out.status.code(), Some(0), "{ctx}");
    let (ctx, srv) = t.finish(&mut server, &name, &ctx);
    let sink = served(&srv, 5001, 1, &ctx);
    assert_same_data(fact(sink, 0), &data, "upload (the namespace's log)", &ctx);
    for port in [5001, 5002] {
        let seen = fact(served(&srv, port, 1, &ctx), 0).str_of("peer");
        assert_eq!(
            seen, peer,
            "the namespace's server saw the connection on port {port} come from {seen}, \
             want {peer} ({why})\n{ctx}"
        );
    }
}

fn tcp_in_spliced(who: As, fam: Fam) {
    let opts = ["-t", "5001,5002"];
    let why = "spliced: a socket in the namespace connects to the namespace's address";
    tcp_in(who, fam, &opts, pasta_bulk_size(who), fam.host(), why);
}

fn tcp_in_no_splice(fam: Fam) {
    let opts = ["--no-splice", "-t", "5001,5002"];
    let why = "through the tap, the host's loopback appears as the gateway";
    tcp_in(As::User, fam, &opts, 8 << 20, fam.gw(), why);
}

fn tcp_in_to_ns_lo(fam: Fam) {
    let opts = ["--host-lo-to-ns-lo", "-t", "5001,5002"];
    let why = "--host-lo-to-ns-lo: the namespace's socket connects to its loopback";
    tcp_in(As::User, fam, &opts, 8 << 20, fam.lo(), why);
}

/// `-T 5003,5004`: a client in the namespace uploads 32 MiB to a server on
/// the host's loopback (port 5003) and downloads 32 MiB from it (5004),
/// both through the namespace's loopback.
fn tcp_out_spliced(fam: Fam) {
    let rig = Rig::new();
    let t = Tcp::new(&rig);
    let data = t.random_file("data", 32 << 20);
    let lo = fam.lo();
    let mut server = t.serve(
        &rig.host,
        "server",
        &[
            listener("sink", lo, 5003, Some(1)),
            listener("source", lo, 5004, Some(1)).s("file", &data.path),
        ],
    );
    let guest = PastaGuest {
        who: As::User,
        opts: &["-T", "5003,5004"],
    };
    let ops = [
        op("upload", lo, 5003).s("file", &data.path).n("retry", 5),
        op("download", lo, 5004).n("retry", 5),
    ];
    let (out, res) = tcp::Guest::client(&guest, &t, &ops, BULK);
    let ctx = format!("{}\n{}", text(&out), rig.log("server"));
    let expected = [
        (&data, "upload to the host's loopback"),
        (&data, "download from the host's loopback"),
    ];
    assert_transfers(&res, &expected, &ctx);
    assert_eq!(out.status.code(), Some(0), "{ctx}");
    let (ctx, srv) = t.finish(&mut server, "server", &ctx);
    assert_same_data(
        fact(served(&srv, 5003, 1, &ctx), 0),
        &data,
        "upload (the host server's log)",
        &ctx,
    );
    let peer = fact(served(&srv, 5004, 1, &ctx), 0).str_of("peer");
    assert_eq!(
        peer, lo,
        "the host's server saw the connection come from {peer}\n{ctx}"
    );
}

// ---------------------------------------------------------------------------
// UDP
// ---------------------------------------------------------------------------

/// `-U 5005`: the namespace's client, bound to port 40005, echoes datagrams
/// off a server on the host's loopback through the namespace's loopback.
fn udp_out_spliced(fam: Fam) {
    let rig = Rig::new();
    let u = Udp::new(&rig);
    let lo = fam.lo();
    let mut server = u.serve(&rig.host, "server", &[(lo, 5005)]);
    let guest = PastaGuest {
        who: As::User,
        opts: &["-U", "5005"],
    };
    let ops = [echo(lo, 5005, &udp::SIZES).n("bind_port", 40005)];
    let (out, res) = udp::UdpGuest::client(&guest, &u, &ops);
    let ctx = format!("{}\n{}", text(&out), rig.log("server"));
    udp::assert_replies_from(echoed(&res, 0, &ctx), lo, 5005, &ctx);
    assert_eq!(out.status.code(), Some(0), "{ctx}");
    udp::assert_seen(&u.seen("server"), 5005, &udp::SIZES, lo, 40005, &ctx);
    stop(&mut server);
}

/// With `opts` (which forward 5001 and 5000 to 6000): a client on the
/// host's loopback echoes datagrams off the namespace's server on 5001 and
/// (remapped) 5000; the server must have seen them come from `peer` and
/// the client's ports.
fn udp_in(fam: Fam, opts: &[&str], peer: &str) {
    let rig = Rig::new();
    let u = Udp::new(&rig);
    let guest = PastaGuest {
        who: As::User,
        opts,
    };
    let (mut server, name) = udp::UdpGuest::serve(&guest, &u, &[("::", 5001), ("::", 6000)]);
    let lo = fam.lo();
    let ops = [
        echo(lo, 5001, &udp::SIZES).n("bind_port", 40007),
        echo(lo, 5000, &udp::SIZES).n("bind_port", 40008),
    ];
    let (out, res) = u.client(&rig.host, &ops, udp::UDP_RUN);
    let ctx = format!("{}\n{}", text(&out), rig.log(&name));
    udp::assert_replies_from(echoed(&res, 0, &ctx), lo, 5001, &ctx);
    udp::assert_replies_from(echoed(&res, 1, &ctx), lo, 5000, &ctx);
    assert_eq!(out.status.code(), Some(0), "{ctx}");
    let seen = u.seen(&name);
    udp::assert_seen(&seen, 5001, &udp::SIZES, peer, 40007, &ctx);
    udp::assert_seen(&seen, 6000, &udp::SIZES, peer, 40008, &ctx);
    stop(&mut server);
}

fn udp_in_spliced(fam: Fam) {
    udp_in(fam, &["-u", "5001", "-u", "5000:6000"], fam.host());
}

fn udp_in_to_ns_lo(fam: Fam) {
    let opts = ["--host-lo-to-ns-lo", "-u", "5001", "-u", "5000:6000"];
    udp_in(fam, &opts, fam.lo());
}

fn udp_in_no_splice(fam: Fam) {
    udp_in(
        fam,
        &["--no-splice", "-u", "5001", "-u", "5000:6000"],
        fam.gw(),
    );
}
