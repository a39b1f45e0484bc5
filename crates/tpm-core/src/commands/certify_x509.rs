//! TPM2_CertifyX509 (Part 3 18.8), in the form of revision 1.59 and later
//! that libtpms 0.9 implements (it carries the reference code of 1.62/1.64):
//! the caller sends a partial certificate — a DER SEQUENCE of an optional
//! signature AlgorithmIdentifier, issuer, validity, subject and the [3]
//! extensions, in any order — and `reserved` (the former qualifyingData)
//! must be empty. The TPM adds version, serialNumber, the signature
//! AlgorithmIdentifier when absent and the subjectPublicKeyInfo of the
//! object, returns them as `addedToCertificate` (a SEQUENCE in certificate
//! order), and signs the digest of the TBSCertificate they make together.
//!
//! Response codes follow libtpms, including its numbering: the reference
//! code numbers signHandle as handle 1 and objectHandle as handle 2 in this
//! command's errors (RC_CertifyX509_signHandle is TPM_RC_H + TPM_RC_1),
//! although objectHandle comes first.

use der::asn1::{BitStringRef, Null, ObjectIdentifier as Oid, UintRef};
use der::{Encode, Header, Tag, TagNumber};

use super::signature::sign_digest;
use crate::constants as c;
use crate::dispatch::Ctx;
use crate::engine::{Response, Tpm};
use crate::marshal::Buffer;
use crate::object::Loaded;
use crate::rc::{Rc, TpmResult};
use crate::types::{Data, Digest, MaxBuffer, Parms, Scheme, SigScheme, Signature, Unique};
use crate::{tpm_params, tpm_response};

tpm_params! {
    /// TPM2_CertifyX509 parameters.
    pub struct CertifyX509In { pub reserved: Data, pub in_scheme: SigScheme, pub partial_certificate: MaxBuffer }
}

tpm_response! {
    /// TPM2_CertifyX509 response.
    pub struct CertifyX509Out { pub added_to_certificate: MaxBuffer, pub tbs_digest: Digest, pub signature: Signature }
}

/// The handle numbers of this command's errors, as libtpms gives them.
const SIGN_HANDLE: u32 = 1;
const OBJECT_HANDLE: u32 = 2;
/// Octets of the serial number at most (the reference's SIZE_OF_X509_SERIAL_NUMBER).
const SERIAL_MAX: usize = 20;

const SEQUENCE: u8 = 0x30;
const OCTET_STRING: u8 = 0x04;
const BIT_STRING: u8 = 0x03;
/// [3] EXPLICIT, the extensions of a TBSCertificate.
const EXTENSIONS: u8 = 0xA3;

/// The DER of the key-usage OID (2.5.29.15) and of the TCG's TPMA_OBJECT
/// extension (2.23.133.10.1.1.1), as an extension's content starts.
const KEY_USAGE_OID: &[u8] = &[0x06, 0x03, 0x55, 0x1D, 0x0F];
const TPMA_OBJECT_OID: &[u8] = &[0x06, 0x07, 0x67, 0x81, 0x05, 0x0A, 0x01, 0x01, 0x01];

/// KeyUsage bits as read into 32 bits with the first bit of the BIT STRING
/// as bit 31 (digitalSignature is bit 0 of the string).
mod usage {
    pub const DIGITAL_SIGNATURE: u32 = 1 << 31;
    pub const NON_REPUDIATION: u32 = 1 << 30;
    pub const KEY_ENCIPHERMENT: u32 = 1 << 29;
    pub const DATA_ENCIPHERMENT: u32 = 1 << 28;
    pub const KEY_AGREEMENT: u32 = 1 << 27;
    pub const KEY_CERT_SIGN: u32 = 1 << 26;
    pub const CRL_SIGN: u32 = 1 << 25;
    pub const ENCIPHER_ONLY: u32 = 1 << 24;
    pub const DECIPHER_ONLY: u32 = 1 << 23;
    /// Uses that need `sign`.
    pub const SIGN: u32 = DIGITAL_SIGNATURE | KEY_CERT_SIGN | CRL_SIGN;
    /// Uses that need `decrypt`.
    pub const DECRYPT: u32 =
        KEY_ENCIPHERMENT | DATA_ENCIPHERMENT | KEY_AGREEMENT | ENCIPHER_ONLY | DECIPHER_ONLY;
}

/// One element: its tag, its contents and its whole encoding.
#[derive(Debug, Clone, Copy)]
struct Element<'a> {
    tag: u8,
    content: &'a [u8],
    whole: &'a [u8],
}

