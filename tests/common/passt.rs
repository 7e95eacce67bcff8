//! A foreground passt in the rig's host namespace, serving a socket in the
//! rig's temp dir (never the default `/tmp/passt_N.socket`, which the rest
//! of the machine shares). The rig tracks it: it is ended (by PID) when the
//! rig drops, also during a panic.
//!
//! [`PasstWorld`]: such a passt with its [`PasstGuest`], as the guest of
//! the shared TCP ([`tcp::Guest`]) and UDP ([`udp::UdpGuest`]) scenarios.

use super::guest::{Ipv4Setup, PasstGuest};
use super::json::Json;
use super::tcp::{self, Obj, Tcp};
use super::udp::{self, Udp};
use super::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};

/// A foreground passt (`-f`) serving a socket in the rig's temp dir.
pub struct Passt {
    pub child: Child,
    pub sock: PathBuf,
    /// Its `-p` capture (an empty path when started without one).
    pub pcap: PathBuf,
    /// Name of its output for [`Rig::log`].
    pub log: String,
}

/// `passt ARGS` as `who` in the rig's host namespace.
pub fn passt_cmd(rig: &Rig, who: As, args: &[&str]) -> Command {
    let mut argv = vec![passt_bin().to_string_lossy().into_owned()];
    argv.extend(args.iter().map(|a| a.to_string()));
    rig.host_cmd_as(who, &argv)
}

/// Starts `passt -f -s TAG.socket -P TAG.pid -p TAG.pcap EXTRA` as `who`
/// and returns it once the PID file says it is ready.
pub fn start_passt(rig: &Rig, who: As, tag: &str, extra: &[&str]) -> Passt {
    let sock = rig.tmp_path(&format!("{tag}.socket"));
    start_passt_at(rig, who, tag, &sock, extra)
}

/// [`start_passt`] with the socket at `sock`.
pub fn start_passt_at(rig: &Rig, who: As, tag: &str, sock: &Path, extra: &[&str]) -> Passt {
    let pcap = rig.tmp_path(&format!("{tag}.pcap"));
    spawn_passt(rig, who, tag, sock, Some(&pcap), extra, &[])
}

/// [`start_passt`] without a capture (`-p` would record every frame of a
/// bulk transfer): `passt -f -s TAG.socket -P TAG.pid EXTRA`.
pub fn start_passt_uncaptured(rig: &Rig, who: As, tag: &str, extra: &[&str]) -> Passt {
    start_passt_uncaptured_env(rig, who, tag, extra, &[])
}

/// [`start_passt_uncaptured`] with `env` added to passt's environment
/// (test-only knobs such as `PASST_RS_TEST_NO_PEEK_OFF`).
pub fn start_passt_uncaptured_env(
    rig: &Rig,
    who: As,
    tag: &str,
    extra: &[&str],
    env: &[(&str, &str)],
) -> Passt {
    let sock = rig.tmp_path(&format!("{tag}.socket"));
    spawn_passt(rig, who, tag, &sock, None, extra, env)
}

fn spawn_passt(
    rig: &Rig,
    who: As,
    tag: &str,
    sock: &Path,
    pcap: Option<&Path>,
    extra: &[&str],
    env: &[(&str, &str)],
) -> Passt {
    let pid_file = rig.tmp_path(&format!("{tag}.pid"));
    let mut args = vec!["-f", "-s", sock.to_str().unwrap(), "-P"];
    args.push(pid_file.to_str().unwrap());
    if let Some(p) = pcap {
        args.extend(["-p", p.to_str().unwrap()]);
    }
    args.extend(extra);
    let mut cmd = passt_cmd(rig, who, &args);
    cmd.envs(env.iter().copied());
    let mut child = rig.spawn_logged(&mut cmd, tag);
    match wait_ready(&mut child, &pid_file, SHORT) {
        Started::Ready(_) => {}
        other => panic!("passt did not start: {other:?}\n{}", rig.log(tag)),
    }
    Passt {
        child,
        sock: sock.to_path_buf(),
        pcap: pcap.map(Path::to_path_buf).unwrap_or_default(),
        log: tag.to_string(),
    }
}

