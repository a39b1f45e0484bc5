//! swtpm's chardev mode: TPM commands on one descriptor — a character
//! device or tty opened by path, a descriptor a parent passed (a connected
//! socket, a character device), or the server side of a vTPM proxy device
//! (see `vtpm_proxy`) — with the swtpm control channel beside it if asked.
//! The descriptor is served on the TPM thread exactly like a swtpm data
//! connection (`data_channel`: the same framing, the same in-band
//! TPM2_CC_SET_LOCALITY, one thread wake-up per command), and the server
//! ends when it hangs up or its peer closes it, as swtpm's chardev mode does.

use std::fs::{File, OpenOptions};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::PathBuf;

use crate::endpoint::{bind, classify_fd, Bound, Endpoint, Stream};
use crate::error::Error;
use crate::server::Server;
use crate::swtpm::{self, DataOptions, SwtpmConfig, DEFAULT_BUFFER_SIZE};
use crate::tpm_loop::TpmHandle;
use crate::vtpm_proxy;

/// What chardev mode serves TPM commands on.
#[derive(Debug)]
pub enum CharDevice {
    /// A device to open read-write (`--chardev PATH`).
    Path(PathBuf),
    /// A descriptor a parent passed (`--fd N`): a character device, a tty
    /// or a connected socket; the server side of a vTPM proxy device the
    /// parent created is recognised and served as [`CharDevice::VtpmProxy`].
    Fd(OwnedFd),
    /// The server side of a vTPM proxy device (`--vtpm-proxy`): the kernel's
    /// TPM2_CC_SET_LOCALITY is always honoured, as swtpm does there.
    VtpmProxy(OwnedFd),
}

/// Configuration of [`serve_chardev`].
#[derive(Debug)]
pub struct ChardevConfig {
    /// Where the TPM commands come from.
    pub device: CharDevice,
    /// Control channel; `None`: no control channel.
    pub ctrl: Option<Endpoint>,
    /// `--locality allow-set-locality` (implied by a vTPM proxy).
    pub allow_set_locality: bool,
    /// `--locality reject-locality-4`.
    pub reject_locality_4: bool,
    /// `--ctrl ...,terminate`: end the server when a control connection closes.
    pub terminate_on_ctrl_close: bool,
    /// Largest command accepted; CMD_SET_BUFFERSIZE may change it.
    pub buffer_size: u32,
}

impl ChardevConfig {
    /// Serve `device` with no control channel and swtpm's defaults.
    pub fn new(device: CharDevice) -> ChardevConfig {
        ChardevConfig {
            device,
            ctrl: None,
            allow_set_locality: false,
            reject_locality_4: false,
            terminate_on_ctrl_close: false,
            buffer_size: DEFAULT_BUFFER_SIZE,
        }
    }
}

/// Serve TPM commands on a character device for the TPM behind `tpm`, and
/// the control channel if configured. The server ends with
/// [`ExitReason::DataClosed`](crate::ExitReason::DataClosed) when the device
/// closes.
pub fn serve_chardev(cfg: ChardevConfig, tpm: &TpmHandle) -> Result<Server, Error> {
    let (stream, proxy) = match cfg.device {
        CharDevice::Path(path) => (adopt(open(&path)?, &path.display().to_string())?, false),
        CharDevice::Fd(fd) if vtpm_proxy::is_proxy_fd(&fd) => {
            // A parent created the device and passed its server side: it
            // needs what `--vtpm-proxy` gives (swtpm would refuse the
            // kernel's locality command without allow-set-locality).
            log::info!(
                "descriptor {} is a vTPM proxy device: its locality command is honoured",
                fd.as_raw_fd()
            );
            (Stream::VtpmProxy(File::from(fd)), true)
        }
        CharDevice::Fd(fd) => {
            let what = format!("descriptor {}", fd.as_raw_fd());
            (adopt(fd, &what)?, false)
        }
        CharDevice::VtpmProxy(fd) => (Stream::VtpmProxy(File::from(fd)), true),
    };
    let ctrl = cfg.ctrl.map(bind).transpose()?;
    let settings = SwtpmConfig {
        data: None,
        ctrl: None,
        // Without it the kernel's locality request fails, and with it every
        // command the proxy forwards (swtpm forces it on too).
        allow_set_locality: cfg.allow_set_locality || proxy,
        reject_locality_4: cfg.reject_locality_4,
        terminate_on_ctrl_close: cfg.terminate_on_ctrl_close,
        ctrl_accepts_mssim: false,
        buffer_size: cfg.buffer_size,
    };
    let opts = DataOptions {
        terminate_on_data_close: true,
        disconnect: false,
    };
    swtpm::start(Some(Bound::Connected(stream)), ctrl, &settings, opts, tpm)
}

/// Open a device for reading and writing; never as a controlling terminal.
fn open(path: &std::path::Path) -> Result<OwnedFd, Error> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(nix::fcntl::OFlag::O_NOCTTY.bits())
        .open(path)
        .map(OwnedFd::from)
        .map_err(|e| Error::NotADevice {
            what: path.display().to_string(),
            reason: e.to_string(),
        })
}

/// Take a descriptor as swtpm does: anything but a regular file, a
/// directory, a block device or a symbolic link; and, since commands are
/// read from it, not a listening socket.
fn adopt(fd: OwnedFd, what: &str) -> Result<Stream, Error> {
    let refuse = |reason: &str| Error::NotADevice {
        what: what.to_string(),
        reason: reason.to_string(),
    };
    let file = File::from(fd);
    let kind = file
        .metadata()
        .map_err(|e| refuse(&e.to_string()))?
        .file_type();
    let unusable = [
        (kind.is_file(), "a regular file"),
        (kind.is_dir(), "a directory"),
        (kind.is_block_device(), "a block device"),
        (kind.is_symlink(), "a symbolic link"),
    ];
    if let Some((_, name)) = unusable.iter().find(|(is, _)| *is) {
        return Err(refuse(&format!(
            "it is {name}, not a character device or a connection"
        )));
    }
    match classify_fd(OwnedFd::from(file))? {
        Bound::Connected(s) => Ok(s),
        Bound::Listener(_) => Err(refuse(
            "it is a listening socket; chardev mode reads commands from a connected descriptor (use `vtpm socket` to accept connections)",
        )),
    }
}
