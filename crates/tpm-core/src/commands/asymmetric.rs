//! Asymmetric primitives (Part 3 chapter 14): TPM2_RSA_Encrypt,
//! TPM2_RSA_Decrypt, TPM2_ECDH_KeyGen, TPM2_ECDH_ZGen, TPM2_ECC_Parameters
//! and TPM2_ZGen_2Phase.

use super::signature::{hash_alg, select_scheme};
use crate::constants as c;
use crate::crypto::ecc;
use crate::dispatch::Ctx;
use crate::engine::{Response, Tpm};
use crate::marshal::{Buffer, Sized2b};
use crate::object::{ecc_point, Loaded};
use crate::rc::{Rc, TpmResult};
use crate::types::{
    AlgorithmDetailEcc, Data, EccCurve, EccPoint2b, EccScheme, KdfScheme, RsaDecryptScheme,
    RsaModulus, Scheme,
};
use crate::{tpm_interface, tpm_params, tpm_response};
use tpm_crypto::{Curve, Point};

tpm_params! {
    /// TPM2_RSA_Encrypt parameters.
    pub struct RsaEncryptIn { pub message: RsaModulus, pub in_scheme: RsaDecryptScheme, pub label: Data }
}

tpm_params! {
    /// TPM2_RSA_Decrypt parameters.
    pub struct RsaDecryptIn { pub cipher_text: RsaModulus, pub in_scheme: RsaDecryptScheme, pub label: Data }
}

tpm_response! {
    /// TPM2_RSA_Encrypt and TPM2_RSA_Decrypt response.
    pub struct RsaOut { pub data: RsaModulus }
}

tpm_response! {
    /// TPM2_ECDH_KeyGen response.
    pub struct EcdhKeyGenOut { pub z_point: EccPoint2b, pub pub_point: EccPoint2b }
}

tpm_params! {
    /// TPM2_ECDH_ZGen parameters.
    pub struct EcdhZGenIn { pub in_point: EccPoint2b }
}

tpm_response! {
    /// TPM2_ECDH_ZGen response.
    pub struct EcdhZGenOut { pub out_point: EccPoint2b }
}

tpm_interface! {
    /// TPMI_ECC_KEY_EXCHANGE: a two-phase key exchange scheme (ECDH,
    /// ECMQV, SM2).
    pub struct KeyExchange(u16), error = c::RC_SCHEME,
    accept = |a| matches!(a, c::ALG_ECDH | c::ALG_ECMQV | c::ALG_SM2)
}

tpm_params! {
    /// TPM2_ZGen_2Phase parameters.
    pub struct ZGen2PhaseIn {
        pub in_qs_b: EccPoint2b,
        pub in_qe_b: EccPoint2b,
        pub in_scheme: KeyExchange,
        pub counter: u16,
    }
}

tpm_response! {
    /// TPM2_ZGen_2Phase response.
    pub struct ZGen2PhaseOut { pub out_z1: EccPoint2b, pub out_z2: EccPoint2b }
}

tpm_params! {
    /// TPM2_ECC_Parameters parameters.
    pub struct EccParametersIn { pub curve_id: EccCurve }
}

tpm_response! {
    /// TPM2_ECC_Parameters response.
    pub struct EccParametersOut { pub parameters: AlgorithmDetailEcc }
}

/// The answer to an RSA operation that fails on its input (a message too
/// long for the padding or not below the modulus, a padding check that
/// fails). Part 3 says TPM_RC_VALUE; libtpms, which every client is tested
/// against, answers TPM_RC_FAILURE (without entering failure mode), so vtpm
/// does too (tests/tools_asym.rs compares the two).
const LIBTPMS_RSA_ERROR: u32 = c::RC_FAILURE;

/// The key at handle 1 if it is an RSA key (TPM_RC_KEY otherwise).
fn rsa_key_at(tpm: &Tpm, h: u32) -> TpmResult<&Loaded> {
    let key = tpm.object_at(h, 1)?;
    if key.public.type_alg() != c::ALG_RSA {
        return Err(Rc(c::RC_KEY).handle(1));
    }
    Ok(key)
}

/// The label check and scheme selection both RSA commands make: a label must
/// end in its terminating zero (TPM_RC_VALUE on parameter 3), and the scheme
/// follows Part 3 Table 41 (TPM_RC_SCHEME on parameter 2).
fn rsa_scheme(key: &Loaded, input: Scheme, label: &[u8]) -> TpmResult<Scheme> {
    // libtpms refuses a label without its zero rather than adding one, and
    // uses the whole label (up to and including the last zero) in OAEP.
    if label.last().is_some_and(|&b| b != 0) {
        return Err(Rc(c::RC_VALUE).param(3));
    }
    let scheme =
        select_scheme(key.public.parms.scheme(), input, true).ok_or(Rc(c::RC_SCHEME).param(2))?;
    if !matches!(scheme.alg, c::ALG_NULL | c::ALG_RSAES | c::ALG_OAEP) {
        return Err(Rc(c::RC_SCHEME).param(2));
    }
    Ok(scheme)
}

