//! The outside world of vtpm: the swtpm data and control channels (TCP,
//! UNIX sockets, inherited descriptors, descriptors passed with
//! CMD_SET_DATAFD), swtpm's chardev mode (a character device, a passed
//! descriptor, a Linux vTPM proxy device), the mssim simulator protocol, the
//! CUSE character device (commands by read/write, the control channel as
//! ioctls).
//! Owns no TPM state: everything goes through a [`Device`], which lives on
//! the TPM thread.
//!
//! Threads: the TPM thread runs [`TpmLoop`], which serves the data channels
//! (swtpm data, mssim command port) itself: one `epoll_wait`, then read, execute
//! and answer on that thread, so a command costs one thread wake-up. The
//! control channel and the mssim platform port have a listener thread and
//! one thread per connection, with blocking I/O, and reach the device
//! through a [`TpmHandle`] (a job queue whose eventfd the TPM thread watches).
//!
//! Module layering (no cycles): `chardev` wires a server through `swtpm`
//! and asks `vtpm_proxy` (which depends only on `error`) whether a
//! descriptor is a proxy device; `swtpm` and `mssim` wire a server; `ctrl`
//! and `data_channel` both depend on `swtpm_state` and not on each other;
//! `swtpm_state` on `server`, which depends on `tpm_loop` (a server is an
//! [`tpm_loop`] `Owner` of the sources it serves there), which depends only
//! on `device`, `endpoint`, `error` and `sync`. `cuse` carries the control
//! commands of `ctrl`'s handler and the TPM commands of `data_channel` over
//! the device; nothing depends on it.

pub mod chardev;
pub mod ctrl;
pub mod cuse;
mod data_channel;
pub mod device;
pub mod endpoint;
pub mod error;
pub mod fdpass;
pub mod frame;
pub mod mssim;
pub mod server;
pub mod swtpm;
mod swtpm_state;
mod sync;
pub mod tpm_loop;
pub mod vtpm_proxy;
pub mod wire;
/// Declare a wire record (see [`wire_record`]); `crate::wire!` in this crate.
pub use wire_record::wire;

pub use chardev::{serve_chardev, CharDevice, ChardevConfig};
pub use cuse::{serve_cuse, CuseConfig};
pub use device::{default_info, Canceller, Device, DeviceError, StateBlobKind};
pub use endpoint::Endpoint;
pub use error::Error;
pub use mssim::{serve_mssim, MssimConfig};
pub use server::{ExitReason, Server};
pub use swtpm::{serve_swtpm, serve_swtpm_with, DataOptions, SwtpmConfig};
pub use tpm_loop::{spawn_tpm, tpm_loop, TpmHandle, TpmLoop};
