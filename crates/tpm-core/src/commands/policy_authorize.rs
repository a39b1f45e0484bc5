//! Authorized policies (Part 3 23.16, and PolicyAuthorizeNV of revision
//! 1.38+): the policy so far is replaced by one that names who approved it
//! — the holder of a signing key (PolicyAuthorize, through a
//! TPM2_VerifySignature ticket) or the writer of an NV index
//! (PolicyAuthorizeNV, whose contents are the approved TPMT_HA).

use super::enhanced_auth::policy_update_named;
use crate::constants as c;
use crate::crypto::{ct_eq, digest};
use crate::dispatch::Ctx;
use crate::engine::{Response, Tpm};
use crate::marshal::{Buffer, Reader, Unmarshal};
use crate::rc::{err, Rc, TpmResult};
use crate::state::nv::nt;
use crate::tpm_params;
use crate::types::{digest_size, Digest, Name, Nonce, VerifiedTicket};

tpm_params! {
    /// TPM2_PolicyAuthorize parameters.
    pub struct PolicyAuthorizeIn { pub approved_policy: Digest, pub policy_ref: Nonce, pub key_sign: Name, pub check_ticket: VerifiedTicket }
}

/// TPM2_PolicyAuthorize: the current digest is a policy that the key named
/// `keySign` approved (signed H(approvedPolicy || policyRef), verified by the
/// TPM into `checkTicket`); the digest becomes one that names the key.
pub fn policy_authorize(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    let p = PolicyAuthorizeIn::parse(&mut ctx.params)?;
    let sh = ctx.handles[0];
    let s = tpm.policy_session(sh, 1)?;
    if !s.is_trial() {
        if p.approved_policy.0 != s.policy_digest.0 {
            return Err(Rc(c::RC_VALUE).param(1));
        }
        let key = p.key_sign.as_slice();
        let alg = key
            .get(..2)
            .map_or(c::ALG_NULL, |a| u16::from_be_bytes([a[0], a[1]]));
        if digest_size(alg) == 0 {
            return Err(Rc(c::RC_HASH).param(3));
        }
        if key.len() != digest_size(alg) + 2 {
            return Err(Rc(c::RC_SIZE).param(3));
        }
        let a_hash = digest(
            alg,
            &[p.approved_policy.as_slice(), p.policy_ref.as_slice()],
        );
        let t = &p.check_ticket.0;
        let expect = tpm.ticket_hmac(c::ST_VERIFIED, t.hierarchy, &[&a_hash, key]);
        // A ticket for another digest or key is TPM_RC_VALUE, as libtpms answers.
        if t.hierarchy == c::RH_NULL || !ct_eq(&expect, t.digest.as_slice()) {
            return Err(Rc(c::RC_VALUE).param(4));
        }
    }
    let s = tpm.policy_session(sh, 1)?;
    s.policy_digest = Buffer(vec![0; s.digest_len()]);
    policy_update_named(
        s,
        c::CC_PolicyAuthorize,
        p.key_sign.as_slice(),
        p.policy_ref.as_slice(),
    );
    Ok(Response::default())
}

/// TPM2_PolicyAuthorizeNV: the current digest is the policy held (as a
/// TPMT_HA) in an ordinary NV index, read with the index's read
/// authorization; the digest becomes one that names the index.
pub fn policy_authorize_nv(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    ctx.params.finish()?;
    let sh = ctx.handles[2];
    let (name, idx) = tpm.policy_index(ctx.handles)?;
    if let Some(idx) = idx {
        if idx.public.nt() != nt::ORDINARY {
            return Err(Rc(c::RC_ATTRIBUTES).handle(2));
        }
        let data = idx.data.0.clone();
        let mut r = Reader::new(&data);
        let alg = u16::unmarshal(&mut r).unwrap_or(c::ALG_NULL);
        let approved = r.take(digest_size(alg)).unwrap_or_default();
        let s = tpm.policy_session(sh, 3)?;
        if alg != s.auth_hash || !ct_eq(approved, &s.policy_digest.0) {
            return err(c::RC_VALUE);
        }
    }
    let s = tpm.policy_session(sh, 3)?;
    s.policy_digest = Buffer(vec![0; s.digest_len()]);
    s.policy_update(&[&c::CC_PolicyAuthorizeNV.to_be_bytes(), &name]);
    Ok(Response::default())
}
