//! The engine alone: what Clear, ChangeEPS, ChangePPS and HierarchyControl do
//! to loaded objects and saved contexts, Clear's counters and clock, the PP
//! list, and the DA state across a power cycle.

use tpm_core::constants as c;
use tpm_core::{MemoryStore, Tpm, TpmConfig};

const PW_SESSION: [u8; 9] = [0x40, 0, 0, 9, 0, 0, 1, 0, 0];

fn rc(resp: &[u8]) -> u32 {
    u32::from_be_bytes(resp[6..10].try_into().unwrap())
}

/// A command with `handles`, an empty password session for each of the
/// first `auths` handles, and `params`.
fn cmd(cc: u32, handles: &[u32], auths: usize, params: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    let tag = if auths > 0 {
        c::ST_SESSIONS
    } else {
        c::ST_NO_SESSIONS
    };
    v.extend_from_slice(&tag.to_be_bytes());
    v.extend_from_slice(&[0; 4]);
    v.extend_from_slice(&cc.to_be_bytes());
    for h in handles {
        v.extend_from_slice(&h.to_be_bytes());
    }
    if auths > 0 {
        v.extend_from_slice(&((9 * auths) as u32).to_be_bytes());
        for _ in 0..auths {
            v.extend_from_slice(&PW_SESSION);
        }
    }
    v.extend_from_slice(params);
    let n = v.len() as u32;
    v[2..6].copy_from_slice(&n.to_be_bytes());
    v
}

/// A command on one handle authorized with password `pw`, no parameters.
fn with_password(cc: u32, handle: u32, pw: &[u8]) -> Vec<u8> {
    let mut v = c::ST_SESSIONS.to_be_bytes().to_vec();
    v.extend_from_slice(&[0; 4]);
    v.extend_from_slice(&cc.to_be_bytes());
    v.extend_from_slice(&handle.to_be_bytes());
    v.extend_from_slice(&(9 + pw.len() as u32).to_be_bytes());
    v.extend_from_slice(&c::RS_PW.to_be_bytes());
    v.extend_from_slice(&[0, 0, 1]);
    v.extend_from_slice(&(pw.len() as u16).to_be_bytes());
    v.extend_from_slice(pw);
    let n = v.len() as u32;
    v[2..6].copy_from_slice(&n.to_be_bytes());
    v
}

fn started() -> Tpm {
    let mut t = Tpm::new(Box::new(MemoryStore::default()), TpmConfig::default()).unwrap();
    t.power_on(false).unwrap();
    assert_eq!(rc(&t.execute(0, &cmd(c::CC_Startup, &[], 0, &[0, 0]))), 0);
    t
}

/// CreatePrimary of an ECC P-256 signing key in `hierarchy`: (rc, handle).
fn primary(t: &mut Tpm, hierarchy: u32) -> (u32, u32) {
    let mut public = Vec::new();
    public.extend_from_slice(&0x0023u16.to_be_bytes()); // ECC
    public.extend_from_slice(&0x000Bu16.to_be_bytes()); // SHA-256
    public.extend_from_slice(&0x0004_0072u32.to_be_bytes()); // sign, userWithAuth, ...
    public.extend_from_slice(&[0, 0]); // authPolicy
    public.extend_from_slice(&0x0010u16.to_be_bytes()); // symmetric NULL
    public.extend_from_slice(&0x0018u16.to_be_bytes()); // ECDSA
    public.extend_from_slice(&0x000Bu16.to_be_bytes()); // with SHA-256
    public.extend_from_slice(&0x0003u16.to_be_bytes()); // NIST P-256
    public.extend_from_slice(&0x0010u16.to_be_bytes()); // kdf NULL
    public.extend_from_slice(&[0, 0, 0, 0]); // unique x, y
    let mut p = vec![0, 4, 0, 0, 0, 0]; // inSensitive: empty auth and data
    p.extend_from_slice(&(public.len() as u16).to_be_bytes());
    p.extend_from_slice(&public);
    p.extend_from_slice(&[0, 0, 0, 0, 0, 0]); // outsideInfo, creationPCR
    let r = t.execute(0, &cmd(c::CC_CreatePrimary, &[hierarchy], 1, &p));
    let h = if rc(&r) == 0 {
        u32::from_be_bytes(r[10..14].try_into().unwrap())
    } else {
        0
    };
    (rc(&r), h)
}

