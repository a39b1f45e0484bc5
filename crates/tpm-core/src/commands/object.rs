//! Object commands (Part 3 chapter 12 and CreatePrimary of chapter 24):
//! CreatePrimary, Create, CreateLoaded, Load, LoadExternal, ReadPublic,
//! ObjectChangeAuth and Unseal.

use crate::auth::entity::is_persistent;
use crate::constants as c;
use crate::dispatch::Ctx;
use crate::engine::objects::Object;
use crate::engine::{Response, Tpm};
use crate::marshal::{Buffer, Marshal, Reader, Sized2b, Unmarshal};
use crate::object::attributes::{
    check_derived, check_external, check_loaded, check_template, is_derivation_parent, ParentAttrs,
    UNNUMBERED,
};
use crate::object::generate::{derive_primary, generate};
use crate::object::protect::{check_binding, unwrap, wrap};
use crate::object::{qualified_name, Loaded};
use crate::rc::{err, Rc, TpmResult};
use crate::types::{
    Auth, CreationData, Data, Digest, Name, PcrSelectionList, Private, Public2b, PublicArea,
    SensitiveArea, SensitiveCreate2b, SensitiveData, Ticket,
};
use crate::{tpm_params, tpm_response};

tpm_params! {
    /// Parameters of TPM2_Create and TPM2_CreatePrimary.
    pub struct CreateIn {
        pub in_sensitive: SensitiveCreate2b,
        pub in_public: Public2b,
        pub outside_info: Data,
        pub creation_pcr: PcrSelectionList,
    }
}

tpm_response! {
    /// TPM2_CreatePrimary response parameters.
    pub struct CreatePrimaryOut {
        pub out_public: Public2b,
        pub creation_data: Sized2b<CreationData>,
        pub creation_hash: Digest,
        pub creation_ticket: Ticket,
        pub name: Name,
    }
}

tpm_response! {
    /// TPM2_Create response parameters.
    pub struct CreateOut {
        pub out_private: Private,
        pub out_public: Public2b,
        pub creation_data: Sized2b<CreationData>,
        pub creation_hash: Digest,
        pub creation_ticket: Ticket,
    }
}

tpm_params! {
    /// TPM2_Load parameters.
    pub struct LoadIn { pub in_private: Private, pub in_public: Public2b }
}

tpm_response! {
    /// TPM2_Load / TPM2_LoadExternal response parameters.
    pub struct LoadOut { pub name: Name }
}

/// A TPM2B_SENSITIVE that may be empty (LoadExternal's inPrivate).
#[derive(Debug, Clone)]
pub struct OptionalSensitive(pub Option<SensitiveArea>);

impl Unmarshal for OptionalSensitive {
    fn unmarshal(r: &mut Reader<'_>) -> TpmResult<Self> {
        if u16::unmarshal(&mut r.clone())? == 0 {
            u16::unmarshal(r)?;
            return Ok(OptionalSensitive(None));
        }
        Sized2b::<SensitiveArea>::unmarshal(r).map(|s| OptionalSensitive(Some(s.0)))
    }
}

tpm_params! {
    /// TPM2_LoadExternal parameters.
    pub struct LoadExternalIn {
        pub in_private: OptionalSensitive,
        pub in_public: Public2b,
        pub hierarchy: u32,
    }
}

tpm_response! {
    /// TPM2_ReadPublic response parameters.
    pub struct ReadPublicOut { pub out_public: Public2b, pub name: Name, pub qualified_name: Name }
}

tpm_params! {
    /// TPM2_ObjectChangeAuth parameters.
    pub struct ChangeAuthIn { pub new_auth: Auth }
}

tpm_response! {
    /// TPM2_ObjectChangeAuth response parameters.
    pub struct ChangeAuthOut { pub out_private: Private }
}

tpm_response! {
    /// TPM2_Unseal response parameters.
    pub struct UnsealOut { pub out_data: SensitiveData }
}

tpm_response! {
    /// TPM2_CreateLoaded response parameters.
    pub struct CreateLoadedOut {
        pub out_private: Private,
        pub out_public: Public2b,
        pub name: Name,
    }
}

tpm_params! {
    /// TPM2_CreateLoaded parameters (inPublic is a TPM2B_TEMPLATE, parsed by parent kind).
    pub struct CreateLoadedIn { pub in_sensitive: SensitiveCreate2b, pub in_public: Buffer<{ 2 + 1024 }> }
}

