//! Object structures: TPMT_PUBLIC with its parameter and unique unions,
//! TPMT_SENSITIVE, TPMS_SENSITIVE_CREATE, the scheme structures, ECC points
//! and TPMS_CREATION_DATA.

use super::algorithms::{digest_size, is_hash};
use super::basic::{Auth, Data, Digest, SensitiveData};
use super::pcr::PcrSelectionList;
use super::sym::SymDef;
use crate::constants as c;
use crate::marshal::{Buffer, Marshal, Reader, Sized2b, Unmarshal};
use crate::rc::{err, TpmResult};
use crate::tpm_struct;

/// Largest RSA modulus in octets (RSA-3072; TPM2B_PUBLIC_KEY_RSA).
pub const MAX_RSA_BYTES: usize = 384;
/// Largest TPM2B_ECC_PARAMETER accepted (TPM2_MAX_ECC_KEY_BYTES, as libtpms
/// parses it; coordinates longer than the curve's size fail the point checks).
pub const MAX_ECC_BYTES: usize = 128;
/// Largest ECC private scalar (BN P-638).
pub const MAX_ECC_SCALAR: usize = 80;
/// Largest private part of a key (an RSA prime, a sealed secret, a key).
pub const MAX_SENSITIVE: usize = 192;
/// TPM2B_NAME: a hash algorithm and a digest, or a handle.
pub type Name = Buffer<{ 2 + 64 }>;
/// TPM2B_PUBLIC_KEY_RSA.
pub type RsaModulus = Buffer<MAX_RSA_BYTES>;
/// TPM2B_ECC_PARAMETER.
pub type EccParam = Buffer<MAX_ECC_BYTES>;
/// TPM2B_PRIVATE: integrity HMAC and encrypted TPM2B_SENSITIVE.
pub type Private = Buffer<1024>;
/// TPM2B_PRIVATE_KEY_RSA and friends, as held inside a sensitive area.
pub type SensitiveBits = Buffer<MAX_SENSITIVE>;

/// TPMA_OBJECT bits that must be zero (TPM_RC_RESERVED_BITS otherwise).
pub const OBJECT_RESERVED: u32 = c::TPMA_OBJECT_RESERVED1_MASK
    | c::TPMA_OBJECT_RESERVED2_MASK
    | c::TPMA_OBJECT_RESERVED3_MASK
    | c::TPMA_OBJECT_RESERVED4_MASK
    | c::TPMA_OBJECT_RESERVED5_MASK;

/// The algorithms one scheme union admits, and the code for anything else.
pub struct SchemeSet {
    allowed: &'static [u16],
    error: u32,
}

/// TPMT_RSA_SCHEME.
pub const RSA_SCHEMES: SchemeSet = SchemeSet {
    allowed: &[c::ALG_RSASSA, c::ALG_RSAES, c::ALG_RSAPSS, c::ALG_OAEP],
    error: c::RC_VALUE,
};
/// TPMT_RSA_DECRYPT.
pub const RSA_DECRYPT_SCHEMES: SchemeSet = SchemeSet {
    allowed: &[c::ALG_RSAES, c::ALG_OAEP],
    error: c::RC_VALUE,
};
/// TPMT_ECC_SCHEME.
pub const ECC_SCHEMES: SchemeSet = SchemeSet {
    allowed: &[
        c::ALG_ECDSA,
        c::ALG_ECDH,
        c::ALG_ECDAA,
        c::ALG_SM2,
        c::ALG_ECSCHNORR,
        c::ALG_ECMQV,
    ],
    error: c::RC_SCHEME,
};
/// TPMT_KEYEDHASH_SCHEME.
pub const KEYEDHASH_SCHEMES: SchemeSet = SchemeSet {
    allowed: &[c::ALG_HMAC, c::ALG_XOR],
    error: c::RC_VALUE,
};
/// TPMT_SIG_SCHEME.
pub const SIG_SCHEMES: SchemeSet = SchemeSet {
    allowed: &[
        c::ALG_HMAC,
        c::ALG_RSASSA,
        c::ALG_RSAPSS,
        c::ALG_ECDSA,
        c::ALG_ECDAA,
        c::ALG_SM2,
        c::ALG_ECSCHNORR,
    ],
    error: c::RC_SCHEME,
};
/// TPMT_KDF_SCHEME.
pub const KDF_SCHEMES: SchemeSet = SchemeSet {
    allowed: &[
        c::ALG_MGF1,
        c::ALG_KDF1_SP800_56A,
        c::ALG_KDF2,
        c::ALG_KDF1_SP800_108,
    ],
    error: c::RC_KDF,
};

