//! The block ciphers of TPM 2.0 (AES-128/192/256, Camellia-128/256,
//! TDES with two or three keys) in the block modes of TPM2_EncryptDecrypt
//! (CFB, CTR, OFB, CBC, ECB), returning the IV that continues the chain
//! (ivOut), as the TCG reference implementation computes it; `n` is the
//! cipher's block size (16 octets, 8 for TDES):
//!
//! - CFB (full-block CFB-n): the last ciphertext block; when the data ends
//!   in a partial block, that block's ciphertext octets followed by the rest
//!   of its keystream block, as libtpms (OpenSSL's CFB state) answers (the
//!   TCG reference code zero-fills instead; libtpms is what clients meet).
//! - CTR: the counter block after the last one used (the whole block is a
//!   big-endian counter, incremented per block, partial final block included).
//! - OFB: the last keystream block (the last encrypted "IV").
//! - CBC: the last ciphertext block (input must be a multiple of n octets).
//! - ECB: no IV in and none out (input must be a multiple of n octets).
//!
//! Empty data leaves the IV as it was. The key size selects the variant.

use cipher::block_padding::NoPadding;
use cipher::generic_array::GenericArray;
use cipher::{
    AsyncStreamCipher, BlockDecryptMut, BlockEncrypt, BlockEncryptMut, KeyInit, KeyIvInit,
    StreamCipher,
};

use crate::error::{Error, Result};

/// The AES (and Camellia) block size in octets.
pub const AES_BLOCK_SIZE: usize = 16;

/// A symmetric block cipher (TPMI_ALG_SYM_OBJECT without NULL).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BlockCipher {
    /// TPM_ALG_AES (0x0006).
    Aes,
    /// TPM_ALG_CAMELLIA (0x0026).
    Camellia,
    /// TPM_ALG_TDES (0x0003): two-key (128-bit) or three-key (192-bit) EDE.
    Tdes,
}

impl BlockCipher {
    /// From a TPM_ALG_ID; None for anything else.
    pub fn from_tpm_alg(alg: u16) -> Option<BlockCipher> {
        match alg {
            0x0006 => Some(BlockCipher::Aes),
            0x0026 => Some(BlockCipher::Camellia),
            0x0003 => Some(BlockCipher::Tdes),
            _ => None,
        }
    }

    /// The TPM_ALG_ID.
    pub fn to_tpm_alg(self) -> u16 {
        match self {
            BlockCipher::Aes => 0x0006,
            BlockCipher::Camellia => 0x0026,
            BlockCipher::Tdes => 0x0003,
        }
    }

    /// Block size in octets: the size of every IV of this cipher.
    pub fn block_size(self) -> usize {
        match self {
            BlockCipher::Tdes => 8,
            _ => AES_BLOCK_SIZE,
        }
    }

    /// Whether `bits` is a key size of this cipher that a TPM offers: the
    /// sizes libtpms implements (Camellia without 192, as its build has it).
    pub fn key_bits_supported(self, bits: u16) -> bool {
        match self {
            BlockCipher::Aes => matches!(bits, 128 | 192 | 256),
            BlockCipher::Camellia => matches!(bits, 128 | 256),
            BlockCipher::Tdes => matches!(bits, 128 | 192),
        }
    }
}

/// A symmetric key's cipher and size: what a symmetric definition
/// (TPMT_SYM_DEF_OBJECT) gives object protection and parameter encryption.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SymKey {
    /// The cipher.
    pub cipher: BlockCipher,
    /// Key size in bits.
    pub bits: u16,
}

impl SymKey {
    /// AES with `bits`.
    pub fn aes(bits: u16) -> SymKey {
        SymKey {
            cipher: BlockCipher::Aes,
            bits,
        }
    }

    /// Whether the cipher has keys of this size.
    pub fn supported(self) -> bool {
        self.cipher.key_bits_supported(self.bits)
    }
}

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
    /// Every mode.
    pub const ALL: [SymMode; 5] = [
        SymMode::Cfb,
        SymMode::Ctr,
        SymMode::Ofb,
        SymMode::Cbc,
        SymMode::Ecb,
    ];

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

