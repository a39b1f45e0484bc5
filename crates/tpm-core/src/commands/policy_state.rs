//! Policy conditions on the TPM's state (Part 3 23.7, 23.9, 23.10):
//! PolicyPCR (PCR values, and no PCR change until the authorization),
//! PolicyNV (an NV index's contents) and PolicyCounterTimer (TPMS_TIME_INFO).

use crate::constants as c;
use crate::crypto::digest;
use crate::dispatch::Ctx;
use crate::engine::{Response, Tpm};
use crate::marshal::Marshal;
use crate::rc::{err, Rc, TpmResult};
use crate::state::nv::NvIndex;
use crate::tpm_params;
use crate::types::{Digest, PcrSelectionList};

tpm_params! {
    /// TPM2_PolicyPCR parameters.
    pub struct PolicyPcrIn { pub pcr_digest: Digest, pub pcrs: PcrSelectionList }
}

tpm_params! {
    /// TPM2_PolicyNV parameters.
    pub struct PolicyNvIn { pub operand_b: Digest, pub offset: u16, pub operation: u16 }
}

tpm_params! {
    /// TPM2_PolicyCounterTimer parameters.
    pub struct PolicyCounterTimerIn { pub operand_b: Digest, pub offset: u16, pub operation: u16 }
}

/// The TPM_EO values (TPM_EO_EQ .. TPM_EO_BITCLEAR).
const EO_LAST: u16 = 0x000B;

/// TPM_EO `op` applied to operand A (from the TPM) and B (from the caller),
/// both big-endian and of the same length; signed comparisons in two's complement.
fn compare(op: u16, a: &[u8], b: &[u8]) -> bool {
    use std::cmp::Ordering;
    let unsigned = a.cmp(b);
    let signed = match (a.first().map(|x| x >> 7), b.first().map(|x| x >> 7)) {
        (Some(1), Some(0)) => Ordering::Less,
        (Some(0), Some(1)) => Ordering::Greater,
        _ => unsigned,
    };
    match op {
        0x0 => a == b,
        0x1 => a != b,
        0x2 => signed.is_gt(),
        0x3 => unsigned.is_gt(),
        0x4 => signed.is_lt(),
        0x5 => unsigned.is_lt(),
        0x6 => signed.is_ge(),
        0x7 => unsigned.is_ge(),
        0x8 => signed.is_le(),
        0x9 => unsigned.is_le(),
        0xA => a.iter().zip(b).all(|(x, y)| x & y == *y),
        0xB => a.iter().zip(b).all(|(x, y)| x & y == 0),
        _ => false,
    }
}

/// args = H(operandB || offset || operation) of PolicyNV and PolicyCounterTimer.
fn operand_args(alg: u16, b: &[u8], offset: u16, op: u16) -> Vec<u8> {
    digest(alg, &[b, &offset.to_be_bytes(), &op.to_be_bytes()])
}

/// TPM2_PolicyPCR: the selected PCRs have the digest `pcrDigest` (or, when it
/// is empty, whatever they hold now) and must not change before the policy
/// is used (TPM_RC_PCR_CHANGED).
pub fn policy_pcr(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    let p = PolicyPcrIn::parse(&mut ctx.params)?;
    let sh = ctx.handles[0];
    let (alg, trial) = {
        let s = tpm.policy_session(sh, 1)?;
        (s.auth_hash, s.is_trial())
    };
    let counter = tpm.powered()?.pcrs.update_counter;
    let pcr_digest = if trial && !p.pcr_digest.is_empty() {
        p.pcr_digest.0.clone()
    } else {
        let now = tpm.pcr_digest(alg, &p.pcrs)?;
        if !trial && !p.pcr_digest.is_empty() && p.pcr_digest.0 != now {
            return Err(Rc(c::RC_VALUE).param(1));
        }
        now
    };
    let s = tpm.policy_session(sh, 1)?;
    if !trial {
        if s.pcr_counter.is_some_and(|n| n != counter) {
            return err(c::RC_PCR_CHANGED);
        }
        s.pcr_counter = Some(counter);
    }
    s.policy_update(&[
        &c::CC_PolicyPCR.to_be_bytes(),
        &p.pcrs.to_bytes(),
        &pcr_digest,
    ]);
    Ok(Response::default())
}

