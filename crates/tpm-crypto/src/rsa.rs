//! RSA for the TPM: key generation (random or from a deterministic stream),
//! import from (n, e, p) — the TPM keeps one prime — and the schemes
//! RSAES-PKCS1-v1_5, OAEP, RSASSA-PKCS1-v1_5, RSAPSS and raw RSA.

use rand_core::CryptoRngCore;
use rsa::traits::{PrivateKeyParts, PublicKeyParts};
use rsa::{BigUint, Oaep, Pkcs1v15Encrypt, Pkcs1v15Sign, Pss, RsaPrivateKey, RsaPublicKey};

use crate::error::{Error, Result};
use crate::hash::HashAlg;

/// The TPM's default public exponent.
pub const DEFAULT_EXPONENT: u32 = 65537;

/// An RSA private key (zeroized on drop by the rsa crate).
pub struct RsaKey {
    key: RsaPrivateKey,
}

/// An RSA public key.
#[derive(Clone)]
pub struct RsaPublic {
    key: RsaPublicKey,
}

fn check_bits(bits: usize) -> Result<()> {
    match bits {
        1024 | 2048 | 3072 | 4096 => Ok(()),
        _ => Err(Error::Unsupported("RSA key size")),
    }
}

fn exponent(e: u32) -> BigUint {
    BigUint::from(if e == 0 { DEFAULT_EXPONENT } else { e })
}

impl RsaKey {
    /// A new key of `bits` with exponent `e` (0: 65537); deterministic for a deterministic `rng`.
    pub fn generate(bits: usize, e: u32, rng: &mut impl CryptoRngCore) -> Result<RsaKey> {
        check_bits(bits)?;
        let key = RsaPrivateKey::new_with_exp(rng, bits, &exponent(e))
            .map_err(|_| Error::Failed("RSA key generation"))?;
        Ok(RsaKey { key })
    }

    /// Rebuild a key from its modulus, exponent and one prime (as a TPM stores it).
    pub fn from_prime(n: &[u8], e: u32, p: &[u8]) -> Result<RsaKey> {
        let (n, p) = (BigUint::from_bytes_be(n), BigUint::from_bytes_be(p));
        if p <= BigUint::from(1u32) || &n % &p != BigUint::from(0u32) {
            return Err(Error::InvalidKey("the prime does not divide the modulus"));
        }
        let q = &n / &p;
        let key = RsaPrivateKey::from_p_q(p, q, exponent(e))
            .map_err(|_| Error::InvalidKey("RSA components"))?;
        Ok(RsaKey { key })
    }

    /// The modulus, big-endian, at its full length.
    pub fn modulus(&self) -> Vec<u8> {
        self.key.n().to_bytes_be()
    }

    /// The first prime, big-endian (what the TPM keeps as the sensitive part).
    pub fn prime(&self) -> Vec<u8> {
        self.key
            .primes()
            .first()
            .map(|p| p.to_bytes_be())
            .unwrap_or_default()
    }

    /// The public half.
    pub fn public(&self) -> RsaPublic {
        RsaPublic {
            key: self.key.to_public_key(),
        }
    }

    /// RSAES-PKCS1-v1_5 decryption.
    pub fn decrypt_pkcs1(&self, ct: &[u8]) -> Result<Vec<u8>> {
        self.key
            .decrypt(Pkcs1v15Encrypt, ct)
            .map_err(|_| Error::Failed("RSAES-PKCS1-v1_5 decryption"))
    }

    /// OAEP decryption with `label` (the TPM's labels include their terminating zero).
    pub fn decrypt_oaep(&self, hash: HashAlg, label: &str, ct: &[u8]) -> Result<Vec<u8>> {
        self.key
            .decrypt(oaep(hash, label), ct)
            .map_err(|_| Error::Failed("OAEP decryption"))
    }

