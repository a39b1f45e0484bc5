//! Attestation (TPM2_Quote, Certify, CertifyCreation, GetTime, NV_Certify)
//! through tpm2-tools and raw commands against the real `vtpm` binary: quotes
//! checked by tpm2_checkquote, signatures by OpenSSL, the TPMS_ATTEST
//! structures parsed, and whatever is deterministic — PCR and creation
//! digests, structure layouts, the plain and obfuscated counters, the
//! response codes of refusals — compared with swtpm + libtpms.

#[macro_use]
mod common;

use std::process::Command;

use common::{start_swtpm, Vtpm};

type Bench = common::ToolBench;

impl Bench {
    /// OpenSSL verifies `sig` (a plain signature) over `file` with `pem`.
    fn openssl_verifies(&self, pem: &str, sig: &str, file: &str, pss: bool) {
        let mut args = vec!["dgst", "-sha256", "-verify", pem, "-signature", sig];
        if pss {
            args.extend([
                "-sigopt",
                "rsa_padding_mode:pss",
                "-sigopt",
                "rsa_pss_saltlen:-1",
            ]);
        }
        args.push(file);
        let out = self.ok("openssl", &args);
        assert!(out.contains("Verified OK"), "{out}");
    }

    /// An EK (RSA) as `ek.ctx` and an AK under it as `NAME.ctx`, its public
    /// key in PEM as `NAME.pem`.
    fn ak(&self, name: &str, alg: &str, scheme: &str) {
        if !self.path("ek.ctx").exists() {
            self.ok(
                "tpm2_createek",
                &["-c", "ek.ctx", "-G", "rsa", "-u", "ek.pub"],
            );
        }
        let f = |ext: &str| format!("{name}.{ext}");
        self.ok(
            "tpm2_createak",
            &[
                "-C",
                "ek.ctx",
                "-c",
                &f("ctx"),
                "-G",
                alg,
                "-g",
                "sha256",
                "-s",
                scheme,
                "-u",
                &f("pem"),
                "-f",
                "pem",
                "-r",
                &f("priv"),
                "-n",
                &f("name"),
            ],
        );
    }

    /// An owner-hierarchy ECC primary as `NAME.ctx`, a signing key if `sign`
    /// (else a storage key), with its public key as `NAME.pem`.
    fn owner_primary(&self, name: &str, sign: bool) {
        let ctx = format!("{name}.ctx");
        let mut args = vec!["-C", "o", "-G", "ecc", "-c", &ctx];
        if sign {
            args.extend(["-a", SIGN]);
        }
        self.ok("tpm2_createprimary", &args);
        let pem = format!("{name}.pem");
        self.ok("tpm2_readpublic", &["-c", &ctx, "-f", "pem", "-o", &pem]);
    }

    /// The Name of the object in context file `ctx`.
    fn name(&self, ctx: &str) -> Vec<u8> {
        self.ok("tpm2_readpublic", &["-c", ctx, "-n", "name.bin"]);
        self.read("name.bin")
    }
}

const SIGN: &str = "sign|fixedtpm|fixedparent|sensitivedataorigin|userwithauth";

/// Run `scenario` on vtpm and, when installed, on swtpm; the two must agree.
fn compare<T: PartialEq + std::fmt::Debug>(scenario: impl Fn(&Bench) -> T) -> T {
    let ours = scenario(&Bench::new(Vtpm::start_socket()));
    match start_swtpm() {
        Some(sw) => assert_eq!(ours, scenario(&Bench::new(sw)), "vtpm, then swtpm"),
        None => eprintln!("swtpm not installed: comparison skipped (scripts/test.sh installs it)"),
    }
    ours
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A cursor over a TPM structure (the test's own reading, independent of
/// vtpm's marshalling code).
struct Cur<'a>(&'a [u8]);

impl Cur<'_> {
    fn take(&mut self, n: usize) -> Vec<u8> {
        assert!(self.0.len() >= n, "short structure");
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        a.to_vec()
    }
    fn uint(&mut self, n: usize) -> u64 {
        self.take(n).iter().fold(0, |v, &b| (v << 8) | u64::from(b))
    }
    fn b2(&mut self) -> Vec<u8> {
        let n = self.uint(2) as usize;
        self.take(n)
    }
}

/// A TPMS_ATTEST: the header fields and the undecoded `attested` member.
#[derive(Debug)]
struct Attest {
    ty: u16,
    signer: Vec<u8>,
    extra: Vec<u8>,
    clock: u64,
    reset: u32,
    restart: u32,
    safe: u8,
    firmware: u64,
    body: Vec<u8>,
}

fn parse_attest(bytes: &[u8]) -> Attest {
    let mut c = Cur(bytes);
    assert_eq!(c.uint(4), 0xff54_4347, "TPM_GENERATED_VALUE");
    Attest {
        ty: c.uint(2) as u16,
        signer: c.b2(),
        extra: c.b2(),
        clock: c.uint(8),
        reset: c.uint(4) as u32,
        restart: c.uint(4) as u32,
        safe: c.uint(1) as u8,
        firmware: c.uint(8),
        body: c.0.to_vec(),
    }
}

/// tpm2_quote with RSA (RSASSA, RSAPSS) and ECC (ECDSA) attestation keys
/// under an EK, checked by tpm2_checkquote (by OpenSSL for RSAPSS, which
/// tpm2_checkquote 5.4 verifies as PKCS#1 v1.5 and so refuses from swtpm as
/// well). The quoted PCR selection and digest are the same on vtpm and swtpm
/// after the same extends, and so are the counters, which an endorsement key
/// sees in the clear.
#[test]
fn quotes_verify_with_checkquote_and_equal_swtpm_quotes() {
    need_tools_and_openssl!();
    let facts = compare(|b: &Bench| {
        b.ok(
            "tpm2_pcrextend",
            &["16:sha256=0101010101010101010101010101010101010101010101010101010101010101,sha1=0202020202020202020202020202020202020202"],
        );
        let mut facts = Vec::new();
        for (ak, alg, scheme, pcrs) in [
            ("rsassa", "rsa", "rsassa", "sha256:0,1,2,16"),
            ("rsapss", "rsa", "rsapss", "sha1:16+sha256:0,16"),
            ("ecdsa", "ecc", "ecdsa", "sha256:16,23"),
        ] {
            b.ak(ak, alg, scheme);
            let (ctx, pem) = (format!("{ak}.ctx"), format!("{ak}.pem"));
            let pss = scheme == "rsapss";
            // The tools ask for RSASSA (ECDSA) unless told the key's scheme.
            b.ok(
                "tpm2_quote",
                &[
                    "-c",
                    &ctx,
                    "-l",
                    pcrs,
                    "-q",
                    "0badc0de",
                    "-m",
                    "q.msg",
                    "-s",
                    "q.sig",
                    "-o",
                    "q.pcrs",
                    "-g",
                    "sha256",
                    "--scheme",
                    scheme,
                    "-f",
                    if pss { "plain" } else { "tss" },
                ],
            );
            if pss {
                b.openssl_verifies(&pem, "q.sig", "q.msg", true);
            } else {
                let out = b.ok(
                    "tpm2_checkquote",
                    &[
                        "-u", &pem, "-m", "q.msg", "-s", "q.sig", "-f", "q.pcrs", "-g", "sha256",
                        "-q", "0badc0de",
                    ],
                );
                assert!(out.contains("pcrs:"), "{out}");
            }
            let a = parse_attest(&b.read("q.msg"));
            assert_eq!(a.ty, 0x8018, "TPM_ST_ATTEST_QUOTE");
            assert_eq!(a.extra, [0x0b, 0xad, 0xc0, 0xde]);
            assert_eq!(a.signer[..2], [0, 0x0b], "a SHA-256 qualified name");
            facts.push(format!(
                "{ak}: reset {} restart {} safe {} quote {}",
                a.reset,
                a.restart,
                a.safe,
                hex(&a.body)
            ));
        }
        facts
    });
    println!("{facts:#?}");
}

