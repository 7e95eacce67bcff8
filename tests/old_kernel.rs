//! pasta on an old kernel: boots Debian 12's Linux 6.1 (no `SO_PEEK_OFF`
//! for TCP before 6.9, so pasta takes its fallback path that skips
//! already-sent data on each peek) under qemu TCG, with our pasta inside,
//! and runs real TCP transfers through it (DESIGN.md §5, "old kernel").
//!
//! The guest is a busybox initramfs built here: busybox (static), pasta and
//! socat with every library `ldd` names, the `tun` and `dummy` modules, and
//! the scripts in `tests/old_kernel/`. Its `/init` (`init.sh`) gives the
//! guest a network of its own (a dummy interface with a default route, far
//! addresses on lo; qemu has no network device, so nothing leaves the VM),
//! starts socat servers on that stack and runs `pasta --config-net` as an
//! ordinary user (uid 1000) with `client.sh` in pasta's namespace. The
//! client runs every transfer of [`transfers`] at once and prints one
//! `RESULT NAME ok|FAIL ...` line each, comparing size and SHA-256 with the
//! source: downloads written as fast as they go and in bursts with pauses
//! (`burst.sh`, the pattern that got downloads cut short without error on
//! the fallback path), uploads (`sink.sh` answers with what arrived), over
//! IPv4 and IPv6, to the gateway address (mapped to the guest's loopback)
//! and to far addresses, plus spliced loopback downloads.
//!
//! The kernel, its modules and busybox come from `scripts/old-kernel.sh`
//! (which `scripts/install-deps.sh` runs) in `/var/cache/passt-rs/old-kernel`
//! or `$PASST_RS_OLD_KERNEL`; without them the test fails, saying so.

mod common;

use common::*;
use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The data each transfer carries, in 64 KiB blocks (4 MiB: TCG is slow).
const BLOCKS: u32 = 64;
/// Bounds: pasta and its client in the guest (each transfer has 60 s),
/// and qemu as a whole, which is killed past it.
const PASTA_TIMEOUT_S: u32 = 90;
const QEMU_TIMEOUT: Duration = Duration::from_secs(110);

/// The guest's scripts (see each file's header).
const SCRIPTS: [(&str, &str); 4] = [
    ("init", include_str!("old_kernel/init.sh")),
    ("client.sh", include_str!("old_kernel/client.sh")),
    ("burst.sh", include_str!("old_kernel/burst.sh")),
    ("sink.sh", include_str!("old_kernel/sink.sh")),
];

/// The transfers `client.sh` runs at once, "NAME get|put ADDR PORT": the
/// servers listen on 5001 (the file as fast as it goes), 5002 (in bursts) and
/// 5003 (uploads), IPv4 and IPv6, on every address of the guest.
fn transfers() -> Vec<String> {
    let dests = [
        ("gw", "192.0.2.2", "[2001:db8:1::2]"),
        ("far", "198.51.100.3", "[2001:db8:2::3]"),
        ("splice", "127.0.0.1", "[::1]"),
    ];
    let kinds = [
        ("dl", "get", 5001),
        ("burst", "get", 5002),
        ("up", "put", 5003),
    ];
    let mut list = Vec::new();
    for (dest, v4, v6) in dests {
        for (what, kind, port) in kinds {
            // The namespace's loopback reaches the guest's servers through
            // pasta's `-T auto` forwards (spliced, not the tap): one each.
            if dest == "splice" && what != "burst" {
                continue;
            }
            for (fam, addr) in [("v4", v4), ("v6", v6)] {
                list.push(format!("{what}-{dest}-{fam} {kind} {addr} {port}"));
            }
        }
    }
    list
}

#[test]
fn old_kernel_6_1_pasta_transfers_arrive_intact() {
    let kernel = kernel_dir();
    let dir = TempDir::new();
    let initramfs = build_initramfs(&kernel, dir.path());
    let started = Instant::now();
    let (console, timed_out) = boot(&kernel, &initramfs);
    eprintln!("guest ran for {:.1?}", started.elapsed());

    let lines: Vec<&str> = console.lines().map(|l| l.trim_end_matches('\r')).collect();
    // A tagged line may follow the firmware's escape sequences.
    let tagged = |tag: &str| -> Vec<&str> {
        lines
            .iter()
            .filter_map(|l| l.find(tag).map(|i| &l[i + tag.len()..]))
            .collect()
    };
    let mut problems = Vec::new();
    if timed_out {
        problems.push(format!("qemu still running after {QEMU_TIMEOUT:?}, killed"));
    }
    if tagged("DONE").is_empty() {
        problems.push("no DONE: the guest's /init did not finish".into());
    }
    match tagged("KERNEL ").first() {
        Some(release) if release.starts_with("6.1.") => {}
        other => problems.push(format!("kernel release {other:?}, want 6.1.*")),
    }
    // pasta maps its caller to root in its user namespace: "0 1000 1".
    let uid_map: Vec<&str> = tagged("CLIENT uid_map ")
        .iter()
        .flat_map(|m| m.split_whitespace())
        .collect();
    if uid_map != ["0", "1000", "1"] {
        problems.push(format!(
            "pasta's namespace maps uids {uid_map:?}, want 1000 as 0"
        ));
    }
    if !tagged("PASTA exit ").contains(&"0") {
        problems.push("pasta did not exit with 0".into());
    }
    let results = tagged("RESULT ");
    for failed in results.iter().filter(|r| r.contains(" FAIL")) {
        problems.push(format!("RESULT {failed}"));
    }
    for t in transfers() {
        let name = t.split(' ').next().unwrap();
        if !results
            .iter()
            .any(|r| r.starts_with(&format!("{name} ok ")))
        {
            problems.push(format!("{name}: no ok result ({t})"));
        }
    }
    assert!(
        problems.is_empty(),
        "pasta on Linux 6.1 under qemu:\n  {}\n--- console:\n{console}",
        problems.join("\n  ")
    );
}

