//! The engine alone, through raw command bytes: startup, random, PCRs, sequences, state.

use tpm_core::constants as c;
use tpm_core::{MemoryStore, Tpm, TpmConfig};

fn cmd(cc: u32, body: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&c::ST_NO_SESSIONS.to_be_bytes());
    v.extend_from_slice(&((10 + body.len()) as u32).to_be_bytes());
    v.extend_from_slice(&cc.to_be_bytes());
    v.extend_from_slice(body);
    v
}

fn rc(resp: &[u8]) -> u32 {
    u32::from_be_bytes(resp[6..10].try_into().unwrap())
}

fn started() -> Tpm {
    let mut t = Tpm::new(Box::new(MemoryStore::default()), TpmConfig::default()).unwrap();
    t.power_on(false).unwrap();
    assert_eq!(
        rc(&t.execute(0, &cmd(c::CC_Startup, &0u16.to_be_bytes()))),
        0
    );
    t
}

#[test]
fn startup_is_required_first() {
    let mut t = Tpm::new(Box::new(MemoryStore::default()), TpmConfig::default()).unwrap();
    t.power_on(false).unwrap();
    assert_eq!(
        rc(&t.execute(0, &cmd(c::CC_GetRandom, &8u16.to_be_bytes()))),
        c::RC_INITIALIZE
    );
    assert_eq!(
        rc(&t.execute(0, &cmd(c::CC_Startup, &0u16.to_be_bytes()))),
        0
    );
    assert_eq!(
        rc(&t.execute(0, &cmd(c::CC_Startup, &0u16.to_be_bytes()))),
        c::RC_INITIALIZE
    );
}

#[test]
fn get_random_returns_requested_bytes() {
    let mut t = started();
    let r = t.execute(0, &cmd(c::CC_GetRandom, &16u16.to_be_bytes()));
    assert_eq!(rc(&r), 0);
    assert_eq!(u16::from_be_bytes([r[10], r[11]]), 16);
    assert_eq!(r.len(), 12 + 16);
}

#[test]
fn header_errors() {
    let mut t = started();
    assert_eq!(
        t.execute(0, &[0x80]),
        vec![0, 0xc4, 0, 0, 0, 10, 0, 0, 0, 0x1e]
    );
    let mut bad = cmd(c::CC_GetRandom, &8u16.to_be_bytes());
    bad[5] += 1;
    assert_eq!(rc(&t.execute(0, &bad)), c::RC_COMMAND_SIZE);
    assert_eq!(rc(&t.execute(0, &cmd(0x1ff, &[]))), c::RC_COMMAND_CODE);
    assert_eq!(
        rc(&t.execute(0, &cmd(c::CC_GetRandom, &[0]))),
        c::RC_INSUFFICIENT | c::RC_P | 0x100
    );
}

#[test]
fn pcr_extend_and_read_sha256_matches_manual_computation() {
    use sha2::Digest;
    let mut t = started();
    // PCR_Extend(PCR 16, PW session, sha256 digest of 32 x 0xAA)
    let mut body = Vec::new();
    body.extend_from_slice(&16u32.to_be_bytes());
    body.extend_from_slice(&9u32.to_be_bytes()); // auth size
    body.extend_from_slice(&c::RS_PW.to_be_bytes());
    body.extend_from_slice(&[0, 0, 0, 0, 0]);
    body.extend_from_slice(&1u32.to_be_bytes());
    body.extend_from_slice(&c::ALG_SHA256.to_be_bytes());
    body.extend_from_slice(&[0xAA; 32]);
    let mut ext = cmd(c::CC_PCR_Extend, &body);
    ext[0..2].copy_from_slice(&c::ST_SESSIONS.to_be_bytes());
    let r = t.execute(0, &ext);
    assert_eq!(rc(&r), 0, "{r:02x?}");
    let mut sel = Vec::new();
    sel.extend_from_slice(&1u32.to_be_bytes());
    sel.extend_from_slice(&c::ALG_SHA256.to_be_bytes());
    sel.extend_from_slice(&[3, 0, 0, 1]);
    let r = t.execute(0, &cmd(c::CC_PCR_Read, &sel));
    assert_eq!(rc(&r), 0);
    let expect = sha2::Sha256::new()
        .chain_update([0u8; 32])
        .chain_update([0xAA; 32])
        .finalize();
    assert_eq!(&r[r.len() - 32..], expect.as_slice());
}

