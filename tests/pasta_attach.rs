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
    assert_tap_copies_template(tap, ctx);
    let lo = links.iter().find(|l| l.ifname == "lo").expect("lo");
    assert!(lo.is_up(), "lo down in the namespace\n{ctx}");
}

/// Runs the daemonizing `pasta ARGS` as `who`, attached to the namespaces
/// of `holder`; checks the daemon and its tap, then ends the holder: the
/// namespace goes away with its last process, and pasta must follow.
fn attach_then_quit_with_holder(rig: &Rig, who: As, args: &[&str], mut holder: Child) {
    let pid_file = rig.tmp_path("pasta.pid");
    let mut argv = vec!["-P", pid_file.to_str().unwrap()];
    argv.extend(args);
    let (pid, out) = run_daemon(rig, &mut rig.pasta_cmd(who, &argv), &pid_file);
    assert_configured(&links_of_pid(holder.id()), &text(&out));
    let _ = holder.kill();
    let _ = holder.wait();
    assert!(
        wait_pid_gone(pid, QUIT_WITHIN),
        "pasta {pid} still running {QUIT_WITHIN:?} after its namespace went away"
    );
}

fn join_by_pid(who: As) {
    let rig = Rig::new();
    let h = ns_holder(&rig, who);
    let target = h.id().to_string();
    attach_then_quit_with_holder(&rig, who, &["--config-net", &target], h);
}

root_and_user_tests! {
    join_by_pid_configures_tap_and_quits_with_the_namespace => join_by_pid;
}

#[test]
fn join_by_netns_and_userns_paths_as_user() {
    let rig = Rig::new();
    let h = ns_holder(&rig, As::User);
    let userns = format!("/proc/{}/ns/user", h.id());
    let netns = format!("/proc/{}/ns/net", h.id());
    let args = ["--config-net", "--userns", &userns, "--netns", &netns];
    attach_then_quit_with_holder(&rig, As::User, &args, h);
}

/// Starts `pasta --netns NS --config-net -f -P FILE EXTRA` as root and
/// returns it once the PID file names it and the tap is configured.
fn foreground_in_netns(rig: &Rig, ns: &str, extra: &[&str]) -> Child {
    let pid_file = rig.tmp_path("pasta.pid");
    let mut args = vec!["--netns", ns, "--config-net"];
    args.extend(extra);
    args.extend(["-P", pid_file.to_str().unwrap(), "-f"]);
    let pasta = rig.spawn_logged(&mut rig.pasta_cmd(As::Root, &args), "pasta");
    let pid = read_pid_file(&pid_file, SHORT)
        .unwrap_or_else(|| panic!("no PID file\n{}", rig.log("pasta")));
    assert_eq!(
        pid,
        pasta.id(),
        "in the foreground the PID file holds pasta's own PID"
    );
    assert_configured(&links_of_netns(ns), &rig.log("pasta"));
    pasta
}

#[test]
fn join_by_netns_name_in_foreground_quits_when_netns_deleted() {
    let rig = Rig::new();
    let ns = rig.add_netns();
    let mut pasta = foreground_in_netns(&rig, &ns, &[]);
    rig.del_netns(&ns);
    let status = wait_exit(
        &rig,
        &mut pasta,
        QUIT_WITHIN,
        "pasta",
        "after `ip netns del`",
    );
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
    let mut pasta = foreground_in_netns(&rig, &ns, &["--no-netns-quit"]);
    rig.del_netns(&ns);
    // Longer than pasta would take to quit.
    let status = wait_timeout(&mut pasta, Duration::from_secs(3));
    assert!(
        status.is_none(),
        "pasta quit ({status:?}) despite --no-netns-quit\n{}",
        rig.log("pasta")
    );
    stop(&mut pasta);
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
    let (pid, out) = run_daemon(&rig, &mut rig.pasta_cmd(As::Root, &args), &pid_file);
    let ctx = text(&out);
    let content = std::fs::read_to_string(&pid_file).unwrap_or_else(|e| panic!("PID file: {e}"));
    assert_eq!(content, format!("{pid}\n"), "PID file content");
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