/// Elements read one after the other the way libtpms reads them, so the
/// same partial certificates are accepted: one-octet tags (no high tag
/// numbers), definite lengths in the short form or in one or two octets
/// (below 0x8000) without requiring the shortest form. `None` once anything
/// is malformed or runs past the end.
struct Elements<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Elements<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Elements { buf, at: 0 }
    }

    fn done(&self) -> bool {
        self.at >= self.buf.len()
    }

    fn next(&mut self) -> Option<Element<'a>> {
        let start = self.at;
        let octet = |i: usize| self.buf.get(i).copied();
        let tag = octet(start)?;
        if tag & 0x1F == 0x1F {
            return None;
        }
        let first = octet(start + 1)?;
        let (len, head) = match first {
            0..=0x7F => (usize::from(first), 2),
            0x81 => (usize::from(octet(start + 2)?), 3),
            0x82 => {
                let hi = octet(start + 2)?;
                if hi >= 0x80 {
                    return None;
                }
                (usize::from(hi) << 8 | usize::from(octet(start + 3)?), 4)
            }
            _ => return None,
        };
        let end = start.checked_add(head)?.checked_add(len)?;
        let whole = self.buf.get(start..end)?;
        self.at = end;
        Some(Element {
            tag,
            content: &whole[head..],
            whole,
        })
    }
}

/// The parts of a partial certificate, each as its whole DER encoding.
struct Partial<'a> {
    signature: Option<&'a [u8]>,
    issuer: &'a [u8],
    validity: &'a [u8],
    subject: &'a [u8],
    extensions: &'a [u8],
}

/// Split `cert` into its parts: a SEQUENCE filling it (TPM_RC_SIZE
/// otherwise) of three or four SEQUENCEs and one [3] (TPM_RC_VALUE
/// otherwise). The last three SEQUENCEs are issuer, validity and subject; a
/// fourth before them is the signature algorithm.
fn split_partial(cert: &[u8]) -> TpmResult<Partial<'_>> {
    let value = Rc(c::RC_VALUE).param(3);
    if cert.is_empty() {
        return Err(value);
    }
    let mut outer = Elements::new(cert);
    let top = outer
        .next()
        .filter(|e| e.tag == SEQUENCE && outer.done())
        .ok_or(Rc(c::RC_SIZE).param(3))?;
    let mut inner = Elements::new(top.content);
    let (mut seqs, mut extensions) = (Vec::new(), None);
    while !inner.done() {
        let Some(e) = inner.next() else { break };
        match e.tag {
            SEQUENCE => {
                seqs.push(e.whole);
                if seqs.len() > 4 {
                    break;
                }
            }
            EXTENSIONS if extensions.is_none() => extensions = Some(e.whole),
            _ => return Err(value),
        }
    }
    let extensions = extensions.filter(|_| inner.done()).ok_or(value)?;
    let (signature, rest) = match seqs.as_slice() {
        [s, rest @ ..] if rest.len() == 3 => (Some(*s), rest),
        rest if rest.len() == 3 => (None, rest),
        _ => return Err(value),
    };
    Ok(Partial {
        signature,
        issuer: rest[0],
        validity: rest[1],
        subject: rest[2],
        extensions,
    })
}

/// The value of a BIT STRING element at the start of `bytes`, its first bit
/// as bit 31 (bits past the 32nd are ignored, unused bits dropped); None if
/// it is not a well-formed BIT STRING.
fn bit_string_value(bytes: &[u8]) -> Option<u32> {
    let e = Elements::new(bytes)
        .next()
        .filter(|e| e.tag == BIT_STRING)?;
    let (&unused, data) = e.content.split_first()?;
    if unused >= 8 || (data.is_empty() && unused != 0) {
        return None;
    }
    let mut value = 0u32;
    for (i, b) in data.iter().take(4).enumerate() {
        // The unused bits of the last octet do not count.
        let b = if i + 1 == data.len() {
            b & (0xFFu8 << unused)
        } else {
            *b
        };
        value |= u32::from(b) << (24 - 8 * i);
    }
    Some(value)
}

/// The bits of the extension whose content is `ext` (an OID, maybe a
/// BOOLEAN, then an OCTET STRING holding a BIT STRING); None if malformed.
fn extension_bits(ext: &[u8]) -> Option<u32> {
    let mut elements = Elements::new(ext);
    while let Some(e) = elements.next() {
        // libtpms stops at an empty element.
        if e.content.is_empty() {
            return None;
        }
        if e.tag == OCTET_STRING {
            return bit_string_value(e.content);
        }
    }
    None
}

/// The bits of extension `oid` in the list `list` (None: absent); a list
/// entry that is no SEQUENCE, or a malformed entry, is TPM_RC_VALUE.
fn find_extension(list: &[u8], oid: &[u8]) -> TpmResult<Option<u32>> {
    let value = Rc(c::RC_VALUE).param(3);
    let mut entries = Elements::new(list);
    while !entries.done() {
        let e = entries.next().filter(|e| e.tag == SEQUENCE).ok_or(value)?;
        if e.content.starts_with(oid) {
            return extension_bits(e.content).map(Some).ok_or(value);
        }
    }
    Ok(None)
}