/// ContextSave of `h`: the TPMS_CONTEXT.
fn save(t: &mut Tpm, h: u32) -> Vec<u8> {
    let r = t.execute(0, &cmd(c::CC_ContextSave, &[h], 0, &[]));
    assert_eq!(rc(&r), 0);
    r[10..].to_vec()
}

fn load(t: &mut Tpm, context: &[u8]) -> u32 {
    let r = t.execute(0, &cmd(c::CC_ContextLoad, &[], 0, context));
    if rc(&r) == 0 {
        let h = u32::from_be_bytes(r[10..14].try_into().unwrap());
        t.execute(0, &cmd(c::CC_FlushContext, &[], 0, &h.to_be_bytes()));
    }
    rc(&r)
}

fn flush_all(t: &mut Tpm) {
    for h in 0x8000_0000..0x8000_0003u32 {
        t.execute(0, &cmd(c::CC_FlushContext, &[], 0, &h.to_be_bytes()));
    }
}

/// Saved contexts of the owner, endorsement and platform primaries.
fn three_contexts(t: &mut Tpm) -> [Vec<u8>; 3] {
    [c::RH_OWNER, c::RH_ENDORSEMENT, c::RH_PLATFORM].map(|hier| {
        let (r, h) = primary(t, hier);
        assert_eq!(r, 0);
        let ctx = save(t, h);
        flush_all(t);
        ctx
    })
}

const INTEGRITY_P1: u32 = c::RC_INTEGRITY | 0x140;

#[test]
fn clear_changeeps_changepps_make_old_contexts_unloadable() {
    let mut t = started();
    let [o, e, p] = three_contexts(&mut t);
    assert_eq!(
        rc(&t.execute(0, &cmd(c::CC_ChangeEPS, &[c::RH_PLATFORM], 1, &[]))),
        0
    );
    assert_eq!(load(&mut t, &e), INTEGRITY_P1);
    assert_eq!((load(&mut t, &o), load(&mut t, &p)), (0, 0));

    assert_eq!(
        rc(&t.execute(0, &cmd(c::CC_ChangePPS, &[c::RH_PLATFORM], 1, &[]))),
        0
    );
    assert_eq!(load(&mut t, &p), INTEGRITY_P1);
    assert_eq!(load(&mut t, &o), 0);

    let [o, e, p] = three_contexts(&mut t);
    assert_eq!(
        rc(&t.execute(0, &cmd(c::CC_Clear, &[c::RH_LOCKOUT], 1, &[]))),
        0
    );
    assert_eq!(load(&mut t, &o), INTEGRITY_P1);
    assert_eq!(load(&mut t, &e), INTEGRITY_P1);
    assert_eq!(load(&mut t, &p), 0);
}

#[test]
fn clear_flushes_loaded_objects_of_storage_and_endorsement_only() {
    let mut t = started();
    let (_, ho) = primary(&mut t, c::RH_OWNER);
    let (_, he) = primary(&mut t, c::RH_ENDORSEMENT);
    let (_, hp) = primary(&mut t, c::RH_PLATFORM);
    assert_eq!(
        rc(&t.execute(0, &cmd(c::CC_Clear, &[c::RH_PLATFORM], 1, &[]))),
        0
    );
    for h in [ho, he] {
        let r = t.execute(0, &cmd(c::CC_ReadPublic, &[h], 0, &[]));
        assert_ne!(rc(&r), 0, "{h:#x} should be flushed");
    }
    let r = t.execute(0, &cmd(c::CC_ReadPublic, &[hp], 0, &[]));
    assert_eq!(rc(&r), 0);
}

#[test]
fn clear_resets_clock_and_counters() {
    let mut t = started();
    t.execute(
        0,
        &cmd(
            c::CC_ClockSet,
            &[c::RH_OWNER],
            1,
            &1_000_000u64.to_be_bytes(),
        ),
    );
    assert_eq!(
        rc(&t.execute(0, &cmd(c::CC_Clear, &[c::RH_PLATFORM], 1, &[]))),
        0
    );
    let r = t.execute(0, &cmd(c::CC_ReadClock, &[], 0, &[]));
    assert_eq!(rc(&r), 0);
    // TPMS_TIME_INFO: time, clock, resetCount, restartCount, safe.
    let clock = u64::from_be_bytes(r[18..26].try_into().unwrap());
    let reset = u32::from_be_bytes(r[26..30].try_into().unwrap());
    let restart = u32::from_be_bytes(r[30..34].try_into().unwrap());
    assert!(clock < 1_000_000, "clock {clock}");
    assert_eq!((reset, restart, r[34]), (0, 0, 1));
}

