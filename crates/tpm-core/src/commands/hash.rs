//! Hash/HMAC/event sequences and TPM2_Hash (Part 3 chapters 15 and 17);
//! HMAC_Start and TPM2_HMAC are in `symmetric`.

use crate::constants as c;
use crate::crypto::{digest, hmac, Hasher};
use crate::dispatch::Ctx;
use crate::engine::objects::{Object, Sequence};
use crate::engine::{Response, Tpm};
use crate::marshal::Buffer;
use crate::rc::{err, Rc, TpmResult};
use crate::state::pcr::EXTEND;
use crate::types::{
    AlgHash, AlgHashOrNull, Auth, Digest, MaxBuffer, TaggedHash, Ticket, HASH_ALGS,
};
use crate::{tpm_interface, tpm_params, tpm_response};

/// TPM_GENERATED_VALUE as it starts an attestation: data starting with it
/// gets no hash-check ticket, so a restricted key cannot sign a forgery.
const GENERATED: [u8; 4] = c::GENERATED_VALUE.to_be_bytes();

tpm_interface! {
    /// TPMI_RH_HIERARCHY+: a hierarchy for a ticket, or NULL.
    pub struct HierarchyOrNull(u32), error = c::RC_VALUE,
    accept = |h| matches!(h, c::RH_OWNER | c::RH_ENDORSEMENT | c::RH_PLATFORM | c::RH_NULL)
}

tpm_params! {
    /// TPM2_Hash parameters.
    pub struct HashIn { pub data: MaxBuffer, pub hash_alg: AlgHash, pub hierarchy: HierarchyOrNull }
}

tpm_response! {
    /// TPM2_Hash and TPM2_SequenceComplete response.
    pub struct HashOut { pub out_hash: Digest, pub validation: Ticket }
}

tpm_params! {
    /// TPM2_HashSequenceStart parameters.
    pub struct SequenceStartIn { pub auth: Auth, pub hash_alg: AlgHashOrNull }
}

tpm_params! {
    /// TPM2_SequenceUpdate parameters.
    pub struct UpdateIn { pub buffer: MaxBuffer }
}

tpm_params! {
    /// TPM2_SequenceComplete parameters.
    pub struct CompleteIn { pub buffer: MaxBuffer, pub hierarchy: HierarchyOrNull }
}

tpm_params! {
    /// TPM2_EventSequenceComplete parameters.
    pub struct EventCompleteIn { pub buffer: MaxBuffer }
}

/// The hash of every ticket's HMAC (TPM_PT_CONTEXT_HASH).
pub const TICKET_HASH: u16 = c::ALG_SHA512;

impl Tpm {
    /// The proof value of `hierarchy`, which keys its tickets.
    pub(crate) fn proof(&self, hierarchy: u32) -> Option<Vec<u8>> {
        match hierarchy {
            c::RH_OWNER => Some(self.perm.sh_proof.0.clone()),
            c::RH_ENDORSEMENT => Some(self.perm.eh_proof.0.clone()),
            c::RH_PLATFORM => Some(self.perm.ph_proof.0.clone()),
            c::RH_NULL => self.pw.as_ref().map(|p| p.null_proof.0.clone()),
            _ => None,
        }
    }

    /// The HMAC of a ticket: tag || parts under the proof of `hierarchy`, with
    /// the context integrity hash (TPM_PT_CONTEXT_HASH, SHA-512) whatever the
    /// ticket is about, as libtpms does (its tickets are all 64 octets).
    pub(crate) fn ticket_hmac(&self, tag: u16, hierarchy: u32, parts: &[&[u8]]) -> Vec<u8> {
        let proof = self.proof(hierarchy).unwrap_or_default();
        let mut all: Vec<&[u8]> = Vec::with_capacity(parts.len() + 1);
        let tag = tag.to_be_bytes();
        all.push(&tag);
        all.extend_from_slice(parts);
        hmac(TICKET_HASH, &proof, &all)
    }

    /// A TPMT_TK_HASHCHECK for `d` (a NULL ticket when `hierarchy` is NULL or none is due).
    fn hash_ticket(&self, hierarchy: u32, d: &[u8], due: bool) -> Ticket {
        match self
            .proof(hierarchy)
            .filter(|_| due && hierarchy != c::RH_NULL)
        {
            Some(_) => Ticket {
                tag: c::ST_HASHCHECK,
                hierarchy,
                digest: Buffer(self.ticket_hmac(c::ST_HASHCHECK, hierarchy, &[d])),
            },
            None => Ticket {
                tag: c::ST_HASHCHECK,
                hierarchy: c::RH_NULL,
                digest: Buffer(Vec::new()),
            },
        }
    }

    fn sequence(&mut self, h: u32) -> TpmResult<&mut Sequence> {
        match self.powered()?.objects.get_mut(h) {
            Some(Object::Sequence(s)) => Ok(s),
            Some(Object::Key(_)) => Err(Rc(c::RC_MODE).handle(1)),
            None => Err(Rc(c::RC_HANDLE).handle(1)),
        }
    }
}

