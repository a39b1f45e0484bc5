//! The TPM wire format: a bounded reader, the Marshal/Unmarshal traits, sized
//! (TPM2B) and counted (TPML) containers, and macros that declare a structure
//! once and derive both directions.

mod containers;
mod macros;
mod primitives;
mod reader;
mod trailing;

pub use containers::{Buffer, Buffer8, List, Sized2b};
pub use reader::Reader;
pub use trailing::Trailing;

use crate::rc::TpmResult;

/// Serialise into the TPM wire format (big-endian, canonical).
pub trait Marshal {
    /// Append the wire form of `self` to `w`.
    fn marshal(&self, w: &mut Vec<u8>);

    /// The wire form as a new vector.
    fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::new();
        self.marshal(&mut v);
        v
    }
}

/// Parse from the TPM wire format; failures are TPM response codes without a
/// parameter number (the caller numbers them).
pub trait Unmarshal: Sized {
    /// Read one value from `r`.
    fn unmarshal(r: &mut Reader<'_>) -> TpmResult<Self>;

    /// Parse a value that must use every byte of `bytes` (TPM_RC_SIZE otherwise).
    fn from_bytes(bytes: &[u8]) -> TpmResult<Self> {
        let mut r = Reader::new(bytes);
        let v = Self::unmarshal(&mut r)?;
        r.finish()?;
        Ok(v)
    }
}

/// Append `f`'s output preceded by its length as a u16 (TPM2B framing), in one pass.
pub fn marshal_u16_sized(w: &mut Vec<u8>, f: impl FnOnce(&mut Vec<u8>)) {
    let at = w.len();
    w.extend_from_slice(&[0, 0]);
    f(w);
    let len = (w.len() - at - 2) as u16;
    w[at..at + 2].copy_from_slice(&len.to_be_bytes());
}

/// Append `f`'s output preceded by its length as a u32 (parameterSize framing).
pub fn marshal_u32_sized(w: &mut Vec<u8>, f: impl FnOnce(&mut Vec<u8>)) {
    let at = w.len();
    w.extend_from_slice(&[0, 0, 0, 0]);
    f(w);
    let len = (w.len() - at - 4) as u32;
    w[at..at + 4].copy_from_slice(&len.to_be_bytes());
}

#[cfg(test)]
mod tests;
