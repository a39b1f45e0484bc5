//! The swtpm-compatible server: a data channel and a control channel sharing
//! one TPM, its current locality and its buffer size.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use crate::endpoint::{bind, Bound, Endpoint, Stream};
use crate::error::Error;
use crate::server::{Server, ServerCore};
use crate::{ctrl, data_channel, Device, StateBlobKind};

/// Default TPM command buffer size (swtpm / libtpms TPM_BUFFER_MAX).
pub const DEFAULT_BUFFER_SIZE: u32 = 4096;
/// Smallest buffer CMD_SET_BUFFERSIZE grants: a context blob and a header must fit.
pub const MIN_BUFFER_SIZE: u32 = 2048;

/// Configuration of [`serve_swtpm`].
#[derive(Debug)]
pub struct SwtpmConfig {
    /// Data channel; `None`: only a channel handed over with CMD_SET_DATAFD.
    pub data: Option<Endpoint>,
    /// Control channel; `None`: no control channel.
    pub ctrl: Option<Endpoint>,
    /// `--locality allow-set-locality`: honour the in-band TPM2_SetLocality
    /// vendor command (0x20001000) on the data channel.
    pub allow_set_locality: bool,
    /// `--locality reject-locality-4`: refuse locality 4 everywhere.
    pub reject_locality_4: bool,
    /// `--ctrl ...,terminate`: end the server when a control connection closes.
    pub terminate_on_ctrl_close: bool,
    /// Also serve mssim platform clients on the control port (detected per
    /// connection, see `ctrl::serve`), so the `mssim:` TCTI works beside `swtpm:`.
    pub ctrl_accepts_mssim: bool,
    /// Initial buffer size (largest command accepted); CMD_SET_BUFFERSIZE may change it.
    pub buffer_size: u32,
}

impl Default for SwtpmConfig {
    fn default() -> Self {
        SwtpmConfig {
            data: None,
            ctrl: None,
            allow_set_locality: false,
            reject_locality_4: false,
            terminate_on_ctrl_close: false,
            ctrl_accepts_mssim: false,
            buffer_size: DEFAULT_BUFFER_SIZE,
        }
    }
}

/// Data-channel options beyond [`SwtpmConfig`] (a separate type so that
/// existing `SwtpmConfig { .. }` literals stay valid); see [`serve_swtpm_with`].
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

/// What the data and control connections of one swtpm server share.
pub(crate) struct SwtpmState {
    pub(crate) dev: Arc<dyn Device>,
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
    pub(crate) idle_data: std::sync::atomic::AtomicUsize,
    pub(crate) data: DataOptions,
    /// A descriptor data channel (SET_DATAFD or inherited connected fd) is live.
    pub(crate) datafd_active: AtomicBool,
    /// The blob of the GET_STATEBLOB transfer in progress, so that requests
    /// with a non-zero offset continue the same snapshot.
    pub(crate) blob_cache: Mutex<Option<(StateBlobKind, Vec<u8>)>>,
}

impl SwtpmState {
    /// Whether `loc` may be used.
    pub(crate) fn locality_ok(&self, loc: u8) -> bool {
        loc <= 4 && !(loc == 4 && self.reject_locality_4)
    }

    /// Largest command the data channel takes now.
    pub(crate) fn max_command(&self) -> usize {
        self.buffer_size.load(Ordering::SeqCst) as usize
    }

    /// Serve a descriptor data channel; only one may be live, as in swtpm.
    pub(crate) fn start_fd_data_channel(self: &Arc<Self>, stream: Stream) {
        let st = Arc::clone(self);
        self.core.spawn_conn("swtpm-datafd", stream, move |s| {
            data_channel::serve(s, Arc::clone(&st), false);
            st.datafd_active.store(false, Ordering::SeqCst);
        });
    }
}

/// Start a swtpm-compatible server for `dev`: the data channel (TPM commands,
/// optionally in the simulator framing) and the control channel (swtpm's
/// `CMD_*` protocol, as QEMU's `-tpmdev emulator` and tcti-swtpm speak it).
pub fn serve_swtpm(cfg: SwtpmConfig, dev: Arc<dyn Device>) -> Result<Server, Error> {
    serve_swtpm_with(cfg, DataOptions::default(), dev)
}

/// [`serve_swtpm`] with the data-channel options of swtpm's `-t` and `disconnect`.
pub fn serve_swtpm_with(
    cfg: SwtpmConfig,
    opts: DataOptions,
    dev: Arc<dyn Device>,
) -> Result<Server, Error> {
    if cfg.data.is_none() && cfg.ctrl.is_none() {
        return Err(Error::Config(
            "neither a data nor a control channel is configured".into(),
        ));
    }
    // Bind everything before starting threads so a failure leaves nothing running.
    let data = cfg.data.map(bind).transpose()?;
    let ctrl_ep = cfg.ctrl.map(bind).transpose()?;
    let core = ServerCore::new()?;
    let max_buffer = cfg.buffer_size.max(DEFAULT_BUFFER_SIZE);
    let min_buffer = MIN_BUFFER_SIZE.min(max_buffer);
    let st = Arc::new(SwtpmState {
        dev,
        core: Arc::clone(&core),
        locality: AtomicU8::new(0),
        buffer_size: AtomicU32::new(cfg.buffer_size.clamp(min_buffer, max_buffer)),
        min_buffer,
        max_buffer,
        allow_set_locality: cfg.allow_set_locality,
        reject_locality_4: cfg.reject_locality_4,
        terminate_on_ctrl_close: cfg.terminate_on_ctrl_close,
        ctrl_accepts_mssim: cfg.ctrl_accepts_mssim,
        idle_data: std::sync::atomic::AtomicUsize::new(0),
        data: opts,
        datafd_active: AtomicBool::new(false),
        blob_cache: Mutex::new(None),
    });
    let server = Server::new(Arc::clone(&core));
    match data {
        Some(Bound::Listener(l)) => {
            let s = Arc::clone(&st);
            core.add_listener(
                "swtpm-data",
                l,
                Arc::new(move |c| data_channel::serve(c, Arc::clone(&s), opts.disconnect)),
            )?;
        }
        Some(Bound::Connected(c)) => {
            st.datafd_active.store(true, Ordering::SeqCst);
            st.start_fd_data_channel(c);
        }
        None => {}
    }
    match ctrl_ep {
        Some(Bound::Listener(l)) => {
            let s = Arc::clone(&st);
            core.add_listener(
                "swtpm-ctrl",
                l,
                Arc::new(move |c| ctrl::serve(c, Arc::clone(&s))),
            )?;
        }
        Some(Bound::Connected(c)) => {
            let s = Arc::clone(&st);
            core.spawn_conn("swtpm-ctrl", c, move |c| ctrl::serve(c, s));
        }
        None => {}
    }
    Ok(server)
}
