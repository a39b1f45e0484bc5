//! HMAC sessions with tpm2-tools against the real `vtpm` binary: plain,
//! salted to an RSA or ECC primary (`--tpmkey-context`), bound, and bound +
//! salted (`-c`), with parameter encryption both ways (tpm2_getrandom,
//! sealing with tpm2_create and unsealing with tpm2_unseal over the session),
//! and the HMAC failure codes of DA-protected and noDA objects.

mod common;

use std::path::Path;

use common::{have_tpm2_tools, start_swtpm, tpm2_fails as fails, tpm2_ok as ok, Vtpm};

/// Flush the transient objects the tools leave loaded (no resource manager;
/// the TPM has 3 object slots).
fn flush(tcti: &str) {
    ok("tpm2_flushcontext", &["-t"], tcti);
}

macro_rules! need_tools {
    () => {
        if !have_tpm2_tools() {
            eprintln!("tpm2-tools not installed: skipped (scripts/test.sh installs them)");
            return;
        }
    };
}

fn path(dir: &Path, name: &str) -> String {
    dir.join(name).to_str().unwrap().to_string()
}

/// Over the session file `s` (decrypt+encrypt on): GetRandom with an encrypted
/// response, a secret sealed under `prim` (inSensitive encrypted, outPrivate
/// encrypted), loaded, and unsealed over the session (outData encrypted),
/// once with the session as an extra encryption session and once with it as
/// the HMAC authorization. A wrong authValue over the HMAC session fails with
/// TPM_RC_AUTH_FAIL for a DA-protected object and TPM_RC_BAD_AUTH for a noDA one.
fn seal_and_unseal_over(tcti: &str, dir: &Path, prim: &str, s: &str) {
    let r = ok("tpm2_getrandom", &["-S", s, "--hex", "16"], tcti);
    assert_eq!(r.trim().len(), 32, "16 octets decrypted by the client: {r}");
    let secret = path(dir, "secret");
    std::fs::write(&secret, b"sealed over a salted session").unwrap();
    for (name, attrs, code) in [
        ("da", "fixedtpm|fixedparent|userwithauth", "0x98e"),
        ("noda", "fixedtpm|fixedparent|userwithauth|noda", "0x9a2"),
    ] {
        let (public, private, ctx) = (
            path(dir, &format!("{name}.pub")),
            path(dir, &format!("{name}.priv")),
            path(dir, &format!("{name}.ctx")),
        );
        ok(
            "tpm2_create",
            &[
                "-C", prim, "-i", &secret, "-u", &public, "-r", &private, "-p", "sealpw", "-a",
                attrs, "-S", s,
            ],
            tcti,
        );
        flush(tcti);
        ok(
            "tpm2_load",
            &["-C", prim, "-u", &public, "-r", &private, "-c", &ctx],
            tcti,
        );
        flush(tcti);
        let out = ok("tpm2_unseal", &["-c", &ctx, "-p", "sealpw", "-S", s], tcti);
        assert_eq!(out, "sealed over a salted session");
        flush(tcti);
        let auth = format!("session:{s}+sealpw");
        let out = ok("tpm2_unseal", &["-c", &ctx, "-p", &auth], tcti);
        assert_eq!(out, "sealed over a salted session");
        flush(tcti);
        let wrong = format!("session:{s}+wrong");
        let e = fails("tpm2_unseal", &["-c", &ctx, "-p", &wrong], tcti);
        assert!(
            e.to_lowercase().contains(code),
            "{name}: expected {code}: {e}"
        );
        flush(tcti);
    }
}

