//! The TPM 2.0 engine of vtpm: `execute(locality, command) -> response`.
//! Pure logic plus crypto, no I/O of its own: state that must survive power
//! loss is handed to a [`Persistence`] port, which returns only once durable.

pub mod auth;
pub mod commands;
pub mod constants;
pub mod crypto;
pub mod dispatch;
pub mod engine;
pub mod marshal;
pub mod nv;
pub mod object;
pub mod persist;
pub mod rc;
pub mod state;
#[cfg(test)]
mod test_cmd;
pub mod types;

pub use engine::{Error, Tpm, TpmConfig};
pub use persist::{BlobKind, MemoryStore, PersistError, Persistence};
