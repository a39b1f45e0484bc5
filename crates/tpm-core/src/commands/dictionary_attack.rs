//! Dictionary attack functions (Part 3 chapter 25): DictionaryAttackLockReset
//! and DictionaryAttackParameters, both under lockoutAuth (whose own failure
//! rule is in auth/lockout.rs).

use crate::dispatch::Ctx;
use crate::engine::{Response, Tpm};
use crate::rc::TpmResult;
use crate::tpm_params;

tpm_params! {
    /// TPM2_DictionaryAttackParameters parameters.
    pub struct DaParametersIn {
        pub new_max_tries: u32,
        pub new_recovery_time: u32,
        pub lockout_recovery: u32,
    }
}

/// TPM2_DictionaryAttackLockReset: failedTries back to zero.
pub fn lock_reset(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    ctx.params.finish()?;
    tpm.perm.failed_tries = 0;
    tpm.perm_dirty = true;
    Ok(Response::default())
}

/// TPM2_DictionaryAttackParameters: new maxTries, recoveryTime (0: no DA
/// counting) and lockoutRecovery (0: until the next Startup(CLEAR));
/// failedTries back to zero.
pub fn parameters(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    let p = DaParametersIn::parse(&mut ctx.params)?;
    tpm.perm.max_tries = p.new_max_tries;
    tpm.perm.recovery_time = p.new_recovery_time;
    tpm.perm.lockout_recovery = p.lockout_recovery;
    tpm.perm.failed_tries = 0;
    tpm.perm_dirty = true;
    Ok(Response::default())
}