#[test]
fn disabled_hierarchy_contexts_wait_for_reenable() {
    let mut t = started();
    let [o, _, _] = three_contexts(&mut t);
    let mut hc = c::RH_OWNER.to_be_bytes().to_vec();
    hc.push(0);
    assert_eq!(
        rc(&t.execute(0, &cmd(c::CC_HierarchyControl, &[c::RH_OWNER], 1, &hc))),
        0
    );
    assert_eq!(load(&mut t, &o), c::RC_HIERARCHY | 0x140);
    *hc.last_mut().unwrap() = 1;
    assert_eq!(
        rc(&t.execute(0, &cmd(c::CC_HierarchyControl, &[c::RH_PLATFORM], 1, &hc))),
        0
    );
    assert_eq!(load(&mut t, &o), 0);
}

#[test]
fn pp_commands_keeps_only_gateable_implemented_commands() {
    let mut t = started();
    t.set_physical_presence(true);
    let mut p = Vec::new();
    // setList: Clear, GetRandom (not gateable), NV_DefineSpace (not implemented here).
    p.extend_from_slice(&3u32.to_be_bytes());
    for cc in [c::CC_Clear, c::CC_GetRandom, c::CC_NV_DefineSpace] {
        p.extend_from_slice(&cc.to_be_bytes());
    }
    p.extend_from_slice(&0u32.to_be_bytes());
    assert_eq!(
        rc(&t.execute(0, &cmd(c::CC_PP_Commands, &[c::RH_PLATFORM], 1, &p))),
        0
    );
    let mut q = Vec::new();
    for v in [c::CAP_PP_COMMANDS, 0, 100] {
        q.extend_from_slice(&v.to_be_bytes());
    }
    let r = t.execute(0, &cmd(c::CC_GetCapability, &[], 0, &q));
    let n = u32::from_be_bytes(r[15..19].try_into().unwrap()) as usize;
    let list: Vec<u32> = (0..n)
        .map(|i| u32::from_be_bytes(r[19 + 4 * i..23 + 4 * i].try_into().unwrap()))
        .collect();
    let mut want = vec![c::CC_Clear, c::CC_PP_Commands];
    if tpm_core::dispatch::lookup(c::CC_NV_DefineSpace).is_some() {
        want.insert(1, c::CC_NV_DefineSpace);
    }
    assert_eq!(list, want);
    t.set_physical_presence(false);
    let r = t.execute(0, &cmd(c::CC_Clear, &[c::RH_PLATFORM], 1, &[]));
    assert_eq!(rc(&r), c::RC_PP | 0x900);
}

#[test]
fn da_state_survives_power_cycle_and_unorderly_shutdown_counts() {
    let mut t = started();
    // maxTries 5, recoveryTime 1000 s, lockoutRecovery 1000 s.
    let mut p = Vec::new();
    for v in [5u32, 1000, 1000] {
        p.extend_from_slice(&v.to_be_bytes());
    }
    let r = t.execute(
        0,
        &cmd(c::CC_DictionaryAttackParameters, &[c::RH_LOCKOUT], 1, &p),
    );
    assert_eq!(rc(&r), 0);
    // A wrong lockoutAuth: AUTH_FAIL, then lockoutAuth is locked.
    let bad = with_password(c::CC_DictionaryAttackLockReset, c::RH_LOCKOUT, b"x");
    let good = cmd(c::CC_DictionaryAttackLockReset, &[c::RH_LOCKOUT], 1, &[]);
    assert_eq!(rc(&t.execute(0, &bad)), c::RC_AUTH_FAIL | 0x900);
    assert_eq!(rc(&t.execute(0, &good)), c::RC_LOCKOUT);
    // Power lost without Shutdown: lockoutAuth stays locked (lockoutRecovery is
    // not 0); no DA-protected object was used, so nothing is counted.
    cycle(&mut t, false);
    assert_eq!(rc(&t.execute(0, &good)), c::RC_LOCKOUT);
    assert_eq!(lockout_counter(&mut t), 0);
    // A DA-protected key is used (successfully), then power is lost: one failure.
    let (_, key) = primary(&mut t, c::RH_OWNER);
    assert_eq!(
        rc(&t.execute(0, &cmd(c::CC_Sign, &[key], 1, &sign_params()))),
        0
    );
    cycle(&mut t, false);
    assert_eq!(lockout_counter(&mut t), 1);
    // An orderly shutdown or a cut without DA use counts nothing more.
    cycle(&mut t, true);
    cycle(&mut t, false);
    assert_eq!(lockout_counter(&mut t), 1);
}

