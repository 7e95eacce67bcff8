//! `--version` and `-h/--help` of both binaries, and the mode chosen from
//! argv\[0\] (REFERENCE.md §0, §1.1): callers such as podman read the first
//! line of `--version` (`pasta <version>`), so it keeps upstream's form.

mod common;

use common::*;
use std::path::Path;

/// `BIN ARGS` in an empty network namespace of its own (nothing to reach
/// even if the binary misbehaved).
fn run(bin: &Path, args: &[&str]) -> std::process::Output {
    let dir = TempDir::new();
    let mut argv = vec![bin.to_str().unwrap()];
    argv.extend(args);
    run_with_timeout(&mut isolated_cmd(&dir, &argv), SHORT)
}

/// Checks `--version`: exit 0, first stdout line `<name> <version>`;
/// returns the version.
fn version_of(bin: &Path, name: &str) -> String {
    let out = run(bin, &["--version"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let first = stdout.lines().next().unwrap_or("");
    let mut words = first.split_whitespace();
    assert_eq!(
        words.next(),
        Some(name),
        "first line {first:?}\n{}",
        text(&out)
    );
    let version = words
        .next()
        .unwrap_or_else(|| panic!("no version on {first:?}"));
    assert!(
        words.next().is_none(),
        "first line {first:?} has more than name and version"
    );
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("panicked"),
        "{}",
        text(&out)
    );
    version.to_string()
}

/// Checks `-h` and `--help`: exit 0, usage on stdout naming the program.
fn check_help(bin: &Path, name: &str) {
    for flag in ["-h", "--help"] {
        let out = run(bin, &[flag]);
        assert_eq!(out.status.code(), Some(0), "{name} {flag}\n{}", text(&out));
        let stdout = String::from_utf8_lossy(&out.stdout);
        let usage = stdout.lines().find(|l| l.starts_with("Usage:"));
        let usage =
            usage.unwrap_or_else(|| panic!("{name} {flag}: no Usage: line\n{}", text(&out)));
        assert!(usage.contains(name), "{name} {flag}: usage line {usage:?}");
        assert!(
            stdout.lines().count() > 10,
            "{name} {flag}: help too short\n{stdout}"
        );
        assert!(
            !String::from_utf8_lossy(&out.stderr).contains("panicked"),
            "{}",
            text(&out)
        );
    }
}

#[test]
fn pasta_version_first_line_is_name_and_version() {
    version_of(&pasta_bin(), "pasta");
}

#[test]
fn passt_version_first_line_is_name_and_version() {
    version_of(&passt_bin(), "passt");
}

#[test]
fn both_binaries_report_the_same_version() {
    assert_eq!(
        version_of(&pasta_bin(), "pasta"),
        version_of(&passt_bin(), "passt")
    );
}

#[test]
fn pasta_help_prints_usage_on_stdout() {
    check_help(&pasta_bin(), "pasta");
    // pasta's usage mentions its namespace forms.
    let out = run(&pasta_bin(), &["--help"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("--netns"), "{stdout}");
    assert!(stdout.contains("--config-net"), "{stdout}");
}

#[test]
fn passt_help_prints_usage_on_stdout() {
    check_help(&passt_bin(), "passt");
    let out = run(&passt_bin(), &["--help"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("--socket"), "{stdout}");
}

#[test]
fn argv0_selects_the_mode() {
    let dir = TempDir::new();
    let link = |name: &str, target: &Path| {
        let p = dir.path().join(name);
        std::os::unix::fs::symlink(target, &p).expect("symlink");
        p
    };
    // A link named like the other program switches the mode.
    let as_pasta = link("pasta", &passt_bin());
    let as_passt = link("passt", &pasta_bin());
    // Upstream matches on "contains", so suffixed names work too.
    let as_pasta_avx2 = link("pasta.avx2", &passt_bin());
    assert_eq!(
        version_of(&as_pasta, "pasta"),
        version_of(&pasta_bin(), "pasta")
    );
    version_of(&as_passt, "passt");
    version_of(&as_pasta_avx2, "pasta");
    check_help(&as_pasta, "pasta");
    check_help(&as_passt, "passt");
    // The mode's options follow the name: --config-net is pasta-only.
    let out = run_with_timeout(
        &mut isolated_cmd(
            &dir,
            &[
                as_passt.to_str().unwrap(),
                "-f",
                "-s",
                "x.sock",
                "--config-net",
            ],
        ),
        SHORT,
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("pasta mode only"),
        "{}",
        text(&out)
    );
}
