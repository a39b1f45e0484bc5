//! The `vtpm` command line against the real binary: informational options,
//! one-line errors that never panic, swtpm options accepted, the state lock,
//! signals, daemon mode, pid and log files.

mod common;

use std::os::unix::ffi::OsStrExt;
use std::process::Command;
use std::time::Duration;

use common::*;

/// stderr of a failed run: exactly one line `vtpm: ...`, and no panic.
fn assert_one_line_error(args: &[&str]) -> String {
    let out = vtpm_output(args);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{args:?}: status {:?}, stderr {err}",
        out.status
    );
    assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
    assert!(err.starts_with("vtpm: "), "{args:?}: {err}");
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "{args:?}: not one line: {err}"
    );
    err
}

#[test]
fn version_prints_and_exits_0() {
    for args in [
        &["--version"][..],
        &["socket", "--version"],
        &["mssim", "--version"],
    ] {
        let out = vtpm_output(args);
        assert!(out.status.success(), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stdout).starts_with("vtpm "),
            "{args:?}"
        );
    }
}

#[test]
fn help_describes_modes_and_options() {
    let out = vtpm_output(&["--help"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("vtpm socket") && text.contains("vtpm mssim"),
        "{text}"
    );
    for args in [
        &["socket", "--help"][..],
        &["socket", "-h"],
        &["mssim", "--help"],
    ] {
        let out = vtpm_output(args);
        assert!(out.status.success(), "{args:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("--tpmstate") && text.contains("--flags"),
            "{args:?}: {text}"
        );
    }
}

#[test]
fn no_mode_prints_usage_and_fails() {
    let out = vtpm_output(&[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Usage:"));
}

#[test]
fn print_capabilities_is_swtpm_json() {
    for args in [
        &["--print-capabilities"][..],
        &["socket", "--print-capabilities"],
        &["socket", "--tpm2", "--print-capabilities"],
    ] {
        let out = vtpm_output(args);
        assert!(out.status.success(), "{args:?}");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
        assert_eq!(v["type"], "swtpm");
        let features = v["features"].as_array().expect("features");
        assert!(features.iter().any(|f| f == "tpm-2.0"));
        assert!(!features.iter().any(|f| f == "tpm-1.2"));
        assert!(v["version"].is_string());
    }
}

#[test]
fn malformed_options_fail_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let state = format!("dir={}", dir.path().join("s").display());
    let cases: &[&[&str]] = &[
        &["bogus-mode"],
        &["--bogus"],
        &["socket", "--bogus"],
        &["socket", "--tpmstate"],
        &["socket", "--tpmstate", "foo=bar"],
        &["socket", "--tpmstate", "dir=/x,backend-uri=file:///y"],
        &["socket", "--tpmstate", "backend-uri=http://x"],
        &["socket", "--tpmstate", "dir=/x,mode=644"],
        &["socket", "--tpmstate", "dir=/x,sync=maybe"],
        &["socket", "--server", "type=udp,port=1"],
        &["socket", "--server", "type=tcp,port=99999"],
        &["socket", "--server", "type=tcp,port=-1"],
        &["socket", "--server", "type=tcp,port=1,path=/x"],
        &["socket", "--server", "type=unixio"],
        &["socket", "--server", "type=tcp,port=1,bindaddr=not-an-ip"],
        &["socket", "--server", "type=tcp,port=1,disconnect=yes"],
        &["socket", "--ctrl", "path=/x"],
        &["socket", "--ctrl", "type=unixio,path=/x,port=3"],
        &["socket", "--ctrl", "type=tcp"],
        &["socket", "--flags", "startup-clear,startup-state"],
        &["socket", "--flags", "fly"],
        &["socket", "--locality", "reject-locality-5"],
        &["socket", "--log", "level=high"],
        &["socket", "--log", "file=/x,fd=3"],
        &["socket", "--pid", "path=/x"],
        &["socket", "--key", "file=/x,format=base64"],
        &["socket", "--key", "file=/x,pwdfile=/y"],
        &["socket", "--key", "pwdfile=/x,format=hex"],
        &["socket", "--migration-key", "file=/x,mode=rot13"],
        &["socket", "--seccomp", "action=maybe"],
        &["socket", "--port", "http"],
        &["socket", "--port", "1", "--server", "type=tcp,port=2"],
        &[
            "socket",
            "--server",
            "type=tcp,fd=7",
            "--ctrl",
            "type=unixio,clientfd=7",
        ],
        &["socket", "--vtpm-proxy"],
        &["chardev", "--vtpm-proxy", "--fd", "5"],
        &["cuse", "-n", "vtpm0"],
        &["mssim", "--port", "0"],
        &["mssim", "--bindaddr", "localhost:9"],
        &[
            "socket",
            "--tpmstate",
            &state,
            "--server",
            "type=tcp,fd=9999,",
            "--flags",
            "not-need-init",
        ],
        &["socket", "--tpmstate", &state, "--pid", "fd=1"],
    ];
    for args in cases {
        assert_one_line_error(args);
    }
    // The message names the option at fault.
    assert!(assert_one_line_error(&["socket", "--server", "type=udp"]).contains("--server"));
    assert!(assert_one_line_error(&["socket", "--ctrl", "type=tcp,port=1,foo=2"]).contains("foo"));
}

#[test]
fn non_utf8_argument_is_an_error_not_a_panic() {
    let out = Command::new(vtpm_bin())
        .arg("socket")
        .arg(std::ffi::OsStr::from_bytes(b"--tpmstate=dir=/\xff"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
}

#[test]
fn bad_key_file_is_reported_before_serving() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key");
    std::fs::write(&key, "0x1234").unwrap();
    let err = assert_one_line_error(&[
        "socket",
        "--tpmstate",
        &format!("dir={}", dir.path().join("s").display()),
        "--server",
        &format!("type=tcp,port={}", free_port()),
        "--flags",
        "not-need-init",
        "--key",
        &format!("file={}", key.display()),
    ]);
    assert!(err.contains("--key"), "{err}");
}

#[test]
fn print_states_of_an_empty_state_lists_nothing_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("s");
    let out = vtpm_output(&[
        "socket",
        "--tpm2",
        "--print-states",
        "--tpmstate",
        &format!("dir={}", state.display()),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["type"], "swtpm");
    assert_eq!(v["states"].as_array().map(Vec::len), Some(0));
    assert!(!state.exists());
}

#[test]
fn locked_state_is_refused_naming_the_lock_file() {
    let dir = tempfile::tempdir().unwrap();
    let lock_path = dir.path().join(".lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .unwrap();
    lock.try_lock().unwrap();
    let err = assert_one_line_error(&[
        "socket",
        "--tpmstate",
        &format!("dir={}", dir.path().display()),
        "--server",
        &format!("type=tcp,port={}", free_port()),
        "--flags",
        "not-need-init",
    ]);
    assert!(
        err.contains("in use") && err.contains(&lock_path.display().to_string()),
        "{err}"
    );
}

#[test]
fn second_instance_on_the_same_state_is_refused() {
    let first = Vtpm::start_socket();
    let state = format!("dir={}", first.dir().display());
    let err = assert_one_line_error(&[
        "socket",
        "--tpm2",
        "--tpmstate",
        &state,
        "--server",
        &format!("type=tcp,port={}", free_port()),
        "--flags",
        "not-need-init",
    ]);
    assert!(err.contains("in use by another vtpm"), "{err}");
    assert!(
        err.contains(".lock") && err.contains(&format!("pid {}", first.guard.pid())),
        "{err}"
    );
}

#[test]
fn swtpm_options_vtpm_does_not_need_are_accepted() {
    let tmp = tempfile::tempdir().unwrap();
    let mkey = tmp.path().join("mkey");
    std::fs::write(&mkey, "00112233445566778899aabbccddeeff").unwrap();
    let mkey = format!("file={},mode=aes-cbc", mkey.display());
    let v = Vtpm::start_socket_with(&[
        "--seccomp",
        "action=none",
        "--runas",
        "nobody",
        "--migration-key",
        &mkey,
        "--flags",
        "not-need-init,startup-clear,disable-auto-shutdown",
        "--locality",
        "reject-locality-4,allow-set-locality",
        "--tpmstate",
        &format!("dir={},mode=0600,lock", tmp.path().join("st").display()),
    ]);
    assert!(listening(v.port) && listening(v.ctrl_port));
    assert!(!v.guard.stderr().contains("panicked"));
}

#[test]
fn sigterm_exits_0_and_removes_the_pid_file() {
    let tmp = tempfile::tempdir().unwrap();
    let pid_file = tmp.path().join("vtpm.pid");
    let mut v = Vtpm::start_socket_with(&[
        "--flags",
        "not-need-init",
        "--pid",
        &format!("file={}", pid_file.display()),
    ]);
    let written = std::fs::read_to_string(&pid_file).expect("pid file written once listening");
    assert_eq!(written.trim(), v.guard.pid().to_string());
    let status = v.guard.terminate().expect("exits after SIGTERM");
    assert_eq!(status.code(), Some(0), "stderr: {}", v.guard.stderr());
    assert!(!pid_file.exists(), "pid file left behind");
    assert!(!v.guard.stderr().contains("panicked"));
}

#[test]
fn daemon_detaches_and_the_pid_file_names_a_live_process() {
    let tmp = tempfile::tempdir().unwrap();
    let pid_file = tmp.path().join("d.pid");
    let port = free_port_pair();
    let out = vtpm_output(&[
        "socket",
        "--tpm2",
        "--daemon",
        "--tpmstate",
        &format!("dir={}", tmp.path().join("state").display()),
        "--server",
        &format!("type=tcp,port={port}"),
        "--ctrl",
        &format!("type=tcp,port={}", port + 1),
        "--flags",
        "not-need-init",
        "--pid",
        &format!("file={}", pid_file.display()),
        "--log",
        &format!("file={},level=5", tmp.path().join("log").display()),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .expect("pid file")
        .trim()
        .parse()
        .expect("a pid");
    let _kill = PidGuard(pid);
    assert!(alive(pid), "daemon {pid} is not running");
    assert!(listening(port) && listening(port + 1));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert!(
        wait_until(Duration::from_secs(20), || !pid_file.exists()),
        "daemon did not clean up after SIGTERM"
    );
}

#[test]
fn daemon_start_up_errors_reach_the_terminal() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let _holder = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    let out = vtpm_output(&[
        "socket",
        "--daemon",
        "--tpmstate",
        &format!("dir={}", tmp.path().display()),
        "--server",
        &format!("type=tcp,port={port}"),
        "--flags",
        "not-need-init",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.starts_with("vtpm: ") && !err.contains("panicked"),
        "{err}"
    );
}

#[test]
fn log_file_at_level_20_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("vtpm.log");
    let mut v = Vtpm::start_socket_with(&[
        "--flags",
        "not-need-init,startup-clear",
        "--log",
        &format!("file={},level=20,prefix=[t] ,truncate", log.display()),
    ]);
    assert_eq!(v.guard.terminate().and_then(|s| s.code()), Some(0));
    let text = std::fs::read_to_string(&log).expect("log file");
    assert!(text.lines().count() >= 2, "{text}");
    assert!(text.lines().all(|l| l.starts_with("[t] ")), "{text}");
    assert!(text.contains("serving a TPM 2.0"), "{text}");
}

#[test]
fn mssim_mode_listens_on_two_ports() {
    let mut v = Vtpm::start_mssim();
    assert!(listening(v.port) && listening(v.ctrl_port));
    assert_eq!(
        v.guard.terminate().and_then(|s| s.code()),
        Some(0),
        "{}",
        v.guard.stderr()
    );
}

#[test]
fn cuse_without_dev_cuse_says_so_in_one_line() {
    if std::path::Path::new("/dev/cuse").exists() {
        eprintln!("/dev/cuse exists here; the missing-module message is not testable");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let spec = format!("dir={}", state.display());
    let err = assert_one_line_error(&["cuse", "-n", "vtpm-test0", "--tpmstate", &spec, "--tpm2"]);
    assert!(err.contains("/dev/cuse"), "{err}");
    assert!(err.contains("cuse kernel module"), "{err}");
    // Nothing was touched: the state directory was not created.
    assert!(!state.exists());
    // The foreground variant too, and the name is still required.
    assert_one_line_error(&["cuse", "-n", "vtpm-test0", "--tpmstate", &spec, "-f"]);
    assert!(assert_one_line_error(&["cuse", "--tpmstate", &spec]).contains("--name"));
}
