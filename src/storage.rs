//! The engine's persistence port over the NVRAM: each [`BlobKind`] is a
//! named blob registered with its maximum size, and `store` returns only once
//! the write is durable (the TPM rule: NV is updated before the response).
//! The NVRAM is reached through the holder's slot ([`crate::holder`]), so a
//! state taken back after a hand-over is written through the image opened
//! anew; a handed-over NVRAM refuses writes, which the engine answers with
//! TPM_RC_NV_UNAVAILABLE.

use std::sync::{Arc, Mutex};

use nvram::{Nvram, NvramHandle, OpenOptions};
use tpm_core::persist::{BlobKind, PersistError, Persistence};

use crate::error::{Error, Result};
use crate::state_dir::{StateLocation, StateSpec};

/// The open NVRAM the engine writes through, shared between the engine's
/// persistence port and the holder, which replaces it when the state is
/// taken back after a hand-over.
pub type Slot = Arc<Mutex<Option<NvramHandle>>>;

/// Open the state's image (a file, a block device or an NBD export),
/// register the TPM's blobs and start the storage thread.
pub fn open(spec: &StateSpec, opts: OpenOptions) -> Result<NvramHandle> {
    let path = spec.image();
    let path = path.as_path();
    let err = |source| Error::Nvram {
        path: path.to_path_buf(),
        source,
    };
    let mut nv = match &spec.location {
        StateLocation::Nbd(uri) => Nvram::open_nbd(uri, opts),
        _ => Nvram::open(path, opts),
    }
    .map_err(err)?;
    for kind in BlobKind::ALL {
        nv.register(kind.name(), kind.max_size()).map_err(err)?;
    }
    let handle = nv.start().map_err(err)?;
    // Damage the image's redundancy covered (the state is the latest, and the
    // operator learns that the disk under it is failing), or why it has none.
    for line in handle.notes() {
        log::warn!("{}: {line}", path.display());
    }
    Ok(handle)
}

/// [`Persistence`] over the started NVRAM in a holder's slot.
pub struct NvramStorage {
    slot: Slot,
}

impl NvramStorage {
    /// Persist through the NVRAM in `slot` (on which the TPM's blobs are registered).
    pub fn new(slot: Slot) -> NvramStorage {
        NvramStorage { slot }
    }

    /// The NVRAM now in the slot (a cheap clone of the handle, so the slot is
    /// not held during a write).
    fn handle(&self, blob: BlobKind) -> std::result::Result<NvramHandle, PersistError> {
        let h = self.slot.lock().unwrap_or_else(|e| e.into_inner()).clone();
        h.ok_or_else(|| PersistError {
            blob,
            reason: "the TPM state is not open (its lock is not held)".into(),
        })
    }
}

fn fail(blob: BlobKind, e: nvram::Error) -> PersistError {
    // The TPM answers with a bare response code; the reason goes to the log.
    log::error!("the {} state could not be stored or read: {e}", blob.name());
    PersistError {
        blob,
        reason: e.to_string(),
    }
}

impl Persistence for NvramStorage {
    fn load(&mut self, blob: BlobKind) -> std::result::Result<Option<Vec<u8>>, PersistError> {
        self.handle(blob)?
            .read(blob.name())
            .map_err(|e| fail(blob, e))
    }

    fn store(&mut self, blob: BlobKind, bytes: Vec<u8>) -> std::result::Result<(), PersistError> {
        self.handle(blob)?
            .write_sync(blob.name(), bytes)
            .map_err(|e| fail(blob, e))
    }

    fn delete(&mut self, blob: BlobKind) -> std::result::Result<(), PersistError> {
        self.handle(blob)?
            .delete(blob.name())
            .wait()
            .map_err(|e| fail(blob, e))
    }
}
