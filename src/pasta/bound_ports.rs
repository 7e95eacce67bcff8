//! Bound-port detection for pasta's `auto` forwarding (REFERENCE.md §1.7):
//! which ports the other side listens on, read from its `/proc/net/tcp`,
//! `tcp6` (state 0x0A, LISTEN) and `udp`, `udp6` (state 0x07, bound and
//! not connected).
//!
//! [`ProcNetFiles`] holds the four files open: a `/proc/net` file keeps
//! reporting the network namespace it was opened in, so the namespace's
//! files are opened once by a helper thread inside it
//! ([`ProcNetFiles::open_in`]) and re-read from offset 0 on each scan. They
//! are opened through `/proc/thread-self/net`: `/proc/net` is
//! `/proc/self/net`, the namespace of the process's main thread, not of the
//! helper thread. Reading is streamed through a fixed chunk with a partial
//! line carried across chunks; a line longer than [`MAX_LINE`] is dropped,
//! so memory stays bounded whatever the files hold.
//!
//! The text is untrusted: a line counts only if it has the shape
//! `N: ADDR:PORT ADDR:PORT ST` with hex fields (addresses of 8 or 32
//! digits, ports of at most 4); anything else is skipped. Like upstream's
//! `procfs_scan_listen()`, every local address counts, loopback included.
//!
//! [`BoundPorts`] is a scan's raw result; [`BoundPorts::tcp_auto`] and
//! [`BoundPorts::udp_auto`] turn it into the ports to forward (UDP also
//! follows listening TCP ports, minus the ports the caller forwards in the
//! other direction). Nothing here binds anything
//! (`flow::listen` binds and releases to match). May call: `conf::ports` (the port set), `pasta::netns`.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use super::netns::NetNs;
use crate::conf::ports::PortSet;

/// `TCP_LISTEN` in the kernel's `include/net/tcp_states.h`.
pub const TCP_LISTEN: u8 = 0x0a;
/// `TCP_CLOSE`, which a bound, unconnected UDP socket reports.
pub const UDP_BOUND: u8 = 0x07;

/// Longest line kept; real ones are under 200 bytes.
pub const MAX_LINE: usize = 512;
/// Bytes read from a file per system call.
const CHUNK: usize = 64 * 1024;

/// The other side's `/proc/net/{tcp,tcp6,udp,udp6}`, kept open, with the
/// buffers a scan reuses. A file that does not exist (e.g. `tcp6` with
/// IPv6 disabled) is left out.
pub struct ProcNetFiles {
    tcp: [Option<File>; 2],
    udp: [Option<File>; 2],
    chunk: Box<[u8]>,
    carry: Vec<u8>,
}

/// Ports bound on one side, as scanned: `tcp` listening, `udp` bound.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BoundPorts {
    pub tcp: PortSet,
    pub udp: PortSet,
}

impl ProcNetFiles {
    /// Opens the files of the calling thread's network namespace.
    pub fn open_here() -> io::Result<ProcNetFiles> {
        let open = |name: &str| match File::open(format!("/proc/thread-self/net/{name}")) {
            Ok(f) => Ok(Some(f)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io::Error::new(
                e.kind(),
                format!("opening /proc/net/{name}: {e}"),
            )),
        };
        Ok(ProcNetFiles {
            tcp: [open("tcp")?, open("tcp6")?],
            udp: [open("udp")?, open("udp6")?],
            chunk: vec![0; CHUNK].into_boxed_slice(),
            carry: Vec::with_capacity(MAX_LINE),
        })
    }

    /// Opens the files of `netns` (from a helper thread inside it).
    pub fn open_in(netns: &NetNs) -> io::Result<ProcNetFiles> {
        netns.run(ProcNetFiles::open_here)
    }

