//! NV indices inside the engine: lookup, hierarchy availability, the access
//! rules of the TPMA_NV attributes, PIN counting, what Startup does to them,
//! and how a change becomes durable (ORDERLY indices stay in RAM until an
//! orderly Shutdown). The commands themselves are in `commands/nv*.rs`.

use crate::constants as c;
use crate::dispatch::Role;
use crate::engine::Tpm;
use crate::rc::{err, Rc, TpmResult};
use crate::state::nv::{nt, NvIndex, MAX_ORDERLY_COUNT};

/// Whether `h` is in the NV index range (TPM_HT_NV_INDEX).
pub fn is_nv_index(h: u32) -> bool {
    h & c::HR_RANGE_MASK == c::NV_INDEX_FIRST
}

/// Commands that use the index's *write* authorization (Part 3
/// IsWriteOperation); every other command reading or authorizing with an
/// index uses its read authorization.
pub fn is_write_command(cc: u32) -> bool {
    matches!(
        cc,
        c::CC_NV_Write
            | c::CC_NV_Increment
            | c::CC_NV_SetBits
            | c::CC_NV_Extend
            | c::CC_NV_WriteLock
    )
}

impl Tpm {
    /// The index at `h`, whether or not its hierarchy is enabled.
    pub(crate) fn nv_index(&self, h: u32) -> Option<&NvIndex> {
        self.perm
            .nv
            .indices
            .0
            .iter()
            .find(|i| i.public.nv_index == h)
    }

    /// The index at `h`, mutable.
    pub(crate) fn nv_index_mut(&mut self, h: u32) -> Option<&mut NvIndex> {
        self.perm
            .nv
            .indices
            .0
            .iter_mut()
            .find(|i| i.public.nv_index == h)
    }

    /// The index at `h` as an accessible entity: defined, and its hierarchy
    /// enabled (platform indices need phEnableNV, owner indices shEnable);
    /// TPM_RC_HANDLE otherwise (unnumbered).
    pub(crate) fn nv_present(&self, h: u32) -> TpmResult<&NvIndex> {
        let idx = self.nv_index(h).ok_or(Rc(c::RC_HANDLE))?;
        let st = &self.pw.as_ref().ok_or(Rc(c::RC_INITIALIZE))?.st;
        let enabled = if idx.public.has(c::TPMA_NV_PLATFORMCREATE) {
            st.ph_enable_nv
        } else {
            st.sh_enable
        };
        if enabled {
            Ok(idx)
        } else {
            err(c::RC_HANDLE)
        }
    }

    /// Whether a password or HMAC session may authorize index `h` in `role`
    /// for command `cc`: ADMIN always needs a policy; writes need AUTHWRITE;
    /// reads AUTHREAD, or for PIN indices a written index whose pinCount is
    /// below pinLimit (Part 1, PIN indices).
    pub(crate) fn nv_auth_value_usable(&self, h: u32, role: Role, cc: u32) -> bool {
        let Some(idx) = self.nv_index(h) else {
            return false;
        };
        let p = &idx.public;
        match role {
            Role::Admin | Role::Dup => false,
            Role::None => true,
            Role::User if is_write_command(cc) => p.has(c::TPMA_NV_AUTHWRITE),
            Role::User if p.is_pin() => {
                let v = idx.value64();
                p.has(c::TPMA_NV_WRITTEN) && (v >> 32) < (v & 0xFFFF_FFFF)
            }
            Role::User => p.has(c::TPMA_NV_AUTHREAD),
        }
    }

    /// Whether a policy session may authorize index `h`: it has a policy, and
    /// the role is ADMIN or the index allows policy for this kind of access.
    pub(crate) fn nv_policy_usable(&self, h: u32, role: Role, cc: u32) -> bool {
        let Some(idx) = self.nv_index(h) else {
            return false;
        };
        let p = &idx.public;
        !p.auth_policy.is_empty()
            && match role {
                Role::Admin | Role::Dup => true,
                _ if is_write_command(cc) => p.has(c::TPMA_NV_POLICYWRITE),
                _ => p.has(c::TPMA_NV_POLICYREAD),
            }
    }

    /// Count an authorization of PIN index `h` with its authValue: a PIN Fail
    /// index counts failures and is reset by a success, a PIN Pass index counts
    /// successes. The count is made durable at once (it must not be escaped by
    /// a power cycle); if that fails the change is undone and the command
    /// refused.
    pub(crate) fn nv_pin_result(&mut self, h: u32, success: bool) -> TpmResult<()> {
        let Some(idx) = self.nv_index_mut(h) else {
            return Ok(());
        };
        if !idx.public.has(c::TPMA_NV_WRITTEN) {
            return Ok(());
        }
        let v = idx.value64();
        let (count, limit) = ((v >> 32) as u32, v as u32);
        let new = match (idx.public.nt(), success) {
            (nt::PIN_FAIL, false) => count.saturating_add(1),
            (nt::PIN_FAIL, true) => 0,
            (nt::PIN_PASS, true) => count.saturating_add(1),
            _ => return Ok(()),
        };
        if new == count {
            return Ok(());
        }
        idx.set_value64((u64::from(new) << 32) | u64::from(limit));
        if !self.nv_available || self.store_permanent().is_err() {
            if let Some(idx) = self.nv_index_mut(h) {
                idx.set_value64(v);
            }
            return err(c::RC_NV_UNAVAILABLE);
        }
        Ok(())
    }

