//! The changes a batch is made of, and the blob map they apply to: shared
//! by the store (which writes them) and recovery (which replays them).

use std::collections::BTreeMap;

use zeroize::Zeroizing;

/// One change in a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Set a blob's contents.
    Put(String, Vec<u8>),
    /// Remove a blob.
    Delete(String),
}

impl Op {
    /// The blob the op changes.
    pub fn name(&self) -> &str {
        match self {
            Op::Put(n, _) | Op::Delete(n) => n,
        }
    }
}

/// The committed blobs.
pub type Blobs = BTreeMap<String, Zeroizing<Vec<u8>>>;

/// Apply one change to the blob map.
pub(crate) fn apply(blobs: &mut Blobs, op: Op) {
    match op {
        Op::Put(n, d) => {
            blobs.insert(n, Zeroizing::new(d));
        }
        Op::Delete(n) => {
            blobs.remove(&n);
        }
    }
}