/// Whether `alg` is a signing scheme.
pub fn is_sig_scheme(alg: u16) -> bool {
    SIG_SCHEMES.allowed.contains(&alg)
}

/// A scheme of any of the scheme unions: algorithm, its hash (when it has
/// one), for XOR its KDF and for ECDAA its commit count. TPM_ALG_NULL
/// carries none of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Scheme {
    /// The scheme algorithm (TPM_ALG_NULL: none).
    pub alg: u16,
    /// The scheme's hash (TPM_ALG_NULL when it has none).
    pub hash: u16,
    /// The KDF of an XOR scheme.
    pub kdf: u16,
    /// The commit count of an ECDAA scheme (TPMS_SCHEME_ECDAA.count).
    pub count: u16,
}

impl Scheme {
    /// TPM_ALG_NULL.
    pub const NULL: Scheme = Scheme {
        alg: c::ALG_NULL,
        hash: c::ALG_NULL,
        kdf: c::ALG_NULL,
        count: 0,
    };

    fn has_hash(alg: u16) -> bool {
        alg != c::ALG_NULL && alg != c::ALG_RSAES
    }

    /// Parse a scheme of set `set` (TPM_ALG_NULL always admitted).
    pub fn read(r: &mut Reader<'_>, set: &SchemeSet) -> TpmResult<Scheme> {
        let alg = u16::unmarshal(r)?;
        if alg != c::ALG_NULL && !set.allowed.contains(&alg) {
            return err(set.error);
        }
        let mut s = Scheme {
            alg,
            ..Scheme::NULL
        };
        if Self::has_hash(alg) {
            s.hash = u16::unmarshal(r)?;
            if !is_hash(s.hash) {
                return err(c::RC_HASH);
            }
        }
        if alg == c::ALG_XOR {
            s.kdf = u16::unmarshal(r)?;
            if s.kdf != c::ALG_KDF1_SP800_108 {
                return err(c::RC_KDF);
            }
        }
        if alg == c::ALG_ECDAA {
            s.count = u16::unmarshal(r)?;
        }
        Ok(s)
    }

    /// Whether this is TPM_ALG_NULL.
    pub fn is_null(self) -> bool {
        self.alg == c::ALG_NULL
    }
}

impl Marshal for Scheme {
    fn marshal(&self, w: &mut Vec<u8>) {
        self.alg.marshal(w);
        if Self::has_hash(self.alg) {
            self.hash.marshal(w);
        }
        if self.alg == c::ALG_XOR {
            self.kdf.marshal(w);
        }
        if self.alg == c::ALG_ECDAA {
            self.count.marshal(w);
        }
    }
}

macro_rules! scheme_type {
    ($(#[$m:meta])* $name:ident, $set:expr) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
        pub struct $name(pub Scheme);
        impl Unmarshal for $name {
            fn unmarshal(r: &mut Reader<'_>) -> TpmResult<Self> {
                Scheme::read(r, &$set).map($name)
            }
        }
        impl Marshal for $name {
            fn marshal(&self, w: &mut Vec<u8>) {
                self.0.marshal(w)
            }
        }
    };
}

scheme_type!(
    /// TPMT_SIG_SCHEME+ as a command parameter.
    SigScheme,
    SIG_SCHEMES
);
scheme_type!(
    /// TPMT_RSA_DECRYPT+ as a command parameter.
    RsaDecryptScheme,
    RSA_DECRYPT_SCHEMES
);
scheme_type!(
    /// TPMT_KDF_SCHEME+ as a command parameter.
    KdfScheme,
    KDF_SCHEMES
);
scheme_type!(
    /// TPMT_ECC_SCHEME+ as a command parameter.
    EccScheme,
    ECC_SCHEMES
);

tpm_struct! {
    /// TPMS_ECC_POINT.
    pub struct EccPoint { pub x: EccParam, pub y: EccParam }
}

/// TPMU_PUBLIC_PARMS with its selector (the object type).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parms {
    /// TPMS_KEYEDHASH_PARMS.
    KeyedHash {
        /// HMAC, XOR or NULL.
        scheme: Scheme,
    },
    /// TPMS_SYMCIPHER_PARMS.
    SymCipher {
        /// The cipher (never NULL).
        sym: SymDef,
    },
    /// TPMS_RSA_PARMS.
    Rsa {
        /// Symmetric algorithm of a storage key (NULL otherwise).
        symmetric: SymDef,
        /// RSA scheme.
        scheme: Scheme,
        /// 1024, 2048 or 3072.
        key_bits: u16,
        /// Public exponent (0: 65537).
        exponent: u32,
    },
    /// TPMS_ECC_PARMS.
    Ecc {
        /// Symmetric algorithm of a storage key (NULL otherwise).
        symmetric: SymDef,
        /// ECC scheme.
        scheme: Scheme,
        /// TPM_ECC_CURVE.
        curve: u16,
        /// KDF scheme.
        kdf: Scheme,
    },
}

