//! Authorization sessions (HMAC now; policy sessions join with the policy
//! commands) and the table of loaded sessions.

use crate::constants as c;
use crate::marshal::{Buffer, List};
use crate::rc::{err, TpmResult};
use crate::tpm_struct;
use crate::types::{digest_size, Nonce};

/// Sessions that may be loaded at once (TPM_PT_HR_LOADED_MIN / MAX_LOADED_SESSIONS).
pub const MAX_LOADED: usize = 3;
/// Sessions that may be active (loaded or saved) at once (TPM_PT_ACTIVE_SESSIONS_MAX).
pub const MAX_ACTIVE: usize = 64;

tpm_struct! {
    /// One session's state.
    pub struct Session {
        pub handle: u32,
        /// TPM_SE_HMAC, TPM_SE_POLICY or TPM_SE_TRIAL.
        pub kind: u8,
        pub auth_hash: u16,
        pub session_key: Buffer<64>,
        pub nonce_tpm: Nonce,
        /// Symmetric algorithm for parameter encryption (TPM_ALG_AES, XOR or NULL).
        pub sym_alg: u16,
        /// AES key bits, or the XOR hash.
        pub sym_bits: u16,
        /// Digest of the bind entity's Name and authValue (empty: unbound).
        pub bound_entity: Buffer<64>,
        /// Policy sessions: the policy digest so far.
        pub policy_digest: Buffer<64>,
        /// Policy sessions: the command the policy is bound to (0: any).
        pub command_code: u32,
        /// PolicyAuthValue was asserted: the HMAC includes the authValue.
        pub auth_value_needed: bool,
        /// PolicyPassword was asserted: the HMAC field carries the password.
        pub password_needed: bool,
        /// PolicySecret's cpHashA: the command must have this cpHash (empty: any).
        pub cp_hash: Buffer<64>,
    }
}

impl Session {
    /// Clear the policy state (PolicyRestart, and after each authorization).
    pub fn reset_policy(&mut self) {
        self.policy_digest = Buffer(vec![0; self.digest_len()]);
        self.command_code = 0;
        self.auth_value_needed = false;
        self.password_needed = false;
        self.cp_hash = Buffer(Vec::new());
    }

    /// A policy (or trial policy) session.
    pub fn is_policy(&self) -> bool {
        self.kind != crate::constants::SE_HMAC
    }

    /// Extend the policy digest: H(policyDigest || parts...).
    pub fn policy_update(&mut self, parts: &[&[u8]]) {
        let mut all: Vec<&[u8]> = vec![&self.policy_digest.0];
        all.extend_from_slice(parts);
        self.policy_digest = Buffer(crate::crypto::digest(self.auth_hash, &all));
    }

    /// Whether the session is bound to the entity with `name` and `auth`.
    pub fn is_bound_to(&self, name: &[u8], auth: &[u8]) -> bool {
        !self.bound_entity.is_empty()
            && crate::crypto::ct_eq(
                &self.bound_entity.0,
                &bound_digest(self.auth_hash, name, auth),
            )
    }
    /// Digest size of the session hash.
    pub fn digest_len(&self) -> usize {
        digest_size(self.auth_hash)
    }
}

/// The value kept to recognise a bind entity.
pub fn bound_digest(alg: u16, name: &[u8], auth: &[u8]) -> Vec<u8> {
    crate::crypto::digest(alg, &[name, super::trim_zeros(auth)])
}

tpm_struct! {
    /// A session whose context was saved (ContextSave): its handle stays taken
    /// and only the context with this sequence number can load it again.
    pub struct SavedSession {
        pub handle: u32,
        pub sequence: u64,
    }
}

tpm_struct! {
    /// The loaded sessions and the saved ones (loaded + saved = active).
    pub struct Sessions {
        pub loaded: List<Session, MAX_LOADED>,
        pub saved: List<SavedSession, MAX_ACTIVE>,
    }
}

impl Sessions {
    /// The session with `handle`.
    pub fn get(&self, handle: u32) -> Option<&Session> {
        self.loaded.0.iter().find(|s| s.handle == handle)
    }
    /// The session with `handle`, mutably.
    pub fn get_mut(&mut self, handle: u32) -> Option<&mut Session> {
        self.loaded.0.iter_mut().find(|s| s.handle == handle)
    }
    /// Remove a session, loaded or saved; false if it was neither.
    pub fn remove(&mut self, handle: u32) -> bool {
        let before = self.loaded.0.len() + self.saved.0.len();
        self.loaded.0.retain(|s| s.handle != handle);
        self.saved.0.retain(|s| s.handle != handle);
        before != self.loaded.0.len() + self.saved.0.len()
    }

    /// The saved session with `handle`.
    pub fn saved(&self, handle: u32) -> Option<&SavedSession> {
        self.saved.0.iter().find(|s| s.handle == handle)
    }

    /// Loaded plus saved sessions.
    pub fn active(&self) -> usize {
        self.loaded.0.len() + self.saved.0.len()
    }
    /// A free handle for a new session of `kind`, or the warning saying why there is none.
    pub fn allocate(&self, kind: u8) -> TpmResult<u32> {
        if self.loaded.0.len() >= MAX_LOADED {
            return err(c::RC_SESSION_MEMORY);
        }
        let base = if kind == c::SE_HMAC {
            c::HMAC_SESSION_FIRST
        } else {
            c::POLICY_SESSION_FIRST
        };
        // Session handles index one shared slot space, as the TPM's do; a saved
        // session keeps its slot.
        let taken = |i: u32| {
            self.loaded.0.iter().any(|s| s.handle & 0x00FF_FFFF == i)
                || self.saved.0.iter().any(|s| s.handle & 0x00FF_FFFF == i)
        };
        (0..MAX_ACTIVE as u32)
            .find(|&i| !taken(i))
            .map(|i| base + i)
            .ok_or(crate::rc::Rc(c::RC_SESSION_HANDLES))
    }
    /// Number of loaded sessions.
    pub fn count(&self) -> usize {
        self.loaded.0.len()
    }
}
