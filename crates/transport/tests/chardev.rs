//! chardev mode against in-memory channels (socket pairs): the vTPM proxy's
//! in-band locality command, cancellation from the control channel while a
//! command runs on the device, the end of the server when the device
//! closes, and the descriptors chardev mode refuses.

mod common;

use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use common::*;
use transport::{serve_chardev, CharDevice, ChardevConfig, Endpoint, ExitReason, Server};

/// TPM2_CC_SET_LOCALITY as the Linux vTPM proxy driver sends it: tag
/// TPM_ST_SESSIONS, one octet of locality.
fn set_locality(loc: u8) -> Vec<u8> {
    let mut v = vec![0x80, 0x02, 0, 0, 0, 11];
    v.extend_from_slice(&0x2000_1000u32.to_be_bytes());
    v.push(loc);
    v
}

/// The response code of a response.
fn rc(r: &[u8]) -> u32 {
    u32_at(r, 6)
}

/// Serve one end of a socket pair as `device(fd)`; returns the other end.
fn serve(
    dev: &Arc<MockDevice>,
    device: fn(OwnedFd) -> CharDevice,
    tweak: impl FnOnce(&mut ChardevConfig),
) -> (Server, UnixStream) {
    let (ours, theirs) = UnixStream::pair().unwrap();
    ours.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut cfg = ChardevConfig::new(device(OwnedFd::from(theirs)));
    tweak(&mut cfg);
    let srv = serve_chardev(cfg, &tpm(dev)).unwrap();
    (srv, ours)
}

fn exchange(s: &mut UnixStream, cmd: &[u8]) -> Vec<u8> {
    s.write_all(cmd).unwrap();
    read_tpm_response(s)
}

/// The response code to the in-band locality command for `loc`.
fn set_locality_rc(s: &mut UnixStream, loc: u8) -> u32 {
    rc(&exchange(s, &set_locality(loc)))
}

/// The locality the device ran a command sent now at (the mock echoes it).
fn locality_of_next_command(s: &mut UnixStream) -> u8 {
    exchange(s, &tpm_cmd(0x17b, &[0, 8]))[10]
}

#[test]
fn the_proxy_locality_command_sets_the_locality_of_later_commands() {
    let dev = MockDevice::new(true);
    let (_srv, mut s) = serve(&dev, CharDevice::VtpmProxy, |_| {});
    // Answered by the transport itself, with an empty success response.
    assert_eq!(
        exchange(&mut s, &set_locality(3)),
        [0x80, 0x01, 0, 0, 0, 10, 0, 0, 0, 0]
    );
    let r = exchange(&mut s, &tpm_cmd(0x17b, &[0, 8]));
    assert_eq!((r[10], u32_at(&r, 11)), (3, 0x17b), "locality 3 used");
    // A locality that does not exist is refused and changes nothing.
    assert_eq!(set_locality_rc(&mut s, 5), 0x907);
    assert_eq!(locality_of_next_command(&mut s), 3);
    assert_eq!(set_locality_rc(&mut s, 0), 0);
    assert_eq!(locality_of_next_command(&mut s), 0);
    // The device saw only the real commands.
    assert_eq!(dev.calls().len(), 3);
    assert!(dev
        .calls()
        .iter()
        .all(|c| matches!(c, Call::Execute { command, .. } if u32_at(command, 6) == 0x17b)));
}

#[test]
fn reject_locality_4_applies_to_the_proxy_locality_command() {
    let dev = MockDevice::new(true);
    let (_srv, mut s) = serve(&dev, CharDevice::VtpmProxy, |c| c.reject_locality_4 = true);
    assert_eq!(set_locality_rc(&mut s, 4), 0x907);
    assert_eq!(set_locality_rc(&mut s, 2), 0);
    assert_eq!(locality_of_next_command(&mut s), 2);
}

#[test]
fn a_plain_device_takes_the_locality_command_only_when_allowed() {
    let dev = MockDevice::new(true);
    let (_srv, mut s) = serve(&dev, CharDevice::Fd, |_| {});
    assert_eq!(set_locality_rc(&mut s, 3), 0x101);
    assert_eq!(locality_of_next_command(&mut s), 0);

    let dev = MockDevice::new(true);
    let (_srv, mut s) = serve(&dev, CharDevice::Fd, |c| c.allow_set_locality = true);
    assert_eq!(set_locality_rc(&mut s, 3), 0);
    assert_eq!(locality_of_next_command(&mut s), 3);
}

