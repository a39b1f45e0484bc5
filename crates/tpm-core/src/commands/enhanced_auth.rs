//! Enhanced authorization (Part 3 chapter 23): the policy session lookup
//! and digest update every policy command shares, and the assertions that
//! only record a condition (command code, cpHash, Names, locality, physical
//! presence, template, NV written state, authValue/password) or combine
//! policies (PolicyOR). Signed authorizations are in `policy_signed.rs`,
//! conditions on TPM state in `policy_state.rs`, authorized policies in
//! `policy_authorize.rs`.

use crate::auth::session::Session;
use crate::constants as c;
use crate::dispatch::Ctx;
use crate::engine::{Response, Tpm};
use crate::marshal::{Buffer, List};
use crate::rc::{err, Rc, TpmResult};
use crate::types::{digest_size, Digest, Name};
use crate::{tpm_params, tpm_response};

tpm_params! {
    /// TPM2_PolicyCommandCode parameters.
    pub struct PolicyCommandCodeIn { pub code: u32 }
}

tpm_params! {
    /// TPM2_PolicyOR parameters: 2 to 8 branch digests.
    pub struct PolicyOrIn { pub hash_list: List<Digest, 8> }
}

tpm_params! {
    /// TPM2_PolicyLocality parameters (TPMA_LOCALITY).
    pub struct PolicyLocalityIn { pub locality: u8 }
}

tpm_params! {
    /// TPM2_PolicyCpHash parameters.
    pub struct PolicyCpHashIn { pub cp_hash_a: Digest }
}

tpm_params! {
    /// TPM2_PolicyNameHash parameters.
    pub struct PolicyNameHashIn { pub name_hash: Digest }
}

tpm_params! {
    /// TPM2_PolicyDuplicationSelect parameters.
    pub struct PolicyDuplicationSelectIn { pub object_name: Name, pub new_parent_name: Name, pub include_object: u8 }
}

tpm_params! {
    /// TPM2_PolicyNvWritten parameters (TPMI_YES_NO).
    pub struct PolicyNvWrittenIn { pub written_set: u8 }
}

tpm_params! {
    /// TPM2_PolicyTemplate parameters.
    pub struct PolicyTemplateIn { pub template_hash: Digest }
}

tpm_response! {
    /// TPM2_PolicyGetDigest response.
    pub struct PolicyGetDigestOut { pub policy_digest: Digest }
}

impl Tpm {
    /// The loaded policy session named in handle position `n` (1-based).
    pub(crate) fn policy_session(&mut self, h: u32, n: u32) -> TpmResult<&mut Session> {
        match self.powered()?.sessions.get_mut(h) {
            Some(s) if s.is_policy() => Ok(s),
            _ => Err(Rc(c::RC_HANDLE).handle(n)),
        }
    }
}

/// A TPMI_YES_NO parameter (`n`: its number): TPM_RC_VALUE unless 0 or 1.
pub(crate) fn yes_no(v: u8, n: u32) -> TpmResult<bool> {
    match v {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(Rc(c::RC_VALUE).param(n)),
    }
}

/// Part 3 23.2.3 PolicyUpdate: extend with commandCode || Name, then with `reference`.
pub(crate) fn policy_update_named(s: &mut Session, cc: u32, name: &[u8], reference: &[u8]) {
    s.policy_update(&[&cc.to_be_bytes(), name]);
    s.policy_update(&[reference]);
}

