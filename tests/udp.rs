//! UDP translation end to end through pasta's tap (REFERENCE.md §2.4,
//! §2.7), with real kernels on both ends (DESIGN.md §5).
//!
//! What is proven, for IPv4 and IPv6, with pasta started by root and by an
//! ordinary user:
//! - the guest echoes a 100-byte and a 60000-byte datagram (the tap's MTU
//!   is 65520) off a server in the remote namespace: both come back intact
//!   from the server's address and port, and the server saw them come from
//!   the host's address and the guest's own source port (UDP keeps it);
//! - the same through the gateway address to a server on the host's
//!   loopback;
//! - a client in the remote namespace echoes datagrams off the guest's
//!   server through `-u 5001` and the remapped `-u 5000:6000`: replies come
//!   from the host's address and the port the client sent to (5000, not
//!   6000), and the guest saw the client's address and port.
//!
//! The programs are `tests/udp_helper.py`; the scenarios are shared with
//! passt's tests (tests/passt_udp.rs) in `common::udp`. The guest is
//! pasta's own namespace: each guest program is the command of a new
//! `pasta --config-net` (`common::pasta::PastaGuest`). The loopback paths
//! (`-u` from the host's loopback, `-U`) are in tests/splice.rs.

mod common;

use common::pasta::PastaGuest;
use common::tcp::Fam;
use common::udp::{self, Udp};
use common::*;

family_and_caller_tests! {
    udp_guest_to_remote_echo_keeps_the_source_port => guest_to_remote;
    udp_guest_to_gateway_reaches_the_host_loopback => guest_to_host_loopback;
    udp_remote_to_guest_through_port_forwards_replies_from_the_forwarded_port => remote_to_guest_forwarded;
}

/// Runs `scenario` in a new rig, with pasta's guest started by `who` with
/// `opts`.
fn with_pasta(who: As, opts: &[&str], scenario: impl FnOnce(&Udp, &dyn udp::UdpGuest)) {
    let rig = Rig::new();
    let u = Udp::new(&rig);
    scenario(&u, &PastaGuest { who, opts });
}

fn guest_to_remote(who: As, fam: Fam) {
    with_pasta(who, &[], |u, g| udp::guest_to_remote(u, g, fam));
}

fn guest_to_host_loopback(who: As, fam: Fam) {
    with_pasta(who, &[], |u, g| udp::guest_to_host_loopback(u, g, fam));
}

fn remote_to_guest_forwarded(who: As, fam: Fam) {
    let opts = ["-u", "5001", "-u", "5000:6000"];
    with_pasta(who, &opts, |u, g| udp::remote_to_guest_forwarded(u, g, fam));
}
