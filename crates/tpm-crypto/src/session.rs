//! Session cryptography of Part 1 on byte slices: the session key, parameter
//! encryption with AES-CFB and XOR obfuscation.
//!
//! Argument conventions (the caller assembles the inputs):
//! - `session_value` for parameter encryption is sessionKey || authValue,
//!   where authValue is that of the bound or authorized entity (empty if none),
//!   with trailing zero octets already removed by the caller as Part 1 asks.
//! - `nonce_newer` / `nonce_older`: for a command, nonceCaller / nonceTPM;
//!   for a response, nonceTPM / nonceCaller.

use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::hash::HashAlg;
use crate::kdf::kdfa;
use crate::sym::{cfb, SymKey};

/// Label of the session key derivation.
pub const LABEL_ATH: &[u8] = b"ATH\0";
/// Label of AES-CFB parameter encryption.
pub const LABEL_CFB: &[u8] = b"CFB\0";
/// Label of XOR parameter obfuscation.
pub const LABEL_XOR: &[u8] = b"XOR\0";

/// sessionKey of a bound or salted TPM2_StartAuthSession:
/// `KDFa(sessionAlg, bindAuth || salt, "ATH", nonceTPM, nonceCaller, digestBits)`.
/// The key is derived even when `bind_auth` and `salt` are both empty (a
/// session bound to an entity whose authValue is empty): tpm2-tss does the
/// same. Only an unbound, unsalted session has the empty sessionKey, and the
/// caller, who knows whether there is a bind entity or a salt key, decides that.
/// `bind_auth` is the bound entity's authValue with trailing zeros removed.
pub fn session_key(
    alg: HashAlg,
    bind_auth: &[u8],
    salt: &[u8],
    nonce_tpm: &[u8],
    nonce_caller: &[u8],
) -> Zeroizing<Vec<u8>> {
    let mut key = Zeroizing::new(Vec::with_capacity(bind_auth.len() + salt.len()));
    key.extend_from_slice(bind_auth);
    key.extend_from_slice(salt);
    Zeroizing::new(kdfa(
        alg,
        &key,
        LABEL_ATH,
        nonce_tpm,
        nonce_caller,
        alg.bits(),
    ))
}

/// The CFB key and IV of parameter encryption (both zeroized on drop).
pub struct CfbKeyIv {
    /// keyBits / 8 octets.
    pub key: Zeroizing<Vec<u8>>,
    /// One block of the cipher (16 octets, 8 for TDES).
    pub iv: Zeroizing<Vec<u8>>,
}

/// The CFB key and IV of parameter encryption:
/// `KDFa(sessionAlg, sessionValue, "CFB", nonceNewer, nonceOlder, keyBits + blockBits)`,
/// split as the first keyBits/8 octets (key) and the following block (IV).
pub fn param_cfb_key_iv(
    alg: HashAlg,
    session_value: &[u8],
    nonce_newer: &[u8],
    nonce_older: &[u8],
    sym: SymKey,
) -> Result<CfbKeyIv> {
    if !sym.supported() {
        return Err(Error::Unsupported("symmetric key size"));
    }
    let key_len = sym.bits as usize / 8;
    let bits = sym.bits as u32 + (sym.cipher.block_size() as u32) * 8;
    let both = Zeroizing::new(kdfa(
        alg,
        session_value,
        LABEL_CFB,
        nonce_newer,
        nonce_older,
        bits,
    ));
    Ok(CfbKeyIv {
        key: Zeroizing::new(both[..key_len].to_vec()),
        iv: Zeroizing::new(both[key_len..].to_vec()),
    })
}

/// Parameter encryption with CFB in place (the first parameter's data,
/// without its size field): key and IV from [`param_cfb_key_iv`].
pub fn param_encrypt_cfb(
    alg: HashAlg,
    session_value: &[u8],
    nonce_newer: &[u8],
    nonce_older: &[u8],
    sym: SymKey,
    data: &mut [u8],
    encrypt: bool,
) -> Result<()> {
    let k = param_cfb_key_iv(alg, session_value, nonce_newer, nonce_older, sym)?;
    cfb(sym.cipher, &k.key, &k.iv, data, encrypt)
}

