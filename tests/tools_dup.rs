//! Credentials and duplication with tpm2-tools against the real `vtpm`
//! binary: MakeCredential/ActivateCredential in the tools' EK/AK flow,
//! Duplicate/Import between two instances, Import of openssl keys, Rewrap
//! (no tool: raw commands), and error codes side by side with swtpm.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use common::{have_tpm2_tools, run_tpm2, start_swtpm, tpm2_ok as ok, Vtpm};

macro_rules! need_tools {
    () => {
        if !have_tpm2_tools() {
            eprintln!("tpm2-tools not installed: skipped (scripts/test.sh installs them)");
            return;
        }
    };
}

/// Run a tool that must fail; returns the TPM response code it reports
/// ("0x3df"), or the whole stderr when it names none.
fn fail_code(tool: &str, args: &[&str], tcti: &str) -> String {
    let out = run_tpm2(tool, args, tcti);
    assert!(!out.status.success(), "{tool} {args:?} should have failed");
    code_of(&out)
}

/// The TPM response code a failed tool reports ("0x3df"), or its stderr.
fn code_of(out: &std::process::Output) -> String {
    let e = String::from_utf8_lossy(&out.stderr).into_owned();
    match e.find("ErrorCode (0x") {
        Some(i) => {
            let hex = &e[i + 13..];
            let end = hex.find(')').unwrap_or(hex.len());
            format!("0x{:x}", u32::from_str_radix(&hex[..end], 16).unwrap_or(0))
        }
        None => e,
    }
}

/// Flush the transient objects tools leave loaded (there is no resource manager).
fn flush(t: &str) {
    ok("tpm2_flushcontext", &["-t"], t);
}

fn to_hex(b: impl AsRef<[u8]>) -> String {
    b.as_ref().iter().map(|x| format!("{x:02x}")).collect()
}

fn from_hex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

fn p(dir: &Path, name: &str) -> String {
    dir.join(name).to_str().unwrap().to_string()
}

/// A policy session satisfying the EK's policy (PolicySecret(endorsement)).
fn ek_session(t: &str, dir: &Path) -> String {
    let s = p(dir, "ek-session.ctx");
    ok("tpm2_startauthsession", &["--policy-session", "-S", &s], t);
    ok("tpm2_policysecret", &["-S", &s, "-c", "e"], t);
    s
}

/// A policy session for TPM2_Duplicate (PolicyCommandCode).
fn dup_session(t: &str, dir: &Path) -> String {
    let s = p(dir, "dup-session.ctx");
    ok("tpm2_startauthsession", &["--policy-session", "-S", &s], t);
    ok(
        "tpm2_policycommandcode",
        &["-S", &s, "TPM2_CC_Duplicate"],
        t,
    );
    s
}

/// EK and AK of `alg` as tpm2_createek / tpm2_createak make them; returns the
/// AK's Name in hex.
fn ek_ak(t: &str, dir: &Path, alg: &str) -> String {
    ok(
        "tpm2_createek",
        &["-c", &p(dir, "ek.ctx"), "-G", alg, "-u", &p(dir, "ek.pub")],
        t,
    );
    flush(t);
    let scheme = if alg == "rsa" { "rsassa" } else { "ecdsa" };
    ok(
        "tpm2_createak",
        &[
            "-C",
            &p(dir, "ek.ctx"),
            "-c",
            &p(dir, "ak.ctx"),
            "-G",
            alg,
            "-g",
            "sha256",
            "-s",
            scheme,
            "-u",
            &p(dir, "ak.pub"),
            "-n",
            &p(dir, "ak.name"),
            "-r",
            &p(dir, "ak.priv"),
        ],
        t,
    );
    flush(t);
    to_hex(std::fs::read(dir.join("ak.name")).unwrap())
}