/// TPMA_LOCALITY of a locality number.
fn locality_attr(locality: u8) -> u8 {
    if locality < 5 {
        1 << locality
    } else {
        locality
    }
}

impl Tpm {
    /// The primary seed of hierarchy `h`.
    pub(crate) fn hierarchy_seed(&self, h: u32) -> Option<Vec<u8>> {
        match h {
            c::RH_OWNER => Some(self.perm.sps.0.clone()),
            c::RH_ENDORSEMENT => Some(self.perm.eps.0.clone()),
            c::RH_PLATFORM => Some(self.perm.pps.0.clone()),
            c::RH_NULL => self.pw.as_ref().map(|p| p.null_seed.0.clone()),
            _ => None,
        }
    }

    /// Digest (with `alg`) of the PCRs in `sel`, in selection order.
    pub(crate) fn pcr_digest(&self, alg: u16, sel: &PcrSelectionList) -> TpmResult<Vec<u8>> {
        let pw = self.pw.as_ref().ok_or(Rc(c::RC_INITIALIZE))?;
        let mut data = Vec::new();
        for s in &sel.0 {
            for i in s.indices() {
                if let Some(v) = pw.pcrs.value(s.hash, i) {
                    data.extend_from_slice(v);
                }
            }
        }
        Ok(crate::crypto::digest(alg, &[&data]))
    }

    /// TPMS_CREATION_DATA of a new object, its digest and creation ticket.
    #[allow(clippy::too_many_arguments)]
    fn creation(
        &self,
        locality: u8,
        object: &Loaded,
        parent_name_alg: u16,
        parent_name: &[u8],
        parent_qn: &[u8],
        outside_info: Data,
        pcrs: PcrSelectionList,
    ) -> TpmResult<(Sized2b<CreationData>, Digest, Ticket)> {
        let alg = object.public.name_alg;
        let data = CreationData {
            pcr_digest: Buffer(self.pcr_digest(alg, &pcrs)?),
            pcr_select: pcrs,
            locality: locality_attr(locality),
            parent_name_alg,
            parent_name: Buffer(parent_name.to_vec()),
            parent_qualified_name: Buffer(parent_qn.to_vec()),
            outside_info,
        };
        let hash = crate::crypto::digest(alg, &[&data.to_bytes()]);
        let ticket = Ticket {
            tag: c::ST_CREATION,
            hierarchy: object.hierarchy,
            digest: Buffer(self.ticket_hmac(
                c::ST_CREATION,
                object.hierarchy,
                &[&object.name, &hash],
            )),
        };
        Ok((Sized2b(data), Buffer(hash), ticket))
    }

    /// The object at `h` as a storage parent (TPM_RC_TYPE otherwise, on handle `n`).
    fn storage_parent(&self, h: u32, n: u32) -> TpmResult<&Loaded> {
        let p = self.object_at(h, n)?;
        if !p.public.is_storage() || p.sensitive.is_none() {
            return Err(Rc(c::RC_TYPE).handle(n));
        }
        Ok(p)
    }

    /// Put a new object in a free slot.
    pub(crate) fn load_object(&mut self, obj: Loaded) -> TpmResult<u32> {
        self.powered()?.objects.insert(Object::Key(Box::new(obj)))
    }
}

/// Check a template for creation under `parent`; numbers the error.
fn check_new(
    p: &PublicArea,
    parent: ParentAttrs,
    create: &crate::types::SensitiveCreate,
) -> TpmResult<()> {
    check_template(p, parent, create.user_auth.len(), create.data.len())
        .map_err(|(rc, in_sensitive)| Rc(rc).param(if in_sensitive { 1 } else { 2 }))
}

/// The primary object of `hierarchy` for `public` (checked here) and `create`.
fn primary(
    tpm: &mut Tpm,
    hierarchy: u32,
    create: &crate::types::SensitiveCreate,
    mut public: PublicArea,
) -> TpmResult<Loaded> {
    check_new(&public, ParentAttrs::HIERARCHY, create)?;
    let seed = tpm.hierarchy_seed(hierarchy).ok_or(Rc(c::RC_HIERARCHY))?;
    let sensitive = derive_primary(&mut tpm.primary_cache, &seed, &mut public, create)?;
    let obj = Loaded::new(public, Some(sensitive), Vec::new(), hierarchy);
    // A primary's Qualified Name is computed over the hierarchy handle.
    let qn = qualified_name(obj.public.name_alg, &hierarchy.to_be_bytes(), &obj.name);
    Ok(Loaded {
        qualified_name: Buffer(qn),
        ..obj
    })
}

