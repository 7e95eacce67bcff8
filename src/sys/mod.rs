//! The thin syscall layer: the only place with `unsafe` code.
//!
//! Each wrapper is small, takes and returns owned or borrowed file
//! descriptors, and documents its safety argument next to the `unsafe`
//! block. Everything above this module is safe Rust. rustix is used where it
//! covers the call; `libc` where it does not (tun ioctls, raw clone,
//! `TCP_INFO`, `recvmmsg`...).

pub mod fd;
pub mod mmsg;
pub mod ns;
pub mod process;
pub mod sock_diag;
pub mod socket;
pub mod spawn;
pub mod splice;
pub mod tun;

/// Test support for the wrappers' tests.
#[cfg(test)]
pub(crate) mod testing {
    use std::net::{TcpListener, TcpStream};

    /// A connected pair of loopback TCP sockets (client, server).
    pub fn tcp_pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        (client, server)
    }
}
