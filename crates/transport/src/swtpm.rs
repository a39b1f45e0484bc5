//! The swtpm-compatible server: a data channel and a control channel sharing
//! one TPM, its current locality and its buffer size. This module wires the
//! two (`data_channel`, served on the TPM thread, and `ctrl`, on threads of
//! its own) over their shared state (`swtpm_state`).

use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::ctrl;
use crate::data_channel::{self, DataSession};
use crate::endpoint::{bind, Bound, Endpoint};
use crate::error::Error;
use crate::server::{Server, ServerCore};
use crate::swtpm_state::{DataFdStarter, SwtpmState};
use crate::tpm_loop::{Session, TpmHandle};

pub use crate::swtpm_state::DataOptions;

/// Default TPM command buffer size (swtpm / libtpms TPM_BUFFER_MAX).
pub const DEFAULT_BUFFER_SIZE: u32 = 4096;
/// Smallest buffer CMD_SET_BUFFERSIZE grants: a context blob and a header must fit.
pub const MIN_BUFFER_SIZE: u32 = 2048;

/// The initial, smallest and largest buffer size for a configured size.
fn buffer_limits(configured: u32) -> (u32, u32, u32) {
    let max = configured.max(DEFAULT_BUFFER_SIZE);
    let min = MIN_BUFFER_SIZE.min(max);
    (configured.clamp(min, max), min, max)
}

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

/// Start a swtpm-compatible server for the TPM behind `tpm`: the data
/// channel (TPM commands, optionally in the simulator framing), served on
/// the TPM thread, and the control channel (swtpm's `CMD_*` protocol, as
/// QEMU's `-tpmdev emulator` and tcti-swtpm speak it).
pub fn serve_swtpm(cfg: SwtpmConfig, tpm: &TpmHandle) -> Result<Server, Error> {
    serve_swtpm_with(cfg, DataOptions::default(), tpm)
}

/// [`serve_swtpm`] with the data-channel options of swtpm's `-t` and `disconnect`.
pub fn serve_swtpm_with(
    mut cfg: SwtpmConfig,
    opts: DataOptions,
    tpm: &TpmHandle,
) -> Result<Server, Error> {
    if cfg.data.is_none() && cfg.ctrl.is_none() {
        return Err(Error::Config(
            "neither a data nor a control channel is configured".into(),
        ));
    }
    // Bind everything before starting threads so a failure leaves nothing running.
    let data = cfg.data.take().map(bind).transpose()?;
    let ctrl = cfg.ctrl.take().map(bind).transpose()?;
    start(data, ctrl, &cfg, opts, tpm)
}

/// The state the data and control channels of a server for `tpm` share,
/// fresh (locality 0, no data connection), as `cfg` configures it (its
/// endpoints are not looked at): what [`start`] and the CUSE front end share.
pub(crate) fn shared_state(
    core: &Arc<ServerCore>,
    tpm: &TpmHandle,
    cfg: &SwtpmConfig,
    opts: DataOptions,
    data_listener: Option<OwnedFd>,
) -> Arc<SwtpmState> {
    let (buffer, min_buffer, max_buffer) = buffer_limits(cfg.buffer_size);
    Arc::new(SwtpmState {
        tpm: tpm.clone(),
        core: Arc::clone(core),
        locality: AtomicU8::new(0),
        buffer_size: AtomicU32::new(buffer),
        min_buffer,
        max_buffer,
        allow_set_locality: cfg.allow_set_locality,
        reject_locality_4: cfg.reject_locality_4,
        terminate_on_ctrl_close: cfg.terminate_on_ctrl_close,
        ctrl_accepts_mssim: cfg.ctrl_accepts_mssim,
        idle_data: AtomicUsize::new(0),
        data_listener,
        data: opts,
        datafd_active: AtomicBool::new(false),
        blob_cache: Mutex::new(None),
    })
}

/// Serve channels already bound (or adopted) as `cfg` says (its endpoints
/// are not looked at): what [`serve_swtpm_with`] and chardev mode share.
pub(crate) fn start(
    data: Option<Bound>,
    ctrl_ep: Option<Bound>,
    cfg: &SwtpmConfig,
    opts: DataOptions,
    tpm: &TpmHandle,
) -> Result<Server, Error> {
    let core = ServerCore::new(tpm)?;
    let data_listener = match &data {
        Some(Bound::Listener(l)) => l.as_fd().try_clone_to_owned().ok(),
        _ => None,
    };
    let st = shared_state(&core, tpm, cfg, opts, data_listener);
    let server = Server::new(Arc::clone(&core));
    match data {
        Some(Bound::Listener(l)) => {
            let s = Arc::clone(&st);
            let make = move || -> Box<dyn Session> {
                Box::new(DataSession::accepted(Arc::clone(&s), opts.disconnect))
            };
            core.add_tpm_listener("swtpm-data", l, tpm, Box::new(make))?;
        }
        Some(Bound::Connected(c)) => {
            st.datafd_active.store(true, Ordering::SeqCst);
            data_channel::start_fd(&st, c);
        }
        None => {}
    }
    // The control channel hands a CMD_SET_DATAFD descriptor back here, so
    // that it need not know the data channel.
    let s = Arc::clone(&st);
    let start_data: DataFdStarter = Arc::new(move |c| data_channel::start_fd(&s, c));
    match ctrl_ep {
        Some(Bound::Listener(l)) => {
            let s = Arc::clone(&st);
            core.add_listener(
                "swtpm-ctrl",
                l,
                Arc::new(move |c| ctrl::serve(c, Arc::clone(&s), Arc::clone(&start_data))),
            )?;
        }
        Some(Bound::Connected(c)) => {
            let s = Arc::clone(&st);
            core.spawn_conn("swtpm-ctrl", c, move |c| ctrl::serve(c, s, start_data));
        }
        None => {}
    }
    Ok(server)
}
