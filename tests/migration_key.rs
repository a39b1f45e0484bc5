//! `--migration-key` and `--key` as libvirt passes them: state blobs read
//! with CMD_GET_STATEBLOB leave sealed with the migration key (and flagged
//! encrypted), a vtpm with the same key takes them in, one without a key or
//! with another key refuses them with swtpm's codes (TPM_KEYNOTFOUND 0xd,
//! TPM_DECRYPT_ERROR 0x21). Driven with swtpm's `swtpm_ioctl --save/--load`.

#[macro_use]
mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::{free_port_pair, listening, socket_args, tpm2_ok, wait_until, Guard, Vtpm};

const NV_DATA: &[u8] = b"migrate-me-secretly-0123456789ab";

fn ioctl(port: u16, args: &[&str]) -> Output {
    Command::new("swtpm_ioctl")
        .args(["--tcp", &format!("127.0.0.1:{port}")])
        .args(args)
        .output()
        .expect("run swtpm_ioctl")
}

fn ioctl_ok(port: u16, args: &[&str]) -> String {
    let out = ioctl(port, args);
    assert!(
        out.status.success(),
        "swtpm_ioctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn skip() -> bool {
    if !common::have_tpm2_tools() || Command::new("swtpm_ioctl").arg("--help").output().is_err() {
        eprintln!(
            "tpm2-tools or swtpm-tools not installed: skipped (scripts/test.sh installs them)"
        );
        return true;
    }
    false
}

/// A source TPM with an NV index holding NV_DATA and PCR 16 extended;
/// returns its PCR 16 and the directory holding the saved blobs.
fn source_with_blobs(extra: &[&str], files: &Path) -> String {
    let mut args = vec!["--flags", "not-need-init,startup-clear"];
    args.extend_from_slice(extra);
    let src = Vtpm::start_socket_with(&args);
    let t = src.tcti();
    tpm2_ok(
        "tpm2_nvdefine",
        &[
            "0x1500030",
            "-C",
            "o",
            "-s",
            "32",
            "-a",
            "ownerread|ownerwrite",
        ],
        &t,
    );
    let data = files.join("nvdata");
    std::fs::write(&data, NV_DATA).unwrap();
    tpm2_ok(
        "tpm2_nvwrite",
        &["0x1500030", "-C", "o", "-i", data.to_str().unwrap()],
        &t,
    );
    tpm2_ok(
        "tpm2_pcrextend",
        &["16:sha256=3333333333333333333333333333333333333333333333333333333333333333"],
        &t,
    );
    let pcr = tpm2_ok("tpm2_pcrread", &["sha256:16"], &t);
    for kind in ["permanent", "volatile"] {
        let f = files.join(kind);
        ioctl_ok(src.ctrl_port, &["--save", kind, f.to_str().unwrap()]);
    }
    pcr
}

/// Load the saved blobs into a new stopped vtpm with `extra`; Ok(its TCTI
/// and the instance) or Err(swtpm_ioctl's stderr) when a load is refused.
fn load_into(extra: &[&str], files: &Path) -> (Vtpm, Result<(), String>) {
    let dst = Vtpm::start_socket_with(extra);
    for kind in ["permanent", "volatile"] {
        let f = files.join(kind);
        let out = ioctl(dst.ctrl_port, &["--load", kind, f.to_str().unwrap()]);
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr).into_owned();
            return (dst, Err(err));
        }
    }
    ioctl_ok(dst.ctrl_port, &["-i"]);
    (dst, Ok(()))
}

