//! The X.509 certificates of `vtpm setup`, made with RustCrypto's
//! `x509-cert` builder and signed with the local CA's RSA key
//! (sha256WithRSAEncryption):
//!
//! * the CA certificates (root and intermediate: CA:TRUE, keyCertSign);
//! * EK certificates as the TCG EK Credential Profile describes them and
//!   swtpm-localca makes them: subject `CN=<vmid>` (or `CN=unknown`), a
//!   critical subjectAltName directoryName with the TPM manufacturer, model
//!   and version (2.23.133.2.1/2/3), basicConstraints CA:FALSE, the TPM
//!   specification (family, level, revision; 2.23.133.2.16) in the subject
//!   directory attributes, the issuer's key identifier, key usage
//!   keyEncipherment (RSA) or keyAgreement (ECC) — digitalSignature with
//!   `--allow-signing` — and extended key usage tcg-kp-EKCertificate
//!   (2.23.133.8.1);
//! * the platform certificate: over the EK's key, its subjectAltName the
//!   platform manufacturer, model and version (2.23.133.5.1.1/4/5), extended
//!   key usage 2.23.133.8.2.

use std::time::{Duration, SystemTime};

use const_oid::{AssociatedOid, ObjectIdentifier};
use der::asn1::{Any, BitString, GeneralizedTime, OctetString, SetOfVec, UtcTime, Utf8StringRef};
use der::{Decode, Encode, Sequence};
use rsa::pkcs1v15::SigningKey;
use rsa::{BigUint, RsaPrivateKey, RsaPublicKey};
use sha2::{Digest, Sha256};
use spki::{AlgorithmIdentifierOwned, EncodePublicKey, SubjectPublicKeyInfoOwned};
use x509_cert::attr::{Attribute, AttributeTypeAndValue};
use x509_cert::builder::{Builder, CertificateBuilder, Profile};
use x509_cert::ext::pkix::constraints::BasicConstraints;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{
    AuthorityKeyIdentifier, ExtendedKeyUsage, KeyUsage, KeyUsages, SubjectAltName,
    SubjectKeyIdentifier,
};
use x509_cert::ext::{AsExtension, Extension};
use x509_cert::name::{Name, RdnSequence, RelativeDistinguishedName};
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::{Time, Validity};
use x509_cert::Certificate;

use super::error::{Result, SetupError};

/// tcg-at-tpmManufacturer, tcg-at-tpmModel, tcg-at-tpmVersion.
const TPM_MANUFACTURER: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.23.133.2.1");
const TPM_MODEL: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.23.133.2.2");
const TPM_VERSION: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.23.133.2.3");
/// tcg-at-tpmSpecification.
const TPM_SPECIFICATION: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.23.133.2.16");
/// tcg-at-platformManufacturer, tcg-at-platformModel, tcg-at-platformVersion.
const PLATFORM_MANUFACTURER: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.23.133.5.1.1");
const PLATFORM_MODEL: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.23.133.5.1.4");
const PLATFORM_VERSION: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.23.133.5.1.5");
/// tcg-kp-EKCertificate, tcg-kp-PlatformCertificate.
const KP_EK_CERTIFICATE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.23.133.8.1");
const KP_PLATFORM_CERTIFICATE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.23.133.8.2");
/// id-ecPublicKey, secp384r1.
const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const SECP384R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const PRIME256V1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
/// subjectDirectoryAttributes.
const SUBJECT_DIRECTORY_ATTRIBUTES: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.9");

/// 9999-12-31 23:59:59 UTC: "no well-defined expiration" (RFC 5280 4.1.2.5).
const NO_EXPIRY: Duration = Duration::from_secs(253_402_300_799);

