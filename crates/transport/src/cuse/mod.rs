//! swtpm's CUSE front end: a character device /dev/NAME made in user space
//! through /dev/cuse. TPM commands are written to it and their responses
//! read back; the control channel is swtpm's ioctl interface (`PTM_*`).
//! The FUSE kernel protocol is spoken directly: [`proto`] declares its
//! structures, [`session`] is the request loop, [`ioctl`] the ioctl table.

pub mod ioctl;
pub(crate) mod proto;
pub(crate) mod session;

use std::fs::{File, OpenOptions};

use crate::error::Error;
use crate::server::{Server, ServerCore};
use crate::swtpm::{shared_state, SwtpmConfig};
use crate::swtpm_state::DataOptions;
use crate::tpm_loop::TpmHandle;
use session::{DeviceInfo, Flow, Session};

/// The CUSE control device.
pub const CUSE_DEVICE: &str = "/dev/cuse";

/// Configuration of [`serve_cuse`].
#[derive(Debug, Clone)]
pub struct CuseConfig {
    /// The device's name under /dev (swtpm `-n`).
    pub name: String,
    /// Major number (`-M`); 0: the kernel picks one.
    pub major: u32,
    /// Minor number (`-m`).
    pub minor: u32,
    /// `--locality allow-set-locality`.
    pub allow_set_locality: bool,
    /// `--locality reject-locality-4`.
    pub reject_locality_4: bool,
    /// Initial buffer size; PTM_SET_BUFFERSIZE may change it.
    pub buffer_size: u32,
}

/// Whether `name` can name a device under /dev.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains(['/', '\0', ',', '='])
        && name.len() < 256
}

/// Open /dev/cuse; the error says when the module is missing.
pub fn open_cuse() -> Result<File, Error> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(CUSE_DEVICE)
        .map_err(|source| Error::Cuse {
            path: CUSE_DEVICE.into(),
            source,
        })
}

/// Check, without starting anything, that /dev/NAME can be created:
/// a valid name not yet in use, and /dev/cuse there; returns the open
/// control device.
pub fn preflight(name: &str) -> Result<File, Error> {
    if !valid_name(name) {
        return Err(Error::Config(format!(
            "'{name}' cannot name a device under /dev"
        )));
    }
    let node = std::path::Path::new("/dev").join(name);
    if node.exists() {
        return Err(Error::Config(format!(
            "a device {} already exists",
            node.display()
        )));
    }
    open_cuse()
}

/// Create /dev/NAME through /dev/cuse and serve it for the TPM behind
/// `tpm`. Returns once the kernel has created the device.
pub fn serve_cuse(cfg: CuseConfig, tpm: &TpmHandle) -> Result<Server, Error> {
    let dev = preflight(&cfg.name)?;
    serve_cuse_on(dev, cfg, tpm)
}

/// [`serve_cuse`] on an open control device (or, in tests, one end of a
/// packet socket pair playing the kernel): answers CUSE_INIT, then serves
/// requests on a thread of its own.
pub(crate) fn serve_cuse_on(dev: File, cfg: CuseConfig, tpm: &TpmHandle) -> Result<Server, Error> {
    let core = ServerCore::new(tpm)?;
    // The device is both channels: no control connection to close, no
    // mssim clients, no data listener, swtpm's default data options.
    let channels = SwtpmConfig {
        allow_set_locality: cfg.allow_set_locality,
        reject_locality_4: cfg.reject_locality_4,
        buffer_size: cfg.buffer_size,
        ..SwtpmConfig::default()
    };
    let st = shared_state(&core, tpm, &channels, DataOptions::default(), None);
    let mut session = Session::new(
        dev,
        st,
        DeviceInfo {
            name: cfg.name.clone(),
            major: cfg.major,
            minor: cfg.minor,
        },
    );
    // The handshake on this thread: the device exists when this returns.
    while !session.initialised {
        if session.step() == Flow::End {
            return Err(Error::Config(format!(
                "the kernel did not complete CUSE_INIT for /dev/{}",
                cfg.name
            )));
        }
    }
    std::thread::Builder::new()
        .name("cuse".into())
        .spawn(move || session.run())
        .map_err(|source| Error::Io {
            context: "spawning the CUSE thread",
            source,
        })?;
    Ok(Server::new(core))
}

#[cfg(test)]
mod tests;