#[test]
fn sealed_blobs_move_only_to_a_vtpm_with_the_key() {
    if skip() {
        return;
    }
    let keys = tempfile::tempdir().unwrap();
    let key = keys.path().join("key");
    std::fs::write(
        &key,
        "0x000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n",
    )
    .unwrap();
    let wrong = keys.path().join("wrong");
    std::fs::write(
        &wrong,
        "ff0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
    )
    .unwrap();
    let short = keys.path().join("short");
    std::fs::write(&short, "000102030405060708090a0b0c0d0e0f").unwrap();
    let mk = |f: &Path| format!("file={},mode=aes-256-cbc,format=hex", f.display());
    let (mkey, mwrong, mshort) = (mk(&key), mk(&wrong), format!("file={}", short.display()));

    // Without a migration key the blobs are plain: the NV data is readable in them.
    let plain = tempfile::tempdir().unwrap();
    source_with_blobs(&[], plain.path());
    assert!(contains(
        &std::fs::read(plain.path().join("permanent")).unwrap(),
        NV_DATA
    ));

    let files = tempfile::tempdir().unwrap();
    let pcr = source_with_blobs(&["--migration-key", &mkey], files.path());
    let perm = std::fs::read(files.path().join("permanent")).unwrap();
    assert!(
        !contains(&perm, NV_DATA),
        "NV data in clear in the sealed blob"
    );
    assert_eq!(
        &perm[..4],
        &[0xff, 0x76, 0x4d, 0x4b],
        "vtpm's sealed envelope"
    );

    // Same key: the TPM goes on where it was.
    let (dst, r) = load_into(&["--migration-key", &mkey], files.path());
    r.expect("loads with the key");
    let t = dst.tcti();
    assert_eq!(tpm2_ok("tpm2_pcrread", &["sha256:16"], &t), pcr);
    let nv = tpm2_ok("tpm2_nvread", &["0x1500030", "-C", "o", "-s", "32"], &t);
    assert_eq!(nv.as_bytes(), NV_DATA);
    assert!(ioctl_ok(dst.ctrl_port, &["-g"]).contains("0x2"));

    // No key: TPM_KEYNOTFOUND; another key: TPM_DECRYPT_ERROR; another size: TPM_BAD_KEY_PROPERTY.
    for (extra, code) in [
        (vec![], "0xd"),
        (vec!["--migration-key", mwrong.as_str()], "0x21"),
        (vec!["--migration-key", mshort.as_str()], "0x28"),
    ] {
        let (_dst, r) = load_into(&extra, files.path());
        let err = r.expect_err("refused");
        assert!(
            err.contains("PTM_SET_STATEBLOB") && err.contains(code),
            "{extra:?}: expected {code}: {err}"
        );
    }

    // A plain blob is still taken by a vtpm with a key (turning encryption on).
    let (dst, r) = load_into(&["--migration-key", &mkey], plain.path());
    r.expect("plain blobs load with a key set");
    let nv = tpm2_ok(
        "tpm2_nvread",
        &["0x1500030", "-C", "o", "-s", "32"],
        &dst.tcti(),
    );
    assert_eq!(nv.as_bytes(), NV_DATA);
}

#[test]
fn passphrase_migration_keys_from_a_file_and_a_descriptor_agree() {
    if skip() {
        return;
    }
    let keys = tempfile::tempdir().unwrap();
    let pw = keys.path().join("pw");
    std::fs::write(&pw, "correct horse battery staple").unwrap();
    let files = tempfile::tempdir().unwrap();
    let spec = format!("pwdfile={},mode=aes-256-cbc,kdf=pbkdf2", pw.display());
    let pcr = source_with_blobs(&["--migration-key", &spec], files.path());
    assert!(!contains(
        &std::fs::read(files.path().join("permanent")).unwrap(),
        NV_DATA
    ));
    // The destination gets the passphrase on descriptor 3, as libvirt passes it.
    let (dst, r) = start_with_fd3(
        &pw,
        &["--migration-key", "pwdfd=3,mode=aes-256-cbc,kdf=pbkdf2"],
        files.path(),
    );
    r.expect("loads with the same passphrase");
    assert_eq!(tpm2_ok("tpm2_pcrread", &["sha256:16"], &dst.1), pcr);
    // kdf=sha512 gives another key: refused.
    let sha = format!("pwdfile={},mode=aes-256-cbc,kdf=sha512", pw.display());
    let (_d, r) = load_into(&["--migration-key", &sha], files.path());
    assert!(r.expect_err("refused").contains("0x21"));
}

