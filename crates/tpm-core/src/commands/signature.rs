//! Signing and signature verification (Part 3 chapter 20): TPM2_Sign and
//! TPM2_VerifySignature, and the scheme selection they share with the RSA
//! encryption commands.

use crate::constants as c;
use crate::crypto::{ct_eq, hmac};
use crate::dispatch::Ctx;
use crate::engine::{Response, Tpm};
use crate::marshal::Buffer;
use crate::object::Loaded;
use crate::rc::{err, Rc, TpmResult};
use crate::types::{
    digest_size, Digest, HashcheckTicket, Scheme, SigScheme, Signature, TaggedHash, Ticket,
};
use crate::{tpm_params, tpm_response};
use tpm_crypto::HashAlg;

tpm_params! {
    /// TPM2_Sign parameters.
    pub struct SignIn { pub digest: Digest, pub in_scheme: SigScheme, pub validation: HashcheckTicket }
}

tpm_response! {
    /// TPM2_Sign response.
    pub struct SignOut { pub signature: Signature }
}

tpm_params! {
    /// TPM2_VerifySignature parameters.
    pub struct VerifyIn { pub digest: Digest, pub signature: Signature }
}

tpm_response! {
    /// TPM2_VerifySignature response (a TPMT_TK_VERIFIED).
    pub struct VerifyOut { pub validation: Ticket }
}

/// The scheme a command uses, from the key's scheme and the caller's: the
/// caller's when the key has none, the key's when the caller gave none, and
/// the caller's when both name the same algorithm and hash. Two different
/// schemes are refused (None), and so are two NULL schemes unless
/// `null_allowed` (raw RSA).
pub(crate) fn select_scheme(key: Scheme, input: Scheme, null_allowed: bool) -> Option<Scheme> {
    match (key.is_null(), input.is_null()) {
        (true, true) => null_allowed.then_some(Scheme::NULL),
        (true, false) => Some(input),
        (false, true) => Some(key),
        (false, false) => (key.alg == input.alg && key.hash == input.hash).then_some(input),
    }
}

/// Whether `key` may sign at all (IsSigningObject): it has `sign` and is not
/// a symmetric cipher, which can encrypt but has no signature algorithm.
/// Otherwise a signing command answers TPM_RC_KEY on the key's handle.
pub(crate) fn is_signing_key(key: &Loaded) -> bool {
    key.public.has(c::TPMA_OBJECT_SIGN_ENCRYPT) && key.public.type_alg() != c::ALG_SYMCIPHER
}

/// Whether a key of type `ty` makes signatures of algorithm `alg`.
fn fits_key(ty: u16, alg: u16) -> bool {
    matches!(
        (ty, alg),
        (c::ALG_RSA, c::ALG_RSASSA | c::ALG_RSAPSS)
            | (
                c::ALG_ECC,
                c::ALG_ECDSA | c::ALG_ECDAA | c::ALG_SM2 | c::ALG_ECSCHNORR
            )
            | (c::ALG_KEYEDHASH, c::ALG_HMAC)
    )
}

/// The scheme a signing command uses with `key` (CryptSelectSignScheme):
/// [`select_scheme`] of the key's and the caller's, which must also fit the
/// key's type. libtpms checks the fit here, before digest sizes and tickets,
/// so a scheme of another key family is TPM_RC_SCHEME on inScheme whatever
/// else is wrong (checked against swtpm in tests/attestation.rs). None: the
/// caller answers TPM_RC_SCHEME.
pub(crate) fn signing_scheme(key: &Loaded, input: Scheme) -> Option<Scheme> {
    select_scheme(key.public.parms.scheme(), input, false)
        .filter(|s| fits_key(key.public.type_alg(), s.alg))
}

/// The tpm-crypto hash of a scheme's hash algorithm.
pub(crate) fn hash_alg(alg: u16) -> TpmResult<HashAlg> {
    HashAlg::from_tpm_alg(alg).ok_or(Rc(c::RC_HASH))
}

