//! The endorsement keys `vtpm setup` makes, as swtpm_setup makes them: the
//! TCG EK Credential Profile (2.x) default templates — RSA 2048 from the
//! low range (template L-1), RSA 3072 and ECC NIST P-384 from the high
//! range (H-6, H-3) — with the persistent handles and NV indices
//! swtpm_setup uses. `--ecc-curve p256` (vtpm's own option) makes the
//! ECC EK from template L-2 instead, with its certificate at 0x01c0000a
//! (where Windows and tpm2_getekcertificate look for an ECC EK certificate)
//! and the key at 0x81010002 (the TCG provisioning guidance's ECC EK handle). `--allow-signing` turns an EK into a non-standard
//! signing key (and `--decryption` keeps it a decryption key too); its
//! template is then written to NV beside the certificate, since a verifier
//! cannot derive it from the profile.

use tpm_core::constants as c;
use tpm_core::marshal::Buffer;
use tpm_core::types::{Parms, PublicArea, Scheme, SymDef, Unique};

/// PolicyA for SHA-256 (profile table "PolicyA"): the L-1 EK's authPolicy,
/// PolicySecret(TPM_RH_ENDORSEMENT).
const POLICY_A_SHA256: [u8; 32] = [
    0x83, 0x71, 0x97, 0x67, 0x44, 0x84, 0xb3, 0xf8, 0x1a, 0x90, 0xcc, 0x8d, 0x46, 0xa5, 0xd7, 0x24,
    0xfd, 0x52, 0xd7, 0x6e, 0x06, 0x52, 0x0b, 0x64, 0xf2, 0xa1, 0xda, 0x1b, 0x33, 0x14, 0x69, 0xaa,
];

/// PolicyB for SHA-384: the high-range EKs' authPolicy (PolicyOR of PolicyA
/// and PolicyC, so the EK is usable with the endorsement auth or userAuth).
const POLICY_B_SHA384: [u8; 48] = [
    0xb2, 0x6e, 0x7d, 0x28, 0xd1, 0x1a, 0x50, 0xbc, 0x53, 0xd8, 0x82, 0xbc, 0xf5, 0xfd, 0x3a, 0x1a,
    0x07, 0x41, 0x48, 0xbb, 0x35, 0xd3, 0xb4, 0xe4, 0xcb, 0x1c, 0x0a, 0xd9, 0xbd, 0xe4, 0x19, 0xca,
    0xcb, 0x47, 0xba, 0x09, 0x69, 0x96, 0x46, 0x15, 0x0f, 0x9f, 0xc0, 0x00, 0xf3, 0xf8, 0x0e, 0x12,
];

/// fixedTPM | fixedParent | sensitiveDataOrigin | adminWithPolicy.
const EK_BASE: u32 = c::TPMA_OBJECT_FIXEDTPM
    | c::TPMA_OBJECT_FIXEDPARENT
    | c::TPMA_OBJECT_SENSITIVEDATAORIGIN
    | c::TPMA_OBJECT_ADMINWITHPOLICY;

/// Which endorsement key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EkKind {
    /// RSA 2048, template L-1.
    Rsa2048,
    /// RSA 3072, template H-6.
    Rsa3072,
    /// ECC NIST P-384, template H-3.
    EccP384,
    /// ECC NIST P-256, template L-2.
    EccP256,
}

/// How the EK may be used (`--allow-signing`, `--decryption`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EkUse {
    /// `--allow-signing`: the EK signs (non-standard).
    pub sign: bool,
    /// Decrypts: always, unless `--allow-signing` was given without `--decryption`.
    pub decrypt: bool,
}

impl EkUse {
    /// From swtpm_setup's two options.
    pub fn new(allow_signing: bool, decryption: bool) -> EkUse {
        EkUse {
            sign: allow_signing,
            decrypt: decryption || !allow_signing,
        }
    }

    /// The standard EK: a restricted decryption key.
    fn standard(self) -> bool {
        !self.sign
    }
}

impl EkKind {
    /// The persistent handle swtpm_setup makes the EK at.
    pub fn handle(self) -> u32 {
        match self {
            EkKind::Rsa2048 => 0x8101_0001,
            EkKind::Rsa3072 => 0x8101_001c,
            EkKind::EccP384 => 0x8101_0016,
            EkKind::EccP256 => 0x8101_0002,
        }
    }

