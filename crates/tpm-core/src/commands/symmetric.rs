//! Symmetric primitives (Part 3 chapter 15): EncryptDecrypt, EncryptDecrypt2,
//! HMAC and HMAC_Start. The HMAC sequence HMAC_Start opens is completed by
//! the SequenceUpdate/SequenceComplete of `hash`.
//!
//! Where Part 3 rev 1.16 and libtpms differ, this follows libtpms (the later
//! specification): an EncryptDecrypt key must be unrestricted and have
//! `decrypt` SET to decrypt and `sign` SET to encrypt (TPM_RC_ATTRIBUTES), and
//! a mode other than the key's is TPM_RC_MODE rather than TPM_RC_VALUE.
//! libtpms serves the HMAC and HMAC_Start codes as TPM2_MAC and MAC_Start,
//! which share them: hashAlg is a TPMI_ALG_MAC_SCHEME+ and the key choice
//! follows its MAC selection (see `hmac_key`).

use crate::constants as c;
use crate::crypto::{aes_crypt, Hmac};
use crate::dispatch::Ctx;
use crate::engine::objects::{Object, Sequence};
use crate::engine::{Response, Tpm};
use crate::marshal::Buffer;
use crate::object::Loaded;
use crate::rc::{Rc, TpmResult};
use crate::types::{is_hash, Auth, Digest, MaxBuffer, Parms, SymDef, YesNo};
use crate::{tpm_interface, tpm_params, tpm_response};

/// The AES block size: the size of every IV but ECB's (none).
const BLOCK: usize = 16;

/// TPM2B_IV.
pub type Iv = Buffer<BLOCK>;

tpm_interface! {
    /// TPMI_ALG_CIPHER_MODE+: a block cipher mode or TPM_ALG_NULL (the key's mode).
    pub struct CipherMode(u16), error = c::RC_MODE,
    accept = |m| matches!(m, c::ALG_CTR | c::ALG_OFB | c::ALG_CBC | c::ALG_CFB | c::ALG_ECB | c::ALG_NULL)
}

tpm_params! {
    /// TPM2_EncryptDecrypt parameters.
    pub struct EncryptDecryptIn { pub decrypt: YesNo, pub mode: CipherMode, pub iv_in: Iv, pub in_data: MaxBuffer }
}

tpm_params! {
    /// TPM2_EncryptDecrypt2 parameters (inData first, so it can be parameter-encrypted).
    pub struct EncryptDecrypt2In { pub in_data: MaxBuffer, pub decrypt: YesNo, pub mode: CipherMode, pub iv_in: Iv }
}

tpm_response! {
    /// TPM2_EncryptDecrypt and TPM2_EncryptDecrypt2 response.
    pub struct EncryptDecryptOut { pub out_data: MaxBuffer, pub iv_out: Iv }
}

tpm_interface! {
    /// TPMI_ALG_MAC_SCHEME+: a hash (HMAC) or TPM_ALG_NULL (the key's). libtpms
    /// serves these command codes as TPM2_MAC/MAC_Start, whose parameter this
    /// is; anything else is TPM_RC_SYMMETRIC there (no SMAC is implemented here).
    pub struct MacScheme(u16), error = c::RC_SYMMETRIC, accept = |a| a == c::ALG_NULL || is_hash(a)
}

tpm_params! {
    /// TPM2_HMAC parameters.
    pub struct HmacIn { pub buffer: MaxBuffer, pub hash_alg: MacScheme }
}

tpm_response! {
    /// TPM2_HMAC response.
    pub struct HmacOut { pub out_hmac: Digest }
}

tpm_params! {
    /// TPM2_HMAC_Start parameters.
    pub struct HmacStartIn { pub auth: Auth, pub hash_alg: MacScheme }
}

/// Parameter numbers of EncryptDecrypt's fields, which differ between the two commands.
struct Numbers {
    mode: u32,
    iv_in: u32,
    in_data: u32,
}

/// One encryption or decryption with the SYMCIPHER key at handle 1.
fn encrypt_decrypt(
    key: &Loaded,
    decrypt: bool,
    mode_in: u16,
    iv: &[u8],
    data: &[u8],
    n: Numbers,
) -> TpmResult<EncryptDecryptOut> {
    let Parms::SymCipher {
        sym: SymDef::Aes {
            bits,
            mode: key_mode,
        },
    } = key.public.parms
    else {
        return Err(Rc(c::RC_KEY).handle(1));
    };
    let a = key.public.attributes;
    let allowed = if decrypt {
        c::TPMA_OBJECT_DECRYPT
    } else {
        c::TPMA_OBJECT_SIGN_ENCRYPT
    };
    if a & c::TPMA_OBJECT_RESTRICTED != 0 || a & allowed == 0 {
        return Err(Rc(c::RC_ATTRIBUTES).handle(1));
    }
    // The key's mode rules when it has one; the caller may only repeat it.
    let mode = match (key_mode, mode_in) {
        (c::ALG_NULL, c::ALG_NULL) => return Err(Rc(c::RC_MODE).param(n.mode)),
        (c::ALG_NULL, m) => m,
        (k, m) if m == c::ALG_NULL || m == k => k,
        _ => return Err(Rc(c::RC_MODE).param(n.mode)),
    };
    let iv_size = if mode == c::ALG_ECB { 0 } else { BLOCK };
    if iv.len() != iv_size {
        return Err(Rc(c::RC_SIZE).param(n.iv_in));
    }
    if matches!(mode, c::ALG_CBC | c::ALG_ECB) && data.len() % BLOCK != 0 {
        return Err(Rc(c::RC_SIZE).param(n.in_data));
    }
    let secret = &key.sensitive().map_err(|e| e.handle(1))?.sensitive.0;
    if secret.len() * 8 != bits as usize {
        return Err(Rc(c::RC_KEY).handle(1));
    }
    let (out, iv_out) = aes_crypt(mode, secret, iv, data, decrypt).ok_or(Rc(c::RC_FAILURE))?;
    Ok(EncryptDecryptOut {
        out_data: Buffer(out),
        iv_out: Buffer(iv_out),
    })
}

