//! `--tpmstate ...,mode=` applies to every file vtpm creates: the image, the
//! lock file, the pid file and the log file get exactly those mode bits,
//! whatever the umask.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::Vtpm;

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o7777
}

#[test]
fn state_mode_is_applied_to_image_lock_pid_and_log() {
    // 0664 would lose its group write bit to a 022 umask if only open(2)'s mode were used.
    for want in [0o600, 0o664, 0o640] {
        let files = tempfile::tempdir().unwrap();
        let state = files.path().join("state");
        let pid = files.path().join("vtpm.pid");
        let log = files.path().join("vtpm.log");
        let mut v = Vtpm::start_socket_with(&[
            "--flags",
            "not-need-init,startup-clear",
            "--tpmstate",
            &format!("dir={},mode={want:04o}", state.display()),
            "--pid",
            &format!("file={}", pid.display()),
            "--log",
            &format!("file={},level=2", log.display()),
        ]);
        assert!(common::wait_until(
            std::time::Duration::from_secs(10),
            || pid.exists()
        ));
        for f in [
            state.join("vtpm-nvram.img"),
            state.join(".lock"),
            pid.clone(),
            log.clone(),
        ] {
            assert_eq!(mode(&f), want, "{} has mode {:o}", f.display(), mode(&f));
        }
        assert_eq!(v.guard.terminate().and_then(|s| s.code()), Some(0));
    }
}
