//! PCR selections.

use super::algorithms::AlgHash;
use super::basic::HASH_COUNT;
use crate::constants as c;
use crate::marshal::{List, Marshal, Reader, Unmarshal};
use crate::rc::{err, TpmResult};

/// Number of PCRs per bank.
pub const PCR_COUNT: usize = 24;
/// PCR_SELECT_MIN = PCR_SELECT_MAX: octets in a selection bitmap.
pub const PCR_SELECT_SIZE: usize = PCR_COUNT.div_ceil(8);

/// TPMS_PCR_SELECTION: a bank and a bitmap of its PCRs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PcrSelection {
    /// The bank's hash.
    pub hash: u16,
    /// The bitmap (sizeofSelect octets, as sent).
    pub select: Vec<u8>,
}

impl PcrSelection {
    /// Whether PCR `i` is selected.
    pub fn has(&self, i: usize) -> bool {
        self.select
            .get(i / 8)
            .is_some_and(|b| b & (1 << (i % 8)) != 0)
    }
    /// A selection of `pcrs` in bank `hash`.
    pub fn of(hash: u16, pcrs: impl IntoIterator<Item = usize>) -> Self {
        let mut select = vec![0u8; PCR_SELECT_SIZE];
        for i in pcrs {
            if let Some(b) = select.get_mut(i / 8) {
                *b |= 1 << (i % 8);
            }
        }
        PcrSelection { hash, select }
    }
    /// Indices selected, in order.
    pub fn indices(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.select.len() * 8).filter(|&i| self.has(i))
    }
}

impl Marshal for PcrSelection {
    fn marshal(&self, w: &mut Vec<u8>) {
        self.hash.marshal(w);
        (self.select.len() as u8).marshal(w);
        w.extend_from_slice(&self.select);
    }
}

impl Unmarshal for PcrSelection {
    fn unmarshal(r: &mut Reader<'_>) -> TpmResult<Self> {
        let hash = AlgHash::unmarshal(r)?.0;
        let n = u8::unmarshal(r)? as usize;
        if n != PCR_SELECT_SIZE {
            return err(c::RC_VALUE);
        }
        Ok(PcrSelection {
            hash,
            select: r.take(n)?.to_vec(),
        })
    }
}

/// TPML_PCR_SELECTION.
pub type PcrSelectionList = List<PcrSelection, HASH_COUNT>;
