//! Where the TPM state lives and who may use it.
//!
//! `--tpmstate dir=DIR` keeps the NVRAM image at `DIR/vtpm-nvram.img` (DIR is
//! created, mode 0700, when missing) and locks `DIR/.lock`;
//! `--tpmstate backend-uri=file://PATH` uses the image (or block device) PATH
//! itself and locks `PATH.lock` (a block device is locked directly, since
//! `/dev` is no place for lock files); `backend-uri=dir://DIR` is `dir=DIR`.
//! Without `--tpmstate` the directory is `$TPM_PATH` (as swtpm), else
//! `$XDG_STATE_HOME/vtpm`, else `$HOME/.local/state/vtpm`.
//!
//! The lock is an advisory `flock` held for the life of the process: a
//! second instance on the same state is refused, naming the lock file and
//! the holder's pid (written into the lock file). The lock file is kept for
//! swtpm-style tools; the NVRAM also locks the image itself when it opens it
//! (`nvram::backend::FileBackend`), so two paths to one image — `dir=` and
//! `backend-uri=file://`, a symlink, a hard link — still contend.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The image file name inside a state directory.
pub const IMAGE_NAME: &str = "vtpm-nvram.img";
/// The lock file name inside a state directory.
pub const LOCK_NAME: &str = ".lock";

/// Where the state is, as the command line gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateLocation {
    /// A directory holding `vtpm-nvram.img`.
    Dir(PathBuf),
    /// The image file or block device itself.
    Image(PathBuf),
    /// The export of an NBD server (`backend-uri=nbd://...`, `nbd+unix://...`).
    Nbd(nvram::nbd::NbdUri),
}

/// The state options of `--tpmstate`.
#[derive(Debug, Clone)]
pub struct StateSpec {
    /// Where.
    pub location: StateLocation,
    /// Mode bits of the image file (swtpm's `mode=`, default 0640).
    pub mode: u32,
    /// `sync=off`: vtpm's relaxed NVRAM mode (no fdatasync; after a power cut
    /// the image may hold an older state, never a torn one).
    pub relaxed: bool,
    /// Whether the location came from a default rather than the command line.
    pub defaulted: bool,
}

impl StateSpec {
    /// How the NVRAM of this state is opened, with the already loaded `key`.
    pub fn open_options(&self, key: Option<nvram::KeySource>) -> nvram::OpenOptions {
        nvram::OpenOptions {
            sync: if self.relaxed {
                nvram::SyncMode::Relaxed
            } else {
                nvram::SyncMode::Durable
            },
            key,
            refuse_encrypted: false,
            create_size: None,
        }
    }

    /// The default location: `$TPM_PATH`, `$XDG_STATE_HOME/vtpm` or `$HOME/.local/state/vtpm`.
    pub fn default_location() -> Result<PathBuf> {
        let env = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        if let Some(p) = env("TPM_PATH") {
            return Ok(p);
        }
        if let Some(p) = env("XDG_STATE_HOME") {
            return Ok(p.join("vtpm"));
        }
        if let Some(p) = env("HOME") {
            return Ok(p.join(".local/state/vtpm"));
        }
        Err(Error::Usage(
            "no --tpmstate given and none of TPM_PATH, XDG_STATE_HOME, HOME is set to derive a default".into(),
        ))
    }

    /// The image path.
    pub fn image(&self) -> PathBuf {
        match &self.location {
            StateLocation::Dir(d) => d.join(IMAGE_NAME),
            StateLocation::Image(p) => p.clone(),
            StateLocation::Nbd(u) => PathBuf::from(u.to_string()),
        }
    }

    /// The lock file path (the block device itself for a block device image).
    pub fn lock_path(&self) -> PathBuf {
        match &self.location {
            StateLocation::Dir(d) => d.join(LOCK_NAME),
            StateLocation::Nbd(_) => self.image(),
            StateLocation::Image(p) if is_block_device(p) => p.clone(),
            StateLocation::Image(p) => {
                let mut s = p.clone().into_os_string();
                s.push(".lock");
                PathBuf::from(s)
            }
        }
    }

    /// What to name in messages: the directory, the image or the export.
    pub fn display(&self) -> PathBuf {
        match &self.location {
            StateLocation::Dir(d) => d.clone(),
            StateLocation::Image(p) => p.clone(),
            StateLocation::Nbd(u) => PathBuf::from(u.to_string()),
        }
    }

