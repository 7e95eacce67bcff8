//! Packet capture of the guest link (`-p/--pcap FILE`).
//!
//! Format: classic pcap 2.4 in host byte order (the magic tells readers),
//! link type Ethernet, snapshot length 65535, microsecond timestamps from
//! `CLOCK_REALTIME`. Frames longer than the snapshot length are cut, with
//! their original length in the record header. tcpdump and wireshark read
//! the result.
//!
//! Written by hand rather than with `pcap-file`: the format is four fixed
//! fields per record, and this way a batch of frames costs one `writev`
//! (record headers on the stack, frames referenced in place), with no
//! allocation and no copy. Batches longer than [`BATCH`] frames take one
//! `writev` per [`BATCH`] frames.
//!
//! Invariant: the file is always a sequence of whole records, unless a
//! write fails half-way (the error is logged at debug level, like upstream).
//!
//! Neighbours: opened during set-up, before isolation, like the other
//! runtime files ([`crate::daemon::open_output_file`]); `link` calls
//! [`Pcap::record_batch`] once per batch of frames in either direction.

use std::fs::File;
use std::io::{self, IoSlice, Write};
use std::path::Path;

use rustix::time::{ClockId, clock_gettime};

/// Snapshot length: longer frames are truncated in the capture.
pub const SNAPLEN: u32 = 65535;
/// Frames per `writev`: the largest batch the TCP path builds.
pub const BATCH: usize = 128;

const MAGIC_USEC: u32 = 0xa1b2_c3d4;
const LINKTYPE_ETHERNET: u32 = 1;
const RECORD_HEADER_LEN: usize = 16;

/// An open capture file.
#[derive(Debug)]
pub struct Pcap {
    file: File,
}

impl Pcap {
    /// Creates or truncates `path` (mode 0600) and writes the global header.
    pub fn create(path: &Path) -> io::Result<Pcap> {
        let mut file = crate::daemon::open_output_file(path)?;
        file.write_all(&global_header())?;
        log::info!("Saving packet capture to {}", path.display());
        Ok(Pcap { file })
    }

    /// Appends one frame, stamped with the current time.
    pub fn record(&self, frame: &[u8]) {
        self.record_batch(std::iter::once(frame));
    }

    /// Appends frames, all stamped with the current time.
    pub fn record_batch<'a>(&self, frames: impl IntoIterator<Item = &'a [u8]>) {
        let now = clock_gettime(ClockId::Realtime);
        // The u32 seconds field of pcap 2.4 wraps in 2106.
        let (sec, usec) = (now.tv_sec as u32, (now.tv_nsec / 1000) as u32);
        let mut chunk: [&[u8]; BATCH] = [&[]; BATCH];
        let mut frames = frames.into_iter().peekable();
        while frames.peek().is_some() {
            let mut n = 0;
            for (slot, frame) in chunk.iter_mut().zip(frames.by_ref()) {
                *slot = frame;
                n += 1;
            }
            if let Err(e) = self.write_chunk(sec, usec, &chunk[..n]) {
                log::debug!("Cannot log {n} packets to capture file: {e}");
            }
        }
    }

    /// Writes up to [`BATCH`] records with one `writev` (more only if the
    /// kernel takes part of it).
    fn write_chunk(&self, sec: u32, usec: u32, frames: &[&[u8]]) -> io::Result<()> {
        let mut headers = [[0u8; RECORD_HEADER_LEN]; BATCH];
        for (header, frame) in headers.iter_mut().zip(frames) {
            *header = record_header(sec, usec, frame.len());
        }
        let mut iov = [IoSlice::new(&[]); 2 * BATCH];
        for (i, (header, frame)) in headers.iter().zip(frames).enumerate() {
            iov[2 * i] = IoSlice::new(header);
            iov[2 * i + 1] = IoSlice::new(&frame[..captured_len(frame.len())]);
        }
        write_all_vectored(&self.file, &mut iov[..2 * frames.len()])
    }
}

/// The 24-byte file header: magic, version 2.4, zone and accuracy 0,
/// snapshot length, link type.
fn global_header() -> [u8; 24] {
    let mut h = [0u8; 24];
    h[0..4].copy_from_slice(&MAGIC_USEC.to_ne_bytes());
    h[4..6].copy_from_slice(&2u16.to_ne_bytes());
    h[6..8].copy_from_slice(&4u16.to_ne_bytes());
    h[16..20].copy_from_slice(&SNAPLEN.to_ne_bytes());
    h[20..24].copy_from_slice(&LINKTYPE_ETHERNET.to_ne_bytes());
    h
}

/// How many bytes of a frame of length `len` go into the capture.
fn captured_len(len: usize) -> usize {
    len.min(SNAPLEN as usize)
}

