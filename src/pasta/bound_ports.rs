//! Bound-port detection for pasta's `auto` forwarding (REFERENCE.md §1.7):
//! which ports the other side listens on: TCP sockets in `LISTEN` (0x0A),
//! and UDP sockets bound and not connected (0x07, `TCP_CLOSE`).
//!
//! [`PortScanner`] asks the kernel through `NETLINK_SOCK_DIAG`
//! ([`crate::sys::sock_diag`]): a dump of listening TCP sockets walks only
//! the listening hash, where reading `/proc/net/tcp` walks every
//! established connection too (milliseconds per read, every second). Each
//! of the four tables (TCP and UDP over IPv4 and IPv6) whose first dump
//! fails when the scanner is opened (no sock_diag in the kernel, no
//! `tcp_diag` or `udp_diag` module, a policy refusing the socket) is read
//! from its `/proc/net/{tcp,tcp6,udp,udp6}` file instead, for the
//! scanner's lifetime. A failure on a later scan is returned, not a
//! reason to switch.
//!
//! Both a netlink socket and a `/proc/net` file keep reporting the network
//! namespace they were opened in, so the namespace's scanner is opened once
//! by a helper thread inside it ([`PortScanner::open_in`]) and reused.
//!
//! [`ProcNetFiles`], the fallback, holds files open and re-reads them from
//! offset 0 on each scan. They are opened through `/proc/thread-self/net`:
//! `/proc/net` is `/proc/self/net`, the namespace of the process's main
//! thread, not of the helper thread. Reading is streamed through a fixed
//! chunk with a partial line carried across chunks; a line longer than
//! [`MAX_LINE`] is dropped, so memory stays bounded whatever the files
//! hold. The text is untrusted: a line counts only if it has the shape
//! `N: ADDR:PORT ADDR:PORT ST` with hex fields (addresses of 8 or 32
//! digits, ports of at most 4); anything else is skipped. Like upstream's
//! `procfs_scan_listen()`, every local address counts, loopback included;
//! the sock_diag path reports the same sockets.
//!
//! [`BoundPorts`] is a scan's raw result; [`BoundPorts::tcp_auto`] and
//! [`BoundPorts::udp_auto`] turn it into the ports to forward (UDP also
//! follows listening TCP ports, minus the ports the caller forwards in the
//! other direction). Nothing here binds anything
//! (`flow::listen` binds and releases to match). May call: `conf::ports`
//! (the port set), `pasta::netns`, `sys::sock_diag`.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use super::netns::NetNs;
use crate::conf::ports::PortSet;
use crate::sys::sock_diag::{Family, Protocol, SockDiag};

/// `TCP_LISTEN` in the kernel's `include/net/tcp_states.h`.
pub const TCP_LISTEN: u8 = 0x0a;
/// `TCP_CLOSE`, which a bound, unconnected UDP socket reports.
pub const UDP_BOUND: u8 = 0x07;

/// Longest line kept; real ones are under 200 bytes.
pub const MAX_LINE: usize = 512;
/// Bytes read from a file per system call.
const CHUNK: usize = 64 * 1024;

/// One of the four socket tables a scan reads.
struct Table {
    /// The file under `/proc/net`.
    name: &'static str,
    family: Family,
    protocol: Protocol,
}

/// The tables, in the order of [`ProcNetFiles`]'s arrays.
const TABLES: [Table; 4] = [
    Table {
        name: "tcp",
        family: Family::Inet,
        protocol: Protocol::Tcp,
    },
    Table {
        name: "tcp6",
        family: Family::Inet6,
        protocol: Protocol::Tcp,
    },
    Table {
        name: "udp",
        family: Family::Inet,
        protocol: Protocol::Udp,
    },
    Table {
        name: "udp6",
        family: Family::Inet6,
        protocol: Protocol::Udp,
    },
];

