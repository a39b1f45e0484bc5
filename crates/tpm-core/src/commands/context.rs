//! Context management (Part 3 chapter 28): FlushContext.

use crate::constants as c;
use crate::dispatch::Ctx;
use crate::engine::{Response, Tpm};
use crate::rc::{Rc, TpmResult};
use crate::tpm_params;

tpm_params! {
    /// TPM2_FlushContext parameters (the handle is a parameter here).
    pub struct FlushIn { pub flush_handle: u32 }
}

/// TPM2_FlushContext: a transient object or a session.
pub fn flush_context(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    let p = FlushIn::parse(&mut ctx.params)?;
    let h = p.flush_handle;
    let pw = tpm.powered()?;
    let gone = match h & c::HR_RANGE_MASK {
        c::TRANSIENT_FIRST => pw.objects.remove(h).is_some(),
        c::HMAC_SESSION_FIRST | c::POLICY_SESSION_FIRST => pw.sessions.remove(h),
        _ => return Err(Rc(c::RC_VALUE).param(1)),
    };
    if gone {
        Ok(Response::default())
    } else {
        Err(Rc(c::RC_HANDLE).param(1))
    }
}