/// tpm2_certify by RSASSA, RSAPSS and ECDSA attestation keys and by an
/// owner-hierarchy ECC key; OpenSSL verifies each signature, and the
/// attestation names the certified object.
#[test]
fn certify_signatures_verify_with_openssl() {
    need_tools_and_openssl!();
    compare(|b: &Bench| {
        b.owner_primary("obj", false);
        b.owner_primary("owner", true);
        let name = b.name("obj.ctx");
        let mut facts = Vec::new();
        for (signer, alg, scheme) in [
            ("rsassa", "rsa", "rsassa"),
            ("rsapss", "rsa", "rsapss"),
            ("ecdsa", "ecc", "ecdsa"),
            ("owner", "", ""),
        ] {
            if !alg.is_empty() {
                b.ak(signer, alg, scheme);
            }
            b.ok(
                "tpm2_certify",
                &[
                    "-c",
                    "obj.ctx",
                    "-C",
                    &format!("{signer}.ctx"),
                    "-g",
                    "sha256",
                    "-o",
                    "c.att",
                    "-s",
                    "c.sig",
                    "-f",
                    "plain",
                    "--scheme",
                    if scheme.is_empty() { "ecdsa" } else { scheme },
                ],
            );
            b.openssl_verifies(
                &format!("{signer}.pem"),
                "c.sig",
                "c.att",
                scheme == "rsapss",
            );
            let a = parse_attest(&b.read("c.att"));
            assert_eq!(a.ty, 0x8017, "TPM_ST_ATTEST_CERTIFY");
            let mut body = Cur(&a.body);
            assert_eq!(body.b2(), name, "the certified Name");
            let qn = body.b2();
            assert!(body.0.is_empty());
            facts.push(format!(
                "{signer}: name {} qn {} signer {}",
                name.len(),
                qn.len(),
                a.signer.len()
            ));
        }
        facts
    });
}

/// tpm2_certifycreation of a primary (tpm2_createprimary's creation hash and
/// ticket) and of a child (tpm2_create's): OpenSSL verifies, the attestation
/// holds the Name and the creation hash. The primary's creation hash is the
/// same on both TPMs; a ticket of another object or a changed ticket is
/// TPM_RC_TICKET on the ticket.
#[test]
fn certify_creation_vouches_for_the_creation_hash() {
    need_tools_and_openssl!();
    let facts = compare(|b: &Bench| {
        b.ak("ak", "rsa", "rsassa");
        b.ok(
            "tpm2_createprimary",
            &[
                "-C",
                "o",
                "-G",
                "ecc",
                "-c",
                "prim.ctx",
                "-d",
                "prim.hash",
                "-t",
                "prim.ticket",
            ],
        );
        b.ok(
            "tpm2_create",
            &[
                "-C",
                "prim.ctx",
                "-G",
                "ecc",
                "-u",
                "key.pub",
                "-r",
                "key.priv",
                "-d",
                "key.hash",
                "-t",
                "key.ticket",
            ],
        );
        b.ok(
            "tpm2_load",
            &[
                "-C", "prim.ctx", "-u", "key.pub", "-r", "key.priv", "-c", "key.ctx",
            ],
        );
        let certify = |obj: &str, hash: &str, ticket: &str| {
            b.code(
                "tpm2_certifycreation",
                &[
                    "-C",
                    "ak.ctx",
                    "-c",
                    obj,
                    "-d",
                    hash,
                    "-t",
                    ticket,
                    "-g",
                    "sha256",
                    "-o",
                    "cc.sig",
                    "-f",
                    "plain",
                    "--attestation",
                    "cc.att",
                    "-q",
                    "0102",
                ],
            )
        };
        let mut facts = vec![format!(
            "primary creation hash {}",
            hex(&b.read("prim.hash"))
        )];
        for obj in ["prim", "key"] {
            let (ctx, hash, ticket) = (
                format!("{obj}.ctx"),
                format!("{obj}.hash"),
                format!("{obj}.ticket"),
            );
            assert_eq!(certify(&ctx, &hash, &ticket), "ok");
            b.openssl_verifies("ak.pem", "cc.sig", "cc.att", false);
            let a = parse_attest(&b.read("cc.att"));
            assert_eq!(a.ty, 0x801a, "TPM_ST_ATTEST_CREATION");
            assert_eq!(a.extra, [1, 2]);
            let mut body = Cur(&a.body);
            assert_eq!(body.b2(), b.name(&ctx), "objectName");
            // tpm2-tools writes the hash as a TPM2B_DIGEST.
            let file = b.read(&hash);
            assert_eq!(body.b2(), Cur(&file).b2(), "creationHash");
        }
        facts.push(format!(
            "child's ticket for the primary: {}",
            certify("prim.ctx", "prim.hash", "key.ticket")
        ));
        let mut bad = b.read("prim.ticket");
        let last = bad.len() - 1;
        bad[last] ^= 1;
        b.write("bad.ticket", &bad);
        facts.push(format!(
            "changed ticket: {}",
            certify("prim.ctx", "prim.hash", "bad.ticket")
        ));
        facts
    });
    assert_eq!(facts[1], "child's ticket for the primary: 0x000004e0");
    assert_eq!(facts[2], "changed ticket: 0x000004e0");
}

/// tpm2_gettime: with an endorsement key the header's counters and firmware
/// version equal the plain ones in TPMS_TIME_ATTEST_INFO; with an owner key
/// they are obfuscated, the plain ones unchanged. OpenSSL verifies both.
#[test]
fn get_time_reports_plain_and_obfuscated_counters() {
    need_tools_and_openssl!();
    compare(|b: &Bench| {
        b.ak("ak", "rsa", "rsassa");
        b.owner_primary("owner", true);
        let mut facts = Vec::new();
        let mut plain_seen = Vec::new();
        for signer in ["ak", "owner"] {
            b.ok(
                "tpm2_gettime",
                &[
                    "-c",
                    &format!("{signer}.ctx"),
                    "-q",
                    "abcd",
                    "--attestation",
                    "t.att",
                    "-o",
                    "t.sig",
                    "-f",
                    "plain",
                ],
            );
            b.openssl_verifies(&format!("{signer}.pem"), "t.sig", "t.att", false);
            let a = parse_attest(&b.read("t.att"));
            assert_eq!(a.ty, 0x8019, "TPM_ST_ATTEST_TIME");
            assert_eq!(a.extra, [0xab, 0xcd]);
            let mut body = Cur(&a.body);
            let (time, clock) = (body.uint(8), body.uint(8));
            let (reset, restart, safe) = (body.uint(4) as u32, body.uint(4) as u32, body.uint(1));
            let firmware = body.uint(8);
            assert!(body.0.is_empty());
            assert!(time > 0 && clock >= a.clock && safe == 1);
            plain_seen.push((reset, restart, firmware));
            let same = (a.reset, a.restart, a.firmware) == (reset, restart, firmware);
            facts.push(format!(
                "{signer}: {} (plain reset {reset} restart {restart})",
                if same { "in the clear" } else { "obfuscated" }
            ));
        }
        assert_eq!(plain_seen[0], plain_seen[1]);
        facts
    });
}

