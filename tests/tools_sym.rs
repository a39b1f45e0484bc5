//! Symmetric commands through tpm2-tools against the real `vtpm` binary:
//! TPM2_EncryptDecrypt(2) in every AES mode (checked against `openssl enc`
//! with a key of known bytes), TPM2_HMAC and HMAC sequences (checked against
//! `openssl dgst -mac HMAC`), and the same answers as swtpm + libtpms.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{have_tpm2_tools, run_tpm2, start_swtpm, Vtpm};

/// tpm2-tools leave objects loaded (no resource manager); flush after each tool.
fn run(tool: &str, args: &[&str], tcti: &str) -> Output {
    let out = run_tpm2(tool, args, tcti);
    let flush = run_tpm2("tpm2_flushcontext", &["-t"], tcti);
    assert!(flush.status.success(), "flushcontext after {tool}");
    out
}

/// Run a tool that must succeed; returns its stdout.
fn ok(tool: &str, args: &[&str], tcti: &str) -> String {
    let out = run(tool, args, tcti);
    assert!(
        out.status.success(),
        "{tool} {args:?} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Run a tool that must fail with a TPM error; returns the ErrorCode it printed.
fn tpm_error(tool: &str, args: &[&str], tcti: &str) -> String {
    let out = run(tool, args, tcti);
    assert!(!out.status.success(), "{tool} {args:?} should have failed");
    let err = String::from_utf8_lossy(&out.stderr);
    err.split("ErrorCode (")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .unwrap_or_else(|| panic!("{tool}: no TPM error in:\n{err}"))
        .to_string()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// `openssl enc ... -in input` or `openssl dgst ... input`: its output.
fn openssl(args: &[&str], input: &Path) -> Vec<u8> {
    let mut cmd = Command::new("openssl");
    cmd.args(args);
    if args[0] == "enc" {
        cmd.arg("-in");
    }
    let out = cmd.arg(input).output().expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

macro_rules! need_tools {
    () => {
        if !have_tpm2_tools() {
            eprintln!("tpm2-tools not installed: skipped (scripts/test.sh installs them)");
            return;
        }
    };
}

/// Paths of a scratch directory as strings.
struct Scratch(tempfile::TempDir);

impl Scratch {
    fn new() -> Scratch {
        Scratch(tempfile::tempdir().unwrap())
    }
    fn path(&self, name: &str) -> String {
        self.0.path().join(name).to_str().unwrap().to_string()
    }
    fn write(&self, name: &str, data: &[u8]) -> String {
        std::fs::write(self.0.path().join(name), data).unwrap();
        self.path(name)
    }
    fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.0.path().join(name)).unwrap()
    }
}

/// 1000 octets of a fixed pattern, and 3000 (more than one TPM2B_MAX_BUFFER).
fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 % 251) as u8).collect()
}

