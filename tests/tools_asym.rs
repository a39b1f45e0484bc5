//! Signing, verification, RSA encryption, ECDH and curve parameters through
//! tpm2-tools against the real `vtpm` binary, with the results checked by
//! OpenSSL and, where deterministic, compared with swtpm + libtpms.

#[macro_use]
mod common;

use std::process::Command;

use common::{start_swtpm, Vtpm};

type Bench = common::ToolBench;

impl Bench {
    fn vtpm() -> Bench {
        Bench::new(Vtpm::start_socket())
    }

    /// An owner-hierarchy RSA storage primary as `prim.ctx`.
    fn primary(&self) {
        self.ok("tpm2_createprimary", &["-C", "o", "-c", "prim.ctx", "-Q"]);
    }

    /// The public key of `name.ctx` as `name.pem`.
    fn pem(&self, name: &str) {
        self.ok(
            "tpm2_readpublic",
            &[
                "-c",
                &format!("{name}.ctx"),
                "-f",
                "pem",
                "-o",
                &format!("{name}.pem"),
                "-Q",
            ],
        );
    }

    fn openssl_ok(&self, args: &[&str]) -> String {
        self.ok("openssl", args)
    }
}

const MSG: &[u8] = b"the quick brown fox jumps over the lazy dog\n";
const DECRYPT: &str = "decrypt|fixedtpm|fixedparent|sensitivedataorigin|userwithauth";
const SIGN: &str = "sign|fixedtpm|fixedparent|sensitivedataorigin|userwithauth";

#[test]
fn rsa_signatures_verify_in_the_tpm_and_in_openssl() {
    need_tools_and_openssl!();
    let b = Bench::vtpm();
    b.write("msg", MSG);
    b.primary();
    b.key("rsa", "rsa2048", None);
    b.pem("rsa");
    for (scheme, pad) in [("rsassa", "pkcs1"), ("rsapss", "pss")] {
        for hash in ["sha1", "sha256", "sha384"] {
            let sig = format!("{scheme}-{hash}.sig");
            b.ok(
                "tpm2_sign",
                &["-c", "rsa.ctx", "-g", hash, "-s", scheme, "-o", &sig, "msg"],
            );
            b.ok(
                "tpm2_verifysignature",
                &[
                    "-c", "rsa.ctx", "-g", hash, "-m", "msg", "-s", &sig, "-t", "tk",
                ],
            );
            // A ticket from the owner hierarchy: TPM_ST_VERIFIED, owner, SHA-512 HMAC.
            let tk = b.read("tk");
            assert_eq!(&tk[..8], &[0x80, 0x22, 0x40, 0, 0, 1, 0, 64], "{tk:02x?}");
            let plain = format!("{scheme}-{hash}.plain");
            b.ok(
                "tpm2_sign",
                &[
                    "-c", "rsa.ctx", "-g", hash, "-s", scheme, "-f", "plain", "-o", &plain, "msg",
                ],
            );
            let out = b.openssl_ok(&[
                "dgst",
                &format!("-{hash}"),
                "-verify",
                "rsa.pem",
                "-sigopt",
                &format!("rsa_padding_mode:{pad}"),
                "-signature",
                &plain,
                "msg",
            ]);
            assert!(out.contains("Verified OK"), "{out}");
        }
    }
    // A signature over another message: TPM_RC_SIGNATURE on parameter 2.
    b.write("other", b"another message");
    let rc = b.fails(
        "tpm2_verifysignature",
        &[
            "-c",
            "rsa.ctx",
            "-g",
            "sha256",
            "-m",
            "other",
            "-s",
            "rsassa-sha256.sig",
        ],
    );
    assert_eq!(rc, 0x2db, "{rc:#x}");
}

