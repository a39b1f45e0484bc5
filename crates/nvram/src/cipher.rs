//! Encryption at rest: AES-256-GCM over every record payload (names and data),
//! under a key of the log's epoch derived from the image key, with a fresh
//! random 96-bit nonce per record, the record header as associated data, and
//! a key check in the image header.

use aes::cipher::BlockEncrypt;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use rand::RngCore;
use zeroize::Zeroizing;

use crate::format::Kdf;
use crate::KeySource;

/// Bytes an encrypted payload adds: nonce and tag.
pub const OVERHEAD: usize = 12 + 16;

/// argon2id costs for passphrases (19 MiB, 2 passes: OWASP's recommendation).
pub const ARGON2_M: u32 = 19 * 1024;
/// argon2id iterations.
pub const ARGON2_T: u32 = 2;
/// argon2id parallelism.
pub const ARGON2_P: u32 = 1;

/// The image key.
pub struct ImageKey {
    /// Seals the key check only.
    aead: Aes256Gcm,
    /// Derives the per-epoch record keys.
    prf: aes::Aes256,
}

impl ImageKey {
    /// Derive the key from `src` as the header's KDF says; None if the KDF
    /// parameters are unusable.
    pub fn derive(src: &KeySource, kdf: Kdf, salt: &[u8; 16]) -> Option<ImageKey> {
        let key: Zeroizing<[u8; 32]> = match (src, kdf) {
            (KeySource::Raw(k), _) => k.clone(),
            (
                KeySource::Passphrase(p),
                Kdf::Argon2id {
                    m_cost,
                    t_cost,
                    p_cost,
                },
            ) => {
                let params = argon2::Params::new(m_cost, t_cost, p_cost, Some(32)).ok()?;
                let a = argon2::Argon2::new(
                    argon2::Algorithm::Argon2id,
                    argon2::Version::V0x13,
                    params,
                );
                let mut out = Zeroizing::new([0u8; 32]);
                a.hash_password_into(p, salt, out.as_mut()).ok()?;
                out
            }
            (KeySource::Passphrase(_), _) => return None,
        };
        Some(ImageKey {
            aead: Aes256Gcm::new_from_slice(key.as_ref()).ok()?,
            prf: aes::Aes256::new_from_slice(key.as_ref()).ok()?,
        })
    }

    /// The record key of `epoch`: AES-256 of two domain-separated blocks
    /// holding the epoch. A log never outlives its epoch (one region, at most
    /// 64 MiB of records), so each key seals a bounded number of records and
    /// random nonces stay far from any collision however long the image lives.
    fn epoch_key(&self, epoch: u64) -> Option<Aes256Gcm> {
        let mut key = Zeroizing::new([0u8; 32]);
        for (i, half) in key.chunks_exact_mut(16).enumerate() {
            let mut block = aes::Block::default();
            block[0] = b'v';
            block[1] = i as u8;
            block[8..].copy_from_slice(&epoch.to_be_bytes());
            self.prf.encrypt_block(&mut block);
            half.copy_from_slice(&block);
        }
        Aes256Gcm::new_from_slice(key.as_ref()).ok()
    }

    /// A record payload of log `epoch`: nonce || ciphertext || tag, bound to `aad`.
    pub fn seal_record(&self, epoch: u64, plain: &[u8], aad: &[u8]) -> Vec<u8> {
        match self.epoch_key(epoch) {
            Some(k) => seal(&k, plain, aad),
            None => Vec::new(),
        }
    }

    /// The plaintext of a record payload of log `epoch`, or None if it does not authenticate.
    pub fn open_record(&self, epoch: u64, sealed: &[u8], aad: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        open(&self.epoch_key(epoch)?, sealed, aad)
    }

    /// The key-check value stored in the header.
    pub fn key_check(&self) -> [u8; 44] {
        let mut out = [0u8; 44];
        let v = seal(&self.aead, &[0u8; 16], b"vtpm-nvram-key-check");
        if v.len() == out.len() {
            out.copy_from_slice(&v);
        }
        out
    }

    /// Whether `check` was made with this key.
    pub fn verify(&self, check: &[u8; 44]) -> bool {
        open(&self.aead, check, b"vtpm-nvram-key-check").is_some_and(|p| p.as_slice() == [0u8; 16])
    }
}

/// nonce || ciphertext || tag of `plain` under `aead`, bound to `aad`.
fn seal(aead: &Aes256Gcm, plain: &[u8], aad: &[u8]) -> Vec<u8> {
    let mut nonce = [0u8; 12];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let mut out = nonce.to_vec();
    // Encryption with a 12-byte nonce and in-memory buffers cannot fail.
    if let Ok(ct) = aead.encrypt(Nonce::from_slice(&nonce), Payload { msg: plain, aad }) {
        out.extend_from_slice(&ct);
    }
    out
}

/// The plaintext of a sealed payload, or None if it does not authenticate.
fn open(aead: &Aes256Gcm, sealed: &[u8], aad: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    if sealed.len() < OVERHEAD {
        return None;
    }
    let (nonce, ct) = sealed.split_at(12);
    aead.decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad })
        .ok()
        .map(Zeroizing::new)
}

/// The KDF to record for a new image keyed by `src`.
pub fn kdf_for(src: &KeySource) -> Kdf {
    match src {
        KeySource::Raw(_) => Kdf::Raw,
        KeySource::Passphrase(_) => Kdf::Argon2id {
            m_cost: ARGON2_M,
            t_cost: ARGON2_T,
            p_cost: ARGON2_P,
        },
    }
}
