//! Duplication commands (Part 3 chapter 13): Duplicate, Rewrap and Import.
//!
//! A duplicate (Part 1 "Duplication") is the marshalled TPM2B_SENSITIVE,
//! optionally under an inner wrapper (AES-CFB with a caller or TPM key, led
//! by an integrity digest over the sensitive area and the Name, with the
//! object's nameAlg) and optionally under an outer wrapper (the storage
//! construction keyed by a seed shared with the new parent under the label
//! "DUPLICATE", with the new parent's nameAlg and symmetric key size).

use tpm_crypto::protect::{inner_unwrap, inner_wrap, outer_unwrap, outer_wrap, LABEL_DUPLICATE};
use zeroize::Zeroizing;

use super::credential::{protection_parms, secret_decrypt, secret_encrypt};
use crate::constants as c;
use crate::dispatch::Ctx;
use crate::engine::{Response, Tpm};
use crate::marshal::{Buffer, Marshal, Reader, Sized2b, Unmarshal};
use crate::object::attributes::{check_loaded, ParentAttrs};
use crate::object::protect::{check_binding, wrap};
use crate::object::Loaded;
use crate::rc::{Rc, TpmResult};
use crate::types::{
    object_name, Data, Digest, EncryptedSecret, Name, ObjectSym, Private, Public2b, SensitiveArea,
    SymDef, MAX_DIGEST,
};
use crate::{tpm_params, tpm_response};

tpm_params! {
    /// TPM2_Duplicate parameters.
    pub struct DuplicateIn { pub encryption_key_in: Data, pub symmetric_alg: ObjectSym }
}

tpm_response! {
    /// TPM2_Duplicate response parameters.
    pub struct DuplicateOut {
        pub encryption_key_out: Data,
        pub duplicate: Private,
        pub out_sym_seed: EncryptedSecret,
    }
}

tpm_params! {
    /// TPM2_Rewrap parameters.
    pub struct RewrapIn { pub in_duplicate: Private, pub name: Name, pub in_sym_seed: EncryptedSecret }
}

tpm_response! {
    /// TPM2_Rewrap response parameters.
    pub struct RewrapOut { pub out_duplicate: Private, pub out_sym_seed: EncryptedSecret }
}

tpm_params! {
    /// TPM2_Import parameters.
    pub struct ImportIn {
        pub encryption_key: Data,
        pub object_public: Public2b,
        pub duplicate: Private,
        pub in_sym_seed: EncryptedSecret,
        pub symmetric_alg: ObjectSym,
    }
}

tpm_response! {
    /// TPM2_Import response parameters.
    pub struct ImportOut { pub out_private: Private }
}

/// The object at `h` as a storage key (TPM_RC_TYPE on handle `n` otherwise);
/// `private`: its sensitive area must be loaded too.
fn storage_key(tpm: &Tpm, h: u32, n: u32, private: bool) -> TpmResult<&Loaded> {
    let k = tpm.object_at(h, n)?;
    if !k.public.is_storage() || (private && k.sensitive.is_none()) {
        return Err(Rc(c::RC_TYPE).handle(n));
    }
    Ok(k)
}

/// Outer-wrap `inner` for `parent` under a fresh shared seed:
/// TPM2B(outer HMAC) || encrypted, and the encrypted seed. Unnumbered errors.
fn outer_for(parent: &Loaded, name: &[u8], inner: &[u8]) -> TpmResult<(Private, EncryptedSecret)> {
    let (alg, bits) = protection_parms(parent)?;
    let (seed, secret) = secret_encrypt(parent, LABEL_DUPLICATE)?;
    let w = outer_wrap(alg, bits, &seed, name, inner).map_err(|_| Rc(c::RC_FAILURE))?;
    let mut out = Digest::new(&w.integrity)?.to_bytes();
    out.extend_from_slice(&w.encrypted);
    Ok((Private::new(&out)?, secret))
}

/// Remove the outer wrapper of `blob` made for `parent` with `seed`: checks
/// the integrity (TPM_RC_INTEGRITY) and returns the decrypted inner blob.
fn outer_open(
    parent: &Loaded,
    seed: &[u8],
    name: &[u8],
    blob: &[u8],
) -> TpmResult<Zeroizing<Vec<u8>>> {
    let (alg, bits) = protection_parms(parent)?;
    let mut r = Reader::new(blob);
    let integrity = Digest::unmarshal(&mut r)?;
    outer_unwrap(alg, bits, seed, name, &integrity.0, r.remaining())
        .map_err(|_| Rc(c::RC_INTEGRITY))
}