/// Check the extensions against the object's attributes as libtpms does: a
/// TPMA_OBJECT extension must equal them (TPM_RC_ATTRIBUTES on the object);
/// the key usage is required and may only claim what the attributes allow
/// (signing uses need `sign`, decryption uses `decrypt`, nonRepudiation
/// `fixedTPM`, keyEncipherment `restricted`), TPM_RC_VALUE otherwise.
fn check_extensions(extensions: &[u8], attributes: u32) -> TpmResult<()> {
    let value = Rc(c::RC_VALUE).param(3);
    let list = Elements::new(extensions)
        .next()
        .filter(|e| e.tag == EXTENSIONS)
        .and_then(|e| Elements::new(e.content).next())
        .filter(|e| e.tag == SEQUENCE)
        .ok_or(value)?;
    if let Some(tpma) = find_extension(list.content, TPMA_OBJECT_OID)? {
        if tpma != attributes {
            return Err(Rc(c::RC_ATTRIBUTES).handle(OBJECT_HANDLE));
        }
    }
    let ku = find_extension(list.content, KEY_USAGE_OID)?.ok_or(value)?;
    let has = |bit: u32| attributes & bit != 0;
    let refused = (ku & usage::SIGN != 0 && !has(c::TPMA_OBJECT_SIGN_ENCRYPT))
        || (ku & usage::DECRYPT != 0 && !has(c::TPMA_OBJECT_DECRYPT))
        || (ku & usage::NON_REPUDIATION != 0 && !has(c::TPMA_OBJECT_FIXEDTPM))
        || (ku & usage::KEY_ENCIPHERMENT != 0 && !has(c::TPMA_OBJECT_RESTRICTED));
    if refused {
        return Err(value);
    }
    Ok(())
}

/// DER of `tag` around the concatenation of `parts`.
fn wrap(tag: Tag, parts: &[&[u8]]) -> TpmResult<Vec<u8>> {
    // Encoding errors need lengths of 256 MiB: TPM_RC_FAILURE if ever.
    let failure = |_| Rc(c::RC_FAILURE);
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let mut out = Header::new(tag, len)
        .map_err(failure)?
        .to_der()
        .map_err(failure)?;
    for p in parts {
        out.extend_from_slice(p);
    }
    Ok(out)
}

fn sequence(parts: &[&[u8]]) -> TpmResult<Vec<u8>> {
    wrap(Tag::Sequence, parts)
}

/// [n] EXPLICIT around `parts`.
fn explicit(number: TagNumber, parts: &[&[u8]]) -> TpmResult<Vec<u8>> {
    let tag = Tag::ContextSpecific {
        constructed: true,
        number,
    };
    wrap(tag, parts)
}

/// DER of a value of a `der` type.
fn encode(v: &impl Encode) -> TpmResult<Vec<u8>> {
    v.to_der().map_err(|_| Rc(c::RC_FAILURE))
}

/// An INTEGER of the unsigned big-endian `bytes`.
fn integer(bytes: &[u8]) -> TpmResult<Vec<u8>> {
    encode(&UintRef::new(bytes).map_err(|_| Rc(c::RC_FAILURE))?)
}

/// A BIT STRING holding `bytes`.
fn bit_string(bytes: &[u8]) -> TpmResult<Vec<u8>> {
    encode(&BitStringRef::new(0, bytes).map_err(|_| Rc(c::RC_FAILURE))?)
}

/// AlgorithmIdentifier of `oid` with `params` (NULL for the hashes and the
/// RSA algorithms, as libtpms writes them; none for ECDSA).
fn algorithm(oid: Oid, params: Option<&[u8]>) -> TpmResult<Vec<u8>> {
    sequence(&[&encode(&oid)?, params.unwrap_or_default()])
}

fn with_null(oid: Oid) -> TpmResult<Vec<u8>> {
    algorithm(oid, Some(&encode(&Null)?))
}

