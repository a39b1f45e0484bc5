//! Clevis (clevis + clevis-tpm2, which drive tpm2-tools) against the real
//! binary: `clevis encrypt tpm2` seals a JWE key in the TPM and `clevis
//! decrypt` unseals it. The pin honours `TPM2TOOLS_TCTI` (it only falls back
//! to /dev/tpmrm? when that is unset), so it is pointed at the instance's
//! swtpm TCTI. Covered: a policy on PCRs 0,7 (default sha1 bank, and sha256)
//! that decrypts until PCR 7 is extended and then fails; no PCR policy; ECC
//! and RSA primaries. Each case runs on vtpm and on swtpm with the same
//! outcome required. `--nocapture` prints what clevis says.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::{start_swtpm, tpm2_ok, Vtpm};

fn have_clevis() -> bool {
    Path::new("/usr/bin/clevis").exists() && Path::new("/usr/bin/clevis-encrypt-tpm2").exists()
}

/// Run `clevis args...` with `input` on stdin against `tcti`.
fn clevis(args: &[&str], input: &[u8], tcti: &str) -> Output {
    let mut c = Command::new("timeout")
        .arg("120")
        .arg("clevis")
        .args(args)
        .env("TPM2TOOLS_TCTI", tcti)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run clevis");
    c.stdin.take().unwrap().write_all(input).unwrap();
    c.wait_with_output().unwrap()
}

/// Encrypt a secret with `config`, decrypt it, extend PCR 7 (both banks) and
/// try again; returns what happened, for comparison between TPMs.
fn scenario(who: &str, tcti: &str, config: &str) -> Vec<String> {
    let mut log = Vec::new();
    let secret = format!("clevis secret for {config}\n");
    let enc = clevis(&["encrypt", "tpm2", config], secret.as_bytes(), tcti);
    println!(
        "[{who}] clevis encrypt tpm2 '{config}': {} stderr: {}\n  jwe: {}...",
        enc.status,
        String::from_utf8_lossy(&enc.stderr).trim(),
        String::from_utf8_lossy(&enc.stdout[..enc.stdout.len().min(60)])
    );
    assert!(enc.status.success(), "[{who}] clevis encrypt failed");
    let jwe = enc.stdout;
    assert!(jwe.starts_with(b"ey"), "[{who}] not a compact JWE");
    let dec = clevis(&["decrypt"], &jwe, tcti);
    println!(
        "[{who}] clevis decrypt: {} -> {:?} {}",
        dec.status,
        String::from_utf8_lossy(&dec.stdout),
        String::from_utf8_lossy(&dec.stderr).trim()
    );
    assert!(dec.status.success(), "[{who}] clevis decrypt failed");
    assert_eq!(String::from_utf8_lossy(&dec.stdout), secret, "[{who}]");
    log.push("decrypt: secret recovered".to_string());
    tpm2_ok(
        "tpm2_pcrextend",
        &[&format!(
            "7:sha1={},sha256={}",
            "ab".repeat(20),
            "ab".repeat(32)
        )],
        tcti,
    );
    let dec = clevis(&["decrypt"], &jwe, tcti);
    println!(
        "[{who}] clevis decrypt after extending PCR 7: {} -> {:?} {}",
        dec.status,
        String::from_utf8_lossy(&dec.stdout),
        String::from_utf8_lossy(&dec.stderr).trim()
    );
    if dec.status.success() {
        assert_eq!(String::from_utf8_lossy(&dec.stdout), secret, "[{who}]");
        log.push("decrypt after extend: secret recovered".into());
    } else {
        assert!(dec.stdout.is_empty(), "[{who}] output on failure");
        log.push("decrypt after extend: refused".into());
    }
    log
}

/// Run the scenario on swtpm and vtpm in parallel; the same outcome is
/// required, and `bound` says whether the PCR extend must break decryption.
fn both(config: &str, bound: bool) {
    if !common::have_tpm2_tools() || !have_clevis() {
        eprintln!("tpm2-tools or clevis not installed: skipped (scripts/test.sh installs them)");
        return;
    }
    let vt = Vtpm::start_socket();
    let sw = start_swtpm();
    let (s, v) = std::thread::scope(|sc| {
        let s = sw
            .as_ref()
            .map(|sw| sc.spawn(move || scenario("swtpm", &sw.tcti(), config)));
        let v = sc.spawn(|| scenario("vtpm", &vt.tcti(), config));
        (s.map(|h| h.join()), v.join())
    });
    let expect_after = if bound {
        "decrypt after extend: refused"
    } else {
        "decrypt after extend: secret recovered"
    };
    if let Some(s) = s {
        let s = s.unwrap_or_else(|_| panic!("{config}: the scenario fails on swtpm"));
        assert_eq!(s[1], expect_after, "swtpm");
        let v = v.unwrap_or_else(|_| panic!("{config}: the scenario fails on vtpm"));
        assert_eq!(v, s, "{config}: vtpm and swtpm differ");
    } else {
        let v = v.unwrap_or_else(|_| panic!("{config}: the scenario fails on vtpm"));
        assert_eq!(v[1], expect_after);
    }
}

#[test]
fn pcr_bound_sha1_bank_decrypts_until_pcr7_changes() {
    both(r#"{"pcr_ids":"0,7"}"#, true);
}

#[test]
fn pcr_bound_sha256_bank_rsa_key() {
    both(r#"{"pcr_bank":"sha256","pcr_ids":"0,7","key":"rsa"}"#, true);
}

#[test]
fn pcr_bound_sha256_bank_ecc_key() {
    both(r#"{"pcr_bank":"sha256","pcr_ids":["7"],"key":"ecc"}"#, true);
}

#[test]
fn without_pcrs_decrypts_after_extend() {
    both(r#"{}"#, false);
}

#[test]
fn without_pcrs_rsa_key() {
    both(r#"{"key":"rsa"}"#, false);
}
