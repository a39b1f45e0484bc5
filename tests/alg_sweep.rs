//! Issue 12 point 5's sweeps: `tpm2_testparms` and `tpm2_create -G` over the
//! algorithm specs tpm2-tools understands (key types and sizes, signing,
//! encryption and key-exchange schemes with their hashes, parents'
//! symmetric definitions, symmetric modes, keyed hashes), each run on vtpm
//! and on swtpm + libtpms: both must accept the same specs and refuse the
//! others with the same response code. (The BN curves have no tpm2-tools
//! name; tests/ecc_curves.rs covers them with raw commands.)

#[macro_use]
mod common;

use common::{start_swtpm, ToolBench, Vtpm};

/// "ok", the TPM response code of a refusal ("0x000002c3"), or "not
/// parsed" when tpm2-tools refused the spec before asking the TPM.
fn outcome(b: &ToolBench, tool: &str, args: &[&str]) -> String {
    let out = b.run(tool, args);
    if out.status.success() {
        return "ok".into();
    }
    let err = String::from_utf8_lossy(&out.stderr);
    match err.find("ErrorCode (0x") {
        Some(at) => err[at + 11..at + 21].to_string(),
        None => "not parsed".into(),
    }
}

/// Every spec of the sweep.
fn specs() -> Vec<String> {
    let mut v = Vec::new();
    for bits in ["1024", "2048", "3072", "4096"] {
        for scheme in [
            "",
            ":rsassa",
            ":rsassa-sha384",
            ":rsapss",
            ":rsapss-sha512",
            ":rsaes",
            ":oaep",
            ":oaep-sha384",
            ":null",
        ] {
            v.push(format!("rsa{bits}{scheme}"));
        }
    }
    for parent in [
        "aes128cfb",
        "aes192cfb",
        "aes256cfb",
        "camellia128cfb",
        "camellia256cfb",
        "aes128cbc",
    ] {
        v.push(format!("rsa2048:null:{parent}"));
        v.push(format!("ecc256:null:{parent}"));
    }
    for curve in ["ecc192", "ecc224", "ecc256", "ecc384", "ecc521", "ecc_sm2"] {
        for scheme in [
            "",
            ":ecdsa",
            ":ecdsa-sha384",
            ":ecdaa",
            ":ecdaa4-sha256",
            ":ecschnorr",
            ":sm2",
            ":ecdh",
            ":ecdh-sha384",
            ":null",
        ] {
            v.push(format!("{curve}{scheme}"));
        }
    }
    for cipher in [
        "aes128",
        "aes192",
        "aes256",
        "camellia128",
        "camellia192",
        "camellia256",
        "sm4",
    ] {
        for mode in ["", "cfb", "cbc", "ctr", "ofb", "ecb"] {
            v.push(format!("{cipher}{mode}"));
        }
    }
    for k in [
        "hmac",
        "hmac:sha1",
        "hmac:sha384",
        "hmac:sha512",
        "xor",
        "keyedhash",
    ] {
        v.push(k.into());
    }
    v
}

/// Run `f` on a fresh vtpm and a fresh swtpm for every spec; the specs whose
/// outcomes differ, and how many each side accepted.
fn sweep(
    prepare: fn(&ToolBench),
    run: fn(&ToolBench, &str) -> String,
) -> Option<(Vec<String>, usize, usize)> {
    let theirs = ToolBench::new(start_swtpm()?);
    let ours = ToolBench::new(Vtpm::start_socket());
    prepare(&theirs);
    prepare(&ours);
    let (mut differ, mut ok_ours, mut ok_theirs) = (Vec::new(), 0, 0);
    for spec in specs() {
        let (o, t) = (run(&ours, &spec), run(&theirs, &spec));
        ok_ours += usize::from(o == "ok");
        ok_theirs += usize::from(t == "ok");
        if o != t {
            differ.push(format!("{spec}: vtpm {o}, swtpm {t}"));
        }
    }
    Some((differ, ok_ours, ok_theirs))
}

#[test]
fn testparms_accepts_and_refuses_what_swtpm_does() {
    need_tools!();
    let Some((differ, ours, theirs)) =
        sweep(|_| {}, |b, spec| outcome(b, "tpm2_testparms", &[spec]))
    else {
        eprintln!("swtpm not installed: skipped");
        return;
    };
    println!(
        "tpm2_testparms: {} specs, vtpm accepted {ours}, swtpm {theirs}",
        specs().len()
    );
    assert!(differ.is_empty(), "outcomes differ:\n{}", differ.join("\n"));
    assert!(ours > 100, "the sweep accepted only {ours} specs");
}

#[test]
fn create_makes_every_key_type_swtpm_makes() {
    need_tools!();
    let Some((differ, ours, theirs)) = sweep(
        |b| {
            b.ok("tpm2_createprimary", &["-C", "o", "-c", "prim.ctx", "-Q"]);
        },
        |b, spec| {
            outcome(
                b,
                "tpm2_create",
                &[
                    "-C", "prim.ctx", "-G", spec, "-u", "k.pub", "-r", "k.priv", "-Q",
                ],
            )
        },
    ) else {
        eprintln!("swtpm not installed: skipped");
        return;
    };
    println!(
        "tpm2_create -G: {} specs, vtpm created {ours}, swtpm {theirs}",
        specs().len()
    );
    assert!(differ.is_empty(), "outcomes differ:\n{}", differ.join("\n"));
    assert!(ours > 100, "the sweep created only {ours} keys");
}
