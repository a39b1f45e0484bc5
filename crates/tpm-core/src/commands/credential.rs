//! Credential commands (Part 3 chapter 12): MakeCredential and
//! ActivateCredential, and the asymmetric secret sharing (Part 1 "Secret
//! Sharing") they share with duplication: a digest-size seed encrypted to a
//! key with RSA-OAEP or shared through ECDH + KDFe.

use tpm_crypto::protect::{
    activate_credential, ecc_secret_decrypt, ecc_secret_encrypt, make_credential,
    rsa_secret_decrypt, rsa_secret_encrypt, LABEL_IDENTITY,
};
use tpm_crypto::HashAlg;
use tpm_crypto::SymKey;
use zeroize::Zeroizing;

use crate::constants as c;
use crate::dispatch::Ctx;
use crate::engine::{Response, Tpm};
use crate::marshal::{Buffer, Marshal, Reader, Unmarshal};
use crate::object::{ecc_point, Loaded};
use crate::rc::{err, Rc, TpmResult};
use crate::types::{digest_size, Digest, EccPoint, EncryptedSecret, Name, Parms};
use crate::{tpm_params, tpm_response};

/// TPM2B_ID_OBJECT: TPM2B_DIGEST integrityHMAC || encIdentity (at most two digests).
pub type IdObject = Buffer<{ 2 * (2 + 64) }>;

tpm_params! {
    /// TPM2_MakeCredential parameters.
    pub struct MakeCredentialIn { pub credential: Digest, pub object_name: Name }
}

tpm_response! {
    /// TPM2_MakeCredential response parameters.
    pub struct MakeCredentialOut { pub credential_blob: IdObject, pub secret: EncryptedSecret }
}

tpm_params! {
    /// TPM2_ActivateCredential parameters.
    pub struct ActivateCredentialIn { pub credential_blob: IdObject, pub secret: EncryptedSecret }
}

tpm_response! {
    /// TPM2_ActivateCredential response parameters.
    pub struct ActivateCredentialOut { pub cert_info: Digest }
}

/// The nameAlg of `key` as a hash (TPM_RC_HASH if it has none).
pub(crate) fn name_hash(key: &Loaded) -> TpmResult<HashAlg> {
    HashAlg::from_tpm_alg(key.public.name_alg).ok_or(Rc(c::RC_HASH))
}

/// Share a fresh seed with the holder of `key`'s private part, under `label`:
/// returns the seed and the TPMU_ENCRYPTED_SECRET contents (the OAEP
/// ciphertext, or the marshalled ephemeral point). Unnumbered errors:
/// TPM_RC_KEY for an unusable public key, TPM_RC_TYPE for a symmetric object.
pub(crate) fn secret_encrypt(
    key: &Loaded,
    label: &[u8],
) -> TpmResult<(Zeroizing<Vec<u8>>, EncryptedSecret)> {
    let alg = name_hash(key)?;
    let mut rng = tpm_crypto::SystemRng;
    match key.public.parms {
        Parms::Rsa { .. } => {
            let public = key.rsa_public()?;
            let (seed, ct) =
                rsa_secret_encrypt(&public, alg, label, &mut rng).map_err(|_| Rc(c::RC_KEY))?;
            Ok((seed, Buffer(ct)))
        }
        Parms::Ecc { .. } => {
            let (seed, qe) =
                ecc_secret_encrypt(key.curve()?, &key.ecc_public()?, alg, label, &mut rng)
                    .map_err(|_| Rc(c::RC_KEY))?;
            Ok((seed, Buffer(ecc_point(&qe).to_bytes())))
        }
        _ => err(c::RC_TYPE),
    }
}

/// Recover the seed shared with `key` under `label` from `secret` (the
/// TPMU_ENCRYPTED_SECRET contents). Unnumbered errors as the reference TPM
/// gives them: RSA: TPM_RC_SIZE for a ciphertext that is not the modulus
/// size, TPM_RC_VALUE for one not below the modulus, TPM_RC_FAILURE when
/// OAEP decoding fails (libtpms's code); ECC: TPM_RC_INSUFFICIENT /
/// TPM_RC_SIZE for a point that does not unmarshal exactly, TPM_RC_ECC_POINT
/// for a point not on the curve, TPM_RC_NO_RESULT for the point at infinity.
pub(crate) fn secret_decrypt(
    key: &Loaded,
    label: &[u8],
    secret: &[u8],
) -> TpmResult<Zeroizing<Vec<u8>>> {
    let alg = name_hash(key)?;
    match key.public.parms {
        Parms::Rsa { .. } => {
            let private = key.rsa_key()?;
            if secret.len() != private.size() {
                return err(c::RC_SIZE);
            }
            // Same length: a big-endian comparison is a numeric one.
            if secret >= private.modulus().as_slice() {
                return err(c::RC_VALUE);
            }
            // libtpms answers a seed that does not OAEP-decode with TPM_RC_FAILURE.
            rsa_secret_decrypt(&private, alg, label, secret).map_err(|_| Rc(c::RC_FAILURE))
        }
        Parms::Ecc { .. } => {
            let private = key.ecc_key()?;
            let mut r = Reader::new(secret);
            let point = EccPoint::unmarshal(&mut r)?;
            r.finish()?;
            let qe = tpm_crypto::Point::new(&point.x.0, &point.y.0);
            if !tpm_crypto::ecc::is_on_curve(private.curve, &qe) {
                return err(c::RC_ECC_POINT);
            }
            ecc_secret_decrypt(&private, alg, label, &qe).map_err(|_| Rc(c::RC_NO_RESULT))
        }
        _ => err(c::RC_TYPE),
    }
}

