//! AES-128/192/256 in the block modes of TPM2_EncryptDecrypt (CFB, CTR, OFB,
//! CBC, ECB), returning the IV that continues the chain (ivOut), as the TCG
//! reference implementation computes it:
//!
//! - CFB (full-block CFB-128): the last ciphertext block; when the data ends
//!   in a partial block, that block's ciphertext octets followed by the rest
//!   of its keystream block, as libtpms (OpenSSL's CFB state) answers (the
//!   TCG reference code zero-fills instead; libtpms is what clients meet).
//! - CTR: the counter block after the last one used (big-endian 128-bit
//!   increment per block, partial final block included).
//! - OFB: the last keystream block (the last encrypted "IV").
//! - CBC: the last ciphertext block (input must be a multiple of 16 octets).
//! - ECB: no IV in and none out (input must be a multiple of 16 octets).
//!
//! Empty data leaves the IV as it was. The key size selects AES-128/192/256.

use cipher::block_padding::NoPadding;
use cipher::{
    AsyncStreamCipher, BlockDecryptMut, BlockEncryptMut, KeyInit, KeyIvInit, StreamCipher,
};

use crate::error::{Error, Result};

/// The AES block size in octets (and the size of every IV here).
pub const AES_BLOCK_SIZE: usize = 16;

/// TPM_ALG_AES.
pub const TPM_ALG_AES: u16 = 0x0006;

/// A block cipher mode (TPMI_ALG_SYM_MODE).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SymMode {
    /// TPM_ALG_CTR (0x0040).
    Ctr,
    /// TPM_ALG_OFB (0x0041).
    Ofb,
    /// TPM_ALG_CBC (0x0042).
    Cbc,
    /// TPM_ALG_CFB (0x0043).
    Cfb,
    /// TPM_ALG_ECB (0x0044).
    Ecb,
}

impl SymMode {
    /// From a TPM_ALG_ID; None for anything that is not one of these modes.
    pub fn from_tpm_alg(alg: u16) -> Option<SymMode> {
        match alg {
            0x0040 => Some(SymMode::Ctr),
            0x0041 => Some(SymMode::Ofb),
            0x0042 => Some(SymMode::Cbc),
            0x0043 => Some(SymMode::Cfb),
            0x0044 => Some(SymMode::Ecb),
            _ => None,
        }
    }

    /// The TPM_ALG_ID.
    pub fn to_tpm_alg(self) -> u16 {
        match self {
            SymMode::Ctr => 0x0040,
            SymMode::Ofb => 0x0041,
            SymMode::Cbc => 0x0042,
            SymMode::Cfb => 0x0043,
            SymMode::Ecb => 0x0044,
        }
    }

    /// Whether the mode needs whole blocks of input (CBC, ECB).
    pub fn needs_whole_blocks(self) -> bool {
        matches!(self, SymMode::Cbc | SymMode::Ecb)
    }
}

/// Whether `bits` is an AES key size this crate implements (128, 192, 256).
pub fn aes_key_bits_supported(bits: u16) -> bool {
    matches!(bits, 128 | 192 | 256)
}

/// Encrypt `data` with AES (key of 16, 24 or 32 octets) in `mode` starting from
/// `iv` (16 octets; empty for ECB). Returns (ciphertext, ivOut).
///
/// Errors: key of another size (Unsupported), IV of the wrong size, or for
/// CBC/ECB input that is not a whole number of blocks (InvalidInput).
pub fn aes_encrypt(
    mode: SymMode,
    key: &[u8],
    iv: &[u8],
    data: &[u8],
) -> Result<(Vec<u8>, Vec<u8>)> {
    aes_crypt(mode, key, iv, data, true)
}

/// Decrypt `data`; the counterpart of [`aes_encrypt`], with the same ivOut
/// rule (computed over the ciphertext, i.e. the input here).
pub fn aes_decrypt(
    mode: SymMode,
    key: &[u8],
    iv: &[u8],
    data: &[u8],
) -> Result<(Vec<u8>, Vec<u8>)> {
    aes_crypt(mode, key, iv, data, false)
}

/// AES (128/192/256 by key length) in full-block CFB mode, in place; the
/// form parameter encryption and object protection use.
pub fn aes_cfb(key: &[u8], iv: &[u8], data: &mut [u8], encrypt: bool) -> Result<()> {
    check_key(key)?;
    if iv.len() != AES_BLOCK_SIZE {
        return Err(Error::InvalidInput("AES-CFB IV must be 16 octets"));
    }
    macro_rules! run {
        ($aes:ty) => {{
            if encrypt {
                cfb_mode::Encryptor::<$aes>::new_from_slices(key, iv)
                    .map_err(|_| Error::InvalidInput("AES key or IV size"))?
                    .encrypt(data)
            } else {
                cfb_mode::Decryptor::<$aes>::new_from_slices(key, iv)
                    .map_err(|_| Error::InvalidInput("AES key or IV size"))?
                    .decrypt(data)
            }
        }};
    }
    match key.len() {
        16 => run!(aes::Aes128),
        24 => run!(aes::Aes192),
        _ => run!(aes::Aes256),
    }
    Ok(())
}