#[test]
fn ecc_signatures_verify_in_the_tpm_and_in_openssl() {
    need_tools_and_openssl!();
    let b = Bench::vtpm();
    b.write("msg", MSG);
    b.primary();
    for (curve, hash) in [("ecc256", "sha256"), ("ecc384", "sha384")] {
        b.key(curve, curve, None);
        b.pem(curve);
        let ctx = format!("{curve}.ctx");
        for scheme in ["ecdsa", "ecschnorr"] {
            b.ok(
                "tpm2_sign",
                &["-c", &ctx, "-g", hash, "-s", scheme, "-o", "sig", "msg"],
            );
            b.ok(
                "tpm2_verifysignature",
                &["-c", &ctx, "-g", hash, "-m", "msg", "-s", "sig"],
            );
        }
        // ECDSA in DER ("plain") for OpenSSL.
        b.ok(
            "tpm2_sign",
            &[
                "-c", &ctx, "-g", hash, "-s", "ecdsa", "-f", "plain", "-o", "sig.der", "msg",
            ],
        );
        let out = b.openssl_ok(&[
            "dgst",
            &format!("-{hash}"),
            "-verify",
            &format!("{curve}.pem"),
            "-signature",
            "sig.der",
            "msg",
        ]);
        assert!(out.contains("Verified OK"), "{out}");
    }
}

#[test]
fn hmac_key_signs_and_verifies() {
    need_tools_and_openssl!();
    let b = Bench::vtpm();
    b.write("msg", MSG);
    b.primary();
    b.key("hmac", "hmac", None);
    b.ok(
        "tpm2_sign",
        &["-c", "hmac.ctx", "-g", "sha256", "-o", "sig", "msg"],
    );
    b.ok(
        "tpm2_verifysignature",
        &["-c", "hmac.ctx", "-g", "sha256", "-m", "msg", "-s", "sig"],
    );
    // The signature is HMAC-SHA256(key, SHA-256(msg)): check its shape.
    let sig = b.read("sig");
    assert_eq!(&sig[..4], &[0x00, 0x05, 0x00, 0x0b]);
    assert_eq!(sig.len(), 4 + 32);
}

#[test]
fn restricted_key_signs_only_with_a_hash_ticket() {
    need_tools_and_openssl!();
    let b = Bench::vtpm();
    b.write("msg", MSG);
    b.primary();
    b.key(
        "ak",
        "rsa2048:rsassa-sha256:null",
        Some("sign|restricted|fixedtpm|fixedparent|sensitivedataorigin|userwithauth"),
    );
    b.pem("ak");
    // The tool hashes in the TPM and passes the ticket along.
    b.ok(
        "tpm2_sign",
        &[
            "-c", "ak.ctx", "-g", "sha256", "-f", "plain", "-o", "sig1", "msg",
        ],
    );
    // Digest and ticket from tpm2_hash, then signed with -d.
    b.ok(
        "tpm2_hash",
        &["-C", "o", "-g", "sha256", "-o", "dig", "-t", "htk", "msg"],
    );
    b.ok(
        "tpm2_sign",
        &[
            "-c", "ak.ctx", "-g", "sha256", "-d", "-t", "htk", "-f", "plain", "-o", "sig2", "dig",
        ],
    );
    for sig in ["sig1", "sig2"] {
        let out = b.openssl_ok(&[
            "dgst",
            "-sha256",
            "-verify",
            "ak.pem",
            "-signature",
            sig,
            "msg",
        ]);
        assert!(out.contains("Verified OK"), "{out}");
    }
    // Without a ticket (a NULL ticket): TPM_RC_TICKET on parameter 3.
    let rc = b.fails(
        "tpm2_sign",
        &["-c", "ak.ctx", "-g", "sha256", "-d", "-o", "sig3", "dig"],
    );
    assert_eq!(rc, 0x3e0, "{rc:#x}");
    // A ticket for another digest: also TPM_RC_TICKET.
    b.write("dig2", &[0x5a; 32]);
    let rc = b.fails(
        "tpm2_sign",
        &[
            "-c", "ak.ctx", "-g", "sha256", "-d", "-t", "htk", "-o", "sig3", "dig2",
        ],
    );
    assert_eq!(rc, 0x3e0, "{rc:#x}");
}