/// tpm2_nvcertify by an RSA attestation key and an owner ECC key: OpenSSL
/// verifies, the attestation holds the octets (or, with size and offset 0,
/// the SHA-256 of the whole index, the same on both TPMs).
#[test]
fn nv_certify_signatures_verify_with_openssl() {
    need_tools_and_openssl!();
    let facts = compare(|b: &Bench| {
        b.ak("ak", "rsa", "rsassa");
        b.owner_primary("owner", true);
        b.ok(
            "tpm2_nvdefine",
            &[
                "0x1500016",
                "-C",
                "o",
                "-s",
                "32",
                "-a",
                "ownerread|ownerwrite|no_da",
            ],
        );
        let data = b"attested by the TPM, 32 octets.\n";
        b.write("data", data);
        b.ok("tpm2_nvwrite", &["0x1500016", "-C", "o", "-i", "data"]);
        let mut facts = Vec::new();
        for (signer, size, offset) in [("ak", "8", "4"), ("owner", "32", "0"), ("ak", "0", "0")] {
            b.ok(
                "tpm2_nvcertify",
                &[
                    "-C",
                    &format!("{signer}.ctx"),
                    "-c",
                    "o",
                    "-g",
                    "sha256",
                    "-f",
                    "plain",
                    "-o",
                    "n.sig",
                    "-q",
                    "1122",
                    "--attestation",
                    "n.att",
                    "--size",
                    size,
                    "--offset",
                    offset,
                    "0x1500016",
                ],
            );
            b.openssl_verifies(&format!("{signer}.pem"), "n.sig", "n.att", false);
            let a = parse_attest(&b.read("n.att"));
            assert_eq!(a.extra, [0x11, 0x22]);
            let mut body = Cur(&a.body);
            let index_name = body.b2();
            assert_eq!(index_name.len(), 34);
            if size == "0" {
                assert_eq!(a.ty, 0x801c, "TPM_ST_ATTEST_NV_DIGEST");
                facts.push(format!("digest {}", hex(&body.b2())));
            } else {
                assert_eq!(a.ty, 0x8014, "TPM_ST_ATTEST_NV");
                let (off, n): (usize, usize) = (offset.parse().unwrap(), size.parse().unwrap());
                assert_eq!(body.uint(2) as usize, off);
                assert_eq!(body.b2(), &data[off..off + n]);
                facts.push(format!(
                    "{signer} {size}@{offset}: index {}",
                    hex(&index_name)
                ));
            }
            assert!(body.0.is_empty());
        }
        facts
    });
    // SHA-256 of the 32 octets written (sha256sum).
    assert_eq!(
        facts[2],
        "digest 89e82da373b818f09f122e8387c109d6add091e849c639f24f9962d5b45ea503"
    );
}

/// Refusals through the tools: a key that cannot sign (TPM_RC_KEY on the
/// signing handle), a restricted key asked to sign a digest the TPM did not
/// make or data that starts like an attestation (TPM_RC_TICKET: that is what
/// keeps a forged TPMS_ATTEST from being signed), a changed creation ticket.
#[test]
fn tool_refusals_answer_as_swtpm() {
    need_tools_and_openssl!();
    let codes = compare(|b: &Bench| {
        b.ak("ak", "rsa", "rsassa");
        b.owner_primary("stor", false);
        b.write("digest", &[0u8; 32]);
        b.write("forged", b"\xff\x54\x43\x47 a forged TPMS_ATTEST");
        b.write("message", b"an ordinary message");
        let mut codes = Vec::new();
        let quote = ["-l", "sha256:0", "-q", "11", "-m", "q.msg", "-s", "q.sig"];
        codes.push(b.code("tpm2_quote", &[&["-c", "stor.ctx"][..], &quote].concat()));
        let sign = ["-c", "ak.ctx", "-g", "sha256", "-o", "s.sig"];
        codes.push(b.code("tpm2_sign", &[&sign[..], &["-d", "digest"]].concat()));
        codes.push(b.code("tpm2_sign", &[&sign[..], &["forged"]].concat()));
        codes.push(b.code("tpm2_sign", &[&sign[..], &["message"]].concat()));
        let out = ["-g", "sha256", "-o", "a", "-s", "s"];
        codes.push(b.code(
            "tpm2_certify",
            &[&["-c", "stor.ctx", "-C", "stor.ctx"][..], &out].concat(),
        ));
        codes.push(b.code(
            "tpm2_gettime",
            &["-c", "stor.ctx", "--attestation", "a", "-o", "s"],
        ));
        codes
    });
    assert_eq!(
        codes,
        [
            "0x0000019c",
            "0x000003e0",
            "0x000003e0",
            "ok",
            "0x0000029c",
            "0x0000029c"
        ]
    );
}

// Raw commands, for what the tools will not send.

const RH_OWNER: u32 = 0x4000_0001;
const RH_NULL: u32 = 0x4000_0007;
const RH_ENDORSEMENT: u32 = 0x4000_000B;
const CC_CREATE_PRIMARY: u32 = 0x131;
const CC_CERTIFY: u32 = 0x148;
const CC_CERTIFY_CREATION: u32 = 0x14a;
const CC_GET_TIME: u32 = 0x14c;
const CC_SIGN: u32 = 0x15d;
const CC_QUOTE: u32 = 0x158;
const CC_FLUSH: u32 = 0x165;
const CC_VERIFY: u32 = 0x177;

const FIXED: u32 = 0x2 | 0x10 | 0x20 | 0x40;
const RESTRICTED: u32 = 0x1_0000;
const DECRYPT: u32 = 0x2_0000;
const SIGN_ATTR: u32 = 0x4_0000;

fn b2(data: &[u8]) -> Vec<u8> {
    let mut v = (data.len() as u16).to_be_bytes().to_vec();
    v.extend(data);
    v
}

fn be16(v: &[u16]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_be_bytes()).collect()
}

