//! The guest configures itself from what passt-rs answers on the link
//! (REFERENCE.md §2.3): real DHCP, NDP and DHCPv6 clients in pasta's
//! namespace, without `--config-net`, so the clients do the configuring;
//! and ping through ping sockets with `--config-net`.
//!
//! Client scripts write what they learned to files in the rig's temp dir;
//! nothing may touch the machine's own /etc (the clients get private lease
//! files and scripts).

mod common;

use common::*;

/// Runs `script` in pasta's namespace (as `who`) with `opts`; returns the
/// output, asserting success.
fn in_guest(rig: &Rig, who: As, opts: &[&str], script: &str) -> std::process::Output {
    let mut args: Vec<&str> = opts.to_vec();
    args.extend(["--", "sh", "-c", script]);
    let out = rig.run(
        &mut rig.pasta_cmd(who, &args),
        std::time::Duration::from_secs(60),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    out
}

/// Lines `key=value` of a file the client script wrote.
fn values(path: &std::path::Path) -> std::collections::HashMap<String, String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| {
            (
                k.trim().to_string(),
                v.trim().trim_matches('\'').to_string(),
            )
        })
        .collect()
}

/// Shell steps: bring the guest link up and wait (bounded) until its IPv6
/// link-local address has finished duplicate address detection, so that
/// NDP and DHCPv6 clients can send.
fn link_up_and_ready() -> String {
    format!(
        "ip link set {HOST_IF} up && for i in $(seq 100); do \
         ip -6 addr show dev {HOST_IF} scope link | grep -q inet6 && \
         ! ip -6 addr show dev {HOST_IF} scope link | grep -q tentative && break; sleep 0.1; done"
    )
}