/// A stopped vtpm with `secret` open on descriptor 3, loaded with the blobs in `files`.
fn start_with_fd3(
    secret: &Path,
    extra: &[&str],
    files: &Path,
) -> ((Guard, String, tempfile::TempDir), Result<(), String>) {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    std::fs::create_dir(&state).unwrap();
    let port = free_port_pair();
    let mut args = vec![
        "-c".to_string(),
        format!("exec \"$0\" \"$@\" 3<'{}'", secret.display()),
        common::vtpm_bin().to_string(),
    ];
    args.extend(socket_args(&state, port, extra));
    let g = Guard::spawn("bash", &args, tmp.path().join("stderr"), &[]);
    assert!(
        wait_until(Duration::from_secs(20), || listening(port)
            && listening(port + 1)),
        "{}",
        g.stderr()
    );
    let tcti = format!("swtpm:host=127.0.0.1,port={port}");
    for kind in ["permanent", "volatile"] {
        let f = files.join(kind);
        let out = ioctl(port + 1, &["--load", kind, f.to_str().unwrap()]);
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr).into_owned();
            return ((g, tcti, tmp), Err(err));
        }
    }
    ioctl_ok(port + 1, &["-i"]);
    ((g, tcti, tmp), Ok(()))
}

#[test]
fn state_key_from_a_passphrase_descriptor_as_libvirt_passes_it() {
    if skip() {
        return;
    }
    let keys = tempfile::tempdir().unwrap();
    let pw = keys.path().join("pw");
    std::fs::write(&pw, "libvirt-secret-value").unwrap();
    let opt = ["--key", "pwdfd=3,mode=aes-256-cbc,kdf=pbkdf2"];
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    std::fs::create_dir(&state).unwrap();
    let start = |extra: &[&str]| {
        let port = free_port_pair();
        let mut args = vec![
            "-c".to_string(),
            format!("exec \"$0\" \"$@\" 3<'{}'", pw.display()),
            common::vtpm_bin().to_string(),
        ];
        let mut e = vec!["--flags", "not-need-init,startup-clear"];
        e.extend_from_slice(extra);
        args.extend(socket_args(&state, port, &e));
        let g = Guard::spawn("bash", &args, tmp.path().join(format!("err{port}")), &[]);
        assert!(
            wait_until(Duration::from_secs(20), || listening(port)),
            "{}",
            g.stderr()
        );
        (g, format!("swtpm:host=127.0.0.1,port={port}"), port)
    };
    let (mut g, t, port) = start(&opt);
    assert!(ioctl_ok(port + 1, &["-g"]).contains("0x1"));
    tpm2_ok(
        "tpm2_nvdefine",
        &[
            "0x1500031",
            "-C",
            "o",
            "-s",
            "32",
            "-a",
            "ownerread|ownerwrite",
        ],
        &t,
    );
    let data = tmp.path().join("nvdata");
    std::fs::write(&data, NV_DATA).unwrap();
    tpm2_ok(
        "tpm2_nvwrite",
        &["0x1500031", "-C", "o", "-i", data.to_str().unwrap()],
        &t,
    );
    assert_eq!(g.terminate().and_then(|s| s.code()), Some(0));
    for f in std::fs::read_dir(&state).unwrap() {
        let bytes = std::fs::read(f.unwrap().path()).unwrap_or_default();
        assert!(!contains(&bytes, NV_DATA), "plaintext NV data in the state");
    }
    // The same passphrase opens it again.
    let (_g, t, _) = start(&opt);
    let nv = tpm2_ok("tpm2_nvread", &["0x1500031", "-C", "o", "-s", "32"], &t);
    assert_eq!(nv.as_bytes(), NV_DATA);
}