#[test]
fn tpm_generated_keys_round_trip_in_every_mode() {
    need_tools!();
    let v = Vtpm::start_socket();
    let t = v.tcti();
    let s = Scratch::new();
    ok(
        "tpm2_createprimary",
        &["-C", "o", "-G", "rsa", "-c", &s.path("prim.ctx")],
        &t,
    );
    let msg = pattern(1000);
    let odd = s.write("odd", &msg[..999]);
    let whole = s.write("whole", &msg[..992]);
    let iv = s.write("iv", b"0123456789abcdef");
    for alg in [
        "aes128cfb",
        "aes256cbc",
        "aes256ctr",
        "aes128ofb",
        "aes256ecb",
    ] {
        let (pubf, privf, ctx) = (
            s.path(&format!("{alg}.pub")),
            s.path(&format!("{alg}.priv")),
            s.path(&format!("{alg}.ctx")),
        );
        ok(
            "tpm2_create",
            &[
                "-C",
                &s.path("prim.ctx"),
                "-G",
                alg,
                "-u",
                &pubf,
                "-r",
                &privf,
            ],
            &t,
        );
        ok(
            "tpm2_load",
            &[
                "-C",
                &s.path("prim.ctx"),
                "-u",
                &pubf,
                "-r",
                &privf,
                "-c",
                &ctx,
            ],
            &t,
        );
        let block = alg.ends_with("cbc") || alg.ends_with("ecb");
        let input = if block { &whole } else { &odd };
        let mut args = vec!["-c", ctx.as_str()];
        if alg.ends_with("ecb") {
            // Without -G ecb tpm2-tools sends a zero IV, which ECB refuses.
            args.extend(["-G", "ecb"]);
        } else {
            args.extend(["-t", iv.as_str()]);
        }
        let ct = s.path(&format!("{alg}.ct"));
        let pt = s.path(&format!("{alg}.pt"));
        let enc: Vec<&str> = args.iter().copied().chain(["-o", &ct, input]).collect();
        ok("tpm2_encryptdecrypt", &enc, &t);
        let dec: Vec<&str> = args.iter().copied().chain(["-d", "-o", &pt, &ct]).collect();
        ok("tpm2_encryptdecrypt", &dec, &t);
        let ct = std::fs::read(&ct).unwrap();
        let original = std::fs::read(input).unwrap();
        assert_eq!(ct.len(), original.len(), "{alg}");
        assert_ne!(ct, original, "{alg}");
        assert_eq!(std::fs::read(&pt).unwrap(), original, "{alg} round trip");
        if alg.ends_with("cbc") {
            // With padding (-e) CBC takes any length.
            let padded = s.path("padded");
            let back = s.path("back");
            ok(
                "tpm2_encryptdecrypt",
                &["-c", &ctx, "-t", &iv, "-e", "-o", &padded, &odd],
                &t,
            );
            // Decrypted without -e, the PKCS#7 padding (9 octets of 9) shows.
            ok(
                "tpm2_encryptdecrypt",
                &["-c", &ctx, "-t", &iv, "-d", "-o", &back, &padded],
                &t,
            );
            assert_eq!(s.read("padded").len(), 1008);
            assert_eq!(s.read("back"), [&msg[..999], &[9u8; 9][..]].concat());
            // Without it a partial block is TPM_RC_SIZE on inData
            // (EncryptDecrypt2's parameter 1).
            assert_eq!(
                tpm_error("tpm2_encryptdecrypt", &["-c", &ctx, "-t", &iv, &odd], &t),
                "0x000001d5"
            );
            // A CBC key takes no other mode: TPM_RC_MODE on parameter 3.
            assert_eq!(
                tpm_error(
                    "tpm2_encryptdecrypt",
                    &["-c", &ctx, "-t", &iv, "-G", "cfb", &whole],
                    &t
                ),
                "0x000003c9"
            );
        }
    }
}

#[test]
fn known_key_ciphertext_matches_openssl() {
    need_tools!();
    let v = Vtpm::start_socket();
    let t = v.tcti();
    let s = Scratch::new();
    let key: Vec<u8> = (0..32u8)
        .map(|i| i.wrapping_mul(29).wrapping_add(3))
        .collect();
    let keyf = s.write("key", &key);
    let iv = b"fedcba9876543210";
    let ivf = s.write("iv", iv);
    let msg = pattern(1000);
    let odd = s.write("odd", &msg[..999]);
    let whole = s.write("whole", &msg[..992]);
    let ctx = s.path("key.ctx");
    // A key of known bytes: TPM-made keys never leave the TPM in the clear.
    ok(
        "tpm2_loadexternal",
        &["-C", "n", "-G", "aes", "-r", &keyf, "-c", &ctx],
        &t,
    );
    for mode in ["cfb", "cbc", "ctr", "ofb", "ecb"] {
        let block = mode == "cbc" || mode == "ecb";
        let input = if block { &whole } else { &odd };
        let ct = s.path(&format!("{mode}.ct"));
        let ivout = s.path(&format!("{mode}.ivout"));
        let ivarg = format!("{ivf}:{ivout}");
        let mut args = vec!["-c", ctx.as_str(), "-G", mode, "-o", ct.as_str()];
        if mode != "ecb" {
            args.extend(["-t", ivarg.as_str()]);
        }
        args.push(input);
        ok("tpm2_encryptdecrypt", &args, &t);
        let cipher = format!("-aes-256-{mode}");
        let mut ossl = vec!["enc", cipher.as_str(), "-K"];
        let khex = hex(&key);
        let ivhex = hex(iv);
        ossl.push(&khex);
        if mode != "ecb" {
            ossl.extend(["-iv", ivhex.as_str()]);
        }
        if block {
            ossl.push("-nopad");
        }
        let expect = openssl(&ossl, Path::new(input));
        let got = std::fs::read(&ct).unwrap();
        assert_eq!(hex(&got), hex(&expect), "AES-256-{mode} against openssl");
        if mode == "ecb" {
            continue;
        }
        // ivOut continues the chain: two calls give the one-shot ciphertext.
        let first = s.write("first", &std::fs::read(input).unwrap()[..512]);
        let second = s.write("second", &std::fs::read(input).unwrap()[512..]);
        let mid = s.path("mid");
        ok(
            "tpm2_encryptdecrypt",
            &[
                "-c",
                &ctx,
                "-G",
                mode,
                "-t",
                &format!("{ivf}:{mid}"),
                "-o",
                &s.path("c1"),
                &first,
            ],
            &t,
        );
        ok(
            "tpm2_encryptdecrypt",
            &[
                "-c",
                &ctx,
                "-G",
                mode,
                "-t",
                &mid,
                "-o",
                &s.path("c2"),
                &second,
            ],
            &t,
        );
        assert_eq!(
            [s.read("c1"), s.read("c2")].concat(),
            expect,
            "{mode}: chained through ivOut"
        );
    }
}

