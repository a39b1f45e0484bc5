//! Context management (Part 3 chapter 28): FlushContext, ContextSave and
//! ContextLoad of sessions and key objects.

use crate::auth::entity::is_session;
use crate::auth::session::{SavedSession, Session, MAX_LOADED};
use crate::constants as c;
use crate::crypto::{aes_cfb, ct_eq, hmac, kdfa};
use crate::dispatch::Ctx;
use crate::engine::objects::{Object, Sequence, SequenceState};
use crate::engine::{Response, Tpm};
use crate::marshal::{Buffer, Marshal, Reader, Unmarshal};
use crate::object::Loaded;
use crate::rc::{err, Rc, TpmResult};
use crate::tpm_params;

tpm_params! {
    /// TPM2_FlushContext parameters (the handle is a parameter here).
    pub struct FlushIn { pub flush_handle: u32 }
}

/// TPM2_FlushContext: a transient object or a session.
pub fn flush_context(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    let p = FlushIn::parse(&mut ctx.params)?;
    let h = p.flush_handle;
    let pw = tpm.powered()?;
    let gone = match h & c::HR_RANGE_MASK {
        c::TRANSIENT_FIRST => pw.objects.remove(h).is_some(),
        c::HMAC_SESSION_FIRST | c::POLICY_SESSION_FIRST => pw.sessions.remove(h),
        _ => return Err(Rc(c::RC_VALUE).param(1)),
    };
    if gone {
        Ok(Response::default())
    } else {
        Err(Rc(c::RC_HANDLE).param(1))
    }
}

/// Largest context blob accepted (TPM2B_CONTEXT_DATA).
const MAX_CONTEXT_DATA: usize = 4096;
/// Largest session context blob: the integrity digest (TPM2B, SHA-256) and a
/// session's wire form (handle, kind, hash, three 64-octet TPM2Bs, symmetric alg and bits).
pub const MAX_SESSION_CONTEXT: u32 = (2 + 32) + (4 + 1 + 2 + 3 * (2 + 64) + 2 + 2);
/// Largest object context blob: the integrity digest and the stored form of
/// a key (hierarchy, Qualified Name, the largest public area (RSA-3072 with a
/// SHA-512 policy) and the largest sensitive area) or of a sequence.
/// An event sequence's context (four running hashes of at most 64 + 16 + 127
/// octets of state each) is the larger of the two.
pub const MAX_OBJECT_CONTEXT: u32 = {
    let key = (2 + 32) + 4 + (2 + 66) + (2 + 480) + 1 + (2 + 330);
    let sequence = (2 + 32) + (2 + 64) + 4 + 4 * (2 + 2 + 64 + 16 + 127) + 4 + 3;
    if key > sequence {
        key
    } else {
        sequence
    }
};
/// saved_handle of an ordinary object's context, a sequence's, an stClear object's.
const OBJECT_CONTEXT: u32 = 0x8000_0000;
const SEQUENCE_CONTEXT: u32 = 0x8000_0001;
const STCLEAR_OBJECT_CONTEXT: u32 = 0x8000_0002;
/// TPM_PT_CONTEXT_GAP_MAX: how far the newest saved session may be from the oldest.
pub const CONTEXT_GAP_MAX: u64 = 0xFFFF;

crate::tpm_struct! {
    /// TPMS_CONTEXT.
    pub struct Context {
        pub sequence: u64,
        pub saved_handle: u32,
        pub hierarchy: u32,
        pub blob: crate::marshal::Buffer<MAX_CONTEXT_DATA>,
    }
}

tpm_params! {
    /// TPM2_ContextLoad parameters.
    pub struct ContextLoadIn { pub context: Context }
}

/// Encryption and integrity keys of the context with `sequence` and `handle`,
/// derived from the per-reset context key.
fn context_keys(key: &[u8], sequence: u64, handle: u32) -> (Vec<u8>, Vec<u8>) {
    let sym = kdfa(
        c::ALG_SHA256,
        key,
        b"CONTEXT",
        &sequence.to_be_bytes(),
        &handle.to_be_bytes(),
        256 + 128,
    );
    let mac = kdfa(c::ALG_SHA256, key, b"INTEGRITY", &[], &[], 256);
    (sym, mac)
}

fn integrity(mac_key: &[u8], ctx: &Context, enc: &[u8]) -> Vec<u8> {
    let (seq, h, hier) = (
        ctx.sequence.to_be_bytes(),
        ctx.saved_handle.to_be_bytes(),
        ctx.hierarchy.to_be_bytes(),
    );
    hmac(c::ALG_SHA256, mac_key, &[&seq, &h, &hier, enc])
}

