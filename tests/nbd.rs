//! The NVRAM on an NBD export served by Debian's qemu-storage-daemon and
//! qemu-nbd, started by the tests: a qcow2 image (with an internal snapshot
//! taken while vtpm is stopped and later reverted), a LUKS-encrypted qcow2,
//! a raw file over TCP; tpm2-tools flows over each; an export holding
//! something else is refused and left untouched; a storage daemon that dies
//! makes NV-changing commands fail (never succeed) until it is back, and no
//! acknowledged increment is lost.

#[macro_use]
mod common;
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{
    free_port, listening, tpm2_fails, tpm2_ok, try_start_on, vtpm_bin, wait_until, Guard,
};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use support::nv;
use support::nv::{connect, rc, try_read_counter, xfer, Rng, COUNTER_ATTRS};

const COUNTER: &str = "0x1500031";

fn have_qemu() -> bool {
    [
        "/usr/bin/qemu-storage-daemon",
        "/usr/bin/qemu-img",
        "/usr/bin/qemu-nbd",
    ]
    .iter()
    .all(|p| Path::new(p).exists())
}

macro_rules! need_qemu {
    () => {
        need_tools!();
        if !have_qemu() {
            eprintln!("qemu-utils not installed: skipped (scripts/test.sh installs it)");
            return;
        }
    };
}

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("run");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// qemu-storage-daemon exporting `image` (qcow2, or raw) as `tpm` on a Unix
/// socket in `dir`; `secret` for a LUKS-encrypted qcow2.
fn storage_daemon(dir: &Path, image: &Path, qcow2: bool, secret: Option<&str>) -> (Guard, PathBuf) {
    storage_daemon_with(dir, image, qcow2, secret, "")
}

/// As [`storage_daemon`], with `server_opts` appended to `--nbd-server`.
fn storage_daemon_with(
    dir: &Path,
    image: &Path,
    qcow2: bool,
    secret: Option<&str>,
    server_opts: &str,
) -> (Guard, PathBuf) {
    let sock = dir.join("nbd.sock");
    let _ = std::fs::remove_file(&sock);
    let mut args = Vec::new();
    if let Some(s) = secret {
        args.push("--object".to_string());
        args.push(format!("secret,id=sec0,data={s}"));
    }
    args.push("--blockdev".into());
    args.push(format!(
        "driver=file,node-name=file0,filename={}",
        image.display()
    ));
    let node = if qcow2 {
        args.push("--blockdev".into());
        args.push(match secret {
            Some(_) => {
                "driver=qcow2,node-name=fmt0,file=file0,encrypt.format=luks,encrypt.key-secret=sec0"
                    .into()
            }
            None => "driver=qcow2,node-name=fmt0,file=file0".into(),
        });
        "fmt0"
    } else {
        "file0"
    };
    args.push("--nbd-server".into());
    args.push(format!(
        "addr.type=unix,addr.path={}{server_opts}",
        sock.display()
    ));
    args.push("--export".into());
    args.push(format!(
        "type=nbd,id=e0,node-name={node},name=tpm,writable=on"
    ));
    let mut g = Guard::spawn("qemu-storage-daemon", &args, dir.join("qsd.err"), &[]);
    assert!(
        wait_until(Duration::from_secs(10), || sock.exists()
            || g.try_status().is_some()),
        "no socket"
    );
    assert!(
        g.try_status().is_none(),
        "qemu-storage-daemon: {}",
        g.stderr()
    );
    (g, sock)
}

/// A new, empty 4 MiB qcow2 image in `dir`.
fn new_qcow2(dir: &Path) -> PathBuf {
    let img = dir.join("tpm.qcow2");
    run(Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2"])
        .arg(&img)
        .arg("4M"));
    img
}

/// qemu-storage-daemon options for a server that takes one client at a time.
const ONE_CLIENT: &str = ",max-connections=1";

fn uri(sock: &Path) -> String {
    format!("backend-uri=nbd+unix:///tpm?socket={}", sock.display())
}