/// TPMT_SIGNATURE over `digest` with `key` (loaded in `tpm`) and the
/// selected `scheme` (from [`signing_scheme`]); a digest the algorithm cannot
/// take is TPM_RC_VALUE. An ECDAA signature uses the r of the scheme's
/// commit count (TPM_RC_VALUE if it is not pending): the caller ends the
/// commit with [`Tpm::end_ecdaa`] once the command succeeds.
pub(crate) fn sign_digest(
    tpm: &Tpm,
    key: &Loaded,
    scheme: Scheme,
    digest: &[u8],
) -> TpmResult<Signature> {
    let value = |_| Rc(c::RC_VALUE);
    Ok(match (key.public.type_alg(), scheme.alg) {
        (c::ALG_RSA, c::ALG_RSASSA | c::ALG_RSAPSS) => {
            let k = key.rsa_key()?;
            let h = hash_alg(scheme.hash)?;
            let sig = if scheme.alg == c::ALG_RSASSA {
                k.sign_pkcs1(h, digest)
            } else {
                k.sign_pss(h, digest, &mut tpm_crypto::SystemRng)
            }
            .map_err(value)?;
            Signature::Rsa {
                alg: scheme.alg,
                hash: scheme.hash,
                sig: Buffer(sig),
            }
        }
        (c::ALG_ECC, c::ALG_ECDSA | c::ALG_ECDAA | c::ALG_SM2 | c::ALG_ECSCHNORR) => {
            let k = key.ecc_key()?;
            let rng = &mut tpm_crypto::SystemRng;
            let (r, s) = match scheme.alg {
                c::ALG_ECDSA => k.sign_ecdsa(digest),
                c::ALG_ECDAA => {
                    let r = super::commit::ecdaa_r(tpm, key, scheme)?.ok_or(Rc(c::RC_SCHEME))?;
                    k.sign_ecdaa(hash_alg(scheme.hash)?, digest, &r, rng)
                }
                c::ALG_SM2 => k.sign_sm2(digest, rng),
                _ => k.sign_schnorr(hash_alg(scheme.hash)?, digest, rng),
            }
            .map_err(value)?;
            Signature::Ecc {
                alg: scheme.alg,
                hash: scheme.hash,
                r: Buffer(r),
                s: Buffer(s),
            }
        }
        (c::ALG_KEYEDHASH, c::ALG_HMAC) => Signature::Hmac(TaggedHash {
            alg: scheme.hash,
            digest: hmac(scheme.hash, &key.sensitive()?.sensitive.0, &[digest]),
        }),
        // Callers choose the scheme with `signing_scheme`, which only gives
        // fitting ones; this guards against a caller that did not.
        _ => return err(c::RC_SCHEME),
    })
}

/// TPM2_Sign.
pub fn sign(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    let p = SignIn::parse(&mut ctx.params)?;
    let key = tpm.object_at(ctx.handles[0], 1)?;
    if !is_signing_key(key) {
        return Err(Rc(c::RC_KEY).handle(1));
    }
    let scheme = signing_scheme(key, p.in_scheme.0).ok_or(Rc(c::RC_SCHEME).param(2))?;
    let ticket = &p.validation.0;
    let digest = p.digest.as_slice();
    // A restricted key signs only what the TPM hashed itself (and found not
    // to start with TPM_GENERATED_VALUE); a ticket given for any key is checked.
    if !ticket.digest.is_empty() || key.public.has(c::TPMA_OBJECT_RESTRICTED) {
        let expect = tpm.ticket_hmac(c::ST_HASHCHECK, ticket.hierarchy, &[digest]);
        if !ct_eq(&expect, ticket.digest.as_slice()) {
            return Err(Rc(c::RC_TICKET).param(3));
        }
    } else if digest.len() != digest_size(scheme.hash) {
        return Err(Rc(c::RC_SIZE).param(1));
    }
    let signature = sign_digest(tpm, key, scheme, digest)?;
    tpm.end_ecdaa(scheme);
    Ok(Response::of(&SignOut { signature }))
}

