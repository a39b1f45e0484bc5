//! Permanent state: seeds, hierarchy secrets, clock and counters, PCR
//! allocation, dictionary-attack parameters, persistent objects, NV indices.

use crate::constants as c;
use crate::marshal::{Buffer, List};
use crate::tpm_struct;
use crate::types::{Auth, PcrSelection, PcrSelectionList, TaggedHash, HASH_ALGS, PCR_COUNT};

/// A primary seed or proof value (64 octets).
pub type Secret64 = Buffer<64>;

tpm_struct! {
    /// A PCR policy group set by PCR_SetAuthPolicy.
    pub struct PcrPolicy { pub policy: TaggedHash }
}

tpm_struct! {
    /// Everything that must survive power loss.
    pub struct Permanent {
        pub version: u16,
        pub eps: Secret64,
        pub sps: Secret64,
        pub pps: Secret64,
        pub ph_proof: Secret64,
        pub sh_proof: Secret64,
        pub eh_proof: Secret64,
        pub owner_auth: Auth,
        pub endorsement_auth: Auth,
        pub lockout_auth: Auth,
        pub owner_policy: TaggedHash,
        pub endorsement_policy: TaggedHash,
        pub lockout_policy: TaggedHash,
        /// Clock (ms) as last written to NV.
        pub clock: u64,
        pub reset_count: u32,
        pub restart_count: u32,
        /// PCR banks to use from the next TPM Reset (PCR_Allocate).
        pub pcr_allocation: PcrSelectionList,
        /// PCR_SetAuthPolicy groups (PCR 20, 21, 22 as in libtpms).
        pub pcr_policies: List<PcrPolicy, 8>,
        /// How the TPM last shut down: TPM_SU_CLEAR, TPM_SU_STATE, or 0xFFFF (not orderly).
        pub orderly: u16,
        pub failed_tries: u32,
        pub max_tries: u32,
        pub recovery_time: u32,
        pub lockout_recovery: u32,
        pub disable_clear: bool,
        pub tpm_established: bool,
        /// Objects made persistent with EvictControl.
        pub persistent: List<PersistentObject, MAX_PERSISTENT>,
        /// Dictionary-attack and physical-presence state (format 3; a format-2
        /// blob loads with the defaults).
        pub da: crate::marshal::Trailing<DaState>,
        /// NV indices (format 3; absent in a format-2 blob, which loads without any).
        pub nv: crate::marshal::Trailing<super::nv::NvState>,
        /// clearCount: TPM Restarts since the last TPM Reset; contexts of
        /// stClear objects are bound to it (absent in older blobs: 0).
        pub clear_count: crate::marshal::Trailing<u32>,
        /// algorithmSet, as TPM2_SetAlgorithmSet last set it (reported as
        /// TPM_PT_ALGORITHM_SET; absent in older blobs: 0).
        pub algorithm_set: crate::marshal::Trailing<u32>,
    }
}

/// Persistent object slots (TPM_PT_HR_PERSISTENT_MIN and the most EvictControl accepts).
pub const MAX_PERSISTENT: usize = 64;

tpm_struct! {
    /// An object made persistent: its handle and stored form.
    pub struct PersistentObject { pub handle: u32, pub object: crate::object::Loaded }
}

tpm_struct! {
    /// Dictionary-attack and physical-presence state added by format 3.
    pub struct DaState {
        /// lockoutAuth may not be used (set by a failed lockoutAuth, cleared
        /// after lockoutRecovery or, when that is 0, at the next Startup(CLEAR)).
        pub lockout_auth_locked: bool,
        /// A DA-protected authorization was tried since the last Startup: if
        /// power is then lost, the next Startup counts one failure.
        pub da_used: bool,
        /// Commands besides PP_Commands (which always does) that need physical
        /// presence when authorized by the platform, as PP_Commands set them.
        pub pp_extra: List<u32, MAX_PP_COMMANDS>,
    }
}

/// Most commands the PP list can hold (every {PP} command of Part 3 fits).
pub const MAX_PP_COMMANDS: usize = 32;

/// Dictionary-attack defaults (libtpms's), restored by TPM2_Clear.
pub const DA_MAX_TRIES: u32 = 3;
/// Seconds per self-healing step.
pub const DA_RECOVERY_TIME: u32 = 1000;
/// Seconds lockoutAuth stays unusable after a failure.
pub const DA_LOCKOUT_RECOVERY: u32 = 1000;

/// `orderly` value for "last shutdown was not orderly".
pub const NOT_ORDERLY: u16 = 0xFFFF;

impl Permanent {
    /// A freshly manufactured TPM: new seeds from `rng`, empty auths, all four banks allocated.
    pub fn manufacture(rng: &mut impl rand::RngCore) -> Permanent {
        let mut secret = || {
            let mut b = vec![0u8; 64];
            rng.fill_bytes(&mut b);
            Buffer(b)
        };
        let null_policy = TaggedHash {
            alg: c::ALG_NULL,
            digest: Vec::new(),
        };
        Permanent {
            version: super::STATE_VERSION,
            eps: secret(),
            sps: secret(),
            pps: secret(),
            ph_proof: secret(),
            sh_proof: secret(),
            eh_proof: secret(),
            owner_auth: Auth::default(),
            endorsement_auth: Auth::default(),
            lockout_auth: Auth::default(),
            owner_policy: null_policy.clone(),
            endorsement_policy: null_policy.clone(),
            lockout_policy: null_policy.clone(),
            clock: 0,
            reset_count: 0,
            restart_count: 0,
            pcr_allocation: List(
                HASH_ALGS
                    .iter()
                    .map(|&h| PcrSelection::of(h, 0..PCR_COUNT))
                    .collect(),
            ),
            pcr_policies: List(
                (0..3)
                    .map(|_| PcrPolicy {
                        policy: null_policy.clone(),
                    })
                    .collect(),
            ),
            // A new TPM counts as cleanly shut down, so its clock starts safe.
            orderly: c::SU_CLEAR,
            failed_tries: 0,
            max_tries: DA_MAX_TRIES,
            recovery_time: DA_RECOVERY_TIME,
            lockout_recovery: DA_LOCKOUT_RECOVERY,
            disable_clear: false,
            tpm_established: false,
            persistent: List(Vec::new()),
            da: Default::default(),
            clear_count: Default::default(),
            algorithm_set: Default::default(),
            nv: Default::default(),
        }
    }
}
