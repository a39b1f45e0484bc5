//! Point and scalar arithmetic on the implemented curves for the split
//! operations (TPM2_Commit, TPM2_EC_Ephemeral, TPM2_ZGen_2Phase, ECDAA): [k]P
//! for any valid point P, point addition, and reduction of an integer modulo
//! the field prime or the group order. Scalars and coordinates are big-endian
//! octet strings as in [`crate::ecc`].

use elliptic_curve::ff::PrimeField;
use elliptic_curve::group::Group;
use elliptic_curve::sec1::{FromEncodedPoint, ToEncodedPoint};
use rand_core::CryptoRngCore;
use rsa::BigUint;
use zeroize::Zeroizing;

use crate::ecc::{any_curve, coords, fit, left_pad, public_point, Curve, Point};
use crate::error::{Error, Result};

/// `v` as a scalar of the curve if 0 ≤ v < n (None otherwise).
macro_rules! scalar {
    ($c:ident, $curve:expr, $v:expr) => {
        fit($v, $curve.size()).and_then(|b| {
            Option::<$c::Scalar>::from($c::Scalar::from_repr($c::FieldBytes::clone_from_slice(&b)))
        })
    };
}
pub(crate) use scalar;

/// An affine point of the curve crate from a validated [`Point`].
macro_rules! affine {
    ($c:ident, $curve:expr, $p:expr) => {{
        let sec1 = public_point($curve, $p)?;
        let ep = $c::EncodedPoint::from_bytes(&sec1).map_err(|_| Error::InvalidKey("ECC point"))?;
        Option::<$c::AffinePoint>::from($c::AffinePoint::from_encoded_point(&ep))
            .ok_or(Error::InvalidKey("point not on the curve"))?
    }};
}

/// Whether 1 ≤ k < n: a valid private scalar.
pub fn is_private_scalar(curve: Curve, k: &[u8]) -> bool {
    any_curve!(curve, c => {
        scalar!(c, curve, k).is_some_and(|s| !bool::from(elliptic_curve::Field::is_zero(&s)))
    }, d => d.is_scalar(k))
}

/// [k]P for a point P of the curve, or [k]G when `p` is None. `k` must be a
/// valid private scalar (1 ≤ k < n; [`Error::InvalidInput`] otherwise) and P
/// on the curve ([`Error::InvalidKey`]); a result at infinity is
/// [`Error::Failed`].
pub fn mul(curve: Curve, k: &[u8], p: Option<&Point>) -> Result<Point> {
    if !is_private_scalar(curve, k) {
        return Err(Error::InvalidInput("scalar out of range"));
    }
    any_curve!(curve, c => {
        let k = scalar!(c, curve, k).ok_or(Error::InvalidInput("scalar out of range"))?;
        let base = match p {
            Some(p) => c::ProjectivePoint::from(affine!(c, curve, p)),
            None => c::ProjectivePoint::generator(),
        };
        let r = (base * k).to_affine();
        coords(r.to_encoded_point(false).as_bytes(), curve.size())
    }, d => {
        let (x, y) = d.mul(k, p.map(|p| (&p.x[..], &p.y[..])))?;
        Ok(Point { x, y })
    })
}

/// a + b·c mod n, at the curve's size; None when an operand is not below n.
/// The one form of scalar arithmetic the signing and agreement schemes need
/// (Schnorr, ECDAA, EC-MQV, the SM2 exchange), in constant-time field
/// arithmetic whatever the curve.
pub fn mul_add_n(curve: Curve, a: &[u8], b: &[u8], c: &[u8]) -> Option<Vec<u8>> {
    any_curve!(curve, cc => {
        let s = |v: &[u8]| scalar!(cc, curve, v);
        Some((s(a)? + s(b)? * s(c)?).to_repr().to_vec())
    }, d => d.mul_add_n(a, b, c))
}

/// A private scalar (1 ≤ k < n) drawn from `rng` (what
/// [`EccKey::generate`](crate::ecc::EccKey::generate) draws a key's from).
pub fn random_scalar(curve: Curve, rng: &mut impl CryptoRngCore) -> Zeroizing<Vec<u8>> {
    any_curve!(curve, c => {
        Zeroizing::new(c::NonZeroScalar::random(&mut *rng).to_repr().to_vec())
    }, d => crate::ecc_generic::random_scalar(d, rng))
}

/// The shape EC-MQV and the SM2 key exchange share: with our private
/// scalars (a, b) and the associate value `ga` of our ephemeral point,
/// s = a + ga·b mod n, and with the other party's points (C, D) and the
/// associate value `gd`, Z = [s](C + [gd]D). The scalars must be private
/// scalars, the points valid; Z at infinity is [`Error::Failed`].
pub(crate) fn associate_agreement(
    curve: Curve,
    (a, b, ga): (&[u8], &[u8], &[u8]),
    (c, d, gd): (&Point, &Point, &[u8]),
) -> Result<Point> {
    if !is_private_scalar(curve, a) || !is_private_scalar(curve, b) {
        return Err(Error::InvalidInput("scalar out of range"));
    }
    public_point(curve, c)?;
    public_point(curve, d)?;
    let s = Zeroizing::new(mul_add_n(curve, a, ga, b).ok_or(Error::Failed("scalar"))?);
    let sum = add(curve, c, &mul(curve, gd, Some(d))?)?;
    mul(curve, &s, Some(&sum))
}

