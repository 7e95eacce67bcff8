//! passt's link: a connected AF_UNIX stream socket carrying qemu's
//! `-netdev stream` framing: each Ethernet frame is preceded by its length as
//! a 4-byte big-endian integer.
//!
//! Reading: the socket is read straight into the frame batch's buffer until
//! it would block or the buffer is full; complete frames are declared in
//! place (no copy). Bytes not yet declared (a trailing partial frame, or
//! frames beyond the batch's frame limit) stay in the buffer and are moved
//! to its start by the next read, so the same [`FrameBatch`] must be passed
//! to every read of a connection (invariant). A length
//! outside 14..=65535 means the peer is not speaking the protocol: the
//! frames before it are handed out, then the read reports the connection
//! closed and the caller drops it (upstream drops the whole batch).
//!
//! Writing: one `sendmsg` of [length, frame] without blocking; if only part
//! of it goes out, the rest is kept (at most one frame) and sent first when
//! the socket has room again ([`StreamLink::flush`], on EPOLLOUT): a frame
//! is never cut in half, which would desynchronise the stream. The socket's
//! send buffer is made as large as the system allows, so that bursts of
//! 64 KiB frames fit.

use std::io::{self, IoSlice};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::net::{RecvFlags, SendFlags, recv, send, sendmsg};

use super::{FrameBatch, MAX_FRAME, MIN_FRAME, ReadStop};

/// Bytes of the length prefix.
const HEADER: usize = 4;

/// Send buffer asked for (the kernel caps it at `net.core.wmem_max`).
const SEND_BUFFER: usize = 16 << 20;

pub struct StreamLink {
    fd: OwnedFd,
    /// Bytes of the batch buffer read but not yet declared as frames.
    pending: std::ops::Range<usize>,
    /// The rest of a frame the socket took only in part.
    unsent: Vec<u8>,
}

impl StreamLink {
    /// Wraps a connected, non-blocking stream socket.
    pub fn new(fd: OwnedFd) -> StreamLink {
        if let Err(e) = rustix::net::sockopt::set_socket_send_buffer_size(&fd, SEND_BUFFER) {
            log::debug!("Guest socket: SO_SNDBUF: {e}");
        }
        StreamLink {
            fd,
            pending: 0..0,
            unsent: Vec::with_capacity(HEADER + MAX_FRAME),
        }
    }

    /// Part of a frame waits for room in the socket.
    pub fn blocked(&self) -> bool {
        !self.unsent.is_empty()
    }

    /// Reads what the socket has into `batch` (cleared) and declares the
    /// complete frames. Errors with `InvalidData` on a bad length.
    pub fn read_batch(&mut self, batch: &mut FrameBatch) -> io::Result<ReadStop> {
        let raw = batch.raw();
        let kept = self.pending.len();
        raw.copy_within(self.pending.clone(), 0);
        let (filled, stop) = self.fill(raw, kept)?;
        let (consumed, bad_length) = declare_frames(batch, filled);
        if let Some(len) = bad_length {
            // The frames before it are good and are handed out; the stream
            // cannot be resynchronised after it, so the connection ends.
            log::info!("Bad frame length {len} from guest: closing the connection");
            self.pending = 0..0;
            return Ok(ReadStop::Closed);
        }
        self.pending = consumed..filled;
        let more_complete_frames = filled - consumed >= HEADER && batch.len() == batch.max_frames();
        Ok(if more_complete_frames {
            ReadStop::BatchFull
        } else {
            stop
        })
    }

