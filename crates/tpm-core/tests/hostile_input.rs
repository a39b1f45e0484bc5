//! Nothing on the wire may panic the engine: mutated and random commands,
//! each answered with a well-formed response, while the TPM keeps working.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tpm_core::constants as c;
use tpm_core::{MemoryStore, Tpm, TpmConfig};

fn cmd(tag: u16, cc: u32, body: &[u8]) -> Vec<u8> {
    let mut v = tag.to_be_bytes().to_vec();
    v.extend_from_slice(&((10 + body.len()) as u32).to_be_bytes());
    v.extend_from_slice(&cc.to_be_bytes());
    v.extend_from_slice(body);
    v
}

fn pw() -> Vec<u8> {
    [
        &9u32.to_be_bytes()[..],
        &c::RS_PW.to_be_bytes(),
        &[0, 0, 1, 0, 0],
    ]
    .concat()
}

/// StartAuthSession, unbound and unsalted, SHA-256, of `kind` with the
/// TPMT_SYM_DEF `symmetric`.
fn start_auth_session(kind: u8, symmetric: &[u8]) -> Vec<u8> {
    cmd(
        c::ST_NO_SESSIONS,
        c::CC_StartAuthSession,
        &[
            &c::RH_NULL.to_be_bytes()[..],
            &c::RH_NULL.to_be_bytes(),
            &16u16.to_be_bytes(),
            &[1; 16],
            &0u16.to_be_bytes(),
            &[kind],
            symmetric,
            &c::ALG_SHA256.to_be_bytes(),
        ]
        .concat(),
    )
}

