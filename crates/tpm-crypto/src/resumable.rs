//! A hash whose running state can be exported and imported again, for hash
//! and HMAC sequences that must survive TPM2_ContextSave/ContextLoad (a
//! resource manager such as the kernel's /dev/tpmrm0 saves every object
//! after every command). Built on the compression functions of the sha1 and
//! sha2 crates; the padding is the Merkle–Damgård padding of FIPS 180-4.

use sha2::digest::generic_array::GenericArray;

use crate::error::{Error, Result};
use crate::hash::HashAlg;

/// The chaining state: five or eight 32-bit words, or eight 64-bit words.
#[derive(Clone, Debug, PartialEq, Eq)]
enum State {
    W32(Vec<u32>),
    W64([u64; 8]),
}

/// An incremental hash with an exportable state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResumableHash {
    alg: HashAlg,
    state: State,
    /// Bytes not yet compressed (less than one block).
    buffer: Vec<u8>,
    /// Total bytes absorbed.
    length: u128,
}

const SHA1_IV: [u32; 5] = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0];
const SHA256_IV: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];
const SHA384_IV: [u64; 8] = [
    0xcbbb9d5dc1059ed8,
    0x629a292a367cd507,
    0x9159015a3070dd17,
    0x152fecd8f70e5939,
    0x67332667ffc00b31,
    0x8eb44a8768581511,
    0xdb0c2e0d64f98fa7,
    0x47b5481dbefa4fa4,
];
const SHA512_IV: [u64; 8] = [
    0x6a09e667f3bcc908,
    0xbb67ae8584caa73b,
    0x3c6ef372fe94f82b,
    0xa54ff53a5f1d36f1,
    0x510e527fade682d1,
    0x9b05688c2b3e6c1f,
    0x1f83d9abfb41bd6b,
    0x5be0cd19137e2179,
];

impl ResumableHash {
    /// A new hash of `alg`.
    pub fn new(alg: HashAlg) -> ResumableHash {
        let state = match alg {
            HashAlg::Sha1 => State::W32(SHA1_IV.to_vec()),
            HashAlg::Sha256 => State::W32(SHA256_IV.to_vec()),
            HashAlg::Sha384 => State::W64(SHA384_IV),
            HashAlg::Sha512 => State::W64(SHA512_IV),
        };
        ResumableHash {
            alg,
            state,
            buffer: Vec::with_capacity(128),
            length: 0,
        }
    }

    /// The algorithm.
    pub fn alg(&self) -> HashAlg {
        self.alg
    }

    fn block_size(&self) -> usize {
        self.alg.block_size()
    }

    /// Compress whole blocks of `data` (its length is a multiple of the block size).
    fn compress(&mut self, data: &[u8]) {
        match &mut self.state {
            State::W32(s) if s.len() == 5 => {
                let mut st = [0u32; 5];
                st.copy_from_slice(s);
                let blocks: Vec<_> = data
                    .chunks_exact(64)
                    .map(|c| *GenericArray::from_slice(c))
                    .collect();
                sha1::compress(&mut st, &blocks);
                s.copy_from_slice(&st);
            }
            State::W32(s) => {
                let mut st = [0u32; 8];
                st.copy_from_slice(s);
                let blocks: Vec<_> = data
                    .chunks_exact(64)
                    .map(|c| *GenericArray::from_slice(c))
                    .collect();
                sha2::compress256(&mut st, &blocks);
                s.copy_from_slice(&st);
            }
            State::W64(st) => {
                let blocks: Vec<_> = data
                    .chunks_exact(128)
                    .map(|c| *GenericArray::from_slice(c))
                    .collect();
                sha2::compress512(st, &blocks);
            }
        }
    }

    /// Absorb `data`.
    pub fn update(&mut self, mut data: &[u8]) {
        let bs = self.block_size();
        self.length += data.len() as u128;
        if !self.buffer.is_empty() {
            let take = (bs - self.buffer.len()).min(data.len());
            self.buffer.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.buffer.len() < bs {
                return;
            }
            let block = std::mem::take(&mut self.buffer);
            self.compress(&block);
        }
        let whole = data.len() - data.len() % bs;
        if whole > 0 {
            self.compress(&data[..whole]);
        }
        self.buffer.extend_from_slice(&data[whole..]);
    }

