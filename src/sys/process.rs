//! Process-wide calls: fork, `_exit`, identity (ids, groups), session and
//! the open-files limit.
//!
//! rustix is used where its call has process-wide effect (`getpid`,
//! `getuid`, `setsid`...). Identity changes go through glibc instead:
//! rustix's `set_thread_uid` and friends are raw system calls that change
//! the calling *thread* only, while glibc's `setuid`/`setgid`/`setgroups`
//! apply the change to every thread of the process, which is what a
//! privilege drop must do. `fork`, `_exit`, `dup2` onto the standard
//! descriptors and `getresuid`/`getresgid` have no safe rustix counterpart.
//!
//! Neighbours: [`crate::daemon`] (fork, setsid, stdio to /dev/null) and
//! [`crate::isolation`] (`--runas`) build on these; nothing here logs.

use std::io;
use std::os::fd::{AsFd, AsRawFd};

/// The two sides of a [`fork`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fork {
    /// We are the parent; the value is the child's PID.
    Parent(u32),
    /// We are the new child process.
    Child,
}

/// Maps a C `-1 and errno` return to `io::Result`.
fn check(ret: libc::c_int) -> io::Result<()> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Forks the process.
///
/// The child runs a copy of the calling thread only. If other threads
/// exist, locks they held stay locked in the child: a child of a
/// multi-threaded process should only make system calls (through these
/// wrappers or rustix) and then [`exit_now`] or `exec`. passt-rs forks
/// while it is single-threaded (daemonising, pasta spawning its command).
pub fn fork() -> io::Result<Fork> {
    // SAFETY: fork() takes no pointers. The child gets a private copy of the
    // address space, so no Rust object is shared between the two processes;
    // the only hazard (locks held by other threads staying locked) can cause
    // a deadlock, not memory unsafety, and is documented above. glibc's fork
    // runs its own atfork handlers, which keep malloc usable in the child.
    let pid = unsafe { libc::fork() };
    match pid {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Fork::Child),
        // A successful fork() returns a positive PID to the parent.
        pid => Ok(Fork::Parent(pid.unsigned_abs())),
    }
}

/// Ends the process at once with `code`, like `_exit(2)`: no destructors,
/// no atexit handlers, no flushing of Rust's stdout buffer. For the parent
/// of a daemon and for forked children.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit() takes no pointers and never returns; skipping
    // destructors is what the caller asks for and cannot break memory
    // safety (at worst resources are released by the kernel instead).
    unsafe { libc::_exit(code) }
}

/// This process's PID.
pub fn getpid() -> u32 {
    rustix::process::getpid()
        .as_raw_nonzero()
        .get()
        .unsigned_abs()
}

/// The real user id.
pub fn getuid() -> u32 {
    rustix::process::getuid().as_raw()
}

/// The effective user id.
pub fn geteuid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// The real group id.
pub fn getgid() -> u32 {
    rustix::process::getgid().as_raw()
}

/// The effective group id.
pub fn getegid() -> u32 {
    rustix::process::getegid().as_raw()
}

/// Real, effective and saved user ids.
pub fn getresuid() -> io::Result<[u32; 3]> {
    let (mut r, mut e, mut s) = (0, 0, 0);
    // SAFETY: the three pointers refer to live, writable local variables of
    // the type the call expects.
    check(unsafe { libc::getresuid(&mut r, &mut e, &mut s) })?;
    Ok([r, e, s])
}

/// Real, effective and saved group ids.
pub fn getresgid() -> io::Result<[u32; 3]> {
    let (mut r, mut e, mut s) = (0, 0, 0);
    // SAFETY: as in getresuid(): three live, writable locals.
    check(unsafe { libc::getresgid(&mut r, &mut e, &mut s) })?;
    Ok([r, e, s])
}

/// Drops all supplementary groups of the process (`setgroups(0, NULL)`).
pub fn clear_groups() -> io::Result<()> {
    // SAFETY: with a count of 0 the kernel does not read the list pointer.
    check(unsafe { libc::setgroups(0, std::ptr::null()) })
}

/// Sets the group id of every thread (glibc `setgid`): real, effective and
/// saved when privileged, the effective one otherwise.
pub fn setgid(gid: u32) -> io::Result<()> {
    // SAFETY: plain integer argument, no memory is involved.
    check(unsafe { libc::setgid(gid) })
}

/// Sets the user id of every thread (glibc `setuid`), see [`setgid`].
pub fn setuid(uid: u32) -> io::Result<()> {
    // SAFETY: plain integer argument, no memory is involved.
    check(unsafe { libc::setuid(uid) })
}

/// Starts a new session (and process group) led by this process.
pub fn setsid() -> io::Result<()> {
    rustix::process::setsid().map(drop).map_err(io::Error::from)
}

/// Points standard input, output and error at `fd` (`dup2` onto 0, 1, 2).
pub fn redirect_stdio(fd: impl AsFd) -> io::Result<()> {
    let raw = fd.as_fd().as_raw_fd();
    for target in 0..=2 {
        // SAFETY: `raw` is a valid open descriptor for the duration of the
        // call (borrowed above). Replacing descriptors 0-2 closes whatever
        // they referred to; no Rust object owns those descriptors (std's
        // stdin/stdout/stderr handles only borrow them), so no owner is left
        // with a dangling descriptor.
        check(unsafe { libc::dup2(raw, target) })?;
    }
    Ok(())
}

/// Raises the soft limit of open files (`RLIMIT_NOFILE`) to the hard
/// limit, as upstream does at start: `-t all` alone needs a listening
/// socket per port. Returns the new soft limit (`u64::MAX`: unlimited).
pub fn raise_fd_limit() -> io::Result<u64> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        let raised = Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        setrlimit(Resource::Nofile, raised)?;
    }
    Ok(limit.maximum.unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fd_limit_is_raised_to_the_hard_limit() {
        let hard = raise_fd_limit().unwrap();
        let now = rustix::process::getrlimit(rustix::process::Resource::Nofile);
        assert_eq!(now.current.unwrap_or(u64::MAX), hard);
        assert_eq!(now.current, now.maximum);
    }

    #[test]
    fn daemon_process_ids_match_std() {
        assert_eq!(getpid(), std::process::id());
        let [r, e, _] = getresuid().unwrap();
        assert_eq!((r, e), (getuid(), geteuid()));
        let [r, e, _] = getresgid().unwrap();
        assert_eq!((r, e), (getgid(), getegid()));
    }
}
