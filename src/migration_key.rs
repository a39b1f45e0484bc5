//! `--migration-key`: state blobs leaving through CMD_GET_STATEBLOB are
//! sealed with this key, and CMD_SET_STATEBLOB opens sealed blobs only with
//! it, so a TPM's seeds never cross the migration channel in the clear.
//!
//! The key is given as swtpm takes it: a 128- or 256-bit AES key (`file=`,
//! `fd=`; `format=hex|binary`) or a passphrase (`pwdfile=`, `pwdfd=`) turned
//! into a key of the size `mode=` names (aes-cbc/aes-128-cbc: 128 bits,
//! aes-256-cbc: 256) with `kdf=pbkdf2` (PBKDF2-HMAC-SHA512, the default) or
//! `kdf=sha512` (the passphrase's SHA-512, cut to size).
//!
//! A sealed blob is vtpm's envelope: a [`SealHeader`] (a magic no plain
//! state blob starts with, the key size and a random IV), the blob encrypted
//! with AES-CBC (PKCS#7 padding), and an HMAC-SHA256 over header and
//! ciphertext (encrypt-then-MAC, the MAC key derived from the AES key), so a
//! wrong key is detected before anything is decrypted. As swtpm does, a
//! plain blob is still accepted when a key is set (turning encryption on for
//! a TPM that had none), and the errors are swtpm's: no key for a sealed
//! blob is TPM_KEYNOTFOUND, a key of the other size TPM_BAD_KEY_PROPERTY, a
//! wrong key (or a changed byte) TPM_DECRYPT_ERROR.

use aes::cipher::block_padding::Pkcs7;
use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256, Sha512};
use transport::ctrl::codes::rc;
use transport::wire::Wire;
use transport::DeviceError;
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::keys::{KeyMaterial, KeySpec};

/// The first four bytes of a sealed blob. A plain blob starts with its
/// two-byte format version, a small number, never 0xff76.
const MAGIC: u32 = 0xff76_4d4b;
/// The envelope's layout version.
const VERSION: u8 = 1;
/// PBKDF2 rounds for a passphrase.
const PBKDF2_ROUNDS: u32 = 100_000;
/// PBKDF2 salt: fixed, since both ends must derive the same key from the
/// passphrase alone.
const PBKDF2_SALT: &[u8] = b"vtpm migration key";
/// Length of the HMAC-SHA256 tag at the end.
const TAG_LEN: usize = 32;

transport::wire! {
    /// The clear header of a sealed state blob.
    pub struct SealHeader {
        /// [`MAGIC`].
        pub magic: u32,
        /// [`VERSION`].
        pub version: u8,
        /// Reserved, zero.
        pub reserved: u8,
        /// AES key size in bits: 128 or 256.
        pub key_bits: u16,
        /// The CBC initialisation vector.
        pub iv: [u8; 16],
        /// Bytes of ciphertext after the header (the tag follows them).
        pub length: u32,
    }
}

/// How a passphrase becomes a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kdf {
    /// PBKDF2-HMAC-SHA512.
    Pbkdf2,
    /// SHA-512 of the passphrase, cut to the key size.
    Sha512,
}

/// The parsed `--migration-key` option, before anything is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationKeySpec {
    /// Where the key or passphrase is, and how it is encoded.
    pub source: KeySpec,
    /// Key size from `mode=` (None: a key's own size, 128 bits for a passphrase).
    pub bits: Option<u16>,
    /// For a passphrase.
    pub kdf: Kdf,
}

/// The loaded migration key.
pub struct MigrationKey {
    aes: Zeroizing<Vec<u8>>,
    mac: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for MigrationKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MigrationKey({} bits)", self.aes.len() * 8)
    }
}

fn usage(why: impl std::fmt::Display) -> Error {
    Error::usage("--migration-key", why)
}

