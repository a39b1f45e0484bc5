//! The protection of an object's private area under its parent (Part 1
//! "Protected Storage"): TPM2B_PRIVATE = TPM2B(outer HMAC) || AES-CFB of the
//! TPM2B_SENSITIVE, keys derived with KDFa from the parent's seedValue and
//! the object's Name; and the binding check of a private area to its public one.

use tpm_crypto::protect::{outer_unwrap, outer_wrap};
use tpm_crypto::HashAlg;
use tpm_crypto::SymKey;

use super::Loaded;
use crate::constants as c;
use crate::marshal::{Buffer, Marshal, Reader, Sized2b, Unmarshal};
use crate::rc::{err, Rc, TpmResult};
use crate::types::{Digest, Parms, Private, PublicArea, SensitiveArea, Unique};

/// The parent's protection parameters: nameAlg, symmetric key (cipher and
/// size), seed.
fn parent_keys(parent: &Loaded) -> TpmResult<(HashAlg, SymKey, &[u8])> {
    let alg = HashAlg::from_tpm_alg(parent.public.name_alg).ok_or(Rc(c::RC_TYPE))?;
    let sym = parent.public.parms.symmetric().sym_key();
    let (true, Some(sym)) = (parent.public.is_storage(), sym) else {
        return err(c::RC_TYPE);
    };
    Ok((alg, sym, &parent.sensitive()?.seed_value.0))
}

/// Wrap `sensitive` of the object named `name` for storage under `parent`.
pub fn wrap(parent: &Loaded, name: &[u8], sensitive: &SensitiveArea) -> TpmResult<Private> {
    let (alg, bits, seed) = parent_keys(parent)?;
    let plain = zeroize::Zeroizing::new(Sized2b(sensitive.clone()).to_bytes());
    let w = outer_wrap(alg, bits, seed, name, &plain).map_err(|_| Rc(c::RC_FAILURE))?;
    let mut out = Buffer::<64>(w.integrity).to_bytes();
    out.extend_from_slice(&w.encrypted);
    Private::new(&out)
}

/// Check and decrypt a TPM2B_PRIVATE's contents made by [`wrap`] (or by a TSS
/// in software): TPM_RC_INTEGRITY when it was not made for this parent and name.
pub fn unwrap(parent: &Loaded, name: &[u8], private: &[u8]) -> TpmResult<SensitiveArea> {
    let (alg, bits, seed) = parent_keys(parent)?;
    let mut r = Reader::new(private);
    let integrity = Digest::unmarshal(&mut r).map_err(|_| Rc(c::RC_INTEGRITY))?;
    if integrity.len() != alg.size() {
        return err(c::RC_INTEGRITY);
    }
    let plain = outer_unwrap(alg, bits, seed, name, &integrity.0, r.remaining())
        .map_err(|_| Rc(c::RC_INTEGRITY))?;
    sensitive_from_2b(&plain)
}

/// Parse a marshalled TPM2B_SENSITIVE (TPM_RC_INTEGRITY if it is not one).
pub fn sensitive_from_2b(bytes: &[u8]) -> TpmResult<SensitiveArea> {
    Sized2b::<SensitiveArea>::from_bytes(bytes)
        .map(|s| s.0)
        .map_err(|_| Rc(c::RC_INTEGRITY))
}

/// Whether `sensitive` belongs to `public` (TPM_RC_BINDING otherwise): same
/// type, private key matching the public key, or unique = H(seed || secret).
pub fn check_binding(public: &PublicArea, sensitive: &SensitiveArea) -> TpmResult<()> {
    if sensitive.sensitive_type != public.type_alg() {
        return err(c::RC_TYPE);
    }
    let size = crate::types::digest_size(public.name_alg);
    if sensitive.auth_value.len() > size {
        return err(c::RC_SIZE);
    }
    let probe = Loaded::new(
        public.clone(),
        Some(sensitive.clone()),
        Vec::new(),
        c::RH_NULL,
    );
    let ok = match (&public.parms, &public.unique) {
        (Parms::Rsa { key_bits, .. }, Unique::Rsa(n)) => {
            n.len() * 8 == *key_bits as usize && probe.rsa_key().is_ok()
        }
        (Parms::Ecc { .. }, Unique::Ecc(_)) => match (probe.ecc_key(), probe.ecc_public()) {
            (Ok(k), Ok(p)) => {
                let want = tpm_crypto::ecc::normalize_point(k.curve, &p);
                want.is_ok_and(|p| p == k.public)
            }
            _ => false,
        },
        (_, Unique::Digest(d)) => {
            if public.is_storage() && sensitive.seed_value.len() != size {
                return err(c::RC_KEY_SIZE);
            }
            let expect = crate::crypto::digest(
                public.name_alg,
                &[&sensitive.seed_value.0, &sensitive.sensitive.0],
            );
            crate::crypto::ct_eq(&expect, &d.0)
        }
        _ => false,
    };
    if !ok {
        return err(c::RC_BINDING);
    }
    // A storage key needs a seed of its nameAlg's size.
    if public.is_storage() && sensitive.seed_value.len() != size {
        return err(c::RC_KEY_SIZE);
    }
    Ok(())
}
