//! Namespace handles and "do this inside the namespace".
//!
//! pasta lives in the host's network namespace (its sockets are the host's)
//! and does namespace-side work (tap creation, netlink set-up, later the
//! splice sockets) on a short-lived helper thread that joins the target
//! network namespace: network namespaces are per thread, so the rest of the
//! process never moves. User namespaces are per process and can only be
//! joined while single-threaded, so [`join_userns`] runs before any helper
//! thread exists.

use std::cell::RefCell;
use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use rustix::net::{AddressFamily, SocketType};

use crate::flow::NamespaceSockets;
use crate::sys::ns::{self, NsKind};

/// Sockets [`NsSockets`] makes per helper-thread visit, per kind.
const SOCKET_BATCH: usize = 16;

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

    /// A second handle on the same namespace.
    pub fn try_clone(&self) -> io::Result<NetNs> {
        Ok(NetNs {
            file: self.file.try_clone()?,
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

/// Sockets inside the namespace for the flows (spliced connections, `-T` /
/// `-U` listeners): made [`SOCKET_BATCH`] at a time on one helper-thread
/// visit, handed out one by one. The spares are bounded: at most one
/// batch per (family, type).
pub struct NsSockets {
    netns: NetNs,
    spare: RefCell<Vec<(AddressFamily, SocketType, OwnedFd)>>,
}

impl NsSockets {
    pub fn new(netns: NetNs) -> NsSockets {
        NsSockets {
            netns,
            spare: RefCell::new(Vec::new()),
        }
    }
}

impl NamespaceSockets for NsSockets {
    fn socket(&self, family: AddressFamily, kind: SocketType) -> io::Result<OwnedFd> {
        let mut spare = self.spare.borrow_mut();
        if let Some(at) = spare
            .iter()
            .position(|(f, k, _)| (*f, *k) == (family, kind))
        {
            return Ok(spare.swap_remove(at).2);
        }
        let made = self.netns.run(|| {
            (0..SOCKET_BATCH)
                .map(|_| crate::flow::new_socket(family, kind))
                .collect::<io::Result<Vec<OwnedFd>>>()
        })?;
        let mut made = made.into_iter();
        let first = made
            .next()
            .ok_or_else(|| io::Error::other("no namespace socket made"))?;
        spare.extend(made.map(|fd| (family, kind, fd)));
        Ok(first)
    }
}
