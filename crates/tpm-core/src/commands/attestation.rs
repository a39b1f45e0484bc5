//! Attestation (Part 3 chapter 18): TPM2_Certify, TPM2_CertifyCreation,
//! TPM2_Quote and TPM2_GetTime, and what every attestation shares, which
//! NV_Certify (chapter 31) uses too: the choice of the signing key and scheme
//! ([`Tpm::attestation_signer`]), the TPMS_ATTEST structure with its header
//! and obfuscated counters, and its signature ([`Tpm::attest`]).

use super::signature::{is_signing_key, sign_digest, signing_scheme};
use crate::constants as c;
use crate::crypto::ct_eq;
use crate::dispatch::Ctx;
use crate::engine::{Response, Tpm};
use crate::marshal::{Buffer, Marshal, Reader, Unmarshal};
use crate::rc::{err, Rc, TpmResult};
use crate::state::nv::NV_BUFFER_MAX;
use crate::types::{
    ClockInfo, CreationTicket, Data, Digest, Name, PcrSelection, PcrSelectionList, Scheme,
    SigScheme, Signature, TimeInfo,
};
use crate::{tpm_params, tpm_response, tpm_struct};

/// TPM_ST_ATTEST_NV_DIGEST: NV_Certify of a digest of a whole index. Part 2
/// added it after 1.16 and libtss2 3.2's header predates it; the value is
/// libtpms's.
pub const ST_ATTEST_NV_DIGEST: u16 = 0x801C;

/// Largest TPM2B_ATTEST vtpm makes (an NV_Certify of NV_BUFFER_MAX octets
/// with the largest header stays well below it).
pub const MAX_ATTEST: usize = 2048;

tpm_struct! {
    /// The part of TPMS_ATTEST before `attested`: the same for every
    /// attestation but for `ty`, the selector of `attested`.
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
    /// TPMS_CERTIFY_INFO.
    pub struct CertifyInfo { pub name: Name, pub qualified_name: Name }
}

tpm_struct! {
    /// TPMS_CREATION_INFO.
    pub struct CreationInfo { pub object_name: Name, pub creation_hash: Digest }
}

tpm_struct! {
    /// TPMS_QUOTE_INFO.
    pub struct QuoteInfo { pub pcr_select: PcrSelectionList, pub pcr_digest: Digest }
}

tpm_struct! {
    /// TPMS_TIME_ATTEST_INFO.
    pub struct TimeAttestInfo { pub time: TimeInfo, pub firmware_version: u64 }
}

tpm_struct! {
    /// TPMS_NV_CERTIFY_INFO.
    pub struct NvCertifyInfo { pub index_name: Name, pub offset: u16, pub nv_contents: Buffer<NV_BUFFER_MAX> }
}

tpm_struct! {
    /// TPMS_NV_DIGEST_CERTIFY_INFO.
    pub struct NvDigestCertifyInfo { pub index_name: Name, pub nv_digest: Digest }
}

tpm_struct! {
    /// TPMS_COMMAND_AUDIT_INFO.
    pub struct CommandAuditInfo {
        pub audit_counter: u64,
        pub digest_alg: u16,
        pub audit_digest: Digest,
        pub command_digest: Digest,
    }
}

tpm_struct! {
    /// TPMS_SESSION_AUDIT_INFO.
    pub struct SessionAuditInfo { pub exclusive_session: bool, pub session_digest: Digest }
}

/// TPMU_ATTEST: what an attestation is about; its variant is the selector
/// (`AttestHeader::ty`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attested {
    /// TPM_ST_ATTEST_CERTIFY.
    Certify(CertifyInfo),
    /// TPM_ST_ATTEST_CREATION.
    Creation(CreationInfo),
    /// TPM_ST_ATTEST_QUOTE.
    Quote(QuoteInfo),
    /// TPM_ST_ATTEST_TIME.
    Time(TimeAttestInfo),
    /// TPM_ST_ATTEST_COMMAND_AUDIT.
    CommandAudit(CommandAuditInfo),
    /// TPM_ST_ATTEST_SESSION_AUDIT.
    SessionAudit(SessionAuditInfo),
    /// TPM_ST_ATTEST_NV.
    Nv(NvCertifyInfo),
    /// TPM_ST_ATTEST_NV_DIGEST.
    NvDigest(NvDigestCertifyInfo),
}