/// A ticket's hierarchy must be enabled (TPM_RC_HIERARCHY on parameter `param`).
fn check_hierarchy(tpm: &Tpm, h: u32, param: u32) -> TpmResult<()> {
    if tpm.hierarchy_enabled(h) {
        Ok(())
    } else {
        Err(Rc(c::RC_HIERARCHY).param(param))
    }
}

/// TPM2_Hash.
pub fn hash(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    let p = HashIn::parse(&mut ctx.params)?;
    check_hierarchy(tpm, p.hierarchy.0, 3)?;
    let d = digest(p.hash_alg.0, &[p.data.as_slice()]);
    let due = !p.data.as_slice().starts_with(&GENERATED);
    let validation = tpm.hash_ticket(p.hierarchy.0, &d, due);
    Ok(Response::of(&HashOut {
        out_hash: Buffer(d),
        validation,
    }))
}

/// TPM2_HashSequenceStart: a hash sequence, or an event sequence for TPM_ALG_NULL.
pub fn hash_sequence_start(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    let p = SequenceStartIn::parse(&mut ctx.params)?;
    let event = p.hash_alg.0 == c::ALG_NULL;
    let algs: Vec<u16> = if event {
        HASH_ALGS.to_vec()
    } else {
        vec![p.hash_alg.0]
    };
    let hashers = algs
        .into_iter()
        .filter_map(|a| Hasher::new(a).map(|h| (a, h)))
        .collect();
    let seq = Sequence {
        auth: p.auth,
        hashers,
        hmac: None,
        event,
        started: false,
        ticket_ok: true,
    };
    let handle = tpm.powered()?.objects.insert(Object::Sequence(seq))?;
    Ok(Response {
        handle: Some(handle),
        params: Vec::new(),
    })
}

fn absorb(seq: &mut Sequence, data: &[u8]) {
    if !seq.started && !data.is_empty() {
        seq.started = true;
        seq.ticket_ok = !data.starts_with(&GENERATED);
    }
    for (_, h) in seq.hashers.iter_mut() {
        h.update(data);
    }
    if let Some(m) = seq.hmac.as_mut() {
        m.update(data);
    }
}

/// TPM2_SequenceUpdate.
pub fn sequence_update(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    let p = UpdateIn::parse(&mut ctx.params)?;
    let seq = tpm.sequence(ctx.handles[0])?;
    absorb(seq, p.buffer.as_slice());
    Ok(Response::default())
}

/// TPM2_SequenceComplete: the digest and a ticket (the HMAC and a NULL ticket
/// for an HMAC sequence); the sequence is flushed.
pub fn sequence_complete(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    let p = CompleteIn::parse(&mut ctx.params)?;
    let h = ctx.handles[0];
    if tpm.sequence(h)?.event {
        return Err(Rc(c::RC_MODE).handle(1));
    }
    check_hierarchy(tpm, p.hierarchy.0, 2)?;
    let Some(Object::Sequence(mut seq)) = tpm.powered()?.objects.remove(h) else {
        return Err(Rc(c::RC_HANDLE).handle(1));
    };
    absorb(&mut seq, p.buffer.as_slice());
    if let Some(m) = seq.hmac {
        // An HMAC is no digest a ticket could vouch for.
        return Ok(Response::of(&HashOut {
            out_hash: Buffer(m.finish()),
            validation: Ticket {
                tag: c::ST_HASHCHECK,
                hierarchy: c::RH_NULL,
                digest: Buffer(Vec::new()),
            },
        }));
    }
    let Some((_, hasher)) = seq.hashers.pop() else {
        return err(c::RC_FAILURE);
    };
    let d = hasher.finish();
    let validation = tpm.hash_ticket(p.hierarchy.0, &d, seq.ticket_ok);
    Ok(Response::of(&HashOut {
        out_hash: Buffer(d),
        validation,
    }))
}

/// TPM2_EventSequenceComplete: digests in every implemented hash, extended into the PCR.
pub fn event_sequence_complete(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    let p = EventCompleteIn::parse(&mut ctx.params)?;
    let (pcr, h) = (ctx.handles[0], ctx.handles[1]);
    if !tpm
        .sequence(h)
        .map_err(|e| {
            if e == Rc(c::RC_HANDLE).handle(1) {
                Rc(c::RC_HANDLE).handle(2)
            } else {
                e
            }
        })?
        .event
    {
        return Err(Rc(c::RC_MODE).handle(2));
    }
    if pcr != c::RH_NULL
        && !crate::state::pcr::in_mask(EXTEND[(ctx.locality as usize).min(4)], pcr as usize)
    {
        return err(c::RC_LOCALITY);
    }
    let Some(Object::Sequence(mut seq)) = tpm.powered()?.objects.remove(h) else {
        return Err(Rc(c::RC_HANDLE).handle(2));
    };
    absorb(&mut seq, p.buffer.as_slice());
    let digests: Vec<TaggedHash> = seq
        .hashers
        .into_iter()
        .map(|(alg, h)| TaggedHash {
            alg,
            digest: h.finish(),
        })
        .collect();
    super::pcr::extend_and_report(tpm, pcr, digests)
}
