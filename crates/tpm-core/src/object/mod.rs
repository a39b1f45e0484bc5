//! Key objects: what a loaded object holds, how its key material is rebuilt
//! for the crypto layer, how templates are checked (`attributes`), how new
//! keys are made (`generate`) and how private areas are protected under a
//! parent (`protect`).

pub mod attributes;
pub mod generate;
pub mod protect;

use crate::constants as c;
use crate::marshal::{Marshal, Reader, Sized2b, Unmarshal};
use crate::rc::{err, Rc, TpmResult};
use crate::types::{object_name, EccPoint, Name, Parms, PublicArea, SensitiveArea, Unique};
use tpm_crypto::{Curve, EccKey, Point, RsaKey, RsaPublic};

/// A key or data object in the TPM: its public area, its sensitive area (None
/// for a public-only object from LoadExternal) and where it lives.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Loaded {
    /// TPMT_PUBLIC.
    pub public: PublicArea,
    /// TPMT_SENSITIVE, when loaded.
    pub sensitive: Option<SensitiveArea>,
    /// The Name (empty for an object without nameAlg: its handle names it).
    pub name: Vec<u8>,
    /// The Qualified Name.
    pub qualified_name: Name,
    /// The hierarchy the object belongs to (TPM_RH_NULL for external objects).
    pub hierarchy: u32,
}

impl Loaded {
    /// An object from its areas; the Name is computed from `public`.
    pub fn new(
        public: PublicArea,
        sensitive: Option<SensitiveArea>,
        qualified_name: Vec<u8>,
        hierarchy: u32,
    ) -> Loaded {
        let name = if public.name_alg == c::ALG_NULL {
            Vec::new()
        } else {
            object_name(&public, 0)
        };
        Loaded {
            public,
            sensitive,
            name,
            qualified_name: crate::marshal::Buffer(qualified_name),
            hierarchy,
        }
    }

    /// The Qualified Name of a child named `name` under this object.
    pub fn child_qualified_name(&self, name: &[u8]) -> Vec<u8> {
        qualified_name(self.public.name_alg, &self.qualified_name.0, name)
    }

    /// The sensitive area, or TPM_RC_AUTH_UNAVAILABLE-free error for public-only objects.
    pub fn sensitive(&self) -> TpmResult<&SensitiveArea> {
        self.sensitive.as_ref().ok_or(Rc(c::RC_KEY))
    }

    /// The RSA private key (TPM_RC_KEY if not an RSA key with a private part).
    pub fn rsa_key(&self) -> TpmResult<RsaKey> {
        match (&self.public.parms, &self.public.unique) {
            (Parms::Rsa { exponent, .. }, Unique::Rsa(n)) => {
                RsaKey::from_prime(&n.0, *exponent, &self.sensitive()?.sensitive.0)
                    .map_err(|_| Rc(c::RC_KEY))
            }
            _ => err(c::RC_KEY),
        }
    }

    /// The RSA public key.
    pub fn rsa_public(&self) -> TpmResult<RsaPublic> {
        match (&self.public.parms, &self.public.unique) {
            (Parms::Rsa { exponent, .. }, Unique::Rsa(n)) => {
                RsaPublic::new(&n.0, *exponent).map_err(|_| Rc(c::RC_KEY))
            }
            _ => err(c::RC_KEY),
        }
    }

    /// The curve of an ECC key.
    pub fn curve(&self) -> TpmResult<Curve> {
        match &self.public.parms {
            Parms::Ecc { curve, .. } => Curve::from_tpm(*curve).ok_or(Rc(c::RC_CURVE)),
            _ => err(c::RC_KEY),
        }
    }

    /// The ECC private key.
    pub fn ecc_key(&self) -> TpmResult<EccKey> {
        EccKey::from_scalar(self.curve()?, &self.sensitive()?.sensitive.0)
            .map_err(|_| Rc(c::RC_KEY))
    }

    /// The ECC public point.
    pub fn ecc_public(&self) -> TpmResult<Point> {
        match &self.public.unique {
            Unique::Ecc(p) => Ok(Point::new(&p.x.0, &p.y.0)),
            _ => err(c::RC_KEY),
        }
    }
}

/// QN = nameAlg || H_nameAlg(parent QN || Name), with the parent's nameAlg.
pub fn qualified_name(parent_alg: u16, parent_qn: &[u8], name: &[u8]) -> Vec<u8> {
    let mut qn = parent_alg.to_be_bytes().to_vec();
    qn.extend(crate::crypto::digest(parent_alg, &[parent_qn, name]));
    qn
}

/// An ECC point as TPMS_ECC_POINT.
pub fn ecc_point(p: &Point) -> EccPoint {
    EccPoint {
        x: crate::marshal::Buffer(p.x.clone()),
        y: crate::marshal::Buffer(p.y.clone()),
    }
}

/// Stored form (persistent objects, object contexts): hierarchy, Qualified
/// Name, TPM2B_PUBLIC, then whether a sensitive area follows and the TPM2B_SENSITIVE.
impl Marshal for Loaded {
    fn marshal(&self, w: &mut Vec<u8>) {
        self.hierarchy.marshal(w);
        self.qualified_name.marshal(w);
        Sized2b(self.public.clone()).marshal(w);
        match &self.sensitive {
            Some(s) => {
                1u8.marshal(w);
                Sized2b(s.clone()).marshal(w);
            }
            None => 0u8.marshal(w),
        }
    }
}

impl Unmarshal for Loaded {
    fn unmarshal(r: &mut Reader<'_>) -> TpmResult<Self> {
        let hierarchy = u32::unmarshal(r)?;
        let qualified_name = Name::unmarshal(r)?;
        let public = Sized2b::<PublicArea>::unmarshal(r)?.0;
        let sensitive = match u8::unmarshal(r)? {
            0 => None,
            1 => Some(Sized2b::<SensitiveArea>::unmarshal(r)?.0),
            _ => return err(c::RC_VALUE),
        };
        Ok(Loaded::new(public, sensitive, qualified_name.0, hierarchy))
    }
}

impl Default for PublicArea {
    fn default() -> Self {
        PublicArea {
            name_alg: c::ALG_SHA256,
            attributes: 0,
            auth_policy: Default::default(),
            parms: Parms::KeyedHash {
                scheme: crate::types::Scheme::NULL,
            },
            unique: Unique::Digest(Default::default()),
        }
    }
}