    /// Create the state directory if needed and take the lock (none for an
    /// NBD export: there is no file to lock).
    pub fn prepare(&self) -> Result<StateLock> {
        match &self.location {
            StateLocation::Nbd(_) => {
                return Ok(StateLock {
                    file: None,
                    path: self.image(),
                })
            }
            StateLocation::Dir(d) => create_dir(d)?,
            StateLocation::Image(p) => {
                if let Some(parent) = p.parent().filter(|p| !p.as_os_str().is_empty()) {
                    if !parent.is_dir() {
                        return Err(Error::io(
                            "directory of the state image does not exist:",
                            parent,
                            std::io::ErrorKind::NotFound.into(),
                        ));
                    }
                }
            }
        }
        StateLock::acquire(&self.display(), &self.lock_path(), self.mode)
    }

    /// Apply the mode bits to the image if it is a regular file (after the NVRAM created it).
    pub fn apply_mode(&self) -> Result<()> {
        let image = self.image();
        match std::fs::metadata(&image) {
            Ok(m) if m.is_file() && m.permissions().mode() & 0o7777 != self.mode => {
                std::fs::set_permissions(&image, std::fs::Permissions::from_mode(self.mode))
                    .map_err(|e| Error::io("cannot set the mode of", &image, e))
            }
            _ => Ok(()),
        }
    }
}

fn is_block_device(p: &Path) -> bool {
    std::fs::metadata(p)
        .map(|m| m.file_type().is_block_device())
        .unwrap_or(false)
}

fn create_dir(d: &Path) -> Result<()> {
    if d.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(d)
        .map_err(|e| Error::io("cannot create state directory", d, e))
}

/// The held state lock; released when dropped (or when the process dies).
#[derive(Debug)]
pub struct StateLock {
    /// The locked file (None: an NBD export, which has none).
    file: Option<File>,
    path: PathBuf,
}

impl StateLock {
    /// Lock `lock_path` for the state `state` or explain who holds it; a
    /// new lock file gets mode bits `mode`.
    pub fn acquire(state: &Path, lock_path: &Path, mode: u32) -> Result<StateLock> {
        let block = is_block_device(lock_path);
        let mut file = if block {
            // flock works on the device node; we never write to it here.
            File::open(lock_path)
        } else {
            let mut o = OpenOptions::new();
            o.read(true).write(true).create(true).truncate(false);
            crate::new_file::open(&o, lock_path, mode)
        }
        .map_err(|e| Error::io("cannot open lock file", lock_path, e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                if !block {
                    let mut s = String::new();
                    if file.read_to_string(&mut s).is_ok() {
                        if let Ok(pid) = s.trim().parse::<u32>() {
                            holder = format!(" (pid {pid})");
                        }
                    }
                }
                return Err(Error::Locked {
                    state: state.to_path_buf(),
                    lock: lock_path.to_path_buf(),
                    holder,
                });
            }
            Err(TryLockError::Error(e)) => return Err(Error::io("cannot lock", lock_path, e)),
        }
        if !block {
            // The holder's pid helps whoever is refused; failing to write it is harmless.
            let _ = file.set_len(0);
            let _ = file.rewind();
            let _ = writeln!(file, "{}", std::process::id());
        }
        Ok(StateLock {
            file: Some(file),
            path: lock_path.to_path_buf(),
        })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for StateLock {
    fn drop(&mut self) {
        // Closing the file releases the flock anyway; unlocking first makes the order explicit.
        if let Some(f) = &self.file {
            let _ = f.unlock();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_is_refused_with_the_holder_named() {
        let dir = tempfile::tempdir().unwrap();
        let spec = StateSpec {
            location: StateLocation::Dir(dir.path().join("s")),
            mode: 0o640,
            relaxed: false,
            defaulted: false,
        };
        let lock = spec.prepare().unwrap();
        let err = spec.prepare().unwrap_err().to_string();
        assert!(err.contains(".lock"), "{err}");
        assert!(
            err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        drop(lock);
        spec.prepare().unwrap();
    }

    #[test]
    fn file_backend_locks_next_to_the_image() {
        let spec = StateSpec {
            location: StateLocation::Image(PathBuf::from("/x/y.img")),
            mode: 0o640,
            relaxed: false,
            defaulted: false,
        };
        assert_eq!(spec.lock_path(), PathBuf::from("/x/y.img.lock"));
        assert_eq!(spec.image(), PathBuf::from("/x/y.img"));
    }
}
