//! Session commands (Part 3 chapter 11): StartAuthSession, with salts
//! decrypted by a loaded RSA or ECC decrypt key.

use rand::RngCore;

use crate::auth::session::{bound_digest, Session};
use crate::constants as c;
use crate::dispatch::Ctx;
use crate::engine::{Response, Tpm};
use crate::marshal::{Buffer, Marshal};
use crate::marshal::{Reader, Unmarshal};
use crate::object::Loaded;
use crate::rc::{Rc, TpmResult};
use crate::tpm_params;
use crate::types::{
    digest_size, AlgHash, EccPoint, EncryptedSecret, Nonce, Parms, SessionSym, SymDef,
};
use tpm_crypto::protect::{ecc_secret_decrypt, rsa_secret_decrypt};
use tpm_crypto::{HashAlg, Point};
use zeroize::Zeroizing;

/// The label of salt sharing (Part 1 "SECRET"; the terminating zero is added
/// by the secret-sharing functions).
const LABEL_SECRET: &[u8] = b"SECRET";

tpm_params! {
    /// TPM2_StartAuthSession parameters.
    pub struct StartIn {
        pub nonce_caller: Nonce,
        pub encrypted_salt: EncryptedSecret,
        pub session_type: u8,
        pub symmetric: SessionSym,
        pub auth_hash: AlgHash,
    }
}

/// TPM2_StartAuthSession: HMAC, policy and trial sessions, salted or not,
/// bound or not. Checks in the order of Part 3: nonce size, the salt key and
/// the salt, the bind entity, the symmetric mode.
pub fn start_auth_session(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    let p = StartIn::parse(&mut ctx.params)?;
    let (tpm_key, bind) = (ctx.handles[0], ctx.handles[1]);
    if !matches!(p.session_type, c::SE_HMAC | c::SE_POLICY | c::SE_TRIAL) {
        return Err(Rc(c::RC_VALUE).param(3));
    }
    let alg = p.auth_hash.0;
    let n = digest_size(alg);
    let hash = HashAlg::from_tpm_alg(alg).ok_or(Rc(c::RC_HASH).param(5))?;
    if p.nonce_caller.len() < 16 || p.nonce_caller.len() > n {
        return Err(Rc(c::RC_SIZE).param(1));
    }
    let salt = if tpm_key == c::RH_NULL {
        if !p.encrypted_salt.is_empty() {
            return Err(Rc(c::RC_VALUE).param(2));
        }
        None
    } else {
        // The pipeline has checked the handle is loaded: no key here means a
        // sequence object, which is no asymmetric key.
        let key = tpm.object(tpm_key).ok_or(Rc(c::RC_KEY).handle(1))?;
        Some(decrypt_salt(key, p.encrypted_salt.as_slice())?)
    };
    let bind_auth = if bind == c::RH_NULL {
        None
    } else if tpm.nv_index(bind).is_some_and(|i| i.public.is_pin()) {
        // A PIN index's authValue is only usable while pinCount < pinLimit:
        // binding to it would bypass the count.
        return Err(Rc(c::RC_HANDLE).handle(2));
    } else {
        // A public-only object (LoadExternal) has no authValue to contribute.
        Some(tpm.entity_auth(bind).ok_or(Rc(c::RC_HANDLE).handle(2))?)
    };
    if !p.symmetric.0.offered() {
        return Err(Rc(c::RC_VALUE).param(4));
    }
    if let SymDef::Cipher { mode, .. } = p.symmetric.0 {
        if mode != c::ALG_CFB {
            return Err(Rc(c::RC_MODE).param(4));
        }
    }
    let handle = tpm.powered()?.sessions.allocate(p.session_type)?;
    let mut nonce_tpm = vec![0u8; n];
    tpm.rng.fill_bytes(&mut nonce_tpm);
    // Only a session that is neither bound nor salted has the empty sessionKey.
    let session_key = if bind_auth.is_none() && salt.is_none() {
        Vec::new()
    } else {
        tpm_crypto::session::session_key(
            hash,
            crate::auth::trim_zeros(bind_auth.as_deref().unwrap_or_default()),
            salt.as_deref().map(|s| s.as_slice()).unwrap_or_default(),
            &nonce_tpm,
            p.nonce_caller.as_slice(),
        )
        .to_vec()
    };
    let bound_entity = match &bind_auth {
        Some(auth) => bound_digest(alg, &tpm.entity_name(bind), auth),
        None => Vec::new(),
    };
    let (sym_alg, sym_bits) = match p.symmetric.0 {
        SymDef::Null => (c::ALG_NULL, 0),
        SymDef::Cipher { alg, bits, .. } => (alg, bits),
        SymDef::Xor { hash } => (c::ALG_XOR, hash),
    };
    let pw = tpm.powered()?;
    let mut s = Session {
        handle,
        kind: p.session_type,
        auth_hash: alg,
        session_key: Buffer(session_key),
        nonce_tpm: Buffer(nonce_tpm.clone()),
        sym_alg,
        sym_bits,
        bound_entity: Buffer(bound_entity),
        start_time: pw.clock.time(),
        epoch: pw.epoch,
        ..Default::default()
    };
    // The policy context starts as PolicyRestart leaves it.
    s.reset_policy();
    pw.sessions.loaded.0.push(s);
    Ok(Response {
        handle: Some(handle),
        params: Buffer::<64>(nonce_tpm).to_bytes(),
    })
}

