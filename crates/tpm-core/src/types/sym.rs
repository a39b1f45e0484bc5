//! Symmetric algorithm definitions (TPMT_SYM_DEF and TPMT_SYM_DEF_OBJECT).

use super::algorithms::is_hash;
use crate::constants as c;
use crate::marshal::{Marshal, Reader, Unmarshal};
use crate::rc::{err, Rc, TpmResult};
use tpm_crypto::{BlockCipher, SymKey};

/// TPMT_SYM_DEF / TPMT_SYM_DEF_OBJECT: algorithm, key size (or hash for XOR), mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SymDef {
    /// TPM_ALG_NULL.
    Null,
    /// A block cipher with a key size in bits and a block mode.
    Cipher {
        /// TPM_ALG_AES, TPM_ALG_CAMELLIA or TPM_ALG_TDES.
        alg: u16,
        /// 128, 192 or 256 (TDES: 128 or 192).
        bits: u16,
        /// TPM_ALG_CFB, CTR, OFB, CBC, ECB, CMAC or NULL.
        mode: u16,
    },
    /// XOR obfuscation with a hash (TPMT_SYM_DEF only).
    Xor {
        /// The hash used by the obfuscation KDF.
        hash: u16,
    },
}

impl SymDef {
    /// Whether new keys and sessions may use this definition: everything
    /// parsing accepts except AES-192, which libtpms (0.9, under swtpm 0.7)
    /// refuses (TPM_RC_VALUE), so that what this TPM makes also works on the
    /// TPM a VM moves to or from (tests/alg_sweep.rs). Parsing itself still
    /// takes AES-192, so objects made before this rule keep loading.
    pub fn offered(self) -> bool {
        !matches!(
            self,
            SymDef::Cipher {
                alg: c::ALG_AES,
                bits: 192,
                ..
            }
        )
    }

    /// Parse; `allow_xor` distinguishes TPMT_SYM_DEF from TPMT_SYM_DEF_OBJECT.
    pub fn unmarshal_with(r: &mut Reader<'_>, allow_xor: bool) -> TpmResult<Self> {
        let alg = u16::unmarshal(r)?;
        match alg {
            c::ALG_NULL => Ok(SymDef::Null),
            c::ALG_AES | c::ALG_CAMELLIA | c::ALG_TDES => {
                let bits = u16::unmarshal(r)?;
                let cipher = BlockCipher::from_tpm_alg(alg).ok_or(Rc(c::RC_SYMMETRIC))?;
                if !cipher.key_bits_supported(bits) {
                    return err(c::RC_VALUE);
                }
                let mode = u16::unmarshal(r)?;
                // TPMI_ALG_SYM_MODE: the encryption modes and CMAC (a MAC
                // "mode" of a symmetric key; the users of each check theirs).
                if !matches!(
                    mode,
                    c::ALG_CFB
                        | c::ALG_CTR
                        | c::ALG_OFB
                        | c::ALG_CBC
                        | c::ALG_ECB
                        | c::ALG_CMAC
                        | c::ALG_NULL
                ) {
                    return err(c::RC_MODE);
                }
                Ok(SymDef::Cipher { alg, bits, mode })
            }
            c::ALG_XOR if allow_xor => {
                let hash = u16::unmarshal(r)?;
                if !is_hash(hash) {
                    return err(c::RC_HASH);
                }
                Ok(SymDef::Xor { hash })
            }
            _ => err(c::RC_SYMMETRIC),
        }
    }

    /// Key size in bits (0 for NULL and XOR).
    pub fn key_bits(self) -> u16 {
        match self {
            SymDef::Cipher { bits, .. } => bits,
            _ => 0,
        }
    }

    /// The cipher and key size of a block-cipher definition (None for NULL and XOR).
    pub fn sym_key(self) -> Option<SymKey> {
        match self {
            SymDef::Cipher { alg, bits, .. } => Some(SymKey {
                cipher: BlockCipher::from_tpm_alg(alg)?,
                bits,
            }),
            _ => None,
        }
    }
}

impl Marshal for SymDef {
    fn marshal(&self, w: &mut Vec<u8>) {
        match *self {
            SymDef::Null => c::ALG_NULL.marshal(w),
            SymDef::Cipher { alg, bits, mode } => {
                alg.marshal(w);
                bits.marshal(w);
                mode.marshal(w);
            }
            SymDef::Xor { hash } => {
                c::ALG_XOR.marshal(w);
                hash.marshal(w);
            }
        }
    }
}

/// TPMT_SYM_DEF (allows XOR).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionSym(pub SymDef);

impl Unmarshal for SessionSym {
    fn unmarshal(r: &mut Reader<'_>) -> TpmResult<Self> {
        SymDef::unmarshal_with(r, true).map(SessionSym)
    }
}

/// TPMT_SYM_DEF_OBJECT (no XOR).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectSym(pub SymDef);

impl Unmarshal for ObjectSym {
    fn unmarshal(r: &mut Reader<'_>) -> TpmResult<Self> {
        SymDef::unmarshal_with(r, false).map(ObjectSym)
    }
}
