//! The integration-test rig (DESIGN.md §5): two network namespaces joined by
//! a veth pair, process helpers with timeouts, and RAII cleanup.
//!
//! ```text
//!  netns "host"   (pasta/passt run here, as if it were the machine)
//!    lo up; rigeth0 192.0.2.1/24, 2001:db8:1::1/64; default routes via the
//!    remote side; ping_group_range "0 2147483647"; own resolv.conf
//!  netns "remote" (the rest of the world)
//!    lo up with 198.51.100.2/32, 2001:db8:2::2/128; rigeth1 192.0.2.2/24,
//!    2001:db8:1::2/64
//! ```
//! The host namespace has no route to the real network, so nothing a test
//! does can leave the machine. [`Rig::new`] builds the world; dropping the
//! [`Rig`] (also during a panic) ends every process it started (by PID,
//! SIGTERM then SIGKILL, each wait bounded), deletes the namespaces and
//! removes its files. Names carry the test process's PID and a counter so
//! tests run in parallel.
//!
//! API at a glance:
//! - commands: [`Rig::host_cmd`] (root in the host namespace),
//!   [`Rig::host_cmd_as_user`] (an ordinary user there, started the way
//!   podman starts pasta: `setpriv`, no groups, no capabilities),
//!   [`Rig::host_cmd_as`], [`Rig::remote_cmd`], [`Rig::pasta_cmd`];
//!   [`isolated_cmd`] runs something in an empty network namespace without a
//!   rig (for command lines that must fail at once).
//! - running: [`run_with_timeout`] / [`run_ok`] (to the end, output
//!   captured); [`Rig::run`] / [`Rig::run_pid`] (also fails if the command
//!   left processes behind); [`Rig::run_tracked`] (tracks what it left, e.g.
//!   a daemon); [`run_daemon`] (a daemonizing pasta/passt: exit 0, PID file,
//!   [`assert_daemon`]); [`Rig::spawn`] / [`Rig::spawn_logged`] +
//!   [`Rig::log`] (background, ended on drop); [`Rig::track_pid`] for a
//!   daemon's PID; [`ns_holder`] (namespaces for pasta to join).
//! - waiting, all bounded: [`wait_timeout`], [`wait_until`],
//!   [`wait_ready`] (PID file or exit), [`read_pid_file`],
//!   [`wait_pid_gone`], [`wait_exit`], [`wait_descendant`], [`stop`].
//! - processes: [`proc_stat`], [`pid_running`], [`descendants`],
//!   [`group_members`], [`proc_comm`], [`proc_cmdline`], [`signal`].
//! - namespaces: [`Rig::add_netns`] / [`Rig::del_netns`] (a third, empty
//!   named namespace), [`ip`] (`ip` in the test's own namespace).
//! - reading tools: [`parse_links`] / [`parse_routes`] for `ip -j`,
//!   [`json`] for anything else, [`sections`] to split a script's output;
//!   [`assert_tap_copies_template`].
//! - frames: [`eth_frame`], [`arp_request`], [`qemu_framed`] (passt's
//!   stream framing); captures: [`pcap_frames`], [`captured_from`],
//!   [`tcpdump_read`].
//! - one behaviour for both callers: `root_and_user_tests!` makes the
//!   tests `NAME::as_root` and `NAME::as_user` from a `fn(As)`;
//!   `family_and_caller_tests!` makes `NAME::v4_as_root` ... `v6_as_user`
//!   (or the ones listed) from a `fn(As, Fam)`, `family_tests!` makes
//!   `NAME::v4` and `NAME::v6` from a `fn(Fam)`.
//! - setup: [`setup_tun`] (`/dev/net/tun` mode 0666, once), [`tool`] /
//!   [`ping_argv`] (find a program or name the package), [`TempDir`].
//! - submodules: [`passt`] (start a foreground passt: [`passt::start_passt`]),
//!   [`guest`] (a namespace bridged to passt's socket, the guest a VM would
//!   be: [`guest::PasstGuest`]; with passt, [`passt::PasstWorld`], the
//!   guest of the shared scenarios), [`tcp`] (the TCP helper and the
//!   scenarios shared by pasta's and passt's TCP tests), [`udp`] (the UDP
//!   echo helper and the UDP scenarios), [`helper`] (what the two helpers
//!   share), [`pasta`] (pasta's namespace as the guest of those scenarios,
//!   or held open for programs started later), [`json`].
//! - the host's resolver: [`Rig::set_resolv_conf`] replaces what the host
//!   namespace's `/etc/resolv.conf` says (pasta reads it at start).
//!
//! The binaries under test are [`pasta_bin`] and [`passt_bin`]; the
//! environment variables `PASST_RS_TEST_PASTA` / `PASST_RS_TEST_PASST`
//! point them elsewhere (e.g. at upstream's binaries, to check a test
//! itself).
//!
//! Every test file includes this module with `mod common;`; not every file
//! uses every helper, hence `allow(dead_code)`.
#![allow(dead_code)]

pub mod guest;
pub mod helper;
pub mod json;
pub mod passt;
pub mod pasta;
pub mod tcp;
pub mod udp;

use std::ffi::OsStr;
use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, Once, mpsc};
use std::time::{Duration, Instant};

use json::Json;

/// Host side of the veth pair: the template interface pasta copies.
pub const HOST_IF: &str = "rigeth0";
/// Remote side of the veth pair.
pub const REMOTE_IF: &str = "rigeth1";
pub const HOST_IP4: &str = "192.0.2.1";
pub const HOST_IP6: &str = "2001:db8:1::1";
pub const REMOTE_IP4: &str = "192.0.2.2";
pub const REMOTE_IP6: &str = "2001:db8:1::2";
pub const PREFIX4: u8 = 24;
pub const PREFIX6: u8 = 64;
/// Addresses on the remote's loopback, reachable only through routing.
pub const FAR_IP4: &str = "198.51.100.2";
pub const FAR_IP6: &str = "2001:db8:2::2";
/// The DNS settings written to the host namespace's resolv.conf.
pub const NAMESERVER: &str = REMOTE_IP4;
pub const SEARCH_DOMAIN: &str = "example.test";
/// The ordinary user the "as user" commands run as (nobody/nogroup).
pub const USER_UID: u32 = 65534;
pub const USER_GID: u32 = 65534;
/// PATH for commands started by the rig (cargo's may lack the sbin dirs).
pub const STD_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// A generous bound for a command that should finish at once.
pub const SHORT: Duration = Duration::from_secs(20);

/// Who runs a command: root, or the ordinary user [`USER_UID`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum As {
    Root,
    User,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);
/// `ip netns add/del` mounts /run/netns on first use; serialise them.
static NETNS_LOCK: Mutex<()> = Mutex::new(());

