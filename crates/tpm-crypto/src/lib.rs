//! The cryptography of TPM 2.0 (Part 1) for vtpm: hashes, HMAC, KDFa/KDFe, a
//! KDFa-driven deterministic generator, AES-CFB, RSA and ECC on NIST curves —
//! thin wrappers over RustCrypto crates, on byte slices and small enums (no
//! TPM wire structures). Kept apart from tpm-core so it builds and is tested
//! on its own.

pub mod ecc;
mod error;
pub mod hash;
pub mod kdf;
pub mod rsa;
pub mod sym;

pub use error::{Error, Result};
pub use hash::{ct_eq, digest, hmac, HashAlg, Hasher};
pub use kdf::{kdfa, kdfe, KdfaRng};
