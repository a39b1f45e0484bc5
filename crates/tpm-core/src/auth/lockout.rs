//! Dictionary-attack protection (Part 1 "Dictionary Attack Protection",
//! Part 3 chapter 25): failed authorizations of DA-protected entities count
//! in failedTries (permanent state), which heals by one every recoveryTime
//! seconds of Time (powered time since _TPM_Init); at maxTries such entities
//! are locked out (TPM_RC_LOCKOUT). A failed lockoutAuth makes lockoutAuth
//! unusable (permanently recorded) for lockoutRecovery seconds of Time, or
//! until the next Startup(CLEAR) when lockoutRecovery is 0. recoveryTime 0
//! disables the counting; maxTries 0 is a permanent lockout.

use crate::constants as c;
use crate::engine::Tpm;
use crate::rc::{err, TpmResult};
use crate::state::permanent::{DA_LOCKOUT_RECOVERY, DA_MAX_TRIES, DA_RECOVERY_TIME};

impl Tpm {
    /// Time: milliseconds since _TPM_Init (0 while powered off).
    fn da_time(&self) -> u64 {
        self.pw.as_ref().map_or(0, |p| p.clock.time())
    }

    /// Store the DA state now: a count that can be escaped by a power cycle is no count.
    fn da_store(&mut self) {
        if self.store_permanent().is_err() {
            log::warn!("the dictionary-attack state could not be stored");
        }
    }

    /// Apply the self-healing due by now, to failedTries and to lockoutAuth.
    pub(crate) fn da_heal(&mut self) {
        let now = self.da_time();
        let Some(pw) = self.pw.as_mut() else {
            return;
        };
        let p = &mut self.perm;
        let mut changed = false;
        if p.failed_tries != 0 {
            if p.recovery_time == 0 {
                // DA protection is off: nothing is held against anyone.
                p.failed_tries = 0;
                changed = true;
            } else {
                let step = u64::from(p.recovery_time) * 1000;
                let steps = now.saturating_sub(pw.da.heal_from) / step;
                if steps > 0 {
                    p.failed_tries = p
                        .failed_tries
                        .saturating_sub(u32::try_from(steps).unwrap_or(u32::MAX));
                    pw.da.heal_from += steps * step;
                    changed = true;
                }
            }
        }
        if p.da.lockout_auth_locked && p.lockout_recovery != 0 {
            let wait = u64::from(p.lockout_recovery) * 1000;
            if now.saturating_sub(pw.da.lockout_from) >= wait {
                p.da.lockout_auth_locked = false;
                changed = true;
            }
        }
        if changed {
            self.da_store();
        }
    }

    /// Whether an authorization of DA-protected `h` may be tried now
    /// (TPM_RC_LOCKOUT otherwise).
    pub(crate) fn da_check(&mut self, h: u32) -> TpmResult<()> {
        self.da_heal();
        let locked = if h == c::RH_LOCKOUT {
            self.perm.da.lockout_auth_locked
        } else {
            // Recorded durably before the attempt: a power cut during it must
            // not hide a failure (see da_startup).
            if !self.perm.da.da_used {
                self.perm.da.da_used = true;
                self.da_store();
            }
            self.perm.failed_tries >= self.perm.max_tries
        };
        if locked {
            err(c::RC_LOCKOUT)
        } else {
            Ok(())
        }
    }

    /// Count a failed authorization of DA-protected `h`, durably before the
    /// response leaves.
    pub(crate) fn da_failure(&mut self, h: u32) {
        let now = self.da_time();
        if h == c::RH_LOCKOUT {
            self.perm.da.lockout_auth_locked = true;
            if let Some(pw) = self.pw.as_mut() {
                pw.da.lockout_from = now;
            }
        } else {
            if self.perm.recovery_time == 0 {
                return;
            }
            self.perm.failed_tries = self.perm.failed_tries.saturating_add(1);
            if let Some(pw) = self.pw.as_mut() {
                pw.da.heal_from = now;
            }
        }
        self.da_store();
    }

    /// The DA part of Startup: timers start now; Startup(CLEAR) gives back a
    /// lockoutAuth locked "until reboot" (lockoutRecovery 0); and a TPM that
    /// lost power after a DA-protected authorization was tried counts one
    /// failure, since cutting the power could otherwise hide one. As libtpms
    /// (USE_DA_USED), a power loss with no such attempt counts nothing, and
    /// lockoutAuth attempts do not count here (checked against swtpm).
    pub(crate) fn da_startup(&mut self, clear: bool, was_orderly: bool) {
        let now = self.da_time();
        if let Some(pw) = self.pw.as_mut() {
            pw.da.heal_from = now;
            pw.da.lockout_from = now;
        }
        let p = &mut self.perm;
        if clear && p.lockout_recovery == 0 {
            p.da.lockout_auth_locked = false;
        }
        if !was_orderly && p.da.da_used && p.recovery_time != 0 && p.failed_tries < p.max_tries {
            p.failed_tries += 1;
        }
        p.da.da_used = false;
        // Startup marks permanent state dirty; the caller's commit stores this.
    }

    /// Back to the manufacturer's DA parameters, nothing counted (TPM2_Clear).
    pub(crate) fn da_defaults(&mut self) {
        let p = &mut self.perm;
        p.failed_tries = 0;
        p.max_tries = DA_MAX_TRIES;
        p.recovery_time = DA_RECOVERY_TIME;
        p.lockout_recovery = DA_LOCKOUT_RECOVERY;
        p.da.lockout_auth_locked = false;
    }

    /// Whether DA-protected entities are locked out (TPMA_PERMANENT.inLockout).
    pub(crate) fn in_lockout(&self) -> bool {
        self.perm.failed_tries >= self.perm.max_tries
    }
}
