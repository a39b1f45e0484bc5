//! Engine-level tests of NV indices: rules that need a power cycle without
//! Shutdown, an old state blob, or a look at permanent state.

use std::sync::{Arc, Mutex};

use crate::constants as c;
use crate::marshal::Marshal;
use crate::persist::{BlobKind, MemoryStore, PersistError, Persistence};
use crate::state::nv::MAX_ORDERLY_COUNT;
use crate::{Tpm, TpmConfig};

/// A store that outlives the engine using it (a power cycle keeps NV).
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<MemoryStore>>);

impl Persistence for Shared {
    fn load(&mut self, b: BlobKind) -> Result<Option<Vec<u8>>, PersistError> {
        self.0.lock().unwrap().load(b)
    }
    fn store(&mut self, b: BlobKind, bytes: Vec<u8>) -> Result<(), PersistError> {
        self.0.lock().unwrap().store(b, bytes)
    }
    fn delete(&mut self, b: BlobKind) -> Result<(), PersistError> {
        self.0.lock().unwrap().delete(b)
    }
}

use crate::test_cmd::{b2, command};

const IDX: u32 = 0x0150_0001;

fn rc(r: &[u8]) -> u32 {
    u32::from_be_bytes(r[6..10].try_into().unwrap())
}

fn power_up(store: &Shared, su: u16) -> Tpm {
    let mut t = Tpm::new(Box::new(store.clone()), TpmConfig::default()).unwrap();
    t.power_on(false).unwrap();
    let r = t.execute(0, &command(c::CC_Startup, &[], None, &su.to_be_bytes()));
    assert_eq!(rc(&r), 0);
    t
}

fn shutdown(t: &mut Tpm, su: u16) {
    let r = t.execute(0, &command(c::CC_Shutdown, &[], None, &su.to_be_bytes()));
    assert_eq!(rc(&r), 0);
    t.power_off().unwrap();
}

/// NV_DefineSpace by `auth` (owner or platform, empty password).
fn define(t: &mut Tpm, auth: u32, index: u32, attrs: u32, size: u16, pw: &[u8]) -> u32 {
    let mut public = index.to_be_bytes().to_vec();
    public.extend_from_slice(&c::ALG_SHA256.to_be_bytes());
    public.extend_from_slice(&attrs.to_be_bytes());
    public.extend(b2(&[]));
    public.extend_from_slice(&size.to_be_bytes());
    let mut p = b2(pw);
    p.extend(b2(&public));
    rc(&t.execute(0, &command(c::CC_NV_DefineSpace, &[auth], Some(&[b""]), &p)))
}

fn increment(t: &mut Tpm, index: u32) -> u32 {
    rc(&t.execute(
        0,
        &command(c::CC_NV_Increment, &[c::RH_OWNER, index], Some(&[b""]), &[]),
    ))
}

fn write(t: &mut Tpm, auth: u32, pw: &[u8], index: u32, data: &[u8], offset: u16) -> u32 {
    let mut p = b2(data);
    p.extend_from_slice(&offset.to_be_bytes());
    rc(&t.execute(0, &command(c::CC_NV_Write, &[auth, index], Some(&[pw]), &p)))
}

/// NV_Read: the response code and the data.
fn read(t: &mut Tpm, auth: u32, pw: &[u8], index: u32, size: u16, offset: u16) -> (u32, Vec<u8>) {
    let mut p = size.to_be_bytes().to_vec();
    p.extend_from_slice(&offset.to_be_bytes());
    let r = t.execute(0, &command(c::CC_NV_Read, &[auth, index], Some(&[pw]), &p));
    let data = if rc(&r) == 0 {
        r[16..16 + size as usize].to_vec()
    } else {
        Vec::new()
    };
    (rc(&r), data)
}

fn counter_value(t: &Tpm, index: u32) -> u64 {
    t.nv_index(index).unwrap().value64()
}

