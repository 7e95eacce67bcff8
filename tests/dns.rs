//! DNS through pasta (REFERENCE.md §1.3, §2.4): `dig` in the namespace gets
//! answers from a real DNS server, dnsmasq, that the test starts on the
//! host namespace's loopback. dnsmasq answers only for a made-up name
//! (`--address=/passt-rs.test/...`), forwards nothing (`--no-resolv`,
//! `--no-hosts`, no configuration file) and binds only the addresses it is
//! given (`--bind-interfaces`), so an answer proves the query reached it.
//!
//! What is proven, for IPv4 and IPv6, over UDP and over TCP (`dig +tcp`):
//! - `--dns-forward ADDR --dns-host LOOPBACK`: queries the guest sends to
//!   ADDR (an address nobody has: without the forward there is no answer)
//!   are answered by the resolver on the host's loopback; dig accepts only
//!   replies that come back from ADDR;
//! - with no DNS option and a loopback resolver in the host's resolv.conf
//!   (`nameserver 127.0.0.53`, as systemd-resolved writes it, and
//!   `nameserver ::1`): queries to the gateway address reach it. The
//!   resolver listens on 127.0.0.53 only, so the plain gateway -> host
//!   loopback mapping (127.0.0.1) would not reach it: only pasta's DNS
//!   redirect does;
//! - in that case pasta's DHCP server (`--dhcp-dns`) tells the guest to use
//!   the gateway as its nameserver, and dig at that address works;
//! - the command lines podman and rootlesskit emit (REFERENCE.md §9)
//!   resolve through their `--dns-forward` address with no `--dns-host`:
//!   the queries reach the resolv.conf resolver (127.0.0.53).
//!
//! The host namespace's resolv.conf is the rig's own file
//! ([`Rig::set_resolv_conf`]): `ip netns exec` bind-mounts it over
//! `/etc/resolv.conf` for pasta. Upstream pasta does not write a
//! resolv.conf for its namespace: the spawned command sees the host's file
//! (a loopback address that means nothing inside), so the guest learns
//! the gateway address from DHCP, or is given it.

mod common;

use common::tcp::Fam;
use common::*;
use std::process::{Child, Output};
use std::time::Duration;

/// The made-up zone dnsmasq answers for, and its answers.
const NAME: &str = "www.passt-rs.test";
const ANSWER4: &str = "203.0.113.77";
const ANSWER6: &str = "2001:db8:77::77";
/// `--dns-forward` targets: addresses nothing in the rig has.
const FORWARD4: &str = "198.51.100.53";
const FORWARD6: &str = "2001:db8:2::53";
/// Where the systemd-resolved-like resolver listens.
const STUB4: &str = "127.0.0.53";
/// A run of dig commands in the guest.
const DIG_RUN: Duration = Duration::from_secs(60);

fn qtype(fam: Fam) -> &'static str {
    match fam {
        Fam::V4 => "A",
        Fam::V6 => "AAAA",
    }
}

fn answer(fam: Fam) -> &'static str {
    match fam {
        Fam::V4 => ANSWER4,
        Fam::V6 => ANSWER6,
    }
}

/// Starts dnsmasq as root in the rig's host namespace, listening on
/// `addrs` port 53 (UDP and TCP) only, and returns it once it answers
/// there.
fn start_dnsmasq(rig: &Rig, addrs: &[&str]) -> Child {
    let pid_file = rig.tmp_path("dnsmasq.pid");
    let mut argv: Vec<String> = vec![
        tool("dnsmasq").to_string_lossy().into_owned(),
        "--keep-in-foreground".into(),
        "--conf-file=/dev/null".into(),
        "--no-resolv".into(),
        "--no-hosts".into(),
        "--no-poll".into(),
        "--bind-interfaces".into(),
        "--port=53".into(),
        format!("--address=/passt-rs.test/{ANSWER4}"),
        format!("--address=/passt-rs.test/{ANSWER6}"),
        format!("--pid-file={}", pid_file.display()),
        "--log-queries".into(),
        "--log-facility=-".into(),
    ];
    argv.extend(addrs.iter().map(|a| format!("--listen-address={a}")));
    let mut dnsmasq = rig.spawn_logged(&mut rig.host_cmd(&argv), "dnsmasq");
    for a in addrs {
        let mut last = String::new();
        let ok = wait_until(SHORT, || {
            if let Ok(Some(st)) = dnsmasq.try_wait() {
                panic!("dnsmasq exited: {st:?}\n{}", rig.log("dnsmasq"));
            }
            let out = run_with_timeout(&mut rig.host_cmd(&dig_argv(a, NAME, "A", false)), SHORT);
            last = text(&out);
            String::from_utf8_lossy(&out.stdout).trim() == ANSWER4
        });
        assert!(
            ok,
            "dnsmasq does not answer on {a}\n{last}\n{}",
            rig.log("dnsmasq")
        );
    }
    dnsmasq
}

