//! RSA for the TPM: key generation (random or from a deterministic stream),
//! import from (n, e, p) — the TPM keeps one prime — and the schemes
//! RSAES-PKCS1-v1_5, RSAES-OAEP (any label octets), RSASSA-PKCS1-v1_5, RSAPSS
//! and raw RSA (TPM_ALG_NULL). Private-key operations are blinded; private keys
//! are zeroized on drop (by the rsa crate).

use rand_core::CryptoRngCore;
use rsa::hazmat::{rsa_decrypt_and_check, rsa_encrypt};
use rsa::traits::{PrivateKeyParts, PublicKeyParts};
use rsa::{BigUint, Pkcs1v15Encrypt, Pkcs1v15Sign, Pss, RsaPrivateKey, RsaPublicKey};
use subtle::{ConditionallySelectable, ConstantTimeEq};
use zeroize::Zeroizing;

use crate::drbg::SystemRng;
use crate::error::{Error, Result};
use crate::hash::{digest, HashAlg};
use crate::kdf::mgf1;

/// The TPM's default public exponent (an exponent of 0 in a template means this).
pub const DEFAULT_EXPONENT: u32 = 65537;

/// TPM_ALG_RSA.
pub const TPM_ALG_RSA: u16 = 0x0001;

/// An RSA private key (zeroized on drop by the rsa crate).
pub struct RsaKey {
    key: RsaPrivateKey,
}

/// An RSA public key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RsaPublic {
    key: RsaPublicKey,
}

/// The RSASSA-PSS salt length signatures use (libtpms's rule): the digest's
/// length, or what is left when the modulus of `modulus_len` octets is too
/// small for it. Exported so that a certificate naming the salt says the same.
pub fn pss_salt_len(digest_len: usize, modulus_len: usize) -> usize {
    digest_len.min(modulus_len.saturating_sub(digest_len + 2))
}

/// Whether `bits` is a modulus size this crate generates (1024, 2048, 3072, 4096).
pub fn key_bits_supported(bits: usize) -> bool {
    matches!(bits, 1024 | 2048 | 3072 | 4096)
}

fn is_prime_u32(e: u32) -> bool {
    if e < 2 {
        return false;
    }
    let e = e as u64;
    let mut d = 2u64;
    while d * d <= e {
        if e.is_multiple_of(d) {
            return false;
        }
        d += 1;
    }
    true
}

/// The exponent to use: 0 means 65537; otherwise it must be odd and at
/// least 3, and for key generation also prime (another exponent can make the
/// prime search loop forever).
fn exponent(e: u32, generate: bool) -> Result<BigUint> {
    let e = if e == 0 { DEFAULT_EXPONENT } else { e };
    if e < 3 || e.is_multiple_of(2) || (generate && !is_prime_u32(e)) {
        return Err(Error::InvalidInput("unusable RSA exponent"));
    }
    Ok(BigUint::from(e))
}

fn left_pad(v: &[u8], len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len.saturating_sub(v.len())];
    out.extend_from_slice(v);
    out
}

fn exponent_u32(e: &BigUint) -> u32 {
    let b = e.to_bytes_be();
    if b.len() > 4 {
        return 0;
    }
    b.iter().fold(0u32, |acc, x| (acc << 8) | *x as u32)
}

impl RsaKey {
    /// A new key of `bits` (1024/2048/3072/4096) with exponent `e` (0: 65537;
    /// otherwise an odd prime).
    /// Deterministic for a deterministic `rng` (e.g. [`crate::KdfaRng`]): the
    /// same stream gives the same key. Keys are therefore reproducible within
    /// vtpm but are not the ones libtpms would derive from the same seed.
    pub fn generate(bits: usize, e: u32, rng: &mut impl CryptoRngCore) -> Result<RsaKey> {
        if !key_bits_supported(bits) {
            return Err(Error::Unsupported("RSA key size"));
        }
        let key = RsaPrivateKey::new_with_exp(rng, bits, &exponent(e, true)?)
            .map_err(|_| Error::Failed("RSA key generation"))?;
        Ok(RsaKey { key })
    }

    /// Rebuild a key from its modulus, exponent (0: 65537) and one prime (as a
    /// TPM stores it): q = n / p, then d and the CRT values are recomputed.
    /// Either prime will do.
    pub fn from_prime(n: &[u8], e: u32, p: &[u8]) -> Result<RsaKey> {
        let (n, p) = (BigUint::from_bytes_be(n), BigUint::from_bytes_be(p));
        let one = BigUint::from(1u32);
        if n.bits() < 512 || n.bits() > RsaPublicKey::MAX_SIZE {
            return Err(Error::InvalidKey("RSA modulus size"));
        }
        if p <= one || p >= n || &n % &p != BigUint::from(0u32) {
            return Err(Error::InvalidKey("the prime does not divide the modulus"));
        }
        let q = &n / &p;
        if q <= one {
            return Err(Error::InvalidKey("the prime does not divide the modulus"));
        }
        let key = RsaPrivateKey::from_p_q(p, q, exponent(e, false)?)
            .map_err(|_| Error::InvalidKey("RSA components"))?;
        Ok(RsaKey { key })
    }

