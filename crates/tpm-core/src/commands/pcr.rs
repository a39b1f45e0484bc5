//! Integrity collection (Part 3 chapter 22): PCR_Extend, PCR_Event, PCR_Read,
//! PCR_Allocate, PCR_SetAuthPolicy, PCR_SetAuthValue, PCR_Reset.

use crate::constants as c;
use crate::crypto::digest;
use crate::dispatch::Ctx;
use crate::engine::{Response, Tpm};
use crate::marshal::List;
use crate::rc::{err, Rc, TpmResult};
use crate::state::pcr::{in_mask, AUTH_GROUP, EXTEND, RESET};
use crate::state::permanent::PcrPolicy;
use crate::types::{
    digest_size, AlgHashOrNull, Digest, DigestList, DigestValue, DigestValues, Event, PcrSelection,
    PcrSelectionList, TaggedHash, HASH_ALGS, PCR_COUNT,
};
use crate::{tpm_params, tpm_response};

tpm_params! {
    /// TPM2_PCR_Extend parameters.
    pub struct ExtendIn { pub digests: DigestValues }
}

tpm_params! {
    /// TPM2_PCR_Event parameters.
    pub struct EventIn { pub event_data: Event }
}

tpm_params! {
    /// TPM2_PCR_Read parameters.
    pub struct ReadIn { pub selection: PcrSelectionList }
}

tpm_response! {
    /// TPM2_PCR_Read response.
    pub struct ReadOut { pub update_counter: u32, pub selection: PcrSelectionList, pub values: DigestList }
}

tpm_params! {
    /// TPM2_PCR_Allocate parameters.
    pub struct AllocateIn { pub allocation: PcrSelectionList }
}

tpm_response! {
    /// TPM2_PCR_Allocate response.
    pub struct AllocateOut { pub success: bool, pub max_pcr: u32, pub size_needed: u32, pub size_available: u32 }
}

tpm_params! {
    /// TPM2_PCR_SetAuthPolicy parameters.
    pub struct SetAuthPolicyIn { pub auth_policy: Digest, pub hash_alg: AlgHashOrNull, pub pcr_num: u32 }
}

tpm_params! {
    /// TPM2_PCR_SetAuthValue parameters.
    pub struct SetAuthValueIn { pub auth: Digest }
}

fn locality_index(locality: u8) -> usize {
    // Extended localities (32..255) act as locality 0 for PCR rules.
    if locality <= 4 {
        locality as usize
    } else {
        0
    }
}

fn check_extend(h: u32, locality: u8) -> TpmResult<()> {
    if in_mask(EXTEND[locality_index(locality)], h as usize) {
        Ok(())
    } else {
        err(c::RC_LOCALITY)
    }
}

/// TPM2_PCR_Extend: digests of unallocated banks are ignored.
pub fn pcr_extend(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    let p = ExtendIn::parse(&mut ctx.params)?;
    let h = ctx.handles[0];
    if h == c::RH_NULL {
        return Ok(Response::default());
    }
    check_extend(h, ctx.locality)?;
    let pw = tpm.powered()?;
    for d in &p.digests.0 {
        pw.pcrs.extend(h as usize, d.0.alg, &d.0.digest);
    }
    pw.pcrs.note_change(h as usize);
    Ok(Response::default())
}

/// TPM2_PCR_Event: digests of the event in every implemented hash; extends allocated banks.
pub fn pcr_event(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    let p = EventIn::parse(&mut ctx.params)?;
    let h = ctx.handles[0];
    if h != c::RH_NULL {
        check_extend(h, ctx.locality)?;
    }
    let digests: Vec<TaggedHash> = HASH_ALGS
        .iter()
        .map(|&alg| TaggedHash {
            alg,
            digest: digest(alg, &[p.event_data.as_slice()]),
        })
        .collect();
    extend_and_report(tpm, h, digests)
}

/// Extend `digests` into PCR `pcr` (unless it is TPM_RH_NULL) and answer them as
/// TPML_DIGEST_VALUES: the tail of PCR_Event and EventSequenceComplete.
pub(crate) fn extend_and_report(
    tpm: &mut Tpm,
    pcr: u32,
    digests: Vec<TaggedHash>,
) -> TpmResult<Response> {
    if pcr != c::RH_NULL {
        let pw = tpm.powered()?;
        for d in &digests {
            pw.pcrs.extend(pcr as usize, d.alg, &d.digest);
        }
        pw.pcrs.note_change(pcr as usize);
    }
    Ok(Response::of(&DigestValues::from_vec(
        digests.into_iter().map(DigestValue).collect(),
    )))
}

