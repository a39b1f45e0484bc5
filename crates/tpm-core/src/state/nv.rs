//! NV indices as they are stored in permanent state: the public area
//! (TPMS_NV_PUBLIC), the authValue and the data, plus the limits vtpm
//! enforces on them (reported through GetCapability).

use crate::constants as c;
use crate::marshal::{Buffer, List, Marshal};
use crate::tpm_struct;
use crate::types::{Auth, Digest};

/// Largest data area of one index (TPM_PT_NV_INDEX_MAX).
pub const NV_INDEX_MAX: usize = 2048;
/// Largest NV_Read/NV_Write chunk (TPM_PT_NV_BUFFER_MAX, TPM2B_MAX_NV_BUFFER).
pub const NV_BUFFER_MAX: usize = 1024;
/// Most indices defined at once (all types together).
pub const MAX_NV_INDICES: usize = 96;
/// Most counter indices (TPM_PT_NV_COUNTERS_MAX); counters need no other resource.
pub const MAX_NV_COUNTERS: usize = MAX_NV_INDICES;
/// Budget of NV space for indices, in octets (libtpms's order of magnitude).
pub const NV_SPACE: usize = 64 * 1024;
/// What one index costs beyond its data: public area, authValue and bookkeeping.
pub const NV_INDEX_OVERHEAD: usize = 128;
/// Low bits of an ORDERLY counter kept in RAM only (TPM_PT_ORDERLY_COUNT):
/// the NV copy is written whenever they roll over.
pub const MAX_ORDERLY_COUNT: u64 = 0xFF;

/// TPM_NT values (TPMA_NV bits 7:4).
pub mod nt {
    /// Ordinary data index.
    pub const ORDINARY: u32 = 0;
    /// 64-bit monotonic counter.
    pub const COUNTER: u32 = 1;
    /// 64-bit bit field.
    pub const BITS: u32 = 2;
    /// Extend (PCR-like) index.
    pub const EXTEND: u32 = 4;
    /// PIN index counting failures.
    pub const PIN_FAIL: u32 = 8;
    /// PIN index counting successful uses.
    pub const PIN_PASS: u32 = 9;
}

tpm_struct! {
    /// TPMS_NV_PUBLIC.
    pub struct NvPublic {
        pub nv_index: u32,
        pub name_alg: u16,
        pub attributes: u32,
        pub auth_policy: Digest,
        pub data_size: u16,
    }
}

impl NvPublic {
    /// Whether every bit of `mask` is SET in the attributes.
    pub fn has(&self, mask: u32) -> bool {
        self.attributes & mask == mask
    }
    /// The index type (TPM_NT).
    pub fn nt(&self) -> u32 {
        (self.attributes & c::TPMA_NV_TPM2_NT_MASK) >> c::TPMA_NV_TPM2_NT_SHIFT
    }
    /// Whether this is a PIN Pass or PIN Fail index.
    pub fn is_pin(&self) -> bool {
        matches!(self.nt(), nt::PIN_FAIL | nt::PIN_PASS)
    }
    /// The Name: nameAlg || H_nameAlg(TPMS_NV_PUBLIC). It changes with the
    /// attributes (WRITTEN, the locks), as Part 1 says.
    pub fn name(&self) -> Vec<u8> {
        let mut n = self.name_alg.to_be_bytes().to_vec();
        n.extend(crate::crypto::digest(self.name_alg, &[&self.to_bytes()]));
        n
    }
}

tpm_struct! {
    /// A defined index: public area, authValue and data (`data_size` octets).
    pub struct NvIndex {
        pub public: NvPublic,
        pub auth: Auth,
        pub data: Buffer<NV_INDEX_MAX>,
    }
}

impl NvIndex {
    /// NV space the index takes from [`NV_SPACE`].
    pub fn cost(&self) -> usize {
        usize::from(self.public.data_size) + NV_INDEX_OVERHEAD
    }
    /// The data as a big-endian 64-bit value (counters, bit fields, PIN indices).
    pub fn value64(&self) -> u64 {
        let mut b = [0u8; 8];
        if let Some(d) = self.data.0.get(..8) {
            b.copy_from_slice(d);
        }
        u64::from_be_bytes(b)
    }
    /// Store a 64-bit value (the caller checked the index is 8 octets).
    pub fn set_value64(&mut self, v: u64) {
        self.data.0 = v.to_be_bytes().to_vec();
    }
}

tpm_struct! {
    /// The NV part of permanent state (format version 3 and later).
    pub struct NvState {
        /// The defined indices, in definition order.
        pub indices: List<NvIndex, MAX_NV_INDICES>,
        /// Highest value any counter that no longer exists ever had: a new
        /// counter starts above it (and above every existing counter). Clear
        /// removes owner counters but keeps this value.
        pub max_counter: u64,
    }
}