    /// The digest.
    pub fn finish(mut self) -> Vec<u8> {
        let bs = self.block_size();
        let len_bytes = if bs == 64 { 8 } else { 16 };
        let bits = self.length.wrapping_mul(8);
        let mut tail = std::mem::take(&mut self.buffer);
        tail.push(0x80);
        while !(tail.len() + len_bytes).is_multiple_of(bs) {
            tail.push(0);
        }
        tail.extend_from_slice(&bits.to_be_bytes()[16 - len_bytes..]);
        self.compress(&tail);
        let mut out: Vec<u8> = match &self.state {
            State::W32(s) => s.iter().flat_map(|w| w.to_be_bytes()).collect(),
            State::W64(s) => s.iter().flat_map(|w| w.to_be_bytes()).collect(),
        };
        out.truncate(self.alg.size());
        out
    }

    /// The running state as bytes: state words, total length, pending bytes.
    pub fn export(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(64 + 16 + self.buffer.len());
        match &self.state {
            State::W32(s) => s.iter().for_each(|w| v.extend(w.to_be_bytes())),
            State::W64(s) => s.iter().for_each(|w| v.extend(w.to_be_bytes())),
        }
        v.extend(self.length.to_be_bytes());
        v.extend(&self.buffer);
        v
    }

    /// A hash of `alg` resumed from [`export`](Self::export)'s bytes.
    pub fn import(alg: HashAlg, bytes: &[u8]) -> Result<ResumableHash> {
        let mut h = ResumableHash::new(alg);
        let words = match &h.state {
            State::W32(s) => s.len() * 4,
            State::W64(_) => 64,
        };
        let bad = || Error::InvalidInput("hash state");
        if bytes.len() < words + 16 || bytes.len() >= words + 16 + h.block_size() {
            return Err(bad());
        }
        match &mut h.state {
            State::W32(s) => {
                for (w, c) in s.iter_mut().zip(bytes[..words].chunks_exact(4)) {
                    *w = u32::from_be_bytes(c.try_into().map_err(|_| bad())?);
                }
            }
            State::W64(s) => {
                for (w, c) in s.iter_mut().zip(bytes[..words].chunks_exact(8)) {
                    *w = u64::from_be_bytes(c.try_into().map_err(|_| bad())?);
                }
            }
        }
        let length = u128::from_be_bytes(bytes[words..words + 16].try_into().map_err(|_| bad())?);
        let buffer = &bytes[words + 16..];
        if length % h.block_size() as u128 != buffer.len() as u128 {
            return Err(bad());
        }
        h.length = length;
        h.buffer = buffer.to_vec();
        Ok(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::digest;

    #[test]
    fn matches_the_one_shot_digest_for_every_split_and_resumes() {
        let data: Vec<u8> = (0..700u32).map(|i| (i * 7 + 3) as u8).collect();
        for alg in HashAlg::ALL {
            for len in [0, 1, 55, 56, 63, 64, 65, 111, 112, 127, 128, 129, 300, 700] {
                let want = digest(alg, &[&data[..len]]);
                for split in [0, 1.min(len), len / 3, len / 2, len] {
                    let mut h = ResumableHash::new(alg);
                    h.update(&data[..split]);
                    let h2 = ResumableHash::import(alg, &h.export()).unwrap();
                    assert_eq!(h2, h);
                    let mut h = h2;
                    h.update(&data[split..len]);
                    assert_eq!(h.finish(), want, "{alg:?} len {len} split {split}");
                }
            }
        }
    }

    #[test]
    fn damaged_states_are_refused() {
        let mut h = ResumableHash::new(HashAlg::Sha256);
        h.update(b"abc");
        let s = h.export();
        assert!(ResumableHash::import(HashAlg::Sha256, &s[..s.len() - 1]).is_err());
        assert!(ResumableHash::import(HashAlg::Sha512, &s).is_err());
        assert!(ResumableHash::import(HashAlg::Sha256, &[]).is_err());
    }
}
