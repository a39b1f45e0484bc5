//! Constant-time arithmetic on a short Weierstrass curve y² = x³ + ax + b of
//! prime order over a prime field, for the curves no maintained crate
//! covers with the operations the TPM needs (P-192, P-224, BN P-256,
//! BN P-638, SM2 P-256). Field and scalar elements are crypto-bigint
//! Montgomery residues of 640 bits (enough for BN P-638); points are kept in
//! homogeneous projective coordinates and added with the complete formulas
//! of Renes, Costello and Batina (2016, algorithm 1), valid for every pair
//! of points of an odd prime order curve, so no input takes another branch.
//! Scalar multiplication is a double-and-add-always ladder over every bit
//! of the order's width with constant-time selection.
//!
//! Values cross the boundary as big-endian octet strings at the curve's
//! size, as in [`crate::ecc`].

use crypto_bigint::modular::runtime_mod::{DynResidue, DynResidueParams};
use crypto_bigint::subtle::{Choice, ConditionallySelectable, ConstantTimeEq};
use crypto_bigint::{Encoding, U640};

use crate::error::{Error, Result};

const LIMBS: usize = U640::LIMBS;
/// Octets of the integers used here.
const WIDTH: usize = 80;

type Fe = DynResidue<LIMBS>;

/// An integer of at most [`WIDTH`] octets (None if longer, after leading zeros).
fn uint(v: &[u8]) -> Option<U640> {
    let first = v.iter().position(|&b| b != 0).unwrap_or(v.len());
    let v = &v[first..];
    if v.len() > WIDTH {
        return None;
    }
    let mut buf = [0u8; WIDTH];
    buf[WIDTH - v.len()..].copy_from_slice(v);
    Some(U640::from_be_slice(&buf))
}

/// The last `size` octets of `v`.
fn octets(v: &U640, size: usize) -> Vec<u8> {
    let b = v.to_be_bytes();
    b[WIDTH - size..].to_vec()
}

/// A curve's domain: its field, group order and coefficients.
#[derive(Clone, Copy)]
pub struct Domain {
    p: DynResidueParams<LIMBS>,
    n: DynResidueParams<LIMBS>,
    p_int: U640,
    n_int: U640,
    a: Fe,
    b: Fe,
    b3: Fe,
    g: Projective,
    /// Octets of a coordinate or scalar.
    pub size: usize,
    /// Bits of the order n.
    pub n_bits: usize,
}

/// A point in homogeneous projective coordinates; Z = 0 is the identity.
#[derive(Clone, Copy)]
struct Projective {
    x: Fe,
    y: Fe,
    z: Fe,
}

impl ConditionallySelectable for Projective {
    fn conditional_select(a: &Self, b: &Self, choice: Choice) -> Self {
        Projective {
            x: Fe::conditional_select(&a.x, &b.x, choice),
            y: Fe::conditional_select(&a.y, &b.y, choice),
            z: Fe::conditional_select(&a.z, &b.z, choice),
        }
    }
}

impl Domain {
    /// The domain of (p, a, b, Gx, Gy, n), big-endian; None if a value does
    /// not fit, a modulus is even, or G is not on the curve.
    pub fn new(
        p: &[u8],
        a: &[u8],
        b: &[u8],
        gx: &[u8],
        gy: &[u8],
        n: &[u8],
        size: usize,
    ) -> Option<Domain> {
        let (p_int, n_int) = (uint(p)?, uint(n)?);
        if !bool::from(p_int.bit(0)) || !bool::from(n_int.bit(0)) {
            return None;
        }
        let pp = DynResidueParams::new(&p_int);
        let np = DynResidueParams::new(&n_int);
        let fe = |v: &[u8]| uint(v).map(|u| Fe::new(&u, pp));
        let b = fe(b)?;
        let d = Domain {
            p: pp,
            n: np,
            p_int,
            n_int,
            a: fe(a)?,
            b,
            b3: b + b + b,
            g: Projective {
                x: fe(gx)?,
                y: fe(gy)?,
                z: Fe::one(pp),
            },
            size,
            n_bits: n_int.bits(),
        };
        d.on_curve(&d.g.x, &d.g.y).then_some(d)
    }

    fn on_curve(&self, x: &Fe, y: &Fe) -> bool {
        let rhs = x.square() * x + self.a * x + self.b;
        bool::from(y.square().ct_eq(&rhs))
    }

    /// A field element from coordinate octets: None if not below p.
    fn coordinate(&self, v: &[u8]) -> Option<Fe> {
        let u = uint(v)?;
        bool::from(crypto_bigint::subtle::ConstantTimeLess::ct_lt(
            &u,
            &self.p_int,
        ))
        .then(|| Fe::new(&u, self.p))
    }

    /// The point (x, y) if both coordinates are below p and it is on the curve.
    fn point(&self, x: &[u8], y: &[u8]) -> Result<Projective> {
        let (Some(x), Some(y)) = (self.coordinate(x), self.coordinate(y)) else {
            return Err(Error::InvalidKey("coordinate out of range"));
        };
        if !self.on_curve(&x, &y) {
            return Err(Error::InvalidKey("point not on the curve"));
        }
        Ok(Projective {
            x,
            y,
            z: Fe::one(self.p),
        })
    }

