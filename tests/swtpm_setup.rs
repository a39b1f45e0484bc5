//! Debian's swtpm_setup manufactures a TPM with vtpm as the TPM it drives
//! (`--tpm "vtpm socket"`), unchanged: RSA and ECC endorsement keys, EK and
//! platform certificates from swtpm_localca (with a CA of the test's own),
//! locked NV. The certificate in NV verifies against that CA and holds the
//! EK's public key; no vtpm process is left behind.

#[macro_use]
mod common;

use std::path::Path;
use std::process::Command;

use common::{tpm2_ok, vtpm_bin, Vtpm};

/// swtpm_setup.conf and swtpm-localca.conf pointing at a CA in `dir`.
fn ca_config(dir: &Path) -> std::path::PathBuf {
    let ca = dir.join("ca");
    std::fs::create_dir(&ca).unwrap();
    let localca = dir.join("swtpm-localca.conf");
    std::fs::write(
        &localca,
        format!(
            "statedir = {0}\nsigningkey = {0}/signkey.pem\nissuercert = {0}/issuercert.pem\ncertserial = {0}/certserial\n",
            ca.display()
        ),
    )
    .unwrap();
    let options = dir.join("swtpm-localca.options");
    std::fs::write(
        &options,
        "--platform-manufacturer vtpm-test\n--platform-version 2.1\n--platform-model QEMU\n",
    )
    .unwrap();
    let setup = dir.join("swtpm_setup.conf");
    std::fs::write(
        &setup,
        format!(
            "create_certs_tool = /usr/bin/swtpm_localca\ncreate_certs_tool_config = {}\ncreate_certs_tool_options = {}\nactive_pcr_banks = sha256\n",
            localca.display(),
            options.display()
        ),
    )
    .unwrap();
    setup
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run");
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn swtpm_setup_manufactures_a_vtpm_with_ek_certificates() {
    need_tools!();
    if !Path::new("/usr/bin/swtpm_setup").exists() || !Path::new("/usr/bin/swtpm_localca").exists()
    {
        eprintln!("swtpm-tools not installed: skipped (scripts/test.sh installs them)");
        return;
    }
    let mut v = Vtpm::start_socket();
    assert!(v.guard.terminate().is_some());
    let dir = v.dir();
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::create_dir(&dir).unwrap();
    let tmp = v.tmp.path().to_path_buf();
    let config = ca_config(&tmp);
    let log = tmp.join("setup.log");
    let out = Command::new("timeout")
        .arg("120")
        .arg("swtpm_setup")
        .args(["--tpm2", "--tpmstate"])
        .arg(&dir)
        .args([
            "--createek",
            "--create-ek-cert",
            "--create-platform-cert",
            "--lock-nvram",
            "--ecc",
            "--overwrite",
            "--config",
        ])
        .arg(&config)
        .arg("--tpm")
        .arg(format!("{} socket", vtpm_bin()))
        .arg("--logfile")
        .arg(&log)
        .output()
        .unwrap();
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(out.status.success(), "swtpm_setup failed:\n{text}");
    assert!(text.contains("Successfully authored TPM state"), "{text}");
    println!("{text}");
    // swtpm_setup shut its vtpm down: none is left on this state.
    let ps = run(Command::new("ps").args(["-eo", "args"]));
    assert!(
        !ps.lines().any(|l| l.contains(dir.to_str().unwrap())),
        "a vtpm was left running:\n{ps}"
    );

    v.restart_socket(&["--flags", "not-need-init,startup-clear"]);
    let t = v.tcti();
    let f = |n: &str| tmp.join(n).to_str().unwrap().to_string();
    let public = tpm2_ok("tpm2_nvreadpublic", &["0x01c00002"], &t);
    assert!(public.contains("writelocked"), "locked: {public}");
    tpm2_ok(
        "tpm2_nvread",
        &["0x01c00002", "-C", "o", "-o", &f("ek.der")],
        &t,
    );
    run(Command::new("openssl").args([
        "x509",
        "-inform",
        "der",
        "-in",
        &f("ek.der"),
        "-out",
        &f("ek.pem"),
    ]));
    let ca = tmp.join("ca");
    let verified = run(Command::new("openssl").args([
        "verify",
        "-CAfile",
        ca.join("swtpm-localca-rootca-cert.pem").to_str().unwrap(),
        "-untrusted",
        ca.join("issuercert.pem").to_str().unwrap(),
        &f("ek.pem"),
    ]));
    assert!(verified.contains("OK"), "{verified}");
    let cert_key =
        run(Command::new("openssl").args(["x509", "-in", &f("ek.pem"), "-pubkey", "-noout"]));
    tpm2_ok(
        "tpm2_readpublic",
        &["-c", "0x81010001", "-f", "pem", "-o", &f("ek.pub")],
        &t,
    );
    let ek_key = std::fs::read_to_string(f("ek.pub")).unwrap();
    assert_eq!(
        cert_key.trim(),
        ek_key.trim(),
        "the certificate holds the EK"
    );
    println!("EK certificate: {}", verified.trim());
}

/// `vtpm install --prefix DIR` puts vtpm on a PATH as swtpm: swtpm_setup,
/// which looks swtpm up on its PATH, then manufactures a vtpm state.
#[test]
fn installed_as_swtpm_swtpm_setup_finds_vtpm_on_the_path() {
    need_tools!();
    if !Path::new("/usr/bin/swtpm_setup").exists() {
        eprintln!("swtpm-tools not installed: skipped (scripts/test.sh installs them)");
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let prefix = d.path().join("prefix");
    run(Command::new(vtpm_bin())
        .args(["install", "--prefix"])
        .arg(&prefix));
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
        .args(["120", "swtpm_setup", "--tpm2", "--createek", "--tpmstate"])
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
