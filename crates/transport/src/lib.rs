//! The outside world of vtpm: the swtpm data and control channels (TCP,
//! UNIX sockets, inherited descriptors), the mssim simulator protocol.
//! Owns no TPM state: everything goes through a [`Device`].

pub mod device;

pub use device::{Device, DeviceError, StateBlobKind};
