//! A guest for passt without a virtual machine (DESIGN.md §5): a network
//! namespace of its own whose tap device a pair of threads bridges to
//! passt's UNIX socket with qemu's `-netdev stream` framing (each frame
//! preceded by its length, 4 bytes big-endian), the way qemu connects a VM's
//! network card to passt.
//!
//! ```text
//!  guest netns (prs-g-PID-N)          test process            rig "host" netns
//!    guest0 (tap, MTU 65520) <-fd-> bridge threads <-UNIX socket-> passt
//! ```
//!
//! The guest is configured as a VM would be by passt: the host's addresses
//! (192.0.2.1/24, 2001:db8:1::1/64) and default routes via the gateway
//! (192.0.2.2, 2001:db8:1::2), statically or, for IPv4, from passt's DHCP
//! server (busybox udhcpc). Router advertisements from passt are accepted
//! as a VM's kernel would (so SLAAC may add an address and a route, both
//! through passt).
//!
//! Dropping the [`PasstGuest`] (also during a panic) stops the bridge
//! (threads woken every 100 ms by poll and socket timeouts, joined within a
//! bound), ends every process left in the namespace by PID and deletes it;
//! the tap goes with its file descriptor. passt itself belongs to the rig.

use super::*;
use passt_rs::sys::{ns, tun};
use rustix::event::{PollFd, PollFlags, Timespec, poll};
use std::fs::File;
use std::io::{ErrorKind, IoSlice, Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::thread::JoinHandle;

/// The guest's tap device.
pub const GUEST_TAP: &str = "guest0";
/// The guest's MAC address (locally administered).
pub const GUEST_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x20];
/// The MTU passt gives its guests.
pub const GUEST_MTU: u32 = 65520;
/// How often the bridge threads look at the stop flag.
const TICK: Duration = Duration::from_millis(100);
/// Frames the tap -> passt thread gathers before one write to the socket.
const BATCH: usize = 256 << 10;
/// The largest frame the stream framing carries.
const MAX_FRAME: usize = 65535;
/// `IFF_NO_PI` and `IFF_VNET_HDR` in `/sys/class/net/TAP/tun_flags`.
const IFF_NO_PI: u32 = 0x1000;
const IFF_VNET_HDR: u32 = 0x4000;
/// The kernel's default virtio-net header size (`struct virtio_net_hdr`).
const VNET_HDR_LEN: usize = 10;

/// How the guest gets its IPv4 configuration (IPv6 is always static).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ipv4Setup {
    /// `ip addr add` / `ip route add`: what passt's DHCP would assign.
    Static,
    /// busybox udhcpc through the bridge, from passt's DHCP server (checked
    /// to be the host's address, mask and gateway).
    Dhcp,
}

/// What the bridge has carried, for debugging (see [`PasstGuest::report`]).
#[derive(Debug, Default)]
pub struct LinkStats {
    /// Frames read from the tap and written to passt's socket.
    pub frames_to_passt: AtomicU64,
    pub bytes_to_passt: AtomicU64,
    /// Frames read from passt's socket and written to the tap.
    pub frames_to_guest: AtomicU64,
    pub bytes_to_guest: AtomicU64,
    /// Frames from passt the tap refused (the first error is in `notes`).
    pub tap_write_errors: AtomicU64,
    /// Frames from the tap whose virtio-net header asked for offloads we
    /// never enabled (forwarded as they are; the first is in `notes`).
    pub offloaded_from_tap: AtomicU64,
    /// Why each bridge thread ended, and the first odd event of each kind.
    pub notes: Mutex<Vec<String>>,
}

impl LinkStats {
    fn note(&self, what: String) {
        self.notes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(what);
    }
}

/// A network namespace with a tap device bridged to passt; see the module
/// comment. Fields drop in order: the bridge stops before the namespace
/// goes.
pub struct PasstGuest {
    bridge: Bridge,
    netns: GuestNetns,
    dir: PathBuf,
}

impl PasstGuest {
    /// A guest of the passt listening on `sock`, configured statically;
    /// `dir` (the rig's temp dir) is the working directory of its commands.
    pub fn new(sock: &Path, dir: &Path) -> PasstGuest {
        PasstGuest::with(sock, dir, Ipv4Setup::Static)
    }

