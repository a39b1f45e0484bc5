//! Who may use a TPM state, and when it passes from one instance to another:
//! swtpm 0.8's `--migration release-lock-outgoing` (the state is handed over
//! once its savestate blob was read) and `--migration incoming` (the state
//! is locked only when it arrives), driven as QEMU drives a migration on
//! shared storage, with swtpm's own `swtpm_ioctl --save/--load/-i`; and what
//! the installed swtpm does with the same sequence.

#[macro_use]
mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{free_port_pair, run_tpm2, tpm2_ok, try_start_on, vtpm_bin, vtpm_output, Vtpm};

/// swtpm_ioctl is installed (with tpm2-tools: the tests need both).
fn have_ioctl() -> bool {
    common::have_tpm2_tools() && Command::new("swtpm_ioctl").arg("--help").output().is_ok()
}

macro_rules! need_ioctl {
    () => {
        if !have_ioctl() {
            eprintln!(
                "tpm2-tools or swtpm-tools not installed: skipped (scripts/test.sh installs them)"
            );
            return;
        }
    };
}

/// `swtpm_ioctl --tcp 127.0.0.1:PORT args...`: Ok(stdout) or Err(stderr).
fn ioctl(port: u16, args: &[&str]) -> Result<String, String> {
    let out = Command::new("swtpm_ioctl")
        .args(["--tcp", &format!("127.0.0.1:{port}")])
        .args(args)
        .output()
        .expect("run swtpm_ioctl");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// Read the three state blobs as QEMU does (permanent, volatile, savestate)
/// into `dir`; `upto` stops after that many.
fn save_blobs(ctrl: u16, dir: &Path, upto: usize) {
    for kind in ["permanent", "volatile", "savestate"]
        .into_iter()
        .take(upto)
    {
        let f = dir.join(kind);
        ioctl(ctrl, &["--save", kind, f.to_str().unwrap()]).expect("--save");
    }
}

/// Load the blobs saved in `dir` (empty ones skipped, as QEMU does).
fn load_blobs(ctrl: u16, dir: &Path) -> Result<(), String> {
    for kind in ["permanent", "volatile", "savestate"] {
        let f = dir.join(kind);
        if std::fs::metadata(&f).map(|m| m.len()).unwrap_or(0) > 0 {
            ioctl(ctrl, &["--load", kind, f.to_str().unwrap()])?;
        }
    }
    Ok(())
}

/// CMD_LOCK_STORAGE (19) with `retries` (swtpm_ioctl 0.7 has no option for
/// it): the result code.
fn lock_storage(ctrl: u16, retries: u32) -> u32 {
    let mut s = TcpStream::connect(("127.0.0.1", ctrl)).expect("connect ctrl");
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut msg = 19u32.to_be_bytes().to_vec();
    msg.extend_from_slice(&retries.to_be_bytes());
    s.write_all(&msg).unwrap();
    let mut res = [0u8; 4];
    s.read_exact(&mut res).unwrap();
    u32::from_be_bytes(res)
}

/// Start `program socket` on `state` with `extra`: the running process and
/// its ports, or its stderr when it exits instead.
/// An instance with `--migration release-lock-outgoing` whose PCR 16 was
/// extended, and that PCR's value.
fn outgoing() -> (Vtpm, String) {
    let a = Vtpm::start_socket_with(&[
        "--flags",
        "not-need-init,startup-clear",
        "--migration",
        "release-lock-outgoing",
    ]);
    extend16(&a.tcti());
    let pcr = pcr16(&a.tcti());
    (a, pcr)
}

fn tcti(port: u16) -> String {
    format!("swtpm:host=127.0.0.1,port={port}")
}

fn extend16(tcti: &str) {
    let d = "16:sha256=1111111111111111111111111111111111111111111111111111111111111111";
    tpm2_ok("tpm2_pcrextend", &[d], tcti);
}

fn pcr16(tcti: &str) -> String {
    tpm2_ok("tpm2_pcrread", &["sha256:16"], tcti)
}

/// The response code a failed tpm2 tool reports, e.g. "0x923" (or its stderr).
fn tool_rc(tool: &str, args: &[&str], tcti: &str) -> String {
    let out = run_tpm2(tool, args, tcti);
    assert!(!out.status.success(), "{tool} should have failed");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The line of a tpm2 tool's stderr that gives the response code.
fn rc_line(err: &str) -> &str {
    err.lines()
        .find(|l| l.contains("ErrorCode"))
        .or_else(|| err.lines().last())
        .unwrap_or("")
        .trim()
}

/// A refused second instance on `dir` (its one-line message).
fn refused(dir: &Path, scratch: &Path, when: &str) -> String {
    let state = format!("dir={}", dir.display());
    match try_start_on(vtpm_bin(), &state, &[], scratch) {
        Ok(_) => panic!("{when}: a second vtpm started on a state still locked"),
        Err(e) => {
            assert!(e.contains("in use"), "{when}: {e}");
            assert_eq!(e.trim().lines().count(), 1, "{when}: one line: {e}");
            e
        }
    }
}

/// release-lock-outgoing: the lock is held while the permanent and volatile
/// blobs are read and released with the savestate blob; another instance
/// can then start on the state. The outgoing instance writes nothing while
/// the other holds it (a command is answered TPM_RC_NV_UNAVAILABLE without
/// being executed) and takes the state back once it is free, as after a
/// failed migration.
#[test]
fn release_lock_outgoing_hands_the_state_over() {
    need_ioctl!();
    let (a, pcr) = outgoing();
    let blobs = tempfile::tempdir().unwrap();
    let scratch = tempfile::tempdir().unwrap();

    save_blobs(a.ctrl_port, blobs.path(), 2);
    refused(
        &a.dir(),
        scratch.path(),
        "after the permanent and volatile blobs",
    );
    save_blobs(a.ctrl_port, blobs.path(), 3);

    let state = format!("dir={}", a.dir().display());
    let (mut b, _) = try_start_on(vtpm_bin(), &state, &[], scratch.path())
        .unwrap_or_else(|e| panic!("the state was not handed over: {e}"));
    let img = a.dir().join("vtpm-nvram.img");
    let before = std::fs::read(&img).unwrap();
    let err = tool_rc("tpm2_getrandom", &["8"], &a.tcti());
    assert!(err.contains("0x923") || err.contains("0x00000923"), "{err}");
    assert!(
        std::fs::read(&img).unwrap() == before,
        "the outgoing instance wrote the image another instance holds"
    );
    println!(
        "outgoing vtpm while another holds the state: {}",
        rc_line(&err)
    );

    // The migration "failed": B goes away, A takes its state back at its
    // next command and goes on with what it had in RAM.
    assert!(b.terminate().is_some_and(|s| s.success()));
    assert_eq!(pcr16(&a.tcti()), pcr, "the source resumes where it was");
    refused(&a.dir(), scratch.path(), "after taking the state back");
    let mut a = a;
    assert!(a.guard.terminate().is_some_and(|s| s.success()));
}

/// Without the option the state stays locked after its blobs were read, in
/// vtpm and in the installed swtpm alike.
#[test]
fn without_the_option_the_state_stays_locked() {
    need_ioctl!();
    let a = Vtpm::start_socket();
    let blobs = tempfile::tempdir().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    save_blobs(a.ctrl_port, blobs.path(), 3);
    let e = refused(&a.dir(), scratch.path(), "vtpm without --migration");
    println!("vtpm without --migration, blobs read: second instance refused: {e}");
    tpm2_ok("tpm2_getrandom", &["8"], &a.tcti());

    let Some(sw) = common::start_swtpm() else {
        println!("swtpm not installed: no comparison");
        return;
    };
    save_blobs(sw.ctrl_port, blobs.path(), 3);
    let state = format!("dir={}", sw.dir().display());
    // swtpm 0.7 locks at CMD_INIT, 0.8 at start: either way the second one
    // cannot use the state.
    match try_start_on("/usr/bin/swtpm", &state, &[], scratch.path()) {
        Err(e) => println!("swtpm without --migration: second instance refused at start: {e}"),
        Ok((_g, port)) => {
            let e =
                ioctl(port + 1, &["-i"]).expect_err("a second swtpm initialised a locked state");
            println!(
                "swtpm without --migration: second instance's CMD_INIT refused: {}",
                e.trim()
            );
        }
    }
    tpm2_ok("tpm2_getrandom", &["8"], &sw.tcti());
}

/// What the installed swtpm says about `--migration` (0.7 has none), and the
/// same handover sequence with it when it has the option.
#[test]
fn swtpm_with_the_same_sequence() {
    need_ioctl!();
    let swtpm = "/usr/bin/swtpm";
    let Ok(caps) = Command::new(swtpm)
        .args(["socket", "--tpm2", "--print-capabilities"])
        .output()
    else {
        println!("swtpm not installed: no comparison");
        return;
    };
    let caps = String::from_utf8_lossy(&caps.stdout).into_owned();
    if !caps.contains("cmdarg-migration") {
        println!(
            "swtpm has no --migration (no cmdarg-migration in {}): only the sequence without it is compared",
            caps.trim()
        );
        return;
    }
    let scratch = tempfile::tempdir().unwrap();
    let blobs = tempfile::tempdir().unwrap();
    let dir = scratch.path().join("state");
    std::fs::create_dir(&dir).unwrap();
    let state = format!("dir={}", dir.display());
    let (_a, port) = try_start_on(
        swtpm,
        &state,
        &[
            "--flags",
            "not-need-init,startup-clear",
            "--migration",
            "release-lock-outgoing",
        ],
        scratch.path(),
    )
    .expect("swtpm starts");
    save_blobs(port + 1, blobs.path(), 3);
    let (_b, bport) = try_start_on(swtpm, &state, &[], scratch.path())
        .expect("swtpm starts on a handed-over state");
    ioctl(bport + 1, &["-i"]).expect("swtpm initialises a handed-over state");
    println!("swtpm with release-lock-outgoing: a second instance uses the state once savestate was read");
}

/// incoming: the instance starts while the outgoing one holds the state,
/// takes the lock when the blobs arrive (CMD_SET_STATEBLOB), and continues
/// as the same TPM after CMD_INIT. CMD_LOCK_STORAGE takes a state back; one
/// that the other instance changed meanwhile is loaded from the image, never
/// rolled back to the outgoing instance's RAM.
#[test]
fn incoming_locks_when_the_state_arrives() {
    need_ioctl!();
    let (a, pcr) = outgoing();
    let scratch = tempfile::tempdir().unwrap();
    let blobs = tempfile::tempdir().unwrap();
    let state = format!("dir={}", a.dir().display());
    let (mut b, bport) = try_start_on(
        vtpm_bin(),
        &state,
        &["--migration", "incoming,release-lock-outgoing"],
        scratch.path(),
    )
    .unwrap_or_else(|e| panic!("incoming must start beside the outgoing instance: {e}"));
    // QEMU's probe before CMD_INIT takes nothing (and is answered at once).
    let t = Instant::now();
    let err = tool_rc("tpm2_getrandom", &["8"], &tcti(bport));
    println!(
        "incoming before CMD_INIT: {} ({:?})",
        rc_line(&err),
        t.elapsed()
    );
    tpm2_ok("tpm2_getrandom", &["8"], &a.tcti());

    save_blobs(a.ctrl_port, blobs.path(), 3);
    load_blobs(bport + 1, blobs.path()).expect("the incoming instance takes the state");
    ioctl(bport + 1, &["-i"]).expect("CMD_INIT");
    assert_eq!(pcr16(&tcti(bport)), pcr, "the TPM moved with its state");
    // B moves the state on: an NV index A never had.
    let index = "0x1500017";
    tpm2_ok(
        "tpm2_nvdefine",
        &[index, "-C", "o", "-s", "8"],
        &tcti(bport),
    );

    // A cannot take it back while B holds it (CMD_LOCK_STORAGE: TPM_FAIL),
    // and can once B is gone.
    assert_eq!(
        lock_storage(a.ctrl_port, 20),
        9,
        "TPM_FAIL while B holds it"
    );
    assert!(b.terminate().is_some_and(|s| s.success()));
    assert_eq!(lock_storage(a.ctrl_port, 300), 0, "taken back");
    assert_eq!(lock_storage(a.ctrl_port, 0), 0, "held already");
    // B changed the state, so A does not go on from its RAM (that would
    // roll B's changes back): its TPM lost power and loads the image.
    let err = tool_rc("tpm2_getrandom", &["8"], &a.tcti());
    println!(
        "outgoing vtpm after taking back a state moved on: {}",
        rc_line(&err)
    );
    ioctl(a.ctrl_port, &["-i"]).expect("CMD_INIT");
    tpm2_ok("tpm2_startup", &["-c"], &a.tcti());
    let out = tpm2_ok("tpm2_nvreadpublic", &[], &a.tcti());
    assert!(out.contains(index), "B's NV index is kept: {out}");
}

/// incoming on a state that is never released: the instance runs, its
/// CMD_INIT fails after the wait, and the holder is not disturbed.
#[test]
fn incoming_on_a_state_never_released() {
    need_ioctl!();
    let a = Vtpm::start_socket();
    let scratch = tempfile::tempdir().unwrap();
    let img = a.dir().join("vtpm-nvram.img");
    let before = std::fs::read(&img).unwrap();
    let state = format!("dir={}", a.dir().display());
    let (mut b, bport) = try_start_on(
        vtpm_bin(),
        &state,
        &["--migration", "incoming"],
        scratch.path(),
    )
    .unwrap_or_else(|e| panic!("incoming must start: {e}"));
    let e = ioctl(bport + 1, &["-i"]).expect_err("CMD_INIT on a state another instance holds");
    println!("incoming, never released: CMD_INIT: {}", e.trim());
    assert!(
        b.try_status().is_none(),
        "the incoming instance keeps running"
    );
    assert!(
        std::fs::read(&img).unwrap() == before,
        "nothing was written"
    );
    tpm2_ok("tpm2_getrandom", &["8"], &a.tcti());
    assert!(b.terminate().is_some_and(|s| s.success()));
}

/// swtpm's parameters, and its refusal of anything else (exit status 1,
/// before anything starts).
#[test]
fn migration_parameters_are_swtpms() {
    let dir = tempfile::tempdir().unwrap();
    let state = format!("dir={}", dir.path().join("s").display());
    for bad in [
        "foo",
        "incoming,bar",
        "incoming=maybe",
        "release-lock-outgoing=yes",
    ] {
        let port = free_port_pair().to_string();
        let out = vtpm_output(&[
            "socket",
            "--tpm2",
            "--tpmstate",
            &state,
            "--port",
            &port,
            "--migration",
            bad,
        ]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{bad}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{bad}: {err}");
        assert!(err.contains("--migration"), "{bad}: {err}");
        assert!(!dir.path().join("s").exists(), "{bad}: nothing may start");
    }
    let caps = vtpm_output(&["socket", "--print-capabilities"]);
    assert!(String::from_utf8_lossy(&caps.stdout).contains("\"cmdarg-migration\""));
    if Path::new("/usr/bin/swtpm").exists() {
        let out = Command::new("/usr/bin/swtpm")
            .args([
                "socket",
                "--tpm2",
                "--tpmstate",
                &state,
                "--migration",
                "foo",
            ])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "swtpm refuses it too");
        println!(
            "swtpm --migration foo: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
}
