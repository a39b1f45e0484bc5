//! Where the image lives: a regular file, a raw image or a block device, or
//! (in tests) anything implementing [`Backend`].

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Random-access storage with an explicit flush.
pub trait Backend: Send {
    /// Read exactly `buf.len()` bytes at `off`.
    fn read_at(&mut self, off: u64, buf: &mut [u8]) -> std::io::Result<()>;
    /// Write all of `data` at `off`.
    fn write_at(&mut self, off: u64, data: &[u8]) -> std::io::Result<()>;
    /// Make everything written so far durable (fdatasync).
    fn flush(&mut self) -> std::io::Result<()>;
    /// Write each `(offset, data)` (in no particular order) and make them and
    /// everything written before durable: a durable commit. A backend that
    /// can make writes durable on their own (NBD's FUA) saves the separate
    /// flush and its round trip.
    fn write_durable(&mut self, writes: &[(u64, &[u8])]) -> std::io::Result<()> {
        for (off, data) in writes {
            self.write_at(*off, data)?;
        }
        self.flush()
    }
    /// Size in bytes (never changes).
    fn size(&self) -> u64;
    /// A name for messages.
    fn path(&self) -> PathBuf;
    /// Give the image up after a hand-over (`--migration
    /// release-lock-outgoing`), everything written before being durable:
    /// nothing is written any more. A file releases its lock (and refuses
    /// every later write: another process may own the image from then on;
    /// a writer that wants it back opens it again); an NBD client
    /// disconnects, so that a server allowing one client lets the next
    /// instance in.
    fn release(&mut self) -> std::io::Result<()> {
        Ok(())
    }
    /// Periodic work of the backend (renewing an in-image lease): called by
    /// the storage thread when the time this returned last has passed; None
    /// when there is none (the thread then sleeps until a write comes).
    fn heartbeat(&mut self) -> Option<std::time::Duration> {
        None
    }
}

/// A regular file or block device.
pub struct FileBackend {
    file: File,
    size: u64,
    path: PathBuf,
    /// The image is locked (`flock`: opened for writing; read-only takes no lock).
    locked: bool,
    /// The lock was released at a hand-over: every write is refused.
    released: bool,
}

impl FileBackend {
    /// Open `path`; a missing regular file is created with `create_size` bytes
    /// (`None`: refuse to create). `read_only` opens without write access.
    pub fn open(
        path: &Path,
        create_size: Option<u64>,
        read_only: bool,
    ) -> std::io::Result<(FileBackend, bool)> {
        let (file, created) = match OpenOptions::new().read(true).write(!read_only).open(path) {
            Ok(f) => (f, false),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !read_only => match create_size {
                Some(size) => {
                    let f = OpenOptions::new()
                        .read(true)
                        .write(true)
                        .create_new(true)
                        .open(path)?;
                    // Allocate the whole image now so later data flushes need no metadata update.
                    f.set_len(size)?;
                    let zeros = vec![0u8; 1 << 16];
                    let mut off = 0;
                    while off < size {
                        let n = (size - off).min(zeros.len() as u64) as usize;
                        f.write_all_at(&zeros[..n], off)?;
                        off += n as u64;
                    }
                    f.sync_all()?;
                    sync_parent(path);
                    (f, true)
                }
                None => return Err(e),
            },
            Err(e) => return Err(e),
        };
        // The image itself is locked, whatever path reached it (a symlink, a
        // hard link, a bind mount, dir= or backend-uri=): two writers on one
        // image would interleave their logs and destroy it. Read-only
        // inspection takes no lock.
        // Contention is reported as ErrorKind::WouldBlock; the NVRAM turns it
        // into Error::InUse naming the image.
        if !read_only {
            match file.try_lock() {
                Ok(()) => {}
                Err(std::fs::TryLockError::WouldBlock) => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::WouldBlock,
                        "the image is in use: another vtpm (or vtpm nvram) holds its lock",
                    ))
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(e),
            }
        }
        let mut f = file;
        let size = f.seek(SeekFrom::End(0))?;
        Ok((
            FileBackend {
                file: f,
                size,
                path: path.to_path_buf(),
                locked: !read_only,
                released: false,
            },
            created,
        ))
    }
}

/// Make a new directory entry of `path` durable (best effort: not every
/// filesystem can sync a directory).
pub(crate) fn sync_parent(path: &Path) {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Whether a writer holds the lock of the image at `path` (a live vtpm).
pub fn in_use(path: &Path) -> bool {
    let Ok(f) = File::open(path) else {
        return false;
    };
    match f.try_lock_shared() {
        Ok(()) => {
            let _ = f.unlock();
            false
        }
        Err(std::fs::TryLockError::WouldBlock) => true,
        Err(std::fs::TryLockError::Error(_)) => false,
    }
}

impl FileBackend {
    /// The same file, named `path` in messages (an image formatted under a
    /// temporary name before it is renamed there).
    pub fn named(mut self, path: &Path) -> FileBackend {
        self.path = path.to_path_buf();
        self
    }

    /// Refuse to change the image once its lock was handed over.
    fn check_lock(&self) -> std::io::Result<()> {
        if !self.released {
            return Ok(());
        }
        Err(std::io::Error::other(format!(
            "{}: the image's lock was released (handed over to another process): this instance may not write it any more",
            self.path.display()
        )))
    }
}

impl Backend for FileBackend {
    fn read_at(&mut self, off: u64, buf: &mut [u8]) -> std::io::Result<()> {
        self.file.read_exact_at(buf, off)
    }
    fn write_at(&mut self, off: u64, data: &[u8]) -> std::io::Result<()> {
        self.check_lock()?;
        self.file.write_all_at(data, off)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.check_lock()?;
        self.file.sync_data()
    }
    fn size(&self) -> u64 {
        self.size
    }
    fn path(&self) -> PathBuf {
        self.path.clone()
    }
    fn release(&mut self) -> std::io::Result<()> {
        // Marked first: nothing may be written once the lock may be another's.
        self.released = true;
        if self.locked {
            self.file.unlock()?;
            self.locked = false;
        }
        Ok(())
    }
}

/// An image held in memory (tests, benches of the format alone).
#[derive(Clone, Default)]
pub struct MemBackend {
    /// The bytes.
    pub data: Vec<u8>,
}

impl MemBackend {
    /// A zeroed image of `size` bytes.
    pub fn new(size: usize) -> Self {
        MemBackend {
            data: vec![0; size],
        }
    }
}

impl Backend for MemBackend {
    fn read_at(&mut self, off: u64, buf: &mut [u8]) -> std::io::Result<()> {
        let s = usize::try_from(off).ok().filter(|&s| {
            s.checked_add(buf.len())
                .is_some_and(|e| e <= self.data.len())
        });
        let s = s.ok_or(std::io::ErrorKind::UnexpectedEof)?;
        buf.copy_from_slice(&self.data[s..s + buf.len()]);
        Ok(())
    }
    fn write_at(&mut self, off: u64, data: &[u8]) -> std::io::Result<()> {
        let s = usize::try_from(off).ok().filter(|&s| {
            s.checked_add(data.len())
                .is_some_and(|e| e <= self.data.len())
        });
        let s = s.ok_or(std::io::ErrorKind::WriteZero)?;
        self.data[s..s + data.len()].copy_from_slice(data);
        Ok(())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
    fn size(&self) -> u64 {
        self.data.len() as u64
    }
    fn path(&self) -> PathBuf {
        PathBuf::from("<memory>")
    }
}
