//! Command bytes for the engine's unit tests (one builder for every module).

use crate::constants as c;

/// A TPM2B: size then bytes.
pub fn b2(data: &[u8]) -> Vec<u8> {
    let mut v = (data.len() as u16).to_be_bytes().to_vec();
    v.extend_from_slice(data);
    v
}

/// A command: `handles`, then (if `passwords` is given) one password
/// session per entry, then `params`.
pub fn command(cc: u32, handles: &[u32], passwords: Option<&[&[u8]]>, params: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    for h in handles {
        body.extend_from_slice(&h.to_be_bytes());
    }
    if let Some(pws) = passwords {
        let mut area = Vec::new();
        for pw in pws {
            area.extend_from_slice(&c::RS_PW.to_be_bytes());
            area.extend_from_slice(&[0, 0, 0]);
            area.extend(b2(pw));
        }
        body.extend_from_slice(&(area.len() as u32).to_be_bytes());
        body.extend(area);
    }
    body.extend_from_slice(params);
    let tag = if passwords.is_some() {
        c::ST_SESSIONS
    } else {
        c::ST_NO_SESSIONS
    };
    let mut v = tag.to_be_bytes().to_vec();
    v.extend_from_slice(&((10 + body.len()) as u32).to_be_bytes());
    v.extend_from_slice(&cc.to_be_bytes());
    v.extend(body);
    v
}