/// Power cycle, with Shutdown(CLEAR) first when `orderly`, and Startup(CLEAR).
fn cycle(t: &mut Tpm, orderly: bool) {
    if orderly {
        assert_eq!(rc(&t.execute(0, &cmd(c::CC_Shutdown, &[], 0, &[0, 0]))), 0);
    }
    t.power_off().unwrap();
    t.power_on(false).unwrap();
    assert_eq!(rc(&t.execute(0, &cmd(c::CC_Startup, &[], 0, &[0, 0]))), 0);
}

/// TPM_PT_LOCKOUT_COUNTER.
fn lockout_counter(t: &mut Tpm) -> u32 {
    let mut q = Vec::new();
    for v in [c::CAP_TPM_PROPERTIES, c::PT_LOCKOUT_COUNTER, 1] {
        q.extend_from_slice(&v.to_be_bytes());
    }
    let r = t.execute(0, &cmd(c::CC_GetCapability, &[], 0, &q));
    assert_eq!(
        u32::from_be_bytes(r[19..23].try_into().unwrap()),
        c::PT_LOCKOUT_COUNTER
    );
    u32::from_be_bytes(r[23..27].try_into().unwrap())
}

/// TPM2_Sign parameters: a SHA-256 digest, the key's scheme, a null ticket.
fn sign_params() -> Vec<u8> {
    let mut p = vec![0, 32];
    p.extend_from_slice(&[7; 32]);
    p.extend_from_slice(&0x0010u16.to_be_bytes());
    p.extend_from_slice(&0x8024u16.to_be_bytes());
    p.extend_from_slice(&c::RH_NULL.to_be_bytes());
    p.extend_from_slice(&[0, 0]);
    p
}

#[test]
fn failures_heal_by_recovery_time_and_lockout_auth_by_lockout_recovery() {
    let mut t = started();
    // maxTries 2, recoveryTime 1 s, lockoutRecovery 1 s.
    let mut p = Vec::new();
    for v in [2u32, 1, 1] {
        p.extend_from_slice(&v.to_be_bytes());
    }
    let r = t.execute(
        0,
        &cmd(c::CC_DictionaryAttackParameters, &[c::RH_LOCKOUT], 1, &p),
    );
    assert_eq!(rc(&r), 0);
    let (_, key) = primary(&mut t, c::RH_OWNER);
    let mut bad_sign = with_password(c::CC_Sign, key, b"x");
    bad_sign.extend_from_slice(&sign_params());
    let n = bad_sign.len() as u32;
    bad_sign[2..6].copy_from_slice(&n.to_be_bytes());
    let good_sign = cmd(c::CC_Sign, &[key], 1, &sign_params());
    for _ in 0..2 {
        assert_eq!(rc(&t.execute(0, &bad_sign)), c::RC_AUTH_FAIL | 0x900);
    }
    assert_eq!(rc(&t.execute(0, &good_sign)), c::RC_LOCKOUT);
    let bad_reset = with_password(c::CC_DictionaryAttackLockReset, c::RH_LOCKOUT, b"x");
    assert_eq!(rc(&t.execute(0, &bad_reset)), c::RC_AUTH_FAIL | 0x900);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    // One failure forgiven per recoveryTime of Time: out of lockout.
    assert_eq!(lockout_counter(&mut t), 1);
    assert_eq!(rc(&t.execute(0, &good_sign)), 0);
    // lockoutAuth is usable again after lockoutRecovery.
    let good_reset = cmd(c::CC_DictionaryAttackLockReset, &[c::RH_LOCKOUT], 1, &[]);
    assert_eq!(rc(&t.execute(0, &good_reset)), 0);
    assert_eq!(lockout_counter(&mut t), 0);
}
