//! Making the sensitive area and public key of a new object from a checked
//! template: from the system RNG (TPM2_Create) or, for primary objects, from
//! a KDFa stream keyed with the hierarchy's seed and the template, so the
//! same seed and template always give the same key.

use std::collections::VecDeque;

use rand::{CryptoRng, RngCore};
use tpm_crypto::{EccKey, HashAlg, KdfaRng, RsaKey};

use super::ecc_point;
use crate::constants as c;
use crate::marshal::{Buffer, Marshal};
use crate::rc::{Rc, TpmResult};
use crate::types::{
    digest_size, object_name, Parms, PublicArea, SensitiveArea, SensitiveCreate, Unique,
};

/// Label of the primary-object generator (Part 1, "Primary Object Creation").
const PRIMARY_LABEL: &[u8] = b"Primary Object Creation";

fn random<R: RngCore>(rng: &mut R, n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    rng.fill_bytes(&mut v);
    v
}

/// Fill `public.unique` and return the sensitive area of a new object made
/// from `public` (already checked) and the caller's `create` values.
pub fn generate<R: RngCore + CryptoRng>(
    public: &mut PublicArea,
    create: &SensitiveCreate,
    rng: &mut R,
) -> TpmResult<SensitiveArea> {
    let hash_size = digest_size(public.name_alg);
    let mut s = SensitiveArea {
        sensitive_type: public.type_alg(),
        auth_value: create.user_auth.clone(),
        seed_value: Buffer(Vec::new()),
        sensitive: Buffer(Vec::new()),
    };
    // Storage parents get a seed; keyed-hash and symmetric objects get an
    // obfuscation value that hides their secret in `unique`.
    let needs_seed = public.is_storage()
        || matches!(
            public.parms,
            Parms::KeyedHash { .. } | Parms::SymCipher { .. }
        );
    match &public.parms {
        Parms::Rsa {
            key_bits, exponent, ..
        } => {
            let key = RsaKey::generate(*key_bits as usize, *exponent, rng)
                .map_err(|_| Rc(c::RC_RANGE))?;
            public.unique = Unique::Rsa(Buffer(key.modulus()));
            s.sensitive = Buffer(key.prime().to_vec());
        }
        Parms::Ecc { curve, .. } => {
            let curve = tpm_crypto::Curve::from_tpm(*curve).ok_or(Rc(c::RC_CURVE))?;
            let key = EccKey::generate(curve, rng);
            public.unique = Unique::Ecc(ecc_point(&key.public));
            s.sensitive = Buffer(key.d.to_vec());
        }
        Parms::SymCipher { sym } => {
            s.sensitive = if create.data.is_empty() {
                let mut key = random(rng, sym.key_bits() as usize / 8);
                if matches!(
                    sym,
                    crate::types::SymDef::Cipher {
                        alg: c::ALG_TDES,
                        ..
                    }
                ) {
                    // DES keys carry a parity bit per octet: made odd, as the
                    // reference TPM makes them.
                    tpm_crypto::sym::des_odd_parity(&mut key);
                }
                Buffer(key)
            } else {
                Buffer(create.data.0.clone())
            };
        }
        Parms::KeyedHash { scheme } => {
            s.sensitive = if create.data.is_empty() {
                let alg = if scheme.is_null() {
                    public.name_alg
                } else {
                    scheme.hash
                };
                Buffer(random(rng, digest_size(alg)))
            } else {
                Buffer(create.data.0.clone())
            };
        }
    }
    if needs_seed {
        s.seed_value = Buffer(random(rng, hash_size));
    }
    if let Parms::KeyedHash { .. } | Parms::SymCipher { .. } = public.parms {
        public.unique = Unique::Digest(Buffer(crate::crypto::digest(
            public.name_alg,
            &[&s.seed_value.0, &s.sensitive.0],
        )));
    }
    Ok(s)
}

/// A generated primary object, kept so the same request is answered without
/// generating again.
#[derive(Clone)]
struct CachedPrimary {
    key: Vec<u8>,
    public: PublicArea,
    sensitive: SensitiveArea,
}

/// The last few primary objects derived. Entries are keyed by a digest of
/// the seed, template and sensitive data, so a changed seed never hits.
#[derive(Default)]
pub struct PrimaryCache {
    entries: VecDeque<CachedPrimary>,
}

/// Entries kept (a TPM typically re-creates a handful of primaries: SRK, EK...).
const CACHE_ENTRIES: usize = 8;

impl PrimaryCache {
    /// Forget everything (a seed changed).
    pub fn clear(&mut self) {
        self.entries.clear();
    }
}

/// Derive the primary object of `seed` for `public` (the template, already
/// checked) and `create`: deterministic, cached.
pub fn derive_primary(
    cache: &mut PrimaryCache,
    seed: &[u8],
    public: &mut PublicArea,
    create: &SensitiveCreate,
) -> TpmResult<SensitiveArea> {
    let hash = HashAlg::from_tpm_alg(public.name_alg).ok_or(Rc(c::RC_HASH))?;
    let template_name = object_name(public, 0);
    let key = crate::crypto::digest(
        c::ALG_SHA256,
        &[seed, &public.to_bytes(), &create.to_bytes()],
    );
    if let Some(hit) = cache.entries.iter().find(|e| e.key == key) {
        *public = hit.public.clone();
        return Ok(hit.sensitive.clone());
    }
    // The caller's authValue is not key material: the same template gives the
    // same key whatever authValue it is given.
    let mut rng = KdfaRng::with_contexts(hash, seed, PRIMARY_LABEL, &template_name, &create.data.0);
    let sensitive = generate(public, create, &mut rng)?;
    if cache.entries.len() >= CACHE_ENTRIES {
        cache.entries.pop_front();
    }
    cache.entries.push_back(CachedPrimary {
        key,
        public: public.clone(),
        sensitive: sensitive.clone(),
    });
    Ok(sensitive)
}
