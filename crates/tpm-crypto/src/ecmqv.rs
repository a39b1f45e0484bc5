//! EC-MQV key agreement (SP 800-56A, the full unified model with one static
//! and one ephemeral key per party), as TPM2_ZGen_2Phase computes it:
//! implicitsig = de + avf(Qe)·ds mod n and Z = [h·implicitsig](QeB +
//! [avf(QeB)]QsB). The cofactor h is 1 on every implemented curve.

use rsa::BigUint;

use crate::ecc::{fit, Curve, Point};
use crate::ecc_math::{associate_agreement, is_private_scalar, mul};
use crate::error::{Error, Result};

/// The associate value function of SP 800-56A: with f the bit length of n,
/// (x mod 2^⌈f/2⌉) + 2^⌈f/2⌉, at the curve's size.
fn avf(curve: Curve, x: &[u8]) -> Vec<u8> {
    let half = curve.order().bits().div_ceil(2);
    let top = BigUint::from(1u32) << half;
    let v = BigUint::from_bytes_be(x) % &top + &top;
    crate::ecc::left_pad(&v.to_bytes_be(), curve.size())
}

/// Z of EC-MQV for the party with static private key `ds` and ephemeral
/// private key `de`, given the other party's static `qs_b` and ephemeral
/// `qe_b` public points (both validated: [`Error::InvalidKey`]). The result
/// at infinity is [`Error::Failed`].
pub fn ecmqv(curve: Curve, ds: &[u8], de: &[u8], qs_b: &Point, qe_b: &Point) -> Result<Point> {
    if !is_private_scalar(curve, de) {
        return Err(Error::InvalidInput("scalar out of range"));
    }
    let avf_a = avf(curve, &mul(curve, de, None)?.x);
    let avf_b = avf(
        curve,
        &fit(&qe_b.x, curve.size()).ok_or(Error::InvalidKey("coordinate"))?,
    );
    // implicitsig = de + avf(QeA)·ds; Z = [implicitsig](QeB + [avf(QeB)]QsB).
    associate_agreement(curve, (de, ds, &avf_a), (qe_b, qs_b, &avf_b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drbg::KdfaRng;
    use crate::ecc::EccKey;
    use crate::hash::HashAlg;

    #[test]
    fn both_parties_compute_the_same_z() {
        for curve in Curve::ALL {
            let mut rng = KdfaRng::new(HashAlg::Sha256, b"mqv", b"t", b"");
            let (sa, ea, sb, eb) = (
                EccKey::generate(curve, &mut rng),
                EccKey::generate(curve, &mut rng),
                EccKey::generate(curve, &mut rng),
                EccKey::generate(curve, &mut rng),
            );
            let za = ecmqv(curve, &sa.d, &ea.d, &sb.public, &eb.public).unwrap();
            let zb = ecmqv(curve, &sb.d, &eb.d, &sa.public, &ea.public).unwrap();
            assert_eq!(za, zb, "{curve:?}");
            // Not plain ECDH of either pair.
            assert_ne!(za, sa.ecdh(&sb.public).unwrap());
            assert_ne!(za, ea.ecdh(&eb.public).unwrap());
            // Swapping B's static and ephemeral keys changes Z.
            assert_ne!(
                za,
                ecmqv(curve, &sa.d, &ea.d, &eb.public, &sb.public).unwrap()
            );
            let mut off = sb.public.clone();
            off.x[2] ^= 4;
            assert!(ecmqv(curve, &sa.d, &ea.d, &off, &eb.public).is_err());
            assert!(ecmqv(curve, &[0], &ea.d, &sb.public, &eb.public).is_err());
        }
    }

    #[test]
    fn avf_keeps_half_the_bits_and_sets_the_next() {
        // P-256: f = 256, so avf(x) = (x mod 2^128) + 2^128.
        let x = [0xffu8; 32];
        let mut expect = vec![0u8; 15];
        expect.push(1);
        expect.extend_from_slice(&[0xff; 16]);
        assert_eq!(avf(Curve::P256, &x), expect);
        // P-521: f = 521, ⌈f/2⌉ = 261 bits: bit 261 set, 261 low bits kept.
        let v = BigUint::from_bytes_be(&avf(Curve::P521, &[0xff; 66]));
        assert_eq!(v, (BigUint::from(1u32) << 262) - BigUint::from(1u32));
    }
}
