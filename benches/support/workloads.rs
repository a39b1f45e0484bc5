//! The part of the load and engine benches both use: a tiny builder over TPM
//! wire bytes (big-endian, TPM2B = u16 size + bytes), the key templates, the
//! object command builders, response helpers, and the key workloads, written
//! once over [`Exec`], which each bench implements for the TPM it drives.
//! Included by both with `#[path = "support/workloads.rs"] mod workloads;`
//! (a file under `benches/support/` is no bench target of its own).

use tpm_core::constants as c;

/// The persistent handle the EvictControl workloads use (and evict again).
pub const PERSISTENT: u32 = 0x8100_0100;

/// A TPM the workloads run on.
pub trait Exec {
    /// One command that must succeed: its response, or which step failed and how.
    fn ok(&mut self, step: &str, cmd: &[u8]) -> Res<Vec<u8>>;
}

// ---------------------------------------------------------------------------
// Marshalling

#[derive(Default)]
pub struct Bytes(Vec<u8>);

impl Bytes {
    fn u8(mut self, v: u8) -> Self {
        self.0.push(v);
        self
    }
    pub fn u16(mut self, v: u16) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn u32(mut self, v: u32) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn raw(mut self, b: &[u8]) -> Self {
        self.0.extend_from_slice(b);
        self
    }
    /// A TPM2B: u16 size, then the bytes.
    fn b2(self, b: &[u8]) -> Self {
        self.u16(b.len() as u16).raw(b)
    }
    /// The authorization area of one password session (TPM_RS_PW, empty
    /// auth); goes after the handles, and makes the command TPM_ST_SESSIONS.
    pub fn pw(mut self) -> Self {
        self.0[..2].copy_from_slice(&c::ST_SESSIONS.to_be_bytes());
        self.u32(9)
            .u32(c::RS_PW)
            .b2(&[])
            .u8(c::TPMA_SESSION_CONTINUESESSION)
            .b2(&[])
    }
    /// The finished command, with its size in the header.
    pub fn done(mut self) -> Vec<u8> {
        let size = self.0.len() as u32;
        self.0[2..6].copy_from_slice(&size.to_be_bytes());
        self.0
    }
}

/// A command's header; then handles, `pw()` if it takes a session, parameters, `done()`.
pub fn cmd(cc: u32) -> Bytes {
    Bytes::default().u16(c::ST_NO_SESSIONS).u32(0).u32(cc)
}

/// fixedTPM|fixedParent|sensitiveDataOrigin|userWithAuth|noDA|restricted|decrypt = 0x00030472.
const STORAGE_KEY: u32 = c::TPMA_OBJECT_FIXEDTPM
    | c::TPMA_OBJECT_FIXEDPARENT
    | c::TPMA_OBJECT_SENSITIVEDATAORIGIN
    | c::TPMA_OBJECT_USERWITHAUTH
    | c::TPMA_OBJECT_NODA
    | c::TPMA_OBJECT_RESTRICTED
    | c::TPMA_OBJECT_DECRYPT;
/// fixedTPM|fixedParent|sensitiveDataOrigin|userWithAuth|sign = 0x00040072.
const SIGNING_KEY: u32 = c::TPMA_OBJECT_FIXEDTPM
    | c::TPMA_OBJECT_FIXEDPARENT
    | c::TPMA_OBJECT_SENSITIVEDATAORIGIN
    | c::TPMA_OBJECT_USERWITHAUTH
    | c::TPMA_OBJECT_SIGN_ENCRYPT;

/// TPMT_PUBLIC of an ECC P-256 storage key (the SRK template): AES-128-CFB, NULL scheme and KDF.
pub fn ecc_storage_template() -> Vec<u8> {
    Bytes::default()
        .u16(c::ALG_ECC)
        .u16(c::ALG_SHA256) // nameAlg
        .u32(STORAGE_KEY)
        .b2(&[]) // authPolicy
        .u16(c::ALG_AES)
        .u16(128)
        .u16(c::ALG_CFB) // symmetric
        .u16(c::ALG_NULL) // scheme
        .u16(c::ECC_NIST_P256)
        .u16(c::ALG_NULL) // kdf
        .b2(&[])
        .b2(&[]) // unique: x, y
        .0
}

