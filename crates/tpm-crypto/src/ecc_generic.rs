//! The curves without a RustCrypto crate (P-192, P-224, BN P-256, BN P-638,
//! SM2 P-256): their domain parameters, as libtpms reports them in
//! TPM2_ECC_Parameters, and ECDSA and EC-Schnorr on the generic arithmetic
//! of [`crate::weierstrass`]. [`crate::ecc`] dispatches here for them.

use std::sync::OnceLock;

use rand_core::CryptoRngCore;
use rsa::BigUint;
use zeroize::Zeroizing;

use crate::ecc::{fit, Curve, CurveParams, Point};
use crate::error::{Error, Result};
use crate::hash::HashAlg;
use crate::weierstrass::Domain;

/// (p, a, b, Gx, Gy, n) in hex. P-192 and P-224 are FIPS 186-4 D.1.2's;
/// the BN curves ISO/IEC 15946-5's as the TCG registry names them (a = 0);
/// SM2 P-256 is GM/T 0003.5's.
fn consts(curve: Curve) -> [&'static str; 6] {
    match curve {
        Curve::P192 => [
            "fffffffffffffffffffffffffffffffeffffffffffffffff",
            "fffffffffffffffffffffffffffffffefffffffffffffffc",
            "64210519e59c80e70fa7e9ab72243049feb8deecc146b9b1",
            "188da80eb03090f67cbf20eb43a18800f4ff0afd82ff1012",
            "07192b95ffc8da78631011ed6b24cdd573f977a11e794811",
            "ffffffffffffffffffffffff99def836146bc9b1b4d22831",
        ],
        Curve::P224 => [
            "ffffffffffffffffffffffffffffffff000000000000000000000001",
            "fffffffffffffffffffffffffffffffefffffffffffffffffffffffe",
            "b4050a850c04b3abf54132565044b0b7d7bfd8ba270b39432355ffb4",
            "b70e0cbd6bb4bf7f321390b94a03c1d356c21122343280d6115c1d21",
            "bd376388b5f723fb4c22dfe6cd4375a05a07476444d5819985007e34",
            "ffffffffffffffffffffffffffff16a2e0b8f03e13dd29455c5c2a3d",
        ],
        Curve::BnP256 => [
            "fffffffffffcf0cd46e5f25eee71a49f0cdc65fb12980a82d3292ddbaed33013",
            "00",
            "03",
            "01",
            "02",
            "fffffffffffcf0cd46e5f25eee71a49e0cdc65fb1299921af62d536cd10b500d",
        ],
        Curve::BnP638 => [
            "23fffffdc000000d7fffffb8000001d3fffff942d000165e3fff94870000d52f\
             fffdd0e00008de55c00086520021e55bfffff51ffff4eb800000004c80015acd\
             ffffffffffffece00000000000000067",
            "00",
            "0101",
            "23fffffdc000000d7fffffb8000001d3fffff942d000165e3fff94870000d52f\
             fffdd0e00008de55c00086520021e55bfffff51ffff4eb800000004c80015acd\
             ffffffffffffece00000000000000066",
            "10",
            "23fffffdc000000d7fffffb8000001d3fffff942d000165e3fff94870000d52f\
             fffdd0e00008de55600086550021e555fffff54ffff4eac000000049800154d9\
             ffffffffffffeda00000000000000061",
        ],
        // SM2 P-256 (and, unreachable, the crate curves: callers ask for
        // these only for generic curves).
        _ => [
            "fffffffeffffffffffffffffffffffffffffffff00000000ffffffffffffffff",
            "fffffffeffffffffffffffffffffffffffffffff00000000fffffffffffffffc",
            "28e9fa9e9d9f5e344d5a9e4bcf6509a7f39789f515ab8f92ddbcbd414d940e93",
            "32c4ae2c1f1981195f9904466a39c9948fe30bbff2660be1715a4589334c74c7",
            "bc3736a2f4f6779c59bdcee36b692153d0a9877cc62a474002df32e52139f0a0",
            "fffffffeffffffffffffffffffffffff7203df6b21c6052b53bbf40939d54123",
        ],
    }
}

fn unhex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s
        .bytes()
        .filter_map(|c| (c as char).to_digit(16).map(|d| d as u8))
        .collect();
    digits
        .chunks(2)
        .map(|p| (p[0] << 4) | p.get(1).copied().unwrap_or(0))
        .collect()
}

