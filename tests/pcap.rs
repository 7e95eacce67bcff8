//! `-p/--pcap FILE` writes the tap-side frames as a pcap file that tcpdump
//! reads (REFERENCE.md §1.1: pcap 2.4, Ethernet, snaplen 65535, µs).

mod common;

use common::*;

/// Checks the pcap global header and returns the number of records.
fn pcap_records(data: &[u8]) -> usize {
    assert!(
        data.len() >= 24,
        "pcap file shorter than its header ({} bytes)",
        data.len()
    );
    let u32_at = |o: usize| u32::from_le_bytes(data[o..o + 4].try_into().unwrap());
    assert_eq!(
        u32_at(0),
        0xa1b2_c3d4,
        "not a little-endian microsecond pcap file"
    );
    assert_eq!(u16::from_le_bytes([data[4], data[5]]), 2, "major version");
    assert_eq!(u16::from_le_bytes([data[6], data[7]]), 4, "minor version");
    assert_eq!(u32_at(16), 65535, "snaplen");
    assert_eq!(u32_at(20), 1, "link type (Ethernet)");
    let (mut off, mut n) = (24, 0);
    while off + 16 <= data.len() {
        let incl = u32_at(off + 8) as usize;
        let orig = u32_at(off + 12) as usize;
        assert!(
            incl <= orig && incl <= 65535,
            "record {n}: incl {incl} orig {orig}"
        );
        assert!(off + 16 + incl <= data.len(), "record {n} truncated");
        off += 16 + incl;
        n += 1;
    }
    assert_eq!(off, data.len(), "trailing bytes after {n} records");
    n
}

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
    let n = pcap_records(&data);
    assert!(n >= 1, "no frame captured\n{}", text(&out));
    let dump = run_with_timeout(
        std::process::Command::new(tool("tcpdump"))
            .args(["-nn", "-r"])
            .arg(&file),
        SHORT,
    );
    assert!(
        dump.status.success(),
        "tcpdump cannot read the capture\n{}",
        text(&dump)
    );
    let lines = String::from_utf8_lossy(&dump.stdout).lines().count();
    assert_eq!(
        lines,
        n,
        "tcpdump shows {lines} packets, the file holds {n}\n{}",
        text(&dump)
    );
    // The guest's ARP request for the gateway, or its echo request to it.
    let shown = String::from_utf8_lossy(&dump.stdout);
    assert!(
        shown.contains(REMOTE_IP4),
        "no frame to or about {REMOTE_IP4}:\n{shown}"
    );
}

#[test]
fn pcap_file_is_readable_by_tcpdump_as_user() {
    capture(As::User);
}

#[test]
fn pcap_file_is_readable_by_tcpdump_as_root() {
    capture(As::Root);
}