/// tpm2_activatecredential of `blob` with the EK/AK of [`ek_ak`]: the
/// recovered certinfo, or the failing response code.
fn activate(t: &str, dir: &Path, blob: &str) -> Result<Vec<u8>, String> {
    let s = ek_session(t, dir);
    let out_file = p(dir, "certinfo.out");
    let _ = std::fs::remove_file(&out_file);
    let args = [
        "-c",
        &p(dir, "ak.ctx"),
        "-C",
        &p(dir, "ek.ctx"),
        "-i",
        blob,
        "-o",
        &out_file,
        "-P",
        &format!("session:{s}"),
    ];
    let out = run_tpm2("tpm2_activatecredential", &args, t);
    let r = if out.status.success() {
        Ok(std::fs::read(&out_file).unwrap())
    } else {
        Err(code_of(&out))
    };
    // The session is flushed by a failed command; the flush may then fail.
    let _ = run_tpm2("tpm2_flushcontext", &[&s], t);
    flush(t);
    r
}

fn credential_flow(alg: &str) {
    let v = Vtpm::start_socket();
    let t = v.tcti();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let name = ek_ak(&t, d, alg);
    let secret = p(d, "secret.data");
    std::fs::write(&secret, b"a credential 123").unwrap();
    // The CA's side in software (the tools' -T none) and by the TPM.
    let sw = p(d, "cred.sw");
    ok(
        "tpm2_makecredential",
        &[
            "-T",
            "none",
            "-e",
            &p(d, "ek.pub"),
            "-s",
            &secret,
            "-n",
            &name,
            "-o",
            &sw,
        ],
        &t,
    );
    let hw = p(d, "cred.tpm");
    ok(
        "tpm2_makecredential",
        &["-e", &p(d, "ek.pub"), "-s", &secret, "-n", &name, "-o", &hw],
        &t,
    );
    flush(&t);
    for blob in [&sw, &hw] {
        assert_eq!(
            activate(&t, d, blob).expect("activation"),
            b"a credential 123"
        );
    }
    // A credential for another object does not activate: the Name is in the HMAC.
    let other = p(d, "cred.other");
    let mut wrong = from_hex(&name);
    wrong[5] ^= 1;
    ok(
        "tpm2_makecredential",
        &[
            "-T",
            "none",
            "-e",
            &p(d, "ek.pub"),
            "-s",
            &secret,
            "-n",
            &to_hex(wrong),
            "-o",
            &other,
        ],
        &t,
    );
    assert_eq!(
        activate(&t, d, &other),
        Err("0x1df".into()),
        "TPM_RC_INTEGRITY on credentialBlob"
    );
}

#[test]
fn makecredential_and_activatecredential_with_an_rsa_ek_and_ak() {
    need_tools!();
    credential_flow("rsa");
}

#[test]
fn makecredential_and_activatecredential_with_an_ecc_ek_and_ak() {
    need_tools!();
    credential_flow("ecc");
}

/// A storage primary of `alg` in `t`, its public area exported to `pub_file`.
fn storage_primary(t: &str, ctx: &str, alg: &str, pub_file: &str) {
    ok(
        "tpm2_createprimary",
        &["-C", "o", "-g", "sha256", "-G", alg, "-c", ctx],
        t,
    );
    ok("tpm2_readpublic", &["-c", ctx, "-o", pub_file], t);
    flush(t);
}

/// The Name (hex) tpm2_readpublic reports for `ctx`.
fn name_of(t: &str, ctx: &str) -> String {
    let out = ok("tpm2_readpublic", &["-c", ctx], t);
    flush(t);
    out.lines()
        .find_map(|l| l.strip_prefix("name: "))
        .expect("name line")
        .trim()
        .to_string()
}