    /// The modulus, big-endian, at its full length.
    pub fn modulus(&self) -> Vec<u8> {
        self.key.n().to_bytes_be()
    }

    /// The public exponent.
    pub fn exponent(&self) -> u32 {
        exponent_u32(self.key.e())
    }

    /// The first prime, big-endian (what the TPM keeps as the sensitive part).
    pub fn prime(&self) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(
            self.key
                .primes()
                .first()
                .map(|p| p.to_bytes_be())
                .unwrap_or_default(),
        )
    }

    /// Modulus size in bits.
    pub fn bits(&self) -> usize {
        self.key.n().bits()
    }

    /// Modulus size in octets.
    pub fn size(&self) -> usize {
        self.key.size()
    }

    /// The public half.
    pub fn public(&self) -> RsaPublic {
        RsaPublic {
            key: self.key.to_public_key(),
        }
    }

    /// RSAES-PKCS1-v1_5 decryption (the ciphertext must be as long as the modulus).
    pub fn decrypt_pkcs1(&self, ct: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        self.key
            .decrypt_blinded(&mut SystemRng, Pkcs1v15Encrypt, ct)
            .map(Zeroizing::new)
            .map_err(|_| Error::Failed("RSAES-PKCS1-v1_5 decryption"))
    }

    /// RSAES-OAEP decryption with `hash` (for the hash of the label and MGF1)
    /// and `label` as given: the TPM's labels include their terminating zero
    /// (`b"SECRET\0"`, see [`crate::protect`]). The ciphertext must be as long
    /// as the modulus. Every decoding failure is the same error.
    pub fn decrypt_oaep(
        &self,
        hash: HashAlg,
        label: &[u8],
        ct: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>> {
        let k = self.size();
        if ct.len() != k {
            return Err(Error::InvalidInput("ciphertext size is not the key size"));
        }
        let em = self.private_op(ct)?;
        oaep_decode(hash, label, &em)
    }

    /// RSASSA-PKCS1-v1_5 signature over `digest` made with `hash` (the digest
    /// must be as long as the hash's output).
    pub fn sign_pkcs1(&self, hash: HashAlg, digest: &[u8]) -> Result<Vec<u8>> {
        if digest.len() != hash.size() {
            return Err(Error::InvalidInput("digest size does not match the hash"));
        }
        self.key
            .sign_with_rng(&mut SystemRng, pkcs1_sign(hash), digest)
            .map_err(|_| Error::Failed("RSASSA-PKCS1-v1_5 signing"))
    }

    /// RSAPSS signature over `digest` with MGF1 of `hash`. The salt is as long
    /// as the digest, or shorter if the key is too small for that
    /// (min(hLen, k - hLen - 2), the TPM reference's rule); `rng` draws it.
    pub fn sign_pss(
        &self,
        hash: HashAlg,
        digest: &[u8],
        rng: &mut impl CryptoRngCore,
    ) -> Result<Vec<u8>> {
        let h = hash.size();
        if digest.len() != h {
            return Err(Error::InvalidInput("digest size does not match the hash"));
        }
        let k = self.size();
        if k < h + 2 {
            return Err(Error::InvalidInput("key too small for this hash"));
        }
        let salt = pss_salt_len(h, k);
        let scheme = match hash {
            HashAlg::Sha1 => Pss::new_with_salt::<sha1::Sha1>(salt),
            HashAlg::Sha256 => Pss::new_with_salt::<sha2::Sha256>(salt),
            HashAlg::Sha384 => Pss::new_with_salt::<sha2::Sha384>(salt),
            HashAlg::Sha512 => Pss::new_with_salt::<sha2::Sha512>(salt),
        };
        self.key
            .sign_with_rng(rng, scheme, digest)
            .map_err(|_| Error::Failed("RSAPSS signing"))
    }

    /// Raw RSA: m = c^d mod n (TPM_ALG_NULL scheme), left-padded to the
    /// modulus size. `c` may be shorter than the modulus but must be below it.
    pub fn raw_private(&self, c: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        self.private_op(c)
    }

    fn private_op(&self, c: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let k = self.size();
        if c.len() > k {
            return Err(Error::InvalidInput("value longer than the modulus"));
        }
        let c = BigUint::from_bytes_be(c);
        if &c >= self.key.n() {
            return Err(Error::InvalidInput("value not below the modulus"));
        }
        let m = rsa_decrypt_and_check(&self.key, Some(&mut SystemRng), &c)
            .map_err(|_| Error::Failed("RSA private operation"))?;
        let bytes = Zeroizing::new(m.to_bytes_be());
        Ok(Zeroizing::new(left_pad(&bytes, k)))
    }
}