    /// Reads all four files again. On an error the scan is incomplete and
    /// the caller should keep its current forwards.
    pub fn scan(&mut self) -> io::Result<BoundPorts> {
        let mut bound = BoundPorts::default();
        for (files, state, out) in [
            (&self.tcp, TCP_LISTEN, &mut bound.tcp),
            (&self.udp, UDP_BOUND, &mut bound.udp),
        ] {
            for file in files.iter().flatten() {
                let mut offset = 0u64;
                let read = |buf: &mut [u8]| {
                    let n = file.read_at(buf, offset)?;
                    offset += n as u64;
                    Ok(n)
                };
                scan_stream(read, &mut self.chunk, &mut self.carry, state, out)?;
            }
        }
        Ok(bound)
    }
}

impl BoundPorts {
    /// Ports for TCP `auto`: the listening ones, minus `exclude` (what is
    /// forwarded in the other direction) and port 0.
    pub fn tcp_auto(&self, exclude: &PortSet) -> PortSet {
        let mut ports = self.tcp.clone();
        ports.subtract(exclude);
        ports.remove(0);
        ports
    }

    /// Ports for UDP `auto`: the bound UDP ports and, as upstream does for
    /// protocols with a TCP control port (iperf3), the listening TCP ports
    /// too, minus `exclude` and port 0.
    pub fn udp_auto(&self, exclude: &PortSet) -> PortSet {
        let mut ports = self.udp.clone();
        ports.union_with(&self.tcp);
        ports.subtract(exclude);
        ports.remove(0);
        ports
    }
}

/// Adds to `out` the local ports of the lines of a whole `/proc/net/tcp`-
/// style text (header line first) in `state`; the same rules as a scan,
/// lines longer than [`MAX_LINE`] included.
pub fn parse_proc_net(text: &[u8], state: u8, out: &mut PortSet) {
    let mut lines = text.split(|&b| b == b'\n');
    lines.next(); // header
    for line in lines.filter(|line| line.len() <= MAX_LINE) {
        add_line(line, state, out);
    }
}