fn check_key(key: &[u8]) -> Result<()> {
    match key.len() {
        16 | 24 | 32 => Ok(()),
        _ => Err(Error::Unsupported("AES key of this size")),
    }
}

/// CFB's ivOut from the IV and the ciphertext `ct`: the last ciphertext
/// block; for a partial last block its octets followed by the rest of the
/// keystream block that encrypted it (E(previous ciphertext block)).
fn cfb_iv_out(key: &[u8], iv: &[u8], ct: &[u8]) -> Result<Vec<u8>> {
    let tail = ct.len() % AES_BLOCK_SIZE;
    if tail == 0 {
        return Ok(ct[ct.len() - AES_BLOCK_SIZE..].to_vec());
    }
    let start = ct.len() - tail;
    let prev = if start == 0 {
        iv
    } else {
        &ct[start - AES_BLOCK_SIZE..start]
    };
    // CFB over one zero block yields the keystream block E(prev).
    let mut ks = [0u8; AES_BLOCK_SIZE];
    aes_cfb(key, prev, &mut ks, true)?;
    ks[..tail].copy_from_slice(&ct[start..]);
    Ok(ks.to_vec())
}

fn aes_crypt(
    mode: SymMode,
    key: &[u8],
    iv: &[u8],
    data: &[u8],
    encrypt: bool,
) -> Result<(Vec<u8>, Vec<u8>)> {
    check_key(key)?;
    match mode {
        SymMode::Ecb if !iv.is_empty() => {
            return Err(Error::InvalidInput("ECB takes no IV"));
        }
        SymMode::Ecb => {}
        _ if iv.len() != AES_BLOCK_SIZE => {
            return Err(Error::InvalidInput("the IV must be 16 octets"));
        }
        _ => {}
    }
    if mode.needs_whole_blocks() && !data.len().is_multiple_of(AES_BLOCK_SIZE) {
        return Err(Error::InvalidInput(
            "CBC and ECB need a whole number of blocks",
        ));
    }
    if data.is_empty() {
        return Ok((Vec::new(), iv.to_vec()));
    }
    let bad = |_| Error::InvalidInput("AES key or IV size");
    macro_rules! run {
        ($aes:ty) => {{
            match mode {
                SymMode::Cfb => {
                    let mut buf = data.to_vec();
                    aes_cfb(key, iv, &mut buf, encrypt)?;
                    let iv_out = cfb_iv_out(key, iv, if encrypt { &buf } else { data })?;
                    (buf, iv_out)
                }
                SymMode::Ctr => {
                    let mut buf = data.to_vec();
                    ctr::Ctr128BE::<$aes>::new_from_slices(key, iv)
                        .map_err(bad)?
                        .apply_keystream(&mut buf);
                    let mut counter = [0u8; AES_BLOCK_SIZE];
                    counter.copy_from_slice(iv);
                    let blocks = data.len().div_ceil(AES_BLOCK_SIZE) as u128;
                    let next = u128::from_be_bytes(counter).wrapping_add(blocks);
                    (buf, next.to_be_bytes().to_vec())
                }
                SymMode::Ofb => {
                    // Run over whole blocks (the padding is zeros) so that the
                    // last keystream block can be read back.
                    let mut buf = data.to_vec();
                    buf.resize(data.len().div_ceil(AES_BLOCK_SIZE) * AES_BLOCK_SIZE, 0);
                    ofb::Ofb::<$aes>::new_from_slices(key, iv)
                        .map_err(bad)?
                        .apply_keystream(&mut buf);
                    let start = buf.len() - AES_BLOCK_SIZE;
                    let iv_out: Vec<u8> = (start..buf.len())
                        .map(|i| buf[i] ^ data.get(i).copied().unwrap_or(0))
                        .collect();
                    buf.truncate(data.len());
                    (buf, iv_out)
                }
                SymMode::Cbc => {
                    let mut buf = data.to_vec();
                    let len = buf.len();
                    if encrypt {
                        cbc::Encryptor::<$aes>::new_from_slices(key, iv)
                            .map_err(bad)?
                            .encrypt_padded_mut::<NoPadding>(&mut buf, len)
                            .map_err(|_| Error::InvalidInput("CBC input size"))?;
                    } else {
                        cbc::Decryptor::<$aes>::new_from_slices(key, iv)
                            .map_err(bad)?
                            .decrypt_padded_mut::<NoPadding>(&mut buf)
                            .map_err(|_| Error::InvalidInput("CBC input size"))?;
                    }
                    let ct = if encrypt { &buf } else { data };
                    let iv_out = ct[ct.len() - AES_BLOCK_SIZE..].to_vec();
                    (buf, iv_out)
                }
                SymMode::Ecb => {
                    let mut buf = data.to_vec();
                    let len = buf.len();
                    if encrypt {
                        ecb::Encryptor::<$aes>::new_from_slice(key)
                            .map_err(bad)?
                            .encrypt_padded_mut::<NoPadding>(&mut buf, len)
                            .map_err(|_| Error::InvalidInput("ECB input size"))?;
                    } else {
                        ecb::Decryptor::<$aes>::new_from_slice(key)
                            .map_err(bad)?
                            .decrypt_padded_mut::<NoPadding>(&mut buf)
                            .map_err(|_| Error::InvalidInput("ECB input size"))?;
                    }
                    (buf, Vec::new())
                }
            }
        }};
    }
    Ok(match key.len() {
        16 => run!(aes::Aes128),
        24 => run!(aes::Aes192),
        _ => run!(aes::Aes256),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        ::hex::decode(s).unwrap()
    }

    const KEY128: &str = "2b7e151628aed2a6abf7158809cf4f3c";
    const KEY192: &str = "8e73b0f7da0e6452c810f32b809079e562f8ead2522c6b7b";
    const KEY256: &str = "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4";
    const IV: &str = "000102030405060708090a0b0c0d0e0f";
    const PLAIN: &str = "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51\
                         30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710";

    /// NIST SP 800-38A, appendix F: (mode, key, iv, ciphertext of the 4 blocks).
    fn sp800_38a() -> Vec<(SymMode, &'static str, &'static str, &'static str)> {
        vec![
            (
                SymMode::Ecb,
                KEY128,
                "",
                "3ad77bb40d7a3660a89ecaf32466ef97f5d3d58503b9699de785895a96fdbaaf\
                 43b1cd7f598ece23881b00e3ed0306887b0c785e27e8ad3f8223207104725dd4",
            ),
            (
                SymMode::Ecb,
                KEY256,
                "",
                "f3eed1bdb5d2a03c064b5a7e3db181f8591ccb10d410ed26dc5ba74a31362870\
                 b6ed21b99ca6f4f9f153e7b1beafed1d23304b7a39f9f3ff067d8d8f9e24ecc7",
            ),
            (
                SymMode::Cbc,
                KEY128,
                IV,
                "7649abac8119b246cee98e9b12e9197d5086cb9b507219ee95db113a917678b2\
                 73bed6b8e3c1743b7116e69e222295163ff1caa1681fac09120eca307586e1a7",
            ),
            (
                SymMode::Cfb,
                KEY128,
                IV,
                "3b3fd92eb72dad20333449f8e83cfb4ac8a64537a0b3a93fcde3cdad9f1ce58b\
                 26751f67a3cbb140b1808cf187a4f4dfc04b05357c5d1c0eeac4c66f9ff7f2e6",
            ),
            (
                SymMode::Cfb,
                KEY192,
                IV,
                "cdc80d6fddf18cab34c25909c99a417467ce7f7f81173621961a2b70171d3d7a\
                 2e1e8a1dd59b88b1c8e60fed1efac4c9c05f9f9ca9834fa042ae8fba584b09ff",
            ),
            (
                SymMode::Ofb,
                KEY128,
                IV,
                "3b3fd92eb72dad20333449f8e83cfb4a7789508d16918f03f53c52dac54ed825\
                 9740051e9c5fecf64344f7a82260edcc304c6528f659c77866a510d9c1d6ae5e",
            ),
            (
                SymMode::Ctr,
                KEY128,
                "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff",
                "874d6191b620e3261bef6864990db6ce9806f66b7970fdff8617187bb9fffdff\
                 5ae4df3edbd5d35e5b4f09020db03eab1e031dda2fbe03d1792170a0f3009cee",
            ),
        ]
    }

    #[test]
    fn nist_sp800_38a_vectors_both_ways() {
        let plain = hex(PLAIN);
        for (mode, key, iv, ct) in sp800_38a() {
            let (key, iv, ct) = (hex(key), hex(iv), hex(ct));
            let (out, iv_out) = aes_encrypt(mode, &key, &iv, &plain).unwrap();
            assert_eq!(out, ct, "{mode:?} encrypt");
            let (back, iv_back) = aes_decrypt(mode, &key, &iv, &ct).unwrap();
            assert_eq!(back, plain, "{mode:?} decrypt");
            assert_eq!(iv_out, iv_back, "{mode:?} ivOut is the same both ways");
        }
    }

    #[test]
    fn iv_out_continues_the_chain() {
        let plain = hex(PLAIN);
        for (mode, key, iv, ct) in sp800_38a() {
            let (key, iv, ct) = (hex(key), hex(iv), hex(ct));
            // Two calls of 32 octets chained through ivOut equal one call of 64.
            let (first, iv1) = aes_encrypt(mode, &key, &iv, &plain[..32]).unwrap();
            let (second, _) = aes_encrypt(mode, &key, &iv1, &plain[32..]).unwrap();
            assert_eq!([first, second].concat(), ct, "{mode:?}");
            let (d1, div1) = aes_decrypt(mode, &key, &iv, &ct[..32]).unwrap();
            let (d2, _) = aes_decrypt(mode, &key, &div1, &ct[32..]).unwrap();
            assert_eq!([d1, d2].concat(), plain, "{mode:?}");
        }
        // The specific rules.
        let key = hex(KEY128);
        let iv = hex(IV);
        let ct = hex(sp800_38a()[3].3);
        let (_, v) = aes_encrypt(SymMode::Cfb, &key, &iv, &plain[..64]).unwrap();
        assert_eq!(v, ct[48..]);
        let (_, v) = aes_encrypt(SymMode::Cfb, &key, &iv, &plain[..20]).unwrap();
        // The keystream of block 2 is E(C1) = C2 ^ P2 over the full vector.
        let keystream2: Vec<u8> = (16..32).map(|i| ct[i] ^ plain[i]).collect();
        assert_eq!(
            v,
            [&ct[16..20], &keystream2[4..]].concat(),
            "partial CFB block: its ciphertext, then the rest of its keystream"
        );
        let (_, v) = aes_encrypt(SymMode::Ctr, &key, &[0xff; 16], &plain[..17]).unwrap();
        assert_eq!(
            v,
            [&[0u8; 15][..], &[1]].concat(),
            "CTR wraps and counts the partial block"
        );
        let ofb_ct = hex(sp800_38a()[5].3);
        let (out, v) = aes_encrypt(SymMode::Ofb, &key, &iv, &plain[..20]).unwrap();
        assert_eq!(out, ofb_ct[..20]);
        let keystream2: Vec<u8> = (16..32).map(|i| ofb_ct[i] ^ plain[i]).collect();
        assert_eq!(v, keystream2, "OFB ivOut is the last keystream block");
        let (out, v) = aes_encrypt(SymMode::Cfb, &key, &iv, &[]).unwrap();
        assert!(out.is_empty());
        assert_eq!(v, iv, "empty data leaves the IV");
    }

    #[test]
    fn partial_blocks_round_trip_in_stream_modes() {
        let key = hex(KEY256);
        let iv = hex(IV);
        let data: Vec<u8> = (0..37u8).collect();
        for mode in [SymMode::Cfb, SymMode::Ctr, SymMode::Ofb] {
            let (ct, iv_e) = aes_encrypt(mode, &key, &iv, &data).unwrap();
            let (pt, iv_d) = aes_decrypt(mode, &key, &iv, &ct).unwrap();
            assert_eq!(pt, data, "{mode:?}");
            assert_eq!(iv_e, iv_d, "{mode:?}");
            assert_eq!(ct.len(), data.len());
        }
        let mut inplace = data.clone();
        aes_cfb(&key, &iv, &mut inplace, true).unwrap();
        assert_eq!(
            inplace,
            aes_encrypt(SymMode::Cfb, &key, &iv, &data).unwrap().0
        );
        aes_cfb(&key, &iv, &mut inplace, false).unwrap();
        assert_eq!(inplace, data);
    }

    #[test]
    fn bad_input_is_an_error() {
        let key = hex(KEY128);
        let iv = hex(IV);
        assert!(aes_encrypt(SymMode::Cbc, &key, &iv, &[0; 17]).is_err());
        assert!(aes_decrypt(SymMode::Ecb, &key, &[], &[0; 15]).is_err());
        assert!(aes_encrypt(SymMode::Ecb, &key, &iv, &[0; 16]).is_err());
        assert!(aes_encrypt(SymMode::Cfb, &key, &iv[..8], &[0; 16]).is_err());
        assert!(aes_encrypt(SymMode::Cfb, &key, &[], &[0; 16]).is_err());
        assert!(aes_encrypt(SymMode::Ctr, &key[..15], &iv, &[0; 16]).is_err());
        assert!(aes_cfb(&key[..5], &iv, &mut [0; 4], true).is_err());
        assert!(aes_cfb(&key, &iv[..5], &mut [0; 4], true).is_err());
        for mode in [
            SymMode::Ctr,
            SymMode::Ofb,
            SymMode::Cbc,
            SymMode::Cfb,
            SymMode::Ecb,
        ] {
            assert_eq!(SymMode::from_tpm_alg(mode.to_tpm_alg()), Some(mode));
        }
        assert_eq!(SymMode::from_tpm_alg(0x0006), None);
        assert!(aes_key_bits_supported(192) && !aes_key_bits_supported(64));
    }
}