/// The TPM as its certificates describe it (what CMD_GET_INFO reports).
#[derive(Debug, Clone)]
pub struct TpmIdentity {
    /// "id:XXXXXXXX".
    pub manufacturer: String,
    /// The model string.
    pub model: String,
    /// "id:XXXXXXXX".
    pub version: String,
    /// Specification family ("2.0").
    pub family: String,
    /// Specification level.
    pub level: u32,
    /// Specification revision (116 for 1.16).
    pub revision: u32,
}

/// The platform as the platform certificate describes it.
#[derive(Debug, Clone)]
pub struct PlatformIdentity {
    /// `--platform-manufacturer`.
    pub manufacturer: String,
    /// `--platform-model`.
    pub model: String,
    /// `--platform-version`.
    pub version: String,
}

/// An EK's public key.
#[derive(Debug, Clone)]
pub enum EkPublic {
    /// RSA modulus (the exponent is 65537: the templates give 0).
    Rsa(Vec<u8>),
    /// A NIST P-256 or P-384 point.
    Ecc {
        /// TPM_ECC_NIST_P256 or TPM_ECC_NIST_P384.
        curve: u16,
        /// x.
        x: Vec<u8>,
        /// y.
        y: Vec<u8>,
    },
}

impl EkPublic {
    /// The SubjectPublicKeyInfo.
    pub fn spki(&self) -> Result<SubjectPublicKeyInfoOwned> {
        let bad = |e: &dyn std::fmt::Display| SetupError::Cert(format!("EK public key: {e}"));
        match self {
            EkPublic::Rsa(n) => {
                let key = RsaPublicKey::new(BigUint::from_bytes_be(n), BigUint::from(65537u32))
                    .map_err(|e| bad(&e))?;
                let der = key.to_public_key_der().map_err(|e| bad(&e))?;
                SubjectPublicKeyInfoOwned::try_from(der.as_bytes()).map_err(|e| bad(&e))
            }
            EkPublic::Ecc { curve, x, y } => {
                let (oid, size) = match *curve {
                    tpm_core::constants::ECC_NIST_P256 => (PRIME256V1, 32),
                    tpm_core::constants::ECC_NIST_P384 => (SECP384R1, 48),
                    _ => return Err(bad(&"an EK curve other than P-256 or P-384")),
                };
                if x.len() != size || y.len() != size {
                    return Err(bad(&"a coordinate of the wrong size"));
                }
                let mut point = vec![4u8];
                point.extend_from_slice(x);
                point.extend_from_slice(y);
                Ok(SubjectPublicKeyInfoOwned {
                    algorithm: AlgorithmIdentifierOwned {
                        oid: EC_PUBLIC_KEY,
                        parameters: Some(Any::from(&oid)),
                    },
                    subject_public_key: BitString::from_bytes(&point).map_err(|e| bad(&e))?,
                })
            }
        }
    }

    fn is_rsa(&self) -> bool {
        matches!(self, EkPublic::Rsa(_))
    }
}

fn cert_err(e: impl std::fmt::Display) -> SetupError {
    SetupError::Cert(format!("cannot make a certificate: {e}"))
}

/// `CN=<cn>`.
fn common_name(cn: &str) -> Result<Name> {
    // The value is escaped for the RFC 4514 parser.
    let mut escaped = String::new();
    for ch in cn.chars() {
        if matches!(ch, ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=' | '#') {
            escaped.push('\\');
        }
        escaped.push(ch);
    }
    use std::str::FromStr;
    RdnSequence::from_str(&format!("CN={escaped}")).map_err(cert_err)
}

/// A directoryName of UTF8String attributes, one RDN each.
fn directory_name(attrs: &[(ObjectIdentifier, &str)]) -> Result<Name> {
    let mut rdns = Vec::new();
    for (oid, value) in attrs {
        let value = Any::from(Utf8StringRef::new(value).map_err(cert_err)?);
        let atv = AttributeTypeAndValue { oid: *oid, value };
        rdns.push(RelativeDistinguishedName(
            SetOfVec::try_from(vec![atv]).map_err(cert_err)?,
        ));
    }
    Ok(RdnSequence(rdns))
}