#[test]
fn rsa_encryption_round_trips_and_matches_openssl() {
    need_tools_and_openssl!();
    let b = Bench::vtpm();
    b.write("msg", b"a secret of some thirty-two octets");
    b.primary();
    b.key("rsa", "rsa2048", Some(DECRYPT));
    b.pem("rsa");
    // TPM to TPM, each padding (NULL: raw RSA, the message as a number).
    for (scheme, label) in [
        ("rsaes", None),
        ("oaep", Some("mylabel")),
        ("oaep", None),
        ("null", None),
    ] {
        let mut enc = vec!["-c", "rsa.ctx", "-s", scheme, "-o", "ct"];
        let mut dec = vec!["-c", "rsa.ctx", "-s", scheme, "-o", "pt", "ct"];
        if let Some(l) = label {
            enc.extend(["-l", l]);
            dec.extend(["-l", l]);
        }
        enc.push("msg");
        b.ok("tpm2_rsaencrypt", &enc);
        assert_eq!(b.read("ct").len(), 256);
        b.ok("tpm2_rsadecrypt", &dec);
        let pt = b.read("pt");
        if scheme == "null" {
            assert_eq!(pt.len(), 256);
            assert!(pt.ends_with(&b.read("msg")));
        } else {
            assert_eq!(pt, b.read("msg"), "{scheme}");
        }
    }
    // OpenSSL encrypts to the TPM's public key; the TPM decrypts. The tools
    // send the label with its terminating zero, which OAEP includes.
    b.openssl_ok(&[
        "pkeyutl", "-encrypt", "-pubin", "-inkey", "rsa.pem", "-in", "msg", "-out", "ct.pkcs1",
    ]);
    b.ok(
        "tpm2_rsadecrypt",
        &["-c", "rsa.ctx", "-s", "rsaes", "-o", "pt1", "ct.pkcs1"],
    );
    assert_eq!(b.read("pt1"), b.read("msg"));
    b.openssl_ok(&[
        "pkeyutl",
        "-encrypt",
        "-pubin",
        "-inkey",
        "rsa.pem",
        "-pkeyopt",
        "rsa_padding_mode:oaep",
        "-pkeyopt",
        "rsa_oaep_md:sha256",
        "-pkeyopt",
        "rsa_mgf1_md:sha256",
        "-pkeyopt",
        "rsa_oaep_label:6d796c6162656c00",
        "-in",
        "msg",
        "-out",
        "ct.oaep",
    ]);
    b.ok(
        "tpm2_rsadecrypt",
        &[
            "-c", "rsa.ctx", "-s", "oaep", "-l", "mylabel", "-o", "pt2", "ct.oaep",
        ],
    );
    assert_eq!(b.read("pt2"), b.read("msg"));
    // A wrong label: the padding check fails.
    b.fails(
        "tpm2_rsadecrypt",
        &[
            "-c", "rsa.ctx", "-s", "oaep", "-l", "other", "-o", "pt3", "ct.oaep",
        ],
    );

    // The reverse: an OpenSSL key loaded with tpm2_loadexternal, the TPM
    // encrypts, OpenSSL decrypts.
    b.openssl_ok(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-out",
        "ext.key",
    ]);
    b.ok(
        "tpm2_loadexternal",
        &[
            "-C", "n", "-G", "rsa", "-r", "ext.key", "-c", "ext.ctx", "-Q",
        ],
    );
    b.ok(
        "tpm2_rsaencrypt",
        &[
            "-c", "ext.ctx", "-s", "oaep", "-l", "mylabel", "-o", "ct.ext", "msg",
        ],
    );
    b.openssl_ok(&[
        "pkeyutl",
        "-decrypt",
        "-inkey",
        "ext.key",
        "-pkeyopt",
        "rsa_padding_mode:oaep",
        "-pkeyopt",
        "rsa_oaep_md:sha256",
        "-pkeyopt",
        "rsa_mgf1_md:sha256",
        "-pkeyopt",
        "rsa_oaep_label:6d796c6162656c00",
        "-in",
        "ct.ext",
        "-out",
        "pt.ext",
    ]);
    assert_eq!(b.read("pt.ext"), b.read("msg"));
    b.ok(
        "tpm2_rsaencrypt",
        &["-c", "ext.ctx", "-s", "rsaes", "-o", "ct.ext2", "msg"],
    );
    b.openssl_ok(&[
        "pkeyutl", "-decrypt", "-inkey", "ext.key", "-in", "ct.ext2", "-out", "pt.ext2",
    ]);
    assert_eq!(b.read("pt.ext2"), b.read("msg"));
    // And the TPM decrypts with the external private key too.
    b.ok(
        "tpm2_rsadecrypt",
        &["-c", "ext.ctx", "-s", "rsaes", "-o", "pt.ext3", "ct.ext2"],
    );
    assert_eq!(b.read("pt.ext3"), b.read("msg"));
}

