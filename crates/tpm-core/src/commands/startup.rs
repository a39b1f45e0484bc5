//! Startup and Shutdown (Part 3 chapter 9).

use crate::constants as c;
use crate::dispatch::Ctx;
use crate::engine::objects::Objects;
use crate::engine::{Response, Tpm};
use crate::persist::BlobKind;
use crate::rc::{Rc, TpmResult};
use crate::state::pcr::SAVE;
use crate::state::permanent::NOT_ORDERLY;
use crate::state::{PcrBanks, SaveState, STATE_VERSION};
use crate::tpm_params;

tpm_params! {
    /// TPM2_Startup / TPM2_Shutdown parameters.
    pub struct SuIn { pub su: u16 }
}

fn su_type(ctx: &mut Ctx<'_>) -> TpmResult<u16> {
    let p = SuIn::parse(&mut ctx.params)?;
    if p.su != c::SU_CLEAR && p.su != c::SU_STATE {
        return Err(Rc(c::RC_VALUE).param(1));
    }
    Ok(p.su)
}

/// TPM2_Startup: TPM Reset (CLEAR after CLEAR or no orderly shutdown), TPM Restart
/// (CLEAR after STATE) or TPM Resume (STATE after STATE).
pub fn startup(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    let su = su_type(ctx)?;
    let previous = tpm.perm.orderly;
    let saved = if previous == c::SU_STATE {
        tpm.load_blob(BlobKind::SaveState)
            .ok()
            .flatten()
            .and_then(|b| crate::state::open::<SaveState>(&b).ok())
    } else {
        None
    };
    if su == c::SU_STATE && saved.is_none() {
        return Err(Rc(c::RC_VALUE).param(1));
    }
    let locality = ctx.locality;
    let allocation = tpm.perm.pcr_allocation.clone();
    let fresh_null = (tpm.random_secret(), tpm.random_secret());
    let fresh_context_key = tpm.random_secret();
    // The commit state survives TPM Restart and Resume, and is renewed by a
    // TPM Reset (or when the save state predates it).
    let commit = match &saved {
        Some(s) => tpm.commit_or_fresh(s.commit.0.clone()),
        None => crate::state::CommitState::fresh(&mut tpm.rng),
    };
    let pw = tpm.powered()?;
    pw.commit = commit;
    let keep_h_crtm = pw.hcrtm_done;
    let crtm_pcr0: Vec<(u16, Vec<u8>)> = pw
        .pcrs
        .banks
        .0
        .iter()
        .filter_map(|b| b.values.0.first().map(|v| (b.alg, v.0.clone())))
        .collect();
    let mut pcrs = PcrBanks::reset(&allocation, if locality == 3 { 3 } else { 0 });
    if keep_h_crtm {
        for b in pcrs.banks.0.iter_mut() {
            if let (Some(dst), Some((_, v))) = (
                b.values.0.first_mut(),
                crtm_pcr0.iter().find(|(a, _)| *a == b.alg),
            ) {
                dst.0.clone_from(v);
            }
        }
    }
    match (&saved, su) {
        (Some(s), c::SU_STATE) => {
            // TPM Resume: PCRs with the save attribute, stClear state and the null hierarchy come back.
            pcrs.restore(&s.pcrs, SAVE);
            pw.st = s.st_clear.clone();
            // phEnable is SET by every Startup, Resume included (the reference
            // TPM's HierarchyStartup; swtpm agrees): only the platform can
            // have disabled itself, and it boots again now.
            pw.st.ph_enable = true;
            pw.null_seed = s.null_seed.clone();
            pw.null_proof = s.null_proof.clone();
            pw.contexts = s.contexts.clone();
            pw.sessions.saved = s.saved_sessions.clone();
            pw.command_audit_digest = s.command_audit_digest.0 .0.clone();
            tpm.perm.restart_count = tpm.perm.restart_count.wrapping_add(1);
        }
        (Some(s), _) => {
            // TPM Restart: stClear state is reset, the null hierarchy and saved
            // session contexts survive.
            pw.st = Tpm::fresh_st_clear();
            pw.null_seed = s.null_seed.clone();
            pw.null_proof = s.null_proof.clone();
            pw.contexts = s.contexts.clone();
            pw.sessions.saved = s.saved_sessions.clone();
            pw.command_audit_digest = s.command_audit_digest.0 .0.clone();
            tpm.perm.restart_count = tpm.perm.restart_count.wrapping_add(1);
            // Contexts of stClear objects saved before no longer load.
            tpm.perm.clear_count.0 = tpm.perm.clear_count.0.wrapping_add(1);
        }
        (None, _) => {
            pw.st = Tpm::fresh_st_clear();
            (pw.null_seed, pw.null_proof) = fresh_null;
            // TPM Reset: every saved context becomes unloadable.
            pw.contexts = crate::state::ContextState {
                key: fresh_context_key,
                counter: 0,
            };
            pw.sessions.saved = Default::default();
            pw.command_audit_digest = Vec::new();
            tpm.perm.reset_count = tpm.perm.reset_count.wrapping_add(1);
            tpm.perm.restart_count = 0;
            tpm.perm.clear_count.0 = 0;
        }
    }
    let resume = saved.is_some() && su == c::SU_STATE;
    let reset = saved.is_none();
    crate::nv::nv_startup(tpm, resume, reset, previous != NOT_ORDERLY);
    let pw = tpm.powered()?;
    pw.pcrs = pcrs;
    // Loaded sessions and objects do not survive _TPM_Init; saved contexts may.
    pw.sessions.loaded = Default::default();
    pw.objects = Objects::default();
    pw.started = true;
    pw.hcrtm_done = false;
    pw.was_orderly = previous != NOT_ORDERLY;
    pw.clock.safe = previous != NOT_ORDERLY;
    let now = pw.clock.clock();
    tpm.perm.clock = tpm.perm.clock.max(now);
    tpm.da_startup(su == c::SU_CLEAR, previous != NOT_ORDERLY);
    tpm.perm.orderly = NOT_ORDERLY;
    tpm.perm_dirty = true;
    Ok(Response::default())
}

/// TPM2_Shutdown: STATE saves what Startup(STATE) restores; either records an orderly shutdown.
pub fn shutdown(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    let su = su_type(ctx)?;
    let pw = tpm.powered()?;
    let now = pw.clock.clock();
    if su == c::SU_STATE {
        let s = SaveState {
            version: STATE_VERSION,
            st_clear: pw.st.clone(),
            pcrs: pw.pcrs.clone(),
            null_seed: pw.null_seed.clone(),
            null_proof: pw.null_proof.clone(),
            contexts: pw.contexts.clone(),
            saved_sessions: pw.sessions.saved.clone(),
            command_audit_digest: crate::marshal::Trailing(crate::marshal::Buffer(
                pw.command_audit_digest.clone(),
            )),
            commit: crate::marshal::Trailing(pw.commit.clone()),
        };
        tpm.store_blob(BlobKind::SaveState, crate::state::seal(&s))
            .map_err(|_| Rc(c::RC_NV_UNAVAILABLE))?;
    }
    tpm.perm.orderly = su;
    tpm.perm.clock = now;
    tpm.perm_dirty = true;
    Ok(Response::default())
}