mod oid {
    use super::Oid;
    pub const SHA1: Oid = Oid::new_unwrap("1.3.14.3.2.26");
    pub const SHA256: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.1");
    pub const SHA384: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.2");
    pub const SHA512: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.3");
    pub const RSA_ENCRYPTION: Oid = Oid::new_unwrap("1.2.840.113549.1.1.1");
    pub const SHA1_RSA: Oid = Oid::new_unwrap("1.2.840.113549.1.1.5");
    pub const SHA256_RSA: Oid = Oid::new_unwrap("1.2.840.113549.1.1.11");
    pub const SHA384_RSA: Oid = Oid::new_unwrap("1.2.840.113549.1.1.12");
    pub const SHA512_RSA: Oid = Oid::new_unwrap("1.2.840.113549.1.1.13");
    pub const MGF1: Oid = Oid::new_unwrap("1.2.840.113549.1.1.8");
    pub const RSASSA_PSS: Oid = Oid::new_unwrap("1.2.840.113549.1.1.10");
    pub const EC_PUBLIC_KEY: Oid = Oid::new_unwrap("1.2.840.10045.2.1");
    pub const ECDSA_SHA1: Oid = Oid::new_unwrap("1.2.840.10045.4.1");
    pub const ECDSA_SHA256: Oid = Oid::new_unwrap("1.2.840.10045.4.3.2");
    pub const ECDSA_SHA384: Oid = Oid::new_unwrap("1.2.840.10045.4.3.3");
    pub const ECDSA_SHA512: Oid = Oid::new_unwrap("1.2.840.10045.4.3.4");
    pub const P256: Oid = Oid::new_unwrap("1.2.840.10045.3.1.7");
    pub const P384: Oid = Oid::new_unwrap("1.3.132.0.34");
    pub const P521: Oid = Oid::new_unwrap("1.3.132.0.35");
    pub const P192: Oid = Oid::new_unwrap("1.2.840.10045.3.1.1");
    pub const P224: Oid = Oid::new_unwrap("1.3.132.0.33");
}

/// The OID of a hash and of the signature algorithms with it: (hash,
/// RSASSA, ECDSA).
fn hash_oids(hash: u16) -> Option<(Oid, Oid, Oid)> {
    Some(match hash {
        c::ALG_SHA1 => (oid::SHA1, oid::SHA1_RSA, oid::ECDSA_SHA1),
        c::ALG_SHA256 => (oid::SHA256, oid::SHA256_RSA, oid::ECDSA_SHA256),
        c::ALG_SHA384 => (oid::SHA384, oid::SHA384_RSA, oid::ECDSA_SHA384),
        c::ALG_SHA512 => (oid::SHA512, oid::SHA512_RSA, oid::ECDSA_SHA512),
        _ => return None,
    })
}

/// The signature AlgorithmIdentifier for signing with `key` and `scheme`;
/// None where X.509 has none (EC-Schnorr, HMAC).
fn signature_algorithm(key: &Loaded, scheme: Scheme) -> TpmResult<Option<Vec<u8>>> {
    let Some((hash, rsassa, ecdsa)) = hash_oids(scheme.hash) else {
        return Ok(None);
    };
    Ok(Some(match (key.public.type_alg(), scheme.alg) {
        (c::ALG_RSA, c::ALG_RSASSA) => with_null(rsassa)?,
        // With SHA-1 every PSS parameter is the default, written as NULL.
        (c::ALG_RSA, c::ALG_RSAPSS) if scheme.hash == c::ALG_SHA1 => with_null(oid::RSASSA_PSS)?,
        (c::ALG_RSA, c::ALG_RSAPSS) => {
            let modulus = match &key.public.unique {
                Unique::Rsa(n) => n.len(),
                _ => 0,
            };
            // The salt the signature uses (tpm-crypto's one rule).
            let salt = crate::crypto::pss_salt_len(crate::types::digest_size(scheme.hash), modulus);
            let hash_alg = with_null(hash)?;
            let mgf = sequence(&[&encode(&oid::MGF1)?, &hash_alg])?;
            let params = sequence(&[
                &explicit(TagNumber::N0, &[&hash_alg])?,
                &explicit(TagNumber::N1, &[&mgf])?,
                &explicit(TagNumber::N2, &[&integer(&(salt as u32).to_be_bytes())?])?,
            ])?;
            algorithm(oid::RSASSA_PSS, Some(&params))?
        }
        (c::ALG_ECC, c::ALG_ECDSA) => algorithm(ecdsa, None)?,
        _ => return Ok(None),
    }))
}