/// `dig +short` for `name`/`qtype` at `server`, over TCP if `tcp`; bounded
/// (2 s per try, 2 tries).
fn dig_argv(server: &str, name: &str, qtype: &str, tcp: bool) -> Vec<String> {
    let mut argv: Vec<String> = vec![
        tool("dig").to_string_lossy().into_owned(),
        "+short".into(),
        "+time=2".into(),
        "+tries=2".into(),
    ];
    if tcp {
        argv.push("+tcp".into());
    }
    argv.extend([format!("@{server}"), name.into(), qtype.into()]);
    argv
}

/// A shell line running dig like [`dig_argv`], then printing its exit
/// status and a section separator.
fn dig_line(server: &str, qtype: &str, tcp: bool) -> String {
    format!(
        "{}; echo rc=$?; echo {SECTION}; ",
        dig_argv(server, NAME, qtype, tcp).join(" ")
    )
}

/// Runs `script` in a new `pasta --config-net OPTS` started by `who`.
fn in_guest(rig: &Rig, who: As, opts: &[&str], script: &str) -> Output {
    let mut args: Vec<&str> = vec!["--config-net"];
    args.extend(opts);
    args.extend(["--", "sh", "-c", script]);
    rig.run(&mut rig.pasta_cmd(who, &args), DIG_RUN)
}

/// The guest's dig at `server`, over UDP then TCP, got `answer` both times.
fn assert_answers(out: &Output, server: &str, answer: &str, ctx: &str) {
    let secs = sections(&out.stdout);
    for (i, how) in ["UDP", "TCP"].iter().enumerate() {
        let got = secs.get(i).map(String::as_str).unwrap_or("");
        assert_eq!(
            got,
            format!("{answer}\nrc=0"),
            "dig at {server} over {how} in the guest: want the answer {answer} and exit 0\n{ctx}"
        );
    }
}

/// `--dns-forward` for both families to the resolver on the host's
/// loopback (`--dns-host`): the guest's queries to the forward address
/// get answered, over UDP and TCP.
fn dns_forward(who: As, fam: Fam) {
    let rig = Rig::new();
    let mut dnsmasq = start_dnsmasq(&rig, &["127.0.0.1", "::1"]);
    let opts = [
        "--dns-forward",
        FORWARD4,
        "--dns-forward",
        FORWARD6,
        "--dns-host",
        "127.0.0.1",
        "--dns-host",
        "::1",
    ];
    let server = match fam {
        Fam::V4 => FORWARD4,
        Fam::V6 => FORWARD6,
    };
    let script = format!(
        "{}{}",
        dig_line(server, qtype(fam), false),
        dig_line(server, qtype(fam), true)
    );
    let out = in_guest(&rig, who, &opts, &script);
    let ctx = format!("{}\n{}", text(&out), rig.log("dnsmasq"));
    assert_answers(&out, server, answer(fam), &ctx);
    assert_eq!(out.status.code(), Some(0), "{ctx}");
    stop(&mut dnsmasq);
}

/// No DNS option; the host's resolv.conf names loopback resolvers, where
/// dnsmasq listens (127.0.0.53, ::1): the guest's queries to the gateway
/// get answered, over UDP and TCP.
fn loopback_resolver_at_gateway(who: As, fam: Fam) {
    let rig = Rig::new();
    rig.set_resolv_conf(&format!("nameserver {STUB4}\nnameserver ::1\n"));
    let mut dnsmasq = start_dnsmasq(&rig, &[STUB4, "::1"]);
    let gw = fam.gw();
    let script = format!(
        "{}{}",
        dig_line(gw, qtype(fam), false),
        dig_line(gw, qtype(fam), true)
    );
    let out = in_guest(&rig, who, &[], &script);
    let ctx = format!("{}\n{}", text(&out), rig.log("dnsmasq"));
    assert_answers(&out, gw, answer(fam), &ctx);
    assert_eq!(out.status.code(), Some(0), "{ctx}");
    stop(&mut dnsmasq);
}

family_and_caller_tests! {
    dns_forward_reaches_the_host_loopback_resolver_over_udp_and_tcp => dns_forward {
        v4_as_user: (User, V4),
        v6_as_user: (User, V6),
        v4_as_root: (Root, V4),
    };
    dns_loopback_resolver_in_resolv_conf_answers_at_the_gateway_over_udp_and_tcp =>
        loopback_resolver_at_gateway {
        v4_as_user: (User, V4),
        v6_as_user: (User, V6),
        v4_as_root: (Root, V4),
    };
}

