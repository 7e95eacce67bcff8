//! UDP through passt end to end: the scenarios of tests/udp.rs (shared in
//! `common::udp`) with passt in place of pasta, and a guest that stands in
//! for a VM: a network namespace whose tap device is bridged to passt's
//! socket with qemu's stream framing (`common::guest::PasstGuest`),
//! configured with the host's addresses and routes via the gateway.
//!
//! What is proven:
//! - the guest echoes a 100-byte and a 60000-byte datagram off a server in
//!   the remote namespace (IPv4 and IPv6): replies come back intact from
//!   the server's address and port, and the server saw the host's address
//!   and the guest's own source port;
//! - the guest reaches a UDP server on the host's loopback through the
//!   gateway address (IPv4);
//! - a client in the remote namespace echoes datagrams off the guest's
//!   server through `-u 5001` and the remapped `-u 5000:6000` (IPv4 and
//!   IPv6): replies come from the port the client sent to.
//!
//! passt runs in the rig's host namespace with `-f`, as the ordinary user,
//! and must still run afterwards, with the bridge having carried frames
//! both ways.

mod common;

use common::guest::{Ipv4Setup, PasstGuest};
use common::json::Json;
use common::passt::*;
use common::tcp::{Fam, Obj, json_array};
use common::udp::{self, Udp, UdpGuest};
use common::*;
use std::process::{Child, Output};

/// A passt and its guest, in a rig.
struct PasstWorld<'r> {
    rig: &'r Rig,
    passt: Passt,
    guest: PasstGuest,
}

impl UdpGuest for PasstWorld<'_> {
    fn client(&self, u: &Udp, ops: &[Obj]) -> (Output, Vec<Json>) {
        u.run(
            &mut self.guest.cmd(&u.argv("client", json_array(ops))),
            udp::UDP_RUN,
        )
    }

    fn serve(&self, u: &Udp, listeners: &[(&str, u16)]) -> (Child, String) {
        let ready = self.rig.tmp_path("guest.ready");
        let mut cmd = self.guest.cmd(&u.server_argv(&ready, listeners));
        (u.spawn_server(&mut cmd, &ready, "guest"), "guest".into())
    }

    fn describe(&self) -> String {
        format!(
            "\n{}\n{}",
            self.guest.report(),
            self.rig.log(&self.passt.log)
        )
    }
}

/// Runs `scenario` in a new rig with a passt started by the ordinary user
/// with `opts`, and its guest; then checks that passt still runs and the
/// bridge carried frames both ways.
fn with_passt(opts: &[&str], scenario: impl FnOnce(&Udp, &dyn UdpGuest)) {
    let rig = Rig::new();
    let u = Udp::new(&rig);
    let passt = start_passt_uncaptured(&rig, As::User, "passt", opts);
    let guest = PasstGuest::with(&passt.sock, rig.tmp_dir(), Ipv4Setup::Static);
    let mut world = PasstWorld {
        rig: &rig,
        passt,
        guest,
    };
    scenario(&u, &world);
    world.passt.assert_running(&rig);
    let g = &world.guest;
    assert!(
        g.bridge_running() && g.frames_to_passt() > 0 && g.frames_to_guest() > 0,
        "{}",
        world.describe()
    );
}

#[test]
fn passt_udp_guest_to_remote_echo_keeps_the_source_port_v4() {
    with_passt(&[], |u, g| udp::guest_to_remote(u, g, Fam::V4));
}

#[test]
fn passt_udp_guest_to_remote_echo_keeps_the_source_port_v6() {
    with_passt(&[], |u, g| udp::guest_to_remote(u, g, Fam::V6));
}

#[test]
fn passt_udp_guest_to_gateway_reaches_the_host_loopback_v4() {
    with_passt(&[], |u, g| udp::guest_to_host_loopback(u, g, Fam::V4));
}

#[test]
fn passt_udp_remote_to_guest_through_port_forwards_replies_from_the_forwarded_port_v4() {
    let opts = ["-u", "5001", "-u", "5000:6000"];
    with_passt(&opts, |u, g| udp::remote_to_guest_forwarded(u, g, Fam::V4));
}

#[test]
fn passt_udp_remote_to_guest_through_port_forwards_replies_from_the_forwarded_port_v6() {
    let opts = ["-u", "5001", "-u", "5000:6000"];
    with_passt(&opts, |u, g| udp::remote_to_guest_forwarded(u, g, Fam::V6));
}