    /// Record that the data of index `h` changed: written to NV before the
    /// response unless the index is ORDERLY and was already written (then it
    /// stays in RAM until Shutdown, or a counter roll-over forces it out).
    pub(crate) fn nv_data_changed(&mut self, h: u32, force_nv: bool) {
        let orderly_ram = self
            .nv_index(h)
            .is_some_and(|i| i.public.has(c::TPMA_NV_ORDERLY | c::TPMA_NV_WRITTEN));
        if orderly_ram && !force_nv {
            self.nv_unsaved = true;
        } else {
            self.perm_dirty = true;
        }
    }

    /// The value a counter starts from when first incremented: above any value
    /// a counter of this TPM ever had.
    pub(crate) fn nv_initial_counter(&self) -> u64 {
        let nv = &self.perm.nv.0;
        nv.indices
            .0
            .iter()
            .filter(|i| i.public.nt() == nt::COUNTER && i.public.has(c::TPMA_NV_WRITTEN))
            .map(NvIndex::value64)
            .fold(nv.max_counter, u64::max)
    }

    /// Remove the indices `remove` selects, remembering the values of removed
    /// counters so no later counter can start below them.
    pub(crate) fn nv_remove_where(&mut self, remove: impl Fn(&NvIndex) -> bool) {
        let nv = &mut self.perm.nv.0;
        let mut max = nv.max_counter;
        nv.indices.0.retain(|i| {
            let gone = remove(i);
            if gone && i.public.nt() == nt::COUNTER && i.public.has(c::TPMA_NV_WRITTEN) {
                max = max.max(i.value64());
            }
            !gone
        });
        nv.max_counter = max;
        self.perm_dirty = true;
    }
}

/// What TPM2_Clear does to NV: remove every index not created by the platform
/// (TPMA_NV_PLATFORMCREATE CLEAR). The highest counter value stays recorded so
/// counters defined later never start below a removed one. Sets `perm_dirty`,
/// so the caller's command makes the removal durable before it answers.
/// Called by TPM2_Clear (hierarchy commands, another branch): until that is
/// merged only the tests use it.
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) fn clear_owner_indices(tpm: &mut Tpm) {
    tpm.nv_remove_where(|i| !i.public.has(c::TPMA_NV_PLATFORMCREATE));
}

/// What Startup does to the indices. TPM Resume (`resume`) keeps everything.
/// TPM Reset and Restart clear READLOCKED, clear WRITELOCKED unless the index
/// is written and WRITEDEFINE (a define-time lock is permanent), and clear
/// WRITTEN (and the lock) of CLEAR_STCLEAR indices. TPM Reset (`reset`) also
/// clears WRITTEN of ORDERLY indices other than counters: their data is RAM
/// that only Shutdown(STATE) carries over (the reference TPM's and libtpms's
/// rule). After a shutdown that was not orderly, ORDERLY counters may have
/// counted in RAM past their NV copy (by less than MAX_ORDERLY_COUNT): they
/// come back with those low bits set, so a counter never goes backwards.
pub(crate) fn nv_startup(tpm: &mut Tpm, resume: bool, reset: bool, orderly: bool) {
    let mut changed = false;
    for idx in tpm.perm.nv.indices.0.iter_mut() {
        let before = idx.clone();
        let p = &mut idx.public;
        if !resume {
            p.attributes &= !c::TPMA_NV_READLOCKED;
            if !p.has(c::TPMA_NV_WRITTEN) || !p.has(c::TPMA_NV_WRITEDEFINE) {
                p.attributes &= !c::TPMA_NV_WRITELOCKED;
            }
            if p.has(c::TPMA_NV_CLEAR_STCLEAR) {
                p.attributes &= !(c::TPMA_NV_WRITTEN | c::TPMA_NV_WRITELOCKED);
            }
            if reset && p.has(c::TPMA_NV_ORDERLY) && p.nt() != nt::COUNTER {
                p.attributes &= !c::TPMA_NV_WRITTEN;
            }
        }
        if !orderly && p.nt() == nt::COUNTER && p.has(c::TPMA_NV_ORDERLY | c::TPMA_NV_WRITTEN) {
            let v = idx.value64() | MAX_ORDERLY_COUNT;
            idx.set_value64(v);
        }
        changed |= *idx != before;
    }
    if changed {
        tpm.perm_dirty = true;
    }
}

#[cfg(test)]
mod tests;
