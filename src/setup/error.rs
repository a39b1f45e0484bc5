//! The errors of `vtpm setup`; each renders as one line.

use std::path::PathBuf;

/// Everything that can make `vtpm setup` fail.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// A bad or conflicting option.
    #[error("{0}")]
    Usage(String),
    /// Opening, locking or running the TPM state.
    #[error(transparent)]
    Vtpm(#[from] crate::error::Error),
    /// A TPM command answered an error.
    #[error("{command} failed: TPM response code {rc:#x}")]
    Tpm {
        /// The command.
        command: &'static str,
        /// Its response code.
        rc: u32,
    },
    /// A TPM response that does not parse.
    #[error("{0}: malformed response")]
    Response(&'static str),
    /// A file of the CA or a configuration file.
    #[error("{what} {}: {source}", path.display())]
    Io {
        /// What the file is for.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A key or certificate could not be read, made or signed.
    #[error("{0}")]
    Cert(String),
}

impl SetupError {
    /// An I/O error on `path`.
    pub fn io(what: &'static str, path: &std::path::Path, source: std::io::Error) -> SetupError {
        SetupError::Io {
            what,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// The result of `vtpm setup`'s steps.
pub type Result<T> = std::result::Result<T, SetupError>;
