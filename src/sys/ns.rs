//! Namespace syscalls: `setns` on `/proc/PID/ns/*` links and `unshare`.
//!
//! Invariant: callers that join a user namespace do so while the process is
//! single-threaded (the kernel refuses otherwise); network namespaces are
//! per thread, so joining one in a helper thread leaves the rest alone.

use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::path::Path;

use rustix::thread::{LinkNameSpaceType, UnshareFlags, move_into_link_name_space};

/// The kind of namespace a `/proc/PID/ns/*` link refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NsKind {
    User,
    Net,
    Mount,
    Uts,
    Ipc,
    Pid,
}

impl NsKind {
    fn link_type(self) -> LinkNameSpaceType {
        match self {
            NsKind::User => LinkNameSpaceType::User,
            NsKind::Net => LinkNameSpaceType::Network,
            NsKind::Mount => LinkNameSpaceType::Mount,
            NsKind::Uts => LinkNameSpaceType::HostNameAndNISDomainName,
            NsKind::Ipc => LinkNameSpaceType::InterProcessCommunication,
            NsKind::Pid => LinkNameSpaceType::ProcessID,
        }
    }
}

/// Opens a namespace link (`/proc/PID/ns/net`, a bind mount under
/// `/run/netns`, ...) read-only with close-on-exec.
pub fn open_ns(path: &Path) -> io::Result<File> {
    File::open(path)
}

/// Moves the calling thread into the namespace `ns` refers to, checking that
/// it is of the expected kind.
pub fn enter(ns: &impl AsFd, kind: NsKind) -> io::Result<()> {
    move_into_link_name_space(ns.as_fd(), Some(kind.link_type())).map_err(io::Error::from)
}

/// Gives the calling thread a new, empty network namespace (tests and
/// helper threads only: the rest of the process keeps its own).
pub fn unshare_net_thread() -> io::Result<()> {
    // SAFETY: CLONE_NEWNET only changes the calling thread's network
    // namespace; it does not unshare the file table, so no other thread can
    // lose access to file descriptors it holds.
    unsafe { rustix::thread::unshare_unsafe(UnshareFlags::NEWNET) }.map_err(io::Error::from)
}
