//! Hashes and HMAC over the TPM's hash algorithms, one-shot and incremental,
//! and a constant-time comparison.

use digest::Digest as _;
use hmac::Mac;

/// TPM_ALG_SHA1, SHA256, SHA384, SHA512.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HashAlg {
    /// SHA-1 (TPM_ALG_SHA1 = 0x0004).
    Sha1,
    /// SHA-256 (TPM_ALG_SHA256 = 0x000B).
    Sha256,
    /// SHA-384 (TPM_ALG_SHA384 = 0x000C).
    Sha384,
    /// SHA-512 (TPM_ALG_SHA512 = 0x000D).
    Sha512,
}

impl HashAlg {
    /// Every implemented hash, in TPM_ALG_ID order.
    pub const ALL: [HashAlg; 4] = [
        HashAlg::Sha1,
        HashAlg::Sha256,
        HashAlg::Sha384,
        HashAlg::Sha512,
    ];

    /// From a TPM_ALG_ID; None for anything that is not an implemented hash.
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

    /// Digest size in octets (same as [`HashAlg::size`]).
    pub fn digest_size(self) -> usize {
        self.size()
    }

    /// Digest size in bits, as KDFa's `bits` argument wants it.
    pub fn bits(self) -> u32 {
        (self.size() * 8) as u32
    }