impl Attested {
    /// The TPM_ST selector of this member.
    pub fn tag(&self) -> u16 {
        match self {
            Attested::Certify(_) => c::ST_ATTEST_CERTIFY,
            Attested::Creation(_) => c::ST_ATTEST_CREATION,
            Attested::Quote(_) => c::ST_ATTEST_QUOTE,
            Attested::Time(_) => c::ST_ATTEST_TIME,
            Attested::SessionAudit(_) => c::ST_ATTEST_SESSION_AUDIT,
            Attested::CommandAudit(_) => c::ST_ATTEST_COMMAND_AUDIT,
            Attested::Nv(_) => c::ST_ATTEST_NV,
            Attested::NvDigest(_) => ST_ATTEST_NV_DIGEST,
        }
    }

    /// The member selected by `tag` (TPM_RC_SELECTOR for another).
    pub fn read(r: &mut Reader<'_>, tag: u16) -> TpmResult<Attested> {
        Ok(match tag {
            c::ST_ATTEST_CERTIFY => Attested::Certify(CertifyInfo::unmarshal(r)?),
            c::ST_ATTEST_CREATION => Attested::Creation(CreationInfo::unmarshal(r)?),
            c::ST_ATTEST_QUOTE => Attested::Quote(QuoteInfo::unmarshal(r)?),
            c::ST_ATTEST_TIME => Attested::Time(TimeAttestInfo::unmarshal(r)?),
            c::ST_ATTEST_SESSION_AUDIT => Attested::SessionAudit(SessionAuditInfo::unmarshal(r)?),
            c::ST_ATTEST_COMMAND_AUDIT => Attested::CommandAudit(CommandAuditInfo::unmarshal(r)?),
            c::ST_ATTEST_NV => Attested::Nv(NvCertifyInfo::unmarshal(r)?),
            ST_ATTEST_NV_DIGEST => Attested::NvDigest(NvDigestCertifyInfo::unmarshal(r)?),
            _ => return err(c::RC_SELECTOR),
        })
    }
}

impl Marshal for Attested {
    fn marshal(&self, w: &mut Vec<u8>) {
        match self {
            Attested::Certify(i) => i.marshal(w),
            Attested::Creation(i) => i.marshal(w),
            Attested::Quote(i) => i.marshal(w),
            Attested::Time(i) => i.marshal(w),
            Attested::SessionAudit(i) => i.marshal(w),
            Attested::CommandAudit(i) => i.marshal(w),
            Attested::Nv(i) => i.marshal(w),
            Attested::NvDigest(i) => i.marshal(w),
        }
    }
}

/// TPMS_ATTEST: the header, then the member its `ty` selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attest {
    /// magic … firmwareVersion.
    pub header: AttestHeader,
    /// attested.
    pub attested: Attested,
}

impl Marshal for Attest {
    fn marshal(&self, w: &mut Vec<u8>) {
        self.header.marshal(w);
        self.attested.marshal(w);
    }
}

impl Unmarshal for Attest {
    fn unmarshal(r: &mut Reader<'_>) -> TpmResult<Self> {
        let header = AttestHeader::unmarshal(r)?;
        let attested = Attested::read(r, header.ty)?;
        Ok(Attest { header, attested })
    }
}

tpm_response! {
    /// The response of every attestation command: the TPM2B_ATTEST
    /// (certifyInfo, quoted, timeInfo) and the TPMT_SIGNATURE over it.
    pub struct AttestOut { pub attest: Buffer<MAX_ATTEST>, pub signature: Signature }
}

tpm_params! {
    /// TPM2_Certify and TPM2_GetTime parameters.
    pub struct AttestIn { pub qualifying_data: Data, pub in_scheme: SigScheme }
}

tpm_params! {
    /// TPM2_CertifyCreation parameters.
    pub struct CertifyCreationIn {
        pub qualifying_data: Data,
        pub creation_hash: Digest,
        pub in_scheme: SigScheme,
        pub creation_ticket: CreationTicket,
    }
}

tpm_params! {
    /// TPM2_Quote parameters.
    pub struct QuoteIn { pub qualifying_data: Data, pub in_scheme: SigScheme, pub pcr_select: PcrSelectionList }
}

/// Who signs an attestation: the loaded key at `handle` with the scheme
/// chosen for it, or nobody (TPM_RH_NULL: an unsigned attestation).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Signer {
    /// The key's handle; None for TPM_RH_NULL. The key is looked up again
    /// when signing rather than copied, so no copy of its secret is made.
    handle: Option<u32>,
    /// The scheme (TPM_ALG_NULL without a key).
    pub scheme: Scheme,
}

