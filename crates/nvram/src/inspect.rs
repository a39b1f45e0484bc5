//! Read-only inspection of an image (for `vtpm nvram info|list|dump`): never
//! writes, never takes the storage lock, never formats.

use std::path::Path;

use crate::backend::FileBackend;
use crate::error::{Error, Result};
use crate::format::Kdf;
use crate::store::{Store, StoreOptions};
use crate::{KeySource, SyncMode};

/// What `info` shows.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Info {
    /// The image.
    pub path: String,
    /// Size of the image in bytes.
    pub size_bytes: u64,
    /// Size of the image in KiB.
    pub size_kib: u64,
    /// Format version.
    pub format_version: u32,
    /// Whether blobs and names are encrypted.
    pub encrypted: bool,
    /// How the key is derived.
    pub key_derivation: String,
    /// Size of each of the two log regions.
    pub region_size: u64,
    /// Region holding the live log.
    pub active_region: u32,
    /// Header generation (compactions + 1).
    pub generation: u64,
    /// Bytes of the active region in use.
    pub log_used: u64,
    /// Number of blobs.
    pub blobs: usize,
    /// A running vtpm holds the image's lock: this is a read-only view of a
    /// live image (what it shows may be a moment old).
    pub in_use: bool,
}

/// One blob in a listing.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Entry {
    /// Its name.
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
}

/// An image opened for reading.
pub struct Inspection {
    store: Store,
}

impl Inspection {
    /// Open `path` read-only; `key` for encrypted images.
    pub fn open(path: &Path, key: Option<KeySource>) -> Result<Inspection> {
        let (be, _) = FileBackend::open(path, None, true).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            op: "opening",
            source,
        })?;
        let store = Store::open(
            Box::new(be),
            StoreOptions {
                key: key.as_ref(),
                refuse_encrypted: false,
                sync: SyncMode::Relaxed,
                read_only: true,
                fresh: false,
            },
        )?;
        Ok(Inspection { store })
    }

    /// The image's vital statistics.
    pub fn info(&self) -> Info {
        let h = &self.store.header;
        Info {
            path: self.store.path().display().to_string(),
            size_bytes: self.store.image_size(),
            size_kib: self.store.image_size() / 1024,
            format_version: h.version,
            encrypted: h.encrypted(),
            key_derivation: match h.kdf {
                Kdf::None => "none".into(),
                Kdf::Raw => "raw 256-bit key".into(),
                Kdf::Argon2id {
                    m_cost,
                    t_cost,
                    p_cost,
                } => format!("argon2id m={m_cost}KiB t={t_cost} p={p_cost}"),
            },
            region_size: h.region_size,
            active_region: h.active,
            generation: h.generation,
            log_used: self.store.tail,
            blobs: self.store.blobs().len(),
            in_use: crate::backend::in_use(self.store.path()),
        }
    }

    /// Every blob with its size, by name.
    pub fn list(&self) -> Vec<Entry> {
        self.store
            .blobs()
            .iter()
            .map(|(n, d)| Entry {
                name: n.clone(),
                size: d.len() as u64,
            })
            .collect()
    }

    /// A blob's contents.
    pub fn read(&self, name: &str) -> Option<&[u8]> {
        self.store.blobs().get(name).map(|d| d.as_slice())
    }
}
