//! passt's UNIX domain socket: where qemu (or libvirt) connects.
//!
//! Path choice as upstream: `-s PATH`, else the first free of
//! `/tmp/passt_1.socket` ... `/tmp/passt_99.socket`. A path that exists is
//! probed by connecting: a live listener means "in use" (skipped, or fatal
//! if it was given), a refused connection means a stale socket file, which
//! is removed and reused. One guest at a time: the event loop accepts a
//! second connection only to log who it was and close it.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

/// Upstream's probing range for the default socket path.
const DEFAULT_SOCKETS: std::ops::RangeInclusive<u32> = 1..=99;

pub struct PasstListener {
    listener: UnixListener,
    path: PathBuf,
}

impl PasstListener {
    /// Binds `path`, or the first free default path.
    pub fn bind(path: Option<&Path>) -> io::Result<PasstListener> {
        match path {
            Some(p) => bind_path(p)?.ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("Socket path {} already in use", p.display()),
                )
            }),
            None => DEFAULT_SOCKETS
                .map(|i| PathBuf::from(format!("/tmp/passt_{i}.socket")))
                .find_map(|p| bind_path(&p).transpose())
                .unwrap_or_else(|| {
                    Err(io::Error::new(
                        io::ErrorKind::AddrInUse,
                        "no free socket path in /tmp",
                    ))
                }),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Accepts a waiting connection (non-blocking) with the peer's PID.
    pub fn accept(&self) -> io::Result<Option<(OwnedFd, Option<i32>)>> {
        match self.listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(true)?;
                let pid = rustix::net::sockopt::socket_peercred(&stream)
                    .ok()
                    .map(|c| c.pid.as_raw_nonzero().get());
                Ok(Some((OwnedFd::from(stream), pid)))
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        }
    }
}

impl AsFd for PasstListener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.listener.as_fd()
    }
}

/// Binds `path`; `Ok(None)` if a live listener already has it.
fn bind_path(path: &Path) -> io::Result<Option<PasstListener>> {
    let listener = match UnixListener::bind(path) {
        Ok(l) => l,
        Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
            if UnixStream::connect(path).is_ok() {
                return Ok(None);
            }
            std::fs::remove_file(path)?;
            UnixListener::bind(path)?
        }
        Err(e) => {
            return Err(io::Error::new(
                e.kind(),
                format!("binding {}: {e}", path.display()),
            ));
        }
    };
    listener.set_nonblocking(true)?;
    Ok(Some(PasstListener {
        listener,
        path: path.to_path_buf(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_sock(tag: &str) -> PathBuf {
        std::env::temp_dir().join(format!("passt-rs-{tag}-{}.socket", std::process::id()))
    }

    #[test]
    fn listener_reuses_stale_socket_and_refuses_live_one() {
        let path = temp_sock("stale");
        let first = PasstListener::bind(Some(&path)).unwrap();
        let err = PasstListener::bind(Some(&path)).err().unwrap();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
        drop(first); // leaves a stale socket file behind
        assert!(path.exists());
        let again = PasstListener::bind(Some(&path)).unwrap();
        assert_eq!(again.path(), path);
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn listener_accepts_with_peer_pid() {
        let path = temp_sock("accept");
        let l = PasstListener::bind(Some(&path)).unwrap();
        assert!(l.accept().unwrap().is_none());
        let _client = UnixStream::connect(&path).unwrap();
        let (_fd, pid) = l.accept().unwrap().unwrap();
        assert_eq!(pid, Some(std::process::id() as i32));
        std::fs::remove_file(&path).unwrap();
    }
}