/// TPM2_CreatePrimary: a deterministic function of the hierarchy's seed and the template.
pub fn create_primary(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    let p = CreateIn::parse(&mut ctx.params)?;
    let hierarchy = ctx.handles[0];
    let obj = primary(tpm, hierarchy, &p.in_sensitive.0, p.in_public.0)?;
    let parent_name = hierarchy.to_be_bytes();
    let (creation_data, creation_hash, creation_ticket) = tpm.creation(
        ctx.locality,
        &obj,
        c::ALG_NULL,
        &parent_name,
        &parent_name,
        p.outside_info,
        p.creation_pcr,
    )?;
    let out = CreatePrimaryOut {
        out_public: Sized2b(obj.public.clone()),
        creation_data,
        creation_hash,
        creation_ticket,
        name: Buffer(obj.name.clone()),
    };
    let handle = tpm.load_object(obj)?;
    Ok(Response {
        handle: Some(handle),
        params: out.to_bytes(),
    })
}

/// A new ordinary object under the storage parent at handle 1: checked,
/// generated from the system RNG, and wrapped for the parent.
fn new_child(
    tpm: &mut Tpm,
    parent_h: u32,
    create: &crate::types::SensitiveCreate,
    mut public: PublicArea,
) -> TpmResult<(Loaded, Private)> {
    let parent = tpm.storage_parent(parent_h, 1)?;
    check_new(
        &public,
        ParentAttrs {
            attributes: parent.public.attributes,
        },
        create,
    )?;
    let sensitive = generate(&mut public, create, &mut tpm_crypto::SystemRng)?;
    let obj = Loaded::new(public, Some(sensitive), Vec::new(), parent.hierarchy);
    let qn = parent.child_qualified_name(&obj.name);
    let private = wrap(parent, &obj.name, obj.sensitive()?)?;
    Ok((
        Loaded {
            qualified_name: Buffer(qn),
            ..obj
        },
        private,
    ))
}

/// TPM2_Create: a new object under a storage parent, returned wrapped.
pub fn create(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    let p = CreateIn::parse(&mut ctx.params)?;
    let parent_h = ctx.handles[0];
    let (obj, out_private) = new_child(tpm, parent_h, &p.in_sensitive.0, p.in_public.0)?;
    let parent = tpm.object_at(parent_h, 1)?;
    let (parent_alg, parent_name, parent_qn) = (
        parent.public.name_alg,
        parent.name.clone(),
        parent.qualified_name.0.clone(),
    );
    let (creation_data, creation_hash, creation_ticket) = tpm.creation(
        ctx.locality,
        &obj,
        parent_alg,
        &parent_name,
        &parent_qn,
        p.outside_info,
        p.creation_pcr,
    )?;
    Ok(Response::of(&CreateOut {
        out_private,
        out_public: Sized2b(obj.public),
        creation_data,
        creation_hash,
        creation_ticket,
    }))
}

/// Parse a TPM2B_TEMPLATE's contents as a TPMT_PUBLIC (parameter 2).
fn template(bytes: &[u8]) -> TpmResult<PublicArea> {
    if bytes.is_empty() {
        return Err(Rc(c::RC_SIZE).param(2));
    }
    PublicArea::from_bytes(bytes).map_err(|e| {
        if e == Rc(c::RC_INSUFFICIENT) {
            Rc(c::RC_SIZE).param(2)
        } else {
            e.param(2)
        }
    })
}

/// TPM2_CreateLoaded: Create + Load in one, CreatePrimary when the parent is a
/// hierarchy, or a derived object under a derivation parent.
pub fn create_loaded(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    let p = CreateLoadedIn::parse(&mut ctx.params)?;
    let parent_h = ctx.handles[0];
    let create = p.in_sensitive.0;
    let derivation = tpm
        .object(parent_h)
        .is_some_and(|o| is_derivation_parent(&o.public));
    let (obj, out_private) = if derivation {
        (
            derive_child(tpm, parent_h, &create, p.in_public.as_slice())?,
            Buffer(Vec::new()),
        )
    } else if tpm.object(parent_h).is_none() {
        let public = template(p.in_public.as_slice())?;
        (primary(tpm, parent_h, &create, public)?, Buffer(Vec::new()))
    } else {
        new_child(tpm, parent_h, &create, template(p.in_public.as_slice())?)?
    };
    let out = CreateLoadedOut {
        out_private,
        out_public: Sized2b(obj.public.clone()),
        name: Buffer(obj.name.clone()),
    };
    let handle = tpm.load_object(obj)?;
    Ok(Response {
        handle: Some(handle),
        params: out.to_bytes(),
    })
}

