//! `--seccomp action=kill|log|none`: vtpm serves under a syscall filter
//! (the default, as swtpm's, is kill) and a syscall outside its allow-list
//! ends it with SIGSYS.
//!
//! A forbidden syscall cannot be provoked through vtpm's own interfaces (it
//! has no path that starts a program), so the test that shows the kill uses
//! a hook compiled only with the `seccomp-test-hook` feature
//! (`cargo test --features seccomp-test-hook --test seccomp`, which
//! scripts/test.sh runs): when the file named by
//! VTPM_TEST_SECCOMP_TRIGGER appears, a serving vtpm calls execve.

#[macro_use]
mod common;

use std::os::unix::process::ExitStatusExt;
use std::process::Command;
use std::time::Duration;

use common::{free_port_pair, listening, socket_args, tpm2_ok, vtpm_bin, wait_until, Guard, Vtpm};

/// The `Seccomp:` line of /proc/PID/status (2: a filter is installed).
fn seccomp_mode(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Seccomp:").map(|v| v.trim().to_string()))
        .unwrap_or_default()
}

fn ioctl(port: u16, args: &[&str]) -> String {
    let out = Command::new("swtpm_ioctl")
        .args(["--tcp", &format!("127.0.0.1:{port}")])
        .args(args)
        .output()
        .expect("run swtpm_ioctl");
    assert!(
        out.status.success(),
        "swtpm_ioctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn have_swtpm_ioctl() -> bool {
    Command::new("swtpm_ioctl").arg("--help").output().is_ok()
}

#[test]
fn tools_nv_state_blobs_and_shutdown_work_under_action_kill() {
    need_tools!();
    if !have_swtpm_ioctl() {
        eprintln!("swtpm_ioctl not installed: skipped (scripts/test.sh installs swtpm-tools)");
        return;
    }
    let mut v = Vtpm::start_socket_with(&[
        "--flags",
        "not-need-init,startup-clear",
        "--seccomp",
        "action=kill",
    ]);
    // Wait for the filter: it is installed just after the ports listen.
    assert!(
        wait_until(Duration::from_secs(10), || seccomp_mode(v.guard.pid())
            == "2"),
        "no seccomp filter on vtpm: {}",
        v.guard.stderr()
    );
    let t = v.tcti();
    let prim = v.tmp.path().join("prim.ctx");
    let prim = prim.to_str().unwrap();
    tpm2_ok("tpm2_createprimary", &["-C", "o", "-c", prim], &t);
    tpm2_ok(
        "tpm2_evictcontrol",
        &["-C", "o", "-c", prim, "0x81000001"],
        &t,
    );
    tpm2_ok(
        "tpm2_nvdefine",
        &[
            "0x1500016",
            "-C",
            "o",
            "-s",
            "8",
            "-a",
            "ownerread|ownerwrite",
        ],
        &t,
    );
    let data = v.tmp.path().join("data");
    std::fs::write(&data, b"seccomp!").unwrap();
    tpm2_ok(
        "tpm2_nvwrite",
        &["0x1500016", "-C", "o", "-i", data.to_str().unwrap()],
        &t,
    );
    tpm2_ok(
        "tpm2_pcrextend",
        &["16:sha256=2222222222222222222222222222222222222222222222222222222222222222"],
        &t,
    );
    let pcr = tpm2_ok("tpm2_pcrread", &["sha256:16"], &t);
    tpm2_ok("tpm2_getrandom", &["32"], &t);
    // State blobs out and back in over the control channel (as a migration
    // does), then power on: the TPM goes on where it was.
    let blobs = tempfile::tempdir().unwrap();
    for kind in ["permanent", "volatile"] {
        let f = blobs.path().join(kind);
        ioctl(v.ctrl_port, &["--save", kind, f.to_str().unwrap()]);
    }
    ioctl(v.ctrl_port, &["--stop"]);
    for kind in ["permanent", "volatile"] {
        let f = blobs.path().join(kind);
        ioctl(v.ctrl_port, &["--load", kind, f.to_str().unwrap()]);
    }
    ioctl(v.ctrl_port, &["-i"]);
    assert_eq!(pcr, tpm2_ok("tpm2_pcrread", &["sha256:16"], &t));
    let read = tpm2_ok("tpm2_nvread", &["0x1500016", "-C", "o", "-s", "8"], &t);
    assert_eq!(read, "seccomp!");
    assert_eq!(seccomp_mode(v.guard.pid()), "2");
    // A clean exit under the filter: TPM2_Shutdown, the image synced, status 0.
    let status = v.guard.terminate().expect("exits on SIGTERM");
    assert_eq!(status.code(), Some(0), "{}", v.guard.stderr());
    // What was written is on disk: a new instance on the same state sees it.
    v.restart_socket(&["--flags", "not-need-init,startup-clear"]);
    let t = v.tcti();
    assert_eq!(
        tpm2_ok("tpm2_nvread", &["0x1500016", "-C", "o", "-s", "8"], &t),
        "seccomp!"
    );
    assert!(tpm2_ok("tpm2_getcap", &["handles-persistent"], &t).contains("0x81000001"));
}

#[test]
fn action_none_installs_no_filter() {
    let v = Vtpm::start_socket_with(&["--flags", "not-need-init", "--seccomp", "action=none"]);
    // The ports listen before the filter would be installed: give it time.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(seccomp_mode(v.guard.pid()), "0");
}

#[test]
fn a_bad_action_is_refused() {
    let out = common::vtpm_output(&["socket", "--seccomp", "action=trap"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--seccomp") && err.contains("action=trap"),
        "{err}"
    );
}

#[test]
fn a_forbidden_syscall_ends_vtpm_under_action_kill() {
    if !cfg!(feature = "seccomp-test-hook") {
        eprintln!(
            "skipped: needs the test hook (cargo test --features seccomp-test-hook --test seccomp; scripts/test.sh runs it)"
        );
        return;
    }
    need_tools!();
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    std::fs::create_dir(&state).unwrap();
    let trigger = tmp.path().join("trigger");
    let port = free_port_pair();
    let mut g = Guard::spawn(
        vtpm_bin(),
        &socket_args(&state, port, &["--flags", "not-need-init,startup-clear"]),
        tmp.path().join("stderr"),
        &[("VTPM_TEST_SECCOMP_TRIGGER", trigger.to_str().unwrap())],
    );
    assert!(
        wait_until(Duration::from_secs(20), || listening(port)
            && seccomp_mode(g.pid()) == "2"),
        "{}",
        g.stderr()
    );
    // Serving normally under the (default) filter.
    let t = format!("swtpm:host=127.0.0.1,port={port}");
    tpm2_ok("tpm2_getrandom", &["8"], &t);
    std::fs::write(&trigger, b"").unwrap();
    let status = g.wait_timeout(Duration::from_secs(20)).expect("vtpm ended");
    assert_eq!(
        status.signal(),
        Some(libc_sigsys()),
        "killed by SIGSYS, not {status:?}: {}",
        std::fs::read_to_string(tmp.path().join("stderr")).unwrap_or_default()
    );
}

#[test]
fn action_log_lets_the_forbidden_syscall_through() {
    if !cfg!(feature = "seccomp-test-hook") {
        eprintln!(
            "skipped: needs the test hook (cargo test --features seccomp-test-hook --test seccomp; scripts/test.sh runs it)"
        );
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    std::fs::create_dir(&state).unwrap();
    let trigger = tmp.path().join("trigger");
    let port = free_port_pair();
    let mut g = Guard::spawn(
        vtpm_bin(),
        &socket_args(
            &state,
            port,
            &["--flags", "not-need-init", "--seccomp", "action=log"],
        ),
        tmp.path().join("stderr"),
        &[("VTPM_TEST_SECCOMP_TRIGGER", trigger.to_str().unwrap())],
    );
    assert!(
        wait_until(Duration::from_secs(20), || listening(port)
            && seccomp_mode(g.pid()) == "2"),
        "{}",
        g.stderr()
    );
    std::fs::write(&trigger, b"").unwrap();
    // The execve goes through (the kernel only logs it): the process becomes
    // /bin/true and exits 0.
    let status = g.wait_timeout(Duration::from_secs(20)).expect("ended");
    assert_eq!(status.code(), Some(0), "{status:?}");
}

fn libc_sigsys() -> i32 {
    nix::sys::signal::Signal::SIGSYS as i32
}
