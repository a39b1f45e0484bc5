//! Checks of a manufactured TPM (by Debian's swtpm_setup or by `vtpm
//! setup`), served by a running vtpm: certificates read from the TCG NV
//! indices with tpm2_nvread and verified with `openssl verify` against the
//! local CA, the certificate's key compared with the persistent EK's
//! (tpm2_readpublic), the indices write-locked, the PCR banks active; and
//! the steps both setup test files take before and after manufacturing.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::{run_tpm2, tpm2_ok, vtpm_bin, Vtpm};

/// Whether Debian's swtpm_setup and swtpm_localca are installed (a note when not).
pub fn have_swtpm_tools() -> bool {
    let ok =
        Path::new("/usr/bin/swtpm_setup").exists() && Path::new("/usr/bin/swtpm_localca").exists();
    if !ok {
        eprintln!("swtpm-tools not installed: skipped (scripts/test.sh installs them)");
    }
    ok
}

/// A stopped vtpm whose state directory is gone, for a setup to make, with
/// the configuration of a local CA in its temp dir ([`ca_config`], PCR bank
/// sha256): the vtpm, its state directory and the temp dir holding it.
pub fn stopped_without_state() -> (Vtpm, PathBuf, PathBuf) {
    let mut v = Vtpm::start_socket();
    assert!(v.guard.terminate().is_some());
    let dir = v.dir();
    std::fs::remove_dir_all(&dir).unwrap();
    let tmp = v.tmp.path().to_path_buf();
    ca_config(&tmp, "sha256");
    (v, dir, tmp)
}

/// The setup's log says each of `lines`.
pub fn assert_logged(text: &str, lines: &[&str]) {
    for line in lines {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
}

/// `vtpm install --prefix PREFIX`, which must succeed; its output.
pub fn install(prefix: &Path) -> String {
    run_ok(
        Command::new(vtpm_bin())
            .args(["install", "--prefix"])
            .arg(prefix),
    )
}

/// A run that must have succeeded, its stderr shown when it did not.
pub fn assert_success(out: &Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Run a command that must succeed; its stdout.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run");
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// swtpm_setup.conf and swtpm-localca.conf (and .options) for a CA in `dir/ca`.
pub fn ca_config(dir: &Path, banks: &str) -> PathBuf {
    let ca = dir.join("ca");
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
            "# test configuration\ncreate_certs_tool = /usr/bin/swtpm_localca\ncreate_certs_tool_config = {}\ncreate_certs_tool_options = {}\nactive_pcr_banks = {banks}\n",
            localca.display(),
            options.display()
        ),
    )
    .unwrap();
    setup
}

/// A manufactured TPM being checked.
pub struct Provisioned {
    /// TCTI of the vtpm serving it.
    pub tcti: String,
    /// Where files go.
    pub scratch: PathBuf,
    /// The local CA's directory (swtpm-localca-rootca-cert.pem, issuercert.pem).
    pub ca: PathBuf,
}

impl Provisioned {
    /// Start `v` again on the state it was manufactured on (powered on with
    /// Startup sent; `extra` options after), to be checked against the CA
    /// in `ca` of its temp dir; files go to that temp dir.
    pub fn serve(v: &mut Vtpm, extra: &[&str]) -> Provisioned {
        let mut args = vec!["--flags", "not-need-init,startup-clear"];
        args.extend_from_slice(extra);
        v.restart_socket(&args);
        let scratch = v.tmp.path().to_path_buf();
        Provisioned {
            tcti: v.tcti(),
            ca: scratch.join("ca"),
            scratch,
        }
    }

    fn file(&self, name: &str) -> String {
        self.scratch.join(name).to_str().unwrap().to_string()
    }