/// Run `$run!(Type)` with the cipher type `$cipher` and the key length select;
/// any other key length returns `Error::Unsupported` from the caller.
macro_rules! with_cipher {
    ($cipher:expr, $key:expr, $run:ident) => {
        match ($cipher, $key.len()) {
            (BlockCipher::Aes, 16) => $run!(aes::Aes128),
            (BlockCipher::Aes, 24) => $run!(aes::Aes192),
            (BlockCipher::Aes, 32) => $run!(aes::Aes256),
            (BlockCipher::Camellia, 16) => $run!(camellia::Camellia128),
            (BlockCipher::Camellia, 32) => $run!(camellia::Camellia256),
            (BlockCipher::Tdes, 16) => $run!(des::TdesEde2),
            (BlockCipher::Tdes, 24) => $run!(des::TdesEde3),
            _ => return Err(Error::Unsupported("a key of this size for this cipher")),
        }
    };
}

/// Encrypt `data` with `cipher` (the key length selects its variant) in
/// `mode` starting from `iv` (one block; empty for ECB). Returns
/// (ciphertext, ivOut).
///
/// Errors: a key of another size (Unsupported), an IV of the wrong size, or
/// for CBC/ECB input that is not a whole number of blocks (InvalidInput).
pub fn encrypt(
    cipher: BlockCipher,
    mode: SymMode,
    key: &[u8],
    iv: &[u8],
    data: &[u8],
) -> Result<(Vec<u8>, Vec<u8>)> {
    crypt(cipher, mode, key, iv, data, true)
}

/// Decrypt `data`; the counterpart of [`encrypt`], with the same ivOut rule
/// (computed over the ciphertext, i.e. the input here).
pub fn decrypt(
    cipher: BlockCipher,
    mode: SymMode,
    key: &[u8],
    iv: &[u8],
    data: &[u8],
) -> Result<(Vec<u8>, Vec<u8>)> {
    crypt(cipher, mode, key, iv, data, false)
}

/// `cipher` in full-block CFB mode, in place; the form parameter encryption
/// and object protection use.
pub fn cfb(
    cipher: BlockCipher,
    key: &[u8],
    iv: &[u8],
    data: &mut [u8],
    encrypt: bool,
) -> Result<()> {
    if iv.len() != cipher.block_size() {
        return Err(Error::InvalidInput("the CFB IV must be one block"));
    }
    macro_rules! run {
        ($c:ty) => {{
            if encrypt {
                cfb_mode::Encryptor::<$c>::new_from_slices(key, iv)
                    .map_err(|_| Error::InvalidInput("key or IV size"))?
                    .encrypt(data)
            } else {
                cfb_mode::Decryptor::<$c>::new_from_slices(key, iv)
                    .map_err(|_| Error::InvalidInput("key or IV size"))?
                    .decrypt(data)
            }
        }};
    }
    with_cipher!(cipher, key, run);
    Ok(())
}

/// [`cfb`] with AES.
pub fn aes_cfb(key: &[u8], iv: &[u8], data: &mut [u8], encrypt: bool) -> Result<()> {
    cfb(BlockCipher::Aes, key, iv, data, encrypt)
}

/// CFB's ivOut from the IV and the ciphertext `ct`: the last ciphertext
/// block; for a partial last block its octets followed by the rest of the
/// keystream block that encrypted it (E(previous ciphertext block)).
fn cfb_iv_out(cipher: BlockCipher, key: &[u8], iv: &[u8], ct: &[u8]) -> Result<Vec<u8>> {
    let n = cipher.block_size();
    let tail = ct.len() % n;
    if tail == 0 {
        return Ok(ct[ct.len() - n..].to_vec());
    }
    let start = ct.len() - tail;
    let prev = if start == 0 {
        iv
    } else {
        &ct[start - n..start]
    };
    // CFB over one zero block yields the keystream block E(prev).
    let mut ks = vec![0u8; n];
    cfb(cipher, key, prev, &mut ks, true)?;
    ks[..tail].copy_from_slice(&ct[start..]);
    Ok(ks)
}

/// CTR over `data` in place with the whole block as a big-endian counter;
/// returns the counter after the last block used (ivOut).
fn ctr<C: BlockEncrypt + KeyInit>(key: &[u8], iv: &[u8], data: &mut [u8]) -> Result<Vec<u8>> {
    let c = C::new_from_slice(key).map_err(|_| Error::InvalidInput("key size"))?;
    let mut counter = iv.to_vec();
    for chunk in data.chunks_mut(iv.len()) {
        let mut block = GenericArray::clone_from_slice(&counter);
        c.encrypt_block(&mut block);
        for (d, k) in chunk.iter_mut().zip(block.iter()) {
            *d ^= k;
        }
        for byte in counter.iter_mut().rev() {
            *byte = byte.wrapping_add(1);
            if *byte != 0 {
                break;
            }
        }
    }
    Ok(counter)
}

