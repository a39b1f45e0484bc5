//! Enhanced authorization (Part 3 chapter 23): the policy commands that
//! policy sessions are built with.

use crate::auth::session::Session;
use crate::constants as c;
use crate::dispatch::Ctx;
use crate::engine::{Response, Tpm};
use crate::marshal::{Buffer, Marshal};
use crate::rc::{err, Rc, TpmResult};
use crate::types::{digest_size, Digest, Nonce, Ticket};
use crate::{tpm_params, tpm_response};

tpm_params! {
    /// TPM2_PolicySecret parameters.
    pub struct PolicySecretIn { pub nonce_tpm: Nonce, pub cp_hash_a: Digest, pub policy_ref: Nonce, pub expiration: i32 }
}

tpm_response! {
    /// TPM2_PolicySecret response: TPM2B_TIMEOUT and TPMT_TK_AUTH.
    pub struct PolicySecretOut { pub timeout: Buffer<8>, pub ticket: Ticket }
}

tpm_params! {
    /// TPM2_PolicyCommandCode parameters.
    pub struct PolicyCommandCodeIn { pub code: u32 }
}

impl Tpm {
    /// The loaded policy session named in handle position `n` (1-based).
    fn policy_session(&mut self, h: u32, n: u32) -> TpmResult<&mut Session> {
        match self.powered()?.sessions.get_mut(h) {
            Some(s) if s.is_policy() => Ok(s),
            _ => Err(Rc(c::RC_HANDLE).handle(n)),
        }
    }
}

/// TPM2_PolicySecret: the caller proved knowledge of `authHandle`'s secret (the
/// authorization area did); bind that into the policy.
pub fn policy_secret(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    let p = PolicySecretIn::parse(&mut ctx.params)?;
    let (auth, sh) = (ctx.handles[0], ctx.handles[1]);
    let name = tpm.entity_name(auth);
    let s = tpm.policy_session(sh, 2)?;
    if !p.nonce_tpm.is_empty() && p.nonce_tpm.0 != s.nonce_tpm.0 {
        return Err(Rc(c::RC_VALUE).param(1));
    }
    if !p.cp_hash_a.is_empty() && p.cp_hash_a.len() != s.digest_len() {
        return Err(Rc(c::RC_SIZE).param(2));
    }
    if p.expiration != 0 {
        // Time-limited policies and their tickets (PolicyTicket) are not implemented.
        return Err(Rc(c::RC_VALUE).param(4));
    }
    if !p.cp_hash_a.is_empty() {
        if !s.cp_hash.is_empty() && s.cp_hash.0 != p.cp_hash_a.0 {
            return Err(Rc(c::RC_CPHASH).param(2));
        }
        s.cp_hash = p.cp_hash_a.clone();
    }
    s.policy_update(&[&c::CC_PolicySecret.to_be_bytes(), &name]);
    s.policy_update(&[p.policy_ref.as_slice()]);
    let ticket = Ticket {
        tag: c::ST_AUTH_SECRET,
        hierarchy: c::RH_NULL,
        digest: Buffer(Vec::new()),
    };
    Ok(Response::of(&PolicySecretOut {
        timeout: Buffer(Vec::new()),
        ticket,
    }))
}

/// TPM2_PolicyCommandCode: the policy authorizes only `code`.
pub fn policy_command_code(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    let p = PolicyCommandCodeIn::parse(&mut ctx.params)?;
    if crate::dispatch::lookup(p.code).is_none() {
        return Err(Rc(c::RC_POLICY_CC).param(1));
    }
    let s = tpm.policy_session(ctx.handles[0], 1)?;
    if s.command_code != 0 && s.command_code != p.code {
        return Err(Rc(c::RC_VALUE).param(1));
    }
    s.command_code = p.code;
    s.policy_update(&[
        &c::CC_PolicyCommandCode.to_be_bytes(),
        &p.code.to_be_bytes(),
    ]);
    Ok(Response::default())
}

/// TPM2_PolicyAuthValue: the authorizing HMAC must also prove the entity's authValue.
pub fn policy_auth_value(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    ctx.params.finish()?;
    let s = tpm.policy_session(ctx.handles[0], 1)?;
    s.policy_update(&[&c::CC_PolicyAuthValue.to_be_bytes()]);
    s.auth_value_needed = true;
    s.password_needed = false;
    Ok(Response::default())
}

/// TPM2_PolicyPassword: the authorization carries the entity's authValue in clear.
/// Its digest is PolicyAuthValue's, as Part 3 specifies.
pub fn policy_password(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    ctx.params.finish()?;
    let s = tpm.policy_session(ctx.handles[0], 1)?;
    s.policy_update(&[&c::CC_PolicyAuthValue.to_be_bytes()]);
    s.password_needed = true;
    s.auth_value_needed = false;
    Ok(Response::default())
}

/// TPM2_PolicyGetDigest.
pub fn policy_get_digest(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    ctx.params.finish()?;
    let s = tpm.policy_session(ctx.handles[0], 1)?;
    Ok(Response::params(s.policy_digest.to_bytes()))
}

/// TPM2_PolicyRestart.
pub fn policy_restart(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    ctx.params.finish()?;
    tpm.policy_session(ctx.handles[0], 1)?.reset_policy();
    Ok(Response::default())
}

tpm_params! {
    /// TPM2_SetPrimaryPolicy parameters.
    pub struct SetPrimaryPolicyIn { pub auth_policy: Digest, pub hash_alg: crate::types::AlgHashOrNull }
}

/// TPM2_SetPrimaryPolicy: a hierarchy's authPolicy (platform's lasts until Startup(CLEAR)).
pub fn set_primary_policy(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    let p = SetPrimaryPolicyIn::parse(&mut ctx.params)?;
    if p.auth_policy.len() != digest_size(p.hash_alg.0) {
        return Err(Rc(c::RC_SIZE).param(1));
    }
    let policy = crate::types::TaggedHash {
        alg: p.hash_alg.0,
        digest: p.auth_policy.0,
    };
    match ctx.handles[0] {
        c::RH_PLATFORM => tpm.powered()?.st.platform_policy = policy,
        c::RH_OWNER => tpm.perm.owner_policy = policy,
        c::RH_ENDORSEMENT => tpm.perm.endorsement_policy = policy,
        c::RH_LOCKOUT => tpm.perm.lockout_policy = policy,
        _ => return err(c::RC_VALUE),
    }
    if ctx.handles[0] != c::RH_PLATFORM {
        tpm.perm_dirty = true;
    }
    Ok(Response::default())
}