/// Valid commands of every implemented kind, as mutation seeds.
fn seeds() -> Vec<Vec<u8>> {
    let sel = [
        &1u32.to_be_bytes()[..],
        &0x000Bu16.to_be_bytes(),
        &[3, 0xff, 0xff, 0xff],
    ]
    .concat();
    vec![
        cmd(c::ST_NO_SESSIONS, c::CC_GetRandom, &16u16.to_be_bytes()),
        cmd(
            c::ST_NO_SESSIONS,
            c::CC_GetCapability,
            &[
                &6u32.to_be_bytes()[..],
                &0x100u32.to_be_bytes(),
                &64u32.to_be_bytes(),
            ]
            .concat(),
        ),
        cmd(
            c::ST_NO_SESSIONS,
            c::CC_GetCapability,
            &[
                &1u32.to_be_bytes()[..],
                &0u32.to_be_bytes(),
                &64u32.to_be_bytes(),
            ]
            .concat(),
        ),
        cmd(c::ST_NO_SESSIONS, c::CC_PCR_Read, &sel),
        cmd(
            c::ST_SESSIONS,
            c::CC_PCR_Extend,
            &[
                &16u32.to_be_bytes()[..],
                &pw(),
                &1u32.to_be_bytes(),
                &0x000Bu16.to_be_bytes(),
                &[7; 32],
            ]
            .concat(),
        ),
        cmd(
            c::ST_SESSIONS,
            c::CC_PCR_Event,
            &[&23u32.to_be_bytes()[..], &pw(), &3u16.to_be_bytes(), b"abc"].concat(),
        ),
        cmd(
            c::ST_NO_SESSIONS,
            c::CC_Hash,
            &[
                &3u16.to_be_bytes()[..],
                b"abc",
                &0x000Bu16.to_be_bytes(),
                &c::RH_OWNER.to_be_bytes(),
            ]
            .concat(),
        ),
        cmd(
            c::ST_NO_SESSIONS,
            c::CC_HashSequenceStart,
            &[&0u16.to_be_bytes()[..], &0x0010u16.to_be_bytes()].concat(),
        ),
        cmd(
            c::ST_SESSIONS,
            c::CC_SequenceUpdate,
            &[
                &c::TRANSIENT_FIRST.to_be_bytes()[..],
                &pw(),
                &2u16.to_be_bytes(),
                b"xy",
            ]
            .concat(),
        ),
        // An HMAC session with AES-128-CFB parameter encryption.
        start_auth_session(
            c::SE_HMAC,
            &[
                &6u16.to_be_bytes()[..],
                &128u16.to_be_bytes(),
                &0x43u16.to_be_bytes(),
            ]
            .concat(),
        ),
        cmd(
            c::ST_NO_SESSIONS,
            c::CC_TestParms,
            &[
                &0x25u16.to_be_bytes()[..],
                &6u16.to_be_bytes(),
                &256u16.to_be_bytes(),
                &0x43u16.to_be_bytes(),
            ]
            .concat(),
        ),
        cmd(c::ST_NO_SESSIONS, c::CC_ReadClock, &[]),
        cmd(
            c::ST_SESSIONS,
            c::CC_ClockSet,
            &[
                &c::RH_OWNER.to_be_bytes()[..],
                &pw(),
                &u64::MAX.to_be_bytes()[..],
            ]
            .concat(),
        ),
        cmd(
            c::ST_SESSIONS,
            c::CC_HierarchyChangeAuth,
            &[
                &c::RH_PLATFORM.to_be_bytes()[..],
                &pw(),
                &0u16.to_be_bytes(),
            ]
            .concat(),
        ),
        cmd(
            c::ST_NO_SESSIONS,
            c::CC_FlushContext,
            &c::HMAC_SESSION_FIRST.to_be_bytes(),
        ),
        cmd(c::ST_NO_SESSIONS, c::CC_SelfTest, &[1]),
        cmd(c::ST_NO_SESSIONS, c::CC_Shutdown, &0u16.to_be_bytes()),
        // Objects: a primary storage key, a child signing key, external keys,
        // persistence, contexts, authValue changes, sealed data.
        cmd(
            c::ST_SESSIONS,
            c::CC_CreatePrimary,
            &[
                &c::RH_OWNER.to_be_bytes()[..],
                &pw(),
                &create_args(b"", &ecc_template(0x0003_0072)),
            ]
            .concat(),
        ),
        cmd(
            c::ST_SESSIONS,
            c::CC_Create,
            &[
                &c::TRANSIENT_FIRST.to_be_bytes()[..],
                &pw(),
                &create_args(b"pw", &ecc_template(0x0004_0072)),
            ]
            .concat(),
        ),
        cmd(
            c::ST_SESSIONS,
            c::CC_CreateLoaded,
            &[
                &c::TRANSIENT_FIRST.to_be_bytes()[..],
                &pw(),
                &t2b(&[0, 0, 0, 0]),
                &t2b(&ecc_template(0x0004_0072)),
            ]
            .concat(),
        ),
        cmd(
            c::ST_NO_SESSIONS,
            c::CC_LoadExternal,
            &[
                &0u16.to_be_bytes()[..],
                &t2b(&ecc_template(0x0004_0060)),
                &c::RH_NULL.to_be_bytes(),
            ]
            .concat(),
        ),
        cmd(
            c::ST_NO_SESSIONS,
            c::CC_ReadPublic,
            &c::TRANSIENT_FIRST.to_be_bytes(),
        ),
        cmd(
            c::ST_SESSIONS,
            c::CC_EvictControl,
            &[
                &c::RH_OWNER.to_be_bytes()[..],
                &c::TRANSIENT_FIRST.to_be_bytes(),
                &pw(),
                &0x8100_0001u32.to_be_bytes(),
            ]
            .concat(),
        ),
        cmd(
            c::ST_NO_SESSIONS,
            c::CC_ContextSave,
            &c::TRANSIENT_FIRST.to_be_bytes(),
        ),
        cmd(
            c::ST_SESSIONS,
            c::CC_ObjectChangeAuth,
            &[
                &(c::TRANSIENT_FIRST + 1).to_be_bytes()[..],
                &c::TRANSIENT_FIRST.to_be_bytes(),
                &pw(),
                &t2b(b"new"),
            ]
            .concat(),
        ),
        cmd(
            c::ST_SESSIONS,
            c::CC_Unseal,
            &[&(c::TRANSIENT_FIRST + 1).to_be_bytes()[..], &pw()].concat(),
        ),
        // Hierarchy, dictionary-attack and physical-presence commands.
        cmd(
            c::ST_SESSIONS,
            c::CC_HierarchyControl,
            &[
                &c::RH_PLATFORM.to_be_bytes()[..],
                &pw(),
                &c::RH_OWNER.to_be_bytes(),
                &[0],
            ]
            .concat(),
        ),
        cmd(
            c::ST_SESSIONS,
            c::CC_HierarchyControl,
            &[
                &c::RH_PLATFORM.to_be_bytes()[..],
                &pw(),
                &c::RH_OWNER.to_be_bytes(),
                &[1],
            ]
            .concat(),
        ),
        cmd(
            c::ST_SESSIONS,
            c::CC_ClearControl,
            &[&c::RH_PLATFORM.to_be_bytes()[..], &pw(), &[0]].concat(),
        ),
        cmd(
            c::ST_SESSIONS,
            c::CC_Clear,
            &[&c::RH_LOCKOUT.to_be_bytes()[..], &pw()].concat(),
        ),
        cmd(
            c::ST_SESSIONS,
            c::CC_ChangeEPS,
            &[&c::RH_PLATFORM.to_be_bytes()[..], &pw()].concat(),
        ),
        cmd(
            c::ST_SESSIONS,
            c::CC_ChangePPS,
            &[&c::RH_PLATFORM.to_be_bytes()[..], &pw()].concat(),
        ),
        cmd(
            c::ST_SESSIONS,
            c::CC_DictionaryAttackParameters,
            &[
                &c::RH_LOCKOUT.to_be_bytes()[..],
                &pw(),
                &3u32.to_be_bytes(),
                &1000u32.to_be_bytes(),
                &1000u32.to_be_bytes(),
            ]
            .concat(),
        ),
        cmd(
            c::ST_SESSIONS,
            c::CC_DictionaryAttackLockReset,
            &[&c::RH_LOCKOUT.to_be_bytes()[..], &pw()].concat(),
        ),
        cmd(
            c::ST_SESSIONS,
            c::CC_PP_Commands,
            &[
                &c::RH_PLATFORM.to_be_bytes()[..],
                &pw(),
                &1u32.to_be_bytes(),
                &c::CC_Clear.to_be_bytes(),
                &1u32.to_be_bytes(),
                &c::CC_Clear.to_be_bytes(),
            ]
            .concat(),
        ),
    ]
    .into_iter()
    .chain(nv_seeds())
    .chain(policy_seeds())
    .chain(attestation_seeds())
    .collect()
}

