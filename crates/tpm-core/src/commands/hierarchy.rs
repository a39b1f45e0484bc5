//! Hierarchy commands (Part 3 chapter 24): HierarchyControl,
//! HierarchyChangeAuth, ChangePPS, ChangeEPS, Clear, ClearControl.
//! (CreatePrimary lives with the object commands, SetPrimaryPolicy with the
//! policy commands.)

use crate::auth::trim_zeros;
use crate::constants as c;
use crate::dispatch::Ctx;
use crate::engine::{Response, Tpm};
use crate::marshal::Buffer;
use crate::rc::{err, Rc, TpmResult};
use crate::tpm_params;
use crate::types::{Auth, TaggedHash};

tpm_params! {
    /// TPM2_HierarchyChangeAuth parameters.
    pub struct ChangeAuthIn { pub new_auth: Auth }
}

tpm_params! {
    /// TPM2_HierarchyControl parameters (`enable` is a TPMI_RH_ENABLES).
    pub struct HierarchyControlIn { pub enable: u32, pub state: bool }
}

tpm_params! {
    /// TPM2_ClearControl parameters.
    pub struct ClearControlIn { pub disable: bool }
}

fn no_policy() -> TaggedHash {
    TaggedHash {
        alg: c::ALG_NULL,
        digest: Vec::new(),
    }
}

impl Tpm {
    /// Flush the loaded objects of `hierarchy` and, with `persistent`, remove
    /// its persistent objects too (by the hierarchy an object belongs to, not
    /// by handle range: endorsement keys live in the owner's range).
    pub(crate) fn flush_hierarchy(&mut self, hierarchy: u32, persistent: bool) {
        if let Some(pw) = self.pw.as_mut() {
            pw.objects.flush_hierarchy(hierarchy);
        }
        if persistent {
            let before = self.perm.persistent.0.len();
            self.perm
                .persistent
                .0
                .retain(|p| p.object.hierarchy != hierarchy);
            self.perm_dirty |= self.perm.persistent.0.len() != before;
        }
    }
}

/// TPM2_HierarchyChangeAuth: lockout, owner and endorsement auths are
/// permanent; the platform auth lasts until the next Startup(CLEAR).
pub fn hierarchy_change_auth(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    let p = ChangeAuthIn::parse(&mut ctx.params)?;
    let auth = Buffer(trim_zeros(p.new_auth.as_slice()).to_vec());
    // No larger than the context integrity digest (SHA-512), trailing zeros aside.
    if auth.len() > 64 {
        return Err(Rc(c::RC_SIZE).param(1));
    }
    match ctx.handles[0] {
        c::RH_PLATFORM => tpm.powered()?.st.platform_auth = auth,
        c::RH_OWNER => {
            tpm.perm.owner_auth = auth;
            tpm.perm_dirty = true;
        }
        c::RH_ENDORSEMENT => {
            tpm.perm.endorsement_auth = auth;
            tpm.perm_dirty = true;
        }
        _ => {
            tpm.perm.lockout_auth = auth;
            tpm.perm_dirty = true;
        }
    }
    Ok(Response::default())
}

/// TPM2_HierarchyControl: the platform may clear any enable and set shEnable
/// and ehEnable; the owner and endorsement may only clear their own (setting
/// their own, already set, changes nothing). phEnable cannot be set: with it
/// clear the platform cannot authorize. A disabled hierarchy's loaded objects
/// are flushed; its persistent objects are hidden while it stays disabled.
pub fn hierarchy_control(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    let p = HierarchyControlIn::parse(&mut ctx.params)?;
    let auth = ctx.handles[0];
    let st = &tpm.powered()?.st;
    let current = match p.enable {
        c::RH_PLATFORM => st.ph_enable,
        c::RH_PLATFORM_NV => st.ph_enable_nv,
        c::RH_OWNER => st.sh_enable,
        c::RH_ENDORSEMENT => st.eh_enable,
        _ => return Err(Rc(c::RC_VALUE).param(1)),
    };
    let allowed = match p.enable {
        c::RH_PLATFORM | c::RH_PLATFORM_NV => auth == c::RH_PLATFORM,
        h => auth == c::RH_PLATFORM || (auth == h && (current || !p.state)),
    };
    if !allowed {
        return err(c::RC_AUTH_TYPE);
    }
    if current == p.state {
        return Ok(Response::default());
    }
    let st = &mut tpm.powered()?.st;
    match p.enable {
        c::RH_PLATFORM => st.ph_enable = p.state,
        c::RH_PLATFORM_NV => st.ph_enable_nv = p.state,
        c::RH_OWNER => st.sh_enable = p.state,
        _ => st.eh_enable = p.state,
    }
    if !p.state && p.enable != c::RH_PLATFORM_NV {
        tpm.flush_hierarchy(p.enable, false);
    }
    Ok(Response::default())
}

