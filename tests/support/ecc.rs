//! Raw TPM commands for the ECC tests: TPM2B encodings, a response
//! reader, LoadExternal of a known key, schemes.

#![allow(dead_code)]

use super::corpus::{command, pw_area, NO_SESSIONS, SESSIONS};
use crate::common::RawConn;
use tpm_crypto::{ecc_math, Curve, Point};

pub const ALG_NULL: u16 = 0x0010;
pub const ALG_SHA256: u16 = 0x000B;
pub const ALG_ECDSA: u16 = 0x0018;
pub const ALG_ECDH: u16 = 0x0019;
pub const ALG_ECDAA: u16 = 0x001A;
pub const ALG_ECMQV: u16 = 0x001D;
/// TPMA_OBJECT userWithAuth | sign.
pub const SIGN_KEY: u32 = 0x0004_0040;
/// TPMA_OBJECT userWithAuth | decrypt.
pub const DECRYPT_KEY: u32 = 0x0002_0040;

pub fn tpm2b(b: &[u8]) -> Vec<u8> {
    [&(b.len() as u16).to_be_bytes()[..], b].concat()
}

/// TPM2B_ECC_POINT of `p`.
pub fn point2b(p: &Point) -> Vec<u8> {
    tpm2b(&[tpm2b(&p.x), tpm2b(&p.y)].concat())
}

/// TPM2B_ECC_POINT holding the Empty Point.
pub const EMPTY_POINT: [u8; 6] = [0, 4, 0, 0, 0, 0];

/// Send a command; TPM_RC_RETRY is sent again (libtpms answers it to the
/// first use of an algorithm while it tests it).
pub fn send(c: &mut RawConn, cmd: &[u8]) -> (u32, Vec<u8>) {
    for _ in 0..10 {
        let r = c.send(cmd);
        if r.0 != 0x922 {
            return r;
        }
    }
    panic!("TPM_RC_RETRY ten times")
}

/// Reads a response's fields in order.
pub struct Rd<'a>(pub &'a [u8]);

impl Rd<'_> {
    pub fn take(&mut self, n: usize) -> &[u8] {
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        a
    }
    pub fn u16(&mut self) -> u16 {
        u16::from_be_bytes(self.take(2).try_into().unwrap())
    }
    pub fn u32(&mut self) -> u32 {
        u32::from_be_bytes(self.take(4).try_into().unwrap())
    }
    pub fn b2(&mut self) -> Vec<u8> {
        let n = self.u16() as usize;
        self.take(n).to_vec()
    }
    pub fn point(&mut self) -> Point {
        let _size = self.u16();
        let x = self.b2();
        let y = self.b2();
        Point::new(&x, &y)
    }
}

/// LoadExternal of the key on `curve` with private scalar `d` into the null
/// hierarchy, with `attrs` and the TPMT_ECC_SCHEME `scheme`; its handle.
pub fn load_external_on(curve: Curve, c: &mut RawConn, d: &[u8], attrs: u32, scheme: &[u8]) -> u32 {
    let q = ecc_math::mul(curve, d, None).unwrap();
    let sensitive = [
        &0x0023u16.to_be_bytes()[..],
        &tpm2b(&[]),
        &tpm2b(&[]),
        &tpm2b(d),
    ]
    .concat();
    let public = [
        &0x0023u16.to_be_bytes()[..],
        &ALG_SHA256.to_be_bytes(),
        &attrs.to_be_bytes(),
        &tpm2b(&[]),
        &ALG_NULL.to_be_bytes(),
        scheme,
        &curve.to_tpm().to_be_bytes(),
        &ALG_NULL.to_be_bytes(),
        &tpm2b(&q.x),
        &tpm2b(&q.y),
    ]
    .concat();
    load_external(c, &sensitive, &public)
}

/// A TPMT_*_SCHEME of `alg` with SHA-256 (just the algorithm for NULL).
pub fn scheme(alg: u16) -> Vec<u8> {
    if alg == ALG_NULL {
        alg.to_be_bytes().to_vec()
    } else {
        [alg, ALG_SHA256]
            .iter()
            .flat_map(|v| v.to_be_bytes())
            .collect()
    }
}

/// TPM2_LoadExternal of a sensitive and a public area (in the NULL
/// hierarchy); the handle.
pub fn load_external(c: &mut RawConn, sensitive: &[u8], public: &[u8]) -> u32 {
    let body = [
        tpm2b(sensitive),
        tpm2b(public),
        0x4000_0007u32.to_be_bytes().to_vec(),
    ]
    .concat();
    let (rc, r) = send(c, &command(NO_SESSIONS, 0x167, &body));
    assert_eq!(rc, 0, "LoadExternal");
    Rd(&r).u32()
}

/// TPM2_Sign of `digest` by key `h` (empty password) with the signature
/// scheme `scheme` (TPMT_SIG_SCHEME as u16 words: algorithm, hash and, for
/// ECDAA, the commit count) and a NULL hash-check ticket: the response code
/// and the response.
pub fn sign_raw(c: &mut RawConn, h: u32, scheme: &[u16], digest: &[u8]) -> (u32, Vec<u8>) {
    let scheme: Vec<u8> = scheme.iter().flat_map(|v| v.to_be_bytes()).collect();
    let ticket = [
        &0x8024u16.to_be_bytes()[..],
        &0x4000_0007u32.to_be_bytes(),
        &tpm2b(&[]),
    ]
    .concat();
    let body = [
        &h.to_be_bytes()[..],
        &pw_area(),
        &tpm2b(digest),
        &scheme,
        &ticket,
    ]
    .concat();
    send(c, &command(SESSIONS, 0x15D, &body))
}