/// A duplicable key (policy: PolicyCommandCode(Duplicate)) under a new primary
/// in `t`; returns the key's context file and its Name.
fn duplicable_key(t: &str, d: &Path, key_alg: &str) -> (String, String) {
    let policy = p(d, "dup.policy");
    let trial = p(d, "trial.ctx");
    ok("tpm2_startauthsession", &["-S", &trial], t);
    ok(
        "tpm2_policycommandcode",
        &["-S", &trial, "-L", &policy, "TPM2_CC_Duplicate"],
        t,
    );
    ok("tpm2_flushcontext", &[&trial], t);
    let parent = p(d, "a-primary.ctx");
    storage_primary(t, &parent, "rsa", &p(d, "a-primary.pub"));
    let (pubf, privf, ctx) = (p(d, "key.pub"), p(d, "key.prv"), p(d, "key.ctx"));
    ok(
        "tpm2_create",
        &[
            "-C",
            &parent,
            "-G",
            key_alg,
            "-g",
            "sha256",
            "-u",
            &pubf,
            "-r",
            &privf,
            "-L",
            &policy,
            "-a",
            "sensitivedataorigin|userwithauth|decrypt|sign",
        ],
        t,
    );
    flush(t);
    ok(
        "tpm2_load",
        &["-C", &parent, "-u", &pubf, "-r", &privf, "-c", &ctx],
        t,
    );
    flush(t);
    let name = name_of(t, &ctx);
    (ctx, name)
}

#[test]
fn duplicate_in_one_vtpm_and_import_in_another() {
    need_tools!();
    let (a, b) = (Vtpm::start_socket(), Vtpm::start_socket());
    let (ta, tb) = (a.tcti(), b.tcti());
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (key, key_name) = duplicable_key(&ta, d, "rsa");
    for parent_alg in ["rsa", "ecc"] {
        // The new parent lives in B; A sees only its public area.
        let srk = p(d, &format!("b-{parent_alg}.ctx"));
        let srk_pub = p(d, &format!("b-{parent_alg}.pub"));
        storage_primary(&tb, &srk, parent_alg, &srk_pub);
        let np = p(d, "np.ctx");
        ok(
            "tpm2_loadexternal",
            &["-C", "o", "-u", &srk_pub, "-c", &np],
            &ta,
        );
        flush(&ta);
        for wrapper in ["aes", "null"] {
            let tag = format!("{parent_alg}-{wrapper}");
            let (dup, seed, k) = (
                p(d, &format!("{tag}.dup")),
                p(d, &format!("{tag}.seed")),
                p(d, &format!("{tag}.key")),
            );
            let s = dup_session(&ta, d);
            let mut args = vec![
                "-C".to_string(),
                np.clone(),
                "-c".into(),
                key.clone(),
                "-G".into(),
                wrapper.into(),
                "-p".into(),
                format!("session:{s}"),
                "-r".into(),
                dup.clone(),
                "-s".into(),
                seed.clone(),
            ];
            if wrapper == "aes" {
                args.extend(["-o".to_string(), k.clone()]);
            }
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            ok("tpm2_duplicate", &args, &ta);
            ok("tpm2_flushcontext", &[&s], &ta);
            flush(&ta);
            let imported = p(d, &format!("{tag}.imported"));
            let key_pub = p(d, "key.pub");
            let mut args = vec![
                "-C", &srk, "-u", &key_pub, "-i", &dup, "-s", &seed, "-G", wrapper, "-r", &imported,
            ];
            if wrapper == "aes" {
                assert_eq!(std::fs::read(&k).unwrap().len(), 16, "AES-128 key returned");
                args.extend(["-k", &k]);
            }
            ok("tpm2_import", &args, &tb);
            flush(&tb);
            let loaded = p(d, &format!("{tag}.ctx"));
            ok(
                "tpm2_load",
                &[
                    "-C",
                    &srk,
                    "-u",
                    d.join("key.pub").to_str().unwrap(),
                    "-r",
                    &imported,
                    "-c",
                    &loaded,
                ],
                &tb,
            );
            flush(&tb);
            assert_eq!(name_of(&tb, &loaded), key_name, "{tag}: same key in B");
        }
    }
}

