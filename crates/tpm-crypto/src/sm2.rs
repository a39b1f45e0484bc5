//! SM2 digital signatures (GB/T 32918.2) over a digest the caller made, as
//! TPM2_Sign with TPM_ALG_SM2 signs (the caller hashes Z_A || M): k random,
//! (x1, y1) = [k]G, r = (e + x1) mod n, s = (1 + d)⁻¹ · (k − r·d) mod n,
//! with e the digest as an integer. Any implemented curve may carry it.
//! And the SM2 key exchange's shared point (GB/T 32918.3) for
//! TPM2_ZGen_2Phase.

use elliptic_curve::ff::PrimeField;
use rand_core::CryptoRngCore;
use rsa::BigUint;

use crate::ecc::{any_curve, fit, left_pad, Curve, EccKey, Point};
use crate::ecc_math::{add, associate_agreement, mul, scalar};
use crate::error::{Error, Result};

/// (e + x) mod n at the curve's size.
fn plus_mod_n(curve: Curve, e: &[u8], x: &[u8]) -> Vec<u8> {
    let v = (BigUint::from_bytes_be(e) + BigUint::from_bytes_be(x)) % curve.order();
    left_pad(&v.to_bytes_be(), curve.size())
}

fn is_zero(v: &[u8]) -> bool {
    v.iter().all(|&b| b == 0)
}

impl EccKey {
    /// SM2 signature (r, s) over `digest`, each at the curve's size.
    pub fn sign_sm2(
        &self,
        digest: &[u8],
        rng: &mut impl CryptoRngCore,
    ) -> Result<(Vec<u8>, Vec<u8>)> {
        let curve = self.curve;
        for _ in 0..64 {
            let k = EccKey::generate(curve, &mut *rng);
            let r = plus_mod_n(curve, digest, &k.public.x);
            // r = 0 or r + k = n would make the signature leak or fail.
            let r_plus_k = plus_mod_n(curve, &r, &k.d);
            if is_zero(&r) || is_zero(&r_plus_k) {
                continue;
            }
            let s = any_curve!(curve, c => {
                let bad = || Error::Failed("SM2 scalar");
                let d = scalar!(c, curve, &self.d).ok_or_else(bad)?;
                let kk = scalar!(c, curve, &k.d).ok_or_else(bad)?;
                let rr = scalar!(c, curve, &r).ok_or_else(bad)?;
                let inv = Option::<c::Scalar>::from((c::Scalar::ONE + d).invert());
                let Some(inv) = inv else { continue };
                (inv * (kk - rr * d)).to_repr().to_vec()
            }, dom => {
                let one_d = dom.mul_add_n(&[1], &[1], &self.d).ok_or(Error::Failed("SM2"))?;
                let num = dom.sub_n(&k.d, &dom.mul_add_n(&[0], &r, &self.d).ok_or(Error::Failed("SM2"))?)
                    .ok_or(Error::Failed("SM2"))?;
                let Some(s) = dom.div_n(&num, &one_d) else { continue };
                s
            });
            if is_zero(&s) {
                continue;
            }
            return Ok((r, s));
        }
        Err(Error::Failed("SM2 signing found no nonce"))
    }
}

/// Whether (r, s) is an SM2 signature over `digest` by public point `q`:
/// 1 ≤ r, s < n, t = (r + s) mod n ≠ 0, (x1, y1) = [s]G + [t]Q and
/// (e + x1) mod n = r.
pub fn verify_sm2(curve: Curve, q: &Point, digest: &[u8], r: &[u8], s: &[u8]) -> bool {
    let size = curve.size();
    let (Some(r), Some(s)) = (fit(r, size), fit(s, size)) else {
        return false;
    };
    let n = curve.order();
    let zero = BigUint::from(0u32);
    for v in [&r, &s] {
        let v = BigUint::from_bytes_be(v);
        if v == zero || v >= n {
            return false;
        }
    }
    let t = plus_mod_n(curve, &r, &s);
    if is_zero(&t) {
        return false;
    }
    let (Ok(sg), Ok(tq)) = (mul(curve, &s, None), mul(curve, &t, Some(q))) else {
        return false;
    };
    add(curve, &sg, &tq).is_ok_and(|p| plus_mod_n(curve, digest, &p.x) == r)
}

/// x̄ = 2^w + (x mod 2^w) with w = ⌈⌈log2 n⌉ / 2⌉ − 1, at the curve's size.
fn x_bar(curve: Curve, x: &[u8]) -> Vec<u8> {
    let w = curve.order().bits().div_ceil(2) - 1;
    let top = BigUint::from(1u32) << w;
    left_pad(
        &(BigUint::from_bytes_be(x) % &top + &top).to_bytes_be(),
        curve.size(),
    )
}