#[test]
fn verifysignature_takes_openssl_keys_from_loadexternal() {
    need_tools_and_openssl!();
    let b = Bench::vtpm();
    b.write("msg", MSG);
    b.openssl_ok(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-out",
        "rsa.key",
    ]);
    b.openssl_ok(&["pkey", "-in", "rsa.key", "-pubout", "-out", "rsa.pub.pem"]);
    b.openssl_ok(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        "ec.key",
    ]);
    b.openssl_ok(&["pkey", "-in", "ec.key", "-pubout", "-out", "ec.pub.pem"]);
    b.openssl_ok(&[
        "dgst", "-sha256", "-sign", "rsa.key", "-out", "rsa.sig", "msg",
    ]);
    b.openssl_ok(&[
        "dgst",
        "-sha256",
        "-sign",
        "rsa.key",
        "-sigopt",
        "rsa_padding_mode:pss",
        "-out",
        "pss.sig",
        "msg",
    ]);
    b.openssl_ok(&[
        "dgst", "-sha256", "-sign", "ec.key", "-out", "ec.sig", "msg",
    ]);
    // Public keys only, in the owner hierarchy (real tickets) and the null one.
    for (hier, ticket_hier) in [("o", [0x40, 0, 0, 1]), ("n", [0x40, 0, 0, 7])] {
        b.ok(
            "tpm2_loadexternal",
            &[
                "-C",
                hier,
                "-G",
                "rsa",
                "-u",
                "rsa.pub.pem",
                "-c",
                "rsa.ctx",
                "-Q",
            ],
        );
        b.ok(
            "tpm2_loadexternal",
            &[
                "-C",
                hier,
                "-G",
                "ecc",
                "-u",
                "ec.pub.pem",
                "-c",
                "ec.ctx",
                "-Q",
            ],
        );
        for (ctx, sig, fmt) in [
            ("rsa.ctx", "rsa.sig", "rsassa"),
            ("rsa.ctx", "pss.sig", "rsapss"),
            ("ec.ctx", "ec.sig", "ecdsa"),
        ] {
            let _ = std::fs::remove_file(b.path("tk"));
            b.ok(
                "tpm2_verifysignature",
                &[
                    "-c", ctx, "-g", "sha256", "-m", "msg", "-s", sig, "-f", fmt, "-t", "tk",
                ],
            );
            if hier == "n" {
                // The tool writes no ticket for a NULL ticket.
                assert!(!b.path("tk").exists());
                continue;
            }
            let tk = b.read("tk");
            assert_eq!(&tk[..2], &[0x80, 0x22]);
            assert_eq!(&tk[2..6], &ticket_hier, "{hier}: {tk:02x?}");
            assert_eq!(tk.len(), 8 + 64, "{hier}: {tk:02x?}");
        }
        b.write("other", b"not the message");
        let rc = b.fails(
            "tpm2_verifysignature",
            &[
                "-c", "ec.ctx", "-g", "sha256", "-m", "other", "-s", "ec.sig", "-f", "ecdsa",
            ],
        );
        assert_eq!(rc, 0x2db, "{rc:#x}");
    }
}