/// TPM2_EncryptDecrypt.
pub fn encrypt_decrypt1(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    let p = EncryptDecryptIn::parse(&mut ctx.params)?;
    let key = tpm.object_at(ctx.handles[0], 1)?;
    let n = Numbers {
        mode: 2,
        iv_in: 3,
        in_data: 4,
    };
    let out = encrypt_decrypt(
        key,
        p.decrypt.0 == 1,
        p.mode.0,
        p.iv_in.as_slice(),
        p.in_data.as_slice(),
        n,
    )?;
    Ok(Response::of(&out))
}

/// TPM2_EncryptDecrypt2: EncryptDecrypt with inData first.
pub fn encrypt_decrypt2(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    let p = EncryptDecrypt2In::parse(&mut ctx.params)?;
    let key = tpm.object_at(ctx.handles[0], 1)?;
    let n = Numbers {
        mode: 3,
        iv_in: 4,
        in_data: 1,
    };
    let out = encrypt_decrypt(
        key,
        p.decrypt.0 == 1,
        p.mode.0,
        p.iv_in.as_slice(),
        p.in_data.as_slice(),
        n,
    )?;
    Ok(Response::of(&out))
}

/// The HMAC key at handle 1 and the hash to use, with libtpms's checks and
/// their order: the key's own MAC algorithm (a keyed-hash key's scheme hash,
/// a symmetric key's mode) must equal hashAlg when both are given, one of them
/// must be (TPM_RC_VALUE); the result must be a MAC this key can compute
/// (TPM_RC_SCHEME: only HMAC with a keyed-hash key, as SMAC is not
/// implemented); then the key must be unrestricted (TPM_RC_ATTRIBUTES) and
/// a signing key (TPM_RC_KEY).
fn hmac_key(tpm: &Tpm, h: u32, mac_in: u16) -> TpmResult<(Vec<u8>, u16)> {
    let key = tpm.object_at(h, 1)?;
    let (key_mac, keyed_hash) = match &key.public.parms {
        Parms::KeyedHash { scheme } => (scheme.hash, true),
        Parms::SymCipher {
            sym: SymDef::Aes { mode, .. },
        } => (*mode, false),
        _ => return Err(Rc(c::RC_TYPE).handle(1)),
    };
    let alg = match (key_mac, mac_in) {
        (c::ALG_NULL, c::ALG_NULL) => return Err(Rc(c::RC_VALUE).param(2)),
        (k, c::ALG_NULL) => k,
        (k, m) if k == c::ALG_NULL || k == m => m,
        _ => return Err(Rc(c::RC_VALUE).param(2)),
    };
    if !keyed_hash || !is_hash(alg) {
        return Err(Rc(c::RC_SCHEME).param(2));
    }
    if key.public.has(c::TPMA_OBJECT_RESTRICTED) {
        return Err(Rc(c::RC_ATTRIBUTES).handle(1));
    }
    if !key.public.has(c::TPMA_OBJECT_SIGN_ENCRYPT) {
        return Err(Rc(c::RC_KEY).handle(1));
    }
    let bits = key
        .sensitive()
        .map_err(|e| e.handle(1))?
        .sensitive
        .0
        .clone();
    Ok((bits, alg))
}

/// TPM2_HMAC: the HMAC of `buffer` under a KEYEDHASH signing key.
pub fn hmac(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    let p = HmacIn::parse(&mut ctx.params)?;
    let (key, alg) = hmac_key(tpm, ctx.handles[0], p.hash_alg.0)?;
    let mut m = Hmac::new(alg, &key).ok_or(Rc(c::RC_FAILURE))?;
    m.update(p.buffer.as_slice());
    Ok(Response::of(&HmacOut {
        out_hmac: Buffer(m.finish()),
    }))
}

/// TPM2_HMAC_Start: an HMAC sequence object keyed with the key's bits.
pub fn hmac_start(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    let p = HmacStartIn::parse(&mut ctx.params)?;
    let (key, alg) = hmac_key(tpm, ctx.handles[0], p.hash_alg.0)?;
    let m = Hmac::new(alg, &key).ok_or(Rc(c::RC_FAILURE))?;
    let seq = Sequence {
        auth: p.auth,
        hashers: Vec::new(),
        hmac: Some(m),
        event: false,
        started: false,
        ticket_ok: false,
    };
    let handle = tpm.powered()?.objects.insert(Object::Sequence(seq))?;
    Ok(Response {
        handle: Some(handle),
        params: Vec::new(),
    })
}