/// The inner wrapper key size in octets for `sym` (0 for NULL).
fn inner_key_len(sym: SymDef) -> usize {
    sym.key_bits() as usize / 8
}

/// The code for an inner wrapper that does not open, as libtpms reports it:
/// the decrypted leading TPM2B_DIGEST is first unmarshalled (TPM_RC_SIZE for
/// a size beyond a digest, TPM_RC_INSUFFICIENT when cut off), only then compared.
fn inner_fault(cipher: tpm_crypto::BlockCipher, key: &[u8], blob: &[u8]) -> Rc {
    let mut head = Zeroizing::new(blob.iter().take(2).copied().collect::<Vec<u8>>());
    let iv = vec![0u8; cipher.block_size()];
    if head.len() < 2 || tpm_crypto::sym::cfb(cipher, key, &iv, &mut head, false).is_err() {
        return Rc(c::RC_INSUFFICIENT);
    }
    let size = u16::from_be_bytes([head[0], head[1]]) as usize;
    if size > MAX_DIGEST {
        Rc(c::RC_SIZE)
    } else if size + 2 > blob.len() {
        Rc(c::RC_INSUFFICIENT)
    } else {
        Rc(c::RC_INTEGRITY)
    }
}

/// The TPM2B_SENSITIVE at the core of a duplicate: its size must be what
/// remains (TPM_RC_SIZE, as libtpms answers a duplicate that is not one).
fn sensitive_from_duplicate(plain: &[u8]) -> TpmResult<SensitiveArea> {
    let mut r = Reader::new(plain);
    let size = u16::unmarshal(&mut r)? as usize;
    if size != r.remaining().len() {
        return Err(Rc(c::RC_SIZE));
    }
    SensitiveArea::from_bytes(r.remaining())
}

/// TPM2_Duplicate: the object at handle 1 packaged for the new parent at
/// handle 2 (or TPM_RH_NULL: no outer wrapper).
pub fn duplicate(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    let p = DuplicateIn::parse(&mut ctx.params)?;
    let (object_h, parent_h) = (ctx.handles[0], ctx.handles[1]);
    let sym = p.symmetric_alg.0;
    let object = tpm.object_at(object_h, 1)?;
    if object.public.has(c::TPMA_OBJECT_FIXEDPARENT) {
        return Err(Rc(c::RC_ATTRIBUTES).handle(1));
    }
    let Some(hash) = tpm_crypto::HashAlg::from_tpm_alg(object.public.name_alg) else {
        return Err(Rc(c::RC_TYPE).handle(1));
    };
    let parent = if parent_h == c::RH_NULL {
        None
    } else {
        Some(storage_key(tpm, parent_h, 2, false)?)
    };
    if object.public.has(c::TPMA_OBJECT_ENCRYPTEDDUPLICATION) {
        if sym == SymDef::Null {
            return Err(Rc(c::RC_SYMMETRIC).param(2));
        }
        if parent.is_none() {
            return Err(Rc(c::RC_HIERARCHY).handle(2));
        }
    }
    let key_len = inner_key_len(sym);
    let given = p.encryption_key_in.len();
    // A NULL symmetricAlg has a key length of 0: no key may be given then.
    if given != 0 && given != key_len {
        return Err(Rc(c::RC_SIZE).param(1));
    }
    let sensitive = Zeroizing::new(Sized2b(object.sensitive()?.clone()).to_bytes());
    let mut key_out = Vec::new();
    let inner = if sym == SymDef::Null {
        sensitive.to_vec()
    } else {
        let key = if given == 0 {
            key_out = tpm_crypto::random_bytes(key_len);
            Zeroizing::new(key_out.clone())
        } else {
            Zeroizing::new(p.encryption_key_in.0.clone())
        };
        let cipher = sym.sym_key().ok_or(Rc(c::RC_SYMMETRIC))?.cipher;
        inner_wrap(hash, cipher, &key, &object.name, &sensitive).map_err(|_| Rc(c::RC_FAILURE))?
    };
    let (duplicate, out_sym_seed) = match parent {
        Some(parent) => outer_for(parent, &object.name, &inner).map_err(|e| e.handle(2))?,
        None => (Private::new(&inner)?, Buffer(Vec::new())),
    };
    Ok(Response::of(&DuplicateOut {
        encryption_key_out: Buffer(key_out),
        duplicate,
        out_sym_seed,
    }))
}

