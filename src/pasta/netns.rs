//! Namespace handles and "do this inside the namespace".
//!
//! pasta lives in the host's network namespace (its sockets are the host's)
//! and does namespace-side work (tap creation, netlink set-up, later the
//! splice sockets) on a short-lived helper thread that joins the target
//! network namespace: network namespaces are per thread, so the rest of the
//! process never moves. User namespaces are per process and can only be
//! joined while single-threaded, so [`join_userns`] runs before any helper
//! thread exists.

use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::sys::ns::{self, NsKind};

/// An open network namespace (`/proc/PID/ns/net` or a bind mount).
pub struct NetNs {
    file: File,
}

impl NetNs {
    pub fn open(path: &Path) -> io::Result<NetNs> {
        Ok(NetNs {
            file: ns::open_ns(path)?,
        })
    }

    /// Runs `f` on a helper thread inside this network namespace and returns
    /// its result. The calling thread's namespace is untouched.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> io::Result<T> + Send) -> io::Result<T> {
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    ns::enter(&self.file, NsKind::Net)?;
                    f()
                })
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("namespace helper thread failed")))
        })
    }

    /// (device, inode) of the namespace, to tell whether a path still names
    /// it.
    pub fn identity(&self) -> io::Result<(u64, u64)> {
        let m = self.file.metadata()?;
        Ok((m.dev(), m.ino()))
    }
}

/// Joins the user namespace at `path` unless the process is already in it.
/// Must run while the process is single-threaded.
pub fn join_userns(path: &Path) -> io::Result<()> {
    let target = ns::open_ns(path)?;
    let own = std::fs::metadata("/proc/self/ns/user")?;
    let tm = target.metadata()?;
    if (tm.dev(), tm.ino()) == (own.dev(), own.ino()) {
        return Ok(());
    }
    ns::enter(&target, NsKind::User)
}
