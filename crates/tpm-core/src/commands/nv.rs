//! Non-volatile storage (Part 3 chapter 31), index lifetime and metadata:
//! NV_DefineSpace, NV_UndefineSpace, NV_UndefineSpaceSpecial, NV_ReadPublic,
//! NV_ChangeAuth and the locks (NV_WriteLock, NV_GlobalWriteLock,
//! NV_ReadLock). Data commands are in `nv_data`. Every change lands in
//! permanent state, which the pipeline makes durable before answering.

use crate::auth::trim_zeros;
use crate::constants as c;
use crate::dispatch::Ctx;
use crate::engine::{Response, Tpm};
use crate::marshal::{Buffer, Sized2b};
use crate::nv::is_nv_index;
use crate::rc::{err, Rc, TpmResult};
use crate::state::nv::{
    nt, NvIndex, NvPublic, MAX_NV_COUNTERS, MAX_NV_INDICES, NV_BUFFER_MAX, NV_INDEX_MAX, NV_SPACE,
};
use crate::types::{digest_size, is_hash, Auth};
use crate::{tpm_params, tpm_response};

tpm_params! {
    /// TPM2_NV_DefineSpace parameters.
    pub struct DefineSpaceIn { pub auth: Auth, pub public_info: Sized2b<NvPublic> }
}

tpm_response! {
    /// TPM2_NV_ReadPublic response.
    pub struct ReadPublicOut { pub nv_public: Sized2b<NvPublic>, pub nv_name: Buffer<{ 2 + 64 }> }
}

tpm_params! {
    /// TPM2_NV_ChangeAuth parameters.
    pub struct ChangeAuthIn { pub new_auth: Auth }
}

/// TPMA_NV bits that are reserved (TPM_RC_RESERVED_BITS when set).
const RESERVED: u32 = c::TPMA_NV_RESERVED1_MASK | c::TPMA_NV_RESERVED2_MASK;

/// The checks TPMI_RH_NV_INDEX, TPMI_ALG_HASH and TPMA_NV make when
/// TPMS_NV_PUBLIC is unmarshalled (unnumbered).
fn check_public_form(p: &NvPublic) -> TpmResult<()> {
    if !is_nv_index(p.nv_index) {
        return err(c::RC_VALUE);
    }
    if !is_hash(p.name_alg) {
        return err(c::RC_HASH);
    }
    if p.attributes & RESERVED != 0 {
        return err(c::RC_RESERVED_BITS);
    }
    Ok(())
}

/// The define-time consistency rules of Part 3 NV_DefineSpace, in its order;
/// `platform` says whether platform authorization is used.
fn check_define(p: &NvPublic, auth: &[u8], platform: bool) -> TpmResult<()> {
    let pi = |code: u32| Err(Rc(code).param(2));
    let name_size = digest_size(p.name_alg);
    let size = usize::from(p.data_size);
    if !p.auth_policy.is_empty() && p.auth_policy.len() != name_size {
        return pi(c::RC_SIZE);
    }
    if trim_zeros(auth).len() > name_size {
        return Err(Rc(c::RC_SIZE).param(1));
    }
    match p.nt() {
        nt::COUNTER | nt::BITS if size != 8 => return pi(c::RC_SIZE),
        nt::COUNTER if p.has(c::TPMA_NV_CLEAR_STCLEAR) => return pi(c::RC_ATTRIBUTES),
        nt::EXTEND if size != name_size => return pi(c::RC_SIZE),
        nt::PIN_FAIL | nt::PIN_PASS => {
            // A PIN Fail index counts its own failures, so DA must not too.
            if p.nt() == nt::PIN_FAIL && !p.has(c::TPMA_NV_NO_DA) {
                return pi(c::RC_ATTRIBUTES);
            }
            // The authValue is what the PIN protects: it may not write the index.
            let forbidden = c::TPMA_NV_AUTHWRITE | c::TPMA_NV_GLOBALLOCK | c::TPMA_NV_WRITEDEFINE;
            if p.attributes & forbidden != 0 {
                return pi(c::RC_ATTRIBUTES);
            }
            if size != 8 {
                return pi(c::RC_SIZE);
            }
        }
        nt::ORDINARY if size > NV_INDEX_MAX => return pi(c::RC_SIZE),
        nt::ORDINARY | nt::COUNTER | nt::BITS | nt::EXTEND => {}
        _ => return pi(c::RC_ATTRIBUTES),
    }
    if p.attributes & (c::TPMA_NV_WRITTEN | c::TPMA_NV_WRITELOCKED | c::TPMA_NV_READLOCKED) != 0 {
        return pi(c::RC_ATTRIBUTES);
    }
    let read =
        c::TPMA_NV_PPREAD | c::TPMA_NV_OWNERREAD | c::TPMA_NV_AUTHREAD | c::TPMA_NV_POLICYREAD;
    let write =
        c::TPMA_NV_PPWRITE | c::TPMA_NV_OWNERWRITE | c::TPMA_NV_AUTHWRITE | c::TPMA_NV_POLICYWRITE;
    if p.attributes & read == 0 || p.attributes & write == 0 {
        return pi(c::RC_ATTRIBUTES);
    }
    if p.has(c::TPMA_NV_CLEAR_STCLEAR) && p.has(c::TPMA_NV_WRITEDEFINE) {
        return pi(c::RC_ATTRIBUTES);
    }
    // The creator must be able to delete the index again.
    if p.has(c::TPMA_NV_PLATFORMCREATE) != platform {
        return Err(Rc(c::RC_ATTRIBUTES).handle(1));
    }
    if p.has(c::TPMA_NV_POLICY_DELETE) && !platform {
        return pi(c::RC_ATTRIBUTES);
    }
    if size > NV_BUFFER_MAX && p.has(c::TPMA_NV_WRITEALL) {
        return pi(c::RC_SIZE);
    }
    Ok(())
}