const OWNER_RW: u32 = c::TPMA_NV_OWNERREAD | c::TPMA_NV_OWNERWRITE;
const COUNTER: u32 = 1 << 4;
const PIN_FAIL: u32 = 8 << 4;

#[test]
fn orderly_counter_never_goes_back_after_power_loss() {
    let store = Shared::default();
    let mut t = power_up(&store, c::SU_CLEAR);
    assert_eq!(
        define(
            &mut t,
            c::RH_OWNER,
            IDX,
            OWNER_RW | COUNTER | c::TPMA_NV_ORDERLY,
            8,
            b""
        ),
        0
    );
    for _ in 0..10 {
        assert_eq!(increment(&mut t, IDX), 0);
    }
    let reported = counter_value(&t, IDX);
    // Power lost without Shutdown: the RAM part of the counter is gone.
    drop(t);
    let t = power_up(&store, c::SU_CLEAR);
    let after = counter_value(&t, IDX);
    assert!(after >= reported, "{after} < {reported}");
    assert_eq!(after & MAX_ORDERLY_COUNT, MAX_ORDERLY_COUNT);

    // An orderly shutdown keeps the exact value.
    let mut t = t;
    assert_eq!(increment(&mut t, IDX), 0);
    let exact = counter_value(&t, IDX);
    shutdown(&mut t, c::SU_CLEAR);
    let t = power_up(&store, c::SU_CLEAR);
    assert_eq!(counter_value(&t, IDX), exact);
}

#[test]
fn a_new_counter_starts_above_every_counter_ever() {
    let store = Shared::default();
    let mut t = power_up(&store, c::SU_CLEAR);
    assert_eq!(
        define(&mut t, c::RH_OWNER, IDX, OWNER_RW | COUNTER, 8, b""),
        0
    );
    for _ in 0..5 {
        assert_eq!(increment(&mut t, IDX), 0);
    }
    let old = counter_value(&t, IDX);
    // TPM2_Clear's NV part removes the owner counter; its value is remembered.
    super::clear_owner_indices(&mut t);
    assert!(t.nv_index(IDX).is_none());
    assert_eq!(
        define(&mut t, c::RH_OWNER, IDX + 1, OWNER_RW | COUNTER, 8, b""),
        0
    );
    assert_eq!(increment(&mut t, IDX + 1), 0);
    assert!(counter_value(&t, IDX + 1) > old);
}

#[test]
fn clear_keeps_platform_indices() {
    let store = Shared::default();
    let mut t = power_up(&store, c::SU_CLEAR);
    let pp = c::TPMA_NV_PPREAD | c::TPMA_NV_PPWRITE | c::TPMA_NV_PLATFORMCREATE;
    assert_eq!(define(&mut t, c::RH_PLATFORM, IDX, pp, 16, b""), 0);
    assert_eq!(define(&mut t, c::RH_OWNER, IDX + 1, OWNER_RW, 16, b""), 0);
    super::clear_owner_indices(&mut t);
    assert!(t.nv_index(IDX).is_some());
    assert!(t.nv_index(IDX + 1).is_none());
}

#[test]
fn writes_are_durable_and_change_the_name() {
    let store = Shared::default();
    let mut t = power_up(&store, c::SU_CLEAR);
    assert_eq!(define(&mut t, c::RH_OWNER, IDX, OWNER_RW, 32, b""), 0);
    let before = t.nv_index(IDX).unwrap().public.name();
    assert_eq!(
        read(&mut t, c::RH_OWNER, b"", IDX, 4, 0).0,
        c::RC_NV_UNINITIALIZED
    );
    assert_eq!(write(&mut t, c::RH_OWNER, b"", IDX, b"abcd", 2), 0);
    assert_ne!(t.nv_index(IDX).unwrap().public.name(), before);
    // Power lost right after the answer: the write is there.
    drop(t);
    let mut t = power_up(&store, c::SU_CLEAR);
    let (code, data) = read(&mut t, c::RH_OWNER, b"", IDX, 8, 0);
    assert_eq!(code, 0);
    assert_eq!(data, b"\xff\xffabcd\xff\xff");
    assert_eq!(
        write(&mut t, c::RH_OWNER, b"", IDX, b"abcd", 30),
        c::RC_NV_RANGE
    );
    assert_eq!(
        write(&mut t, c::RH_OWNER, b"", IDX, b"", 33),
        c::RC_VALUE | c::RC_P | 0x200
    );
    assert_eq!(read(&mut t, c::RH_OWNER, b"", IDX, 8, 30).0, c::RC_NV_RANGE);
}