    /// RSASSA-PKCS1-v1_5 signature over `digest` made with `hash`.
    pub fn sign_pkcs1(&self, hash: HashAlg, digest: &[u8]) -> Result<Vec<u8>> {
        self.key
            .sign(pkcs1_sign(hash), digest)
            .map_err(|_| Error::Failed("RSASSA-PKCS1-v1_5 signing"))
    }

    /// RSAPSS signature over `digest` (salt as long as the digest, as the TPM does).
    pub fn sign_pss(
        &self,
        hash: HashAlg,
        digest: &[u8],
        rng: &mut impl CryptoRngCore,
    ) -> Result<Vec<u8>> {
        self.key
            .sign_with_rng(rng, pss(hash), digest)
            .map_err(|_| Error::Failed("RSAPSS signing"))
    }

    /// Raw RSA: m = c^d mod n (TPM_ALG_NULL scheme).
    pub fn raw_private(&self, c: &[u8]) -> Result<Vec<u8>> {
        let c = BigUint::from_bytes_be(c);
        if &c >= self.key.n() {
            return Err(Error::InvalidInput("value not below the modulus"));
        }
        let m = c.modpow(self.key.d(), self.key.n());
        Ok(left_pad(&m.to_bytes_be(), self.key.size()))
    }
}

impl RsaPublic {
    /// A public key from modulus and exponent (0: 65537).
    pub fn new(n: &[u8], e: u32) -> Result<RsaPublic> {
        let key = RsaPublicKey::new(BigUint::from_bytes_be(n), exponent(e))
            .map_err(|_| Error::InvalidKey("RSA public key"))?;
        Ok(RsaPublic { key })
    }

    /// RSAES-PKCS1-v1_5 encryption.
    pub fn encrypt_pkcs1(&self, msg: &[u8], rng: &mut impl CryptoRngCore) -> Result<Vec<u8>> {
        self.key
            .encrypt(rng, Pkcs1v15Encrypt, msg)
            .map_err(|_| Error::InvalidInput("message too long"))
    }

    /// OAEP encryption with `label`.
    pub fn encrypt_oaep(
        &self,
        hash: HashAlg,
        label: &str,
        msg: &[u8],
        rng: &mut impl CryptoRngCore,
    ) -> Result<Vec<u8>> {
        self.key
            .encrypt(rng, oaep(hash, label), msg)
            .map_err(|_| Error::InvalidInput("message too long"))
    }

    /// Check an RSASSA-PKCS1-v1_5 signature.
    pub fn verify_pkcs1(&self, hash: HashAlg, digest: &[u8], sig: &[u8]) -> bool {
        self.key.verify(pkcs1_sign(hash), digest, sig).is_ok()
    }

    /// Check an RSAPSS signature (any salt length).
    pub fn verify_pss(&self, hash: HashAlg, digest: &[u8], sig: &[u8]) -> bool {
        let scheme = match hash {
            HashAlg::Sha1 => Pss::new::<sha1::Sha1>(),
            HashAlg::Sha256 => Pss::new::<sha2::Sha256>(),
            HashAlg::Sha384 => Pss::new::<sha2::Sha384>(),
            HashAlg::Sha512 => Pss::new::<sha2::Sha512>(),
        };
        self.key.verify(scheme, digest, sig).is_ok()
    }

    /// Raw RSA: c = m^e mod n.
    pub fn raw_public(&self, m: &[u8]) -> Result<Vec<u8>> {
        let m = BigUint::from_bytes_be(m);
        if &m >= self.key.n() {
            return Err(Error::InvalidInput("value not below the modulus"));
        }
        Ok(left_pad(
            &m.modpow(self.key.e(), self.key.n()).to_bytes_be(),
            self.key.size(),
        ))
    }

    /// Modulus size in octets.
    pub fn size(&self) -> usize {
        self.key.size()
    }
}

fn left_pad(v: &[u8], len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len.saturating_sub(v.len())];
    out.extend_from_slice(v);
    out
}

