//! A policy session through the TSS ESAPI (tpm2-tss's libtss2-esys via the
//! tss-esapi crate) against the real binary, and the same against swtpm:
//! the policy PolicyPCR(sha256: 0,7) + PolicyAuthValue is computed in a trial
//! session; a sealed object (keyedhash, with an authValue) gets it as its
//! authPolicy; a policy session satisfying it (ESAPI adds the HMAC with the
//! object's authValue) unseals the secret; a wrong authValue, a missing
//! PolicyAuthValue and PCR 7 extended afterwards are refused, with the same
//! response codes as swtpm.

mod common;

use std::str::FromStr;

use common::{start_swtpm, Vtpm};
use tss_esapi::attributes::ObjectAttributesBuilder;
use tss_esapi::constants::SessionType;
use tss_esapi::handles::{KeyHandle, ObjectHandle, PcrHandle, SessionHandle};
use tss_esapi::interface_types::algorithm::{HashingAlgorithm, PublicAlgorithm};
use tss_esapi::interface_types::key_bits::RsaKeyBits;
use tss_esapi::interface_types::resource_handles::Hierarchy;
use tss_esapi::interface_types::session_handles::{AuthSession, PolicySession};
use tss_esapi::structures::{
    Auth, Digest, DigestValues, KeyedHashScheme, PcrSelectionList, PcrSlot, Public, PublicBuilder,
    PublicKeyedHashParameters, RsaExponent, SensitiveData, SymmetricDefinition,
    SymmetricDefinitionObject,
};
use tss_esapi::tcti_ldr::TctiNameConf;
use tss_esapi::utils::create_restricted_decryption_rsa_public;
use tss_esapi::Context;

const SECRET: &[u8] = b"esapi policy secret";

fn pcrs() -> PcrSelectionList {
    PcrSelectionList::builder()
        .with_selection(HashingAlgorithm::Sha256, &[PcrSlot::Slot0, PcrSlot::Slot7])
        .build()
        .unwrap()
}

/// A policy session (or a trial one) with PolicyPCR (current values) and,
/// if `auth_value`, PolicyAuthValue.
fn policy(ctx: &mut Context, kind: SessionType, auth_value: bool) -> (AuthSession, PolicySession) {
    let session = ctx
        .start_auth_session(
            None,
            None,
            None,
            kind,
            SymmetricDefinition::AES_128_CFB,
            HashingAlgorithm::Sha256,
        )
        .expect("StartAuthSession")
        .expect("a session");
    let ps = PolicySession::try_from(session).unwrap();
    ctx.policy_pcr(ps, Digest::default(), pcrs())
        .expect("PolicyPCR");
    if auth_value {
        ctx.policy_auth_value(ps).expect("PolicyAuthValue");
    }
    (session, ps)
}

fn sealed_public(auth_policy: Digest) -> Public {
    let attrs = ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_no_da(true)
        .build()
        .unwrap();
    PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::KeyedHash)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attrs)
        .with_auth_policy(auth_policy)
        .with_keyed_hash_parameters(PublicKeyedHashParameters::new(KeyedHashScheme::Null))
        .with_keyed_hash_unique_identifier(Digest::default())
        .build()
        .unwrap()
}

/// Unseal `obj` with a fresh policy session; the secret or the error.
fn unseal(ctx: &mut Context, obj: KeyHandle, auth_value: bool) -> Result<Vec<u8>, String> {
    let (session, _) = policy(ctx, SessionType::Policy, auth_value);
    let r = ctx
        .execute_with_session(Some(session), |c| c.unseal(ObjectHandle::from(obj)))
        .map(|d| d.value().to_vec())
        .map_err(|e| rc(&e));
    let _ = ctx.flush_context(SessionHandle::from(session).into());
    r
}

