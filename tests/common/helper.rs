//! What the TCP and UDP helpers ([`super::tcp::Tcp`],
//! [`super::udp::Udp`]) share: a Python script written into the rig's temp
//! dir next to `helper_common.py` (the module both scripts import), run as
//! `python3 SCRIPT MODE SPEC`, with servers that create a `ready` file once
//! they listen and clients whose `RESULT` lines are read back.

use super::json::Json;
use super::tcp::{Obj, json_array, results};
use super::*;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::Duration;

/// The module `tcp_helper.py` and `udp_helper.py` import.
const COMMON: &str = include_str!("../helper_common.py");

/// A helper script in a rig's temp dir, and ways to start it.
pub struct Script<'a> {
    pub rig: &'a Rig,
    pub python: PathBuf,
    pub helper: PathBuf,
    /// What a server that never got ready did not do ("server did not
    /// start listening"), for the panic message.
    not_ready: &'static str,
}

/// Writes `text` as `name` into the rig's temp dir, readable by everyone.
fn write_readable(rig: &Rig, name: &str, text: &str) -> PathBuf {
    let path = rig.tmp_path(name);
    fs::write(&path, text).expect("write the helper");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod helper");
    path
}

impl<'a> Script<'a> {
    /// Writes the script `text` as `name` (and `helper_common.py`) into the
    /// rig's temp dir; a server that never gets ready "`not_ready`".
    pub fn new(rig: &'a Rig, name: &str, text: &str, not_ready: &'static str) -> Script<'a> {
        write_readable(rig, "helper_common.py", COMMON);
        Script {
            rig,
            python: tool("python3"),
            helper: write_readable(rig, name, text),
            not_ready,
        }
    }

    /// `python3 SCRIPT MODE SPEC`.
    pub fn argv(&self, mode: &str, spec: String) -> Vec<String> {
        vec![
            self.python.to_string_lossy().into_owned(),
            self.helper.to_string_lossy().into_owned(),
            mode.to_string(),
            spec,
        ]
    }

    /// argv of a client that runs `ops`.
    pub fn client_argv(&self, ops: &[Obj]) -> Vec<String> {
        self.argv("client", json_array(ops))
    }

    /// argv of a server with `listeners`, which creates `ready` once it
    /// listens.
    pub fn server_argv(&self, ready: &Path, listeners: &[Obj]) -> Vec<String> {
        let spec = Obj(Vec::new())
            .s("ready", &ready.to_string_lossy())
            .n("listen", json_array(listeners));
        self.argv("serve", spec.to_string())
    }

    /// Starts the server `cmd` (which creates `ready` once it listens)
    /// logged as `name`, and returns it once `ready` exists.
    pub fn spawn_server(&self, cmd: &mut Command, ready: &Path, name: &str) -> Child {
        let mut child = self.rig.spawn_logged(cmd, name);
        self.wait_ready(&mut child, ready, name);
        child
    }

    /// Waits for `child` (logged as `name`) to create `ready`; panics if it
    /// ends or [`SHORT`] passes first.
    pub fn wait_ready(&self, child: &mut Child, ready: &Path, name: &str) {
        let mut exited = None;
        wait_until(SHORT, || {
            if let Ok(Some(st)) = child.try_wait() {
                exited = Some(st);
            }
            exited.is_some() || ready.exists()
        });
        if !ready.exists() {
            let how = exited.map_or_else(|| format!("not within {SHORT:?}"), describe_status);
            let what = self.not_ready;
            panic!("{name}: the {what} ({how})\n{}", self.rig.log(name));
        }
    }

    /// Runs `cmd` (a client) to its end within `timeout`; its output and
    /// results.
    pub fn run(&self, cmd: &mut Command, timeout: Duration) -> (Output, Vec<Json>) {
        let out = self.rig.run(cmd, timeout);
        let res = results(&out.stdout);
        (out, res)
    }

    /// Runs the client `ops` as root in the rig's namespace `ns`, within
    /// `timeout`.
    pub fn client(&self, ns: &str, ops: &[Obj], timeout: Duration) -> (Output, Vec<Json>) {
        self.run(&mut self.rig.ns_cmd(ns, &self.client_argv(ops)), timeout)
    }

    /// The results a server logged as `name` has printed so far.
    pub fn logged_results(&self, name: &str) -> Vec<Json> {
        let out = fs::read(self.rig.tmp_path(&format!("{name}.out"))).unwrap_or_default();
        results(&out)
    }
}
