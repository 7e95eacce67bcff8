//! `pasta [OPTS] -- CMD`: the command runs in new namespaces with a tap named
//! after the template interface, pasta exits with the command's status, and
//! `--config-net` copies the template's addresses, routes and MTU
//! (REFERENCE.md §1.8). Each test builds its own rig; pasta runs inside the
//! rig's host namespace as root or as an ordinary user.

mod common;

use common::*;

/// Runs `pasta OPTS -- sh -c SCRIPT` in the rig's host namespace.
fn pasta_sh(rig: &Rig, who: As, opts: &[&str], script: &str) -> std::process::Output {
    let mut args: Vec<&str> = opts.to_vec();
    args.extend(["--", "sh", "-c", script]);
    rig.run(&mut rig.pasta_cmd(who, &args), SHORT)
}

fn exit_status_is_propagated(who: As) {
    let rig = Rig::new();
    let out = pasta_sh(&rig, who, &["--config-net"], "exit 7");
    assert_eq!(out.status.code(), Some(7), "{}", text(&out));
    let out = pasta_sh(&rig, who, &["--config-net"], "exit 0");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

/// The command is PID 1 of its PID namespace, so it cannot be killed from
/// inside (init ignores signals it has no handler for, even SIGKILL); kill
/// it from outside, as the OOM killer or a user would.
fn signal_death_gives_128_plus_signal(who: As) {
    let rig = Rig::new();
    let mut pasta = rig.spawn_logged(
        &mut rig.pasta_cmd(who, &["--config-net", "--", "sleep", "30"]),
        "pasta",
    );
    let target = wait_descendant(&rig, pasta.id(), "sleep", "pasta");
    signal(target as i32, libc::SIGKILL);
    let why = "after its command was killed";
    let status = wait_exit(&rig, &mut pasta, SHORT, "pasta", why);
    assert_eq!(
        status.code(),
        Some(128 + 9),
        "{}\n{}",
        describe_status(status),
        rig.log("pasta")
    );
}

root_and_user_tests! {
    exit_status_of_command_is_propagated => exit_status_is_propagated;
    command_killed_by_signal_gives_128_plus_signal => signal_death_gives_128_plus_signal;
    config_net_copies_template_addresses_routes_and_mtu => config_net_copies_template;
}

/// The tap link, IPv4 and IPv6 routes seen inside pasta's namespace.
fn inside_view(
    rig: &Rig,
    who: As,
    opts: &[&str],
    ifname: &str,
) -> (Link, Vec<Route>, Vec<Route>, std::process::Output) {
    let script = format!(
        "ip -j addr show dev {ifname}; echo {SECTION}; ip -j -4 route; echo {SECTION}; ip -j -6 route"
    );
    let out = pasta_sh(rig, who, opts, &script);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let s = sections(&out.stdout);
    assert_eq!(s.len(), 3, "{}", text(&out));
    let links = parse_links(&s[0]);
    assert_eq!(links.len(), 1, "{}", text(&out));
    (
        links[0].clone(),
        parse_routes(&s[1]),
        parse_routes(&s[2]),
        out,
    )
}

fn default_gw(routes: &[Route]) -> Vec<String> {
    routes
        .iter()
        .filter(|r| r.dst == "default")
        .map(|r| format!("{} dev {}", r.gateway.as_deref().unwrap_or("-"), r.dev))
        .collect()
}

fn config_net_copies_template(who: As) {
    let rig = Rig::new();
    let (tap, r4, r6, out) = inside_view(&rig, who, &["--config-net"], HOST_IF);
    let ctx = text(&out);
    assert_eq!(tap.ifname, HOST_IF);
    assert_tap_copies_template(&tap, &ctx);
    assert_eq!(
        default_gw(&r4),
        [format!("{REMOTE_IP4} dev {HOST_IF}")],
        "{ctx}"
    );
    assert_eq!(
        default_gw(&r6),
        [format!("{REMOTE_IP6} dev {HOST_IF}")],
        "{ctx}"
    );
}

#[test]
fn config_net_mtu_and_ns_ifname_options_set_the_tap() {
    let rig = Rig::new();
    let (tap, r4, _, out) = inside_view(
        &rig,
        As::User,
        &["--config-net", "-m", "1500", "-I", "tap0"],
        "tap0",
    );
    let ctx = text(&out);
    assert_eq!(tap.ifname, "tap0");
    assert_eq!(tap.mtu, 1500, "{ctx}");
    assert!(tap.is_up(), "{ctx}");
    assert_eq!(
        tap.addrs_of("inet", "global"),
        [format!("{HOST_IP4}/{PREFIX4}")],
        "{ctx}"
    );
    assert_eq!(default_gw(&r4), [format!("{REMOTE_IP4} dev tap0")], "{ctx}");
    // Long forms, with `=`.
    let (tap, _, _, out) = inside_view(
        &rig,
        As::User,
        &["--config-net", "--mtu=9000", "--ns-ifname=guest1"],
        "guest1",
    );
    assert_eq!(tap.mtu, 9000, "{}", text(&out));
}

#[test]
fn config_net_address_option_replaces_template_ipv4_address() {
    let rig = Rig::new();
    let opts = [
        "--config-net",
        "-a",
        "192.0.2.77",
        "-n",
        "24",
        "-g",
        REMOTE_IP4,
    ];
    let (tap, r4, _, out) = inside_view(&rig, As::User, &opts, HOST_IF);
    let ctx = text(&out);
    assert_eq!(tap.addrs_of("inet", "global"), ["192.0.2.77/24"], "{ctx}");
    assert_eq!(
        default_gw(&r4),
        [format!("{REMOTE_IP4} dev {HOST_IF}")],
        "{ctx}"
    );
}

#[test]
fn tap_is_named_after_template_and_lo_is_up_without_config_net() {
    let rig = Rig::new();
    let out = pasta_sh(&rig, As::User, &[], "ip -j link show");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let links = parse_links(&String::from_utf8_lossy(&out.stdout));
    let names: Vec<&str> = links.iter().map(|l| l.ifname.as_str()).collect();
    assert!(
        names.contains(&HOST_IF),
        "no tap named {HOST_IF}: {names:?}"
    );
    assert!(names.contains(&"lo"), "{names:?}");
    let lo = links.iter().find(|l| l.ifname == "lo").unwrap();
    assert!(lo.is_up(), "lo down: {lo:?}");
    // Nothing of the host leaks in: only lo and the tap.
    assert_eq!(links.len(), 2, "{names:?}");
}

#[test]
fn command_runs_in_fresh_namespaces_as_mapped_root() {
    let rig = Rig::new();
    let script = "id -u; echo @@section@@; readlink /proc/self/ns/net; echo @@section@@; echo $$";
    let out = pasta_sh(&rig, As::User, &["--config-net"], script);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let s = sections(&out.stdout);
    assert_eq!(s[0], "0", "not root in its user namespace: {}", text(&out));
    let host_net = run_ok(&mut rig.host_cmd(&["readlink", "/proc/self/ns/net"]));
    assert_ne!(
        s[1],
        host_net.trim(),
        "command shares the host's network namespace"
    );
    // A new PID namespace: the shell is PID 1 (or a low PID under an init).
    let pid: u32 = s[2].parse().unwrap_or(u32::MAX);
    assert!(pid < 10, "command not in a new PID namespace (pid {pid})");
}

#[test]
fn summary_is_not_printed_when_running_a_command_unless_debug() {
    let rig = Rig::new();
    let quiet = pasta_sh(&rig, As::User, &["--config-net"], "true");
    assert_eq!(quiet.status.code(), Some(0), "{}", text(&quiet));
    let err = String::from_utf8_lossy(&quiet.stderr);
    assert!(
        !err.contains("Template interface"),
        "summary printed without -d:\n{err}"
    );
    assert!(
        quiet.stdout.is_empty(),
        "pasta wrote to stdout: {}",
        text(&quiet)
    );
    let debug = pasta_sh(&rig, As::User, &["--config-net", "-d"], "true");
    assert_eq!(debug.status.code(), Some(0), "{}", text(&debug));
    let err = String::from_utf8_lossy(&debug.stderr);
    assert!(
        err.contains("Template interface"),
        "no summary with -d:\n{err}"
    );
}
