//! TCP through passt end to end: the scenarios of tests/tcp.rs (shared in
//! `common::tcp`) with passt in place of pasta, and a guest that stands in
//! for a VM: a network namespace whose tap device is bridged to passt's
//! socket with qemu's stream framing (`common::guest::PasstGuest`),
//! configured with the host's addresses and routes via the gateway, as
//! passt's DHCP would give them (one test gets its IPv4 configuration from
//! passt's DHCP server through the bridge with busybox udhcpc).
//!
//! What is proven, for IPv4 and IPv6:
//! - 64 MiB arrive intact (SHA-256) guest -> remote and remote -> guest;
//! - clients in the remote namespace reach the guest's server through
//!   `-t 5001`, `-t 5002` and the remapped `-t 6003:5003` on the host's
//!   address, 64 MiB each way; an unforwarded port is refused;
//! - the guest reaches the host's loopback through the gateway address;
//! - 50 half-closed connections at once keep carrying data the other way;
//! - resets travel both ways;
//! - downloads a server writes in bursts with pauses arrive whole;
//! - and once each, clients in the host namespace reach the guest through
//!   `-t` on the loopback and the host's address, and closed ports are
//!   refused within a second.
//!
//! passt runs in the rig's host namespace with `-f` and a socket in the
//! rig's temp dir, as the ordinary user in most tests (as podman or libvirt
//! start it), as root where the test name says so. After each scenario
//! passt must still run and the bridge still carry frames both ways. The
//! guest goes first on drop (bridge stopped, its processes ended, its
//! namespace deleted), then the rig ends passt by PID. For debugging,
//! `PASST_RS_TEST_PASST_OPTS` adds options to passt's command line (`-d`,
//! or `-p FILE` in a directory the ordinary user may write to).

mod common;

use common::guest::Ipv4Setup;
use common::passt::PasstWorld;
use common::tcp::*;
use common::*;

/// Bulk transfer size.
const SIZE: u64 = 64 << 20;
/// Connections open at once in the half-close test.
const HALF_CLOSED: usize = 50;

/// Runs `scenario` in a new rig with a passt started by `who` with
/// `opts`, and its guest (IPv4 set up as `v4` says); then checks that
/// passt still runs and the bridge carried frames both ways and still
/// runs.
fn with_passt(who: As, opts: &[&str], v4: Ipv4Setup, scenario: impl FnOnce(&Tcp, &dyn Guest)) {
    let rig = Rig::new();
    let t = Tcp::new(&rig);
    let extra = std::env::var("PASST_RS_TEST_PASST_OPTS").unwrap_or_default();
    let mut opts = opts.to_vec();
    opts.extend(extra.split_whitespace());
    let mut world = PasstWorld::start(&rig, who, &opts, v4);
    scenario(&t, &world);
    world.assert_still_working();
}

family_and_caller_tests! {
    passt_tcp_guest_to_remote_upload_and_download_arrive_intact => guest_to_remote {
        v4_as_user_with_dhcp: (User, V4),
        v6_as_user: (User, V6),
    };
    passt_tcp_remote_to_guest_through_port_forwards_arrives_intact => remote_to_guest_forwarded {
        v4_as_user: (User, V4),
        v6_as_root: (Root, V6),
    };
    passt_tcp_guest_to_gateway_reaches_the_host_loopback_intact => guest_to_host_loopback {
        v4_as_user: (User, V4),
        v6_as_user: (User, V6),
    };
    passt_tcp_half_closed_connections_keep_carrying_data_50_at_once => half_close {
        v4_as_user: (User, V4),
        v6_as_user: (User, V6),
    };
    passt_tcp_resets_travel_both_ways => resets {
        v4_as_user: (User, V4),
        v6_as_root: (Root, V6),
    };
    passt_tcp_bursty_downloads_arrive_whole => bursty_download {
        v4_as_user: (User, V4),
        v6_as_user: (User, V6),
    };
}

/// The IPv4 test's guest configures itself by DHCP.
fn guest_to_remote(who: As, fam: Fam) {
    let v4 = match fam {
        Fam::V4 => Ipv4Setup::Dhcp,
        Fam::V6 => Ipv4Setup::Static,
    };
    with_passt(who, &[], v4, |t, g| {
        common::tcp::guest_to_remote(t, g, fam, SIZE);
    });
}

fn remote_to_guest_forwarded(who: As, fam: Fam) {
    let opts = ["-t", "5001", "-t", "5002", "-t", "6003:5003"];
    with_passt(who, &opts, Ipv4Setup::Static, |t, g| {
        common::tcp::remote_to_guest_forwarded(t, g, fam, SIZE);
    });
}

fn guest_to_host_loopback(who: As, fam: Fam) {
    with_passt(who, &[], Ipv4Setup::Static, |t, g| {
        common::tcp::guest_to_host_loopback(t, g, fam, SIZE);
    });
}

fn half_close(who: As, fam: Fam) {
    with_passt(who, &[], Ipv4Setup::Static, |t, g| {
        common::tcp::half_close(t, g, fam, HALF_CLOSED);
    });
}

fn resets(who: As, fam: Fam) {
    with_passt(who, &[], Ipv4Setup::Static, |t, g| {
        common::tcp::resets(t, g, fam);
    });
}

/// 16 MiB, four times.
fn bursty_download(who: As, fam: Fam) {
    with_passt(who, &[], Ipv4Setup::Static, |t, g| {
        common::tcp::bursty_download(t, g, fam, 16 << 20);
    });
}

#[test]
fn passt_tcp_host_reaches_guest_through_port_forward_on_loopback_and_host_address() {
    with_passt(
        As::User,
        &["-t", "5001"],
        Ipv4Setup::Static,
        common::tcp::host_to_guest_forwarded,
    );
}

#[test]
fn passt_tcp_closed_port_is_refused_within_a_second() {
    with_passt(As::User, &[], Ipv4Setup::Static, common::tcp::refused);
}
