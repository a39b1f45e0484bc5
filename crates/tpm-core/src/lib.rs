//! The TPM 2.0 engine of vtpm: `execute(locality, command) -> response`.
//! Pure logic plus crypto, no I/O of its own: state that must survive power
//! loss is handed to a [`Persistence`] port, which returns only once durable.

pub mod persist;

pub use persist::{BlobKind, PersistError, Persistence};

/// Engine configuration chosen by the embedder.
#[derive(Debug, Clone, Default)]
pub struct TpmConfig {
    /// Reject commands sent at locality 4 (swtpm --locality reject-locality-4).
    pub reject_locality_4: bool,
}

/// Errors of the engine's embedding API (not TPM response codes).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Loading or storing state failed.
    #[error(transparent)]
    Persist(#[from] PersistError),
    /// A state blob could not be decoded.
    #[error("state blob {blob:?} is damaged: {reason}")]
    BadState {
        /// Which blob.
        blob: BlobKind,
        /// What is wrong.
        reason: String,
    },
    /// The operation needs the TPM powered off / on.
    #[error("{0}")]
    WrongPowerState(&'static str),
}

/// The TPM engine. INTERFACE CONTRACT for the binary (src/device.rs):
/// `new`, `power_on`, `power_off`, `execute`, `hash_*`, `tpm_established`,
/// `reset_established`, `store_volatile`, `state_blob`, `set_state_blob`,
/// `is_powered`, `set_physical_presence`, `set_nv_available`, `cancel_flag`.
pub struct Tpm {
    _persist: Box<dyn Persistence>,
}

impl Tpm {
    /// Load permanent state through `persist`, or manufacture a new TPM if there is none.
    pub fn new(persist: Box<dyn Persistence>, _config: TpmConfig) -> Result<Tpm, Error> {
        Ok(Tpm { _persist: persist })
    }
    /// _TPM_Init: power on. Restores saved volatile state if present.
    pub fn power_on(&mut self, _delete_volatile: bool) -> Result<(), Error> {
        Err(Error::WrongPowerState("engine not implemented yet"))
    }
    /// Power off: persists volatile state so a later power_on can resume.
    pub fn power_off(&mut self) -> Result<(), Error> {
        Ok(())
    }
    /// Whether the TPM is powered on.
    pub fn is_powered(&self) -> bool {
        false
    }
    /// Execute one command; never panics, always returns a well-formed response.
    pub fn execute(&mut self, _locality: u8, _command: &[u8]) -> Vec<u8> {
        // TPM_ST_NO_SESSIONS, size 10, TPM_RC_FAILURE
        vec![0x80, 0x01, 0, 0, 0, 10, 0, 0, 1, 1]
    }
    /// _TPM_Hash_Start.
    pub fn hash_start(&mut self) -> Result<(), Error> {
        Err(Error::WrongPowerState("engine not implemented yet"))
    }
    /// _TPM_Hash_Data.
    pub fn hash_data(&mut self, _data: &[u8]) -> Result<(), Error> {
        Err(Error::WrongPowerState("engine not implemented yet"))
    }
    /// _TPM_Hash_End.
    pub fn hash_end(&mut self) -> Result<(), Error> {
        Err(Error::WrongPowerState("engine not implemented yet"))
    }
    /// TPM_ACCESS.tpmEstablishment.
    pub fn tpm_established(&self) -> bool {
        false
    }
    /// Reset tpmEstablishment; only from locality 3 or 4.
    pub fn reset_established(&mut self, _locality: u8) -> Result<(), Error> {
        Ok(())
    }
    /// Persist the volatile state now.
    pub fn store_volatile(&mut self) -> Result<(), Error> {
        Ok(())
    }
    /// The serialised state blob of `kind` (for migration).
    pub fn state_blob(&mut self, kind: BlobKind) -> Result<Vec<u8>, Error> {
        Err(Error::BadState { blob: kind, reason: "engine not implemented yet".into() })
    }
    /// Install a state blob (only while powered off); it is validated and persisted.
    pub fn set_state_blob(&mut self, kind: BlobKind, _data: &[u8]) -> Result<(), Error> {
        Err(Error::BadState { blob: kind, reason: "engine not implemented yet".into() })
    }
    /// Physical presence asserted or not.
    pub fn set_physical_presence(&mut self, _asserted: bool) {}
    /// NV available or not; NV-writing commands fail with TPM_RC_NV_UNAVAILABLE while off.
    pub fn set_nv_available(&mut self, _available: bool) {}
    /// A flag the transport may set to cancel a long-running command (TPM_RC_CANCELED).
    pub fn cancel_flag(&self) -> std::sync::Arc<std::sync::atomic::AtomicBool> {
        std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false))
    }
}