/// Validity from now on, without expiry.
fn validity() -> Result<Validity> {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_err(cert_err)?;
    Ok(Validity {
        not_before: Time::UtcTime(
            UtcTime::from_unix_duration(Duration::from_secs(now.as_secs())).map_err(cert_err)?,
        ),
        not_after: Time::GeneralTime(
            GeneralizedTime::from_unix_duration(NO_EXPIRY).map_err(cert_err)?,
        ),
    })
}

/// An extension with the criticality swtpm-localca gives it, whatever its type's default.
struct Marked<T>(T, bool);

impl<T: AssociatedOid> AssociatedOid for Marked<T> {
    const OID: ObjectIdentifier = T::OID;
}

impl<T: Encode> Encode for Marked<T> {
    fn encoded_len(&self) -> der::Result<der::Length> {
        self.0.encoded_len()
    }
    fn encode(&self, w: &mut impl der::Writer) -> der::Result<()> {
        self.0.encode(w)
    }
}

impl<T: AssociatedOid + Encode> AsExtension for Marked<T> {
    fn critical(&self, _: &Name, _: &[Extension]) -> bool {
        self.1
    }
}

/// TPMSpecification ::= SEQUENCE { family UTF8String, level INTEGER, revision INTEGER }.
#[derive(Sequence)]
struct TpmSpecification<'a> {
    family: Utf8StringRef<'a>,
    level: u32,
    revision: u32,
}

/// subjectDirectoryAttributes ::= SEQUENCE OF Attribute (RFC 5280 4.2.1.8).
struct DirectoryAttributes(Vec<Attribute>);

impl AssociatedOid for DirectoryAttributes {
    const OID: ObjectIdentifier = SUBJECT_DIRECTORY_ATTRIBUTES;
}

impl Encode for DirectoryAttributes {
    fn encoded_len(&self) -> der::Result<der::Length> {
        self.0.encoded_len()
    }
    fn encode(&self, w: &mut impl der::Writer) -> der::Result<()> {
        self.0.encode(w)
    }
}

impl AsExtension for DirectoryAttributes {
    fn critical(&self, _: &Name, _: &[Extension]) -> bool {
        false
    }
}

/// The key identifier of a certificate: its subjectKeyIdentifier, or the
/// SHA-1-length prefix of SHA-256 over its key when it has none.
fn key_identifier(cert: &Certificate) -> Result<OctetString> {
    if let Some(exts) = &cert.tbs_certificate.extensions {
        for e in exts {
            if e.extn_id == SubjectKeyIdentifier::OID {
                let ski =
                    SubjectKeyIdentifier::from_der(e.extn_value.as_bytes()).map_err(cert_err)?;
                return Ok(ski.0);
            }
        }
    }
    let bits = cert
        .tbs_certificate
        .subject_public_key_info
        .subject_public_key
        .raw_bytes();
    OctetString::new(&Sha256::digest(bits)[..20]).map_err(cert_err)
}

fn spki_key_identifier(spki: &SubjectPublicKeyInfoOwned) -> Result<OctetString> {
    OctetString::new(&Sha256::digest(spki.subject_public_key.raw_bytes())[..20]).map_err(cert_err)
}

fn serial(n: u64) -> Result<SerialNumber> {
    // DER INTEGER content: big-endian, positive (a leading zero when the top bit is set).
    let bytes = n.to_be_bytes();
    let first = bytes.iter().position(|&b| b != 0).unwrap_or(7);
    let mut v = bytes.get(first..).unwrap_or(&[0]).to_vec();
    if v.first().is_some_and(|b| b & 0x80 != 0) {
        v.insert(0, 0);
    }
    SerialNumber::new(&v).map_err(cert_err)
}

