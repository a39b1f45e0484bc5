//! Errors of the cryptography layer.

/// A cryptographic operation that could not be done. The engine maps these to
/// response codes: `Unsupported` → TPM_RC_SCHEME/TPM_RC_KEY_SIZE/TPM_RC_CURVE,
/// `InvalidKey` → TPM_RC_KEY/TPM_RC_ECC_POINT, `InvalidInput` → TPM_RC_SIZE or
/// TPM_RC_VALUE, `Failed` → TPM_RC_VALUE/TPM_RC_SIGNATURE/TPM_RC_NO_RESULT,
/// `Integrity` → TPM_RC_INTEGRITY (as the command's text says).
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
    /// Decryption, decoding or verification failed.
    #[error("the operation failed: {0}")]
    Failed(&'static str),
    /// An integrity value (HMAC or inner digest) did not match.
    #[error("integrity check failed")]
    Integrity,
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, Error>;
