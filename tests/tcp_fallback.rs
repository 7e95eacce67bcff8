//! The TCP scenarios of tests/tcp.rs (pasta) and tests/passt_tcp.rs (passt)
//! again, on the daemon's other paths, chosen with two test-only
//! environment variables that the daemon reads once at start:
//!
//! - `PASST_RS_TEST_NO_PEEK_OFF=1` (`no_peek_off` in the test names): as
//!   on a kernel without `SO_PEEK_OFF` for TCP (Linux before 6.9, such as
//!   Debian 12's 6.1 or RHEL 9's 5.14), where every peek at a socket starts
//!   at its first unacknowledged byte and the daemon skips what it already
//!   sent. Every scenario runs on this path.
//! - `PASST_RS_TEST_WMEM_MAX=212992` (`small_wmem_max`): as with the usual
//!   distribution default of `net.core.wmem_max` (below 1 MiB), where the
//!   daemon leaves SO_SNDBUF to the kernel's autotuning. The bulk transfers
//!   run on this path.
//!
//! Plus, on both paths, downloads that a server writes in bursts with
//! pauses (`common::tcp::bursty_download`): on the fallback path such
//! downloads were seen arriving cut short without any error.
//!
//! To keep the run time down, the daemon is started by the ordinary user
//! only (its normal caller), and the bulk size is 64 MiB.

mod common;

use common::guest::Ipv4Setup;
use common::json::Json;
use common::passt::PasstWorld;
use common::pasta::PastaGuest;
use common::tcp::{self, *};
use common::*;
use std::process::{Child, Command, Output};
use std::time::Duration;

/// Bulk transfer size.
const SIZE: u64 = 64 << 20;
/// Size of each bursty download.
const BURSTY: u64 = 16 << 20;

/// The daemon's path under test, and the environment that selects it.
#[derive(Clone, Copy, Debug)]
enum Path {
    /// No `SO_PEEK_OFF`: the fallback that skips already-sent bytes.
    NoPeekOff,
    /// `net.core.wmem_max` below 1 MiB: no explicit SO_SNDBUF.
    SmallWmemMax,
}

impl Path {
    fn env(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Path::NoPeekOff => &[("PASST_RS_TEST_NO_PEEK_OFF", "1")],
            Path::SmallWmemMax => &[("PASST_RS_TEST_WMEM_MAX", "212992")],
        }
    }
}

/// Declares, for each `name => body(Path)`, a module `name` with the tests
/// `v4_as_user` and `v6_as_user` calling `body(Path::Path, family)`.
macro_rules! path_tests {
    ($($name:ident => $body:ident($path:ident);)+) => {
        $(
            mod $name {
                #[test]
                fn v4_as_user() {
                    super::$body(super::Path::$path, super::Fam::V4);
                }

                #[test]
                fn v6_as_user() {
                    super::$body(super::Path::$path, super::Fam::V6);
                }
            }
        )+
    };
}

// ---------------------------------------------------------------------------
// pasta
// ---------------------------------------------------------------------------

path_tests! {
    tcp_no_peek_off_guest_to_remote_upload_and_download_arrive_intact => pasta_guest_to_remote(NoPeekOff);
    tcp_no_peek_off_remote_to_guest_through_port_forwards_arrives_intact => pasta_remote_to_guest_forwarded(NoPeekOff);
    tcp_no_peek_off_guest_to_gateway_reaches_the_host_loopback_intact => pasta_guest_to_host_loopback(NoPeekOff);
    tcp_no_peek_off_half_closed_connections_keep_carrying_data_200_at_once => pasta_half_close(NoPeekOff);
    tcp_no_peek_off_resets_travel_both_ways => pasta_resets(NoPeekOff);
    tcp_no_peek_off_bursty_downloads_arrive_whole => pasta_bursty_download(NoPeekOff);
    tcp_small_wmem_max_guest_to_remote_upload_and_download_arrive_intact => pasta_guest_to_remote(SmallWmemMax);
    tcp_small_wmem_max_remote_to_guest_through_port_forwards_arrives_intact => pasta_remote_to_guest_forwarded(SmallWmemMax);
    tcp_small_wmem_max_guest_to_gateway_reaches_the_host_loopback_intact => pasta_guest_to_host_loopback(SmallWmemMax);
    tcp_small_wmem_max_bursty_downloads_arrive_whole => pasta_bursty_download(SmallWmemMax);
}

#[test]
fn tcp_no_peek_off_host_reaches_guest_through_port_forward_on_loopback_and_host_address() {
    with_pasta(
        Path::NoPeekOff,
        &["-t", "5001"],
        tcp::host_to_guest_forwarded,
    );
}

#[test]
fn tcp_no_peek_off_closed_port_is_refused_within_a_second() {
    with_pasta(Path::NoPeekOff, &[], tcp::refused);
}

/// pasta's guest ([`PastaGuest`], started by the ordinary user) with the
/// environment of a [`Path`] added to pasta's.
struct PastaOn<'o> {
    guest: PastaGuest<'o>,
    path: Path,
}

impl PastaOn<'_> {
    fn cmd(&self, rig: &Rig, argv: &[String]) -> Command {
        let mut cmd = self.guest.cmd(rig, argv);
        cmd.envs(self.path.env().iter().copied());
        cmd
    }
}

impl tcp::Guest for PastaOn<'_> {
    fn client(&self, t: &Tcp, ops: &[Obj], timeout: Duration) -> (Output, Vec<Json>) {
        t.run(&mut self.cmd(t.rig, &t.client_argv(ops)), timeout)
    }

    fn serve(&self, t: &Tcp, listeners: &[Obj]) -> (Child, String) {
        let ready = t.rig.tmp_path("guest.ready");
        let mut cmd = self.cmd(t.rig, &t.server_argv(&ready, listeners));
        (t.spawn_server(&mut cmd, &ready, "pasta"), "pasta".into())
    }
}