impl RsaPublic {
    /// A public key from modulus and exponent (0: 65537; otherwise odd, ≥ 3).
    /// The modulus must have 512 to 4096 bits.
    pub fn new(n: &[u8], e: u32) -> Result<RsaPublic> {
        let n = BigUint::from_bytes_be(n);
        if n.bits() < 512 {
            return Err(Error::InvalidKey("RSA modulus size"));
        }
        let key = RsaPublicKey::new(n, exponent(e, false)?)
            .map_err(|_| Error::InvalidKey("RSA public key"))?;
        Ok(RsaPublic { key })
    }

    /// The modulus, big-endian.
    pub fn modulus(&self) -> Vec<u8> {
        self.key.n().to_bytes_be()
    }

    /// The public exponent.
    pub fn exponent(&self) -> u32 {
        exponent_u32(self.key.e())
    }

    /// Modulus size in octets.
    pub fn size(&self) -> usize {
        self.key.size()
    }

    /// RSAES-PKCS1-v1_5 encryption.
    pub fn encrypt_pkcs1(&self, msg: &[u8], rng: &mut impl CryptoRngCore) -> Result<Vec<u8>> {
        self.key
            .encrypt(rng, Pkcs1v15Encrypt, msg)
            .map_err(|_| Error::InvalidInput("message too long"))
    }

    /// RSAES-OAEP encryption with `hash` and `label` as given (include the
    /// terminating zero for the TPM's labels). `rng` draws the OAEP seed
    /// (exactly hLen octets, in one `fill_bytes` call).
    pub fn encrypt_oaep(
        &self,
        hash: HashAlg,
        label: &[u8],
        msg: &[u8],
        rng: &mut impl CryptoRngCore,
    ) -> Result<Vec<u8>> {
        let em = oaep_encode(hash, label, msg, self.size(), rng)?;
        self.public_op(&em)
    }

    /// Check an RSASSA-PKCS1-v1_5 signature over `digest` made with `hash`.
    pub fn verify_pkcs1(&self, hash: HashAlg, digest: &[u8], sig: &[u8]) -> bool {
        digest.len() == hash.size() && self.key.verify(pkcs1_sign(hash), digest, sig).is_ok()
    }

    /// Check an RSAPSS signature over `digest` (MGF1 with `hash`), accepting
    /// any salt length, as the TPM does.
    pub fn verify_pss(&self, hash: HashAlg, digest: &[u8], sig: &[u8]) -> bool {
        let h = hash.size();
        if digest.len() != h || sig.len() != self.size() {
            return false;
        }
        let s = BigUint::from_bytes_be(sig);
        if &s >= self.key.n() {
            return false;
        }
        let m = s.modpow(self.key.e(), self.key.n()).to_bytes_be();
        let em_bits = self.key.n().bits() - 1;
        let em_len = em_bits.div_ceil(8);
        if m.len() > em_len || em_len < h + 2 {
            return false;
        }
        let em = left_pad(&m, em_len);
        if em[em_len - 1] != 0xbc {
            return false;
        }
        let (masked_db, rest) = em.split_at(em_len - h - 1);
        let hh = &rest[..h];
        let top_mask = 0xffu8 >> (8 * em_len - em_bits);
        if masked_db[0] & !top_mask != 0 {
            return false;
        }
        let mut db: Vec<u8> = masked_db
            .iter()
            .zip(mgf1(hash, hh, masked_db.len()))
            .map(|(a, b)| a ^ b)
            .collect();
        db[0] &= top_mask;
        let Some(one) = db.iter().position(|&b| b != 0) else {
            return false;
        };
        if db[one] != 0x01 {
            return false;
        }
        let salt = &db[one + 1..];
        let expect = crate::hash::digest(hash, &[&[0u8; 8], digest, salt]);
        crate::hash::ct_eq(&expect, hh)
    }

    /// Raw RSA: c = m^e mod n, left-padded to the modulus size. `m` must be
    /// below the modulus.
    pub fn raw_public(&self, m: &[u8]) -> Result<Vec<u8>> {
        self.public_op(m)
    }

