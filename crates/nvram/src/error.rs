//! Errors of the NVRAM. Each message names the image and what is wrong with it.

use std::path::PathBuf;

/// Everything that can go wrong with an NVRAM image.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The operating system refused an operation on the image.
    #[error("{path}: {op}: {source}")]
    Io {
        /// The image.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// A structure on the image does not check out.
    #[error("{path}: {structure}: {problem}")]
    Damaged {
        /// The image.
        path: PathBuf,
        /// Which structure (header, record at offset N, ...).
        structure: String,
        /// What is wrong with it.
        problem: String,
    },
    /// Another writer holds the image's lock: a running vtpm (or `vtpm nvram format`).
    #[error("{0}: in use: another vtpm (or `vtpm nvram format`) holds the image's lock")]
    InUse(PathBuf),
    /// Another live vtpm holds the lease of an image on shared storage.
    #[error("{path}: in use: {holder} holds the image's lease (renewed while this one watched)")]
    Leased {
        /// The image.
        path: PathBuf,
        /// Who holds it.
        holder: String,
    },
    /// The export has no room for the lease block after its regions.
    #[error("{0}: the export has no room for the image's lease after its two regions, so two vtpm on it could not be kept apart: refused; grow the export to a power-of-two size (e.g. `qemu-img resize IMAGE 4M`; the NVRAM in it stays as it is)")]
    NoLeaseRoom(PathBuf),
    /// Both header slots are blank: not an image vtpm made, or its headers were wiped.
    #[error("{0}: no NVRAM header (both header slots are all zeros): refused and left untouched; if this is meant to be a new image, format it with `vtpm nvram format {0}`")]
    Unformatted(PathBuf),
    /// `format` without force on an image that holds something.
    #[error("{0}: the image is not blank (its header slots hold data): formatting would erase it; add --force to format it anyway")]
    NotBlank(PathBuf),
    /// The image is encrypted and no key was given.
    #[error("{0}: the image is encrypted: a key is needed (--key-file)")]
    KeyRequired(PathBuf),
    /// The key does not open the image.
    #[error("{0}: wrong key: the image's key check does not decrypt with it")]
    WrongKey(PathBuf),
    /// The image is encrypted and encrypted images were refused.
    #[error(
        "{0}: the image is encrypted and encrypted images are refused (fail_on_encrypted_drive)"
    )]
    EncryptedRefused(PathBuf),
    /// A key was given for an image that is not encrypted.
    #[error("{0}: a key was given but the image is not encrypted")]
    NotEncrypted(PathBuf),
    /// The image cannot hold what was registered.
    #[error("{path}: image too small: {size} bytes, the registered blobs need at least {needed}")]
    TooSmall {
        /// The image.
        path: PathBuf,
        /// Its size.
        size: u64,
        /// What the registrations need.
        needed: u64,
    },
    /// A blob on the image is larger than the maximum registered for it.
    #[error("{path}: blob {name:?} holds {size} bytes, more than its registered maximum {max}")]
    BlobTooLarge {
        /// The image.
        path: PathBuf,
        /// The blob.
        name: String,
        /// Its size on the image.
        size: u64,
        /// The registered maximum.
        max: u64,
    },
    /// A write larger than the blob's registered maximum.
    #[error("blob {name:?}: {size} bytes exceed its registered maximum {max}")]
    WriteTooLarge {
        /// The blob.
        name: String,
        /// Bytes offered.
        size: usize,
        /// The registered maximum.
        max: u64,
    },
    /// A name that was not registered (or is not a valid name).
    #[error("blob {0:?} is not registered")]
    NotRegistered(String),
    /// A name that cannot be a blob name.
    #[error("invalid blob name {0:?}: 1 to 255 bytes of UTF-8 without NUL")]
    BadName(String),
    /// register() after start(), or similar misuse.
    #[error("{0}")]
    Usage(&'static str),
    /// The storage thread is gone (it failed or the NVRAM was closed).
    #[error("the NVRAM storage thread has stopped")]
    Stopped,
    /// The write (or the batch it was part of) could not be stored; the blob
    /// keeps its previous contents. Later writes are tried again.
    #[error("{path}: the write was not stored: {reason}")]
    Failed {
        /// The image.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
}

impl Error {
    /// The image the message names, for the variants whose message starts
    /// with it (so that a caller adding context names it only once).
    pub fn image(&self) -> Option<&std::path::Path> {
        match self {
            Error::Io { path, .. }
            | Error::Damaged { path, .. }
            | Error::TooSmall { path, .. }
            | Error::BlobTooLarge { path, .. }
            | Error::Failed { path, .. }
            | Error::Leased { path, .. } => Some(path),
            Error::InUse(p)
            | Error::NoLeaseRoom(p)
            | Error::Unformatted(p)
            | Error::NotBlank(p)
            | Error::KeyRequired(p)
            | Error::WrongKey(p)
            | Error::EncryptedRefused(p)
            | Error::NotEncrypted(p) => Some(p),
            Error::WriteTooLarge { .. }
            | Error::NotRegistered(_)
            | Error::BadName(_)
            | Error::Usage(_)
            | Error::Stopped => None,
        }
    }
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, Error>;
