//! pasta's side of the link: create or join the namespace, create the tap
//! in it, configure it, and watch for the namespace going away.
//!
//! [`attach`] does the whole set-up and returns an [`Attached`] namespace:
//! the tap fd (the link), the spawned command (if any) whose exit ends
//! pasta, and what tells that a joined namespace is gone.
//!
//! Order matters: user namespaces are joined while the process is still
//! single-threaded ([`netns::join_userns`]); namespace-side work then runs
//! on helper threads ([`netns::NetNs::run`]). May call: `sys`, `netlink`,
//! `conf` (read-only).

pub mod auto_forward;
pub mod bound_ports;
pub mod netns;
pub mod setup;
pub mod spawn;

use std::io;
use std::os::fd::OwnedFd;

pub use setup::NsTap;
use std::path::{Path, PathBuf};

use rustix::process::{Pid, PidfdFlags, pidfd_open};

use crate::conf::host::HostNet;
use crate::conf::{Config, NsTarget};
use netns::{NetNs, join_userns};
use spawn::SpawnedCommand;

/// How pasta notices that a joined namespace is gone.
pub enum QuitWatch {
    /// Never (a spawned command, or `--no-netns-quit`).
    None,
    /// The process whose namespaces were joined: its pidfd.
    Process(OwnedFd),
    /// A namespace path (`--netns`): gone when it no longer names the same
    /// namespace (checked on the periodic tick).
    Path { path: PathBuf, identity: (u64, u64) },
}

impl QuitWatch {
    /// For [`QuitWatch::Path`]: whether the namespace is gone.
    pub fn path_gone(&self) -> bool {
        match self {
            QuitWatch::Path { path, identity } => {
                NetNs::open(path).and_then(|ns| ns.identity()).ok() != Some(*identity)
            }
            _ => false,
        }
    }
}

/// The namespace pasta serves.
pub struct Attached {
    pub netns: NetNs,
    pub command: Option<SpawnedCommand>,
    pub quit: QuitWatch,
}

/// Creates (spawn) or joins (PID, `--netns`) the namespace, then creates and
/// configures the tap in it. `uid`/`gid` are mapped to root for a spawned
/// command.
pub fn attach(
    config: &Config,
    host: &HostNet,
    uid: u32,
    gid: u32,
) -> io::Result<(Attached, NsTap)> {
    let (netns, command, quit) = enter_target(config, uid, gid)?;
    let tap = netns.run(|| setup::create_and_configure(config, host))?;
    Ok((
        Attached {
            netns,
            command,
            quit,
        },
        tap,
    ))
}

fn enter_target(
    config: &Config,
    uid: u32,
    gid: u32,
) -> io::Result<(NetNs, Option<SpawnedCommand>, QuitWatch)> {
    let pasta = &config.pasta;
    match &pasta.target {
        NsTarget::Spawn(cmd) => {
            let command = spawn::spawn(cmd, uid, gid)?;
            join_userns(&command.ns_path("user"))
                .map_err(|e| context(e, "joining the new user namespace"))?;
            let netns = NetNs::open(&command.ns_path("net"))?;
            Ok((netns, Some(command), QuitWatch::None))
        }
        NsTarget::Pid(pid) => {
            let userns = pasta
                .userns
                .clone()
                .or_else(|| (!pasta.netns_only).then(|| proc_ns(*pid, "user")));
            join_optional_userns(userns.as_deref())?;
            let netns = NetNs::open(&proc_ns(*pid, "net"))
                .map_err(|e| context(e, &format!("opening the network namespace of PID {pid}")))?;
            let quit = if pasta.netns_quit {
                let pid = Pid::from_raw(*pid as i32)
                    .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "PID 0"))?;
                QuitWatch::Process(pidfd_open(pid, PidfdFlags::empty())?)
            } else {
                QuitWatch::None
            };
            Ok((netns, None, quit))
        }
        NsTarget::Netns(path) => {
            join_optional_userns(pasta.userns.as_deref())?;
            let netns = NetNs::open(path).map_err(|e| {
                context(e, &format!("opening network namespace {}", path.display()))
            })?;
            let quit = if pasta.netns_quit {
                QuitWatch::Path {
                    path: path.clone(),
                    identity: netns.identity()?,
                }
            } else {
                QuitWatch::None
            };
            Ok((netns, None, quit))
        }
    }
}

fn join_optional_userns(path: Option<&Path>) -> io::Result<()> {
    match path {
        Some(p) => join_userns(p)
            .map_err(|e| context(e, &format!("joining user namespace {}", p.display()))),
        None => Ok(()),
    }
}

fn proc_ns(pid: u32, kind: &str) -> PathBuf {
    PathBuf::from(format!("/proc/{pid}/ns/{kind}"))
}

fn context(e: io::Error, what: &str) -> io::Error {
    io::Error::new(e.kind(), format!("{what}: {e}"))
}