/// A + B for two points of the curve; a sum at infinity is [`Error::Failed`].
pub fn add(curve: Curve, a: &Point, b: &Point) -> Result<Point> {
    any_curve!(curve, c => {
        let a = c::ProjectivePoint::from(affine!(c, curve, a));
        let b = c::ProjectivePoint::from(affine!(c, curve, b));
        coords((a + b).to_affine().to_encoded_point(false).as_bytes(), curve.size())
    }, d => {
        let (x, y) = d.add((&a.x, &a.y), (&b.x, &b.y))?;
        Ok(Point { x, y })
    })
}

/// The point of the curve with x coordinate `x` and a y of parity `odd`
/// (SEC1 point decompression); None if no point has that x, and on P-224
/// (its p ≡ 1 mod 4 needs a square root this crate does not have).
pub fn decompress(curve: Curve, x: &[u8], odd: bool) -> Option<Point> {
    let mut sec1 = vec![if odd { 3u8 } else { 2 }];
    let x = fit(x, curve.size())?;
    sec1.extend_from_slice(&x);
    any_curve!(curve, c => {
        let ep = c::EncodedPoint::from_bytes(&sec1).ok()?;
        let p = Option::<c::AffinePoint>::from(c::AffinePoint::from_encoded_point(&ep))?;
        coords(p.to_encoded_point(false).as_bytes(), curve.size()).ok()
    }, d => d.decompress(&x, odd).map(|y| Point::new(&x, &y)))
}

/// `v` mod p (the field prime), at the curve's size.
pub fn mod_p(curve: Curve, v: &[u8]) -> Vec<u8> {
    let p = BigUint::from_bytes_be(&curve.params().p);
    left_pad(&(BigUint::from_bytes_be(v) % p).to_bytes_be(), curve.size())
}

/// `v` mod n (the group order), at the curve's size.
pub fn mod_n(curve: Curve, v: &[u8]) -> Vec<u8> {
    left_pad(
        &(BigUint::from_bytes_be(v) % curve.order()).to_bytes_be(),
        curve.size(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drbg::KdfaRng;
    use crate::ecc::EccKey;
    use crate::hash::HashAlg;

    #[test]
    fn multiplication_agrees_with_key_generation_and_addition() {
        for curve in Curve::ALL {
            let mut rng = KdfaRng::new(HashAlg::Sha256, b"math", b"t", b"");
            let a = EccKey::generate(curve, &mut rng);
            let b = EccKey::generate(curve, &mut rng);
            // [a]G is a's public point; [a]([b]G) = [b]([a]G).
            assert_eq!(mul(curve, &a.d, None).unwrap(), a.public);
            assert_eq!(
                mul(curve, &a.d, Some(&b.public)).unwrap(),
                mul(curve, &b.d, Some(&a.public)).unwrap()
            );
            assert_eq!(
                mul(curve, &a.d, Some(&b.public)).unwrap(),
                a.ecdh(&b.public).unwrap()
            );
            // [2]G = G + G, and [a]G + [b]G = [a + b]G.
            let g = Point::new(&curve.params().gx, &curve.params().gy);
            assert_eq!(add(curve, &g, &g).unwrap(), mul(curve, &[2], None).unwrap());
            let sum = BigUint::from_bytes_be(&a.d) + BigUint::from_bytes_be(&b.d);
            let sum = mod_n(curve, &sum.to_bytes_be());
            assert_eq!(
                add(curve, &a.public, &b.public).unwrap(),
                mul(curve, &sum, None).unwrap()
            );
            // P + (-P) is the point at infinity.
            let n_minus_1 = mod_n(curve, &(curve.order() - BigUint::from(1u32)).to_bytes_be());
            let neg_g = mul(curve, &n_minus_1, None).unwrap();
            assert!(add(curve, &g, &neg_g).is_err());
            // Scalars outside [1, n) and points off the curve are refused.
            assert!(mul(curve, &[0], None).is_err());
            assert!(mul(curve, &curve.params().n, None).is_err());
            assert!(mul(curve, &[1; 81], None).is_err());
            let mut off = a.public.clone();
            off.y[3] ^= 0x10;
            assert!(mul(curve, &[5], Some(&off)).is_err());
            assert!(add(curve, &off, &g).is_err());
            assert!(is_private_scalar(curve, &a.d));
            assert!(!is_private_scalar(curve, &[]));
            // Decompression finds the public point again from x and y's parity.
            let odd = a.public.y.last().is_some_and(|b| b & 1 == 1);
            if curve == Curve::P224 {
                assert_eq!(decompress(curve, &a.public.x, odd), None);
                continue;
            }
            assert_eq!(decompress(curve, &a.public.x, odd).unwrap(), a.public);
            assert_ne!(decompress(curve, &a.public.x, !odd).unwrap(), a.public);
        }
    }

    #[test]
    fn reductions() {
        let curve = Curve::P256;
        let p = curve.params().p;
        assert_eq!(mod_p(curve, &p), vec![0; 32]);
        assert_eq!(mod_p(curve, &[7]), left_pad(&[7], 32));
        // 2^256 mod p = 2^224 - 2^192 - 2^96 + 1 for P-256.
        let mut two256 = vec![1u8];
        two256.extend_from_slice(&[0; 32]);
        let expect =
            ::hex::decode("00000000fffffffeffffffffffffffffffffffff000000000000000000000001")
                .unwrap();
        assert_eq!(mod_p(curve, &two256), expect);
        assert_eq!(mod_n(curve, &curve.params().n), vec![0; 32]);
        // About half of all x coordinates have a point.
        let none: Vec<u8> = (0u8..=255)
            .filter(|&x| decompress(curve, &[x], false).is_none())
            .collect();
        assert!(
            !none.is_empty() && none.len() < 256,
            "about half the x have no point"
        );
    }
}