/// A derived object: its key is a function of the derivation parent's secret
/// and the template's label and context (KDFa with the parent's XOR hash), so
/// it is re-created rather than stored: no private area is returned.
fn derive_child(
    tpm: &mut Tpm,
    parent_h: u32,
    create: &crate::types::SensitiveCreate,
    template_bytes: &[u8],
) -> TpmResult<Loaded> {
    let mut r = Reader::new(template_bytes);
    let (mut public, label, context) = PublicArea::read_derive_template(&mut r)
        .and_then(|v| r.finish().map(|_| v))
        .map_err(|e| e.param(2))?;
    let parent = tpm.object_at(parent_h, 1)?;
    check_derived(
        &public,
        ParentAttrs {
            attributes: parent.public.attributes,
        },
        create.user_auth.len(),
        create.data.len(),
    )
    .map_err(|(rc, in_sensitive)| {
        if rc & UNNUMBERED != 0 {
            Rc(rc & !UNNUMBERED)
        } else {
            Rc(rc).param(if in_sensitive { 1 } else { 2 })
        }
    })?;
    let hash = match parent.public.parms.scheme() {
        s if s.alg == c::ALG_XOR => s.hash,
        _ => parent.public.name_alg,
    };
    let hash = tpm_crypto::HashAlg::from_tpm_alg(hash).ok_or(Rc(c::RC_HASH))?;
    let secret = &parent.sensitive()?.sensitive.0;
    let mut rng = tpm_crypto::KdfaRng::with_contexts(hash, secret, &label.0, &context.0, &[]);
    let sensitive = generate(&mut public, create, &mut rng)?;
    let obj = Loaded::new(public, Some(sensitive), Vec::new(), parent.hierarchy);
    let qn = parent.child_qualified_name(&obj.name);
    Ok(Loaded {
        qualified_name: Buffer(qn),
        ..obj
    })
}

/// TPM2_Load: a wrapped object back under its parent.
pub fn load(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    let p = LoadIn::parse(&mut ctx.params)?;
    let parent_h = ctx.handles[0];
    let public = p.in_public.0;
    if p.in_private.is_empty() {
        return Err(Rc(c::RC_SIZE).param(1));
    }
    let parent = tpm.storage_parent(parent_h, 1)?;
    check_loaded(
        &public,
        ParentAttrs {
            attributes: parent.public.attributes,
        },
    )
    .map_err(|e| e.param(2))?;
    let name = crate::types::object_name(&public, 0);
    let sensitive = unwrap(parent, &name, &p.in_private.0).map_err(|e| e.param(1))?;
    check_binding(&public, &sensitive).map_err(|e| e.param(2))?;
    let hierarchy = parent.hierarchy;
    let qn = parent.child_qualified_name(&name);
    let obj = Loaded::new(public, Some(sensitive), qn, hierarchy);
    let handle = tpm.load_object(obj)?;
    Ok(Response {
        handle: Some(handle),
        params: LoadOut { name: Buffer(name) }.to_bytes(),
    })
}