/// vtpm on `state`, powered on; its guard and TCTI.
fn vtpm_on(state: &str, scratch: &Path) -> (Guard, String) {
    let (g, port) = try_start_on(
        vtpm_bin(),
        state,
        &["--flags", "not-need-init,startup-clear"],
        scratch,
    )
    .unwrap_or_else(|e| panic!("vtpm on {state}: {e}"));
    (g, format!("swtpm:host=127.0.0.1,port={port}"))
}

fn counter(tcti: &str, dir: &Path) -> u64 {
    let f = dir.join("ctr");
    tpm2_ok(
        "tpm2_nvread",
        &[COUNTER, "-C", "o", "-o", f.to_str().unwrap()],
        tcti,
    );
    u64::from_be_bytes(std::fs::read(&f).unwrap().try_into().unwrap())
}

fn define_counter(tcti: &str) {
    tpm2_ok(
        "tpm2_nvdefine",
        &[
            COUNTER,
            "-C",
            "o",
            "-s",
            "8",
            "-a",
            "ownerread|ownerwrite|no_da|nt=counter",
        ],
        tcti,
    );
}

fn increment(tcti: &str, n: usize) {
    for _ in 0..n {
        tpm2_ok("tpm2_nvincrement", &[COUNTER, "-C", "o"], tcti);
    }
}

/// A persistent key and a counter on a qcow2 image; an internal snapshot
/// taken while vtpm is stopped brings the older state back when reverted.
#[test]
fn qcow2_keeps_state_and_its_snapshot_brings_the_older_one_back() {
    need_qemu!();
    let d = tempfile::tempdir().unwrap();
    let img = new_qcow2(d.path());
    let (mut qsd, sock) = storage_daemon(d.path(), &img, true, None);
    let (mut v, t) = vtpm_on(&uri(&sock), d.path());
    let ctx = d.path().join("p.ctx");
    tpm2_ok(
        "tpm2_createprimary",
        &["-C", "o", "-G", "ecc256", "-c", ctx.to_str().unwrap()],
        &t,
    );
    tpm2_ok(
        "tpm2_evictcontrol",
        &["-C", "o", "-c", ctx.to_str().unwrap(), "0x81000005"],
        &t,
    );
    define_counter(&t);
    increment(&t, 3);
    v.terminate();
    qsd.terminate();
    run(Command::new("qemu-img")
        .args(["snapshot", "-c", "three"])
        .arg(&img));

    let (mut qsd, sock) = storage_daemon(d.path(), &img, true, None);
    let (mut v, t) = vtpm_on(&uri(&sock), d.path());
    assert_eq!(counter(&t, d.path()), 3, "kept across a restart");
    increment(&t, 4);
    assert_eq!(counter(&t, d.path()), 7);
    let persistent = tpm2_ok("tpm2_getcap", &["handles-persistent"], &t);
    assert!(persistent.contains("0x81000005"), "{persistent}");
    v.terminate();
    qsd.terminate();

    run(Command::new("qemu-img")
        .args(["snapshot", "-a", "three"])
        .arg(&img));
    let (_qsd, sock) = storage_daemon(d.path(), &img, true, None);
    let (_v, t) = vtpm_on(&uri(&sock), d.path());
    assert_eq!(counter(&t, d.path()), 3, "the snapshot's state");
}

/// The state in a LUKS-encrypted qcow2: it works, and the image file holds
/// no plaintext of it.
#[test]
fn luks_qcow2_holds_the_state() {
    need_qemu!();
    let d = tempfile::tempdir().unwrap();
    let img = d.path().join("tpm-luks.qcow2");
    // qemu-img times PBKDF2 to choose its iteration count, and on a loaded
    // machine it can fail with "Unable to get accurate CPU usage": a few
    // tries (the image is made from scratch each time).
    let create = || {
        let _ = std::fs::remove_file(&img);
        Command::new("qemu-img")
            .args([
                "create",
                "-q",
                "-f",
                "qcow2",
                "--object",
                "secret,id=sec0,data=hunter2",
            ])
            .args(["-o", "encrypt.format=luks,encrypt.key-secret=sec0"])
            .arg(&img)
            .arg("4M")
            .output()
            .expect("run qemu-img")
    };
    let made = (0..3).map(|_| create()).find(|o| o.status.success());
    assert!(made.is_some(), "qemu-img create (LUKS): {:?}", create());
    let (mut qsd, sock) = storage_daemon(d.path(), &img, true, Some("hunter2"));
    let (mut v, t) = vtpm_on(&uri(&sock), d.path());
    define_counter(&t);
    increment(&t, 2);
    v.terminate();
    qsd.terminate();
    let raw = std::fs::read(&img).unwrap();
    assert!(
        !raw.windows(8).any(|w| w == b"VTPMNVR1"),
        "the NVRAM header is not in the file in the clear"
    );
    let (_qsd, sock) = storage_daemon(d.path(), &img, true, Some("hunter2"));
    let (_v, t) = vtpm_on(&uri(&sock), d.path());
    assert_eq!(counter(&t, d.path()), 2);
}

