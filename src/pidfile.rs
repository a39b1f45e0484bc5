//! `--pid file=F|fd=N`: publish the process id once the TPM is being served.

use std::io::Write;
use std::path::PathBuf;

use crate::error::{Error, Result};

/// Where to write the pid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PidSpec {
    /// A file, written in place when it exists (as swtpm does), atomically
    /// when it does not, and removed at a clean exit.
    File(PathBuf),
    /// An inherited descriptor opened for writing; written and closed.
    Fd(i32),
}

/// A written pid file; [`PidFile::remove`] at a clean exit.
#[derive(Debug)]
pub struct PidFile {
    path: Option<PathBuf>,
}

impl PidFile {
    /// Write this process's pid as `spec` says; a new pid file gets mode bits `mode`.
    pub fn write(spec: &PidSpec, mode: u32) -> Result<PidFile> {
        let pid = std::process::id();
        match spec {
            PidSpec::File(path) => {
                let text = format!("{pid}\n");
                // A pid file that exists (swtpm_setup creates it empty and reads
                // it through the descriptor it holds) is written in place, as
                // swtpm does: a rename would give readers a file they never see.
                // A new one is written under a temporary name and renamed, so
                // no reader sees it empty or half-written.
                match write_in_place(path, text.as_bytes()) {
                    Ok(true) => {}
                    Ok(false) => write_renamed(path, pid, text.as_bytes(), mode)?,
                    Err(e) => return Err(Error::io("cannot write pid file", path, e)),
                }
                Ok(PidFile {
                    path: Some(path.clone()),
                })
            }
            PidSpec::Fd(n) => {
                let mut f = crate::fds::take_file("--pid", *n)?;
                f.write_all(format!("{pid}\n").as_bytes())
                    .map_err(|e| Error::Fd {
                        option: "--pid",
                        fd: *n,
                        reason: e.to_string(),
                    })?;
                Ok(PidFile { path: None })
            }
        }
    }

    /// Remove the pid file (if it still names us).
    pub fn remove(self) {
        if let Some(path) = &self.path {
            let ours =
                std::fs::read_to_string(path).map(|s| s.trim() == std::process::id().to_string());
            if ours.unwrap_or(false) {
                if let Err(e) = std::fs::remove_file(path) {
                    log::warn!("cannot remove pid file {}: {e}", path.display());
                }
            }
        }
    }
}

/// Write `data` over the existing regular file `path` (never through a
/// symlink); Ok(false) when there is no such file.
fn write_in_place(path: &std::path::Path, data: &[u8]) -> std::io::Result<bool> {
    use std::os::unix::fs::{FileExt, OpenOptionsExt};
    let f = match std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    if !f.metadata()?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    f.write_all_at(data, 0)?;
    f.set_len(data.len() as u64)?;
    Ok(true)
}

/// Write `data` to a temporary file beside `path` and rename it into place.
fn write_renamed(path: &std::path::Path, pid: u32, data: &[u8], mode: u32) -> Result<()> {
    let mut tmp = path.to_path_buf().into_os_string();
    tmp.push(format!(".{pid}.tmp"));
    let tmp = PathBuf::from(tmp);
    let mut o = std::fs::OpenOptions::new();
    o.write(true).truncate(true);
    crate::new_file::open(&o, &tmp, mode)
        .and_then(|mut f| f.write_all(data))
        .map_err(|e| Error::io("cannot write pid file", &tmp, e))?;
    if let Err(e) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io("cannot write pid file", path, e));
    }
    Ok(())
}