/// The first policy session handle (the first slot, free on a fresh TPM).
const POLICY_SESSION: u32 = 0x0300_0000;

/// A policy command on the trial session with `params`.
fn policy_cmd(cc: u32, params: &[u8]) -> Vec<u8> {
    cmd(
        c::ST_NO_SESSIONS,
        cc,
        &[&POLICY_SESSION.to_be_bytes()[..], params].concat(),
    )
}

/// A trial session, then every policy command that needs no object or NV
/// index, in an order in which they all succeed; PolicyRestart clears the
/// cpHash/nameHash/template slot between the commands that fill it.
fn policy_seeds() -> Vec<Vec<u8>> {
    let d32 = [&32u16.to_be_bytes()[..], &[7; 32]].concat();
    let name = [&34u16.to_be_bytes()[..], &0x000Bu16.to_be_bytes(), &[9; 32]].concat();
    let restart = policy_cmd(c::CC_PolicyRestart, &[]);
    vec![
        start_auth_session(c::SE_TRIAL, &c::ALG_NULL.to_be_bytes()),
        policy_cmd(
            c::CC_PolicyPCR,
            &[
                &0u16.to_be_bytes()[..],
                &1u32.to_be_bytes(),
                &0x000Bu16.to_be_bytes(),
                &[3, 0x81, 0, 0],
            ]
            .concat(),
        ),
        policy_cmd(
            c::CC_PolicyOR,
            &[&2u32.to_be_bytes()[..], &d32, &d32].concat(),
        ),
        policy_cmd(c::CC_PolicyLocality, &[0x03]),
        policy_cmd(
            c::CC_PolicyCounterTimer,
            &[
                &8u16.to_be_bytes()[..],
                &[0; 8],
                &0u16.to_be_bytes(),
                &6u16.to_be_bytes(),
            ]
            .concat(),
        ),
        policy_cmd(c::CC_PolicyCommandCode, &c::CC_Unseal.to_be_bytes()),
        policy_cmd(c::CC_PolicyPhysicalPresence, &[]),
        policy_cmd(c::CC_PolicyAuthValue, &[]),
        policy_cmd(c::CC_PolicyPassword, &[]),
        policy_cmd(c::CC_PolicyNvWritten, &[1]),
        policy_cmd(c::CC_PolicyCpHash, &d32),
        restart.clone(),
        policy_cmd(c::CC_PolicyNameHash, &d32),
        restart.clone(),
        policy_cmd(c::CC_PolicyTemplate, &d32),
        restart,
        policy_cmd(
            c::CC_PolicyDuplicationSelect,
            &[&name[..], &name, &[1]].concat(),
        ),
        policy_cmd(
            c::CC_PolicyAuthorize,
            &[
                &d32[..],
                &0u16.to_be_bytes(),
                &name,
                &c::ST_VERIFIED.to_be_bytes(),
                &c::RH_NULL.to_be_bytes(),
                &0u16.to_be_bytes(),
            ]
            .concat(),
        ),
        cmd(
            c::ST_SESSIONS,
            c::CC_PolicySecret,
            &[
                &c::RH_OWNER.to_be_bytes()[..],
                &POLICY_SESSION.to_be_bytes(),
                &pw(),
                &0u16.to_be_bytes(),
                &0u16.to_be_bytes(),
                &0u16.to_be_bytes(),
                &0i32.to_be_bytes(),
            ]
            .concat(),
        ),
        policy_cmd(c::CC_PolicyGetDigest, &[]),
        // These need a real session, a key or an index: seeds for mutation only.
        policy_cmd(
            c::CC_PolicyTicket,
            &[
                &8u16.to_be_bytes()[..],
                &[0, 0, 0, 0, 0, 0, 0x10, 0],
                &0u16.to_be_bytes(),
                &0u16.to_be_bytes(),
                &name,
                &c::ST_AUTH_SECRET.to_be_bytes(),
                &c::RH_OWNER.to_be_bytes(),
                &d32,
            ]
            .concat(),
        ),
        cmd(
            c::ST_SESSIONS,
            c::CC_PolicyNV,
            &[
                &NV.to_be_bytes()[..],
                &NV.to_be_bytes(),
                &POLICY_SESSION.to_be_bytes(),
                &pw(),
                &2u16.to_be_bytes(),
                &[0, 1],
                &0u16.to_be_bytes(),
                &3u16.to_be_bytes(),
            ]
            .concat(),
        ),
        cmd(
            c::ST_SESSIONS,
            c::CC_PolicyAuthorizeNV,
            &[
                &NV.to_be_bytes()[..],
                &NV.to_be_bytes(),
                &POLICY_SESSION.to_be_bytes(),
                &pw(),
            ]
            .concat(),
        ),
    ]
}

