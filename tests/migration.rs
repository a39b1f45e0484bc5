//! Migration through the control channel, as QEMU does it: the state blobs are
//! read from the source (CMD_GET_STATEBLOB), written to a stopped destination
//! (CMD_SET_STATEBLOB), and the destination is initialised (CMD_INIT); the
//! guest then continues without a TPM2_Startup. Driven with swtpm's own
//! `swtpm_ioctl --save/--load`.

mod common;

use std::process::Command;

use common::{have_tpm2_tools, run_tpm2, Vtpm};

fn ioctl(port: u16, args: &[&str]) -> String {
    let out = Command::new("swtpm_ioctl")
        .args(["--tcp", &format!("127.0.0.1:{port}")])
        .args(args)
        .output()
        .expect("run swtpm_ioctl");
    assert!(
        out.status.success(),
        "swtpm_ioctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn pcrs(tcti: &str) -> String {
    let out = run_tpm2("tpm2_pcrread", &["sha256:0,1,16+sha1:0"], tcti);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn state_blobs_move_a_running_tpm_to_another_vtpm() {
    if !have_tpm2_tools() || Command::new("swtpm_ioctl").arg("--help").output().is_err() {
        eprintln!(
            "tpm2-tools or swtpm-tools not installed: skipped (scripts/test.sh installs them)"
        );
        return;
    }
    let src = Vtpm::start_socket();
    let extend = |pcr: &str, tcti: &str| {
        let d = format!(
            "{pcr}:sha256=1111111111111111111111111111111111111111111111111111111111111111"
        );
        assert!(run_tpm2("tpm2_pcrextend", &[&d], tcti).status.success());
    };
    extend("0", &src.tcti());
    extend("16", &src.tcti());
    let before = pcrs(&src.tcti());
    // A key left loaded (no resource manager flushed it) moves with the TPM.
    let prim = src.tmp.path().join("prim.ctx");
    assert!(run_tpm2(
        "tpm2_createprimary",
        &["-C", "o", "-G", "ecc256", "-c", prim.to_str().unwrap()],
        &src.tcti()
    )
    .status
    .success());
    let public = |tcti: &str| {
        let out = run_tpm2("tpm2_readpublic", &["-c", "0x80000000"], tcti);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    let key_before = public(&src.tcti());

    let files = tempfile::tempdir().unwrap();
    for kind in ["permanent", "volatile", "savestate"] {
        let f = files.path().join(kind);
        ioctl(src.ctrl_port, &["--save", kind, f.to_str().unwrap()]);
    }
    assert!(
        std::fs::metadata(files.path().join("permanent"))
            .unwrap()
            .len()
            > 0
    );

    // The destination starts stopped, as QEMU's incoming side does (no --flags).
    let dst = Vtpm::start_socket_with(&[]);
    for kind in ["permanent", "volatile", "savestate"] {
        let f = files.path().join(kind);
        if std::fs::metadata(&f).unwrap().len() > 0 {
            ioctl(dst.ctrl_port, &["--load", kind, f.to_str().unwrap()]);
        }
    }
    ioctl(dst.ctrl_port, &["-i"]);
    let after = pcrs(&dst.tcti());
    assert_eq!(
        before, after,
        "PCRs (and the started state) moved with the blobs"
    );
    assert_eq!(public(&dst.tcti()), key_before, "the loaded key moved too");
    // It keeps working as the same TPM.
    extend("16", &dst.tcti());
    assert_ne!(pcrs(&dst.tcti()), after);

    // A damaged blob is refused by the destination, not loaded.
    let third = Vtpm::start_socket_with(&[]);
    let mut bad = std::fs::read(files.path().join("permanent")).unwrap();
    let mid = bad.len() / 2;
    bad[mid] ^= 0x10;
    let badf = files.path().join("bad");
    std::fs::write(&badf, bad).unwrap();
    let out = Command::new("swtpm_ioctl")
        .args([
            "--tcp",
            &format!("127.0.0.1:{}", third.ctrl_port),
            "--load",
            "permanent",
            badf.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success(), "a damaged permanent blob is refused");
}