/// A record header: timestamp, captured length, original length.
fn record_header(sec: u32, usec: u32, len: usize) -> [u8; RECORD_HEADER_LEN] {
    let orig = u32::try_from(len).unwrap_or(u32::MAX);
    let caplen = captured_len(len) as u32;
    let mut h = [0u8; RECORD_HEADER_LEN];
    for (dst, field) in h.chunks_exact_mut(4).zip([sec, usec, caplen, orig]) {
        dst.copy_from_slice(&field.to_ne_bytes());
    }
    h
}

/// `writev` until everything is written (a regular file takes it all at
/// once unless the disk fills up or a signal interrupts).
fn write_all_vectored(mut file: &File, mut iov: &mut [IoSlice<'_>]) -> io::Result<()> {
    while !iov.is_empty() {
        match file.write_vectored(iov) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut iov, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::process::Command;

    struct TempFile(PathBuf);

    impl TempFile {
        fn new(name: &str) -> Self {
            let pid = std::process::id();
            TempFile(std::env::temp_dir().join(format!("passt-rs-pcap-{pid}-{name}.pcap")))
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn u32_at(bytes: &[u8], at: usize) -> u32 {
        u32::from_ne_bytes(bytes[at..at + 4].try_into().unwrap())
    }

    /// An Ethernet + IPv4 + UDP frame of `len` bytes (`len` >= 42).
    fn udp_frame(len: usize) -> Vec<u8> {
        let mut f = vec![0u8; len];
        f[0..6].copy_from_slice(&[0x9a, 0x55, 0x9a, 0x55, 0x9a, 0x55]);
        f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 1]);
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        let ip_len = u16::try_from((len - 14).min(65535)).unwrap();
        f[14] = 0x45;
        f[16..18].copy_from_slice(&ip_len.to_be_bytes());
        f[22] = 64;
        f[23] = 17;
        f[26..30].copy_from_slice(&[192, 0, 2, 1]);
        f[30..34].copy_from_slice(&[192, 0, 2, 2]);
        f[34..36].copy_from_slice(&1234u16.to_be_bytes());
        f[36..38].copy_from_slice(&5678u16.to_be_bytes());
        f[38..40].copy_from_slice(&(ip_len - 20).to_be_bytes());
        f
    }

    #[test]
    fn pcap_file_bytes() {
        let tmp = TempFile::new("bytes");
        let pcap = Pcap::create(&tmp.0).unwrap();
        let small = udp_frame(60);
        let big = udp_frame(70000);
        pcap.record(&small);
        pcap.record_batch([&big[..], &small[..]]);
        drop(pcap);

        let bytes = std::fs::read(&tmp.0).unwrap();
        assert_eq!(u32_at(&bytes, 0), 0xa1b2_c3d4);
        assert_eq!(
            &bytes[4..8],
            [2u16.to_ne_bytes(), 4u16.to_ne_bytes()].concat()
        );
        assert_eq!(u32_at(&bytes, 16), 65535);
        assert_eq!(u32_at(&bytes, 20), 1);
        let mut at = 24;
        for (caplen, orig) in [(60, 60), (65535, 70000), (60, 60)] {
            assert_eq!(u32_at(&bytes, at + 8), caplen);
            assert_eq!(u32_at(&bytes, at + 12), orig);
            let body = &bytes[at + 16..at + 16 + caplen as usize];
            let frame = if orig == 60 { &small } else { &big };
            assert_eq!(body, &frame[..caplen as usize]);
            at += 16 + caplen as usize;
        }
        assert_eq!(at, bytes.len());
    }

    #[test]
    fn pcap_batch_longer_than_one_writev() {
        let tmp = TempFile::new("long");
        let pcap = Pcap::create(&tmp.0).unwrap();
        let frame = udp_frame(100);
        pcap.record_batch(std::iter::repeat_n(&frame[..], BATCH * 2 + 3));
        let bytes = std::fs::read(&tmp.0).unwrap();
        assert_eq!(bytes.len(), 24 + (BATCH * 2 + 3) * (16 + 100));
    }

    fn tcpdump() -> Option<&'static str> {
        ["/usr/bin/tcpdump", "/usr/sbin/tcpdump"]
            .into_iter()
            .find(|p| Path::new(p).exists())
    }

    #[test]
    fn pcap_tcpdump_reads_capture() {
        let Some(tcpdump) = tcpdump() else {
            eprintln!("skipped: no tcpdump");
            return;
        };
        let tmp = TempFile::new("tcpdump");
        let pcap = Pcap::create(&tmp.0).unwrap();
        let frames = [udp_frame(60), udp_frame(1514), udp_frame(70000)];
        pcap.record_batch(frames.iter().map(Vec::as_slice));
        drop(pcap);

        let out = Command::new(tcpdump)
            .args(["-r"])
            .arg(&tmp.0)
            .arg("-nn")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let lines: Vec<_> = stdout.lines().collect();
        assert_eq!(lines.len(), 3, "{stdout}");
        for line in lines {
            assert!(
                line.contains("192.0.2.1.1234 > 192.0.2.2.5678: UDP"),
                "{line}"
            );
        }
    }
}