const NV: u32 = 0x0150_0001;
const NV_COUNTER: u32 = 0x0150_0002;
const NV_EXTEND: u32 = 0x0150_0003;

/// NV_DefineSpace by the owner (password `auth`).
fn nv_define(index: u32, attrs: u32, size: u16, auth: &[u8]) -> Vec<u8> {
    let public = [
        &index.to_be_bytes()[..],
        &0x000Bu16.to_be_bytes(),
        &attrs.to_be_bytes(),
        &t2b(&[]),
        &size.to_be_bytes(),
    ]
    .concat();
    cmd(
        c::ST_SESSIONS,
        c::CC_NV_DefineSpace,
        &[
            &c::RH_OWNER.to_be_bytes()[..],
            &pw(),
            &t2b(auth),
            &t2b(&public),
        ]
        .concat(),
    )
}

/// A command on index `index` authorized by the owner.
fn nv_cmd(cc: u32, index: u32, params: &[u8]) -> Vec<u8> {
    cmd(
        c::ST_SESSIONS,
        cc,
        &[
            &c::RH_OWNER.to_be_bytes()[..],
            &index.to_be_bytes(),
            &pw(),
            params,
        ]
        .concat(),
    )
}

/// NV seeds, in an order in which they all succeed.
fn nv_seeds() -> Vec<Vec<u8>> {
    let rw = c::TPMA_NV_OWNERREAD | c::TPMA_NV_OWNERWRITE | c::TPMA_NV_AUTHREAD;
    let locks = c::TPMA_NV_WRITE_STCLEAR | c::TPMA_NV_READ_STCLEAR;
    vec![
        nv_define(NV, rw | locks, 64, b"pw"),
        nv_define(NV_COUNTER, rw | (1 << 4) | c::TPMA_NV_ORDERLY, 8, b""),
        nv_define(NV_EXTEND, rw | (4 << 4), 32, b""),
        nv_cmd(
            c::CC_NV_Write,
            NV,
            &[&t2b(b"hello")[..], &2u16.to_be_bytes()].concat(),
        ),
        nv_cmd(
            c::CC_NV_Read,
            NV,
            &[&5u16.to_be_bytes()[..], &2u16.to_be_bytes()].concat(),
        ),
        nv_cmd(c::CC_NV_Increment, NV_COUNTER, &[]),
        nv_cmd(c::CC_NV_Extend, NV_EXTEND, &t2b(b"data")),
        cmd(c::ST_NO_SESSIONS, c::CC_NV_ReadPublic, &NV.to_be_bytes()),
        cmd(
            c::ST_NO_SESSIONS,
            c::CC_GetCapability,
            &[
                &1u32.to_be_bytes()[..],
                &NV.to_be_bytes(),
                &8u32.to_be_bytes(),
            ]
            .concat(),
        ),
        nv_cmd(c::CC_NV_ReadLock, NV, &[]),
        nv_cmd(c::CC_NV_WriteLock, NV, &[]),
        cmd(
            c::ST_SESSIONS,
            c::CC_NV_GlobalWriteLock,
            &[&c::RH_OWNER.to_be_bytes()[..], &pw()].concat(),
        ),
        nv_cmd(c::CC_NV_UndefineSpace, NV_EXTEND, &[]),
    ]
}

/// Two empty password sessions (continueSession).
fn pw2() -> Vec<u8> {
    let one = &pw()[4..];
    [&18u32.to_be_bytes()[..], one, one].concat()
}

/// The signing keys of the attestation seeds: an endorsement and an owner
/// ECDSA-SHA256 primary, the first two transient objects of a fresh TPM.
const AK: u32 = 0x8000_0000;
const OWNER_KEY: u32 = 0x8000_0001;