fn oaep(hash: HashAlg, label: &str) -> Oaep {
    let label = label.to_string();
    match hash {
        HashAlg::Sha1 => Oaep::new_with_label::<sha1::Sha1, _>(label),
        HashAlg::Sha256 => Oaep::new_with_label::<sha2::Sha256, _>(label),
        HashAlg::Sha384 => Oaep::new_with_label::<sha2::Sha384, _>(label),
        HashAlg::Sha512 => Oaep::new_with_label::<sha2::Sha512, _>(label),
    }
}

fn pkcs1_sign(hash: HashAlg) -> Pkcs1v15Sign {
    match hash {
        HashAlg::Sha1 => Pkcs1v15Sign::new::<sha1::Sha1>(),
        HashAlg::Sha256 => Pkcs1v15Sign::new::<sha2::Sha256>(),
        HashAlg::Sha384 => Pkcs1v15Sign::new::<sha2::Sha384>(),
        HashAlg::Sha512 => Pkcs1v15Sign::new::<sha2::Sha512>(),
    }
}

fn pss(hash: HashAlg) -> Pss {
    match hash {
        HashAlg::Sha1 => Pss::new_with_salt::<sha1::Sha1>(20),
        HashAlg::Sha256 => Pss::new_with_salt::<sha2::Sha256>(32),
        HashAlg::Sha384 => Pss::new_with_salt::<sha2::Sha384>(48),
        HashAlg::Sha512 => Pss::new_with_salt::<sha2::Sha512>(64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::digest;
    use crate::kdf::KdfaRng;

    #[test]
    fn deterministic_generation_import_and_schemes() {
        let gen = || {
            RsaKey::generate(
                1024,
                0,
                &mut KdfaRng::new(HashAlg::Sha256, b"seed", b"RSA", b"template"),
            )
            .unwrap()
        };
        let k = gen();
        assert_eq!(
            k.modulus(),
            gen().modulus(),
            "same seed and template, same key"
        );
        let other = RsaKey::generate(
            1024,
            0,
            &mut KdfaRng::new(HashAlg::Sha256, b"seed2", b"RSA", b"template"),
        )
        .unwrap();
        assert_ne!(k.modulus(), other.modulus());
        let back = RsaKey::from_prime(&k.modulus(), 0, &k.prime()).unwrap();
        assert_eq!(back.modulus(), k.modulus());
        assert!(RsaKey::from_prime(&k.modulus(), 0, &[7]).is_err());

        let mut rng = rand::rngs::OsRng;
        let pubk = k.public();
        let d = digest(HashAlg::Sha256, &[b"message"]);
        assert!(pubk.verify_pkcs1(
            HashAlg::Sha256,
            &d,
            &k.sign_pkcs1(HashAlg::Sha256, &d).unwrap()
        ));
        assert!(pubk.verify_pss(
            HashAlg::Sha256,
            &d,
            &k.sign_pss(HashAlg::Sha256, &d, &mut rng).unwrap()
        ));
        assert!(!pubk.verify_pkcs1(
            HashAlg::Sha256,
            &digest(HashAlg::Sha256, &[b"other"]),
            &k.sign_pkcs1(HashAlg::Sha256, &d).unwrap()
        ));
        let ct = pubk
            .encrypt_oaep(HashAlg::Sha256, "SECRET\0", b"seed value", &mut rng)
            .unwrap();
        assert_eq!(
            k.decrypt_oaep(HashAlg::Sha256, "SECRET\0", &ct).unwrap(),
            b"seed value"
        );
        assert!(
            k.decrypt_oaep(HashAlg::Sha256, "DUPLICATE\0", &ct).is_err(),
            "the label binds"
        );
        let ct = pubk.encrypt_pkcs1(b"hello", &mut rng).unwrap();
        assert_eq!(k.decrypt_pkcs1(&ct).unwrap(), b"hello");
        let m = vec![5u8; 100];
        assert_eq!(
            k.raw_private(&pubk.raw_public(&m).unwrap()).unwrap()[128 - 100..],
            m[..]
        );
        assert!(RsaKey::generate(1000, 0, &mut rng).is_err());
    }
}
