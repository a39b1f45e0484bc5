//! Authorization: sessions, the command/response authorization areas,
//! HMAC computation, parameter encryption, and entity auth values.

pub mod area;
pub mod entity;
pub mod lockout;
pub mod param_crypt;
pub mod policy;
pub mod pp;
pub mod session;

/// Remove trailing zero octets (Part 1: authValues are compared and used in HMACs without them).
pub fn trim_zeros(v: &[u8]) -> &[u8] {
    let n = v.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    &v[..n]
}