/// A partial certificate as tpm2_certifyX509certutil writes it (issuer,
/// validity, subject, key usage digitalSignature|keyCertSign|cRLSign).
const PARTIAL_CERT: &str = "308193302d310b3009060355040613025553310d300b060355040a0c047674706d\
    310f300d06035504030c06697373756572301e170d3236313230323136333430375a170d32373031\
    30313136333430375a302e310b3009060355040613025553310d300b060355040a0c047674706d31\
    10300e06035504030c077375626a656374a3123010300e0603551d0f0101ff040403020186";

/// Attestation seeds, in an order in which all but the last succeed (a
/// creation ticket cannot be known in advance: that seed is for mutation).
fn attestation_seeds() -> Vec<Vec<u8>> {
    let sign = 0x0005_0072; // fixedTPM|fixedParent|sensitiveDataOrigin|userWithAuth|restricted|sign
                            // ecc_template makes every restricted key a storage key: spelled out.
    let template = |attrs: u32| {
        [
            &[0x00, 0x23, 0x00, 0x0B][..],
            &attrs.to_be_bytes(),
            &[
                0, 0, 0x00, 0x10, 0x00, 0x18, 0x00, 0x0B, 0x00, 0x03, 0x00, 0x10,
            ],
            &[0, 0, 0, 0],
        ]
        .concat()
    };
    let primary = |h: u32, attrs: u32| {
        cmd(
            c::ST_SESSIONS,
            c::CC_CreatePrimary,
            &[
                &h.to_be_bytes()[..],
                &pw(),
                &create_args(b"", &template(attrs)),
            ]
            .concat(),
        )
    };
    let null = c::ALG_NULL.to_be_bytes();
    let sel = [
        &1u32.to_be_bytes()[..],
        &0x000Bu16.to_be_bytes(),
        &[3, 0xff, 0, 0x81],
    ]
    .concat();
    let partial: Vec<u8> = (0..PARTIAL_CERT.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&PARTIAL_CERT[i..i + 2], 16).unwrap())
        .collect();
    vec![
        primary(c::RH_ENDORSEMENT, sign),
        primary(c::RH_OWNER, sign & !0x0001_0000),
        cmd(
            c::ST_SESSIONS,
            c::CC_Quote,
            &[&AK.to_be_bytes()[..], &pw(), &t2b(b"nonce"), &null, &sel].concat(),
        ),
        cmd(
            c::ST_SESSIONS,
            c::CC_Certify,
            &[
                &OWNER_KEY.to_be_bytes()[..],
                &AK.to_be_bytes(),
                &pw2(),
                &t2b(b"q"),
                &null,
            ]
            .concat(),
        ),
        cmd(
            c::ST_SESSIONS,
            c::CC_GetTime,
            &[
                &c::RH_ENDORSEMENT.to_be_bytes()[..],
                &OWNER_KEY.to_be_bytes(),
                &pw2(),
                &t2b(b"q"),
                &null,
            ]
            .concat(),
        ),
        cmd(
            c::ST_SESSIONS,
            c::CC_CertifyX509,
            &[
                &OWNER_KEY.to_be_bytes()[..],
                &AK.to_be_bytes(),
                &pw2(),
                &t2b(&[]),
                &null,
                &t2b(&partial),
            ]
            .concat(),
        ),
        cmd(
            c::ST_SESSIONS,
            c::CC_CertifyCreation,
            &[
                &c::RH_NULL.to_be_bytes()[..],
                &OWNER_KEY.to_be_bytes(),
                &pw(),
                &t2b(b"q"),
                &t2b(&[7; 32]),
                &null,
                &c::ST_CREATION.to_be_bytes(),
                &c::RH_OWNER.to_be_bytes(),
                &t2b(&[9; 64]),
            ]
            .concat(),
        ),
    ]
}

fn t2b(b: &[u8]) -> Vec<u8> {
    [&(b.len() as u16).to_be_bytes()[..], b].concat()
}

/// An ECC P-256 template with `attrs`: AES-128-CFB and no scheme for a
/// storage key, ECDSA-SHA256 otherwise.
fn ecc_template(attrs: u32) -> Vec<u8> {
    let storage = attrs & 0x0001_0000 != 0;
    let parms: Vec<u8> = if storage {
        [6u16, 128, 0x43, 0x10]
            .iter()
            .flat_map(|v| v.to_be_bytes())
            .collect()
    } else {
        [0x10u16, 0x18, 0x0B]
            .iter()
            .flat_map(|v| v.to_be_bytes())
            .collect()
    };
    [
        &0x23u16.to_be_bytes()[..],
        &0x0Bu16.to_be_bytes(),
        &attrs.to_be_bytes(),
        &0u16.to_be_bytes(),
        &parms,
        &3u16.to_be_bytes(),
        &0x10u16.to_be_bytes(),
        &0u16.to_be_bytes(),
        &0u16.to_be_bytes(),
    ]
    .concat()
}