#[test]
fn duplicate_without_outer_wrapper_imports_with_the_inner_key_only() {
    need_tools!();
    let v = Vtpm::start_socket();
    let t = v.tcti();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (key, key_name) = duplicable_key(&t, d, "ecc");
    let s = dup_session(&t, d);
    let (dup, seed, k) = (p(d, "n.dup"), p(d, "n.seed"), p(d, "n.key"));
    ok(
        "tpm2_duplicate",
        &[
            "-C",
            "null",
            "-c",
            &key,
            "-G",
            "aes",
            "-p",
            &format!("session:{s}"),
            "-r",
            &dup,
            "-s",
            &seed,
            "-o",
            &k,
        ],
        &t,
    );
    ok("tpm2_flushcontext", &[&s], &t);
    flush(&t);
    // No new parent: no seed.
    assert_eq!(std::fs::read(&seed).unwrap(), [0, 0]);
    let parent = p(d, "a-primary.ctx");
    let imported = p(d, "n.imported");
    ok(
        "tpm2_import",
        &[
            "-C",
            &parent,
            "-u",
            &p(d, "key.pub"),
            "-i",
            &dup,
            "-s",
            &seed,
            "-G",
            "aes",
            "-k",
            &k,
            "-r",
            &imported,
        ],
        &t,
    );
    flush(&t);
    let ctx = p(d, "n.ctx");
    ok(
        "tpm2_load",
        &[
            "-C",
            &parent,
            "-u",
            &p(d, "key.pub"),
            "-r",
            &imported,
            "-c",
            &ctx,
        ],
        &t,
    );
    flush(&t);
    assert_eq!(name_of(&t, &ctx), key_name);
}

#[test]
fn tpm2_import_of_openssl_rsa_and_ecc_keys() {
    need_tools!();
    let v = Vtpm::start_socket();
    let t = v.tcti();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let parent = p(d, "srk.ctx");
    storage_primary(&t, &parent, "rsa", &p(d, "srk.pub"));
    let rsa = p(d, "rsa.pem");
    let ecc = p(d, "ecc.pem");
    let gen = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .output()
            .expect("openssl");
        assert!(out.status.success(), "openssl {args:?}: {out:?}");
    };
    gen(&["genrsa", "-out", &rsa, "2048"]);
    gen(&[
        "ecparam",
        "-name",
        "prime256v1",
        "-genkey",
        "-noout",
        "-out",
        &ecc,
    ]);
    for (alg, pem) in [("rsa", &rsa), ("ecc", &ecc)] {
        let (pubf, privf, ctx) = (
            p(d, &format!("{alg}.pub")),
            p(d, &format!("{alg}.prv")),
            p(d, &format!("{alg}.ctx")),
        );
        ok(
            "tpm2_import",
            &[
                "-C", &parent, "-G", alg, "-i", pem, "-u", &pubf, "-r", &privf,
            ],
            &t,
        );
        flush(&t);
        ok(
            "tpm2_load",
            &["-C", &parent, "-u", &pubf, "-r", &privf, "-c", &ctx],
            &t,
        );
        flush(&t);
        let out = ok("tpm2_readpublic", &["-c", &ctx], &t);
        flush(&t);
        assert!(out.contains(&format!("value: {alg}")), "{out}");
        // The public key is openssl's.
        let text = std::process::Command::new("openssl")
            .args([
                if alg == "rsa" { "rsa" } else { "ec" },
                "-in",
                pem,
                "-noout",
                "-text",
            ])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&text.stdout).replace([' ', '\n', ':'], "");
        let unique = out
            .lines()
            .find_map(|l| l.strip_prefix(if alg == "rsa" { "rsa: " } else { "x: " }))
            .unwrap()
            .trim()
            .to_string();
        assert!(
            text.contains(&unique),
            "{alg}: public key from the PEM file"
        );
    }
}