/// A salted HMAC session to a primary of `alg`, then [`seal_and_unseal_over`].
fn salted(alg: &str) {
    let v = Vtpm::start_socket();
    let t = v.tcti();
    let dir = tempfile::tempdir().unwrap();
    let (prim, s) = (path(dir.path(), "prim.ctx"), path(dir.path(), "s.ctx"));
    ok(
        "tpm2_createprimary",
        &["-C", "o", "-G", alg, "-c", &prim],
        &t,
    );
    flush(&t);
    ok(
        "tpm2_startauthsession",
        &["--hmac-session", "-S", &s, "--tpmkey-context", &prim],
        &t,
    );
    flush(&t);
    ok(
        "tpm2_sessionconfig",
        &[&s, "--enable-encrypt", "--enable-decrypt"],
        &t,
    );
    assert!(ok("tpm2_sessionconfig", &[&s], &t).contains("decrypt|encrypt"));
    seal_and_unseal_over(&t, dir.path(), &prim, &s);
    ok("tpm2_flushcontext", &[&s], &t);
}

#[test]
fn rsa_salted_session_seals_and_unseals() {
    need_tools!();
    salted("rsa2048");
}

#[test]
fn ecc_salted_session_seals_and_unseals() {
    need_tools!();
    salted("ecc256");
}

#[test]
fn plain_hmac_session_seals_and_unseals() {
    need_tools!();
    let v = Vtpm::start_socket();
    let t = v.tcti();
    let dir = tempfile::tempdir().unwrap();
    let (prim, s) = (path(dir.path(), "prim.ctx"), path(dir.path(), "s.ctx"));
    ok("tpm2_createprimary", &["-C", "o", "-c", &prim], &t);
    flush(&t);
    ok("tpm2_startauthsession", &["--hmac-session", "-S", &s], &t);
    ok(
        "tpm2_sessionconfig",
        &[&s, "--enable-encrypt", "--enable-decrypt"],
        &t,
    );
    seal_and_unseal_over(&t, dir.path(), &prim, &s);
}

#[test]
fn bound_and_salted_session_authorizes_its_bind_key() {
    need_tools!();
    let v = Vtpm::start_socket();
    let t = v.tcti();
    let dir = tempfile::tempdir().unwrap();
    let (prim, s) = (path(dir.path(), "prim.ctx"), path(dir.path(), "s.ctx"));
    ok(
        "tpm2_createprimary",
        &["-C", "o", "-G", "ecc256", "-p", "primpw", "-c", &prim],
        &t,
    );
    flush(&t);
    // -c: the primary is tpmKey and bind; decrypt and encrypt are on.
    ok(
        "tpm2_startauthsession",
        &[
            "--hmac-session",
            "-S",
            &s,
            "-c",
            &prim,
            "--bind-auth",
            "primpw",
        ],
        &t,
    );
    flush(&t);
    assert!(ok("tpm2_sessionconfig", &[&s], &t).contains("decrypt|encrypt"));
    // The session authorizes the entity it is bound to: the HMAC key leaves
    // the authValue out, the parameter-encryption key keeps it.
    let secret = path(dir.path(), "secret");
    std::fs::write(&secret, b"bound and salted").unwrap();
    let (public, private, ctx) = (
        path(dir.path(), "k.pub"),
        path(dir.path(), "k.priv"),
        path(dir.path(), "k.ctx"),
    );
    let parent_auth = format!("session:{s}+primpw");
    ok(
        "tpm2_create",
        &[
            "-C",
            &prim,
            "-P",
            &parent_auth,
            "-i",
            &secret,
            "-u",
            &public,
            "-r",
            &private,
        ],
        &t,
    );
    flush(&t);
    ok(
        "tpm2_load",
        &[
            "-C", &prim, "-P", "primpw", "-u", &public, "-r", &private, "-c", &ctx,
        ],
        &t,
    );
    flush(&t);
    // Used for another entity (the sealed object, empty authValue).
    let out = ok(
        "tpm2_unseal",
        &["-c", &ctx, "-p", &format!("session:{s}")],
        &t,
    );
    assert_eq!(out, "bound and salted");
    flush(&t);
    let e = fails(
        "tpm2_create",
        &[
            "-C",
            &prim,
            "-P",
            &format!("session:{s}+wrong"),
            "-i",
            &secret,
            "-u",
            &public,
            "-r",
            &private,
        ],
        &t,
    );
    assert!(e.to_lowercase().contains("0x98e"), "AUTH_FAIL: {e}");
}

