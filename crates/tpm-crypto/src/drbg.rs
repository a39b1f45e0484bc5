//! Random generators: a deterministic one driven by KDFa, for keys that must
//! be reproducible (primary keys from a hierarchy seed), and the system's
//! generator for everything else.

use rand_core::{CryptoRng, RngCore};
use zeroize::Zeroizing;

use crate::hash::{HashAlg, HmacState};
use crate::kdf::label_z;

/// A deterministic byte stream derived from a seed with KDFa's PRF.
///
/// Exactly how the bytes are produced (the engine may rely on it): block i,
/// for i = 1, 2, 3, ..., is
///
/// ```text
/// HMAC_alg(seed, [i]32 || label || 0x00 || contextU || contextV || [0xFFFFFFFF]32)
/// ```
///
/// (KDFa's input with the bit count fixed at 2^32 - 1, "unbounded"; the label
/// gets its terminating zero unless it already ends in one), and the stream is
/// block 1 || block 2 || ... read front to back with no octet skipped or
/// masked. `fill_bytes` takes the next octets of the stream; `next_u32` and
/// `next_u64` take the next 4 or 8 octets as a big-endian integer. So the same
/// (alg, seed, label, contexts) always yields the same stream and therefore,
/// through a deterministic key generator, the same key; any change gives an
/// unrelated stream.
///
/// For primary keys the engine passes the hierarchy's primary seed, a purpose
/// label, the digest of the template as contextU and (optionally) the
/// sensitive data as contextV.
pub struct KdfaRng {
    mac: HmacState,
    label: Vec<u8>,
    context_u: Vec<u8>,
    context_v: Vec<u8>,
    counter: u32,
    block: Zeroizing<Vec<u8>>,
    pos: usize,
}

impl KdfaRng {
    /// A stream for `seed`, `label` and one context (contextV empty).
    pub fn new(alg: HashAlg, seed: &[u8], label: &[u8], context: &[u8]) -> KdfaRng {
        KdfaRng::with_contexts(alg, seed, label, context, &[])
    }

    /// A stream for `seed`, `label`, contextU and contextV.
    pub fn with_contexts(
        alg: HashAlg,
        seed: &[u8],
        label: &[u8],
        context_u: &[u8],
        context_v: &[u8],
    ) -> KdfaRng {
        KdfaRng {
            mac: HmacState::new(alg, seed),
            label: label_z(label),
            context_u: context_u.to_vec(),
            context_v: context_v.to_vec(),
            counter: 0,
            block: Zeroizing::new(Vec::new()),
            pos: 0,
        }
    }

    /// The hash algorithm of the PRF.
    pub fn alg(&self) -> HashAlg {
        self.mac.alg()
    }

    fn refill(&mut self) {
        self.counter = self.counter.wrapping_add(1);
        let mut m = self.mac.clone();
        m.update(&self.counter.to_be_bytes());
        m.update(&self.label);
        m.update(&self.context_u);
        m.update(&self.context_v);
        m.update(&u32::MAX.to_be_bytes());
        self.block = Zeroizing::new(m.finish());
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
        let mut done = 0;
        while done < dest.len() {
            if self.pos >= self.block.len() {
                self.refill();
            }
            let n = (self.block.len() - self.pos).min(dest.len() - done);
            dest[done..done + n].copy_from_slice(&self.block[self.pos..self.pos + n]);
            self.pos += n;
            done += n;
        }
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl CryptoRng for KdfaRng {}

/// The operating system's generator (getrandom), for ordinary randomness:
/// nonces, ordinary (non-primary) keys, salts, blinding.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemRng;

impl RngCore for SystemRng {
    fn next_u32(&mut self) -> u32 {
        rand::rngs::OsRng.next_u32()
    }
    fn next_u64(&mut self) -> u64 {
        rand::rngs::OsRng.next_u64()
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        rand::rngs::OsRng.fill_bytes(dest)
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        rand::rngs::OsRng.try_fill_bytes(dest)
    }
}

impl CryptoRng for SystemRng {}

/// `len` octets from the system generator (TPM2_GetRandom, nonces).
pub fn random_bytes(len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    SystemRng.fill_bytes(&mut v);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn take(rng: &mut impl RngCore, n: usize) -> Vec<u8> {
        let mut b = vec![0u8; n];
        rng.fill_bytes(&mut b);
        b
    }

    #[test]
    fn the_stream_is_kdfa_blocks() {
        let mut r = KdfaRng::with_contexts(HashAlg::Sha256, b"seed", b"primary", b"u", b"v");
        let stream = take(&mut r, 70);
        // Block i is KDFa's PRF over KDFa's input with the bit count 2^32 - 1.
        for (i, chunk) in stream.chunks(32).enumerate() {
            let block = crate::hash::hmac(
                HashAlg::Sha256,
                b"seed",
                &[
                    &(i as u32 + 1).to_be_bytes(),
                    b"primary\0",
                    b"u",
                    b"v",
                    &u32::MAX.to_be_bytes(),
                ],
            );
            assert_eq!(chunk, &block[..chunk.len()]);
        }
    }

    #[test]
    fn the_generator_is_deterministic_and_seed_sensitive() {
        let run = |seed: &[u8]| {
            let mut r = KdfaRng::new(HashAlg::Sha256, seed, b"primary", b"template");
            // Mixed reads: the stream does not depend on how it is read.
            let mut out = take(&mut r, 3);
            out.extend_from_slice(&r.next_u32().to_be_bytes());
            out.extend_from_slice(&r.next_u64().to_be_bytes());
            out.extend(take(&mut r, 50));
            out
        };
        let a = run(b"seed");
        assert_eq!(a, run(b"seed"));
        assert_ne!(a, run(b"seeD"));
        let mut whole = KdfaRng::new(HashAlg::Sha256, b"seed", b"primary", b"template");
        assert_eq!(take(&mut whole, a.len()), a);
        let mut other_ctx = KdfaRng::new(HashAlg::Sha256, b"seed", b"primary", b"templatE");
        assert_ne!(take(&mut other_ctx, a.len()), a);
        assert_eq!(whole.alg(), HashAlg::Sha256);
    }

    #[test]
    fn system_randomness_varies() {
        let a = random_bytes(32);
        let b = random_bytes(32);
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
        assert!(random_bytes(0).is_empty());
        let mut s = SystemRng;
        assert_ne!(take(&mut s, 16), take(&mut s, 16));
    }
}
