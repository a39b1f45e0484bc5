//! TPM2_TestParms (Part 3 chapter 30): whether the TPM supports a set of
//! public-area parameters. As Part 3 and libtpms have it, the test is the
//! unmarshaling of TPMT_PUBLIC_PARMS: every object type, scheme, hash, key
//! size, curve, KDF and symmetric algorithm vtpm implements passes, anything
//! else fails with the code of the field that names it. The attribute-dependent
//! scheme rules (object/attributes.rs) need a TPMA_OBJECT, which TestParms does
//! not carry, so they are not applied (libtpms does not apply them either).

use crate::constants as c;
use crate::dispatch::Ctx;
use crate::engine::{Response, Tpm};
use crate::marshal::Unmarshal;
use crate::rc::{Rc, TpmResult};
use crate::types::PublicParms;

/// TPM2_TestParms.
pub fn test_parms(_tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    let parms = PublicParms::unmarshal(&mut ctx.params).map_err(|e| e.param(1))?;
    ctx.params.finish().map_err(|_| Rc(c::RC_SIZE))?;
    if !parms.0.symmetric().offered() {
        return Err(Rc(c::RC_VALUE).param(1));
    }
    Ok(Response::default())
}
