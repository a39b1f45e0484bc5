//! Random number generator (Part 3 chapter 16): GetRandom, StirRandom.

use rand::{RngCore, SeedableRng};

use crate::constants as c;
use crate::crypto::digest;
use crate::dispatch::Ctx;
use crate::engine::{Response, Tpm};
use crate::marshal::Buffer;
use crate::rc::TpmResult;
use crate::tpm_params;
use crate::types::{SensitiveData, MAX_DIGEST};

tpm_params! {
    /// TPM2_GetRandom parameters.
    pub struct GetRandomIn { pub bytes_requested: u16 }
}

tpm_params! {
    /// TPM2_StirRandom parameters.
    pub struct StirRandomIn { pub in_data: SensitiveData }
}

/// TPM2_GetRandom: at most one digest's worth (64 octets) per call.
pub fn get_random(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    let p = GetRandomIn::parse(&mut ctx.params)?;
    let mut out = vec![0u8; (p.bytes_requested as usize).min(MAX_DIGEST)];
    tpm.rng.fill_bytes(&mut out);
    Ok(Response::of(&Buffer::<MAX_DIGEST>(out)))
}

/// TPM2_StirRandom: reseed from the generator's output, fresh OS entropy and the caller's data.
pub fn stir_random(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    let p = StirRandomIn::parse(&mut ctx.params)?;
    let mut current = [0u8; 32];
    tpm.rng.fill_bytes(&mut current);
    let mut fresh = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut fresh);
    let seed = digest(c::ALG_SHA256, &[&current, &fresh, p.in_data.as_slice()]);
    let mut s = [0u8; 32];
    s.copy_from_slice(&seed[..32]);
    tpm.rng = rand::rngs::StdRng::from_seed(s);
    Ok(Response::default())
}