/// inSensitive (authValue `auth`, no data), inPublic, outsideInfo, creationPCR.
fn create_args(auth: &[u8], template: &[u8]) -> Vec<u8> {
    [
        &t2b(&[&t2b(auth)[..], &t2b(&[])].concat())[..],
        &t2b(template),
        &t2b(&[]),
        &0u32.to_be_bytes(),
    ]
    .concat()
}

fn well_formed(resp: &[u8]) {
    assert!(resp.len() >= 10, "short response {resp:02x?}");
    let size = u32::from_be_bytes([resp[2], resp[3], resp[4], resp[5]]) as usize;
    assert_eq!(size, resp.len(), "size field of {resp:02x?}");
    let tag = u16::from_be_bytes([resp[0], resp[1]]);
    assert!(
        matches!(tag, 0x8001 | 0x8002 | 0x00C4),
        "tag of {resp:02x?}"
    );
    let rc = u32::from_be_bytes([resp[6], resp[7], resp[8], resp[9]]);
    if rc != 0 {
        assert_eq!(resp.len(), 10, "an error response carries nothing else");
    }
}

fn mutate(rng: &mut StdRng, seed: &[u8]) -> Vec<u8> {
    let mut v = seed.to_vec();
    for _ in 0..rng.gen_range(1..4) {
        match rng.gen_range(0..5) {
            0 if !v.is_empty() => {
                let i = rng.gen_range(0..v.len());
                v[i] ^= 1 << rng.gen_range(0..8);
            }
            1 if !v.is_empty() => {
                let i = rng.gen_range(0..v.len());
                v[i] = rng.gen();
            }
            2 => v.truncate(rng.gen_range(0..=v.len())),
            3 => v.extend((0..rng.gen_range(1..8)).map(|_| rng.gen::<u8>())),
            _ => {
                // Keep the size field consistent so the damage reaches deeper layers.
                if v.len() >= 6 {
                    let n = v.len() as u32;
                    v[2..6].copy_from_slice(&n.to_be_bytes());
                }
            }
        }
    }
    v
}

/// A powered TPM on an empty store, started (TPM_SU_CLEAR).
fn started() -> Tpm {
    let mut t = Tpm::new(Box::new(MemoryStore::default()), TpmConfig::default()).unwrap();
    t.power_on(false).unwrap();
    well_formed(&t.execute(
        0,
        &cmd(c::ST_NO_SESSIONS, c::CC_Startup, &0u16.to_be_bytes()),
    ));
    t
}

/// The object seeds are real commands: unmutated, in order, they succeed (so
/// their mutations reach the object code, not just the parser).
#[test]
fn object_seeds_succeed() {
    let mut t = started();
    let rc = |r: Vec<u8>| u32::from_be_bytes([r[6], r[7], r[8], r[9]]);
    // The attestation seeds' keys would not fit beside these: tested apart.
    let theirs = attestation_seeds();
    let seeds: Vec<_> = seeds()
        .into_iter()
        .filter(|s| !theirs.contains(s))
        .collect();
    let code = |s: &Vec<u8>| u32::from_be_bytes([s[6], s[7], s[8], s[9]]);
    for s in seeds.iter().filter(|s| {
        [
            c::CC_CreatePrimary,
            c::CC_Create,
            c::CC_CreateLoaded,
            c::CC_ReadPublic,
            c::CC_EvictControl,
            c::CC_ContextSave,
        ]
        .contains(&code(s))
    }) {
        assert_eq!(rc(t.execute(0, s)), 0, "seed {:#x}", code(s));
    }
}

/// The policy seeds that need no key or index succeed in order on a trial session.
#[test]
fn policy_seeds_succeed() {
    let mut t = started();
    let seeds = policy_seeds();
    let n = seeds
        .iter()
        .position(|s| s[6..10] == c::CC_PolicyTicket.to_be_bytes())
        .unwrap();
    for s in &seeds[..n] {
        let r = t.execute(0, s);
        let code = u32::from_be_bytes([s[6], s[7], s[8], s[9]]);
        assert_eq!(
            u32::from_be_bytes([r[6], r[7], r[8], r[9]]),
            0,
            "seed {code:#x}"
        );
    }
}

/// The NV seeds succeed in order too.
#[test]
fn nv_seeds_succeed() {
    let mut t = started();
    for s in nv_seeds() {
        let r = t.execute(0, &s);
        let code = u32::from_be_bytes([s[6], s[7], s[8], s[9]]);
        assert_eq!(
            u32::from_be_bytes([r[6], r[7], r[8], r[9]]),
            0,
            "seed {code:#x}"
        );
    }
}