/// TPM2_NV_DefineSpace.
pub fn nv_define_space(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    let p = DefineSpaceIn::parse(&mut ctx.params)?;
    let public = p.public_info.0;
    check_public_form(&public).map_err(|e| e.param(2))?;
    let platform = ctx.handles[0] == c::RH_PLATFORM;
    if platform && !tpm.powered()?.st.ph_enable_nv {
        return Err(Rc(c::RC_HIERARCHY).handle(1));
    }
    check_define(&public, &p.auth.0, platform)?;
    if tpm.nv_index(public.nv_index).is_some() {
        return err(c::RC_NV_DEFINED);
    }
    let index = NvIndex {
        auth: Buffer(trim_zeros(&p.auth.0).to_vec()),
        // Never-written data reads as erased flash, as libtpms's does.
        data: Buffer(vec![0xFF; usize::from(public.data_size)]),
        public,
    };
    let nv = &tpm.perm.nv.indices.0;
    let used: usize = nv.iter().map(NvIndex::cost).sum();
    let counters = nv.iter().filter(|i| i.public.nt() == nt::COUNTER).count();
    if nv.len() >= MAX_NV_INDICES
        || used + index.cost() > NV_SPACE
        || (index.public.nt() == nt::COUNTER && counters >= MAX_NV_COUNTERS)
    {
        return err(c::RC_NV_SPACE);
    }
    tpm.perm.nv.indices.0.push(index);
    tpm.perm_dirty = true;
    Ok(Response::default())
}

/// TPM2_NV_UndefineSpace: the owner may remove owner indices, the platform any.
pub fn nv_undefine_space(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    ctx.params.finish()?;
    let (auth, h) = (ctx.handles[0], ctx.handles[1]);
    let attrs = tpm
        .nv_present(h)
        .map_err(|e| e.handle(2))?
        .public
        .attributes;
    if attrs & c::TPMA_NV_POLICY_DELETE != 0 {
        return Err(Rc(c::RC_ATTRIBUTES).handle(2));
    }
    if auth == c::RH_OWNER && attrs & c::TPMA_NV_PLATFORMCREATE != 0 {
        return err(c::RC_NV_AUTHORIZATION);
    }
    tpm.nv_remove_where(|i| i.public.nv_index == h);
    Ok(Response::default())
}

/// TPM2_NV_UndefineSpaceSpecial: remove a POLICY_DELETE index, authorized by
/// its policy (ADMIN role) and the platform.
pub fn nv_undefine_space_special(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    ctx.params.finish()?;
    let h = ctx.handles[0];
    let public = &tpm.nv_present(h).map_err(|e| e.handle(1))?.public;
    if !public.has(c::TPMA_NV_POLICY_DELETE) {
        return Err(Rc(c::RC_ATTRIBUTES).handle(1));
    }
    tpm.nv_remove_where(|i| i.public.nv_index == h);
    Ok(Response::default())
}

/// TPM2_NV_ReadPublic: the public area and the Name; no authorization.
pub fn nv_read_public(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    ctx.params.finish()?;
    let idx = tpm.nv_present(ctx.handles[0]).map_err(|e| e.handle(1))?;
    Ok(Response::of(&ReadPublicOut {
        nv_name: Buffer(idx.public.name()),
        nv_public: Sized2b(idx.public.clone()),
    }))
}

/// TPM2_NV_ChangeAuth: a new authValue (the response HMAC uses it already).
pub fn nv_change_auth(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    let p = ChangeAuthIn::parse(&mut ctx.params)?;
    let h = ctx.handles[0];
    let name_alg = tpm.nv_present(h).map_err(|e| e.handle(1))?.public.name_alg;
    let new = trim_zeros(&p.new_auth.0);
    if new.len() > digest_size(name_alg) {
        return Err(Rc(c::RC_SIZE).param(1));
    }
    if let Some(idx) = tpm.nv_index_mut(h) {
        idx.auth = Buffer(new.to_vec());
    }
    tpm.perm_dirty = true;
    Ok(Response::default())
}

