//! The engine's view of cryptography, by TPM_ALG_ID: hashes, HMAC, KDFa and
//! AES-CFB from the tpm-crypto crate. Unimplemented algorithm ids give empty
//! results, which callers have ruled out through the TPMI checks.

use tpm_crypto::HashAlg;

pub use tpm_crypto::ct_eq;

/// An incremental hash of one of the implemented algorithms (Clone: hash
/// sequences fork it) whose running state can be exported into a context.
#[derive(Clone)]
pub struct Hasher(tpm_crypto::ResumableHash);

impl Hasher {
    /// A new hash of `alg`; None if `alg` is not an implemented hash.
    pub fn new(alg: u16) -> Option<Hasher> {
        HashAlg::from_tpm_alg(alg).map(|a| Hasher(tpm_crypto::ResumableHash::new(a)))
    }
    /// Absorb `data`.
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }
    /// The digest.
    pub fn finish(self) -> Vec<u8> {
        self.0.finish()
    }
    /// The running state (for a sequence's context).
    pub fn export(&self) -> Vec<u8> {
        self.0.export()
    }
    /// A hash of `alg` resumed from [`export`](Self::export)'s bytes.
    pub fn import(alg: u16, state: &[u8]) -> Option<Hasher> {
        let a = HashAlg::from_tpm_alg(alg)?;
        tpm_crypto::ResumableHash::import(a, state).ok().map(Hasher)
    }
}

/// Digest of the concatenation of `parts` (empty for an unimplemented `alg`).
pub fn digest(alg: u16, parts: &[&[u8]]) -> Vec<u8> {
    HashAlg::from_tpm_alg(alg)
        .map(|a| tpm_crypto::digest(a, parts))
        .unwrap_or_default()
}

/// HMAC of the concatenation of `parts` (empty for an unimplemented `alg`).
pub fn hmac(alg: u16, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    HashAlg::from_tpm_alg(alg)
        .map(|a| tpm_crypto::hmac(a, key, parts))
        .unwrap_or_default()
}

/// KDFa of Part 1: `bits` of output (empty for an unimplemented `alg`).
pub fn kdfa(
    alg: u16,
    key: &[u8],
    label: &[u8],
    context_u: &[u8],
    context_v: &[u8],
    bits: u32,
) -> Vec<u8> {
    HashAlg::from_tpm_alg(alg)
        .map(|a| tpm_crypto::kdfa(a, key, label, context_u, context_v, bits))
        .unwrap_or_default()
}

/// AES in full-block CFB mode, in place; false for a key or IV of another size.
pub fn aes_cfb(key: &[u8], iv: &[u8], data: &mut [u8], encrypt: bool) -> bool {
    tpm_crypto::sym::aes_cfb(key, iv, data, encrypt).is_ok()
}

/// An incremental HMAC of one of the implemented hashes (Clone, like [`Hasher`]).
#[derive(Clone)]
pub struct Hmac(tpm_crypto::HmacState);

impl Hmac {
    /// A new HMAC of `alg` keyed with `key`; None if `alg` is not an implemented hash.
    pub fn new(alg: u16, key: &[u8]) -> Option<Hmac> {
        HashAlg::from_tpm_alg(alg).map(|a| Hmac(tpm_crypto::HmacState::new(a, key)))
    }
    /// Absorb `data`.
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }
    /// The HMAC value.
    pub fn finish(self) -> Vec<u8> {
        self.0.finish()
    }
}

/// AES in block mode `mode` (a TPM_ALG_ID: CFB, CTR, OFB, CBC or ECB) over
/// `data`, returning the output and the IV that continues the chain; None
/// for an unknown mode or sizes the mode cannot take (callers check them first
/// to answer with the right response code).
pub fn aes_crypt(
    mode: u16,
    key: &[u8],
    iv: &[u8],
    data: &[u8],
    decrypt: bool,
) -> Option<(Vec<u8>, Vec<u8>)> {
    let mode = tpm_crypto::SymMode::from_tpm_alg(mode)?;
    let r = if decrypt {
        tpm_crypto::sym::aes_decrypt(mode, key, iv, data)
    } else {
        tpm_crypto::sym::aes_encrypt(mode, key, iv, data)
    };
    r.ok()
}
