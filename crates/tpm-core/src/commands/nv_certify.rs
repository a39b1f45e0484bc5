//! TPM2_NV_Certify (Part 3 chapter 31): an attestation (TPMS_ATTEST) of an
//! index's contents, signed by a signing key or, with TPM_RH_NULL, unsigned.
//! The signer, header and signature are the attestation commands' (see
//! `attestation.rs`).

use super::attestation::{Attested, NvCertifyInfo, NvDigestCertifyInfo};
use super::nv::read_access;
use crate::constants as c;
use crate::dispatch::Ctx;
use crate::engine::{Response, Tpm};
use crate::marshal::Buffer;
use crate::rc::{Rc, TpmResult};
use crate::state::nv::NV_BUFFER_MAX;
use crate::tpm_params;
use crate::types::{Data, SigScheme};

tpm_params! {
    /// TPM2_NV_Certify parameters.
    pub struct CertifyIn { pub qualifying_data: Data, pub in_scheme: SigScheme, pub size: u16, pub offset: u16 }
}

/// TPM2_NV_Certify: `size` octets at `offset` of the index (or, with both
/// zero, a digest of all of it) in a TPMS_ATTEST signed with the key's scheme.
pub fn nv_certify(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    let p = CertifyIn::parse(&mut ctx.params)?;
    let (sign_h, auth, h) = (ctx.handles[0], ctx.handles[1], ctx.handles[2]);
    let signer = tpm.attestation_signer(sign_h, 1, p.in_scheme.0, 2)?;
    let idx = tpm.nv_present(h).map_err(|e| e.handle(3))?;
    read_access(idx, auth, h)?;
    let (size, offset) = (usize::from(p.size), usize::from(p.offset));
    if size + offset > usize::from(idx.public.data_size) {
        return Err(Rc(c::RC_NV_RANGE));
    }
    if size > NV_BUFFER_MAX {
        return Err(Rc(c::RC_VALUE).param(3));
    }
    let index_name = Buffer(idx.public.name());
    let attested = if size == 0 && offset == 0 {
        // Digested with the signing scheme's hash; no key, no hash: empty.
        Attested::NvDigest(NvDigestCertifyInfo {
            index_name,
            nv_digest: Buffer(crate::crypto::digest(signer.scheme.hash, &[&idx.data.0])),
        })
    } else {
        let data = idx.data.0.get(offset..offset + size);
        Attested::Nv(NvCertifyInfo {
            index_name,
            offset: p.offset,
            nv_contents: Buffer(data.ok_or(Rc(c::RC_NV_RANGE))?.to_vec()),
        })
    };
    let out = tpm.attest(&signer, &p.qualifying_data, |_| attested)?;
    Ok(Response::of(&out))
}
