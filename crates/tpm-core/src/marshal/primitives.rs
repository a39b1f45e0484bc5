//! Integers and byte arrays on the wire.

use super::{Marshal, Reader, Unmarshal};
use crate::rc::TpmResult;

macro_rules! int_codec {
    ($($t:ty),*) => {$(
        impl Marshal for $t {
            fn marshal(&self, w: &mut Vec<u8>) {
                w.extend_from_slice(&self.to_be_bytes());
            }
        }
        impl Unmarshal for $t {
            fn unmarshal(r: &mut Reader<'_>) -> TpmResult<Self> {
                Ok(<$t>::from_be_bytes(r.array()?))
            }
        }
    )*};
}
int_codec!(u8, u16, u32, u64, i8, i16, i32, i64);

impl Marshal for bool {
    fn marshal(&self, w: &mut Vec<u8>) {
        w.push(*self as u8);
    }
}

/// TPMI_YES_NO: 0 or 1, anything else is TPM_RC_VALUE.
impl Unmarshal for bool {
    fn unmarshal(r: &mut Reader<'_>) -> TpmResult<Self> {
        match u8::unmarshal(r)? {
            0 => Ok(false),
            1 => Ok(true),
            _ => crate::rc::err(crate::constants::RC_VALUE),
        }
    }
}

impl<const N: usize> Marshal for [u8; N] {
    fn marshal(&self, w: &mut Vec<u8>) {
        w.extend_from_slice(self);
    }
}

impl<const N: usize> Unmarshal for [u8; N] {
    fn unmarshal(r: &mut Reader<'_>) -> TpmResult<Self> {
        r.array()
    }
}

impl<T: Marshal> Marshal for Option<T> {
    /// Optional trailing data (state formats only): a presence byte, then the value.
    fn marshal(&self, w: &mut Vec<u8>) {
        match self {
            None => w.push(0),
            Some(v) => {
                w.push(1);
                v.marshal(w);
            }
        }
    }
}

impl<T: Unmarshal> Unmarshal for Option<T> {
    fn unmarshal(r: &mut Reader<'_>) -> TpmResult<Self> {
        if bool::unmarshal(r)? {
            Ok(Some(T::unmarshal(r)?))
        } else {
            Ok(None)
        }
    }
}