/// The salt of a salted session: `encrypted` decrypted with the asymmetric
/// decrypt key `key` under the label "SECRET" (Part 1 secret sharing). The key
/// type is checked first (TPM_RC_KEY for a keyedHash or symmetric object, as
/// libtpms does), then the salt's presence, the private part and the decrypt
/// attribute; every failure of the decryption itself is TPM_RC_VALUE on
/// encryptedSalt.
fn decrypt_salt(key: &Loaded, encrypted: &[u8]) -> TpmResult<Zeroizing<Vec<u8>>> {
    let ecc = match key.public.parms {
        Parms::Rsa { .. } => false,
        Parms::Ecc { .. } => true,
        _ => return Err(Rc(c::RC_KEY).handle(1)),
    };
    if encrypted.is_empty() {
        return Err(Rc(c::RC_VALUE).param(2));
    }
    if key.sensitive.is_none() {
        return Err(Rc(c::RC_HANDLE).handle(1));
    }
    if !key.public.has(c::TPMA_OBJECT_DECRYPT) {
        return Err(Rc(c::RC_ATTRIBUTES).handle(1));
    }
    let bad_salt = || Rc(c::RC_VALUE).param(2);
    let name_alg = HashAlg::from_tpm_alg(key.public.name_alg).ok_or_else(bad_salt)?;
    if ecc {
        let point = EccPoint::unmarshal(&mut Reader::new(encrypted)).map_err(|_| bad_salt())?;
        let qe = Point::new(&point.x.0, &point.y.0);
        let k = key.ecc_key().map_err(|_| bad_salt())?;
        ecc_secret_decrypt(&k, name_alg, LABEL_SECRET, &qe).map_err(|_| bad_salt())
    } else {
        // OAEP with the key's own OAEP hash, or with its nameAlg when the key
        // has no scheme; a key with another scheme (RSAES) cannot take a salt.
        let scheme = key.public.parms.scheme();
        let hash = match scheme.alg {
            c::ALG_NULL => name_alg,
            c::ALG_OAEP => HashAlg::from_tpm_alg(scheme.hash).ok_or_else(bad_salt)?,
            _ => return Err(bad_salt()),
        };
        let k = key.rsa_key().map_err(|_| bad_salt())?;
        rsa_secret_decrypt(&k, hash, LABEL_SECRET, encrypted).map_err(|_| bad_salt())
    }
}
