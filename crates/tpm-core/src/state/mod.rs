//! The engine's state, split by lifetime as the specification splits it:
//! permanent (survives everything but Clear), save state (what
//! Shutdown(STATE) keeps for Startup(STATE)) and volatile (RAM).
//! Each serialises with the wire-format traits behind a format version.

pub mod clock;
pub mod commit;
pub mod nv;
pub mod pcr;
pub mod permanent;
pub mod saved;

pub use clock::Clock;
pub use commit::CommitState;
pub use pcr::PcrBanks;
pub use permanent::Permanent;
pub use saved::{ContextState, SaveState, VolatileSnapshot};

use crate::marshal::{Marshal, Unmarshal};

/// Format version written in front of every state blob. Version 3 added the
/// NV indices at the end of the permanent state; version 4 the policy context
/// of sessions (volatile snapshots and session contexts of format 3 that hold
/// sessions do not parse and are refused, never loaded half); version 5 the
/// session audit digest at the end of each session, and the command audit
/// state as trailing fields of the permanent, save-state and volatile blobs
/// (absent in older blobs: their defaults) (format-4 session
/// contexts no longer parse and are refused; format-4 volatile snapshots load
/// when they hold no loaded session and are refused otherwise); version 6 the
/// commit state of the split ECC operations as a trailing field of the
/// save-state and volatile blobs (absent in older blobs: renewed as at a TPM
/// Reset, which only voids commits that older versions never made).
pub const STATE_VERSION: u16 = 6;
/// Oldest format version still read. Version 2 blobs differ only in lacking
/// the trailing NV state of the permanent blob, which then reads as empty.
pub const MIN_STATE_VERSION: u16 = 2;

/// Octets of the digest that ends every state blob.
const SEAL_LEN: usize = 32;

/// A state structure as a blob: its wire form followed by a SHA-256 of it, so a
/// blob damaged in an image or in migration is refused rather than loaded.
pub fn seal(v: &impl Marshal) -> Vec<u8> {
    let mut b = v.to_bytes();
    let d = crate::crypto::digest(crate::constants::ALG_SHA256, &[&b]);
    b.extend_from_slice(&d);
    b
}

/// Check and parse a blob made by [`seal`]; the error says what is wrong.
pub fn open<T: Unmarshal>(blob: &[u8]) -> Result<T, String> {
    let version = blob.get(..2).map(|v| u16::from_be_bytes([v[0], v[1]]));
    if !version.is_some_and(|v| (MIN_STATE_VERSION..=STATE_VERSION).contains(&v)) {
        return Err(format!(
            "format version {version:?}, expected {MIN_STATE_VERSION} to {STATE_VERSION}"
        ));
    }
    let body = blob.len().checked_sub(SEAL_LEN).map(|n| blob.split_at(n));
    let Some((body, digest)) = body else {
        return Err("too short".into());
    };
    if !crate::crypto::ct_eq(
        &crate::crypto::digest(crate::constants::ALG_SHA256, &[body]),
        digest,
    ) {
        return Err("checksum mismatch".into());
    }
    T::from_bytes(body).map_err(|rc| format!("does not parse (code {:#x})", rc.0))
}