/// A CA certificate for `cn` over `key`: self-signed when `issuer` is None.
pub fn ca_certificate(
    cn: &str,
    key: &RsaPrivateKey,
    issuer: Option<(&Certificate, &RsaPrivateKey)>,
) -> Result<Certificate> {
    let subject = common_name(cn)?;
    let spki = SubjectPublicKeyInfoOwned::try_from(
        key.to_public_key()
            .to_public_key_der()
            .map_err(cert_err)?
            .as_bytes(),
    )
    .map_err(cert_err)?;
    // A random 20-octet serial number, as CAs give their own certificates.
    let mut random = [0u8; 20];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut random);
    random[0] &= 0x7f;
    random[0] |= 0x01;
    let serial = SerialNumber::new(&random).map_err(cert_err)?;
    let ski = spki_key_identifier(&spki)?;
    let (issuer_name, signer_key, akid) = match issuer {
        Some((cert, k)) => (
            Some(cert.tbs_certificate.subject.clone()),
            k,
            Some(key_identifier(cert)?),
        ),
        None => (None, key, None),
    };
    let signer = SigningKey::<Sha256>::new(signer_key.clone());
    let mut b = CertificateBuilder::new(
        Profile::Manual {
            issuer: issuer_name,
        },
        serial,
        validity()?,
        subject,
        spki,
        &signer,
    )
    .map_err(cert_err)?;
    b.add_extension(&BasicConstraints {
        ca: true,
        path_len_constraint: None,
    })
    .map_err(cert_err)?;
    b.add_extension(&KeyUsage(KeyUsages::KeyCertSign.into()))
        .map_err(cert_err)?;
    b.add_extension(&SubjectKeyIdentifier(ski))
        .map_err(cert_err)?;
    if let Some(id) = akid {
        b.add_extension(&AuthorityKeyIdentifier {
            key_identifier: Some(id),
            authority_cert_issuer: None,
            authority_cert_serial_number: None,
        })
        .map_err(cert_err)?;
    }
    b.build::<rsa::pkcs1v15::Signature>().map_err(cert_err)
}

/// What a TPM certificate is about.
pub struct Subject<'a> {
    /// `--vmid` (the subject's common name; "unknown" without it).
    pub vmid: Option<&'a str>,
    /// The EK's public key.
    pub ek: &'a EkPublic,
    /// `--allow-signing`, `--decryption` as they made the EK.
    pub sign: bool,
    /// The EK decrypts.
    pub decrypt: bool,
}

/// The signer's side.
pub struct Issuer<'a> {
    /// The intermediate's certificate.
    pub cert: &'a Certificate,
    /// Its key.
    pub key: &'a RsaPrivateKey,
}

fn leaf_builder<'s>(
    s: &Subject<'_>,
    issuer: &Issuer<'_>,
    serial_number: u64,
    signer: &'s SigningKey<Sha256>,
) -> Result<CertificateBuilder<'s, SigningKey<Sha256>>> {
    let mut b = CertificateBuilder::new(
        Profile::Manual {
            issuer: Some(issuer.cert.tbs_certificate.subject.clone()),
        },
        serial(serial_number)?,
        validity()?,
        common_name(s.vmid.unwrap_or("unknown"))?,
        s.ek.spki()?,
        signer,
    )
    .map_err(cert_err)?;
    b.add_extension(&BasicConstraints {
        ca: false,
        path_len_constraint: None,
    })
    .map_err(cert_err)?;
    b.add_extension(&AuthorityKeyIdentifier {
        key_identifier: Some(key_identifier(issuer.cert)?),
        authority_cert_issuer: None,
        authority_cert_serial_number: None,
    })
    .map_err(cert_err)?;
    Ok(b)
}