/// The subjectPublicKeyInfo of `object`; None for an object that is not
/// an RSA or ECC key.
fn subject_public_key_info(object: &Loaded) -> TpmResult<Option<Vec<u8>>> {
    Ok(Some(match (&object.public.parms, &object.public.unique) {
        (Parms::Rsa { exponent, .. }, Unique::Rsa(n)) => {
            let e = if *exponent == 0 { 65537 } else { *exponent };
            let key = sequence(&[&integer(&n.0)?, &integer(&e.to_be_bytes())?])?;
            sequence(&[&with_null(oid::RSA_ENCRYPTION)?, &bit_string(&key)?])?
        }
        (Parms::Ecc { curve, .. }, Unique::Ecc(p)) => {
            let (curve_oid, size) = match tpm_crypto::Curve::from_tpm(*curve) {
                Some(cv @ tpm_crypto::Curve::P256) => (oid::P256, cv.size()),
                Some(cv @ tpm_crypto::Curve::P384) => (oid::P384, cv.size()),
                Some(cv @ tpm_crypto::Curve::P521) => (oid::P521, cv.size()),
                Some(cv @ tpm_crypto::Curve::P192) => (oid::P192, cv.size()),
                Some(cv @ tpm_crypto::Curve::P224) => (oid::P224, cv.size()),
                // No subjectPublicKeyInfo for the BN and SM2 curves (no
                // curve OID vtpm is sure libtpms writes for them).
                _ => return Ok(None),
            };
            // An uncompressed SEC1 point, coordinates at the curve's size.
            let mut point = vec![0x04];
            for coord in [&p.x.0, &p.y.0] {
                point.extend(std::iter::repeat_n(0, size.saturating_sub(coord.len())));
                point.extend_from_slice(coord);
            }
            let alg = sequence(&[&encode(&oid::EC_PUBLIC_KEY)?, &encode(&curve_oid)?])?;
            sequence(&[&alg, &bit_string(&point)?])?
        }
        _ => return Ok(None),
    }))
}