    /// Whether (x, y) is a point of the curve.
    pub fn is_on_curve(&self, x: &[u8], y: &[u8]) -> bool {
        self.point(x, y).is_ok()
    }

    fn identity(&self) -> Projective {
        Projective {
            x: Fe::zero(self.p),
            y: Fe::one(self.p),
            z: Fe::zero(self.p),
        }
    }

    /// P + Q, complete (RCB 2016, algorithm 1, with b3 = 3b).
    fn add_proj(&self, p: &Projective, q: &Projective) -> Projective {
        let (x1, y1, z1) = (p.x, p.y, p.z);
        let (x2, y2, z2) = (q.x, q.y, q.z);
        let (a, b3) = (self.a, self.b3);
        let mut t0 = x1 * x2;
        let mut t1 = y1 * y2;
        let mut t2 = z1 * z2;
        let mut t3 = x1 + y1;
        let mut t4 = x2 + y2;
        t3 *= t4;
        t4 = t0 + t1;
        t3 -= t4;
        t4 = x1 + z1;
        let mut t5 = x2 + z2;
        t4 *= t5;
        t5 = t0 + t2;
        t4 -= t5;
        t5 = y1 + z1;
        let mut x3 = y2 + z2;
        t5 *= x3;
        x3 = t1 + t2;
        t5 -= x3;
        let mut z3 = a * t4;
        x3 = b3 * t2;
        z3 = x3 + z3;
        x3 = t1 - z3;
        z3 = t1 + z3;
        let mut y3 = x3 * z3;
        t1 = t0 + t0;
        t1 += t0;
        t2 = a * t2;
        t4 = b3 * t4;
        t1 += t2;
        t2 = t0 - t2;
        t2 = a * t2;
        t4 += t2;
        t0 = t1 * t4;
        y3 += t0;
        t0 = t5 * t4;
        x3 = t3 * x3;
        x3 -= t0;
        t0 = t3 * t1;
        z3 = t5 * z3;
        z3 += t0;
        Projective {
            x: x3,
            y: y3,
            z: z3,
        }
    }

    /// [k]P by double-and-add-always over the order's bit width.
    fn mul_proj(&self, k: &U640, p: &Projective) -> Projective {
        let mut acc = self.identity();
        for i in (0..self.n_bits).rev() {
            acc = self.add_proj(&acc, &acc);
            let sum = self.add_proj(&acc, p);
            acc = Projective::conditional_select(&acc, &sum, Choice::from(k.bit(i)));
        }
        acc
    }

    /// Affine coordinates at the curve's size; an error at infinity.
    fn affine(&self, p: &Projective) -> Result<(Vec<u8>, Vec<u8>)> {
        let (zinv, ok) = p.z.invert();
        if !bool::from(Choice::from(ok)) {
            return Err(Error::Failed("the result is the point at infinity"));
        }
        Ok((
            octets(&(p.x * zinv).retrieve(), self.size),
            octets(&(p.y * zinv).retrieve(), self.size),
        ))
    }

    /// Whether 1 ≤ k < n.
    pub fn is_scalar(&self, k: &[u8]) -> bool {
        uint(k).is_some_and(|k| {
            let below = crypto_bigint::subtle::ConstantTimeLess::ct_lt(&k, &self.n_int);
            bool::from(below & !k.ct_eq(&U640::ZERO))
        })
    }

    /// [k]P (or [k]G when `p` is None) for 1 ≤ k < n and P on the curve.
    pub fn mul(&self, k: &[u8], p: Option<(&[u8], &[u8])>) -> Result<(Vec<u8>, Vec<u8>)> {
        if !self.is_scalar(k) {
            return Err(Error::InvalidInput("scalar out of range"));
        }
        let k = uint(k).ok_or(Error::InvalidInput("scalar"))?;
        let base = match p {
            Some((x, y)) => self.point(x, y)?,
            None => self.g,
        };
        self.affine(&self.mul_proj(&k, &base))
    }

    /// P + Q for two points of the curve.
    pub fn add(&self, p: (&[u8], &[u8]), q: (&[u8], &[u8])) -> Result<(Vec<u8>, Vec<u8>)> {
        let (p, q) = (self.point(p.0, p.1)?, self.point(q.0, q.1)?);
        self.affine(&self.add_proj(&p, &q))
    }

    /// A y with (x, y) on the curve and parity `odd`, for p ≡ 3 (mod 4)
    /// (y = rhs^((p+1)/4)); None when there is none or p ≡ 1 (mod 4).
    pub fn decompress(&self, x: &[u8], odd: bool) -> Option<Vec<u8>> {
        if !bool::from(self.p_int.bit(1)) {
            return None;
        }
        let xf = self.coordinate(x)?;
        let rhs = xf.square() * xf + self.a * xf + self.b;
        let e = self.p_int.wrapping_add(&U640::ONE).shr_vartime(2);
        let y = rhs.pow(&e);
        if !bool::from(y.square().ct_eq(&rhs)) {
            return None;
        }
        let y = y.retrieve();
        let y = if bool::from(y.bit(0)) == odd {
            y
        } else {
            self.p_int.wrapping_sub(&y)
        };
        Some(octets(&y, self.size))
    }

