//! QEMU with SeaBIOS boots against vtpm through `-tpmdev emulator` (the swtpm
//! control channel on a UNIX socket, data channel passed with CMD_SET_DATAFD),
//! and the firmware's measurements reach the TPM: PCR 0 is no longer zero.
//! Read over a second data channel (TCP) while the guest runs.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{free_port, have_tpm2_tools, listening, run_tpm2, vtpm_bin, wait_until, Guard};

const QEMU: &str = "/usr/bin/qemu-system-x86_64";
const ZERO: &str = "0x0000000000000000000000000000000000000000000000000000000000000000";

#[test]
fn seabios_boot_extends_pcr0() {
    if !std::path::Path::new(QEMU).exists() || !have_tpm2_tools() {
        eprintln!(
            "qemu-system-x86 or tpm2-tools not installed: skipped (scripts/test.sh installs them)"
        );
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    std::fs::create_dir(&state).unwrap();
    let ctrl = tmp.path().join("ctrl.sock");
    let port = free_port();
    let args: Vec<String> = [
        "socket",
        "--tpm2",
        "--tpmstate",
        &format!("dir={}", state.display()),
        "--ctrl",
        &format!("type=unixio,path={}", ctrl.display()),
        "--server",
        &format!("type=tcp,port={port}"),
        "--log",
        &format!("file={},level=20", tmp.path().join("vtpm.log").display()),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let _vtpm = Guard::spawn(vtpm_bin(), &args, tmp.path().join("vtpm.err"), &[]);
    assert!(
        wait_until(Duration::from_secs(20), || ctrl.exists() && listening(port)),
        "vtpm did not start"
    );

    let qemu = Command::new(QEMU)
        .args([
            "-machine",
            "pc",
            "-m",
            "64",
            "-nographic",
            "-display",
            "none",
            "-no-reboot",
        ])
        .args(["-serial", "none", "-monitor", "none", "-nodefaults"])
        .args([
            "-chardev",
            &format!("socket,id=chrtpm,path={}", ctrl.display()),
        ])
        .args([
            "-tpmdev",
            "emulator,id=tpm0,chardev=chrtpm",
            "-device",
            "tpm-tis,tpmdev=tpm0",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(tmp.path().join("qemu.err")).unwrap())
        .spawn()
        .expect("start qemu");
    let _qemu = Guard {
        child: Some(qemu),
        stderr_path: tmp.path().join("qemu.err"),
    };

    let tcti = format!("swtpm:host=127.0.0.1,port={port}");
    let mut last = String::new();
    let measured = wait_until(Duration::from_secs(90), || {
        let out = run_tpm2("tpm2_pcrread", &["sha256:0"], &tcti);
        last = String::from_utf8_lossy(&out.stdout).into_owned();
        out.status.success() && last.contains(" 0 :") && !last.contains(ZERO)
    });
    let log = std::fs::read_to_string(tmp.path().join("vtpm.log")).unwrap_or_default();
    let qemu_err = std::fs::read_to_string(tmp.path().join("qemu.err")).unwrap_or_default();
    assert!(
        measured,
        "PCR 0 still zero after boot: {last}\nqemu: {qemu_err}\nvtpm log tail: {}",
        tail(&log)
    );
    println!("SeaBIOS measured into PCR 0: {}", last.trim());
}

fn tail(s: &str) -> String {
    s.lines()
        .rev()
        .take(40)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect::<Vec<_>>()
        .join("\n")
}
