//! A foreground passt in the rig's host namespace, serving a socket in the
//! rig's temp dir (never the default `/tmp/passt_N.socket`, which the rest
//! of the machine shares). The rig tracks it: it is ended (by PID) when the
//! rig drops, also during a panic.

use super::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};

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
    spawn_passt(rig, who, tag, sock, Some(&pcap), extra)
}

/// [`start_passt`] without a capture (`-p` would record every frame of a
/// bulk transfer): `passt -f -s TAG.socket -P TAG.pid EXTRA`.
pub fn start_passt_uncaptured(rig: &Rig, who: As, tag: &str, extra: &[&str]) -> Passt {
    let sock = rig.tmp_path(&format!("{tag}.socket"));
    spawn_passt(rig, who, tag, &sock, None, extra)
}

fn spawn_passt(
    rig: &Rig,
    who: As,
    tag: &str,
    sock: &Path,
    pcap: Option<&Path>,
    extra: &[&str],
) -> Passt {
    let pid_file = rig.tmp_path(&format!("{tag}.pid"));
    let mut args = vec!["-f", "-s", sock.to_str().unwrap(), "-P"];
    args.push(pid_file.to_str().unwrap());
    if let Some(p) = pcap {
        args.extend(["-p", p.to_str().unwrap()]);
    }
    args.extend(extra);
    let mut child = rig.spawn_logged(&mut passt_cmd(rig, who, &args), tag);
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