    /// A guest of the passt listening on `sock`, with its IPv4
    /// configuration from `v4`.
    pub fn with(sock: &Path, dir: &Path, v4: Ipv4Setup) -> PasstGuest {
        assert_root();
        // The guard first: from here on a panic deletes the namespace.
        let netns = GuestNetns::add(unique_name("g"));
        let name = netns.0.clone();
        let ipn = |args: &[&str]| {
            let mut argv = vec!["-n", name.as_str()];
            argv.extend_from_slice(args);
            ip(&argv)
        };
        run_ok(
            Command::new(tool("ip"))
                .args(["netns", "exec", &name, "sh", "-c"])
                .arg(
                    "echo 0 > /proc/sys/net/ipv6/conf/all/accept_dad && \
                     echo 0 > /proc/sys/net/ipv6/conf/default/accept_dad",
                )
                .env("PATH", STD_PATH),
        );
        ipn(&["link", "set", "lo", "up"]);
        let tap = tap_in(&name, GUEST_TAP);
        let hdr = vnet_header_len(&name);
        let mac = mac_text(GUEST_MAC);
        let mtu = GUEST_MTU.to_string();
        ipn(&[
            "link", "set", "dev", GUEST_TAP, "address", &mac, "mtu", &mtu, "up",
        ]);
        let stream = UnixStream::connect(sock)
            .unwrap_or_else(|e| panic!("connect to passt at {}: {e}", sock.display()));
        let guest = PasstGuest {
            bridge: Bridge::start(tap, hdr, stream),
            netns,
            dir: dir.to_path_buf(),
        };
        match v4 {
            Ipv4Setup::Static => {
                ipn(&[
                    "addr",
                    "add",
                    &format!("{HOST_IP4}/{PREFIX4}"),
                    "dev",
                    GUEST_TAP,
                ]);
                ipn(&["route", "add", "default", "via", REMOTE_IP4]);
            }
            Ipv4Setup::Dhcp => guest.dhcp4(),
        }
        let cidr6 = format!("{HOST_IP6}/{PREFIX6}");
        ipn(&["-6", "addr", "add", &cidr6, "dev", GUEST_TAP, "nodad"]);
        // Replace: passt's router advertisement may have put one there.
        ipn(&["-6", "route", "replace", "default", "via", REMOTE_IP6]);
        guest
    }

