//! pasta attaching to namespaces that already exist, the way podman and
//! rootlesskit use it (REFERENCE.md §1.8): `pasta PID` and `pasta --netns
//! PATH|NAME [--userns PATH]`. pasta daemonizes unless `-f`, writes the `-P`
//! file once the tap is configured, and exits when the target namespace goes
//! away (unless `--no-netns-quit`).

mod common;

use common::*;
use std::process::{Child, Command};
use std::time::Duration;

/// How long pasta may take to notice that its namespace is gone (upstream
/// polls once a second for procfs paths).
const QUIT_WITHIN: Duration = Duration::from_secs(5);

/// Starts `unshare --user --map-root-user --net sleep 60` as `who` in the
/// host namespace and returns it once `sleep` runs in the new namespaces.
fn holder(rig: &Rig, who: As) -> Child {
    let argv = [
        "unshare",
        "--user",
        "--map-root-user",
        "--net",
        "sleep",
        "60",
    ];
    let mut child = rig.spawn_logged(&mut rig.host_cmd_as(who, &argv), "holder");
    let ready = wait_until(SHORT, || proc_comm(child.id()) == "sleep");
    if !ready {
        let _ = child.kill();
        panic!("namespace holder did not start\n{}", rig.log("holder"));
    }
    child
}

/// `ip -j addr` inside the network namespace of `pid`, entered as root.
fn links_of_pid(pid: u32) -> Vec<Link> {
    let pid = pid.to_string();
    parse_links(&run_ok(
        Command::new(tool("nsenter")).args(["-t", &pid, "-n", "ip", "-j", "addr"]),
    ))
}

/// `ip -j addr` inside the named namespace `ns`.
fn links_of_netns(ns: &str) -> Vec<Link> {
    parse_links(&ip(&["-n", ns, "-j", "addr"]))
}

/// The tap is configured as `--config-net` promises and lo is up.
fn assert_configured(links: &[Link], ctx: &str) {
    let tap = links.iter().find(|l| l.ifname == HOST_IF);
    let tap = tap.unwrap_or_else(|| panic!("no tap {HOST_IF} in the namespace: {links:?}\n{ctx}"));
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
    let lo = links.iter().find(|l| l.ifname == "lo").expect("lo");
    assert!(lo.is_up(), "lo down in the namespace\n{ctx}");
}

/// A daemonized pasta: the PID file names a live process that is neither
/// the command we ran nor attached to its output pipes.
fn assert_daemon(pid: u32, foreground: &std::process::Output, pid_file: &std::path::Path) {
    assert!(
        pid_running(pid),
        "PID file names {pid}, which is not running"
    );
    let cmdline = proc_cmdline(pid);
    let pid_file = pid_file.to_string_lossy().into_owned();
    assert!(
        cmdline.contains(&pid_file),
        "PID {pid} is not our pasta: {cmdline:?}"
    );
    for fd in [0, 1, 2] {
        let target = std::fs::read_link(format!("/proc/{pid}/fd/{fd}"))
            .map(|p| p.to_string_lossy().into_owned());
        if let Ok(t) = target {
            assert!(
                !t.starts_with("pipe:"),
                "daemon kept the caller's pipe as fd {fd}\n{}",
                text(foreground)
            );
        }
    }
}

fn join_by_pid(who: As) {
    let rig = Rig::new();
    let mut h = holder(&rig, who);
    let pid_file = rig.tmp_path("pasta.pid");
    let target = h.id().to_string();
    let args = ["--config-net", "-P", pid_file.to_str().unwrap(), &target];
    let (out, _) = rig.run_tracked(&mut rig.pasta_cmd(who, &args), SHORT);
    let ctx = text(&out);
    assert_eq!(out.status.code(), Some(0), "{ctx}");
    // The parent returns once the daemon is ready: the PID file is there.
    let pid = read_pid_file(&pid_file, Duration::from_millis(200));
    let pid = pid.unwrap_or_else(|| panic!("no PID file once pasta returned\n{ctx}"));
    rig.track_pid(pid);
    assert_daemon(pid, &out, &pid_file);
    assert_configured(&links_of_pid(h.id()), &ctx);
    // The namespace goes away with its last process: pasta follows.
    let _ = h.kill();
    let _ = h.wait();
    assert!(
        wait_pid_gone(pid, QUIT_WITHIN),
        "pasta {pid} still running {QUIT_WITHIN:?} after its namespace went away"
    );
}

#[test]
fn join_by_pid_configures_tap_and_quits_with_the_namespace_as_user() {
    join_by_pid(As::User);
}

#[test]
fn join_by_pid_configures_tap_and_quits_with_the_namespace_as_root() {
    join_by_pid(As::Root);
}

