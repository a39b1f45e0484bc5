//! The engine's view of cryptography, by TPM_ALG_ID: hashes, HMAC, KDFa and
//! AES-CFB from the tpm-crypto crate. Unimplemented algorithm ids give empty
//! results, which callers have ruled out through the TPMI checks.

use tpm_crypto::HashAlg;

pub use tpm_crypto::ct_eq;
pub use tpm_crypto::rsa::pss_salt_len;

/// The ECC of the split operations, key exchange and the extra signature
/// schemes, as the engine uses it (point checks and arithmetic, EC-MQV, SM2).
pub mod ecc {
    pub use tpm_crypto::ecc::is_on_curve;
    pub use tpm_crypto::ecc_math::{is_private_scalar, mod_p, mul};
    pub use tpm_crypto::ecmqv::ecmqv;
    pub use tpm_crypto::sm2::{sm2_key_exchange, verify_sm2};
    pub use tpm_crypto::{Curve, EccKey, Point};
}

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

/// An incremental MAC whose running state can go into a context (Clone,
/// like [`Hasher`]): an HMAC of one of the implemented hashes, built from two
/// resumable hashes as H((K ^ opad) || H((K ^ ipad) || data)), or a CMAC
/// (TPM_ALG_CMAC) of a block cipher.
#[derive(Clone)]
pub struct Hmac(MacState);

#[derive(Clone)]
enum MacState {
    Hmac {
        alg: u16,
        /// K ^ opad, one hash block.
        outer_pad: zeroize::Zeroizing<Vec<u8>>,
        /// The inner hash, (K ^ ipad) already absorbed.
        inner: Hasher,
    },
    Cmac(tpm_crypto::cmac::Cmac),
}

use crate::constants::ALG_CMAC;

impl Hmac {
    /// A new HMAC of `alg` keyed with `key`; None if `alg` is not an implemented hash.
    pub fn new(alg: u16, key: &[u8]) -> Option<Hmac> {
        let block = HashAlg::from_tpm_alg(alg)?.block_size();
        let mut k = zeroize::Zeroizing::new(if key.len() > block {
            digest(alg, &[key])
        } else {
            key.to_vec()
        });
        k.resize(block, 0);
        let ipad: zeroize::Zeroizing<Vec<u8>> =
            zeroize::Zeroizing::new(k.iter().map(|b| b ^ 0x36).collect());
        let mut inner = Hasher::new(alg)?;
        inner.update(&ipad);
        Some(Hmac(MacState::Hmac {
            alg,
            outer_pad: zeroize::Zeroizing::new(k.iter().map(|b| b ^ 0x5c).collect()),
            inner,
        }))
    }
    /// A new CMAC of `cipher` keyed with `key`; None for a key size the
    /// cipher does not take.
    pub fn new_cmac(cipher: tpm_crypto::BlockCipher, key: &[u8]) -> Option<Hmac> {
        tpm_crypto::cmac::Cmac::new(cipher, key)
            .ok()
            .map(|m| Hmac(MacState::Cmac(m)))
    }
    /// The MAC algorithm: the hash of an HMAC, TPM_ALG_CMAC for a CMAC.
    pub fn alg(&self) -> u16 {
        match &self.0 {
            MacState::Hmac { alg, .. } => *alg,
            MacState::Cmac(_) => ALG_CMAC,
        }
    }
    /// Absorb `data`.
    pub fn update(&mut self, data: &[u8]) {
        match &mut self.0 {
            MacState::Hmac { inner, .. } => inner.update(data),
            // The key was checked when the CMAC was made; nothing else fails.
            MacState::Cmac(m) => {
                let _ = m.update(data);
            }
        }
    }
    /// The MAC value.
    pub fn finish(self) -> Vec<u8> {
        match self.0 {
            MacState::Hmac {
                alg,
                outer_pad,
                inner,
            } => {
                let inner = inner.finish();
                digest(alg, &[&outer_pad, &inner])
            }
            MacState::Cmac(m) => m.finish().unwrap_or_default(),
        }
    }
    /// The running state (HMAC: outer pad, then the inner hash's state;
    /// CMAC: tpm-crypto's export).
    pub fn export(&self) -> zeroize::Zeroizing<Vec<u8>> {
        match &self.0 {
            MacState::Hmac {
                outer_pad, inner, ..
            } => {
                let mut v = zeroize::Zeroizing::new(outer_pad.to_vec());
                v.extend(inner.export());
                v
            }
            MacState::Cmac(m) => m.export(),
        }
    }
    /// A MAC of `alg` (a hash, or TPM_ALG_CMAC) resumed from
    /// [`export`](Self::export)'s bytes.
    pub fn import(alg: u16, state: &[u8]) -> Option<Hmac> {
        if alg == ALG_CMAC {
            return tpm_crypto::cmac::Cmac::import(state)
                .ok()
                .map(|m| Hmac(MacState::Cmac(m)));
        }
        let block = HashAlg::from_tpm_alg(alg)?.block_size();
        let (pad, inner) = (state.get(..block)?, state.get(block..)?);
        Some(Hmac(MacState::Hmac {
            alg,
            outer_pad: zeroize::Zeroizing::new(pad.to_vec()),
            inner: Hasher::import(alg, inner)?,
        }))
    }
}

/// `cipher` in block mode `mode` (a TPM_ALG_ID: CFB, CTR, OFB, CBC or ECB) over
/// `data`, returning the output and the IV that continues the chain; None
/// for an unknown mode or sizes the mode cannot take (callers check them first
/// to answer with the right response code).
pub fn sym_crypt(
    cipher: tpm_crypto::BlockCipher,
    mode: u16,
    key: &[u8],
    iv: &[u8],
    data: &[u8],
    decrypt: bool,
) -> Option<(Vec<u8>, Vec<u8>)> {
    let mode = tpm_crypto::SymMode::from_tpm_alg(mode)?;
    let r = if decrypt {
        tpm_crypto::sym::decrypt(cipher, mode, key, iv, data)
    } else {
        tpm_crypto::sym::encrypt(cipher, mode, key, iv, data)
    };
    r.ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::constants as c;

    #[test]
    fn hmac_state_resumes_to_the_one_shot_value() {
        for alg in [c::ALG_SHA1, c::ALG_SHA256, c::ALG_SHA384, c::ALG_SHA512] {
            for key in [&b"k"[..], &[7u8; 200][..]] {
                let mut m = Hmac::new(alg, key).unwrap();
                m.update(b"first part, ");
                let mut m = Hmac::import(alg, &m.export()).unwrap();
                m.update(b"second part");
                assert_eq!(m.finish(), hmac(alg, key, &[b"first part, second part"]));
            }
        }
        assert!(Hmac::import(c::ALG_SHA256, &[0; 10]).is_none());
    }

    #[test]
    fn cmac_state_resumes_to_the_one_shot_value() {
        let key = [9u8; 16];
        let mut m = Hmac::new_cmac(tpm_crypto::BlockCipher::Aes, &key).unwrap();
        m.update(b"first part, ");
        let mut m = Hmac::import(m.alg(), &m.export()).unwrap();
        m.update(b"second part");
        let one = tpm_crypto::cmac::cmac(
            tpm_crypto::BlockCipher::Aes,
            &key,
            b"first part, second part",
        );
        assert_eq!(m.finish(), one.unwrap());
        assert!(Hmac::import(c::ALG_CMAC, &[1]).is_none());
        assert!(Hmac::new_cmac(tpm_crypto::BlockCipher::Aes, &[1; 3]).is_none());
    }
}
