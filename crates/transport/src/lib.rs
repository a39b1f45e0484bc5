//! The outside world of vtpm: the swtpm data and control channels (TCP,
//! UNIX sockets, inherited descriptors, descriptors passed with
//! CMD_SET_DATAFD), the mssim simulator protocol.
//! Owns no TPM state: everything goes through a [`Device`].
//!
//! Threads: one listener thread per endpoint and one thread per connection,
//! all with blocking I/O; the [`Device`] serialises onto the TPM thread.

pub mod ctrl;
mod data_channel;
pub mod device;
pub mod endpoint;
pub mod error;
pub mod fdpass;
pub mod frame;
pub mod mssim;
pub mod server;
pub mod swtpm;
pub mod wire;

pub use device::{default_info, Device, DeviceError, StateBlobKind};
pub use endpoint::Endpoint;
pub use error::Error;
pub use mssim::{serve_mssim, MssimConfig};
pub use server::{ExitReason, Server};
pub use swtpm::{serve_swtpm, serve_swtpm_with, DataOptions, SwtpmConfig};
