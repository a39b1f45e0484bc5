//! `--pid file=F|fd=N`: publish the process id once the TPM is being served.

use std::io::Write;
use std::path::PathBuf;

use crate::error::{Error, Result};

/// Where to write the pid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PidSpec {
    /// A file, written atomically and removed at a clean exit.
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
    /// Write this process's pid as `spec` says.
    pub fn write(spec: &PidSpec) -> Result<PidFile> {
        let pid = std::process::id();
        match spec {
            PidSpec::File(path) => {
                // Write a temporary file and rename it, so a reader never sees an
                // empty or half-written pid file.
                let mut tmp = path.clone().into_os_string();
                tmp.push(format!(".{pid}.tmp"));
                let tmp = PathBuf::from(tmp);
                std::fs::write(&tmp, format!("{pid}\n"))
                    .map_err(|e| Error::io("cannot write pid file", &tmp, e))?;
                if let Err(e) = std::fs::rename(&tmp, path) {
                    let _ = std::fs::remove_file(&tmp);
                    return Err(Error::io("cannot write pid file", path, e));
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
