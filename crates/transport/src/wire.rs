//! The transport's wire records are declared with the shared
//! [`wire_record`] crate (also used by the NVRAM for NBD and its lease):
//! its types, re-exported under the name the transport has always used.

pub use wire_record::{Bytes, Endian, Field, Pad, Wire};
