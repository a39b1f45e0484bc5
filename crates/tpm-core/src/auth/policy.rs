//! The deferred checks of a policy session (Part 1 19.7, Part 3 5.6.7): what
//! the policy commands recorded in the session is checked when the session
//! authorizes a command.

use crate::auth::session::Session;
use crate::constants as c;
use crate::crypto::{ct_eq, digest};
use crate::dispatch::Role;
use crate::engine::Tpm;
use crate::marshal::{Reader, Unmarshal};
use crate::nv::is_nv_index;
use crate::rc::{err, Rc, TpmResult};

/// What a policy session is asked to authorize.
pub(crate) struct PolicyUse<'a> {
    /// The entity authorized.
    pub entity: u32,
    /// Its role in the command.
    pub role: Role,
    /// The command code.
    pub cc: u32,
    /// The command's cpHash under the session's hash.
    pub cp_hash: &'a [u8],
    /// The Names of every handle of the command, in order.
    pub names: &'a [Vec<u8>],
    /// The command parameters as sent (the first may be encrypted).
    pub params: &'a [u8],
    /// The command's locality.
    pub locality: u8,
}

/// Whether `locality` is among the TPMA_LOCALITY `allowed` (0: any).
pub(crate) fn locality_allowed(allowed: u8, locality: u8) -> bool {
    match (allowed, locality) {
        (0, _) => true,
        // An extended locality (32..255) names itself.
        (a, l) if a > 31 || l > 31 => a == l,
        (a, l) => l < 5 && a & (1 << l) != 0,
    }
}

/// The contents of the public template (second parameter, a TPM2B) of
/// CreatePrimary, Create and CreateLoaded. The first parameter may be
/// encrypted, but its size field is not, so the template is found in the
/// parameters as sent.
fn template_of(params: &[u8]) -> Option<&[u8]> {
    let mut r = Reader::new(params);
    let first = u16::unmarshal(&mut r).ok()?;
    r.take(first as usize).ok()?;
    let size = u16::unmarshal(&mut r).ok()?;
    r.take(size as usize).ok()
}

impl Tpm {
    /// Check that policy session `s` may authorize `u` (session `n`): not a
    /// trial, the digest equals the entity's authPolicy, and every condition
    /// the policy commands deferred holds. Codes and their order are those of
    /// the reference TPM and libtpms.
    pub(crate) fn check_policy(&self, s: &Session, u: &PolicyUse<'_>, n: u32) -> TpmResult<()> {
        let fail = |code: u32| Err(Rc(code).session(n));
        if s.is_trial() {
            return fail(c::RC_ATTRIBUTES);
        }
        // The digest is compared first, as libtpms does: a policy for another
        // command is TPM_RC_POLICY_FAIL, not TPM_RC_POLICY_CC.
        let policy = self.entity_policy(u.entity);
        if policy.alg != s.auth_hash || !ct_eq(&policy.digest, &s.policy_digest.0) {
            return fail(c::RC_POLICY_FAIL);
        }
        let pw = self.pw.as_ref().ok_or(Rc(c::RC_INITIALIZE))?;
        if s.timeout != 0 && (s.epoch != pw.epoch || s.timeout < pw.clock.time()) {
            return fail(c::RC_EXPIRED);
        }
        if s.command_code != 0 && s.command_code != u.cc {
            return fail(c::RC_POLICY_CC);
        }
        // ADMIN and DUP roles need a policy that names the command.
        if matches!(u.role, Role::Admin | Role::Dup) && s.command_code != u.cc {
            return fail(c::RC_POLICY_FAIL);
        }
        if !locality_allowed(s.locality, u.locality) {
            return err(c::RC_LOCALITY);
        }
        if s.pp_required && !self.physical_presence {
            return fail(c::RC_PP);
        }
        if !s.cp_hash.is_empty() && !ct_eq(&s.cp_hash.0, u.cp_hash) {
            return fail(c::RC_POLICY_FAIL);
        }
        if !s.name_hash.is_empty() {
            let parts: Vec<&[u8]> = u.names.iter().map(|n| n.as_slice()).collect();
            if !ct_eq(&s.name_hash.0, &digest(s.auth_hash, &parts)) {
                return fail(c::RC_POLICY_FAIL);
            }
        }
        if !s.template_hash.is_empty() {
            let creates = matches!(
                u.cc,
                c::CC_CreatePrimary | c::CC_Create | c::CC_CreateLoaded
            );
            let matches = creates
                && template_of(u.params)
                    .is_some_and(|t| ct_eq(&s.template_hash.0, &digest(s.auth_hash, &[t])));
            if !matches {
                return fail(c::RC_POLICY_FAIL);
            }
        }
        if s.pcr_counter.is_some_and(|n| n != pw.pcrs.update_counter) {
            return err(c::RC_PCR_CHANGED);
        }
        if let Some(want) = s.nv_written {
            let written = is_nv_index(u.entity)
                .then(|| self.nv_index(u.entity))
                .flatten()
                .map(|i| i.public.has(c::TPMA_NV_WRITTEN));
            // An entity that is no index cannot satisfy PolicyNvWritten.
            if written != Some(want) {
                return fail(c::RC_POLICY_FAIL);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn localities() {
        assert!(locality_allowed(0, 3));
        assert!(locality_allowed(0b0_0011, 1));
        assert!(!locality_allowed(0b0_0011, 2));
        assert!(locality_allowed(0x40, 0x40));
        assert!(!locality_allowed(0x40, 0));
        assert!(!locality_allowed(0b1, 0x40));
    }

    #[test]
    fn template_is_the_second_parameter() {
        let params = [0, 2, 9, 9, 0, 3, 1, 2, 3, 0xFF];
        assert_eq!(template_of(&params), Some(&[1u8, 2, 3][..]));
        assert_eq!(template_of(&[0, 5, 1]), None);
    }
}