/// The domain parameters of a generic curve, each at the curve's size except
/// a = 0 of the BN curves (one octet, as libtpms answers it) and h.
pub(crate) fn params(curve: Curve) -> CurveParams {
    let [p, a, b, gx, gy, n] = consts(curve).map(unhex);
    let size = curve.size();
    let pad = |v: Vec<u8>| fit(&v, size).unwrap_or(v);
    let bn = matches!(curve, Curve::BnP256 | Curve::BnP638);
    CurveParams {
        p: pad(p),
        a: if bn { vec![0] } else { pad(a) },
        b: pad(b),
        gx: pad(gx),
        gy: pad(gy),
        n: pad(n),
        h: vec![1],
    }
}

/// The arithmetic domain of a generic curve, built once.
pub(crate) fn domain(curve: Curve) -> &'static Domain {
    static DOMAINS: [OnceLock<Domain>; 8] = [const { OnceLock::new() }; 8];
    let i = Curve::ALL.iter().position(|c| *c == curve).unwrap_or(0);
    DOMAINS[i].get_or_init(|| {
        let p = params(curve);
        // The constants above are checked by the tests (G on the curve,
        // [n]G the identity), so this cannot fail at run time.
        Domain::new(&p.p, &p.a, &p.b, &p.gx, &p.gy, &p.n, curve.size())
            .expect("valid built-in curve constants")
    })
}

/// The SEC1 uncompressed encoding of a valid point.
pub(crate) fn sec1(d: &Domain, p: &Point) -> Result<Vec<u8>> {
    let (Some(x), Some(y)) = (fit(&p.x, d.size), fit(&p.y, d.size)) else {
        return Err(Error::InvalidKey("coordinate too long"));
    };
    if !d.is_on_curve(&x, &y) {
        return Err(Error::InvalidKey("point not on the curve"));
    }
    Ok([&[4u8][..], &x, &y].concat())
}

/// A scalar in [1, n) drawn from `rng` by rejection sampling of curve-size
/// octet strings with the bits above n's width cleared.
pub(crate) fn random_scalar(d: &Domain, rng: &mut impl CryptoRngCore) -> Zeroizing<Vec<u8>> {
    loop {
        let mut k = Zeroizing::new(vec![0u8; d.size]);
        rng.fill_bytes(&mut k);
        let extra = d.size * 8 - d.n_bits;
        if let Some(first) = k.first_mut() {
            *first &= 0xff >> extra;
        }
        if d.is_scalar(&k) {
            return k;
        }
    }
}

/// The integer ECDSA signs: the leftmost n-width bits of the digest, mod n.
fn bits2int(d: &Domain, digest: &[u8]) -> Option<Vec<u8>> {
    let mut e = BigUint::from_bytes_be(digest);
    let bits = digest.len() * 8;
    if bits > d.n_bits {
        e >>= bits - d.n_bits;
    }
    d.reduce_n(&e.to_bytes_be())
}

/// ECDSA (r, s) over `digest` with private scalar `key`. The nonce is
/// derived, not random: KDFa(SHA-256, key, "ECDSA", digest, attempt),
/// drawn until it is a valid scalar, so it is secret and never repeats for
/// another digest.
pub(crate) fn ecdsa_sign(d: &Domain, key: &[u8], digest: &[u8]) -> Result<(Vec<u8>, Vec<u8>)> {
    let e = bits2int(d, digest).ok_or(Error::InvalidInput("digest"))?;
    for attempt in 0u32..1000 {
        let mut k = Zeroizing::new(crate::kdfa(
            HashAlg::Sha256,
            key,
            b"ECDSA",
            digest,
            &attempt.to_be_bytes(),
            (d.size * 8) as u32,
        ));
        if let Some(first) = k.first_mut() {
            *first &= 0xff >> (d.size * 8 - d.n_bits);
        }
        if !d.is_scalar(&k) {
            continue;
        }
        let (x, _) = d.mul(&k, None)?;
        let r = d.reduce_n(&x).ok_or(Error::Failed("ECDSA"))?;
        if r.iter().all(|&b| b == 0) {
            continue;
        }
        // s = k⁻¹ (e + r·d)
        let sum = d.mul_add_n(&e, &r, key).ok_or(Error::Failed("ECDSA"))?;
        let Some(s) = d.div_n(&sum, &k) else { continue };
        if s.iter().all(|&b| b == 0) {
            continue;
        }
        return Ok((r, s));
    }
    Err(Error::Failed("ECDSA signing found no nonce"))
}