/// The attestation seeds succeed in order (but the last, whose creation
/// ticket is made up: TPM_RC_TICKET on it).
#[test]
fn attestation_seeds_succeed() {
    let mut t = started();
    let seeds = attestation_seeds();
    let (last, rest) = seeds.split_last().unwrap();
    let rc = |r: Vec<u8>| u32::from_be_bytes([r[6], r[7], r[8], r[9]]);
    for s in rest {
        let code = u32::from_be_bytes([s[6], s[7], s[8], s[9]]);
        assert_eq!(rc(t.execute(0, s)), 0, "seed {code:#x}");
    }
    assert_eq!(rc(t.execute(0, last)), c::RC_TICKET | c::RC_P | (4 << 8));
    // With the keys loaded, mutations reach the attestation code itself
    // (the partial certificate's DER included).
    let mut rng = StdRng::seed_from_u64(0xa77e57);
    for _ in 0..20_000 {
        let pick = rng.gen_range(2..seeds.len());
        well_formed(&t.execute(0, &mutate(&mut rng, &seeds[pick])));
    }
    let r = t.execute(
        0,
        &cmd(c::ST_NO_SESSIONS, c::CC_GetRandom, &8u16.to_be_bytes()),
    );
    assert_eq!(rc(r), 0, "still a working TPM");
}

#[test]
fn mutated_and_random_commands_never_panic() {
    let mut t = started();
    let seeds = seeds();
    let mut rng = StdRng::seed_from_u64(0x7e57);
    let mut n = 0;
    for round in 0..60_000 {
        let input = if round % 10 == 0 {
            (0..rng.gen_range(0..64)).map(|_| rng.gen::<u8>()).collect()
        } else {
            {
                let pick = rng.gen_range(0..seeds.len());
                mutate(&mut rng, &seeds[pick])
            }
        };
        let locality = [0u8, 0, 0, 1, 2, 3, 4, 32][rng.gen_range(0..8)];
        well_formed(&t.execute(locality, &input));
        n += 1;
        if round % 5_000 == 0 {
            // A TPM left shut down or out of sessions still answers; start over now and then.
            t.power_off().unwrap();
            t.power_on(false).unwrap();
            well_formed(&t.execute(
                0,
                &cmd(c::ST_NO_SESSIONS, c::CC_Startup, &0u16.to_be_bytes()),
            ));
        }
    }
    // Still a working TPM.
    let r = t.execute(
        0,
        &cmd(c::ST_NO_SESSIONS, c::CC_GetRandom, &8u16.to_be_bytes()),
    );
    assert!(r.len() == 20 || u32::from_be_bytes([r[6], r[7], r[8], r[9]]) == c::RC_INITIALIZE);
    println!("{n} hostile commands, every one answered well-formed");
}

// ---------------------------------------------------------------------------
// Commands generated for every command code the TPM lists, the pool guided
// by response codes. (Mutated state blobs: hostile_state.rs.)

/// Algorithm IDs the generated parameters draw from.
const ALGS: &[u16] = &[
    0x0001, 0x0003, 0x0004, 0x0005, 0x0006, 0x0008, 0x000A, 0x000B, 0x000C, 0x000D, 0x0010, 0x0014,
    0x0015, 0x0016, 0x0017, 0x0018, 0x0019, 0x001A, 0x001B, 0x001C, 0x0020, 0x0021, 0x0022, 0x0023,
    0x0025, 0x003F, 0x0040, 0x0041, 0x0042, 0x0043, 0x0044,
];

/// Handles the generated commands name: permanent ones, PCRs, and what the
/// seeds create (transient and persistent objects, NV indices, sessions).
const HANDLES: &[u32] = &[
    0x4000_0001,
    0x4000_0007,
    0x4000_0009,
    0x4000_000A,
    0x4000_000B,
    0x4000_000C,
    0x4000_010F,
    0x8000_0000,
    0x8000_0001,
    0x8000_0002,
    0x8100_0001,
    0x8101_0001,
    NV,
    NV_COUNTER,
    NV_EXTEND,
    0x0200_0000,
    POLICY_SESSION,
    0x0000_0000,
    0x0000_0010,
    0x0000_0017,
    0x0100_0000,
];

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One parameter token: an algorithm, a handle, a sized buffer, a number.
fn token(rng: &mut StdRng, out: &mut Vec<u8>) {
    match rng.gen_range(0..8) {
        0 => out.extend_from_slice(&ALGS[rng.gen_range(0..ALGS.len())].to_be_bytes()),
        1 => out.extend_from_slice(&HANDLES[rng.gen_range(0..HANDLES.len())].to_be_bytes()),
        2 | 3 => {
            let n = [0usize, 1, 2, 16, 20, 32, 48, 64, 128, 256, 600][rng.gen_range(0..11)];
            out.extend_from_slice(&t2b(&(0..n).map(|_| rng.gen::<u8>()).collect::<Vec<_>>()));
        }
        4 => out.extend_from_slice(&rng.gen_range(0u16..5).to_be_bytes()),
        5 => out.extend_from_slice(&rng.gen_range(0u32..3).to_be_bytes()),
        6 => out.push(rng.gen()),
        _ => out.extend_from_slice(&rng.gen::<u32>().to_be_bytes()),
    }
}

