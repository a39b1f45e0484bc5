//! What Shutdown(STATE) keeps (the save state) and what a volatile snapshot
//! holds (suspend, migration).

use super::pcr::PcrBanks;
use super::permanent::Secret64;
use crate::auth::session::Sessions;
use crate::marshal::List;
use crate::tpm_struct;
use crate::types::{Auth, TaggedHash};

tpm_struct! {
    /// State cleared by Startup(CLEAR) and kept by Startup(STATE) (Part 1 "stClear").
    pub struct StClear {
        pub platform_auth: Auth,
        pub platform_policy: TaggedHash,
        pub ph_enable: bool,
        pub sh_enable: bool,
        pub eh_enable: bool,
        pub ph_enable_nv: bool,
        /// PCR_SetAuthValue values of the PCR auth group.
        pub pcr_auth: List<Auth, 8>,
    }
}

tpm_struct! {
    /// What saved contexts are checked against: renewed at every TPM Reset,
    /// kept by TPM Restart and Resume (so saved session contexts stay loadable;
    /// which sessions are saved is kept in `Sessions::saved`).
    pub struct ContextState {
        /// Key material for context encryption and integrity.
        pub key: Secret64,
        /// The last context sequence number handed out.
        pub counter: u64,
    }
}

tpm_struct! {
    /// Written by Shutdown(STATE), read by Startup(STATE).
    pub struct SaveState {
        pub version: u16,
        pub st_clear: StClear,
        pub pcrs: PcrBanks,
        pub null_seed: Secret64,
        pub null_proof: Secret64,
        pub contexts: ContextState,
        pub saved_sessions: List<crate::auth::session::SavedSession, 64>,
        /// The command audit digest (kept by TPM Restart and Resume, as
        /// libtpms keeps it; absent in older blobs: none).
        pub command_audit_digest: crate::marshal::Trailing<crate::types::Digest>,
        /// The commit state (format 6; absent in older blobs: renewed).
        pub commit: crate::marshal::Trailing<super::CommitState>,
    }
}

tpm_struct! {
    /// Everything in RAM while powered (CMD_STORE_VOLATILE, GET_STATEBLOB
    /// volatile), loaded objects and sequences included, so a migrated guest
    /// finds its handles as it left them.
    pub struct VolatileSnapshot {
        pub version: u16,
        pub started: bool,
        pub st_clear: StClear,
        pub pcrs: PcrBanks,
        pub null_seed: Secret64,
        pub null_proof: Secret64,
        pub sessions: Sessions,
        pub contexts: ContextState,
        pub clock_safe: bool,
        pub objects: crate::engine::objects::ObjectsState,
        /// The command audit digest (absent in older blobs: none).
        pub command_audit_digest: crate::marshal::Trailing<crate::types::Digest>,
        /// The commit state (format 6; absent in older blobs: renewed).
        pub commit: crate::marshal::Trailing<super::CommitState>,
    }
}
