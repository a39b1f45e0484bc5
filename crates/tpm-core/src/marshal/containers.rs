//! TPM2B (u16-sized) and TPML (u32-counted) containers.

use super::{marshal_u16_sized, Marshal, Reader, Unmarshal};
use crate::constants as c;
use crate::rc::{err, Rc, TpmResult};

/// A TPM2B byte buffer of at most `MAX` bytes (e.g. TPM2B_DIGEST: 64).
/// A larger size field is TPM_RC_SIZE.
#[derive(Clone, PartialEq, Eq, Default, Hash)]
pub struct Buffer<const MAX: usize>(pub Vec<u8>);

impl<const MAX: usize> Buffer<MAX> {
    /// A buffer holding `bytes`; TPM_RC_SIZE if longer than `MAX`.
    pub fn new(bytes: &[u8]) -> TpmResult<Self> {
        if bytes.len() > MAX {
            return err(c::RC_SIZE);
        }
        Ok(Buffer(bytes.to_vec()))
    }
    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        &self.0
    }
    /// Number of bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }
    /// Whether it holds no bytes (the Empty Buffer).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<const MAX: usize> std::fmt::Debug for Buffer<MAX> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Buffer[{}]", self.0.len())
    }
}

impl<const MAX: usize> Marshal for Buffer<MAX> {
    fn marshal(&self, w: &mut Vec<u8>) {
        (self.0.len() as u16).marshal(w);
        w.extend_from_slice(&self.0);
    }
}

impl<const MAX: usize> Unmarshal for Buffer<MAX> {
    fn unmarshal(r: &mut Reader<'_>) -> TpmResult<Self> {
        let n = u16::unmarshal(r)? as usize;
        if n > MAX {
            return err(c::RC_SIZE);
        }
        Ok(Buffer(r.take(n)?.to_vec()))
    }
}

/// A structure inside a TPM2B: u16 size, then the structure, which must fill
/// exactly that size (TPM_RC_SIZE otherwise, and for a zero size).
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Sized2b<T>(pub T);

impl<T: Marshal> Marshal for Sized2b<T> {
    fn marshal(&self, w: &mut Vec<u8>) {
        marshal_u16_sized(w, |w| self.0.marshal(w));
    }
}

impl<T: Unmarshal> Unmarshal for Sized2b<T> {
    fn unmarshal(r: &mut Reader<'_>) -> TpmResult<Self> {
        let n = u16::unmarshal(r)? as usize;
        if n == 0 {
            return err(c::RC_SIZE);
        }
        let mut inner = Reader::new(r.take(n)?);
        let v = T::unmarshal(&mut inner).map_err(|e| {
            if e == Rc(c::RC_INSUFFICIENT) {
                Rc(c::RC_SIZE)
            } else {
                e
            }
        })?;
        inner.finish()?;
        Ok(Sized2b(v))
    }
}

/// A TPML list of at most `MAX` entries; a larger count is TPM_RC_SIZE.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct List<T, const MAX: usize>(pub Vec<T>);

impl<T, const MAX: usize> List<T, MAX> {
    /// A list of `v` (the caller keeps it within MAX).
    pub fn from_vec(v: Vec<T>) -> Self {
        List(v)
    }
}

impl<T, const MAX: usize> Default for List<T, MAX> {
    fn default() -> Self {
        List(Vec::new())
    }
}

impl<T: Marshal, const MAX: usize> Marshal for List<T, MAX> {
    fn marshal(&self, w: &mut Vec<u8>) {
        (self.0.len() as u32).marshal(w);
        for item in &self.0 {
            item.marshal(w);
        }
    }
}

impl<T: Unmarshal, const MAX: usize> Unmarshal for List<T, MAX> {
    fn unmarshal(r: &mut Reader<'_>) -> TpmResult<Self> {
        let n = u32::unmarshal(r)? as usize;
        if n > MAX {
            return err(c::RC_SIZE);
        }
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(T::unmarshal(r)?);
        }
        Ok(List(v))
    }
}

/// A byte array preceded by a u8 count (TPMS_TAGGED_PCR_SELECT's pcrSelect).
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Buffer8(pub Vec<u8>);

impl Marshal for Buffer8 {
    fn marshal(&self, w: &mut Vec<u8>) {
        (self.0.len() as u8).marshal(w);
        w.extend_from_slice(&self.0);
    }
}

impl Unmarshal for Buffer8 {
    fn unmarshal(r: &mut Reader<'_>) -> TpmResult<Self> {
        let n = u8::unmarshal(r)? as usize;
        Ok(Buffer8(r.take(n)?.to_vec()))
    }
}
