//! `-p/--pcap FILE` writes the tap-side frames as a pcap file that tcpdump
//! reads (REFERENCE.md §1.1: pcap 2.4, Ethernet, snaplen 65535, µs).

mod common;

use common::*;

fn capture(who: As) {
    let rig = Rig::new();
    let file = rig.tmp_path("capture.pcap");
    let ping = ping_argv().join(" ");
    let script = format!("{ping} -c1 -W1 {REMOTE_IP4} || true");
    let args = [
        "--config-net",
        "-p",
        file.to_str().unwrap(),
        "--",
        "sh",
        "-c",
        &script,
    ];
    let out = rig.run(&mut rig.pasta_cmd(who, &args), SHORT);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let data = std::fs::read(&file).unwrap_or_else(|e| panic!("no pcap file: {e}\n{}", text(&out)));
    let n = pcap_frames(&data).len();
    assert!(n >= 1, "no frame captured\n{}", text(&out));
    let shown = tcpdump_read(&file);
    assert_eq!(
        shown.len(),
        n,
        "tcpdump shows {} packets, the file holds {n}\n{}",
        shown.len(),
        shown.join("\n")
    );
    // The guest's ARP request for the gateway, or its echo request to it.
    assert!(
        shown.iter().any(|l| l.contains(REMOTE_IP4)),
        "no frame to or about {REMOTE_IP4}:\n{}",
        shown.join("\n")
    );
}

root_and_user_tests! {
    pcap_file_is_readable_by_tcpdump => capture;
}
