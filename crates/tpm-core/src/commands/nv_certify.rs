//! TPM2_NV_Certify (Part 3 chapter 31): an attestation (TPMS_ATTEST) of an
//! index's contents, signed by a signing key or, with TPM_RH_NULL, unsigned.

use super::nv::read_access;
use super::signature::{select_scheme, sign_digest};
use crate::constants as c;
use crate::dispatch::Ctx;
use crate::engine::{Response, Tpm};
use crate::marshal::{Buffer, Marshal};
use crate::rc::{Rc, TpmResult};
use crate::state::nv::NV_BUFFER_MAX;
use crate::types::{ClockInfo, Data, Digest, Scheme, SigScheme, Signature};
use crate::{tpm_params, tpm_response, tpm_struct};

/// TPM_GENERATED_VALUE: what every attestation starts with, so that a
/// restricted signing key can tell it from outside data.
const TPM_GENERATED: u32 = 0xFF54_4347;
/// TPM_ST_ATTEST_NV_DIGEST (a digest of the whole index instead of its data).
const ST_ATTEST_NV_DIGEST: u16 = 0x801C;

tpm_params! {
    /// TPM2_NV_Certify parameters.
    pub struct CertifyIn { pub qualifying_data: Data, pub in_scheme: SigScheme, pub size: u16, pub offset: u16 }
}

tpm_response! {
    /// TPM2_NV_Certify response: TPM2B_ATTEST and TPMT_SIGNATURE.
    pub struct CertifyOut { pub certify_info: Buffer<2048>, pub signature: Signature }
}

/// TPM2B_NAME.
type Name = Buffer<{ 2 + 64 }>;

tpm_struct! {
    /// The part of TPMS_ATTEST before `attested`.
    pub struct AttestHeader {
        pub magic: u32,
        pub ty: u16,
        pub qualified_signer: Name,
        pub extra_data: Data,
        pub clock_info: ClockInfo,
        pub firmware_version: u64,
    }
}

tpm_struct! {
    /// TPMS_NV_CERTIFY_INFO.
    pub struct NvCertifyInfo { pub index_name: Name, pub offset: u16, pub nv_contents: Buffer<NV_BUFFER_MAX> }
}

tpm_struct! {
    /// TPMS_NV_DIGEST_CERTIFY_INFO.
    pub struct NvDigestCertifyInfo { pub index_name: Name, pub nv_digest: Digest }
}

impl Tpm {
    /// The fields every attestation shares (Part 3 FillInAttestInfo). For a
    /// key outside the endorsement and platform hierarchies (and no key) the
    /// reset and restart counts and the firmware version are obfuscated with
    /// a KDFa stream under shProof keyed by the signer's Qualified Name (as the
    /// reference TPM does; the stream is read as two big-endian 64-bit values),
    /// so attestations cannot be linked across hierarchies by those counters.
    pub(crate) fn attest_header(
        &self,
        ty: u16,
        signer: Option<(&[u8], u32)>,
        extra: &Data,
    ) -> TpmResult<AttestHeader> {
        let pw = self.pw.as_ref().ok_or(Rc(c::RC_INITIALIZE))?;
        let (fw1, fw2) = super::capability::version_words();
        let mut h = AttestHeader {
            magic: TPM_GENERATED,
            ty,
            qualified_signer: Buffer(match signer {
                Some((qn, _)) => qn.to_vec(),
                None => c::RH_NULL.to_be_bytes().to_vec(),
            }),
            extra_data: extra.clone(),
            clock_info: ClockInfo {
                clock: pw.clock.clock(),
                reset_count: self.perm.reset_count,
                restart_count: self.perm.restart_count,
                safe: pw.clock.safe,
            },
            firmware_version: (u64::from(fw1) << 32) | u64::from(fw2),
        };
        let plain = matches!(signer, Some((_, c::RH_ENDORSEMENT | c::RH_PLATFORM)));
        if !plain {
            let k = crate::crypto::kdfa(
                c::ALG_SHA512,
                &self.perm.sh_proof.0,
                b"OBFUSCATE",
                &h.qualified_signer.0,
                &[],
                128,
            );
            let word = |i: usize| {
                let mut b = [0u8; 8];
                b.copy_from_slice(&k[i * 8..i * 8 + 8]);
                u64::from_be_bytes(b)
            };
            let (o0, o1) = (word(0), word(1));
            h.firmware_version = h.firmware_version.wrapping_add(o0);
            h.clock_info.reset_count = h.clock_info.reset_count.wrapping_add((o1 >> 32) as u32);
            h.clock_info.restart_count = h.clock_info.restart_count.wrapping_add(o1 as u32);
        }
        Ok(h)
    }
}

/// TPM2_NV_Certify: `size` octets at `offset` of the index (or, with both
/// zero, a digest of all of it) in a TPMS_ATTEST signed with the key's scheme.
pub fn nv_certify(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    let p = CertifyIn::parse(&mut ctx.params)?;
    let (sign_h, auth, h) = (ctx.handles[0], ctx.handles[1], ctx.handles[2]);
    let key = if sign_h == c::RH_NULL {
        None
    } else {
        let key = tpm.object_at(sign_h, 1)?;
        if !key.public.has(c::TPMA_OBJECT_SIGN_ENCRYPT) {
            return Err(Rc(c::RC_KEY).handle(1));
        }
        Some(key.clone())
    };
    let scheme = match &key {
        None => Scheme::NULL,
        Some(k) => select_scheme(k.public.parms.scheme(), p.in_scheme.0, false)
            .filter(|_| k.public.type_alg() != c::ALG_SYMCIPHER)
            .ok_or(Rc(c::RC_SCHEME).param(2))?,
    };
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
    let data = idx
        .data
        .0
        .get(offset..offset + size)
        .ok_or(Rc(c::RC_NV_RANGE))?
        .to_vec();
    let whole = idx.data.0.clone();
    let signer = key
        .as_ref()
        .map(|k| (k.qualified_name.0.as_slice(), k.hierarchy));
    let digest_form = size == 0 && offset == 0;
    let ty = if digest_form {
        ST_ATTEST_NV_DIGEST
    } else {
        c::ST_ATTEST_NV
    };
    let mut attest = tpm
        .attest_header(ty, signer, &p.qualifying_data)?
        .to_bytes();
    if digest_form {
        // Digested with the signing scheme's hash; no key, no hash: empty.
        let nv_digest = Buffer(crate::crypto::digest(scheme.hash, &[&whole]));
        NvDigestCertifyInfo {
            index_name,
            nv_digest,
        }
        .marshal(&mut attest);
    } else {
        NvCertifyInfo {
            index_name,
            offset: p.offset,
            nv_contents: Buffer(data),
        }
        .marshal(&mut attest);
    }
    let signature = match &key {
        None => Signature::Null,
        Some(k) => {
            let digest = crate::crypto::digest(scheme.hash, &[&attest]);
            sign_digest(k, scheme, &digest)?
        }
    };
    Ok(Response::of(&CertifyOut {
        certify_info: Buffer(attest),
        signature,
    }))
}