/// Write authorization of `auth` for index `h` (Part 3 NvWriteAccessChecks):
/// locked is TPM_RC_NV_LOCKED; owner and platform need OWNERWRITE/PPWRITE,
/// another authorizing handle must be the index itself.
pub(crate) fn write_access(idx: &NvIndex, auth: u32, h: u32) -> TpmResult<()> {
    let p = &idx.public;
    if p.has(c::TPMA_NV_WRITELOCKED) {
        return err(c::RC_NV_LOCKED);
    }
    let allowed = match auth {
        c::RH_OWNER => p.has(c::TPMA_NV_OWNERWRITE),
        c::RH_PLATFORM => p.has(c::TPMA_NV_PPWRITE),
        _ => auth == h,
    };
    if allowed {
        Ok(())
    } else {
        err(c::RC_NV_AUTHORIZATION)
    }
}

/// Read authorization (Part 3 NvReadAccessChecks), then TPM_RC_NV_UNINITIALIZED
/// for an index never written (checked after the authorization so that
/// NV_ReadLock may lock an unwritten index).
pub(crate) fn read_access(idx: &NvIndex, auth: u32, h: u32) -> TpmResult<()> {
    let p = &idx.public;
    if p.has(c::TPMA_NV_READLOCKED) {
        return err(c::RC_NV_LOCKED);
    }
    let allowed = match auth {
        c::RH_OWNER => p.has(c::TPMA_NV_OWNERREAD),
        c::RH_PLATFORM => p.has(c::TPMA_NV_PPREAD),
        _ => auth == h,
    };
    if !allowed {
        return err(c::RC_NV_AUTHORIZATION);
    }
    if !p.has(c::TPMA_NV_WRITTEN) {
        return err(c::RC_NV_UNINITIALIZED);
    }
    Ok(())
}

/// TPM2_NV_WriteLock: SET WRITELOCKED on a WRITEDEFINE or WRITE_STCLEAR index.
pub fn nv_write_lock(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    ctx.params.finish()?;
    let (auth, h) = (ctx.handles[0], ctx.handles[1]);
    let idx = tpm.nv_present(h).map_err(|e| e.handle(2))?;
    match write_access(idx, auth, h) {
        Ok(()) => {}
        // Locking a locked index is no error.
        Err(Rc(c::RC_NV_LOCKED)) => return Ok(Response::default()),
        Err(e) => return Err(e),
    }
    if !idx.public.has(c::TPMA_NV_WRITEDEFINE) && !idx.public.has(c::TPMA_NV_WRITE_STCLEAR) {
        return Err(Rc(c::RC_ATTRIBUTES).handle(2));
    }
    if let Some(idx) = tpm.nv_index_mut(h) {
        idx.public.attributes |= c::TPMA_NV_WRITELOCKED;
    }
    tpm.perm_dirty = true;
    Ok(Response::default())
}

/// TPM2_NV_GlobalWriteLock: SET WRITELOCKED on every GLOBALLOCK index. Like
/// a WriteLock it lasts until the next Startup(CLEAR), permanently for a
/// written WRITEDEFINE index.
pub fn nv_global_write_lock(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    ctx.params.finish()?;
    for idx in tpm.perm.nv.indices.0.iter_mut() {
        if idx.public.has(c::TPMA_NV_GLOBALLOCK) {
            idx.public.attributes |= c::TPMA_NV_WRITELOCKED;
        }
    }
    tpm.perm_dirty = true;
    Ok(Response::default())
}

/// TPM2_NV_ReadLock: SET READLOCKED on a READ_STCLEAR index until Startup(CLEAR).
pub fn nv_read_lock(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    ctx.params.finish()?;
    let (auth, h) = (ctx.handles[0], ctx.handles[1]);
    let idx = tpm.nv_present(h).map_err(|e| e.handle(2))?;
    match read_access(idx, auth, h) {
        Ok(()) | Err(Rc(c::RC_NV_UNINITIALIZED)) => {}
        Err(Rc(c::RC_NV_LOCKED)) => return Ok(Response::default()),
        Err(e) => return Err(e),
    }
    if !idx.public.has(c::TPMA_NV_READ_STCLEAR) {
        return Err(Rc(c::RC_ATTRIBUTES).handle(2));
    }
    if let Some(idx) = tpm.nv_index_mut(h) {
        idx.public.attributes |= c::TPMA_NV_READLOCKED;
    }
    tpm.perm_dirty = true;
    Ok(Response::default())
}