/// A name unique to this process and call: `prs-<tag>-<pid>-<n>`.
pub fn unique_name(tag: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("prs-{tag}-{}-{n}", std::process::id())
}

/// The pasta binary under test (`PASST_RS_TEST_PASTA` overrides).
pub fn pasta_bin() -> PathBuf {
    std::env::var_os("PASST_RS_TEST_PASTA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_pasta")))
}

/// The passt binary under test (`PASST_RS_TEST_PASST` overrides).
pub fn passt_bin() -> PathBuf {
    std::env::var_os("PASST_RS_TEST_PASST")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_passt")))
}

/// Finds `name` in [`STD_PATH`]; panics with the package to install.
pub fn tool(name: &str) -> PathBuf {
    try_tool(name).unwrap_or_else(|| {
        panic!(
            "test needs `{name}` (install it: apt-get install {})",
            package_of(name)
        )
    })
}

/// Finds `name` in [`STD_PATH`].
pub fn try_tool(name: &str) -> Option<PathBuf> {
    STD_PATH
        .split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| {
            fs::metadata(p)
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
}

fn package_of(tool: &str) -> &'static str {
    match tool {
        "ip" => "iproute2",
        "setpriv" | "unshare" | "nsenter" => "util-linux",
        "tcpdump" => "tcpdump",
        "ping" => "iputils-ping",
        "busybox" => "busybox",
        "socat" => "socat",
        "python3" => "python3",
        "sha256sum" | "head" => "coreutils",
        "dig" => "dnsutils",
        "dnsmasq" => "dnsmasq-base",
        "qemu-system-x86_64" => "qemu-system-x86",
        "cpio" => "cpio",
        _ => "the package that ships it",
    }
}

/// argv for an ICMP echo client: iputils `ping`, else `busybox ping`.
pub fn ping_argv() -> Vec<String> {
    if try_tool("ping").is_some() {
        vec!["ping".into()]
    } else if try_tool("busybox").is_some() {
        vec!["busybox".into(), "ping".into()]
    } else {
        panic!("test needs `ping` (install it: apt-get install iputils-ping)")
    }
}

/// Makes `/dev/net/tun` mode 0666, as distributions ship it, so an ordinary
/// user can open it (creates the node if missing). Idempotent, once per
/// process.
pub fn setup_tun() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let tun = Path::new("/dev/net/tun");
        if !tun.exists() {
            let _ = fs::create_dir_all("/dev/net");
            let out = Command::new("mknod")
                .args(["/dev/net/tun", "c", "10", "200"])
                .env("PATH", STD_PATH)
                .output()
                .expect("run mknod");
            assert!(
                out.status.success(),
                "mknod /dev/net/tun: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        fs::set_permissions(tun, fs::Permissions::from_mode(0o666))
            .expect("chmod 0666 /dev/net/tun");
    });
}

/// Makes this test process the reaper of its orphaned descendants
/// (daemonized pasta, grandchildren of killed commands), so that the rig can
/// collect them instead of leaving zombies to an init that may not reap.
/// Idempotent; std's `Child::wait` waits for specific PIDs, so it is
/// unaffected.
pub fn become_subreaper() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: PR_SET_CHILD_SUBREAPER takes an integer flag and changes
        // only which process adopts our orphans.
        let rc = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
        assert_eq!(rc, 0, "prctl(PR_SET_CHILD_SUBREAPER)");
    });
}

/// Panics unless the test runs as root (the rig needs it).
pub fn assert_root() {
    // SAFETY: geteuid() has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(euid, 0, "integration tests must run as root");
}

// ---------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------

/// Polls `child` until it exits or `timeout` passes; `None` on timeout.
pub fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(2);
    loop {
        match child.try_wait() {
            Ok(Some(st)) => return Some(st),
            Ok(None) => {}
            Err(e) => panic!("waiting for pid {}: {e}", child.id()),
        }
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        std::thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// Polls `cond` until it holds or `timeout` passes; returns its last value.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(2);
    loop {
        if cond() {
            return true;
        }
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        std::thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// Sends `sig` to `pid` (or to process group `-pid`); errors ignored.
pub fn signal(pid: i32, sig: i32) {
    // SAFETY: kill(2) takes plain integers; the callers pass PIDs (or
    // process groups) of processes this test started.
    unsafe {
        libc::kill(pid, sig);
    }
}

/// What the tests need from `/proc/PID/stat`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcStat {
    /// State letter: R, S, D, Z (zombie), ...
    pub state: char,
    pub ppid: u32,
    /// Process group.
    pub pgrp: u32,
    /// Start time, clock ticks since boot (tells a reused PID apart).
    pub start: u64,
}

/// `/proc/PID/stat` of `pid`; `None` if it is gone.
pub fn proc_stat(pid: u32) -> Option<ProcStat> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain anything.
    let rest = s.get(s.rfind(')')? + 2..)?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); ppid is 4, pgrp 5, starttime 22.
    Some(ProcStat {
        state: f.first()?.chars().next()?,
        ppid: f.get(1)?.parse().ok()?,
        pgrp: f.get(2)?.parse().ok()?,
        start: f.get(19)?.parse().ok()?,
    })
}

/// Every process on the machine (PIDs from `/proc`) with its stat.
pub fn all_procs() -> Vec<(u32, ProcStat)> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| Some((pid, proc_stat(pid)?)))
        .collect()
}

/// Live (non-zombie) descendants of `pid`, nearest first.
pub fn descendants(pid: u32) -> Vec<u32> {
    let procs = all_procs();
    let mut found = vec![pid];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(
            procs
                .iter()
                .filter(|(_, st)| st.ppid == parent)
                .map(|(p, _)| *p),
        );
        i += 1;
    }
    found.remove(0);
    found.retain(|&p| pid_running(p));
    found
}

/// Live members of process group `pgid`.
pub fn group_members(pgid: u32) -> Vec<u32> {
    all_procs()
        .into_iter()
        .filter(|(_, st)| st.pgrp == pgid && st.state != 'Z' && st.state != 'X')
        .map(|(p, _)| p)
        .collect()
}