    /// The NV index of the EK certificate (the profile's index for the template).
    pub fn cert_index(self) -> u32 {
        match self {
            EkKind::Rsa2048 => 0x01c0_0002,
            EkKind::Rsa3072 => 0x01c0_001c,
            EkKind::EccP384 => 0x01c0_0016,
            EkKind::EccP256 => 0x01c0_000a,
        }
    }

    /// The NV index of the EK template (written only for a non-standard EK).
    pub fn template_index(self) -> u32 {
        match self {
            EkKind::Rsa2048 => 0x01c0_0004,
            EkKind::Rsa3072 => 0x01c0_001d,
            EkKind::EccP384 => 0x01c0_0017,
            EkKind::EccP256 => 0x01c0_000c,
        }
    }

    /// For messages, as swtpm_setup words them.
    pub fn label(self) -> &'static str {
        match self {
            EkKind::Rsa2048 => "RSA 2048",
            EkKind::Rsa3072 => "RSA 3072",
            EkKind::EccP384 | EkKind::EccP256 => "ECC",
        }
    }

    /// The file name part swtpm_setup uses for `--write-ek-cert-files`.
    pub fn file_label(self) -> &'static str {
        match self {
            EkKind::Rsa2048 => "rsa2048",
            EkKind::Rsa3072 => "rsa3072",
            EkKind::EccP384 => "secp384r1",
            EkKind::EccP256 => "secp256r1",
        }
    }

    /// Whether the template must be stored in NV (a verifier cannot know it).
    pub fn stores_template(self, u: EkUse) -> bool {
        !u.standard()
    }

    /// The CreatePrimary template.
    pub fn template(self, u: EkUse) -> PublicArea {
        let usage = match (u.sign, u.decrypt) {
            (true, true) => c::TPMA_OBJECT_SIGN_ENCRYPT | c::TPMA_OBJECT_DECRYPT,
            (true, false) => c::TPMA_OBJECT_SIGN_ENCRYPT,
            _ => c::TPMA_OBJECT_RESTRICTED | c::TPMA_OBJECT_DECRYPT,
        };
        // The high-range templates (H-3, H-6) take SHA-384, PolicyB,
        // userWithAuth and AES-256; the low-range ones (L-1, L-2) SHA-256,
        // PolicyA and AES-128.
        let high = matches!(self, EkKind::Rsa3072 | EkKind::EccP384);
        let (name_alg, attributes, policy, aes_bits): (u16, u32, &[u8], u16) = if high {
            (
                c::ALG_SHA384,
                EK_BASE | c::TPMA_OBJECT_USERWITHAUTH | usage,
                &POLICY_B_SHA384,
                256,
            )
        } else {
            (c::ALG_SHA256, EK_BASE | usage, &POLICY_A_SHA256, 128)
        };
        // A restricted decryption key is a storage key and carries the
        // profile's AES-CFB; a signing EK carries none.
        let symmetric = if u.standard() {
            aes_cfb(aes_bits)
        } else {
            SymDef::Null
        };
        // The low-range templates fill unique with zeros of the key's size.
        let (key, unique_len) = match self {
            EkKind::Rsa2048 => (Key::Rsa(2048), 256),
            EkKind::Rsa3072 => (Key::Rsa(3072), 0),
            EkKind::EccP384 => (Key::Ecc(c::ECC_NIST_P384), 0),
            EkKind::EccP256 => (Key::Ecc(c::ECC_NIST_P256), 32),
        };
        key_area(name_alg, attributes, policy, symmetric, key, unique_len)
    }
}

/// AES in CFB mode, the symmetric algorithm of a storage key.
fn aes_cfb(bits: u16) -> SymDef {
    SymDef::Cipher {
        alg: c::ALG_AES,
        bits,
        mode: c::ALG_CFB,
    }
}

/// What kind of key: RSA of a size in bits, or ECC on a curve.
#[derive(Clone, Copy)]
enum Key {
    Rsa(u16),
    Ecc(u16),
}

