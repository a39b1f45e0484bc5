//! TDES and Camellia beside AES, and the KDF schemes (KDF2 among them),
//! against vtpm and, side by side, swtpm + libtpms: TPM2_EncryptDecrypt2 with keys loaded by LoadExternal, in every
//! mode and key size, both ways (the same output and ivOut as swtpm, bytes
//! for bytes); key sizes a cipher does not have (the same response code);
//! storage parents protecting their children with TDES and Camellia
//! (raw commands, and tpm2-tools for Camellia). Parameter encryption with a
//! TDES or Camellia session is not tested against a client: tpm2-tss 3.2
//! (Debian 12) refuses any session cipher but AES and XOR.

#[macro_use]
mod common;
mod support;

use std::io::Write;

use common::{start_swtpm, tpm2_ok, RawConn, Vtpm};
use support::corpus::{
    command, create_primary, ecc_parms, pw_area, Template, NO_SESSIONS, SESSIONS,
};

const TDES: u16 = 0x0003;
const AES: u16 = 0x0006;
const CAMELLIA: u16 = 0x0026;
const MODES: [(u16, &str); 5] = [
    (0x0040, "ctr"),
    (0x0041, "ofb"),
    (0x0042, "cbc"),
    (0x0043, "cfb"),
    (0x0044, "ecb"),
];

fn b2(d: &[u8]) -> Vec<u8> {
    [&(d.len() as u16).to_be_bytes()[..], d].concat()
}

/// TPM2_LoadExternal of a SYMCIPHER key (`alg`, `bits`, mode NULL) holding
/// `key`, in the NULL hierarchy; the response code and the handle.
fn load_sym(c: &mut RawConn, alg: u16, bits: u16, key: &[u8]) -> (u32, u32) {
    let seed = [0x5Au8; 32];
    let sensitive = [&0x0025u16.to_be_bytes()[..], &b2(&[]), &b2(&seed), &b2(key)].concat();
    // unique = H_nameAlg(seedValue || key), as for every symmetric object.
    let unique = sha256(&[&seed[..], key].concat());
    let public = [
        &0x0025u16.to_be_bytes()[..],
        &0x000Bu16.to_be_bytes(),
        // userWithAuth | noDA | decrypt | sign (noDA: libtpms answers the
        // first DA-protected authorization after Startup with TPM_RC_RETRY).
        &0x0006_0440u32.to_be_bytes(),
        &b2(&[]),
        &alg.to_be_bytes(),
        &bits.to_be_bytes(),
        &0x0010u16.to_be_bytes(),
        &b2(&unique),
    ]
    .concat();
    let body = [
        &b2(&sensitive)[..],
        &b2(&public),
        &0x4000_0007u32.to_be_bytes(),
    ]
    .concat();
    let (rc, rest) = c.send(&command(NO_SESSIONS, 0x167, &body));
    let handle = rest
        .get(..4)
        .map(|h| u32::from_be_bytes(h.try_into().unwrap()))
        .unwrap_or(0);
    (rc, handle)
}

fn sha256(data: &[u8]) -> Vec<u8> {
    let out = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut p| {
            p.stdin.take().unwrap().write_all(data)?;
            p.wait_with_output()
        })
        .unwrap();
    let hex = String::from_utf8(out.stdout).unwrap();
    (0..32)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

/// TPM2_EncryptDecrypt2 with the key at `h`: (rc, outData, ivOut).
fn crypt(
    c: &mut RawConn,
    h: u32,
    decrypt: bool,
    mode: u16,
    iv: &[u8],
    data: &[u8],
) -> (u32, Vec<u8>, Vec<u8>) {
    let params = [
        &b2(data)[..],
        &[decrypt as u8],
        &mode.to_be_bytes(),
        &b2(iv),
    ]
    .concat();
    let body = [&h.to_be_bytes()[..], &pw_area(), &params].concat();
    let (rc, rest) = c.send(&command(SESSIONS, 0x193, &body));
    if rc != 0 {
        return (rc, Vec::new(), Vec::new());
    }
    // parameterSize, outData, ivOut.
    let p = &rest[4..];
    let n = u16::from_be_bytes([p[0], p[1]]) as usize;
    let out = p[2..2 + n].to_vec();
    let m = u16::from_be_bytes([p[2 + n], p[3 + n]]) as usize;
    (rc, out, p[4 + n..4 + n + m].to_vec())
}

