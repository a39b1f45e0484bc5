//! Numbers of the swtpm control channel, as swtpm's `tpm_ioctl.h` defines
//! them (all values big-endian on the socket).

/// A control command code (the u32 that starts each control message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum CtrlCommand {
    /// CMD_GET_CAPABILITY: which commands are implemented (PTM_CAP_* bits).
    GetCapability = 1,
    /// CMD_INIT: power on / _TPM_Init.
    Init = 2,
    /// CMD_SHUTDOWN: power off and terminate the process.
    Shutdown = 3,
    /// CMD_GET_TPMESTABLISHED: read the tpmEstablished bit.
    GetTpmEstablished = 4,
    /// CMD_SET_LOCALITY: locality of the following data-channel commands.
    SetLocality = 5,
    /// CMD_HASH_START: _TPM_Hash_Start.
    HashStart = 6,
    /// CMD_HASH_DATA: _TPM_Hash_Data.
    HashData = 7,
    /// CMD_HASH_END: _TPM_Hash_End.
    HashEnd = 8,
    /// CMD_CANCEL_TPM_CMD: cancel the running command.
    CancelTpmCmd = 9,
    /// CMD_STORE_VOLATILE: write the volatile state now.
    StoreVolatile = 10,
    /// CMD_RESET_TPMESTABLISHED: clear tpmEstablished.
    ResetTpmEstablished = 11,
    /// CMD_GET_STATEBLOB: read a state blob (migration).
    GetStateBlob = 12,
    /// CMD_SET_STATEBLOB: write a state blob (migration).
    SetStateBlob = 13,
    /// CMD_STOP: power off, keep the process.
    Stop = 14,
    /// CMD_GET_CONFIG: which keys are in use.
    GetConfig = 15,
    /// CMD_SET_DATAFD: adopt a data channel passed with SCM_RIGHTS.
    SetDataFd = 16,
    /// CMD_SET_BUFFERSIZE: query or set the command buffer size.
    SetBufferSize = 17,
    /// CMD_GET_INFO: JSON facts about the TPM implementation.
    GetInfo = 18,
    /// CMD_LOCK_STORAGE: take the storage lock.
    LockStorage = 19,
}

impl CtrlCommand {
    /// Every command, in code order.
    pub const ALL: [CtrlCommand; 19] = [
        CtrlCommand::GetCapability,
        CtrlCommand::Init,
        CtrlCommand::Shutdown,
        CtrlCommand::GetTpmEstablished,
        CtrlCommand::SetLocality,
        CtrlCommand::HashStart,
        CtrlCommand::HashData,
        CtrlCommand::HashEnd,
        CtrlCommand::CancelTpmCmd,
        CtrlCommand::StoreVolatile,
        CtrlCommand::ResetTpmEstablished,
        CtrlCommand::GetStateBlob,
        CtrlCommand::SetStateBlob,
        CtrlCommand::Stop,
        CtrlCommand::GetConfig,
        CtrlCommand::SetDataFd,
        CtrlCommand::SetBufferSize,
        CtrlCommand::GetInfo,
        CtrlCommand::LockStorage,
    ];

    /// The command with this code, if any.
    pub fn from_code(code: u32) -> Option<CtrlCommand> {
        Self::ALL.iter().copied().find(|c| *c as u32 == code)
    }

    /// How many request bytes follow the code, as swtpm checks them.
    pub fn request_body(self) -> Body {
        use CtrlCommand::*;
        match self {
            // swtpm does not look at GET_CAPABILITY's or SET_DATAFD's body.
            GetCapability | SetDataFd => Body::AtLeast(0),
            Init => Body::Exact(4),
            Shutdown | GetTpmEstablished | HashStart | HashEnd | CancelTpmCmd | StoreVolatile
            | Stop | GetConfig => Body::Exact(0),
            // QEMU sends the whole 4-byte union, tcti-swtpm just the byte.
            SetLocality | ResetTpmEstablished => Body::AtLeast(1),
            // Header only; the data that follows is streamed by the handler.
            HashData => Body::AtLeast(4),
            GetStateBlob | SetStateBlob => Body::AtLeast(12),
            SetBufferSize | LockStorage => Body::AtLeast(4),
            GetInfo => Body::AtLeast(16),
        }
    }
}