#[test]
fn ecdh_keygen_and_zgen_agree() {
    need_tools_and_openssl!();
    let b = Bench::vtpm();
    b.primary();
    for curve in ["ecc256", "ecc384", "ecc521"] {
        b.key("dh", &format!("{curve}:ecdh"), Some(DECRYPT));
        b.ok(
            "tpm2_ecdhkeygen",
            &["-c", "dh.ctx", "-u", "q.dat", "-o", "z1.dat"],
        );
        b.ok(
            "tpm2_ecdhzgen",
            &["-c", "dh.ctx", "-u", "q.dat", "-o", "z2.dat"],
        );
        assert_eq!(b.read("z1.dat"), b.read("z2.dat"), "{curve}");
    }
    // A point off the curve: TPM_RC_ECC_POINT on parameter 1.
    let mut q = b.read("q.dat");
    let last = q.len() - 1;
    q[last] ^= 1;
    b.write("bad.dat", &q);
    let rc = b.fails(
        "tpm2_ecdhzgen",
        &["-c", "dh.ctx", "-u", "bad.dat", "-o", "z3.dat"],
    );
    assert_eq!(rc, 0x1e7, "{rc:#x}");
    // ZGen needs an unrestricted decryption key: TPM_RC_ATTRIBUTES on the handle.
    b.key("sig", "ecc256", Some(SIGN));
    let rc = b.fails(
        "tpm2_ecdhzgen",
        &["-c", "sig.ctx", "-u", "q.dat", "-o", "z4.dat"],
    );
    assert_eq!(rc, 0x182, "{rc:#x}");
}

/// TPMS_ALGORITHM_DETAIL_ECC from tpm2_geteccparameters for each curve.
fn ecc_parameters(b: &Bench) -> Vec<Vec<u8>> {
    [
        "ecc256",
        "ecc384",
        "ecc521",
        "ecc192",
        "ecc224",
        "ecc_sm2_p256",
    ]
    .iter()
    .map(|c| {
        b.ok("tpm2_geteccparameters", &[c, "-o", "params.bin"]);
        b.read("params.bin")
    })
    .collect()
}

#[test]
fn ecc_parameters_are_the_nist_curves() {
    need_tools_and_openssl!();
    let b = Bench::vtpm();
    let params = ecc_parameters(&b);
    // P-256: curveID, keySize, kdf, sign, then p.
    let p256 = &params[0];
    assert_eq!(&p256[..4], &[0, 3, 1, 0]);
    assert_eq!(&p256[10..12], &[0, 32]);
    assert_eq!(
        &p256[12..44],
        &[
            0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff,
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff
        ]
    );
    assert_eq!(&params[2][..4], &[0, 5, 2, 9]);
    // P-192 (tests/ecc_curves.rs compares every curve, BN ones included).
    assert_eq!(&params[3][..4], &[0, 1, 0, 192]);
    if let Some(sw) = start_swtpm() {
        assert_eq!(params, ecc_parameters(&Bench::new(sw)));
    }
}

