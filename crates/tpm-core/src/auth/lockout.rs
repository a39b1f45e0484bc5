//! Dictionary-attack protection (Part 1 "Dictionary Attack Protection"):
//! failed authorizations of DA-protected entities count in failedTries
//! (permanent state), which heals by one every recoveryTime seconds of powered
//! time; at maxTries such entities are locked out (TPM_RC_LOCKOUT). A failed
//! lockoutAuth locks lockoutAuth itself for lockoutRecovery seconds (until the
//! next TPM Reset when that is 0).

use crate::constants as c;
use crate::engine::Tpm;
use crate::rc::{err, TpmResult};

/// Volatile timers of the DA logic (times are Clock milliseconds).
#[derive(Debug, Clone, Default)]
pub struct DaTimers {
    /// When the last self-healing step was taken (or counting began).
    pub heal_from: u64,
    /// lockoutAuth is refused until this time.
    pub lockout_until: Option<u64>,
}

impl Tpm {
    fn now(&self) -> u64 {
        self.pw.as_ref().map_or(0, |p| p.clock.clock())
    }

    /// Apply the self-healing due since the last step.
    fn da_heal(&mut self) {
        let now = self.now();
        let step = u64::from(self.perm.recovery_time) * 1000;
        let Some(pw) = self.pw.as_mut() else {
            return;
        };
        if self.perm.failed_tries == 0 || step == 0 {
            pw.da.heal_from = now;
            return;
        }
        let steps = now.saturating_sub(pw.da.heal_from) / step;
        if steps > 0 {
            let healed = steps.min(u64::from(self.perm.failed_tries)) as u32;
            self.perm.failed_tries -= healed;
            pw.da.heal_from += steps * step;
            self.perm_dirty = true;
        }
    }

    /// Whether an authorization of DA-protected `h` may be tried now.
    pub(crate) fn da_check(&mut self, h: u32) -> TpmResult<()> {
        self.da_heal();
        let now = self.now();
        if h == c::RH_LOCKOUT {
            let locked = self
                .pw
                .as_ref()
                .and_then(|p| p.da.lockout_until)
                .is_some_and(|t| now < t);
            return if locked { err(c::RC_LOCKOUT) } else { Ok(()) };
        }
        if self.perm.failed_tries >= self.perm.max_tries {
            return err(c::RC_LOCKOUT);
        }
        Ok(())
    }

    /// Count a failed authorization of DA-protected `h`, durably (the count
    /// must survive a power cycle, or lockout could be escaped by one).
    pub(crate) fn da_failure(&mut self, h: u32) {
        let now = self.now();
        if h == c::RH_LOCKOUT {
            let recovery = u64::from(self.perm.lockout_recovery) * 1000;
            if let Some(pw) = self.pw.as_mut() {
                pw.da.lockout_until = Some(if recovery == 0 {
                    u64::MAX
                } else {
                    now.saturating_add(recovery)
                });
            }
            return;
        }
        if self.perm.failed_tries == 0 {
            if let Some(pw) = self.pw.as_mut() {
                pw.da.heal_from = now;
            }
        }
        self.perm.failed_tries = self.perm.failed_tries.saturating_add(1);
        if self.store_permanent().is_err() {
            log::warn!("the dictionary-attack failure count could not be stored");
        }
    }
}
