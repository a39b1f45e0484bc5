//! `vtpm setup` (and vtpm installed as `swtpm_setup`) manufactures a TPM
//! without external tools: EKs from the EK Credential Profile templates at
//! swtpm_setup's handles, EK and platform certificates signed by a local CA
//! it creates like swtpm-localca, written to the TCG indices and locked.
//! Checked through `vtpm socket` with tpm2-tools and openssl: the
//! certificates verify against the CA, hold the EKs' keys (the EKs equal
//! tpm2_createek's from the same templates), the indices refuse writes, the
//! PCR banks are those asked for; the state is kept, refused or replaced as
//! swtpm_setup's overwrite options say, and serial numbers never repeat.

#[macro_use]
mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use common::provisioned::{
    assert_logged, assert_success, ca_config, have_swtpm_tools, install, run_ok,
    stopped_without_state, Provisioned,
};
use common::{run_tpm2, tpm2_ok, vtpm_bin, Vtpm};

/// Run `program args...` (vtpm setup or an installed swtpm_setup).
fn run(program: &str, args: &[&str]) -> Output {
    Command::new("timeout")
        .arg("120")
        .arg(program)
        .args(args)
        .output()
        .unwrap()
}

/// `vtpm setup --tpm2 --tpmstate STATE ARGS...`.
fn vtpm_setup(state: &Path, args: &[&str]) -> Output {
    let mut all = vec!["setup", "--tpm2", "--tpmstate", state.to_str().unwrap()];
    all.extend_from_slice(args);
    run(vtpm_bin(), &all)
}

