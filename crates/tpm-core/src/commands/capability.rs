//! TPM2_GetCapability (Part 3 chapter 30) for every capability, with paging
//! through `moreData`. Everything reported is what the engine really does.

use crate::auth::session::{MAX_ACTIVE, MAX_LOADED};
use crate::constants as c;
use crate::dispatch::{Ctx, COMMANDS};
use crate::engine::objects::MAX_OBJECTS;
use crate::engine::{Response, Tpm};
use crate::marshal::{Buffer8, List, Marshal};
use crate::rc::{Rc, TpmResult};
use crate::state::clock::CLOCK_UPDATE_MS;
use crate::state::nv;
use crate::state::pcr;
use crate::state::permanent::MAX_PERSISTENT;
use crate::tpm_params;
use crate::types::{
    AlgProperty, CapabilityData, TaggedPcrSelect, TaggedPolicy, TaggedProperty, ALGORITHMS,
    HASH_COUNT, MAX_BUFFER, MAX_DIGEST, PCR_COUNT, PCR_SELECT_SIZE,
};

tpm_params! {
    /// TPM2_GetCapability parameters.
    pub struct GetCapabilityIn { pub capability: u32, pub property: u32, pub count: u32 }
}

/// Largest capability payload (TPM_PT_MAX_CAP_BUFFER).
const MAX_CAP_BUFFER: usize = 1024;
/// TPM_CAP_ACT (newer revisions): no authenticated countdown timers here.
const CAP_ACT: u32 = 0x0A;

/// Four ASCII characters as a property value.
fn chars(s: &[u8; 4]) -> u32 {
    u32::from_be_bytes(*s)
}

/// The spec revision followed (Part 2/3 rev 01.16) and its date.
const SPEC_REVISION: u32 = 116;
const SPEC_DAY_OF_YEAR: u32 = 303;
const SPEC_YEAR: u32 = 2014;

/// TPM_PT_FIRMWARE_VERSION_1 and _2 (the crate version).
pub(crate) fn version_words() -> (u32, u32) {
    let mut it = env!("CARGO_PKG_VERSION")
        .split('.')
        .map(|x| x.parse::<u32>().unwrap_or(0));
    let (a, b, p) = (
        it.next().unwrap_or(0),
        it.next().unwrap_or(0),
        it.next().unwrap_or(0),
    );
    ((a << 16) | (b & 0xFFFF), p)
}