/// A key's public area, with no scheme (and no KDF) and the default RSA
/// exponent; `unique` is `unique_len` zero bytes (each coordinate for ECC).
fn key_area(
    name_alg: u16,
    attributes: u32,
    auth_policy: &[u8],
    symmetric: SymDef,
    key: Key,
    unique_len: usize,
) -> PublicArea {
    let (parms, unique) = match key {
        Key::Rsa(key_bits) => (
            Parms::Rsa {
                symmetric,
                scheme: Scheme::NULL,
                key_bits,
                exponent: 0,
            },
            Unique::Rsa(Buffer(vec![0; unique_len])),
        ),
        Key::Ecc(curve) => (
            Parms::Ecc {
                symmetric,
                scheme: Scheme::NULL,
                curve,
                kdf: Scheme::NULL,
            },
            Unique::Ecc(tpm_core::types::EccPoint {
                x: Buffer(vec![0; unique_len]),
                y: Buffer(vec![0; unique_len]),
            }),
        ),
    };
    PublicArea {
        name_alg,
        attributes,
        auth_policy: Buffer(auth_policy.to_vec()),
        parms,
        unique,
    }
}

/// The NV attributes of the certificate and template indices, as
/// swtpm_setup gives them (profile: platform-created, readable by owner and
/// platform and with its own empty auth, written by the platform, no DA,
/// lockable for good with NV_WriteLock).
pub const CERT_NV_ATTRIBUTES: u32 = c::TPMA_NV_PLATFORMCREATE
    | c::TPMA_NV_AUTHREAD
    | c::TPMA_NV_OWNERREAD
    | c::TPMA_NV_PPREAD
    | c::TPMA_NV_PPWRITE
    | c::TPMA_NV_NO_DA
    | c::TPMA_NV_WRITEDEFINE;

/// The NV index of the platform certificate.
pub const PLATFORM_CERT_INDEX: u32 = 0x01c0_8000;

/// The persistent handle of the storage primary key (`--create-spk`).
pub const SPK_HANDLE: u32 = 0x8100_0001;

/// The storage primary key template of `--create-spk` (`--ecc`: P-384).
pub fn spk_template(ecc: bool, rsa_bits: u16) -> PublicArea {
    let attributes = c::TPMA_OBJECT_FIXEDTPM
        | c::TPMA_OBJECT_FIXEDPARENT
        | c::TPMA_OBJECT_SENSITIVEDATAORIGIN
        | c::TPMA_OBJECT_USERWITHAUTH
        | c::TPMA_OBJECT_NODA
        | c::TPMA_OBJECT_RESTRICTED
        | c::TPMA_OBJECT_DECRYPT;
    // P-384 and RSA 3072 go with SHA-384 and AES-256, RSA 2048 with SHA-256 and AES-128.
    let (name_alg, aes_bits) = if ecc || rsa_bits == 3072 {
        (c::ALG_SHA384, 256)
    } else {
        (c::ALG_SHA256, 128)
    };
    let key = if ecc {
        Key::Ecc(c::ECC_NIST_P384)
    } else {
        Key::Rsa(rsa_bits)
    };
    key_area(name_alg, attributes, &[], aes_cfb(aes_bits), key, 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tpm_core::marshal::Marshal;

    #[test]
    fn l1_template_is_the_profiles() {
        let t = EkKind::Rsa2048.template(EkUse::new(false, false));
        assert_eq!(t.attributes, 0x0003_00b2);
        let mut w = Vec::new();
        t.marshal(&mut w);
        // type, nameAlg, attributes, policy(34), AES-128-CFB, NULL scheme, 2048, 0, unique(258)
        assert_eq!(w.len(), 2 + 2 + 4 + 34 + 6 + 2 + 2 + 4 + 258);
        assert_eq!(&w[..8], &[0, 1, 0, 0x0b, 0, 3, 0, 0xb2]);
    }

    #[test]
    fn high_range_templates_have_user_with_auth_and_policy_b() {
        for k in [EkKind::Rsa3072, EkKind::EccP384] {
            let t = k.template(EkUse::new(false, false));
            assert_eq!(t.attributes, 0x0003_00f2);
            assert_eq!(t.auth_policy.0, POLICY_B_SHA384);
            assert!(!k.stores_template(EkUse::new(false, false)));
        }
        let s = EkKind::EccP384.template(EkUse::new(true, true));
        assert_eq!(s.attributes, 0x0006_00f2);
        assert!(EkKind::EccP384.stores_template(EkUse::new(true, false)));
    }
}
