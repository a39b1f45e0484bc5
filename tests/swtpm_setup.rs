//! Debian's swtpm_setup manufactures a TPM with vtpm as the TPM it drives
//! (`--tpm "vtpm socket"`), unchanged, with every option libvirt passes:
//! RSA (2048 or 3072) and ECC endorsement keys, EK and platform
//! certificates from swtpm_localca (its default CA tool, with a CA directory
//! of the test's own), locked NV, PCR banks, signing EKs, the vmid, and the
//! state kept by `--not-overwrite`. The certificates in NV verify against
//! the CA and hold the EKs' public keys; no vtpm process is left behind.

#[macro_use]
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::provisioned::{
    assert_logged, have_swtpm_tools, install, run_ok, stopped_without_state, Provisioned,
};
use common::{vtpm_bin, Vtpm};

/// Run Debian's swtpm_setup on `state` with vtpm as its TPM; its log.
fn swtpm_setup(state: &Path, log: &Path, args: &[&str]) -> String {
    let out = Command::new("timeout")
        .arg("120")
        .arg("swtpm_setup")
        .arg("--tpmstate")
        .arg(state)
        .args(args)
        .arg("--tpm")
        .arg(format!("{} socket", vtpm_bin()))
        .arg("--logfile")
        .arg(log)
        .output()
        .unwrap();
    let text = std::fs::read_to_string(log).unwrap_or_default();
    assert!(
        out.status.success(),
        "swtpm_setup failed:\n{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// A stopped vtpm whose state directory is empty, ready for swtpm_setup.
fn empty_state() -> (Vtpm, PathBuf, PathBuf) {
    let (v, dir, tmp) = stopped_without_state();
    std::fs::create_dir(&dir).unwrap();
    (v, dir, tmp)
}

fn no_vtpm_left_on(dir: &Path) {
    let ps = run_ok(Command::new("ps").args(["-eo", "args"]));
    assert!(
        !ps.lines().any(|l| l.contains(dir.to_str().unwrap())),
        "a vtpm was left running:\n{ps}"
    );
}

/// libvirt's command line for a new TPM, with the options libvirt passes
/// for a domain that asks for them: signing EKs, PCR banks, the RSA size.
#[test]
fn swtpm_setup_with_libvirts_options_manufactures_a_vtpm() {
    need_tools_and_openssl!();
    if !have_swtpm_tools() {
        return;
    }
    let (mut v, dir, tmp) = empty_state();
    let config = tmp.join("swtpm_setup.conf");
    let log = tmp.join("setup.log");
    let args = [
        "--tpm2",
        "--vmid",
        "testvm:0f4b1d2e",
        "--createek",
        "--create-ek-cert",
        "--create-platform-cert",
        "--lock-nvram",
        "--not-overwrite",
        "--pcr-banks",
        "sha256,sha384",
        "--rsa-keysize",
        "2048",
        "--ecc",
        "--allow-signing",
        "--decryption",
        "--config",
        config.to_str().unwrap(),
    ];
    let text = swtpm_setup(&dir, &log, &args);
    println!("{text}");
    assert_logged(
        &text,
        &[
            "Successfully created RSA 2048 EK with handle 0x81010001.",
            "Successfully created NVRAM area 0x1c00004 for RSA 2048 EK template.",
            "Successfully created NVRAM area 0x1c00002 for RSA 2048 EK certificate.",
            "Successfully created NVRAM area 0x1c08000 for platform certificate.",
            "Successfully created ECC EK with handle 0x81010016.",
            "Successfully created NVRAM area 0x1c00016 for ECC EK certificate.",
            "Successfully activated PCR banks sha256,sha384",
            "Successfully authored TPM state.",
        ],
    );
    no_vtpm_left_on(&dir);

    let p = Provisioned::serve(&mut v, &[]);
    for index in ["0x01c00002", "0x01c00016", "0x01c08000"] {
        p.verify(index);
    }
    p.holds_key_of("0x01c00002", "0x81010001");
    p.holds_key_of("0x01c00016", "0x81010016");
    p.holds_key_of("0x01c08000", "0x81010001");
    assert_eq!(p.cert_modulus("0x01c00002"), p.modulus("0x81010001"));
    for index in [
        "0x01c00002",
        "0x01c00004",
        "0x01c00016",
        "0x01c00017",
        "0x01c08000",
    ] {
        p.locked(index);
    }
    assert_eq!(p.active_banks(), ["sha256", "sha384"]);
    let ek = p.text("0x01c00002");
    assert!(ek.contains("Subject: CN = testvm:0f4b1d2e"), "{ek}");
    // swtpm_localca 0.7 marks a signing EK's certificate for key encipherment only.
    assert!(ek.contains("Key Encipherment"), "{ek}");
    assert!(ek.contains("2.23.133.8.1"), "{ek}");
    let platform = p.text("0x01c08000");
    assert!(platform.contains("2.23.133.5.1.1=vtpm-test"), "{platform}");
    let modulus = p.modulus("0x81010001");

    // libvirt's next start of the domain: --not-overwrite keeps the TPM as it is.
    assert!(v.guard.terminate().is_some());
    let log2 = tmp.join("setup2.log");
    let text = swtpm_setup(&dir, &log2, &args);
    assert!(
        text.contains("Not overwriting existing state file."),
        "{text}"
    );
    let p = Provisioned::serve(&mut v, &[]);
    assert_eq!(p.modulus("0x81010001"), modulus);
}

/// `--rsa-keysize 3072 --overwrite` on a fresh state: the 3072-bit EK at
/// swtpm_setup's high-range handle and index, its certificate verified.
#[test]
fn swtpm_setup_makes_a_3072_bit_ek() {
    need_tools_and_openssl!();
    if !have_swtpm_tools() {
        return;
    }
    let (mut v, dir, tmp) = empty_state();
    let config = tmp.join("swtpm_setup.conf");
    let log = tmp.join("setup.log");
    let text = swtpm_setup(
        &dir,
        &log,
        &[
            "--tpm2",
            "--create-ek-cert",
            "--lock-nvram",
            "--overwrite",
            "--rsa-keysize",
            "3072",
            "--config",
            config.to_str().unwrap(),
        ],
    );
    assert!(
        text.contains("Successfully created RSA 3072 EK with handle 0x8101001c."),
        "{text}"
    );
    no_vtpm_left_on(&dir);
    let p = Provisioned::serve(&mut v, &[]);
    p.verify("0x01c0001c");
    p.holds_key_of("0x01c0001c", "0x8101001c");
    assert_eq!(p.cert_modulus("0x01c0001c").len(), 768);
    p.locked("0x01c0001c");
    assert_eq!(p.active_banks(), ["sha256"]);
}

/// libvirt's command line for a TPM with `<encryption secret=...>`: the
/// passphrase on a descriptor (`--pwdfile-fd 9 --cipher aes-256-cbc`), which
/// swtpm_setup hands to vtpm as `--key pwdfd=...`; vtpm then serves the
/// encrypted state with the same passphrase.
#[test]
fn swtpm_setup_manufactures_an_encrypted_vtpm() {
    need_tools_and_openssl!();
    if !have_swtpm_tools() {
        return;
    }
    let (mut v, dir, tmp) = empty_state();
    let config = tmp.join("swtpm_setup.conf");
    let pw = tmp.join("passphrase");
    std::fs::write(&pw, "libvirt secret value").unwrap();
    let log = tmp.join("setup.log");
    let out = Command::new("sh")
        .arg("-c")
        .arg("exec timeout 120 swtpm_setup --tpm2 --tpm-state \"$1\" --vmid enc:1 --logfile \"$2\" --createek --create-ek-cert --create-platform-cert --lock-nvram --not-overwrite --config \"$3\" --pwdfile-fd 9 --cipher aes-256-cbc --tpm \"$0 socket\" 9<\"$4\"")
        .arg(vtpm_bin())
        .arg(&dir)
        .arg(&log)
        .arg(&config)
        .arg(&pw)
        .output()
        .unwrap();
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(out.status.success(), "swtpm_setup failed:\n{text}");
    assert!(text.contains("Successfully authored TPM state."), "{text}");
    no_vtpm_left_on(&dir);
    let key = format!("pwdfile={},mode=aes-256-cbc", pw.display());
    let p = Provisioned::serve(&mut v, &["--key", &key]);
    p.verify("0x01c00002");
    p.verify("0x01c08000");
    p.holds_key_of("0x01c00002", "0x81010001");
}

/// `vtpm install --prefix DIR` puts vtpm on a PATH as swtpm and swtpm_setup:
/// Debian's swtpm_setup (called by its path), which looks swtpm up on its
/// PATH, then manufactures a vtpm state.
#[test]
fn installed_as_swtpm_swtpm_setup_finds_vtpm_on_the_path() {
    need_tools!();
    if !have_swtpm_tools() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let prefix = d.path().join("prefix");
    install(&prefix);
    let bin = prefix.join("bin");
    assert_eq!(
        std::fs::read_link(bin.join("swtpm")).unwrap(),
        Path::new("vtpm")
    );
    let state = d.path().join("state");
    std::fs::create_dir(&state).unwrap();
    let log = d.path().join("setup.log");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("timeout")
        .args([
            "120",
            "/usr/bin/swtpm_setup",
            "--tpm2",
            "--createek",
            "--tpmstate",
        ])
        .arg(&state)
        .arg("--logfile")
        .arg(&log)
        .env("PATH", path)
        .output()
        .unwrap();
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(out.status.success(), "{text}");
    assert!(text.contains("vtpm["), "swtpm_setup ran vtpm: {text}");
    assert!(state.join("vtpm-nvram.img").exists());
}
