//! What the data and control channels of one swtpm server share: the TPM,
//! the locality and buffer size the control channel sets for the data
//! channel, and the bookkeeping between the two (idle data connections for
//! the mssim detection, the descriptor data channel, the state blob being
//! read). Both channel modules depend on this one and not on each other.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use crate::device::StateBlobKind;
use crate::server::ServerCore;
use crate::tpm_loop::TpmHandle;

/// Data-channel options beyond [`SwtpmConfig`](crate::SwtpmConfig) (a
/// separate type so that existing `SwtpmConfig { .. }` literals stay valid);
/// see [`serve_swtpm_with`](crate::serve_swtpm_with).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DataOptions {
    /// swtpm `-t` / `--terminate` (implied by `--fd`): end the server when a
    /// data connection closes ([`ExitReason::DataClosed`](crate::ExitReason::DataClosed)).
    pub terminate_on_data_close: bool,
    /// swtpm `--server ...,disconnect`: close an accepted data connection after
    /// each response. A descriptor data channel (inherited or CMD_SET_DATAFD)
    /// always stays open, as in swtpm.
    pub disconnect: bool,
}

/// The state of one swtpm server.
pub(crate) struct SwtpmState {
    pub(crate) tpm: TpmHandle,
    pub(crate) core: Arc<ServerCore>,
    /// Locality of data-channel commands (swtpm keeps one, set by CMD_SET_LOCALITY).
    pub(crate) locality: AtomicU8,
    pub(crate) buffer_size: AtomicU32,
    pub(crate) min_buffer: u32,
    pub(crate) max_buffer: u32,
    pub(crate) allow_set_locality: bool,
    pub(crate) reject_locality_4: bool,
    pub(crate) terminate_on_ctrl_close: bool,
    pub(crate) ctrl_accepts_mssim: bool,
    /// Data connections accepted that have not sent a byte yet (mssim detection).
    pub(crate) idle_data: AtomicUsize,
    /// A duplicate of the data listener's descriptor: a connection waiting in
    /// its backlog (the TPM thread accepts it when it is free) counts as an
    /// idle data connection too.
    pub(crate) data_listener: Option<OwnedFd>,
    pub(crate) data: DataOptions,
    /// A descriptor data channel (SET_DATAFD or inherited connected fd) is live.
    pub(crate) datafd_active: AtomicBool,
    /// The blob of the GET_STATEBLOB transfer in progress, so that requests
    /// with a non-zero offset continue the same snapshot.
    pub(crate) blob_cache: Mutex<Option<(StateBlobKind, Vec<u8>, bool)>>,
}

impl SwtpmState {
    /// Whether `loc` may be used.
    pub(crate) fn locality_ok(&self, loc: u8) -> bool {
        loc <= 4 && !(loc == 4 && self.reject_locality_4)
    }

    /// Whether a data connection is open or waiting to be accepted that has
    /// not sent anything yet (see `ctrl`'s mssim detection).
    pub(crate) fn idle_data_connection(&self) -> bool {
        if self.idle_data.load(Ordering::SeqCst) > 0 {
            return true;
        }
        let Some(fd) = &self.data_listener else {
            return false;
        };
        let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
        matches!(poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0)
    }

    /// Largest command the data channel takes now.
    pub(crate) fn max_command(&self) -> usize {
        self.buffer_size.load(Ordering::SeqCst) as usize
    }
}

/// Starts serving a connected descriptor as the data channel (what the
/// control channel does with CMD_SET_DATAFD).
pub(crate) type DataFdStarter = Arc<dyn Fn(crate::endpoint::Stream) + Send + Sync>;
