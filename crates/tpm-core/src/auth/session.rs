//! Authorization sessions (HMAC, policy and trial), the policy context a
//! policy session accumulates (Part 1 19.7), and the table of loaded sessions.

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
        /// PolicyCpHash / cpHashA of PolicySigned, PolicySecret, PolicyTicket:
        /// the command must have this cpHash (empty: any).
        pub cp_hash: Buffer<64>,
        /// PolicyNameHash / PolicyDuplicationSelect: digest of the Names of the
        /// command's handles (empty: any).
        pub name_hash: Buffer<64>,
        /// PolicyTemplate: digest of the public template of the object to create.
        pub template_hash: Buffer<64>,
        /// PolicyPCR ran and saw this PCR update counter (checked at authorization).
        pub pcr_counter: Option<u32>,
        /// PolicyLocality: the localities still allowed (TPMA_LOCALITY; 0: any).
        pub locality: u8,
        /// PolicyPhysicalPresence: physical presence must be asserted.
        pub pp_required: bool,
        /// PolicyNvWritten: the state TPMA_NV_WRITTEN of the index must have.
        pub nv_written: Option<bool>,
        /// Time (ms since _TPM_Init) when nonceTPM of StartAuthSession was made.
        pub start_time: u64,
        /// Time at which the policy expires (0: never); only ever lowered.
        pub timeout: u64,
        /// The power cycle `start_time` and `timeout` count in (see `Powered::epoch`).
        pub epoch: u32,
        /// HMAC sessions: the session audit digest (empty until the session
        /// first audits a command, which starts it at zeros as auditReset does).
        pub audit_digest: Buffer<64>,
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
        self.name_hash = Buffer(Vec::new());
        self.template_hash = Buffer(Vec::new());
        self.pcr_counter = None;
        self.locality = 0;
        self.pp_required = false;
        self.nv_written = None;
        // The start time stays (Part 3 PolicyRestart); the timeout goes.
        self.timeout = 0;
    }

    /// A trial session: policy commands only compute the digest.
    pub fn is_trial(&self) -> bool {
        self.kind == c::SE_TRIAL
    }

    /// Lower the timeout to `t` (never raise it; 0 means none).
    pub fn limit_timeout(&mut self, t: u64) {
        if t != 0 && (self.timeout == 0 || t < self.timeout) {
            self.timeout = t;
        }
    }

    /// Set the cpHash the policy is bound to: TPM_RC_CPHASH if another one, a
    /// name hash or a template hash is already set.
    pub fn bind_cp_hash(&mut self, cp: &[u8]) -> TpmResult<()> {
        if !self.name_hash.is_empty()
            || !self.template_hash.is_empty()
            || (!self.cp_hash.is_empty() && self.cp_hash.0 != cp)
        {
            return err(c::RC_CPHASH);
        }
        self.cp_hash = Buffer(cp.to_vec());
        Ok(())
    }

    /// Set the name hash the policy is bound to: TPM_RC_CPHASH if a cpHash,
    /// another name hash or a template hash is already set.
    pub fn bind_name_hash(&mut self, nh: &[u8]) -> TpmResult<()> {
        if !self.cp_hash.is_empty()
            || !self.template_hash.is_empty()
            || (!self.name_hash.is_empty() && self.name_hash.0 != nh)
        {
            return err(c::RC_CPHASH);
        }
        self.name_hash = Buffer(nh.to_vec());
        Ok(())
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
