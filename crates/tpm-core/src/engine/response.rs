//! Response framing.

use crate::constants as c;

/// What a command handler produces: an optional response handle and the
/// marshalled response parameters.
#[derive(Debug, Default)]
pub struct Response {
    /// The handle returned in the response handle area.
    pub handle: Option<u32>,
    /// Response parameters.
    pub params: Vec<u8>,
}

impl Response {
    /// A response carrying `params`.
    pub fn params(params: Vec<u8>) -> Self {
        Response {
            handle: None,
            params,
        }
    }
    /// A response carrying a marshalable value.
    pub fn of(v: &impl crate::marshal::Marshal) -> Self {
        Response::params(v.to_bytes())
    }
}

/// A 10-octet error response (TPM_ST_NO_SESSIONS); TPM_RC_BAD_TAG uses the
/// TPM 1.2 tag so that 1.2 software recognises it.
pub fn error_response(rc: u32) -> Vec<u8> {
    let tag: u16 = if rc == c::RC_BAD_TAG {
        0x00C4
    } else {
        c::ST_NO_SESSIONS
    };
    let mut v = Vec::with_capacity(10);
    v.extend_from_slice(&tag.to_be_bytes());
    v.extend_from_slice(&10u32.to_be_bytes());
    v.extend_from_slice(&rc.to_be_bytes());
    v
}
