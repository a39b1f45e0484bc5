//! PCR banks and the PC Client PCR attributes (which locality may extend or
//! reset which PCR, which are saved by Shutdown(STATE)).

use crate::crypto::{digest, Hasher};
use crate::marshal::{Buffer, Buffer8, List};
use crate::tpm_struct;
use crate::types::{digest_size, PcrSelection, PcrSelectionList, PCR_COUNT, PCR_SELECT_SIZE};

/// A set of PCR indices as a bitmask (bit i = PCR i).
pub type PcrMask = u32;

const fn range(lo: u32, hi: u32) -> PcrMask {
    ((1u32 << (hi + 1)) - 1) & !((1u32 << lo) - 1)
}
const fn bit(i: u32) -> PcrMask {
    1 << i
}

/// Preserved across Shutdown(STATE)/Startup(STATE).
pub const SAVE: PcrMask = range(0, 15);
/// May be extended from locality 0..=4.
pub const EXTEND: [PcrMask; 5] = [
    range(0, 16) | bit(23),
    range(0, 16) | bit(20) | bit(23),
    range(0, 23),
    range(0, 20) | bit(23),
    range(0, 18) | bit(23),
];
/// May be reset from locality 0..=4.
pub const RESET: [PcrMask; 5] = [
    bit(16) | bit(23),
    bit(16) | bit(23),
    bit(16) | range(20, 22) | bit(23),
    bit(16) | bit(23),
    range(17, 22),
];
/// Changes to these do not increment pcrUpdateCounter.
pub const NO_INCREMENT: PcrMask = bit(16) | range(21, 23);
/// Reset by a D-RTM event; start at all ones after TPM Reset.
pub const DRTM: PcrMask = range(17, 22);
/// PCRs with an auth value and policy (PCR_SetAuthValue / PCR_SetAuthPolicy), in group order.
pub const AUTH_GROUP: [u32; 3] = [20, 21, 22];

/// The TPM_PT_PCR properties in tag order, for GetCapability(PCR_PROPERTIES).
pub fn properties() -> Vec<(u32, PcrMask)> {
    use crate::constants as c;
    let auth = AUTH_GROUP.iter().fold(0, |m, &i| m | bit(i));
    vec![
        (c::PT_PCR_SAVE, SAVE),
        (c::PT_PCR_EXTEND_L0, EXTEND[0]),
        (c::PT_PCR_RESET_L0, RESET[0]),
        (c::PT_PCR_EXTEND_L1, EXTEND[1]),
        (c::PT_PCR_RESET_L1, RESET[1]),
        (c::PT_PCR_EXTEND_L2, EXTEND[2]),
        (c::PT_PCR_RESET_L2, RESET[2]),
        (c::PT_PCR_EXTEND_L3, EXTEND[3]),
        (c::PT_PCR_RESET_L3, RESET[3]),
        (c::PT_PCR_EXTEND_L4, EXTEND[4]),
        (c::PT_PCR_RESET_L4, RESET[4]),
        (c::PT_PCR_NO_INCREMENT, NO_INCREMENT),
        (c::PT_PCR_DRTM_RESET, DRTM),
        (c::PT_PCR_POLICY, auth),
        (c::PT_PCR_AUTH, auth),
    ]
}

/// Bitmap octets of a mask.
pub fn mask_bytes(m: PcrMask) -> Vec<u8> {
    m.to_le_bytes()[..PCR_SELECT_SIZE].to_vec()
}

tpm_struct! {
    /// One bank: its hash, which PCRs are allocated, and 24 values.
    pub struct Bank {
        pub alg: u16,
        pub allocated: Buffer8,
        pub values: List<Buffer<64>, 24>,
    }
}

tpm_struct! {
    /// All banks plus pcrUpdateCounter.
    pub struct PcrBanks {
        pub banks: List<Bank, 4>,
        pub update_counter: u32,
    }
}

impl Bank {
    /// Whether PCR `i` is allocated in this bank.
    pub fn is_allocated(&self, i: usize) -> bool {
        self.allocated
            .0
            .get(i / 8)
            .is_some_and(|b| b & (1 << (i % 8)) != 0)
    }
    /// Whether any PCR is allocated.
    pub fn any_allocated(&self) -> bool {
        self.allocated.0.iter().any(|&b| b != 0)
    }
}

