//! `vtpm chardev` against the real binary: TPM commands on a descriptor the
//! test passes (`--fd 3`, one end of a socket pair), compared with
//! `swtpm chardev --fd 3` where the answers are deterministic; the control
//! channel beside it driven by swtpm_ioctl; the end when the peer closes;
//! and `--vtpm-proxy` where the kernel has no vTPM proxy driver.

mod common;

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::*;

/// swtpm, when it is installed (the comparisons with it skip otherwise).
fn installed_swtpm() -> Option<&'static str> {
    let swtpm = "/usr/bin/swtpm";
    if Path::new(swtpm).exists() {
        Some(swtpm)
    } else {
        eprintln!("swtpm is not installed; comparison skipped");
        None
    }
}

/// The process ends, with exit code 0, within 30 s.
fn exits_cleanly(guard: &mut Guard) {
    let status = guard.wait_timeout(Duration::from_secs(30));
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{}", guard.stderr());
}

/// The run failed with exit code 1 and a one-line message: the message.
fn one_line_error(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    err
}

/// Start `program args...` with `fd` as its descriptor 3 (through a shell:
/// std hands the descriptor over as stdin, the shell moves it to 3).
fn spawn_on_fd3(program: &str, args: &[String], fd: OwnedFd, dir: &Path) -> Guard {
    let stderr_path = dir.join(format!(
        "{}.stderr",
        Path::new(program).file_name().unwrap().to_string_lossy()
    ));
    let err = std::fs::File::create(&stderr_path).unwrap();
    let child = Command::new("/bin/sh")
        .arg("-c")
        .arg(r#"exec "$0" "$@" 3<&0 0</dev/null"#)
        .arg(program)
        .args(args)
        .stdin(Stdio::from(fd))
        .stdout(Stdio::null())
        .stderr(err)
        .spawn()
        .unwrap();
    Guard {
        child: Some(child),
        stderr_path,
    }
}

/// A chardev TPM (`program chardev --fd 3 ...`) and our end of its socket pair.
struct Chardev {
    guard: Guard,
    sock: UnixStream,
    _dir: tempfile::TempDir,
}

impl Chardev {
    fn start(program: &str, extra: &[&str]) -> Chardev {
        let dir = tempfile::tempdir().unwrap();
        let (ours, theirs) = UnixStream::pair().unwrap();
        ours.set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        let mut args: Vec<String> = vec![
            "chardev".into(),
            "--fd".into(),
            "3".into(),
            "--tpm2".into(),
            "--tpmstate".into(),
            format!("dir={}", dir.path().join("state").display()),
        ];
        std::fs::create_dir_all(dir.path().join("state")).unwrap();
        args.extend(extra.iter().map(|s| s.to_string()));
        let guard = spawn_on_fd3(program, &args, OwnedFd::from(theirs), dir.path());
        Chardev {
            guard,
            sock: ours,
            _dir: dir,
        }
    }

    fn send(&mut self, cmd: &[u8]) -> Vec<u8> {
        self.sock.write_all(cmd).unwrap();
        let mut r = vec![0u8; 10];
        self.sock
            .read_exact(&mut r)
            .unwrap_or_else(|e| panic!("no response: {e}; stderr: {}", self.guard.stderr()));
        let size = u32::from_be_bytes([r[2], r[3], r[4], r[5]]) as usize;
        r.resize(size, 0);
        self.sock.read_exact(&mut r[10..]).unwrap();
        r
    }
}

fn rc(r: &[u8]) -> u32 {
    u32::from_be_bytes([r[6], r[7], r[8], r[9]])
}

/// A command: tag, size (filled in), code, the rest.
fn command(tag: u16, code: u32, rest: &[u8]) -> Vec<u8> {
    let mut v = tag.to_be_bytes().to_vec();
    v.extend(((10 + rest.len()) as u32).to_be_bytes());
    v.extend(code.to_be_bytes());
    v.extend_from_slice(rest);
    v
}

fn startup_clear() -> Vec<u8> {
    command(0x8001, 0x144, &[0, 0])
}

fn get_random(n: u16) -> Vec<u8> {
    command(0x8001, 0x17b, &n.to_be_bytes())
}

/// TPM2_PCR_Extend(pcr, SHA-256 `digest`) with an empty password session.
fn pcr_extend(pcr: u32, digest: &[u8; 32]) -> Vec<u8> {
    let mut rest = pcr.to_be_bytes().to_vec();
    rest.extend(9u32.to_be_bytes());
    rest.extend([0x40, 0, 0, 9, 0, 0, 0, 0, 0]);
    rest.extend(1u32.to_be_bytes());
    rest.extend(0x000bu16.to_be_bytes());
    rest.extend_from_slice(digest);
    command(0x8002, 0x182, &rest)
}

/// TPM2_PCR_Read of SHA-256 PCR `pcr` (< 24).
fn pcr_read(pcr: u32) -> Vec<u8> {
    let mut select = [0u8; 3];
    select[(pcr / 8) as usize] = 1 << (pcr % 8);
    let mut rest = 1u32.to_be_bytes().to_vec();
    rest.extend(0x000bu16.to_be_bytes());
    rest.push(3);
    rest.extend(select);
    command(0x8001, 0x17e, &rest)
}

/// The one digest of a PCR_Read response.
fn pcr_value(r: &[u8]) -> Vec<u8> {
    r[r.len() - 32..].to_vec()
}

/// SHA-256(32 zero octets || 32 octets 0x5a): PCR 16 after one extend with
/// 0x5a^32 (computed with `sha256sum`).
const PCR16_AFTER_EXTEND: &str = "d342b8b5fddabfc1d94e5c8c53388211df379791089b772ec02a15d94adcc7f5";

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Startup, GetRandom, PCR_Extend and PCR_Read; returns the responses.
fn session(t: &mut Chardev) -> Vec<Vec<u8>> {
    let digest = [0x5a; 32];
    vec![
        t.send(&startup_clear()),
        t.send(&get_random(16)),
        t.send(&pcr_read(16)),
        t.send(&pcr_extend(16, &digest)),
        t.send(&pcr_read(16)),
    ]
}

#[test]
fn tpm_commands_over_a_passed_descriptor() {
    let mut t = Chardev::start(vtpm_bin(), &["--flags", "not-need-init"]);
    let r = session(&mut t);
    assert_eq!(rc(&r[0]), 0, "Startup");
    assert_eq!((rc(&r[1]), r[1].len()), (0, 10 + 2 + 16), "GetRandom");
    assert_eq!(rc(&r[2]), 0, "PCR_Read");
    assert_eq!(pcr_value(&r[2]), [0u8; 32]);
    assert_eq!(rc(&r[3]), 0, "PCR_Extend");
    assert_eq!(
        hex(&pcr_value(&r[4])),
        PCR16_AFTER_EXTEND,
        "PCR 16 = H(0 || d)"
    );
    // Closing our end ends vtpm, cleanly.
    drop(t.sock);
    exits_cleanly(&mut t.guard);
}

#[test]
fn answers_match_swtpm_chardev() {
    let Some(swtpm) = installed_swtpm() else {
        return;
    };
    let flags = ["--flags", "not-need-init"];
    let ours = session(&mut Chardev::start(vtpm_bin(), &flags));
    let theirs = session(&mut Chardev::start(swtpm, &flags));
    // GetRandom is random: its shape only.
    assert_eq!(ours[1][..10], theirs[1][..10]);
    assert_eq!(ours[0], theirs[0], "Startup");
    assert_eq!(ours[3], theirs[3], "PCR_Extend");
    // PCR_Read alike but for pcrUpdateCounter (octets 10..14), which
    // libtpms has already counted up at Startup and vtpm has not.
    for i in [2, 4] {
        let (mut a, mut b) = (ours[i].clone(), theirs[i].clone());
        a[10..14].fill(0);
        b[10..14].fill(0);
        assert_eq!(a, b, "PCR_Read {i}");
    }
    // Before Startup both answer TPM_RC_INITIALIZE alike.
    let mut a = Chardev::start(vtpm_bin(), &flags);
    let mut b = Chardev::start(swtpm, &flags);
    assert_eq!(a.send(&get_random(8)), b.send(&get_random(8)));
}

/// The vendor command the vTPM proxy driver sends (tag TPM_ST_SESSIONS, one octet).
fn set_locality(loc: u8) -> Vec<u8> {
    command(0x8002, 0x2000_1000, &[loc])
}

/// TPM2_PCR_Reset(pcr) with an empty password session.
fn pcr_reset(pcr: u32) -> Vec<u8> {
    let mut rest = pcr.to_be_bytes().to_vec();
    rest.extend(9u32.to_be_bytes());
    rest.extend([0x40, 0, 0, 9, 0, 0, 0, 0, 0]);
    command(0x8002, 0x13d, &rest)
}

#[test]
fn the_locality_command_matches_swtpm_chardev() {
    let Some(swtpm) = installed_swtpm() else {
        return;
    };
    let flags = [
        "--flags",
        "not-need-init,startup-clear",
        "--locality",
        "allow-set-locality",
    ];
    let mut ours = Chardev::start(vtpm_bin(), &flags);
    let mut theirs = Chardev::start(swtpm, &flags);
    // Which PCRs each locality may reset and extend, through the locality
    // the in-band command set. (Locality 4 is left out: the engines differ
    // on PCR_Reset of PCRs 17-22 there, an engine matter.)
    let mut script = vec![set_locality(4)];
    for loc in 0..=3 {
        script.push(set_locality(loc));
        script.extend((16..=23).map(pcr_reset));
        script.extend([17, 20, 23].map(|p| pcr_extend(p, &[0x5a; 32])));
    }
    let mut refused = 0;
    for (i, cmd) in script.iter().enumerate() {
        let (a, b) = (ours.send(cmd), theirs.send(cmd));
        assert_eq!(a, b, "command {i}");
        refused += usize::from(rc(&a) == 0x907);
    }
    assert!(refused > 10, "the localities made a difference");
}

#[test]
fn the_control_channel_powers_on_and_shuts_down() {
    let ioctl = Path::new("/usr/bin/swtpm_ioctl");
    if !ioctl.exists() {
        eprintln!("swtpm_ioctl is not installed; skipped");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ctrl = dir.path().join("ctrl.sock");
    let ctrl_arg = format!("type=unixio,path={}", ctrl.display());
    let mut t = Chardev::start(vtpm_bin(), &["--ctrl", &ctrl_arg]);
    // Not initialised: every command fails.
    assert_eq!(rc(&t.send(&get_random(8))), 0x101);
    let run = |args: &[&str]| {
        let out = Command::new(ioctl)
            .args(args)
            .args(["--unix", ctrl.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "swtpm_ioctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&["-i"]);
    assert_eq!(rc(&t.send(&startup_clear())), 0);
    assert_eq!(rc(&t.send(&get_random(8))), 0);
    run(&["-s"]);
    exits_cleanly(&mut t.guard);
    assert!(!ctrl.exists(), "the control socket is removed");
}

#[test]
fn a_terminal_device_by_path() {
    use nix::fcntl::OFlag;
    use nix::pty::{grantpt, posix_openpt, ptsname_r, unlockpt};
    use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};
    // Close-on-exec from the start: a copy of the master inherited by a
    // process another test spawns would keep the terminal from hanging up.
    let master = posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC).unwrap();
    grantpt(&master).unwrap();
    unlockpt(&master).unwrap();
    let path = ptsname_r(&master).unwrap();
    let slave = std::fs::File::options()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    // Raw: the line discipline must pass every octet through unchanged.
    let mut t = tcgetattr(&slave).unwrap();
    cfmakeraw(&mut t);
    tcsetattr(&slave, SetArg::TCSANOW, &t).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let args: Vec<String> = vec![
        "chardev".into(),
        "--chardev".into(),
        path.clone(),
        "--tpmstate".into(),
        format!("dir={}", dir.path().join("state").display()),
        "--flags".into(),
        "not-need-init,startup-clear".into(),
    ];
    let mut guard = Guard::spawn(vtpm_bin(), &args, dir.path().join("stderr"), &[]);
    let mut master = master;
    master.write_all(&get_random(16)).unwrap();
    let mut r = vec![0u8; 28];
    master.read_exact(&mut r).unwrap();
    assert_eq!(
        (rc(&r), u32::from_be_bytes([r[2], r[3], r[4], r[5]])),
        (0, 28)
    );
    master.write_all(&pcr_read(0)).unwrap();
    let mut r = vec![0u8; 10];
    master.read_exact(&mut r).unwrap();
    assert_eq!(rc(&r), 0, "{}", guard.stderr());
    // Hanging up the terminal ends vtpm.
    drop(master);
    drop(slave);
    exits_cleanly(&mut guard);
}

#[test]
fn help_lists_every_option_of_swtpm_chardev() {
    let out = vtpm_output(&["chardev", "--help"]);
    assert!(out.status.success());
    let ours = String::from_utf8_lossy(&out.stdout).to_string();
    let Ok(theirs) = Command::new("swtpm").args(["chardev", "--help"]).output() else {
        eprintln!("swtpm is not installed; comparison skipped");
        return;
    };
    let theirs = String::from_utf8_lossy(&theirs.stdout).to_string();
    let options: Vec<&str> = theirs
        .split(|c: char| c.is_whitespace() || c == '|')
        .filter(|w| w.starts_with("--") && w.len() > 2)
        // swtpm 0.7's help misspells --print-capabilities (its parser does not).
        .map(|w| match w {
            "--print-capabilites" => "--print-capabilities",
            w => w,
        })
        .collect();
    assert!(options.len() > 15, "{theirs}");
    for o in options {
        assert!(ours.contains(o), "{o} missing from vtpm chardev --help");
    }
}

#[test]
fn vtpm_proxy_without_the_driver_is_a_one_line_error() {
    if Path::new("/dev/vtpmx").exists() {
        eprintln!("/dev/vtpmx exists here; the guest checks cover --vtpm-proxy");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let out = vtpm_output(&[
        "chardev",
        "--vtpm-proxy",
        "--tpm2",
        "--tpmstate",
        &format!("dir={}", state.display()),
    ]);
    let err = one_line_error(&out);
    assert!(
        err.starts_with("vtpm: ") && err.contains("/dev/vtpmx") && err.contains("tpm_vtpm_proxy"),
        "{err}"
    );
    assert!(
        !state.exists(),
        "nothing is created before the driver is found"
    );
}

#[test]
fn unusable_devices_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let state = format!("dir={}", dir.path().join("state").display());
    let file = dir.path().join("plain");
    std::fs::write(&file, b"x").unwrap();
    for (device, why) in [
        (file.to_str().unwrap(), "regular file"),
        ("/nonexistent/tpm", "No such file"),
    ] {
        let out = vtpm_output(&[
            "chardev",
            "--chardev",
            device,
            "--tpmstate",
            &state,
            "--flags",
            "not-need-init",
        ]);
        let err = one_line_error(&out);
        assert!(err.contains(why), "{err}");
    }
}