/// The request-body rule of a control command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// Exactly this many bytes, else TPM_BAD_PARAMETER.
    Exact(usize),
    /// At least this many bytes, else TPM_BAD_PARAMETER; more are ignored
    /// (or, for HASH_DATA / SET_STATEBLOB, are the start of the payload).
    AtLeast(usize),
}

impl Body {
    /// The bytes needed before the command can be handled.
    pub fn minimum(self) -> usize {
        match self {
            Body::Exact(n) | Body::AtLeast(n) => n,
        }
    }

    /// Whether a body of `len` bytes is acceptable.
    pub fn accepts(self, len: usize) -> bool {
        match self {
            Body::Exact(n) => len == n,
            Body::AtLeast(n) => len >= n,
        }
    }
}

/// PTM_CAP_INIT.
pub const PTM_CAP_INIT: u64 = 1;
/// PTM_CAP_SHUTDOWN.
pub const PTM_CAP_SHUTDOWN: u64 = 1 << 1;
/// PTM_CAP_GET_TPMESTABLISHED.
pub const PTM_CAP_GET_TPMESTABLISHED: u64 = 1 << 2;
/// PTM_CAP_SET_LOCALITY.
pub const PTM_CAP_SET_LOCALITY: u64 = 1 << 3;
/// PTM_CAP_HASHING (HASH_START/DATA/END).
pub const PTM_CAP_HASHING: u64 = 1 << 4;
/// PTM_CAP_CANCEL_TPM_CMD.
pub const PTM_CAP_CANCEL_TPM_CMD: u64 = 1 << 5;
/// PTM_CAP_STORE_VOLATILE.
pub const PTM_CAP_STORE_VOLATILE: u64 = 1 << 6;
/// PTM_CAP_RESET_TPMESTABLISHED.
pub const PTM_CAP_RESET_TPMESTABLISHED: u64 = 1 << 7;
/// PTM_CAP_GET_STATEBLOB.
pub const PTM_CAP_GET_STATEBLOB: u64 = 1 << 8;
/// PTM_CAP_SET_STATEBLOB.
pub const PTM_CAP_SET_STATEBLOB: u64 = 1 << 9;
/// PTM_CAP_STOP.
pub const PTM_CAP_STOP: u64 = 1 << 10;
/// PTM_CAP_GET_CONFIG.
pub const PTM_CAP_GET_CONFIG: u64 = 1 << 11;
/// PTM_CAP_SET_DATAFD.
pub const PTM_CAP_SET_DATAFD: u64 = 1 << 12;
/// PTM_CAP_SET_BUFFERSIZE.
pub const PTM_CAP_SET_BUFFERSIZE: u64 = 1 << 13;
/// PTM_CAP_GET_INFO.
pub const PTM_CAP_GET_INFO: u64 = 1 << 14;
/// PTM_CAP_SEND_COMMAND_HEADER: the data channel takes the simulator framing.
pub const PTM_CAP_SEND_COMMAND_HEADER: u64 = 1 << 15;
/// PTM_CAP_LOCK_STORAGE.
pub const PTM_CAP_LOCK_STORAGE: u64 = 1 << 16;

/// What vtpm answers to CMD_GET_CAPABILITY: every command above is implemented.
pub const VTPM_CAPS: u64 = PTM_CAP_INIT
    | PTM_CAP_SHUTDOWN
    | PTM_CAP_GET_TPMESTABLISHED
    | PTM_CAP_SET_LOCALITY
    | PTM_CAP_HASHING
    | PTM_CAP_CANCEL_TPM_CMD
    | PTM_CAP_STORE_VOLATILE
    | PTM_CAP_RESET_TPMESTABLISHED
    | PTM_CAP_GET_STATEBLOB
    | PTM_CAP_SET_STATEBLOB
    | PTM_CAP_STOP
    | PTM_CAP_GET_CONFIG
    | PTM_CAP_SET_DATAFD
    | PTM_CAP_SET_BUFFERSIZE
    | PTM_CAP_GET_INFO
    | PTM_CAP_SEND_COMMAND_HEADER
    | PTM_CAP_LOCK_STORAGE;