/// Error cases of duplication and credentials; returns (case, response code).
fn error_cases(t: &str, d: &Path) -> Vec<(&'static str, String)> {
    let mut codes = Vec::new();
    let (key, _) = duplicable_key(t, d, "rsa");
    let parent = p(d, "a-primary.ctx");
    let np = p(d, "np.ctx");
    ok(
        "tpm2_loadexternal",
        &["-C", "o", "-u", &p(d, "a-primary.pub"), "-c", &np],
        t,
    );
    flush(t);
    let (dup, seed, k) = (p(d, "e.dup"), p(d, "e.seed"), p(d, "e.key"));
    let s = dup_session(t, d);
    let sess = format!("session:{s}");
    ok(
        "tpm2_duplicate",
        &[
            "-C", &np, "-c", &key, "-G", "aes", "-p", &sess, "-r", &dup, "-s", &seed, "-o", &k,
        ],
        t,
    );
    ok("tpm2_flushcontext", &[&s], t);
    flush(t);
    let import = |dup: &str, seed: &str, g: &str, key: Option<&str>| {
        let out = p(d, "x.imported");
        let mut a = vec![
            "-C",
            &parent,
            "-u",
            d.join("key.pub").to_str().unwrap(),
            "-i",
            dup,
            "-s",
            seed,
            "-G",
            g,
            "-r",
            &out,
        ]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
        if let Some(k) = key {
            a.extend(["-k".to_string(), k.to_string()]);
        }
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        let c = fail_code("tpm2_import", &a, t);
        flush(t);
        c
    };
    let tamper = |src: &str, name: &str, at: usize| {
        let mut b = std::fs::read(src).unwrap();
        b[at] ^= 0x55;
        let f = p(d, name);
        std::fs::write(&f, b).unwrap();
        f
    };
    let bad_dup = tamper(&dup, "bad.dup", 60);
    codes.push((
        "import tampered duplicate",
        import(&bad_dup, &seed, "aes", Some(&k)),
    ));
    let bad_seed = tamper(&seed, "bad.seed", 60);
    codes.push((
        "import tampered seed",
        import(&dup, &bad_seed, "aes", Some(&k)),
    ));
    let wrong_key = p(d, "wrong.key");
    std::fs::write(&wrong_key, [7u8; 16]).unwrap();
    codes.push((
        "import wrong inner key",
        import(&dup, &seed, "aes", Some(&wrong_key)),
    ));
    codes.push((
        "import inner blob as plain",
        import(&dup, &seed, "null", None),
    ));
    // Duplicating a fixedParent object, with a password, with another policy.
    let s = dup_session(t, d);
    let sess = format!("session:{s}");
    let x = (p(d, "x.dup"), p(d, "x.seed"));
    codes.push((
        "duplicate fixedParent",
        fail_code(
            "tpm2_duplicate",
            &[
                "-C", &np, "-c", &parent, "-G", "null", "-p", &sess, "-r", &x.0, "-s", &x.1,
            ],
            t,
        ),
    ));
    let _ = run_tpm2("tpm2_flushcontext", &[&s], t);
    flush(t);
    codes.push((
        "duplicate with a password",
        fail_code(
            "tpm2_duplicate",
            &[
                "-C", &np, "-c", &key, "-G", "null", "-p", "", "-r", &x.0, "-s", &x.1,
            ],
            t,
        ),
    ));
    flush(t);
    ok("tpm2_startauthsession", &["--policy-session", "-S", &s], t);
    ok("tpm2_policycommandcode", &["-S", &s, "TPM2_CC_Create"], t);
    codes.push((
        "duplicate with another command's policy",
        fail_code(
            "tpm2_duplicate",
            &[
                "-C", &np, "-c", &key, "-G", "null", "-p", &sess, "-r", &x.0, "-s", &x.1,
            ],
            t,
        ),
    ));
    let _ = run_tpm2("tpm2_flushcontext", &[&s], t);
    flush(t);
    // An encryptedDuplication key needs both wrappers.
    let (ed_pub, ed_priv, ed) = (p(d, "ed.pub"), p(d, "ed.prv"), p(d, "ed.ctx"));
    ok(
        "tpm2_create",
        &[
            "-C",
            &parent,
            "-G",
            "ecc",
            "-u",
            &ed_pub,
            "-r",
            &ed_priv,
            "-L",
            &p(d, "dup.policy"),
            "-a",
            "sensitivedataorigin|userwithauth|sign|encryptedduplication",
        ],
        t,
    );
    flush(t);
    ok(
        "tpm2_load",
        &["-C", &parent, "-u", &ed_pub, "-r", &ed_priv, "-c", &ed],
        t,
    );
    flush(t);
    for (case, new_parent, wrapper) in [
        (
            "encryptedDuplication without inner wrapper",
            np.as_str(),
            "null",
        ),
        ("encryptedDuplication to the null parent", "null", "aes"),
    ] {
        let s = dup_session(t, d);
        let sess = format!("session:{s}");
        let mut a = vec![
            "-C", new_parent, "-c", &ed, "-G", wrapper, "-p", &sess, "-r", &x.0, "-s", &x.1,
        ];
        if wrapper == "aes" {
            a.extend(["-o", &k]);
        }
        codes.push((case, fail_code("tpm2_duplicate", &a, t)));
        let _ = run_tpm2("tpm2_flushcontext", &[&s], t);
        flush(t);
    }
    let s = dup_session(t, d);
    let sess = format!("session:{s}");
    ok(
        "tpm2_duplicate",
        &[
            "-C", &np, "-c", &ed, "-G", "aes", "-p", &sess, "-r", &x.0, "-s", &x.1, "-o", &k,
        ],
        t,
    );
    ok("tpm2_flushcontext", &[&s], t);
    flush(t);
    let out = p(d, "x.imported");
    let mut import_ed = |case: &'static str, g: &str, key: Option<&str>| {
        let mut a = vec![
            "-C", &parent, "-u", &ed_pub, "-i", &x.0, "-s", &x.1, "-G", g, "-r", &out,
        ];
        if let Some(k) = key {
            a.extend(["-k", k]);
        }
        let out = run_tpm2("tpm2_import", &a, t);
        flush(t);
        codes.push((
            case,
            if out.status.success() {
                "success".into()
            } else {
                code_of(&out)
            },
        ));
    };
    import_ed("import encryptedDuplication", "aes", Some(&k));
    import_ed(
        "import encryptedDuplication without inner key",
        "null",
        None,
    );
    // Credentials.
    let name = ek_ak(t, d, "rsa");
    let secret = p(d, "secret.data");
    std::fs::write(&secret, b"12345678").unwrap();
    let cred = p(d, "cred.out");
    ok(
        "tpm2_makecredential",
        &[
            "-e",
            &p(d, "ek.pub"),
            "-s",
            &secret,
            "-n",
            &name,
            "-o",
            &cred,
        ],
        t,
    );
    flush(t);
    codes.push((
        "makecredential with a signing key",
        fail_code(
            "tpm2_makecredential",
            &[
                "-e",
                &p(d, "ak.pub"),
                "-s",
                &secret,
                "-n",
                &name,
                "-o",
                &p(d, "y"),
            ],
            t,
        ),
    ));
    flush(t);
    let code = |r: Result<Vec<u8>, String>| r.err().unwrap_or_else(|| "success".into());
    // cred.out: magic, version, TPM2B_ID_OBJECT (2 + 34 + 10 octets), TPM2B_ENCRYPTED_SECRET.
    codes.push((
        "activate tampered blob",
        code(activate(t, d, &tamper(&cred, "c1", 50))),
    ));
    codes.push((
        "activate tampered secret",
        code(activate(t, d, &tamper(&cred, "c2", 200))),
    ));
    codes
}

