//! ECC on the NIST curves the TPM names (P-256, P-384, P-521): key generation
//! (random or deterministic), point validation, ECDSA and EC-Schnorr over a
//! digest, ECDH returning the shared point (TPM2_ECDH_ZGen answers the point,
//! not just x), ephemeral keys for TPM2_ECDH_KeyGen and salts, and the curve
//! parameters TPM2_ECC_Parameters reports.
//!
//! Coordinates and scalars are big-endian octet strings. Inputs may carry
//! fewer octets than the curve size (leading zeros dropped) or extra leading
//! zeros; outputs are always exactly [`Curve::size`] octets.

use elliptic_curve::ff::PrimeField;
use elliptic_curve::group::Group;
use elliptic_curve::sec1::{FromEncodedPoint, ToEncodedPoint};
use rand_core::CryptoRngCore;
use rsa::BigUint;
use zeroize::Zeroizing;

pub(crate) use crate::curve::{fit, left_pad};
pub use crate::curve::{Curve, CurveParams, Point};
use crate::error::{Error, Result};
use crate::hash::{HashAlg, Hasher};

/// TPM_ALG_ECC.
pub const TPM_ALG_ECC: u16 = 0x0023;

/// A private key: the scalar d and the public point d·G.
pub struct EccKey {
    /// The curve.
    pub curve: Curve,
    /// The private scalar, curve-size octets (zeroized on drop).
    pub d: Zeroizing<Vec<u8>>,
    /// The public point d·G, curve-size coordinates.
    pub public: Point,
}

/// Run `$body` with `$m` naming the RustCrypto crate of a NIST curve, or
/// `$generic` with `$d` bound to the curve's [`crate::weierstrass::Domain`].
macro_rules! any_curve {
    ($curve:expr, $m:ident => $body:expr, $d:ident => $generic:expr) => {
        match $curve {
            Curve::P256 => {
                use p256 as $m;
                $body
            }
            Curve::P384 => {
                use p384 as $m;
                $body
            }
            Curve::P521 => {
                use p521 as $m;
                $body
            }
            other => {
                let $d = crate::ecc_generic::domain(other);
                $generic
            }
        }
    };
}
pub(crate) use any_curve;

/// SEC1 uncompressed encoding of `p` after checking it lies on the curve
/// (and is not the point at infinity).
pub(crate) fn public_point(curve: Curve, p: &Point) -> Result<Vec<u8>> {
    let n = curve.size();
    let (Some(x), Some(y)) = (fit(&p.x, n), fit(&p.y, n)) else {
        return Err(Error::InvalidKey("coordinate too long"));
    };
    let mut sec1 = vec![4u8];
    sec1.extend_from_slice(&x);
    sec1.extend_from_slice(&y);
    any_curve!(curve, c => {
        let ep = c::EncodedPoint::from_bytes(&sec1).map_err(|_| Error::InvalidKey("ECC point"))?;
        Option::<c::PublicKey>::from(c::PublicKey::from_encoded_point(&ep))
            .ok_or(Error::InvalidKey("point not on the curve"))?;
    }, dom => {
        crate::ecc_generic::sec1(dom, p)?;
    });
    Ok(sec1)
}

/// Whether `p` is a valid point of `curve` (TPM_RC_ECC_POINT otherwise).
pub fn is_on_curve(curve: Curve, p: &Point) -> bool {
    public_point(curve, p).is_ok()
}

/// `p` validated and with both coordinates at the curve's size.
pub fn normalize_point(curve: Curve, p: &Point) -> Result<Point> {
    let sec1 = public_point(curve, p)?;
    let n = curve.size();
    Ok(Point::new(&sec1[1..1 + n], &sec1[1 + n..]))
}

/// The affine coordinates of an encoded point; an error for the point at infinity.
pub(crate) fn coords(ep: &[u8], n: usize) -> Result<Point> {
    if ep.len() != 1 + 2 * n || ep[0] != 4 {
        return Err(Error::Failed("the result is the point at infinity"));
    }
    Ok(Point::new(&ep[1..1 + n], &ep[1 + n..]))
}

