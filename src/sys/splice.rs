//! Pipes and `splice(2)` for the zero-copy TCP path of pasta
//! (REFERENCE.md §2.6): bytes move socket -> pipe -> socket without being
//! copied to user space.
//!
//! A [`Pipe`] is a non-blocking, close-on-exec pipe pair that knows its
//! capacity. Capacities are asked with `F_SETPIPE_SZ`; the largest one the
//! kernel grants is probed once, downward from [`MAX_PIPE_SIZE`]
//! ([`max_pipe_size`]): unprivileged users are held to
//! `fs.pipe-max-size` (1 MiB by default), and past `pipe-user-pages-soft`
//! the kernel refuses any growth, so a pipe whose resize is refused keeps
//! the size it has and says so ([`Pipe::size`]).
//!
//! Every splice is `SPLICE_F_MOVE | SPLICE_F_NONBLOCK`: the pipe side never
//! blocks, and the socket side does not block because the sockets are
//! non-blocking (the kernel looks at the socket's `O_NONBLOCK` there).
//! `EINTR` is retried; `EAGAIN` comes back as `ErrorKind::WouldBlock`.
//!
//! Invariants: no `unsafe` here (rustix wraps all of it); the probe runs
//! once per process and is cached.
//! May call: rustix only.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::OnceLock;

use rustix::io::Errno;
use rustix::pipe::{PipeFlags, SpliceFlags};

/// The largest pipe asked for (upstream's `MAX_PIPE_SIZE`).
pub const MAX_PIPE_SIZE: usize = 8 << 20;

/// The smallest capacity the probe tries (one page).
const MIN_PIPE_SIZE: usize = 4096;

/// A pipe: both ends non-blocking and close-on-exec, plus its capacity.
#[derive(Debug)]
pub struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
    size: usize,
}

impl Pipe {
    /// A pipe of the kernel's default capacity.
    pub fn new() -> io::Result<Pipe> {
        let (read, write) = rustix::pipe::pipe_with(PipeFlags::NONBLOCK | PipeFlags::CLOEXEC)?;
        let size = rustix::pipe::fcntl_getpipe_size(&read)?;
        Ok(Pipe { read, write, size })
    }

    /// A pipe of capacity `size` if the kernel grants it; otherwise of the
    /// capacity it had (see [`Pipe::size`]).
    pub fn with_size(size: usize) -> io::Result<Pipe> {
        let mut pipe = Pipe::new()?;
        if size != pipe.size {
            // Refused (limits): the pipe keeps its default capacity.
            let _ = pipe.resize(size);
        }
        Ok(pipe)
    }

    /// Asks for capacity `size` (`F_SETPIPE_SZ`); returns what the kernel
    /// set (`size` rounded up to a power of two pages). On error the
    /// capacity is unchanged. Fails with `EBUSY` if the pipe holds more
    /// than the new capacity.
    pub fn resize(&mut self, size: usize) -> io::Result<usize> {
        self.size = rustix::pipe::fcntl_setpipe_size(&self.write, size)?;
        Ok(self.size)
    }

    /// The capacity in bytes. The kernel counts it in slots (pages), so a
    /// pipe of small buffers can be full with fewer bytes than this.
    pub fn size(&self) -> usize {
        self.size
    }

    /// The end [`splice_from_pipe`] reads.
    pub fn read_end(&self) -> BorrowedFd<'_> {
        self.read.as_fd()
    }

    /// The end [`splice_to_pipe`] fills.
    pub fn write_end(&self) -> BorrowedFd<'_> {
        self.write.as_fd()
    }
}

/// The largest pipe capacity this process may set, probed once (downward
/// from [`MAX_PIPE_SIZE`], halving) and cached; the kernel's default if no
/// pipe can be made or grown.
pub fn max_pipe_size() -> usize {
    static PROBED: OnceLock<usize> = OnceLock::new();
    *PROBED.get_or_init(|| match Pipe::new() {
        Ok(mut pipe) => {
            let default = pipe.size();
            probe_down(MAX_PIPE_SIZE, default, |size| pipe.resize(size))
        }
        Err(e) => {
            log::debug!("splice: no pipe to probe sizes with: {e}");
            // The kernel's default: 16 pages.
            16 * MIN_PIPE_SIZE
        }
    })
}

/// The first capacity `set` grants, trying `start`, `start / 2`... down to
/// `floor` (or one page); `floor` if none is granted.
fn probe_down(
    start: usize,
    floor: usize,
    mut set: impl FnMut(usize) -> io::Result<usize>,
) -> usize {
    let mut size = start;
    while size > floor && size >= MIN_PIPE_SIZE {
        if let Ok(granted) = set(size) {
            return granted;
        }
        size /= 2;
    }
    floor
}