impl MigrationKeySpec {
    /// Read the key (or passphrase) and derive the AES key.
    pub fn load(&self) -> Result<MigrationKey> {
        let aes = match self.source.material("--migration-key")? {
            KeyMaterial::Passphrase(bytes) => {
                let len = usize::from(self.bits.unwrap_or(128) / 8);
                let mut k = Zeroizing::new(vec![0u8; len]);
                match self.kdf {
                    Kdf::Pbkdf2 => {
                        tpm_crypto::pbkdf2_hmac_sha512(&bytes, PBKDF2_SALT, PBKDF2_ROUNDS, &mut k)
                    }
                    Kdf::Sha512 => k.copy_from_slice(&Sha512::digest(&*bytes)[..len]),
                }
                k
            }
            KeyMaterial::Key(key) => {
                let bits = key.len() * 8;
                if bits != 128 && bits != 256 {
                    return Err(usage(format!(
                        "the key has {} bytes; 16 (aes-cbc) or 32 (aes-256-cbc) are supported",
                        key.len()
                    )));
                }
                if let Some(want) = self.bits.filter(|b| usize::from(*b) != bits) {
                    return Err(usage(format!(
                        "the key has {bits} bits but mode= asks for {want}"
                    )));
                }
                key
            }
        };
        Ok(MigrationKey::from_aes_key(aes))
    }
}

type Aes128Enc = cbc::Encryptor<aes::Aes128>;
type Aes256Enc = cbc::Encryptor<aes::Aes256>;
type Aes128Dec = cbc::Decryptor<aes::Aes128>;
type Aes256Dec = cbc::Decryptor<aes::Aes256>;

fn device_error(code: u32, msg: impl Into<String>) -> DeviceError {
    DeviceError {
        code,
        msg: msg.into(),
    }
}

impl MigrationKey {
    /// A key of 16 or 32 bytes (checked by the callers).
    fn from_aes_key(aes: Zeroizing<Vec<u8>>) -> MigrationKey {
        // A separate MAC key, so the AES key is used for one purpose only.
        let mut h = Sha256::new();
        h.update(b"vtpm migration mac\0");
        h.update(&*aes);
        let mut mac = Zeroizing::new([0u8; 32]);
        mac.copy_from_slice(&h.finalize());
        MigrationKey { aes, mac }
    }

    fn bits(&self) -> u16 {
        (self.aes.len() * 8) as u16
    }

    fn tag(&self, sealed: &[u8]) -> Hmac<Sha256> {
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&*self.mac)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        m.update(sealed);
        m
    }

    /// Seal a state blob for CMD_GET_STATEBLOB.
    pub fn seal(&self, blob: &[u8]) -> std::result::Result<Vec<u8>, DeviceError> {
        let iv: [u8; 16] = rand::random();
        let padded = (blob.len() / 16 + 1) * 16;
        let mut buf = Zeroizing::new(vec![0u8; padded]);
        buf[..blob.len()].copy_from_slice(blob);
        let ct = match self.aes.len() {
            16 => Aes128Enc::new_from_slices(&self.aes, &iv)
                .ok()
                .and_then(|c| c.encrypt_padded_mut::<Pkcs7>(&mut buf, blob.len()).ok()),
            _ => Aes256Enc::new_from_slices(&self.aes, &iv)
                .ok()
                .and_then(|c| c.encrypt_padded_mut::<Pkcs7>(&mut buf, blob.len()).ok()),
        }
        .ok_or_else(|| device_error(rc::TPM_FAIL, "encrypting the state blob failed"))?
        .to_vec();
        let hdr = SealHeader {
            magic: MAGIC,
            version: VERSION,
            reserved: 0,
            key_bits: self.bits(),
            iv,
            length: ct.len() as u32,
        };
        let mut out = Vec::with_capacity(SealHeader::SIZE + ct.len() + TAG_LEN);
        hdr.encode(&mut out);
        out.extend_from_slice(&ct);
        let tag = self.tag(&out).finalize().into_bytes();
        out.extend_from_slice(&tag);
        Ok(out)
    }

    /// Open a sealed blob from CMD_SET_STATEBLOB.
    fn open(&self, hdr: &SealHeader, blob: &[u8]) -> std::result::Result<Vec<u8>, DeviceError> {
        if hdr.key_bits != self.bits() {
            return Err(device_error(
                rc::TPM_BAD_KEY_PROPERTY,
                format!(
                    "the state blob is sealed with a {}-bit migration key, this one has {} bits",
                    hdr.key_bits,
                    self.bits()
                ),
            ));
        }
        let end = SealHeader::SIZE + hdr.length as usize;
        let (Some(sealed), Some(tag)) = (blob.get(..end), blob.get(end..)) else {
            return Err(device_error(
                rc::TPM_BAD_PARAMETER,
                "the sealed state blob is truncated",
            ));
        };
        if tag.len() != TAG_LEN {
            return Err(device_error(
                rc::TPM_BAD_PARAMETER,
                "the sealed state blob has a bad length",
            ));
        }
        self.tag(sealed).verify_slice(tag).map_err(|_| {
            device_error(
                rc::TPM_DECRYPT_ERROR,
                "the state blob does not open with this migration key (wrong key, or the blob was changed)",
            )
        })?;
        let mut ct = Zeroizing::new(sealed.get(SealHeader::SIZE..).unwrap_or(&[]).to_vec());
        let plain = match self.aes.len() {
            16 => Aes128Dec::new_from_slices(&self.aes, &hdr.iv)
                .ok()
                .and_then(|c| {
                    c.decrypt_padded_mut::<Pkcs7>(&mut ct)
                        .ok()
                        .map(<[u8]>::to_vec)
                }),
            _ => Aes256Dec::new_from_slices(&self.aes, &hdr.iv)
                .ok()
                .and_then(|c| {
                    c.decrypt_padded_mut::<Pkcs7>(&mut ct)
                        .ok()
                        .map(<[u8]>::to_vec)
                }),
        };
        plain.ok_or_else(|| {
            device_error(
                rc::TPM_DECRYPT_ERROR,
                "the sealed state blob's padding is bad",
            )
        })
    }
}