impl Tpm {
    /// All TPM_PT properties, fixed then variable, in tag order.
    fn properties(&self) -> Vec<(u32, u32)> {
        let pw = self.pw.as_ref();
        let (fw1, fw2) = version_words();
        let ncmd = COMMANDS.len() as u32;
        let p = &self.perm;
        let bit = |on: bool, mask: u32| if on { mask } else { 0 };
        let permanent = bit(!p.owner_auth.is_empty(), c::TPMA_PERMANENT_OWNERAUTHSET)
            | bit(
                !p.endorsement_auth.is_empty(),
                c::TPMA_PERMANENT_ENDORSEMENTAUTHSET,
            )
            | bit(!p.lockout_auth.is_empty(), c::TPMA_PERMANENT_LOCKOUTAUTHSET)
            | bit(p.disable_clear, c::TPMA_PERMANENT_DISABLECLEAR)
            // maxTries 0 is a lockout too (Part 3 25.3).
            | bit(self.in_lockout(), c::TPMA_PERMANENT_INLOCKOUT)
            | c::TPMA_PERMANENT_TPMGENERATEDEPS;
        let startup = pw.map_or(0, |w| {
            (w.st.ph_enable as u32)
                | (w.st.sh_enable as u32) << 1
                | (w.st.eh_enable as u32) << 2
                | (w.st.ph_enable_nv as u32) << 3
                | (w.was_orderly as u32) << 31
        });
        let loaded_sessions = pw.map_or(0, |w| w.sessions.count()) as u32;
        let active_sessions = pw.map_or(0, |w| w.sessions.active()) as u32;
        let loaded_objects = pw.map_or(0, |w| w.objects.count()) as u32;
        let persistent = p.persistent.0.len() as u32;
        let nv_indices = p.nv.indices.0.len() as u32;
        let nv_counters =
            p.nv.0
                .indices
                .0
                .iter()
                .filter(|i| i.public.nt() == nv::nt::COUNTER)
                .count() as u32;
        // A new counter needs a free counter slot and a free index slot.
        let counters_avail =
            (nv::MAX_NV_COUNTERS as u32 - nv_counters).min(nv::MAX_NV_INDICES as u32 - nv_indices);
        vec![
            (c::PT_FAMILY_INDICATOR, chars(b"2.0\0")),
            (c::PT_LEVEL, 0),
            (c::PT_REVISION, SPEC_REVISION),
            (c::PT_DAY_OF_YEAR, SPEC_DAY_OF_YEAR),
            (c::PT_YEAR, SPEC_YEAR),
            // Not a registered TCG vendor: the ID says what this is rather than borrowing one.
            (c::PT_MANUFACTURER, chars(b"VTPM")),
            (c::PT_VENDOR_STRING_1, chars(b"vtpm")),
            (c::PT_VENDOR_STRING_2, chars(b" rs ")),
            (c::PT_VENDOR_STRING_3, 0),
            (c::PT_VENDOR_STRING_4, 0),
            (c::PT_VENDOR_TPM_TYPE, 1),
            (c::PT_FIRMWARE_VERSION_1, fw1),
            (c::PT_FIRMWARE_VERSION_2, fw2),
            (c::PT_INPUT_BUFFER, MAX_BUFFER as u32),
            (c::PT_HR_TRANSIENT_MIN, MAX_OBJECTS as u32),
            (c::PT_HR_PERSISTENT_MIN, MAX_PERSISTENT as u32),
            (c::PT_HR_LOADED_MIN, MAX_LOADED as u32),
            (c::PT_ACTIVE_SESSIONS_MAX, MAX_ACTIVE as u32),
            (c::PT_PCR_COUNT, PCR_COUNT as u32),
            (c::PT_PCR_SELECT_MIN, PCR_SELECT_SIZE as u32),
            (
                c::PT_CONTEXT_GAP_MAX,
                super::context::CONTEXT_GAP_MAX as u32,
            ),
            (c::PT_NV_COUNTERS_MAX, nv::MAX_NV_COUNTERS as u32),
            (c::PT_NV_INDEX_MAX, nv::NV_INDEX_MAX as u32),
            // TPMA_MEMORY: sharedNV | objectCopiedToRam.
            (c::PT_MEMORY, 0x2 | 0x4),
            (c::PT_CLOCK_UPDATE, CLOCK_UPDATE_MS as u32),
            (c::PT_CONTEXT_HASH, c::ALG_SHA512 as u32),
            (c::PT_CONTEXT_SYM, c::ALG_AES as u32),
            (c::PT_CONTEXT_SYM_SIZE, 256),
            (c::PT_ORDERLY_COUNT, nv::MAX_ORDERLY_COUNT as u32),
            (c::PT_MAX_COMMAND_SIZE, 4096),
            (c::PT_MAX_RESPONSE_SIZE, 4096),
            (c::PT_MAX_DIGEST, MAX_DIGEST as u32),
            (c::PT_MAX_OBJECT_CONTEXT, super::context::MAX_OBJECT_CONTEXT),
            (
                c::PT_MAX_SESSION_CONTEXT,
                super::context::MAX_SESSION_CONTEXT,
            ),
            (c::PT_PS_FAMILY_INDICATOR, 1),
            (c::PT_PS_LEVEL, 0),
            (c::PT_PS_REVISION, 0),
            (c::PT_PS_DAY_OF_YEAR, 0),
            (c::PT_PS_YEAR, 0),
            (c::PT_SPLIT_MAX, 0),
            (c::PT_TOTAL_COMMANDS, ncmd),
            (c::PT_LIBRARY_COMMANDS, ncmd),
            (c::PT_VENDOR_COMMANDS, 0),
            (c::PT_NV_BUFFER_MAX, nv::NV_BUFFER_MAX as u32),
            (c::PT_MODES, 0),
            (c::PT_MAX_CAP_BUFFER, MAX_CAP_BUFFER as u32),
            (c::PT_PERMANENT, permanent),
            (c::PT_STARTUP_CLEAR, startup),
            (c::PT_HR_NV_INDEX, nv_indices),
            (c::PT_HR_LOADED, loaded_sessions),
            (c::PT_HR_LOADED_AVAIL, MAX_LOADED as u32 - loaded_sessions),
            (c::PT_HR_ACTIVE, active_sessions),
            (c::PT_HR_ACTIVE_AVAIL, MAX_ACTIVE as u32 - active_sessions),
            (
                c::PT_HR_TRANSIENT_AVAIL,
                MAX_OBJECTS as u32 - loaded_objects,
            ),
            (c::PT_HR_PERSISTENT, persistent),
            (
                c::PT_HR_PERSISTENT_AVAIL,
                MAX_PERSISTENT as u32 - persistent,
            ),
            (c::PT_NV_COUNTERS, nv_counters),
            (c::PT_NV_COUNTERS_AVAIL, counters_avail),
            (c::PT_ALGORITHM_SET, p.algorithm_set.0),
            (c::PT_LOADED_CURVES, tpm_crypto::Curve::ALL.len() as u32),
            (c::PT_LOCKOUT_COUNTER, p.failed_tries),
            (c::PT_MAX_AUTH_FAIL, p.max_tries),
            (c::PT_LOCKOUT_INTERVAL, p.recovery_time),
            (c::PT_LOCKOUT_RECOVERY, p.lockout_recovery),
            (c::PT_NV_WRITE_RECOVERY, 0),
            (c::PT_AUDIT_COUNTER_0, 0),
            (c::PT_AUDIT_COUNTER_1, 0),
        ]
    }