/// The command name (`/proc/PID/comm`).
pub fn proc_comm(pid: u32) -> String {
    fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// True if `pid` exists and is not a zombie.
pub fn pid_running(pid: u32) -> bool {
    matches!(proc_stat(pid), Some(st) if st.state != 'Z' && st.state != 'X')
}

/// Waits until `pid` has exited (gone or a zombie); false on timeout.
pub fn wait_pid_gone(pid: u32, timeout: Duration) -> bool {
    wait_until(timeout, || !pid_running(pid))
}

/// Waits for a PID file to hold a complete decimal PID and a newline, as
/// upstream writes it; `None` on timeout.
pub fn read_pid_file(path: &Path, timeout: Duration) -> Option<u32> {
    let mut pid = None;
    wait_until(timeout, || {
        pid = fs::read_to_string(path)
            .ok()
            .filter(|s| s.ends_with('\n'))
            .and_then(|s| s.trim().parse().ok());
        pid.is_some()
    });
    pid
}

/// The NUL-separated argv of a running process.
pub fn proc_cmdline(pid: u32) -> Vec<String> {
    fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            b.split(|&c| c == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Runs `cmd` to the end with stdin from /dev/null, capturing stdout and
/// stderr. On timeout the command's process group is killed and the test
/// panics with what it printed so far. If the command exits but something it
/// left behind keeps its pipes open, the output read within two more seconds
/// is returned.
pub fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> Output {
    run_capture(cmd, timeout).0
}

/// [`run_with_timeout`], also returning the process group the command ran
/// in (its PID).
pub fn run_capture(cmd: &mut Command, timeout: Duration) -> (Output, u32) {
    try_run_capture(cmd, timeout).unwrap_or_else(|e| panic!("{e}"))
}

/// [`run_capture`] that reports a timeout (after killing the command's
/// process group) as `Err` with what was printed, instead of panicking.
pub fn try_run_capture(cmd: &mut Command, timeout: Duration) -> Result<(Output, u32), String> {
    let desc = format!("{cmd:?}");
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {desc}: {e}"))?;
    let rx = drain_output(&mut child);
    match wait_timeout(&mut child, timeout) {
        Some(status) => {
            let (stdout, stderr) = collect_output(&rx, Duration::from_secs(2));
            Ok((
                Output {
                    status,
                    stdout,
                    stderr,
                },
                child.id(),
            ))
        }
        None => {
            signal(-(child.id() as i32), libc::SIGKILL);
            let _ = child.kill();
            let _ = child.wait();
            let (stdout, stderr) = collect_output(&rx, Duration::from_secs(1));
            Err(format!(
                "timed out after {timeout:?}: {desc}\n--- stdout:\n{}\n--- stderr:\n{}",
                String::from_utf8_lossy(&stdout),
                String::from_utf8_lossy(&stderr)
            ))
        }
    }
}

/// Ends what is left in process group `pgid` (a command run by
/// [`try_run_capture`] that has exited: its group is still ours while it
/// has members) and returns their PIDs.
pub fn end_group(pgid: u32) -> Vec<u32> {
    let left: Vec<Tracked> = group_members(pgid)
        .into_iter()
        .filter_map(|pid| {
            Some(Tracked {
                pid,
                start: proc_stat(pid)?.start,
            })
        })
        .collect();
    terminate(&left);
    reap(&left);
    left.iter().map(|t| t.pid).collect()
}

/// Like [`run_with_timeout`], and panics unless the command succeeded;
/// returns its stdout as text.
pub fn run_ok(cmd: &mut Command) -> String {
    let desc = format!("{cmd:?}");
    let out = run_with_timeout(cmd, SHORT);
    assert!(
        out.status.success(),
        "{desc} failed ({}):\n{}",
        out.status,
        text(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// stdout and stderr of `out`, labelled, for assertion messages.
pub fn text(out: &Output) -> String {
    format!(
        "--- status: {}\n--- stdout:\n{}\n--- stderr:\n{}",
        describe_status(out.status),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// "exit 3" or "signal 9".
pub fn describe_status(st: ExitStatus) -> String {
    match (st.code(), st.signal()) {
        (Some(c), _) => format!("exit {c}"),
        (None, Some(s)) => format!("signal {s}"),
        _ => format!("{st:?}"),
    }
}

/// Starts threads that forward the child's stdout (0) and stderr (1) in
/// chunks; an empty chunk marks the end of a stream.
pub fn drain_output(child: &mut Child) -> mpsc::Receiver<(usize, Vec<u8>)> {
    let (tx, rx) = mpsc::channel();
    let streams: [Option<Box<dyn Read + Send>>; 2] = [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    ];
    for (idx, stream) in streams.into_iter().enumerate() {
        let tx = tx.clone();
        match stream {
            None => {
                let _ = tx.send((idx, Vec::new()));
            }
            Some(mut r) => {
                std::thread::spawn(move || {
                    let mut buf = vec![0u8; 16384];
                    loop {
                        match r.read(&mut buf) {
                            Ok(0) | Err(_) => {
                                let _ = tx.send((idx, Vec::new()));
                                return;
                            }
                            Ok(n) => {
                                if tx.send((idx, buf[..n].to_vec())).is_err() {
                                    return;
                                }
                            }
                        }
                    }
                });
            }
        }
    }
    rx
}

/// Collects what [`drain_output`] forwards until both streams end or
/// `grace` passes.
pub fn collect_output(
    rx: &mpsc::Receiver<(usize, Vec<u8>)>,
    grace: Duration,
) -> (Vec<u8>, Vec<u8>) {
    let deadline = Instant::now() + grace;
    let mut out = [Vec::new(), Vec::new()];
    let mut open = 2;
    while open > 0 {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((idx, chunk)) if chunk.is_empty() => {
                let _ = idx;
                open -= 1;
            }
            Ok((idx, chunk)) => out[idx].extend_from_slice(&chunk),
            Err(_) => break,
        }
    }
    let [o, e] = out;
    (o, e)
}

// ---------------------------------------------------------------------------
// The rig
// ---------------------------------------------------------------------------

/// A process the rig will end on drop; the start time guards against the
/// PID having been reused by then.
#[derive(Clone, Copy, Debug)]
struct Tracked {
    pid: u32,
    start: u64,
}

/// Two namespaces and a veth pair; see the module comment. Drop cleans up.
pub struct Rig {
    /// Name of the "host" namespace (`ip netns` name).
    pub host: String,
    /// Name of the "remote" namespace.
    pub remote: String,
    tmp: PathBuf,
    etc: PathBuf,
    procs: Mutex<Vec<Tracked>>,
    /// Process groups of spawned commands (leader PID and start time).
    groups: Mutex<Vec<Tracked>>,
    extra_netns: Mutex<Vec<String>>,
}

impl Rig {
    /// Builds the world described in the module comment. Panics (after
    /// cleaning up what was built) if a step fails.
    pub fn new() -> Rig {
        assert_root();
        setup_tun();
        become_subreaper();
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let host = format!("prs-h-{pid}-{n}");
        let rig = Rig {
            remote: format!("prs-r-{pid}-{n}"),
            tmp: std::env::temp_dir().join(format!("prs-t-{pid}-{n}")),
            etc: Path::new("/etc/netns").join(&host),
            host,
            procs: Mutex::new(Vec::new()),
            groups: Mutex::new(Vec::new()),
            extra_netns: Mutex::new(Vec::new()),
        };
        fs::create_dir_all(&rig.tmp).expect("create the rig's temp dir");
        fs::set_permissions(&rig.tmp, fs::Permissions::from_mode(0o777)).expect("chmod temp dir");
        fs::create_dir_all(&rig.etc).expect("create /etc/netns/<host>");
        fs::write(
            rig.etc.join("resolv.conf"),
            format!("nameserver {NAMESERVER}\nsearch {SEARCH_DOMAIN}\n"),
        )
        .expect("write the host's resolv.conf");
        fs::set_permissions(
            rig.etc.join("resolv.conf"),
            fs::Permissions::from_mode(0o644),
        )
        .expect("chmod resolv.conf");
        netns_add(&rig.host);
        netns_add(&rig.remote);
        rig.build_links();
        rig
    }

    fn build_links(&self) {
        let (h, r) = (self.host.as_str(), self.remote.as_str());
        for ns in [h, r] {
            self.ns_sh(
                ns,
                "echo 0 > /proc/sys/net/ipv6/conf/all/accept_dad && \
                 echo 0 > /proc/sys/net/ipv6/conf/default/accept_dad",
            );
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        self.ns_sh(
            h,
            "echo '0 2147483647' > /proc/sys/net/ipv4/ping_group_range",
        );
        ip(&[
            "-n", h, "link", "add", HOST_IF, "type", "veth", "peer", "name", REMOTE_IF, "netns", r,
        ]);
        // (namespace, address, device); IPv6 ones skip duplicate detection.
        let addrs = [
            (r, format!("{REMOTE_IP4}/{PREFIX4}"), REMOTE_IF),
            (r, format!("{REMOTE_IP6}/{PREFIX6}"), REMOTE_IF),
            (r, format!("{FAR_IP4}/32"), "lo"),
            (r, format!("{FAR_IP6}/128"), "lo"),
            (h, format!("{HOST_IP4}/{PREFIX4}"), HOST_IF),
            (h, format!("{HOST_IP6}/{PREFIX6}"), HOST_IF),
        ];
        for (ns, cidr, dev) in &addrs {
            let mut args = vec!["-n", ns, "addr", "add", cidr, "dev", dev];
            if cidr.contains(':') && *dev != "lo" {
                args.push("nodad");
            }
            ip(&args);
        }
        ip(&["-n", r, "link", "set", REMOTE_IF, "up"]);
        ip(&["-n", h, "link", "set", HOST_IF, "up"]);
        ip(&["-n", h, "route", "add", "default", "via", REMOTE_IP4]);
        ip(&["-n", h, "-6", "route", "add", "default", "via", REMOTE_IP6]);
        // Carrier comes up asynchronously, and the link-local addresses
        // only then; pasta uses the host's link-local address, so wait.
        for (ns, dev) in [(h, HOST_IF), (r, REMOTE_IF)] {
            let ready = wait_until(Duration::from_secs(10), || {
                let links = parse_links(&ip(&["-n", ns, "-j", "addr", "show", "dev", dev]));
                links.first().is_some_and(|l| {
                    !l.flags.iter().any(|f| f == "NO-CARRIER")
                        && l.addrs
                            .iter()
                            .any(|a| a.family == "inet6" && a.scope == "link" && !a.tentative)
                })
            });
            assert!(ready, "{dev} in {ns} got no carrier or link-local address");
        }
    }

    fn ns_sh(&self, ns: &str, script: &str) {
        run_ok(
            Command::new(tool("ip"))
                .args(["netns", "exec", ns, "sh", "-c", script])
                .env("PATH", STD_PATH),
        );
    }

    /// A world-writable directory private to this rig (removed on drop).
    pub fn tmp_dir(&self) -> &Path {
        &self.tmp
    }

    /// `name` inside [`Rig::tmp_dir`].
    pub fn tmp_path(&self, name: &str) -> PathBuf {
        self.tmp.join(name)
    }

    /// Replaces the host namespace's `/etc/resolv.conf` (by default
    /// `nameserver` [`NAMESERVER`], `search` [`SEARCH_DOMAIN`]) with
    /// `content`, for the commands started from now on: `ip netns exec`
    /// bind-mounts `/etc/netns/<host>/resolv.conf` over it for each.
    pub fn set_resolv_conf(&self, content: &str) {
        fs::write(self.etc.join("resolv.conf"), content).expect("write the host's resolv.conf");
    }

    /// `argv` run as root inside the namespace `ns` (`ip netns exec`, which
    /// also bind-mounts `/etc/netns/<ns>/*` over `/etc`). The working
    /// directory is the rig's temp dir, stdin is /dev/null.
    pub fn ns_cmd<S: AsRef<OsStr>>(&self, ns: &str, argv: &[S]) -> Command {
        let mut c = Command::new(tool("ip"));
        c.args(["netns", "exec", ns])
            .args(argv)
            .env("PATH", STD_PATH)
            .current_dir(&self.tmp)
            .stdin(Stdio::null());
        c
    }

    /// `argv` run as root in the host namespace.
    pub fn host_cmd<S: AsRef<OsStr>>(&self, argv: &[S]) -> Command {
        self.ns_cmd(&self.host, argv)
    }

    /// `argv` run in the host namespace as the ordinary user
    /// [`USER_UID`]:[`USER_GID`], the way podman starts pasta: no
    /// supplementary groups, no capabilities, HOME and TMPDIR in the rig's
    /// temp dir.
    pub fn host_cmd_as_user<S: AsRef<OsStr>>(&self, argv: &[S]) -> Command {
        let mut c = Command::new(tool("ip"));
        c.args(["netns", "exec", &self.host])
            .arg(tool("setpriv"))
            .arg(format!("--reuid={USER_UID}"))
            .arg(format!("--regid={USER_GID}"))
            .args(["--clear-groups", "--inh-caps=-all", "--"])
            .args(argv)
            .env("PATH", STD_PATH)
            .env("HOME", &self.tmp)
            .env("TMPDIR", &self.tmp)
            .env("USER", "nobody")
            .env("LOGNAME", "nobody")
            .env("SHELL", "/bin/sh")
            .env_remove("XDG_RUNTIME_DIR")
            .current_dir(&self.tmp)
            .stdin(Stdio::null());
        c
    }

    /// `argv` in the host namespace as `who`.
    pub fn host_cmd_as<S: AsRef<OsStr>>(&self, who: As, argv: &[S]) -> Command {
        match who {
            As::Root => self.host_cmd(argv),
            As::User => self.host_cmd_as_user(argv),
        }
    }

    /// `argv` run as root in the remote namespace.
    pub fn remote_cmd<S: AsRef<OsStr>>(&self, argv: &[S]) -> Command {
        self.ns_cmd(&self.remote, argv)
    }

    /// `pasta ARGS` in the host namespace as `who`.
    pub fn pasta_cmd<S: AsRef<OsStr>>(&self, who: As, args: &[S]) -> Command {
        let mut argv: Vec<std::ffi::OsString> = vec![pasta_bin().into()];
        argv.extend(args.iter().map(|a| a.as_ref().to_os_string()));
        self.host_cmd_as(who, &argv)
    }

    /// Starts `cmd` in the background and tracks it: it is ended on drop if
    /// still running.
    /// The command gets its own process group; on drop, what is left in
    /// that group is ended too.
    pub fn spawn(&self, cmd: &mut Command) -> Child {
        let desc = format!("{cmd:?}");
        cmd.process_group(0);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {desc}: {e}"));
        self.track_pid(child.id());
        if let Some(st) = proc_stat(child.id()) {
            self.groups
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(Tracked {
                    pid: child.id(),
                    start: st.start,
                });
        }
        child
    }

    /// Tracks a process the test caused to exist but did not spawn directly
    /// (a daemon whose PID came from a PID file).
    pub fn track_pid(&self, pid: u32) {
        if let Some(st) = proc_stat(pid) {
            self.procs
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(Tracked {
                    pid,
                    start: st.start,
                });
        }
    }

    /// [`run_with_timeout`], and whatever the command left running in its
    /// process group is tracked (ended on drop) and returned.
    pub fn run_tracked(&self, cmd: &mut Command, timeout: Duration) -> (Output, Vec<u32>) {
        self.try_run_tracked(cmd, timeout)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Rig::run_tracked`] that returns a timeout as `Err` instead of
    /// panicking.
    pub fn try_run_tracked(
        &self,
        cmd: &mut Command,
        timeout: Duration,
    ) -> Result<(Output, Vec<u32>), String> {
        let (out, pgid) = try_run_capture(cmd, timeout)?;
        let left = group_members(pgid);
        for &pid in &left {
            self.track_pid(pid);
        }
        Ok((out, left))
    }

    /// [`run_with_timeout`] for a command that must not leave processes
    /// behind in its process group (a foreground pasta): panics if some are
    /// still there a second after it exited.
    pub fn run(&self, cmd: &mut Command, timeout: Duration) -> Output {
        self.run_pid(cmd, timeout).0
    }

    /// [`Rig::run`], also returning the command's PID (the rig's commands
    /// exec their program, so it is the PID of pasta or passt itself).
    pub fn run_pid(&self, cmd: &mut Command, timeout: Duration) -> (Output, u32) {
        let desc = format!("{cmd:?}");
        let (out, pgid) = run_capture(cmd, timeout);
        wait_until(Duration::from_secs(1), || group_members(pgid).is_empty());
        let left = group_members(pgid);
        for &pid in &left {
            self.track_pid(pid);
        }
        let names: Vec<String> = left
            .iter()
            .map(|&p| format!("{p} {:?}", proc_cmdline(p)))
            .collect();
        assert!(
            left.is_empty(),
            "{desc} left processes behind: {names:?}\n{}",
            text(&out)
        );
        (out, pgid)
    }

    /// Starts `cmd` in the background with stdout and stderr going to
    /// `<name>.out` / `<name>.err` in the temp dir (see [`Rig::log`]);
    /// tracked like [`Rig::spawn`]. stdin stays as set (the rig's commands
    /// default to /dev/null).
    pub fn spawn_logged(&self, cmd: &mut Command, name: &str) -> Child {
        let out = fs::File::create(self.tmp_path(&format!("{name}.out"))).expect("create log");
        let err = fs::File::create(self.tmp_path(&format!("{name}.err"))).expect("create log");
        cmd.stdout(out).stderr(err);
        self.spawn(cmd)
    }

    /// What a [`Rig::spawn_logged`] command printed so far.
    pub fn log(&self, name: &str) -> String {
        let read = |ext: &str| {
            fs::read_to_string(self.tmp_path(&format!("{name}.{ext}"))).unwrap_or_default()
        };
        format!(
            "--- {name} stdout:\n{}\n--- {name} stderr:\n{}",
            read("out"),
            read("err")
        )
    }

    /// Creates one more named network namespace (deleted on drop), with lo
    /// down and nothing else; returns its name.
    pub fn add_netns(&self) -> String {
        let name = unique_name("j");
        self.extra_netns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(name.clone());
        netns_add(&name);
        name
    }

    /// Deletes a namespace made by [`Rig::add_netns`] now.
    pub fn del_netns(&self, name: &str) {
        let _g = NETNS_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        run_ok(Command::new(tool("ip")).args(["netns", "del", name]));
        self.extra_netns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|n| n != name);
    }

    /// PIDs of the processes whose network namespace is `ns`.
    pub fn ns_pids(ns: &str) -> Vec<u32> {
        Command::new(tool("ip"))
            .args(["netns", "pids", ns])
            .stderr(Stdio::null())
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .split_whitespace()
                    .filter_map(|p| p.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Default for Rig {
    fn default() -> Self {
        Rig::new()
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        let tracked: Vec<Tracked> =
            std::mem::take(&mut *self.procs.lock().unwrap_or_else(|e| e.into_inner()));
        let groups: Vec<Tracked> =
            std::mem::take(&mut *self.groups.lock().unwrap_or_else(|e| e.into_inner()));
        let extra: Vec<String> =
            std::mem::take(&mut *self.extra_netns.lock().unwrap_or_else(|e| e.into_inner()));
        let all_ns: Vec<&str> = [self.host.as_str(), self.remote.as_str()]
            .into_iter()
            .chain(extra.iter().map(String::as_str))
            .collect();
        // A process may fork while it is being ended (a shell that ignores
        // SIGTERM): sweep again until nothing of ours is left (bounded).
        let mut seen = tracked.clone();
        let mut round = tracked;
        for _ in 0..4 {
            round.extend(leftovers(&groups, &all_ns));
            round.retain(is_alive);
            if round.is_empty() {
                break;
            }
            terminate(&round);
            seen.append(&mut round);
        }
        reap(&seen);
        {
            let _g = NETNS_LOCK.lock().unwrap_or_else(|e| e.into_inner());
            for ns in &all_ns {
                let _ = Command::new(tool("ip"))
                    .args(["netns", "del", ns])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
        }
        let _ = fs::remove_dir_all(&self.etc);
        let _ = fs::remove_dir_all(&self.tmp);
    }
}

/// The processes a rig started that it did not track one by one: what is
/// left in the process groups of spawned commands, and whatever runs inside
/// the rig's namespaces (only this test enters them).
fn leftovers(groups: &[Tracked], namespaces: &[&str]) -> Vec<Tracked> {
    let snapshot = all_procs();
    let mut found = Vec::new();
    for g in groups {
        // A group id stays reserved while the group has members; if another
        // process now has the leader's PID, the number was reused: skip it.
        if snapshot
            .iter()
            .any(|(pid, st)| *pid == g.pid && st.start != g.start)
        {
            continue;
        }
        for (pid, st) in &snapshot {
            if st.pgrp == g.pid && st.start >= g.start {
                found.push(Tracked {
                    pid: *pid,
                    start: st.start,
                });
            }
        }
    }
    for ns in namespaces {
        for pid in Rig::ns_pids(ns) {
            if let Some(st) = proc_stat(pid) {
                found.push(Tracked {
                    pid,
                    start: st.start,
                });
            }
        }
    }
    found
}

/// The tracked process still exists (same start time) and is not a zombie.
fn is_alive(t: &Tracked) -> bool {
    matches!(proc_stat(t.pid), Some(st) if st.start == t.start && st.state != 'Z' && st.state != 'X')
}

/// Ends the tracked processes that are still the same processes: SIGTERM,
/// up to 2 s, then SIGKILL, up to 2 s more.
fn terminate(procs: &[Tracked]) {
    for sig in [libc::SIGTERM, libc::SIGKILL] {
        let live: Vec<&Tracked> = procs.iter().filter(|t| is_alive(t)).collect();
        if live.is_empty() {
            return;
        }
        for t in &live {
            signal(t.pid as i32, sig);
        }
        wait_until(Duration::from_secs(2), || live.iter().all(|t| !is_alive(t)));
    }
}

/// Collects the exit status of tracked processes that are zombie children
/// of this test process (direct children whose `Child` handles are gone by
/// now, since locals drop before the rig declared ahead of them, and
/// orphans adopted through [`become_subreaper`]), so none stays a zombie.
fn reap(procs: &[Tracked]) {
    let me = std::process::id();
    for t in procs {
        if matches!(proc_stat(t.pid), Some(st) if st.ppid == me && st.start == t.start && st.state == 'Z')
        {
            let mut status = 0;
            // SAFETY: waitpid on a specific zombie child; WNOHANG never blocks.
            unsafe {
                libc::waitpid(t.pid as i32, &mut status, libc::WNOHANG);
            }
        }
    }
}

/// `ip netns add NAME`. A namespace of that name can only exist if an
/// earlier test process with our PID was killed before its cleanup: such a
/// leftover of this suite is deleted and the add retried.
fn netns_add(name: &str) {
    let _g = NETNS_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let add = || run_with_timeout(Command::new(tool("ip")).args(["netns", "add", name]), SHORT);
    let out = add();
    if out.status.success() {
        return;
    }
    assert!(
        name.starts_with("prs-"),
        "ip netns add {name}: {}",
        text(&out)
    );
    let _ = run_with_timeout(Command::new(tool("ip")).args(["netns", "del", name]), SHORT);
    let out = add();
    assert!(out.status.success(), "ip netns add {name}: {}", text(&out));
}

/// Runs `ip ARGS` in the test's own namespace; panics on failure.
pub fn ip(args: &[&str]) -> String {
    run_ok(Command::new(tool("ip")).args(args))
}

// ---------------------------------------------------------------------------
// Reading `ip -j` output
// ---------------------------------------------------------------------------

/// One address of `ip -j addr`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IfAddr {
    /// "inet" or "inet6".
    pub family: String,
    pub local: String,
    pub prefixlen: u8,
    /// "global", "link", "host".
    pub scope: String,
    /// Duplicate address detection still running.
    pub tentative: bool,
}

impl IfAddr {
    /// "192.0.2.1/24".
    pub fn cidr(&self) -> String {
        format!("{}/{}", self.local, self.prefixlen)
    }
}

/// One link of `ip -j addr` / `ip -j link`.
#[derive(Clone, Debug)]
pub struct Link {
    pub ifname: String,
    pub mtu: u64,
    pub flags: Vec<String>,
    pub operstate: String,
    pub address: String,
    pub addrs: Vec<IfAddr>,
}

impl Link {
    /// Administratively up (the UP flag).
    pub fn is_up(&self) -> bool {
        self.flags.iter().any(|f| f == "UP")
    }

    /// Addresses of one family ("inet" / "inet6") and scope ("global"...).
    pub fn addrs_of(&self, family: &str, scope: &str) -> Vec<String> {
        self.addrs
            .iter()
            .filter(|a| a.family == family && a.scope == scope)
            .map(IfAddr::cidr)
            .collect()
    }
}

/// Parses `ip -j addr` or `ip -j link` output.
pub fn parse_links(text: &str) -> Vec<Link> {
    let v = json::parse(text).unwrap_or_else(|e| panic!("bad `ip -j` output ({e}): {text}"));
    v.items()
        .iter()
        .map(|l| Link {
            ifname: l.str_of("ifname").to_string(),
            mtu: l.get("mtu").and_then(Json::as_u64).unwrap_or(0),
            flags: l
                .get("flags")
                .map(|f| {
                    f.items()
                        .iter()
                        .filter_map(Json::as_str)
                        .map(String::from)
                        .collect()
                })
                .unwrap_or_default(),
            operstate: l.str_of("operstate").to_string(),
            address: l.str_of("address").to_string(),
            addrs: l
                .get("addr_info")
                .map(|a| {
                    a.items()
                        .iter()
                        .map(|a| IfAddr {
                            family: a.str_of("family").to_string(),
                            local: a.str_of("local").to_string(),
                            prefixlen: a.get("prefixlen").and_then(Json::as_u64).unwrap_or(0) as u8,
                            scope: a.str_of("scope").to_string(),
                            tentative: a.get("tentative") == Some(&Json::Bool(true)),
                        })
                        .collect()
                })
                .unwrap_or_default(),
        })
        .collect()
}

/// One route of `ip -j route`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// "default" or a prefix.
    pub dst: String,
    pub gateway: Option<String>,
    pub dev: String,
}

/// Parses `ip -j route` output.
pub fn parse_routes(text: &str) -> Vec<Route> {
    let v = json::parse(text).unwrap_or_else(|e| panic!("bad `ip -j route` output ({e}): {text}"));
    v.items()
        .iter()
        .map(|r| Route {
            dst: r.str_of("dst").to_string(),
            gateway: r.get("gateway").and_then(Json::as_str).map(String::from),
            dev: r.str_of("dev").to_string(),
        })
        .collect()
}

/// Splits the stdout of a script that printed [`SECTION`] between the
/// outputs of several commands.
pub fn sections(stdout: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(stdout)
        .split(SECTION)
        .map(|s| s.trim().to_string())
        .collect()
}

/// The separator scripts print between sections (see [`sections`]).
pub const SECTION: &str = "@@section@@";

// ---------------------------------------------------------------------------
// Long-running commands
// ---------------------------------------------------------------------------

/// How a long-running command that signals readiness with a PID file
/// started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Started {
    /// The PID file holds a PID and the command still runs.
    Ready(u32),
    /// It exited first.
    Exited(ExitStatus),
    /// Neither within the timeout.
    TimedOut,
}

/// Waits until `pid_file` holds a PID or `child` exits.
pub fn wait_ready(child: &mut Child, pid_file: &Path, timeout: Duration) -> Started {
    let mut result = Started::TimedOut;
    wait_until(timeout, || {
        if let Ok(Some(st)) = child.try_wait() {
            result = Started::Exited(st);
        } else if let Some(pid) = read_pid_file(pid_file, Duration::ZERO) {
            result = Started::Ready(pid);
        }
        result != Started::TimedOut
    });
    result
}

/// Ends a child: SIGTERM, up to 5 s, then SIGKILL; returns how it ended.
pub fn stop(child: &mut Child) -> ExitStatus {
    if let Ok(Some(st)) = child.try_wait() {
        return st;
    }
    signal(child.id() as i32, libc::SIGTERM);
    if let Some(st) = wait_timeout(child, Duration::from_secs(5)) {
        return st;
    }
    let _ = child.kill();
    child.wait().expect("wait after SIGKILL")
}

/// Starts `unshare --user --map-root-user --net sleep 120` as `who` in the
/// rig's host namespace (logged as "holder") and returns it once `sleep`
/// runs in the new namespaces: a target for `pasta PID` / `--netns`.
pub fn ns_holder(rig: &Rig, who: As) -> Child {
    let argv = [
        "unshare",
        "--user",
        "--map-root-user",
        "--net",
        "sleep",
        "120",
    ];
    let mut child = rig.spawn_logged(&mut rig.host_cmd_as(who, &argv), "holder");
    if !wait_until(SHORT, || proc_comm(child.id()) == "sleep") {
        let _ = child.kill();
        panic!("namespace holder did not start\n{}", rig.log("holder"));
    }
    child
}

/// A daemonized pasta or passt: `pid` (read from `pid_file`) is a live
/// process whose command line names `pid_file` (so it is ours, not the
/// command `foreground` that started it) and that kept none of the caller's
/// pipes as stdin, stdout or stderr.
pub fn assert_daemon(pid: u32, foreground: &Output, pid_file: &Path) {
    assert!(
        pid_running(pid),
        "PID file names {pid}, which is not running"
    );
    let cmdline = proc_cmdline(pid);
    let pid_file = pid_file.to_string_lossy().into_owned();
    assert!(
        cmdline.contains(&pid_file),
        "PID {pid} is not our daemon: {cmdline:?}"
    );
    for fd in [0, 1, 2] {
        let target =
            fs::read_link(format!("/proc/{pid}/fd/{fd}")).map(|p| p.to_string_lossy().into_owned());
        if let Ok(t) = target {
            assert!(
                !t.starts_with("pipe:"),
                "daemon kept the caller's pipe as fd {fd}\n{}",
                text(foreground)
            );
        }
    }
}

/// Waits until a process named `comm` runs under `parent` and returns its
/// PID; panics, with the output of the rig's command `log`, if none shows
/// up or `parent` exits first.
pub fn wait_descendant(rig: &Rig, parent: u32, comm: &str, log: &str) -> u32 {
    let mut found = None;
    wait_until(SHORT, || {
        found = descendants(parent)
            .into_iter()
            .find(|&p| proc_comm(p) == comm);
        found.is_some() || !pid_running(parent)
    });
    found.unwrap_or_else(|| panic!("no `{comm}` under {parent}\n{}", rig.log(log)))
}

/// Waits up to `timeout` for `child`, started by [`Rig::spawn_logged`] as
/// `log`, to exit; panics, saying `why` it should have, if it does not.
pub fn wait_exit(
    rig: &Rig,
    child: &mut Child,
    timeout: Duration,
    log: &str,
    why: &str,
) -> ExitStatus {
    wait_timeout(child, timeout)
        .unwrap_or_else(|| panic!("{log} still running {why}\n{}", rig.log(log)))
}

/// A tap that `--config-net` set up from the rig's template interface: up,
/// MTU 65520, the template's global IPv4 and IPv6 addresses.
pub fn assert_tap_copies_template(tap: &Link, ctx: &str) {
    assert!(tap.is_up(), "tap down: {tap:?}\n{ctx}");
    assert_eq!(tap.mtu, 65520, "{ctx}");
    assert_eq!(
        tap.addrs_of("inet", "global"),
        [format!("{HOST_IP4}/{PREFIX4}")],
        "{ctx}"
    );
    assert_eq!(
        tap.addrs_of("inet6", "global"),
        [format!("{HOST_IP6}/{PREFIX6}")],
        "{ctx}"
    );
}

/// Runs a daemonizing `cmd` (pasta or passt without `-f`) until its
/// parent returns, which must be with exit 0 and a complete PID file naming
/// the daemon ([`assert_daemon`]); the daemon is tracked (ended on drop).
/// Returns its PID and the parent's output.
pub fn run_daemon(rig: &Rig, cmd: &mut Command, pid_file: &Path) -> (u32, Output) {
    let (out, _) = rig.run_tracked(cmd, SHORT);
    let ctx = text(&out);
    assert_eq!(out.status.code(), Some(0), "{ctx}");
    // The parent returns once the daemon is ready: the PID file is there.
    let pid = read_pid_file(pid_file, Duration::from_millis(200));
    let pid = pid.unwrap_or_else(|| panic!("no PID file once the parent returned\n{ctx}"));
    rig.track_pid(pid);
    assert_daemon(pid, &out, pid_file);
    (pid, out)
}

/// Declares, for each `name => body`, a module `name` holding two tests,
/// `as_root` and `as_user`, that call `body(As::Root)` and
/// `body(As::User)`: one behaviour checked for both kinds of caller.
#[allow(unused_macros)]
macro_rules! root_and_user_tests {
    ($($name:ident => $body:ident;)+) => {
        $(
            mod $name {
                #[test]
                fn as_root() {
                    super::$body(super::As::Root);
                }

                #[test]
                fn as_user() {
                    super::$body(super::As::User);
                }
            }
        )+
    };
}
#[allow(unused_imports)]
pub(crate) use root_and_user_tests;

/// Declares, for each `name => body`, a module `name` with the tests
/// `v4_as_root`, `v4_as_user`, `v6_as_root` and `v6_as_user` calling
/// `body(who, family)`; or, for each
/// `name => body { test: (Who, Family), ... };`, a module `name` with just
/// the tests listed, each calling `body(As::Who, Fam::Family)`.
#[allow(unused_macros)]
macro_rules! family_and_caller_tests {
    ($($name:ident => $body:ident;)+) => {
        $crate::common::family_and_caller_tests! {
            $(
                $name => $body {
                    v4_as_root: (Root, V4),
                    v4_as_user: (User, V4),
                    v6_as_root: (Root, V6),
                    v6_as_user: (User, V6),
                };
            )+
        }
    };
    ($($name:ident => $body:ident { $($test:ident: ($who:ident, $fam:ident)),+ $(,)? };)+) => {
        $(
            mod $name {
                $(
                    #[test]
                    fn $test() {
                        super::$body(
                            $crate::common::As::$who,
                            $crate::common::tcp::Fam::$fam,
                        );
                    }
                )+
            }
        )+
    };
}
#[allow(unused_imports)]
pub(crate) use family_and_caller_tests;

/// Declares, for each `name => body`, a module `name` with the tests `v4`
/// and `v6` calling `body(family)`.
#[allow(unused_macros)]
macro_rules! family_tests {
    ($($name:ident => $body:ident;)+) => {
        $(
            mod $name {
                #[test]
                fn v4() {
                    super::$body($crate::common::tcp::Fam::V4);
                }

                #[test]
                fn v6() {
                    super::$body($crate::common::tcp::Fam::V6);
                }
            }
        )+
    };
}
#[allow(unused_imports)]
pub(crate) use family_tests;

// ---------------------------------------------------------------------------
// Frames and captures
// ---------------------------------------------------------------------------

/// The broadcast MAC address.
pub const BROADCAST: [u8; 6] = [0xff; 6];
/// An EtherType no protocol handler will ever take (IEEE 802 local
/// experimental 1): pasta and passt always drop such frames.
pub const EXPERIMENTAL_ETHERTYPE: u16 = 0x88b5;

/// An Ethernet frame: destination, source, EtherType, payload (no FCS).
pub fn eth_frame(dst: [u8; 6], src: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + payload.len());
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// A broadcast ARP request from `mac`/`sender`: who has `target`?
pub fn arp_request(mac: [u8; 6], sender: [u8; 4], target: [u8; 4]) -> Vec<u8> {
    let mut arp = vec![0, 1, 8, 0, 6, 4, 0, 1]; // Ethernet, IPv4, request
    arp.extend_from_slice(&mac);
    arp.extend_from_slice(&sender);
    arp.extend_from_slice(&[0; 6]);
    arp.extend_from_slice(&target);
    eth_frame(BROADCAST, mac, 0x0806, &arp)
}

/// `frames` in qemu's `-netdev stream` framing: each preceded by its
/// length as a 4-byte big-endian integer.
pub fn qemu_framed<F: AsRef<[u8]>>(frames: &[F]) -> Vec<u8> {
    let mut out = Vec::new();
    for f in frames {
        let f = f.as_ref();
        out.extend_from_slice(&(f.len() as u32).to_be_bytes());
        out.extend_from_slice(f);
    }
    out
}

/// The frames of a pcap file, after checking its global header (pcap 2.4,
/// little-endian, microseconds, snaplen 65535, Ethernet) and that it is a
/// sequence of whole records. `Err` says what is wrong (a capture still
/// being written may end in a partial record).
pub fn try_pcap_frames(data: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    if data.len() < 24 {
        return Err(format!(
            "pcap file shorter than its header ({} bytes)",
            data.len()
        ));
    }
    let u32_at = |o: usize| u32::from_le_bytes(data[o..o + 4].try_into().unwrap());
    let checks = [
        (
            u32_at(0),
            0xa1b2_c3d4,
            "not a little-endian microsecond pcap file",
        ),
        (
            u32::from(u16::from_le_bytes([data[4], data[5]])),
            2,
            "major version",
        ),
        (
            u32::from(u16::from_le_bytes([data[6], data[7]])),
            4,
            "minor version",
        ),
        (u32_at(16), 65535, "snaplen"),
        (u32_at(20), 1, "link type (Ethernet)"),
    ];
    for (got, want, what) in checks {
        if got != want {
            return Err(format!("{what}: {got:#x}, want {want:#x}"));
        }
    }
    let (mut off, mut frames) = (24, Vec::new());
    while off + 16 <= data.len() {
        let n = frames.len();
        let incl = u32_at(off + 8) as usize;
        let orig = u32_at(off + 12) as usize;
        if incl > orig || incl > 65535 {
            return Err(format!("record {n}: incl {incl} orig {orig}"));
        }
        if off + 16 + incl > data.len() {
            return Err(format!("record {n} truncated"));
        }
        frames.push(data[off + 16..off + 16 + incl].to_vec());
        off += 16 + incl;
    }
    if off != data.len() {
        return Err(format!("trailing bytes after {} records", frames.len()));
    }
    Ok(frames)
}

/// [`try_pcap_frames`] that panics with what is wrong.
pub fn pcap_frames(data: &[u8]) -> Vec<Vec<u8>> {
    try_pcap_frames(data).unwrap_or_else(|e| panic!("bad pcap file: {e}"))
}

/// The frames captured in `file` whose source MAC address is `mac`; empty
/// while the file is missing or ends in a partial record.
pub fn captured_from(file: &Path, mac: [u8; 6]) -> Vec<Vec<u8>> {
    let data = fs::read(file).unwrap_or_default();
    try_pcap_frames(&data)
        .unwrap_or_default()
        .into_iter()
        .filter(|f| f.len() >= 12 && f[6..12] == mac)
        .collect()
}

/// `tcpdump -nn -e -r FILE`: reads a capture (as root, in the test's own
/// namespace: it only reads the file); panics unless tcpdump succeeds.
/// Returns one line per packet.
pub fn tcpdump_read(file: &Path) -> Vec<String> {
    let out = run_with_timeout(
        Command::new(tool("tcpdump"))
            .args(["-nn", "-e", "-r"])
            .arg(file),
        SHORT,
    );
    assert!(
        out.status.success(),
        "tcpdump cannot read the capture\n{}",
        text(&out)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(String::from)
        .collect()
}

/// "02:00:00:00:00:01", as tcpdump prints a MAC address.
pub fn mac_text(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

// ---------------------------------------------------------------------------
// Without a rig
// ---------------------------------------------------------------------------

/// A world-writable temporary directory, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        let dir = std::env::temp_dir().join(unique_name("d"));
        fs::create_dir_all(&dir).expect("create temp dir");
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).expect("chmod temp dir");
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Default for TempDir {
    fn default() -> Self {
        TempDir::new()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// `argv` run as root in a fresh, empty network namespace of its own
/// (`unshare --net`): nothing it does can reach any network, and it sees no
/// template interface. For commands that must fail before doing anything.
pub fn isolated_cmd<S: AsRef<OsStr>>(dir: &TempDir, argv: &[S]) -> Command {
    assert_root();
    let mut c = Command::new(tool("unshare"));
    c.args(["--net", "--"])
        .args(argv)
        .env("PATH", STD_PATH)
        .current_dir(dir.path())
        .stdin(Stdio::null());
    c
}