/// Scans one side's bound ports, through sock_diag where the kernel offers
/// it and through the `/proc/net` files elsewhere.
pub struct PortScanner {
    /// The socket, if some table is read through it.
    diag: Option<SockDiag>,
    /// Which of [`TABLES`] `diag` reads; the others come from `files`.
    via_diag: [bool; 4],
    files: ProcNetFiles,
}

impl PortScanner {
    /// Opens a scanner of the calling thread's network namespace: a
    /// sock_diag socket, tried on each table, and the files of the tables
    /// it cannot dump.
    pub fn open_here() -> io::Result<PortScanner> {
        let diag = SockDiag::open()
            .inspect_err(|e| log::debug!("No sock_diag ({e}): scanning ports through /proc/net"))
            .ok();
        PortScanner::probe(diag)
    }

    /// Opens a scanner of `netns` (from a helper thread inside it).
    pub fn open_in(netns: &NetNs) -> io::Result<PortScanner> {
        netns.run(PortScanner::open_here)
    }

    /// A scanner that reads only the `/proc/net` files of the calling
    /// thread's namespace, as when sock_diag is missing.
    pub fn open_proc_here() -> io::Result<PortScanner> {
        PortScanner::with_sources(None, [false; 4])
    }

    /// Keeps `diag` for the tables whose first dump goes through.
    fn probe(mut diag: Option<SockDiag>) -> io::Result<PortScanner> {
        let mut via_diag = [false; 4];
        if let Some(socket) = diag.as_mut() {
            let mut scratch = BoundPorts::default();
            for (table, via) in TABLES.iter().zip(&mut via_diag) {
                match dump_table(socket, table, &mut scratch) {
                    Ok(()) => *via = true,
                    Err(e) => log::debug!(
                        "sock_diag dump failed ({e}): reading /proc/net/{} instead",
                        table.name
                    ),
                }
            }
        }
        PortScanner::with_sources(diag, via_diag)
    }

    fn with_sources(diag: Option<SockDiag>, via_diag: [bool; 4]) -> io::Result<PortScanner> {
        Ok(PortScanner {
            diag: diag.filter(|_| via_diag.contains(&true)),
            via_diag,
            files: ProcNetFiles::open_tables(via_diag.map(|via| !via))?,
        })
    }

    /// Scans the bound ports again. On an error the scan is incomplete and
    /// the caller should keep its current forwards.
    pub fn scan(&mut self) -> io::Result<BoundPorts> {
        let mut bound = BoundPorts::default();
        if let Some(socket) = self.diag.as_mut() {
            for (table, _) in TABLES.iter().zip(self.via_diag).filter(|(_, via)| *via) {
                dump_table(socket, table, &mut bound)?;
            }
        }
        self.files.scan_into(&mut bound)?;
        Ok(bound)
    }
}

