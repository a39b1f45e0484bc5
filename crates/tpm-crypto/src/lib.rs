//! The cryptography of TPM 2.0 (Part 1) for vtpm: hashes, HMAC, KDFa/KDFe,
//! MGF1, RSA, ECC, symmetric modes — thin wrappers over RustCrypto crates.
//! Kept apart from tpm-core so it builds and is tested on its own.
