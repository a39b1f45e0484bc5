//! The NVRAM blobstore: named blobs in one crash-safe, optionally encrypted
//! image, written by a storage thread with group commit.
//!
//! Lifecycle: [`Nvram::open`] a backend, [`Nvram::register`] each blob with
//! its maximum size, [`Nvram::start`] (reconciles registrations with the
//! image and spawns the storage thread), then use the [`NvramHandle`]:
//! synchronous reads, asynchronous writes that complete when durable.
//!
//! INTERFACE CONTRACT (other crates build against these signatures; add to
//! them freely, do not change them without updating every caller).

use std::path::Path;
use std::sync::Arc;

/// Errors of the NVRAM. Messages name the file and the structure at fault.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Placeholder until the crate is implemented.
    #[error("nvram: not implemented yet")]
    Unimplemented,
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// Whether acknowledged writes are flushed to stable storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SyncMode {
    /// One fdatasync per acknowledged batch (the default).
    #[default]
    Durable,
    /// No flushes: after a power cut the image may hold an older state, never a torn one.
    Relaxed,
}

/// Where the encryption key comes from.
pub enum KeySource {
    /// 32 raw key bytes.
    Raw(zeroize::Zeroizing<[u8; 32]>),
    /// A passphrase, stretched with a password KDF (salt kept in the header).
    Passphrase(zeroize::Zeroizing<Vec<u8>>),
}

/// How to open an image.
#[derive(Default)]
pub struct OpenOptions {
    /// Flush policy.
    pub sync: SyncMode,
    /// Encryption key; required for encrypted images, makes new images encrypted.
    pub key: Option<KeySource>,
    /// Refuse an encrypted image outright (fail_on_encrypted_drive).
    pub refuse_encrypted: bool,
    /// Size of a regular file created when missing (None: a default).
    pub create_size: Option<u64>,
}

/// Name, size and registered maximum of one blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobInfo {
    /// The blob's name, e.g. `tpm2/permanent`.
    pub name: String,
    /// Current size in bytes.
    pub size: u64,
    /// Registered maximum in this session (None: another user's blob).
    pub max_size: Option<u64>,
}

/// An opened image, before start.
pub struct Nvram {}

impl Nvram {
    /// Open (or create) the image at `path`: a regular file, a raw image or a block device.
    pub fn open(_path: &Path, _opts: OpenOptions) -> Result<Nvram> {
        Err(Error::Unimplemented)
    }
    /// Register a blob by name with its maximum size (before start).
    pub fn register(&mut self, _name: &str, _max_size: u64) -> Result<()> {
        Err(Error::Unimplemented)
    }
    /// Reconcile registrations with the image and spawn the storage thread.
    pub fn start(self) -> Result<NvramHandle> {
        Err(Error::Unimplemented)
    }
}

/// A cloneable handle to a started NVRAM; the storage thread ends when the last handle drops.
#[derive(Clone)]
pub struct NvramHandle {
    _inner: Arc<()>,
}

/// A pending write or delete: wait for durability or for the error.
pub struct Completion {}

impl Completion {
    /// Block until the write is durable (or failed).
    pub fn wait(self) -> Result<()> {
        Err(Error::Unimplemented)
    }
}

impl NvramHandle {
    /// Read a blob: `Ok(None)` if absent, `Ok(Some(vec![]))` if present and empty.
    pub fn read(&self, _name: &str) -> Result<Option<Vec<u8>>> {
        Err(Error::Unimplemented)
    }
    /// Post a write to the storage thread.
    pub fn write(&self, _name: &str, _data: Vec<u8>) -> Completion {
        Completion {}
    }
    /// Post a write; `done` is called on the storage thread when durable or failed.
    pub fn write_with(&self, _name: &str, _data: Vec<u8>, _done: Box<dyn FnOnce(Result<()>) + Send>) {}
    /// Post a delete.
    pub fn delete(&self, _name: &str) -> Completion {
        Completion {}
    }
    /// Every blob on the image with its size.
    pub fn list(&self) -> Vec<BlobInfo> {
        Vec::new()
    }
    /// Total size of the NVRAM (the image) in bytes.
    pub fn total_size(&self) -> u64 {
        0
    }
}