/// Streams one file through `chunk`, calling `read` until it returns 0;
/// `carry` holds a line split across chunks (never more than
/// [`MAX_LINE`]). The first line is the header.
fn scan_stream(
    mut read: impl FnMut(&mut [u8]) -> io::Result<usize>,
    chunk: &mut [u8],
    carry: &mut Vec<u8>,
    state: u8,
    out: &mut PortSet,
) -> io::Result<()> {
    carry.clear();
    let mut header = true;
    let mut overlong = false;
    loop {
        let n = match read(chunk) {
            Ok(0) => break,
            Ok(n) => n.min(chunk.len()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let mut data = &chunk[..n];
        while let Some(end) = data.iter().position(|&b| b == b'\n') {
            let (part, rest) = (&data[..end], &data[end + 1..]);
            if !header && !overlong && carry.len() + part.len() <= MAX_LINE {
                if carry.is_empty() {
                    add_line(part, state, out);
                } else {
                    carry.extend_from_slice(part);
                    add_line(carry, state, out);
                }
            }
            header = false;
            overlong = false;
            carry.clear();
            data = rest;
        }
        if overlong || carry.len() + data.len() > MAX_LINE {
            overlong = true;
            carry.clear();
        } else {
            carry.extend_from_slice(data);
        }
    }
    if !header && !overlong {
        add_line(carry, state, out);
    }
    carry.clear();
    Ok(())
}

fn add_line(line: &[u8], state: u8, out: &mut PortSet) {
    if let Some((port, st)) = parse_line(line)
        && st == state
    {
        out.insert(port);
    }
}

/// `N: LOCAL_ADDR:PORT REMOTE_ADDR:PORT ST ...` -> (local port, state).
fn parse_line(line: &[u8]) -> Option<(u16, u8)> {
    let mut fields = line
        .split(|b| b.is_ascii_whitespace())
        .filter(|f| !f.is_empty());
    let slot = fields.next()?.strip_suffix(b":")?;
    if slot.is_empty() || !slot.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let local_port = endpoint(fields.next()?)?;
    endpoint(fields.next()?)?;
    let state = hex(fields.next()?, 2)?;
    Some((local_port as u16, state as u8))
}

/// `ADDR:PORT` with an 8- or 32-digit hex address: the port.
fn endpoint(field: &[u8]) -> Option<u32> {
    let colon = field.iter().position(|&b| b == b':')?;
    let (addr, port) = (&field[..colon], &field[colon + 1..]);
    if !matches!(addr.len(), 8 | 32) || !addr.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    hex(port, 4)
}

/// A hex number of 1 to `max_digits` digits.
fn hex(field: &[u8], max_digits: usize) -> Option<u32> {
    if field.is_empty() || field.len() > max_digits {
        return None;
    }
    field.iter().try_fold(0u32, |acc, &b| {
        let digit = char::from(b).to_digit(16)?;
        Some(acc << 4 | digit)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream, UdpSocket};

    const TCP4: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12345 1 0000000000000000 100 0 0 10 0
   1: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12346 1 0000000000000000 100 0 0 10 0
   2: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 12347 1 0000000000000000 20 4 30 10 -1
   3: 0100007F:C350 0100007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 12348 1 0000000000000000 20 4 30 10 -1
   4: 00000000:FFFF 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12349 1 0000000000000000 100 0 0 10 0
   5: 00000000:0000 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12350 1 0000000000000000 100 0 0 10 0
   6: 0100007F:01BB 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 12351 1 0000000000000000 100 0 0 10 0
garbage
   7: 0100007F:10000 00000000:0000 0A
   8: 0100007:0050 00000000:0000 0A
   9: 0100007F:0050 00000000:0000 0A0
  10 0100007F:0051 00000000:0000 0A
  x1: 0100007F:0052 00000000:0000 0A
  11: 0100007F:zz53 00000000:0000 0A
  12: 0100007F:0054 00000000 0A
  13: 0100007F:0055 00000000:0000
  14: 0100007F0056 00000000:0000 0A
   15: 0100007F:0019 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1";

    const TCP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:0BB8 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2222 1 0000000000000000 100 0 0 10 0
   1: 00000000000000000000000000000000:0050 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2223 1 0000000000000000 100 0 0 10 0
   2: 00000000000000000000000001000000:0BB8 00000000000000000000000001000000:D431 01 00000000:00000000 00:00000000 00000000     0        0 2224 1 0000000000000000 20 4 30 10 -1
   3: 0000000000000000000000000100000:0BB9 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2225 1
";

    const UDP: &str = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  100: 00000000:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 3333 2 0000000000000000 0
  200: 0100007F:0277 0100007F:0035 01 00000000:00000000 00:00000000 00000000     0        0 3334 2 0000000000000000 0
  300: 3500007F:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000   101        0 3335 2 0000000000000000 0
  301: 00000000:14E9 00000000:0000 0A 00000000:00000000 00:00000000 00000000   101        0 3336 2 0000000000000000 0
";

    fn set(ports: &[u16]) -> PortSet {
        let mut s = PortSet::new();
        for &p in ports {
            s.insert(p);
        }
        s
    }

    fn ports(s: &PortSet) -> Vec<u16> {
        s.iter().collect()
    }

    fn parsed(text: &str, state: u8) -> Vec<u16> {
        let mut out = PortSet::new();
        parse_proc_net(text.as_bytes(), state, &mut out);
        ports(&out)
    }

    #[test]
    fn parses_states_and_skips_malformed_lines() {
        assert_eq!(parsed(TCP4, TCP_LISTEN), vec![0, 22, 25, 8080, 65535]);
        assert_eq!(parsed(TCP4, UDP_BOUND), vec![443]);
        assert_eq!(parsed(TCP4, 0x01), vec![8080, 50000]);
        assert_eq!(parsed(TCP6, TCP_LISTEN), vec![80, 3000]);
        assert_eq!(parsed(UDP, UDP_BOUND), vec![53]);
        // The header alone, or nothing, gives nothing.
        assert_eq!(parsed("", TCP_LISTEN), Vec::<u16>::new());
        let header = TCP4.lines().next().unwrap();
        assert_eq!(parsed(header, TCP_LISTEN), Vec::<u16>::new());
    }

    #[test]
    fn line_fields() {
        assert_eq!(
            parse_line(b"0: 0100007F:1F90 00000000:0000 0A"),
            Some((8080, 0x0a))
        );
        assert_eq!(
            parse_line(b"0: 0100007F:1F90 00000000:0000 A"),
            Some((8080, 0x0a))
        );
        assert_eq!(parse_line(b"0: 0100007F: 00000000:0000 0A"), None);
        assert_eq!(parse_line(b"0: 0100007F:1F90 00000000:0000 +A"), None);
        assert_eq!(parse_line(b":"), None);
        assert_eq!(parse_line(b""), None);
        assert_eq!(
            parse_line("0: 0100007F:1F9é 00000000:0000 0A".as_bytes()),
            None
        );
    }

    fn streamed(text: &[u8], chunk_size: usize, state: u8) -> Vec<u16> {
        let mut chunk = vec![0; chunk_size];
        let mut carry = Vec::with_capacity(MAX_LINE);
        let mut out = PortSet::new();
        let mut rest = text;
        let read = |buf: &mut [u8]| {
            let n = buf.len().min(rest.len());
            buf[..n].copy_from_slice(&rest[..n]);
            rest = &rest[n..];
            Ok(n)
        };
        scan_stream(read, &mut chunk, &mut carry, state, &mut out).unwrap();
        assert_eq!(carry.capacity(), MAX_LINE);
        ports(&out)
    }

    #[test]
    fn chunk_boundaries_do_not_change_the_result() {
        for text in [TCP4, TCP6, UDP] {
            for state in [TCP_LISTEN, UDP_BOUND, 0x01] {
                let whole = parsed(text, state);
                for size in (1..=300).chain([4096, CHUNK]) {
                    assert_eq!(
                        streamed(text.as_bytes(), size, state),
                        whole,
                        "chunk {size}"
                    );
                }
            }
        }
    }

    #[test]
    fn overlong_lines_are_dropped_and_bounded() {
        let mut text = b"header\n".to_vec();
        text.extend_from_slice(b"0: 0100007F:0050 00000000:0000 0A");
        text.extend(std::iter::repeat_n(b' ', MAX_LINE));
        text.extend_from_slice(b"\n1: 0100007F:0051 00000000:0000 0A\n");
        text.extend(std::iter::repeat_n(b'x', 10 * MAX_LINE));
        text.extend_from_slice(b"\n2: 0100007F:0052 00000000:0000 0A");
        for size in [1, 7, 100, MAX_LINE, 4096] {
            let mut chunk = vec![0; size];
            let mut carry = Vec::with_capacity(MAX_LINE);
            let mut out = PortSet::new();
            let mut rest = &text[..];
            let read = |buf: &mut [u8]| {
                let n = buf.len().min(rest.len());
                buf[..n].copy_from_slice(&rest[..n]);
                rest = &rest[n..];
                Ok(n)
            };
            scan_stream(read, &mut chunk, &mut carry, TCP_LISTEN, &mut out).unwrap();
            assert_eq!(ports(&out), vec![0x51, 0x52], "chunk {size}");
            assert_eq!(carry.capacity(), MAX_LINE);
        }
    }

    #[test]
    fn read_errors_end_the_scan_interrupts_do_not() {
        let mut chunk = vec![0; 64];
        let mut carry = Vec::new();
        let mut out = PortSet::new();
        let mut calls = 0;
        let text = b"h\n0: 0100007F:0050 00000000:0000 0A\n";
        let read = |buf: &mut [u8]| {
            calls += 1;
            match calls {
                1 => Err(io::Error::from(io::ErrorKind::Interrupted)),
                2 => {
                    buf[..text.len()].copy_from_slice(text);
                    Ok(text.len())
                }
                _ => Err(io::Error::from(io::ErrorKind::InvalidData)),
            }
        };
        let err = scan_stream(read, &mut chunk, &mut carry, TCP_LISTEN, &mut out);
        assert_eq!(err.unwrap_err().kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn udp_auto_includes_tcp_and_exclusions_apply() {
        let bound = BoundPorts {
            tcp: set(&[0, 22, 5201, 8080]),
            udp: set(&[53, 5353]),
        };
        let none = PortSet::new();
        assert_eq!(ports(&bound.tcp_auto(&none)), vec![22, 5201, 8080]);
        assert_eq!(
            ports(&bound.udp_auto(&none)),
            vec![22, 53, 5201, 5353, 8080]
        );
        // Exclusions are per protocol, and also remove the TCP-derived ports.
        let excl = set(&[8080, 53]);
        assert_eq!(ports(&bound.tcp_auto(&excl)), vec![22, 5201]);
        assert_eq!(ports(&bound.udp_auto(&excl)), vec![22, 5201, 5353]);
    }

    #[test]
    fn scans_a_private_namespace() {
        let mut kept = None;
        crate::flow::testing::in_private_netns(|| {
            let mut files = ProcNetFiles::open_here().unwrap();
            assert_eq!(files.scan().unwrap(), BoundPorts::default());

            let tcp4 = TcpListener::bind("127.0.0.1:4242").unwrap();
            let tcp6 = TcpListener::bind("[::1]:4244").unwrap();
            let udp4 = UdpSocket::bind("127.0.0.1:4243").unwrap();
            let udp6 = UdpSocket::bind("[::]:4245").unwrap();
            // Connected sockets are not in the listening/bound states.
            let client = TcpStream::connect("127.0.0.1:4242").unwrap();
            let (accepted, _) = tcp4.accept().unwrap();
            let connected = UdpSocket::bind("127.0.0.1:0").unwrap();
            connected.connect("127.0.0.1:4243").unwrap();

            let bound = files.scan().unwrap();
            assert_eq!(ports(&bound.tcp), vec![4242, 4244]);
            assert_eq!(ports(&bound.udp), vec![4243, 4245]);
            // A second scan re-reads from the start.
            assert_eq!(files.scan().unwrap(), bound);

            drop((tcp6, udp6, client, accepted, connected));
            let bound = files.scan().unwrap();
            assert_eq!(ports(&bound.tcp), vec![4242]);
            assert_eq!(ports(&bound.udp), vec![4243]);

            let netns = NetNs::open(std::path::Path::new("/proc/thread-self/ns/net")).unwrap();
            kept = Some((netns, files, tcp4, udp4));
        });
        // Back in the test's own namespace: files opened in the private one
        // (here, and through NetNs::open_in) still report it.
        let (netns, mut files, _tcp4, _udp4) = kept.unwrap();
        let mut opened_in = ProcNetFiles::open_in(&netns).unwrap();
        for files in [&mut files, &mut opened_in] {
            let bound = files.scan().unwrap();
            assert_eq!(ports(&bound.tcp), vec![4242]);
            assert_eq!(ports(&bound.udp), vec![4243]);
        }
    }

    /// Scan time with 2000 bound sockets (1000 TCP listeners, 1000 UDP):
    /// `cargo test --lib pasta::bound_ports -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn scan_time_with_2000_sockets() {
        crate::flow::testing::in_private_netns(|| {
            let mut sockets = Vec::new();
            for port in 10000..10500u16 {
                sockets.push((
                    TcpListener::bind(("127.0.0.1", port)).unwrap(),
                    TcpListener::bind(("::1", port)).unwrap(),
                    UdpSocket::bind(("127.0.0.1", port)).unwrap(),
                    UdpSocket::bind(("::1", port)).unwrap(),
                ));
            }
            let mut files = ProcNetFiles::open_here().unwrap();
            let rounds = 200;
            let start = std::time::Instant::now();
            for _ in 0..rounds {
                let bound = files.scan().unwrap();
                assert_eq!((bound.tcp.len(), bound.udp.len()), (500, 500));
            }
            let per_scan = start.elapsed() / rounds;
            println!("scan of 2000 sockets: {per_scan:?} per scan");
        });
    }
}