/// TPM2_LoadExternal: a public key (or a whole external key) in a hierarchy.
pub fn load_external(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    let p = LoadExternalIn::parse(&mut ctx.params)?;
    let public = p.in_public.0;
    let h = p.hierarchy;
    if !matches!(
        h,
        c::RH_OWNER | c::RH_ENDORSEMENT | c::RH_PLATFORM | c::RH_NULL
    ) {
        return Err(Rc(c::RC_VALUE).param(3));
    }
    if !tpm.hierarchy_enabled(h) {
        return Err(Rc(c::RC_HIERARCHY).param(3));
    }
    let with_private = p.in_private.0.is_some();
    // An object whose private part the TPM did not protect may not claim a hierarchy.
    if with_private && h != c::RH_NULL {
        return Err(Rc(c::RC_HIERARCHY).param(3));
    }
    check_external(&public, with_private).map_err(|e| e.param(2))?;
    if let Some(s) = &p.in_private.0 {
        check_binding(&public, s).map_err(|e| e.param(1))?;
    } else {
        check_public_key(&public).map_err(|e| e.param(2))?;
    }
    let name = crate::types::object_name(&public, 0);
    let qn = qualified_name(public.name_alg, &h.to_be_bytes(), &name);
    let obj = Loaded::new(public, p.in_private.0, qn, h);
    let name = obj.name.clone();
    let handle = tpm.load_object(obj)?;
    let name = if name.is_empty() {
        handle.to_be_bytes().to_vec()
    } else {
        name
    };
    Ok(Response {
        handle: Some(handle),
        params: LoadOut { name: Buffer(name) }.to_bytes(),
    })
}

/// The public key of a public-only object must be usable: an RSA modulus of
/// the stated size, an ECC point on the curve.
fn check_public_key(public: &PublicArea) -> TpmResult<()> {
    use crate::types::{Parms, Unique};
    match (&public.parms, &public.unique) {
        (
            Parms::Rsa {
                key_bits, exponent, ..
            },
            Unique::Rsa(n),
        ) => {
            if n.len() * 8 != *key_bits as usize {
                return err(c::RC_KEY);
            }
            tpm_crypto::RsaPublic::new(&n.0, *exponent).map_err(|_| Rc(c::RC_KEY))?;
        }
        (Parms::Ecc { curve, .. }, Unique::Ecc(p)) => {
            let curve = tpm_crypto::Curve::from_tpm(*curve).ok_or(Rc(c::RC_CURVE))?;
            let point = tpm_crypto::Point::new(&p.x.0, &p.y.0);
            if !tpm_crypto::ecc::is_on_curve(curve, &point) {
                return err(c::RC_ECC_POINT);
            }
        }
        _ => {}
    }
    Ok(())
}

/// TPM2_ReadPublic.
pub fn read_public(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    ctx.params.finish()?;
    let h = ctx.handles[0];
    let o = tpm.object_at(h, 1)?;
    Ok(Response::of(&ReadPublicOut {
        out_public: Sized2b(o.public.clone()),
        name: Buffer(tpm.entity_name(h)),
        qualified_name: o.qualified_name.clone(),
    }))
}

/// TPM2_ObjectChangeAuth: the object wrapped anew with `newAuth`; the loaded
/// object keeps its old authValue.
pub fn object_change_auth(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    let p = ChangeAuthIn::parse(&mut ctx.params)?;
    let (h, parent_h) = (ctx.handles[0], ctx.handles[1]);
    if is_persistent(h) {
        // A persistent object has no parent to wrap it for.
        return Err(Rc(c::RC_TYPE).handle(1));
    }
    let o = tpm.object_at(h, 1)?;
    let parent = tpm.storage_parent(parent_h, 2)?;
    let size = crate::types::digest_size(o.public.name_alg);
    if crate::auth::trim_zeros(&p.new_auth.0).len() > size {
        return Err(Rc(c::RC_SIZE).param(1));
    }
    // The parent must be the one whose Qualified Name prefixes the object's.
    if parent.child_qualified_name(&o.name) != o.qualified_name.0 {
        return Err(Rc(c::RC_TYPE).handle(2));
    }
    let mut s = o.sensitive()?.clone();
    s.auth_value = p.new_auth;
    let out_private = wrap(parent, &o.name, &s)?;
    Ok(Response::of(&ChangeAuthOut { out_private }))
}

/// TPM2_Unseal: the data of a sealed data object.
pub fn unseal(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    ctx.params.finish()?;
    let o = tpm.object_at(ctx.handles[0], 1)?;
    if o.public.type_alg() != c::ALG_KEYEDHASH {
        return Err(Rc(c::RC_TYPE).handle(1));
    }
    let a = o.public.attributes;
    if a & (c::TPMA_OBJECT_SIGN_ENCRYPT | c::TPMA_OBJECT_DECRYPT | c::TPMA_OBJECT_RESTRICTED) != 0 {
        return Err(Rc(c::RC_ATTRIBUTES).handle(1));
    }
    Ok(Response::of(&UnsealOut {
        out_data: Buffer(o.sensitive()?.sensitive.0.clone()),
    }))
}