impl EccKey {
    /// A new key; deterministic for a deterministic `rng` (the scalar is drawn
    /// by rejection sampling of curve-size octet strings from `rng`).
    pub fn generate(curve: Curve, rng: &mut impl CryptoRngCore) -> EccKey {
        let d = crate::ecc_math::random_scalar(curve, rng);
        // A scalar in [1, n) never gives the point at infinity.
        let public = crate::ecc_math::mul(curve, &d, None).unwrap_or(Point {
            x: Vec::new(),
            y: Vec::new(),
        });
        EccKey { curve, d, public }
    }

    /// Rebuild a key from its scalar (1 ≤ d < n); the public point is
    /// recomputed (compare it with a stored one to check a pair).
    pub fn from_scalar(curve: Curve, d: &[u8]) -> Result<EccKey> {
        let d =
            Zeroizing::new(fit(d, curve.size()).ok_or(Error::InvalidKey("ECC scalar too long"))?);
        any_curve!(curve, c => {
            let sk = c::SecretKey::from_slice(&d).map_err(|_| Error::InvalidKey("ECC scalar out of range"))?;
            let ep = sk.public_key().to_encoded_point(false);
            Ok(EccKey {
                curve,
                d: Zeroizing::new(sk.to_bytes().to_vec()),
                public: coords(ep.as_bytes(), curve.size())?,
            })
        }, dom => {
            if !dom.is_scalar(&d) {
                return Err(Error::InvalidKey("ECC scalar out of range"));
            }
            let (x, y) = dom.mul(&d, None)?;
            Ok(EccKey { curve, d, public: Point { x, y } })
        })
    }

    /// ECDSA signature (r, s) over `digest`, each curve-size octets. The nonce
    /// is RFC 6979's (deterministic), so no generator is needed. A digest
    /// longer than the order is truncated to its leftmost bits, as ECDSA says.
    pub fn sign_ecdsa(&self, digest: &[u8]) -> Result<(Vec<u8>, Vec<u8>)> {
        use ecdsa::signature::hazmat::PrehashSigner;
        if digest.is_empty() {
            return Err(Error::InvalidInput("empty digest"));
        }
        any_curve!(self.curve, c => {
            let digest = &prehash(self.curve, digest);
            let sk = c::ecdsa::SigningKey::from_slice(&self.d).map_err(|_| Error::InvalidKey("ECC scalar"))?;
            let sig: c::ecdsa::Signature = sk.sign_prehash(digest).map_err(|_| Error::Failed("ECDSA signing"))?;
            let (r, s) = sig.split_bytes();
            Ok((r.to_vec(), s.to_vec()))
        }, dom => crate::ecc_generic::ecdsa_sign(dom, &self.d, digest))
    }

    /// EC-Schnorr signature (r, s) over `digest` as the TPM defines it:
    /// k random from `rng`, R = k·G, r = H(R.x || digest) with R.x at the
    /// curve size and the hash truncated to the order's octet length, then
    /// s = k + r·d mod n. (r, s) are curve-size octets. A k giving r = 0,
    /// r ≥ n or s = 0 is replaced by a fresh one.
    pub fn sign_schnorr(
        &self,
        hash: HashAlg,
        digest: &[u8],
        rng: &mut impl CryptoRngCore,
    ) -> Result<(Vec<u8>, Vec<u8>)> {
        let (curve, size) = (self.curve, self.curve.size());
        if !crate::ecc_math::is_private_scalar(curve, &self.d) {
            return Err(Error::InvalidKey("ECC scalar"));
        }
        for _ in 0..64 {
            // The nonce k and R = [k]G, drawn as a key is.
            let nonce = EccKey::generate(curve, &mut *rng);
            let e = schnorr_hash(hash, &nonce.public.x, digest, size);
            let e_pad = left_pad(&e, size);
            if !crate::ecc_math::is_private_scalar(curve, &e_pad) {
                continue;
            }
            // s = k + e·d mod n.
            let s = crate::ecc_math::mul_add_n(curve, &nonce.d, &e_pad, &self.d)
                .ok_or(Error::Failed("EC-Schnorr"))?;
            if s.iter().all(|&b| b == 0) {
                continue;
            }
            return Ok((e_pad, s));
        }
        Err(Error::Failed("EC-Schnorr signing found no nonce"))
    }

