//! Parameter encryption (Part 1): AES in CFB mode with key and IV from KDFa
//! ("CFB"), or XOR obfuscation with a KDFa ("XOR") mask, over the data octets
//! of the first TPM2B parameter.

use super::session::Session;
use crate::constants as c;
use crate::crypto::{aes_cfb, kdfa};
use crate::rc::{err, TpmResult};

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
    match s.sym_alg {
        c::ALG_AES => {
            let key_bytes = s.sym_bits as usize / 8;
            let bits = (s.sym_bits as u32) + 128;
            let m = kdfa(s.auth_hash, key, b"CFB", newer, older, bits);
            if m.len() < key_bytes + 16
                || !aes_cfb(
                    &m[..key_bytes],
                    &m[key_bytes..key_bytes + 16],
                    data,
                    encrypt,
                )
            {
                return err(c::RC_FAILURE);
            }
            Ok(())
        }
        c::ALG_XOR => {
            let mask = kdfa(
                s.auth_hash,
                key,
                b"XOR",
                newer,
                older,
                (data.len() as u32) * 8,
            );
            for (d, m) in data.iter_mut().zip(mask) {
                *d ^= m;
            }
            Ok(())
        }
        _ => err(c::RC_SYMMETRIC),
    }
}
