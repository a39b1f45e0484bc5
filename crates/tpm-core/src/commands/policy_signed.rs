//! Signed authorization actions (Part 3 23.2–23.5): PolicySigned,
//! PolicySecret and PolicyTicket share the parameter checks (nonceTPM,
//! expiration, cpHashA), the policy context update and the authorization
//! ticket that lets a time-limited approval be replayed by PolicyTicket.

use super::enhanced_auth::policy_update_named;
use super::signature::check_signature;
use crate::auth::session::Session;
use crate::constants as c;
use crate::crypto::{ct_eq, digest};
use crate::dispatch::Ctx;
use crate::engine::{Response, Tpm};
use crate::marshal::Buffer;
use crate::nv::is_nv_index;
use crate::rc::{Rc, TpmResult};
use crate::types::{AuthTicket, Digest, Name, Nonce, Signature, Ticket};
use crate::{tpm_params, tpm_response};

tpm_params! {
    /// TPM2_PolicySigned parameters.
    pub struct PolicySignedIn { pub nonce_tpm: Nonce, pub cp_hash_a: Digest, pub policy_ref: Nonce, pub expiration: i32, pub auth: Signature }
}

tpm_params! {
    /// TPM2_PolicySecret parameters.
    pub struct PolicySecretIn { pub nonce_tpm: Nonce, pub cp_hash_a: Digest, pub policy_ref: Nonce, pub expiration: i32 }
}

tpm_params! {
    /// TPM2_PolicyTicket parameters.
    pub struct PolicyTicketIn { pub timeout: Buffer<8>, pub cp_hash_a: Digest, pub policy_ref: Nonce, pub auth_name: Name, pub ticket: AuthTicket }
}

tpm_response! {
    /// TPM2_PolicySigned / TPM2_PolicySecret response: TPM2B_TIMEOUT and TPMT_TK_AUTH.
    pub struct PolicyAuthOut { pub timeout: Buffer<8>, pub ticket: Ticket }
}

/// Parameter numbers of nonceTPM, cpHashA and expiration (or timeout), for errors.
struct Blame {
    nonce: u32,
    cp_hash: u32,
    expiration: u32,
}

/// The absolute Time (ms) at which an authorization with `expiration` seconds
/// ends (0: it does not). Relative to the session's start when bound to its
/// nonceTPM, otherwise an absolute Time in seconds, as libtpms reads it.
fn auth_timeout(s: &Session, expiration: i32, nonce: &[u8]) -> u64 {
    if expiration == 0 {
        return 0;
    }
    let ms = u64::from(expiration.unsigned_abs()) * 1000;
    if nonce.is_empty() {
        ms
    } else {
        s.start_time + ms
    }
}

/// Part 3 23.2.2: nonceTPM must be the session's, the authorization must not
/// have timed out (nor come from another power cycle), and cpHashA must have
/// the session digest's size and agree with a cpHash already set.
fn parameter_checks(
    s: &Session,
    now: u64,
    epoch: u32,
    timeout: u64,
    cp_hash_a: &[u8],
    nonce: Option<&[u8]>,
    blame: Blame,
) -> TpmResult<()> {
    if let Some(n) = nonce.filter(|n| !n.is_empty()) {
        if !ct_eq(n, &s.nonce_tpm.0) {
            return Err(Rc(c::RC_NONCE).param(blame.nonce));
        }
    }
    if timeout != 0 && (timeout < now || s.epoch != epoch) {
        return Err(Rc(c::RC_EXPIRED).param(blame.expiration));
    }
    if !cp_hash_a.is_empty() {
        if cp_hash_a.len() != s.digest_len() {
            return Err(Rc(c::RC_SIZE).param(blame.cp_hash));
        }
        if !s.cp_hash.is_empty() && s.cp_hash.0 != cp_hash_a {
            return Err(Rc(c::RC_CPHASH));
        }
    }
    Ok(())
}

/// The timeout of a PolicySigned or PolicySecret (whose nonceTPM, cpHashA and
/// expiration are parameters 1, 2 and 4), after the checks of 23.2.2; a trial
/// session checks nothing and gets no timeout.
fn signed_or_secret_checks(
    s: &Session,
    now: u64,
    epoch: u32,
    nonce: &Nonce,
    cp_hash_a: &Digest,
    expiration: i32,
) -> TpmResult<u64> {
    if s.is_trial() {
        return Ok(0);
    }
    let timeout = auth_timeout(s, expiration, nonce.as_slice());
    let blame = Blame {
        nonce: 1,
        cp_hash: 2,
        expiration: 4,
    };
    let nonce = Some(nonce.as_slice());
    parameter_checks(s, now, epoch, timeout, cp_hash_a.as_slice(), nonce, blame)?;
    Ok(timeout)
}

