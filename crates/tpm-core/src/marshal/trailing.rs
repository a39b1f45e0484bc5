//! A field added at the end of a stored structure by a newer format.

use super::{Marshal, Reader, Unmarshal};
use crate::rc::TpmResult;

/// A field added at the end by a newer format: absent (an older blob) reads
/// as the default, so older blobs keep loading. Only valid as the last
/// fields of a structure.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Trailing<T>(pub T);

impl<T> std::ops::Deref for Trailing<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> std::ops::DerefMut for Trailing<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

impl<T: Marshal> Marshal for Trailing<T> {
    fn marshal(&self, w: &mut Vec<u8>) {
        self.0.marshal(w);
    }
}

impl<T: Unmarshal + Default> Unmarshal for Trailing<T> {
    fn unmarshal(r: &mut Reader<'_>) -> TpmResult<Self> {
        if r.remaining().is_empty() {
            return Ok(Trailing(T::default()));
        }
        T::unmarshal(r).map(Trailing)
    }
}