/// PTM_INIT_FLAG_DELETE_VOLATILE: drop the saved volatile state while initialising.
pub const PTM_INIT_FLAG_DELETE_VOLATILE: u32 = 1;

/// PTM_BLOB_TYPE_PERMANENT.
pub const PTM_BLOB_TYPE_PERMANENT: u32 = 1;
/// PTM_BLOB_TYPE_VOLATILE.
pub const PTM_BLOB_TYPE_VOLATILE: u32 = 2;
/// PTM_BLOB_TYPE_SAVESTATE.
pub const PTM_BLOB_TYPE_SAVESTATE: u32 = 3;

/// PTM_STATE_FLAG_DECRYPTED (request): the client wants the blob decrypted.
pub const PTM_STATE_FLAG_DECRYPTED: u32 = 1;
/// PTM_STATE_FLAG_ENCRYPTED (response / SET request): the blob is encrypted
/// with a migration key.
pub const PTM_STATE_FLAG_ENCRYPTED: u32 = 2;

/// PTM_CONFIG_FLAG_FILE_KEY: the state at rest is encrypted.
pub const PTM_CONFIG_FLAG_FILE_KEY: u32 = 1;
/// PTM_CONFIG_FLAG_MIGRATION_KEY: state blobs are encrypted with a migration key.
pub const PTM_CONFIG_FLAG_MIGRATION_KEY: u32 = 2;

/// SWTPM_INFO_TPMSPECIFICATION (CMD_GET_INFO flag).
pub const SWTPM_INFO_TPMSPECIFICATION: u64 = 1;
/// SWTPM_INFO_TPMATTRIBUTES (CMD_GET_INFO flag).
pub const SWTPM_INFO_TPMATTRIBUTES: u64 = 1 << 1;

/// Size of one CMD_GET_INFO response buffer (PTM_GETINFO_SIZE).
pub const PTM_GETINFO_SIZE: usize = 3 * 1024;
/// Largest HASH_DATA chunk swtpm takes per read (`ptm_hdata` data array).
pub const PTM_HDATA_SIZE: usize = 4096;

/// TPM 1.2 result codes the control channel answers with.
pub mod rc {
    /// TPM_SUCCESS.
    pub const TPM_SUCCESS: u32 = 0;
    /// TPM_BAD_PARAMETER: malformed or short request.
    pub const TPM_BAD_PARAMETER: u32 = 3;
    /// TPM_FAIL: the operation failed.
    pub const TPM_FAIL: u32 = 9;
    /// TPM_KEYNOTFOUND: a state blob is encrypted and there is no key for it.
    pub const TPM_KEYNOTFOUND: u32 = 13;
    /// TPM_DECRYPT_ERROR: a state blob does not decrypt with the key given.
    pub const TPM_DECRYPT_ERROR: u32 = 0x21;
    /// TPM_BAD_KEY_PROPERTY: the key is of the wrong size for the blob.
    pub const TPM_BAD_KEY_PROPERTY: u32 = 0x28;
    /// TPM_BAD_VERSION: a state blob of an unknown layout version.
    pub const TPM_BAD_VERSION: u32 = 0x2e;
    /// TPM_BAD_ORDINAL: unknown command, or not allowed in the TPM's power state.
    pub const TPM_BAD_ORDINAL: u32 = 10;
    /// TPM_SIZE: out of memory / too large.
    pub const TPM_SIZE: u32 = 23;
    /// TPM_IOERROR: the transfer broke, or a data channel is already set.
    pub const TPM_IOERROR: u32 = 31;
    /// TPM_BAD_LOCALITY: locality above 4, or 4 when rejected.
    pub const TPM_BAD_LOCALITY: u32 = 61;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_match_tpm_ioctl_h() {
        for (i, c) in CtrlCommand::ALL.iter().enumerate() {
            assert_eq!(*c as u32, i as u32 + 1);
            assert_eq!(CtrlCommand::from_code(i as u32 + 1), Some(*c));
        }
        assert_eq!(CtrlCommand::from_code(0), None);
        assert_eq!(CtrlCommand::from_code(20), None);
        assert_eq!(VTPM_CAPS, 0x1_ffff);
    }
}
