//! The commit state of the split ECC operations (Part 3 19.1; Part 1's
//! split operations): TPM2_Commit and TPM2_EC_Ephemeral hand out a count
//! instead of keeping the ephemeral private value r; r is derived again from
//! a secret nonce and the count when the second half (ECDAA signing,
//! TPM2_ZGen_2Phase) uses it. A bit per recent count marks it pending, so
//! each r is used at most once.
//!
//! Renewed at every TPM Reset, kept by TPM Restart and Resume (it travels in
//! the save state and in the volatile snapshot).

use crate::constants as c;
use crate::crypto::ecc::{is_private_scalar, Curve};
use crate::marshal::Buffer;
use crate::tpm_struct;

/// Counts that can be pending at once: the last `WINDOW` handed out.
pub const WINDOW: u64 = 128;

/// Label of the KDF deriving r.
const LABEL: &[u8] = b"ECDAA Commit";

tpm_struct! {
    /// commitCounter, commitNonce and the pending bits.
    pub struct CommitState {
        /// Counts handed out since the last TPM Reset.
        pub counter: u64,
        /// The secret r is derived from (empty in state of older formats:
        /// then renewed before use).
        pub nonce: Buffer<64>,
        /// One bit per count modulo [`WINDOW`]: set while its r is unused.
        pub pending: Buffer<16>,
    }
}

impl CommitState {
    /// The state after a TPM Reset: a new nonce, nothing pending.
    pub fn fresh(rng: &mut impl rand::RngCore) -> CommitState {
        let mut nonce = vec![0u8; 64];
        rng.fill_bytes(&mut nonce);
        CommitState {
            counter: 0,
            nonce: Buffer(nonce),
            pending: Buffer(vec![0; (WINDOW / 8) as usize]),
        }
    }

    /// Whether this state came from a format without it (no nonce yet).
    pub fn is_unset(&self) -> bool {
        self.nonce.0.is_empty() || self.pending.0.len() != (WINDOW / 8) as usize
    }

    fn bit(full: u64) -> (usize, u8) {
        let i = full % WINDOW;
        ((i / 8) as usize, 1u8 << (i % 8))
    }

    /// The full count that a 16-bit `count` given back by a caller stands
    /// for: among the last [`WINDOW`] counts handed out, and still pending.
    pub fn resolve(&self, count: u16) -> Option<u64> {
        let latest = self.counter.checked_sub(1)?;
        let back = u64::from((latest as u16).wrapping_sub(count));
        if back >= WINDOW || back > latest {
            return None;
        }
        let full = latest - back;
        let (byte, mask) = Self::bit(full);
        (self.pending.0.get(byte)? & mask != 0).then_some(full)
    }

    /// Hand out the next count: mark it pending and answer its low 16 bits.
    /// A count that falls out of the window is no longer usable.
    pub fn commit(&mut self) -> u16 {
        let full = self.counter;
        let (byte, mask) = Self::bit(full);
        if let Some(b) = self.pending.0.get_mut(byte) {
            *b |= mask;
        }
        self.counter = self.counter.wrapping_add(1);
        full as u16
    }

    /// The count `count` has been used: it can never be used again.
    pub fn end(&mut self, count: u16) {
        if let Some(full) = self.resolve(count) {
            let (byte, mask) = Self::bit(full);
            if let Some(b) = self.pending.0.get_mut(byte) {
                *b &= !mask;
            }
        }
    }

    /// The r of full count `full` on `curve` for the object named `name`
    /// (empty for EC_Ephemeral and ZGen_2Phase): KDFa(SHA-256, nonce,
    /// "ECDAA Commit", name, full || attempt) drawn until 1 ≤ r < n.
    pub fn r(&self, curve: Curve, name: &[u8], full: u64) -> Option<Vec<u8>> {
        let bits = (curve.size() * 8) as u32;
        // r is drawn at the size of n; P-521's n has 521 bits in 66 octets,
        // so the top 7 bits are cleared first to keep most draws in range.
        let top_bits = curve.order_bits() % 8;
        for attempt in 0u32..1000 {
            let ctx = [&full.to_be_bytes()[..], &attempt.to_be_bytes()].concat();
            let mut r = crate::crypto::kdfa(c::ALG_SHA256, &self.nonce.0, LABEL, name, &ctx, bits);
            if top_bits != 0 {
                if let Some(first) = r.first_mut() {
                    *first &= (1u8 << top_bits) - 1;
                }
            }
            if is_private_scalar(curve, &r) {
                return Some(r);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_pending_until_used_and_only_within_the_window() {
        let mut s = CommitState::fresh(&mut rand::rngs::OsRng);
        assert_eq!(s.resolve(0), None, "nothing handed out yet");
        assert_eq!(s.commit(), 0);
        assert_eq!(s.commit(), 1);
        assert_eq!(s.resolve(0), Some(0));
        assert_eq!(s.resolve(1), Some(1));
        assert_eq!(s.resolve(2), None, "not handed out");
        s.end(0);
        assert_eq!(s.resolve(0), None, "used");
        assert_eq!(s.resolve(1), Some(1));
        // 200 more: count 1 falls out of the window, the last 128 are pending.
        for _ in 0..200 {
            s.commit();
        }
        assert_eq!(s.counter, 202);
        assert_eq!(s.resolve(1), None);
        assert_eq!(s.resolve(73), None, "201 - 128 is out");
        assert_eq!(s.resolve(74), Some(74));
        assert_eq!(s.resolve(201), Some(201));
    }

    #[test]
    fn the_16_bit_count_wraps() {
        let mut s = CommitState::fresh(&mut rand::rngs::OsRng);
        s.counter = 0x1_0000 - 2;
        let a = s.commit();
        let b = s.commit();
        let d = s.commit();
        assert_eq!((a, b, d), (0xfffe, 0xffff, 0));
        assert_eq!(s.resolve(0xfffe), Some(0xfffe));
        assert_eq!(s.resolve(0), Some(0x1_0000));
    }

    #[test]
    fn r_is_deterministic_per_count_and_name_and_in_range() {
        let s = CommitState::fresh(&mut rand::rngs::OsRng);
        for curve in Curve::ALL {
            let r = s.r(curve, b"name", 5).unwrap();
            assert_eq!(r.len(), curve.size());
            assert_eq!(s.r(curve, b"name", 5).unwrap(), r);
            assert_ne!(s.r(curve, b"name", 6).unwrap(), r);
            assert_ne!(s.r(curve, b"other", 5).unwrap(), r);
            assert!(is_private_scalar(curve, &r));
        }
        let other = CommitState::fresh(&mut rand::rngs::OsRng);
        assert_ne!(
            other.r(Curve::P256, b"", 0),
            s.r(Curve::P256, b"", 0),
            "another nonce"
        );
        assert!(CommitState::default().is_unset());
        assert!(!s.is_unset());
    }
}
