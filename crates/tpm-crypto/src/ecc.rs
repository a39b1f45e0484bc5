//! ECC on the NIST curves the TPM names (P-256, P-384, P-521): key generation
//! (random or deterministic), point validation, ECDSA over a digest, and ECDH
//! returning the shared point (TPM2_ECDH_ZGen answers the point, not just x).

use elliptic_curve::sec1::{FromEncodedPoint, ToEncodedPoint};
use rand_core::CryptoRngCore;
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// TPM_ECC_CURVE values of the curves implemented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Curve {
    /// TPM_ECC_NIST_P256 (0x0003).
    P256,
    /// TPM_ECC_NIST_P384 (0x0004).
    P384,
    /// TPM_ECC_NIST_P521 (0x0005).
    P521,
}

impl Curve {
    /// From a TPM_ECC_CURVE value.
    pub fn from_tpm(id: u16) -> Option<Curve> {
        match id {
            0x0003 => Some(Curve::P256),
            0x0004 => Some(Curve::P384),
            0x0005 => Some(Curve::P521),
            _ => None,
        }
    }
    /// The TPM_ECC_CURVE value.
    pub fn to_tpm(self) -> u16 {
        match self {
            Curve::P256 => 0x0003,
            Curve::P384 => 0x0004,
            Curve::P521 => 0x0005,
        }
    }
    /// Octets of a coordinate or scalar.
    pub fn size(self) -> usize {
        match self {
            Curve::P256 => 32,
            Curve::P384 => 48,
            Curve::P521 => 66,
        }
    }
}

/// A point (x, y), coordinates big-endian at the curve's size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Point {
    /// x coordinate.
    pub x: Vec<u8>,
    /// y coordinate.
    pub y: Vec<u8>,
}

/// A private key: the scalar d and the public point.
pub struct EccKey {
    /// The curve.
    pub curve: Curve,
    /// The private scalar (zeroized on drop).
    pub d: Zeroizing<Vec<u8>>,
    /// The public point d·G.
    pub public: Point,
}

macro_rules! per_curve {
    ($curve:expr, $m:ident => $body:expr) => {
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
        }
    };
}

fn left_pad(v: &[u8], len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len.saturating_sub(v.len())];
    out.extend_from_slice(&v[v.len().saturating_sub(len)..]);
    out
}

impl EccKey {
    /// A new key; deterministic for a deterministic `rng`.
    pub fn generate(curve: Curve, rng: &mut impl CryptoRngCore) -> EccKey {
        per_curve!(curve, c => {
            let sk = c::SecretKey::random(rng);
            let ep = sk.public_key().to_encoded_point(false);
            EccKey {
                curve,
                d: Zeroizing::new(sk.to_bytes().to_vec()),
                public: Point {
                    x: ep.x().map(|v| v.to_vec()).unwrap_or_default(),
                    y: ep.y().map(|v| v.to_vec()).unwrap_or_default(),
                },
            }
        })
    }

    /// Rebuild a key from its scalar; the public point is recomputed.
    pub fn from_scalar(curve: Curve, d: &[u8]) -> Result<EccKey> {
        per_curve!(curve, c => {
            let sk = c::SecretKey::from_slice(&left_pad(d, curve.size())).map_err(|_| Error::InvalidKey("ECC scalar"))?;
            let ep = sk.public_key().to_encoded_point(false);
            Ok(EccKey {
                curve,
                d: Zeroizing::new(sk.to_bytes().to_vec()),
                public: Point {
                    x: ep.x().map(|v| v.to_vec()).unwrap_or_default(),
                    y: ep.y().map(|v| v.to_vec()).unwrap_or_default(),
                },
            })
        })
    }

    /// ECDSA signature (r, s) over `digest` (RFC 6979 deterministic nonce).
    pub fn sign_ecdsa(&self, digest: &[u8]) -> Result<(Vec<u8>, Vec<u8>)> {
        use ecdsa::signature::hazmat::PrehashSigner;
        let digest = &prehash(self.curve, digest);
        per_curve!(self.curve, c => {
            let sk = c::ecdsa::SigningKey::from_slice(&self.d).map_err(|_| Error::InvalidKey("ECC scalar"))?;
            let sig: c::ecdsa::Signature = sk.sign_prehash(digest).map_err(|_| Error::Failed("ECDSA signing"))?;
            let (r, s) = sig.split_bytes();
            Ok((r.to_vec(), s.to_vec()))
        })
    }