/// XOR obfuscation in place (its own inverse):
/// `data ^= KDFa(hashAlg, key, "XOR", nonceNewer, nonceOlder, 8·len(data))`.
/// For parameter encryption `key` is sessionKey || authValue. Errors only for
/// data too long for KDFa's 32-bit bit count.
pub fn xor_obfuscate(
    alg: HashAlg,
    key: &[u8],
    nonce_newer: &[u8],
    nonce_older: &[u8],
    data: &mut [u8],
) -> Result<()> {
    let bits = u32::try_from(data.len())
        .ok()
        .and_then(|n| n.checked_mul(8))
        .ok_or(Error::InvalidInput("data too long for XOR obfuscation"))?;
    let mask = Zeroizing::new(kdfa(alg, key, LABEL_XOR, nonce_newer, nonce_older, bits));
    for (d, m) in data.iter_mut().zip(mask.iter()) {
        *d ^= m;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::hmac;

    #[test]
    fn session_key_is_kdfa_ath() {
        let k = session_key(HashAlg::Sha256, b"auth", b"salt", b"nT", b"nC");
        let expect = hmac(
            HashAlg::Sha256,
            b"authsalt",
            &[
                &1u32.to_be_bytes(),
                b"ATH\0",
                b"nT",
                b"nC",
                &256u32.to_be_bytes(),
            ],
        );
        assert_eq!(*k, expect);
        assert_eq!(session_key(HashAlg::Sha1, b"", b"s", b"a", b"b").len(), 20);
        // Bound to an entity with an empty authValue: still derived (as tpm2-tss does).
        assert_eq!(
            session_key(HashAlg::Sha256, b"", b"", b"nT", b"nC").len(),
            32
        );
    }

    #[test]
    fn cfb_key_and_iv_split_one_kdfa_output() {
        let CfbKeyIv { key: k, iv } =
            param_cfb_key_iv(HashAlg::Sha256, b"sv", b"new", b"old", SymKey::aes(128)).unwrap();
        let all = kdfa(HashAlg::Sha256, b"sv", b"CFB", b"new", b"old", 256);
        assert_eq!([&k[..], &iv[..]].concat(), all);
        let CfbKeyIv { key: k, iv } =
            param_cfb_key_iv(HashAlg::Sha1, b"sv", b"new", b"old", SymKey::aes(256)).unwrap();
        assert_eq!((k.len(), iv.len()), (32, 16));
        assert_eq!(
            [&k[..], &iv[..]].concat(),
            kdfa(HashAlg::Sha1, b"sv", b"CFB", b"new", b"old", 384)
        );
        assert!(param_cfb_key_iv(HashAlg::Sha1, b"sv", b"n", b"o", SymKey::aes(100)).is_err());
        let mut data = b"the first parameter".to_vec();
        param_encrypt_cfb(
            HashAlg::Sha256,
            b"sv",
            b"new",
            b"old",
            SymKey::aes(128),
            &mut data,
            true,
        )
        .unwrap();
        assert_ne!(&data[..], b"the first parameter");
        param_encrypt_cfb(
            HashAlg::Sha256,
            b"sv",
            b"new",
            b"old",
            SymKey::aes(128),
            &mut data,
            false,
        )
        .unwrap();
        assert_eq!(&data[..], b"the first parameter");
    }

    #[test]
    fn xor_is_kdfa_mask_and_self_inverse() {
        let mut data = vec![0u8; 37];
        xor_obfuscate(HashAlg::Sha256, b"key", b"new", b"old", &mut data).unwrap();
        assert_eq!(
            data,
            kdfa(HashAlg::Sha256, b"key", b"XOR", b"new", b"old", 37 * 8)
        );
        let mut msg = b"secret parameter".to_vec();
        xor_obfuscate(HashAlg::Sha1, b"k", b"n1", b"n2", &mut msg).unwrap();
        assert_ne!(&msg[..], b"secret parameter");
        xor_obfuscate(HashAlg::Sha1, b"k", b"n1", b"n2", &mut msg).unwrap();
        assert_eq!(&msg[..], b"secret parameter");
        xor_obfuscate(HashAlg::Sha1, b"k", b"n1", b"n2", &mut []).unwrap();
    }

    /// Camellia and TDES sessions: the KDFa output is split into a key of the
    /// cipher's size and an IV of its block size, and CFB round-trips.
    #[test]
    fn param_encryption_with_camellia_and_tdes() {
        use crate::sym::BlockCipher;
        for (cipher, bits, iv_len) in [
            (BlockCipher::Camellia, 128, 16),
            (BlockCipher::Camellia, 256, 16),
            (BlockCipher::Tdes, 128, 8),
            (BlockCipher::Tdes, 192, 8),
        ] {
            let sym = SymKey { cipher, bits };
            let k = param_cfb_key_iv(HashAlg::Sha256, b"sv", b"new", b"old", sym).unwrap();
            assert_eq!((k.key.len(), k.iv.len()), (bits as usize / 8, iv_len));
            // The key and IV are the KDFa stream's first octets, in that order.
            let all = kdfa(
                HashAlg::Sha256,
                b"sv",
                LABEL_CFB,
                b"new",
                b"old",
                bits as u32 + 8 * iv_len as u32,
            );
            assert_eq!([&k.key[..], &k.iv[..]].concat(), all);
            let mut data = b"a parameter of 27 octets...".to_vec();
            param_encrypt_cfb(HashAlg::Sha256, b"sv", b"new", b"old", sym, &mut data, true)
                .unwrap();
            assert_ne!(&data[..], b"a parameter of 27 octets...");
            param_encrypt_cfb(
                HashAlg::Sha256,
                b"sv",
                b"new",
                b"old",
                sym,
                &mut data,
                false,
            )
            .unwrap();
            assert_eq!(&data[..], b"a parameter of 27 octets...");
        }
        let bad = SymKey {
            cipher: BlockCipher::Tdes,
            bits: 256,
        };
        assert!(param_cfb_key_iv(HashAlg::Sha256, b"sv", b"n", b"o", bad).is_err());
    }
}