    /// Reads into `raw` after its first `kept` bytes; returns the bytes
    /// filled.
    fn fill(&mut self, raw: &mut [u8], kept: usize) -> io::Result<(usize, ReadStop)> {
        let mut filled = kept;
        loop {
            if filled == raw.len() {
                return Ok((filled, ReadStop::BatchFull));
            }
            match recv(&self.fd, &mut raw[filled..], RecvFlags::DONTWAIT) {
                Ok((0, _)) => return Ok((filled, ReadStop::Closed)),
                Ok((n, _)) => filled += n,
                Err(rustix::io::Errno::AGAIN) => return Ok((filled, ReadStop::Drained)),
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Sends one frame with its length; `false` if the socket cannot take
    /// it now (nothing of it was sent; the caller may try again once the
    /// link is writable). A frame that goes out only in part is finished
    /// from [`StreamLink::flush`] before any other: frames are never cut.
    pub fn write_frame(&mut self, frame: &[u8]) -> io::Result<bool> {
        let len = u32::try_from(frame.len())
            .ok()
            .filter(|&l| l as usize <= MAX_FRAME)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "frame too long"))?;
        if !self.flush()? {
            return Ok(false);
        }
        let header = len.to_be_bytes();
        let iov = [IoSlice::new(&header), IoSlice::new(frame)];
        let flags = SendFlags::DONTWAIT | SendFlags::NOSIGNAL;
        let sent = loop {
            match sendmsg(&self.fd, &iov, &mut Default::default(), flags) {
                Ok(n) => break n,
                Err(rustix::io::Errno::INTR) => continue,
                Err(rustix::io::Errno::AGAIN) => return Ok(false),
                Err(e) => return Err(e.into()),
            }
        };
        if sent < HEADER {
            self.unsent.extend_from_slice(&header[sent..]);
            self.unsent.extend_from_slice(frame);
        } else {
            self.unsent.extend_from_slice(&frame[sent - HEADER..]);
        }
        Ok(true)
    }

    /// Sends what is left of a frame that went out in part; `true` once
    /// nothing is left.
    pub fn flush(&mut self) -> io::Result<bool> {
        while !self.unsent.is_empty() {
            match send(
                &self.fd,
                &self.unsent,
                SendFlags::DONTWAIT | SendFlags::NOSIGNAL,
            ) {
                Ok(n) => drop(self.unsent.drain(..n)),
                Err(rustix::io::Errno::INTR) => {}
                Err(rustix::io::Errno::AGAIN) => return Ok(false),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(true)
    }
}

impl AsFd for StreamLink {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Declares the complete frames among the first `filled` bytes of the
/// batch's buffer; returns how many bytes they span, and the first length
/// outside 14..=65535 if one stops the walk.
fn declare_frames(batch: &mut FrameBatch, filled: usize) -> (usize, Option<usize>) {
    let mut pos = 0;
    while filled - pos >= HEADER {
        let raw = batch.raw();
        let len = u32::from_be_bytes([raw[pos], raw[pos + 1], raw[pos + 2], raw[pos + 3]]) as usize;
        if !(MIN_FRAME..=MAX_FRAME).contains(&len) {
            return (pos, Some(len));
        }
        let start = pos + HEADER;
        if filled - start < len || !batch.push_frame(start..start + len) {
            break;
        }
        pos = start + len;
    }
    (pos, None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::net::UnixStream;

    fn framed(frames: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for f in frames {
            out.extend_from_slice(&(f.len() as u32).to_be_bytes());
            out.extend_from_slice(f);
        }
        out
    }

    fn pair() -> (UnixStream, StreamLink) {
        let (a, b) = UnixStream::pair().unwrap();
        b.set_nonblocking(true).unwrap();
        (a, StreamLink::new(OwnedFd::from(b)))
    }

    #[test]
    fn stream_frames_split_across_reads_are_reassembled() {
        let (mut peer, mut link) = pair();
        let f1 = [1u8; 60];
        let f2 = [2u8; 1500];
        let bytes = framed(&[&f1, &f2]);
        let mut batch = FrameBatch::new(1 << 20, 64);
        peer.write_all(&bytes[..100]).unwrap();
        batch.clear();
        assert_eq!(link.read_batch(&mut batch).unwrap(), ReadStop::Drained);
        assert_eq!(batch.iter().collect::<Vec<_>>(), vec![&f1[..]]);
        peer.write_all(&bytes[100..]).unwrap();
        batch.clear();
        link.read_batch(&mut batch).unwrap();
        assert_eq!(batch.iter().collect::<Vec<_>>(), vec![&f2[..]]);
    }

    #[test]
    fn stream_bad_length_closes_after_the_good_frames_before_it() {
        for len in [0u32, 13, 65536, u32::MAX] {
            let (mut peer, mut link) = pair();
            let good = [5u8; 20];
            peer.write_all(&framed(&[&good])).unwrap();
            peer.write_all(&len.to_be_bytes()).unwrap();
            peer.write_all(&[0; 32]).unwrap();
            let mut batch = FrameBatch::new(1 << 20, 64);
            assert_eq!(
                link.read_batch(&mut batch).unwrap(),
                ReadStop::Closed,
                "len {len}"
            );
            assert_eq!(
                batch.iter().collect::<Vec<_>>(),
                vec![&good[..]],
                "len {len}"
            );
        }
    }

    #[test]
    fn stream_peer_close_is_reported() {
        let (peer, mut link) = pair();
        drop(peer);
        let mut batch = FrameBatch::new(1 << 20, 64);
        assert_eq!(link.read_batch(&mut batch).unwrap(), ReadStop::Closed);
    }

    #[test]
    fn stream_full_socket_keeps_frames_whole_and_flushes_later() {
        let (mut peer, mut link) = pair();
        let frame: Vec<u8> = (0..60000u32).map(|i| i as u8).collect();
        let mut accepted = 0usize;
        while link.write_frame(&frame).unwrap() {
            accepted += 1;
            assert!(accepted < 10_000, "the socket never filled");
        }
        assert!(!link.flush().unwrap() || !link.blocked());
        let reader = std::thread::spawn(move || {
            let mut frames = 0;
            let mut header = [0u8; 4];
            let mut body = vec![0u8; 60000];
            while frames < accepted {
                std::io::Read::read_exact(&mut peer, &mut header).unwrap();
                assert_eq!(u32::from_be_bytes(header), 60000);
                std::io::Read::read_exact(&mut peer, &mut body).unwrap();
                assert!(body.iter().enumerate().all(|(i, &b)| b == i as u8));
                frames += 1;
            }
        });
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !link.flush().unwrap() {
            assert!(std::time::Instant::now() < deadline, "never flushed");
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        reader.join().unwrap();
        assert!(!link.blocked());
    }

    #[test]
    fn stream_written_frames_carry_their_length() {
        let (mut peer, mut link) = pair();
        assert!(link.write_frame(&[7u8; 42]).unwrap());
        let mut buf = [0u8; 46];
        std::io::Read::read_exact(&mut peer, &mut buf).unwrap();
        assert_eq!(&buf[..4], &42u32.to_be_bytes());
        assert!(buf[4..].iter().all(|&b| b == 7));
    }

    #[test]
    fn stream_batch_frame_limit_keeps_the_rest_for_later() {
        let (mut peer, mut link) = pair();
        let frames: Vec<[u8; 20]> = (0..5u8).map(|i| [i; 20]).collect();
        let refs: Vec<&[u8]> = frames.iter().map(|f| &f[..]).collect();
        peer.write_all(&framed(&refs)).unwrap();
        let mut batch = FrameBatch::new(1 << 20, 2);
        let mut seen = Vec::new();
        for _ in 0..4 {
            batch.clear();
            link.read_batch(&mut batch).unwrap();
            seen.extend(batch.iter().map(|f| f[0]));
        }
        assert_eq!(seen, [0, 1, 2, 3, 4]);
    }
}