/// Whether `key` can protect credentials and duplicates: an asymmetric,
/// restricted decryption key (a storage key).
fn is_asymmetric_storage(key: &Loaded) -> bool {
    matches!(key.public.parms, Parms::Rsa { .. } | Parms::Ecc { .. })
        && key
            .public
            .has(c::TPMA_OBJECT_RESTRICTED | c::TPMA_OBJECT_DECRYPT)
}

/// nameAlg and symmetric key (cipher and size) of a storage key protecting a
/// credential or duplicate (TPM_RC_TYPE, unnumbered, if it has no symmetric
/// algorithm).
pub(crate) fn protection_parms(key: &Loaded) -> TpmResult<(HashAlg, SymKey)> {
    let Some(sym) = key.public.parms.symmetric().sym_key() else {
        return err(c::RC_TYPE);
    };
    Ok((name_hash(key)?, sym))
}

/// TPM2_MakeCredential: the CA's side of credential protection, done by the
/// TPM with a loaded public key (no TPM secret is involved).
pub fn make_credential_cmd(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    let p = MakeCredentialIn::parse(&mut ctx.params)?;
    let key = tpm.object_at(ctx.handles[0], 1)?;
    if !is_asymmetric_storage(key) {
        return Err(Rc(c::RC_TYPE).handle(1));
    }
    let (alg, bits) = protection_parms(key).map_err(|e| e.handle(1))?;
    if p.credential.len() > alg.size() {
        return Err(Rc(c::RC_SIZE).param(1));
    }
    let (seed, secret) = secret_encrypt(key, LABEL_IDENTITY).map_err(|e| e.handle(1))?;
    let w = make_credential(alg, bits, &seed, &p.object_name.0, &p.credential.0)
        .map_err(|_| Rc(c::RC_FAILURE))?;
    let mut blob = Digest::new(&w.integrity)?.to_bytes();
    blob.extend_from_slice(&w.encrypted);
    Ok(Response::of(&MakeCredentialOut {
        credential_blob: IdObject::new(&blob)?,
        secret,
    }))
}

/// TPM2_ActivateCredential: recover the credential made for the object at
/// handle 1 with the storage key at handle 2.
pub fn activate_credential_cmd(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    let p = ActivateCredentialIn::parse(&mut ctx.params)?;
    let activate = tpm.object_at(ctx.handles[0], 1)?;
    let key = tpm.object_at(ctx.handles[1], 2)?;
    if !is_asymmetric_storage(key) {
        return Err(Rc(c::RC_TYPE).handle(2));
    }
    let (alg, bits) = protection_parms(key).map_err(|e| e.handle(2))?;
    let seed = secret_decrypt(key, LABEL_IDENTITY, &p.secret.0).map_err(|e| {
        // A key whose private part does not fit its public part is the TPM's fault.
        if e == Rc(c::RC_KEY) {
            Rc(c::RC_FAILURE)
        } else {
            e.param(2)
        }
    })?;
    let mut r = Reader::new(&p.credential_blob.0);
    let integrity = Digest::unmarshal(&mut r).map_err(|e| e.param(1))?;
    let cred = activate_credential(
        alg,
        bits,
        &seed,
        &activate.name,
        &integrity.0,
        r.remaining(),
    )
    .map_err(|e| match e {
        tpm_crypto::Error::Integrity => Rc(c::RC_INTEGRITY).param(1),
        _ => Rc(c::RC_SIZE).param(1),
    })?;
    if cred.len() > digest_size(c::ALG_SHA512) {
        return Err(Rc(c::RC_SIZE).param(1));
    }
    Ok(Response::of(&ActivateCredentialOut {
        cert_info: Buffer(cred.to_vec()),
    }))
}
