//! `--chroot DIR` (as swtpm): vtpm changes its root directory to DIR at
//! start, so `--tpmstate` and `--pid` name paths inside DIR, a relative one
//! relative to DIR's root (`dir=/` is DIR itself); `--log` is opened
//! before, outside. Needs root.

#[macro_use]
mod common;

use std::time::Duration;

use common::{free_port_pair, listening, tpm2_ok, vtpm_bin, wait_until, Guard};

#[test]
fn chroot_keeps_state_and_pid_file_inside_the_new_root() {
    need_tools!();
    if !nix::unistd::getuid().is_root() {
        eprintln!("not root: --chroot cannot be tested (changing the root directory needs root)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let log = tmp.path().join("vtpm.log");
    let port = free_port_pair();
    let args: Vec<String> = [
        "socket",
        "--tpm2",
        "--chroot",
        root.to_str().unwrap(),
        "--tpmstate",
        // Relative: DIR/tpm.
        "dir=tpm",
        "--pid",
        "file=/vtpm.pid",
        "--log",
        &format!("file={},level=2", log.display()),
        "--server",
        &format!("type=tcp,port={port}"),
        "--ctrl",
        &format!("type=tcp,port={}", port + 1),
        "--flags",
        "not-need-init,startup-clear",
        // Looked up before the chroot, which has no /etc/passwd.
        "--runas",
        "nobody",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut g = Guard::spawn(vtpm_bin(), &args, tmp.path().join("stderr"), &[]);
    assert!(
        wait_until(Duration::from_secs(20), || listening(port)
            && root.join("vtpm.pid").exists()),
        "{}",
        g.stderr()
    );
    let pid = g.pid();
    assert_eq!(
        std::fs::read_link(format!("/proc/{pid}/root")).unwrap(),
        root,
        "vtpm's root directory"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("vtpm.pid"))
            .unwrap()
            .trim(),
        pid.to_string()
    );
    assert!(root.join("tpm/vtpm-nvram.img").is_file());
    assert!(root.join("tpm/.lock").is_file());
    let t = format!("swtpm:host=127.0.0.1,port={port}");
    tpm2_ok("tpm2_nvdefine", &["0x1500040", "-C", "o", "-s", "8"], &t);
    assert!(tpm2_ok("tpm2_nvreadpublic", &[], &t).contains("0x1500040"));
    assert_eq!(
        g.terminate().and_then(|s| s.code()),
        Some(0),
        "{}",
        g.stderr()
    );
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("root directory is now"), "{logged}");
}

#[test]
fn a_missing_chroot_directory_is_refused() {
    let out = common::vtpm_output(&["socket", "--chroot", "/nonexistent/vtpm-root"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--chroot") && err.contains("not a directory"),
        "{err}"
    );
}
