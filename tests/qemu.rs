//! QEMU with SeaBIOS boots against vtpm through `-tpmdev emulator` (the swtpm
//! control channel on a UNIX socket, data channel passed with CMD_SET_DATAFD),
//! and the firmware's measurements reach the TPM: PCR 0 is no longer zero.
//! Read over a second data channel (TCP) while the guest runs. A live
//! migration between two vtpm on one state directory (`--migration`) moves
//! the guest's TPM.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

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

/// `vtpm socket` on `state` with its control channel on the UNIX socket
/// `tmp/NAME.ctrl` (for QEMU), a TCP data port (for reading PCRs) and a
/// trace log `tmp/NAME.log`: the process, the socket path and the port.
fn start_vtpm(tmp: &Path, name: &str, state: &Path, extra: &[&str]) -> (Guard, PathBuf, u16) {
    let ctrl = tmp.join(format!("{name}.ctrl"));
    let port = free_port();
    let mut args: Vec<String> = [
        "socket",
        "--tpm2",
        "--tpmstate",
        &format!("dir={}", state.display()),
        "--ctrl",
        &format!("type=unixio,path={}", ctrl.display()),
        "--server",
        &format!("type=tcp,port={port}"),
        "--log",
        &format!(
            "file={},level=20",
            tmp.join(format!("{name}.log")).display()
        ),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    let g = Guard::spawn(vtpm_bin(), &args, tmp.join(format!("{name}.err")), &[]);
    assert!(
        wait_until(Duration::from_secs(20), || ctrl.exists() && listening(port)),
        "vtpm did not start: {}",
        g.stderr()
    );
    (g, ctrl, port)
}

/// QEMU with a TPM TIS device on the vtpm at `ctrl`, its HMP monitor on
/// `tmp/NAME.mon`, stderr in `tmp/NAME.err`.
fn start_qemu(tmp: &Path, name: &str, ctrl: &Path, extra: &[&str]) -> Guard {
    let mon = tmp.join(format!("{name}.mon"));
    let err = tmp.join(format!("{name}.err"));
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
        .args(["-serial", "none", "-nodefaults"])
        .args(["-monitor", &format!("unix:{},server,nowait", mon.display())])
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
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .expect("start qemu");
    Guard {
        child: Some(qemu),
        stderr_path: err,
    }
}

/// One HMP command on QEMU's monitor socket: what the monitor printed.
fn hmp(mon: &Path, cmd: &str) -> String {
    let Ok(mut s) = UnixStream::connect(mon) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    let _ = s.write_all(format!("{cmd}\n").as_bytes());
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    // The monitor never closes: read until it has been quiet for a while.
    while let Ok(n) = s.read(&mut buf) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// PCR 0 once the firmware has measured something into it.
fn measured_pcr0(port: u16, tmp: &Path, name: &str) -> Vec<u8> {
    let mut last = None;
    let measured = wait_until(Duration::from_secs(90), || {
        last = pcr0_sha256(port);
        last.as_ref().is_some_and(|v| v.iter().any(|&b| b != 0))
    });
    let log = std::fs::read_to_string(tmp.join(format!("{name}.log"))).unwrap_or_default();
    let qemu_err =
        std::fs::read_to_string(tmp.join(format!("qemu-{name}.err"))).unwrap_or_default();
    assert!(
        measured,
        "PCR 0 still zero after boot: {last:02x?}\nqemu: {qemu_err}\nvtpm log tail: {}",
        tail(&log)
    );
    last.unwrap_or_default()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn seabios_boot_extends_pcr0() {
    if !Path::new(QEMU).exists() {
        eprintln!("qemu-system-x86 not installed: skipped (scripts/test.sh installs it)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    std::fs::create_dir(&state).unwrap();
    let (_vtpm, ctrl, port) = start_vtpm(tmp.path(), "vtpm", &state, &[]);
    let _qemu = start_qemu(tmp.path(), "qemu-vtpm", &ctrl, &[]);
    let pcr0 = measured_pcr0(port, tmp.path(), "vtpm");
    let log = std::fs::read_to_string(tmp.path().join("vtpm.log")).unwrap_or_default();
    let extends = log.matches("command 0x182").count();
    println!(
        "SeaBIOS boot: {extends} PCR_Extend commands; PCR 0 (sha256) = {}",
        hex(&pcr0)
    );
    assert!(extends > 0, "the firmware extended PCRs");
}

/// A live migration of a QEMU guest between two vtpm on one (shared) state
/// directory, as libvirt sets it up: the source runs with `--migration
/// release-lock-outgoing`, the destination with `--migration
/// incoming,release-lock-outgoing` and starts while the source holds the
/// state. QEMU reads the blobs out of the source (which hands the state over
/// with the savestate blob), the destination locks the state when they
/// arrive, and the guest's TPM continues there with the same PCRs. The source
/// then powers off without writing the image.
#[test]
fn live_migration_on_shared_storage() {
    if !Path::new(QEMU).exists() {
        eprintln!("qemu-system-x86 not installed: skipped (scripts/test.sh installs it)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let state = t.join("state");
    std::fs::create_dir(&state).unwrap();
    let (mut src, src_ctrl, src_port) =
        start_vtpm(t, "src", &state, &["--migration", "release-lock-outgoing"]);
    let mut qemu_src = start_qemu(t, "qemu-src", &src_ctrl, &[]);
    let pcr0 = measured_pcr0(src_port, t, "src");

    let (mut dst, dst_ctrl, dst_port) = start_vtpm(
        t,
        "dst",
        &state,
        &["--migration", "incoming,release-lock-outgoing"],
    );
    let incoming = free_port();
    let _qemu_dst = start_qemu(
        t,
        "qemu-dst",
        &dst_ctrl,
        &["-incoming", &format!("tcp:127.0.0.1:{incoming}")],
    );
    // Not probed by connecting: the incoming port takes one connection only.
    let dst_mon = t.join("qemu-dst.mon");
    assert!(
        wait_until(Duration::from_secs(20), || hmp(&dst_mon, "info status")
            .contains("inmigrate")),
        "the destination QEMU did not wait for the migration"
    );
    let mon = t.join("qemu-src.mon");
    hmp(&mon, &format!("migrate -d tcp:127.0.0.1:{incoming}"));
    let mut status = String::new();
    let done = wait_until(Duration::from_secs(60), || {
        status = hmp(&mon, "info migrate");
        status.contains("Migration status: completed")
            || status.contains("Migration status: failed")
    });
    let log =
        |name: &str| std::fs::read_to_string(t.join(format!("{name}.log"))).unwrap_or_default();
    assert!(
        done && status.contains("completed"),
        "migration: {}\nsource vtpm: {}\ndestination vtpm: {}",
        tail(&status),
        tail(&log("src")),
        tail(&log("dst"))
    );
    assert!(log("src").contains("handed over"), "{}", tail(&log("src")));
    assert!(
        log("dst").contains("locked at CMD_SET_STATEBLOB"),
        "{}",
        tail(&log("dst"))
    );
    assert_eq!(
        pcr0_sha256(dst_port),
        Some(pcr0.clone()),
        "the guest's PCR 0 moved with it"
    );

    // The source QEMU quits (CMD_SHUTDOWN): its vtpm ends without touching
    // the image, which the destination now holds.
    let img = state.join("vtpm-nvram.img");
    let before = std::fs::read(&img).unwrap();
    hmp(&mon, "quit");
    assert!(qemu_src.wait_timeout(Duration::from_secs(20)).is_some());
    let st = src.wait_timeout(Duration::from_secs(20));
    assert!(
        st.is_some_and(|s| s.success()),
        "source vtpm: {}",
        tail(&log("src"))
    );
    assert!(!log("src").contains("ERROR"), "{}", tail(&log("src")));
    let changed = std::fs::read(&img).unwrap() != before;
    assert_eq!(pcr0_sha256(dst_port), Some(pcr0.clone()));
    println!(
        "live migration on shared storage: PCR 0 {} moved; image {} while the source ended",
        hex(&pcr0),
        if changed {
            "changed (the destination's guest wrote)"
        } else {
            "unchanged"
        }
    );
    assert!(dst.terminate().is_some_and(|s| s.success()));
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
