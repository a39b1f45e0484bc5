//! Session commands (Part 3 chapter 11): StartAuthSession.

use rand::RngCore;

use crate::auth::session::{bound_digest, Session};
use crate::constants as c;
use crate::dispatch::Ctx;
use crate::engine::{Response, Tpm};
use crate::marshal::{Buffer, Marshal};
use crate::rc::{Rc, TpmResult};
use crate::tpm_params;
use crate::types::{digest_size, AlgHash, EncryptedSecret, Nonce, SessionSym, SymDef};

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

/// TPM2_StartAuthSession: HMAC sessions, unsalted, bound or unbound.
/// Salted sessions need a loaded key (the object commands) and policy
/// sessions the policy commands; until then they are refused with the
/// code that names the unsupported input.
pub fn start_auth_session(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    let p = StartIn::parse(&mut ctx.params)?;
    let (tpm_key, bind) = (ctx.handles[0], ctx.handles[1]);
    if tpm_key == c::RH_NULL && !p.encrypted_salt.is_empty() {
        return Err(Rc(c::RC_VALUE).param(2));
    }
    if !matches!(p.session_type, c::SE_HMAC | c::SE_POLICY | c::SE_TRIAL) {
        return Err(Rc(c::RC_VALUE).param(3));
    }
    if let SymDef::Aes { mode, .. } = p.symmetric.0 {
        if mode != c::ALG_CFB {
            return Err(Rc(c::RC_MODE).param(4));
        }
    }
    let alg = p.auth_hash.0;
    let n = digest_size(alg);
    if p.nonce_caller.len() < 16 || p.nonce_caller.len() > n {
        return Err(Rc(c::RC_SIZE).param(1));
    }
    if tpm_key != c::RH_NULL {
        // Only sequence objects can be loaded yet, and they cannot decrypt a salt.
        return Err(Rc(c::RC_KEY).handle(1));
    }
    let handle = tpm.powered()?.sessions.allocate(p.session_type)?;
    let mut nonce_tpm = vec![0u8; n];
    tpm.rng.fill_bytes(&mut nonce_tpm);
    let (session_key, bound_entity) = if bind == c::RH_NULL {
        (Vec::new(), Vec::new())
    } else {
        let auth = tpm.entity_auth(bind).ok_or(Rc(c::RC_HANDLE).handle(2))?;
        let hash = tpm_crypto::HashAlg::from_tpm_alg(alg).ok_or(Rc(c::RC_HASH).param(5))?;
        let key = tpm_crypto::session::session_key(
            hash,
            crate::auth::trim_zeros(&auth),
            &[],
            &nonce_tpm,
            p.nonce_caller.as_slice(),
        )
        .to_vec();
        (key, bound_digest(alg, &tpm.entity_name(bind), &auth))
    };
    let (sym_alg, sym_bits) = match p.symmetric.0 {
        SymDef::Null => (c::ALG_NULL, 0),
        SymDef::Aes { bits, .. } => (c::ALG_AES, bits),
        SymDef::Xor { hash } => (c::ALG_XOR, hash),
    };
    let s = Session {
        handle,
        kind: p.session_type,
        auth_hash: alg,
        session_key: Buffer(session_key),
        nonce_tpm: Buffer(nonce_tpm.clone()),
        sym_alg,
        sym_bits,
        bound_entity: Buffer(bound_entity),
        policy_digest: Buffer(vec![0; n]),
        command_code: 0,
        auth_value_needed: false,
        password_needed: false,
        cp_hash: Buffer(Vec::new()),
    };
    tpm.powered()?.sessions.loaded.0.push(s);
    Ok(Response {
        handle: Some(handle),
        params: Buffer::<64>(nonce_tpm).to_bytes(),
    })
}