/// TPM2_ContextSave: sessions (which then leave the TPM's memory but keep their
/// handle). Object contexts come with the object commands; a hash sequence's
/// running digest cannot be exported, so its context is refused (TPM_RC_TYPE).
pub fn context_save(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    ctx.params.finish()?;
    let h = ctx.handles[0];
    if !is_session(h) {
        return save_object(tpm, h);
    }
    let pw = tpm.powered()?;
    let session = pw
        .sessions
        .get(h)
        .cloned()
        .ok_or(Rc(c::RC_HANDLE).handle(1))?;
    let sequence = pw
        .contexts
        .counter
        .checked_add(1)
        .ok_or(Rc(c::RC_TOO_MANY_CONTEXTS))?;
    if let Some(oldest) = pw.sessions.saved.0.iter().map(|s| s.sequence).min() {
        if sequence - oldest > CONTEXT_GAP_MAX {
            return err(c::RC_CONTEXT_GAP);
        }
    }
    let mut context = Context {
        sequence,
        saved_handle: h,
        hierarchy: c::RH_NULL,
        blob: Buffer(Vec::new()),
    };
    let secret = context_secret(tpm, c::RH_NULL, h)?;
    seal_context(&secret, &mut context, session.to_bytes())?;
    let pw = tpm.powered()?;
    pw.contexts.counter = sequence;
    pw.sessions.loaded.0.retain(|s| s.handle != h);
    pw.sessions.saved.0.push(SavedSession {
        handle: h,
        sequence,
    });
    Ok(Response::of(&context))
}

/// The secret a context of `hierarchy` saved as `saved_handle` is protected
/// under: the per-reset context key and the hierarchy's proof, so that a
/// context of a hierarchy whose proof changed (Clear, ChangeEPS, ChangePPS) no
/// longer loads; for an stClear object also clearCount, so that its context
/// no longer loads after a TPM Restart either (Part 1, context management).
fn context_secret(
    tpm: &mut Tpm,
    hierarchy: u32,
    saved_handle: u32,
) -> TpmResult<zeroize::Zeroizing<Vec<u8>>> {
    let proof = zeroize::Zeroizing::new(tpm.proof(hierarchy).ok_or(Rc(c::RC_INITIALIZE))?);
    let clear_count = tpm.perm.clear_count.0;
    let mut secret = zeroize::Zeroizing::new(tpm.powered()?.contexts.key.0.clone());
    secret.extend_from_slice(&proof);
    if saved_handle == STCLEAR_OBJECT_CONTEXT {
        secret.extend_from_slice(&clear_count.to_be_bytes());
    }
    Ok(secret)
}

/// Encrypt `plain` into `context.blob` with its integrity digest in front.
fn seal_context(key: &[u8], context: &mut Context, plain: Vec<u8>) -> TpmResult<()> {
    let (sym, mac) = context_keys(key, context.sequence, context.saved_handle);
    let mut enc = zeroize::Zeroizing::new(plain);
    if !aes_cfb(&sym[..32], &sym[32..48], &mut enc, true) {
        return err(c::RC_FAILURE);
    }
    let tag = integrity(&mac, context, &enc);
    let mut blob = Vec::with_capacity(2 + tag.len() + enc.len());
    Buffer::<64>(tag).marshal(&mut blob);
    blob.extend_from_slice(&enc);
    context.blob = Buffer(blob);
    Ok(())
}

/// Check a context's integrity digest (framing errors first, as libtpms) and
/// decrypt it.
fn open_context(key: &[u8], context: &Context) -> TpmResult<zeroize::Zeroizing<Vec<u8>>> {
    let mut r = Reader::new(context.blob.as_slice());
    let tag = Buffer::<64>::unmarshal(&mut r)?;
    if tag.len() != 32 {
        return Err(Rc(c::RC_SIZE).param(1));
    }
    let enc = r.remaining();
    let (sym, mac) = context_keys(key, context.sequence, context.saved_handle);
    if !ct_eq(&integrity(&mac, context, enc), tag.as_slice()) {
        return Err(Rc(c::RC_INTEGRITY).param(1));
    }
    let mut plain = zeroize::Zeroizing::new(enc.to_vec());
    if !aes_cfb(&sym[..32], &sym[32..48], &mut plain, false) {
        return err(c::RC_FAILURE);
    }
    Ok(plain)
}