/// Everything one TPM answers for the cipher matrix, one line per case.
fn cipher_matrix(t: &Vtpm) -> Vec<String> {
    let mut c = RawConn::open(t.port);
    let mut lines = Vec::new();
    let data: Vec<u8> = (0..40u8).map(|i| i.wrapping_mul(37)).collect();
    for (alg, bits) in [
        (TDES, 128),
        (TDES, 192),
        (CAMELLIA, 128),
        (CAMELLIA, 256),
        (AES, 128),
    ] {
        let key: Vec<u8> = (0..bits / 8)
            .map(|i| (i as u8).wrapping_mul(11) | 1)
            .collect();
        let (rc, h) = load_sym(&mut c, alg, bits, &key);
        lines.push(format!("load {alg:#x}/{bits}: {rc:#x}"));
        if rc != 0 {
            continue;
        }
        let block = if alg == TDES { 8 } else { 16 };
        for (mode, name) in MODES {
            let iv: Vec<u8> = if mode == 0x0044 {
                Vec::new()
            } else {
                (0..block).map(|i| 0xF0 | i as u8).collect()
            };
            let len = if matches!(mode, 0x0042 | 0x0044) {
                32
            } else {
                data.len()
            };
            let (rc, ct, iv_out) = crypt(&mut c, h, false, mode, &iv, &data[..len]);
            let (rc2, pt, iv_back) = crypt(&mut c, h, true, mode, &iv, &ct);
            assert!(
                rc != 0 || (pt == data[..len] && iv_out == iv_back),
                "{alg:#x}/{bits} {name}: no round trip"
            );
            lines.push(format!(
                "{alg:#x}/{bits} {name}: {rc:#x}/{rc2:#x} {} iv {}",
                hex(&ct),
                hex(&iv_out)
            ));
            // An IV of the wrong size for this cipher.
            if mode != 0x0044 {
                let (rc, _, _) = crypt(&mut c, h, false, mode, &[0; 12], &data[..16]);
                lines.push(format!("{alg:#x}/{bits} {name} 12-octet iv: {rc:#x}"));
            }
        }
        let flush = command(NO_SESSIONS, 0x165, &h.to_be_bytes());
        assert_eq!(c.send(&flush).0, 0);
    }
    // Key sizes the cipher does not have.
    for (alg, bits) in [(TDES, 256), (TDES, 64), (CAMELLIA, 64), (CAMELLIA, 192)] {
        let (rc, _) = load_sym(&mut c, alg, bits, &vec![1; bits as usize / 8]);
        lines.push(format!("load {alg:#x}/{bits}: {rc:#x}"));
    }
    lines
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn tdes_and_camellia_encrypt_as_swtpm_does() {
    let Some(sw) = start_swtpm() else {
        eprintln!("swtpm not installed: comparison skipped (scripts/test.sh installs it)");
        return;
    };
    let v = Vtpm::start_socket();
    let ours = cipher_matrix(&v);
    let theirs = cipher_matrix(&sw);
    for (a, b) in ours.iter().zip(&theirs) {
        assert_eq!(a, b);
    }
    assert_eq!(ours.len(), theirs.len());
    let ok = ours.iter().filter(|l| l.contains(": 0x0/0x0")).count();
    println!(
        "{} cases, {ok} encrypt+decrypt pairs equal to swtpm's",
        ours.len()
    );
    assert_eq!(ok, 25);
}

/// CreatePrimary of an ECC storage parent with `sym`, Create of a signing
/// child under it, Load: the three response codes.
fn storage_with(t: &Vtpm, alg: u16, bits: u16) -> Vec<u32> {
    let mut c = RawConn::open(t.port);
    let mut parent = Template::ecc_storage();
    parent.attrs |= 0x400; // noDA, as above
    parent.parms = ecc_parms(
        alg,
        bits,
        0x0043,
        &0x0010u16.to_be_bytes(),
        0x0003,
        &0x0010u16.to_be_bytes(),
    );
    let sensitive = [0u8, 0, 0, 0];
    let (rc, rest) = c.send(&create_primary(0x4000_0001, &sensitive, &parent));
    if rc != 0 {
        return vec![rc];
    }
    let ph = u32::from_be_bytes(rest[..4].try_into().unwrap());
    // A P-256 ECDSA/SHA-256 signing key.
    let child = Template {
        ty: 0x0023,
        name_alg: 0x000B,
        attrs: 0x0004_0472,
        policy: Vec::new(),
        parms: ecc_parms(
            0x0010,
            0,
            0,
            &[0x00, 0x18, 0x00, 0x0B],
            0x0003,
            &0x0010u16.to_be_bytes(),
        ),
        unique: [0u8, 0, 0, 0].to_vec(),
    };
    let body = [
        &ph.to_be_bytes()[..],
        &pw_area(),
        &b2(&sensitive),
        &child.to_2b(),
        &b2(&[]),
        &0u32.to_be_bytes(),
    ]
    .concat();
    let (rc2, rest) = c.send(&command(SESSIONS, 0x153, &body));
    if rc2 != 0 {
        assert_eq!(c.send(&command(NO_SESSIONS, 0x165, &ph.to_be_bytes())).0, 0);
        return vec![rc, rc2];
    }
    let p = &rest[4..];
    let n = u16::from_be_bytes([p[0], p[1]]) as usize;
    let private = &p[..2 + n];
    let m = u16::from_be_bytes([p[2 + n], p[3 + n]]) as usize;
    let public = &p[2 + n..4 + n + m];
    let body = [&ph.to_be_bytes()[..], &pw_area(), private, public].concat();
    let (rc3, rest) = c.send(&command(SESSIONS, 0x157, &body));
    if rc3 == 0 {
        let child = u32::from_be_bytes(rest[..4].try_into().unwrap());
        assert_eq!(
            c.send(&command(NO_SESSIONS, 0x165, &child.to_be_bytes())).0,
            0
        );
    }
    assert_eq!(c.send(&command(NO_SESSIONS, 0x165, &ph.to_be_bytes())).0, 0);
    vec![rc, rc2, rc3]
}

#[test]
fn storage_parents_protect_children_with_tdes_and_camellia() {
    let v = Vtpm::start_socket();
    let sw = start_swtpm();
    for (alg, bits) in [
        (TDES, 128),
        (TDES, 192),
        (CAMELLIA, 128),
        (CAMELLIA, 256),
        (TDES, 256),
    ] {
        let ours = storage_with(&v, alg, bits);
        if let Some(sw) = &sw {
            assert_eq!(ours, storage_with(sw, alg, bits), "{alg:#x}/{bits}");
        }
        if bits != 256 || alg != TDES {
            assert_eq!(ours, vec![0, 0, 0], "{alg:#x}/{bits}");
        }
        println!("storage parent {alg:#x}/{bits}: {ours:x?}");
    }
}

#[test]
fn tpm2_tools_camellia_storage_parent_and_child() {
    need_tools!();
    let v = Vtpm::start_socket();
    let t = v.tcti();
    let d = v.tmp.path();
    let p = |n: &str| d.join(n).to_str().unwrap().to_string();
    tpm2_ok(
        "tpm2_createprimary",
        &[
            "-C",
            "o",
            "-G",
            "rsa2048:null:camellia128cfb",
            "-c",
            &p("p.ctx"),
        ],
        &t,
    );
    tpm2_ok(
        "tpm2_create",
        &[
            "-C",
            &p("p.ctx"),
            "-G",
            "ecc256",
            "-u",
            &p("c.pub"),
            "-r",
            &p("c.priv"),
        ],
        &t,
    );
    tpm2_ok("tpm2_flushcontext", &["-t"], &t);
    tpm2_ok(
        "tpm2_load",
        &[
            "-C",
            &p("p.ctx"),
            "-u",
            &p("c.pub"),
            "-r",
            &p("c.priv"),
            "-c",
            &p("c.ctx"),
        ],
        &t,
    );
    std::fs::write(p("msg"), b"signed under a camellia parent").unwrap();
    tpm2_ok(
        "tpm2_sign",
        &[
            "-c",
            &p("c.ctx"),
            "-g",
            "sha256",
            "-o",
            &p("sig"),
            &p("msg"),
        ],
        &t,
    );
    tpm2_ok("tpm2_flushcontext", &["-t"], &t);
    tpm2_ok(
        "tpm2_verifysignature",
        &[
            "-c",
            &p("c.ctx"),
            "-g",
            "sha256",
            "-m",
            &p("msg"),
            "-s",
            &p("sig"),
        ],
        &t,
    );
}

/// CreatePrimary of an ECC storage key whose KDF scheme is `kdf` (SHA-256):
/// the response code.
fn ecc_kdf(t: &Vtpm, kdf: u16) -> u32 {
    let mut c = RawConn::open(t.port);
    let mut key = Template::ecc_storage();
    key.attrs |= 0x400;
    let scheme = if kdf == 0x0010 {
        kdf.to_be_bytes().to_vec()
    } else {
        [&kdf.to_be_bytes()[..], &0x000Bu16.to_be_bytes()].concat()
    };
    // Storage keys take no KDF: an unrestricted ECDH key does.
    key.attrs = 0x0002_0472;
    key.parms = ecc_parms(0x0010, 0, 0, &[0x00, 0x19, 0x00, 0x0B], 0x0003, &scheme);
    let (rc, rest) = c.send(&create_primary(0x4000_0001, &[0, 0, 0, 0], &key));
    if rc == 0 {
        let h = u32::from_be_bytes(rest[..4].try_into().unwrap());
        assert_eq!(c.send(&command(NO_SESSIONS, 0x165, &h.to_be_bytes())).0, 0);
    }
    rc
}

/// TPM2_TestParms of ECC P-256 parameters (ECDH) whose KDF scheme is `kdf`.
fn test_parms_kdf(t: &Vtpm, kdf: u16) -> u32 {
    let mut c = RawConn::open(t.port);
    let scheme = if kdf == 0x0010 {
        kdf.to_be_bytes().to_vec()
    } else {
        [&kdf.to_be_bytes()[..], &0x000Bu16.to_be_bytes()].concat()
    };
    let parms = [
        &0x0023u16.to_be_bytes()[..],
        &ecc_parms(0x0010, 0, 0, &[0x00, 0x19, 0x00, 0x0B], 0x0003, &scheme),
    ]
    .concat();
    c.send(&command(NO_SESSIONS, 0x18A, &parms)).0
}

/// Every TPMI_ALG_KDF value in an ECC key's KDF scheme is answered as swtpm
/// answers it (KDF2 included), and an unknown one too.
#[test]
fn kdf_schemes_as_swtpm() {
    let Some(sw) = start_swtpm() else {
        eprintln!("swtpm not installed: comparison skipped (scripts/test.sh installs it)");
        return;
    };
    let v = Vtpm::start_socket();
    for kdf in [0x0007u16, 0x0020, 0x0021, 0x0022, 0x0010, 0x000B] {
        let (a, b) = (ecc_kdf(&v, kdf), ecc_kdf(&sw, kdf));
        let (ta, tb) = (test_parms_kdf(&v, kdf), test_parms_kdf(&sw, kdf));
        println!("kdf {kdf:#06x}: CreatePrimary vtpm {a:#x}, swtpm {b:#x}; TestParms vtpm {ta:#x}, swtpm {tb:#x}");
        assert_eq!((a, ta), (b, tb), "kdf {kdf:#06x}");
    }
}