/// A command with `handles` and `passwords` empty password sessions.
fn command(cc: u32, handles: &[u32], passwords: usize, params: &[u8]) -> Vec<u8> {
    let mut body: Vec<u8> = handles.iter().flat_map(|h| h.to_be_bytes()).collect();
    if passwords > 0 {
        let one = [&0x4000_0009u32.to_be_bytes()[..], &[0, 0, 0, 0, 0]].concat();
        body.extend(((one.len() * passwords) as u32).to_be_bytes());
        for _ in 0..passwords {
            body.extend(&one);
        }
    }
    body.extend(params);
    let tag: u16 = if passwords > 0 { 0x8002 } else { 0x8001 };
    let mut c = tag.to_be_bytes().to_vec();
    c.extend(((10 + body.len()) as u32).to_be_bytes());
    c.extend(cc.to_be_bytes());
    c.extend(body);
    c
}

/// Send a command; the response code and the rest. TPM_RC_RETRY (libtpms
/// answers it while it self-tests an algorithm first used) is retried, as
/// the TSS does.
fn send(b: &Bench, cmd: &[u8]) -> (u32, Vec<u8>) {
    use std::io::{Read, Write};
    for _ in 0..5 {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", b.tpm.port)).unwrap();
        s.write_all(cmd).unwrap();
        let mut hdr = [0u8; 10];
        s.read_exact(&mut hdr).unwrap();
        let size = u32::from_be_bytes(hdr[2..6].try_into().unwrap()) as usize;
        let mut body = vec![0u8; size - 10];
        s.read_exact(&mut body).unwrap();
        let rc = u32::from_be_bytes(hdr[6..10].try_into().unwrap());
        if rc != 0x922 {
            return (rc, body);
        }
    }
    panic!("TPM_RC_RETRY five times");
}

/// CreatePrimary of `public` in `hierarchy`; the handle.
fn primary(b: &Bench, hierarchy: u32, public: &[u8]) -> u32 {
    let mut p = b2(&b2(&[]).repeat(2));
    p.extend(b2(public));
    p.extend(b2(&[]));
    p.extend(0u32.to_be_bytes());
    let (rc, body) = send(b, &command(CC_CREATE_PRIMARY, &[hierarchy], 1, &p));
    assert_eq!(rc, 0, "CreatePrimary {public:02x?}");
    u32::from_be_bytes(body[..4].try_into().unwrap())
}

fn flush(b: &Bench, h: u32) {
    assert_eq!(send(b, &command(CC_FLUSH, &[], 0, &h.to_be_bytes())).0, 0);
}

/// TPMT_PUBLIC of an RSA-2048 key with `attrs`, `scheme` and `sym`.
fn rsa_template(attrs: u32, scheme: &[u8], sym: &[u8]) -> Vec<u8> {
    let mut t = be16(&[0x0001, 0x000b]);
    t.extend(attrs.to_be_bytes());
    t.extend(b2(&[]));
    t.extend(sym);
    t.extend(scheme);
    t.extend(be16(&[2048]));
    t.extend(0u32.to_be_bytes());
    t.extend(b2(&[]));
    t
}

/// TPMT_PUBLIC of a P-256 key with `attrs` and `scheme`.
fn ecc_template(attrs: u32, scheme: &[u8]) -> Vec<u8> {
    let mut t = be16(&[0x0023, 0x000b]);
    t.extend(attrs.to_be_bytes());
    t.extend(b2(&[]));
    t.extend(be16(&[0x0010]));
    t.extend(scheme);
    t.extend(be16(&[0x0003, 0x0010]));
    t.extend(b2(&[]));
    t.extend(b2(&[]));
    t
}

const NULL_SCHEME: [u8; 2] = [0, 0x10];
const AES128_CFB: [u8; 6] = [0, 6, 0, 128, 0, 0x43];

fn scheme(alg: u16, hash: u16) -> Vec<u8> {
    be16(&[alg, hash])
}

/// PCR selection: one bank `hash`, sizeofSelect `bits.len()`.
fn selection(banks: &[(u16, &[u8])]) -> Vec<u8> {
    let mut v = (banks.len() as u32).to_be_bytes().to_vec();
    for (hash, bits) in banks {
        v.extend(hash.to_be_bytes());
        v.push(bits.len() as u8);
        v.extend(*bits);
    }
    v
}

fn quote(b: &Bench, sign: u32, scheme: &[u8], sel: &[u8], qualifying: &[u8]) -> (u32, Vec<u8>) {
    let p = [b2(qualifying), scheme.to_vec(), sel.to_vec()].concat();
    send(b, &command(CC_QUOTE, &[sign], 1, &p))
}

/// A TPMT_TK_CREATION with `tag`, `hierarchy` and a digest of 64 zeros.
fn creation_ticket(tag: u16, hierarchy: u32) -> Vec<u8> {
    [
        tag.to_be_bytes().to_vec(),
        hierarchy.to_be_bytes().to_vec(),
        b2(&[0; 64]),
    ]
    .concat()
}

fn certify_creation(b: &Bench, sign: u32, obj: u32, scheme: &[u8], ticket: &[u8]) -> u32 {
    let p = [b2(b"q"), b2(&[1; 32]), scheme.to_vec(), ticket.to_vec()].concat();
    send(b, &command(CC_CERTIFY_CREATION, &[sign, obj], 1, &p)).0
}