#[test]
fn duplication_and_credential_error_codes_match_swtpm() {
    need_tools!();
    let v = Vtpm::start_socket();
    let dir = tempfile::tempdir().unwrap();
    let ours = error_cases(&v.tcti(), dir.path());
    let expect = [
        ("import tampered duplicate", "0x3df"),
        ("import tampered seed", "0x101"),
        ("import wrong inner key", "0x3d5"),
        ("import inner blob as plain", "0x3d5"),
        ("duplicate fixedParent", "0x99d"),
        ("duplicate with a password", "0x124"),
        ("duplicate with another command's policy", "0x99d"),
        ("encryptedDuplication without inner wrapper", "0x2d6"),
        ("encryptedDuplication to the null parent", "0x285"),
        ("import encryptedDuplication", "success"),
        ("import encryptedDuplication without inner key", "0x1c2"),
        ("makecredential with a signing key", "0x18a"),
        ("activate tampered blob", "0x1df"),
        ("activate tampered secret", "0x101"),
    ];
    let expect: Vec<(&str, String)> = expect.iter().map(|(a, b)| (*a, b.to_string())).collect();
    assert_eq!(settle(ours.clone()), settle(expect));
    if let Some(sw) = start_swtpm() {
        let swdir = tempfile::tempdir().unwrap();
        let theirs = error_cases(&sw.tcti(), swdir.path());
        assert_eq!(settle(ours), settle(theirs), "as libtpms");
    }
}