/// TPM2_CertifyX509: the certificate parts the TPM vouches for (version,
/// serial number, signature algorithm, the object's public key) and the
/// signature over the TBSCertificate.
pub fn certify_x509(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    let p = CertifyX509In::parse(&mut ctx.params)?;
    let (object_h, sign_h) = (ctx.handles[0], ctx.handles[1]);
    if !p.reserved.is_empty() {
        return Err(Rc(c::RC_SIZE).param(1));
    }
    // A certificate needs a signer; swtpm 0.7.1 crashes on TPM_RH_NULL here.
    if sign_h == c::RH_NULL {
        return Err(Rc(c::RC_KEY).handle(SIGN_HANDLE));
    }
    let signer = tpm.attestation_signer(sign_h, SIGN_HANDLE, p.in_scheme.0, 2)?;
    let (object, key) = (tpm.object_at(object_h, 1)?, tpm.object_at(sign_h, 2)?);
    let spki =
        subject_public_key_info(object)?.ok_or(Rc(c::RC_ASYMMETRIC).handle(OBJECT_HANDLE))?;
    let partial = split_partial(p.partial_certificate.as_slice())?;
    let added_algorithm = match partial.signature {
        Some(_) => None,
        None => Some(
            signature_algorithm(key, signer.scheme)?.ok_or(Rc(c::RC_SCHEME).handle(SIGN_HANDLE))?,
        ),
    };
    check_extensions(partial.extensions, object.public.attributes)?;
    let algorithm = partial
        .signature
        .or(added_algorithm.as_deref())
        .unwrap_or_default();
    // The serial number: H_nameAlg(everything of the TBSCertificate after
    // the serial number || Name of the signing key || Name of the object),
    // at most 20 octets, so the TPM never signs two certificates with one
    // serial number for different contents.
    let serial = crate::crypto::digest(
        key.public.name_alg,
        &[
            algorithm,
            partial.issuer,
            partial.validity,
            partial.subject,
            &spki,
            partial.extensions,
            &tpm.entity_name(sign_h),
            &tpm.entity_name(object_h),
        ],
    );
    let serial = integer(&serial[..serial.len().min(SERIAL_MAX)])?;
    let version = explicit(TagNumber::N0, &[&integer(&[2])?])?;
    let body: [&[u8]; 8] = [
        &version,
        &serial,
        algorithm,
        partial.issuer,
        partial.validity,
        partial.subject,
        &spki,
        partial.extensions,
    ];
    let tbs = sequence(&body)?;
    let tbs_digest = crate::crypto::digest(signer.scheme.hash, &[&tbs]);
    let added = sequence(&[
        &version,
        &serial,
        added_algorithm.as_deref().unwrap_or_default(),
        &spki,
    ])?;
    let signature = sign_digest(tpm, key, signer.scheme, &tbs_digest)?;
    tpm.end_ecdaa(signer.scheme);
    Ok(Response::of(&CertifyX509Out {
        added_to_certificate: Buffer(added),
        tbs_digest: Buffer(tbs_digest),
        signature,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::marshal::{Reader, Unmarshal};
    use crate::test_cmd::{b2, command};
    use crate::{MemoryStore, TpmConfig};

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// What `tpm2_certifyX509certutil -i "C=US;O=vtpm;CN=issuer" -s
    /// "C=US;O=vtpm;CN=subject"` writes: issuer, validity, subject and a
    /// critical key usage (digitalSignature, keyCertSign, cRLSign).
    const PARTIAL: &str = "308193302d310b3009060355040613025553310d300b060355040a0c047674706d\
        310f300d06035504030c06697373756572301e170d3236313230323136333430375a170d32373031\
        30313136333430375a302e310b3009060355040613025553310d300b060355040a0c047674706d31\
        10300e06035504030c077375626a656374a3123010300e0603551d0f0101ff040403020186";

    #[test]
    fn bit_strings_read_as_libtpms_reads_them() {
        let v = |s: &str| bit_string_value(&hex(s));
        assert_eq!(v("03020186"), Some(0x8600_0000));
        assert_eq!(v("03020780"), Some(usage::DIGITAL_SIGNATURE));
        assert_eq!(v("0303070080"), Some(usage::DECIPHER_ONLY));
        assert_eq!(v("030100"), Some(0));
        // Unused bits are dropped, bits past the 32nd ignored.
        assert_eq!(v("03020181"), Some(0x8000_0000));
        assert_eq!(v("03060080000000ff"), Some(0x8000_0000));
        assert_eq!(v("03020880"), None, "8 unused bits");
        assert_eq!(v("030101"), None, "unused bits of nothing");
        assert_eq!(v("04020186"), None, "not a BIT STRING");
        assert_eq!(v("030301"), None, "cut short");
    }

    #[test]
    fn lengths_are_read_as_libtpms_reads_them() {
        let first = |s: &str| Elements::new(&hex(s)).next().map(|e| e.content.to_vec());
        assert_eq!(first("0402abcd"), Some(vec![0xab, 0xcd]));
        assert_eq!(first("048102abcd"), Some(vec![0xab, 0xcd]));
        // Not the shortest form, still accepted.
        assert_eq!(first("04820002abcd"), Some(vec![0xab, 0xcd]));
        assert_eq!(first("0483000002abcd"), None, "three length octets");
        assert_eq!(first("0480abcd0000"), None, "indefinite length");
        assert_eq!(first("1f0100"), None, "high tag number");
        assert_eq!(first("0403abcd"), None, "past the end");
        assert_eq!(first("04828000"), None, "0x8000 and more");
    }

    #[test]
    fn partial_certificates_split_like_libtpms() {
        let pc = hex(PARTIAL);
        let p = split_partial(&pc).unwrap();
        assert!(p.signature.is_none());
        assert_eq!(p.issuer.len(), 47);
        assert_eq!(p.subject.len(), 48);
        assert_eq!(p.extensions[0], EXTENSIONS);
        let parts = &pc[3..];
        let (issuer, rest) = parts.split_at(47);
        let (validity, rest) = rest.split_at(32);
        let (subject, ext) = rest.split_at(48);
        let alg = hex("300d06092a864886f70d01010b0500");
        let cert = |items: &[&[u8]]| sequence(items).unwrap();
        let code = |items: &[&[u8]]| split_partial(&cert(items)).err().map(|e| e.0);
        let p3 = |rc: u32| Some(rc | c::RC_P | (3 << 8));
        assert_eq!(code(&[&alg, issuer, validity, subject, ext]), None);
        assert_eq!(code(&[ext, &alg, issuer, validity, subject]), None);
        assert_eq!(
            code(&[&alg, &alg, issuer, validity, subject, ext]),
            p3(c::RC_VALUE)
        );
        assert_eq!(code(&[validity, subject, ext]), p3(c::RC_VALUE));
        assert_eq!(
            code(&[issuer, validity, subject, ext, ext]),
            p3(c::RC_VALUE)
        );
        assert_eq!(code(&[issuer, validity, subject]), p3(c::RC_VALUE));
        assert_eq!(
            code(&[issuer, validity, subject, &[2, 1, 5], ext]),
            p3(c::RC_VALUE)
        );
        let err = |b: &[u8]| split_partial(b).err().map(|e| e.0);
        assert_eq!(err(&[]), p3(c::RC_VALUE));
        assert_eq!(err(&[1, 2]), p3(c::RC_SIZE));
        assert_eq!(err(&[&pc[..], &[0]].concat()), p3(c::RC_SIZE));
    }

    /// The extensions [3] { SEQUENCE { entries } }.
    fn extensions(entries: &[&[u8]]) -> Vec<u8> {
        explicit(TagNumber::N3, &[&sequence(entries).unwrap()]).unwrap()
    }

    /// An extension `oid` holding the BIT STRING `bits`.
    fn extension(oid: &[u8], bits: &str) -> Vec<u8> {
        let octets = wrap(Tag::OctetString, &[&hex(bits)]).unwrap();
        sequence(&[oid, &octets]).unwrap()
    }

    #[test]
    fn extensions_are_held_to_the_object_attributes() {
        let sign = c::TPMA_OBJECT_SIGN_ENCRYPT | c::TPMA_OBJECT_FIXEDTPM;
        let check = |attrs: u32, entries: &[&[u8]]| {
            check_extensions(&extensions(entries), attrs)
                .err()
                .map(|e| e.0)
        };
        let value = Some(c::RC_VALUE | c::RC_P | (3 << 8));
        let ku = |bits: &str| extension(KEY_USAGE_OID, bits);
        assert_eq!(check(sign, &[&ku("03020186")]), None);
        assert_eq!(
            check(sign, &[&ku("03020640")]),
            None,
            "nonRepudiation, fixedTPM"
        );
        assert_eq!(
            check(c::TPMA_OBJECT_SIGN_ENCRYPT, &[&ku("03020640")]),
            value
        );
        assert_eq!(check(sign, &[&ku("03020410")]), value, "dataEncipherment");
        assert_eq!(check(sign, &[&ku("03020520")]), value, "keyEncipherment");
        assert_eq!(check(c::TPMA_OBJECT_DECRYPT, &[&ku("03020186")]), value);
        assert_eq!(check(sign, &[]), value, "key usage required");
        // TPMA_OBJECT: the attributes exactly, checked first.
        let tpma = |a: u32| extension(TPMA_OBJECT_OID, &format!("030500{a:08x}"));
        assert_eq!(check(sign, &[&tpma(sign), &ku("03020780")]), None);
        let attrs = Some(c::RC_ATTRIBUTES | (2 << 8));
        assert_eq!(check(sign, &[&ku("03020780"), &tpma(sign | 0x400)]), attrs);
        assert_eq!(check(sign, &[&tpma(sign | 0x400)]), attrs);
        // Malformed entries.
        assert_eq!(check(sign, &[&[2, 1, 0], &ku("03020780")]), value);
        assert_eq!(check(sign, &[&extension(KEY_USAGE_OID, "020100")]), value);
    }

    #[test]
    fn added_parts_are_the_der_libtpms_writes() {
        let mut key = Loaded::default();
        key.public.parms = Parms::Rsa {
            symmetric: crate::types::SymDef::Null,
            scheme: Scheme::NULL,
            key_bits: 2048,
            exponent: 0,
        };
        key.public.unique = Unique::Rsa(Buffer(vec![0xC5; 256]));
        let s = |alg, hash| Scheme {
            alg,
            hash,
            kdf: c::ALG_NULL,
            count: 0,
        };
        let alg = |sc| signature_algorithm(&key, sc).unwrap().unwrap();
        // Each as swtpm 0.7.1 answered it in addedToCertificate.
        assert_eq!(
            alg(s(c::ALG_RSASSA, c::ALG_SHA256)),
            hex("300d06092a864886f70d01010b0500")
        );
        assert_eq!(
            alg(s(c::ALG_RSAPSS, c::ALG_SHA1)),
            hex("300d06092a864886f70d01010a0500")
        );
        assert_eq!(
            alg(s(c::ALG_RSAPSS, c::ALG_SHA256)),
            hex("304106092a864886f70d01010a3034a00f300d06096086480165030402010500a11c301a06092a864886f70d010108300d06096086480165030402010500a203020120")
        );
        let spki = subject_public_key_info(&key).unwrap().unwrap();
        assert!(spki.starts_with(&hex(
            "30820122300d06092a864886f70d01010105000382010f003082010a02820101"
        )));
        assert!(spki.ends_with(&hex("0203010001")), "exponent 65537");
        let mut ecc = Loaded::default();
        ecc.public.parms = Parms::Ecc {
            symmetric: crate::types::SymDef::Null,
            scheme: Scheme::NULL,
            curve: c::ECC_NIST_P256,
            kdf: Scheme::NULL,
        };
        ecc.public.unique = Unique::Ecc(crate::types::EccPoint {
            x: Buffer(vec![7; 31]),
            y: Buffer(vec![9; 32]),
        });
        assert_eq!(
            signature_algorithm(&ecc, s(c::ALG_ECDSA, c::ALG_SHA256))
                .unwrap()
                .unwrap(),
            hex("300a06082a8648ce3d040302")
        );
        assert_eq!(
            signature_algorithm(&ecc, s(c::ALG_ECSCHNORR, c::ALG_SHA256)).unwrap(),
            None
        );
        let spki = subject_public_key_info(&ecc).unwrap().unwrap();
        let prefix = hex("3059301306072a8648ce3d020106082a8648ce3d03010703420004");
        assert_eq!(spki[..prefix.len()], prefix);
        assert_eq!(spki[prefix.len()], 0, "x padded to 32 octets");
        assert_eq!(spki.len(), prefix.len() + 64);
        assert_eq!(subject_public_key_info(&Loaded::default()).unwrap(), None);
    }

    use crate::test_cmd::rc;

    /// A P-256 primary with `attributes` and `scheme` in `hierarchy`.
    fn ecc_primary(t: &mut Tpm, hierarchy: u32, attributes: u32, scheme: u16) -> u32 {
        crate::test_cmd::ecc_primary(t, hierarchy, attributes, scheme).0
    }

    #[test]
    fn a_certificate_from_the_partial_one_verifies() {
        let mut t = Tpm::new(Box::new(MemoryStore::default()), TpmConfig::default()).unwrap();
        t.power_on(false).unwrap();
        let su = c::SU_CLEAR.to_be_bytes();
        assert_eq!(
            rc(&t.execute(0, &command(c::CC_Startup, &[], None, &su))),
            0
        );
        let fixed = c::TPMA_OBJECT_FIXEDTPM
            | c::TPMA_OBJECT_FIXEDPARENT
            | c::TPMA_OBJECT_SENSITIVEDATAORIGIN
            | c::TPMA_OBJECT_USERWITHAUTH
            | c::TPMA_OBJECT_SIGN_ENCRYPT;
        let signer = ecc_primary(
            &mut t,
            c::RH_ENDORSEMENT,
            fixed | c::TPMA_OBJECT_RESTRICTED,
            c::ALG_ECDSA,
        );
        let object = ecc_primary(&mut t, c::RH_OWNER, fixed, c::ALG_NULL);
        let pc = hex(PARTIAL);
        let x509 = |t: &mut Tpm, handles: &[u32], reserved: &[u8]| {
            let mut p = b2(reserved);
            p.extend(c::ALG_NULL.to_be_bytes());
            p.extend(b2(&pc));
            t.execute(
                0,
                &command(c::CC_CertifyX509, handles, Some(&[b"", b""]), &p),
            )
        };
        let r = x509(&mut t, &[object, signer], b"");
        assert_eq!(rc(&r), 0, "{r:02x?}");
        let mut rd = Reader::new(&r[14..]);
        let added = MaxBuffer::unmarshal(&mut rd).unwrap().0;
        let tbs_digest = Digest::unmarshal(&mut rd).unwrap().0;
        let Signature::Ecc { r: sr, s: ss, .. } = Signature::unmarshal(&mut rd).unwrap() else {
            panic!("an ECDSA signature")
        };
        // addedToCertificate: version, serialNumber, signature, SPKI.
        let top = Elements::new(&added).next().unwrap();
        let mut parts = Elements::new(top.content);
        let version = parts.next().unwrap().whole;
        let serial = parts.next().unwrap();
        let algorithm = parts.next().unwrap().whole;
        let spki = parts.next().unwrap().whole;
        assert!(parts.done());
        assert_eq!(version, hex("a003020102"));
        assert_eq!(algorithm, hex("300a06082a8648ce3d040302"));
        let obj = t.object(object).unwrap();
        assert_eq!(spki, subject_public_key_info(obj).unwrap().unwrap());
        // The TBSCertificate in certificate order digests to tbsDigest...
        let p = split_partial(&pc).unwrap();
        let body: Vec<&[u8]> = vec![
            version,
            serial.whole,
            algorithm,
            p.issuer,
            p.validity,
            p.subject,
            spki,
            p.extensions,
        ];
        let tbs = sequence(&body).unwrap();
        assert_eq!(tbs_digest, crate::crypto::digest(c::ALG_SHA256, &[&tbs]));
        // ...which the signing key signed.
        let key = t.object(signer).unwrap();
        assert!(tpm_crypto::ecc::verify_ecdsa(
            key.curve().unwrap(),
            &key.ecc_public().unwrap(),
            &tbs_digest,
            &sr.0,
            &ss.0
        ));
        // The serial number is 20 octets of the digest of the rest and both Names.
        let d = crate::crypto::digest(
            c::ALG_SHA256,
            &[
                algorithm,
                p.issuer,
                p.validity,
                p.subject,
                spki,
                p.extensions,
                &key.name,
                &obj.name,
            ],
        );
        assert_eq!(serial.whole, integer(&d[..20]).unwrap());
        // Refusals, numbered as libtpms numbers them.
        assert_eq!(rc(&x509(&mut t, &[object, signer], b"x")), 0x1d5);
        assert_eq!(rc(&x509(&mut t, &[object, c::RH_NULL], b"")), 0x19c);
        // The object's key usage says sign; a decrypt-only object cannot have it.
        let stor = ecc_primary(
            &mut t,
            c::RH_OWNER,
            (fixed & !c::TPMA_OBJECT_SIGN_ENCRYPT) | c::TPMA_OBJECT_DECRYPT,
            c::ALG_NULL,
        );
        assert_eq!(rc(&x509(&mut t, &[stor, signer], b"")), 0x3c4);
    }
}