/// The response codes of malformed or refused attestation and signing
/// commands, as named cases.
fn raw_codes(b: &Bench) -> Vec<String> {
    let sha256 = 0x000b;
    let pcr012 = selection(&[(sha256, &[7, 0, 0])]);
    let null = NULL_SCHEME.to_vec();
    let ssa = scheme(0x14, sha256);
    let pss = scheme(0x16, sha256);
    let ecdsa = scheme(0x18, sha256);
    let hmac = scheme(0x05, sha256);
    let mut cases: Vec<(&str, u32)> = Vec::new();
    // A restricted RSASSA-SHA256 key, an RSA key with no scheme, a storage key.
    let ak = primary(
        b,
        RH_ENDORSEMENT,
        &rsa_template(FIXED | RESTRICTED | SIGN_ATTR, &ssa, &NULL_SCHEME),
    );
    let rsa = primary(
        b,
        RH_OWNER,
        &rsa_template(FIXED | SIGN_ATTR, &null, &NULL_SCHEME),
    );
    let stor = primary(
        b,
        RH_OWNER,
        &rsa_template(FIXED | RESTRICTED | DECRYPT, &null, &AES128_CFB),
    );
    let q = |sign, s: &[u8], sel: &[u8]| quote(b, sign, s, sel, b"nonce").0;
    cases.extend([
        ("quote without a key", q(RH_NULL, &ssa, &pcr012)),
        ("quote, the key's scheme", q(ak, &null, &pcr012)),
        ("quote, another scheme", q(ak, &pss, &pcr012)),
        ("quote, another hash", q(ak, &scheme(0x14, 0x0004), &pcr012)),
        ("quote, another family", q(ak, &ecdsa, &pcr012)),
        ("quote, no scheme at all", q(rsa, &null, &pcr012)),
        ("quote, rsa with ecdsa", q(rsa, &ecdsa, &pcr012)),
        ("quote, rsa with hmac", q(rsa, &hmac, &pcr012)),
        ("quote, rsa with pss", q(rsa, &pss, &pcr012)),
        ("quote by a storage key", q(stor, &null, &pcr012)),
        ("quote nothing", q(ak, &null, &selection(&[]))),
        (
            "quote sm3 bank",
            q(ak, &null, &selection(&[(0x12, &[7, 0, 0])])),
        ),
        (
            "quote 4-octet select",
            q(ak, &null, &selection(&[(sha256, &[7, 0, 0, 1])])),
        ),
        (
            "quote 2-octet select",
            q(ak, &null, &selection(&[(sha256, &[7, 0])])),
        ),
        (
            "quote 5 banks",
            q(ak, &null, &selection(&[(sha256, &[1u8, 0, 0][..]); 5])),
        ),
        (
            "quote all pcrs",
            q(ak, &null, &selection(&[(sha256, &[0xff; 3])])),
        ),
        ("quote 67 octets", quote(b, ak, &null, &pcr012, &[1; 67]).0),
    ]);
    let certify = |obj, sign, s: &[u8]| {
        let p = [b2(b"q"), s.to_vec()].concat();
        send(b, &command(CC_CERTIFY, &[obj, sign], 2, &p)).0
    };
    cases.extend([
        ("certify by a storage key", certify(ak, stor, &null)),
        ("certify without a key", certify(stor, RH_NULL, &null)),
        ("certify TPM_RH_NULL", certify(RH_NULL, ak, &null)),
        ("certify with another scheme", certify(stor, ak, &pss)),
    ]);
    let get_time = |admin, sign| {
        let p = [b2(b"q"), null.clone()].concat();
        send(b, &command(CC_GET_TIME, &[admin, sign], 2, &p)).0
    };
    cases.extend([
        ("gettime by the owner", get_time(RH_OWNER, ak)),
        ("gettime without a key", get_time(RH_ENDORSEMENT, RH_NULL)),
        ("gettime by a storage key", get_time(RH_ENDORSEMENT, stor)),
    ]);
    let tk = creation_ticket(0x8021, RH_ENDORSEMENT);
    cases.extend([
        (
            "certifycreation, bad ticket",
            certify_creation(b, RH_NULL, ak, &null, &tk),
        ),
        (
            "certifycreation, hashcheck tag",
            certify_creation(b, RH_NULL, ak, &null, &creation_ticket(0x8024, RH_NULL)),
        ),
        (
            "certifycreation, ticket of a session",
            certify_creation(b, RH_NULL, ak, &null, &creation_ticket(0x8021, 0x4000_0009)),
        ),
        (
            "certifycreation by a storage key",
            certify_creation(b, stor, ak, &null, &tk),
        ),
        (
            "certifycreation, scheme before ticket",
            certify_creation(b, rsa, ak, &ecdsa, &tk),
        ),
    ]);
    // Sign: the scheme's fit is checked before the digest's size.
    let null_ticket = [0x80, 0x24, 0x40, 0, 0, 7, 0, 0];
    let sign = |s: &[u8], digest: &[u8]| {
        let p = [b2(digest), s.to_vec(), null_ticket.to_vec()].concat();
        send(b, &command(CC_SIGN, &[rsa], 1, &p)).0
    };
    cases.extend([
        ("sign, ecdsa by rsa, short digest", sign(&ecdsa, &[1; 20])),
        ("sign, hmac by rsa, short digest", sign(&hmac, &[1; 20])),
        ("sign, short digest", sign(&ssa, &[1; 20])),
    ]);
    for h in [ak, rsa, stor] {
        flush(b, h);
    }
    // An ECC key and an HMAC key without schemes, a symmetric key with `sign`.
    let ecc = primary(b, RH_OWNER, &ecc_template(FIXED | SIGN_ATTR, &null));
    let mut keyed = be16(&[0x0008, sha256]);
    keyed.extend((FIXED | SIGN_ATTR).to_be_bytes());
    keyed.extend(b2(&[]));
    keyed.extend(&hmac);
    keyed.extend(b2(&[]));
    let hm = primary(b, RH_OWNER, &keyed);
    let mut symk = be16(&[0x0025, sha256]);
    symk.extend((FIXED | SIGN_ATTR | DECRYPT).to_be_bytes());
    symk.extend(b2(&[]));
    symk.extend(AES128_CFB);
    symk.extend(b2(&[]));
    let sym = primary(b, RH_OWNER, &symk);
    cases.extend([
        ("quote, ecc with rsassa", q(ecc, &ssa, &pcr012)),
        (
            "quote, ecc with ecdsa-sha512",
            q(ecc, &scheme(0x18, 0x0d), &pcr012),
        ),
        (
            "quote, ecc with ecschnorr",
            q(ecc, &scheme(0x1c, sha256), &pcr012),
        ),
        ("quote by an hmac key", q(hm, &null, &pcr012)),
        ("quote, hmac key with ecdsa", q(hm, &ecdsa, &pcr012)),
        ("quote by a symmetric key", q(sym, &hmac, &pcr012)),
        ("gettime by a symmetric key", get_time(RH_ENDORSEMENT, sym)),
        (
            "sign by a symmetric key",
            send(
                b,
                &command(
                    CC_SIGN,
                    &[sym],
                    1,
                    &[b2(&[1; 32]), hmac.clone(), null_ticket.to_vec()].concat(),
                ),
            )
            .0,
        ),
    ]);
    for h in [ecc, hm, sym] {
        flush(b, h);
    }
    cases
        .into_iter()
        .map(|(name, rc)| format!("{name}: {rc:#x}"))
        .collect()
}

#[test]
fn raw_refusals_answer_as_swtpm() {
    need_tools_and_openssl!();
    let codes = compare(raw_codes);
    let expect = [
        "quote without a key: 0x2d2",
        "quote, the key's scheme: 0x0",
        "quote, another scheme: 0x2d2",
        "quote, another hash: 0x2d2",
        "quote, another family: 0x2d2",
        "quote, no scheme at all: 0x2d2",
        "quote, rsa with ecdsa: 0x2d2",
        "quote, rsa with hmac: 0x2d2",
        "quote, rsa with pss: 0x0",
        "quote by a storage key: 0x19c",
        "quote nothing: 0x0",
        "quote sm3 bank: 0x3c3",
        "quote 4-octet select: 0x3c4",
        "quote 2-octet select: 0x3c4",
        "quote 5 banks: 0x3d5",
        "quote all pcrs: 0x0",
        "quote 67 octets: 0x1d5",
        "certify by a storage key: 0x29c",
        "certify without a key: 0x0",
        "certify TPM_RH_NULL: 0x184",
        "certify with another scheme: 0x2d2",
        "gettime by the owner: 0x184",
        "gettime without a key: 0x0",
        "gettime by a storage key: 0x29c",
        "certifycreation, bad ticket: 0x4e0",
        "certifycreation, hashcheck tag: 0x4d7",
        "certifycreation, ticket of a session: 0x4c4",
        "certifycreation by a storage key: 0x19c",
        "certifycreation, scheme before ticket: 0x3d2",
        "sign, ecdsa by rsa, short digest: 0x2d2",
        "sign, hmac by rsa, short digest: 0x2d2",
        "sign, short digest: 0x1d5",
        "quote, ecc with rsassa: 0x2d2",
        "quote, ecc with ecdsa-sha512: 0x0",
        "quote, ecc with ecschnorr: 0x0",
        "quote by an hmac key: 0x0",
        "quote, hmac key with ecdsa: 0x2d2",
        "quote by a symmetric key: 0x19c",
        "gettime by a symmetric key: 0x29c",
        "sign by a symmetric key: 0x19c",
    ];
    assert_eq!(codes, expect);
}

