//! The errors of the `vtpm` binary. Every one renders as a single line; `main`
//! prints it as `vtpm: <message>` and exits with status 1.

use std::path::PathBuf;

/// Everything that can stop `vtpm` from starting or make it exit with an error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A command-line option is unknown, malformed or conflicts with another.
    #[error("{0}")]
    Usage(String),
    /// A file or descriptor could not be used.
    #[error("{what} {}: {source}", path.display())]
    Io {
        /// What the file is for ("cannot create state directory", ...).
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A file descriptor passed on the command line is unusable.
    #[error("{option}: file descriptor {fd}: {reason}")]
    Fd {
        /// The option naming it (`--server fd=`, `--log fd=`, ...).
        option: &'static str,
        /// The descriptor number.
        fd: i32,
        /// Why it cannot be used.
        reason: String,
    },
    /// Another instance holds the state lock.
    #[error("the TPM state {} is in use by another vtpm{holder}: its lock file {} is held", state.display(), lock.display())]
    Locked {
        /// The state directory or image.
        state: PathBuf,
        /// The lock file.
        lock: PathBuf,
        /// " (pid N)" when the holder wrote its pid, else empty.
        holder: String,
    },
    /// The NVRAM image could not be opened or started.
    #[error("{}", nvram_message(path, source))]
    Nvram {
        /// The image.
        path: PathBuf,
        /// The NVRAM's error.
        source: nvram::Error,
    },
    /// The TPM engine could not start.
    #[error("TPM engine: {0}")]
    Engine(String),
    /// The transport could not start (bind, listen, descriptor problems).
    #[error("cannot serve: {0}")]
    Transport(String),
    /// Daemonizing or signal setup failed.
    #[error("{0}")]
    Process(String),
}

impl Error {
    /// An [`Error::Usage`] naming `option`.
    pub fn usage(option: &str, msg: impl std::fmt::Display) -> Error {
        Error::Usage(format!("{option}: {msg}"))
    }

    /// An [`Error::Io`] for `path`.
    pub fn io(what: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io {
            what,
            path: path.into(),
            source,
        }
    }
}

/// "NVRAM image IMAGE: what is wrong", naming the image once: most nvram
/// errors start with the image already.
fn nvram_message(path: &std::path::Path, source: &nvram::Error) -> String {
    match source.image() {
        Some(_) => format!("NVRAM image {source}"),
        None => format!("NVRAM image {}: {source}", path.display()),
    }
}

/// Result alias of the binary.
pub type Result<T> = std::result::Result<T, Error>;
