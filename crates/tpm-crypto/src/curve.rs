//! The curves vtpm implements and what is public about them: their TPM
//! identifiers and sizes, their domain parameters (as TPM2_ECC_Parameters
//! reports them) and points. Shared by [`crate::ecc`] (keys, signatures) and
//! the generic arithmetic's front (`ecc_generic`), which both use it and
//! neither of which it uses.

use std::sync::OnceLock;

use rsa::BigUint;

/// The curves implemented, by TPM_ECC_CURVE. P-256, P-384 and P-521 run on
/// the RustCrypto curve crates; the others on [`crate::weierstrass`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Curve {
    /// TPM_ECC_NIST_P192 (0x0001).
    P192,
    /// TPM_ECC_NIST_P224 (0x0002).
    P224,
    /// TPM_ECC_NIST_P256 (0x0003).
    P256,
    /// TPM_ECC_NIST_P384 (0x0004).
    P384,
    /// TPM_ECC_NIST_P521 (0x0005).
    P521,
    /// TPM_ECC_BN_P256 (0x0010).
    BnP256,
    /// TPM_ECC_BN_P638 (0x0011).
    BnP638,
    /// TPM_ECC_SM2_P256 (0x0020).
    Sm2P256,
}

/// The domain parameters of a curve (TPMS_ALGORITHM_DETAIL_ECC's numbers),
/// each big-endian at the curve's size except `h`, which is one octet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurveParams {
    /// Field prime p.
    pub p: Vec<u8>,
    /// Coefficient a of y^2 = x^3 + ax + b (p - 3 for these curves).
    pub a: Vec<u8>,
    /// Coefficient b.
    pub b: Vec<u8>,
    /// Generator x coordinate.
    pub gx: Vec<u8>,
    /// Generator y coordinate.
    pub gy: Vec<u8>,
    /// Order n of the generator.
    pub n: Vec<u8>,
    /// Cofactor h.
    pub h: Vec<u8>,
}

// FIPS 186-4 D.1.2 / SEC 2 constants, checked against the curve crates in the tests.
const P256_P: &str = "ffffffff00000001000000000000000000000000ffffffffffffffffffffffff";
const P256_B: &str = "5ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604b";
const P256_GX: &str = "6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296";
const P256_GY: &str = "4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5";
const P256_N: &str = "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551";
const P384_P: &str = "fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffe\
                      ffffffff0000000000000000ffffffff";
const P384_B: &str = "b3312fa7e23ee7e4988e056be3f82d19181d9c6efe8141120314088f5013875a\
                      c656398d8a2ed19d2a85c8edd3ec2aef";
const P384_GX: &str = "aa87ca22be8b05378eb1c71ef320ad746e1d3b628ba79b9859f741e082542a38\
                       5502f25dbf55296c3a545e3872760ab7";
const P384_GY: &str = "3617de4a96262c6f5d9e98bf9292dc29f8f41dbd289a147ce9da3113b5f0b8c0\
                       0a60b1ce1d7e819d7a431d7c90ea0e5f";
const P384_N: &str = "ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf\
                      581a0db248b0a77aecec196accc52973";
const P521_P: &str = "01ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff\
                      ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff\
                      ffff";
const P521_B: &str = "0051953eb9618e1c9a1f929a21a0b68540eea2da725b99b315f3b8b489918ef1\
                      09e156193951ec7e937b1652c0bd3bb1bf073573df883d2c34f1ef451fd46b50\
                      3f00";
const P521_GX: &str = "00c6858e06b70404e9cd9e3ecb662395b4429c648139053fb521f828af606b4d\
                       3dbaa14b5e77efe75928fe1dc127a2ffa8de3348b3c1856a429bf97e7e31c2e5\
                       bd66";
const P521_GY: &str = "011839296a789a3bc0045c8a5fb42c7d1bd998f54449579b446817afbd17273e\
                       662c97ee72995ef42640c550b9013fad0761353c7086a272c24088be94769fd1\
                       6650";
const P521_N: &str = "01ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff\
                      fffa51868783bf2f966b7fcc0148f709a5d03bb5c9b8899c47aebb6fb71e9138\
                      6409";

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

impl Curve {
    /// Every implemented curve, in TPM_ECC_CURVE order.
    pub const ALL: [Curve; 8] = [
        Curve::P192,
        Curve::P224,
        Curve::P256,
        Curve::P384,
        Curve::P521,
        Curve::BnP256,
        Curve::BnP638,
        Curve::Sm2P256,
    ];

    /// From a TPM_ECC_CURVE value; None for curves not implemented.
    pub fn from_tpm(id: u16) -> Option<Curve> {
        Curve::ALL.into_iter().find(|c| c.to_tpm() == id)
    }

    /// The TPM_ECC_CURVE value.
    pub fn to_tpm(self) -> u16 {
        match self {
            Curve::P192 => 0x0001,
            Curve::P224 => 0x0002,
            Curve::P256 => 0x0003,
            Curve::P384 => 0x0004,
            Curve::P521 => 0x0005,
            Curve::BnP256 => 0x0010,
            Curve::BnP638 => 0x0011,
            Curve::Sm2P256 => 0x0020,
        }
    }

