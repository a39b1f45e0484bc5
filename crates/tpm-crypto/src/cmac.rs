//! CMAC (NIST SP 800-38B, RFC 4493) over AES, Camellia or TDES, incremental
//! and with an exportable running state, for TPM2_MAC / MAC_Start with
//! TPM_ALG_CMAC. The chaining is CBC encryption from a zero IV; the last
//! block is kept back until the end, when it is masked with subkey K1
//! (whole) or padded and masked with K2.

use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::sym::{encrypt, BlockCipher, SymMode};

/// A running CMAC.
#[derive(Clone)]
pub struct Cmac {
    cipher: BlockCipher,
    key: Zeroizing<Vec<u8>>,
    /// The CBC chaining value after the blocks processed so far.
    chain: Zeroizing<Vec<u8>>,
    /// Input not processed yet: at most one block (the possible last one).
    pending: Zeroizing<Vec<u8>>,
}

fn cipher_code(c: BlockCipher) -> u8 {
    match c {
        BlockCipher::Aes => 1,
        BlockCipher::Camellia => 2,
        BlockCipher::Tdes => 3,
    }
}

/// The doubling of a block in GF(2^b): shift left, and xor the reduction
/// constant (0x87 for 128-bit blocks, 0x1b for 64-bit) if the top bit fell out.
fn double(block: &[u8]) -> Vec<u8> {
    let carry = block.first().is_some_and(|b| b & 0x80 != 0);
    let mut out: Vec<u8> = block
        .iter()
        .zip(block.iter().skip(1).chain(std::iter::once(&0)))
        .map(|(a, b)| (a << 1) | (b >> 7))
        .collect();
    if carry {
        if let Some(last) = out.last_mut() {
            *last ^= if block.len() == 16 { 0x87 } else { 0x1b };
        }
    }
    out
}

impl Cmac {
    /// A CMAC of `cipher` keyed with `key` (a size the cipher takes).
    pub fn new(cipher: BlockCipher, key: &[u8]) -> Result<Cmac> {
        let n = cipher.block_size();
        // Checks the key size once, so later block operations cannot fail on it.
        encrypt(cipher, SymMode::Ecb, key, &[], &vec![0; n])?;
        Ok(Cmac {
            cipher,
            key: Zeroizing::new(key.to_vec()),
            chain: Zeroizing::new(vec![0; n]),
            pending: Zeroizing::new(Vec::new()),
        })
    }

    fn block_encrypt(&self, data: &[u8]) -> Result<Vec<u8>> {
        Ok(encrypt(self.cipher, SymMode::Ecb, &self.key, &[], data)?.0)
    }

    /// Absorb `data`: every block but the last (which may end the message
    /// and is kept back) is chained in one CBC pass, one key schedule per
    /// call rather than per block.
    pub fn update(&mut self, data: &[u8]) -> Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        let n = self.cipher.block_size();
        let mut all = Zeroizing::new(Vec::with_capacity(self.pending.len() + data.len()));
        all.extend_from_slice(&self.pending);
        all.extend_from_slice(data);
        let keep = match all.len() % n {
            0 => n,
            r => r,
        };
        let (body, last) = all.split_at(all.len() - keep);
        if !body.is_empty() {
            let (_, chain) = encrypt(self.cipher, SymMode::Cbc, &self.key, &self.chain, body)?;
            self.chain = Zeroizing::new(chain);
        }
        self.pending = Zeroizing::new(last.to_vec());
        Ok(())
    }

    /// The tag (one block).
    pub fn finish(&self) -> Result<Vec<u8>> {
        let n = self.cipher.block_size();
        let k1 = double(&self.block_encrypt(&vec![0; n])?);
        let mut last = self.pending.to_vec();
        let mask = if last.len() == n {
            k1
        } else {
            last.push(0x80);
            last.resize(n, 0);
            double(&k1)
        };
        let x: Vec<u8> = last
            .iter()
            .zip(mask.iter())
            .zip(self.chain.iter())
            .map(|((a, b), c)| a ^ b ^ c)
            .collect();
        self.block_encrypt(&x)
    }

    /// The running state: cipher, key, chaining value and pending input.
    pub fn export(&self) -> Zeroizing<Vec<u8>> {
        let mut v = Zeroizing::new(vec![cipher_code(self.cipher), self.key.len() as u8]);
        v.extend_from_slice(&self.key);
        v.extend_from_slice(&self.chain);
        v.push(self.pending.len() as u8);
        v.extend_from_slice(&self.pending);
        v
    }

    /// A CMAC resumed from [`export`](Self::export)'s bytes.
    pub fn import(state: &[u8]) -> Result<Cmac> {
        let bad = || Error::InvalidInput("CMAC state");
        let (&code, rest) = state.split_first().ok_or_else(bad)?;
        let cipher = match code {
            1 => BlockCipher::Aes,
            2 => BlockCipher::Camellia,
            3 => BlockCipher::Tdes,
            _ => return Err(bad()),
        };
        let n = cipher.block_size();
        let (&klen, rest) = rest.split_first().ok_or_else(bad)?;
        let key = rest.get(..usize::from(klen)).ok_or_else(bad)?;
        let rest = &rest[usize::from(klen)..];
        let chain = rest.get(..n).ok_or_else(bad)?;
        let (&plen, pending) = rest
            .get(n..)
            .and_then(|r| r.split_first())
            .ok_or_else(bad)?;
        if usize::from(plen) != pending.len() || pending.len() > n {
            return Err(bad());
        }
        let mut m = Cmac::new(cipher, key)?;
        m.chain = Zeroizing::new(chain.to_vec());
        m.pending = Zeroizing::new(pending.to_vec());
        Ok(m)
    }
}