/// SHA-256 of `data` (by OpenSSL, an implementation of its own).
fn sha256(b: &Bench, data: &[u8]) -> Vec<u8> {
    b.write("to-hash", data);
    let out = b.run("openssl", &["dgst", "-sha256", "-binary", "to-hash"]);
    assert!(out.status.success());
    out.stdout
}

/// The TPM2B_ATTEST and TPMT_SIGNATURE of a successful attestation response
/// to a command with `sessions` password sessions.
fn attest_and_signature(body: &[u8], sessions: usize) -> (Vec<u8>, Vec<u8>) {
    let size = u32::from_be_bytes(body[..4].try_into().unwrap()) as usize;
    assert_eq!(
        body.len(),
        4 + size + 5 * sessions,
        "one empty session area each"
    );
    let mut c = Cur(&body[4..4 + size]);
    let attest = c.b2();
    (attest, c.0.to_vec())
}

/// A point of a TPM2B_ECC_POINT as read by `c`.
fn ecc_point(c: &mut Cur<'_>) -> tpm_crypto::Point {
    let point = c.b2();
    let mut q = Cur(&point);
    let (x, y) = (q.b2(), q.b2());
    tpm_crypto::Point::new(&x, &y)
}

/// ECDAA, which tpm2-tools cannot quote with (tpm2_quote sends no commit
/// count; 0x2d2 on both TPMs): a P-256 ECDAA key, TPM2_Commit for the
/// commitment E = [r]G and its counter, TPM2_Quote with the ECDAA scheme
/// and that counter. vtpm's signature verifies as [s]G = E + [H(k ||
/// digest) mod n]Q over the quote's TPMS_ATTEST (libtpms 0.9.2's quote does
/// not, although its ECDAA TPM2_Sign does: printed, not asserted), and a
/// second quote with the spent counter is refused with swtpm's code.
#[test]
fn ecdaa_quotes_verify_on_both_implementations() {
    need_tools_and_openssl!();
    let mut benches = vec![("vtpm", Bench::new(Vtpm::start_socket()))];
    match start_swtpm() {
        Some(sw) => benches.push(("swtpm", Bench::new(sw))),
        None => eprintln!("swtpm not installed: vtpm only (scripts/test.sh installs it)"),
    }
    let mut spent = Vec::new();
    for (name, b) in &benches {
        // TPMS_SCHEME_ECDAA: the hash and a count (0 in a template).
        let ecdaa_key = be16(&[0x1a, 0x000b, 0]);
        let key = primary(b, RH_OWNER, &ecc_template(FIXED | SIGN_ATTR, &ecdaa_key));
        // ReadPublic: the key's point is the end of its TPMT_PUBLIC.
        let (rc, public) = send(b, &command(0x173, &[key], 0, &[]));
        assert_eq!(rc, 0);
        let public = Cur(&public).b2();
        let tail = &public[public.len() - 68..];
        let q = tpm_crypto::Point::new(&tail[2..34], &tail[36..]);
        // TPM2_Commit with no P1 (a point of two empty coordinates, the
        // form both TPMs take), s2 or y2: E = [r]G, and the counter.
        let p = [vec![0, 4, 0, 0, 0, 0], b2(&[]), b2(&[])].concat();
        let (rc, body) = send(b, &command(0x18b, &[key], 1, &p));
        assert_eq!(rc, 0, "{name}: Commit");
        let mut c = Cur(&body[4..]);
        let (_k, _l, e) = (ecc_point(&mut c), ecc_point(&mut c), ecc_point(&mut c));
        let counter = c.uint(2) as u16;
        let sel = selection(&[(0x000b, &[0xff, 0, 0])]);
        let with_count = be16(&[0x1a, 0x000b, counter]);
        let (rc, body) = quote(b, key, &with_count, &sel, b"ecdaa quote");
        assert_eq!(rc, 0, "{name}: Quote with ECDAA");
        let (attest, sig) = attest_and_signature(&body, 1);
        let mut c = Cur(&sig);
        assert_eq!(
            (c.uint(2), c.uint(2)),
            (0x1a, 0x000b),
            "{name}: ECDAA, SHA-256"
        );
        let (k, s) = (c.b2(), c.b2());
        let digest = sha256(b, &attest);
        let verifies = tpm_crypto::ecdaa::verify_ecdaa(
            tpm_crypto::Curve::P256,
            &q,
            &e,
            tpm_crypto::HashAlg::Sha256,
            &digest,
            &k,
            &s,
        );
        println!("{name}: ECDAA quote verifies: {verifies}");
        // libtpms 0.9.2's does not (its ECDAA TPM2_Sign does, see
        // tests/ecc_split.rs): vtpm's must.
        if *name == "vtpm" {
            assert!(verifies, "vtpm: the ECDAA quote verifies");
        }
        spent.push(quote(b, key, &with_count, &sel, b"again").0);
        flush(b, key);
    }
    println!("spent commit counter: {spent:x?}");
    assert_ne!(spent[0], 0, "a spent counter is refused");
    if spent.len() == 2 {
        assert_eq!(spent[0], spent[1], "same code as swtpm");
    }
}