    /// busybox udhcpc on the tap, with a script that applies the lease;
    /// then checks that the lease is the host's address and gateway.
    fn dhcp4(&self) {
        let lease = self.dir.join(format!("{}.lease", self.netns.0));
        let script = self.dir.join(format!("{}.udhcpc.sh", self.netns.0));
        let body = format!(
            "#!/bin/sh\n[ \"$1\" = bound ] || exit 0\n\
             ip addr add \"$ip/$subnet\" dev \"$interface\" || exit 1\n\
             ip route add default via \"$router\" dev \"$interface\" || exit 1\n\
             echo \"$ip $subnet $router $mtu\" > '{}'\n",
            lease.display()
        );
        fs::write(&script, body).expect("write the udhcpc script");
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).expect("chmod script");
        let busybox = tool("busybox");
        let argv = [
            busybox.to_str().unwrap(),
            "udhcpc",
            "-i",
            GUEST_TAP,
            "-f",
            "-q",
            "-n",
            "-t",
            "5",
            "-T",
            "1",
            "-O",
            "mtu",
            "-s",
            script.to_str().unwrap(),
        ];
        let out = run_with_timeout(&mut self.cmd(&argv), SHORT);
        let got = fs::read_to_string(&lease).unwrap_or_default();
        assert!(
            out.status.success() && !got.is_empty(),
            "udhcpc got no lease from passt\n{}\n{}",
            text(&out),
            self.report()
        );
        assert_eq!(
            got.split_whitespace().collect::<Vec<_>>(),
            [
                HOST_IP4,
                "255.255.255.0",
                REMOTE_IP4,
                &GUEST_MTU.to_string()
            ],
            "the lease (address, mask, router, MTU) is not the host's configuration"
        );
        let links = parse_links(&self.ip(&["-j", "addr", "show", "dev", GUEST_TAP]));
        let addrs = links.first().map(|l| l.addrs_of("inet", "global"));
        assert_eq!(
            addrs,
            Some(vec![format!("{HOST_IP4}/{PREFIX4}")]),
            "the guest's IPv4 address after DHCP"
        );
        let routes = parse_routes(&self.ip(&["-j", "route", "show", "default"]));
        assert!(
            routes
                .iter()
                .any(|r| r.gateway.as_deref() == Some(REMOTE_IP4) && r.dev == GUEST_TAP),
            "no default route via {REMOTE_IP4} after DHCP: {routes:?}"
        );
    }

    /// The guest namespace's `ip netns` name.
    pub fn ns(&self) -> &str {
        &self.netns.0
    }

    /// `argv` run as root inside the guest (`ip netns exec`), in the
    /// directory given at creation, stdin from /dev/null. Run it with the
    /// rig ([`Rig::run`], [`Rig::spawn_logged`]...) so that it is bounded and
    /// ended; whatever is left in the namespace is ended on drop anyway.
    pub fn cmd<S: AsRef<OsStr>>(&self, argv: &[S]) -> Command {
        let mut c = Command::new(tool("ip"));
        c.args(["netns", "exec", &self.netns.0])
            .args(argv)
            .env("PATH", STD_PATH)
            .current_dir(&self.dir)
            .stdin(Stdio::null());
        c
    }

    /// `ip ARGS` in the guest; panics on failure.
    pub fn ip(&self, args: &[&str]) -> String {
        let mut argv = vec!["-n", self.netns.0.as_str()];
        argv.extend_from_slice(args);
        ip(&argv)
    }

    /// The bridge's counters.
    pub fn stats(&self) -> &LinkStats {
        &self.bridge.stats
    }

    /// Frames bridged from the guest to passt so far.
    pub fn frames_to_passt(&self) -> u64 {
        self.stats().frames_to_passt.load(Ordering::Relaxed)
    }

    /// Frames bridged from passt to the guest so far.
    pub fn frames_to_guest(&self) -> u64 {
        self.stats().frames_to_guest.load(Ordering::Relaxed)
    }

    /// True while both bridge threads run.
    pub fn bridge_running(&self) -> bool {
        self.bridge.threads.iter().all(|t| !t.is_finished())
    }

    /// The counters and notes, for assertion messages.
    pub fn report(&self) -> String {
        let s = self.stats();
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let notes = s.notes.lock().unwrap_or_else(|e| e.into_inner()).clone();
        format!(
            "--- guest link ({}): {} frames ({} bytes) to passt, {} frames ({} bytes) \
             to the guest, {} refused by the tap, {} with offloads from the tap; \
             bridge {}; notes: {notes:?}",
            self.netns.0,
            get(&s.frames_to_passt),
            get(&s.bytes_to_passt),
            get(&s.frames_to_guest),
            get(&s.bytes_to_guest),
            get(&s.tap_write_errors),
            get(&s.offloaded_from_tap),
            if self.bridge_running() {
                "running"
            } else {
                "ended"
            },
        )
    }
}

/// The guest's named network namespace: on drop, ends what runs in it (by
/// PID, SIGTERM then SIGKILL, bounded) and deletes it.
struct GuestNetns(String);

impl GuestNetns {
    fn add(name: String) -> GuestNetns {
        netns_add(&name);
        GuestNetns(name)
    }
}

