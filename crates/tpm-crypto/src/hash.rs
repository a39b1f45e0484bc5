//! Hashes and HMAC over the TPM's hash algorithms.

use digest::Digest as _;
use hmac::Mac;

/// TPM_ALG_SHA1, SHA256, SHA384, SHA512.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HashAlg {
    /// SHA-1.
    Sha1,
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

impl HashAlg {
    /// From a TPM_ALG_ID.
    pub fn from_tpm_alg(alg: u16) -> Option<HashAlg> {
        match alg {
            0x0004 => Some(HashAlg::Sha1),
            0x000B => Some(HashAlg::Sha256),
            0x000C => Some(HashAlg::Sha384),
            0x000D => Some(HashAlg::Sha512),
            _ => None,
        }
    }
    /// The TPM_ALG_ID.
    pub fn to_tpm_alg(self) -> u16 {
        match self {
            HashAlg::Sha1 => 0x0004,
            HashAlg::Sha256 => 0x000B,
            HashAlg::Sha384 => 0x000C,
            HashAlg::Sha512 => 0x000D,
        }
    }
    /// Digest size in octets.
    pub fn size(self) -> usize {
        match self {
            HashAlg::Sha1 => 20,
            HashAlg::Sha256 => 32,
            HashAlg::Sha384 => 48,
            HashAlg::Sha512 => 64,
        }
    }
}

/// An incremental hash; Clone, so hash sequences can fork it.
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
    /// A new hash of `alg`.
    pub fn new(alg: HashAlg) -> Hasher {
        match alg {
            HashAlg::Sha1 => Hasher::Sha1(sha1::Sha1::new()),
            HashAlg::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            HashAlg::Sha384 => Hasher::Sha384(sha2::Sha384::new()),
            HashAlg::Sha512 => Hasher::Sha512(sha2::Sha512::new()),
        }
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

/// Digest of the concatenation of `parts`.
pub fn digest(alg: HashAlg, parts: &[&[u8]]) -> Vec<u8> {
    let mut h = Hasher::new(alg);
    for p in parts {
        h.update(p);
    }
    h.finish()
}

fn mac<M: Mac + hmac::digest::KeyInit>(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    // HMAC takes keys of any length; the error arm cannot happen.
    let Ok(mut m) = <M as hmac::digest::KeyInit>::new_from_slice(key) else {
        return Vec::new();
    };
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().to_vec()
}

/// HMAC of the concatenation of `parts`.
pub fn hmac(alg: HashAlg, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    match alg {
        HashAlg::Sha1 => mac::<hmac::Hmac<sha1::Sha1>>(key, parts),
        HashAlg::Sha256 => mac::<hmac::Hmac<sha2::Sha256>>(key, parts),
        HashAlg::Sha384 => mac::<hmac::Hmac<sha2::Sha384>>(key, parts),
        HashAlg::Sha512 => mac::<hmac::Hmac<sha2::Sha512>>(key, parts),
    }
}

/// Constant-time equality of two byte strings (their lengths are not secret).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        ::hex::decode(s).unwrap()
    }

    #[test]
    fn known_answers() {
        assert_eq!(
            digest(HashAlg::Sha1, &[b"abc"]),
            hex("a9993e364706816aba3e25717850c26c9cd0d89d")
        );
        assert_eq!(
            digest(HashAlg::Sha256, &[b"a", b"bc"]),
            hex("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        );
        // RFC 4231 test case 2.
        assert_eq!(
            hmac(
                HashAlg::Sha256,
                b"Jefe",
                &[b"what do ya want ", b"for nothing?"]
            ),
            hex("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        );
        assert_eq!(
            hmac(HashAlg::Sha512, b"Jefe", &[b"what do ya want for nothing?"])[..8],
            hex("164b7a7bfcf819e2")[..]
        );
    }

    #[test]
    fn ids_round_trip() {
        for a in [
            HashAlg::Sha1,
            HashAlg::Sha256,
            HashAlg::Sha384,
            HashAlg::Sha512,
        ] {
            assert_eq!(HashAlg::from_tpm_alg(a.to_tpm_alg()), Some(a));
            assert_eq!(digest(a, &[]).len(), a.size());
        }
        assert_eq!(HashAlg::from_tpm_alg(0x0010), None);
    }
}
