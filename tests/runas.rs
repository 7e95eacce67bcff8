//! `--runas UID[:GID]` for pasta started by root (REFERENCE.md §1.1): pasta
//! gives up root for that identity before it sets up its namespaces, so the
//! command still sees its caller (now that user) mapped to root inside,
//! while the pasta process itself runs as the user.

mod common;

use common::*;

const RUNAS: &str = "65534:65534";

#[test]
fn runas_started_as_root_maps_the_caller_to_root_inside() {
    let rig = Rig::new();
    let args = ["--runas", RUNAS, "--config-net", "--", "id", "-u"];
    let out = rig.run(&mut rig.pasta_cmd(As::Root, &args), SHORT);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "0",
        "{}",
        text(&out)
    );
}

/// The ids of a `Uid:`/`Gid:` line of `/proc/PID/status` (real, effective,
/// saved, file system).
fn status_ids(pid: u32, key: &str) -> Vec<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .map(|ids| {
            ids.split_whitespace()
                .filter_map(|i| i.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn runas_started_as_root_runs_pasta_itself_as_that_user() {
    let rig = Rig::new();
    let args = ["--runas", RUNAS, "--config-net", "--", "sleep", "30"];
    let mut pasta = rig.spawn_logged(&mut rig.pasta_cmd(As::Root, &args), "pasta");
    let sleep = wait_descendant(&rig, pasta.id(), "sleep", "pasta");
    let (uids, gids) = (
        status_ids(pasta.id(), "Uid:"),
        status_ids(pasta.id(), "Gid:"),
    );
    assert_eq!(uids, [USER_UID; 4], "pasta's uids\n{}", rig.log("pasta"));
    assert_eq!(gids, [USER_GID; 4], "pasta's gids\n{}", rig.log("pasta"));
    signal(sleep as i32, libc::SIGKILL);
    wait_exit(
        &rig,
        &mut pasta,
        SHORT,
        "pasta",
        "after its command was killed",
    );
}