/// Whether (r, s) is an ECDSA signature over `digest` by public point `q`.
pub(crate) fn ecdsa_verify(d: &Domain, q: &Point, digest: &[u8], r: &[u8], s: &[u8]) -> bool {
    let (Some(r), Some(s)) = (fit(r, d.size), fit(s, d.size)) else {
        return false;
    };
    if !d.is_scalar(&r) || !d.is_scalar(&s) || sec1(d, q).is_err() {
        return false;
    }
    let Some(e) = bits2int(d, digest) else {
        return false;
    };
    let (Some(u1), Some(u2)) = (d.div_n(&e, &s), d.div_n(&r, &s)) else {
        return false;
    };
    let Ok(b) = d.mul(&u2, Some((&q.x, &q.y))) else {
        return false;
    };
    // u1 = 0 (e ≡ 0) leaves [u2]Q alone.
    let x = if d.is_scalar(&u1) {
        match d
            .mul(&u1, None)
            .and_then(|a| d.add((&a.0, &a.1), (&b.0, &b.1)))
        {
            Ok((x, _)) => x,
            Err(_) => return false,
        }
    } else {
        b.0
    };
    d.reduce_n(&x).is_some_and(|v| v == r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drbg::KdfaRng;

    const GENERIC: [Curve; 5] = [
        Curve::P192,
        Curve::P224,
        Curve::BnP256,
        Curve::BnP638,
        Curve::Sm2P256,
    ];

    #[test]
    fn generators_have_the_stated_order() {
        for curve in GENERIC {
            let d = domain(curve);
            let p = params(curve);
            assert_eq!(d.order(), p.n);
            assert_eq!(p.p.len(), curve.size(), "{curve:?}");
            assert_eq!(d.n_bits, curve.order_bits());
            // [n-1]G = -G: same x, y = p - Gy; so [n-1]G + G is the identity.
            let n1 = d.sub_n(&[0], &[1]).unwrap();
            let (x, y) = d.mul(&n1, None).unwrap();
            assert_eq!(x, p.gx, "{curve:?}");
            assert_ne!(y, p.gy);
            assert!(d.add((&x, &y), (&p.gx, &p.gy)).is_err(), "{curve:?}");
            // [a]([b]G) = [b]([a]G) = [a·b mod n]G.
            let (a, b) = ([0x3au8; 20], [0xc5u8; 19]);
            let ag = d.mul(&a, None).unwrap();
            let bg = d.mul(&b, None).unwrap();
            let abg = d.mul(&a, Some((&bg.0, &bg.1))).unwrap();
            assert_eq!(abg, d.mul(&b, Some((&ag.0, &ag.1))).unwrap());
            let ab = d.mul_add_n(&[0], &a, &b).unwrap();
            assert_eq!(abg, d.mul(&ab, None).unwrap(), "{curve:?}");
        }
    }

    /// FIPS 186-4 / SP 800-186 style known answers: [k]G for small k on
    /// P-192 and P-224 (values from the NIST point-multiplication vectors).
    #[test]
    fn nist_known_answers() {
        let d = domain(Curve::P192);
        let (x, y) = d.mul(&[2], None).unwrap();
        assert_eq!(
            ::hex::encode(&x),
            "dafebf5828783f2ad35534631588a3f629a70fb16982a888"
        );
        assert_eq!(
            ::hex::encode(&y),
            "dd6bda0d993da0fa46b27bbc141b868f59331afa5c7e93ab"
        );
        let d = domain(Curve::P224);
        let (x, y) = d.mul(&[2], None).unwrap();
        assert_eq!(
            ::hex::encode(&x),
            "706a46dc76dcb76798e60e6d89474788d16dc18032d268fd1a704fa6"
        );
        assert_eq!(
            ::hex::encode(&y),
            "1c2b76a7bc25e7702a704fa986892849fca629487acf3709d2e4e8bb"
        );
    }

    #[test]
    fn ecdsa_round_trip() {
        for curve in GENERIC {
            let d = domain(curve);
            let mut rng = KdfaRng::new(HashAlg::Sha256, b"g", b"t", b"");
            let key = random_scalar(d, &mut rng);
            let (qx, qy) = d.mul(&key, None).unwrap();
            let q = Point::new(&qx, &qy);
            for hash in HashAlg::ALL {
                let digest = crate::digest(hash, &[b"msg"]);
                let (r, s) = ecdsa_sign(d, &key, &digest).unwrap();
                assert!(ecdsa_verify(d, &q, &digest, &r, &s), "{curve:?} {hash:?}");
                let other = crate::digest(hash, &[b"other"]);
                assert!(!ecdsa_verify(d, &q, &other, &r, &s));
                assert!(!ecdsa_verify(d, &q, &digest, &s, &r));
            }
        }
    }
}