    /// `v` mod n at the curve's size (v of any length up to 80 octets).
    pub fn reduce_n(&self, v: &[u8]) -> Option<Vec<u8>> {
        Some(octets(&Fe::new(&uint(v)?, self.n).retrieve(), self.size))
    }

    /// `v` mod p at the curve's size.
    pub fn reduce_p(&self, v: &[u8]) -> Option<Vec<u8>> {
        Some(octets(&Fe::new(&uint(v)?, self.p).retrieve(), self.size))
    }

    /// Scalar arithmetic mod n: a + b·c.
    pub fn mul_add_n(&self, a: &[u8], b: &[u8], c: &[u8]) -> Option<Vec<u8>> {
        let s = |v: &[u8]| uint(v).map(|u| Fe::new(&u, self.n));
        let r = s(a)? + s(b)? * s(c)?;
        Some(octets(&r.retrieve(), self.size))
    }

    /// Scalar arithmetic mod n: a · b⁻¹ (None if b ≡ 0).
    pub fn div_n(&self, a: &[u8], b: &[u8]) -> Option<Vec<u8>> {
        let s = |v: &[u8]| uint(v).map(|u| Fe::new(&u, self.n));
        let a = s(a)?;
        let (inv, ok) = s(b)?.invert();
        bool::from(Choice::from(ok)).then(|| octets(&(a * inv).retrieve(), self.size))
    }

    /// Scalar arithmetic mod n: a - b.
    pub fn sub_n(&self, a: &[u8], b: &[u8]) -> Option<Vec<u8>> {
        let s = |v: &[u8]| uint(v).map(|u| Fe::new(&u, self.n));
        Some(octets(&(s(a)? - s(b)?).retrieve(), self.size))
    }

    /// The order n at the curve's size.
    pub fn order(&self) -> Vec<u8> {
        octets(&self.n_int, self.size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ecc::Curve;
    use crate::ecc_math;

    fn p256() -> Domain {
        let p = Curve::P256.params();
        Domain::new(&p.p, &p.a, &p.b, &p.gx, &p.gy, &p.n, 32).unwrap()
    }

    /// The generic arithmetic instantiated on P-256 answers what the p256
    /// crate answers.
    #[test]
    fn agrees_with_the_p256_crate() {
        let d = p256();
        for k in [&[1u8][..], &[2], &[0x7f; 32], &[0x35; 17]] {
            let (x, y) = d.mul(k, None).unwrap();
            let q = ecc_math::mul(Curve::P256, k, None).unwrap();
            assert_eq!((x.clone(), y.clone()), (q.x.clone(), q.y.clone()));
            let k2 = [0x51u8; 31];
            let r = d.mul(&k2, Some((&x, &y))).unwrap();
            let r2 = ecc_math::mul(Curve::P256, &k2, Some(&q)).unwrap();
            assert_eq!(r, (r2.x, r2.y));
            let g = Curve::P256.params();
            let s = d.add((&x, &y), (&g.gx, &g.gy)).unwrap();
            let s2 = ecc_math::add(Curve::P256, &q, &crate::ecc::Point::new(&g.gx, &g.gy)).unwrap();
            assert_eq!(s, (s2.x, s2.y));
            // Doubling goes through the same complete formula.
            let dbl = d.add((&x, &y), (&x, &y)).unwrap();
            let dbl2 = ecc_math::add(Curve::P256, &q, &q).unwrap();
            assert_eq!(dbl, (dbl2.x, dbl2.y));
        }
        // [n-1]G + G is the identity.
        let n1 = d.sub_n(&d.order(), &[1]).unwrap();
        assert_eq!(n1, d.sub_n(&[0], &[1]).unwrap());
        let (x, y) = d.mul(&n1, None).unwrap();
        let g = Curve::P256.params();
        assert!(d.add((&x, &y), (&g.gx, &g.gy)).is_err());
        assert!(d.mul(&[0], None).is_err());
        assert!(d.mul(&d.order(), None).is_err());
        assert!(!d.is_on_curve(&g.gx, &g.gx));
        assert!(!d.is_on_curve(&g.p, &g.gy), "x = p is not a coordinate");
        // Scalar helpers.
        assert_eq!(d.mul_add_n(&[2], &[3], &[4]).unwrap()[31], 14);
        let q = d.div_n(&[14], &[7]).unwrap();
        assert_eq!(q[31], 2);
        assert!(d.div_n(&[1], &[0]).is_none());
        let y = d.decompress(&g.gx, g.gy[31] & 1 == 1).unwrap();
        assert_eq!(y, g.gy);
    }
}
