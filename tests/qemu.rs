//! QEMU with SeaBIOS boots against vtpm through `-tpmdev emulator` (the swtpm
//! control channel on a UNIX socket, data channel passed with CMD_SET_DATAFD),
//! and the firmware's measurements reach the TPM: PCR 0 is no longer zero.
//! Read over a second data channel (TCP) while the guest runs.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use std::io::{Read, Write};

use common::{free_port, listening, vtpm_bin, wait_until, Guard};

const QEMU: &str = "/usr/bin/qemu-system-x86_64";

/// PCR 0 of the SHA-256 bank, read with a raw TPM2_PCR_Read on the data channel
/// (tcti-swtpm would also need a TCP control port; QEMU owns the control socket).
fn pcr0_sha256(port: u16) -> Option<Vec<u8>> {
    let cmd: [u8; 20] = [
        0x80, 0x01, 0, 0, 0, 20, 0, 0, 0x01, 0x7e, 0, 0, 0, 1, 0, 0x0b, 3, 1, 0, 0,
    ];
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(&cmd).ok()?;
    let mut r = vec![0u8; 4096];
    let mut n = 0;
    while n < 10 || n < u32::from_be_bytes([r[2], r[3], r[4], r[5]]) as usize {
        let k = s.read(&mut r[n..]).ok()?;
        if k == 0 {
            return None;
        }
        n += k;
    }
    let rc = u32::from_be_bytes([r[6], r[7], r[8], r[9]]);
    (rc == 0 && n >= 32).then(|| r[n - 32..n].to_vec())
}

#[test]
fn seabios_boot_extends_pcr0() {
    if !std::path::Path::new(QEMU).exists() {
        eprintln!("qemu-system-x86 not installed: skipped (scripts/test.sh installs it)");
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

    let mut last = None;
    let measured = wait_until(Duration::from_secs(90), || {
        last = pcr0_sha256(port);
        last.as_ref().is_some_and(|v| v.iter().any(|&b| b != 0))
    });
    let log = std::fs::read_to_string(tmp.path().join("vtpm.log")).unwrap_or_default();
    let qemu_err = std::fs::read_to_string(tmp.path().join("qemu.err")).unwrap_or_default();
    assert!(
        measured,
        "PCR 0 still zero after boot: {last:02x?}\nqemu: {qemu_err}\nvtpm log tail: {}",
        tail(&log)
    );
    let hex: String = last
        .unwrap_or_default()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let extends = log.matches("command 0x182").count();
    println!("SeaBIOS boot: {extends} PCR_Extend commands; PCR 0 (sha256) = {hex}");
    assert!(extends > 0, "the firmware extended PCRs");
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
