//! The TSS ESAPI (tpm2-tss's libtss2-esys through the tss-esapi crate) against
//! the real `vtpm` binary over the swtpm TCTI: a salted HMAC session (RSA or
//! ECC primary as tpmKey) with parameter encryption both ways carries
//! CreatePrimary, Create, Load, Sign and EvictControl; ESAPI checks every
//! response HMAC and decrypts every encrypted response parameter itself.

mod common;

use std::str::FromStr;

use common::Vtpm;
use tss_esapi::attributes::{ObjectAttributesBuilder, SessionAttributesBuilder};
use tss_esapi::constants::tss::{TPM2_RH_NULL, TPM2_ST_HASHCHECK};
use tss_esapi::constants::{CapabilityType, SessionType};
use tss_esapi::handles::{KeyHandle, ObjectHandle, PersistentTpmHandle, SessionHandle, TpmHandle};
use tss_esapi::interface_types::algorithm::{HashingAlgorithm, PublicAlgorithm};
use tss_esapi::interface_types::dynamic_handles::Persistent;
use tss_esapi::interface_types::ecc::EccCurve;
use tss_esapi::interface_types::key_bits::RsaKeyBits;
use tss_esapi::interface_types::resource_handles::{Hierarchy, Provision};
use tss_esapi::interface_types::session_handles::AuthSession;
use tss_esapi::structures::{
    Auth, CapabilityData, Digest, EccPoint, EccScheme, HashScheme, HashcheckTicket, Public,
    PublicBuilder, PublicEccParametersBuilder, RsaExponent, Signature, SignatureScheme,
    SymmetricDefinition, SymmetricDefinitionObject,
};
use tss_esapi::tcti_ldr::TctiNameConf;
use tss_esapi::tss2_esys::TPMT_TK_HASHCHECK;
use tss_esapi::utils::{
    create_restricted_decryption_rsa_public, create_unrestricted_signing_ecc_public,
};
use tss_esapi::Context;

/// The persistent handle the signing key is moved to and back out of.
const PERSISTENT: u32 = 0x8100_0010;

fn context(v: &Vtpm) -> Context {
    let tcti = TctiNameConf::from_str(&v.tcti()).expect("TCTI name");
    Context::new(tcti).expect("ESAPI context over the swtpm TCTI")
}

fn ecc_storage_public() -> Public {
    let attrs = ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_sensitive_data_origin(true)
        .with_user_with_auth(true)
        .with_decrypt(true)
        .with_restricted(true)
        .build()
        .unwrap();
    PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::Ecc)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attrs)
        .with_ecc_parameters(
            PublicEccParametersBuilder::new_restricted_decryption_key(
                SymmetricDefinitionObject::AES_128_CFB,
                EccCurve::NistP256,
            )
            .build()
            .unwrap(),
        )
        .with_ecc_unique_identifier(EccPoint::default())
        .build()
        .unwrap()
}

fn rsa_storage_public() -> Public {
    create_restricted_decryption_rsa_public(
        SymmetricDefinitionObject::AES_128_CFB,
        RsaKeyBits::Rsa2048,
        RsaExponent::default(),
    )
    .unwrap()
}

/// Start an HMAC session salted to `salt_key`, with decrypt and encrypt on,
/// and make it the session of every following command.
fn salted_session(ctx: &mut Context, salt_key: KeyHandle) -> AuthSession {
    let session = ctx
        .start_auth_session(
            Some(salt_key),
            None,
            None,
            SessionType::Hmac,
            SymmetricDefinition::AES_128_CFB,
            HashingAlgorithm::Sha256,
        )
        .expect("salted StartAuthSession")
        .expect("a session");
    let (attrs, mask) = SessionAttributesBuilder::new()
        .with_continue_session(true)
        .with_decrypt(true)
        .with_encrypt(true)
        .build();
    ctx.tr_sess_set_attributes(session, attrs, mask)
        .expect("session attributes");
    ctx.set_sessions((Some(session), None, None));
    session
}

fn persistent_handles(ctx: &mut Context) -> Vec<u32> {
    let (data, _) = ctx
        .execute_without_session(|c| {
            c.get_capability(CapabilityType::Handles, PERSISTENT & 0xff00_0000, 16)
        })
        .expect("GetCapability(HANDLES)");
    match data {
        CapabilityData::Handles(list) => list.into_inner().into_iter().map(u32::from).collect(),
        other => panic!("unexpected capability data {other:?}"),
    }
}

