//! `--runas USER` (as swtpm): once the sockets are bound and the state is
//! open, vtpm runs as that user and its group, with no supplementary groups,
//! and goes on serving and storing; an unknown user is refused at start.

#[macro_use]
mod common;

use common::{tpm2_ok, try_start_on, vtpm_bin, Vtpm};

/// The Uid: and Gid: lines of /proc/PID/status (real, effective, saved, fs).
fn ids(pid: u32) -> (String, String, String) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = |k: &str| {
        status
            .lines()
            .find(|l| l.starts_with(k))
            .unwrap_or_default()
            .split_whitespace()
            .skip(1)
            .collect::<Vec<_>>()
            .join(" ")
    };
    (line("Uid:"), line("Gid:"), line("Groups:"))
}

#[test]
fn runas_nobody_serves_and_stores_without_root() {
    need_tools!();
    if !nix::unistd::getuid().is_root() {
        eprintln!("not root: --runas cannot be tested (it needs root to switch)");
        return;
    }
    let v = Vtpm::start_socket_with(&[
        "--flags",
        "not-need-init,startup-clear",
        "--runas",
        "nobody",
    ]);
    // The ports listen just before the switch: wait for it.
    common::wait_until(std::time::Duration::from_secs(10), || {
        ids(v.guard.pid()).0.starts_with("65534")
    });
    let (uid, gid, groups) = ids(v.guard.pid());
    println!("Uid: {uid}; Gid: {gid}; Groups: {groups}");
    assert_eq!(uid, "65534 65534 65534 65534");
    assert_eq!(gid, "65534 65534 65534 65534");
    assert_eq!(groups, "");
    // Still serving, and still writing its (already open) image.
    tpm2_ok("tpm2_getrandom", &["8"], &v.tcti());
    tpm2_ok(
        "tpm2_nvdefine",
        &["0x1500020", "-C", "o", "-s", "8"],
        &v.tcti(),
    );
    let listed = tpm2_ok("tpm2_nvreadpublic", &[], &v.tcti());
    assert!(listed.contains("0x1500020"), "{listed}");
}

#[test]
fn an_unknown_runas_user_is_refused() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path().join("state");
    std::fs::create_dir(&dir).unwrap();
    let err = try_start_on(
        vtpm_bin(),
        &format!("dir={}", dir.display()),
        &["--runas", "no-such-user-here"],
        scratch.path(),
    )
    .err()
    .expect("refused");
    assert!(err.contains("--runas no-such-user-here"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}
