//! Physical presence (Part 3 26.2): which commands need it when the platform
//! authorizes them. The list is permanent state, changed by TPM2_PP_Commands
//! and reported by GetCapability(TPM_CAP_PP_COMMANDS).

use crate::constants as c;
use crate::dispatch::lookup;
use crate::engine::Tpm;

/// The commands Part 3 marks "TPM_RH_PLATFORM+{PP}": the only ones
/// PP_Commands may gate (others in its lists are discarded). Commands not
/// implemented are discarded too, so this list may name them.
const PP_CAPABLE: &[u32] = &[
    c::CC_NV_UndefineSpaceSpecial,
    c::CC_EvictControl,
    c::CC_HierarchyControl,
    c::CC_NV_UndefineSpace,
    c::CC_ChangeEPS,
    c::CC_ChangePPS,
    c::CC_Clear,
    c::CC_ClearControl,
    c::CC_ClockSet,
    c::CC_HierarchyChangeAuth,
    c::CC_NV_DefineSpace,
    c::CC_PCR_Allocate,
    c::CC_PCR_SetAuthPolicy,
    c::CC_PP_Commands,
    c::CC_SetPrimaryPolicy,
    c::CC_FieldUpgradeStart,
    c::CC_ClockRateAdjust,
    c::CC_CreatePrimary,
    c::CC_NV_GlobalWriteLock,
    c::CC_SetCommandCodeAuditStatus,
];

/// Whether PP_Commands may put `cc` on the list (or take it off).
pub fn pp_capable(cc: u32) -> bool {
    PP_CAPABLE.contains(&cc) && lookup(cc).is_some()
}

impl Tpm {
    /// Whether command `cc` authorized with platformAuth/platformPolicy needs
    /// physical presence asserted. PP_Commands always does ("+PP").
    pub(crate) fn pp_required(&self, cc: u32) -> bool {
        cc == c::CC_PP_Commands || self.perm.da.pp_extra.0.contains(&cc)
    }

    /// The PP list as GetCapability(TPM_CAP_PP_COMMANDS) reports it, sorted.
    pub(crate) fn pp_list(&self) -> Vec<u32> {
        let mut list = self.perm.da.pp_extra.0.clone();
        list.push(c::CC_PP_Commands);
        list.sort_unstable();
        list
    }

    /// Apply PP_Commands' lists: `set` first, then `clear`; commands that
    /// cannot be gated are ignored, and PP_Commands always stays.
    pub(crate) fn pp_update(&mut self, set: &[u32], clear: &[u32]) {
        let list = &mut self.perm.da.pp_extra.0;
        for &cc in set
            .iter()
            .filter(|&&cc| cc != c::CC_PP_Commands && pp_capable(cc))
        {
            if !list.contains(&cc) {
                list.push(cc);
            }
        }
        list.retain(|cc| !clear.contains(cc));
        list.sort_unstable();
    }
}