/// TPMT_PUBLIC of an RSA-2048 storage key: AES-128-CFB, NULL scheme, default exponent.
fn rsa_storage_template() -> Vec<u8> {
    Bytes::default()
        .u16(c::ALG_RSA)
        .u16(c::ALG_SHA256)
        .u32(STORAGE_KEY)
        .b2(&[])
        .u16(c::ALG_AES)
        .u16(128)
        .u16(c::ALG_CFB)
        .u16(c::ALG_NULL) // scheme
        .u16(2048) // keyBits
        .u32(0) // exponent
        .b2(&[]) // unique
        .0
}

/// TPMT_PUBLIC of an ECC P-256 signing key: ECDSA with SHA-256, no symmetric algorithm.
fn ecc_signing_template() -> Vec<u8> {
    Bytes::default()
        .u16(c::ALG_ECC)
        .u16(c::ALG_SHA256)
        .u32(SIGNING_KEY)
        .b2(&[])
        .u16(c::ALG_NULL) // symmetric
        .u16(c::ALG_ECDSA)
        .u16(c::ALG_SHA256) // scheme
        .u16(c::ECC_NIST_P256)
        .u16(c::ALG_NULL) // kdf
        .b2(&[])
        .b2(&[])
        .0
}

/// CreatePrimary (`parent` a hierarchy) or Create (`parent` a key): empty
/// sensitive, no outsideInfo, no creation PCRs.
fn create(cc: u32, parent: u32, template: &[u8]) -> Vec<u8> {
    let sensitive = Bytes::default().b2(&[]).b2(&[]).0; // userAuth, data
    cmd(cc)
        .u32(parent)
        .pw()
        .b2(&sensitive)
        .b2(template)
        .b2(&[]) // outsideInfo
        .u32(0) // creationPCR: no selections
        .done()
}

pub fn create_primary(template: &[u8]) -> Vec<u8> {
    create(c::CC_CreatePrimary, c::RH_OWNER, template)
}

fn load(parent: u32, private: &[u8], public: &[u8]) -> Vec<u8> {
    cmd(c::CC_Load)
        .u32(parent)
        .pw()
        .b2(private)
        .b2(public)
        .done()
}

/// EvictControl by the owner: persists `object` at `persistent`, or evicts
/// it when `object` is that persistent handle.
pub fn evict_control(object: u32, persistent: u32) -> Vec<u8> {
    cmd(c::CC_EvictControl)
        .u32(c::RH_OWNER)
        .u32(object)
        .pw()
        .u32(persistent)
        .done()
}

pub fn flush(handle: u32) -> Vec<u8> {
    cmd(c::CC_FlushContext).u32(handle).done()
}

// ---------------------------------------------------------------------------
// Responses

pub type Res<T> = Result<T, String>;

pub fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// The TPM2B at `at`: its contents and the offset after it.
fn tpm2b(b: &[u8], at: usize) -> Option<(&[u8], usize)> {
    let size = u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?) as usize;
    Some((b.get(at + 2..at + 2 + size)?, at + 2 + size))
}

/// The handle a CreatePrimary or Load response returns.
fn out_handle(step: &str, resp: &[u8]) -> Res<u32> {
    be32(resp, 10).ok_or_else(|| format!("{step}: short response"))
}

/// outPrivate and outPublic of a Create response (after the parameterSize).
fn create_outputs(resp: &[u8]) -> Res<(&[u8], &[u8])> {
    let (private, at) = tpm2b(resp, 14).ok_or("Create: short response")?;
    let (public, _) = tpm2b(resp, at).ok_or("Create: short response")?;
    Ok((private, public))
}

// ---------------------------------------------------------------------------
// Workloads: an untimed setup (its result, a handle the operation works on),
// and the timed operation

pub fn no_setup<T: Exec>(_: &mut T) -> Res<u32> {
    Ok(0)
}

pub fn primary_ecc_storage<T: Exec>(t: &mut T) -> Res<u32> {
    let resp = t.ok("CreatePrimary", &create_primary(&ecc_storage_template()))?;
    out_handle("CreatePrimary", &resp)
}

/// Two NV writes: persist the loaded `key` at `PERSISTENT`, evict it again.
pub fn op_persist_evict<T: Exec>(t: &mut T, key: u32) -> Res<()> {
    t.ok("EvictControl persist", &evict_control(key, PERSISTENT))?;
    t.ok("EvictControl evict", &evict_control(PERSISTENT, PERSISTENT))?;
    Ok(())
}

pub fn op_child_key<T: Exec>(t: &mut T, parent: u32) -> Res<()> {
    let resp = t.ok(
        "Create",
        &create(c::CC_Create, parent, &ecc_signing_template()),
    )?;
    let (private, public) = create_outputs(&resp)?;
    let resp = t.ok("Load", &load(parent, private, public))?;
    let child = out_handle("Load", &resp)?;
    op_persist_evict(t, child)?;
    t.ok("FlushContext", &flush(child))?;
    Ok(())
}

