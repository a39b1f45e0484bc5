//! AES in the modes the TPM uses for parameter and context encryption.

use crate::error::{Error, Result};

/// AES (128/192/256 by key length) in full-block CFB mode, in place.
pub fn aes_cfb(key: &[u8], iv: &[u8], data: &mut [u8], encrypt: bool) -> Result<()> {
    use cfb_mode::cipher::{AsyncStreamCipher, KeyIvInit};
    macro_rules! run {
        ($aes:ty) => {{
            if encrypt {
                cfb_mode::Encryptor::<$aes>::new_from_slices(key, iv)
                    .map_err(|_| Error::InvalidInput("AES-CFB IV must be 16 octets"))?
                    .encrypt(data)
            } else {
                cfb_mode::Decryptor::<$aes>::new_from_slices(key, iv)
                    .map_err(|_| Error::InvalidInput("AES-CFB IV must be 16 octets"))?
                    .decrypt(data)
            }
        }};
    }
    match key.len() {
        16 => run!(aes::Aes128),
        24 => run!(aes::Aes192),
        32 => run!(aes::Aes256),
        _ => return Err(Error::Unsupported("AES key of this size")),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nist_sp800_38a_cfb128_aes128() {
        let key = hex::decode("2b7e151628aed2a6abf7158809cf4f3c").unwrap();
        let iv = hex::decode("000102030405060708090a0b0c0d0e0f").unwrap();
        let mut d = hex::decode("6bc1bee22e409f96e93d7e117393172a").unwrap();
        aes_cfb(&key, &iv, &mut d, true).unwrap();
        assert_eq!(d, hex::decode("3b3fd92eb72dad20333449f8e83cfb4a").unwrap());
        aes_cfb(&key, &iv, &mut d, false).unwrap();
        assert_eq!(d, hex::decode("6bc1bee22e409f96e93d7e117393172a").unwrap());
        assert!(aes_cfb(&key[..5], &iv, &mut d, true).is_err());
        assert!(aes_cfb(&key, &iv[..5], &mut d, true).is_err());
    }
}