#[test]
fn hmac_matches_openssl_one_shot_and_as_a_sequence() {
    need_tools!();
    let v = Vtpm::start_socket();
    let t = v.tcti();
    let s = Scratch::new();
    let key = b"a known HMAC key of 32 octets!!!";
    let keyf = s.write("hkey", key);
    let small = s.write("small", &pattern(1000)[..300]);
    let large = s.write("large", &pattern(3000));
    let prim = s.path("prim.ctx");
    ok(
        "tpm2_createprimary",
        &["-C", "o", "-G", "rsa", "-c", &prim],
        &t,
    );
    // A keyed-hash object with caller data that signs (and decrypts, so that it
    // may have no scheme): an HMAC key of known bytes, any hash chosen at use.
    let (hpub, hpriv, hctx) = (s.path("h.pub"), s.path("h.priv"), s.path("h.ctx"));
    ok(
        "tpm2_create",
        &[
            "-C",
            &prim,
            "-i",
            &keyf,
            "-a",
            "sign|decrypt|userwithauth|fixedtpm|fixedparent",
            "-u",
            &hpub,
            "-r",
            &hpriv,
        ],
        &t,
    );
    ok(
        "tpm2_load",
        &["-C", &prim, "-u", &hpub, "-r", &hpriv, "-c", &hctx],
        &t,
    );
    for (alg, file) in [
        ("sha256", &small),
        ("sha256", &large),
        ("sha1", &small),
        ("sha384", &large),
        ("sha512", &small),
    ] {
        // Over 1024 octets tpm2_hmac uses HMAC_Start, SequenceUpdate, SequenceComplete.
        let got = ok("tpm2_hmac", &["-c", &hctx, "-g", alg, "--hex", file], &t);
        let expect = openssl(
            &[
                "dgst",
                &format!("-{alg}"),
                "-mac",
                "HMAC",
                "-macopt",
                &format!("hexkey:{}", hex(key)),
                "-r",
            ],
            Path::new(file),
        );
        let expect = String::from_utf8(expect).unwrap();
        let expect = expect.split_whitespace().next().unwrap();
        assert_eq!(got.trim(), expect, "HMAC-{alg} of {file}");
    }
    // A TPM-made HMAC key (scheme HMAC-SHA256): its hash only, and the same
    // value whether the data goes in one command or as a sequence (a pipe
    // has no size, so tpm2_hmac streams it).
    let (gpub, gpriv, gctx) = (s.path("g.pub"), s.path("g.priv"), s.path("g.ctx"));
    ok(
        "tpm2_create",
        &["-C", &prim, "-G", "hmac", "-u", &gpub, "-r", &gpriv],
        &t,
    );
    ok(
        "tpm2_load",
        &["-C", &prim, "-u", &gpub, "-r", &gpriv, "-c", &gctx],
        &t,
    );
    let one_shot = ok("tpm2_hmac", &["-c", &gctx, "--hex", &small], &t);
    assert_eq!(one_shot.trim().len(), 64);
    let piped = Command::new("sh")
        .arg("-c")
        .arg(format!("cat '{small}' | tpm2_hmac -c '{gctx}' --hex"))
        .env("TPM2TOOLS_TCTI", &t)
        .output()
        .unwrap();
    ok("tpm2_flushcontext", &["-t"], &t);
    assert!(
        piped.status.success(),
        "{}",
        String::from_utf8_lossy(&piped.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&piped.stdout).trim(),
        one_shot.trim()
    );
    // Another hash than the key's: TPM_RC_VALUE on hashAlg.
    assert_eq!(
        tpm_error("tpm2_hmac", &["-c", &gctx, "-g", "sha1", &small], &t),
        "0x000002c4"
    );
}