    fn public_op(&self, m: &[u8]) -> Result<Vec<u8>> {
        let k = self.size();
        if m.len() > k {
            return Err(Error::InvalidInput("value longer than the modulus"));
        }
        let m = BigUint::from_bytes_be(m);
        if &m >= self.key.n() {
            return Err(Error::InvalidInput("value not below the modulus"));
        }
        let c = rsa_encrypt(&self.key, &m).map_err(|_| Error::Failed("RSA public operation"))?;
        Ok(left_pad(&c.to_bytes_be(), k))
    }
}

/// EME-OAEP encoding (PKCS #1 v2.2, 7.1.1) to `k` octets.
fn oaep_encode(
    hash: HashAlg,
    label: &[u8],
    msg: &[u8],
    k: usize,
    rng: &mut impl CryptoRngCore,
) -> Result<Vec<u8>> {
    let h = hash.size();
    if k < 2 * h + 2 || msg.len() > k - 2 * h - 2 {
        return Err(Error::InvalidInput(
            "message too long for OAEP with this key",
        ));
    }
    let mut db = Zeroizing::new(Vec::with_capacity(k - h - 1));
    db.extend_from_slice(&digest(hash, &[label]));
    db.resize(k - msg.len() - h - 2, 0);
    db.push(0x01);
    db.extend_from_slice(msg);
    let mut seed = Zeroizing::new(vec![0u8; h]);
    rng.fill_bytes(&mut seed);
    for (d, m) in db.iter_mut().zip(mgf1(hash, &seed, k - h - 1)) {
        *d ^= m;
    }
    for (s, m) in seed.iter_mut().zip(mgf1(hash, &db, h)) {
        *s ^= m;
    }
    let mut em = Vec::with_capacity(k);
    em.push(0);
    em.extend_from_slice(&seed);
    em.extend_from_slice(&db);
    Ok(em)
}

/// EME-OAEP decoding (PKCS #1 v2.2, 7.1.2) of `em` (k octets), checking the
/// padding without branching on its secret content.
fn oaep_decode(hash: HashAlg, label: &[u8], em: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    let h = hash.size();
    let k = em.len();
    if k < 2 * h + 2 {
        return Err(Error::Failed("OAEP decoding"));
    }
    let (masked_seed, masked_db) = em[1..].split_at(h);
    let mut seed = Zeroizing::new(masked_seed.to_vec());
    for (s, m) in seed.iter_mut().zip(mgf1(hash, masked_db, h)) {
        *s ^= m;
    }
    let mut db = Zeroizing::new(masked_db.to_vec());
    for (d, m) in db.iter_mut().zip(mgf1(hash, &seed, k - h - 1)) {
        *d ^= m;
    }
    let lhash = digest(hash, &[label]);
    let mut good = em[0].ct_eq(&0) & db[..h].ct_eq(&lhash[..]);
    // Find the 0x01 that ends the zero padding: remember its index while
    // still "looking", and fail on any other non-zero octet before it.
    let mut looking = subtle::Choice::from(1u8);
    let mut index = 0u32;
    for (i, b) in db.iter().enumerate().skip(h) {
        let is0 = b.ct_eq(&0);
        let is1 = b.ct_eq(&1);
        index.conditional_assign(&(i as u32), looking & is1);
        good &= !(looking & !is0 & !is1);
        looking &= !is1;
    }
    good &= !looking;
    if !bool::from(good) {
        return Err(Error::Failed("OAEP decoding"));
    }
    Ok(Zeroizing::new(db[index as usize + 1..].to_vec()))
}

