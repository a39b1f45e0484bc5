//! Miscellaneous management functions (Part 3 chapter 26): PP_Commands.
//! (SetAlgorithmSet is not implemented: the reference TPM and libtpms do not
//! support it either, so it answers TPM_RC_COMMAND_CODE.)

use crate::dispatch::Ctx;
use crate::engine::{Response, Tpm};
use crate::marshal::List;
use crate::rc::TpmResult;
use crate::tpm_params;

/// Largest TPML_CC (MAX_CAP_CC of a 1024-octet capability buffer).
pub const MAX_CAP_CC: usize = 254;

tpm_params! {
    /// TPM2_PP_Commands parameters.
    pub struct PpCommandsIn {
        pub set_list: List<u32, MAX_CAP_CC>,
        pub clear_list: List<u32, MAX_CAP_CC>,
    }
}

tpm_params! {
    /// TPM2_SetAlgorithmSet parameters.
    pub struct SetAlgorithmSetIn { pub algorithm_set: u32 }
}

/// TPM2_SetAlgorithmSet: the platform records a vendor-defined algorithm set
/// selection. As in the reference TPM and libtpms, the value is only kept
/// (permanent state) and reported as TPM_PT_ALGORITHM_SET: vtpm defines no
/// algorithm sets, so every algorithm stays available.
pub fn set_algorithm_set(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    let p = SetAlgorithmSetIn::parse(&mut ctx.params)?;
    tpm.perm.algorithm_set.0 = p.algorithm_set;
    tpm.perm_dirty = true;
    Ok(Response::default())
}

/// TPM2_PP_Commands: commands added to / removed from the list that needs
/// physical presence with platform authorization. Physical presence for this
/// command itself is checked with its authorization.
pub fn pp_commands(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    let p = PpCommandsIn::parse(&mut ctx.params)?;
    tpm.pp_update(&p.set_list.0, &p.clear_list.0);
    tpm.perm_dirty = true;
    Ok(Response::default())
}
