//! Consistency rules of public areas (Part 1 "Object Attributes" and Part 2
//! TPMA_OBJECT): attribute combinations, schemes that fit the key's use, and
//! what a parent allows. Codes are unnumbered; callers number them.

use crate::constants as c;
use crate::rc::{err, TpmResult};
use crate::types::{digest_size, is_sig_scheme, Parms, PublicArea, Scheme, SymDef};

const FIXED_TPM: u32 = c::TPMA_OBJECT_FIXEDTPM;
const FIXED_PARENT: u32 = c::TPMA_OBJECT_FIXEDPARENT;
const ENC_DUP: u32 = c::TPMA_OBJECT_ENCRYPTEDDUPLICATION;
const RESTRICTED: u32 = c::TPMA_OBJECT_RESTRICTED;
const DECRYPT: u32 = c::TPMA_OBJECT_DECRYPT;
const SIGN: u32 = c::TPMA_OBJECT_SIGN_ENCRYPT;

/// What the parent of an object looks like for the attribute rules: a
/// hierarchy counts as a fixedTPM parent without encryptedDuplication.
#[derive(Debug, Clone, Copy)]
pub struct ParentAttrs {
    /// The parent's TPMA_OBJECT (FIXED_TPM for a hierarchy).
    pub attributes: u32,
}

impl ParentAttrs {
    /// A hierarchy as parent (primary objects).
    pub const HIERARCHY: ParentAttrs = ParentAttrs {
        attributes: FIXED_TPM | FIXED_PARENT,
    };
}

/// The fixedTPM / fixedParent / encryptedDuplication rules against the parent.
fn lineage(a: u32, parent: ParentAttrs) -> TpmResult<()> {
    let p = parent.attributes;
    if p & FIXED_TPM != 0 {
        // fixedTPM and fixedParent must agree.
        if (a & FIXED_TPM != 0) != (a & FIXED_PARENT != 0) {
            return err(c::RC_ATTRIBUTES);
        }
    } else {
        if a & FIXED_TPM != 0 {
            return err(c::RC_ATTRIBUTES);
        }
        if (a & ENC_DUP != 0) != (p & ENC_DUP != 0) {
            return err(c::RC_ATTRIBUTES);
        }
    }
    if a & FIXED_TPM != 0 && a & ENC_DUP != 0 {
        return err(c::RC_ATTRIBUTES);
    }
    Ok(())
}

/// A storage parent needs a cipher; its mode does not matter because private
/// areas are always protected in CFB mode (Part 1), so libtpms accepts any.
fn storage_symmetric(sym: SymDef) -> TpmResult<()> {
    match sym {
        SymDef::Cipher { .. } => Ok(()),
        _ => err(c::RC_SYMMETRIC),
    }
}

/// Scheme and attribute rules of the key type (the reference's SchemeChecks).
fn scheme_checks(p: &PublicArea) -> TpmResult<()> {
    let a = p.attributes;
    let (restricted, decrypt, sign) = (a & RESTRICTED != 0, a & DECRYPT != 0, a & SIGN != 0);
    // A restricted key is for signing or for decryption, not both or neither;
    // only a data object (KEYEDHASH) may be neither.
    if restricted && sign == decrypt {
        return err(c::RC_ATTRIBUTES);
    }
    if !sign && !decrypt && !matches!(p.parms, Parms::KeyedHash { .. }) {
        return err(c::RC_ATTRIBUTES);
    }
    match &p.parms {
        Parms::KeyedHash { scheme } => {
            // As libtpms: an HMAC key has the HMAC scheme, a derivation or
            // XOR key the XOR scheme; a data object, or a key that both signs
            // and decrypts, none (the hash is chosen at use).
            let want = if sign == decrypt {
                c::ALG_NULL
            } else if sign {
                c::ALG_HMAC
            } else {
                c::ALG_XOR
            };
            if scheme.alg != want {
                return err(c::RC_SCHEME);
            }
        }
        Parms::SymCipher { sym } => {
            // `sign` on a symmetric cipher key means "may encrypt"
            // (TPM2_EncryptDecrypt), as in libtpms.
            if restricted && decrypt {
                storage_symmetric(*sym)?;
            }
        }
        Parms::Rsa {
            symmetric, scheme, ..
        }
        | Parms::Ecc {
            symmetric, scheme, ..
        } => {
            let ecc = matches!(p.parms, Parms::Ecc { .. });
            if !sign && !decrypt {
                return err(c::RC_ATTRIBUTES);
            }
            if let Parms::Ecc { kdf, .. } = &p.parms {
                if !kdf.is_null() {
                    return err(c::RC_KDF);
                }
            }
            if restricted && decrypt {
                storage_symmetric(*symmetric)?;
                if !scheme.is_null() {
                    return err(c::RC_SCHEME);
                }
                return Ok(());
            }
            if *symmetric != SymDef::Null {
                return err(c::RC_SYMMETRIC);
            }
            let fits = |s: Scheme| {
                if sign && decrypt {
                    s.is_null()
                } else if sign {
                    if s.is_null() {
                        !restricted
                    } else {
                        is_sig_scheme(s.alg) && s.alg != c::ALG_HMAC
                    }
                } else if ecc {
                    matches!(s.alg, c::ALG_NULL | c::ALG_ECDH | c::ALG_ECMQV | c::ALG_SM2)
                } else {
                    matches!(s.alg, c::ALG_NULL | c::ALG_RSAES | c::ALG_OAEP)
                }
            };
            if !fits(*scheme) {
                return err(c::RC_SCHEME);
            }
            // An RSA signing scheme must be an RSA one, an ECC one an ECC one.
            let family_ok = match scheme.alg {
                c::ALG_RSASSA | c::ALG_RSAPSS => !ecc,
                c::ALG_ECDSA | c::ALG_ECDAA | c::ALG_SM2 | c::ALG_ECSCHNORR => ecc,
                _ => true,
            };
            if !family_ok {
                return err(c::RC_SCHEME);
            }
        }
    }
    Ok(())
}