/// TPM2_Rewrap: move a duplicate's outer wrapper from the old parent at
/// handle 1 to the new parent at handle 2 (either may be TPM_RH_NULL).
pub fn rewrap(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    let p = RewrapIn::parse(&mut ctx.params)?;
    let (old_h, new_h) = (ctx.handles[0], ctx.handles[1]);
    // A seed comes with an old parent, and only then.
    if p.in_sym_seed.is_empty() != (old_h == c::RH_NULL) {
        return Err(Rc(c::RC_HANDLE).handle(1));
    }
    let inner = if old_h == c::RH_NULL {
        Zeroizing::new(p.in_duplicate.0.clone())
    } else {
        let old = storage_key(tpm, old_h, 1, true)?;
        let seed = secret_decrypt(old, LABEL_DUPLICATE, &p.in_sym_seed.0)
            .map_err(|_| Rc(c::RC_VALUE).param(3))?;
        outer_open(old, &seed, &p.name.0, &p.in_duplicate.0).map_err(|e| e.param(1))?
    };
    let (out_duplicate, out_sym_seed) = if new_h == c::RH_NULL {
        (Private::new(&inner)?, Buffer(Vec::new()))
    } else {
        let new = storage_key(tpm, new_h, 2, false)?;
        outer_for(new, &p.name.0, &inner).map_err(|e| e.handle(2))?
    };
    Ok(Response::of(&RewrapOut {
        out_duplicate,
        out_sym_seed,
    }))
}

/// TPM2_Import: a duplicate made for the storage key at handle 1, checked,
/// unwrapped and wrapped anew as an ordinary child of that key.
pub fn import(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    let p = ImportIn::parse(&mut ctx.params)?;
    let public = p.object_public.0;
    let sym = p.symmetric_alg.0;
    let enc_dup = public.has(c::TPMA_OBJECT_ENCRYPTEDDUPLICATION);
    if public.attributes & (c::TPMA_OBJECT_FIXEDTPM | c::TPMA_OBJECT_FIXEDPARENT) != 0 {
        return Err(Rc(c::RC_ATTRIBUTES).param(2));
    }
    let parent = storage_key(tpm, ctx.handles[0], 1, true)?;
    if sym == SymDef::Null {
        if !p.encryption_key.is_empty() {
            return Err(Rc(c::RC_SIZE).param(1));
        }
        // encryptedDuplication demands an inner wrapper...
        if enc_dup {
            return Err(Rc(c::RC_ATTRIBUTES).param(1));
        }
    } else if p.encryption_key.len() != inner_key_len(sym) {
        return Err(Rc(c::RC_SIZE).param(1));
    }
    let seed = if p.in_sym_seed.is_empty() {
        // ... and an outer one.
        if enc_dup {
            return Err(Rc(c::RC_ATTRIBUTES).param(4));
        }
        None
    } else {
        Some(secret_decrypt(parent, LABEL_DUPLICATE, &p.in_sym_seed.0).map_err(|e| e.param(4))?)
    };
    // Without a nameAlg there is no Name to bind the duplicate to.
    let Some(hash) = tpm_crypto::HashAlg::from_tpm_alg(public.name_alg) else {
        return Err(Rc(c::RC_HASH).param(2));
    };
    let name = object_name(&public, 0);
    let sensitive = (|| -> TpmResult<SensitiveArea> {
        let blob = match &seed {
            Some(seed) => outer_open(parent, seed, &name, &p.duplicate.0)?,
            None => Zeroizing::new(p.duplicate.0.clone()),
        };
        let plain = if sym == SymDef::Null {
            blob
        } else {
            let cipher = sym.sym_key().ok_or(Rc(c::RC_SYMMETRIC))?.cipher;
            inner_unwrap(hash, cipher, &p.encryption_key.0, &name, &blob)
                .map_err(|_| inner_fault(cipher, &p.encryption_key.0, &blob))?
        };
        sensitive_from_duplicate(&plain)
    })()
    .map_err(|e| e.param(3))?;
    check_loaded(
        &public,
        ParentAttrs {
            attributes: parent.public.attributes,
        },
    )
    .map_err(|e| e.param(2))?;
    // Binding faults are reported unnumbered, as the reference TPM's object
    // load reports them.
    check_binding(&public, &sensitive)?;
    let out_private = wrap(parent, &name, &sensitive)?;
    Ok(Response::of(&ImportOut { out_private }))
}
