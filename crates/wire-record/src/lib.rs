//! Fixed-layout wire records, declared once with [`wire!`].
//!
//! The control messages and simulator headers of the transport, the FUSE
//! requests of its CUSE device, the NBD requests and replies and the lease
//! record of the NVRAM are all short runs of integers, byte strings and C
//! padding. Declaring each with one macro keeps its byte offsets in one
//! place instead of in the code that reads or writes it. Records are
//! big-endian on sockets and disks; the CUSE device (FUSE requests and ioctl
//! structures) uses the host's own order: [`Endian`] says which.

/// The byte order of a record's integers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endian {
    /// Network order: the swtpm and mssim sockets.
    Big,
    /// The host's order: FUSE/CUSE messages and ioctl structures.
    Native,
}

/// One field type of a wire record.
pub trait Field: Sized {
    /// Bytes on the wire.
    const SIZE: usize;
    /// Decode from the start of `b`; the caller guarantees `b.len() >= SIZE`.
    fn get(b: &[u8], e: Endian) -> Self;
    /// Append the encoding in byte order `e`.
    fn put(&self, out: &mut Vec<u8>, e: Endian);
}

impl Field for u8 {
    const SIZE: usize = 1;
    fn get(b: &[u8], _: Endian) -> Self {
        b.first().copied().unwrap_or(0)
    }
    fn put(&self, out: &mut Vec<u8>, _: Endian) {
        out.push(*self);
    }
}

macro_rules! int_field {
    ($t:ty) => {
        impl Field for $t {
            const SIZE: usize = std::mem::size_of::<$t>();
            fn get(b: &[u8], e: Endian) -> Self {
                let mut a = [0u8; std::mem::size_of::<$t>()];
                if let Some(src) = b.get(..a.len()) {
                    a.copy_from_slice(src);
                }
                match e {
                    Endian::Big => <$t>::from_be_bytes(a),
                    Endian::Native => <$t>::from_ne_bytes(a),
                }
            }
            fn put(&self, out: &mut Vec<u8>, e: Endian) {
                match e {
                    Endian::Big => out.extend_from_slice(&self.to_be_bytes()),
                    Endian::Native => out.extend_from_slice(&self.to_ne_bytes()),
                }
            }
        }
    };
}
int_field!(u16);
int_field!(u32);
int_field!(u64);
int_field!(i32);

/// A fixed run of `N` raw bytes (an IV, a salt, an id).
impl<const N: usize> Field for [u8; N] {
    const SIZE: usize = N;
    fn get(b: &[u8], _: Endian) -> Self {
        let mut a = [0u8; N];
        if let Some(src) = b.get(..N) {
            a.copy_from_slice(src);
        }
        a
    }
    fn put(&self, out: &mut Vec<u8>, _: Endian) {
        out.extend_from_slice(self);
    }
}

/// `N` raw bytes of any length: a byte array that also has a `Default`
/// (arrays have one only up to 32 bytes), for longer text or ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bytes<const N: usize>(pub [u8; N]);

impl<const N: usize> Default for Bytes<N> {
    fn default() -> Self {
        Bytes([0; N])
    }
}

impl<const N: usize> Bytes<N> {
    /// `s` truncated or zero-padded to `N` bytes.
    pub fn from_slice(s: &[u8]) -> Self {
        let mut a = [0u8; N];
        let n = s.len().min(N);
        a[..n].copy_from_slice(&s[..n]);
        Bytes(a)
    }

    /// The bytes up to the first zero (text stored zero-padded).
    pub fn trimmed(&self) -> &[u8] {
        let end = self.0.iter().position(|&c| c == 0).unwrap_or(N);
        &self.0[..end]
    }
}

impl<const N: usize> Field for Bytes<N> {
    const SIZE: usize = N;
    fn get(b: &[u8], e: Endian) -> Self {
        Bytes(<[u8; N]>::get(b, e))
    }
    fn put(&self, out: &mut Vec<u8>, e: Endian) {
        self.0.put(out, e)
    }
}

/// `N` bytes of C structure padding: written as zeros, ignored when read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pad<const N: usize>;

impl<const N: usize> Field for Pad<N> {
    const SIZE: usize = N;
    fn get(_: &[u8], _: Endian) -> Self {
        Pad
    }
    fn put(&self, out: &mut Vec<u8>, _: Endian) {
        out.extend_from_slice(&[0u8; N]);
    }
}

/// A record with a fixed wire size.
pub trait Wire: Sized {
    /// Bytes on the wire.
    const SIZE: usize;
    /// Decode from the start of `buf` in byte order `e`; `None` when `buf` is
    /// shorter than [`Wire::SIZE`]. Bytes after the record are ignored (the
    /// caller decides whether they are allowed).
    fn decode_in(buf: &[u8], e: Endian) -> Option<Self>;
    /// Append the encoding in byte order `e` to `out`.
    fn encode_in(&self, out: &mut Vec<u8>, e: Endian);
    /// [`Wire::decode_in`] big-endian.
    fn decode(buf: &[u8]) -> Option<Self> {
        Self::decode_in(buf, Endian::Big)
    }
    /// [`Wire::encode_in`] big-endian.
    fn encode(&self, out: &mut Vec<u8>) {
        self.encode_in(out, Endian::Big)
    }
    /// The encoding in byte order `e` as a new vector.
    fn to_bytes_in(&self, e: Endian) -> Vec<u8> {
        let mut v = Vec::with_capacity(Self::SIZE);
        self.encode_in(&mut v, e);
        v
    }
    /// The big-endian encoding as a new vector.
    fn to_bytes(&self) -> Vec<u8> {
        self.to_bytes_in(Endian::Big)
    }
}

/// Declare a wire record: a struct whose fields are [`Field`]s, in wire order.
#[macro_export]
macro_rules! wire {
    ($(#[$m:meta])* pub struct $name:ident { $( $(#[$fm:meta])* pub $f:ident : $t:ty ),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
        pub struct $name { $( $(#[$fm])* pub $f: $t ),* }

        impl $crate::Wire for $name {
            const SIZE: usize = 0 $( + <$t as $crate::Field>::SIZE )*;
            #[allow(unused_assignments)]
            fn decode_in(buf: &[u8], e: $crate::Endian) -> Option<Self> {
                if buf.len() < <Self as $crate::Wire>::SIZE {
                    return None;
                }
                #[allow(unused_mut, unused_variables, unused_assignments)]
                let mut at = 0usize;
                $(
                    let $f = <$t as $crate::Field>::get(buf.get(at..)?, e);
                    at += <$t as $crate::Field>::SIZE;
                )*
                Some(Self { $($f),* })
            }
            fn encode_in(&self, out: &mut Vec<u8>, e: $crate::Endian) {
                $( $crate::Field::put(&self.$f, out, e); )*
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
        let native = m.to_bytes_in(Endian::Native);
        assert_eq!(native[..4], 0x01020304u32.to_ne_bytes());
        assert_eq!(Mixed::decode_in(&native, Endian::Native), Some(m));
    }
}