/// EC-Schnorr, which no tool verifies: a vtpm quote signed with it verifies
/// in swtpm (its public key loaded there with LoadExternal), and the other
/// way round. Unsigned attestations (TPM_RH_NULL) name TPM_RH_NULL as the
/// signer and carry the NULL signature on both.
#[test]
fn schnorr_quotes_verify_across_implementations() {
    need_tools_and_openssl!();
    let Some(sw) = start_swtpm() else {
        eprintln!("swtpm not installed: skipped (scripts/test.sh installs it)");
        return;
    };
    let (v, s) = (Bench::new(Vtpm::start_socket()), Bench::new(sw));
    let schnorr = scheme(0x1c, 0x000b);
    for (signer, verifier) in [(&v, &s), (&s, &v)] {
        let key = primary(
            signer,
            RH_OWNER,
            &ecc_template(FIXED | SIGN_ATTR, &NULL_SCHEME),
        );
        let sel = selection(&[(0x000b, &[0xff, 0xff, 0xff])]);
        let (rc, body) = quote(signer, key, &schnorr, &sel, b"schnorr");
        assert_eq!(rc, 0);
        let (attest, sig) = attest_and_signature(&body, 1);
        assert_eq!(sig[..4], [0, 0x1c, 0, 0x0b], "TPM_ALG_ECSCHNORR, SHA-256");
        // ReadPublic: the TPM2B_PUBLIC, loaded public-only into the verifier.
        let (rc, public) = send(signer, &command(0x173, &[key], 0, &[]));
        assert_eq!(rc, 0);
        // (No sessions, so no parameterSize before the parameters.)
        let mut public = Cur(&public).b2();
        // Only `sign` and `userWithAuth` (TPMA_OBJECT, octets 4-7): a
        // public-only object may not claim to come from a TPM.
        public[4..8].copy_from_slice(&(SIGN_ATTR | 0x40).to_be_bytes());
        let public = b2(&public);
        let p = [b2(&[]), public, RH_NULL.to_be_bytes().to_vec()].concat();
        let (rc, loaded) = send(verifier, &command(0x167, &[], 0, &p));
        assert_eq!(rc, 0, "LoadExternal");
        let ext = u32::from_be_bytes(loaded[..4].try_into().unwrap());
        let p = [b2(&sha256(signer, &attest)), sig.clone()].concat();
        let (rc, _) = send(verifier, &command(CC_VERIFY, &[ext], 0, &p));
        assert_eq!(rc, 0, "the other TPM verifies the Schnorr signature");
        let mut bad = attest.clone();
        bad[10] ^= 1;
        let p = [b2(&sha256(signer, &bad)), sig].concat();
        let (rc, _) = send(verifier, &command(CC_VERIFY, &[ext], 0, &p));
        assert_eq!(rc, 0x2db, "TPM_RC_SIGNATURE on a changed attestation");
        flush(verifier, ext);
        // An unsigned certification of the same key.
        let p = [b2(b"unsigned"), NULL_SCHEME.to_vec()].concat();
        let (rc, body) = send(signer, &command(CC_CERTIFY, &[key, RH_NULL], 2, &p));
        assert_eq!(rc, 0);
        let (attest, sig) = attest_and_signature(&body, 2);
        assert_eq!(sig, NULL_SCHEME, "the NULL signature");
        let a = parse_attest(&attest);
        assert_eq!(a.signer, RH_NULL.to_be_bytes());
        assert_eq!(a.extra, b"unsigned");
        flush(signer, key);
    }
}

/// DER: `tag` around `content`.
fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let n = content.len();
    let mut v = vec![tag];
    match n {
        0..=0x7f => v.push(n as u8),
        0x80..=0xff => v.extend([0x81, n as u8]),
        _ => v.extend([0x82, (n >> 8) as u8, n as u8]),
    }
    v.extend(content);
    v
}

/// The DER elements inside the element `bytes` starts with.
fn der_parts(bytes: &[u8]) -> Vec<Vec<u8>> {
    let head = |b: &[u8]| -> (usize, usize) {
        match b[1] {
            0x81 => (3, b[2] as usize),
            0x82 => (4, (b[2] as usize) << 8 | b[3] as usize),
            n => (2, n as usize),
        }
    };
    let (h, n) = head(bytes);
    let mut rest = &bytes[h..h + n];
    let mut out = Vec::new();
    while !rest.is_empty() {
        let (h, n) = head(rest);
        out.push(rest[..h + n].to_vec());
        rest = &rest[h + n..];
    }
    out
}

/// TPM2_CertifyX509 of an ECC key by `signer` with `partial`, numbered
/// as sent with a NULL scheme unless `scheme` is given.
fn certify_x509(
    b: &Bench,
    object: u32,
    signer: u32,
    reserved: &[u8],
    s: &[u8],
    partial: &[u8],
) -> (u32, Vec<u8>) {
    let p = [b2(reserved), s.to_vec(), b2(partial)].concat();
    send(b, &command(0x197, &[object, signer], 2, &p))
}