/// A raw file exported by qemu-nbd over TCP (nbd://HOST:PORT/EXPORT); an
/// export holding something that is not an NVRAM is refused, untouched.
#[test]
fn raw_over_tcp_and_foreign_content_refused() {
    need_qemu!();
    let d = tempfile::tempdir().unwrap();
    let img = d.path().join("tpm.raw");
    std::fs::write(&img, vec![0u8; 4 << 20]).unwrap();
    let port = free_port();
    let nbd = |g: &Path| {
        let args: Vec<String> = [
            "-f",
            "raw",
            "-x",
            "tpm",
            "-b",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "--persistent",
            g.to_str().unwrap(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let mut q = Guard::spawn(
            "qemu-nbd",
            &args,
            d.path().join(format!("nbd.{port}.err")),
            &[],
        );
        assert!(
            wait_until(Duration::from_secs(10), || listening(port)),
            "{}",
            q.stderr()
        );
        assert!(q.try_status().is_none());
        q
    };
    let state = format!("backend-uri=nbd://127.0.0.1:{port}/tpm");
    let mut q = nbd(&img);
    let (mut v, t) = vtpm_on(&state, d.path());
    define_counter(&t);
    increment(&t, 5);
    v.terminate();
    let (mut v, t) = vtpm_on(&state, d.path());
    assert_eq!(counter(&t, d.path()), 5);
    v.terminate();
    q.terminate();

    let foreign = d.path().join("foreign.raw");
    let mut junk = vec![0u8; 4 << 20];
    junk[100..119].copy_from_slice(b"a filesystem, maybe");
    std::fs::write(&foreign, &junk).unwrap();
    let _q = nbd(&foreign);
    let err = try_start_on(
        vtpm_bin(),
        &state,
        &["--flags", "not-need-init,startup-clear"],
        d.path(),
    )
    .err()
    .expect("refused");
    assert!(err.contains("nbd://127.0.0.1"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(std::fs::read(&foreign).unwrap() == junk, "left untouched");
}

/// The storage daemon dies: NV-changing commands fail, never succeed; once
/// it is back they succeed again, and no acknowledged increment is lost.
#[test]
fn a_dead_server_fails_commands_until_it_is_back() {
    need_qemu!();
    let d = tempfile::tempdir().unwrap();
    let img = new_qcow2(d.path());
    let (mut qsd, sock) = storage_daemon(d.path(), &img, true, None);
    let (_v, t) = vtpm_on(&uri(&sock), d.path());
    define_counter(&t);
    increment(&t, 3);
    qsd.terminate();
    let err = tpm2_fails("tpm2_nvincrement", &[COUNTER, "-C", "o"], &t);
    println!(
        "with the server gone: {}",
        err.lines().last().unwrap_or_default()
    );
    let (_qsd, _sock) = storage_daemon(d.path(), &img, true, None);
    // Reconnection is retried with back-off: within a few attempts it succeeds.
    let ok = wait_until(Duration::from_secs(15), || {
        common::run_tpm2("tpm2_nvincrement", &[COUNTER, "-C", "o"], &t)
            .status
            .success()
    });
    assert!(ok, "commands succeed again once the server is back");
    let n = counter(&t, d.path());
    assert!(n >= 4, "acknowledged increments kept: {n}");
    println!("counter after the outage: {n}");
}

/// Kills at random moments during bursts of NV_Increment: vtpm, the storage
/// daemon, or both (SIGKILL). After each, whatever was killed is restarted
/// and the counter must be at least the last acknowledged value; while only
/// the daemon is gone, increments fail and are never acknowledged.
#[test]
fn kills_of_vtpm_and_the_storage_daemon_never_lose_an_increment() {
    need_qemu!();
    const KILLS: usize = 200;
    let d = tempfile::tempdir().unwrap();
    let img = new_qcow2(d.path());
    let (mut qsd, sock) = storage_daemon(d.path(), &img, true, None);
    let state = uri(&sock);
    let start_vtpm = || {
        let (g, port) = try_start_on(
            vtpm_bin(),
            &state,
            &["--flags", "not-need-init,startup-clear"],
            d.path(),
        )
        .unwrap_or_else(|e| panic!("vtpm: {e}"));
        (g, port)
    };
    let (mut v, mut port) = start_vtpm();
    let mut s = connect(port);
    assert_eq!(
        rc(&xfer(&mut s, &nv::define_counter(COUNTER_ATTRS)).unwrap()),
        0
    );
    let mut acked = 0u64;
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|t| t.as_nanos() as u64)
        .unwrap_or(7)
        | 1;
    let mut rng = Rng(seed);
    println!("nbd crash seed {seed:#x}");
    let (mut total, mut refused, mut victims) = (0u64, 0u64, [0usize; 3]);
    for k in 0..KILLS {
        let victim = rng.below(3) as usize;
        victims[victim] += 1;
        let pids: Vec<i32> = match victim {
            0 => vec![v.pid() as i32],
            1 => vec![qsd.pid() as i32],
            _ => vec![v.pid() as i32, qsd.pid() as i32],
        };
        let delay = Duration::from_micros(1000 + rng.below(20_000));
        let killer = std::thread::spawn(move || {
            std::thread::sleep(delay);
            for p in pids {
                let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
            }
        });
        loop {
            match xfer(&mut s, &nv::increment()) {
                Ok(r) if rc(&r) == 0 => {
                    acked += 1;
                    total += 1;
                }
                Ok(_) => {
                    // The storage is gone: refused, never acknowledged.
                    refused += 1;
                    break;
                }
                Err(_) => break,
            }
        }
        killer.join().unwrap();
        if victim != 0 {
            qsd.wait_timeout(Duration::from_secs(10));
            let (q, _) = storage_daemon(d.path(), &img, true, None);
            qsd = q;
        }
        if victim != 1 {
            v.wait_timeout(Duration::from_secs(10));
            (v, port) = start_vtpm();
        }
        s = connect(port);
        // A vtpm that outlived its storage reconnects with back-off.
        let mut now = Err(0);
        assert!(
            wait_until(Duration::from_secs(20), || {
                now = try_read_counter(&mut s);
                if now == Err(0) {
                    s = connect(port);
                }
                now.is_ok()
            }),
            "kill {k} (seed {seed:#x}): the counter cannot be read: {now:?}"
        );
        let now = now.unwrap();
        assert!(
            now >= acked,
            "kill {k} (seed {seed:#x}): the counter is {now}, below the acknowledged {acked}"
        );
        acked = now;
    }
    println!(
        "nbd crash: {KILLS} kills (vtpm {}, storage daemon {}, both {}), {total} acknowledged increments, \
         {refused} refused while the storage was gone, the counter never went back; final {acked}",
        victims[0], victims[1], victims[2]
    );
}

/// A temporary directory with a new qcow2 in it, or None (with a note) when
/// swtpm_ioctl, which plays QEMU's part at a hand-over, is not installed.
fn qcow2_and_swtpm_ioctl() -> Option<(tempfile::TempDir, PathBuf)> {
    if !Path::new("/usr/bin/swtpm_ioctl").exists() {
        eprintln!("swtpm_ioctl not installed: skipped (scripts/test.sh installs it)");
        return None;
    }
    let d = tempfile::tempdir().unwrap();
    let img = new_qcow2(d.path());
    Some((d, img))
}

/// vtpm on the export at `sock` that hands its state over
/// (`--migration release-lock-outgoing`); its guard and data port.
fn start_outgoing(sock: &Path, scratch: &Path) -> (Guard, u16) {
    try_start_on(
        vtpm_bin(),
        &uri(sock),
        &[
            "--flags",
            "not-need-init,startup-clear",
            "--migration",
            "release-lock-outgoing",
        ],
        scratch,
    )
    .unwrap()
}

/// A second vtpm on the export at `sock` must be refused: its error.
fn second_writer_refused(sock: &Path, scratch: &Path) -> String {
    try_start_on(
        vtpm_bin(),
        &uri(sock),
        &["--flags", "not-need-init,startup-clear"],
        scratch,
    )
    .err()
    .expect("a second writer is refused")
}

/// What QEMU does at an outgoing migration: read the three state blobs out
/// over the control channel of the vtpm with data port `port` (the last
/// read makes it let go of the state).
fn hand_over(port: u16, dir: &Path) {
    for kind in ["permanent", "volatile", "savestate"] {
        run(Command::new("swtpm_ioctl")
            .arg("--tcp")
            .arg(format!("127.0.0.1:{}", port + 1))
            .args(["--save", kind])
            .arg(dir.join(kind)));
    }
}

/// Shared storage, one writer: with a server that takes one client, a second
/// vtpm on the export is refused with one clear line; once the first hands
/// the state over (`--migration release-lock-outgoing`, its blobs read out as
/// QEMU does) it disconnects, and the second starts with the state.
#[test]
fn one_client_at_a_time_and_the_hand_over_disconnects() {
    need_qemu!();
    let Some((d, img)) = qcow2_and_swtpm_ioctl() else {
        return;
    };
    let (_qsd, sock) = storage_daemon_with(d.path(), &img, true, None, ONE_CLIENT);
    let (a, port) = start_outgoing(&sock, d.path());
    let t = format!("swtpm:host=127.0.0.1,port={port}");
    define_counter(&t);
    increment(&t, 2);
    let err = second_writer_refused(&sock, d.path());
    assert!(err.contains("another vtpm"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    hand_over(port, d.path());
    let (_b, t) = vtpm_on(&uri(&sock), d.path());
    assert_eq!(counter(&t, d.path()), 2, "the state handed over");
    drop(a);
}

/// Shared storage whose server takes any number of clients (as several
/// hosts would reach one export): the image's lease keeps one writer. A
/// second vtpm is refused in one line naming the holder; after the hand-over
/// (`--migration release-lock-outgoing`) the second starts at once with the
/// state and the first can no longer change it; a holder killed outright is
/// taken over by the next start on this host at once, and says so.
#[test]
fn the_lease_keeps_one_writer_on_a_server_of_many_clients() {
    need_qemu!();
    let Some((d, img)) = qcow2_and_swtpm_ioctl() else {
        return;
    };
    let (_qsd, sock) = storage_daemon(d.path(), &img, true, None);
    let (a, port) = start_outgoing(&sock, d.path());
    let ta = format!("swtpm:host=127.0.0.1,port={port}");
    define_counter(&ta);
    increment(&ta, 2);

    let err = second_writer_refused(&sock, d.path());
    assert!(
        err.contains("holds the image's lease") && err.contains(&format!("pid {}", a.pid())),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");

    // The hand-over: QEMU reads the blobs out, the source lets go.
    hand_over(port, d.path());
    let (b, tb) = vtpm_on(&uri(&sock), d.path());
    assert_eq!(counter(&tb, d.path()), 2, "the state handed over");
    tpm2_fails("tpm2_nvincrement", &[COUNTER, "-C", "o"], &ta);
    increment(&tb, 1);
    drop(a);

    // Killed outright: its lease stays behind, held by a dead process.
    let _ = kill(Pid::from_raw(b.pid() as i32), Signal::SIGKILL);
    drop(b);
    let log = d.path().join("c.log");
    let (_c, port) = try_start_on(
        vtpm_bin(),
        &uri(&sock),
        &[
            "--flags",
            "not-need-init,startup-clear",
            "--log",
            &format!("file={}", log.display()),
        ],
        d.path(),
    )
    .unwrap();
    let tc = format!("swtpm:host=127.0.0.1,port={port}");
    assert_eq!(counter(&tc, d.path()), 3, "nothing acknowledged lost");
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(log.contains("no longer running"), "{log}");
}