/// The whole flow over a session salted to a primary made from `salt_public`.
fn flow(salt_public: Public) {
    let v = Vtpm::start_socket();
    let mut ctx = context(&v);
    let salt_key = ctx
        .execute_with_session(Some(AuthSession::Password), |c| {
            c.create_primary(Hierarchy::Owner, salt_public, None, None, None, None)
        })
        .expect("salt key")
        .key_handle;
    let session = salted_session(&mut ctx, salt_key);

    // A storage parent with an authValue, created over the session: its
    // inSensitive goes encrypted, its outPublic comes back encrypted.
    let parent_auth = Auth::try_from(b"parent-auth".to_vec()).unwrap();
    let parent = ctx
        .create_primary(
            Hierarchy::Owner,
            ecc_storage_public(),
            Some(parent_auth.clone()),
            None,
            None,
            None,
        )
        .expect("CreatePrimary over the salted session")
        .key_handle;
    ctx.tr_set_auth(parent.into(), parent_auth).unwrap();

    // A signing key under it, created and loaded over the session.
    let key_auth = Auth::try_from(b"key-auth".to_vec()).unwrap();
    let signing = create_unrestricted_signing_ecc_public(
        EccScheme::EcDsa(HashScheme::new(HashingAlgorithm::Sha256)),
        EccCurve::NistP256,
    )
    .unwrap();
    let created = ctx
        .create(parent, signing, Some(key_auth.clone()), None, None, None)
        .expect("Create over the salted session");
    let key = ctx
        .load(parent, created.out_private, created.out_public.clone())
        .expect("Load over the salted session");
    ctx.tr_set_auth(key.into(), key_auth).unwrap();
    let (public, name, _) = ctx.read_public(key).expect("ReadPublic");
    assert_eq!(public, created.out_public);

    // Sign over the session (the digest goes encrypted).
    let digest = Digest::try_from(vec![0x42u8; 32]).unwrap();
    let ticket = HashcheckTicket::try_from(TPMT_TK_HASHCHECK {
        tag: TPM2_ST_HASHCHECK,
        hierarchy: TPM2_RH_NULL,
        digest: Default::default(),
    })
    .unwrap();
    let signature = ctx
        .sign(key, digest.clone(), SignatureScheme::Null, ticket)
        .unwrap_or_else(|e| panic!("Sign over the salted session: {e}"));
    match &signature {
        Signature::EcDsa(sig) => {
            assert!(!sig.signature_r().value().is_empty());
            assert!(!sig.signature_s().value().is_empty());
        }
        other => panic!("an ECDSA signature expected, got {other:?}"),
    }
    // The TPM verifies its own signature, and refuses it for another digest.
    ctx.verify_signature(key, digest, signature.clone())
        .unwrap_or_else(|e| panic!("VerifySignature: {e}"));
    let other = Digest::try_from(vec![0x43u8; 32]).unwrap();
    assert!(ctx.verify_signature(key, other, signature).is_err());

    // EvictControl: persist the key, use it from there, and evict it again.
    let persistent =
        Persistent::Persistent(PersistentTpmHandle::new(PERSISTENT).expect("persistent handle"));
    let mut persisted = ctx
        .execute_with_session(Some(AuthSession::Password), |c| {
            c.evict_control(Provision::Owner, key.into(), persistent)
        })
        .expect("EvictControl (persist)");
    assert!(persistent_handles(&mut ctx).contains(&PERSISTENT));
    ctx.tr_close(&mut persisted).unwrap();
    let handle = ctx
        .execute_without_session(|c| {
            c.tr_from_tpm_public(TpmHandle::Persistent(
                PersistentTpmHandle::new(PERSISTENT).unwrap(),
            ))
        })
        .expect("the persistent key");
    let (_, persisted_name, _) = ctx
        .execute_without_session(|c| c.read_public(handle.into()))
        .expect("ReadPublic of the persistent key");
    assert_eq!(persisted_name, name, "the persistent copy is the same key");
    ctx.execute_with_session(Some(AuthSession::Password), |c| {
        c.evict_control(Provision::Owner, handle, persistent)
    })
    .expect("EvictControl (evict)");
    assert!(!persistent_handles(&mut ctx).contains(&PERSISTENT));

    for h in [key, parent, salt_key] {
        ctx.flush_context(ObjectHandle::from(h))
            .expect("FlushContext");
    }
    ctx.clear_sessions();
    ctx.flush_context(SessionHandle::from(session).into())
        .expect("flush the session");
}

#[test]
fn rsa_salted_session_carries_create_load_sign_evict() {
    if !common::have_tss() {
        eprintln!("libtss2 not installed: skipped (scripts/test.sh installs libtss2-dev)");
        return;
    }
    flow(rsa_storage_public());
}

#[test]
fn ecc_salted_session_carries_create_load_sign_evict() {
    if !common::have_tss() {
        eprintln!("libtss2 not installed: skipped (scripts/test.sh installs libtss2-dev)");
        return;
    }
    flow(ecc_storage_public());
}