/// CertifyX509 by an RSASSA attestation key and an ECDSA key: the
/// certificate made of the partial one and addedToCertificate parses in
/// OpenSSL with the object's key as its subject key, its TBSCertificate
/// digests to tbsDigest and OpenSSL verifies the signature over it. The
/// added parts but the serial number and the key are the same as swtpm's,
/// and so are the refusals.
fn x509_facts(b: &Bench, partial: &[u8]) -> Vec<String> {
    let h256 = 0x000b;
    let null = NULL_SCHEME.to_vec();
    let mut facts = Vec::new();
    let object = primary(b, RH_OWNER, &ecc_template(FIXED | SIGN_ATTR, &null));
    let keep = |tool: &str, args: &[&str]| {
        // Without flushing: the raw objects stay loaded.
        let out = Command::new(tool)
            .args(args)
            .current_dir(&b.work)
            .env("TPM2TOOLS_TCTI", b.tpm.tcti())
            .output()
            .unwrap();
        assert!(out.status.success(), "{tool} {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    keep(
        "tpm2_readpublic",
        &[
            "-c",
            &format!("{object:#x}"),
            "-f",
            "pem",
            "-o",
            "object.pem",
        ],
    );
    for (name, hierarchy, template) in [
        (
            "rsassa",
            RH_ENDORSEMENT,
            rsa_template(
                FIXED | RESTRICTED | SIGN_ATTR,
                &scheme(0x14, h256),
                &NULL_SCHEME,
            ),
        ),
        (
            "ecdsa",
            RH_OWNER,
            ecc_template(FIXED | SIGN_ATTR, &scheme(0x18, h256)),
        ),
    ] {
        let signer = primary(b, hierarchy, &template);
        let (rc, body) = certify_x509(b, object, signer, &[], &null, partial);
        assert_eq!(rc, 0, "{name}");
        let size = u32::from_be_bytes(body[..4].try_into().unwrap()) as usize;
        let mut c = Cur(&body[4..4 + size]);
        let (added, tbs_digest) = (c.b2(), c.b2());
        let mut sig = Cur(c.0);
        let (alg, _hash) = (sig.uint(2), sig.uint(2));
        let value = match alg {
            0x14 => sig.b2(),
            _ => {
                let (r, s) = (sig.b2(), sig.b2());
                let int = |v: &[u8]| {
                    let v: Vec<u8> = v.iter().copied().skip_while(|&x| x == 0).collect();
                    let pad = v.first().is_some_and(|&x| x & 0x80 != 0);
                    der(2, &[if pad { vec![0] } else { vec![] }, v].concat())
                };
                der(0x30, &[int(&r), int(&s)].concat())
            }
        };
        let mine = der_parts(&added);
        assert_eq!(mine.len(), 4, "version, serial, algorithm, key");
        let theirs = der_parts(partial);
        let tbs_body = [&mine[..3], &theirs[..3], &mine[3..], &theirs[3..]]
            .concat()
            .concat();
        let tbs = der(0x30, &tbs_body);
        assert_eq!(sha256(b, &tbs), tbs_digest, "{name}: tbsDigest");
        b.write("tbs.der", &tbs);
        b.write("sig.bin", &value);
        keep(
            "tpm2_readpublic",
            &[
                "-c",
                &format!("{signer:#x}"),
                "-f",
                "pem",
                "-o",
                "signer.pem",
            ],
        );
        let cert = der(
            0x30,
            &[
                tbs.clone(),
                mine[2].clone(),
                der(3, &[&[0u8][..], &value].concat()),
            ]
            .concat(),
        );
        b.write("cert.der", &cert);
        let out = keep(
            "openssl",
            &[
                "dgst",
                "-sha256",
                "-verify",
                "signer.pem",
                "-signature",
                "sig.bin",
                "tbs.der",
            ],
        );
        assert!(out.contains("Verified OK"), "{out}");
        let text = keep(
            "openssl",
            &[
                "x509", "-inform", "DER", "-in", "cert.der", "-noout", "-text",
            ],
        );
        assert!(
            text.contains("CN = key") && text.contains("Version: 3"),
            "{text}"
        );
        let key = keep(
            "openssl",
            &[
                "x509", "-inform", "DER", "-in", "cert.der", "-noout", "-pubkey",
            ],
        );
        assert_eq!(key, String::from_utf8(b.read("object.pem")).unwrap());
        // 20 octets of digest, with a leading zero when the top bit is set.
        assert!(
            matches!(mine[1].len(), 22 | 23) && mine[1][0] == 2,
            "serial"
        );
        facts.push(format!(
            "{name}: version {} algorithm {} key {}",
            hex(&mine[0]),
            hex(&mine[2]),
            hex(&mine[3][..26]),
        ));
        flush(b, signer);
    }
    // Refusals.
    let ak = primary(
        b,
        RH_ENDORSEMENT,
        &rsa_template(
            FIXED | RESTRICTED | SIGN_ATTR,
            &scheme(0x14, h256),
            &NULL_SCHEME,
        ),
    );
    let parts = der_parts(partial);
    let ku = |bits: &[u8]| {
        let ext = der(
            0x30,
            &[&[0x06, 0x03, 0x55, 0x1D, 0x0F][..], &der(4, &der(3, bits))].concat(),
        );
        der(0xa3, &der(0x30, &ext))
    };
    let tpma = |attributes: u32| {
        let bits = der(3, &[&[0u8][..], &attributes.to_be_bytes()].concat());
        let oid = [0x06, 0x07, 0x67, 0x81, 0x05, 0x0A, 0x01, 0x01, 0x01];
        der(
            0xa3,
            &der(0x30, &der(0x30, &[&oid[..], &der(4, &bits)].concat())),
        )
    };
    let with_ext = |ext: &[u8]| der(0x30, &[&parts[0][..], &parts[1], &parts[2], ext].concat());
    let x = |o: u32, s: u32, reserved: &[u8], sc: &[u8], pc: &[u8]| {
        format!("{:#x}", certify_x509(b, o, s, reserved, sc, pc).0)
    };
    let mut codes = vec![
        ("reserved", x(object, ak, b"q", &null, partial)),
        (
            "another scheme",
            x(object, ak, &[], &scheme(0x16, h256), partial),
        ),
        ("not DER", x(object, ak, &[], &null, b"not DER")),
        ("empty", x(object, ak, &[], &null, &[])),
        (
            "two signature algorithms",
            x(
                object,
                ak,
                &[],
                &null,
                &der(
                    0x30,
                    &[
                        &parts[0][..],
                        &parts[0],
                        &parts[0],
                        &parts[1],
                        &parts[2],
                        &parts[3],
                    ]
                    .concat(),
                ),
            ),
        ),
        (
            "no extensions",
            x(object, ak, &[], &null, &der(0x30, &parts[..3].concat())),
        ),
        (
            "TPMA_OBJECT only",
            x(object, ak, &[], &null, &with_ext(&tpma(FIXED | SIGN_ATTR))),
        ),
        (
            "another TPMA_OBJECT",
            x(
                object,
                ak,
                &[],
                &null,
                &with_ext(&tpma(FIXED | SIGN_ATTR | 0x400)),
            ),
        ),
        (
            "keyEncipherment",
            x(object, ak, &[], &null, &with_ext(&ku(&[5, 0x20]))),
        ),
        (
            "nonRepudiation",
            x(object, ak, &[], &null, &with_ext(&ku(&[6, 0x40]))),
        ),
    ];
    let stor = primary(
        b,
        RH_OWNER,
        &rsa_template(FIXED | RESTRICTED | DECRYPT, &null, &AES128_CFB),
    );
    codes.push(("storage key signs", x(object, stor, &[], &null, partial)));
    codes.push(("certify a storage key", x(stor, ak, &[], &null, partial)));
    flush(b, stor);
    let mut keyed = be16(&[0x0008, h256]);
    keyed.extend((FIXED | SIGN_ATTR).to_be_bytes());
    keyed.extend(b2(&[]));
    keyed.extend(scheme(0x05, h256));
    keyed.extend(b2(&[]));
    let hm = primary(b, RH_OWNER, &keyed);
    codes.push(("certify an hmac key", x(hm, ak, &[], &null, partial)));
    codes.push(("hmac key signs", x(object, hm, &[], &null, partial)));
    flush(b, hm);
    let schnorr = primary(
        b,
        RH_OWNER,
        &ecc_template(FIXED | SIGN_ATTR, &scheme(0x1c, h256)),
    );
    codes.push((
        "schnorr has no X.509 algorithm",
        x(object, schnorr, &[], &null, partial),
    ));
    let given = der(
        0x30,
        &[
            &der(
                0x30,
                &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02],
            )[..],
            &parts.concat(),
        ]
        .concat(),
    );
    codes.push((
        "schnorr with a given algorithm",
        x(object, schnorr, &[], &null, &given),
    ));
    flush(b, schnorr);
    flush(b, ak);
    flush(b, object);
    facts.extend(codes.into_iter().map(|(n, rc)| format!("{n}: {rc}")));
    facts
}

#[test]
fn certify_x509_certificates_verify_with_openssl() {
    need_tools_and_openssl!();
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new("tpm2_certifyX509certutil")
        .args([
            "-o",
            "partial.der",
            "-d",
            "365",
            "-i",
            "C=US;O=vtpm;CN=attester",
            "-s",
            "C=US;O=vtpm;CN=key",
        ])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let partial = std::fs::read(dir.path().join("partial.der")).unwrap();
    let facts = compare(|b: &Bench| x509_facts(b, &partial));
    let codes: Vec<&str> = facts[2..].iter().map(String::as_str).collect();
    assert_eq!(
        codes,
        [
            "reserved: 0x1d5",
            "another scheme: 0x2d2",
            "not DER: 0x3d5",
            "empty: 0x3c4",
            "two signature algorithms: 0x3c4",
            "no extensions: 0x3c4",
            "TPMA_OBJECT only: 0x3c4",
            "another TPMA_OBJECT: 0x282",
            "keyEncipherment: 0x3c4",
            "nonRepudiation: 0x0",
            "storage key signs: 0x19c",
            "certify a storage key: 0x3c4",
            "certify an hmac key: 0x281",
            "hmac key signs: 0x192",
            "schnorr has no X.509 algorithm: 0x192",
            "schnorr with a given algorithm: 0x0",
        ]
    );
    // swtpm 0.7.1 crashes on a certificate without a signing key; vtpm
    // answers TPM_RC_KEY on signHandle (numbered 1, as libtpms numbers it).
    let b = Bench::new(Vtpm::start_socket());
    let object = primary(&b, RH_OWNER, &ecc_template(FIXED | SIGN_ATTR, &NULL_SCHEME));
    let (rc, _) = certify_x509(&b, object, RH_NULL, &[], &NULL_SCHEME, &partial);
    assert_eq!(rc, 0x19c);
}