/// One run of symmetric operations; its transcript (outputs and error codes)
/// must be the same on vtpm and on swtpm.
fn transcript(t: &str) -> String {
    let s = Scratch::new();
    let mut log = String::new();
    let mut step = |tool: &str, args: &[&str], out: Option<&str>| {
        let o = run(tool, args, t);
        let err = String::from_utf8_lossy(&o.stderr);
        let code = err
            .split("ErrorCode (")
            .nth(1)
            .and_then(|s| s.split(')').next())
            .unwrap_or("ok");
        // File names only: the scratch directories differ.
        let last = Path::new(args.last().unwrap_or(&"")).file_name();
        log += &format!("{tool} {:?}: {code}", last);
        if let Some(f) = out.filter(|_| o.status.success()) {
            log += &format!(" {}", hex(&std::fs::read(f).unwrap_or_default()));
        }
        if tool == "tpm2_hmac" {
            log += &format!(" {}", String::from_utf8_lossy(&o.stdout).trim());
        }
        log.push('\n');
    };
    let key = s.write("key", &[0x5a; 16]);
    let iv = s.write("iv", b"0123456789abcdef");
    let msg = s.write("msg", &pattern(1000)[..55]);
    let msg64 = s.write("msg64", &pattern(1000)[..64]);
    let ctx = s.path("aes.ctx");
    step(
        "tpm2_loadexternal",
        &["-C", "n", "-G", "aes", "-r", &key, "-c", &ctx],
        None,
    );
    for mode in ["cfb", "ctr", "ofb", "cbc", "ecb"] {
        for input in [&msg, &msg64] {
            let ct = s.path("ct");
            let ivout = s.path("ivout");
            let ivarg = format!("{iv}:{ivout}");
            let mut args = vec!["-c", ctx.as_str(), "-G", mode, "-o", ct.as_str()];
            if mode != "ecb" {
                args.extend(["-t", ivarg.as_str()]);
            }
            args.push(input);
            let _ = std::fs::remove_file(&ct);
            let _ = std::fs::remove_file(&ivout);
            step("tpm2_encryptdecrypt", &args, Some(&ct));
            if mode != "ecb" {
                step("tpm2_encryptdecrypt", &args, Some(&ivout));
            }
        }
    }
    step(
        "tpm2_encryptdecrypt",
        &["-c", &ctx, "-G", "ecb", "-t", &iv, &msg64],
        None,
    );
    step(
        "tpm2_hmac",
        &["-c", &ctx, "-g", "sha256", "--hex", &msg],
        None,
    );
    step("tpm2_hmac", &["-c", &ctx, "--hex", &msg], None);
    let hkey = s.write("hkey", b"0123456789abcdef0123456789abcdef");
    let prim = s.path("prim.ctx");
    step(
        "tpm2_createprimary",
        &["-C", "o", "-G", "rsa", "-c", &prim],
        None,
    );
    let (hpub, hpriv, hctx) = (s.path("h.pub"), s.path("h.priv"), s.path("h.ctx"));
    step(
        "tpm2_create",
        &[
            "-C",
            &prim,
            "-i",
            &hkey,
            "-a",
            "sign|decrypt|userwithauth|fixedtpm|fixedparent",
            "-u",
            &hpub,
            "-r",
            &hpriv,
        ],
        None,
    );
    step(
        "tpm2_load",
        &["-C", &prim, "-u", &hpub, "-r", &hpriv, "-c", &hctx],
        None,
    );
    let large = s.write("large", &pattern(2500));
    step(
        "tpm2_hmac",
        &["-c", &hctx, "-g", "sha256", "--hex", &msg],
        None,
    );
    step(
        "tpm2_hmac",
        &["-c", &hctx, "-g", "sha1", "--hex", &large],
        None,
    );
    step("tpm2_hmac", &["-c", &hctx, "--hex", &msg], None);
    step(
        "tpm2_encryptdecrypt",
        &["-c", &hctx, "-t", &iv, "-o", &s.path("x"), &msg],
        None,
    );
    log
}

#[test]
fn same_answers_as_swtpm() {
    need_tools!();
    let Some(sw) = start_swtpm() else {
        eprintln!("swtpm not installed: skipped");
        return;
    };
    let v = Vtpm::start_socket();
    let ours = transcript(&v.tcti());
    let theirs = transcript(&sw.tcti());
    assert_eq!(ours, theirs);
    // The transcript did exercise the commands.
    assert!(
        ours.contains("tpm2_hmac") && ours.matches(": ok").count() > 20,
        "{ours}"
    );
}
