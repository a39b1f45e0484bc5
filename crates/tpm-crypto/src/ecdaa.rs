//! ECDAA signing as TPM 2.0 does it (Part 1, the anonymous signing scheme):
//! the signer commits to a random r (TPM2_Commit gives out E = [r]G or
//! [r]P1), then signs a digest with a fresh nonce k: T = H(k || digest) mod n
//! and s = r + T·d mod n. The signature is (k, s). This module holds the
//! arithmetic only; where r comes from (the commit counter) is the engine's.

use rand_core::CryptoRngCore;

use crate::ecc::{fit, Curve, EccKey, Point};
use crate::ecc_math::{add, is_private_scalar, mod_n, mul, mul_add_n, random_scalar};
use crate::error::{Error, Result};
use crate::hash::{HashAlg, Hasher};

/// T = H(k || digest) mod n, at the curve's size.
fn challenge(curve: Curve, hash: HashAlg, k: &[u8], digest: &[u8]) -> Vec<u8> {
    let mut h = Hasher::new(hash);
    h.update(k);
    h.update(digest);
    mod_n(curve, &h.finish())
}

/// `v` without its leading zero octets.
fn minimal(v: &[u8]) -> Vec<u8> {
    let first = v.iter().position(|&b| b != 0).unwrap_or(v.len());
    v[first..].to_vec()
}

impl EccKey {
    /// ECDAA signature (k, s) over `digest` with the committed random `r`
    /// (1 ≤ r < n): k random from `rng` in [1, n), given without leading
    /// zeros (the octets hashed are the octets returned), and
    /// s = r + H(k || digest)·d mod n at the curve's size.
    pub fn sign_ecdaa(
        &self,
        hash: HashAlg,
        digest: &[u8],
        r: &[u8],
        rng: &mut impl CryptoRngCore,
    ) -> Result<(Vec<u8>, Vec<u8>)> {
        let curve = self.curve;
        if !is_private_scalar(curve, r) {
            return Err(Error::InvalidInput("commit value out of range"));
        }
        if !is_private_scalar(curve, &self.d) {
            return Err(Error::InvalidKey("ECC scalar"));
        }
        for _ in 0..64 {
            let k = minimal(&random_scalar(curve, rng));
            let t = challenge(curve, hash, &k, digest);
            // s = r + t·d mod n.
            let s = mul_add_n(curve, r, &t, &self.d).ok_or(Error::Failed("ECDAA"))?;
            if s.iter().all(|&b| b == 0) {
                continue;
            }
            return Ok((k, s));
        }
        Err(Error::Failed("ECDAA signing found no nonce"))
    }
}

/// Check an ECDAA signature (k, s) over `digest` made with `hash` by the key
/// with public point `q`, for the commitment `e` = [r]G the signer gave out:
/// [s]G = E + [H(k || digest) mod n]Q. (A DAA verifier checks the same
/// relation on the credential's points; this is the plain form.)
pub fn verify_ecdaa(
    curve: Curve,
    q: &Point,
    e: &Point,
    hash: HashAlg,
    digest: &[u8],
    k: &[u8],
    s: &[u8],
) -> bool {
    let Some(s) = fit(s, curve.size()) else {
        return false;
    };
    let t = challenge(curve, hash, k, digest);
    let Ok(lhs) = mul(curve, &s, None) else {
        return false;
    };
    let Ok(tq) = mul(curve, &t, Some(q)) else {
        return false;
    };
    add(curve, e, &tq).is_ok_and(|rhs| rhs == lhs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drbg::{KdfaRng, SystemRng};
    use crate::hash::digest;
    use rsa::BigUint;

    /// The integer value of `v` (to check the arithmetic by hand).
    fn int(v: &[u8]) -> BigUint {
        BigUint::from_bytes_be(v)
    }

    #[test]
    fn ecdaa_signatures_verify_against_the_commitment() {
        for curve in Curve::ALL {
            let mut rng = KdfaRng::new(HashAlg::Sha256, b"ecdaa", b"t", b"");
            let key = EccKey::generate(curve, &mut rng);
            let r = EccKey::generate(curve, &mut rng).d.to_vec();
            let e = mul(curve, &r, None).unwrap();
            for hash in HashAlg::ALL {
                let d = digest(hash, &[b"message"]);
                let (k, s) = key.sign_ecdaa(hash, &d, &r, &mut SystemRng).unwrap();
                assert_eq!(s.len(), curve.size());
                assert!(verify_ecdaa(curve, &key.public, &e, hash, &d, &k, &s));
                // s = r + T·d mod n, by hand.
                let t = int(&challenge(curve, hash, &k, &d));
                let n = curve.order();
                assert_eq!(int(&s), (int(&r) + t * int(&key.d)) % &n);
                // Another digest, commitment, key or nonce fails.
                let other = digest(hash, &[b"other"]);
                assert!(!verify_ecdaa(curve, &key.public, &e, hash, &other, &k, &s));
                let e2 = mul(curve, &[3], None).unwrap();
                assert!(!verify_ecdaa(curve, &key.public, &e2, hash, &d, &k, &s));
                assert!(!verify_ecdaa(curve, &e, &e, hash, &d, &k, &s));
                assert!(!verify_ecdaa(curve, &key.public, &e, hash, &d, &[1], &s));
                assert!(!verify_ecdaa(
                    curve,
                    &key.public,
                    &e,
                    hash,
                    &d,
                    &k,
                    &[0; 90]
                ));
            }
            // r must be a valid scalar.
            let d = digest(HashAlg::Sha256, &[b"m"]);
            assert!(key
                .sign_ecdaa(HashAlg::Sha256, &d, &[0], &mut SystemRng)
                .is_err());
            assert!(key
                .sign_ecdaa(HashAlg::Sha256, &d, &curve.params().n, &mut SystemRng)
                .is_err());
        }
    }

    #[test]
    fn the_nonce_is_hashed_as_returned() {
        // A replayed k with a leading zero octet: the signature carries it
        // without the zero, and T is computed over those octets.
        let curve = Curve::P256;
        let key = EccKey::generate(curve, &mut KdfaRng::new(HashAlg::Sha256, b"k", b"t", b""));
        let mut k = vec![0u8];
        k.extend_from_slice(&[0x5a; 31]);
        let r = [9u8; 32];
        let d = digest(HashAlg::Sha256, &[b"m"]);
        let (sig_k, s) = key
            .sign_ecdaa(
                HashAlg::Sha256,
                &d,
                &r,
                &mut crate::rsa::tests::Replay(k.clone(), 0),
            )
            .unwrap();
        assert_eq!(sig_k, k[1..]);
        let t = int(&digest(HashAlg::Sha256, &[&k[1..], &d])) % curve.order();
        assert_eq!(int(&s), (int(&r) + t * int(&key.d)) % curve.order());
    }
}
