//! The engine's persistence port over the NVRAM: each [`BlobKind`] is a
//! named blob registered with its maximum size, and `store` returns only once
//! the write is durable (the TPM rule: NV is updated before the response).

use std::path::Path;

use nvram::{Nvram, NvramHandle, OpenOptions};
use tpm_core::persist::{BlobKind, PersistError, Persistence};

use crate::error::{Error, Result};

/// Open the image at `path`, register the TPM's blobs and start the storage thread.
pub fn open(path: &Path, opts: OpenOptions) -> Result<NvramHandle> {
    let err = |source| Error::Nvram {
        path: path.to_path_buf(),
        source,
    };
    let mut nv = Nvram::open(path, opts).map_err(err)?;
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

/// [`Persistence`] over a started NVRAM.
pub struct NvramStorage {
    handle: NvramHandle,
}

impl NvramStorage {
    /// Wrap a started NVRAM (on which the TPM's blobs are registered).
    pub fn new(handle: NvramHandle) -> NvramStorage {
        NvramStorage { handle }
    }
}

fn fail(blob: BlobKind, e: nvram::Error) -> PersistError {
    PersistError {
        blob,
        reason: e.to_string(),
    }
}

impl Persistence for NvramStorage {
    fn load(&mut self, blob: BlobKind) -> std::result::Result<Option<Vec<u8>>, PersistError> {
        self.handle.read(blob.name()).map_err(|e| fail(blob, e))
    }

    fn store(&mut self, blob: BlobKind, bytes: Vec<u8>) -> std::result::Result<(), PersistError> {
        self.handle
            .write_sync(blob.name(), bytes)
            .map_err(|e| fail(blob, e))
    }

    fn delete(&mut self, blob: BlobKind) -> std::result::Result<(), PersistError> {
        self.handle
            .delete(blob.name())
            .wait()
            .map_err(|e| fail(blob, e))
    }
}
