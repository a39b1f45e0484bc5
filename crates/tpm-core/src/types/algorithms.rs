//! The algorithms vtpm implements and the interface types that admit them.
//! One table drives TPMI checks, GetCapability(ALGS) and TestParms.

use crate::constants as c;
use crate::tpm_interface;

/// Hash algorithms implemented (TPM_ALG_SHA1/256/384/512), in TPM_ALG_ID order.
pub const HASH_ALGS: [u16; 4] = [c::ALG_SHA1, c::ALG_SHA256, c::ALG_SHA384, c::ALG_SHA512];

/// Whether `alg` is an implemented hash.
pub fn is_hash(alg: u16) -> bool {
    HASH_ALGS.contains(&alg)
}

/// Digest size of an implemented hash, 0 for anything else (TPM_ALG_NULL).
pub fn digest_size(alg: u16) -> usize {
    match alg {
        c::ALG_SHA1 => 20,
        c::ALG_SHA256 => 32,
        c::ALG_SHA384 => 48,
        c::ALG_SHA512 => 64,
        _ => 0,
    }
}

/// One implemented algorithm with its TPMA_ALGORITHM bits.
pub struct AlgEntry {
    /// TPM_ALG_ID.
    pub alg: u16,
    /// TPMA_ALGORITHM.
    pub attributes: u32,
}

const ASYM: u32 = 0x1;
const SYMM: u32 = 0x2;
const HASH: u32 = 0x4;
const OBJECT: u32 = 0x8;
const SIGNING: u32 = 0x100;
const ENCRYPTING: u32 = 0x200;
const METHOD: u32 = 0x400;

/// Every algorithm vtpm implements, in TPM_ALG_ID order; GetCapability(ALGS)
/// reports exactly this table.
pub const ALGORITHMS: &[AlgEntry] = &[
    AlgEntry {
        alg: c::ALG_RSA,
        attributes: ASYM | OBJECT,
    },
    AlgEntry {
        alg: c::ALG_TDES,
        attributes: SYMM,
    },
    AlgEntry {
        alg: c::ALG_SHA1,
        attributes: HASH,
    },
    AlgEntry {
        alg: c::ALG_HMAC,
        attributes: HASH | SIGNING,
    },
    AlgEntry {
        alg: c::ALG_AES,
        attributes: SYMM,
    },
    AlgEntry {
        alg: c::ALG_MGF1,
        attributes: HASH | METHOD,
    },
    AlgEntry {
        alg: c::ALG_KEYEDHASH,
        attributes: HASH | ENCRYPTING | SIGNING | OBJECT,
    },
    AlgEntry {
        alg: c::ALG_XOR,
        attributes: SYMM | HASH,
    },
    AlgEntry {
        alg: c::ALG_SHA256,
        attributes: HASH,
    },
    AlgEntry {
        alg: c::ALG_SHA384,
        attributes: HASH,
    },
    AlgEntry {
        alg: c::ALG_SHA512,
        attributes: HASH,
    },
    AlgEntry {
        alg: c::ALG_RSASSA,
        attributes: ASYM | SIGNING,
    },
    AlgEntry {
        alg: c::ALG_RSAES,
        attributes: ASYM | ENCRYPTING,
    },
    AlgEntry {
        alg: c::ALG_RSAPSS,
        attributes: ASYM | SIGNING,
    },
    AlgEntry {
        alg: c::ALG_OAEP,
        attributes: ASYM | ENCRYPTING,
    },
    AlgEntry {
        alg: c::ALG_ECDSA,
        attributes: ASYM | SIGNING,
    },
    AlgEntry {
        alg: c::ALG_ECDH,
        attributes: ASYM | METHOD,
    },
    AlgEntry {
        alg: c::ALG_ECDAA,
        attributes: ASYM | SIGNING,
    },
    AlgEntry {
        alg: c::ALG_SM2,
        attributes: ASYM | SIGNING | METHOD,
    },
    AlgEntry {
        alg: c::ALG_ECSCHNORR,
        attributes: ASYM | SIGNING,
    },
    AlgEntry {
        alg: c::ALG_ECMQV,
        attributes: ASYM | METHOD,
    },
    AlgEntry {
        alg: c::ALG_KDF1_SP800_56A,
        attributes: HASH | METHOD,
    },
    AlgEntry {
        alg: c::ALG_KDF2,
        attributes: HASH | METHOD,
    },
    AlgEntry {
        alg: c::ALG_KDF1_SP800_108,
        attributes: HASH | METHOD,
    },
    AlgEntry {
        alg: c::ALG_ECC,
        attributes: ASYM | OBJECT,
    },
    AlgEntry {
        alg: c::ALG_SYMCIPHER,
        attributes: OBJECT,
    },
    AlgEntry {
        alg: c::ALG_CAMELLIA,
        attributes: SYMM,
    },
    AlgEntry {
        alg: c::ALG_CMAC,
        attributes: SYMM | SIGNING,
    },
    AlgEntry {
        alg: c::ALG_CTR,
        attributes: SYMM | ENCRYPTING,
    },
    AlgEntry {
        alg: c::ALG_OFB,
        attributes: SYMM | ENCRYPTING,
    },
    AlgEntry {
        alg: c::ALG_CBC,
        attributes: SYMM | ENCRYPTING,
    },
    AlgEntry {
        alg: c::ALG_CFB,
        attributes: SYMM | ENCRYPTING,
    },
    AlgEntry {
        alg: c::ALG_ECB,
        attributes: SYMM | ENCRYPTING,
    },
];

tpm_interface! {
    /// TPMI_ALG_HASH: an implemented hash (TPM_RC_HASH otherwise).
    pub struct AlgHash(u16), error = c::RC_HASH, accept = is_hash
}

tpm_interface! {
    /// TPMI_ALG_HASH+: an implemented hash or TPM_ALG_NULL.
    pub struct AlgHashOrNull(u16), error = c::RC_HASH, accept = |a| a == c::ALG_NULL || is_hash(a)
}

tpm_interface! {
    /// TPMI_ST_COMMAND_TAG.
    pub struct CommandTag(u16), error = c::RC_BAD_TAG,
    accept = |t| t == c::ST_SESSIONS || t == c::ST_NO_SESSIONS
}

tpm_interface! {
    /// TPMI_YES_NO.
    pub struct YesNo(u8), error = c::RC_VALUE, accept = |v| v <= 1
}