    /// Read the certificate at NV `index` (DER), convert it to PEM; its path.
    pub fn read_cert(&self, index: &str) -> String {
        let der = self.file(&format!("{index}.der"));
        tpm2_ok("tpm2_nvread", &[index, "-C", "o", "-o", &der], &self.tcti);
        let pem = self.file(&format!("{index}.pem"));
        run_ok(Command::new("openssl").args(["x509", "-inform", "der", "-in", &der, "-out", &pem]));
        pem
    }

    /// `openssl verify` of the certificate at `index` against the CA: its output.
    pub fn verify(&self, index: &str) -> String {
        let pem = self.read_cert(index);
        let out = run_ok(
            Command::new("openssl").args([
                "verify",
                "-CAfile",
                self.ca
                    .join("swtpm-localca-rootca-cert.pem")
                    .to_str()
                    .unwrap(),
                "-untrusted",
                self.ca.join("issuercert.pem").to_str().unwrap(),
                &pem,
            ]),
        );
        assert!(out.trim().ends_with(": OK"), "{index}: {out}");
        println!("openssl verify ({index}): {}", out.trim());
        out
    }

    /// `openssl x509 -text` of the certificate at `index`.
    pub fn text(&self, index: &str) -> String {
        let pem = self.read_cert(index);
        run_ok(Command::new("openssl").args(["x509", "-in", &pem, "-noout", "-text"]))
    }

    /// The certificate at `index` holds the public key of the persistent key `handle`.
    pub fn holds_key_of(&self, index: &str, handle: &str) {
        let pem = self.read_cert(index);
        let cert_key =
            run_ok(Command::new("openssl").args(["x509", "-in", &pem, "-pubkey", "-noout"]));
        let ek = self.file(&format!("{handle}.pub.pem"));
        tpm2_ok(
            "tpm2_readpublic",
            &["-c", handle, "-f", "pem", "-o", &ek],
            &self.tcti,
        );
        let ek_key = std::fs::read_to_string(&ek).unwrap();
        assert_eq!(
            cert_key.trim(),
            ek_key.trim(),
            "{index} holds the key of {handle}"
        );
    }

    /// The RSA modulus of the persistent key `handle` (tpm2_readpublic).
    pub fn modulus(&self, handle: &str) -> String {
        let out = tpm2_ok("tpm2_readpublic", &["-c", handle], &self.tcti);
        let rsa = out
            .lines()
            .find_map(|l| l.trim().strip_prefix("rsa: "))
            .unwrap_or_else(|| panic!("no modulus in {out}"));
        rsa.trim().to_lowercase()
    }

    /// The modulus in the certificate at `index` (openssl x509 -modulus).
    pub fn cert_modulus(&self, index: &str) -> String {
        let pem = self.read_cert(index);
        let out = run_ok(Command::new("openssl").args(["x509", "-in", &pem, "-noout", "-modulus"]));
        out.trim()
            .strip_prefix("Modulus=")
            .unwrap_or_else(|| panic!("{out}"))
            .to_lowercase()
    }

    /// NV `index` is write-locked: its attributes say so and a platform write is refused.
    pub fn locked(&self, index: &str) {
        let public = tpm2_ok("tpm2_nvreadpublic", &[index], &self.tcti);
        assert!(public.contains("writelocked"), "{index}: {public}");
        let data = self.file("one-byte");
        std::fs::write(&data, [0u8]).unwrap();
        let out = run_tpm2("tpm2_nvwrite", &[index, "-C", "p", "-i", &data], &self.tcti);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{index} took a write");
        assert!(
            err.contains("0x148") || err.contains("NV access locked"),
            "{err}"
        );
    }

    /// The PCR banks with PCRs selected (tpm2_getcap pcrs).
    pub fn active_banks(&self) -> Vec<String> {
        let out = tpm2_ok("tpm2_getcap", &["pcrs"], &self.tcti);
        out.lines()
            .filter_map(|l| {
                let (bank, pcrs) = l.trim().strip_prefix("- ")?.split_once(':')?;
                pcrs.contains('0').then(|| bank.trim().to_string())
            })
            .collect()
    }
}