/// Runs `scenario` in a new rig, with pasta's guest on `path` with `opts`.
fn with_pasta(path: Path, opts: &[&str], scenario: impl FnOnce(&Tcp, &dyn tcp::Guest)) {
    let rig = Rig::new();
    let t = Tcp::new(&rig);
    let guest = PastaGuest {
        who: As::User,
        opts,
    };
    scenario(&t, &PastaOn { guest, path });
}

fn pasta_guest_to_remote(path: Path, fam: Fam) {
    with_pasta(path, &[], |t, g| tcp::guest_to_remote(t, g, fam, SIZE));
}

fn pasta_remote_to_guest_forwarded(path: Path, fam: Fam) {
    let opts = ["-t", "5001", "-t", "5002", "-t", "6003:5003"];
    with_pasta(path, &opts, |t, g| {
        tcp::remote_to_guest_forwarded(t, g, fam, SIZE);
    });
}

fn pasta_guest_to_host_loopback(path: Path, fam: Fam) {
    with_pasta(path, &[], |t, g| {
        tcp::guest_to_host_loopback(t, g, fam, SIZE);
    });
}

fn pasta_half_close(path: Path, fam: Fam) {
    with_pasta(path, &[], |t, g| tcp::half_close(t, g, fam, 200));
}

fn pasta_resets(path: Path, fam: Fam) {
    with_pasta(path, &[], |t, g| tcp::resets(t, g, fam));
}

fn pasta_bursty_download(path: Path, fam: Fam) {
    with_pasta(path, &[], |t, g| tcp::bursty_download(t, g, fam, BURSTY));
}

// ---------------------------------------------------------------------------
// passt
// ---------------------------------------------------------------------------

path_tests! {
    passt_tcp_no_peek_off_guest_to_remote_upload_and_download_arrive_intact => passt_guest_to_remote(NoPeekOff);
    passt_tcp_no_peek_off_remote_to_guest_through_port_forwards_arrives_intact => passt_remote_to_guest_forwarded(NoPeekOff);
    passt_tcp_no_peek_off_guest_to_gateway_reaches_the_host_loopback_intact => passt_guest_to_host_loopback(NoPeekOff);
    passt_tcp_no_peek_off_half_closed_connections_keep_carrying_data_50_at_once => passt_half_close(NoPeekOff);
    passt_tcp_no_peek_off_resets_travel_both_ways => passt_resets(NoPeekOff);
    passt_tcp_no_peek_off_bursty_downloads_arrive_whole => passt_bursty_download(NoPeekOff);
    passt_tcp_small_wmem_max_guest_to_remote_upload_and_download_arrive_intact => passt_guest_to_remote(SmallWmemMax);
    passt_tcp_small_wmem_max_remote_to_guest_through_port_forwards_arrives_intact => passt_remote_to_guest_forwarded(SmallWmemMax);
    passt_tcp_small_wmem_max_guest_to_gateway_reaches_the_host_loopback_intact => passt_guest_to_host_loopback(SmallWmemMax);
    passt_tcp_small_wmem_max_bursty_downloads_arrive_whole => passt_bursty_download(SmallWmemMax);
}

#[test]
fn passt_tcp_no_peek_off_host_reaches_guest_through_port_forward_on_loopback_and_host_address() {
    with_passt(
        Path::NoPeekOff,
        &["-t", "5001"],
        tcp::host_to_guest_forwarded,
    );
}

#[test]
fn passt_tcp_no_peek_off_closed_port_is_refused_within_a_second() {
    with_passt(Path::NoPeekOff, &[], tcp::refused);
}

/// Runs `scenario` in a new rig with a passt on `path` started by the
/// ordinary user with `opts` (and `PASST_RS_TEST_PASST_OPTS`, as in
/// tests/passt_tcp.rs), and its guest; then checks that passt still runs
/// and the bridge carried frames both ways.
fn with_passt(path: Path, opts: &[&str], scenario: impl FnOnce(&Tcp, &dyn tcp::Guest)) {
    let rig = Rig::new();
    let t = Tcp::new(&rig);
    let extra = std::env::var("PASST_RS_TEST_PASST_OPTS").unwrap_or_default();
    let mut opts = opts.to_vec();
    opts.extend(extra.split_whitespace());
    let mut world =
        PasstWorld::start_with_env(&rig, As::User, &opts, Ipv4Setup::Static, path.env());
    scenario(&t, &world);
    world.assert_still_working();
}

fn passt_guest_to_remote(path: Path, fam: Fam) {
    with_passt(path, &[], |t, g| tcp::guest_to_remote(t, g, fam, SIZE));
}

fn passt_remote_to_guest_forwarded(path: Path, fam: Fam) {
    let opts = ["-t", "5001", "-t", "5002", "-t", "6003:5003"];
    with_passt(path, &opts, |t, g| {
        tcp::remote_to_guest_forwarded(t, g, fam, SIZE);
    });
}

fn passt_guest_to_host_loopback(path: Path, fam: Fam) {
    with_passt(path, &[], |t, g| {
        tcp::guest_to_host_loopback(t, g, fam, SIZE);
    });
}

fn passt_half_close(path: Path, fam: Fam) {
    with_passt(path, &[], |t, g| tcp::half_close(t, g, fam, 50));
}

fn passt_resets(path: Path, fam: Fam) {
    with_passt(path, &[], |t, g| tcp::resets(t, g, fam));
}

fn passt_bursty_download(path: Path, fam: Fam) {
    with_passt(path, &[], |t, g| tcp::bursty_download(t, g, fam, BURSTY));
}