/// The CMAC of `data` in one call.
pub fn cmac(cipher: BlockCipher, key: &[u8], data: &[u8]) -> Result<Vec<u8>> {
    let mut m = Cmac::new(cipher, key)?;
    m.update(data)?;
    m.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        ::hex::decode(s).unwrap()
    }

    /// RFC 4493 section 4 (AES-128).
    #[test]
    fn rfc4493_known_answers() {
        let key = hex("2b7e151628aed2a6abf7158809cf4f3c");
        let msg = hex(
            "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51\
             30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710",
        );
        for (len, tag) in [
            (0, "bb1d6929e95937287fa37d129b756746"),
            (16, "070a16b46b4d4144f79bdd9dd04a287c"),
            (40, "dfa66747de9ae63030ca32611497c827"),
            (64, "51f0bebf7e3b9d92fc49741779363cfe"),
        ] {
            assert_eq!(
                cmac(BlockCipher::Aes, &key, &msg[..len]).unwrap(),
                hex(tag),
                "{len}"
            );
        }
        // In pieces, through an exported state, the same tag.
        let mut m = Cmac::new(BlockCipher::Aes, &key).unwrap();
        m.update(&msg[..7]).unwrap();
        m.update(&msg[7..16]).unwrap();
        let mut m = Cmac::import(&m.export()).unwrap();
        m.update(&msg[16..40]).unwrap();
        assert_eq!(m.finish().unwrap(), hex("dfa66747de9ae63030ca32611497c827"));
        // Any split of the 64 octets (block boundaries included), and octet
        // by octet.
        for at in 0..=64 {
            let mut m = Cmac::new(BlockCipher::Aes, &key).unwrap();
            m.update(&msg[..at]).unwrap();
            m.update(&msg[at..]).unwrap();
            assert_eq!(
                m.finish().unwrap(),
                hex("51f0bebf7e3b9d92fc49741779363cfe"),
                "{at}"
            );
        }
        let mut m = Cmac::new(BlockCipher::Aes, &key).unwrap();
        msg.iter().for_each(|b| m.update(&[*b]).unwrap());
        assert_eq!(m.finish().unwrap(), hex("51f0bebf7e3b9d92fc49741779363cfe"));
    }

    #[test]
    fn other_ciphers_and_bad_input() {
        for (cipher, key) in [
            (BlockCipher::Camellia, vec![7u8; 16]),
            (BlockCipher::Tdes, vec![7u8; 24]),
        ] {
            let t = cmac(cipher, &key, b"message").unwrap();
            assert_eq!(t.len(), cipher.block_size());
            assert_ne!(t, cmac(cipher, &key, b"messagf").unwrap());
        }
        // TDES's 64-bit block doubles with 0x1b.
        assert_eq!(
            double(&[0x80, 0, 0, 0, 0, 0, 0, 1]),
            vec![0, 0, 0, 0, 0, 0, 0, 0x1b ^ 2]
        );
        assert!(Cmac::new(BlockCipher::Aes, &[1; 5]).is_err());
        assert!(Cmac::import(&[]).is_err());
        assert!(Cmac::import(&[1, 16]).is_err());
        assert!(Cmac::import(&[9, 0]).is_err());
    }
}