#[test]
fn join_by_netns_and_userns_paths_as_user() {
    let rig = Rig::new();
    let mut h = holder(&rig, As::User);
    let pid_file = rig.tmp_path("pasta.pid");
    let userns = format!("/proc/{}/ns/user", h.id());
    let netns = format!("/proc/{}/ns/net", h.id());
    let args = [
        "--config-net",
        "-P",
        pid_file.to_str().unwrap(),
        "--userns",
        &userns,
        "--netns",
        &netns,
    ];
    let (out, _) = rig.run_tracked(&mut rig.pasta_cmd(As::User, &args), SHORT);
    let ctx = text(&out);
    assert_eq!(out.status.code(), Some(0), "{ctx}");
    let pid = read_pid_file(&pid_file, Duration::from_millis(200))
        .unwrap_or_else(|| panic!("no PID file\n{ctx}"));
    rig.track_pid(pid);
    assert_daemon(pid, &out, &pid_file);
    assert_configured(&links_of_pid(h.id()), &ctx);
    let _ = h.kill();
    let _ = h.wait();
    assert!(
        wait_pid_gone(pid, QUIT_WITHIN),
        "pasta {pid} outlived its namespace"
    );
}

#[test]
fn join_by_netns_name_in_foreground_quits_when_netns_deleted() {
    let rig = Rig::new();
    let ns = rig.add_netns();
    let pid_file = rig.tmp_path("pasta.pid");
    let args = [
        "--netns",
        &ns,
        "--config-net",
        "-P",
        pid_file.to_str().unwrap(),
        "-f",
    ];
    let mut pasta = rig.spawn_logged(&mut rig.pasta_cmd(As::Root, &args), "pasta");
    let pid = read_pid_file(&pid_file, SHORT)
        .unwrap_or_else(|| panic!("no PID file\n{}", rig.log("pasta")));
    assert_eq!(
        pid,
        pasta.id(),
        "in the foreground the PID file holds pasta's own PID"
    );
    assert_configured(&links_of_netns(&ns), &rig.log("pasta"));
    rig.del_netns(&ns);
    let status = wait_timeout(&mut pasta, QUIT_WITHIN);
    let status = status.unwrap_or_else(|| {
        panic!(
            "pasta still running after `ip netns del`\n{}",
            rig.log("pasta")
        )
    });
    assert_eq!(
        status.code(),
        Some(0),
        "{}\n{}",
        describe_status(status),
        rig.log("pasta")
    );
}

#[test]
fn join_by_netns_name_with_no_netns_quit_keeps_running() {
    let rig = Rig::new();
    let ns = rig.add_netns();
    let pid_file = rig.tmp_path("pasta.pid");
    let args = [
        "--netns",
        &ns,
        "--config-net",
        "--no-netns-quit",
        "-P",
        pid_file.to_str().unwrap(),
        "-f",
    ];
    let mut pasta = rig.spawn_logged(&mut rig.pasta_cmd(As::Root, &args), "pasta");
    read_pid_file(&pid_file, SHORT).unwrap_or_else(|| panic!("no PID file\n{}", rig.log("pasta")));
    assert_configured(&links_of_netns(&ns), &rig.log("pasta"));
    rig.del_netns(&ns);
    // Longer than pasta would take to quit.
    let status = wait_timeout(&mut pasta, Duration::from_secs(3));
    assert!(
        status.is_none(),
        "pasta quit ({status:?}) despite --no-netns-quit\n{}",
        rig.log("pasta")
    );
    signal(pasta.id() as i32, libc::SIGTERM);
    if wait_timeout(&mut pasta, Duration::from_secs(5)).is_none() {
        let _ = pasta.kill();
        let _ = pasta.wait();
    }
}

#[test]
fn pid_file_holds_the_daemonized_pasta_pid() {
    let rig = Rig::new();
    let ns = rig.add_netns();
    let pid_file = rig.tmp_path("pasta.pid");
    let args = [
        "--netns",
        &ns,
        "--config-net",
        "-P",
        pid_file.to_str().unwrap(),
    ];
    let (out, _) = rig.run_tracked(&mut rig.pasta_cmd(As::Root, &args), SHORT);
    let ctx = text(&out);
    assert_eq!(out.status.code(), Some(0), "{ctx}");
    let content =
        std::fs::read_to_string(&pid_file).unwrap_or_else(|e| panic!("PID file: {e}\n{ctx}"));
    assert!(
        content.ends_with('\n') && content.trim().parse::<u32>().is_ok(),
        "PID file content {content:?}"
    );
    let pid: u32 = content.trim().parse().unwrap();
    rig.track_pid(pid);
    assert_daemon(pid, &out, &pid_file);
    // Still running a moment later: it really is the long-lived pasta.
    std::thread::sleep(Duration::from_millis(300));
    assert!(pid_running(pid), "daemon {pid} exited early");
    assert_configured(&links_of_netns(&ns), &ctx);
    rig.del_netns(&ns);
    assert!(
        wait_pid_gone(pid, QUIT_WITHIN),
        "daemon {pid} still running after `ip netns del`"
    );
}