/// TPM2_PolicyCommandCode: the policy authorizes only `code`.
pub fn policy_command_code(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    let p = PolicyCommandCodeIn::parse(&mut ctx.params)?;
    let s = tpm.policy_session(ctx.handles[0], 1)?;
    if s.command_code != 0 && s.command_code != p.code {
        return Err(Rc(c::RC_VALUE).param(1));
    }
    if crate::dispatch::lookup(p.code).is_none() {
        return Err(Rc(c::RC_POLICY_CC).param(1));
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
    Ok(Response::of(&PolicyGetDigestOut {
        policy_digest: s.policy_digest.clone(),
    }))
}

/// TPM2_PolicyRestart: back to the initial policy state (same nonceTPM and start time).
pub fn policy_restart(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    ctx.params.finish()?;
    tpm.policy_session(ctx.handles[0], 1)?.reset_policy();
    Ok(Response::default())
}

/// TPM2_PolicyOR: the current digest must be one of the branches (a trial
/// session assumes it is); the new digest covers all of them.
pub fn policy_or(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    let p = PolicyOrIn::parse(&mut ctx.params)?;
    if p.hash_list.0.len() < 2 {
        return Err(Rc(c::RC_SIZE).param(1));
    }
    let s = tpm.policy_session(ctx.handles[0], 1)?;
    if !s.is_trial() && !p.hash_list.0.iter().any(|d| d.0 == s.policy_digest.0) {
        return Err(Rc(c::RC_VALUE).param(1));
    }
    let mut all: Vec<u8> = Vec::new();
    for d in &p.hash_list.0 {
        all.extend_from_slice(d.as_slice());
    }
    s.policy_digest = Buffer(vec![0; s.digest_len()]);
    s.policy_update(&[&c::CC_PolicyOR.to_be_bytes(), &all]);
    Ok(Response::default())
}

/// TPM2_PolicyLocality: keep only the localities named (an extended locality
/// above 31 stands alone).
pub fn policy_locality(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    let p = PolicyLocalityIn::parse(&mut ctx.params)?;
    let s = tpm.policy_session(ctx.handles[0], 1)?;
    let (old, new) = (s.locality, p.locality);
    let next = if new > 31 {
        if old != 0 && old != new {
            return Err(Rc(c::RC_RANGE).param(1));
        }
        new
    } else {
        if old > 31 {
            return Err(Rc(c::RC_RANGE).param(1));
        }
        let m = if old == 0 { new } else { old & new };
        if m == 0 {
            return Err(Rc(c::RC_RANGE).param(1));
        }
        m
    };
    s.locality = next;
    s.policy_update(&[&c::CC_PolicyLocality.to_be_bytes(), &[new]]);
    Ok(Response::default())
}

/// TPM2_PolicyPhysicalPresence: physical presence must be asserted when the policy is used.
pub fn policy_physical_presence(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    ctx.params.finish()?;
    let s = tpm.policy_session(ctx.handles[0], 1)?;
    s.pp_required = true;
    s.policy_update(&[&c::CC_PolicyPhysicalPresence.to_be_bytes()]);
    Ok(Response::default())
}

/// TPM2_PolicyCpHash: the policy authorizes only the command with this cpHash.
pub fn policy_cp_hash(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    let p = PolicyCpHashIn::parse(&mut ctx.params)?;
    let s = tpm.policy_session(ctx.handles[0], 1)?;
    if p.cp_hash_a.len() != s.digest_len() {
        return Err(Rc(c::RC_SIZE).param(1));
    }
    s.bind_cp_hash(p.cp_hash_a.as_slice())?;
    s.policy_update(&[&c::CC_PolicyCpHash.to_be_bytes(), p.cp_hash_a.as_slice()]);
    Ok(Response::default())
}

/// TPM2_PolicyNameHash: the policy authorizes only a command on these handles.
pub fn policy_name_hash(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    let p = PolicyNameHashIn::parse(&mut ctx.params)?;
    let s = tpm.policy_session(ctx.handles[0], 1)?;
    if p.name_hash.len() != s.digest_len() {
        return Err(Rc(c::RC_SIZE).param(1));
    }
    s.bind_name_hash(p.name_hash.as_slice())?;
    s.policy_update(&[&c::CC_PolicyNameHash.to_be_bytes(), p.name_hash.as_slice()]);
    Ok(Response::default())
}

/// TPM2_PolicyDuplicationSelect: the policy authorizes only TPM2_Duplicate of
/// `objectName` to `newParentName` (the object's Name in the digest only when
/// `includeObject`).
pub fn policy_duplication_select(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    let p = PolicyDuplicationSelectIn::parse(&mut ctx.params)?;
    let include = yes_no(p.include_object, 3)?;
    let s = tpm.policy_session(ctx.handles[0], 1)?;
    if !s.cp_hash.is_empty() || !s.name_hash.is_empty() || !s.template_hash.is_empty() {
        return err(c::RC_CPHASH);
    }
    if s.command_code != 0 && s.command_code != c::CC_Duplicate {
        return err(c::RC_COMMAND_CODE);
    }
    let name_hash = crate::crypto::digest(
        s.auth_hash,
        &[p.object_name.as_slice(), p.new_parent_name.as_slice()],
    );
    s.name_hash = Buffer(name_hash);
    let cc = c::CC_PolicyDuplicationSelect.to_be_bytes();
    let object: &[u8] = if include {
        p.object_name.as_slice()
    } else {
        &[]
    };
    s.policy_update(&[
        &cc,
        object,
        p.new_parent_name.as_slice(),
        &[p.include_object],
    ]);
    s.command_code = c::CC_Duplicate;
    Ok(Response::default())
}

/// TPM2_PolicyNvWritten: the authorized NV index must (not) have been written.
pub fn policy_nv_written(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    let p = PolicyNvWrittenIn::parse(&mut ctx.params)?;
    let want = yes_no(p.written_set, 1)?;
    let s = tpm.policy_session(ctx.handles[0], 1)?;
    if s.nv_written.is_some_and(|w| w != want) {
        return Err(Rc(c::RC_VALUE).param(1));
    }
    s.nv_written = Some(want);
    s.policy_update(&[&c::CC_PolicyNvWritten.to_be_bytes(), &[p.written_set]]);
    Ok(Response::default())
}

/// TPM2_PolicyTemplate: the policy authorizes only the creation of an object
/// from the template with this digest.
pub fn policy_template(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    let p = PolicyTemplateIn::parse(&mut ctx.params)?;
    let s = tpm.policy_session(ctx.handles[0], 1)?;
    if !s.cp_hash.is_empty() || !s.name_hash.is_empty() {
        return err(c::RC_CPHASH);
    }
    if !s.template_hash.is_empty() && s.template_hash.0 != p.template_hash.0 {
        return Err(Rc(c::RC_VALUE).param(1));
    }
    if p.template_hash.len() != s.digest_len() {
        return Err(Rc(c::RC_SIZE).param(1));
    }
    s.template_hash = p.template_hash.clone();
    s.policy_update(&[
        &c::CC_PolicyTemplate.to_be_bytes(),
        p.template_hash.as_slice(),
    ]);
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