fn create_primary_and_flush<T: Exec>(t: &mut T, template: &[u8]) -> Res<()> {
    let resp = t.ok("CreatePrimary", &create_primary(template))?;
    let handle = out_handle("CreatePrimary", &resp)?;
    t.ok("FlushContext", &flush(handle))?;
    Ok(())
}

pub fn op_primary_ecc<T: Exec>(t: &mut T, _: u32) -> Res<()> {
    create_primary_and_flush(t, &ecc_storage_template())
}

pub fn op_primary_rsa<T: Exec>(t: &mut T, _: u32) -> Res<()> {
    create_primary_and_flush(t, &rsa_storage_template())
}

// ---------------------------------------------------------------------------
// NV workloads: an index defined once by the owner (empty password) in the
// setup, then one NV command in a loop. Each is one durable NV write.

/// The indices the NV workloads define (and clean-up undefines).
pub const NV_ORDINARY: u32 = 0x0150_0100;
pub const NV_COUNTER: u32 = 0x0150_0101;
pub const NV_EXTEND: u32 = 0x0150_0102;

/// TPM_NT in TPMA_NV bits 7:4.
const NT_COUNTER: u32 = 1 << 4;
const NT_EXTEND: u32 = 4 << 4;

/// NV_DefineSpace by the owner: an index with SHA-256 names, no authValue or policy.
fn nv_define(index: u32, attributes: u32, size: u16) -> Vec<u8> {
    let public = Bytes::default()
        .u32(index)
        .u16(c::ALG_SHA256)
        .u32(attributes)
        .b2(&[]) // authPolicy
        .u16(size)
        .0;
    cmd(c::CC_NV_DefineSpace)
        .u32(c::RH_OWNER)
        .pw()
        .b2(&[]) // auth
        .b2(&public)
        .done()
}

/// NV_UndefineSpace by the owner.
pub fn nv_undefine(index: u32) -> Vec<u8> {
    cmd(c::CC_NV_UndefineSpace)
        .u32(c::RH_OWNER)
        .u32(index)
        .pw()
        .done()
}

/// Define `index` afresh (an index left by an interrupted run is removed first).
fn nv_fresh<T: Exec>(t: &mut T, index: u32, nt: u32, size: u16) -> Res<u32> {
    let _ = t.ok("NV_UndefineSpace", &nv_undefine(index));
    let attributes = c::TPMA_NV_OWNERREAD | c::TPMA_NV_OWNERWRITE | nt;
    t.ok("NV_DefineSpace", &nv_define(index, attributes, size))?;
    Ok(index)
}

pub fn nv_ordinary_64<T: Exec>(t: &mut T) -> Res<u32> {
    nv_fresh(t, NV_ORDINARY, 0, 64)
}

pub fn nv_counter<T: Exec>(t: &mut T) -> Res<u32> {
    nv_fresh(t, NV_COUNTER, NT_COUNTER, 8)
}

pub fn nv_extend_sha256<T: Exec>(t: &mut T) -> Res<u32> {
    nv_fresh(t, NV_EXTEND, NT_EXTEND, 32)
}

/// NV_Write of 64 octets at offset 0, owner-authorized. The contents change
/// every time: a TPM may skip the NV write of unchanged data (both do).
pub fn op_nv_write<T: Exec>(t: &mut T, index: u32) -> Res<()> {
    static ROUND: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);
    let fill = ROUND.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let w = cmd(c::CC_NV_Write)
        .u32(c::RH_OWNER)
        .u32(index)
        .pw()
        .b2(&[fill; 64])
        .u16(0)
        .done();
    t.ok("NV_Write", &w).map(drop)
}

pub fn op_nv_increment<T: Exec>(t: &mut T, index: u32) -> Res<()> {
    let w = cmd(c::CC_NV_Increment)
        .u32(c::RH_OWNER)
        .u32(index)
        .pw()
        .done();
    t.ok("NV_Increment", &w).map(drop)
}

/// NV_Extend with 32 octets of data.
pub fn op_nv_extend<T: Exec>(t: &mut T, index: u32) -> Res<()> {
    let w = cmd(c::CC_NV_Extend)
        .u32(c::RH_OWNER)
        .u32(index)
        .pw()
        .b2(&[0xA5; 32])
        .done();
    t.ok("NV_Extend", &w).map(drop)
}
