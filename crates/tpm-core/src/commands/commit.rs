//! Ephemeral EC keys (Part 3 chapter 19): TPM2_Commit, the first half of an
//! ECDAA signature, and TPM2_EC_Ephemeral, the first half of a two-phase key
//! exchange. Both hand out a count from the commit state; the second half
//! (TPM2_Sign with ECDAA, TPM2_ZGen_2Phase) gives it back to recover r.

use super::asymmetric::EccCurve;
use crate::constants as c;
use crate::crypto::ecc::{is_on_curve, mod_p, mul, Curve, Point};
use crate::dispatch::Ctx;
use crate::engine::{Response, Tpm};
use crate::marshal::Sized2b;
use crate::object::{ecc_point, Loaded};
use crate::rc::{Rc, TpmResult};
use crate::types::{EccParam, EccPoint, EccPoint2b, Scheme, SensitiveData};
use crate::{tpm_params, tpm_response};

tpm_params! {
    /// TPM2_Commit parameters.
    pub struct CommitIn { pub p1: EccPoint2b, pub s2: SensitiveData, pub y2: EccParam }
}

tpm_response! {
    /// TPM2_Commit response.
    pub struct CommitOut { pub k: EccPoint2b, pub l: EccPoint2b, pub e: EccPoint2b, pub counter: u16 }
}

tpm_params! {
    /// TPM2_EC_Ephemeral parameters.
    pub struct EcEphemeralIn { pub curve_id: EccCurve }
}

tpm_response! {
    /// TPM2_EC_Ephemeral response.
    pub struct EcEphemeralOut { pub q: EccPoint2b, pub counter: u16 }
}

/// The Empty Point (two empty coordinates) answered for a value not computed.
fn empty_point() -> EccPoint2b {
    Sized2b(EccPoint::default())
}

fn point_of(p: &EccPoint) -> Point {
    Point::new(&p.x.0, &p.y.0)
}

/// A point multiplication of the split operations: a result at infinity is
/// TPM_RC_NO_RESULT.
fn mul_or_no_result(curve: Curve, k: &[u8], p: Option<&Point>) -> TpmResult<EccPoint2b> {
    mul(curve, k, p)
        .map(|q| Sized2b(ecc_point(&q)))
        .map_err(|_| Rc(c::RC_NO_RESULT))
}

/// TPM2_Commit: K = [ds]P2 and L = [r]P2 when s2 and y2 give
/// P2 = (H_nameAlg(s2) mod p, y2); E = [r]P1, or [r]G when neither P1 nor
/// P2 is given. The checks and their order are libtpms's.
pub fn commit(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    let p = CommitIn::parse(&mut ctx.params)?;
    let key = tpm.object_at(ctx.handles[0], 1)?;
    if key.public.type_alg() != c::ALG_ECC {
        return Err(Rc(c::RC_KEY).handle(1));
    }
    if key.public.parms.scheme().alg != c::ALG_ECDAA {
        return Err(Rc(c::RC_SCHEME).handle(1));
    }
    if p.s2.0.is_empty() != p.y2.0.is_empty() {
        return Err(Rc(c::RC_SIZE).param(3));
    }
    let curve = key.curve().map_err(|e| e.handle(1))?;
    let pw = tpm.pw.as_ref().ok_or(Rc(c::RC_INITIALIZE))?;
    let r = pw
        .commit
        .r(curve, &key.name, pw.commit.counter)
        .ok_or(Rc(c::RC_NO_RESULT))?;
    let p2 = if p.s2.0.is_empty() {
        None
    } else {
        if key.public.name_alg == c::ALG_NULL {
            return Err(Rc(c::RC_HASH).handle(1));
        }
        let x2 = mod_p(
            curve,
            &crate::crypto::digest(key.public.name_alg, &[&p.s2.0]),
        );
        let p2 = Point::new(&x2, &p.y2.0);
        if !is_on_curve(curve, &p2) {
            return Err(Rc(c::RC_ECC_POINT).param(2));
        }
        if key.sensitive.is_none() {
            return Err(Rc(c::RC_KEY).handle(1));
        }
        Some(p2)
    };
    // An Empty Point (size 4: two empty coordinates) is no P1.
    let p1 = point_of(&p.p1.0);
    let p1 = (!p1.x.is_empty() || !p1.y.is_empty()).then_some(p1);
    if let Some(p1) = &p1 {
        if !is_on_curve(curve, p1) {
            return Err(Rc(c::RC_ECC_POINT).param(1));
        }
    }
    let (k, l) = match &p2 {
        Some(p2) => (
            mul_or_no_result(curve, &key.sensitive()?.sensitive.0, Some(p2))?,
            mul_or_no_result(curve, &r, Some(p2))?,
        ),
        None => (empty_point(), empty_point()),
    };
    let e = if p1.is_some() || p2.is_none() {
        mul_or_no_result(curve, &r, p1.as_ref())?
    } else {
        empty_point()
    };
    let counter = tpm.powered()?.commit.commit();
    Ok(Response::of(&CommitOut { k, l, e, counter }))
}

/// TPM2_EC_Ephemeral: Q = [r]G for the next count. r at infinity cannot
/// happen for 1 ≤ r < n; the count is used up either way.
pub fn ec_ephemeral(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    let p = EcEphemeralIn::parse(&mut ctx.params)?;
    let curve = Curve::from_tpm(p.curve_id.0).ok_or(Rc(c::RC_CURVE).param(1))?;
    let commit = &mut tpm.powered()?.commit;
    let r = commit
        .r(curve, &[], commit.counter)
        .ok_or(Rc(c::RC_NO_RESULT))?;
    let q = mul_or_no_result(curve, &r, None);
    let counter = commit.commit();
    Ok(Response::of(&EcEphemeralOut { q: q?, counter }))
}

/// The r of a pending count for the second half of a split operation: the
/// count must be one of the last handed out and not used yet (None
/// otherwise; the caller answers TPM_RC_VALUE). `name` is the signing key's
/// Name for ECDAA, empty for ZGen_2Phase.
pub(crate) fn committed_r(tpm: &Tpm, curve: Curve, name: &[u8], count: u16) -> Option<Vec<u8>> {
    let commit = &tpm.pw.as_ref()?.commit;
    let full = commit.resolve(count)?;
    commit.r(curve, name, full)
}

/// The r an ECDAA signature by `key` with `scheme` uses (None for other
/// schemes); a count not pending is TPM_RC_VALUE, as libtpms answers it.
pub(crate) fn ecdaa_r(tpm: &Tpm, key: &Loaded, scheme: Scheme) -> TpmResult<Option<Vec<u8>>> {
    if scheme.alg != c::ALG_ECDAA {
        return Ok(None);
    }
    let curve = key.curve()?;
    committed_r(tpm, curve, &key.name, scheme.count)
        .map(Some)
        .ok_or(Rc(c::RC_VALUE))
}

impl Tpm {
    /// A split operation used count `count`: it cannot be used again.
    pub(crate) fn end_commit(&mut self, count: u16) {
        if let Some(pw) = self.pw.as_mut() {
            pw.commit.end(count);
        }
    }

    /// After a signature with `scheme` was made: an ECDAA one used its count.
    pub(crate) fn end_ecdaa(&mut self, scheme: Scheme) {
        if scheme.alg == c::ALG_ECDAA {
            self.end_commit(scheme.count);
        }
    }
}