/// TPM2_RSA_Encrypt: only the public key is needed.
pub fn rsa_encrypt(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    let p = RsaEncryptIn::parse(&mut ctx.params)?;
    let key = rsa_key_at(tpm, ctx.handles[0])?;
    // Only the decrypt attribute is checked: a caller could load any public
    // area for this, so restricting it would protect nothing.
    if !key.public.has(c::TPMA_OBJECT_DECRYPT) {
        return Err(Rc(c::RC_ATTRIBUTES).handle(1));
    }
    let scheme = rsa_scheme(key, p.in_scheme.0, p.label.as_slice())?;
    let k = key.rsa_public()?;
    let msg = p.message.as_slice();
    let rng = &mut tpm_crypto::SystemRng;
    let out = match scheme.alg {
        c::ALG_RSAES => k.encrypt_pkcs1(msg, rng),
        c::ALG_OAEP => k.encrypt_oaep(hash_alg(scheme.hash)?, p.label.as_slice(), msg, rng),
        _ => k.raw_public(msg),
    }
    .map_err(|_| Rc(LIBTPMS_RSA_ERROR))?;
    Ok(Response::of(&RsaOut { data: Buffer(out) }))
}

/// TPM2_RSA_Decrypt: an unrestricted decryption key's private operation.
pub fn rsa_decrypt(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    let p = RsaDecryptIn::parse(&mut ctx.params)?;
    let key = rsa_key_at(tpm, ctx.handles[0])?;
    if key.public.has(c::TPMA_OBJECT_RESTRICTED) || !key.public.has(c::TPMA_OBJECT_DECRYPT) {
        return Err(Rc(c::RC_ATTRIBUTES).handle(1));
    }
    let scheme = rsa_scheme(key, p.in_scheme.0, p.label.as_slice())?;
    let k = key.rsa_key()?;
    let ct = p.cipher_text.as_slice();
    // libtpms answers a wrong size without a parameter number.
    if ct.len() != k.size() {
        return Err(Rc(c::RC_SIZE));
    }
    // Every padding failure is the same error, so the answer tells nothing
    // about where the decoding failed.
    let out = match scheme.alg {
        c::ALG_RSAES => k.decrypt_pkcs1(ct),
        c::ALG_OAEP => k.decrypt_oaep(hash_alg(scheme.hash)?, p.label.as_slice(), ct),
        _ => k.raw_private(ct),
    }
    .map_err(|_| Rc(LIBTPMS_RSA_ERROR))?;
    Ok(Response::of(&RsaOut {
        data: Buffer(out.to_vec()),
    }))
}

/// The key at handle 1 if it is an ECC key (TPM_RC_KEY otherwise).
fn ecc_key_at(tpm: &Tpm, h: u32) -> TpmResult<&Loaded> {
    let key = tpm.object_at(h, 1)?;
    if key.public.type_alg() != c::ALG_ECC {
        return Err(Rc(c::RC_KEY).handle(1));
    }
    Ok(key)
}

/// TPM2_ECDH_KeyGen: an ephemeral key and Z for the key's public point.
/// As libtpms, any ECC key will do (only its public part is used).
pub fn ecdh_keygen(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    ctx.params.finish()?;
    let key = ecc_key_at(tpm, ctx.handles[0])?;
    let curve = key.curve().map_err(|e| e.handle(1))?;
    let q = key.ecc_public().map_err(|e| e.handle(1))?;
    let (qe, z) = tpm_crypto::ecc::ecdh_keygen(curve, &q, &mut tpm_crypto::SystemRng)
        .map_err(|_| Rc(c::RC_KEY).handle(1))?;
    Ok(Response::of(&EcdhKeyGenOut {
        z_point: Sized2b(ecc_point(&z)),
        pub_point: Sized2b(ecc_point(&qe)),
    }))
}

/// TPM2_ECDH_ZGen: Z = d·Q for the caller's point Q.
pub fn ecdh_zgen(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    let p = EcdhZGenIn::parse(&mut ctx.params)?;
    let key = ecc_key_at(tpm, ctx.handles[0])?;
    if key.public.has(c::TPMA_OBJECT_RESTRICTED) || !key.public.has(c::TPMA_OBJECT_DECRYPT) {
        return Err(Rc(c::RC_ATTRIBUTES).handle(1));
    }
    if !matches!(key.public.parms.scheme().alg, c::ALG_ECDH | c::ALG_NULL) {
        return Err(Rc(c::RC_SCHEME).handle(1));
    }
    let point = Point::new(&p.in_point.0.x.0, &p.in_point.0.y.0);
    let z = key
        .ecc_key()?
        .ecdh(&point)
        .map_err(|_| Rc(c::RC_ECC_POINT).param(1))?;
    Ok(Response::of(&EcdhZGenOut {
        out_point: Sized2b(ecc_point(&z)),
    }))
}