#[test]
fn nv_space_runs_out() {
    let store = Shared::default();
    let mut t = power_up(&store, c::SU_CLEAR);
    let mut defined = 0;
    let code = loop {
        let code = define(&mut t, c::RH_OWNER, IDX + defined, OWNER_RW, 2048, b"");
        if code != 0 {
            break code;
        }
        defined += 1;
        assert!(defined < 100);
    };
    assert_eq!(code, c::RC_NV_SPACE);
    // 64 KiB of budget: 30 indices of 2 KiB with their overhead.
    assert_eq!(defined, 30);
}

#[test]
fn pin_fail_counts_failures_and_resets_on_success() {
    let store = Shared::default();
    let mut t = power_up(&store, c::SU_CLEAR);
    let attrs = OWNER_RW | c::TPMA_NV_AUTHREAD | c::TPMA_NV_NO_DA | PIN_FAIL;
    assert_eq!(define(&mut t, c::RH_OWNER, IDX, attrs, 8, b"pin"), 0);
    // Unwritten: the authValue is not usable yet.
    assert_eq!(
        read(&mut t, IDX, b"pin", IDX, 8, 0).0,
        c::RC_AUTH_UNAVAILABLE
    );
    // pinCount 0, pinLimit 2.
    assert_eq!(
        write(&mut t, c::RH_OWNER, b"", IDX, &[0, 0, 0, 0, 0, 0, 0, 2], 0),
        0
    );
    let bad = c::RC_BAD_AUTH | c::RC_S | 0x100;
    assert_eq!(read(&mut t, IDX, b"nope", IDX, 8, 0).0, bad);
    assert_eq!(counter_value(&t, IDX) >> 32, 1);
    // A success resets the count (and the value read shows it).
    let (code, data) = read(&mut t, IDX, b"pin", IDX, 8, 0);
    assert_eq!(code, 0);
    assert_eq!(data, [0, 0, 0, 0, 0, 0, 0, 2]);
    assert_eq!(read(&mut t, IDX, b"nope", IDX, 8, 0).0, bad);
    assert_eq!(read(&mut t, IDX, b"nope", IDX, 8, 0).0, bad);
    // At the limit even the right PIN is refused, and no DA count was taken.
    assert_eq!(
        read(&mut t, IDX, b"pin", IDX, 8, 0).0,
        c::RC_AUTH_UNAVAILABLE
    );
    assert_eq!(t.perm.failed_tries, 0);
    // The failure count survived in NV.
    drop(t);
    let t = power_up(&store, c::SU_CLEAR);
    assert_eq!(counter_value(&t, IDX) >> 32, 2);
}