/// A command for `cc` with `handles` handles from the pool, password
/// sessions for some of them (or none), and up to 11 tokens.
fn generated(rng: &mut StdRng, cc: u32, handles: usize) -> Vec<u8> {
    let mut body: Vec<u8> = (0..handles)
        .flat_map(|_| HANDLES[rng.gen_range(0..HANDLES.len())].to_be_bytes())
        .collect();
    let sessions = handles > 0 && rng.gen_ratio(3, 4);
    if sessions {
        let one = &pw()[4..];
        let n = rng.gen_range(1..=handles.min(3));
        body.extend_from_slice(&((one.len() * n) as u32).to_be_bytes());
        (0..n).for_each(|_| body.extend_from_slice(one));
    }
    for _ in 0..rng.gen_range(0..12) {
        token(rng, &mut body);
    }
    let tag = if sessions {
        c::ST_SESSIONS
    } else {
        c::ST_NO_SESSIONS
    };
    cmd(tag, cc, &body)
}

/// The command codes the TPM lists, with their handle counts (TPMA_CC cHandles).
fn listed_commands(t: &mut Tpm) -> Vec<(u32, usize)> {
    let get = cmd(
        c::ST_NO_SESSIONS,
        c::CC_GetCapability,
        &[
            &c::CAP_COMMANDS.to_be_bytes()[..],
            &c::CC_FIRST.to_be_bytes(),
            &256u32.to_be_bytes(),
        ]
        .concat(),
    );
    let r = t.execute(0, &get);
    let n = u32::from_be_bytes([r[15], r[16], r[17], r[18]]) as usize;
    (0..n)
        .map(|i| {
            let a =
                u32::from_be_bytes([r[19 + 4 * i], r[20 + 4 * i], r[21 + 4 * i], r[22 + 4 * i]]);
            (a & 0xFFFF, ((a >> 25) & 7) as usize)
        })
        .collect()
}

/// A started TPM on which every seed ran once, so that the handle pool
/// names objects, indices and sessions that exist.
fn prepared(seeds: &[Vec<u8>]) -> Tpm {
    let mut t = started();
    for s in seeds {
        well_formed(&t.execute(0, s));
    }
    t
}

/// Commands generated for every listed command code and the seeds, mutated;
/// a command that meets a (command code, response code) pair not seen before
/// joins the pool — a cheap stand-in for coverage guidance that walks
/// generated commands past one parameter check after another.
/// `VTPM_FUZZ_ITERS` / `VTPM_FUZZ_SEED` run more or another sequence.
#[test]
fn generated_commands_guided_by_response_codes_never_panic() {
    let iters = env_or("VTPM_FUZZ_ITERS", 100_000);
    let mut rng = StdRng::seed_from_u64(env_or("VTPM_FUZZ_SEED", 0x5eed_0001));
    let seeds: Vec<Vec<u8>> = [seeds(), nv_seeds(), policy_seeds()].concat();
    let mut t = prepared(&seeds);
    let ccs = listed_commands(&mut t);
    assert!(ccs.len() > 100, "{} commands listed", ccs.len());
    let mut pool = seeds.clone();
    let mut pairs = std::collections::HashSet::new();
    let mut succeeded = std::collections::HashSet::new();
    for i in 0..iters {
        // A fresh TPM now and then: successful commands change its state.
        if i % 500 == 499 {
            t = prepared(&seeds);
        }
        let base = if rng.gen_ratio(2, 3) {
            pool[rng.gen_range(0..pool.len())].clone()
        } else {
            let (cc, handles) = ccs[rng.gen_range(0..ccs.len())];
            generated(&mut rng, cc, handles)
        };
        let input = if rng.gen_ratio(1, 3) {
            base
        } else {
            mutate(&mut rng, &base)
        };
        let r = t.execute(0, &input);
        well_formed(&r);
        let cc = input
            .get(6..10)
            .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
        let rc = u32::from_be_bytes([r[6], r[7], r[8], r[9]]);
        if rc == 0 {
            succeeded.insert(cc);
        }
        if ccs.iter().any(|(c, _)| *c == cc) && pairs.insert((cc, rc)) {
            pool.push(input);
        }
    }
    assert!(!succeeded.is_empty(), "no command succeeded");
    println!(
        "{iters} commands: {} (command, code) pairs, {} command codes succeeded",
        pairs.len(),
        succeeded.len()
    );
}