/// TPM2_ZGen_2Phase: the second half of a two-phase key exchange, with the
/// ephemeral private key of a count from TPM2_EC_Ephemeral. ECDH answers
/// Zs = [ds]QsB and Ze = [de]QeB; ECMQV and SM2 answer their one point and
/// an Empty Point.
/// The checks and their order are libtpms's.
pub fn zgen_2phase(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    let p = ZGen2PhaseIn::parse(&mut ctx.params)?;
    let key = ecc_key_at(tpm, ctx.handles[0])?;
    if key.public.has(c::TPMA_OBJECT_RESTRICTED) || !key.public.has(c::TPMA_OBJECT_DECRYPT) {
        return Err(Rc(c::RC_ATTRIBUTES).handle(1));
    }
    let key_scheme = key.public.parms.scheme().alg;
    if key_scheme != c::ALG_NULL && key_scheme != p.in_scheme.0 {
        return Err(Rc(c::RC_SCHEME).param(3));
    }
    let curve = key.curve().map_err(|e| e.handle(1))?;
    let qs_b = Point::new(&p.in_qs_b.0.x.0, &p.in_qs_b.0.y.0);
    let qe_b = Point::new(&p.in_qe_b.0.x.0, &p.in_qe_b.0.y.0);
    if !ecc::is_on_curve(curve, &qs_b) {
        return Err(Rc(c::RC_ECC_POINT).param(1));
    }
    if !ecc::is_on_curve(curve, &qe_b) {
        return Err(Rc(c::RC_ECC_POINT).param(2));
    }
    let de =
        super::commit::committed_r(tpm, curve, &[], p.counter).ok_or(Rc(c::RC_VALUE).param(4))?;
    let ds = key.ecc_key()?;
    // A Z at infinity is answered as an Empty Point.
    let z =
        |r: Result<Point, tpm_crypto::Error>| Sized2b(r.map(|z| ecc_point(&z)).unwrap_or_default());
    let (z1, z2) = if p.in_scheme.0 == c::ALG_ECDH {
        // [de]QeB directly (QeB was checked on the curve above).
        let ze = ecc::mul(curve, &de, Some(&qe_b));
        (z(ds.ecdh(&qs_b)), z(ze))
    } else {
        let u = if p.in_scheme.0 == c::ALG_ECMQV {
            ecc::ecmqv(curve, &ds.d, &de, &qs_b, &qe_b)
        } else {
            ecc::sm2_key_exchange(curve, &ds.d, &de, &qs_b, &qe_b)
        };
        (z(u), Sized2b(Default::default()))
    };
    tpm.end_commit(p.counter);
    Ok(Response::of(&ZGen2PhaseOut {
        out_z1: z1,
        out_z2: z2,
    }))
}

/// TPM2_ECC_Parameters: the domain parameters of an implemented curve.
pub fn ecc_parameters(_tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    let p = EccParametersIn::parse(&mut ctx.params)?;
    let curve = Curve::from_tpm(p.curve_id.0).ok_or(Rc(c::RC_CURVE).param(1))?;
    let d = curve.params();
    Ok(Response::of(&EccParametersOut {
        parameters: AlgorithmDetailEcc {
            curve_id: p.curve_id.0,
            key_size: curve.bits(),
            // As libtpms: the SP 800-56A KDF with the curve's matching
            // hash (SM3 for SM2's curve, although SM3 is not implemented:
            // this only reports the curve's definition), none for the BN
            // curves, and no signing scheme of the curve's own.
            kdf: KdfScheme(match curve {
                Curve::BnP256 | Curve::BnP638 => Scheme::NULL,
                _ => Scheme {
                    alg: c::ALG_KDF1_SP800_56A,
                    hash: match curve {
                        Curve::P384 => c::ALG_SHA384,
                        Curve::P521 => c::ALG_SHA512,
                        Curve::Sm2P256 => c::ALG_SM3_256,
                        _ => c::ALG_SHA256,
                    },
                    kdf: c::ALG_NULL,
                    count: 0,
                },
            }),
            sign: EccScheme(Scheme::NULL),
            p: Buffer(d.p),
            a: Buffer(d.a),
            b: Buffer(d.b),
            g_x: Buffer(d.gx),
            g_y: Buffer(d.gy),
            n: Buffer(d.n),
            h: Buffer(d.h),
        },
    }))
}
