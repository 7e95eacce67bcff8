//! Self-tests of the test rig (tests/common): the two namespaces reach each
//! other, the host namespace has no route anywhere but the rig, commands run
//! as root and as an ordinary user, and dropping the rig removes everything.

mod common;

use common::*;
use std::path::Path;
use std::time::Duration;

#[test]
fn rig_host_reaches_remote_over_the_veth() {
    let rig = Rig::new();
    let ping = ping_argv();
    for (flag, dst) in [
        ("-4", REMOTE_IP4),
        ("-4", FAR_IP4),
        ("-6", REMOTE_IP6),
        ("-6", FAR_IP6),
    ] {
        let mut argv = ping.clone();
        argv.extend([flag.into(), "-c1".into(), "-W2".into(), dst.into()]);
        let out = run_with_timeout(&mut rig.host_cmd(&argv), SHORT);
        assert!(
            out.status.success(),
            "ping {dst} from host:\n{}",
            text(&out)
        );
    }
}

#[test]
fn rig_host_has_no_route_but_the_rig() {
    let rig = Rig::new();
    let v4 = parse_routes(&run_ok(
        &mut rig.host_cmd(&["ip", "-j", "-4", "route", "show", "table", "all"]),
    ));
    let v6 = parse_routes(&run_ok(
        &mut rig.host_cmd(&["ip", "-j", "-6", "route", "show", "table", "all"]),
    ));
    for r in v4.iter().chain(&v6) {
        assert!(
            r.dev == HOST_IF || r.dev == "lo",
            "route outside the rig: {r:?}"
        );
    }
    let defaults: Vec<&Route> = v4
        .iter()
        .chain(&v6)
        .filter(|r| r.dst == "default")
        .collect();
    assert_eq!(defaults.len(), 2, "{defaults:?}");
    assert!(
        defaults
            .iter()
            .any(|r| r.gateway.as_deref() == Some(REMOTE_IP4))
    );
    assert!(
        defaults
            .iter()
            .any(|r| r.gateway.as_deref() == Some(REMOTE_IP6))
    );
    // The only interfaces are lo and the veth.
    let links = parse_links(&run_ok(&mut rig.host_cmd(&["ip", "-j", "addr"])));
    let names: Vec<&str> = links.iter().map(|l| l.ifname.as_str()).collect();
    assert_eq!(names, ["lo", HOST_IF]);
    let veth = &links[1];
    assert_eq!(
        veth.addrs_of("inet", "global"),
        [format!("{HOST_IP4}/{PREFIX4}")]
    );
    assert_eq!(
        veth.addrs_of("inet6", "global"),
        [format!("{HOST_IP6}/{PREFIX6}")]
    );
    assert!(links[0].is_up() && veth.is_up());
}

#[test]
fn rig_host_has_its_own_resolv_conf_and_ping_group_range() {
    let rig = Rig::new();
    let resolv = run_ok(&mut rig.host_cmd(&["cat", "/etc/resolv.conf"]));
    assert_eq!(
        resolv,
        format!("nameserver {NAMESERVER}\nsearch {SEARCH_DOMAIN}\n")
    );
    let range = run_ok(&mut rig.host_cmd(&["cat", "/proc/sys/net/ipv4/ping_group_range"]));
    assert_eq!(
        range.split_whitespace().collect::<Vec<_>>(),
        ["0", "2147483647"]
    );
}

#[test]
fn rig_user_commands_run_unprivileged_and_can_make_namespaces() {
    let rig = Rig::new();
    let id = run_ok(&mut rig.host_cmd_as_user(&["id", "-u"]));
    assert_eq!(id.trim(), USER_UID.to_string());
    let caps = run_ok(&mut rig.host_cmd_as_user(&["grep", "^CapEff", "/proc/self/status"]));
    assert!(caps.trim().ends_with("0000000000000000"), "{caps}");
    // What pasta needs: a user namespace, and /dev/net/tun open to all.
    run_ok(&mut rig.host_cmd_as_user(&["unshare", "--user", "--map-root-user", "--net", "true"]));
    let meta = std::fs::metadata("/dev/net/tun").unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(meta.permissions().mode() & 0o777, 0o666);
    // The temp dir is writable by the user.
    run_ok(&mut rig.host_cmd_as_user(&["touch", "written-by-user"]));
    assert!(rig.tmp_path("written-by-user").exists());
}

#[test]
#[allow(clippy::zombie_processes)] // dropping the rig ends and reaps them
fn rig_drop_removes_namespaces_processes_and_files() {
    let rig = Rig::new();
    let (host, remote) = (rig.host.clone(), rig.remote.clone());
    let extra = rig.add_netns();
    let tmp = rig.tmp_dir().to_path_buf();
    let sleeper = rig.spawn(&mut rig.host_cmd(&["sleep", "30"]));
    let pid = sleeper.id();
    // A process that ignores SIGTERM, with a child that does too.
    let script = "trap '' TERM; sleep 30 & wait";
    let stubborn = rig.spawn(&mut rig.host_cmd_as_user(&["sh", "-c", script]));
    let stubborn_pid = stubborn.id();
    let mut grandchild = None;
    assert!(wait_until(Duration::from_secs(5), || {
        grandchild = descendants(stubborn_pid).first().copied();
        pid_running(pid) && grandchild.is_some()
    }));
    let grandchild = grandchild.unwrap();
    drop(rig);
    for (what, p) in [
        ("sleep", pid),
        ("sh", stubborn_pid),
        ("its child", grandchild),
    ] {
        assert!(!pid_running(p), "{what} still running");
        assert!(proc_stat(p).is_none(), "{what} left as a zombie");
    }
    let list = run_ok(std::process::Command::new(tool("ip")).args(["netns", "list"]));
    for ns in [&host, &remote, &extra] {
        assert!(
            !list.split_whitespace().any(|n| n == ns),
            "{ns} left behind"
        );
    }
    assert!(!Path::new("/etc/netns").join(&host).exists());
    assert!(!tmp.exists());
}

#[test]
#[allow(clippy::zombie_processes)] // dropping the rig ends and reaps them
fn rig_drop_ends_processes_forked_while_it_cleans_up() {
    let rig = Rig::new();
    // Keeps forking TERM-ignoring children while the rig ends it (bounded:
    // 30 rounds of 0.3 s).
    let script = "trap '' TERM; for i in $(seq 30); do sleep 30 & sleep 0.3; done; wait";
    let forker = rig.spawn(&mut rig.host_cmd(&["sh", "-c", script]));
    let group = forker.id();
    assert!(wait_until(Duration::from_secs(5), || group_members(group)
        .len()
        >= 3));
    drop(rig);
    assert_eq!(
        group_members(group),
        Vec::<u32>::new(),
        "processes outlived the rig"
    );
}

#[test]
fn rig_json_reader_handles_ip_output() {
    let v = json::parse(r#"[{"ifname":"lo","mtu":65536,"flags":["LOOPBACK","UP"],"x":null,"y":-1.5e2,"z":"a\"\u00e9"}]"#)
        .unwrap();
    let lo = &v.items()[0];
    assert_eq!(lo.str_of("ifname"), "lo");
    assert_eq!(lo.get("mtu").and_then(json::Json::as_u64), Some(65536));
    assert_eq!(lo.get("flags").unwrap().items().len(), 2);
    assert_eq!(lo.get("y"), Some(&json::Json::Num(-150.0)));
    assert_eq!(lo.str_of("z"), "a\"é");
    assert!(json::parse("[1,]").is_err());
    assert!(json::parse("{\"a\":1} x").is_err());
}