#[test]
fn startup_clear_releases_stclear_locks_only() {
    let store = Shared::default();
    let mut t = power_up(&store, c::SU_CLEAR);
    let stclear = OWNER_RW | c::TPMA_NV_WRITE_STCLEAR | c::TPMA_NV_READ_STCLEAR;
    let define_lock = OWNER_RW | c::TPMA_NV_WRITEDEFINE;
    assert_eq!(define(&mut t, c::RH_OWNER, IDX, stclear, 8, b""), 0);
    assert_eq!(define(&mut t, c::RH_OWNER, IDX + 1, define_lock, 8, b""), 0);
    for i in [IDX, IDX + 1] {
        assert_eq!(write(&mut t, c::RH_OWNER, b"", i, b"12345678", 0), 0);
        let r = t.execute(
            0,
            &command(c::CC_NV_WriteLock, &[c::RH_OWNER, i], Some(&[b""]), &[]),
        );
        assert_eq!(rc(&r), 0);
        assert_eq!(write(&mut t, c::RH_OWNER, b"", i, b"x", 0), c::RC_NV_LOCKED);
    }
    let r = t.execute(
        0,
        &command(c::CC_NV_ReadLock, &[c::RH_OWNER, IDX], Some(&[b""]), &[]),
    );
    assert_eq!(rc(&r), 0);
    assert_eq!(read(&mut t, c::RH_OWNER, b"", IDX, 8, 0).0, c::RC_NV_LOCKED);
    // Resume keeps the locks, Restart releases the STCLEAR ones.
    shutdown(&mut t, c::SU_STATE);
    let mut t = power_up(&store, c::SU_STATE);
    assert_eq!(read(&mut t, c::RH_OWNER, b"", IDX, 8, 0).0, c::RC_NV_LOCKED);
    shutdown(&mut t, c::SU_STATE);
    let mut t = power_up(&store, c::SU_CLEAR);
    assert_eq!(read(&mut t, c::RH_OWNER, b"", IDX, 8, 0).0, 0);
    assert_eq!(write(&mut t, c::RH_OWNER, b"", IDX, b"x", 0), 0);
    assert_eq!(
        write(&mut t, c::RH_OWNER, b"", IDX + 1, b"x", 0),
        c::RC_NV_LOCKED
    );
}

#[test]
fn a_format_2_permanent_blob_still_loads() {
    let store = Shared::default();
    let t = power_up(&store, c::SU_CLEAR);
    let mut old = t.perm.clone();
    drop(t);
    // Format 2 ends after the persistent objects: no DA/PP state, NV state,
    // clearCount or algorithmSet (the trailing fields added since).
    old.version = 2;
    let mut bytes = old.to_bytes();
    let trailing = old.da.to_bytes().len()
        + old.nv.to_bytes().len()
        + old.clear_count.to_bytes().len()
        + old.algorithm_set.to_bytes().len();
    bytes.truncate(bytes.len() - trailing);
    let sealed = {
        let d = crate::crypto::digest(c::ALG_SHA256, &[&bytes]);
        let mut b = bytes.clone();
        b.extend(d);
        b
    };
    store
        .0
        .lock()
        .unwrap()
        .blobs
        .insert(BlobKind::Permanent, sealed);
    let mut t = power_up(&store, c::SU_CLEAR);
    assert_eq!(t.perm.version, crate::state::STATE_VERSION);
    assert!(t.perm.nv.indices.0.is_empty());
    assert!(!t.perm.da.lockout_auth_locked && t.perm.da.pp_extra.0.is_empty());
    assert_eq!(define(&mut t, c::RH_OWNER, IDX, OWNER_RW, 8, b""), 0);
}

#[test]
fn da_counts_for_indices_without_no_da() {
    let store = Shared::default();
    let mut t = power_up(&store, c::SU_CLEAR);
    let rw = c::TPMA_NV_AUTHREAD | c::TPMA_NV_AUTHWRITE;
    assert_eq!(define(&mut t, c::RH_OWNER, IDX, rw, 8, b"pw"), 0);
    assert_eq!(
        define(
            &mut t,
            c::RH_OWNER,
            IDX + 1,
            rw | c::TPMA_NV_NO_DA,
            8,
            b"pw"
        ),
        0
    );
    let fail = c::RC_AUTH_FAIL | c::RC_S | 0x100;
    assert_eq!(write(&mut t, IDX, b"no", IDX, b"x", 0), fail);
    assert_eq!(t.perm.failed_tries, 1);
    let bad = c::RC_BAD_AUTH | c::RC_S | 0x100;
    assert_eq!(write(&mut t, IDX + 1, b"no", IDX + 1, b"x", 0), bad);
    assert_eq!(t.perm.failed_tries, 1);
    assert_eq!(write(&mut t, IDX, b"pw", IDX, b"x", 0), 0);
    // The authorizing index must be the index acted on.
    assert_eq!(
        write(&mut t, IDX, b"pw", IDX + 1, b"x", 0),
        c::RC_NV_AUTHORIZATION
    );
}