/// Rules for a template given to Create, CreatePrimary or CreateLoaded, with
/// the sizes of the caller's authValue and sensitive data.
/// `Err((rc, in_sensitive))`: whether the fault is in inSensitive (else inPublic).
pub fn check_template(
    p: &PublicArea,
    parent: ParentAttrs,
    auth_len: usize,
    data_len: usize,
) -> Result<(), (u32, bool)> {
    if !p.parms.symmetric().offered() {
        return Err((c::RC_VALUE, false));
    }
    common_template_rules(p, parent, auth_len)?;
    let origin = p.has(c::TPMA_OBJECT_SENSITIVEDATAORIGIN);
    let asymmetric = matches!(p.parms, Parms::Rsa { .. } | Parms::Ecc { .. });
    // The TPM always makes asymmetric keys itself; caller data is then only
    // extra input to a primary's generator (as libtpms accepts it).
    if asymmetric {
        if !origin {
            return Err((c::RC_ATTRIBUTES, false));
        }
    } else if origin == (data_len != 0) {
        return Err((c::RC_ATTRIBUTES, false));
    }
    match &p.parms {
        // A data object (neither sign nor decrypt) must bring its data.
        Parms::KeyedHash { .. } if data_len == 0 && !p.has(SIGN) && !p.has(DECRYPT) => {
            Err((c::RC_ATTRIBUTES, false))
        }
        Parms::SymCipher { sym } if data_len != 0 && data_len * 8 != sym.key_bits() as usize => {
            Err((c::RC_KEY_SIZE, true))
        }
        _ => Ok(()),
    }
}

/// Rules for a template given to CreateLoaded under a derivation parent: the
/// key comes from the parent's secret, so sensitiveDataOrigin must be CLEAR
/// and no data may be given (libtpms' codes, unnumbered); only ECC and
/// symmetric/keyed-hash objects can be derived (an RSA prime search is not a
/// derivation).
pub fn check_derived(
    p: &PublicArea,
    parent: ParentAttrs,
    auth_len: usize,
    data_len: usize,
) -> Result<(), (u32, bool)> {
    if matches!(p.parms, Parms::Rsa { .. }) {
        return Err((c::RC_TYPE, false));
    }
    if p.has(c::TPMA_OBJECT_SENSITIVEDATAORIGIN) {
        return Err((c::RC_ATTRIBUTES | UNNUMBERED, false));
    }
    if data_len != 0 {
        return Err((c::RC_SIZE | UNNUMBERED, false));
    }
    common_template_rules(p, parent, auth_len)
}

/// The rules every creation template obeys: a nameAlg, a policy and an
/// authValue of its size at most, the lineage and scheme rules.
fn common_template_rules(
    p: &PublicArea,
    parent: ParentAttrs,
    auth_len: usize,
) -> Result<(), (u32, bool)> {
    let public = |rc: crate::rc::Rc| (rc.0, false);
    let hash_size = digest_size(p.name_alg);
    if hash_size == 0 {
        return Err((c::RC_HASH, false));
    }
    if !p.auth_policy.is_empty() && p.auth_policy.len() != hash_size {
        return Err((c::RC_SIZE, false));
    }
    if auth_len > hash_size {
        return Err((c::RC_SIZE, true));
    }
    lineage(p.attributes, parent).map_err(public)?;
    scheme_checks(p).map_err(public)
}

/// Marks a code the caller must not number (see [`check_derived`]).
pub const UNNUMBERED: u32 = 0x8000_0000;

/// Whether `p` is a derivation parent: a restricted decryption keyed-hash object.
pub fn is_derivation_parent(p: &PublicArea) -> bool {
    matches!(p.parms, Parms::KeyedHash { .. }) && p.has(RESTRICTED | DECRYPT) && !p.has(SIGN)
}

/// Rules for a public area loaded with its private part under `parent`
/// (TPM2_Load, TPM2_Import's result).
pub fn check_loaded(p: &PublicArea, parent: ParentAttrs) -> TpmResult<()> {
    if digest_size(p.name_alg) == 0 {
        return err(c::RC_HASH);
    }
    if !p.auth_policy.is_empty() && p.auth_policy.len() != digest_size(p.name_alg) {
        return err(c::RC_SIZE);
    }
    lineage(p.attributes, parent)?;
    scheme_checks(p)
}

/// Rules for TPM2_LoadExternal: with a private part the object may be neither
/// fixedTPM nor fixedParent; a public-only object may be fixedTPM only with
/// fixedParent (Part 2, TPMA_OBJECT "External").
pub fn check_external(p: &PublicArea, with_private: bool) -> TpmResult<()> {
    let a = p.attributes;
    if with_private && a & (FIXED_TPM | FIXED_PARENT) != 0 {
        return err(c::RC_ATTRIBUTES);
    }
    if !with_private && a & FIXED_TPM != 0 && a & FIXED_PARENT == 0 {
        return err(c::RC_ATTRIBUTES);
    }
    if with_private && digest_size(p.name_alg) == 0 {
        return err(c::RC_HASH);
    }
    if !p.auth_policy.is_empty()
        && digest_size(p.name_alg) != 0
        && p.auth_policy.len() != digest_size(p.name_alg)
    {
        return err(c::RC_SIZE);
    }
    scheme_checks(p)
}