#[test]
fn saved_sessions_are_listed_and_load_once() {
    let mut t = started();
    let mut sas = Vec::new();
    for part in [
        &c::RH_NULL.to_be_bytes()[..],
        &c::RH_NULL.to_be_bytes(),
        &16u16.to_be_bytes(),
        &[1; 16],
        &0u16.to_be_bytes(),
        &[0],
        &c::ALG_NULL.to_be_bytes(),
        &c::ALG_SHA256.to_be_bytes(),
    ] {
        sas.extend_from_slice(part);
    }
    let r = t.execute(0, &cmd(c::CC_StartAuthSession, &sas));
    assert_eq!(rc(&r), 0);
    let h = u32::from_be_bytes(r[10..14].try_into().unwrap());
    let saved = t.execute(0, &cmd(c::CC_ContextSave, &h.to_be_bytes()));
    assert_eq!(rc(&saved), 0, "{saved:02x?}");
    let caps = |t: &mut Tpm, ht: u32| {
        let body = [
            1u32.to_be_bytes(),
            (ht << 24).to_be_bytes(),
            8u32.to_be_bytes(),
        ]
        .concat();
        let r = t.execute(0, &cmd(c::CC_GetCapability, &body));
        let n = u32::from_be_bytes(r[15..19].try_into().unwrap()) as usize;
        (0..n)
            .map(|i| u32::from_be_bytes(r[19 + 4 * i..23 + 4 * i].try_into().unwrap()))
            .collect::<Vec<_>>()
    };
    assert_eq!(caps(&mut t, 3), vec![h], "listed as saved");
    assert!(caps(&mut t, 2).is_empty(), "no longer loaded");
    let context = &saved[10..];
    let load = t.execute(0, &cmd(c::CC_ContextLoad, context));
    assert_eq!(rc(&load), 0, "{load:02x?}");
    assert_eq!(caps(&mut t, 2), vec![h]);
    let again = t.execute(0, &cmd(c::CC_ContextLoad, context));
    assert_eq!(
        rc(&again),
        c::RC_HANDLE | c::RC_P | 0x100,
        "a context loads once"
    );
}

/// A resource manager (the kernel's /dev/tpmrm0) saves and flushes every
/// object after every command: hash and HMAC sequences must survive that.
#[test]
fn sequences_survive_context_save_flush_and_load() {
    use tpm_core::marshal::{Buffer, Marshal};
    let mut t = started();
    let sess = |cc: u32, h: u32, body: &[u8]| {
        let mut b = h.to_be_bytes().to_vec();
        b.extend(9u32.to_be_bytes());
        b.extend(c::RS_PW.to_be_bytes());
        b.extend([0, 0, 0, 0, 0]);
        b.extend(body);
        let mut v = cmd(cc, &b);
        v[..2].copy_from_slice(&c::ST_SESSIONS.to_be_bytes());
        v
    };
    // HashSequenceStart(auth "", SHA-256) → handle.
    let r = t.execute(0, &cmd(c::CC_HashSequenceStart, &[0, 0, 0, 0x0B]));
    assert_eq!(rc(&r), 0);
    let mut h = u32::from_be_bytes(r[10..14].try_into().unwrap());
    for part in [&b"hello, "[..], b"resource manager ", b"world"] {
        let r = t.execute(
            0,
            &sess(
                c::CC_SequenceUpdate,
                h,
                &Buffer::<1024>(part.to_vec()).to_bytes(),
            ),
        );
        assert_eq!(rc(&r), 0);
        let saved = t.execute(0, &cmd(c::CC_ContextSave, &h.to_be_bytes()));
        assert_eq!(rc(&saved), 0);
        assert_eq!(
            rc(&t.execute(0, &cmd(c::CC_FlushContext, &h.to_be_bytes()))),
            0
        );
        let r = t.execute(0, &cmd(c::CC_ContextLoad, &saved[10..]));
        assert_eq!(rc(&r), 0);
        h = u32::from_be_bytes(r[10..14].try_into().unwrap());
    }
    // SequenceComplete(empty buffer, hierarchy NULL).
    let r = t.execute(0, &sess(c::CC_SequenceComplete, h, &[0, 0, 0x40, 0, 0, 7]));
    assert_eq!(rc(&r), 0);
    use sha2::Digest;
    let want = sha2::Sha256::digest(b"hello, resource manager world");
    // parameterSize, then TPM2B_DIGEST.
    assert_eq!(&r[14..16], &[0, 32]);
    assert_eq!(&r[16..48], want.as_slice());
}