#[test]
fn salted_session_bound_to_the_owner_hierarchy() {
    need_tools!();
    let v = Vtpm::start_socket();
    let t = v.tcti();
    let dir = tempfile::tempdir().unwrap();
    let (prim, s) = (path(dir.path(), "prim.ctx"), path(dir.path(), "s.ctx"));
    ok(
        "tpm2_createprimary",
        &["-C", "o", "-G", "rsa2048", "-c", &prim],
        &t,
    );
    flush(&t);
    ok("tpm2_changeauth", &["-c", "o", "ownerpw"], &t);
    ok(
        "tpm2_startauthsession",
        &[
            "--hmac-session",
            "-S",
            &s,
            "--tpmkey-context",
            &prim,
            "--bind-context",
            "o",
            "--bind-auth",
            "ownerpw",
        ],
        &t,
    );
    flush(&t);
    ok(
        "tpm2_sessionconfig",
        &[&s, "--enable-encrypt", "--enable-decrypt"],
        &t,
    );
    // CreatePrimary authorized by the owner over the bound, salted session;
    // inSensitive (the key's authValue) goes encrypted.
    let k = path(dir.path(), "k.ctx");
    ok(
        "tpm2_createprimary",
        &[
            "-C",
            "o",
            "-P",
            &format!("session:{s}+ownerpw"),
            "-G",
            "ecc256",
            "-p",
            "keypw",
            "-c",
            &k,
        ],
        &t,
    );
    flush(&t);
    let e = fails(
        "tpm2_createprimary",
        &["-C", "o", "-P", &format!("session:{s}+wrong"), "-c", &k],
        &t,
    );
    // Hierarchies are not DA-protected: TPM_RC_BAD_AUTH.
    assert!(e.to_lowercase().contains("0x9a2"), "BAD_AUTH: {e}");
}

#[test]
fn salted_session_failures_match_swtpm() {
    need_tools!();
    let Some(sw) = start_swtpm() else {
        eprintln!("swtpm not installed: skipped");
        return;
    };
    let v = Vtpm::start_socket();
    // A signing key cannot take a salt (TPM_RC_ATTRIBUTES on tpmKey).
    let run = |tcti: &str| {
        let dir = tempfile::tempdir().unwrap();
        let (prim, s) = (path(dir.path(), "p.ctx"), path(dir.path(), "s.ctx"));
        ok(
            "tpm2_createprimary",
            &[
                "-C",
                "o",
                "-G",
                "rsa2048:rsassa-sha256:null",
                "-a",
                "fixedtpm|fixedparent|sensitivedataorigin|userwithauth|sign",
                "-c",
                &prim,
            ],
            tcti,
        );
        flush(tcti);
        let e = fails(
            "tpm2_startauthsession",
            &["--hmac-session", "-S", &s, "--tpmkey-context", &prim],
            tcti,
        );
        flush(tcti);
        e.lines()
            .find(|l| l.starts_with("ERROR: Esys_StartAuthSession("))
            .unwrap_or_default()
            .to_string()
    };
    let ours = run(&v.tcti());
    assert!(ours.contains("0x182"), "{ours}");
    assert_eq!(ours, run(&sw.tcti()));
}

/// Send one raw command on a fresh connection to the data port; the response code.
fn raw_rc(port: u16, cmd: &[u8]) -> u32 {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    s.write_all(cmd).unwrap();
    let mut hdr = [0u8; 10];
    s.read_exact(&mut hdr).expect("response header");
    let size = u32::from_be_bytes([hdr[2], hdr[3], hdr[4], hdr[5]]) as usize;
    let mut rest = vec![0u8; size.saturating_sub(10)];
    s.read_exact(&mut rest).expect("response body");
    u32::from_be_bytes([hdr[6], hdr[7], hdr[8], hdr[9]])
}

fn test_parms(parms: &[u8]) -> Vec<u8> {
    let mut c = vec![0x80, 0x01];
    c.extend(((10 + parms.len()) as u32).to_be_bytes());
    c.extend(0x18Au32.to_be_bytes());
    c.extend(parms);
    c
}