    /// Block size in octets (TPM_PT_... / HMAC padding).
    pub fn block_size(self) -> usize {
        match self {
            HashAlg::Sha1 | HashAlg::Sha256 => 64,
            HashAlg::Sha384 | HashAlg::Sha512 => 128,
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

    /// The algorithm of this hash.
    pub fn alg(&self) -> HashAlg {
        match self {
            Hasher::Sha1(_) => HashAlg::Sha1,
            Hasher::Sha256(_) => HashAlg::Sha256,
            Hasher::Sha384(_) => HashAlg::Sha384,
            Hasher::Sha512(_) => HashAlg::Sha512,
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

/// An incremental HMAC (TPM2_HMAC_Start sequences); Clone, so it can be forked.
#[derive(Clone)]
pub enum HmacState {
    /// HMAC-SHA-1.
    Sha1(hmac::Hmac<sha1::Sha1>),
    /// HMAC-SHA-256.
    Sha256(hmac::Hmac<sha2::Sha256>),
    /// HMAC-SHA-384.
    Sha384(hmac::Hmac<sha2::Sha384>),
    /// HMAC-SHA-512.
    Sha512(hmac::Hmac<sha2::Sha512>),
}

fn new_mac<M: hmac::digest::KeyInit>(key: &[u8]) -> M {
    // HMAC accepts keys of every length, so the error arm is unreachable;
    // an empty key stands in rather than a panic.
    match M::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => M::new(&Default::default()),
    }
}

impl HmacState {
    /// A new HMAC of `alg` keyed with `key` (any length).
    pub fn new(alg: HashAlg, key: &[u8]) -> HmacState {
        match alg {
            HashAlg::Sha1 => HmacState::Sha1(new_mac(key)),
            HashAlg::Sha256 => HmacState::Sha256(new_mac(key)),
            HashAlg::Sha384 => HmacState::Sha384(new_mac(key)),
            HashAlg::Sha512 => HmacState::Sha512(new_mac(key)),
        }
    }

    /// The algorithm of this HMAC.
    pub fn alg(&self) -> HashAlg {
        match self {
            HmacState::Sha1(_) => HashAlg::Sha1,
            HmacState::Sha256(_) => HashAlg::Sha256,
            HmacState::Sha384(_) => HashAlg::Sha384,
            HmacState::Sha512(_) => HashAlg::Sha512,
        }
    }

    /// Absorb `data`.
    pub fn update(&mut self, data: &[u8]) {
        match self {
            HmacState::Sha1(m) => m.update(data),
            HmacState::Sha256(m) => m.update(data),
            HmacState::Sha384(m) => m.update(data),
            HmacState::Sha512(m) => m.update(data),
        }
    }

    /// The HMAC value.
    pub fn finish(self) -> Vec<u8> {
        match self {
            HmacState::Sha1(m) => m.finalize().into_bytes().to_vec(),
            HmacState::Sha256(m) => m.finalize().into_bytes().to_vec(),
            HmacState::Sha384(m) => m.finalize().into_bytes().to_vec(),
            HmacState::Sha512(m) => m.finalize().into_bytes().to_vec(),
        }
    }
}

/// HMAC of the concatenation of `parts`.
pub fn hmac(alg: HashAlg, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut m = HmacState::new(alg, key);
    for p in parts {
        m.update(p);
    }
    m.finish()
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
    fn fips_180_abc() {
        let expect = [
            "a9993e364706816aba3e25717850c26c9cd0d89d",
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed\
             8086072ba1e7cc2358baeca134c825a7",
            "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a\
             2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
        ];
        for (alg, e) in HashAlg::ALL.into_iter().zip(expect) {
            let e = hex(&e.replace(' ', ""));
            assert_eq!(digest(alg, &[b"abc"]), e);
            assert_eq!(digest(alg, &[b"a", b"", b"bc"]), e);
            let mut h = Hasher::new(alg);
            h.update(b"a");
            let fork = h.clone();
            h.update(b"bc");
            assert_eq!(h.finish(), e);
            let mut f = fork;
            f.update(b"bc");
            assert_eq!(f.finish(), e, "a cloned hash continues independently");
        }
    }

    #[test]
    fn rfc_2202_and_4231_hmac() {
        // RFC 2202 test case 2 (HMAC-SHA-1).
        assert_eq!(
            hmac(HashAlg::Sha1, b"Jefe", &[b"what do ya want for nothing?"]),
            hex("effcdf6ae5eb2fa2d27416d5f184df9c259a7c79")
        );
        // RFC 4231 test case 2.
        let data: [&[u8]; 2] = [b"what do ya want ", b"for nothing?"];
        assert_eq!(
            hmac(HashAlg::Sha256, b"Jefe", &data),
            hex("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        );
        assert_eq!(
            hmac(HashAlg::Sha384, b"Jefe", &data),
            hex(
                "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e\
                 8e2240ca5e69e2c78b3239ecfab21649"
            )
        );
        assert_eq!(
            hmac(HashAlg::Sha512, b"Jefe", &data),
            hex(
                "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea250554\
                 9758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737"
            )
        );
        // RFC 4231 test case 6: a key longer than the block size.
        let key = [0xaau8; 131];
        assert_eq!(
            hmac(
                HashAlg::Sha256,
                &key,
                &[b"Test Using Larger Than Block-Size Key - Hash Key First"]
            ),
            hex("60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54")
        );
        // Incremental and forked HMAC agree with the one-shot.
        for alg in HashAlg::ALL {
            let mut m = HmacState::new(alg, b"Jefe");
            m.update(data[0]);
            let fork = m.clone();
            m.update(data[1]);
            let one = hmac(alg, b"Jefe", &data);
            assert_eq!(m.finish(), one);
            let mut f = fork;
            f.update(data[1]);
            assert_eq!(f.finish(), one);
            assert_eq!(one.len(), alg.size());
        }
    }

    #[test]
    fn ids_sizes_and_comparison() {
        for a in HashAlg::ALL {
            assert_eq!(HashAlg::from_tpm_alg(a.to_tpm_alg()), Some(a));
            assert_eq!(digest(a, &[]).len(), a.size());
            assert_eq!(a.bits() as usize, a.digest_size() * 8);
            assert_eq!(Hasher::new(a).alg(), a);
            assert_eq!(HmacState::new(a, b"").alg(), a);
        }
        assert_eq!(HashAlg::Sha256.block_size(), 64);
        assert_eq!(HashAlg::Sha384.block_size(), 128);
        assert_eq!(HashAlg::from_tpm_alg(0x0010), None);
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
        assert!(ct_eq(b"", b""));
    }
}
