//! Least privilege: giving up what the process no longer needs once set up.
//!
//! Upstream's `isolation.c` runs in four steps (REFERENCE.md §3), and this
//! module is where each will live:
//! 1. initial: keep only the capabilities set-up needs, close inherited fds;
//! 2. user: switch to the `--runas` identity ([`switch_identity`], done),
//!    then join or create a user namespace;
//! 3. prefork: detach from IPC, mount, UTS (and PID) namespaces, `pivot_root`
//!    into an empty read-only tmpfs, clear the bounding capability set;
//! 4. postfork: no dumping, `NO_NEW_PRIVS`, the seccomp allow-list, and
//!    (beyond upstream) landlock.
//!
//! Only step 2's identity switch exists so far; capabilities, namespaces,
//! seccomp and landlock arrive in their own files under `isolation/`.
//!
//! Invariant: [`switch_identity`] either leaves real, effective and saved
//! user and group ids all equal to the requested ones, or fails; the caller
//! must then exit rather than run on. Runtime files (log, pcap, PID file)
//! are opened before any of this (see [`crate::daemon`]).
//!
//! Neighbours: the raw calls are in [`crate::sys::process`]; `--runas` is
//! resolved to numeric ids by [`crate::conf`].

use std::io;

use crate::sys::process::{clear_groups, getgid, getresgid, getresuid, getuid, setgid, setuid};

/// Why the identity switch failed; the text is upstream's.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("Can't make the process dumpable again after switching identity: {0}")]
    Dumpable(#[source] io::Error),
    #[error("Can't drop supplementary groups: {0}")]
    Groups(#[source] io::Error),
    #[error("Can't set GID to {gid}: {source}")]
    Gid { gid: u32, source: io::Error },
    #[error("Can't set UID to {uid}: {source}")]
    Uid { uid: u32, source: io::Error },
    #[error("Running as UID {uids:?} GID {gids:?} (real, effective, saved), not {uid}:{gid}")]
    Mismatch {
        uid: u32,
        gid: u32,
        uids: [u32; 3],
        gids: [u32; 3],
    },
}

/// Switches the whole process to `uid`:`gid` with no supplementary groups,
/// in the only safe order: groups, then GID, then UID (after `setuid` the
/// right to change groups is gone).
///
/// Without privilege, `setgroups` fails with `EPERM`; that is tolerated
/// only when `uid` and `gid` are already our real ids, so that `--runas`
/// naming ourselves works as upstream. The result is verified: any id left
/// different from the request is an error.
pub fn switch_identity(uid: u32, gid: u32) -> Result<(), IdentityError> {
    if let Err(e) = clear_groups() {
        let already = getuid() == uid && getgid() == gid;
        if e.raw_os_error() != Some(libc::EPERM) || !already {
            return Err(IdentityError::Groups(e));
        }
    }
    setgid(gid).map_err(|source| IdentityError::Gid { gid, source })?;
    setuid(uid).map_err(|source| IdentityError::Uid { uid, source })?;
    verify_identity(uid, gid)?;
    // Changing identity clears the "dumpable" flag, which makes our (and our
    // children's) /proc files root's: pasta could then not write the uid
    // and gid maps of the namespace it creates. We are an ordinary process
    // of the new identity now, so restore the flag.
    rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::Dumpable)
        .map_err(|e| IdentityError::Dumpable(e.into()))
}

/// Checks that real, effective and saved ids all match the request.
fn verify_identity(uid: u32, gid: u32) -> Result<(), IdentityError> {
    let uids = getresuid().map_err(|source| IdentityError::Uid { uid, source })?;
    let gids = getresgid().map_err(|source| IdentityError::Gid { gid, source })?;
    if uids.iter().all(|&u| u == uid) && gids.iter().all(|&g| g == gid) {
        Ok(())
    } else {
        Err(IdentityError::Mismatch {
            uid,
            gid,
            uids,
            gids,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::process::{Fork, exit_now, fork};
    use rustix::process::{Pid, WaitOptions, waitpid};

    /// Runs `f` in a forked child and returns its exit code.
    fn in_child(f: fn() -> i32) -> i32 {
        match fork().unwrap() {
            Fork::Child => exit_now(f()),
            Fork::Parent(child) => {
                let pid = Pid::from_raw(i32::try_from(child).unwrap()).unwrap();
                let (_, status) = waitpid(Some(pid), WaitOptions::empty()).unwrap().unwrap();
                status.exit_status().unwrap()
            }
        }
    }

    /// Exit codes of the child below, one per failed check.
    fn switch_to_nobody() -> i32 {
        if switch_identity(65534, 65534).is_err() {
            return 10;
        }
        if getresuid().ok() != Some([65534; 3]) || getresgid().ok() != Some([65534; 3]) {
            return 11;
        }
        if !rustix::process::getgroups().is_ok_and(|g| g.is_empty()) {
            return 12;
        }
        // No way back: regaining root must fail.
        if setuid(0).is_ok() || switch_identity(0, 0).is_ok() {
            return 13;
        }
        // Naming ourselves again is fine without privilege.
        if switch_identity(65534, 65534).is_err() {
            return 14;
        }
        0
    }

    #[test]
    fn isolation_switch_identity_to_nobody() {
        if getuid() != 0 {
            eprintln!("skipped: needs root");
            return;
        }
        assert_eq!(in_child(switch_to_nobody), 0);
    }

    #[test]
    fn isolation_switch_identity_to_self() {
        // Without privilege (or with it) switching to our own ids works.
        assert_eq!(
            in_child(|| i32::from(switch_identity(getuid(), getgid()).is_err())),
            0
        );
    }
}