    /// Handles of one handle type, ascending.
    fn handles_of(&self, ht: u32) -> Option<Vec<u32>> {
        let pw = self.pw.as_ref();
        Some(match ht {
            c::HT_PCR => (0..PCR_COUNT as u32).collect(),
            c::HT_NV_INDEX => {
                let mut v: Vec<u32> = self
                    .perm
                    .nv
                    .0
                    .indices
                    .0
                    .iter()
                    .map(|i| i.public.nv_index)
                    .collect();
                v.sort_unstable();
                v
            }
            c::HT_PERSISTENT => {
                let mut v: Vec<u32> = self.perm.persistent.0.iter().map(|p| p.handle).collect();
                v.sort_unstable();
                v
            }
            // TPM_HT_LOADED_SESSION (0x02): loaded sessions of both kinds;
            // TPM_HT_SAVED_SESSION (0x03): sessions whose context is saved.
            c::HT_HMAC_SESSION | c::HT_POLICY_SESSION => {
                let mut v: Vec<u32> = pw
                    .map(|w| {
                        if ht == c::HT_HMAC_SESSION {
                            w.sessions.loaded.0.iter().map(|s| s.handle).collect()
                        } else {
                            w.sessions.saved.0.iter().map(|s| s.handle).collect()
                        }
                    })
                    .unwrap_or_default();
                v.sort_unstable();
                v
            }
            c::HT_TRANSIENT => pw.map(|w| w.objects.handles()).unwrap_or_default(),
            c::HT_PERMANENT => vec![
                c::RH_OWNER,
                c::RH_NULL,
                c::RS_PW,
                c::RH_LOCKOUT,
                c::RH_ENDORSEMENT,
                c::RH_PLATFORM,
                c::RH_PLATFORM_NV,
            ],
            _ => return None,
        })
    }
}

/// Take up to `count` items (and at most `cap` by buffer size) of those at or after `from`.
fn page<T: Clone>(items: &[(u32, T)], from: u32, count: u32, cap: usize) -> (bool, Vec<T>) {
    let rest: Vec<&(u32, T)> = items.iter().filter(|(k, _)| *k >= from).collect();
    let n = (count as usize).min(cap);
    (
        rest.len() > n,
        rest.iter().take(n).map(|(_, v)| v.clone()).collect(),
    )
}