/// The 128-bit obfuscation of a signer's counters, read as two 64-bit words.
fn obfuscation(sh_proof: &[u8], qualified_signer: &[u8]) -> (u64, u64) {
    // The hash is the context integrity hash (SHA-512), as libtpms and the
    // reference code use, rather than the key's nameAlg that Part 3 18.1
    // names: the value only has to be stable and secret.
    let k = crate::crypto::kdfa(
        c::ALG_SHA512,
        sh_proof,
        b"OBFUSCATE",
        qualified_signer,
        &[],
        128,
    );
    let word = |i: usize| {
        let mut b = [0u8; 8];
        if let Some(s) = k.get(i * 8..i * 8 + 8) {
            b.copy_from_slice(s);
        }
        u64::from_be_bytes(b)
    };
    (word(0), word(1))
}

impl Tpm {
    /// The signer of an attestation whose signHandle is `handle` (handle
    /// number `n`) and whose inScheme (parameter `p`) is `in_scheme`, checked
    /// as libtpms does before anything else: a key that cannot sign is
    /// TPM_RC_KEY on the handle, a scheme that the key refuses or that does
    /// not fit it TPM_RC_SCHEME on inScheme. With TPM_RH_NULL the scheme is
    /// only parsed (Part 3 18.1) and the result has none.
    pub(crate) fn attestation_signer(
        &self,
        handle: u32,
        n: u32,
        in_scheme: Scheme,
        p: u32,
    ) -> TpmResult<Signer> {
        if handle == c::RH_NULL {
            return Ok(Signer {
                handle: None,
                scheme: Scheme::NULL,
            });
        }
        let key = self.object_at(handle, n)?;
        if !is_signing_key(key) {
            return Err(Rc(c::RC_KEY).handle(n));
        }
        let scheme = signing_scheme(key, in_scheme).ok_or(Rc(c::RC_SCHEME).param(p))?;
        Ok(Signer {
            handle: Some(handle),
            scheme,
        })
    }

    /// The attestation of `attested` by `signer` with `extra` as extraData:
    /// the marshalled TPMS_ATTEST and its signature over H_scheme(TPMS_ATTEST)
    /// (the NULL signature without a key). `attested` is built from the
    /// clock and firmware version in the clear (GetTime reports them beside
    /// the header's), read once with the header's.
    ///
    /// For a key outside the endorsement and platform hierarchies, and for no
    /// key, the header's resetCount, restartCount and firmwareVersion are
    /// offset by KDFa(SHA-512, shProof, "OBFUSCATE", qualifiedSigner) so that
    /// keys of the owner cannot be linked through them (Part 3 18.1).
    pub(crate) fn attest(
        &mut self,
        signer: &Signer,
        extra: &Data,
        attested: impl FnOnce(&TimeAttestInfo) -> Attested,
    ) -> TpmResult<AttestOut> {
        let pw = self.pw.as_ref().ok_or(Rc(c::RC_INITIALIZE))?;
        let key = match signer.handle {
            Some(h) => Some(self.object(h).ok_or(Rc(c::RC_HANDLE))?),
            None => None,
        };
        let (fw1, fw2) = super::capability::version_words();
        let plain = TimeAttestInfo {
            time: TimeInfo {
                time: pw.clock.time(),
                clock_info: ClockInfo {
                    clock: pw.clock.clock(),
                    reset_count: self.perm.reset_count,
                    restart_count: self.perm.restart_count,
                    safe: pw.clock.safe,
                },
            },
            firmware_version: (u64::from(fw1) << 32) | u64::from(fw2),
        };
        let attested = attested(&plain);
        let mut header = AttestHeader {
            magic: c::GENERATED_VALUE,
            ty: attested.tag(),
            qualified_signer: match key {
                Some(k) => k.qualified_name.clone(),
                // The Qualified Name of TPM_RH_NULL is the handle.
                None => Buffer(c::RH_NULL.to_be_bytes().to_vec()),
            },
            extra_data: extra.clone(),
            clock_info: plain.time.clock_info.clone(),
            firmware_version: plain.firmware_version,
        };
        let hierarchy = key.map_or(c::RH_NULL, |k| k.hierarchy);
        if !matches!(hierarchy, c::RH_ENDORSEMENT | c::RH_PLATFORM) {
            let (o0, o1) = obfuscation(&self.perm.sh_proof.0, &header.qualified_signer.0);
            let ci = &mut header.clock_info;
            header.firmware_version = header.firmware_version.wrapping_add(o0);
            ci.reset_count = ci.reset_count.wrapping_add((o1 >> 32) as u32);
            ci.restart_count = ci.restart_count.wrapping_add(o1 as u32);
        }
        let bytes = Attest { header, attested }.to_bytes();
        let signature = match key {
            None => Signature::Null,
            Some(k) => {
                let digest = crate::crypto::digest(signer.scheme.hash, &[&bytes]);
                sign_digest(self, k, signer.scheme, &digest)?
            }
        };
        self.end_ecdaa(signer.scheme);
        Ok(AttestOut {
            attest: Buffer(bytes),
            signature,
        })
    }

