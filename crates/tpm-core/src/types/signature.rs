//! Signature structures: TPMT_SIGNATURE, the hash-check ticket as a command
//! parameter, TPM2B_ECC_POINT and TPMS_ALGORITHM_DETAIL_ECC.

use super::algorithms::is_hash;
use super::basic::{DigestValue, TaggedHash, Ticket};
use super::object::{EccParam, EccPoint, EccScheme, KdfScheme, RsaModulus};
use crate::constants as c;
use crate::marshal::{Marshal, Reader, Sized2b, Unmarshal};
use crate::rc::{err, TpmResult};
use crate::tpm_struct;

/// TPM2B_ECC_POINT.
pub type EccPoint2b = Sized2b<EccPoint>;

/// TPMT_SIGNATURE: the signature algorithm with its TPMU_SIGNATURE member.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Signature {
    /// TPMS_SIGNATURE_RSA (RSASSA or RSAPSS).
    Rsa {
        /// TPM_ALG_RSASSA or TPM_ALG_RSAPSS.
        alg: u16,
        /// The hash the signed digest was made with.
        hash: u16,
        /// The signature, as long as the modulus.
        sig: RsaModulus,
    },
    /// TPMS_SIGNATURE_ECC (ECDSA, ECDAA, SM2 or EC-Schnorr).
    Ecc {
        /// TPM_ALG_ECDSA, TPM_ALG_ECDAA, TPM_ALG_SM2 or TPM_ALG_ECSCHNORR.
        alg: u16,
        /// The hash the signed digest was made with.
        hash: u16,
        /// signatureR.
        r: EccParam,
        /// signatureS.
        s: EccParam,
    },
    /// TPM_ALG_HMAC: a TPMT_HA.
    Hmac(TaggedHash),
    /// TPM_ALG_NULL: no signature.
    #[default]
    Null,
}

impl Signature {
    /// The signature algorithm (sigAlg).
    pub fn alg(&self) -> u16 {
        match self {
            Signature::Rsa { alg, .. } | Signature::Ecc { alg, .. } => *alg,
            Signature::Hmac(_) => c::ALG_HMAC,
            Signature::Null => c::ALG_NULL,
        }
    }

    /// The hash the signed digest was made with (TPM_ALG_NULL for none).
    pub fn hash(&self) -> u16 {
        match self {
            Signature::Rsa { hash, .. } | Signature::Ecc { hash, .. } => *hash,
            Signature::Hmac(ha) => ha.alg,
            Signature::Null => c::ALG_NULL,
        }
    }
}

/// TPMI_ALG_HASH (no NULL) inside a signature.
fn sig_hash(r: &mut Reader<'_>) -> TpmResult<u16> {
    let h = u16::unmarshal(r)?;
    if !is_hash(h) {
        return err(c::RC_HASH);
    }
    Ok(h)
}

impl Unmarshal for Signature {
    fn unmarshal(r: &mut Reader<'_>) -> TpmResult<Self> {
        let alg = u16::unmarshal(r)?;
        Ok(match alg {
            c::ALG_NULL => Signature::Null,
            c::ALG_RSASSA | c::ALG_RSAPSS => Signature::Rsa {
                alg,
                hash: sig_hash(r)?,
                sig: RsaModulus::unmarshal(r)?,
            },
            c::ALG_ECDSA | c::ALG_ECDAA | c::ALG_SM2 | c::ALG_ECSCHNORR => Signature::Ecc {
                alg,
                hash: sig_hash(r)?,
                r: EccParam::unmarshal(r)?,
                s: EccParam::unmarshal(r)?,
            },
            // The TPMT_HA of an HMAC signature may not be TPM_ALG_NULL.
            c::ALG_HMAC => Signature::Hmac(DigestValue::unmarshal(r)?.0),
            _ => return err(c::RC_SCHEME),
        })
    }
}