fn write_script(rig: &Rig, name: &str, body: &str) -> String {
    let path = rig.tmp_path(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    path.to_str().unwrap().to_string()
}

fn udhcpc_learns_the_host_configuration(who: As) {
    let rig = Rig::new();
    let out = rig.tmp_path("udhcpc.env");
    let script = write_script(
        &rig,
        "udhcpc.sh",
        &format!(
            "[ \"$1\" = bound ] || exit 0\nfor v in ip subnet router mtu dns search domain; do eval echo $v=\\$$v; done > {}",
            out.display()
        ),
    );
    let busybox = tool("busybox");
    in_guest(
        &rig,
        who,
        &["--dhcp-dns", "--dhcp-search"],
        &format!(
            "ip link set {HOST_IF} up && {} udhcpc -i {HOST_IF} -f -q -n -t 5 -T 1 -O mtu -O search -s {script}",
            busybox.display()
        ),
    );
    let v = values(&out);
    assert_eq!(v.get("ip").map(String::as_str), Some(HOST_IP4), "{v:?}");
    assert_eq!(
        v.get("subnet").map(String::as_str),
        Some("255.255.255.0"),
        "{v:?}"
    );
    assert_eq!(
        v.get("router").map(String::as_str),
        Some(REMOTE_IP4),
        "{v:?}"
    );
    assert_eq!(v.get("mtu").map(String::as_str), Some("65520"), "{v:?}");
    assert_eq!(v.get("dns").map(String::as_str), Some(NAMESERVER), "{v:?}");
    assert_eq!(
        v.get("search").map(String::as_str),
        Some(SEARCH_DOMAIN),
        "{v:?}"
    );
}

#[test]
fn udhcpc_learns_address_mask_router_mtu_dns_and_search_as_user() {
    udhcpc_learns_the_host_configuration(As::User);
}

#[test]
fn udhcpc_learns_address_mask_router_mtu_dns_and_search_as_root() {
    udhcpc_learns_the_host_configuration(As::Root);
}

/// dhclient with a private lease file and a script that only records
/// what it was given (the real dhclient-script would edit /etc).
fn dhclient(
    rig: &Rig,
    family: &str,
    extra_opts: &[&str],
) -> std::collections::HashMap<String, String> {
    let out = rig.tmp_path(&format!("dhclient{family}.env"));
    let script = write_script(
        rig,
        &format!("dhclient{family}.sh"),
        &format!(
            "case \"$reason\" in BOUND|BOUND6|REBOOT) env | grep '^new_' > {} ;; esac; exit 0",
            out.display()
        ),
    );
    let lease = rig.tmp_path(&format!("dhclient{family}.lease"));
    let pid = rig.tmp_path(&format!("dhclient{family}.pid"));
    let mut opts = vec!["--dhcp-dns", "--dhcp-search"];
    opts.extend_from_slice(extra_opts);
    let dhclient = tool("dhclient");
    in_guest(
        rig,
        As::Root,
        &opts,
        &format!(
            "{} && {} {family} -1 -v -lf {} -pf {} -sf {script} {HOST_IF}",
            link_up_and_ready(),
            dhclient.display(),
            lease.display(),
            pid.display()
        ),
    );
    values(&out)
}

#[test]
fn dhclient_4_learns_address_mask_router_mtu_dns_and_search() {
    let rig = Rig::new();
    let v = dhclient(&rig, "-4", &[]);
    assert_eq!(
        v.get("new_ip_address").map(String::as_str),
        Some(HOST_IP4),
        "{v:?}"
    );
    assert_eq!(
        v.get("new_subnet_mask").map(String::as_str),
        Some("255.255.255.0"),
        "{v:?}"
    );
    assert_eq!(
        v.get("new_routers").map(String::as_str),
        Some(REMOTE_IP4),
        "{v:?}"
    );
    assert_eq!(
        v.get("new_interface_mtu").map(String::as_str),
        Some("65520"),
        "{v:?}"
    );
    assert_eq!(
        v.get("new_domain_name_servers").map(String::as_str),
        Some(NAMESERVER),
        "{v:?}"
    );
}

#[test]
fn dhclient_6_leases_the_host_ipv6_address() {
    let rig = Rig::new();
    let v = dhclient(&rig, "-6", &[]);
    assert_eq!(
        v.get("new_ip6_address").map(String::as_str),
        Some(HOST_IP6),
        "{v:?}"
    );
}

#[test]
fn rdisc6_shows_the_prefix_and_mtu_and_slaac_forms_an_address() {
    let rig = Rig::new();
    let rdisc6 = tool("rdisc6");
    let out = in_guest(
        &rig,
        As::User,
        &[],
        &format!(
            "{} && {} -1 -w 2000 {HOST_IF} && \
             for i in $(seq 50); do ip -6 addr show dev {HOST_IF} scope global | grep -q 2001:db8:1: && break; sleep 0.1; done; \
             echo SLAAC; ip -6 addr show dev {HOST_IF} scope global; ip -6 route show default",
            link_up_and_ready(),
            rdisc6.display()
        ),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("2001:db8:1::/64"),
        "no prefix in the RA:\n{}",
        text(&out)
    );
    assert!(
        stdout.contains("65520"),
        "no MTU in the RA:\n{}",
        text(&out)
    );
    let (_, after) = stdout.split_once("SLAAC").unwrap();
    assert!(
        after.contains("inet6 2001:db8:1:"),
        "no SLAAC address:\n{}",
        text(&out)
    );
    assert!(
        after.contains("default via fe80::"),
        "no default route from the RA:\n{}",
        text(&out)
    );
}

fn ping_everywhere(who: As) {
    let rig = Rig::new();
    let ping = ping_argv().join(" ");
    let targets = [REMOTE_IP4, FAR_IP4, REMOTE_IP6, FAR_IP6];
    let script = targets
        .iter()
        .map(|t| format!("{ping} -c1 -W2 {t}"))
        .collect::<Vec<_>>()
        .join(" && ");
    in_guest(&rig, who, &["--config-net"], &script);
}

#[test]
fn ping_reaches_remote_far_and_gateway_as_user() {
    ping_everywhere(As::User);
}

#[test]
fn ping_reaches_remote_far_and_gateway_as_root() {
    ping_everywhere(As::Root);
}

/// `--map-host-loopback` and `--map-guest-addr` re-point addresses in the
/// guest's subnet: the first at the host's loopback, the second at the
/// host's own address (which the guest shares). Echo to both is answered
/// from the address pinged; with the option given, the gateway is no longer
/// mapped, and is reached on the remote side for real.
#[test]
fn ping_reaches_the_host_through_map_host_loopback_and_map_guest_addr() {
    let rig = Rig::new();
    let ping = ping_argv().join(" ");
    let script = format!(
        "{ping} -c1 -W2 192.0.2.88 && {ping} -c1 -W2 192.0.2.77 && {ping} -c1 -W2 {REMOTE_IP4}"
    );
    let opts = [
        "--config-net",
        "--map-host-loopback",
        "192.0.2.88",
        "--map-guest-addr",
        "192.0.2.77",
    ];
    let out = in_guest(&rig, As::User, &opts, &script);
    let stdout = String::from_utf8_lossy(&out.stdout);
    for addr in ["192.0.2.88", "192.0.2.77", REMOTE_IP4] {
        assert!(
            stdout.contains(&format!("bytes from {addr}")),
            "{}",
            text(&out)
        );
    }
}