/// The directory `scripts/old-kernel.sh` fills; panics if it has not run.
fn kernel_dir() -> PathBuf {
    let dir = std::env::var_os("PASST_RS_OLD_KERNEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/passt-rs/old-kernel"));
    for f in ["vmlinuz", "busybox", "modules/order"] {
        assert!(
            dir.join(f).is_file(),
            "no {} for the old-kernel test: run scripts/old-kernel.sh \
             (scripts/install-deps.sh does)",
            dir.join(f).display()
        );
    }
    dir
}

/// Stages the guest's root in `dir/root` and packs it (cpio, newc) into
/// `dir/initramfs`, which it returns.
fn build_initramfs(kernel: &Path, dir: &Path) -> PathBuf {
    let root = dir.join("root");
    for d in ["bin", "etc", "proc", "sys", "dev", "tmp", "modules"] {
        fs::create_dir_all(root.join(d)).expect("create the guest's dirs");
    }
    // init's first step is `busybox --install -s /bin` for the other applets.
    copy(&kernel.join("busybox"), &root.join("bin/busybox"));
    symlink("busybox", root.join("bin/sh")).expect("symlink /bin/sh");
    copy_with_libs(&pasta_bin(), &root, "bin/pasta");
    copy_with_libs(&tool("socat"), &root, "bin/socat");
    let order = fs::read_to_string(kernel.join("modules/order")).expect("read modules/order");
    for m in order.lines() {
        copy(
            &kernel.join("modules").join(m),
            &root.join("modules").join(m),
        );
    }
    fs::write(root.join("modules/order"), &order).expect("write modules/order");
    for (name, text) in SCRIPTS {
        write(&root.join(name), text, 0o755);
    }
    let files = [
        (
            "etc/passwd",
            "root:x:0:0::/:/bin/sh\ntester:x:1000:1000::/tmp:/bin/sh\n".to_string(),
        ),
        ("etc/group", "root:x:0:\ntester:x:1000:\n".into()),
        ("etc/resolv.conf", "nameserver 198.51.100.53\n".into()),
        (
            "params",
            format!("BLOCKS={BLOCKS}\nPASTA_TIMEOUT={PASTA_TIMEOUT_S}\n"),
        ),
        ("transfers", transfers().join("\n") + "\n"),
    ];
    for (name, text) in files {
        write(&root.join(name), &text, 0o644);
    }
    tool("cpio");
    run_ok(
        Command::new("sh")
            .args(["-c", "find . | cpio -o -H newc --quiet >../initramfs"])
            .current_dir(&root),
    );
    dir.join("initramfs")
}

/// Copies `bin` to `root/dest`, and every library `ldd` names for it,
/// the dynamic loader included, to the same path under `root`.
fn copy_with_libs(bin: &Path, root: &Path, dest: &str) {
    copy(bin, &root.join(dest));
    let libs = run_ok(Command::new(tool("ldd")).arg(bin));
    for lib in libs.split_whitespace().filter(|w| w.starts_with('/')) {
        let to = root.join(lib.trim_start_matches('/'));
        fs::create_dir_all(to.parent().unwrap()).expect("create a library dir");
        copy(Path::new(lib), &to);
    }
}

/// Copies a file's contents (following symlinks) and mode.
fn copy(from: &Path, to: &Path) {
    fs::copy(from, to)
        .unwrap_or_else(|e| panic!("copy {} to {}: {e}", from.display(), to.display()));
}

fn write(path: &Path, text: &str, mode: u32) {
    fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
}

/// qemu, killed (by PID) and reaped when dropped.
struct Qemu(Child);

impl Drop for Qemu {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Boots the guest under TCG, without a network device, until it powers
/// off or [`QEMU_TIMEOUT`] passes; returns the serial console's output and
/// whether qemu had to be killed.
fn boot(kernel: &Path, initramfs: &Path) -> (String, bool) {
    let mut cmd = Command::new(tool("qemu-system-x86_64"));
    cmd.args(["-accel", "tcg", "-m", "512M", "-smp", "2", "-nographic"])
        .args(["-no-reboot", "-nic", "none", "-kernel"])
        .arg(kernel.join("vmlinuz"))
        .arg("-initrd")
        .arg(initramfs)
        .args(["-append", "console=ttyS0 panic=-1 quiet"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut qemu = Qemu(cmd.spawn().expect("start qemu-system-x86_64"));
    let output = drain_output(&mut qemu.0);
    let timed_out = wait_timeout(&mut qemu.0, QEMU_TIMEOUT).is_none();
    drop(qemu);
    let (stdout, stderr) = collect_output(&output, Duration::from_secs(2));
    let console = String::from_utf8_lossy(&stdout).into_owned();
    (console + &String::from_utf8_lossy(&stderr), timed_out)
}