fn crypt(
    cipher: BlockCipher,
    mode: SymMode,
    key: &[u8],
    iv: &[u8],
    data: &[u8],
    encrypt: bool,
) -> Result<(Vec<u8>, Vec<u8>)> {
    let n = cipher.block_size();
    match mode {
        SymMode::Ecb if !iv.is_empty() => {
            return Err(Error::InvalidInput("ECB takes no IV"));
        }
        SymMode::Ecb => {}
        _ if iv.len() != n => {
            return Err(Error::InvalidInput("the IV must be one block"));
        }
        _ => {}
    }
    if mode.needs_whole_blocks() && !data.len().is_multiple_of(n) {
        return Err(Error::InvalidInput(
            "CBC and ECB need a whole number of blocks",
        ));
    }
    // The key size is checked even when there is nothing to do.
    if !cipher.key_bits_supported((key.len() * 8) as u16) {
        return Err(Error::Unsupported("a key of this size for this cipher"));
    }
    if data.is_empty() {
        return Ok((Vec::new(), iv.to_vec()));
    }
    let bad = |_| Error::InvalidInput("key or IV size");
    macro_rules! run {
        ($c:ty) => {{
            match mode {
                SymMode::Cfb => {
                    let mut buf = data.to_vec();
                    cfb(cipher, key, iv, &mut buf, encrypt)?;
                    let iv_out = cfb_iv_out(cipher, key, iv, if encrypt { &buf } else { data })?;
                    (buf, iv_out)
                }
                SymMode::Ctr => {
                    let mut buf = data.to_vec();
                    let next = ctr::<$c>(key, iv, &mut buf)?;
                    (buf, next)
                }
                SymMode::Ofb => {
                    // Run over whole blocks (the padding is zeros) so that the
                    // last keystream block can be read back.
                    let mut buf = data.to_vec();
                    buf.resize(data.len().div_ceil(n) * n, 0);
                    ofb::Ofb::<$c>::new_from_slices(key, iv)
                        .map_err(bad)?
                        .apply_keystream(&mut buf);
                    let start = buf.len() - n;
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
                        cbc::Encryptor::<$c>::new_from_slices(key, iv)
                            .map_err(bad)?
                            .encrypt_padded_mut::<NoPadding>(&mut buf, len)
                            .map_err(|_| Error::InvalidInput("CBC input size"))?;
                    } else {
                        cbc::Decryptor::<$c>::new_from_slices(key, iv)
                            .map_err(bad)?
                            .decrypt_padded_mut::<NoPadding>(&mut buf)
                            .map_err(|_| Error::InvalidInput("CBC input size"))?;
                    }
                    let ct = if encrypt { &buf } else { data };
                    let iv_out = ct[ct.len() - n..].to_vec();
                    (buf, iv_out)
                }
                SymMode::Ecb => {
                    let mut buf = data.to_vec();
                    let len = buf.len();
                    if encrypt {
                        ecb::Encryptor::<$c>::new_from_slice(key)
                            .map_err(bad)?
                            .encrypt_padded_mut::<NoPadding>(&mut buf, len)
                            .map_err(|_| Error::InvalidInput("ECB input size"))?;
                    } else {
                        ecb::Decryptor::<$c>::new_from_slice(key)
                            .map_err(bad)?
                            .decrypt_padded_mut::<NoPadding>(&mut buf)
                            .map_err(|_| Error::InvalidInput("ECB input size"))?;
                    }
                    (buf, Vec::new())
                }
            }
        }};
    }
    Ok(with_cipher!(cipher, key, run))
}