/// Adds the ports of `table` in its state to `bound`, through `socket`.
fn dump_table(socket: &mut SockDiag, table: &Table, bound: &mut BoundPorts) -> io::Result<()> {
    let (state, out) = match table.protocol {
        Protocol::Tcp => (TCP_LISTEN, &mut bound.tcp),
        Protocol::Udp => (UDP_BOUND, &mut bound.udp),
    };
    socket.dump_ports(table.family, table.protocol, 1 << state, |port| {
        out.insert(port);
    })
}

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
        ProcNetFiles::open_tables([true; 4])
    }

    /// Opens the files of `netns` (from a helper thread inside it).
    pub fn open_in(netns: &NetNs) -> io::Result<ProcNetFiles> {
        netns.run(ProcNetFiles::open_here)
    }

    /// Opens the files of the [`TABLES`] marked in `wanted`.
    fn open_tables(wanted: [bool; 4]) -> io::Result<ProcNetFiles> {
        let mut files = TABLES.iter().zip(wanted).map(|(table, wanted)| {
            if !wanted {
                return Ok(None);
            }
            let name = table.name;
            match File::open(format!("/proc/thread-self/net/{name}")) {
                Ok(f) => Ok(Some(f)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(io::Error::new(
                    e.kind(),
                    format!("opening /proc/net/{name}: {e}"),
                )),
            }
        });
        let mut next = || files.next().unwrap_or(Ok(None));
        let (tcp, tcp6, udp, udp6) = (next()?, next()?, next()?, next()?);
        // The chunk only if there is something to read.
        let chunk_len = if wanted.contains(&true) { CHUNK } else { 0 };
        Ok(ProcNetFiles {
            tcp: [tcp, tcp6],
            udp: [udp, udp6],
            chunk: vec![0; chunk_len].into_boxed_slice(),
            carry: Vec::with_capacity(MAX_LINE),
        })
    }

    /// Reads all four files again. On an error the scan is incomplete and
    /// the caller should keep its current forwards.
    pub fn scan(&mut self) -> io::Result<BoundPorts> {
        let mut bound = BoundPorts::default();
        self.scan_into(&mut bound)?;
        Ok(bound)
    }

    /// Adds what the open files hold to `bound`.
    fn scan_into(&mut self, bound: &mut BoundPorts) -> io::Result<()> {
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
        Ok(())
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

    /// Every way of opening a scanner here: sock_diag for all tables,
    /// `/proc` for all, and two mixes.
    fn all_scanners() -> Vec<PortScanner> {
        let diag = PortScanner::open_here().unwrap();
        assert_eq!(diag.via_diag, [true; 4], "sock_diag must work here");
        assert!(
            diag.files
                .tcp
                .iter()
                .chain(&diag.files.udp)
                .all(Option::is_none)
        );
        assert!(diag.files.chunk.is_empty());
        let mut scanners = vec![diag, PortScanner::open_proc_here().unwrap()];
        for mix in [[true, false, true, false], [false, false, true, true]] {
            let socket = SockDiag::open().unwrap();
            scanners.push(PortScanner::with_sources(Some(socket), mix).unwrap());
        }
        scanners
    }

    /// Scans with every scanner, checks that they agree and returns the
    /// result.
    fn scan_all(scanners: &mut [PortScanner]) -> BoundPorts {
        let first = scanners[0].scan().unwrap();
        for (i, scanner) in scanners.iter_mut().enumerate() {
            assert_eq!(scanner.scan().unwrap(), first, "scanner {i}");
        }
        first
    }

    #[test]
    fn scans_a_private_namespace() {
        let mut kept = None;
        crate::flow::testing::in_private_netns(|| {
            let mut scanners = all_scanners();
            let mut files = ProcNetFiles::open_here().unwrap();
            assert_eq!(scan_all(&mut scanners), BoundPorts::default());
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
            let client6 = TcpStream::connect("[::1]:4244").unwrap();
            let (accepted6, _) = tcp6.accept().unwrap();

            let bound = scan_all(&mut scanners);
            assert_eq!(ports(&bound.tcp), vec![4242, 4244]);
            assert_eq!(ports(&bound.udp), vec![4243, 4245]);
            assert_eq!(files.scan().unwrap(), bound);
            // A second scan starts over.
            assert_eq!(scan_all(&mut scanners), bound);
            assert_eq!(files.scan().unwrap(), bound);

            drop((tcp6, udp6, client, accepted, connected, client6, accepted6));
            let bound = scan_all(&mut scanners);
            assert_eq!(ports(&bound.tcp), vec![4242]);
            assert_eq!(ports(&bound.udp), vec![4243]);

            let netns = NetNs::open(std::path::Path::new("/proc/thread-self/ns/net")).unwrap();
            kept = Some((netns, scanners, files, tcp4, udp4));
        });
        // Back in the test's own namespace: scanners opened in the private
        // one (there, and through open_in) still report it.
        let (netns, mut scanners, files, _tcp4, _udp4) = kept.unwrap();
        scanners.push(PortScanner::open_in(&netns).unwrap());
        let bound = scan_all(&mut scanners);
        assert_eq!(ports(&bound.tcp), vec![4242]);
        assert_eq!(ports(&bound.udp), vec![4243]);
        for mut files in [files_in(&netns), files] {
            assert_eq!(files.scan().unwrap(), bound);
        }
    }

    fn files_in(netns: &NetNs) -> ProcNetFiles {
        ProcNetFiles::open_in(netns).unwrap()
    }

    #[test]
    fn without_sock_diag_the_files_are_read() {
        crate::flow::testing::in_private_netns(|| {
            // A scanner whose probe had no socket reads every file.
            let mut scanner = PortScanner::probe(None).unwrap();
            assert_eq!(scanner.via_diag, [false; 4]);
            assert!(scanner.diag.is_none());
            assert!(
                scanner
                    .files
                    .tcp
                    .iter()
                    .chain(&scanner.files.udp)
                    .all(Option::is_some)
            );
            let _tcp6 = TcpListener::bind("[::1]:4300").unwrap();
            let _udp4 = UdpSocket::bind("0.0.0.0:4301").unwrap();
            let bound = scanner.scan().unwrap();
            assert_eq!(ports(&bound.tcp), vec![4300]);
            assert_eq!(ports(&bound.udp), vec![4301]);
            assert_eq!(PortScanner::open_here().unwrap().scan().unwrap(), bound);
        });
    }

    /// Time of `rounds` scans by `scanner`, per scan.
    fn time_scans(scanner: &mut PortScanner, expected: (usize, usize)) -> std::time::Duration {
        let rounds = 200;
        let start = std::time::Instant::now();
        for _ in 0..rounds {
            let bound = scanner.scan().unwrap();
            assert_eq!((bound.tcp.len(), bound.udp.len()), expected);
        }
        start.elapsed() / rounds
    }

    /// A scanner of the single table `index`, through sock_diag or its file.
    fn one_table_scanner(index: usize, via_diag: bool) -> PortScanner {
        let mut only = [false; 4];
        only[index] = true;
        PortScanner {
            diag: via_diag.then(|| SockDiag::open().unwrap()),
            via_diag: only.map(|table| table && via_diag),
            files: ProcNetFiles::open_tables(only.map(|table| table && !via_diag)).unwrap(),
        }
    }

    /// Scan time, /proc against sock_diag, with no sockets and with 2000
    /// (500 ports, each a TCP listener and a bound UDP socket over IPv4 and
    /// IPv6), whole scans and per table: `cargo test --release --lib
    /// pasta::bound_ports -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn scan_time_with_0_and_2000_sockets() {
        crate::flow::testing::in_private_netns(|| {
            let mut sockets = Vec::new();
            for count in [0usize, 500] {
                for port in 10000..10000 + count as u16 {
                    sockets.push((
                        TcpListener::bind(("127.0.0.1", port)).unwrap(),
                        TcpListener::bind(("::1", port)).unwrap(),
                        UdpSocket::bind(("127.0.0.1", port)).unwrap(),
                        UdpSocket::bind(("::1", port)).unwrap(),
                    ));
                }
                let mut proc = PortScanner::open_proc_here().unwrap();
                let mut diag = PortScanner::open_here().unwrap();
                assert_eq!(diag.via_diag, [true; 4]);
                let proc = time_scans(&mut proc, (count, count));
                let diag = time_scans(&mut diag, (count, count));
                println!(
                    "{} sockets: /proc {proc:?}, sock_diag {diag:?} per scan",
                    sockets.len() * 4
                );
                for (index, table) in TABLES.iter().enumerate() {
                    let expected = match table.protocol {
                        Protocol::Tcp => (count, 0),
                        Protocol::Udp => (0, count),
                    };
                    let [proc, diag] = [false, true]
                        .map(|via| time_scans(&mut one_table_scanner(index, via), expected));
                    println!("  {:5} /proc {proc:?}, sock_diag {diag:?}", table.name);
                }
            }
        });
    }
}