fn flags(more: bool) -> SpliceFlags {
    let base = SpliceFlags::MOVE | SpliceFlags::NONBLOCK;
    if more { base | SpliceFlags::MORE } else { base }
}

/// One `splice` call, retried on `EINTR`.
fn splice(from: BorrowedFd<'_>, to: BorrowedFd<'_>, len: usize, more: bool) -> io::Result<usize> {
    loop {
        match rustix::pipe::splice(from, None, to, None, len, flags(more)) {
            Err(Errno::INTR) => continue,
            other => return other.map_err(io::Error::from),
        }
    }
}

/// Moves up to `len` bytes from `from` (a socket) into `pipe`. `Ok(0)`:
/// end of stream. `WouldBlock`: nothing to read, or the pipe is full.
pub fn splice_to_pipe(from: impl AsFd, pipe: &Pipe, len: usize) -> io::Result<usize> {
    splice(from.as_fd(), pipe.write_end(), len, false)
}

/// Moves up to `len` bytes from `pipe` to `to` (a socket). `more` sets
/// `SPLICE_F_MORE`: more data follows, so the socket may hold back a
/// partial segment. `WouldBlock`: `to` has no room, or the pipe is empty.
pub fn splice_from_pipe(pipe: &Pipe, to: impl AsFd, len: usize, more: bool) -> io::Result<usize> {
    splice(pipe.read_end(), to.as_fd(), len, more)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::testing::tcp_pair as pair;
    use std::io::{Read, Write};

    #[test]
    fn splice_pipe_is_nonblocking_and_close_on_exec() {
        let pipe = Pipe::new().unwrap();
        for end in [pipe.read_end(), pipe.write_end()] {
            let fd = rustix::io::fcntl_getfd(end).unwrap();
            assert!(fd.contains(rustix::io::FdFlags::CLOEXEC));
            let fl = rustix::fs::fcntl_getfl(end).unwrap();
            assert!(fl.contains(rustix::fs::OFlags::NONBLOCK));
        }
        assert!(pipe.size() >= MIN_PIPE_SIZE);
    }

    #[test]
    fn splice_probe_stops_at_the_first_size_granted() {
        // A kernel that allows 1 MiB, like pipe-max-size for users.
        let mut asked = Vec::new();
        let limit = |size: usize| {
            asked.push(size);
            match size <= 1 << 20 {
                true => Ok(size),
                false => Err(io::Error::from_raw_os_error(libc::EPERM)),
            }
        };
        assert_eq!(probe_down(MAX_PIPE_SIZE, 65536, limit), 1 << 20);
        assert_eq!(asked, [8 << 20, 4 << 20, 2 << 20, 1 << 20]);
        // Nothing granted above the default: the default.
        let refuse = |_| Err(io::Error::from_raw_os_error(libc::EPERM));
        assert_eq!(probe_down(MAX_PIPE_SIZE, 65536, refuse), 65536);
    }

    #[test]
    fn splice_max_pipe_size_is_granted_to_new_pipes() {
        let max = max_pipe_size();
        assert!(max.is_power_of_two() && (MIN_PIPE_SIZE..=MAX_PIPE_SIZE).contains(&max));
        assert_eq!(max_pipe_size(), max, "cached");
        assert_eq!(Pipe::with_size(max).unwrap().size(), max);
    }

    #[test]
    fn splice_moves_bytes_socket_to_pipe_to_socket() {
        let (mut a1, b1) = pair();
        let (a2, mut b2) = pair();
        b1.set_nonblocking(true).unwrap();
        a2.set_nonblocking(true).unwrap();
        let pipe = Pipe::with_size(1 << 16).unwrap();
        let err = splice_to_pipe(&b1, &pipe, 4096).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock, "empty socket");
        let err = splice_from_pipe(&pipe, &a2, 4096, false).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock, "empty pipe");
        a1.write_all(b"hello, splice").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert_eq!(splice_to_pipe(&b1, &pipe, 4096).unwrap(), 13);
        assert_eq!(splice_from_pipe(&pipe, &a2, 13, true).unwrap(), 13);
        a1.shutdown(std::net::Shutdown::Write).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert_eq!(splice_to_pipe(&b1, &pipe, 4096).unwrap(), 0, "EOF");
        drop(a2);
        let mut got = Vec::new();
        b2.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"hello, splice");
    }
}