/// The SM2 key exchange's U for the party with static private key `ds` and
/// ephemeral private key `de` (public Re = [de]G), given the other party's
/// static `qs_b` and ephemeral `qe_b` points: t = ds + x̄(Re)·de mod n and
/// U = [t](QsB + [x̄(QeB)]QeB) (the cofactor is 1 on every implemented
/// curve). Errors for invalid points or U at infinity.
pub fn sm2_key_exchange(
    curve: Curve,
    ds: &[u8],
    de: &[u8],
    qs_b: &Point,
    qe_b: &Point,
) -> Result<Point> {
    let xa = x_bar(curve, &mul(curve, de, None)?.x);
    let xb = x_bar(
        curve,
        &fit(&qe_b.x, curve.size()).ok_or(Error::InvalidKey("coordinate"))?,
    );
    // t = ds + x̄(Re)·de; U = [t](QsB + [x̄(QeB)]QeB).
    associate_agreement(curve, (ds, de, &xa), (qs_b, qe_b, &xb))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drbg::{KdfaRng, SystemRng};
    use crate::hash::{digest, HashAlg};

    #[test]
    fn sm2_round_trip_on_every_curve() {
        for curve in Curve::ALL {
            let key =
                EccKey::generate(curve, &mut KdfaRng::new(HashAlg::Sha256, b"sm2", b"t", b""));
            let other = EccKey::generate(curve, &mut SystemRng);
            for hash in [HashAlg::Sha256, HashAlg::Sha512] {
                let d = digest(hash, &[b"message"]);
                let (r, s) = key.sign_sm2(&d, &mut SystemRng).unwrap();
                assert_eq!((r.len(), s.len()), (curve.size(), curve.size()));
                assert!(verify_sm2(curve, &key.public, &d, &r, &s), "{curve:?}");
                assert!(!verify_sm2(curve, &other.public, &d, &r, &s));
                assert!(!verify_sm2(
                    curve,
                    &key.public,
                    &digest(hash, &[b"x"]),
                    &r,
                    &s
                ));
                assert!(!verify_sm2(curve, &key.public, &d, &s, &r));
                assert!(!verify_sm2(curve, &key.public, &d, &[], &s));
            }
        }
    }

    #[test]
    fn both_parties_of_the_key_exchange_agree() {
        for curve in [Curve::Sm2P256, Curve::P256, Curve::BnP256] {
            let mut rng = KdfaRng::new(HashAlg::Sha256, b"kx", b"t", b"");
            let keys: Vec<EccKey> = (0..4).map(|_| EccKey::generate(curve, &mut rng)).collect();
            let (sa, ea, sb, eb) = (&keys[0], &keys[1], &keys[2], &keys[3]);
            let ua = sm2_key_exchange(curve, &sa.d, &ea.d, &sb.public, &eb.public).unwrap();
            let ub = sm2_key_exchange(curve, &sb.d, &eb.d, &sa.public, &ea.public).unwrap();
            assert_eq!(ua, ub, "{curve:?}");
            let mqv = crate::ecmqv::ecmqv(curve, &sa.d, &ea.d, &sb.public, &eb.public).unwrap();
            assert_ne!(ua, mqv, "not EC-MQV");
            // Private scalars out of range and invalid points are refused.
            assert!(sm2_key_exchange(curve, &[0], &ea.d, &sb.public, &eb.public).is_err());
            assert!(sm2_key_exchange(curve, &[0xff; 80], &ea.d, &sb.public, &eb.public).is_err());
            let mut off = sb.public.clone();
            off.x[2] ^= 4;
            assert!(sm2_key_exchange(curve, &sa.d, &ea.d, &off, &eb.public).is_err());
        }
        // w = 127 for a 256-bit n: bit 127 set, 127 low bits kept.
        let v = BigUint::from_bytes_be(&x_bar(Curve::Sm2P256, &[0xff; 32]));
        assert_eq!(v, (BigUint::from(1u32) << 128) - BigUint::from(1u32));
    }

    /// GB/T 32918.2 annex A's arithmetic: with the nonce replayed, r and s
    /// follow the definition (checked with big integers).
    #[test]
    fn sm2_matches_its_definition() {
        let curve = Curve::Sm2P256;
        let key = EccKey::generate(curve, &mut KdfaRng::new(HashAlg::Sha256, b"k", b"t", b""));
        let k_seed = [0x4cu8; 32];
        let e = digest(HashAlg::Sha256, &[b"abc"]);
        let (r, s) = key
            .sign_sm2(&e, &mut KdfaRng::new(HashAlg::Sha256, &k_seed, b"ECC", b""))
            .unwrap();
        let k = EccKey::generate(
            curve,
            &mut KdfaRng::new(HashAlg::Sha256, &k_seed, b"ECC", b""),
        );
        let n = curve.order();
        let int = |v: &[u8]| BigUint::from_bytes_be(v);
        assert_eq!(int(&r), (int(&e) + int(&k.public.x)) % &n);
        // s·(1 + d) = k − r·d (mod n).
        let lhs = (int(&s) * (BigUint::from(1u32) + int(&key.d))) % &n;
        let rhs = (int(&k.d) + &n - (int(&r) * int(&key.d)) % &n) % &n;
        assert_eq!(lhs, rhs);
    }
}