impl Parms {
    /// The object type (TPMI_ALG_PUBLIC).
    pub fn type_alg(&self) -> u16 {
        match self {
            Parms::KeyedHash { .. } => c::ALG_KEYEDHASH,
            Parms::SymCipher { .. } => c::ALG_SYMCIPHER,
            Parms::Rsa { .. } => c::ALG_RSA,
            Parms::Ecc { .. } => c::ALG_ECC,
        }
    }

    /// The parameters of object type `ty` (TPM_RC_TYPE for an unimplemented type).
    pub fn read(r: &mut Reader<'_>, ty: u16) -> TpmResult<Parms> {
        let object_sym = |r: &mut Reader<'_>| SymDef::unmarshal_with(r, false);
        Ok(match ty {
            c::ALG_KEYEDHASH => Parms::KeyedHash {
                scheme: Scheme::read(r, &KEYEDHASH_SCHEMES)?,
            },
            c::ALG_SYMCIPHER => {
                let sym = object_sym(r)?;
                if sym == SymDef::Null {
                    return err(c::RC_SYMMETRIC);
                }
                Parms::SymCipher { sym }
            }
            c::ALG_RSA => Parms::Rsa {
                symmetric: object_sym(r)?,
                scheme: Scheme::read(r, &RSA_SCHEMES)?,
                key_bits: {
                    let bits = u16::unmarshal(r)?;
                    if !matches!(bits, 1024 | 2048 | 3072) {
                        return err(c::RC_VALUE);
                    }
                    bits
                },
                exponent: u32::unmarshal(r)?,
            },
            c::ALG_ECC => Parms::Ecc {
                symmetric: object_sym(r)?,
                scheme: Scheme::read(r, &ECC_SCHEMES)?,
                curve: {
                    let curve = u16::unmarshal(r)?;
                    if tpm_crypto::Curve::from_tpm(curve).is_none() {
                        return err(c::RC_CURVE);
                    }
                    curve
                },
                kdf: Scheme::read(r, &KDF_SCHEMES)?,
            },
            _ => return err(c::RC_TYPE),
        })
    }

    /// The symmetric algorithm of a storage parent (NULL where there is none).
    pub fn symmetric(&self) -> SymDef {
        match self {
            Parms::SymCipher { sym } => *sym,
            Parms::Rsa { symmetric, .. } | Parms::Ecc { symmetric, .. } => *symmetric,
            Parms::KeyedHash { .. } => SymDef::Null,
        }
    }

    /// The key's scheme (NULL for a symmetric cipher).
    pub fn scheme(&self) -> Scheme {
        match self {
            Parms::KeyedHash { scheme } | Parms::Rsa { scheme, .. } | Parms::Ecc { scheme, .. } => {
                *scheme
            }
            Parms::SymCipher { .. } => Scheme::NULL,
        }
    }
}

impl Marshal for Parms {
    fn marshal(&self, w: &mut Vec<u8>) {
        match self {
            Parms::KeyedHash { scheme } => scheme.marshal(w),
            Parms::SymCipher { sym } => sym.marshal(w),
            Parms::Rsa {
                symmetric,
                scheme,
                key_bits,
                exponent,
            } => {
                symmetric.marshal(w);
                scheme.marshal(w);
                key_bits.marshal(w);
                exponent.marshal(w);
            }
            Parms::Ecc {
                symmetric,
                scheme,
                curve,
                kdf,
            } => {
                symmetric.marshal(w);
                scheme.marshal(w);
                curve.marshal(w);
                kdf.marshal(w);
            }
        }
    }
}

