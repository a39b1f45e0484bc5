//! Hierarchy authorizations through the TSS ESAPI (libtss2-esys via the
//! tss-esapi crate), which checks every response HMAC itself: an HMAC
//! session authorizes HierarchyChangeAuth (the response is keyed with the new
//! value) and Clear with lockoutAuth (keyed with the new, empty lockoutAuth,
//! Part 3 24.6), against vtpm and, for reference, swtpm.

mod common;

use std::str::FromStr;

use common::{start_swtpm, Vtpm};
use tss_esapi::attributes::SessionAttributesBuilder;
use tss_esapi::constants::SessionType;
use tss_esapi::handles::{AuthHandle, ObjectHandle};
use tss_esapi::interface_types::algorithm::HashingAlgorithm;
use tss_esapi::interface_types::session_handles::AuthSession;
use tss_esapi::structures::{Auth, SymmetricDefinition};
use tss_esapi::tcti_ldr::TctiNameConf;
use tss_esapi::Context;

fn hmac_session(ctx: &mut Context) -> AuthSession {
    let session = ctx
        .start_auth_session(
            None,
            None,
            None,
            SessionType::Hmac,
            SymmetricDefinition::AES_128_CFB,
            HashingAlgorithm::Sha256,
        )
        .expect("StartAuthSession")
        .expect("a session");
    let (attrs, mask) = SessionAttributesBuilder::new()
        .with_continue_session(true)
        .with_decrypt(true)
        .build();
    ctx.tr_sess_set_attributes(session, attrs, mask)
        .expect("session attributes");
    session
}

fn auth(v: &[u8]) -> Auth {
    Auth::try_from(v.to_vec()).unwrap()
}

/// The sequence; every step must succeed, response HMACs included.
fn run(tcti: &str) {
    let mut ctx = Context::new(TctiNameConf::from_str(tcti).unwrap()).unwrap();
    let session = hmac_session(&mut ctx);
    ctx.set_sessions((Some(session), None, None));
    // The owner's auth changes under an HMAC session twice: each response is
    // keyed with the value the command set (ESAPI expects so).
    ctx.hierarchy_change_auth(AuthHandle::Owner, auth(b"owner1"))
        .expect("HierarchyChangeAuth from empty");
    ctx.hierarchy_change_auth(AuthHandle::Owner, auth(b"owner2"))
        .expect("HierarchyChangeAuth from owner1");
    ctx.hierarchy_change_auth(AuthHandle::Lockout, auth(b"lockpw"))
        .expect("HierarchyChangeAuth of lockout");
    // ClearControl and Clear under lockoutAuth.
    ctx.clear_control(AuthHandle::Lockout, false)
        .expect_err("lockoutAuth cannot clear disableClear");
    ctx.tr_set_auth(ObjectHandle::Lockout, auth(b"lockpw"))
        .unwrap();
    ctx.clear(AuthHandle::Lockout)
        .expect("Clear under lockoutAuth, response keyed with the empty lockoutAuth");
    // Everything is empty again.
    ctx.tr_set_auth(ObjectHandle::Owner, auth(b"")).unwrap();
    ctx.tr_set_auth(ObjectHandle::Lockout, auth(b"")).unwrap();
    ctx.hierarchy_change_auth(AuthHandle::Owner, auth(b"again"))
        .expect("owner auth is empty after Clear");
    ctx.clear(AuthHandle::Lockout)
        .expect("lockout auth is empty after Clear");
}

#[test]
fn hmac_sessions_authorize_change_auth_and_clear() {
    if !common::have_tss() {
        eprintln!("libtss2 not installed: skipped (scripts/test.sh installs it)");
        return;
    }
    if let Some(sw) = start_swtpm() {
        // The reference behaviour first, so a failure below is vtpm's.
        run(&sw.tcti());
    }
    let v = Vtpm::start_socket();
    run(&v.tcti());
}