/// The whole flow; returns a transcript to compare between TPMs.
fn flow(tcti: &str) -> Vec<String> {
    let mut log = Vec::new();
    let mut ctx = Context::new(TctiNameConf::from_str(tcti).expect("TCTI")).expect("ESAPI");
    let primary_public = create_restricted_decryption_rsa_public(
        SymmetricDefinitionObject::AES_128_CFB,
        RsaKeyBits::Rsa2048,
        RsaExponent::default(),
    )
    .unwrap();
    let primary = ctx
        .execute_with_session(Some(AuthSession::Password), |c| {
            c.create_primary(Hierarchy::Owner, primary_public, None, None, None, None)
        })
        .expect("CreatePrimary")
        .key_handle;

    let (trial, ps) = policy(&mut ctx, SessionType::Trial, true);
    let digest = ctx.policy_get_digest(ps).expect("PolicyGetDigest");
    assert_eq!(digest.value().len(), 32);
    log.push(format!("policy digest {}", hex(digest.value())));
    ctx.flush_context(SessionHandle::from(trial).into())
        .unwrap();

    let auth = Auth::try_from(b"object password".to_vec()).unwrap();
    let created = ctx
        .execute_with_session(Some(AuthSession::Password), |c| {
            c.create(
                primary,
                sealed_public(digest),
                Some(auth.clone()),
                Some(SensitiveData::try_from(SECRET.to_vec()).unwrap()),
                None,
                None,
            )
        })
        .expect("Create");
    let obj = ctx
        .execute_with_session(Some(AuthSession::Password), |c| {
            c.load(primary, created.out_private, created.out_public)
        })
        .expect("Load");

    ctx.tr_set_auth(obj.into(), auth.clone()).unwrap();
    let secret = unseal(&mut ctx, obj, true).expect("Unseal with the policy");
    assert_eq!(secret, SECRET);
    log.push("unseal: secret".into());

    let r = unseal(&mut ctx, obj, false);
    log.push(format!("without PolicyAuthValue: {}", r.unwrap_err()));

    ctx.tr_set_auth(obj.into(), Auth::try_from(b"wrong".to_vec()).unwrap())
        .unwrap();
    let r = unseal(&mut ctx, obj, true);
    log.push(format!("wrong password: {}", r.unwrap_err()));
    ctx.tr_set_auth(obj.into(), auth).unwrap();

    let mut values = DigestValues::new();
    values.set(
        HashingAlgorithm::Sha256,
        Digest::try_from(vec![7u8; 32]).unwrap(),
    );
    ctx.execute_with_session(Some(AuthSession::Password), |c| {
        c.pcr_extend(PcrHandle::Pcr7, values)
    })
    .expect("PCR_Extend");
    let r = unseal(&mut ctx, obj, true);
    log.push(format!("after PCR 7 extend: {}", r.unwrap_err()));
    log
}

/// The TPM response code in an ESAPI error (`0x99d`), or the whole error.
fn rc(e: &tss_esapi::Error) -> String {
    let dbg = format!("{e:?}");
    dbg.split(".0: ")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .and_then(|n| n.trim().parse::<u32>().ok())
        .map(|n| format!("TPM rc {n:#x}"))
        .unwrap_or(dbg)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn pcr_and_auth_value_policy_unseals_until_pcr_extend() {
    if !common::have_tss() {
        eprintln!("libtss2 not installed: skipped (scripts/test.sh installs libtss2-dev)");
        return;
    }
    let vt = Vtpm::start_socket();
    let sw = start_swtpm();
    let (s, v) = std::thread::scope(|sc| {
        let s = sw.as_ref().map(|sw| sc.spawn(move || flow(&sw.tcti())));
        let v = sc.spawn(|| flow(&vt.tcti()));
        (s.map(|h| h.join()), v.join())
    });
    let s = s.map(|r| r.unwrap_or_else(|_| panic!("the flow fails on swtpm")));
    if let Some(s) = &s {
        println!("swtpm:\n  {}", s.join("\n  "));
    }
    let v = v.unwrap_or_else(|_| panic!("the flow fails on vtpm"));
    println!("vtpm:\n  {}", v.join("\n  "));
    assert_eq!(v[1], "unseal: secret");
    assert_eq!(v[2], "without PolicyAuthValue: TPM rc 0x99d");
    assert_eq!(v[3], "wrong password: TPM rc 0x9a2");
    assert_eq!(v[4], "after PCR 7 extend: TPM rc 0x99d");
    if let Some(s) = s {
        assert_eq!(v, s, "vtpm and swtpm differ");
    }
}
