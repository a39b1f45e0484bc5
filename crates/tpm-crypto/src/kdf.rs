//! KDFa (SP800-108 counter mode with HMAC) and KDFe (SP800-56A concatenation)
//! as TPM 2.0 Part 1 defines them, and a deterministic generator driven by
//! KDFa for primary keys.

use rand_core::{CryptoRng, RngCore};
use zeroize::Zeroizing;

use crate::hash::{digest, hmac, HashAlg};

/// The label as used in the KDFs: with its terminating zero octet (added unless present).
fn label_z(label: &[u8]) -> Vec<u8> {
    let mut l = label.to_vec();
    if l.last() != Some(&0) {
        l.push(0);
    }
    l
}

/// KDFa: `bits` of output from HMAC(key, [i] || label || 0 || contextU || contextV || [bits]),
/// i = 1, 2, ...; when `bits` is not a multiple of 8 the high bits of the first octet are masked.
pub fn kdfa(
    alg: HashAlg,
    key: &[u8],
    label: &[u8],
    context_u: &[u8],
    context_v: &[u8],
    bits: u32,
) -> Vec<u8> {
    let bytes = bits.div_ceil(8) as usize;
    let label = label_z(label);
    let mut out = Vec::with_capacity(bytes + alg.size());
    let mut i: u32 = 1;
    while out.len() < bytes {
        out.extend_from_slice(&hmac(
            alg,
            key,
            &[
                &i.to_be_bytes(),
                &label,
                context_u,
                context_v,
                &bits.to_be_bytes(),
            ],
        ));
        i = i.wrapping_add(1);
    }
    out.truncate(bytes);
    if !bits.is_multiple_of(8) {
        if let Some(first) = out.first_mut() {
            *first &= (1u8 << (bits % 8)) - 1;
        }
    }
    out
}

/// KDFe: `bits` of output from H([i] || Z || label || 0 || partyU || partyV), i = 1, 2, ...
pub fn kdfe(
    alg: HashAlg,
    z: &[u8],
    label: &[u8],
    party_u: &[u8],
    party_v: &[u8],
    bits: u32,
) -> Vec<u8> {
    let bytes = bits.div_ceil(8) as usize;
    let label = label_z(label);
    let mut out = Vec::with_capacity(bytes + alg.size());
    let mut i: u32 = 1;
    while out.len() < bytes {
        out.extend_from_slice(&digest(
            alg,
            &[&i.to_be_bytes(), z, &label, party_u, party_v],
        ));
        i = i.wrapping_add(1);
    }
    out.truncate(bytes);
    if !bits.is_multiple_of(8) {
        if let Some(first) = out.first_mut() {
            *first &= (1u8 << (bits % 8)) - 1;
        }
    }
    out
}

/// A deterministic byte stream for deriving primary keys: the stream is
/// KDFa(alg, seed, label, context, "", 2^32 - 1 bits) — HMAC blocks with the
/// counter 1, 2, ... — so the same seed, label and context always give the
/// same key, and any change gives an unrelated one.
pub struct KdfaRng {
    alg: HashAlg,
    seed: Zeroizing<Vec<u8>>,
    label: Vec<u8>,
    context: Vec<u8>,
    counter: u32,
    block: Zeroizing<Vec<u8>>,
    pos: usize,
}

impl KdfaRng {
    /// A stream for `seed`, `label` and `context` (e.g. the hashed template).
    pub fn new(alg: HashAlg, seed: &[u8], label: &[u8], context: &[u8]) -> KdfaRng {
        KdfaRng {
            alg,
            seed: Zeroizing::new(seed.to_vec()),
            label: label_z(label),
            context: context.to_vec(),
            counter: 0,
            block: Zeroizing::new(Vec::new()),
            pos: 0,
        }
    }

    fn refill(&mut self) {
        self.counter = self.counter.wrapping_add(1);
        let block = hmac(
            self.alg,
            &self.seed,
            &[
                &self.counter.to_be_bytes(),
                &self.label,
                &self.context,
                &u32::MAX.to_be_bytes(),
            ],
        );
        self.block = Zeroizing::new(block);
        self.pos = 0;
    }
}

impl RngCore for KdfaRng {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        self.fill_bytes(&mut b);
        u32::from_be_bytes(b)
    }
    fn next_u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.fill_bytes(&mut b);
        u64::from_be_bytes(b)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for d in dest.iter_mut() {
            if self.pos >= self.block.len() {
                self.refill();
            }
            *d = self.block[self.pos];
            self.pos += 1;
        }
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl CryptoRng for KdfaRng {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kdfa_is_the_hmac_counter_construction() {
        let k = kdfa(HashAlg::Sha256, b"key", b"ATH", b"u", b"v", 256);
        let expect = hmac(
            HashAlg::Sha256,
            b"key",
            &[
                &1u32.to_be_bytes(),
                b"ATH\0",
                b"u",
                b"v",
                &256u32.to_be_bytes(),
            ],
        );
        assert_eq!(k, expect);
        assert_eq!(
            k,
            kdfa(HashAlg::Sha256, b"key", b"ATH\0", b"u", b"v", 256),
            "label zero is not doubled"
        );
        let long = kdfa(HashAlg::Sha1, b"key", b"L", b"", b"", 400);
        assert_eq!(long.len(), 50);
        let short = kdfa(HashAlg::Sha256, b"key", b"L", b"", b"", 12);
        assert!(short.len() == 2 && short[0] < 16);
    }

    #[test]
    fn kdfe_is_the_hash_counter_construction() {
        let k = kdfe(HashAlg::Sha256, b"Z", b"SECRET", b"U", b"V", 128);
        let expect = digest(
            HashAlg::Sha256,
            &[&1u32.to_be_bytes(), b"Z", b"SECRET\0", b"U", b"V"],
        );
        assert_eq!(k, expect[..16]);
    }

    #[test]
    fn the_generator_is_deterministic_and_seed_sensitive() {
        let take = |seed: &[u8]| {
            let mut r = KdfaRng::new(HashAlg::Sha256, seed, b"primary", b"template");
            let mut b = vec![0u8; 100];
            r.fill_bytes(&mut b);
            b
        };
        assert_eq!(take(b"seed"), take(b"seed"));
        assert_ne!(take(b"seed"), take(b"seeD"));
    }
}
