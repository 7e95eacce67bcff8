//! Inherited file descriptors (`-F/--fd`): take ownership of a descriptor
//! number passed by the parent process.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

/// Takes ownership of the inherited descriptor `fd` (> 2), after checking
/// that it is open; marks it close-on-exec.
pub fn take_inherited(fd: i32) -> io::Result<OwnedFd> {
    if fd <= 2 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid fd {fd}"),
        ));
    }
    // SAFETY: F_GETFD only queries the descriptor table; an invalid number
    // gives EBADF and touches nothing.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is open (checked above) and was inherited for us to use
    // (`-F`): nothing else in this process owns it, so making it an
    // `OwnedFd` gives it exactly one owner.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    rustix::io::fcntl_setfd(&owned, rustix::io::FdFlags::CLOEXEC)?;
    Ok(owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fd_rejects_stdio_and_closed_descriptors() {
        assert!(take_inherited(2).is_err());
        assert!(take_inherited(1_000_000).is_err());
    }
}