impl Tpm {
    /// The NV index a PolicyNV or PolicyAuthorizeNV reads (handles: authHandle,
    /// nvIndex, policySession): its Name, and outside a trial the index once
    /// its read authorization and WRITTEN are checked.
    pub(crate) fn policy_index(
        &mut self,
        handles: &[u32],
    ) -> TpmResult<(Vec<u8>, Option<&NvIndex>)> {
        let (auth, h, sh) = (handles[0], handles[1], handles[2]);
        let trial = self.policy_session(sh, 3)?.is_trial();
        let idx = self.nv_present(h).map_err(|e| e.handle(2))?;
        let name = idx.public.name();
        if trial {
            return Ok((name, None));
        }
        super::nv::read_access(idx, auth, h)?;
        Ok((name, Some(idx)))
    }
}

/// TPM2_PolicyNV: the index's contents at `offset` compare to operandB as
/// `operation` says; the index is read with its own read authorization.
pub fn policy_nv(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    let p = PolicyNvIn::parse(&mut ctx.params)?;
    if p.operation > EO_LAST {
        return Err(Rc(c::RC_VALUE).param(3));
    }
    let sh = ctx.handles[2];
    let (name, idx) = tpm.policy_index(ctx.handles)?;
    if let Some(idx) = idx {
        let (offset, n) = (usize::from(p.offset), p.operand_b.len());
        if offset + n > usize::from(idx.public.data_size) {
            return Err(Rc(c::RC_NV_RANGE));
        }
        let a = idx
            .data
            .0
            .get(offset..offset + n)
            .ok_or(Rc(c::RC_NV_RANGE))?;
        if !compare(p.operation, a, p.operand_b.as_slice()) {
            return err(c::RC_POLICY);
        }
    }
    let s = tpm.policy_session(sh, 3)?;
    let args = operand_args(s.auth_hash, p.operand_b.as_slice(), p.offset, p.operation);
    s.policy_update(&[&c::CC_PolicyNV.to_be_bytes(), &args, &name]);
    Ok(Response::default())
}

/// TPM2_PolicyCounterTimer: the marshalled TPMS_TIME_INFO at `offset`
/// compares to operandB as `operation` says.
pub fn policy_counter_timer(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    let p = PolicyCounterTimerIn::parse(&mut ctx.params)?;
    if p.operation > EO_LAST {
        return Err(Rc(c::RC_VALUE).param(3));
    }
    let sh = ctx.handles[0];
    if !tpm.policy_session(sh, 1)?.is_trial() {
        let info = tpm.time_info()?.to_bytes();
        let (offset, n) = (usize::from(p.offset), p.operand_b.len());
        let a = info
            .get(offset..offset + n)
            .ok_or(Rc(c::RC_RANGE).param(2))?;
        if !compare(p.operation, a, p.operand_b.as_slice()) {
            return err(c::RC_POLICY);
        }
    }
    let s = tpm.policy_session(sh, 1)?;
    let args = operand_args(s.auth_hash, p.operand_b.as_slice(), p.offset, p.operation);
    s.policy_update(&[&c::CC_PolicyCounterTimer.to_be_bytes(), &args]);
    Ok(Response::default())
}

#[cfg(test)]
mod tests {
    use super::compare;

    #[test]
    fn comparisons() {
        let (one, minus_one, two) = ([0u8, 1], [0xFFu8, 0xFF], [0u8, 2]);
        assert!(compare(0x0, &one, &one));
        assert!(compare(0x1, &one, &two));
        assert!(compare(0x3, &minus_one, &one)); // unsigned: 0xFFFF > 1
        assert!(compare(0x4, &minus_one, &one)); // signed: -1 < 1
        assert!(compare(0x6, &two, &one) && compare(0x6, &one, &one));
        assert!(compare(0x8, &minus_one, &two));
        assert!(compare(0x9, &one, &two) && !compare(0x9, &two, &one));
        assert!(compare(0xA, &[0b1011], &[0b0011]) && !compare(0xA, &[0b1001], &[0b0011]));
        assert!(compare(0xB, &[0b1000], &[0b0011]) && !compare(0xB, &[0b1010], &[0b0011]));
        assert!(!compare(0xC, &one, &one));
    }
}