/// Set odd parity in every octet of a DES key (the low bit of each octet is
/// its parity bit), as TPM TDES keys are generated.
pub fn des_odd_parity(key: &mut [u8]) {
    for b in key.iter_mut() {
        if b.count_ones() % 2 == 0 {
            *b ^= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aes_encrypt(
        mode: SymMode,
        key: &[u8],
        iv: &[u8],
        data: &[u8],
    ) -> Result<(Vec<u8>, Vec<u8>)> {
        encrypt(BlockCipher::Aes, mode, key, iv, data)
    }

    fn aes_decrypt(
        mode: SymMode,
        key: &[u8],
        iv: &[u8],
        data: &[u8],
    ) -> Result<(Vec<u8>, Vec<u8>)> {
        decrypt(BlockCipher::Aes, mode, key, iv, data)
    }

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
        assert!(
            BlockCipher::Aes.key_bits_supported(192) && !BlockCipher::Aes.key_bits_supported(64)
        );
    }

    /// Known answers (checked with OpenSSL): single DES through TDES with
    /// three equal keys, the SP 800-67 TDES example, RFC 3713 Camellia, and
    /// TDES/Camellia in CFB (64-bit and 128-bit) and CBC.
    #[test]
    fn tdes_and_camellia_known_answers() {
        let e = |c, m, k: &str, iv: &str, p: &[u8]| encrypt(c, m, &hex(k), &hex(iv), p).unwrap().0;
        let des = "133457799bbcdff1";
        assert_eq!(
            e(
                BlockCipher::Tdes,
                SymMode::Ecb,
                &des.repeat(3),
                "",
                &hex("0123456789abcdef")
            ),
            hex("85e813540f0ab405")
        );
        let k3 = "0123456789abcdef23456789abcdef01456789abcdef0123";
        assert_eq!(
            e(
                BlockCipher::Tdes,
                SymMode::Ecb,
                k3,
                "",
                b"The qufck brown fox jump"
            ),
            hex("a826fd8ce53b855fcce21c8112256fe668d5c05dd9b6b900")
        );
        let cam = "0123456789abcdeffedcba9876543210";
        assert_eq!(
            e(BlockCipher::Camellia, SymMode::Ecb, cam, "", &hex(cam)),
            hex("67673138549669730857065648eabe43")
        );
        let a40 = [b'a'; 40];
        assert_eq!(
            e(
                BlockCipher::Tdes,
                SymMode::Cfb,
                k3,
                "0011223344556677",
                &a40
            ),
            hex("71fb8ba5b6fa9bbcdb944c1e96f983458897024dac27cf6f9fcd9509a918e8f3c6f0708437075230")
        );
        assert_eq!(
            e(BlockCipher::Camellia, SymMode::Cfb, KEY256, IV, &a40),
            hex("c5c1d83843cb838839e12e85f5421ad878ea2c4c44da88467da01677d1148932ca9ca120a686a3db")
        );
        assert_eq!(
            e(
                BlockCipher::Tdes,
                SymMode::Cbc,
                k3,
                "0011223344556677",
                &a40[..32]
            ),
            hex("e7e2ba48bc77221d4158e90b86fb7e2278bd0935dc785cbb2cd9e8819be735f1")
        );
    }

    #[test]
    fn every_cipher_chains_through_iv_out_in_every_mode() {
        let data: Vec<u8> = (0..48u8).collect();
        for (cipher, key) in [
            (BlockCipher::Tdes, vec![3u8; 16]),
            (BlockCipher::Tdes, vec![4u8; 24]),
            (BlockCipher::Camellia, vec![5u8; 16]),
            (BlockCipher::Camellia, vec![6u8; 32]),
        ] {
            let n = cipher.block_size();
            for mode in [
                SymMode::Cfb,
                SymMode::Ctr,
                SymMode::Ofb,
                SymMode::Cbc,
                SymMode::Ecb,
            ] {
                let iv = if mode == SymMode::Ecb {
                    vec![]
                } else {
                    vec![0xA5; n]
                };
                let (whole, _) = encrypt(cipher, mode, &key, &iv, &data).unwrap();
                let cut = 3 * n;
                let (a, iv1) = encrypt(cipher, mode, &key, &iv, &data[..cut]).unwrap();
                let (b, _) = encrypt(cipher, mode, &key, &iv1, &data[cut..]).unwrap();
                assert_eq!([a, b].concat(), whole, "{cipher:?} {mode:?}");
                let (back, _) = decrypt(cipher, mode, &key, &iv, &whole).unwrap();
                assert_eq!(back, data, "{cipher:?} {mode:?}");
            }
            assert!(encrypt(cipher, SymMode::Cfb, &key, &vec![0; n + 1], &data).is_err());
        }
        assert!(encrypt(BlockCipher::Tdes, SymMode::Cfb, &[0; 32], &[0; 8], &data).is_err());
        assert!(!BlockCipher::Tdes.key_bits_supported(256));
        let mut k = [0u8, 1, 2, 3];
        des_odd_parity(&mut k);
        assert_eq!(k, [1, 1, 2, 2]);
    }
}
