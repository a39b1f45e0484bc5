//! Hierarchy commands (Part 3 chapter 24): HierarchyChangeAuth.

use crate::auth::trim_zeros;
use crate::constants as c;
use crate::dispatch::Ctx;
use crate::engine::{Response, Tpm};
use crate::marshal::Buffer;
use crate::rc::{Rc, TpmResult};
use crate::tpm_params;
use crate::types::Auth;

tpm_params! {
    /// TPM2_HierarchyChangeAuth parameters.
    pub struct ChangeAuthIn { pub new_auth: Auth }
}

/// TPM2_HierarchyChangeAuth: lockout, owner and endorsement auths are
/// permanent; the platform auth lasts until the next Startup(CLEAR).
pub fn hierarchy_change_auth(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    let p = ChangeAuthIn::parse(&mut ctx.params)?;
    // No larger than the context integrity digest (SHA-512), as the reference does.
    if p.new_auth.len() > 64 {
        return Err(Rc(c::RC_SIZE).param(1));
    }
    let auth = Buffer(trim_zeros(p.new_auth.as_slice()).to_vec());
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