    /// `sel` with every PCR that is not allocated deselected, the bitmaps
    /// kept at their size: a quote names exactly the PCRs its digest covers
    /// (libtpms filters the selection the same way).
    fn allocated_only(&self, sel: &PcrSelectionList) -> TpmResult<PcrSelectionList> {
        let pw = self.pw.as_ref().ok_or(Rc(c::RC_INITIALIZE))?;
        let mut out = PcrSelectionList::default();
        for s in &sel.0 {
            let mut select = vec![0u8; s.select.len()];
            for i in s.indices().filter(|&i| pw.pcrs.value(s.hash, i).is_some()) {
                select[i / 8] |= 1 << (i % 8);
            }
            out.0.push(PcrSelection {
                hash: s.hash,
                select,
            });
        }
        Ok(out)
    }
}

/// TPM2_Certify: the Name and Qualified Name of a loaded object.
pub fn certify(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    let p = AttestIn::parse(&mut ctx.params)?;
    let (object_h, sign_h) = (ctx.handles[0], ctx.handles[1]);
    let signer = tpm.attestation_signer(sign_h, 2, p.in_scheme.0, 2)?;
    let info = CertifyInfo {
        name: Buffer(tpm.entity_name(object_h)),
        qualified_name: tpm.object_at(object_h, 1)?.qualified_name.clone(),
    };
    let out = tpm.attest(&signer, &p.qualifying_data, |_| Attested::Certify(info))?;
    Ok(Response::of(&out))
}

/// TPM2_CertifyCreation: that `creationHash` is the creation data of the
/// object, as its creation ticket vouches.
pub fn certify_creation(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    let p = CertifyCreationIn::parse(&mut ctx.params)?;
    let (sign_h, object_h) = (ctx.handles[0], ctx.handles[1]);
    let signer = tpm.attestation_signer(sign_h, 1, p.in_scheme.0, 3)?;
    let name = tpm.entity_name(object_h);
    // The ticket is made again under the proof of the hierarchy it names, as
    // Create and CreatePrimary made it.
    let ticket = &p.creation_ticket.0;
    let expect = tpm.ticket_hmac(
        c::ST_CREATION,
        ticket.hierarchy,
        &[&name, p.creation_hash.as_slice()],
    );
    if !ct_eq(&expect, ticket.digest.as_slice()) {
        return Err(Rc(c::RC_TICKET).param(4));
    }
    let info = CreationInfo {
        object_name: Buffer(name),
        creation_hash: p.creation_hash,
    };
    let out = tpm.attest(&signer, &p.qualifying_data, |_| Attested::Creation(info))?;
    Ok(Response::of(&out))
}

/// TPM2_Quote: the selected PCRs digested with the signing scheme's hash.
pub fn quote(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    let p = QuoteIn::parse(&mut ctx.params)?;
    let signer = tpm.attestation_signer(ctx.handles[0], 1, p.in_scheme.0, 2)?;
    // Without a key there is no scheme hash to digest the PCRs with, so an
    // unsigned quote does not exist: TPM_RC_SCHEME, as libtpms answers.
    if signer.scheme.hash == c::ALG_NULL {
        return Err(Rc(c::RC_SCHEME).param(2));
    }
    let pcr_select = tpm.allocated_only(&p.pcr_select)?;
    let pcr_digest = Buffer(tpm.pcr_digest(signer.scheme.hash, &pcr_select)?);
    let info = QuoteInfo {
        pcr_select,
        pcr_digest,
    };
    let out = tpm.attest(&signer, &p.qualifying_data, |_| Attested::Quote(info))?;
    Ok(Response::of(&out))
}

