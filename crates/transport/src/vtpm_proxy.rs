//! The Linux vTPM proxy driver (`tpm_vtpm_proxy`, /dev/vtpmx): one ioctl on
//! /dev/vtpmx creates a TPM device (/dev/tpmN and /dev/tpmrmN) and returns
//! the descriptor of its server side. The kernel's TPM core writes each
//! command to that descriptor (one `read` is one whole command) and waits
//! for the response (one `write`); `chardev` serves it like any character
//! device. Two things are particular to it and handled where they arise:
//! the driver's own TPM2_CC_SET_LOCALITY vendor command before the commands
//! of a locality (`data_channel`, always allowed on a proxy), and the
//! response to a command the kernel stopped waiting for, which the driver
//! refuses with EIO (`endpoint::Stream::VtpmProxy` drops it).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use crate::error::Error;

/// Where the driver's control device is.
pub const VTPMX: &str = "/dev/vtpmx";
/// VTPM_PROXY_FLAG_TPM2: the new device speaks TPM 2.0.
pub const VTPM_PROXY_FLAG_TPM2: u32 = 1;

/// `struct vtpm_proxy_new_dev` of <linux/vtpm_proxy.h>: `flags` in, the rest out.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
struct NewDev {
    flags: u32,
    tpm_num: u32,
    fd: u32,
    major: u32,
    minor: u32,
}

nix::ioctl_readwrite!(
    /// VTPM_PROXY_IOC_NEW_DEV, `_IOWR(0xa1, 0x00, struct vtpm_proxy_new_dev)`.
    ioc_new_dev,
    0xa1,
    0x00,
    NewDev
);

/// The driver's control device, opened (so that its absence is reported
/// before anything else is started).
#[derive(Debug)]
pub struct Vtpmx {
    file: File,
    path: PathBuf,
}

/// A TPM device the proxy created; `fd` is its server side.
#[derive(Debug)]
pub struct ProxyDevice {
    /// The descriptor vtpm reads commands from and writes responses to;
    /// closing it removes the device.
    pub fd: OwnedFd,
    /// N of /dev/tpmN and /dev/tpmrmN.
    pub tpm_num: u32,
    /// Major number of /dev/tpmN.
    pub major: u32,
    /// Minor number of /dev/tpmN.
    pub minor: u32,
}

impl ProxyDevice {
    /// What swtpm prints on stdout once the device exists.
    pub fn announcement(&self) -> String {
        format!(
            "New TPM device: /dev/tpm{} (major/minor = {}/{})",
            self.tpm_num, self.major, self.minor
        )
    }
}

impl Vtpmx {
    /// Open the driver's control device at `path` (normally [`VTPMX`]).
    pub fn open(path: &Path) -> Result<Vtpmx, Error> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|source| proxy_error(path, source))?;
        Ok(Vtpmx {
            file,
            path: path.to_path_buf(),
        })
    }

    /// Create a TPM 2.0 device. The kernel starts talking to it at once
    /// (it registers the chip with a few commands), so serve the returned
    /// descriptor promptly.
    pub fn new_device(&self) -> Result<ProxyDevice, Error> {
        let mut req = NewDev {
            flags: VTPM_PROXY_FLAG_TPM2,
            ..NewDev::default()
        };
        // SAFETY: the descriptor is open for the lifetime of `self.file`, and
        // `req` is a live, properly aligned `struct vtpm_proxy_new_dev` (same
        // five u32 fields, repr(C)) that the kernel reads and fills in place.
        let r = unsafe { ioc_new_dev(self.file.as_raw_fd(), &mut req) };
        r.map_err(|e| proxy_error(&self.path, e.into()))?;
        let raw = RawFd::try_from(req.fd)
            .map_err(|_| proxy_error(&self.path, io::ErrorKind::InvalidData.into()))?;
        // SAFETY: on success the ioctl has just installed `raw` in this
        // process's descriptor table for the new device, and nothing else
        // refers to it: this OwnedFd becomes its only owner.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        Ok(ProxyDevice {
            fd,
            tpm_num: req.tpm_num,
            major: req.major,
            minor: req.minor,
        })
    }
}

/// Whether `fd` is the server side of a vTPM proxy device (created by a
/// parent and passed down): the driver makes it an anonymous inode named
/// `[vtpms]`.
pub fn is_proxy_fd(fd: &OwnedFd) -> bool {
    std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .is_ok_and(|target| target.as_os_str() == "anon_inode:[vtpms]")
}

/// The one-line error of a proxy that cannot be used, with what to do about it.
fn proxy_error(path: &Path, source: io::Error) -> Error {
    let hint = match source.kind() {
        io::ErrorKind::NotFound => {
            "; the tpm_vtpm_proxy kernel module is not loaded (modprobe tpm_vtpm_proxy) or this kernel has none"
        }
        io::ErrorKind::PermissionDenied => "; creating a vTPM proxy device needs root (CAP_SYS_ADMIN)",
        _ => "",
    };
    Error::Proxy {
        path: path.display().to_string(),
        source,
        hint,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_has_the_kernel_layout() {
        // _IOWR encodes the size: five u32, 20 bytes, no padding.
        assert_eq!(std::mem::size_of::<NewDev>(), 20);
        assert_eq!(
            nix::request_code_readwrite!(0xa1, 0x00, std::mem::size_of::<NewDev>()),
            0xc014_a100
        );
    }

    #[test]
    fn a_missing_driver_is_one_line_that_says_what_to_load() {
        let dir = tempfile::tempdir().unwrap();
        let e = Vtpmx::open(&dir.path().join("vtpmx"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("tpm_vtpm_proxy"), "{e}");
        assert!(!e.contains('\n'), "{e}");
    }

    #[test]
    fn a_device_that_is_not_the_proxy_refuses_the_ioctl() {
        let x = Vtpmx::open(Path::new("/dev/null")).unwrap();
        let e = x.new_device().unwrap_err().to_string();
        assert!(e.starts_with("vTPM proxy /dev/null: "), "{e}");
    }

    #[test]
    fn other_descriptors_are_not_proxies() {
        let f: OwnedFd = File::open("/dev/null").unwrap().into();
        assert!(!is_proxy_fd(&f));
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        assert!(!is_proxy_fd(&OwnedFd::from(a)));
    }

    #[test]
    fn announcement_is_swtpms() {
        let d = ProxyDevice {
            fd: File::open("/dev/null").unwrap().into(),
            tpm_num: 1,
            major: 253,
            minor: 65537,
        };
        assert_eq!(
            d.announcement(),
            "New TPM device: /dev/tpm1 (major/minor = 253/65537)"
        );
    }
}
