//! TPM2_EvictControl (Part 3 28.5): make a loaded object persistent, or
//! remove a persistent one. The change is in permanent state, which the
//! execute pipeline writes durably before the response leaves.

use crate::auth::entity::is_persistent;
use crate::constants as c;
use crate::dispatch::Ctx;
use crate::engine::{Response, Tpm};
use crate::rc::{Rc, TpmResult};
use crate::state::permanent::{PersistentObject, MAX_PERSISTENT};
use crate::tpm_params;

tpm_params! {
    /// TPM2_EvictControl parameters.
    pub struct EvictIn { pub persistent_handle: u32 }
}

/// Whether `auth` may own persistent handle `h`: the owner the lower half of
/// the range, the platform the upper half.
fn in_range(auth: u32, h: u32) -> bool {
    const PLATFORM_FIRST: u32 = 0x8180_0000;
    const PERSISTENT_LAST: u32 = 0x81FF_FFFF;
    match auth {
        c::RH_OWNER => (c::PERSISTENT_FIRST..PLATFORM_FIRST).contains(&h),
        c::RH_PLATFORM => (PLATFORM_FIRST..=PERSISTENT_LAST).contains(&h),
        _ => false,
    }
}

/// TPM2_EvictControl.
pub fn evict_control(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    let p = EvictIn::parse(&mut ctx.params)?;
    let (auth, h) = (ctx.handles[0], ctx.handles[1]);
    let target = p.persistent_handle;
    if !is_persistent(target) {
        return Err(Rc(c::RC_VALUE).param(1));
    }
    let obj = tpm.object_at(h, 2)?.clone();
    // The owner may not act on platform objects, nor the platform on others' handles.
    if auth == c::RH_OWNER && obj.hierarchy == c::RH_PLATFORM {
        return Err(Rc(c::RC_HIERARCHY).handle(2));
    }
    if is_persistent(h) {
        if h != target {
            return Err(Rc(c::RC_HANDLE).param(1));
        }
        if !in_range(auth, h) {
            return Err(Rc(c::RC_RANGE).handle(2));
        }
        tpm.perm.persistent.0.retain(|p| p.handle != h);
        tpm.perm_dirty = true;
        return Ok(Response::default());
    }
    if obj.sensitive.is_none() || obj.hierarchy == c::RH_NULL {
        // Public-only and null-hierarchy objects cannot outlive a reset.
        return Err(Rc(if obj.sensitive.is_none() {
            c::RC_ATTRIBUTES
        } else {
            c::RC_HIERARCHY
        })
        .handle(2));
    }
    if obj.public.has(c::TPMA_OBJECT_STCLEAR) {
        return Err(Rc(c::RC_ATTRIBUTES).handle(2));
    }
    if !in_range(auth, target) {
        return Err(Rc(c::RC_RANGE).param(1));
    }
    if tpm.persistent(target).is_some() {
        return Err(Rc(c::RC_NV_DEFINED).param(1));
    }
    if tpm.perm.persistent.0.len() >= MAX_PERSISTENT {
        return Err(Rc(c::RC_NV_SPACE));
    }
    tpm.perm.persistent.0.push(PersistentObject {
        handle: target,
        object: obj,
    });
    tpm.perm_dirty = true;
    Ok(Response::default())
}