#[test]
fn commands_in_pieces_and_back_to_back_are_each_answered() {
    let dev = MockDevice::new(true);
    let (_srv, mut s) = serve(&dev, CharDevice::VtpmProxy, |_| {});
    let cmd = tpm_cmd(0x17b, &[0, 8]);
    s.write_all(&cmd[..7]).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    s.write_all(&cmd[7..]).unwrap();
    assert_eq!(u32_at(&read_tpm_response(&mut s), 11), 0x17b);
    let mut two = set_locality(1);
    two.extend(tpm_cmd(0x144, &[]));
    s.write_all(&two).unwrap();
    assert_eq!(rc(&read_tpm_response(&mut s)), 0);
    let r = read_tpm_response(&mut s);
    assert_eq!((r[10], u32_at(&r, 11)), (1, 0x144));
}

/// A device whose commands run until the test lets them go, answering
/// TPM_RC_CANCELED if a cancel arrived meanwhile.
struct Gate {
    started: AtomicBool,
    open: Mutex<bool>,
    cv: Condvar,
}

#[test]
fn cancel_on_the_control_channel_reaches_a_command_running_on_the_device() {
    let gate = Arc::new(Gate {
        started: AtomicBool::new(false),
        open: Mutex::new(false),
        cv: Condvar::new(),
    });
    let g = Arc::clone(&gate);
    let dev = MockDevice::with_responder(
        true,
        Box::new(move |_, _| {
            g.started.store(true, Ordering::SeqCst);
            let mut open = g.open.lock().unwrap();
            while !*open {
                open = g.cv.wait(open).unwrap();
            }
            // TPM_RC_CANCELED, what the engine answers when its flag was set.
            vec![0x80, 0x01, 0, 0, 0, 10, 0, 0, 0x09, 0x09]
        }),
    );
    let (mut ctrl_client, ctrl_server) = UnixStream::pair().unwrap();
    ctrl_client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let (_srv, mut s) = serve(&dev, CharDevice::VtpmProxy, |c| {
        c.ctrl = Some(Endpoint::Fd(OwnedFd::from(ctrl_server)))
    });
    s.write_all(&tpm_cmd(0x131, &[])).unwrap();
    assert!(wait_until(|| gate.started.load(Ordering::SeqCst)));
    // CMD_CANCEL_TPM_CMD is answered while the command still runs.
    assert_eq!(ctrl(&mut ctrl_client, 9, &[], 4), [0, 0, 0, 0]);
    assert!(dev.calls().contains(&Call::Cancel));
    *gate.open.lock().unwrap() = true;
    gate.cv.notify_all();
    assert_eq!(rc(&read_tpm_response(&mut s)), 0x909);
}

#[test]
fn the_server_ends_when_the_device_closes() {
    let dev = MockDevice::new(true);
    let (srv, mut s) = serve(&dev, CharDevice::Fd, |_| {});
    assert_eq!(u32_at(&exchange(&mut s, &tpm_cmd(0x17b, &[])), 11), 0x17b);
    drop(s);
    assert_eq!(srv.wait(), ExitReason::DataClosed);
}

#[test]
fn descriptors_that_are_not_devices_or_connections_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let l = UnixListener::bind(dir.path().join("l")).unwrap();
    let file = std::fs::File::create(dir.path().join("f")).unwrap();
    let dirfd = std::fs::File::open(dir.path()).unwrap();
    for (fd, why) in [
        (OwnedFd::from(l), "listening socket"),
        (OwnedFd::from(file), "regular file"),
        (OwnedFd::from(dirfd), "directory"),
    ] {
        let dev = MockDevice::new(true);
        let e = serve_chardev(ChardevConfig::new(CharDevice::Fd(fd)), &tpm(&dev))
            .unwrap_err()
            .to_string();
        assert!(e.contains(why), "{why}: {e}");
        assert!(!e.contains('\n'), "{e}");
    }
    let dev = MockDevice::new(true);
    let e = serve_chardev(
        ChardevConfig::new(CharDevice::Path(dir.path().join("missing"))),
        &tpm(&dev),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("missing") && e.contains("No such file"), "{e}");
}

fn wait_until(mut cond: impl FnMut() -> bool) -> bool {
    let end = std::time::Instant::now() + Duration::from_secs(10);
    while std::time::Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    cond()
}