/// What an authorization approves; a TPMT_TK_AUTH covers exactly this.
struct Approval<'a> {
    timeout: u64,
    cp_hash_a: &'a [u8],
    policy_ref: &'a [u8],
    name: &'a [u8],
}

/// The policy command a TPMT_TK_AUTH of `tag` stands for.
fn approving_command(tag: u16) -> u32 {
    if tag == c::ST_AUTH_SIGNED {
        c::CC_PolicySigned
    } else {
        c::CC_PolicySecret
    }
}

/// Part 3 23.2.4: bind the cpHash, lower the timeout, extend the digest
/// with the approval of a `tag` authorization.
fn context_update(s: &mut Session, tag: u16, a: &Approval<'_>) -> TpmResult<()> {
    if !a.cp_hash_a.is_empty() {
        s.bind_cp_hash(a.cp_hash_a)?;
    }
    s.limit_timeout(a.timeout);
    policy_update_named(s, approving_command(tag), a.name, a.policy_ref);
    Ok(())
}

impl Tpm {
    /// The hierarchy whose proof keys tickets about entity `h`.
    fn entity_hierarchy(&self, h: u32) -> u32 {
        match h {
            c::RH_OWNER | c::RH_ENDORSEMENT | c::RH_PLATFORM | c::RH_NULL => h,
            _ if is_nv_index(h) => match self.nv_index(h) {
                Some(i) if i.public.has(c::TPMA_NV_PLATFORMCREATE) => c::RH_PLATFORM,
                _ => c::RH_OWNER,
            },
            _ => self.object(h).map_or(c::RH_OWNER, |o| o.hierarchy),
        }
    }

    /// The HMAC of a TPMT_TK_AUTH; it covers the power cycle, since its
    /// timeout counts in Time, which restarts at power-on.
    fn auth_ticket_hmac(&self, tag: u16, hierarchy: u32, t: &Approval<'_>) -> Vec<u8> {
        let epoch = self.pw.as_ref().map_or(0, |p| p.epoch).to_be_bytes();
        self.ticket_hmac(
            tag,
            hierarchy,
            &[
                &t.timeout.to_be_bytes(),
                &epoch,
                t.cp_hash_a,
                t.policy_ref,
                t.name,
            ],
        )
    }

    /// Record a PolicySigned/PolicySecret approval (`tag`) in session `sh`
    /// and answer: a real ticket, under `hierarchy`'s proof, only for a
    /// negative expiration when `ticket` allows one.
    fn conclude(
        &mut self,
        sh: u32,
        tag: u16,
        hierarchy: u32,
        expiration: i32,
        ticket: bool,
        a: &Approval<'_>,
    ) -> TpmResult<Response> {
        context_update(self.policy_session(sh, 2)?, tag, a)?;
        let out = if expiration < 0 && ticket && a.timeout != 0 {
            PolicyAuthOut {
                timeout: Buffer(a.timeout.to_be_bytes().to_vec()),
                ticket: Ticket {
                    tag,
                    hierarchy,
                    digest: Buffer(self.auth_ticket_hmac(tag, hierarchy, a)),
                },
            }
        } else {
            PolicyAuthOut {
                timeout: Buffer(Vec::new()),
                ticket: Ticket {
                    tag,
                    hierarchy: c::RH_NULL,
                    digest: Buffer(Vec::new()),
                },
            }
        };
        Ok(Response::of(&out))
    }

    /// Time now and the power cycle.
    fn now_and_epoch(&mut self) -> TpmResult<(u64, u32)> {
        let pw = self.powered()?;
        Ok((pw.clock.time(), pw.epoch))
    }
}