/// TPMT_PUBLIC_PARMS (TPM2_TestParms): the parameters with their type in front.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicParms(pub Parms);

impl Unmarshal for PublicParms {
    fn unmarshal(r: &mut Reader<'_>) -> TpmResult<Self> {
        let ty = u16::unmarshal(r)?;
        Parms::read(r, ty).map(PublicParms)
    }
}

/// TPMU_PUBLIC_ID: the public key or the digest identifying the object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unique {
    /// keyedHash / sym: TPM2B_DIGEST.
    Digest(Digest),
    /// rsa: TPM2B_PUBLIC_KEY_RSA.
    Rsa(RsaModulus),
    /// ecc: TPMS_ECC_POINT.
    Ecc(EccPoint),
}

impl Marshal for Unique {
    fn marshal(&self, w: &mut Vec<u8>) {
        match self {
            Unique::Digest(d) => d.marshal(w),
            Unique::Rsa(n) => n.marshal(w),
            Unique::Ecc(p) => p.marshal(w),
        }
    }
}

/// TPMT_PUBLIC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicArea {
    /// nameAlg (TPM_ALG_NULL only for some external objects).
    pub name_alg: u16,
    /// TPMA_OBJECT.
    pub attributes: u32,
    /// authPolicy.
    pub auth_policy: Digest,
    /// Type and parameters.
    pub parms: Parms,
    /// unique.
    pub unique: Unique,
}

impl PublicArea {
    /// The object type.
    pub fn type_alg(&self) -> u16 {
        self.parms.type_alg()
    }
    /// Whether attribute bit(s) `bit` are all set.
    pub fn has(&self, bit: u32) -> bool {
        self.attributes & bit == bit
    }
    /// A storage parent: restricted decryption key with a symmetric algorithm.
    pub fn is_storage(&self) -> bool {
        self.has(c::TPMA_OBJECT_RESTRICTED | c::TPMA_OBJECT_DECRYPT)
            && !self.has(c::TPMA_OBJECT_SIGN_ENCRYPT)
            && self.parms.symmetric() != SymDef::Null
            && self.type_alg() != c::ALG_KEYEDHASH
    }
}

impl Marshal for PublicArea {
    fn marshal(&self, w: &mut Vec<u8>) {
        self.type_alg().marshal(w);
        self.name_alg.marshal(w);
        self.attributes.marshal(w);
        self.auth_policy.marshal(w);
        self.parms.marshal(w);
        self.unique.marshal(w);
    }
}

impl Unmarshal for PublicArea {
    fn unmarshal(r: &mut Reader<'_>) -> TpmResult<Self> {
        let ty = u16::unmarshal(r)?;
        let (name_alg, attributes, auth_policy, parms) = read_head(r, ty)?;
        let unique = match ty {
            c::ALG_RSA => Unique::Rsa(RsaModulus::unmarshal(r)?),
            c::ALG_ECC => Unique::Ecc(EccPoint::unmarshal(r)?),
            _ => Unique::Digest(Digest::unmarshal(r)?),
        };
        Ok(PublicArea {
            name_alg,
            attributes,
            auth_policy,
            parms,
            unique,
        })
    }
}

/// The fields of a TPMT_PUBLIC of type `ty` after the type and before `unique`.
fn read_head(r: &mut Reader<'_>, ty: u16) -> TpmResult<(u16, u32, Digest, Parms)> {
    if !matches!(
        ty,
        c::ALG_RSA | c::ALG_ECC | c::ALG_KEYEDHASH | c::ALG_SYMCIPHER
    ) {
        return err(c::RC_TYPE);
    }
    let name_alg = u16::unmarshal(r)?;
    if name_alg != c::ALG_NULL && !is_hash(name_alg) {
        return err(c::RC_HASH);
    }
    let attributes = u32::unmarshal(r)?;
    if attributes & OBJECT_RESERVED != 0 {
        return err(c::RC_RESERVED_BITS);
    }
    let auth_policy = Digest::unmarshal(r)?;
    let parms = Parms::read(r, ty)?;
    Ok((name_alg, attributes, auth_policy, parms))
}

/// TPM2B_PUBLIC.
pub type Public2b = Sized2b<PublicArea>;

