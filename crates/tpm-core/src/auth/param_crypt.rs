//! Parameter encryption (Part 1): AES in CFB mode with key and IV from KDFa
//! ("CFB"), or XOR obfuscation with a KDFa ("XOR") mask, over the data octets
//! of the first TPM2B parameter. The derivations live in tpm-crypto.

use super::session::Session;
use crate::constants as c;
use crate::rc::{err, Rc, TpmResult};
use tpm_crypto::session::{param_encrypt_cfb, xor_obfuscate};
use tpm_crypto::HashAlg;
use tpm_crypto::{BlockCipher, SymKey};

/// Encrypt (`encrypt`) or decrypt `data` in place for `s`, keyed with
/// `key` (sessionKey || authValue) and the nonces in newer/older order.
pub fn transform(
    s: &Session,
    key: &[u8],
    newer: &[u8],
    older: &[u8],
    data: &mut [u8],
    encrypt: bool,
) -> TpmResult<()> {
    let alg = HashAlg::from_tpm_alg(s.auth_hash).ok_or(Rc(c::RC_HASH))?;
    let done = match s.sym_alg {
        c::ALG_AES | c::ALG_CAMELLIA | c::ALG_TDES => {
            let cipher = BlockCipher::from_tpm_alg(s.sym_alg).ok_or(Rc(c::RC_SYMMETRIC))?;
            let sym = SymKey {
                cipher,
                bits: s.sym_bits,
            };
            param_encrypt_cfb(alg, key, newer, older, sym, data, encrypt)
        }
        c::ALG_XOR => xor_obfuscate(alg, key, newer, older, data),
        _ => return err(c::RC_SYMMETRIC),
    };
    done.map_err(|_| Rc(c::RC_FAILURE))
}
