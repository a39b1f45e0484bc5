//! Errors of the cryptography layer.

/// A cryptographic operation that could not be done.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// An algorithm, curve or key size this crate does not implement.
    #[error("unsupported algorithm or size: {0}")]
    Unsupported(&'static str),
    /// A key or point that is not valid.
    #[error("invalid key: {0}")]
    InvalidKey(&'static str),
    /// Input of the wrong length or form.
    #[error("invalid input: {0}")]
    InvalidInput(&'static str),
    /// Decryption or verification failed.
    #[error("the operation failed: {0}")]
    Failed(&'static str),
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, Error>;