/// TPM2_PolicySigned: an authority signed aHash = H(nonceTPM || expiration ||
/// cpHashA || policyRef) with the key `authObject`.
pub fn policy_signed(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    let p = PolicySignedIn::parse(&mut ctx.params)?;
    let (key_h, sh) = (ctx.handles[0], ctx.handles[1]);
    let key = tpm.object_at(key_h, 1)?.clone();
    if !key.public.has(c::TPMA_OBJECT_SIGN_ENCRYPT) {
        return Err(Rc(c::RC_TYPE).handle(1));
    }
    let (now, epoch) = tpm.now_and_epoch()?;
    let s = tpm.policy_session(sh, 2)?;
    let trial = s.is_trial();
    let timeout = signed_or_secret_checks(s, now, epoch, &p.nonce_tpm, &p.cp_hash_a, p.expiration)?;
    if !trial {
        let hash = p.auth.hash();
        if crate::types::digest_size(hash) == 0 {
            return Err(Rc(c::RC_SCHEME).param(5));
        }
        let a_hash = digest(
            hash,
            &[
                p.nonce_tpm.as_slice(),
                &p.expiration.to_be_bytes(),
                p.cp_hash_a.as_slice(),
                p.policy_ref.as_slice(),
            ],
        );
        check_signature(&key, &a_hash, &p.auth).map_err(|e| e.param(5))?;
    }
    let approval = Approval {
        timeout,
        cp_hash_a: p.cp_hash_a.as_slice(),
        policy_ref: p.policy_ref.as_slice(),
        name: &key.name,
    };
    let tag = c::ST_AUTH_SIGNED;
    tpm.conclude(sh, tag, key.hierarchy, p.expiration, !trial, &approval)
}

/// TPM2_PolicySecret: the caller proved knowledge of `authHandle`'s secret (the
/// authorization area did); bind that into the policy.
pub fn policy_secret(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    let p = PolicySecretIn::parse(&mut ctx.params)?;
    let (auth, sh) = (ctx.handles[0], ctx.handles[1]);
    let name = tpm.entity_name(auth);
    let hierarchy = tpm.entity_hierarchy(auth);
    let (now, epoch) = tpm.now_and_epoch()?;
    let s = tpm.policy_session(sh, 2)?;
    let trial = s.is_trial();
    let timeout = signed_or_secret_checks(s, now, epoch, &p.nonce_tpm, &p.cp_hash_a, p.expiration)?;
    // A PIN Pass index counts its uses: a ticket would let them be replayed.
    let pin_pass = tpm
        .nv_index(auth)
        .is_some_and(|i| i.public.nt() == crate::state::nv::nt::PIN_PASS);
    let approval = Approval {
        timeout,
        cp_hash_a: p.cp_hash_a.as_slice(),
        policy_ref: p.policy_ref.as_slice(),
        name: &name,
    };
    let ticket = !trial && !pin_pass;
    tpm.conclude(
        sh,
        c::ST_AUTH_SECRET,
        hierarchy,
        p.expiration,
        ticket,
        &approval,
    )
}

/// TPM2_PolicyTicket: replay a time-limited PolicySigned or PolicySecret
/// through the ticket it returned.
pub fn policy_ticket(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    let p = PolicyTicketIn::parse(&mut ctx.params)?;
    let sh = ctx.handles[0];
    let timeout: [u8; 8] = p
        .timeout
        .as_slice()
        .try_into()
        .map_err(|_| Rc(c::RC_SIZE).param(1))?;
    let timeout = u64::from_be_bytes(timeout);
    let (now, epoch) = tpm.now_and_epoch()?;
    let s = tpm.policy_session(sh, 1)?;
    // A ticket proves a real authorization; a trial has nothing to replay (as libtpms).
    if s.is_trial() {
        return Err(Rc(c::RC_ATTRIBUTES).handle(1));
    }
    let blame = Blame {
        nonce: 0,
        cp_hash: 2,
        expiration: 1,
    };
    parameter_checks(s, now, epoch, timeout, p.cp_hash_a.as_slice(), None, blame)?;
    let t = &p.ticket.0;
    let approval = Approval {
        timeout,
        cp_hash_a: p.cp_hash_a.as_slice(),
        policy_ref: p.policy_ref.as_slice(),
        name: p.auth_name.as_slice(),
    };
    let expect = tpm.auth_ticket_hmac(t.tag, t.hierarchy, &approval);
    if !ct_eq(&expect, t.digest.as_slice()) {
        return Err(Rc(c::RC_TICKET).param(5));
    }
    context_update(tpm.policy_session(sh, 1)?, t.tag, &approval)?;
    Ok(Response::default())
}