/// The EK certificate (DER).
pub fn ek_certificate(
    s: &Subject<'_>,
    tpm: &TpmIdentity,
    issuer: &Issuer<'_>,
    serial_number: u64,
) -> Result<Vec<u8>> {
    let mut usage = KeyUsages::KeyEncipherment.into();
    if !s.ek.is_rsa() {
        usage = KeyUsages::KeyAgreement.into();
    }
    if s.sign {
        usage = if s.decrypt {
            usage | KeyUsages::DigitalSignature
        } else {
            KeyUsages::DigitalSignature.into()
        };
    }
    let spec = TpmSpecification {
        family: Utf8StringRef::new(&tpm.family).map_err(cert_err)?,
        level: tpm.level,
        revision: tpm.revision,
    };
    let value = Any::from_der(&spec.to_der().map_err(cert_err)?).map_err(cert_err)?;
    let attributes = vec![Attribute {
        oid: TPM_SPECIFICATION,
        values: SetOfVec::try_from(vec![value]).map_err(cert_err)?,
    }];
    tpm_certificate(
        s,
        issuer,
        serial_number,
        &[
            (TPM_MANUFACTURER, &tpm.manufacturer),
            (TPM_MODEL, &tpm.model),
            (TPM_VERSION, &tpm.version),
        ],
        KeyUsage(usage),
        KP_EK_CERTIFICATE,
        attributes,
    )
}

/// The platform certificate (DER), over the EK's key.
pub fn platform_certificate(
    s: &Subject<'_>,
    platform: &PlatformIdentity,
    issuer: &Issuer<'_>,
    serial_number: u64,
) -> Result<Vec<u8>> {
    tpm_certificate(
        s,
        issuer,
        serial_number,
        &[
            (PLATFORM_MANUFACTURER, &platform.manufacturer),
            (PLATFORM_MODEL, &platform.model),
            (PLATFORM_VERSION, &platform.version),
        ],
        KeyUsage(KeyUsages::KeyEncipherment.into()),
        KP_PLATFORM_CERTIFICATE,
        Vec::new(),
    )
}

/// A certificate over the EK's key (DER), what the EK and platform
/// certificates have in common: the leaf's fields, then a critical
/// subjectAltName directoryName of `san`, `usage`, the extended key usage
/// `purpose` and, unless empty, the subject directory `attributes` (in the
/// order swtpm-localca writes them).
fn tpm_certificate(
    s: &Subject<'_>,
    issuer: &Issuer<'_>,
    serial_number: u64,
    san: &[(ObjectIdentifier, &str)],
    usage: KeyUsage,
    purpose: ObjectIdentifier,
    attributes: Vec<Attribute>,
) -> Result<Vec<u8>> {
    let signer = SigningKey::<Sha256>::new(issuer.key.clone());
    let mut b = leaf_builder(s, issuer, serial_number, &signer)?;
    b.add_extension(&Marked(
        SubjectAltName(vec![GeneralName::DirectoryName(directory_name(san)?)]),
        true,
    ))
    .map_err(cert_err)?;
    b.add_extension(&usage).map_err(cert_err)?;
    b.add_extension(&Marked(ExtendedKeyUsage(vec![purpose]), false))
        .map_err(cert_err)?;
    if !attributes.is_empty() {
        b.add_extension(&DirectoryAttributes(attributes))
            .map_err(cert_err)?;
    }
    b.build::<rsa::pkcs1v15::Signature>()
        .map_err(cert_err)?
        .to_der()
        .map_err(cert_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_numbers_are_positive_der_integers() {
        assert_eq!(serial(1).unwrap().as_bytes(), &[1]);
        assert_eq!(serial(0x80).unwrap().as_bytes(), &[0, 0x80]);
        assert_eq!(serial(0x1234).unwrap().as_bytes(), &[0x12, 0x34]);
    }

    #[test]
    fn tpm_specification_is_encoded_as_swtpm_puts_it() {
        let spec = TpmSpecification {
            family: Utf8StringRef::new("2.0").unwrap(),
            level: 0,
            revision: 116,
        };
        assert_eq!(
            spec.to_der().unwrap(),
            [0x30, 0x0b, 0x0c, 0x03, b'2', b'.', b'0', 0x02, 0x01, 0x00, 0x02, 0x01, 0x74]
        );
    }
}