/// TPM2B_LABEL (TPMS_DERIVE's label and context).
pub type Label = Buffer<32>;

impl PublicArea {
    /// Parse a template for a derived object (TPM2B_TEMPLATE under a
    /// derivation parent): its unique field is a TPMS_DERIVE (label, context),
    /// returned beside the area, whose unique is left empty.
    pub fn read_derive_template(r: &mut Reader<'_>) -> TpmResult<(PublicArea, Label, Label)> {
        // Everything before `unique` parses as in TPMT_PUBLIC.
        let ty = u16::unmarshal(r)?;
        let (name_alg, attributes, auth_policy, parms) = read_head(r, ty)?;
        let label = Label::unmarshal(r)?;
        let context = Label::unmarshal(r)?;
        let unique = match ty {
            c::ALG_RSA => Unique::Rsa(Buffer(Vec::new())),
            c::ALG_ECC => Unique::Ecc(EccPoint::default()),
            _ => Unique::Digest(Buffer(Vec::new())),
        };
        Ok((
            PublicArea {
                name_alg,
                attributes,
                auth_policy,
                parms,
                unique,
            },
            label,
            context,
        ))
    }
}

/// TPMT_SENSITIVE.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct SensitiveArea {
    /// The object type.
    pub sensitive_type: u16,
    /// authValue.
    pub auth_value: Auth,
    /// seedValue (the storage seed of a parent, the obfuscation of others).
    pub seed_value: Digest,
    /// The private key, symmetric key or sealed data.
    pub sensitive: SensitiveBits,
}

impl std::fmt::Debug for SensitiveArea {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SensitiveArea(type {:#x}, secrets hidden)",
            self.sensitive_type
        )
    }
}

impl Marshal for SensitiveArea {
    fn marshal(&self, w: &mut Vec<u8>) {
        self.sensitive_type.marshal(w);
        self.auth_value.marshal(w);
        self.seed_value.marshal(w);
        self.sensitive.marshal(w);
    }
}

impl Unmarshal for SensitiveArea {
    fn unmarshal(r: &mut Reader<'_>) -> TpmResult<Self> {
        let sensitive_type = u16::unmarshal(r)?;
        let max = match sensitive_type {
            c::ALG_RSA => MAX_RSA_BYTES / 2,
            c::ALG_ECC => MAX_ECC_SCALAR,
            c::ALG_KEYEDHASH => 128,
            c::ALG_SYMCIPHER => 32,
            _ => return err(c::RC_TYPE),
        };
        let auth_value = Auth::unmarshal(r)?;
        let seed_value = Digest::unmarshal(r)?;
        let sensitive = SensitiveBits::unmarshal(r)?;
        if sensitive.len() > max {
            return err(c::RC_SIZE);
        }
        Ok(SensitiveArea {
            sensitive_type,
            auth_value,
            seed_value,
            sensitive,
        })
    }
}

impl Drop for SensitiveArea {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.auth_value.0.zeroize();
        self.seed_value.0.zeroize();
        self.sensitive.0.zeroize();
    }
}

/// TPM2B_SENSITIVE.
pub type Sensitive2b = Sized2b<SensitiveArea>;

tpm_struct! {
    /// TPMS_SENSITIVE_CREATE.
    pub struct SensitiveCreate { pub user_auth: Auth, pub data: SensitiveData }
}

/// TPM2B_SENSITIVE_CREATE.
pub type SensitiveCreate2b = Sized2b<SensitiveCreate>;

tpm_struct! {
    /// TPMS_CREATION_DATA.
    pub struct CreationData {
        pub pcr_select: PcrSelectionList,
        pub pcr_digest: Digest,
        pub locality: u8,
        pub parent_name_alg: u16,
        pub parent_name: Name,
        pub parent_qualified_name: Name,
        pub outside_info: Data,
    }
}

/// The Name of an object: nameAlg || H_nameAlg(public area); the handle for
/// an object without a nameAlg.
pub fn object_name(public: &PublicArea, handle: u32) -> Vec<u8> {
    if digest_size(public.name_alg) == 0 {
        return handle.to_be_bytes().to_vec();
    }
    let mut n = public.name_alg.to_be_bytes().to_vec();
    n.extend(crate::crypto::digest(
        public.name_alg,
        &[&public.to_bytes()],
    ));
    n
}