/// The same bad requests to vtpm and to swtpm give the same response codes.
#[test]
fn error_codes_match_swtpm() {
    need_tools_and_openssl!();
    let Some(sw) = start_swtpm() else {
        eprintln!("swtpm not installed: skipped");
        return;
    };
    let both = [Bench::vtpm(), Bench::new(sw)];
    let cases: &[(&str, &[&str])] = &[
        // (tpm2_sign refuses a scheme other than the key's itself.)
        // Sign: a digest of the wrong size; with a decryption key.
        (
            "tpm2_sign",
            &["-c", "ssa.ctx", "-g", "sha256", "-d", "-o", "s", "dig"],
        ),
        (
            "tpm2_sign",
            &["-c", "dec.ctx", "-g", "sha256", "-o", "s", "msg"],
        ),
        // RSA commands on a signing key.
        ("tpm2_rsadecrypt", &["-c", "ssa.ctx", "-o", "p", "big"]),
        ("tpm2_rsaencrypt", &["-c", "ssa.ctx", "-o", "p", "msg"]),
        // Verify an ECDSA signature with an RSA key; on a decryption key.
        (
            "tpm2_verifysignature",
            &["-c", "ssa.ctx", "-g", "sha256", "-m", "msg", "-s", "esig"],
        ),
        (
            "tpm2_verifysignature",
            &["-c", "dec.ctx", "-g", "sha256", "-m", "msg", "-s", "esig"],
        ),
        // RSA: messages too long or not below the modulus, bad padding, a
        // ciphertext shorter than the modulus.
        (
            "tpm2_rsaencrypt",
            &["-c", "dec.ctx", "-s", "oaep", "-o", "p", "big"],
        ),
        (
            "tpm2_rsaencrypt",
            &["-c", "dec.ctx", "-s", "rsaes", "-o", "p", "big"],
        ),
        (
            "tpm2_rsaencrypt",
            &["-c", "dec.ctx", "-s", "null", "-o", "p", "ff"],
        ),
        (
            "tpm2_rsadecrypt",
            &["-c", "dec.ctx", "-s", "null", "-o", "p", "ff"],
        ),
        (
            "tpm2_rsadecrypt",
            &["-c", "dec.ctx", "-s", "rsaes", "-o", "p", "big"],
        ),
        (
            "tpm2_rsadecrypt",
            &["-c", "dec.ctx", "-s", "oaep", "-o", "p", "big"],
        ),
        (
            "tpm2_rsadecrypt",
            &["-c", "dec.ctx", "-s", "null", "-o", "p", "short"],
        ),
        // ECDH on an RSA key; ZGen with a signing key.
        ("tpm2_ecdhkeygen", &["-c", "dec.ctx", "-u", "q", "-o", "z"]),
        ("tpm2_ecdhzgen", &["-c", "ecs.ctx", "-u", "q", "-o", "z"]),
    ];
    let mut codes: Vec<Vec<String>> = Vec::new();
    for b in &both {
        b.write("msg", MSG);
        b.write("dig", &[0x11; 20]);
        b.write("big", &[0x7f; 256]);
        b.write("ff", &[0xff; 256]);
        b.write("short", &[0x01; 255]);
        b.primary();
        b.key("ssa", "rsa2048:rsassa-sha256", Some(SIGN));
        b.key("dec", "rsa2048", Some(DECRYPT));
        b.key("ecs", "ecc256:ecdsa-sha256", Some(SIGN));
        b.key("ecd", "ecc256:ecdh", Some(DECRYPT));
        b.ok(
            "tpm2_sign",
            &["-c", "ecs.ctx", "-g", "sha256", "-o", "esig", "msg"],
        );
        b.ok("tpm2_ecdhkeygen", &["-c", "ecd.ctx", "-u", "q", "-o", "z"]);
        let mut c: Vec<String> = cases
            .iter()
            .map(|(tool, args)| format!("{tool} {args:?}: {:#x}", b.fails(tool, args)))
            .collect();
        c.extend(raw_cases(b));
        codes.push(c);
    }
    assert_eq!(codes[0], codes[1], "vtpm (left) vs swtpm (right)");
}

/// Send one command on the data channel; the response code and parameters.
fn send(b: &Bench, cmd: &[u8]) -> (u32, Vec<u8>) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", b.tpm.port)).unwrap();
    s.write_all(cmd).unwrap();
    let mut hdr = [0u8; 10];
    s.read_exact(&mut hdr).unwrap();
    let size = u32::from_be_bytes(hdr[2..6].try_into().unwrap()) as usize;
    let mut body = vec![0u8; size - 10];
    s.read_exact(&mut body).unwrap();
    (u32::from_be_bytes(hdr[6..10].try_into().unwrap()), body)
}

/// A command: with `handle` (if any), a password session when `auth`.
fn command(cc: u32, handle: Option<u32>, auth: bool, params: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    if let Some(h) = handle {
        body.extend(h.to_be_bytes());
    }
    if auth {
        body.extend(9u32.to_be_bytes());
        body.extend(0x4000_0009u32.to_be_bytes());
        body.extend([0, 0, 0, 0, 0]);
    }
    body.extend(params);
    let tag: u16 = if auth { 0x8002 } else { 0x8001 };
    let mut c = tag.to_be_bytes().to_vec();
    c.extend(((10 + body.len()) as u32).to_be_bytes());
    c.extend(cc.to_be_bytes());
    c.extend(body);
    c
}

fn b2(data: &[u8]) -> Vec<u8> {
    let mut v = (data.len() as u16).to_be_bytes().to_vec();
    v.extend(data);
    v
}