/// A blob from CMD_SET_STATEBLOB as the engine takes it: opened with `key`
/// if it is sealed, unchanged if it is plain.
pub fn unseal(
    key: Option<&MigrationKey>,
    blob: Vec<u8>,
) -> std::result::Result<Vec<u8>, DeviceError> {
    let Some(hdr) = SealHeader::decode(&blob).filter(|h| h.magic == MAGIC) else {
        return Ok(blob);
    };
    if hdr.version != VERSION {
        return Err(device_error(
            rc::TPM_BAD_VERSION,
            format!("sealed state blob version {} is not known", hdr.version),
        ));
    }
    match key {
        None => Err(device_error(
            rc::TPM_KEYNOTFOUND,
            "the state blob is encrypted with a migration key and vtpm has none (--migration-key)",
        )),
        Some(k) => k.open(&hdr, &blob),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(bytes: &[u8]) -> MigrationKey {
        MigrationKey::from_aes_key(Zeroizing::new(bytes.to_vec()))
    }

    #[test]
    fn seal_and_open() {
        for len in [16, 32] {
            let k = key(&vec![7u8; len]);
            for blob in [&b""[..], b"x", &[0x00, 0x05, 1, 2, 3][..], &[9u8; 4096][..]] {
                let s = k.seal(blob).unwrap();
                assert_ne!(&s[..], blob);
                assert_eq!(unseal(Some(&k), s).unwrap(), blob);
            }
        }
    }

    #[test]
    fn errors_are_swtpms() {
        let k = key(&[1u8; 32]);
        let s = k.seal(b"\x00\x05state").unwrap();
        assert_eq!(
            unseal(None, s.clone()).unwrap_err().code,
            rc::TPM_KEYNOTFOUND
        );
        assert_eq!(
            unseal(Some(&key(&[2u8; 32])), s.clone()).unwrap_err().code,
            rc::TPM_DECRYPT_ERROR
        );
        assert_eq!(
            unseal(Some(&key(&[1u8; 16])), s.clone()).unwrap_err().code,
            rc::TPM_BAD_KEY_PROPERTY
        );
        let mut changed = s.clone();
        let at = SealHeader::SIZE + 3;
        changed[at] ^= 1;
        assert_eq!(
            unseal(Some(&k), changed).unwrap_err().code,
            rc::TPM_DECRYPT_ERROR
        );
        for cut in [SealHeader::SIZE - 1, SealHeader::SIZE + 5, s.len() - 1] {
            // Short input never panics: a plain blob (too short for a header) or an error.
            let r = unseal(Some(&k), s[..cut].to_vec());
            assert!(r.is_err() || cut < SealHeader::SIZE, "{cut}");
        }
        // Plain blobs pass, with or without a key.
        assert_eq!(
            unseal(Some(&k), b"\x00\x05x".to_vec()).unwrap(),
            b"\x00\x05x"
        );
    }
}