    /// ECDH: the point d·Q for the peer's public point Q (validated first).
    /// Z for key agreement is its x coordinate.
    pub fn ecdh(&self, peer: &Point) -> Result<Point> {
        let q = public_point(self.curve, peer)?;
        let n = self.curve.size();
        any_curve!(self.curve, c => {
            let pk = c::PublicKey::from_sec1_bytes(&q).map_err(|_| Error::InvalidKey("ECC point"))?;
            let sk = c::SecretKey::from_slice(&self.d).map_err(|_| Error::InvalidKey("ECC scalar"))?;
            let shared = (pk.to_projective() * *sk.to_nonzero_scalar()).to_affine();
            coords(shared.to_encoded_point(false).as_bytes(), n)
        }, dom => {
            let (x, y) = dom.mul(&self.d, Some((&q[1..1 + n], &q[1 + n..])))?;
            Ok(Point { x, y })
        })
    }
}

/// TPM2_ECDH_KeyGen (and the first half of ECC secret sharing): a fresh
/// ephemeral key (de, Qe) from `rng`, and Z = de·Q for the peer's point Q.
/// Returns (Qe, Z); Z.x is the shared secret.
pub fn ecdh_keygen(
    curve: Curve,
    peer: &Point,
    rng: &mut impl CryptoRngCore,
) -> Result<(Point, Point)> {
    public_point(curve, peer)?;
    let e = EccKey::generate(curve, rng);
    let z = e.ecdh(peer)?;
    Ok((e.public.clone(), z))
}

/// H(x || digest), cut to the order's octet length (`size`).
fn schnorr_hash(hash: HashAlg, x: &[u8], digest: &[u8], size: usize) -> Vec<u8> {
    let mut h = Hasher::new(hash);
    h.update(x);
    h.update(digest);
    let mut e = h.finish();
    e.truncate(size);
    e
}

/// Check an EC-Schnorr signature (r, s) over `digest` made with `hash` by the
/// key with public point `q`: 0 < r, s < n, E = s·G - r·Q, and
/// H(E.x || digest) (truncated as in signing) must equal r.
pub fn verify_schnorr(
    curve: Curve,
    q: &Point,
    hash: HashAlg,
    digest: &[u8],
    r: &[u8],
    s: &[u8],
) -> bool {
    let size = curve.size();
    let Ok(sec1) = public_point(curve, q) else {
        return false;
    };
    let (Some(r), Some(s)) = (fit(r, size), fit(s, size)) else {
        return false;
    };
    let order = curve.order();
    let zero = BigUint::from(0u32);
    let r_int = BigUint::from_bytes_be(&r);
    let s_int = BigUint::from_bytes_be(&s);
    if r_int == zero || s_int == zero || r_int >= order || s_int >= order {
        return false;
    }
    any_curve!(curve, c => {
        let Ok(pk) = c::PublicKey::from_sec1_bytes(&sec1) else { return false };
        let rs = Option::<c::Scalar>::from(c::Scalar::from_repr(c::FieldBytes::clone_from_slice(&r)));
        let ss = Option::<c::Scalar>::from(c::Scalar::from_repr(c::FieldBytes::clone_from_slice(&s)));
        let (Some(rs), Some(ss)) = (rs, ss) else { return false };
        let e = (c::ProjectivePoint::generator() * ss - pk.to_projective() * rs).to_affine();
        let Ok(ep) = coords(e.to_encoded_point(false).as_bytes(), size) else { return false };
        let h = schnorr_hash(hash, &ep.x, digest, size);
        BigUint::from_bytes_be(&h) == r_int
    }, dom => {
        // E = [s]G + [n - r]Q.
        let Some(neg_r) = dom.sub_n(&[0], &r) else { return false };
        let q = (&sec1[1..1 + size], &sec1[1 + size..]);
        let (Ok(sg), Ok(rq)) = (dom.mul(&s, None), dom.mul(&neg_r, Some(q))) else {
            return false;
        };
        let Ok((ex, _)) = dom.add((&sg.0, &sg.1), (&rq.0, &rq.1)) else { return false };
        BigUint::from_bytes_be(&schnorr_hash(hash, &ex, digest, size)) == r_int
    })
}