/// ContextSave of a key object or a sequence: it stays loaded; its context
/// can be loaded again until the next TPM Reset (contexts of stClear objects
/// are marked so that ContextLoad can tell them apart). A sequence's context
/// carries its running hash states (and its authValue), encrypted.
fn save_object(tpm: &mut Tpm, h: u32) -> TpmResult<Response> {
    let (saved_handle, hierarchy, plain) = match tpm.powered()?.objects.get(h) {
        Some(Object::Key(o)) => (
            if o.public.has(c::TPMA_OBJECT_STCLEAR) {
                STCLEAR_OBJECT_CONTEXT
            } else {
                OBJECT_CONTEXT
            },
            o.hierarchy,
            zeroize::Zeroizing::new(o.to_bytes()),
        ),
        Some(Object::Sequence(s)) => (
            SEQUENCE_CONTEXT,
            c::RH_NULL,
            zeroize::Zeroizing::new(s.to_state().to_bytes()),
        ),
        None => return Err(Rc(c::RC_HANDLE).handle(1)),
    };
    let secret = context_secret(tpm, hierarchy, saved_handle)?;
    let pw = tpm.powered()?;
    let sequence = pw
        .contexts
        .counter
        .checked_add(1)
        .ok_or(Rc(c::RC_TOO_MANY_CONTEXTS))?;
    let mut context = Context {
        sequence,
        saved_handle,
        hierarchy,
        blob: Buffer(Vec::new()),
    };
    seal_context(&secret, &mut context, plain.to_vec())?;
    pw.contexts.counter = sequence;
    Ok(Response::of(&context))
}

/// ContextLoad of an object context: into a free slot, under a new handle.
fn load_object_context(tpm: &mut Tpm, context: &Context) -> TpmResult<Response> {
    if !tpm.hierarchy_enabled(context.hierarchy) {
        return Err(Rc(c::RC_HIERARCHY).param(1));
    }
    let plain = open_context(
        &context_secret(tpm, context.hierarchy, context.saved_handle)?,
        context,
    )?;
    let damaged = || Rc(c::RC_INTEGRITY).param(1);
    let obj = if context.saved_handle == SEQUENCE_CONTEXT {
        let state = SequenceState::from_bytes(&plain).map_err(|_| damaged())?;
        Object::Sequence(Sequence::from_state(state).ok_or_else(damaged)?)
    } else {
        let obj = Loaded::from_bytes(&plain).map_err(|_| damaged())?;
        if obj.hierarchy != context.hierarchy {
            return Err(damaged());
        }
        Object::Key(Box::new(obj))
    };
    let handle = tpm.powered()?.objects.insert(obj)?;
    Ok(Response {
        handle: Some(handle),
        params: Vec::new(),
    })
}

/// TPM2_ContextLoad: a saved session comes back under its handle, once.
pub fn context_load(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    let p = ContextLoadIn::parse(&mut ctx.params)?;
    let context = p.context;
    let h = context.saved_handle;
    let saved_ok = is_session(h) || (OBJECT_CONTEXT..=STCLEAR_OBJECT_CONTEXT).contains(&h);
    if !saved_ok {
        return Err(Rc(c::RC_VALUE).param(1));
    }
    if !matches!(
        context.hierarchy,
        c::RH_OWNER | c::RH_ENDORSEMENT | c::RH_PLATFORM | c::RH_NULL
    ) {
        return Err(Rc(c::RC_VALUE).param(1));
    }
    if !is_session(h) {
        return load_object_context(tpm, &context);
    }
    // The blob's framing first, as libtpms checks it: an integrity digest of our size.
    let mut r = Reader::new(context.blob.as_slice());
    let tag = Buffer::<64>::unmarshal(&mut r)?;
    if tag.len() != 32 {
        return Err(Rc(c::RC_SIZE).param(1));
    }
    let secret = context_secret(tpm, c::RH_NULL, h)?;
    let pw = tpm.powered()?;
    // Only a session saved under this very sequence number can be loaded (no replays).
    if !is_session(h)
        || pw
            .sessions
            .saved(h)
            .is_none_or(|s| s.sequence != context.sequence)
    {
        return Err(Rc(c::RC_HANDLE).param(1));
    }
    let plain = open_context(&secret, &context)?;
    if pw.sessions.loaded.0.len() >= MAX_LOADED {
        return err(c::RC_SESSION_MEMORY);
    }
    let session = Session::from_bytes(&plain).map_err(|_| Rc(c::RC_INTEGRITY).param(1))?;
    if session.handle != h {
        return Err(Rc(c::RC_INTEGRITY).param(1));
    }
    pw.sessions.saved.0.retain(|s| s.handle != h);
    pw.sessions.loaded.0.push(session);
    Ok(Response {
        handle: Some(h),
        params: Vec::new(),
    })
}
