//! The authorization area of commands and responses, and the HMACs over them
//! (Part 1, "Session-based authorization").

use crate::constants as c;
use crate::crypto::{digest, hmac};
use crate::marshal::{Marshal, Reader, Unmarshal};
use crate::rc::{Rc, TpmResult};
use crate::types::Nonce;

/// Most sessions a command may carry.
pub const MAX_SESSIONS: usize = 3;
/// TPMA_SESSION bits that must be zero.
const RESERVED: u8 = 0x18;

/// One command session as sent (TPMS_AUTH_COMMAND).
#[derive(Debug, Clone)]
pub struct AuthCommand {
    /// Session handle (TPM_RS_PW, an HMAC or a policy session).
    pub handle: u32,
    /// nonceCaller.
    pub nonce: Vec<u8>,
    /// TPMA_SESSION.
    pub attrs: u8,
    /// The HMAC or password.
    pub hmac: Vec<u8>,
}

/// Parse an authorization area of exactly `area.len()` octets. Errors carry the session number.
pub fn parse_area(area: &[u8]) -> TpmResult<Vec<AuthCommand>> {
    let mut r = Reader::new(area);
    let mut out = Vec::new();
    while !r.is_empty() {
        let n = out.len() as u32 + 1;
        if out.len() == MAX_SESSIONS {
            return Err(Rc(c::RC_SIZE).session(n));
        }
        let handle = u32::unmarshal(&mut r).map_err(|e| e.session(n))?;
        let nonce = Nonce::unmarshal(&mut r).map_err(|e| e.session(n))?.0;
        let attrs = u8::unmarshal(&mut r).map_err(|e| e.session(n))?;
        if attrs & RESERVED != 0 {
            return Err(Rc(c::RC_RESERVED_BITS).session(n));
        }
        let hmac = Nonce::unmarshal(&mut r).map_err(|e| e.session(n))?.0;
        out.push(AuthCommand {
            handle,
            nonce,
            attrs,
            hmac,
        });
    }
    Ok(out)
}

/// cpHash: H(commandCode || Name1 || ... || parameters).
pub fn cp_hash(alg: u16, cc: u32, names: &[Vec<u8>], params: &[u8]) -> Vec<u8> {
    let mut parts: Vec<&[u8]> = Vec::with_capacity(names.len() + 2);
    let ccb = cc.to_be_bytes();
    parts.push(&ccb);
    parts.extend(names.iter().map(|n| n.as_slice()));
    parts.push(params);
    digest(alg, &parts)
}

/// rpHash: H(responseCode || commandCode || parameters).
pub fn rp_hash(alg: u16, cc: u32, params: &[u8]) -> Vec<u8> {
    digest(alg, &[&0u32.to_be_bytes(), &cc.to_be_bytes(), params])
}

/// The session HMAC: HMAC(key, pHash || nonceNewer || nonceOlder || nonceDecrypt || nonceEncrypt || attributes).
pub fn session_hmac(
    alg: u16,
    key: &[u8],
    p_hash: &[u8],
    newer: &[u8],
    older: &[u8],
    extra: &[&[u8]],
    attrs: u8,
) -> Vec<u8> {
    let mut parts: Vec<&[u8]> = vec![p_hash, newer, older];
    parts.extend_from_slice(extra);
    let a = [attrs];
    parts.push(&a);
    hmac(alg, key, &parts)
}

/// One TPMS_AUTH_RESPONSE.
pub fn marshal_auth_response(w: &mut Vec<u8>, nonce: &[u8], attrs: u8, hmac: &[u8]) {
    (nonce.len() as u16).marshal(w);
    w.extend_from_slice(nonce);
    attrs.marshal(w);
    (hmac.len() as u16).marshal(w);
    w.extend_from_slice(hmac);
}