#[test]
fn disabled_hierarchies_hide_their_indices() {
    let store = Shared::default();
    let mut t = power_up(&store, c::SU_CLEAR);
    let pp = c::TPMA_NV_PPREAD | c::TPMA_NV_PPWRITE | c::TPMA_NV_PLATFORMCREATE;
    assert_eq!(define(&mut t, c::RH_PLATFORM, IDX, pp, 8, b""), 0);
    assert_eq!(define(&mut t, c::RH_OWNER, IDX + 1, OWNER_RW, 8, b""), 0);
    let public =
        |t: &mut Tpm, i: u32| rc(&t.execute(0, &command(c::CC_NV_ReadPublic, &[i], None, &[])));
    t.pw.as_mut().unwrap().st.ph_enable_nv = false;
    assert_eq!(public(&mut t, IDX), c::RC_HANDLE | 0x100);
    assert_eq!(public(&mut t, IDX + 1), 0);
    assert_eq!(
        define(&mut t, c::RH_PLATFORM, IDX + 2, pp, 8, b""),
        c::RC_HIERARCHY | 0x100
    );
    t.pw.as_mut().unwrap().st.ph_enable_nv = true;
    t.pw.as_mut().unwrap().st.sh_enable = false;
    assert_eq!(public(&mut t, IDX), 0);
    assert_eq!(public(&mut t, IDX + 1), c::RC_HANDLE | 0x100);
}

#[test]
fn without_nv_only_orderly_ram_changes_succeed() {
    let store = Shared::default();
    let mut t = power_up(&store, c::SU_CLEAR);
    assert_eq!(define(&mut t, c::RH_OWNER, IDX, OWNER_RW, 8, b""), 0);
    assert_eq!(
        define(
            &mut t,
            c::RH_OWNER,
            IDX + 1,
            OWNER_RW | c::TPMA_NV_ORDERLY,
            8,
            b""
        ),
        0
    );
    assert_eq!(write(&mut t, c::RH_OWNER, b"", IDX + 1, b"first", 0), 0);
    t.set_nv_available(false);
    assert_eq!(
        write(&mut t, c::RH_OWNER, b"", IDX, b"x", 0),
        c::RC_NV_UNAVAILABLE
    );
    assert!(!t.nv_index(IDX).unwrap().public.has(c::TPMA_NV_WRITTEN));
    assert_eq!(
        define(&mut t, c::RH_OWNER, IDX + 2, OWNER_RW, 8, b""),
        c::RC_NV_UNAVAILABLE
    );
    assert!(t.nv_index(IDX + 2).is_none());
    // An ORDERLY index already written changes in RAM only.
    assert_eq!(write(&mut t, c::RH_OWNER, b"", IDX + 1, b"again", 0), 0);
    t.set_nv_available(true);
    // ...and reaches NV at Shutdown: a TPM Restart finds it.
    shutdown(&mut t, c::SU_STATE);
    let mut t = power_up(&store, c::SU_CLEAR);
    assert_eq!(read(&mut t, c::RH_OWNER, b"", IDX + 1, 5, 0).1, b"again");
    // A TPM Reset forgets an ORDERLY index's data (WRITTEN CLEAR), not others'.
    shutdown(&mut t, c::SU_CLEAR);
    let mut t = power_up(&store, c::SU_CLEAR);
    assert_eq!(
        read(&mut t, c::RH_OWNER, b"", IDX + 1, 5, 0).0,
        c::RC_NV_UNINITIALIZED
    );
    assert_eq!(write(&mut t, c::RH_OWNER, b"", IDX, b"x", 0), 0);
    shutdown(&mut t, c::SU_CLEAR);
    let mut t = power_up(&store, c::SU_CLEAR);
    assert_eq!(read(&mut t, c::RH_OWNER, b"", IDX, 1, 0).1, b"x");
}