/// A digest shorter than the curve, left-padded with zeros: the same integer, as
/// ECDSA reads it, in a length the signing code accepts (it refuses short prehashes).
fn prehash(curve: Curve, digest: &[u8]) -> Vec<u8> {
    if digest.len() >= curve.size() {
        digest.to_vec()
    } else {
        left_pad(digest, curve.size())
    }
}

/// Check an ECDSA signature (r, s) over `digest` with public point `q`.
pub fn verify_ecdsa(curve: Curve, q: &Point, digest: &[u8], r: &[u8], s: &[u8]) -> bool {
    use ecdsa::signature::hazmat::PrehashVerifier;
    let Ok(sec1) = public_point(curve, q) else {
        return false;
    };
    let n = curve.size();
    let (Some(r), Some(s)) = (fit(r, n), fit(s, n)) else {
        return false;
    };
    if digest.is_empty() {
        return false;
    }
    any_curve!(curve, c => {
        let digest = &prehash(curve, digest);
        let Ok(vk) = c::ecdsa::VerifyingKey::from_sec1_bytes(&sec1) else { return false };
        let Ok(sig) = c::ecdsa::Signature::from_scalars(
            c::FieldBytes::clone_from_slice(&r),
            c::FieldBytes::clone_from_slice(&s),
        ) else {
            return false;
        };
        vk.verify_prehash(digest, &sig).is_ok()
    }, dom => crate::ecc_generic::ecdsa_verify(dom, q, digest, &r, &s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drbg::{KdfaRng, SystemRng};
    use crate::hash::{digest, HashAlg};
    use elliptic_curve::bigint::Encoding;

    fn hex(s: &str) -> Vec<u8> {
        ::hex::decode(s).unwrap()
    }

    fn gen(curve: Curve, seed: &[u8]) -> EccKey {
        EccKey::generate(
            curve,
            &mut KdfaRng::new(HashAlg::Sha256, seed, b"ECC", b"t"),
        )
    }

    #[test]
    fn keys_signatures_and_agreement_on_every_curve() {
        for curve in Curve::ALL {
            let a = gen(curve, b"a");
            assert_eq!(a.public, gen(curve, b"a").public, "deterministic");
            assert_eq!(*a.d, *gen(curve, b"a").d);
            assert_eq!(a.public.x.len(), curve.size());
            assert_eq!(a.d.len(), curve.size());
            assert!(is_on_curve(curve, &a.public));
            let b = gen(curve, b"b");
            assert_ne!(a.public, b.public, "another seed, another key");
            let ab = a.ecdh(&b.public).unwrap();
            assert_eq!(ab, b.ecdh(&a.public).unwrap(), "ECDH agrees");
            assert!(is_on_curve(curve, &ab));
            let (qe, z) = ecdh_keygen(curve, &b.public, &mut SystemRng).unwrap();
            assert_eq!(b.ecdh(&qe).unwrap(), z);
            for hash in HashAlg::ALL {
                let d = digest(hash, &[b"msg"]);
                let (r, s) = a.sign_ecdsa(&d).unwrap();
                assert_eq!((r.len(), s.len()), (curve.size(), curve.size()));
                assert!(
                    verify_ecdsa(curve, &a.public, &d, &r, &s),
                    "{curve:?} {hash:?}"
                );
                assert!(!verify_ecdsa(curve, &b.public, &d, &r, &s));
                assert!(!verify_ecdsa(
                    curve,
                    &a.public,
                    &digest(hash, &[b"x"]),
                    &r,
                    &s
                ));
                let (r, s) = a.sign_schnorr(hash, &d, &mut SystemRng).unwrap();
                assert_eq!((r.len(), s.len()), (curve.size(), curve.size()));
                assert!(
                    verify_schnorr(curve, &a.public, hash, &d, &r, &s),
                    "{curve:?} {hash:?}"
                );
                assert!(!verify_schnorr(curve, &b.public, hash, &d, &r, &s));
                assert!(!verify_schnorr(
                    curve,
                    &a.public,
                    hash,
                    &digest(hash, &[b"x"]),
                    &r,
                    &s
                ));
                let mut bad = s.clone();
                bad[curve.size() - 1] ^= 1;
                assert!(!verify_schnorr(curve, &a.public, hash, &d, &r, &bad));
                assert!(!verify_schnorr(curve, &a.public, hash, &d, &[], &s));
            }
            let mut bad = a.public.clone();
            bad.y[0] ^= 1;
            assert!(!is_on_curve(curve, &bad));
            assert!(a.ecdh(&bad).is_err());
            assert!(ecdh_keygen(curve, &bad, &mut SystemRng).is_err());
            assert!(!is_on_curve(curve, &Point::new(&[], &[])));
            assert!(!is_on_curve(curve, &Point::new(&[1; 70], &[1; 70])));
            assert_eq!(EccKey::from_scalar(curve, &a.d).unwrap().public, a.public);
            let mut padded = vec![0u8, 0];
            padded.extend_from_slice(&a.d);
            assert_eq!(
                EccKey::from_scalar(curve, &padded).unwrap().public,
                a.public
            );
            assert!(EccKey::from_scalar(curve, &[0]).is_err());
            assert!(EccKey::from_scalar(curve, &vec![0xff; curve.size()]).is_err());
            assert!(EccKey::from_scalar(curve, &vec![1; curve.size() + 1]).is_err());
            assert_eq!(Curve::from_tpm(curve.to_tpm()), Some(curve));
            // Short coordinates are the same point.
            let short = Point::new(&a.public.x[1..], &a.public.y);
            if a.public.x[0] == 0 {
                assert!(is_on_curve(curve, &short));
            }
        }
        assert_eq!(Curve::from_tpm(0x0006), None);
    }

    /// RFC 6979, A.2.5: P-256, SHA-256, message "sample" (deterministic ECDSA).
    #[test]
    fn rfc6979_p256_known_answer() {
        let key = EccKey::from_scalar(
            Curve::P256,
            &hex("c9afa9d845ba75166b5c215767b1d6934e50c3db36e89b127b8a622b120f6721"),
        )
        .unwrap();
        assert_eq!(
            key.public,
            Point::new(
                &hex("60fed4ba255a9d31c961eb74c6356d68c049b8923b61fa6ce669622e60f29fb6"),
                &hex("7903fe1008b8bc99a41ae9e95628bc64f2f1b20c2d7e9f5177a3c294d4462299"),
            )
        );
        let d = digest(HashAlg::Sha256, &[b"sample"]);
        let r = hex("efd48b2aacb6a8fd1140dd9cd45e81d69d2c877b56aaf991c34d0ea84eaf3716");
        let s = hex("f7cb1c942d657c41d436c7a1b6e29f65f3e900dbb9aff4064dc4ab2f843acda8");
        assert_eq!(key.sign_ecdsa(&d).unwrap(), (r.clone(), s.clone()));
        assert!(verify_ecdsa(Curve::P256, &key.public, &d, &r, &s));
        assert!(!verify_ecdsa(Curve::P256, &key.public, &d, &s, &r));
    }

    #[test]
    fn schnorr_matches_its_definition() {
        // Recompute r from k by hand: with a replayed k, R = [k]G and
        // r = H(R.x || digest).
        let curve = Curve::P256;
        let key = gen(curve, b"schnorr");
        let k = hex("a6e3c57dd01abe90086538398355dd4c3b17aa873382b0f24d6129493d8aad60");
        let d = digest(HashAlg::Sha256, &[b"sample"]);
        let (r, s) = key
            .sign_schnorr(
                HashAlg::Sha256,
                &d,
                &mut crate::rsa::tests::Replay(k.clone(), 0),
            )
            .unwrap();
        let big_r = EccKey::from_scalar(curve, &k).unwrap().public;
        assert_eq!(r, digest(HashAlg::Sha256, &[&big_r.x, &d]));
        // s = k + r·d mod n, checked with big integers.
        let n = curve.order();
        let expect = (BigUint::from_bytes_be(&k)
            + BigUint::from_bytes_be(&r) * BigUint::from_bytes_be(&key.d))
            % &n;
        assert_eq!(BigUint::from_bytes_be(&s), expect);
        assert!(verify_schnorr(
            curve,
            &key.public,
            HashAlg::Sha256,
            &d,
            &r,
            &s
        ));
        // SHA-512 on P-256: the hash is cut to 32 octets.
        let d = digest(HashAlg::Sha512, &[b"sample"]);
        let (r, s) = key
            .sign_schnorr(
                HashAlg::Sha512,
                &d,
                &mut crate::rsa::tests::Replay(k.clone(), 0),
            )
            .unwrap();
        assert_eq!(r, digest(HashAlg::Sha512, &[&big_r.x, &d])[..32]);
        assert!(verify_schnorr(
            curve,
            &key.public,
            HashAlg::Sha512,
            &d,
            &r,
            &s
        ));
    }

    #[test]
    fn curve_parameters_match_the_curve_crates() {
        for curve in [Curve::P256, Curve::P384, Curve::P521] {
            let p = curve.params();
            let n = curve.size();
            for v in [&p.p, &p.a, &p.b, &p.gx, &p.gy, &p.n] {
                assert_eq!(v.len(), n, "{curve:?}");
            }
            assert_eq!(p.h, [1]);
            // The generator of the curve crate.
            let g = any_curve!(curve, c => {
                c::AffinePoint::GENERATOR.to_encoded_point(false).as_bytes().to_vec()
            }, _d => Vec::new());
            assert_eq!(g[1..1 + n], p.gx[..]);
            assert_eq!(g[1 + n..], p.gy[..]);
            // The order of the curve crate.
            let order: Vec<u8> = match curve {
                Curve::P256 => <p256::NistP256 as elliptic_curve::Curve>::ORDER
                    .to_be_bytes()
                    .to_vec(),
                Curve::P384 => <p384::NistP384 as elliptic_curve::Curve>::ORDER
                    .to_be_bytes()
                    .to_vec(),
                _ => <p521::NistP521 as elliptic_curve::Curve>::ORDER
                    .to_be_bytes()
                    .to_vec(),
            };
            assert_eq!(order[order.len() - n..], p.n[..]);
            // G satisfies y^2 = x^3 + ax + b over p, so p, a and b are right too.
            let big = |v: &[u8]| BigUint::from_bytes_be(v);
            let (pp, x, y) = (big(&p.p), big(&p.gx), big(&p.gy));
            let lhs = (&y * &y) % &pp;
            let rhs = (&x * &x * &x + big(&p.a) * &x + big(&p.b)) % &pp;
            assert_eq!(lhs, rhs, "{curve:?}");
            assert_eq!(big(&p.a) + BigUint::from(3u32), pp);
            assert!(is_on_curve(curve, &Point::new(&p.gx, &p.gy)));
        }
        assert_eq!(Curve::P521.bits(), 521);
    }
}