/// A wrong inner key decrypts the duplicate into random bytes; libtpms (and
/// vtpm) first read their leading TPM2B size: TPM_RC_SIZE when it exceeds a
/// digest (almost always), TPM_RC_INTEGRITY in the ~0.1% of cases where the
/// random size fits. Either is the right answer for that blob, so the case
/// is compared as "one of the two".
fn settle<S: AsRef<str>>(cases: Vec<(&str, S)>) -> Vec<(String, String)> {
    cases
        .into_iter()
        .map(|(name, code)| {
            let code = code.as_ref();
            let code = if name == "import wrong inner key" && (code == "0x3d5" || code == "0x3df") {
                "0x3d5 or 0x3df"
            } else {
                code
            };
            (name.to_string(), code.to_string())
        })
        .collect()
}

/// Send one command on a fresh connection and read the response.
fn send(port: u16, cmd: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    s.write_all(cmd).unwrap();
    let mut hdr = [0u8; 10];
    s.read_exact(&mut hdr).unwrap();
    let size = u32::from_be_bytes([hdr[2], hdr[3], hdr[4], hdr[5]]) as usize;
    let mut rest = vec![0u8; size - 10];
    s.read_exact(&mut rest).unwrap();
    [hdr.to_vec(), rest].concat()
}

fn tpm2b(b: &[u8]) -> Vec<u8> {
    [(b.len() as u16).to_be_bytes().to_vec(), b.to_vec()].concat()
}

/// TPM2_Rewrap(oldParent, newParent) with an empty password for oldParent:
/// (response code, outDuplicate and outSymSeed as TPM2Bs).
fn rewrap(port: u16, old: u32, new: u32, dup: &[u8], name: &[u8], seed: &[u8]) -> (u32, Vec<u8>) {
    // TPMS_AUTH_COMMAND: TPM_RS_PW, empty nonce, no attributes, empty password.
    let auth = [0x40, 0, 0, 9, 0, 0, 0, 0, 0];
    let body = [
        old.to_be_bytes().to_vec(),
        new.to_be_bytes().to_vec(),
        (9u32).to_be_bytes().to_vec(),
        auth.to_vec(),
        dup.to_vec(),
        tpm2b(name),
        seed.to_vec(),
    ]
    .concat();
    let mut cmd = 0x8002u16.to_be_bytes().to_vec();
    cmd.extend((body.len() as u32 + 10).to_be_bytes());
    cmd.extend(0x152u32.to_be_bytes());
    cmd.extend(body);
    let r = send(port, &cmd);
    let rc = u32::from_be_bytes([r[6], r[7], r[8], r[9]]);
    // tag, size, rc, parameterSize, then the parameters (before the auth area).
    let params = if rc == 0 {
        let n = u32::from_be_bytes([r[10], r[11], r[12], r[13]]) as usize;
        r[14..14 + n].to_vec()
    } else {
        Vec::new()
    };
    (rc, params)
}

/// Transient handles currently loaded.
fn transient_handles(t: &str) -> Vec<u32> {
    ok("tpm2_getcap", &["handles-transient"], t)
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- 0x"))
        .map(|h| u32::from_str_radix(h.trim(), 16).unwrap())
        .collect()
}

#[test]
fn rewrap_moves_a_duplicate_to_another_parent() {
    need_tools!();
    let v = Vtpm::start_socket();
    let ours = rewrap_flow(&v);
    assert_eq!(
        ours,
        [
            ("seed without old parent", 0x18b),
            ("another name", 0x1df),
            ("tampered seed", 0x3c4)
        ]
    );
    if let Some(sw) = start_swtpm() {
        assert_eq!(ours, rewrap_flow(&sw), "as libtpms");
    }
}