#[test]
fn a_pin_index_cannot_be_bound() {
    let store = Shared::default();
    let mut t = power_up(&store, c::SU_CLEAR);
    let attrs = OWNER_RW | c::TPMA_NV_AUTHREAD | c::TPMA_NV_NO_DA | PIN_FAIL;
    assert_eq!(define(&mut t, c::RH_OWNER, IDX, attrs, 8, b"pin"), 0);
    // StartAuthSession(tpmKey NULL, bind = the PIN index, nonce, no salt, HMAC, no symmetric, SHA-256).
    let mut p = b2(&[7; 16]);
    p.extend(b2(&[]));
    p.push(c::SE_HMAC);
    p.extend_from_slice(&c::ALG_NULL.to_be_bytes());
    p.extend_from_slice(&c::ALG_SHA256.to_be_bytes());
    let r = t.execute(
        0,
        &command(c::CC_StartAuthSession, &[c::RH_NULL, IDX], None, &p),
    );
    assert_eq!(rc(&r), c::RC_HANDLE | 0x200);
}

#[test]
fn rewriting_the_same_data_writes_no_nv() {
    let store = Shared::default();
    let mut t = power_up(&store, c::SU_CLEAR);
    assert_eq!(define(&mut t, c::RH_OWNER, IDX, OWNER_RW, 8, b""), 0);
    assert_eq!(write(&mut t, c::RH_OWNER, b"", IDX, b"same", 0), 0);
    // With NV unavailable an unchanged write still succeeds, a changed one not.
    t.set_nv_available(false);
    assert_eq!(write(&mut t, c::RH_OWNER, b"", IDX, b"same", 0), 0);
    assert_eq!(
        write(&mut t, c::RH_OWNER, b"", IDX, b"diff", 0),
        c::RC_NV_UNAVAILABLE
    );
}

#[test]
fn an_unsigned_certification_names_no_signer_and_hides_the_counters() {
    let store = Shared::default();
    let mut t = power_up(&store, c::SU_CLEAR);
    assert_eq!(define(&mut t, c::RH_OWNER, IDX, OWNER_RW, 16, b""), 0);
    assert_eq!(
        write(&mut t, c::RH_OWNER, b"", IDX, b"0123456789abcdef", 0),
        0
    );
    let mut p = b2(b"q");
    p.extend_from_slice(&c::ALG_NULL.to_be_bytes());
    p.extend_from_slice(&4u16.to_be_bytes());
    p.extend_from_slice(&2u16.to_be_bytes());
    let r = t.execute(
        0,
        &command(
            c::CC_NV_Certify,
            &[c::RH_NULL, c::RH_OWNER, IDX],
            Some(&[b"", b""]),
            &p,
        ),
    );
    assert_eq!(rc(&r), 0);
    // parameterSize, then TPM2B_ATTEST.
    let a = &r[16..16 + u16::from_be_bytes([r[14], r[15]]) as usize];
    assert_eq!(&a[..6], &[0xff, 0x54, 0x43, 0x47, 0x80, 0x14]);
    assert_eq!(
        &a[6..12],
        &[0, 4, 0x40, 0, 0, 7],
        "qualifiedSigner TPM_RH_NULL"
    );
    assert_eq!(&a[12..15], &[0, 1, b'q']);
    let reset = u32::from_be_bytes(a[23..27].try_into().unwrap());
    assert_ne!(reset, t.perm.reset_count, "resetCount is obfuscated");
    assert!(a.ends_with(b"\x00\x02\x00\x042345"));
    // TPMT_SIGNATURE right after it: TPM_ALG_NULL, nothing else.
    assert_eq!(&r[16 + a.len()..18 + a.len()], &[0x00, 0x10]);
}