/// TPM2_ChangePPS: a new platform seed and proof (old platform contexts no
/// longer load), platformPolicy and the PCR policies back to none, platform
/// objects flushed, persistent ones removed. platformAuth is kept; platform
/// NV indices are kept (Part 3 24.4).
pub fn change_pps(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    ctx.params.finish()?;
    tpm.perm.pps = tpm.random_secret();
    tpm.perm.ph_proof = tpm.random_secret();
    for p in tpm.perm.pcr_policies.0.iter_mut() {
        p.policy = no_policy();
    }
    tpm.powered()?.st.platform_policy = no_policy();
    tpm.flush_hierarchy(c::RH_PLATFORM, true);
    tpm.primary_cache.clear();
    tpm.perm_dirty = true;
    Ok(Response::default())
}

/// TPM2_ChangeEPS: a new endorsement seed and proof, ehEnable set,
/// endorsementAuth and endorsementPolicy back to empty, endorsement objects
/// flushed, persistent ones removed.
pub fn change_eps(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    ctx.params.finish()?;
    tpm.perm.eps = tpm.random_secret();
    tpm.perm.eh_proof = tpm.random_secret();
    tpm.perm.endorsement_auth = Auth::default();
    tpm.perm.endorsement_policy = no_policy();
    tpm.powered()?.st.eh_enable = true;
    tpm.flush_hierarchy(c::RH_ENDORSEMENT, true);
    tpm.primary_cache.clear();
    tpm.perm_dirty = true;
    Ok(Response::default())
}

/// TPM2_Clear (Part 3 24.6): a new storage seed, new storage and endorsement
/// proofs; shEnable and ehEnable set; owner, endorsement and lockout auths and
/// policies back to empty; objects of both hierarchies flushed and their
/// persistent ones removed; owner NV indices removed; DA parameters back to
/// their defaults; Clock, resetCount and restartCount to zero. The response
/// of a lockout-authorized Clear is keyed with the new (empty) lockoutAuth.
pub fn clear(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    ctx.params.finish()?;
    if tpm.perm.disable_clear {
        return err(c::RC_DISABLED);
    }
    tpm.perm.sps = tpm.random_secret();
    tpm.perm.sh_proof = tpm.random_secret();
    tpm.perm.eh_proof = tpm.random_secret();
    tpm.perm.owner_auth = Auth::default();
    tpm.perm.endorsement_auth = Auth::default();
    tpm.perm.lockout_auth = Auth::default();
    tpm.perm.owner_policy = no_policy();
    tpm.perm.endorsement_policy = no_policy();
    tpm.perm.lockout_policy = no_policy();
    let pw = tpm.powered()?;
    pw.st.sh_enable = true;
    pw.st.eh_enable = true;
    pw.clock.set(0);
    pw.clock.safe = true;
    tpm.flush_hierarchy(c::RH_OWNER, true);
    tpm.flush_hierarchy(c::RH_ENDORSEMENT, true);
    crate::nv::clear_owner_indices(tpm);
    tpm.da_defaults();
    tpm.perm.clock = 0;
    tpm.perm.reset_count = 0;
    tpm.perm.restart_count = 0;
    tpm.primary_cache.clear();
    tpm.perm_dirty = true;
    Ok(Response::default())
}

/// TPM2_ClearControl: the platform may set or clear disableClear, lockoutAuth
/// may only set it (TPM_RC_AUTH_FAIL otherwise, as Part 3 says).
pub fn clear_control(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    let p = ClearControlIn::parse(&mut ctx.params)?;
    if ctx.handles[0] == c::RH_LOCKOUT && !p.disable {
        return err(c::RC_AUTH_FAIL);
    }
    tpm.perm.disable_clear = p.disable;
    tpm.perm_dirty = true;
    Ok(Response::default())
}
