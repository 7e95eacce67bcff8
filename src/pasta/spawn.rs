//! `pasta [OPTS] [--] CMD ARGS`: run a command in new user, network, mount,
//! UTS, IPC and PID namespaces, with the caller mapped to root inside.
//!
//! Sequence: clone the child into its namespaces; the child blocks on a pipe
//! while the parent writes its uid/gid maps, joins its user namespace and
//! sets up the tap; [`SpawnedCommand::start`] then lets the child mount a
//! fresh `/proc`, set its hostname and `ping_group_range`, and exec the
//! command. If pasta dies first, the child is killed (parent-death signal).
//! The command's exit is reported through a pidfd the event loop watches.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;

use rustix::process::{Pid, PidfdFlags, WaitId, WaitIdOptions, pidfd_open, waitid};

use crate::sys::spawn::{CloneResult, clone_into_namespaces, kill_me_when_parent_dies};

/// Namespaces the command gets.
const NS_FLAGS: libc::c_int = libc::CLONE_NEWUSER
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWNS
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWPID;

/// The command, cloned and waiting for [`SpawnedCommand::start`].
pub struct SpawnedCommand {
    pid: Pid,
    pidfd: OwnedFd,
    go: Option<File>,
}

impl SpawnedCommand {
    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// `/proc/PID/ns/<kind>` of the command.
    pub fn ns_path(&self, kind: &str) -> PathBuf {
        PathBuf::from(format!("/proc/{}/ns/{kind}", self.pid.as_raw_nonzero()))
    }

    /// Lets the command run.
    pub fn start(&mut self) -> io::Result<()> {
        match self.go.take() {
            Some(mut go) => go.write_all(b"g"),
            None => Ok(()),
        }
    }

    /// Reaps the command once its pidfd is readable: the exit status pasta
    /// exits with (128 + signal if it was killed).
    pub fn exit_status(&self) -> io::Result<Option<i32>> {
        let status = waitid(
            WaitId::PidFd(self.pidfd.as_fd()),
            WaitIdOptions::EXITED | WaitIdOptions::NOHANG,
        )?;
        Ok(status.and_then(|s| {
            s.exit_status()
                .or_else(|| s.terminating_signal().map(|sig| 128 + sig))
        }))
    }
}

impl AsFd for SpawnedCommand {
    /// The pidfd: readable once the command has exited.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.pidfd.as_fd()
    }
}

/// Clones the command into new namespaces and maps `uid`/`gid` (the
/// caller's) to root inside. The child waits until [`SpawnedCommand::start`].
/// Must be called while the process is single-threaded.
pub fn spawn(cmd: &[OsString], uid: u32, gid: u32) -> io::Result<SpawnedCommand> {
    let argv = command_line(cmd);
    let (go_read, go_write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    match clone_into_namespaces(NS_FLAGS)? {
        CloneResult::Child => {
            drop(go_write);
            let code = run_child(File::from(go_read), &argv);
            std::process::exit(code)
        }
        CloneResult::Parent(pid) => {
            drop(go_read);
            let pidfd = pidfd_open(pid, PidfdFlags::empty())?;
            write_id_maps(pid, uid, gid)?;
            Ok(SpawnedCommand {
                pid,
                pidfd,
                go: Some(File::from(go_write)),
            })
        }
    }
}

/// What the child execs.
struct CommandLine {
    argv: Vec<OsString>,
    /// Run as a login shell (`argv[0]` prefixed with `-`).
    login_shell: bool,
}

/// The given command, or `$SHELL` (else `/bin/sh`) as a login shell.
fn command_line(cmd: &[OsString]) -> CommandLine {
    if !cmd.is_empty() {
        return CommandLine {
            argv: cmd.to_vec(),
            login_shell: false,
        };
    }
    let shell = std::env::var_os("SHELL")
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| OsString::from("/bin/sh"));
    CommandLine {
        argv: vec![shell],
        login_shell: true,
    }
}

fn write_id_maps(pid: Pid, uid: u32, gid: u32) -> io::Result<()> {
    let dir = format!("/proc/{}", pid.as_raw_nonzero());
    // Unprivileged callers must deny setgroups before writing gid_map.
    match std::fs::write(format!("{dir}/setgroups"), "deny") {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    std::fs::write(format!("{dir}/uid_map"), format!("0 {uid} 1"))
        .map_err(|e| io::Error::new(e.kind(), format!("writing uid_map: {e}")))?;
    std::fs::write(format!("{dir}/gid_map"), format!("0 {gid} 1"))
        .map_err(|e| io::Error::new(e.kind(), format!("writing gid_map: {e}")))
}

/// The child's side: wait for the go, prepare the namespaces, exec.
/// Returns only on failure, with the exit code to use.
fn run_child(mut go: File, command: &CommandLine) -> i32 {
    if kill_me_when_parent_dies().is_err() {
        return 1;
    }
    let mut byte = [0u8; 1];
    if !matches!(go.read(&mut byte), Ok(1)) {
        // pasta failed before the namespace was ready.
        return 1;
    }
    drop(go);
    if let Err(e) = prepare_namespaces() {
        log::warn!("Namespace set-up: {e}");
    }
    let err = exec_command(command);
    eprintln!(
        "pasta: cannot run {}: {err}",
        command.argv[0].to_string_lossy()
    );
    if err.kind() == io::ErrorKind::NotFound {
        127
    } else {
        126
    }
}

/// Fresh `/proc` for the new PID namespace, hostname `pasta-<host>`, and
/// ping sockets allowed for root inside (`ping_group_range = 0 0`).
fn prepare_namespaces() -> io::Result<()> {
    use rustix::mount::{MountFlags, MountPropagationFlags, mount, mount_change};
    mount_change(
        "/",
        MountPropagationFlags::REC | MountPropagationFlags::PRIVATE,
    )?;
    mount(
        "proc",
        "/proc",
        "proc",
        MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
        None,
    )?;
    let host = rustix::system::uname();
    let mut name = b"pasta-".to_vec();
    name.extend_from_slice(host.nodename().to_bytes());
    name.truncate(64);
    rustix::system::sethostname(&name)?;
    if let Err(e) = std::fs::write("/proc/sys/net/ipv4/ping_group_range", "0 0") {
        log::debug!("ping_group_range: {e}");
    }
    Ok(())
}

fn exec_command(command: &CommandLine) -> io::Error {
    let program: &OsStr = &command.argv[0];
    let mut cmd = std::process::Command::new(program);
    cmd.args(&command.argv[1..]);
    if command.login_shell {
        let base = std::path::Path::new(program)
            .file_name()
            .map(|b| b.as_bytes().to_vec())
            .unwrap_or_default();
        let mut login = b"-".to_vec();
        login.extend_from_slice(&base);
        cmd.arg0(OsStr::from_bytes(&login));
    }
    cmd.exec()
}