impl Drop for GuestNetns {
    fn drop(&mut self) {
        let mut seen = Vec::new();
        for _ in 0..4 {
            let round: Vec<Tracked> = Rig::ns_pids(&self.0)
                .into_iter()
                .filter_map(|pid| {
                    Some(Tracked {
                        pid,
                        start: proc_stat(pid)?.start,
                    })
                })
                .filter(is_alive)
                .collect();
            if round.is_empty() {
                break;
            }
            terminate(&round);
            seen.extend(round);
        }
        reap(&seen);
        let _g = NETNS_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let _ = Command::new(tool("ip"))
            .args(["netns", "del", &self.0])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Creates the tap `name` in namespace `netns` from a thread that enters it
/// (network namespaces are per thread; the thread ends afterwards, the
/// device stays with the file descriptor). The fd is non-blocking.
fn tap_in(netns: &str, name: &str) -> File {
    let path = Path::new("/run/netns").join(netns);
    let name = name.to_string();
    let made = std::thread::spawn(move || {
        let handle = ns::open_ns(&path)?;
        ns::enter(&handle, ns::NsKind::Net)?;
        tun::create_tap(&name)
    })
    .join()
    .expect("the tap thread panicked");
    let (fd, got) = made.unwrap_or_else(|e| panic!("tap {GUEST_TAP} in {netns}: {e}"));
    assert_eq!(got, GUEST_TAP, "the kernel named the tap");
    File::from(fd)
}

/// The length of the virtio-net header in front of the frames of the tap
/// [`GUEST_TAP`] in `netns`, from its `tun_flags` (the library may or may
/// not ask for one); panics unless the tap has no packet information
/// header (`IFF_NO_PI`).
fn vnet_header_len(netns: &str) -> usize {
    let path = format!("/sys/class/net/{GUEST_TAP}/tun_flags");
    let text = run_ok(
        Command::new(tool("ip"))
            .args(["netns", "exec", netns, "cat", &path])
            .env("PATH", STD_PATH),
    );
    let hex = text.trim().trim_start_matches("0x");
    let flags =
        u32::from_str_radix(hex, 16).unwrap_or_else(|e| panic!("{path} in {netns}: {text:?}: {e}"));
    assert!(
        flags & IFF_NO_PI != 0,
        "the tap has a packet information header (tun_flags {flags:#x})"
    );
    match flags & IFF_VNET_HDR {
        0 => 0,
        _ => VNET_HDR_LEN,
    }
}

/// The two bridge threads; dropping stops and joins them (bounded).
struct Bridge {
    stop: Arc<AtomicBool>,
    stats: Arc<LinkStats>,
    threads: Vec<JoinHandle<()>>,
}

impl Bridge {
    /// Bridges `tap`, whose frames carry a `hdr`-byte virtio-net header,
    /// and `stream`.
    fn start(tap: File, hdr: usize, stream: UnixStream) -> Bridge {
        // The socket's timeouts wake the threads to look at the stop flag.
        stream.set_read_timeout(Some(TICK)).expect("SO_RCVTIMEO");
        stream.set_write_timeout(Some(TICK)).expect("SO_SNDTIMEO");
        let (tap, stream) = (Arc::new(tap), Arc::new(stream));
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(LinkStats::default());
        let spawn = |name: &str, f: BridgeFn| {
            let (tap, stream) = (Arc::clone(&tap), Arc::clone(&stream));
            let (stop, stats) = (Arc::clone(&stop), Arc::clone(&stats));
            let name = name.to_string();
            std::thread::Builder::new()
                .name(name.clone())
                .spawn(move || {
                    let why = f(&tap, hdr, &stream, &stop, &stats);
                    stats.note(format!("{name} ended: {why}"));
                })
                .expect("start a bridge thread")
        };
        let threads = vec![
            spawn("tap->passt", tap_to_passt),
            spawn("passt->tap", passt_to_tap),
        ];
        Bridge {
            stop,
            stats,
            threads,
        }
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let done = wait_until(Duration::from_secs(5), || {
            self.threads.iter().all(JoinHandle::is_finished)
        });
        for t in std::mem::take(&mut self.threads) {
            if t.is_finished() {
                let _ = t.join();
            }
        }
        if !done {
            eprintln!("guest bridge: a thread did not stop within 5 s (left running)");
        }
    }
}

/// Waits up to [`TICK`] for `fd` to have `events`; true if it has.
fn ready(fd: &File, events: PollFlags) -> Result<bool, String> {
    let mut fds = [PollFd::new(fd, events)];
    let tick = Timespec {
        tv_sec: 0,
        tv_nsec: TICK.as_nanos() as _,
    };
    match poll(&mut fds, Some(&tick)) {
        Ok(n) => Ok(n > 0),
        Err(rustix::io::Errno::INTR) => Ok(false),
        Err(e) => Err(format!("poll on the tap: {e}")),
    }
}

/// A bridge thread's body: (tap, its header length, passt's socket, stop
/// flag, counters) -> why it ended.
type BridgeFn = fn(&File, usize, &UnixStream, &AtomicBool, &LinkStats) -> String;

/// Frames from the tap to passt, each preceded by its length (the tap's
/// virtio-net header, if any, stripped); returns why it stopped.
fn tap_to_passt(
    tap: &File,
    hdr: usize,
    sock: &UnixStream,
    stop: &AtomicBool,
    stats: &LinkStats,
) -> String {
    let mut buf = vec![0u8; hdr + MAX_FRAME + 1];
    let mut out: Vec<u8> = Vec::with_capacity(BATCH + MAX_FRAME + 4);
    while !stop.load(Ordering::Relaxed) {
        match ready(tap, PollFlags::IN) {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => return e,
        }
        let (mut frames, mut bytes) = (0, 0);
        while out.len() < BATCH {
            let n = match (&mut &*tap).read(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return format!("reading the tap: {e}"),
            };
            if n < hdr || n - hdr > MAX_FRAME {
                return format!("a {n}-byte read from the tap");
            }
            // virtio_net_hdr: flags, gso_type first; zero unless offloads
            // were turned on, which the bridge never does.
            if hdr > 0 && (buf[0] != 0 || buf[1] != 0) {
                let k = stats.offloaded_from_tap.fetch_add(1, Ordering::Relaxed);
                if k == 0 {
                    stats.note(format!(
                        "a frame from the tap with virtio-net header {:02x?}",
                        &buf[..hdr]
                    ));
                }
            }
            let frame = &buf[hdr..n];
            out.extend_from_slice(&(frame.len() as u32).to_be_bytes());
            out.extend_from_slice(frame);
            frames += 1;
            bytes += frame.len() as u64;
        }
        if let Err(e) = send_all(sock, &out, stop) {
            return e;
        }
        out.clear();
        stats.frames_to_passt.fetch_add(frames, Ordering::Relaxed);
        stats.bytes_to_passt.fetch_add(bytes, Ordering::Relaxed);
    }
    "stopped".into()
}

/// Writes all of `buf` to passt, looking at the stop flag whenever the
/// socket's send timeout expires.
fn send_all(mut sock: &UnixStream, mut buf: &[u8], stop: &AtomicBool) -> Result<(), String> {
    while !buf.is_empty() {
        match sock.write(buf) {
            Ok(0) => return Err("passt's socket took nothing".into()),
            Ok(n) => buf = &buf[n..],
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) =>
            {
                if stop.load(Ordering::Relaxed) {
                    return Err("stopped while writing to passt".into());
                }
            }
            Err(e) => return Err(format!("writing to passt: {e}")),
        }
    }
    Ok(())
}

/// Frames from passt to the tap: reads the stream, cuts it at the length
/// prefixes, writes each frame to the tap (behind an all-zero virtio-net
/// header if the tap has one); returns why it stopped.
fn passt_to_tap(
    tap: &File,
    hdr: usize,
    sock: &UnixStream,
    stop: &AtomicBool,
    stats: &LinkStats,
) -> String {
    let mut buf = vec![0u8; 1 << 20];
    let mut have = 0;
    while !stop.load(Ordering::Relaxed) {
        match (&mut &*sock).read(&mut buf[have..]) {
            Ok(0) => return "passt closed the connection".into(),
            Ok(n) => have += n,
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) =>
            {
                continue;
            }
            Err(e) => return format!("reading from passt: {e}"),
        }
        let mut off = 0;
        while have - off >= 4 {
            let len = u32::from_be_bytes(buf[off..off + 4].try_into().unwrap()) as usize;
            if len > MAX_FRAME {
                return format!("passt sent a frame length of {len}");
            }
            if have - off - 4 < len {
                break;
            }
            let frame = &buf[off + 4..off + 4 + len];
            if let Err(e) = write_frame(tap, hdr, frame, stop, stats) {
                return e;
            }
            off += 4 + len;
        }
        buf.copy_within(off..have, 0);
        have -= off;
    }
    "stopped".into()
}

/// Writes one frame to the tap (waiting, bounded by the stop flag, while
/// the tap cannot take it); a frame the tap refuses is counted and noted.
fn write_frame(
    mut tap: &File,
    hdr: usize,
    frame: &[u8],
    stop: &AtomicBool,
    stats: &LinkStats,
) -> Result<(), String> {
    let zeros = [0u8; VNET_HDR_LEN];
    let parts = [IoSlice::new(&zeros[..hdr]), IoSlice::new(frame)];
    loop {
        match tap.write_vectored(&parts) {
            Ok(_) => {
                stats.frames_to_guest.fetch_add(1, Ordering::Relaxed);
                let n = frame.len() as u64;
                stats.bytes_to_guest.fetch_add(n, Ordering::Relaxed);
                return Ok(());
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                if stop.load(Ordering::Relaxed) {
                    return Err("stopped while writing to the tap".into());
                }
                ready(tap, PollFlags::OUT)?;
            }
            Err(e) => {
                if stats.tap_write_errors.fetch_add(1, Ordering::Relaxed) == 0 {
                    stats.note(format!("the tap refused a {}-byte frame: {e}", frame.len()));
                }
                return Ok(());
            }
        }
    }
}
