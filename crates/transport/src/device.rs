//! The TPM as the transport sees it. The `vtpm` binary implements this on
//! its engine; tests implement it with mocks. Every method runs on the TPM
//! thread (see [`tpm_loop`](crate::tpm_loop)): data-channel commands
//! directly, everything else as a job posted with a
//! [`TpmHandle`](crate::TpmHandle).
//!
//! INTERFACE CONTRACT shared by crates/transport and src/ (the binary).

use std::sync::Arc;

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

/// Cancels the command in progress; called from another thread than the
/// TPM thread (which is busy with that command).
pub type Canceller = Arc<dyn Fn() + Send + Sync>;

/// The TPM device behind the transport. It lives on the TPM thread, which
/// alone calls these methods, one at a time: no locking is needed in it.
pub trait Device {
    /// Execute one TPM command at `locality`; returns the response bytes
    /// (always a well-formed TPM response, possibly an error response).
    fn execute(&mut self, locality: u8, command: &[u8]) -> Vec<u8>;
    /// Power on / _TPM_Init (CMD_INIT), resuming from saved volatile state if any.
    /// `delete_volatile`: PTM_INIT_FLAG_DELETE_VOLATILE, delete that state after loading it.
    fn init(&mut self, delete_volatile: bool) -> Result<(), DeviceError>;
    /// Power off (CMD_SHUTDOWN, CMD_STOP, mssim power off): saves what must be saved.
    fn power_off(&mut self) -> Result<(), DeviceError>;
    /// Whether the TPM is powered on (initialised).
    fn is_running(&self) -> bool;
    /// How another thread asks a running command to stop early
    /// (CMD_CANCEL_TPM_CMD, mssim cancel on); asked once, when the TPM
    /// thread's loop starts. Default: commands cannot be cancelled.
    fn canceller(&self) -> Option<Canceller> {
        None
    }
    /// TPM_ACCESS.tpmEstablishment (CMD_GET_TPMESTABLISHED).
    fn tpm_established(&mut self) -> Result<bool, DeviceError>;
    /// Clear tpmEstablishment from `locality` (CMD_RESET_TPMESTABLISHED; localities 3 and 4 only).
    fn reset_established(&mut self, locality: u8) -> Result<(), DeviceError>;
    /// _TPM_Hash_Start (CMD_HASH_START).
    fn hash_start(&mut self) -> Result<(), DeviceError>;
    /// _TPM_Hash_Data (CMD_HASH_DATA).
    fn hash_data(&mut self, data: &[u8]) -> Result<(), DeviceError>;
    /// _TPM_Hash_End (CMD_HASH_END).
    fn hash_end(&mut self) -> Result<(), DeviceError>;
    /// Write the volatile state to storage now (CMD_STORE_VOLATILE).
    fn store_volatile(&mut self) -> Result<(), DeviceError>;
    /// Serialised state blob for migration (CMD_GET_STATEBLOB); the transport chunks it.
    fn get_state_blob(&mut self, kind: StateBlobKind) -> Result<Vec<u8>, DeviceError>;
    /// Install a state blob received in full (CMD_SET_STATEBLOB); only while powered off.
    fn set_state_blob(&mut self, kind: StateBlobKind, data: Vec<u8>) -> Result<(), DeviceError>;
    /// Take the storage lock if it was not taken at start (CMD_LOCK_STORAGE).
    fn lock_storage(&mut self, retries: u32) -> Result<(), DeviceError>;
    /// Physical presence asserted or not (mssim platform port).
    fn set_physical_presence(&mut self, asserted: bool);
    /// NV available or not (mssim NV on/off): commands writing NV fail while off.
    fn set_nv_available(&mut self, available: bool);
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
    let i = TpmInfo::OURS;
    let mut parts = Vec::new();
    if flags & 1 != 0 {
        parts.push(format!(
            r#""TPMSpecification":{{"family":"{}","level":{},"revision":{}}}"#,
            i.family, i.level, i.revision
        ));
    }
    if flags & 2 != 0 {
        parts.push(format!(
            r#""TPMAttributes":{{"manufacturer":"id:{:08X}","version":"id:{:08X}","model":"{}"}}"#,
            i.manufacturer, i.version, i.model
        ));
    }
    format!("{{{}}}", parts.join(","))
}

/// What vtpm says of itself in CMD_GET_INFO (and its EK certificates).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TpmInfo {
    /// TPM specification family.
    pub family: &'static str,
    /// Specification level.
    pub level: u32,
    /// Specification revision (116: 1.16).
    pub revision: u32,
    /// TPM_PT_MANUFACTURER: "VTPM" as a value (printed as id:XXXXXXXX, as libtpms does).
    pub manufacturer: u32,
    /// Firmware version (printed as id:XXXXXXXX).
    pub version: u32,
    /// Model.
    pub model: &'static str,
}

impl TpmInfo {
    /// vtpm's.
    pub const OURS: TpmInfo = TpmInfo {
        family: "2.0",
        level: 0,
        revision: 116,
        manufacturer: u32::from_be_bytes(*b"VTPM"),
        version: 0,
        model: "vtpm",
    };
}

/// Power off if on (CMD_SHUTDOWN / CMD_STOP, mssim's TPM_STOP and
/// TPM_SIGNAL_POWER_OFF): run as one job on the TPM thread, so nothing runs
/// between the check and the power-off.
pub(crate) fn power_off_if_running(d: &mut dyn Device) -> Result<(), DeviceError> {
    if d.is_running() {
        d.power_off()
    } else {
        Ok(())
    }
}