/// Whether `sig` is `key`'s signature over `digest`; the error is numbered
/// by the caller.
pub(crate) fn check_signature(key: &Loaded, digest: &[u8], sig: &Signature) -> TpmResult<()> {
    let bad = || err(c::RC_SIGNATURE);
    match (key.public.type_alg(), sig) {
        (_, Signature::Null) => err(c::RC_SCHEME),
        (c::ALG_RSA, Signature::Rsa { alg, hash, sig }) => {
            let k = key.rsa_public()?;
            let h = hash_alg(*hash)?;
            let good = if *alg == c::ALG_RSASSA {
                k.verify_pkcs1(h, digest, sig.as_slice())
            } else {
                k.verify_pss(h, digest, sig.as_slice())
            };
            if good {
                Ok(())
            } else {
                bad()
            }
        }
        (c::ALG_ECC, Signature::Ecc { alg, hash, r, s }) => {
            let curve = key.curve()?;
            let q = key.ecc_public()?;
            // An ECDAA signature is checked by the DAA verifier with the
            // credential, not by the TPM (libtpms: TPM_RC_SCHEME).
            if *alg == c::ALG_ECDAA {
                return err(c::RC_SCHEME);
            }
            let good = if *alg == c::ALG_ECDSA {
                tpm_crypto::ecc::verify_ecdsa(curve, &q, digest, r.as_slice(), s.as_slice())
            } else if *alg == c::ALG_SM2 {
                crate::crypto::ecc::verify_sm2(curve, &q, digest, r.as_slice(), s.as_slice())
            } else {
                tpm_crypto::ecc::verify_schnorr(
                    curve,
                    &q,
                    hash_alg(*hash)?,
                    digest,
                    r.as_slice(),
                    s.as_slice(),
                )
            };
            if good {
                Ok(())
            } else {
                bad()
            }
        }
        (c::ALG_KEYEDHASH, _) => {
            // An HMAC is checked by making it again: the key must be loaded.
            let Some(sensitive) = key.sensitive.as_ref() else {
                return err(c::RC_HANDLE);
            };
            let Signature::Hmac(ha) = sig else {
                return err(c::RC_SCHEME);
            };
            let ks = key.public.parms.scheme();
            // A key with a scheme vouches only for signatures made with it.
            if !ks.is_null() && ks.hash != ha.alg {
                return bad();
            }
            let expect = hmac(ha.alg, &sensitive.sensitive.0, &[digest]);
            if ct_eq(&expect, &ha.digest) {
                Ok(())
            } else {
                bad()
            }
        }
        _ => err(c::RC_SCHEME),
    }
}

/// TPM2_VerifySignature: a TPMT_TK_VERIFIED when the signature is good.
pub fn verify_signature(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    let p = VerifyIn::parse(&mut ctx.params)?;
    let key = tpm.object_at(ctx.handles[0], 1)?;
    if !key.public.has(c::TPMA_OBJECT_SIGN_ENCRYPT) {
        return Err(Rc(c::RC_ATTRIBUTES).handle(1));
    }
    let digest = p.digest.as_slice();
    check_signature(key, digest, &p.signature).map_err(|e| e.param(2))?;
    let hierarchy = key.hierarchy;
    let validation = match tpm.proof(hierarchy) {
        Some(_) if hierarchy != c::RH_NULL && key.public.name_alg != c::ALG_NULL => Ticket {
            tag: c::ST_VERIFIED,
            hierarchy,
            digest: Buffer(tpm.ticket_hmac(c::ST_VERIFIED, hierarchy, &[digest, &key.name])),
        },
        _ => Ticket {
            tag: c::ST_VERIFIED,
            hierarchy: c::RH_NULL,
            digest: Buffer(Vec::new()),
        },
    };
    Ok(Response::of(&VerifyOut { validation }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(alg: u16, hash: u16) -> Scheme {
        Scheme {
            alg,
            hash,
            kdf: c::ALG_NULL,
            count: 0,
        }
    }

    #[test]
    fn scheme_selection() {
        let pss = s(c::ALG_RSAPSS, c::ALG_SHA256);
        let ssa = s(c::ALG_RSASSA, c::ALG_SHA256);
        let ssa1 = s(c::ALG_RSASSA, c::ALG_SHA1);
        let null = Scheme::NULL;
        // The key's scheme wins over a NULL input, the input over a NULL key.
        assert_eq!(select_scheme(ssa, null, false), Some(ssa));
        assert_eq!(select_scheme(null, pss, false), Some(pss));
        assert_eq!(select_scheme(ssa, ssa, false), Some(ssa));
        // Two schemes that differ in algorithm or hash: TPM_RC_SCHEME.
        assert_eq!(select_scheme(ssa, pss, false), None);
        assert_eq!(select_scheme(ssa, ssa1, false), None);
        // Both NULL: an error for signing, raw RSA for encryption.
        assert_eq!(select_scheme(null, null, false), None);
        assert_eq!(select_scheme(null, null, true), Some(null));
    }
}
