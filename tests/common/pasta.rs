//! pasta's namespace as the guest of the shared scenarios, two ways:
//!
//! - [`PastaGuest`]: every guest program is the command of a new
//!   `pasta --config-net OPTS -- PROGRAM` (the way tests/tcp.rs runs them),
//!   for the TCP ([`tcp::Guest`]) and UDP ([`udp::UdpGuest`]) scenarios;
//! - [`PastaNs`]: one `pasta --config-net OPTS -- sleep` that holds the
//!   namespace while the test starts and stops programs inside it (root,
//!   `nsenter --net`) whenever it likes: for what must happen after pasta
//!   started (automatic port forwarding).
//!
//! Either way pasta and everything started inside are tracked by the rig
//! and ended by PID on drop, also during a panic.

use super::json::Json;
use super::tcp::{self, Obj, Tcp};
use super::udp::{self, Udp};
use super::*;
use std::ffi::OsString;
use std::process::{Child, Command, Output};
use std::time::Duration;

/// pasta's guest: each program is the command of a new
/// `pasta --config-net OPTS` started by `who`.
pub struct PastaGuest<'o> {
    pub who: As,
    pub opts: &'o [&'o str],
}

impl PastaGuest<'_> {
    /// `pasta --config-net OPTS -- ARGV` as the guest's caller.
    pub fn cmd(&self, rig: &Rig, argv: &[String]) -> Command {
        let mut args: Vec<String> = vec!["--config-net".into()];
        args.extend(self.opts.iter().map(|o| o.to_string()));
        args.push("--".into());
        args.extend(argv.iter().cloned());
        rig.pasta_cmd(self.who, &args)
    }
}

impl tcp::Guest for PastaGuest<'_> {
    fn client(&self, t: &Tcp, ops: &[Obj], timeout: Duration) -> (Output, Vec<Json>) {
        t.run(&mut self.cmd(t.rig, &t.client_argv(ops)), timeout)
    }

    fn serve(&self, t: &Tcp, listeners: &[Obj]) -> (Child, String) {
        let ready = t.rig.tmp_path("guest.ready");
        let mut cmd = self.cmd(t.rig, &t.server_argv(&ready, listeners));
        (t.spawn_server(&mut cmd, &ready, "pasta"), "pasta".into())
    }
}

impl udp::UdpGuest for PastaGuest<'_> {
    fn client(&self, u: &Udp, ops: &[Obj]) -> (Output, Vec<Json>) {
        u.run(&mut self.cmd(u.rig, &u.client_argv(ops)), udp::UDP_RUN)
    }

    fn serve(&self, u: &Udp, listeners: &[(&str, u16)]) -> (Child, String) {
        let ready = u.rig.tmp_path("guest.ready");
        let mut cmd = self.cmd(u.rig, &u.echo_server_argv(&ready, listeners));
        (u.spawn_server(&mut cmd, &ready, "pasta"), "pasta".into())
    }
}

/// A pasta namespace held open by `sleep`, for programs the test starts
/// inside it later ([`PastaNs::cmd`]).
pub struct PastaNs {
    /// pasta (`pasta --config-net OPTS -- sleep 300`), logged as "pasta".
    pub pasta: Child,
    /// The `sleep` inside: its namespace is the guest's.
    pub holder: u32,
}

impl PastaNs {
    /// Starts pasta as `who` with `opts` and returns once the namespace
    /// has lo up and the tap the host's IPv4 and IPv6 addresses.
    pub fn start(rig: &Rig, who: As, opts: &[&str]) -> PastaNs {
        let mut args: Vec<&str> = vec!["--config-net"];
        args.extend(opts);
        args.extend(["--", "sleep", "300"]);
        let pasta = rig.spawn_logged(&mut rig.pasta_cmd(who, &args), "pasta");
        let holder = wait_descendant(rig, pasta.id(), "sleep", "pasta");
        let ns = PastaNs { pasta, holder };
        let pid = holder.to_string();
        let mut last = Vec::new();
        let ready = wait_until(SHORT, || {
            let out = run_with_timeout(
                Command::new(tool("nsenter"))
                    .args(["-t", &pid, "-n", "ip", "-j", "addr"])
                    .env("PATH", STD_PATH),
                SHORT,
            );
            last = parse_links(&String::from_utf8_lossy(&out.stdout));
            let lo = last.iter().any(|l| l.ifname == "lo" && l.is_up());
            let tap = last.iter().any(|l| {
                l.ifname == HOST_IF
                    && l.is_up()
                    && l.addrs.iter().any(|a| a.local == HOST_IP4)
                    && l.addrs.iter().any(|a| a.local == HOST_IP6 && !a.tentative)
            });
            lo && tap
        });
        assert!(
            ready,
            "pasta's namespace never got lo up and the tap configured: {last:?}\n{}",
            rig.log("pasta")
        );
        ns
    }

    /// `argv` run as root inside the namespace (`nsenter --net`, which
    /// execs it: the command's PID is the program's), in the rig's temp
    /// dir, stdin from /dev/null.
    pub fn cmd<S: AsRef<std::ffi::OsStr>>(&self, rig: &Rig, argv: &[S]) -> Command {
        let mut c = Command::new(tool("nsenter"));
        c.arg("-t")
            .arg(self.holder.to_string())
            .args(["-n", "--"])
            .args(argv.iter().map(|a| OsString::from(a.as_ref())))
            .env("PATH", STD_PATH)
            .current_dir(rig.tmp_dir())
            .stdin(std::process::Stdio::null());
        c
    }

    /// Panics unless pasta still runs.
    pub fn assert_running(&mut self, rig: &Rig) {
        let st = self.pasta.try_wait().expect("try_wait");
        assert!(st.is_none(), "pasta exited ({st:?})\n{}", rig.log("pasta"));
    }
}
