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

/// The response code of a response.
pub fn rc(r: &[u8]) -> u32 {
    u32::from_be_bytes(r[6..10].try_into().unwrap())
}

/// CreatePrimary of a P-256 key with `attributes` and signing `scheme`
/// (SHA-256; TPM_ALG_NULL: none) in `hierarchy`: its handle and the
/// response parameters.
pub fn ecc_primary(
    t: &mut crate::Tpm,
    hierarchy: u32,
    attributes: u32,
    scheme: u16,
) -> (u32, Vec<u8>) {
    let mut public = c::ALG_ECC.to_be_bytes().to_vec();
    public.extend(c::ALG_SHA256.to_be_bytes());
    public.extend(attributes.to_be_bytes());
    public.extend(b2(&[]));
    public.extend(c::ALG_NULL.to_be_bytes());
    public.extend(scheme.to_be_bytes());
    if scheme != c::ALG_NULL {
        public.extend(c::ALG_SHA256.to_be_bytes());
    }
    for v in [c::ECC_NIST_P256, c::ALG_NULL] {
        public.extend(v.to_be_bytes());
    }
    public.extend(b2(&[]));
    public.extend(b2(&[]));
    let mut p = b2(&[0, 0, 0, 0]);
    p.extend(b2(&public));
    p.extend(b2(&[]));
    p.extend(0u32.to_be_bytes());
    let r = t.execute(
        0,
        &command(c::CC_CreatePrimary, &[hierarchy], Some(&[b""]), &p),
    );
    assert_eq!(rc(&r), 0, "{r:02x?}");
    let h = u32::from_be_bytes(r[10..14].try_into().unwrap());
    let size = u32::from_be_bytes(r[14..18].try_into().unwrap()) as usize;
    (h, r[18..18 + size].to_vec())
}
