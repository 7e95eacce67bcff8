//! pasta's logging conventions, end to end (REFERENCE.md §1.1): the `-l`
//! log file (mode 0600, header line `pasta <version>: <exe> (<pid>)`), `-d`
//! logging every dropped guest frame ("Dropped ..."), `-q` silencing a
//! daemon, and the `--log-size` cap holding under a burst of debug lines.
//!
//! The guest's traffic is made of real frames: `socat` writes them on the
//! tap through a packet socket inside pasta's namespace, with an EtherType
//! no handler takes (IEEE 802 local experimental), so pasta always drops
//! them, whatever protocols it handles.

mod common;

use common::*;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Source MAC address of the frames the guest sends.
const GUEST_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x20];
/// Bytes of each frame the guest sends.
const FRAME_LEN: usize = 64;
/// `--log-size` for the burst test: upstream's (and our) minimum.
const LOG_SIZE: u64 = 40960;

/// Writes `n` frames of [`FRAME_LEN`] bytes that pasta drops into a file
/// in the rig's temp dir; returns a shell command that sends them from
/// inside pasta's namespace on the tap, one frame per `socat` read, then
/// gives pasta a moment to read them before the command (and pasta) ends.
fn drop_frames_script(rig: &Rig, n: usize) -> String {
    let frame = eth_frame(
        BROADCAST,
        GUEST_MAC,
        EXPERIMENTAL_ETHERTYPE,
        &[0x5a; FRAME_LEN - 14],
    );
    let path = rig.tmp_path("frames.bin");
    std::fs::write(&path, frame.repeat(n)).expect("write frames");
    format!(
        "socat -u -b {FRAME_LEN} OPEN:{} INTERFACE:{HOST_IF} && sleep 0.3",
        path.display()
    )
}

/// `pasta --config-net OPTS -- sh -c SCRIPT` as `who`: exit 0, and the
/// output. Also returns pasta's PID.
fn pasta_sh(rig: &Rig, who: As, opts: &[&str], script: &str) -> (std::process::Output, u32) {
    let mut args = vec!["--config-net"];
    args.extend(opts);
    args.extend(["--", "sh", "-c", script]);
    let (out, pid) = rig.run_pid(&mut rig.pasta_cmd(who, &args), SHORT);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    (out, pid)
}

fn read_log(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("log file {}: {e}", path.display()))
}

fn log_file_header(who: As) {
    let rig = Rig::new();
    let log = rig.tmp_path("pasta.log");
    let (out, pid) = pasta_sh(&rig, who, &["-l", log.to_str().unwrap()], "true");
    let mode = std::fs::metadata(&log)
        .unwrap_or_else(|e| panic!("no log file: {e}\n{}", text(&out)))
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "log file mode {mode:o}");
    let version = run_ok(&mut rig.pasta_cmd(As::Root, &["--version"]));
    let version = version.lines().next().unwrap_or("").to_string();
    let exe = std::fs::canonicalize(pasta_bin()).expect("canonicalize pasta");
    let want = format!("{version}: {} ({pid})", exe.display());
    let content = read_log(&log);
    let first = content.lines().next().unwrap_or("");
    assert_eq!(first, want, "first line of the log file:\n{content}");
}

root_and_user_tests! {
    log_file_is_mode_0600_and_starts_with_version_exe_and_pid => log_file_header;
}

#[test]
fn debug_logs_dropped_guest_frames_on_stderr_or_in_the_log_file() {
    let rig = Rig::new();
    let script = drop_frames_script(&rig, 3);
    // -d alone: on stderr, with timestamps.
    let (out, _) = pasta_sh(&rig, As::User, &["-d"], &script);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.lines().any(|l| l.contains(": Dropped")),
        "no \"Dropped\" line on stderr\n{}",
        text(&out)
    );
    // -d with a log file: there.
    let log = rig.tmp_path("debug.log");
    pasta_sh(
        &rig,
        As::User,
        &["-d", "-l", log.to_str().unwrap()],
        &script,
    );
    let content = read_log(&log);
    assert!(
        content.lines().any(|l| l.contains("Dropped")),
        "no \"Dropped\" line in the log file:\n{content}"
    );
    // Without -d: nowhere.
    let log = rig.tmp_path("quiet.log");
    let (out, _) = pasta_sh(&rig, As::User, &["-l", log.to_str().unwrap()], &script);
    let content = read_log(&log);
    assert!(
        !content.contains("Dropped") && !String::from_utf8_lossy(&out.stderr).contains("Dropped"),
        "dropped frames logged without -d:\n{content}\n{}",
        text(&out)
    );
}

/// Runs the daemonizing `pasta OPTS --config-net -P FILE PID` as the user,
/// attached to a new namespace holder; returns what the parent printed,
/// after checking that the daemon quits with the namespace.
fn join_pid_daemonized(rig: &Rig, opts: &[&str]) -> std::process::Output {
    let mut holder = ns_holder(rig, As::User);
    let pid_file = rig.tmp_path(&format!("{}.pid", unique_name("pasta")));
    let target = holder.id().to_string();
    let mut args = opts.to_vec();
    args.extend(["--config-net", "-P", pid_file.to_str().unwrap(), &target]);
    let (pid, out) = run_daemon(rig, &mut rig.pasta_cmd(As::User, &args), &pid_file);
    let _ = holder.kill();
    let _ = holder.wait();
    assert!(
        wait_pid_gone(pid, SHORT),
        "pasta {pid} outlived its namespace"
    );
    out
}

#[test]
fn quiet_daemon_joining_a_pid_prints_nothing() {
    let rig = Rig::new();
    // Without -q, the parent prints the configuration summary before it
    // goes to the background...
    let out = join_pid_daemonized(&rig, &[]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Template interface"),
        "no summary without -q\n{}",
        text(&out)
    );
    // ...with -q, nothing at all.
    let out = join_pid_daemonized(&rig, &["-q"]);
    assert!(
        out.stdout.is_empty() && out.stderr.is_empty(),
        "pasta -q printed something\n{}",
        text(&out)
    );
}

#[test]
fn log_size_caps_the_log_file_under_a_burst_of_debug_logging() {
    let rig = Rig::new();
    // Each dropped frame logs a line of about 60 bytes: 2048 of them are
    // about three times the cap.
    let script = drop_frames_script(&rig, 2048);
    let log = rig.tmp_path("burst.log");
    let size = LOG_SIZE.to_string();
    let opts = ["-d", "-l", log.to_str().unwrap(), "--log-size", &size];
    let started = std::time::Instant::now();
    pasta_sh(&rig, As::User, &opts, &script);
    let took = started.elapsed();
    let content = read_log(&log);
    let len = content.len() as u64;
    assert!(len <= LOG_SIZE, "log file is {len} bytes, cap {LOG_SIZE}");
    let first = content.lines().next().unwrap_or("");
    assert!(
        first.starts_with("pasta ") && first.contains("log truncated"),
        "first line after the cut: {first:?}"
    );
    assert!(content.ends_with('\n'), "log ends in a partial line");
    let dropped = content.lines().filter(|l| l.contains("Dropped")).count();
    assert!(
        dropped > 100,
        "only {dropped} \"Dropped\" lines kept ({len} bytes, {took:?}):\n{content}"
    );
    for line in content.lines().skip(1) {
        let stamp = line.split(':').next().unwrap_or("");
        assert!(
            stamp
                .split_once('.')
                .is_some_and(|(s, f)| { s.bytes().all(|b| b.is_ascii_digit()) && f.len() == 4 }),
            "not a whole log line after the cut: {line:?}"
        );
    }
}
