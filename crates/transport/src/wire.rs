//! Fixed-layout big-endian wire records, declared once with [`wire!`](crate::wire!).
//!
//! Every control message and simulator header is a short run of u8/u32/u64
//! fields (plus C padding that swtpm puts on the wire). Declaring them with
//! one macro keeps the byte offsets in one place instead of in each handler.

/// One field type of a wire record.
pub trait Field: Sized {
    /// Bytes on the wire.
    const SIZE: usize;
    /// Decode from the start of `b`; the caller guarantees `b.len() >= SIZE`.
    fn get(b: &[u8]) -> Self;
    /// Append the big-endian encoding.
    fn put(&self, out: &mut Vec<u8>);
}

impl Field for u8 {
    const SIZE: usize = 1;
    fn get(b: &[u8]) -> Self {
        b.first().copied().unwrap_or(0)
    }
    fn put(&self, out: &mut Vec<u8>) {
        out.push(*self);
    }
}

macro_rules! int_field {
    ($t:ty) => {
        impl Field for $t {
            const SIZE: usize = std::mem::size_of::<$t>();
            fn get(b: &[u8]) -> Self {
                let mut a = [0u8; std::mem::size_of::<$t>()];
                if let Some(src) = b.get(..a.len()) {
                    a.copy_from_slice(src);
                }
                <$t>::from_be_bytes(a)
            }
            fn put(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_be_bytes());
            }
        }
    };
}
int_field!(u16);
int_field!(u32);
int_field!(u64);

/// A fixed run of `N` raw bytes (an IV, a salt).
impl<const N: usize> Field for [u8; N] {
    const SIZE: usize = N;
    fn get(b: &[u8]) -> Self {
        let mut a = [0u8; N];
        if let Some(src) = b.get(..N) {
            a.copy_from_slice(src);
        }
        a
    }
    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self);
    }
}

/// `N` bytes of C structure padding: written as zeros, ignored when read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pad<const N: usize>;

impl<const N: usize> Field for Pad<N> {
    const SIZE: usize = N;
    fn get(_: &[u8]) -> Self {
        Pad
    }
    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&[0u8; N]);
    }
}

/// A record with a fixed wire size.
pub trait Wire: Sized {
    /// Bytes on the wire.
    const SIZE: usize;
    /// Decode from the start of `buf`; `None` when `buf` is shorter than [`Wire::SIZE`].
    /// Bytes after the record are ignored (the caller decides whether they are allowed).
    fn decode(buf: &[u8]) -> Option<Self>;
    /// Append the encoding to `out`.
    fn encode(&self, out: &mut Vec<u8>);
    /// The encoding as a new vector.
    fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(Self::SIZE);
        self.encode(&mut v);
        v
    }
}

/// Declare a wire record: a struct whose fields are [`Field`]s, in wire order.
#[macro_export]
macro_rules! wire {
    ($(#[$m:meta])* pub struct $name:ident { $( $(#[$fm:meta])* pub $f:ident : $t:ty ),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
        pub struct $name { $( $(#[$fm])* pub $f: $t ),* }

        impl $crate::wire::Wire for $name {
            const SIZE: usize = 0 $( + <$t as $crate::wire::Field>::SIZE )*;
            #[allow(unused_assignments)]
            fn decode(buf: &[u8]) -> Option<Self> {
                if buf.len() < <Self as $crate::wire::Wire>::SIZE {
                    return None;
                }
                #[allow(unused_mut, unused_variables, unused_assignments)]
                let mut at = 0usize;
                $(
                    let $f = <$t as $crate::wire::Field>::get(buf.get(at..)?);
                    at += <$t as $crate::wire::Field>::SIZE;
                )*
                Some(Self { $($f),* })
            }
            fn encode(&self, out: &mut Vec<u8>) {
                $( $crate::wire::Field::put(&self.$f, out); )*
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    crate::wire! {
        /// Test record mixing every field kind.
        pub struct Mixed { pub a: u32, pub b: u8, pub pad: Pad<3>, pub c: u64 }
    }

    #[test]
    fn round_trip_and_layout() {
        let m = Mixed {
            a: 0x01020304,
            b: 5,
            pad: Pad,
            c: 0x0a0b0c0d0e0f1011,
        };
        let bytes = m.to_bytes();
        assert_eq!(Mixed::SIZE, 16);
        assert_eq!(
            bytes,
            [1, 2, 3, 4, 5, 0, 0, 0, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10, 0x11]
        );
        assert_eq!(Mixed::decode(&bytes), Some(m));
        assert_eq!(Mixed::decode(&bytes[..15]), None);
    }
}