/// Rewrap a duplicate from an RSA to an ECC parent and import it there;
/// returns the response codes of the error cases.
fn rewrap_flow(v: &Vtpm) -> Vec<(&'static str, u32)> {
    let mut codes = Vec::new();
    let t = v.tcti();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (key, key_name) = duplicable_key(&t, d, "rsa");
    // Duplicate for parent 1 (the RSA primary), outer wrapper only.
    let p1 = p(d, "a-primary.ctx");
    let (dup, seed) = (p(d, "r.dup"), p(d, "r.seed"));
    let s = dup_session(&t, d);
    ok(
        "tpm2_duplicate",
        &[
            "-C",
            &p1,
            "-c",
            &key,
            "-G",
            "null",
            "-p",
            &format!("session:{s}"),
            "-r",
            &dup,
            "-s",
            &seed,
        ],
        &t,
    );
    ok("tpm2_flushcontext", &[&s], &t);
    flush(&t);
    // Both parents loaded (tools leave them loaded): find their handles.
    let p2 = p(d, "ecc-primary.ctx");
    ok(
        "tpm2_createprimary",
        &["-C", "o", "-G", "rsa", "-c", &p1],
        &t,
    );
    let h1 = transient_handles(&t);
    ok(
        "tpm2_createprimary",
        &["-C", "o", "-G", "ecc", "-c", &p2],
        &t,
    );
    let h2: Vec<u32> = transient_handles(&t)
        .into_iter()
        .filter(|h| !h1.contains(h))
        .collect();
    let (h1, h2) = (h1[0], h2[0]);
    let name = from_hex(&key_name);
    let (dup_b, seed_b) = (std::fs::read(&dup).unwrap(), std::fs::read(&seed).unwrap());
    let (rc, out) = rewrap(v.port, h1, h2, &dup_b, &name, &seed_b);
    assert_eq!(rc, 0, "Rewrap: {rc:#x}");
    let n = u16::from_be_bytes([out[0], out[1]]) as usize;
    std::fs::write(p(d, "r2.dup"), &out[..2 + n]).unwrap();
    std::fs::write(p(d, "r2.seed"), &out[2 + n..]).unwrap();
    // A seed without an old parent, and the old parent's duplicate under another name.
    let (rc, _) = rewrap(v.port, 0x4000_0007, h2, &dup_b, &name, &seed_b);
    codes.push(("seed without old parent", rc));
    let mut other = name.clone();
    other[4] ^= 1;
    let (rc, _) = rewrap(v.port, h1, h2, &dup_b, &other, &seed_b);
    codes.push(("another name", rc));
    let mut bad_seed = seed_b.clone();
    bad_seed[40] ^= 0x55;
    let (rc, _) = rewrap(v.port, h1, h2, &dup_b, &name, &bad_seed);
    codes.push(("tampered seed", rc));
    // NULL to NULL passes the blob through.
    let (rc, out) = rewrap(v.port, 0x4000_0007, 0x4000_0007, &dup_b, &name, &[0, 0]);
    assert_eq!(
        (rc, &out[..]),
        (0, &[dup_b.clone(), vec![0, 0]].concat()[..])
    );
    flush(&t);
    // The rewrapped duplicate imports under the ECC parent.
    let imported = p(d, "r2.imported");
    ok(
        "tpm2_import",
        &[
            "-C",
            &p2,
            "-u",
            &p(d, "key.pub"),
            "-i",
            &p(d, "r2.dup"),
            "-s",
            &p(d, "r2.seed"),
            "-G",
            "null",
            "-r",
            &imported,
        ],
        &t,
    );
    flush(&t);
    let ctx = p(d, "r2.ctx");
    ok(
        "tpm2_load",
        &[
            "-C",
            &p2,
            "-u",
            &p(d, "key.pub"),
            "-r",
            &imported,
            "-c",
            &ctx,
        ],
        &t,
    );
    flush(&t);
    assert_eq!(name_of(&t, &ctx), key_name);
    codes
}
