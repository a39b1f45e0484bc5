//! The curves beyond P-256/384/521 (P-192, P-224, BN P-256, BN P-638,
//! SM2 P-256): TPM2_ECC_Parameters and GetCapability(ECC_CURVES) byte for
//! byte as swtpm answers them, TestParms, and keys on each curve signing on
//! one TPM and verifying on the other (ECDSA, EC-Schnorr and SM2, LoadExternal
//! of the same key on vtpm and swtpm).

mod common;
mod support;

use common::{start_swtpm, RawConn, Vtpm};
use support::corpus::{command, NO_SESSIONS};
use support::ecc::*;
use tpm_crypto::{Curve, HashAlg, Point};

const ALG_ECSCHNORR: u16 = 0x001C;
const ALG_SM2: u16 = 0x001B;

/// Every curve swtpm 0.7.1 lists, and one it does not.
const CURVES: [u16; 9] = [0x01, 0x02, 0x03, 0x04, 0x05, 0x10, 0x11, 0x20, 0x06];

/// ECC_Parameters for each curve, GetCapability(ECC_CURVES) and TestParms
/// with ECDSA on each curve: response codes and bytes.
fn answers(port: u16) -> Vec<String> {
    let mut c = RawConn::open(port);
    let mut out = Vec::new();
    for curve in CURVES {
        let (rc, r) = send(&mut c, &command(NO_SESSIONS, 0x178, &curve.to_be_bytes()));
        out.push(format!("ECC_Parameters {curve:#x}: {rc:#x} {}", hex(&r)));
        // TPMT_PUBLIC_PARMS: ECC, no symmetric, ECDSA/SHA-256, the curve, no KDF.
        let parms = [0x0023, ALG_NULL, ALG_ECDSA, ALG_SHA256, curve, ALG_NULL]
            .iter()
            .flat_map(|v| v.to_be_bytes())
            .collect::<Vec<u8>>();
        let (rc, _) = send(&mut c, &command(NO_SESSIONS, 0x18A, &parms));
        out.push(format!("TestParms {curve:#x}: {rc:#x}"));
    }
    let body = [8u32, 0, 100]
        .iter()
        .flat_map(|v| v.to_be_bytes())
        .collect::<Vec<u8>>();
    let (rc, r) = send(&mut c, &command(NO_SESSIONS, 0x17A, &body));
    out.push(format!("ECC_CURVES: {rc:#x} {}", hex(&r)));
    out
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|v| format!("{v:02x}")).collect()
}

#[test]
fn curve_parameters_and_list_are_swtpms() {
    let v = Vtpm::start_socket();
    let ours = answers(v.port);
    for line in &ours {
        println!("{line}");
    }
    assert!(ours.iter().filter(|l| l.contains(": 0x0")).count() >= 17);
    if let Some(sw) = start_swtpm() {
        assert_eq!(ours, answers(sw.port), "swtpm");
    }
}

/// TPM2_Sign of `digest` with `alg`/SHA-256: (r, s).
fn sign(c: &mut RawConn, h: u32, alg: u16, digest: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let (rc, r) = sign_raw(c, h, &[alg, ALG_SHA256], digest);
    assert_eq!(rc, 0, "Sign with {alg:#x}");
    let mut rd = Rd(&r);
    rd.u32();
    assert_eq!((rd.u16(), rd.u16()), (alg, ALG_SHA256));
    (rd.b2(), rd.b2())
}

/// TPM2_VerifySignature's response code.
fn verify(c: &mut RawConn, h: u32, alg: u16, digest: &[u8], r: &[u8], s: &[u8]) -> u32 {
    let sig = [
        &alg.to_be_bytes()[..],
        &ALG_SHA256.to_be_bytes(),
        &tpm2b(r),
        &tpm2b(s),
    ]
    .concat();
    let body = [&h.to_be_bytes()[..], &tpm2b(digest), &sig].concat();
    send(c, &command(NO_SESSIONS, 0x177, &body)).0
}

/// A key of `curve` signs on `a` and verifies on `b` with every ECC scheme,
/// and the signatures check with tpm-crypto; a wrong digest fails.
fn cross(curve: Curve, a: &mut RawConn, b: &mut RawConn) {
    let d = vec![0x17u8; curve.size().min(20)];
    let ha = load_external_on(curve, a, &d, SIGN_KEY, &scheme(ALG_NULL));
    let hb = load_external_on(curve, b, &d, SIGN_KEY, &scheme(ALG_NULL));
    let q: Point = tpm_crypto::ecc_math::mul(curve, &d, None).unwrap();
    let digest = tpm_crypto::digest(HashAlg::Sha256, &[b"curve test"]);
    let other = tpm_crypto::digest(HashAlg::Sha256, &[b"other"]);
    for alg in [ALG_ECDSA, ALG_ECSCHNORR, ALG_SM2] {
        let (r, s) = sign(a, ha, alg, &digest);
        assert_eq!(verify(b, hb, alg, &digest, &r, &s), 0, "{curve:?} {alg:#x}");
        assert_eq!(verify(a, ha, alg, &digest, &r, &s), 0, "{curve:?} {alg:#x}");
        assert_ne!(verify(b, hb, alg, &other, &r, &s), 0, "{curve:?} {alg:#x}");
        let good = if alg == ALG_ECDSA {
            tpm_crypto::ecc::verify_ecdsa(curve, &q, &digest, &r, &s)
        } else if alg == ALG_SM2 {
            tpm_crypto::sm2::verify_sm2(curve, &q, &digest, &r, &s)
        } else {
            tpm_crypto::ecc::verify_schnorr(curve, &q, HashAlg::Sha256, &digest, &r, &s)
        };
        assert!(good, "{curve:?} {alg:#x}");
    }
    for (c, h) in [(a, ha), (b, hb)] {
        assert_eq!(send(c, &command(NO_SESSIONS, 0x165, &h.to_be_bytes())).0, 0);
    }
}

#[test]
fn keys_on_every_new_curve_sign_here_and_verify_there() {
    let v = Vtpm::start_socket();
    // The other TPM is swtpm, or a second vtpm when swtpm is not installed.
    let other = start_swtpm().unwrap_or_else(Vtpm::start_socket);
    let (mut a, mut b) = (RawConn::open(v.port), RawConn::open(other.port));
    for curve in [
        Curve::P256,
        Curve::P192,
        Curve::P224,
        Curve::BnP256,
        Curve::BnP638,
        Curve::Sm2P256,
    ] {
        cross(curve, &mut a, &mut b);
        cross(curve, &mut b, &mut a);
    }
}
