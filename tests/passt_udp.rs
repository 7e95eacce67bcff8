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

use common::guest::Ipv4Setup;
use common::passt::PasstWorld;
use common::tcp::Fam;
use common::udp::{self, Udp, UdpGuest};
use common::*;

/// Runs `scenario` in a new rig with a passt started by the ordinary user
/// with `opts`, and its guest; then checks that passt still runs and the
/// bridge carried frames both ways.
fn with_passt(opts: &[&str], scenario: impl FnOnce(&Udp, &dyn UdpGuest)) {
    let rig = Rig::new();
    let u = Udp::new(&rig);
    let mut world = PasstWorld::start(&rig, As::User, opts, Ipv4Setup::Static);
    scenario(&u, &world);
    world.assert_still_working();
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