#[test]
fn test_parms_accepts_what_vtpm_implements() {
    let be = |v: &[u32]| -> Vec<u8> {
        // u16 fields, except the 32-bit RSA exponent written as two halves.
        v.iter().flat_map(|x| (*x as u16).to_be_bytes()).collect()
    };
    let rsa = |sym: &[u32], scheme: &[u32], bits: u32, exp: u32| {
        let mut p = be(&[0x0001]);
        p.extend(be(sym));
        p.extend(be(scheme));
        p.extend(be(&[bits]));
        p.extend(exp.to_be_bytes());
        p
    };
    let ecc = |sym: &[u32], scheme: &[u32], curve: u32, kdf: &[u32]| {
        let mut p = be(&[0x0023]);
        p.extend(be(sym));
        p.extend(be(scheme));
        p.extend(be(&[curve]));
        p.extend(be(kdf));
        p
    };
    let null = [0x0010];
    let aes128cfb = [0x0006, 128, 0x0043];
    // (case, parameters, vtpm's answer, whether swtpm answers the same)
    let cases: Vec<(&str, Vec<u8>, u32, bool)> = vec![
        ("rsa1024", rsa(&null, &null, 1024, 0), 0, true),
        ("rsa2048", rsa(&null, &null, 2048, 0), 0, true),
        ("rsa3072", rsa(&null, &null, 3072, 0), 0, true),
        ("rsa2048 exponent 3", rsa(&null, &null, 2048, 3), 0, true),
        ("rsa storage", rsa(&aes128cfb, &null, 2048, 0), 0, true),
        ("rsa oaep-sha1", rsa(&null, &[0x17, 0x04], 2048, 0), 0, true),
        (
            "rsa rsassa-sha384",
            rsa(&null, &[0x14, 0x0C], 2048, 0),
            0,
            true,
        ),
        (
            "rsa rsapss-sha512",
            rsa(&null, &[0x16, 0x0D], 2048, 0),
            0,
            true,
        ),
        ("rsa rsaes", rsa(&null, &[0x15], 2048, 0), 0, true),
        ("rsa4096", rsa(&null, &null, 4096, 0), 0x1C4, true),
        (
            "rsa ecdsa scheme",
            rsa(&null, &[0x18, 0x0B], 2048, 0),
            0x1C4,
            true,
        ),
        (
            "rsa scheme hash NULL",
            rsa(&null, &[0x14, 0x10], 2048, 0),
            0x1C3,
            true,
        ),
        ("ecc p256", ecc(&null, &null, 3, &null), 0, true),
        (
            "ecc p384 ecdsa",
            ecc(&null, &[0x18, 0x0C], 4, &null),
            0,
            true,
        ),
        (
            "ecc p521 ecdh",
            ecc(&null, &[0x19, 0x0B], 5, &null),
            0,
            true,
        ),
        (
            "ecc p256 ecschnorr",
            ecc(&null, &[0x1C, 0x0B], 3, &null),
            0,
            true,
        ),
        ("ecc storage", ecc(&aes128cfb, &null, 3, &null), 0, true),
        (
            "ecc kdf sp800-108",
            ecc(&null, &null, 3, &[0x22, 0x0B]),
            0,
            true,
        ),
        (
            "ecc curve 0x99",
            ecc(&null, &null, 0x99, &null),
            0x1E6,
            true,
        ),
        (
            "ecc rsassa scheme",
            ecc(&null, &[0x14, 0x0B], 3, &null),
            0x1D2,
            true,
        ),
        // Every curve libtpms has; one it has not: TPM_RC_CURVE.
        ("ecc p192", ecc(&null, &null, 1, &null), 0, true),
        ("ecc bn p256", ecc(&null, &null, 0x10, &null), 0, true),
        ("ecc bn p638", ecc(&null, &null, 0x11, &null), 0, true),
        ("ecc sm2 p256", ecc(&null, &null, 0x20, &null), 0, true),
        ("ecc curve 6", ecc(&null, &null, 6, &null), 0x1E6, true),
        (
            "keyedhash hmac-sha256",
            be(&[0x0008, 0x0005, 0x000B]),
            0,
            true,
        ),
        ("keyedhash null", be(&[0x0008, 0x0010]), 0, true),
        (
            "keyedhash xor",
            be(&[0x0008, 0x000A, 0x000B, 0x0022]),
            0,
            true,
        ),
        (
            "symcipher aes256cfb",
            be(&[0x0025, 0x0006, 256, 0x0043]),
            0,
            true,
        ),
        (
            "symcipher aes128ecb",
            be(&[0x0025, 0x0006, 128, 0x0044]),
            0,
            true,
        ),
        (
            "symcipher sm4",
            be(&[0x0025, 0x0013, 128, 0x0043]),
            0x1D6,
            true,
        ),
        ("type sha256", be(&[0x000B]), 0x1CA, true),
        (
            "rsa trailing octet",
            [rsa(&null, &null, 2048, 0), vec![0]].concat(),
            0x95,
            true,
        ),
        (
            "rsa cut short",
            be(&[0x0001, 0x0010, 0x0010, 2048]),
            0x1DA,
            true,
        ),
    ];
    let v = Vtpm::start_socket();
    let sw = start_swtpm();
    for (name, parms, expect, same) in &cases {
        let ours = raw_rc(v.port, &test_parms(parms));
        assert_eq!(ours, *expect, "TestParms {name}: vtpm {ours:#x}");
        if let (Some(sw), true) = (&sw, same) {
            let theirs = raw_rc(sw.port, &test_parms(parms));
            assert_eq!(
                ours, theirs,
                "TestParms {name}: vtpm {ours:#x}, swtpm {theirs:#x}"
            );
        }
    }
}