impl Marshal for Signature {
    fn marshal(&self, w: &mut Vec<u8>) {
        self.alg().marshal(w);
        match self {
            Signature::Rsa { hash, sig, .. } => {
                hash.marshal(w);
                sig.marshal(w);
            }
            Signature::Ecc { hash, r, s, .. } => {
                hash.marshal(w);
                r.marshal(w);
                s.marshal(w);
            }
            Signature::Hmac(ha) => ha.marshal(w),
            Signature::Null => {}
        }
    }
}

/// A ticket as a command parameter: its tag must be one of `tags`
/// (TPM_RC_TAG) and its hierarchy a TPMI_RH_HIERARCHY+ (TPM_RC_VALUE).
fn checked_ticket(r: &mut Reader<'_>, tags: &[u16]) -> TpmResult<Ticket> {
    let t = Ticket::unmarshal(r)?;
    if !tags.contains(&t.tag) {
        return err(c::RC_TAG);
    }
    if !matches!(
        t.hierarchy,
        c::RH_OWNER | c::RH_ENDORSEMENT | c::RH_PLATFORM | c::RH_NULL
    ) {
        return err(c::RC_VALUE);
    }
    Ok(t)
}

macro_rules! ticket_param {
    ($(#[$m:meta])* $name:ident, $($tag:expr),+) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq, Default)]
        pub struct $name(pub Ticket);

        impl Unmarshal for $name {
            fn unmarshal(r: &mut Reader<'_>) -> TpmResult<Self> {
                checked_ticket(r, &[$($tag),+]).map($name)
            }
        }
    };
}

ticket_param!(
    /// TPMT_TK_HASHCHECK as a command parameter.
    HashcheckTicket,
    c::ST_HASHCHECK
);
ticket_param!(
    /// TPMT_TK_VERIFIED as a command parameter.
    VerifiedTicket,
    c::ST_VERIFIED
);
ticket_param!(
    /// TPMT_TK_CREATION as a command parameter.
    CreationTicket,
    c::ST_CREATION
);
ticket_param!(
    /// TPMT_TK_AUTH as a command parameter (from PolicySigned or PolicySecret).
    AuthTicket,
    c::ST_AUTH_SIGNED,
    c::ST_AUTH_SECRET
);

tpm_struct! {
    /// TPMS_ALGORITHM_DETAIL_ECC.
    pub struct AlgorithmDetailEcc {
        pub curve_id: u16,
        pub key_size: u16,
        pub kdf: KdfScheme,
        pub sign: EccScheme,
        pub p: EccParam,
        pub a: EccParam,
        pub b: EccParam,
        pub g_x: EccParam,
        pub g_y: EccParam,
        pub n: EccParam,
        pub h: EccParam,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::marshal::Buffer;

    fn round_trip(s: Signature) {
        let bytes = s.to_bytes();
        let back = Signature::unmarshal(&mut Reader::new(&bytes)).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn signatures_round_trip() {
        round_trip(Signature::Null);
        round_trip(Signature::Rsa {
            alg: c::ALG_RSAPSS,
            hash: c::ALG_SHA256,
            sig: Buffer(vec![7; 256]),
        });
        round_trip(Signature::Ecc {
            alg: c::ALG_ECDSA,
            hash: c::ALG_SHA384,
            r: Buffer(vec![1; 48]),
            s: Buffer(vec![2; 48]),
        });
        round_trip(Signature::Hmac(TaggedHash {
            alg: c::ALG_SHA1,
            digest: vec![3; 20],
        }));
    }

    #[test]
    fn bad_signature_selectors() {
        let rc = |b: &[u8]| Signature::unmarshal(&mut Reader::new(b)).unwrap_err();
        assert_eq!(rc(&[0x00, 0x01]), crate::rc::Rc(c::RC_SCHEME));
        assert_eq!(rc(&[0x00, 0x14, 0x00, 0x10]), crate::rc::Rc(c::RC_HASH));
        assert_eq!(rc(&[0x00, 0x05, 0x00, 0x10]), crate::rc::Rc(c::RC_HASH));
    }
}