/// TPM2_GetSessionAuditDigest: the audit digest of an HMAC session and
/// whether it is the exclusive audit session, as it stands before this
/// command (which, audited by no session, then ends any exclusivity).
pub fn get_session_audit_digest(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    let p = AttestIn::parse(&mut ctx.params)?;
    let signer = tpm.attestation_signer(ctx.handles[1], 2, p.in_scheme.0, 2)?;
    let session = ctx.handles[2];
    let pw = tpm.pw.as_ref().ok_or(Rc(c::RC_INITIALIZE))?;
    let digest = &pw
        .sessions
        .get(session)
        .ok_or(Rc(c::RC_HANDLE).handle(3))?
        .audit_digest;
    // A session that never audited has no digest to report (libtpms: TPM_RC_TYPE).
    if digest.is_empty() {
        return Err(Rc(c::RC_TYPE).handle(3));
    }
    let info = SessionAuditInfo {
        exclusive_session: pw.exclusive_audit == session,
        session_digest: Buffer(digest.0.clone()),
    };
    let out = tpm.attest(&signer, &p.qualifying_data, |_| {
        Attested::SessionAudit(info)
    })?;
    Ok(Response::of(&out))
}

/// TPM2_GetCommandAuditDigest: the audit counter, hash, command audit digest
/// and the digest of the audited command codes (each a TPM_CC in ascending
/// order). Reading the digest does not clear it (swtpm reports the same
/// digest twice in a row).
pub fn get_command_audit_digest(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    let p = AttestIn::parse(&mut ctx.params)?;
    let signer = tpm.attestation_signer(ctx.handles[1], 2, p.in_scheme.0, 2)?;
    let pw = tpm.pw.as_ref().ok_or(Rc(c::RC_INITIALIZE))?;
    let alg = tpm.perm.command_audit_alg();
    let codes: Vec<u8> = tpm
        .perm
        .audited_commands()
        .iter()
        .flat_map(|cc| cc.to_be_bytes())
        .collect();
    let info = CommandAuditInfo {
        audit_counter: tpm.perm.audit_counter.0,
        digest_alg: alg,
        audit_digest: Buffer(pw.command_audit_digest.clone()),
        command_digest: Buffer(crate::crypto::digest(alg, &[&codes])),
    };
    let out = tpm.attest(&signer, &p.qualifying_data, |_| {
        Attested::CommandAudit(info)
    })?;
    Ok(Response::of(&out))
}

tpm_params! {
    /// TPM2_SetCommandCodeAuditStatus parameters.
    pub struct SetCommandCodeAuditStatusIn {
        pub audit_alg: crate::types::AlgHashOrNull,
        pub set_list: crate::marshal::List<u32, 256>,
        pub clear_list: crate::marshal::List<u32, 256>,
    }
}

/// TPM2_SetCommandCodeAuditStatus (Part 3 21.2): either a new audit hash
/// (the lists must then be empty: TPM_RC_VALUE on auditAlg; the digest is
/// cleared) or changes to the audited list. Codes the TPM does not
/// implement are ignored, and SetCommandCodeAuditStatus stays audited.
pub fn set_command_code_audit_status(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    let p = SetCommandCodeAuditStatusIn::parse(&mut ctx.params)?;
    let alg = p.audit_alg.0;
    if alg != c::ALG_NULL && alg != tpm.perm.command_audit_alg() {
        if !p.set_list.0.is_empty() || !p.clear_list.0.is_empty() {
            return Err(Rc(c::RC_VALUE).param(1));
        }
        tpm.perm.audit_alg.0 = alg;
        tpm.powered()?.command_audit_digest.clear();
        tpm.perm_dirty = true;
        return Ok(Response::default());
    }
    let mut list = tpm.perm.audit_commands.0 .0.clone();
    for &cc in &p.set_list.0 {
        if crate::dispatch::lookup(cc).is_some()
            && cc != c::CC_SetCommandCodeAuditStatus
            && !list.contains(&cc)
        {
            list.push(cc);
        }
    }
    list.retain(|cc| !p.clear_list.0.contains(cc));
    list.sort_unstable();
    if list != tpm.perm.audit_commands.0 .0 {
        tpm.perm.audit_commands.0 .0 = list;
        tpm.perm_dirty = true;
    }
    Ok(Response::default())
}