/// Load `args` with tpm2_loadexternal and leave it loaded; its handle.
fn load_external(b: &Bench, args: &[&str]) -> u32 {
    let handles = |b: &Bench| -> Vec<String> {
        let out = Command::new("tpm2_getcap")
            .arg("handles-transient")
            .env("TPM2TOOLS_TCTI", b.tpm.tcti())
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.trim_start_matches("- ").to_string())
            .collect()
    };
    let before = handles(b);
    let out = Command::new("tpm2_loadexternal")
        .args(args)
        .current_dir(&b.work)
        .env("TPM2TOOLS_TCTI", b.tpm.tcti())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let new = handles(b)
        .into_iter()
        .find(|h| !before.contains(h))
        .expect("a new transient handle");
    u32::from_str_radix(new.trim_start_matches("0x"), 16).unwrap()
}

/// Bad commands the tools cannot send, as raw bytes; "name: rc" for each.
fn raw_cases(b: &Bench) -> Vec<String> {
    const SIGN_CC: u32 = 0x15d;
    const VERIFY: u32 = 0x177;
    const RSA_ENC: u32 = 0x174;
    const RSA_DEC: u32 = 0x159;
    const ZGEN: u32 = 0x154;
    const ECC_PARAMS: u32 = 0x178;
    b.ok(
        "openssl",
        &[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            "r.key",
        ],
    );
    b.ok(
        "openssl",
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            "e.key",
        ],
    );
    // Both in the null hierarchy, private parts loaded, sign|decrypt, NULL schemes.
    let rsa = load_external(b, &["-C", "n", "-G", "rsa", "-r", "r.key", "-c", "r.ctx"]);
    let ecc = load_external(b, &["-C", "n", "-G", "ecc", "-r", "e.key", "-c", "e.ctx"]);
    let null_ticket = [0x80, 0x24, 0x40, 0, 0, 7, 0, 0];
    let ssa256 = [0, 0x14, 0, 0x0b];
    let d32 = b2(&[0x22; 32]);
    let sign_with = |scheme: &[u8], digest: &[u8], ticket: &[u8]| [digest, scheme, ticket].concat();
    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        // Sign: both schemes NULL; digest size; a scheme of another key type;
        // tickets with a bad tag, hierarchy or digest.
        (
            "sign null/null",
            command(
                SIGN_CC,
                Some(rsa),
                true,
                &sign_with(&[0, 0x10], &d32, &null_ticket),
            ),
        ),
        (
            "sign size",
            command(
                SIGN_CC,
                Some(rsa),
                true,
                &sign_with(&ssa256, &b2(&[1; 20]), &null_ticket),
            ),
        ),
        (
            "sign ecdsa by rsa",
            command(
                SIGN_CC,
                Some(rsa),
                true,
                &sign_with(&[0, 0x18, 0, 0x0b], &d32, &null_ticket),
            ),
        ),
        (
            "sign rsassa by ecc",
            command(
                SIGN_CC,
                Some(ecc),
                true,
                &sign_with(&ssa256, &d32, &null_ticket),
            ),
        ),
        (
            "sign ticket tag",
            command(
                SIGN_CC,
                Some(rsa),
                true,
                &sign_with(&ssa256, &d32, &[0x80, 0x21, 0x40, 0, 0, 7, 0, 0]),
            ),
        ),
        (
            "sign ticket hierarchy",
            command(
                SIGN_CC,
                Some(rsa),
                true,
                &sign_with(&ssa256, &d32, &[0x80, 0x24, 0x40, 0, 0, 9, 0, 0]),
            ),
        ),
        (
            "sign ticket digest",
            command(
                SIGN_CC,
                Some(rsa),
                true,
                &sign_with(&ssa256, &d32, &[0x80, 0x24, 0x40, 0, 0, 1, 0, 2, 1, 2]),
            ),
        ),
        (
            "sign bad scheme",
            command(
                SIGN_CC,
                Some(rsa),
                true,
                &sign_with(&[0, 0x17, 0, 0x0b], &d32, &null_ticket),
            ),
        ),
        (
            "sign bad hash",
            command(
                SIGN_CC,
                Some(rsa),
                true,
                &sign_with(&[0, 0x14, 0, 0x99], &d32, &null_ticket),
            ),
        ),
        // VerifySignature: NULL, HMAC and mismatched signatures.
        (
            "verify null",
            command(
                VERIFY,
                Some(rsa),
                false,
                &[d32.clone(), vec![0, 0x10]].concat(),
            ),
        ),
        (
            "verify hmac by rsa",
            command(
                VERIFY,
                Some(rsa),
                false,
                &[d32.clone(), vec![0, 5, 0, 4], vec![0; 20]].concat(),
            ),
        ),
        (
            "verify short rsa",
            command(
                VERIFY,
                Some(rsa),
                false,
                &[d32.clone(), ssa256.to_vec(), b2(&[1; 16])].concat(),
            ),
        ),
        (
            "verify rsassa by ecc",
            command(
                VERIFY,
                Some(ecc),
                false,
                &[d32.clone(), ssa256.to_vec(), b2(&[1; 256])].concat(),
            ),
        ),
        (
            "verify ecdsa zero",
            command(
                VERIFY,
                Some(ecc),
                false,
                &[d32.clone(), vec![0, 0x18, 0, 0x0b], b2(&[]), b2(&[])].concat(),
            ),
        ),
        (
            "verify hmac null hash",
            command(
                VERIFY,
                Some(rsa),
                false,
                &[d32.clone(), vec![0, 5, 0, 0x10]].concat(),
            ),
        ),
        // RSA: labels without their zero, a scheme outside TPMT_RSA_DECRYPT.
        (
            "encrypt label",
            command(
                RSA_ENC,
                Some(rsa),
                false,
                &[b2(b"hi"), vec![0, 0x17, 0, 0x0b], b2(b"abc")].concat(),
            ),
        ),
        (
            "encrypt inner zero",
            command(
                RSA_ENC,
                Some(rsa),
                false,
                &[b2(b"hi"), vec![0, 0x17, 0, 0x0b], b2(b"ab\0c")].concat(),
            ),
        ),
        (
            "encrypt raw",
            command(
                RSA_ENC,
                Some(rsa),
                false,
                &[b2(b"hi"), vec![0, 0x10], b2(b"")].concat(),
            ),
        ),
        (
            "encrypt ecc",
            command(
                RSA_ENC,
                Some(ecc),
                false,
                &[b2(b"hi"), vec![0, 0x10], b2(b"")].concat(),
            ),
        ),
        (
            "encrypt oaep null hash",
            command(
                RSA_ENC,
                Some(rsa),
                false,
                &[b2(b"hi"), vec![0, 0x17, 0, 0x10], b2(b"")].concat(),
            ),
        ),
        (
            "decrypt label",
            command(
                RSA_DEC,
                Some(rsa),
                true,
                &[b2(&[1; 256]), vec![0, 0x17, 0, 0x0b], b2(b"abc")].concat(),
            ),
        ),
        // ZGen: an empty point, coordinates of the wrong size, a point off the curve.
        ("zgen empty", command(ZGEN, Some(ecc), true, &b2(&[]))),
        (
            "zgen empty coords",
            command(ZGEN, Some(ecc), true, &b2(&[0, 0, 0, 0])),
        ),
        (
            "zgen off curve",
            command(
                ZGEN,
                Some(ecc),
                true,
                &b2(&[b2(&[1; 32]), b2(&[2; 32])].concat()),
            ),
        ),
        (
            "zgen rsa",
            command(
                ZGEN,
                Some(rsa),
                true,
                &b2(&[b2(&[1; 32]), b2(&[2; 32])].concat()),
            ),
        ),
        // ECC_Parameters: no curve, a trailing octet (libtpms also has P-192
        // and BN curves, which vtpm does not implement).
        ("params 0", command(ECC_PARAMS, None, false, &[0, 0])),
        (
            "params trailing",
            command(ECC_PARAMS, None, false, &[0, 3, 0]),
        ),
    ];
    // The same selection with a good ticket-free digest signs.
    cases.push((
        "sign ok",
        command(
            SIGN_CC,
            Some(rsa),
            true,
            &sign_with(&ssa256, &d32, &null_ticket),
        ),
    ));
    cases
        .into_iter()
        .map(|(name, cmd)| format!("{name}: {:#x}", send(b, &cmd).0))
        .collect()
}
