//! Testing (Part 3 chapter 10): SelfTest, IncrementalSelfTest, GetTestResult.

use crate::constants as c;
use crate::crypto::{aes_cfb, digest, hmac, kdfa};
use crate::dispatch::Ctx;
use crate::engine::{Response, Tpm};
use crate::marshal::{Buffer, List};
use crate::rc::{err, TpmResult};
use crate::types::{MaxBuffer, YesNo};
use crate::{tpm_params, tpm_response};

tpm_params! {
    /// TPM2_SelfTest parameters.
    pub struct SelfTestIn { pub full_test: YesNo }
}

tpm_params! {
    /// TPM2_IncrementalSelfTest parameters (TPML_ALG).
    pub struct IncrementalIn { pub to_test: List<u16, 64> }
}

tpm_response! {
    /// TPM2_GetTestResult response.
    pub struct TestResultOut { pub out_data: MaxBuffer, pub test_result: u32 }
}

/// Known-answer tests of the algorithms the engine uses; true if all pass.
fn known_answers() -> bool {
    // SHA-256("abc") and HMAC-SHA256 of RFC 4231 test case 2.
    let sha = digest(c::ALG_SHA256, &[b"abc"]);
    let ok_sha = sha.get(..4) == Some(&[0xba, 0x78, 0x16, 0xbf][..]);
    let mac = hmac(c::ALG_SHA256, b"Jefe", &[b"what do ya want for nothing?"]);
    let ok_hmac = mac.get(..4) == Some(&[0x5b, 0xdc, 0xc1, 0x46][..]);
    let k = kdfa(c::ALG_SHA256, b"k", b"L", b"u", b"v", 256);
    let mut block = [0u8; 16];
    let ok_aes = aes_cfb(&k[..16], &k[16..32], &mut block, true) && {
        aes_cfb(&k[..16], &k[16..32], &mut block, false) && block == [0u8; 16]
    };
    ok_sha && ok_hmac && ok_aes
}

/// TPM2_SelfTest: runs the known-answer tests (always all of them: they are fast).
pub fn self_test(_tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    SelfTestIn::parse(&mut ctx.params)?;
    if !known_answers() {
        return err(c::RC_FAILURE);
    }
    Ok(Response::default())
}

/// TPM2_IncrementalSelfTest: everything is tested by SelfTest already, so the to-do list is empty.
pub fn incremental_self_test(_tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    IncrementalIn::parse(&mut ctx.params)?;
    Ok(Response::of(&List::<u16, 64>(Vec::new())))
}

/// TPM2_GetTestResult.
pub fn get_test_result(_tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    ctx.params.finish()?;
    let rc = if known_answers() { 0 } else { c::RC_FAILURE };
    Ok(Response::of(&TestResultOut {
        out_data: Buffer(Vec::new()),
        test_result: rc,
    }))
}