/// TPM2_GetTime: Time, Clock and the firmware version in the clear, beside
/// the header's copies (obfuscated unless the key is an endorsement or
/// platform key), so the privacy administrator can relate the two.
pub fn get_time(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    let p = AttestIn::parse(&mut ctx.params)?;
    let signer = tpm.attestation_signer(ctx.handles[1], 2, p.in_scheme.0, 2)?;
    let out = tpm.attest(&signer, &p.qualifying_data, |plain| {
        Attested::Time(plain.clone())
    })?;
    Ok(Response::of(&out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_cmd::{b2, command};
    use crate::types::digest_size;
    use crate::{MemoryStore, TpmConfig};

    const SIGN_KEY: u32 = c::TPMA_OBJECT_FIXEDTPM
        | c::TPMA_OBJECT_FIXEDPARENT
        | c::TPMA_OBJECT_SENSITIVEDATAORIGIN
        | c::TPMA_OBJECT_USERWITHAUTH
        | c::TPMA_OBJECT_RESTRICTED
        | c::TPMA_OBJECT_SIGN_ENCRYPT;

    use crate::test_cmd::rc;

    fn started() -> Tpm {
        let mut t = Tpm::new(Box::new(MemoryStore::default()), TpmConfig::default()).unwrap();
        t.power_on(false).unwrap();
        let r = t.execute(
            0,
            &command(c::CC_Startup, &[], None, &c::SU_CLEAR.to_be_bytes()),
        );
        assert_eq!(rc(&r), 0);
        t
    }

    /// A restricted P-256 ECDSA-SHA256 signing primary in `hierarchy`: its
    /// handle and the CreatePrimary response parameters.
    fn ecc_primary(t: &mut Tpm, hierarchy: u32) -> (u32, Vec<u8>) {
        crate::test_cmd::ecc_primary(t, hierarchy, SIGN_KEY, c::ALG_ECDSA)
    }

    /// The TPMS_ATTEST and signature of a successful attestation response.
    fn parse(r: &[u8]) -> (Vec<u8>, Attest, Signature) {
        assert_eq!(rc(r), 0, "{r:02x?}");
        let mut rd = Reader::new(&r[14..]);
        let bytes = Buffer::<MAX_ATTEST>::unmarshal(&mut rd).unwrap().0;
        let sig = Signature::unmarshal(&mut rd).unwrap();
        (bytes.clone(), Attest::from_bytes(&bytes).unwrap(), sig)
    }

    fn verify(t: &Tpm, h: u32, bytes: &[u8], sig: &Signature) {
        let key = t.object(h).unwrap();
        let Signature::Ecc { alg, hash, r, s } = sig else {
            panic!("{sig:?}")
        };
        assert_eq!((*alg, *hash), (c::ALG_ECDSA, c::ALG_SHA256));
        let d = crate::crypto::digest(c::ALG_SHA256, &[bytes]);
        assert!(tpm_crypto::ecc::verify_ecdsa(
            key.curve().unwrap(),
            &key.ecc_public().unwrap(),
            &d,
            &r.0,
            &s.0
        ));
    }

    fn quote(t: &mut Tpm, h: u32, scheme: &[u8], sel: &[u8]) -> Vec<u8> {
        let mut p = b2(b"nonce");
        p.extend(scheme);
        p.extend(sel);
        t.execute(0, &command(c::CC_Quote, &[h], Some(&[b""]), &p))
    }

    /// PCRs 0..=2 of `bank`.
    fn pcr_012(bank: u16) -> Vec<u8> {
        let mut v = 1u32.to_be_bytes().to_vec();
        v.extend(bank.to_be_bytes());
        v.extend([3, 0x07, 0, 0]);
        v
    }

    #[test]
    fn a_quote_digests_the_pcrs_and_verifies() {
        let mut t = started();
        let (ak, _) = ecc_primary(&mut t, c::RH_ENDORSEMENT);
        let null = c::ALG_NULL.to_be_bytes();
        let (bytes, a, sig) = parse(&quote(&mut t, ak, &null, &pcr_012(c::ALG_SHA256)));
        verify(&t, ak, &bytes, &sig);
        assert_eq!(a.header.magic, 0xff54_4347);
        assert_eq!(a.header.ty, c::ST_ATTEST_QUOTE);
        assert_eq!(a.header.extra_data.0, b"nonce");
        assert_eq!(
            a.header.qualified_signer,
            t.object(ak).unwrap().qualified_name
        );
        // An endorsement key reports the counters as they are.
        assert_eq!(a.header.clock_info.reset_count, t.perm.reset_count);
        assert_eq!(a.header.clock_info.restart_count, t.perm.restart_count);
        let Attested::Quote(q) = a.attested else {
            panic!()
        };
        // PCRs 0-2 are all zero after Startup(CLEAR).
        assert_eq!(
            q.pcr_digest.0,
            crate::crypto::digest(c::ALG_SHA256, &[&[0u8; 96]])
        );
        assert_eq!(q.pcr_select.0[0].select, [7, 0, 0]);
    }

    #[test]
    fn a_quote_names_only_allocated_pcrs() {
        let mut t = started();
        // Deallocate the SHA-512 bank (effective at the next Startup(CLEAR)).
        let mut p = 1u32.to_be_bytes().to_vec();
        p.extend(c::ALG_SHA512.to_be_bytes());
        p.extend([3, 0, 0, 0]);
        let r = t.execute(
            0,
            &command(c::CC_PCR_Allocate, &[c::RH_PLATFORM], Some(&[b""]), &p),
        );
        assert_eq!(rc(&r), 0);
        let su = c::SU_CLEAR.to_be_bytes();
        assert_eq!(
            rc(&t.execute(0, &command(c::CC_Shutdown, &[], None, &su))),
            0
        );
        t.power_off().unwrap();
        t.power_on(false).unwrap();
        assert_eq!(
            rc(&t.execute(0, &command(c::CC_Startup, &[], None, &su))),
            0
        );
        let (ak, _) = ecc_primary(&mut t, c::RH_ENDORSEMENT);
        let null = c::ALG_NULL.to_be_bytes();
        // Nothing of the bank is selected any more; the digest is of nothing.
        let (_, a, _) = parse(&quote(&mut t, ak, &null, &pcr_012(c::ALG_SHA512)));
        let Attested::Quote(q) = a.attested else {
            panic!()
        };
        assert_eq!(q.pcr_select.0[0].hash, c::ALG_SHA512);
        assert_eq!(q.pcr_select.0[0].select, [0, 0, 0]);
        assert_eq!(q.pcr_digest.0, crate::crypto::digest(c::ALG_SHA256, &[]));
    }

    #[test]
    fn quote_refusals_match_libtpms() {
        let mut t = started();
        let (ak, _) = ecc_primary(&mut t, c::RH_ENDORSEMENT);
        let sel = pcr_012(c::ALG_SHA256);
        let scheme = |alg: u16, hash: u16| [alg.to_be_bytes(), hash.to_be_bytes()].concat();
        let p2 = c::RC_SCHEME | c::RC_P | (2 << 8);
        // No key: no hash for the PCR digest.
        let null = c::ALG_NULL.to_be_bytes();
        assert_eq!(rc(&quote(&mut t, c::RH_NULL, &null, &sel)), p2);
        // Another hash, another algorithm of the family, another family.
        for s in [
            scheme(c::ALG_ECDSA, c::ALG_SHA384),
            scheme(c::ALG_ECSCHNORR, c::ALG_SHA256),
            scheme(c::ALG_RSASSA, c::ALG_SHA256),
        ] {
            assert_eq!(rc(&quote(&mut t, ak, &s, &sel)), p2);
        }
    }

    #[test]
    fn owner_keys_see_obfuscated_counters_and_get_time_shows_them_plain() {
        let mut t = started();
        let (key, _) = ecc_primary(&mut t, c::RH_OWNER);
        let mut p = b2(b"q");
        p.extend(c::ALG_NULL.to_be_bytes());
        let r = t.execute(
            0,
            &command(
                c::CC_GetTime,
                &[c::RH_ENDORSEMENT, key],
                Some(&[b"", b""]),
                &p,
            ),
        );
        let (bytes, a, sig) = parse(&r);
        verify(&t, key, &bytes, &sig);
        let Attested::Time(plain) = &a.attested else {
            panic!()
        };
        let ci = &plain.time.clock_info;
        assert_eq!(
            (ci.reset_count, ci.restart_count),
            (t.perm.reset_count, t.perm.restart_count)
        );
        assert_eq!(ci.clock, a.header.clock_info.clock, "one reading of Clock");
        let (o0, o1) = obfuscation(&t.perm.sh_proof.0, &a.header.qualified_signer.0);
        let h = &a.header;
        assert_eq!(h.firmware_version, plain.firmware_version.wrapping_add(o0));
        assert_eq!(
            h.clock_info.reset_count,
            ci.reset_count.wrapping_add((o1 >> 32) as u32)
        );
        assert_eq!(
            h.clock_info.restart_count,
            ci.restart_count.wrapping_add(o1 as u32)
        );
        // The obfuscation is KDFa(SHA-512, shProof, "OBFUSCATE", QN), 128 bits.
        let k = crate::crypto::kdfa(
            c::ALG_SHA512,
            &t.perm.sh_proof.0,
            b"OBFUSCATE",
            &h.qualified_signer.0,
            &[],
            128,
        );
        assert_eq!(o0.to_be_bytes(), k[..8]);
        assert_eq!(o1.to_be_bytes(), k[8..16]);
        assert_ne!((o0, o1), (0, 0));
    }

    #[test]
    fn get_time_needs_the_endorsement_handle() {
        let mut t = started();
        let mut p = b2(b"");
        p.extend(c::ALG_NULL.to_be_bytes());
        let r = t.execute(
            0,
            &command(
                c::CC_GetTime,
                &[c::RH_OWNER, c::RH_NULL],
                Some(&[b"", b""]),
                &p,
            ),
        );
        assert_eq!(rc(&r), c::RC_VALUE | (1 << 8));
        let r = t.execute(
            0,
            &command(
                c::CC_GetTime,
                &[c::RH_ENDORSEMENT, c::RH_NULL],
                Some(&[b"", b""]),
                &p,
            ),
        );
        let (_, a, sig) = parse(&r);
        assert_eq!(sig, Signature::Null);
        assert_eq!(a.header.qualified_signer.0, c::RH_NULL.to_be_bytes());
    }

    #[test]
    fn certify_creation_checks_the_ticket() {
        let mut t = started();
        let (key, resp) = ecc_primary(&mut t, c::RH_OWNER);
        let mut r = Reader::new(&resp);
        for _ in 0..2 {
            let n = u16::unmarshal(&mut r).unwrap() as usize;
            r.take(n).unwrap();
        }
        let hash = Digest::unmarshal(&mut r).unwrap();
        let ticket = crate::types::Ticket::unmarshal(&mut r).unwrap();
        assert_eq!(ticket.hierarchy, c::RH_OWNER);
        let certify = |t: &mut Tpm, ticket: &crate::types::Ticket| {
            let mut p = b2(b"q");
            p.extend(hash.to_bytes());
            p.extend(c::ALG_NULL.to_be_bytes());
            p.extend(ticket.to_bytes());
            t.execute(
                0,
                &command(c::CC_CertifyCreation, &[key, key], Some(&[b""]), &p),
            )
        };
        let (bytes, a, sig) = parse(&certify(&mut t, &ticket));
        verify(&t, key, &bytes, &sig);
        let Attested::Creation(ci) = a.attested else {
            panic!()
        };
        assert_eq!(ci.object_name.0, t.object(key).unwrap().name);
        assert_eq!(ci.creation_hash, hash);
        assert_eq!(digest_size(c::ALG_SHA256), ci.creation_hash.len());
        // A ticket of another hierarchy or with a changed digest is refused.
        let p4 = c::RC_TICKET | c::RC_P | (4 << 8);
        let mut other = ticket.clone();
        other.hierarchy = c::RH_ENDORSEMENT;
        assert_eq!(rc(&certify(&mut t, &other)), p4);
        let mut bad = ticket;
        bad.digest.0[0] ^= 1;
        assert_eq!(rc(&certify(&mut t, &bad)), p4);
    }

    #[test]
    fn certify_names_the_object() {
        let mut t = started();
        let (ak, _) = ecc_primary(&mut t, c::RH_ENDORSEMENT);
        let (obj, _) = ecc_primary(&mut t, c::RH_OWNER);
        let mut p = b2(b"");
        p.extend(c::ALG_NULL.to_be_bytes());
        let r = t.execute(
            0,
            &command(c::CC_Certify, &[obj, ak], Some(&[b"", b""]), &p),
        );
        let (bytes, a, sig) = parse(&r);
        verify(&t, ak, &bytes, &sig);
        let o = t.object(obj).unwrap();
        assert_eq!(
            a.attested,
            Attested::Certify(CertifyInfo {
                name: Buffer(o.name.clone()),
                qualified_name: o.qualified_name.clone(),
            })
        );
        // A scheme of another key family is TPM_RC_SCHEME on inScheme.
        let mut p = b2(b"");
        p.extend(c::ALG_RSASSA.to_be_bytes());
        p.extend(c::ALG_SHA256.to_be_bytes());
        let r = t.execute(
            0,
            &command(c::CC_Certify, &[obj, obj], Some(&[b"", b""]), &p),
        );
        assert_eq!(rc(&r), c::RC_SCHEME | c::RC_P | (2 << 8));
    }
}