#[test]
fn salted_policy_session_encrypts_with_the_objects_auth_value() {
    need_tools!();
    let v = Vtpm::start_socket();
    let t = v.tcti();
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| path(dir.path(), n);
    ok("tpm2_createprimary", &["-C", "o", "-c", &p("prim.ctx")], &t);
    flush(&t);
    ok("tpm2_startauthsession", &["-S", &p("t.ctx")], &t);
    ok(
        "tpm2_policycommandcode",
        &["-S", &p("t.ctx"), "-L", &p("pol"), "TPM2_CC_Unseal"],
        &t,
    );
    ok("tpm2_flushcontext", &[&p("t.ctx")], &t);
    std::fs::write(p("secret"), b"policy secret").unwrap();
    ok(
        "tpm2_create",
        &[
            "-C",
            &p("prim.ctx"),
            "-i",
            &p("secret"),
            "-u",
            &p("k.pub"),
            "-r",
            &p("k.priv"),
            "-p",
            "sealpw",
            "-L",
            &p("pol"),
            "-a",
            "fixedtpm|fixedparent",
        ],
        &t,
    );
    flush(&t);
    ok(
        "tpm2_load",
        &[
            "-C",
            &p("prim.ctx"),
            "-u",
            &p("k.pub"),
            "-r",
            &p("k.priv"),
            "-c",
            &p("k.ctx"),
        ],
        &t,
    );
    flush(&t);
    ok(
        "tpm2_startauthsession",
        &[
            "--policy-session",
            "-S",
            &p("s.ctx"),
            "--tpmkey-context",
            &p("prim.ctx"),
        ],
        &t,
    );
    flush(&t);
    ok("tpm2_sessionconfig", &[&p("s.ctx"), "--enable-encrypt"], &t);
    ok(
        "tpm2_policycommandcode",
        &["-S", &p("s.ctx"), "TPM2_CC_Unseal"],
        &t,
    );
    // The policy needs no authValue, but the response key is sessionKey ||
    // authValue of the object all the same (as libtpms does): the client
    // decrypts outData only because it was told the authValue.
    let auth = format!("session:{}+sealpw", p("s.ctx"));
    let out = ok("tpm2_unseal", &["-c", &p("k.ctx"), "-p", &auth], &t);
    assert_eq!(out, "policy secret");
}
