//! Raw `clone()` into new namespaces, with fork semantics (the child runs on a
//! copy of the caller's stack), plus the few calls the child makes before it
//! execs: parent-death signal.
//!
//! Invariant: [`clone_into_namespaces`] is only called while the process is
//! single-threaded (as `fork` would require for the child to be sound).

use std::io;

use rustix::process::Pid;

/// Which side of a clone we are on.
pub enum CloneResult {
    Parent(Pid),
    Child,
}

/// `clone(flags | SIGCHLD)` with a NULL stack: like `fork()`, but the child
/// starts in the new namespaces `flags` asks for (`CLONE_NEWUSER`,
/// `CLONE_NEWNET`, ...). A new PID namespace makes the child its PID 1.
pub fn clone_into_namespaces(flags: libc::c_int) -> io::Result<CloneResult> {
    // SAFETY: with a NULL stack pointer and no CLONE_VM, clone behaves like
    // fork: the child gets a copy-on-write copy of the address space and
    // continues here. The process is single-threaded (module invariant), so
    // no lock can be held by a thread that does not exist in the child.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (flags | libc::SIGCHLD) as libc::c_ulong,
            std::ptr::null_mut::<libc::c_void>(),
            std::ptr::null_mut::<libc::c_int>(),
            std::ptr::null_mut::<libc::c_int>(),
            0 as libc::c_ulong,
        )
    };
    match rc {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(CloneResult::Child),
        pid => Ok(CloneResult::Parent(
            Pid::from_raw(pid as i32).ok_or_else(|| io::Error::other("clone returned pid 0"))?,
        )),
    }
}

/// Asks the kernel to send `SIGKILL` to the calling process when its parent
/// exits, so a spawned command never outlives pasta's set-up by accident.
pub fn kill_me_when_parent_dies() -> io::Result<()> {
    rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))
        .map_err(io::Error::from)
}