/// The host's resolver is 127.0.0.53; pasta (`--dhcp-dns`, no
/// `--config-net`) answers busybox udhcpc in the guest, whose script
/// configures the link and records the nameserver it was given: the
/// gateway address. dig at that address gets the answer.
#[test]
fn dns_loopback_resolver_is_advertised_by_dhcp_as_the_gateway_and_answers_there() {
    let rig = Rig::new();
    rig.set_resolv_conf(&format!("nameserver {STUB4}\n"));
    let mut dnsmasq = start_dnsmasq(&rig, &[STUB4]);
    let dns_file = rig.tmp_path("dhcp.dns");
    let script = rig.tmp_path("udhcpc.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n[ \"$1\" = bound ] || exit 0\n\
             ip addr add \"$ip/$subnet\" dev \"$interface\" || exit 1\n\
             ip route add default via \"$router\" dev \"$interface\" || exit 1\n\
             echo \"$dns\" > '{}'\n",
            dns_file.display()
        ),
    )
    .expect("write the udhcpc script");
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod the script");
    let guest = format!(
        "ip link set {HOST_IF} up && {} udhcpc -i {HOST_IF} -f -q -n -t 5 -T 1 -s {} || exit 3; \
         {}",
        tool("busybox").display(),
        script.display(),
        dig_line("\"$(cat '{DNS}')\"", "A", false).replace("{DNS}", &dns_file.to_string_lossy()),
    );
    let args = ["--dhcp-dns", "--", "sh", "-c", &guest];
    let out = rig.run(&mut rig.pasta_cmd(As::User, &args), DIG_RUN);
    let ctx = format!("{}\n{}", text(&out), rig.log("dnsmasq"));
    let dns = std::fs::read_to_string(&dns_file).unwrap_or_default();
    assert_eq!(
        dns.trim(),
        REMOTE_IP4,
        "the nameserver pasta's DHCP gave the guest (want the gateway)\n{ctx}"
    );
    let secs = sections(&out.stdout);
    assert_eq!(
        secs.first().map(String::as_str),
        Some(format!("{ANSWER4}\nrc=0").as_str()),
        "dig at the nameserver DHCP gave\n{ctx}"
    );
    assert_eq!(out.status.code(), Some(0), "{ctx}");
    stop(&mut dnsmasq);
}

/// Replays a real caller's command line (REFERENCE.md §9) with the host's
/// resolver on 127.0.0.53 and no `--dns-host`: the guest's queries to the
/// caller's `--dns-forward` address `forward` reach that resolver, over UDP
/// and TCP.
fn caller_line_resolves_through_dns_forward(caller: &[&str], forward: &str) {
    let rig = Rig::new();
    rig.set_resolv_conf(&format!("nameserver {STUB4}\n"));
    let mut dnsmasq = start_dnsmasq(&rig, &[STUB4]);
    let script = format!(
        "{}{}",
        dig_line(forward, "A", false),
        dig_line(forward, "A", true)
    );
    let mut args = caller.to_vec();
    args.extend(["--", "sh", "-c", &script]);
    let out = rig.run(&mut rig.pasta_cmd(As::User, &args), DIG_RUN);
    let ctx = format!("{args:?}\n{}\n{}", text(&out), rig.log("dnsmasq"));
    assert_answers(&out, forward, ANSWER4, &ctx);
    assert_eq!(out.status.code(), Some(0), "{ctx}");
    stop(&mut dnsmasq);
}

/// podman's custom-network line (its `--netns PATH` and `--pid FILE` left
/// out: pasta spawns the namespace here).
#[test]
fn dns_podman_command_line_resolves_through_its_dns_forward_address() {
    let podman = [
        "--config-net",
        "--dns-forward",
        "169.254.1.1",
        "-t",
        "none",
        "-u",
        "none",
        "-T",
        "none",
        "-U",
        "none",
        "--no-map-gw",
        "--quiet",
        "--map-guest-addr",
        "169.254.1.2",
    ];
    caller_line_resolves_through_dns_forward(&podman, "169.254.1.1");
}

/// rootlesskit's line (its `PID` left out: pasta spawns the namespace).
#[test]
fn dns_rootlesskit_command_line_resolves_through_its_dns_forward_address() {
    let rootlesskit = [
        "--stderr",
        "--ns-ifname=tap0",
        "--mtu=65520",
        "--config-net",
        "--address=10.0.2.100",
        "--netmask=24",
        "--gateway=10.0.2.2",
        "--dns-forward=10.0.2.3",
        "--no-map-gw",
        "--ipv4-only",
        "--tcp-ports=auto",
        "--udp-ports=auto",
        "--host-lo-to-ns-lo",
    ];
    caller_line_resolves_through_dns_forward(&rootlesskit, "10.0.2.3");
}