/// `vtpm setup --tpm2 --tpmstate STATE --config CONFIG --logfile LOG ARGS...`,
/// which must succeed; the log.
fn setup(state: &Path, tmp: &Path, args: &[&str]) -> String {
    let log = tmp.join("setup.log");
    let _ = std::fs::remove_file(&log);
    let config = tmp.join("swtpm_setup.conf");
    let mut all = vec![
        "--config",
        config.to_str().unwrap(),
        "--logfile",
        log.to_str().unwrap(),
    ];
    all.extend_from_slice(args);
    let out = vtpm_setup(state, &all);
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        out.status.success(),
        "vtpm setup failed:\n{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// The local CA's serial counter: the serial number its next certificate gets.
fn cert_serial(ca: &Path) -> u64 {
    std::fs::read_to_string(ca.join("certserial"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// tpm2_createek from the same template gives the key persisted at `handle`.
fn same_as_createek(t: &str, tmp: &Path, alg: &str, handle: &str) {
    let std = tmp.join(format!("createek-{alg}.pub"));
    let ours = tmp.join(format!("persisted-{alg}.pub"));
    tpm2_ok(
        "tpm2_createek",
        &["-c", "-", "-G", alg, "-u", std.to_str().unwrap()],
        t,
    );
    tpm2_ok(
        "tpm2_readpublic",
        &["-c", handle, "-o", ours.to_str().unwrap()],
        t,
    );
    assert_eq!(
        std::fs::read(&std).unwrap(),
        std::fs::read(&ours).unwrap(),
        "the EK at {handle} is tpm2_createek -G {alg}'s"
    );
}

#[test]
fn vtpm_setup_writes_verified_ek_and_platform_certificates() {
    need_tools_and_openssl!();
    let (mut v, dir, tmp) = stopped_without_state();
    let text = setup(
        &dir,
        &tmp,
        &[
            "--vmid",
            "vm-one:4c6f",
            "--create-ek-cert",
            "--create-platform-cert",
            "--lock-nvram",
        ],
    );
    println!("{text}");
    assert_logged(
        &text,
        &[
            "Creating root CA and a local CA's signing key and issuer cert.",
            "Successfully created RSA 2048 EK with handle 0x81010001.",
            "Successfully created NVRAM area 0x1c00002 for RSA 2048 EK certificate.",
            "Successfully created NVRAM area 0x1c08000 for platform certificate.",
            "Successfully created ECC EK with handle 0x81010016.",
            "Successfully created NVRAM area 0x1c00016 for ECC EK certificate.",
            "Successfully activated PCR banks sha256 among sha1,sha256,sha384,sha512.",
            "Successfully authored TPM state.",
        ],
    );
    let ca = tmp.join("ca");
    for (name, mode) in [
        ("signkey.pem", 0o600),
        ("swtpm-localca-rootca-privkey.pem", 0o600),
        ("issuercert.pem", 0o644),
        ("swtpm-localca-rootca-cert.pem", 0o644),
    ] {
        let m = std::fs::metadata(ca.join(name))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(m, mode, "{name}");
    }
    // Serial numbers 2, 3 and 4 went to the three certificates.
    assert_eq!(cert_serial(&ca), 4);

    let p = Provisioned::serve(&mut v, &[]);
    for index in ["0x01c00002", "0x01c00016", "0x01c08000"] {
        p.verify(index);
        p.locked(index);
    }
    assert_eq!(p.cert_modulus("0x01c00002"), p.modulus("0x81010001"));
    println!(
        "RSA EK modulus = certificate modulus: {}",
        p.modulus("0x81010001")
    );
    p.holds_key_of("0x01c00002", "0x81010001");
    p.holds_key_of("0x01c00016", "0x81010016");
    p.holds_key_of("0x01c08000", "0x81010001");
    assert_eq!(p.active_banks(), ["sha256"]);

    let ek = p.text("0x01c00002");
    for part in [
        "Subject: CN = vm-one:4c6f",
        "Issuer: CN = swtpm-localca",
        "X509v3 Subject Alternative Name: critical",
        "DirName:/2.23.133.2.1=id:5654504D/2.23.133.2.2=vtpm/2.23.133.2.3=id:00000000",
        "X509v3 Key Usage: critical\n                Key Encipherment",
        "2.23.133.8.1",
        "X509v3 Subject Directory Attributes",
        "CA:FALSE",
        "Not After : Dec 31 23:59:59 9999 GMT",
    ] {
        assert!(ek.contains(part), "missing {part:?} in:\n{ek}");
    }
    let ecc = p.text("0x01c00016");
    assert!(ecc.contains("NIST CURVE: P-384"), "{ecc}");
    assert!(ecc.contains("Key Agreement"), "{ecc}");
    let platform = p.text("0x01c08000");
    assert!(
        platform
            .contains("DirName:/2.23.133.5.1.1=vtpm-test/2.23.133.5.1.4=QEMU/2.23.133.5.1.5=2.1"),
        "{platform}"
    );
    assert!(platform.contains("2.23.133.8.2"), "{platform}");

    // The EKs are the profile's: tpm2_createek derives the same keys.
    same_as_createek(&p.tcti, &tmp, "rsa", "0x81010001");
    same_as_createek(&p.tcti, &tmp, "ecc384", "0x81010016");
}

#[test]
fn vtpm_setup_rsa_3072_signing_eks_and_pcr_banks() {
    need_tools_and_openssl!();
    let (mut v, dir, tmp) = stopped_without_state();
    let files = tmp.join("certs");
    std::fs::create_dir(&files).unwrap();
    let text = setup(
        &dir,
        &tmp,
        &[
            "--create-ek-cert",
            "--lock-nvram",
            "--rsa-keysize",
            "3072",
            "--allow-signing",
            "--decryption",
            "--pcr-banks",
            "sha256,sha384",
            "--write-ek-cert-files",
            files.to_str().unwrap(),
        ],
    );
    assert_logged(
        &text,
        &[
            "Successfully created RSA 3072 EK with handle 0x8101001c.",
            "Successfully created NVRAM area 0x1c0001d for RSA 3072 EK template.",
            "Successfully created NVRAM area 0x1c0001c for RSA 3072 EK certificate.",
            "Successfully created NVRAM area 0x1c00017 for ECC EK template.",
            "Successfully activated PCR banks sha256,sha384",
        ],
    );
    let p = Provisioned::serve(&mut v, &[]);
    p.verify("0x01c0001c");
    p.verify("0x01c00016");
    assert_eq!(p.cert_modulus("0x01c0001c"), p.modulus("0x8101001c"));
    assert_eq!(p.modulus("0x8101001c").len(), 768);
    for index in ["0x01c0001c", "0x01c0001d", "0x01c00016", "0x01c00017"] {
        p.locked(index);
    }
    assert_eq!(p.active_banks(), ["sha256", "sha384"]);
    let ek = p.text("0x01c0001c");
    assert!(ek.contains("Digital Signature, Key Encipherment"), "{ek}");
    // The signing EK signs.
    let digest = tmp.join("data");
    std::fs::write(&digest, b"signed by the EK").unwrap();
    let sig = tmp.join("sig");
    let signed = run_tpm2(
        "tpm2_sign",
        &[
            "-c",
            "0x8101001c",
            "-g",
            "sha256",
            "-s",
            "rsassa",
            "-o",
            sig.to_str().unwrap(),
            digest.to_str().unwrap(),
        ],
        &p.tcti,
    );
    // The EK's authPolicy guards it (adminWithPolicy), userWithAuth lets its empty auth sign.
    assert!(
        signed.status.success(),
        "{}",
        String::from_utf8_lossy(&signed.stderr)
    );
    // --write-ek-cert-files: the certificates as in NV.
    let nv = std::fs::read(tmp.join("0x01c0001c.der")).unwrap();
    assert_eq!(std::fs::read(files.join("ek-rsa3072.crt")).unwrap(), nv);
    assert!(files.join("ek-secp384r1.crt").exists());
}

/// `--ecc-curve p256`: the ECC EK from template L-2, certified at 0x01c0000a.
#[test]
fn vtpm_setup_p256_ek_at_the_low_range_index() {
    need_tools_and_openssl!();
    let (mut v, dir, tmp) = stopped_without_state();
    let text = setup(
        &dir,
        &tmp,
        &["--create-ek-cert", "--lock-nvram", "--ecc-curve", "p256"],
    );
    assert_logged(
        &text,
        &[
            "Successfully created ECC EK with handle 0x81010002.",
            "Successfully created NVRAM area 0x1c0000a for ECC EK certificate.",
        ],
    );
    let p = Provisioned::serve(&mut v, &[]);
    p.verify("0x01c0000a");
    p.holds_key_of("0x01c0000a", "0x81010002");
    p.locked("0x01c0000a");
    assert!(p.text("0x01c0000a").contains("NIST CURVE: P-256"));
    same_as_createek(&p.tcti, &tmp, "ecc", "0x81010002");
}

/// vtpm installed as swtpm_setup: the overwrite options, and serial numbers
/// that keep rising across runs.
#[test]
fn swtpm_setup_name_keeps_refuses_or_replaces_an_existing_state() {
    need_tools_and_openssl!();
    let (mut v, dir, tmp) = stopped_without_state();
    let prefix = tmp.join("prefix");
    install(&prefix);
    let swtpm_setup = prefix.join("bin/swtpm_setup");
    assert_eq!(std::fs::read_link(&swtpm_setup).unwrap(), Path::new("vtpm"));
    let swtpm_setup = swtpm_setup.to_str().unwrap();
    let config = tmp.join("swtpm_setup.conf");
    let base = [
        "--tpm2",
        "--tpm-state",
        dir.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
        "--create-ek-cert",
        "--lock-nvram",
    ];
    let with = |extra: &[&str]| {
        let mut a = base.to_vec();
        a.extend_from_slice(extra);
        run(swtpm_setup, &a)
    };
    let out = with(&[]);
    assert_success(&out);
    let serial = |p: &Provisioned| {
        let text = p.text("0x01c00002");
        text.lines()
            .find(|l| l.contains("Serial Number"))
            .unwrap()
            .to_string()
    };
    let first = {
        let p = Provisioned::serve(&mut v, &[]);
        (p.modulus("0x81010001"), serial(&p))
    };
    assert!(v.guard.terminate().is_some());

    // Neither option: an existing state is an error, and it is left alone.
    let out = with(&[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("already exists"), "{err}");
    // --not-overwrite: success, nothing changed.
    let out = with(&[
        "--not-overwrite",
        "--logfile",
        tmp.join("keep.log").to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let log = std::fs::read_to_string(tmp.join("keep.log")).unwrap();
    assert!(
        log.contains("Not overwriting existing state file."),
        "{log}"
    );
    let p = Provisioned::serve(&mut v, &[]);
    assert_eq!(p.modulus("0x81010001"), first.0);
    assert!(v.guard.terminate().is_some());

    // --overwrite: a new TPM (new endorsement seed, new EK) with a new serial number.
    let out = with(&["--overwrite"]);
    assert_success(&out);
    let p = Provisioned::serve(&mut v, &[]);
    p.verify("0x01c00002");
    assert_ne!(p.modulus("0x81010001"), first.0);
    assert_eq!(p.cert_modulus("0x01c00002"), p.modulus("0x81010001"));
    let second = serial(&p);
    assert_ne!(second, first.1, "a serial number was reused");
    assert_eq!(cert_serial(&p.ca), 5);
}

/// The installed names: swtpm_setup and swtpm answer their capabilities as
/// the real tools do (only what vtpm has), and `swtpm socket` serves a TPM.
#[test]
fn installed_names_dispatch_on_argv0() {
    need_tools!();
    let d = tempfile::tempdir().unwrap();
    let prefix = d.path().join("prefix");
    let out = install(&prefix);
    assert!(out.contains("swtpm_setup"), "{out}");
    let bin = prefix.join("bin");
    assert!(!bin.join("swtpm_ioctl").exists());
    let json = |program: &Path, args: &[&str]| -> serde_json::Value {
        let out = run_ok(Command::new(program).args(args));
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{out}: {e}"))
    };
    let caps = json(&bin.join("swtpm_setup"), &["--print-capabilities"]);
    assert_eq!(caps["type"], "swtpm_setup");
    let features: Vec<String> = caps["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap().to_string())
        .collect();
    for f in ["tpm-2.0", "cmdarg-pwdfile-fd", "tpm2-rsa-keysize-3072"] {
        assert!(features.iter().any(|x| x == f), "{f} in {features:?}");
    }
    assert!(!features.iter().any(|x| x == "tpm-1.2"));
    for args in [
        &["--print-capabilities"][..],
        &["socket", "--print-capabilities"],
    ] {
        let caps = json(&bin.join("swtpm"), args);
        assert_eq!(caps["type"], "swtpm");
        let features: Vec<&str> = caps["features"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|f| f.as_str())
            .collect();
        // What libvirt probes for: cmdarg-pwd-fd (--key pwdfd=), cmdarg-migration.
        for f in [
            "tpm-2.0",
            "cmdarg-pwd-fd",
            "cmdarg-migration",
            "rsa-keysize-2048",
        ] {
            assert!(features.contains(&f), "{f} in {features:?}");
        }
        assert!(!features.contains(&"tpm-1.2"));
    }
    // `swtpm socket` is vtpm's socket mode.
    let v = Vtpm::start(
        bin.join("swtpm").to_str().unwrap(),
        common::Protocol::Swtpm,
        |dir, port| common::socket_args(dir, port, &["--flags", "not-need-init,startup-clear"]),
    );
    let random = tpm2_ok("tpm2_getrandom", &["--hex", "8"], &v.tcti());
    assert_eq!(random.trim().len(), 16);
    assert!(v.dir().join("vtpm-nvram.img").exists());
}

/// A CA that Debian's swtpm_localca created (gnutls keys) signs vtpm
/// setup's certificates, and the serial counter is shared.
#[test]
fn vtpm_setup_uses_a_ca_swtpm_localca_created() {
    need_tools_and_openssl!();
    if !have_swtpm_tools() {
        return;
    }
    let (mut v, dir, tmp) = stopped_without_state();
    let config = tmp.join("swtpm_setup.conf");
    // swtpm_setup with the real swtpm makes the CA (and a state we discard).
    let other = tmp.join("swtpm-state");
    std::fs::create_dir(&other).unwrap();
    let out = run(
        "swtpm_setup",
        &[
            "--tpm2",
            "--tpmstate",
            other.to_str().unwrap(),
            "--create-ek-cert",
            "--config",
            config.to_str().unwrap(),
            "--logfile",
            tmp.join("swtpm.log").to_str().unwrap(),
        ],
    );
    assert_success(&out);
    let ca = tmp.join("ca");
    let before = cert_serial(&ca);
    let text = setup(&dir, &tmp, &["--create-ek-cert", "--lock-nvram"]);
    assert!(!text.contains("Creating root CA"), "{text}");
    assert_eq!(cert_serial(&ca), before + 2);
    let p = Provisioned::serve(&mut v, &[]);
    p.verify("0x01c00002");
    p.verify("0x01c00016");
    p.holds_key_of("0x01c00002", "0x81010001");
}

/// Bad command lines fail in one line, before anything is touched.
#[test]
fn vtpm_setup_refuses_bad_options() {
    let d = tempfile::tempdir().unwrap();
    let state = d.path().join("state");
    for (args, needle) in [
        (vec!["--tpmstate", state.to_str().unwrap()], "--tpm2"),
        (vec!["--tpm2"], "--tpm-state is required"),
        (
            vec![
                "--tpm2",
                "--tpmstate",
                state.to_str().unwrap(),
                "--rsa-keysize",
                "4096",
            ],
            "2048 or 3072",
        ),
        (vec!["--take-ownership"], "TPM 1.2"),
        (vec!["--bogus"], "unknown option"),
    ] {
        let mut all = vec!["setup"];
        all.extend(args.iter().copied());
        let out = run(vtpm_bin(), &all);
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
    assert!(!state.exists());
}

/// An encrypted state, as libvirt asks for one (`--pwdfile-fd N --cipher
/// aes-256-cbc`, then `--key pwdfd=N,mode=aes-256-cbc` for the TPM): the
/// image holds no certificate in clear, and vtpm with the passphrase serves it.
#[test]
fn vtpm_setup_encrypts_the_state_with_a_passphrase_from_a_descriptor() {
    need_tools_and_openssl!();
    let (mut v, dir, tmp) = stopped_without_state();
    let pw = tmp.join("passphrase");
    std::fs::write(&pw, "correct horse battery staple").unwrap();
    let config = tmp.join("swtpm_setup.conf");
    // The shell opens the passphrase as descriptor 9, as libvirt passes it.
    let out = Command::new("sh")
        .arg("-c")
        .arg("exec \"$0\" setup --tpm2 --tpmstate \"$1\" --create-ek-cert --lock-nvram --config \"$2\" --pwdfile-fd 9 --cipher aes-256-cbc 9<\"$3\"")
        .arg(vtpm_bin())
        .arg(&dir)
        .arg(&config)
        .arg(&pw)
        .output()
        .unwrap();
    assert_success(&out);
    let image = std::fs::read(dir.join("vtpm-nvram.img")).unwrap();
    assert!(
        !image.windows(13).any(|w| w == b"swtpm-localca"),
        "a certificate is in clear in the image"
    );
    let key = format!("pwdfile={},mode=aes-256-cbc", pw.display());
    let p = Provisioned::serve(&mut v, &["--key", &key]);
    p.verify("0x01c00002");
    p.holds_key_of("0x01c00002", "0x81010001");
}

/// A setup that fails part-way (here: the CA's key is unreadable) removes
/// the state it created, so no half-made TPM is kept by a later
/// `--not-overwrite`.
#[test]
fn a_failed_setup_leaves_no_state_behind() {
    let d = tempfile::tempdir().unwrap();
    ca_config(d.path(), "sha256");
    let ca = d.path().join("ca");
    std::fs::create_dir(&ca).unwrap();
    std::fs::write(ca.join("signkey.pem"), "not a key").unwrap();
    std::fs::write(ca.join("issuercert.pem"), "not a certificate").unwrap();
    let state = d.path().join("state");
    let log = d.path().join("setup.log");
    let out = vtpm_setup(
        &state,
        &[
            "--create-ek-cert",
            "--config",
            d.path().join("swtpm_setup.conf").to_str().unwrap(),
            "--logfile",
            log.to_str().unwrap(),
        ],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("signkey.pem"), "{err}");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("Removed the partly manufactured state"),
        "{text}"
    );
    assert!(!state.join("vtpm-nvram.img").exists());
}

/// `--reconfigure --pcr-banks` (libvirt, when a domain's active PCR banks
/// change): the banks of an existing TPM change, its EK stays.
#[test]
fn reconfigure_changes_the_pcr_banks_of_an_existing_tpm() {
    need_tools!();
    let (mut v, dir, tmp) = stopped_without_state();
    let config = tmp.join("swtpm_setup.conf");
    let config = config.to_str().unwrap();
    // Nothing to reconfigure yet.
    let out = vtpm_setup(&dir, &["--reconfigure", "--pcr-banks", "sha384"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no TPM state"));
    setup(&dir, &tmp, &["--createek"]);
    let p = Provisioned::serve(&mut v, &[]);
    let before = tpm2_ok("tpm2_readpublic", &["-c", "0x81010001"], &p.tcti);
    assert_eq!(p.active_banks(), ["sha256"]);
    assert!(v.guard.terminate().is_some());

    let out = vtpm_setup(&dir, &["--reconfigure", "--createek"]);
    assert!(
        !out.status.success(),
        "--reconfigure with --createek is refused"
    );
    let out = vtpm_setup(
        &dir,
        &[
            "--config",
            config,
            "--reconfigure",
            "--pcr-banks",
            "sha1,sha384",
        ],
    );
    assert_success(&out);
    let p = Provisioned::serve(&mut v, &[]);
    assert_eq!(p.active_banks(), ["sha1", "sha384"]);
    assert_eq!(
        tpm2_ok("tpm2_readpublic", &["-c", "0x81010001"], &p.tcti),
        before
    );
}