    /// ECDH: the point d·Q for the peer's public point Q (validated).
    pub fn ecdh(&self, peer: &Point) -> Result<Point> {
        let q = public_point(self.curve, peer)?;
        per_curve!(self.curve, c => {
            let pk = c::PublicKey::from_sec1_bytes(&q).map_err(|_| Error::InvalidKey("ECC point"))?;
            let sk = c::SecretKey::from_slice(&self.d).map_err(|_| Error::InvalidKey("ECC scalar"))?;
            let shared = (pk.to_projective() * *sk.to_nonzero_scalar()).to_affine();
            let ep = shared.to_encoded_point(false);
            Ok(Point {
                x: ep.x().map(|v| v.to_vec()).ok_or(Error::Failed("ECDH gave the point at infinity"))?,
                y: ep.y().map(|v| v.to_vec()).ok_or(Error::Failed("ECDH gave the point at infinity"))?,
            })
        })
    }
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

/// SEC1 uncompressed encoding of `p` after checking it lies on the curve.
fn public_point(curve: Curve, p: &Point) -> Result<Vec<u8>> {
    let n = curve.size();
    if p.x.len() > n || p.y.len() > n {
        return Err(Error::InvalidKey("coordinate too long"));
    }
    let mut sec1 = vec![4u8];
    sec1.extend_from_slice(&left_pad(&p.x, n));
    sec1.extend_from_slice(&left_pad(&p.y, n));
    per_curve!(curve, c => {
        let ep = c::EncodedPoint::from_bytes(&sec1).map_err(|_| Error::InvalidKey("ECC point"))?;
        Option::<c::PublicKey>::from(c::PublicKey::from_encoded_point(&ep)).ok_or(Error::InvalidKey("point not on the curve"))?;
    });
    Ok(sec1)
}

/// Whether `p` is a valid point of `curve` (TPM_RC_ECC_POINT otherwise).
pub fn is_on_curve(curve: Curve, p: &Point) -> bool {
    public_point(curve, p).is_ok()
}

/// Check an ECDSA signature (r, s) over `digest` with public point `q`.
pub fn verify_ecdsa(curve: Curve, q: &Point, digest: &[u8], r: &[u8], s: &[u8]) -> bool {
    use ecdsa::signature::hazmat::PrehashVerifier;
    let Ok(sec1) = public_point(curve, q) else {
        return false;
    };
    let n = curve.size();
    if r.len() > n || s.len() > n {
        return false;
    }
    let digest = &prehash(curve, digest);
    per_curve!(curve, c => {
        let Ok(vk) = c::ecdsa::VerifyingKey::from_sec1_bytes(&sec1) else { return false };
        let Ok(sig) = c::ecdsa::Signature::from_scalars(
            c::FieldBytes::clone_from_slice(&left_pad(r, n)),
            c::FieldBytes::clone_from_slice(&left_pad(s, n)),
        ) else {
            return false;
        };
        vk.verify_prehash(digest, &sig).is_ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::{digest, HashAlg};
    use crate::kdf::KdfaRng;

    #[test]
    fn keys_signatures_and_agreement_on_every_curve() {
        for curve in [Curve::P256, Curve::P384, Curve::P521] {
            let gen = |seed: &[u8]| {
                EccKey::generate(
                    curve,
                    &mut KdfaRng::new(HashAlg::Sha256, seed, b"ECC", b"t"),
                )
            };
            let a = gen(b"a");
            assert_eq!(a.public, gen(b"a").public, "deterministic");
            assert_eq!(a.public.x.len(), curve.size());
            assert!(is_on_curve(curve, &a.public));
            let b = gen(b"b");
            assert_eq!(
                a.ecdh(&b.public).unwrap(),
                b.ecdh(&a.public).unwrap(),
                "ECDH agrees"
            );
            let d = digest(HashAlg::Sha256, &[b"msg"]);
            let (r, s) = a.sign_ecdsa(&d).unwrap();
            assert!(verify_ecdsa(curve, &a.public, &d, &r, &s));
            assert!(!verify_ecdsa(curve, &b.public, &d, &r, &s));
            let mut bad = a.public.clone();
            bad.y[0] ^= 1;
            assert!(!is_on_curve(curve, &bad));
            assert!(a.ecdh(&bad).is_err());
            assert_eq!(EccKey::from_scalar(curve, &a.d).unwrap().public, a.public);
            assert_eq!(Curve::from_tpm(curve.to_tpm()), Some(curve));
        }
    }
}
