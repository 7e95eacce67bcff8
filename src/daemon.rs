//! Going to the background (`-f` not given) and the PID file (`-P`).
//!
//! Upstream's order, which callers rely on: the PID file and `/dev/null` are
//! opened early, before isolation hides the file system (`pivot_root` into an
//! empty tmpfs), so [`PidFile::create`] and [`DevNull::open`] run during
//! set-up. Once every listening socket is ready, [`daemonize`] forks: the
//! parent writes the *child's* PID to the PID file and exits 0 with `_exit`
//! (no destructors run twice), so a caller that waits for the parent to
//! exit (podman, libvirt) finds both the file complete and the sockets bound.
//! The child calls `setsid` and points stdin, stdout and stderr at
//! `/dev/null`. In the foreground, the caller writes its own PID instead
//! ([`PidFile::write`] with [`getpid`]).
//!
//! Like upstream's `__daemon()`, there is no second fork, no `chdir("/")`
//! (isolation's `pivot_root` ends with the working directory at the new,
//! empty root anyway) and no `umask` change.
//!
//! Neighbours: raw calls in [`crate::sys::process`] (re-exported here for
//! other modules: [`fork`], [`exit_now`], the id getters); stderr logging
//! is switched off through [`crate::logging::stderr_off`].

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

pub use crate::sys::process::{Fork, exit_now, fork, getegid, geteuid, getgid, getpid, getuid};
use crate::sys::process::{redirect_stdio, setsid};

/// Opens an output file the way upstream does for `-P`, `-l` and `-p`:
/// created or truncated, mode 0600, close-on-exec.
pub fn open_output_file(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
}

/// The `-P/--pid` file, opened (and truncated) early, written once.
#[derive(Debug)]
pub struct PidFile(File);

impl PidFile {
    /// Creates or truncates `path` (mode 0600).
    pub fn create(path: &Path) -> io::Result<Self> {
        open_output_file(path).map(Self)
    }

    /// Writes `pid` and a newline in one `write`, then closes the file.
    pub fn write(mut self, pid: u32) -> io::Result<()> {
        // "4294967295\n" is 11 bytes: format on the stack, no allocation.
        let mut buf = [0u8; 16];
        let mut cursor = io::Cursor::new(&mut buf[..]);
        writeln!(cursor, "{pid}")?;
        let len = usize::try_from(cursor.position()).unwrap_or(buf.len());
        self.0.write_all(&buf[..len])
    }
}

/// `/dev/null`, opened before isolation for the daemon's stdio.
#[derive(Debug)]
pub struct DevNull(File);

impl DevNull {
    pub fn open() -> io::Result<Self> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/null")
            .map(Self)
    }
}

/// Forks into the background. Returns in the child only: the parent writes
/// the child's PID to `pid_file` (if any) and exits 0, or exits 1 if the
/// PID file cannot be written. The child is a session leader with its
/// stdio on `/dev/null` and stderr logging off.
pub fn daemonize(devnull: DevNull, pid_file: Option<PidFile>) -> io::Result<()> {
    match fork()? {
        Fork::Parent(child) => parent_exit(child, pid_file),
        Fork::Child => {
            drop(pid_file);
            setsid()?;
            redirect_stdio(&devnull.0)?;
            crate::logging::stderr_off();
            Ok(())
        }
    }
}

/// The parent's side of [`daemonize`]: record the child, then leave.
fn parent_exit(child: u32, pid_file: Option<PidFile>) -> ! {
    let written = pid_file.map_or(Ok(()), |f| f.write(child));
    if let Err(e) = &written {
        log::error!("PID file write: {e}");
    }
    exit_now(i32::from(written.is_err()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
    use std::os::unix::fs::PermissionsExt;
    use std::path::PathBuf;

    fn temp_path(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("passt-rs-daemon-{}-{name}", std::process::id()))
    }

    #[test]
    fn daemon_pid_file_holds_pid_and_newline() {
        let path = temp_path("pid");
        let _ = std::fs::remove_file(&path);
        PidFile::create(&path).unwrap().write(1).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "1\n");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::write(&path, "stale contents that must go away\n").unwrap();
        PidFile::create(&path)
            .unwrap()
            .write(4_294_967_295)
            .unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "4294967295\n");
        std::fs::remove_file(&path).unwrap();
    }

    /// Bits the daemon reports back through the pipe.
    const NEW_SESSION: u8 = 1;
    const STDIO_NULL: u8 = 2;

    /// Runs in the daemon (grandchild): checks its state and reports it.
    fn daemon_report(report: OwnedFd) -> ! {
        let mut status = 0;
        let pid = rustix::process::getpid();
        if rustix::process::getsid(None).ok() == Some(pid) {
            status |= NEW_SESSION;
        }
        let null = rustix::fs::stat("/dev/null").map(|s| s.st_rdev).ok();
        let rdev = |fd: BorrowedFd<'_>| rustix::fs::fstat(fd).map(|s| s.st_rdev).ok();
        let (stdin, stdout, stderr) = (io::stdin(), io::stdout(), io::stderr());
        let stdio = [stdin.as_fd(), stdout.as_fd(), stderr.as_fd()];
        if stdio.into_iter().all(|fd| rdev(fd) == null) {
            status |= STDIO_NULL;
        }
        let _ = rustix::io::write(&report, &[status]);
        exit_now(0)
    }

    #[test]
    fn daemon_parent_writes_child_pid_and_exits() {
        let path = temp_path("daemonize");
        let (rx, tx) = rustix::pipe::pipe().unwrap();
        let pid_file = PidFile::create(&path).unwrap();
        let devnull = DevNull::open().unwrap();
        match fork().unwrap() {
            Fork::Child => {
                if daemonize(devnull, Some(pid_file)).is_err() {
                    exit_now(2);
                }
                daemon_report(tx)
            }
            Fork::Parent(child) => {
                drop((tx, devnull, pid_file));
                let pid = rustix::process::Pid::from_raw(i32::try_from(child).unwrap());
                let (_, status) =
                    rustix::process::waitpid(pid, rustix::process::WaitOptions::empty())
                        .unwrap()
                        .unwrap();
                assert_eq!(status.exit_status(), Some(0));
                let daemon: u32 = std::fs::read_to_string(&path)
                    .unwrap()
                    .strip_suffix('\n')
                    .unwrap()
                    .parse()
                    .unwrap();
                assert_ne!(daemon, child);
                let mut report = [0u8; 1];
                File::from(rx).read_exact(&mut report).unwrap();
                assert_eq!(report[0], NEW_SESSION | STDIO_NULL);
                std::fs::remove_file(&path).unwrap();
            }
        }
    }
}