impl Passt {
    /// Waits for passt to exit (bounded) and returns its exit code.
    pub fn exit_code(&mut self, rig: &Rig) -> Option<i32> {
        wait_exit(rig, &mut self.child, SHORT, &self.log, "").code()
    }

    /// Panics unless passt is still running.
    pub fn assert_running(&mut self, rig: &Rig) {
        let status = self.child.try_wait().expect("try_wait");
        assert!(
            status.is_none(),
            "passt exited ({status:?})\n{}",
            rig.log(&self.log)
        );
    }
}

/// A passt and its guest, in a rig: the guest's programs run in the
/// guest's namespace, logged as "guest".
pub struct PasstWorld<'r> {
    pub rig: &'r Rig,
    pub passt: Passt,
    pub guest: PasstGuest,
}

impl<'r> PasstWorld<'r> {
    /// Starts a passt (without a capture) as `who` with `opts`, and its
    /// guest, with IPv4 set up as `v4`.
    pub fn start(rig: &'r Rig, who: As, opts: &[&str], v4: Ipv4Setup) -> PasstWorld<'r> {
        PasstWorld::start_with_env(rig, who, opts, v4, &[])
    }

    /// [`PasstWorld::start`] with `env` added to passt's environment.
    pub fn start_with_env(
        rig: &'r Rig,
        who: As,
        opts: &[&str],
        v4: Ipv4Setup,
        env: &[(&str, &str)],
    ) -> PasstWorld<'r> {
        let passt = start_passt_uncaptured_env(rig, who, "passt", opts, env);
        let guest = PasstGuest::with(&passt.sock, rig.tmp_dir(), v4);
        PasstWorld { rig, passt, guest }
    }

    /// Panics unless passt still runs and the bridge carried frames both
    /// ways and still runs.
    pub fn assert_still_working(&mut self) {
        self.passt.assert_running(self.rig);
        let g = &self.guest;
        assert!(
            g.bridge_running() && g.frames_to_passt() > 0 && g.frames_to_guest() > 0,
            "{}",
            self.describe()
        );
    }

    /// The bridge's report and passt's output.
    pub fn describe(&self) -> String {
        format!(
            "\n{}\n{}",
            self.guest.report(),
            self.rig.log(&self.passt.log)
        )
    }
}

impl tcp::Guest for PasstWorld<'_> {
    fn client(&self, t: &Tcp, ops: &[Obj], timeout: Duration) -> (Output, Vec<Json>) {
        t.run(&mut self.guest.cmd(&t.client_argv(ops)), timeout)
    }

    fn serve(&self, t: &Tcp, listeners: &[Obj]) -> (Child, String) {
        let ready = self.rig.tmp_path("guest.ready");
        let mut cmd = self.guest.cmd(&t.server_argv(&ready, listeners));
        (t.spawn_server(&mut cmd, &ready, "guest"), "guest".into())
    }

    fn describe(&self) -> String {
        PasstWorld::describe(self)
    }
}

impl udp::UdpGuest for PasstWorld<'_> {
    fn client(&self, u: &Udp, ops: &[Obj]) -> (Output, Vec<Json>) {
        u.run(&mut self.guest.cmd(&u.client_argv(ops)), udp::UDP_RUN)
    }

    fn serve(&self, u: &Udp, listeners: &[(&str, u16)]) -> (Child, String) {
        let ready = self.rig.tmp_path("guest.ready");
        let mut cmd = self.guest.cmd(&u.echo_server_argv(&ready, listeners));
        (u.spawn_server(&mut cmd, &ready, "guest"), "guest".into())
    }

    fn describe(&self) -> String {
        PasstWorld::describe(self)
    }
}
