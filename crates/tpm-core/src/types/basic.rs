//! Sized buffers and small structures used everywhere.

use super::algorithms::digest_size;
use crate::constants as c;
use crate::marshal::{Buffer, List, Marshal, Reader, Unmarshal};
use crate::rc::{err, TpmResult};
use crate::tpm_struct;

/// Largest digest (SHA-512): sizeof(TPMU_HA).
pub const MAX_DIGEST: usize = 64;
/// MAX_DIGEST_BUFFER / MAX_NV_BUFFER_SIZE: the largest data buffer.
pub const MAX_BUFFER: usize = 1024;
/// Number of implemented hashes (HASH_COUNT): bounds TPML_DIGEST_VALUES and TPML_PCR_SELECTION.
pub const HASH_COUNT: usize = 4;

/// TPM2B_DIGEST.
pub type Digest = Buffer<MAX_DIGEST>;
/// TPM2B_NONCE.
pub type Nonce = Buffer<MAX_DIGEST>;
/// TPM2B_AUTH.
pub type Auth = Buffer<MAX_DIGEST>;
/// TPM2B_DATA (sizeof(TPMT_HA)).
pub type Data = Buffer<{ MAX_DIGEST + 2 }>;
/// TPM2B_MAX_BUFFER.
pub type MaxBuffer = Buffer<MAX_BUFFER>;
/// TPM2B_EVENT.
pub type Event = Buffer<MAX_BUFFER>;
/// TPM2B_ENCRYPTED_SECRET (sizeof(TPMU_ENCRYPTED_SECRET): an RSA-4096 block at most).
pub type EncryptedSecret = Buffer<512>;
/// TPML_DIGEST (at most 8).
pub type DigestList = List<Digest, 8>;

/// TPMT_HA: a hash algorithm and a digest of exactly its size.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TaggedHash {
    /// The hash algorithm (TPM_ALG_NULL: empty digest).
    pub alg: u16,
    /// The digest.
    pub digest: Vec<u8>,
}

impl Marshal for TaggedHash {
    fn marshal(&self, w: &mut Vec<u8>) {
        self.alg.marshal(w);
        w.extend_from_slice(&self.digest);
    }
}

impl Unmarshal for TaggedHash {
    fn unmarshal(r: &mut Reader<'_>) -> TpmResult<Self> {
        let alg = u16::unmarshal(r)?;
        if alg != c::ALG_NULL && digest_size(alg) == 0 {
            return err(c::RC_HASH);
        }
        Ok(TaggedHash {
            alg,
            digest: r.take(digest_size(alg))?.to_vec(),
        })
    }
}

/// A TPMT_HA whose hash may not be TPM_ALG_NULL (as in TPML_DIGEST_VALUES).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DigestValue(pub TaggedHash);

impl Marshal for DigestValue {
    fn marshal(&self, w: &mut Vec<u8>) {
        self.0.marshal(w);
    }
}

impl Unmarshal for DigestValue {
    fn unmarshal(r: &mut Reader<'_>) -> TpmResult<Self> {
        let alg = u16::unmarshal(&mut r.clone())?;
        if alg == c::ALG_NULL {
            return err(c::RC_HASH);
        }
        TaggedHash::unmarshal(r).map(DigestValue)
    }
}

/// TPML_DIGEST_VALUES.
pub type DigestValues = List<DigestValue, HASH_COUNT>;

tpm_struct! {
    /// TPMT_TK_HASHCHECK (and the other tickets of the same shape).
    pub struct Ticket {
        pub tag: u16,
        pub hierarchy: u32,
        pub digest: Digest,
    }
}

/// TPM2B_SENSITIVE_DATA (the largest of a symmetric key and sealed data).
pub type SensitiveData = Buffer<128>;
