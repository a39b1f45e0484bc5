//! The persistence port: how the engine hands state bytes to durable storage.
//! The binary implements it over the nvram crate; tests use [`MemoryStore`].

use std::collections::HashMap;

/// The state blobs the engine keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BlobKind {
    /// Seeds, hierarchy auth, NV indices, persistent objects, clock base, counters.
    Permanent,
    /// What TPM2_Shutdown(STATE) saves for Startup(STATE).
    SaveState,
    /// Everything in RAM (for suspend and migration).
    Volatile,
}

impl BlobKind {
    /// The blob's name in the NVRAM.
    pub fn name(self) -> &'static str {
        match self {
            BlobKind::Permanent => "tpm2/permanent",
            BlobKind::SaveState => "tpm2/savestate",
            BlobKind::Volatile => "tpm2/volatile",
        }
    }
    /// Maximum size the engine will ever write for this blob.
    pub fn max_size(self) -> u64 {
        match self {
            BlobKind::Permanent => 256 * 1024,
            BlobKind::SaveState => 64 * 1024,
            BlobKind::Volatile => 256 * 1024,
        }
    }
    /// Every blob kind.
    pub const ALL: [BlobKind; 3] = [BlobKind::Permanent, BlobKind::SaveState, BlobKind::Volatile];
}

/// A storage failure reported by the port.
#[derive(Debug, thiserror::Error)]
#[error("storage of {blob:?} failed: {reason}")]
pub struct PersistError {
    /// Which blob.
    pub blob: BlobKind,
    /// What went wrong.
    pub reason: String,
}

/// Durable storage for the engine's state blobs.
pub trait Persistence: Send {
    /// Read a blob; `Ok(None)` if it was never written (or deleted).
    fn load(&mut self, blob: BlobKind) -> Result<Option<Vec<u8>>, PersistError>;
    /// Write a blob and return only when it is durable (the bytes are handed
    /// over: the NVRAM keeps them without another copy).
    fn store(&mut self, blob: BlobKind, bytes: Vec<u8>) -> Result<(), PersistError>;
    /// Remove a blob and return only when that is durable.
    fn delete(&mut self, blob: BlobKind) -> Result<(), PersistError>;
}

/// In-memory storage for tests and benches of the engine alone.
#[derive(Debug, Default, Clone)]
pub struct MemoryStore {
    /// The blobs.
    pub blobs: HashMap<BlobKind, Vec<u8>>,
}

impl Persistence for MemoryStore {
    fn load(&mut self, blob: BlobKind) -> Result<Option<Vec<u8>>, PersistError> {
        Ok(self.blobs.get(&blob).cloned())
    }
    fn store(&mut self, blob: BlobKind, bytes: Vec<u8>) -> Result<(), PersistError> {
        self.blobs.insert(blob, bytes);
        Ok(())
    }
    fn delete(&mut self, blob: BlobKind) -> Result<(), PersistError> {
        self.blobs.remove(&blob);
        Ok(())
    }
}
