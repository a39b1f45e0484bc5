//! The engine's view of cryptography: hashes, HMAC, KDFa, AES-CFB.
//! A thin adapter so the engine names one place; it moves onto the
//! tpm-crypto crate as that crate's API settles.

use crate::constants as c;
use hmac::Mac;
use sha2::Digest as _;

/// An incremental hash of one of the implemented algorithms (Clone: hash sequences fork it).
#[derive(Clone)]
pub enum Hasher {
    /// SHA-1.
    Sha1(sha1::Sha1),
    /// SHA-256.
    Sha256(sha2::Sha256),
    /// SHA-384.
    Sha384(sha2::Sha384),
    /// SHA-512.
    Sha512(sha2::Sha512),
}

impl Hasher {
    /// A new hash of `alg`; None if `alg` is not an implemented hash.
    pub fn new(alg: u16) -> Option<Hasher> {
        Some(match alg {
            c::ALG_SHA1 => Hasher::Sha1(sha1::Sha1::new()),
            c::ALG_SHA256 => Hasher::Sha256(sha2::Sha256::new()),
            c::ALG_SHA384 => Hasher::Sha384(sha2::Sha384::new()),
            c::ALG_SHA512 => Hasher::Sha512(sha2::Sha512::new()),
            _ => return None,
        })
    }
    /// Absorb `data`.
    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Sha1(h) => h.update(data),
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha384(h) => h.update(data),
            Hasher::Sha512(h) => h.update(data),
        }
    }
    /// The digest.
    pub fn finish(self) -> Vec<u8> {
        match self {
            Hasher::Sha1(h) => h.finalize().to_vec(),
            Hasher::Sha256(h) => h.finalize().to_vec(),
            Hasher::Sha384(h) => h.finalize().to_vec(),
            Hasher::Sha512(h) => h.finalize().to_vec(),
        }
    }
}

/// Digest of the concatenation of `parts` (empty for an unimplemented `alg`).
pub fn digest(alg: u16, parts: &[&[u8]]) -> Vec<u8> {
    match Hasher::new(alg) {
        Some(mut h) => {
            for p in parts {
                h.update(p);
            }
            h.finish()
        }
        None => Vec::new(),
    }
}

fn hmac_with<M: Mac + hmac::digest::KeyInit>(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    // HMAC accepts keys of any length; the error arm is unreachable in practice.
    let Ok(mut m) = <M as hmac::digest::KeyInit>::new_from_slice(key) else {
        return Vec::new();
    };
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().to_vec()
}

/// HMAC of the concatenation of `parts` (empty for an unimplemented `alg`).
pub fn hmac(alg: u16, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    match alg {
        c::ALG_SHA1 => hmac_with::<hmac::Hmac<sha1::Sha1>>(key, parts),
        c::ALG_SHA256 => hmac_with::<hmac::Hmac<sha2::Sha256>>(key, parts),
        c::ALG_SHA384 => hmac_with::<hmac::Hmac<sha2::Sha384>>(key, parts),
        c::ALG_SHA512 => hmac_with::<hmac::Hmac<sha2::Sha512>>(key, parts),
        _ => Vec::new(),
    }
}

/// KDFa of Part 1 (SP800-108 counter mode with HMAC): `bits` of output.
/// The label gets its terminating zero octet unless it already ends in one.
pub fn kdfa(
    alg: u16,
    key: &[u8],
    label: &[u8],
    context_u: &[u8],
    context_v: &[u8],
    bits: u32,
) -> Vec<u8> {
    let bytes = bits.div_ceil(8) as usize;
    let mut label_z = label.to_vec();
    if label_z.last() != Some(&0) {
        label_z.push(0);
    }
    let mut out = Vec::with_capacity(bytes + 64);
    let mut counter: u32 = 1;
    while out.len() < bytes {
        let block = hmac(
            alg,
            key,
            &[
                &counter.to_be_bytes(),
                &label_z,
                context_u,
                context_v,
                &bits.to_be_bytes(),
            ],
        );
        if block.is_empty() {
            break;
        }
        out.extend_from_slice(&block);
        counter = counter.wrapping_add(1);
    }
    out.truncate(bytes);
    if !bits.is_multiple_of(8) {
        if let Some(first) = out.first_mut() {
            *first &= (1u8 << (bits % 8)) - 1;
        }
    }
    out
}

/// AES in full-block CFB mode, in place; `key` is 16, 24 or 32 bytes and `iv` 16.
/// Returns false for a key or IV of another size.
pub fn aes_cfb(key: &[u8], iv: &[u8], data: &mut [u8], encrypt: bool) -> bool {
    use cfb_mode::cipher::{AsyncStreamCipher, KeyIvInit};
    macro_rules! run {
        ($aes:ty) => {{
            if encrypt {
                match cfb_mode::Encryptor::<$aes>::new_from_slices(key, iv) {
                    Ok(e) => e.encrypt(data),
                    Err(_) => return false,
                }
            } else {
                match cfb_mode::Decryptor::<$aes>::new_from_slices(key, iv) {
                    Ok(d) => d.decrypt(data),
                    Err(_) => return false,
                }
            }
        }};
    }
    match key.len() {
        16 => run!(aes::Aes128),
        24 => run!(aes::Aes192),
        32 => run!(aes::Aes256),
        _ => return false,
    }
    true
}

/// Constant-time equality of two byte strings (length is not secret).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kdfa_masks_partial_octets_and_is_deterministic() {
        let a = kdfa(c::ALG_SHA256, b"key", b"ATH", b"u", b"v", 256);
        assert_eq!(a.len(), 32);
        assert_eq!(a, kdfa(c::ALG_SHA256, b"key", b"ATH\0", b"u", b"v", 256));
        let b = kdfa(c::ALG_SHA256, b"key", b"ATH", b"u", b"v", 12);
        assert_eq!(b.len(), 2);
        assert!(b[0] < 16);
    }

    #[test]
    fn cfb_round_trip() {
        let mut d = *b"hello world, seventeen+";
        aes_cfb(&[1; 16], &[2; 16], &mut d, true);
        assert_ne!(&d, b"hello world, seventeen+");
        aes_cfb(&[1; 16], &[2; 16], &mut d, false);
        assert_eq!(&d, b"hello world, seventeen+");
    }
}
