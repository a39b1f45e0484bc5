//! TPM2_TestParms (Part 3 chapter 30): whether the TPM supports a set of
//! public-area parameters. Only object types the TPM implements pass.

use crate::constants as c;
use crate::dispatch::Ctx;
use crate::engine::{Response, Tpm};
use crate::marshal::{Reader, Unmarshal};
use crate::rc::{err, Rc, TpmResult};
use crate::types::{AlgHash, ObjectSym, SymDef};

/// TPMT_KEYEDHASH_SCHEME.
fn keyedhash_scheme(r: &mut Reader<'_>) -> TpmResult<()> {
    match u16::unmarshal(r)? {
        c::ALG_HMAC => AlgHash::unmarshal(r).map(|_| ()),
        c::ALG_XOR => {
            AlgHash::unmarshal(r)?;
            match u16::unmarshal(r)? {
                c::ALG_KDF1_SP800_108 => Ok(()),
                _ => err(c::RC_KDF),
            }
        }
        c::ALG_NULL => Ok(()),
        _ => err(c::RC_VALUE),
    }
}

/// TPMT_PUBLIC_PARMS of an implemented type.
fn public_parms(r: &mut Reader<'_>) -> TpmResult<()> {
    match u16::unmarshal(r)? {
        c::ALG_KEYEDHASH => keyedhash_scheme(r),
        c::ALG_SYMCIPHER => match ObjectSym::unmarshal(r)?.0 {
            SymDef::Null => err(c::RC_SYMMETRIC),
            _ => Ok(()),
        },
        _ => err(c::RC_TYPE),
    }
}

/// TPM2_TestParms.
pub fn test_parms(_tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    public_parms(&mut ctx.params).map_err(|e| e.param(1))?;
    ctx.params.finish().map_err(|_| Rc(c::RC_SIZE))?;
    Ok(Response::default())
}