    /// Octets of a coordinate or scalar (24 to 80).
    pub fn size(self) -> usize {
        (usize::from(self.bits())).div_ceil(8)
    }

    /// Key size in bits, as TPMS_ALGORITHM_DETAIL_ECC keySize.
    pub fn bits(self) -> u16 {
        match self {
            Curve::P192 => 192,
            Curve::P224 => 224,
            Curve::P256 | Curve::BnP256 | Curve::Sm2P256 => 256,
            Curve::P384 => 384,
            Curve::P521 => 521,
            Curve::BnP638 => 638,
        }
    }

    /// Whether the curve runs on the generic arithmetic of
    /// [`crate::weierstrass`] (no curve crate has it).
    pub fn is_generic(self) -> bool {
        !matches!(self, Curve::P256 | Curve::P384 | Curve::P521)
    }

    /// The domain parameters (p, a, b, Gx, Gy, n, h) at the curve's size
    /// (a of the BN curves is the single octet 0, as libtpms reports it).
    pub fn params(self) -> CurveParams {
        self.cached().0.clone()
    }

    pub(crate) fn order(self) -> BigUint {
        self.cached().1.clone()
    }

    /// Bits of the group order n (256, 384, 521).
    pub fn order_bits(self) -> usize {
        self.cached().1.bits()
    }

    /// The parameters and the order as an integer, decoded from the table
    /// once per curve (signing, verifying and the split operations ask for
    /// them on every command).
    fn cached(self) -> &'static (CurveParams, BigUint) {
        static CACHE: [OnceLock<(CurveParams, BigUint)>; 8] = [const { OnceLock::new() }; 8];
        let i = Curve::ALL.iter().position(|c| *c == self).unwrap_or(0);
        CACHE[i].get_or_init(|| {
            let p = decode_params(self);
            let n = BigUint::from_bytes_be(&p.n);
            (p, n)
        })
    }
}

/// A point (x, y), coordinates big-endian.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Point {
    /// x coordinate.
    pub x: Vec<u8>,
    /// y coordinate.
    pub y: Vec<u8>,
}

impl Point {
    /// A point from its coordinates.
    pub fn new(x: &[u8], y: &[u8]) -> Point {
        Point {
            x: x.to_vec(),
            y: y.to_vec(),
        }
    }
}

/// `v` as exactly `len` octets: leading zeros added or dropped; None if the
/// value itself needs more than `len` octets.
pub(crate) fn fit(v: &[u8], len: usize) -> Option<Vec<u8>> {
    let first = v.iter().position(|&b| b != 0).unwrap_or(v.len());
    let v = &v[first..];
    if v.len() > len {
        return None;
    }
    let mut out = vec![0u8; len - v.len()];
    out.extend_from_slice(v);
    Some(out)
}

pub(crate) fn left_pad(v: &[u8], len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len.saturating_sub(v.len())];
    out.extend_from_slice(v);
    out
}

/// (p, a, b, Gx, Gy, n) in hex, one row per curve. P-192, P-224 and the
/// NIST curves of the crates are FIPS 186-4 D.1.2's (an empty a: p - 3);
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
        Curve::P256 => [P256_P, "", P256_B, P256_GX, P256_GY, P256_N],
        Curve::P384 => [P384_P, "", P384_B, P384_GX, P384_GY, P384_N],
        Curve::P521 => [P521_P, "", P521_B, P521_GX, P521_GY, P521_N],
        Curve::Sm2P256 => [
            "fffffffeffffffffffffffffffffffffffffffff00000000ffffffffffffffff",
            "fffffffeffffffffffffffffffffffffffffffff00000000fffffffffffffffc",
            "28e9fa9e9d9f5e344d5a9e4bcf6509a7f39789f515ab8f92ddbcbd414d940e93",
            "32c4ae2c1f1981195f9904466a39c9948fe30bbff2660be1715a4589334c74c7",
            "bc3736a2f4f6779c59bdcee36b692153d0a9877cc62a474002df32e52139f0a0",
            "fffffffeffffffffffffffffffffffff7203df6b21c6052b53bbf40939d54123",
        ],
    }
}

/// The domain parameters of `curve` from the table, each at the curve's size
/// except a = 0 of the BN curves (one octet, as libtpms answers it) and h.
fn decode_params(curve: Curve) -> CurveParams {
    let [p, a, b, gx, gy, n] = consts(curve).map(unhex);
    let size = curve.size();
    let pad = |v: Vec<u8>| fit(&v, size).unwrap_or(v);
    let bn = matches!(curve, Curve::BnP256 | Curve::BnP638);
    let p = pad(p);
    let a = if bn {
        vec![0]
    } else if a.is_empty() {
        // The NIST curves' a = p - 3: p ends in ...ff for every NIST prime,
        // so subtracting 3 touches the last octet only.
        let mut a = p.clone();
        if let Some(last) = a.last_mut() {
            *last = last.wrapping_sub(3);
        }
        a
    } else {
        pad(a)
    };
    CurveParams {
        p,
        a,
        b: pad(b),
        gx: pad(gx),
        gy: pad(gy),
        n: pad(n),
        h: vec![1],
    }
}