/// TPM2_PCR_Read: at most eight values; the returned selection says which.
pub fn pcr_read(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    let p = ReadIn::parse(&mut ctx.params)?;
    let pw = tpm.powered()?;
    let mut values = Vec::new();
    let mut out_sel = Vec::new();
    for sel in &p.selection.0 {
        let mut bits = vec![0u8; sel.select.len()];
        for i in sel.indices().filter(|&i| i < PCR_COUNT) {
            if values.len() == 8 {
                break;
            }
            if let Some(v) = pw.pcrs.value(sel.hash, i) {
                values.push(Digest::new(v)?);
                bits[i / 8] |= 1 << (i % 8);
            }
        }
        out_sel.push(PcrSelection {
            hash: sel.hash,
            select: bits,
        });
    }
    Ok(Response::of(&ReadOut {
        update_counter: pw.pcrs.update_counter,
        selection: List(out_sel),
        values: List(values),
    }))
}

/// TPM2_PCR_Allocate: the new allocation is kept in NV and takes effect at the next Startup(CLEAR).
pub fn pcr_allocate(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    let p = AllocateIn::parse(&mut ctx.params)?;
    // Banks not named keep their current allocation; each bank may appear once.
    let mut next = tpm.perm.pcr_allocation.clone();
    for (i, sel) in p.allocation.0.iter().enumerate() {
        if p.allocation.0[..i].iter().any(|s| s.hash == sel.hash) {
            return Err(Rc(c::RC_VALUE).param(1));
        }
        match next.0.iter_mut().find(|s| s.hash == sel.hash) {
            Some(slot) => slot.select.clone_from(&sel.select),
            None => next.0.push(sel.clone()),
        }
    }
    let any = next.0.iter().any(|s| s.select.iter().any(|&b| b != 0));
    let out = AllocateOut {
        success: any,
        max_pcr: PCR_COUNT as u32,
        size_needed: 0,
        size_available: 0,
    };
    if !any {
        // At least one bank must remain allocated.
        return err(c::RC_PCR);
    }
    next.0.sort_by_key(|s| s.hash);
    tpm.perm.pcr_allocation = next;
    tpm.perm_dirty = true;
    Ok(Response::of(&out))
}

fn auth_group(pcr: u32) -> Option<usize> {
    AUTH_GROUP.iter().position(|&p| p == pcr)
}

/// TPM2_PCR_SetAuthPolicy: only PCRs of the policy group have a policy.
pub fn pcr_set_auth_policy(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    let p = SetAuthPolicyIn::parse(&mut ctx.params)?;
    if p.pcr_num as usize >= PCR_COUNT {
        return Err(Rc(c::RC_VALUE).param(3));
    }
    if p.auth_policy.len() != digest_size(p.hash_alg.0) {
        return Err(Rc(c::RC_SIZE).param(1));
    }
    let g = auth_group(p.pcr_num).ok_or(Rc(c::RC_VALUE).param(3))?;
    let policy = TaggedHash {
        alg: p.hash_alg.0,
        digest: p.auth_policy.0,
    };
    if let Some(slot) = tpm.perm.pcr_policies.0.get_mut(g) {
        *slot = PcrPolicy { policy };
    }
    tpm.perm_dirty = true;
    Ok(Response::default())
}

/// TPM2_PCR_SetAuthValue: only PCRs of the auth group have an authValue.
pub fn pcr_set_auth_value(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    let p = SetAuthValueIn::parse(&mut ctx.params)?;
    let g = auth_group(ctx.handles[0]).ok_or(Rc(c::RC_VALUE))?;
    let pw = tpm.powered()?;
    if let Some(slot) = pw.st.pcr_auth.0.get_mut(g) {
        *slot = p.auth;
    }
    Ok(Response::default())
}

/// TPM2_PCR_Reset: only PCRs resettable from the command's locality; they become zero.
pub fn pcr_reset(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    ctx.params.finish()?;
    let h = ctx.handles[0] as usize;
    if !in_mask(RESET[locality_index(ctx.locality)], h) {
        return err(c::RC_LOCALITY);
    }
    let pw = tpm.powered()?;
    pw.pcrs.set_all(h, 0);
    pw.pcrs.note_change(h);
    Ok(Response::default())
}