/// TPM2_GetCapability.
pub fn get_capability(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    let p = GetCapabilityIn::parse(&mut ctx.params)?;
    let (from, count) = (p.property, p.count);
    let (more, data) = match p.capability {
        c::CAP_ALGS => {
            let items: Vec<(u32, AlgProperty)> = ALGORITHMS
                .iter()
                .map(|a| {
                    (
                        a.alg as u32,
                        AlgProperty {
                            alg: a.alg,
                            attributes: a.attributes,
                        },
                    )
                })
                .collect();
            let (more, v) = page(&items, from, count, (MAX_CAP_BUFFER - 8) / 6);
            (more, CapabilityData::Algs(List(v)))
        }
        c::CAP_HANDLES => {
            let ht = from >> 24;
            let handles = tpm.handles_of(ht).ok_or(Rc(c::RC_HANDLE).param(2))?;
            // Session handles are paged by slot index: a saved HMAC session keeps
            // its 0x02 handle but is listed under TPM_HT_SAVED_SESSION (0x03).
            let by_slot = matches!(ht, c::HT_HMAC_SESSION | c::HT_POLICY_SESSION);
            let key = |h: u32| if by_slot { h & c::HR_HANDLE_MASK } else { h };
            let mut items: Vec<(u32, u32)> = handles.iter().map(|&h| (key(h), h)).collect();
            items.sort_unstable();
            let (more, v) = page(&items, key(from), count, (MAX_CAP_BUFFER - 8) / 4);
            (more, CapabilityData::Handles(List(v)))
        }
        c::CAP_COMMANDS => {
            let items: Vec<(u32, u32)> =
                COMMANDS.iter().map(|d| (d.code, d.attributes())).collect();
            let (more, v) = page(&items, from, count, (MAX_CAP_BUFFER - 8) / 4);
            (more, CapabilityData::Commands(List(v)))
        }
        c::CAP_PP_COMMANDS => {
            let items: Vec<(u32, u32)> = tpm.pp_list().into_iter().map(|cc| (cc, cc)).collect();
            let (more, v) = page(&items, from, count, (MAX_CAP_BUFFER - 8) / 4);
            (more, CapabilityData::PpCommands(List(v)))
        }
        c::CAP_AUDIT_COMMANDS => (false, CapabilityData::AuditCommands(List(Vec::new()))),
        c::CAP_PCRS => {
            let alloc = tpm.powered()?.pcrs.allocation();
            debug_assert!(alloc.0.len() <= HASH_COUNT);
            (false, CapabilityData::Pcrs(alloc))
        }
        c::CAP_TPM_PROPERTIES => {
            // The lockout counter is reported with the healing due by now.
            tpm.da_heal();
            let items: Vec<(u32, TaggedProperty)> = tpm
                .properties()
                .into_iter()
                .map(|(k, v)| {
                    (
                        k,
                        TaggedProperty {
                            property: k,
                            value: v,
                        },
                    )
                })
                .collect();
            let (more, v) = page(&items, from, count, (MAX_CAP_BUFFER - 8) / 8);
            (more, CapabilityData::TpmProperties(List(v)))
        }
        c::CAP_PCR_PROPERTIES => {
            let items: Vec<(u32, TaggedPcrSelect)> = pcr::properties()
                .into_iter()
                .map(|(tag, m)| {
                    (
                        tag,
                        TaggedPcrSelect {
                            tag,
                            select: Buffer8(pcr::mask_bytes(m)),
                        },
                    )
                })
                .collect();
            let (more, v) = page(&items, from, count, (MAX_CAP_BUFFER - 8) / 8);
            (more, CapabilityData::PcrProperties(List(v)))
        }
        c::CAP_ECC_CURVES => {
            let mut items: Vec<(u32, u16)> = tpm_crypto::Curve::ALL
                .iter()
                .map(|c| (c.to_tpm() as u32, c.to_tpm()))
                .collect();
            items.sort_unstable();
            let (more, v) = page(&items, from, count, (MAX_CAP_BUFFER - 8) / 2);
            (more, CapabilityData::EccCurves(List(v)))
        }
        c::CAP_AUTH_POLICIES => {
            let items: Vec<(u32, TaggedPolicy)> = [
                c::RH_OWNER,
                c::RH_LOCKOUT,
                c::RH_ENDORSEMENT,
                c::RH_PLATFORM,
            ]
            .into_iter()
            .map(|h| {
                (
                    h,
                    TaggedPolicy {
                        handle: h,
                        policy: tpm.entity_policy(h),
                    },
                )
            })
            .collect();
            let (more, v) = page(&items, from, count, 14);
            (more, CapabilityData::AuthPolicies(List(v)))
        }
        CAP_ACT => {
            let mut out = Vec::new();
            false.marshal(&mut out);
            CAP_ACT.marshal(&mut out);
            0u32.marshal(&mut out);
            return Ok(Response::params(out));
        }
        _ => return Err(Rc(c::RC_VALUE).param(1)),
    };
    let mut out = Vec::new();
    more.marshal(&mut out);
    data.marshal(&mut out);
    Ok(Response::params(out))
}
