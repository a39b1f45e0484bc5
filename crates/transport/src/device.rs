//! The TPM as the transport sees it. The `vtpm` binary implements this on
//! top of its TPM thread; tests implement it with mocks.
//!
//! INTERFACE CONTRACT shared by crates/transport and src/ (the binary).

/// Which state blob a control message or a migration moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateBlobKind {
    /// Permanent state (seeds, NV, persistent objects): swtpm PTM_BLOB_TYPE_PERMANENT (1).
    Permanent,
    /// Volatile state (loaded objects, sessions, PCRs): PTM_BLOB_TYPE_VOLATILE (2).
    Volatile,
    /// State saved by TPM2_Shutdown(STATE): PTM_BLOB_TYPE_SAVESTATE (3).
    SaveState,
}

/// A failure of a device operation, carried to the client as a TPM result code
/// (the control channel answers with these, e.g. 9 = TPM_FAIL, 3 = TPM_BAD_PARAMETER).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("device error {code:#x}: {msg}")]
pub struct DeviceError {
    /// TPM 1.2-style result code as swtpm's control channel reports it.
    pub code: u32,
    /// Human-readable reason for logs.
    pub msg: String,
}

/// The TPM device behind the transport. All methods are called from transport
/// threads; the implementation serialises them onto the TPM thread.
pub trait Device: Send + Sync {
    /// Execute one TPM command at `locality`; returns the response bytes
    /// (always a well-formed TPM response, possibly an error response).
    fn execute(&self, locality: u8, command: Vec<u8>) -> Vec<u8>;
    /// Power on / _TPM_Init (CMD_INIT), resuming from saved volatile state if any.
    /// `delete_volatile`: PTM_INIT_FLAG_DELETE_VOLATILE, delete that state after loading it.
    fn init(&self, delete_volatile: bool) -> Result<(), DeviceError>;
    /// Power off (CMD_SHUTDOWN, CMD_STOP, mssim power off): saves what must be saved.
    fn power_off(&self) -> Result<(), DeviceError>;
    /// Whether the TPM is powered on (initialised).
    fn is_running(&self) -> bool;
    /// Ask a running command to stop early (CMD_CANCEL_TPM_CMD, mssim cancel on).
    fn cancel(&self);
    /// TPM_ACCESS.tpmEstablishment (CMD_GET_TPMESTABLISHED).
    fn tpm_established(&self) -> Result<bool, DeviceError>;
    /// Clear tpmEstablishment from `locality` (CMD_RESET_TPMESTABLISHED; localities 3 and 4 only).
    fn reset_established(&self, locality: u8) -> Result<(), DeviceError>;
    /// _TPM_Hash_Start (CMD_HASH_START).
    fn hash_start(&self) -> Result<(), DeviceError>;
    /// _TPM_Hash_Data (CMD_HASH_DATA).
    fn hash_data(&self, data: &[u8]) -> Result<(), DeviceError>;
    /// _TPM_Hash_End (CMD_HASH_END).
    fn hash_end(&self) -> Result<(), DeviceError>;
    /// Write the volatile state to storage now (CMD_STORE_VOLATILE).
    fn store_volatile(&self) -> Result<(), DeviceError>;
    /// Serialised state blob for migration (CMD_GET_STATEBLOB); the transport chunks it.
    fn get_state_blob(&self, kind: StateBlobKind) -> Result<Vec<u8>, DeviceError>;
    /// Install a state blob received in full (CMD_SET_STATEBLOB); only while powered off.
    fn set_state_blob(&self, kind: StateBlobKind, data: Vec<u8>) -> Result<(), DeviceError>;
    /// Take the storage lock if it was not taken at start (CMD_LOCK_STORAGE).
    fn lock_storage(&self, retries: u32) -> Result<(), DeviceError>;
    /// Physical presence asserted or not (mssim platform port).
    fn set_physical_presence(&self, asserted: bool);
    /// NV available or not (mssim NV on/off): commands writing NV fail while off.
    fn set_nv_available(&self, available: bool);
    /// PTM_CONFIG_FLAG_* bits for CMD_GET_CONFIG (1 = state encrypted at rest,
    /// 2 = state blobs encrypted with a migration key). Default: none.
    fn config_flags(&self) -> u32 {
        0
    }
    /// The JSON text CMD_GET_INFO returns for `flags` (SWTPM_INFO_* bits), without
    /// the terminating NUL. Default: [`default_info`].
    fn info(&self, flags: u64) -> String {
        default_info(flags)
    }
}

/// The CMD_GET_INFO answer of vtpm, shaped like libtpms' `TPMLIB_GetInfo`:
/// bit 0 (SWTPM_INFO_TPMSPECIFICATION) adds the specification the engine
/// follows (TPM 2.0, level 0, revision 1.16, as TPM_PT_REVISION reports),
/// bit 1 (SWTPM_INFO_TPMATTRIBUTES) the manufacturer "VTPM" and model.
/// Unknown bits are ignored; no bits gives `{}`.
pub fn default_info(flags: u64) -> String {
    let mut parts = Vec::new();
    if flags & 1 != 0 {
        parts.push(r#""TPMSpecification":{"family":"2.0","level":0,"revision":116}"#.to_string());
    }
    if flags & 2 != 0 {
        // "VTPM" as a TPM_PT_MANUFACTURER value, in the id:XXXXXXXX form libtpms uses.
        parts.push(format!(
            r#""TPMAttributes":{{"manufacturer":"id:{:08X}","version":"id:{:08X}","model":"vtpm"}}"#,
            u32::from_be_bytes(*b"VTPM"),
            0
        ));
    }
    format!("{{{}}}", parts.join(","))
}