fn pkcs1_sign(hash: HashAlg) -> Pkcs1v15Sign {
    match hash {
        HashAlg::Sha1 => Pkcs1v15Sign::new::<sha1::Sha1>(),
        HashAlg::Sha256 => Pkcs1v15Sign::new::<sha2::Sha256>(),
        HashAlg::Sha384 => Pkcs1v15Sign::new::<sha2::Sha384>(),
        HashAlg::Sha512 => Pkcs1v15Sign::new::<sha2::Sha512>(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::drbg::KdfaRng;
    use rand_core::{CryptoRng, RngCore};

    fn hex(s: &str) -> Vec<u8> {
        ::hex::decode(s).unwrap()
    }

    /// A generator that replays given octets (then zeros): for known-answer tests.
    pub(crate) struct Replay(pub Vec<u8>, pub usize);

    impl RngCore for Replay {
        fn next_u32(&mut self) -> u32 {
            let mut b = [0u8; 4];
            self.fill_bytes(&mut b);
            u32::from_be_bytes(b)
        }
        fn next_u64(&mut self) -> u64 {
            let mut b = [0u8; 8];
            self.fill_bytes(&mut b);
            u64::from_be_bytes(b)
        }
        fn fill_bytes(&mut self, dest: &mut [u8]) {
            for d in dest.iter_mut() {
                *d = self.0.get(self.1).copied().unwrap_or(0);
                self.1 += 1;
            }
        }
        fn try_fill_bytes(&mut self, dest: &mut [u8]) -> std::result::Result<(), rand_core::Error> {
            self.fill_bytes(dest);
            Ok(())
        }
    }
    impl CryptoRng for Replay {}

    fn key_1024(seed: &[u8]) -> RsaKey {
        RsaKey::generate(
            1024,
            0,
            &mut KdfaRng::new(HashAlg::Sha256, seed, b"RSA", b"template"),
        )
        .unwrap()
    }

    #[test]
    fn deterministic_generation_and_import() {
        let k = key_1024(b"seed");
        assert_eq!(
            k.modulus(),
            key_1024(b"seed").modulus(),
            "same seed and template, same key"
        );
        assert_ne!(k.modulus(), key_1024(b"seed2").modulus());
        assert_eq!(k.bits(), 1024);
        assert_eq!(k.size(), 128);
        assert_eq!(k.exponent(), 65537);
        let back = RsaKey::from_prime(&k.modulus(), 0, &k.prime()).unwrap();
        assert_eq!(back.modulus(), k.modulus());
        // The other prime works too, and the rebuilt key decrypts what the original encrypted.
        let n = BigUint::from_bytes_be(&k.modulus());
        let q = (&n / BigUint::from_bytes_be(&k.prime())).to_bytes_be();
        let other = RsaKey::from_prime(&k.modulus(), 65537, &q).unwrap();
        let ct = k.public().encrypt_pkcs1(b"hi", &mut SystemRng).unwrap();
        assert_eq!(&other.decrypt_pkcs1(&ct).unwrap()[..], b"hi");
        assert!(RsaKey::from_prime(&k.modulus(), 0, &[7]).is_err());
        assert!(RsaKey::from_prime(&k.modulus(), 0, &[1]).is_err());
        assert!(RsaKey::from_prime(&k.modulus(), 0, &[]).is_err());
        assert!(RsaKey::from_prime(&k.modulus(), 0, &k.modulus()).is_err());
        assert!(RsaKey::from_prime(&[], 0, &[3]).is_err());
        assert!(
            RsaKey::from_prime(&k.modulus(), 4, &k.prime()).is_err(),
            "even exponent"
        );
        assert!(RsaKey::generate(1000, 0, &mut SystemRng).is_err());
        assert!(RsaKey::generate(1024, 65536, &mut SystemRng).is_err());
        assert!(
            RsaKey::generate(1024, 9, &mut SystemRng).is_err(),
            "composite exponent"
        );
        let k3 =
            RsaKey::generate(1024, 3, &mut KdfaRng::new(HashAlg::Sha1, b"s", b"RSA", b"")).unwrap();
        assert_eq!(k3.exponent(), 3);
        assert_eq!(k3.public().exponent(), 3);
    }

    #[test]
    fn signatures() {
        let k = key_1024(b"seed");
        let pubk = k.public();
        for hash in HashAlg::ALL {
            let d = digest(hash, &[b"message"]);
            let other = digest(hash, &[b"other"]);
            let sig = k.sign_pkcs1(hash, &d).unwrap();
            assert_eq!(
                sig,
                k.sign_pkcs1(hash, &d).unwrap(),
                "PKCS1 v1.5 is deterministic"
            );
            assert!(pubk.verify_pkcs1(hash, &d, &sig));
            assert!(!pubk.verify_pkcs1(hash, &other, &sig));
            assert!(!pubk.verify_pkcs1(hash, &d, &sig[1..]));
            let pss = k.sign_pss(hash, &d, &mut SystemRng).unwrap();
            assert!(pubk.verify_pss(hash, &d, &pss), "{hash:?}");
            assert!(!pubk.verify_pss(hash, &other, &pss));
            let mut bad = pss.clone();
            bad[5] ^= 1;
            assert!(!pubk.verify_pss(hash, &d, &bad));
            assert!(!pubk.verify_pss(hash, &d, &[0xff; 128]));
            assert!(!pubk.verify_pss(hash, &d, &[]));
            assert!(k.sign_pkcs1(hash, &d[1..]).is_err());
        }
        // PSS with another salt length (as other signers use) still verifies.
        let d = digest(HashAlg::Sha256, &[b"m"]);
        let sig = k
            .key
            .sign_with_rng(&mut SystemRng, Pss::new_with_salt::<sha2::Sha256>(0), &d)
            .unwrap();
        assert!(pubk.verify_pss(HashAlg::Sha256, &d, &sig));
    }

    /// NIST CAVP SigVer PKCS#1 v1.5 (FIPS 186-3, SHA-256, 1024-bit moduli):
    /// signatures marked "Result = P", and one changed message that must fail.
    #[test]
    fn nist_sigver_pkcs1_known_answers() {
        let cases = [
            (
                "8f705d5529b5bf74600abc485bc4bb76deb9627088e51fdd26dd0f37bb3b98a9da4094d275d55011\
                 a844884122daf8b4abe99d43d918eb50d9642436647f60577c5f60fb9b810147a910dd7dd6103183\
                 92dffa3fcc41f89f461bb5be85bf885b672cecf00da3af4d7d90074c4c0144c4bcd2d49145f80976\
                 48ec7230747f7033",
                0x09ffbd,
                "393f6cd3c89e67def9579e586c945fe97d567bae23c54a2e18c5f0903bc9df0b32ec9d9d533ec800\
                 c55b57dae2432234e065a52db1fd00ef27a043e35c15e9215167a22bd53856daa9586698e19735d0\
                 8dd7e7a3996568ddf289b027ea5b467eded903e316371954ec7654fc31389fa7ccd3c978a4a489de\
                 c1a6c0c4ae42ff08",
                "327269d1d4d871a8be4ee49be39c5a51482fbe89d522c0d6cfb0ea6bf0c6f0b343a94222ef65058e\
                 27f5107e4f8d0ce20a064f19ac39189f221c5e62ad4fd7006eb1de620052bd35c268d5c1c6ee0f81\
                 e8b3f7f2977d2449167caaee2ca54d458108645268749651de6f7acaff09591d19ac99dc17d480ef\
                 3531ed4c14eb85bf",
            ),
            (
                "a16c7fcbb8d6fc602277e9cebb1790bd14999ef7670400c0bd0ea6116fc72e29b868c8b62ada0e7b\
                 4cd351b5a76c177f158b4f724f1d287d66df114eabd68e3e8d12409b69f96e334c0daff79392d184\
                 b9102ea5c4ec13052bfc509d9ae76851e8557a417b86e9d37687d243cf48812ce621c5f39404cd6b\
                 22a60beef744a42f",
                0x681201,
                "243db9a1c203c792db3204bbfb3cea400d6e5efec0c935092f0df759c016e3c04c6b331f8115a1da\
                 85ad2989dcb911f18c3927327f7c4a4128382b996ada552eb51b6ba372d4b1bca113ce16c06ed116\
                 ef97711f53319908b8e224cd7aaae584a573ea935be90121768b7cca6f0232977fb2c62d03902c44\
                 2533685bb92d99aa",
                "8d1a40fbd8186e3cd1dfbb529e1ee9ab13a6c8e6cf04e663a4de2349c05334f0ab3c694ea89397ca\
                 3e70a2a1957ac75a6544842af88cbe3ebf641f68cbce75638da1c953c3f594f8ee8b3825ab4aaafb\
                 9fb152f05bb7dcc07e3b666ca8626e69bb262bc240398007b871b7790eca96512d64f3ff94470224\
                 fa075ce3164cb1e1",
            ),
        ];
        for (n, e, msg, sig) in cases {
            let key = RsaPublic::new(&hex(n), e).unwrap();
            let d = digest(HashAlg::Sha256, &[&hex(msg)]);
            assert!(key.verify_pkcs1(HashAlg::Sha256, &d, &hex(sig)));
            let wrong = digest(HashAlg::Sha256, &[&hex(msg)[1..]]);
            assert!(!key.verify_pkcs1(HashAlg::Sha256, &wrong, &hex(sig)));
            assert!(!key.verify_pss(HashAlg::Sha256, &d, &hex(sig)));
        }
    }

    #[test]
    fn encryption_and_raw() {
        let k = key_1024(b"seed");
        let pubk = k.public();
        let ct = pubk
            .encrypt_oaep(HashAlg::Sha256, b"SECRET\0", b"seed value", &mut SystemRng)
            .unwrap();
        assert_eq!(
            &k.decrypt_oaep(HashAlg::Sha256, b"SECRET\0", &ct).unwrap()[..],
            b"seed value"
        );
        assert!(
            k.decrypt_oaep(HashAlg::Sha256, b"DUPLICATE\0", &ct)
                .is_err(),
            "the label binds"
        );
        assert!(k.decrypt_oaep(HashAlg::Sha1, b"SECRET\0", &ct).is_err());
        assert!(k
            .decrypt_oaep(HashAlg::Sha256, b"SECRET\0", &ct[1..])
            .is_err());
        let ct = pubk
            .encrypt_oaep(HashAlg::Sha1, &[0xff, 0xfe], b"", &mut SystemRng)
            .unwrap();
        assert!(k
            .decrypt_oaep(HashAlg::Sha1, &[0xff, 0xfe], &ct)
            .unwrap()
            .is_empty());
        // Longest message that fits: k - 2h - 2.
        assert!(pubk
            .encrypt_oaep(HashAlg::Sha512, b"", &[1; 1], &mut SystemRng)
            .is_err());
        assert!(pubk
            .encrypt_oaep(HashAlg::Sha256, b"", &[1; 63], &mut SystemRng)
            .is_err());
        let ct = pubk
            .encrypt_oaep(HashAlg::Sha256, b"", &[1; 62], &mut SystemRng)
            .unwrap();
        assert_eq!(k.decrypt_oaep(HashAlg::Sha256, b"", &ct).unwrap().len(), 62);
        for _ in 0..20 {
            // Random garbage never decodes (and never panics).
            let junk = crate::drbg::random_bytes(127);
            assert!(k
                .decrypt_oaep(HashAlg::Sha256, b"", &[&[0][..], &junk].concat())
                .is_err());
        }
        let ct = pubk.encrypt_pkcs1(b"hello", &mut SystemRng).unwrap();
        assert_eq!(&k.decrypt_pkcs1(&ct).unwrap()[..], b"hello");
        assert!(k.decrypt_pkcs1(&[0u8; 128]).is_err());
        let m = vec![5u8; 100];
        let c = pubk.raw_public(&m).unwrap();
        assert_eq!(c.len(), 128);
        assert_eq!(k.raw_private(&c).unwrap()[128 - 100..], m[..]);
        assert!(pubk.raw_public(&[0xff; 128]).is_err());
        assert!(k.raw_private(&[0xff; 129]).is_err());
        assert!(RsaPublic::new(&k.modulus(), 0).unwrap() == pubk);
        assert!(RsaPublic::new(&[0x80], 0).is_err());
        assert_eq!(pubk.modulus(), k.modulus());
    }

    /// Vectors from the public tpm-test-vectors project (rsa_labeled_encaps.json,
    /// checked against TPM2_ActivateCredential / StartAuthSession): the OAEP
    /// encryption of a seed to a TPM's RSA-2048 key with the seed ("OAEPSalt")
    /// fixed must give the recorded ciphertext.
    #[test]
    fn tpm_labeled_oaep_known_answers() {
        // (nameAlg, label, OAEP seed, secret, TPMT_PUBLIC, ciphertext)
        let cases = [
            (
                HashAlg::Sha1,
                "IDENTITY",
                "e56cf0637db2dd60c1c7c3b954af363a8bca10ff",
                "fd402efdd1db1fe0231271c8a2f7f2127bc2f8ff",
                "00010004000304600000000600800043001008000000000001008048d6eeb469fb8859\
                 1a4c2d43878a8de8ecb83340ef5f8738e0d70350dc52788ff128c10c02d5297edd1c5c\
                 96ba6bc08a3a25570f7b2b2b3857ad249178d6861494fb9fdfe1892820cd6d0da1b836\
                 117df7f62aeda3129959f016494a02655e5ed350e3d03655c5d1a098ec6a400be495b3\
                 73fa615800b24ff03a8aca66ca57cbb8db875f211737ff4d83d91c95721005b3759a7d\
                 e2864d300a85362aa660b20f743c7bf790c8bb411ea4021f7153dbe27e11316cca4702\
                 066162b6a577dac3e9a4d9a371d32d5e0ab52417bf334d7088ec7a4beb2d1055487769\
                 8fc465b6d8311ac4e6e82cc7352a1ebc2cab74bd3551c312219115896770dadb92240c\
                 0101",
                "6eefd19c65bd6322c7962264bbd37c3d2ceb9df5f90e92d97bcbf4331c7234cd7091ce\
                 8ce7196876185accb5a212a16152c59400f1529d7fcae6736235cde1b46a6d0d9f5402\
                 184ca95dfd7dfd15809946719a925cb905ae536d26752ba2147fde4b8ca0ecc3b5e950\
                 904f3f25290a01fdd51fea4d17f5015daa5a6d5bf5b98e07d1e63b315ac8a1c25fb968\
                 979ed1efea3ccd5fa34c6df4d6c976e1a61dc31f469566e8949b5f68e1ba33cb28406e\
                 6e76bdc30fad2399540d417f867c9adde2d89a8b18664c3d80486d3caba4b6c743add3\
                 ed62c2f24aca23892f359fce225f6a825b2f98681f752db15a5886591873b9d2d560d3\
                 4bb95cdee8af2fb4c775d7",
            ),
            (
                HashAlg::Sha256,
                "SECRET",
                "00d89dc6335565397a612d87ea372b753701060709a79ad9171e9b468b944f40",
                "ff5a3ac45f3ee8fa592f039c94a9bfdfb1e67709a6bff4bd8a7c54ed1be47df5",
                "0001000b000304600000000600800043001008000000000001008054bc2c75a670a0d6\
                 372d5d37944609a79e94865c48c16c46e9354912f4aab3213c2cb204f104329de5a6e2\
                 1fd459ad7e5e6e9afbbd8ee14d22ebd23821815be7b3e225ffd06c0097b91b0e0d71c2\
                 7d5eee235ea37ae1d6ff84ffca71ea9926103ab5da58befeaad5df0de20662cc050967\
                 06aeafaaa5b231e6bd0fddbb26c1fa1c9f05861e11525360373789f9e07c96d65f8a9f\
                 3483bb7d95e5286ed66b4ae5588e5ed38ab15d40059b5c7d8d9ef0a67d7ab9e0b923f6\
                 18e5a2cddad5b644080391196d0214d6d4bef749cb8228b947ea0a1feb305414e0023e\
                 c6022e1b8098f96a53c1e878ddb85a3dc39dbbfc600bffaa34ace17465825ddccd7796\
                 dbaf",
                "7d28343b75b31731f4ab8a13947bbe4e0cf769001a9dd4b6bcdb7126ac6fbfd5cdd3aa\
                 ae65712aa6cce001176bc103e7ac48e9cff55ac6544519da0d8ec51c41744498ba8f45\
                 478685550895cb6ff792c98a4ceb32b24e8f55a1282d7ccd99545eb7086333df9b193b\
                 41d342af46c95964360f255144f22df583608167c6cbb42da16aea1488c5a6e2fc99b7\
                 bf081cc02154ff94e835a871708b426d6da7b1bb67f37d70d1e77345bfd9cc0d4782df\
                 06eb987556ab6a9ed2dae457ad0a6f32f38c51d2321f10bac13b2f5d5ab20a5a050003\
                 23a86828ab6699a0dedfe623ac740a4820aab647acd18640d1731cc6afe9091f7cd472\
                 774fae1030e8e40fbcea7b",
            ),
        ];
        for (hash, label, oaep_seed, secret, public, ct) in cases {
            let public = hex(public);
            // TPMT_PUBLIC of a restricted RSA-2048 decryption key: the modulus
            // (TPM2B, 256 octets) starts at offset 26.
            assert_eq!(public[24..26], [0x01, 0x00]);
            let n = &public[26..];
            assert_eq!(n.len(), 256);
            let key = RsaPublic::new(n, 0).unwrap();
            let label = crate::kdf::label_z(label.as_bytes());
            let out = key
                .encrypt_oaep(hash, &label, &hex(secret), &mut Replay(hex(oaep_seed), 0))
                .unwrap();
            assert_eq!(out, hex(ct), "{hash:?}");
        }
    }
}

/// Primary keys must not change when a dependency is updated: these golden
/// values pin the whole chain KdfaRng → rsa/p256/p384/p521 key generation. If
/// this test fails after an update, primary keys (and EK certificates made
/// for them) would change: pin the old crate version instead.
#[cfg(test)]
mod primary_key_stability {
    use super::*;
    use crate::drbg::KdfaRng;
    use crate::ecc::{Curve, EccKey};

    fn rng(label: &[u8]) -> KdfaRng {
        KdfaRng::new(HashAlg::Sha256, b"golden seed", label, b"template digest")
    }

    #[test]
    fn derived_keys_are_the_recorded_ones() {
        let k = RsaKey::generate(2048, 0, &mut rng(b"RSA")).unwrap();
        assert_eq!(
            ::hex::encode(digest(HashAlg::Sha256, &[&k.modulus()])),
            "66b8d7cfa84e347c86b914120b4b0847de07f5b3145477005bce932b0b711450"
        );
        let expect = [
            (
                Curve::P256,
                "2cbcda32e48063c9bd30cb6ab019b5e9e7ca9d06d2991c9a3e81ed1e458df6a8",
            ),
            (
                Curve::P384,
                "903936a5e922ab98e2e0f73dfc865431708b49564919d36379ea37ec675879f0\
                 acec0eb4c269cfa912491758c4a96cf6",
            ),
            (
                Curve::P521,
                "00744558bdef1a3989f1d1b8a79a55835ca80b16d5aed826f19e4402b609d39f\
                 21c877f84987690d354ff906fae4c5265cb372edefb0b999dad879d3dfbf75f2\
                 9e33",
            ),
        ];
        for (curve, x) in expect {
            let e = EccKey::generate(curve, &mut rng(b"ECC"));
            assert_eq!(::hex::encode(&e.public.x), x, "{curve:?}");
        }
    }
}