impl PcrBanks {
    /// Banks as of TPM Reset with `allocation`: zeros, DRTM PCRs all ones, PCR 0
    /// holding the startup locality in its last octet.
    pub fn reset(allocation: &PcrSelectionList, startup_locality: u8) -> PcrBanks {
        let banks = allocation
            .0
            .iter()
            .map(|sel| {
                let n = digest_size(sel.hash);
                let values = (0..PCR_COUNT)
                    .map(|i| {
                        let mut v = vec![if DRTM & bit(i as u32) != 0 { 0xff } else { 0 }; n];
                        if i == 0 {
                            if let Some(last) = v.last_mut() {
                                *last = startup_locality;
                            }
                        }
                        Buffer(v)
                    })
                    .collect();
                Bank {
                    alg: sel.hash,
                    allocated: Buffer8(sel.select.clone()),
                    values: List(values),
                }
            })
            .collect();
        PcrBanks {
            banks: List(banks),
            update_counter: 0,
        }
    }

    /// Extend PCR `i` of bank `alg` with `d` (ignored for unallocated banks/PCRs).
    pub fn extend(&mut self, i: usize, alg: u16, d: &[u8]) {
        for b in self
            .banks
            .0
            .iter_mut()
            .filter(|b| b.alg == alg && b.is_allocated(i))
        {
            if let Some(v) = b.values.0.get_mut(i) {
                v.0 = digest(alg, &[&v.0, d]);
            }
        }
    }

    /// Extend PCR `i` in every allocated bank with the digest of `data` in that bank's hash.
    pub fn extend_data(&mut self, i: usize, data: &[u8]) {
        for b in self.banks.0.iter_mut().filter(|b| b.is_allocated(i)) {
            let d = digest(b.alg, &[data]);
            if let Some(v) = b.values.0.get_mut(i) {
                v.0 = digest(b.alg, &[&v.0, &d]);
            }
        }
    }

    /// Set PCR `i` in every bank to `fill` octets.
    pub fn set_all(&mut self, i: usize, fill: u8) {
        for b in self.banks.0.iter_mut() {
            let n = digest_size(b.alg);
            if let Some(v) = b.values.0.get_mut(i) {
                v.0 = vec![fill; n];
            }
        }
    }

    /// Count a change to PCR `i` in pcrUpdateCounter.
    pub fn note_change(&mut self, i: usize) {
        if NO_INCREMENT & bit(i as u32) == 0 {
            self.update_counter = self.update_counter.wrapping_add(1);
        }
    }

    /// Value of PCR `i` in bank `alg`, if allocated.
    pub fn value(&self, alg: u16, i: usize) -> Option<&[u8]> {
        self.banks
            .0
            .iter()
            .find(|b| b.alg == alg && b.is_allocated(i))
            .and_then(|b| b.values.0.get(i))
            .map(|v| v.as_slice())
    }

    /// The current allocation as a selection list.
    pub fn allocation(&self) -> PcrSelectionList {
        List(
            self.banks
                .0
                .iter()
                .map(|b| PcrSelection {
                    hash: b.alg,
                    select: b.allocated.0.clone(),
                })
                .collect(),
        )
    }

    /// Copy the values of the PCRs in `mask` from `saved` (Startup(STATE)).
    pub fn restore(&mut self, saved: &PcrBanks, mask: PcrMask) {
        for b in self.banks.0.iter_mut() {
            if let Some(s) = saved.banks.0.iter().find(|s| s.alg == b.alg) {
                for i in (0..PCR_COUNT).filter(|&i| mask & bit(i as u32) != 0) {
                    if let (Some(dst), Some(src)) = (b.values.0.get_mut(i), s.values.0.get(i)) {
                        if src.len() == dst.len() {
                            dst.0.clone_from(&src.0);
                        }
                    }
                }
            }
        }
    }
}

/// An H-CRTM measurement in progress (_TPM_Hash_Start .. _TPM_Hash_End): one hash per bank.
#[derive(Clone)]
pub struct CrtmSequence {
    /// One running hash per bank algorithm.
    pub hashes: Vec<(u16, Hasher)>,
}

/// Whether PCR `i` is in `mask`.
pub fn in_mask(mask: PcrMask, i: usize) -> bool {
    i < 32 && mask & bit(i as u32) != 0
}
