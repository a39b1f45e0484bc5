//! The NVRAM blobstore: named blobs in one crash-safe, optionally encrypted
//! image, written by a storage thread with group commit.
//!
//! Lifecycle: [`Nvram::open`] an image (a regular file, created if missing, a
//! raw image or a block device), [`Nvram::register`] each blob with its
//! maximum size, [`Nvram::start`] (reconciles registrations with the image and
//! spawns the storage thread), then use the [`NvramHandle`]: synchronous reads
//! and asynchronous writes that complete when durable. The format is in
//! docs/nvram-format.md.
//!
//! A writer locks the image (`flock`) for as long as it has it open. It may
//! hand the image over to another process without closing it
//! ([`NvramHandle::release_lock`], for an outgoing migration): what is queued
//! is committed and flushed, the lock is released, and every later write
//! fails. The handle never takes the lock back, because the other process
//! may have changed the image meanwhile and this store's view of it (log
//! position, generation) would be stale; to write again, open the image anew.

pub mod backend;
mod cipher;
mod error;
pub mod fault;
pub mod format;
pub mod inspect;
pub mod lease;
pub mod nbd;
pub mod ops;
mod recovery;
pub mod salvage;
pub mod store;
mod thread;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

pub use backend::{Backend, FileBackend, MemBackend};
use error::io;
pub use error::{Error, Result};
use format::Layout;
use ops::Op;
use store::{Slots, Store, StoreOptions};
use thread::{Done, Msg, Shared, Worker};

/// The temporary name a new image is formatted under before it is renamed to `path`.
fn staging_path(path: &Path) -> std::path::PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.new"))
}

/// The error of opening `path` (as [`io`]), except that a lock held by another
/// writer is [`Error::InUse`]: one clear line, and callers can tell contention
/// (worth retrying) from a real failure.
fn opening<'a>(path: &'a Path, op: &'static str) -> impl FnOnce(std::io::Error) -> Error + 'a {
    move |e| {
        if e.kind() == std::io::ErrorKind::WouldBlock {
            Error::InUse(path.to_path_buf())
        } else {
            io(path, op)(e)
        }
    }
}

/// How long one NBD operation may take before the connection counts as lost.
const NBD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// What an NBD export holds, as [`store::header_slots`] says of its header
/// slots, but `Blank` only when everything an image would take is zeros (a
/// new export, to format; wiped headers over data are `Other`). The slots
/// first: an image's are never blank, so opening one reads 8 KiB over the
/// network, not the layout.
fn export_content(be: &mut dyn Backend) -> Result<Slots> {
    let slots = store::header_slots(be)?;
    if slots != Slots::Blank {
        return Ok(slots);
    }
    let path = be.path();
    // The regions an image formatted on it would take (the lease block
    // after them is not part of the image).
    let end = be
        .size()
        .min(format::REGIONS_START + 2 * format::region_size_for(be.size()));
    let mut buf = vec![0u8; 1 << 20];
    let mut off = format::REGIONS_START;
    while off < end {
        let n = (end - off).min(buf.len() as u64) as usize;
        be.read_at(off, &mut buf[..n])
            .map_err(io(&path, "reading the export"))?;
        if buf[..n].iter().any(|&b| b != 0) {
            return Ok(Slots::Other);
        }
        off += n as u64;
    }
    Ok(Slots::Blank)
}

/// Default size of an image file created by [`Nvram::open`]: 4 MiB, room
/// for the TPM's blobs at their registered maxima twice over (a log and its
/// copy) in each of the two regions.
pub const DEFAULT_IMAGE_SIZE: u64 = 4 * 1024 * 1024;

/// Whether acknowledged writes are flushed to stable storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SyncMode {
    /// One fdatasync per acknowledged batch (the default).
    #[default]
    Durable,
    /// No flushes: after a power cut the image may hold an older state, never a torn one.
    Relaxed,
}

/// Where the encryption key comes from. Cloneable (the copies are zeroized
/// on drop too), so an image can be opened again with the same key.
#[derive(Clone)]
pub enum KeySource {
    /// 32 raw key bytes.
    Raw(zeroize::Zeroizing<[u8; 32]>),
    /// A passphrase, stretched with argon2id (salt kept in the header).
    Passphrase(zeroize::Zeroizing<Vec<u8>>),
}

impl KeySource {
    /// A key read from a file or an inherited descriptor's contents: exactly 32
    /// bytes are a raw key, anything else is a passphrase (a trailing newline is dropped).
    pub fn from_bytes(mut bytes: Vec<u8>) -> KeySource {
        if bytes.len() == 32 {
            let mut k = zeroize::Zeroizing::new([0u8; 32]);
            k.copy_from_slice(&bytes);
            zeroize::Zeroize::zeroize(&mut bytes);
            return KeySource::Raw(k);
        }
        if bytes.last() == Some(&b'\n') {
            bytes.pop();
        }
        KeySource::Passphrase(zeroize::Zeroizing::new(bytes))
    }
}

/// How to open an image.
#[derive(Default)]
pub struct OpenOptions {
    /// Flush policy.
    pub sync: SyncMode,
    /// Encryption key; required for encrypted images, makes new images encrypted.
    pub key: Option<KeySource>,
    /// Refuse an encrypted image outright (fail_on_encrypted_drive).
    pub refuse_encrypted: bool,
    /// Size of a regular file created when missing (None: [`DEFAULT_IMAGE_SIZE`]).
    pub create_size: Option<u64>,
}

/// Name, size and registered maximum of one blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobInfo {
    /// The blob's name, e.g. `tpm2/permanent`.
    pub name: String,
    /// Current size in bytes.
    pub size: u64,
    /// Registered maximum in this session (None: another user's blob).
    pub max_size: Option<u64>,
}

/// An opened image, before start.
pub struct Nvram {
    store: Store,
    registered: BTreeMap<String, u64>,
}

fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > 255 || name.contains('\0') {
        return Err(Error::BadName(name.to_string()));
    }
    Ok(())
}

impl Nvram {
    /// Open (or create) the image at `path`: a regular file, a raw image or a block device.
    /// The header, the key and the log are checked here. A missing file is
    /// made and formatted under a temporary name, then renamed into place, so
    /// a crash never leaves an unformatted image where one is expected (such
    /// an image is refused, never formatted: see [`Error::Unformatted`]).
    pub fn open(path: &Path, opts: OpenOptions) -> Result<Nvram> {
        match FileBackend::open(path, None, false) {
            Ok((be, _)) => return Nvram::open_backend(Box::new(be), false, opts),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(opening(path, "opening")(e)),
        }
        let size = opts.create_size.unwrap_or(DEFAULT_IMAGE_SIZE);
        let staged = staging_path(path);
        // A leftover of a start that died before publishing its new image.
        let _ = std::fs::remove_file(&staged);
        let (be, _) =
            FileBackend::open(&staged, Some(size), false).map_err(opening(path, "creating"))?;
        let nv = Nvram::open_backend(Box::new(be.named(path)), true, opts)?;
        std::fs::rename(&staged, path).map_err(io(path, "publishing the new image"))?;
        backend::sync_parent(path);
        Ok(nv)
    }

    /// Open the NVRAM on the export of an NBD server (see [`nbd`]). An export
    /// that is all zeros over the part an image takes (a new qcow2, a new
    /// volume) is formatted: there is no file to create, that is how one is
    /// new. One whose header slots are blank while its regions hold data is
    /// refused like a wiped image ([`Error::Unformatted`]), and anything else
    /// is opened as an image (and refused if it is none). NBD has no locks:
    /// the image's lease ([`lease`]) keeps a second writer out, whatever
    /// host or server connection it comes through; it is taken before
    /// anything is written (a fresh export too: two instances must not both
    /// format it).
    pub fn open_nbd(uri: &nbd::NbdUri, opts: OpenOptions) -> Result<Nvram> {
        let path = std::path::PathBuf::from(uri.to_string());
        let mut be = nbd::NbdBackend::connect(uri, NBD_TIMEOUT, false)
            .map_err(io(&path, "connecting to the NBD server"))?;
        // An export holding something else is refused untouched: its last
        // block is not ours to write a lease into.
        // Opening says why it refuses (no header, wiped headers over data).
        if export_content(&mut be)? == Slots::Other {
            return match Nvram::open_backend(Box::new(be), false, opts) {
                Err(e) => Err(e),
                Ok(_) => Err(Error::Damaged {
                    path,
                    structure: "header".into(),
                    problem: "no NVRAM header magic in either slot".into(),
                }),
            };
        }
        let mut notes = Vec::new();
        let mut be = lease::LeasedBackend::acquire(Box::new(be), &mut |n| notes.push(n)).map_err(
            |e| match e {
                lease::LeaseError::Held(holder) => Error::Leased {
                    path: path.clone(),
                    holder,
                },
                lease::LeaseError::NoRoom => Error::NoLeaseRoom(path.clone()),
                lease::LeaseError::Io(e) => io(&path, "taking the image's lease")(e),
            },
        )?;
        // Looked at again under the lease: another instance may have
        // formatted it meanwhile.
        let fresh = export_content(&mut be)? == Slots::Blank;
        let mut nv = Nvram::open_backend(Box::new(be), fresh, opts)?;
        for n in notes {
            nv.store.note(n);
        }
        Ok(nv)
    }

    /// Format the image at `path` (created with `size` bytes when missing).
    /// An image whose header slots are not blank is formatted only when
    /// `force`: formatting erases everything on it.
    pub fn format(path: &Path, size: u64, force: bool, opts: OpenOptions) -> Result<Nvram> {
        if !path.exists() {
            return Nvram::open(
                path,
                OpenOptions {
                    create_size: Some(size),
                    ..opts
                },
            );
        }
        let (mut be, _) = FileBackend::open(path, None, false).map_err(opening(path, "opening"))?;
        if !force && !store::headers_blank(&mut be)? {
            return Err(Error::NotBlank(path.to_path_buf()));
        }
        Nvram::open_backend(Box::new(be), true, opts)
    }

    /// Open an image on any backend; `fresh` formats it.
    pub fn open_backend(be: Box<dyn Backend>, fresh: bool, opts: OpenOptions) -> Result<Nvram> {
        let store = Store::open(
            be,
            StoreOptions {
                key: opts.key.as_ref(),
                refuse_encrypted: opts.refuse_encrypted,
                sync: opts.sync,
                read_only: false,
                fresh,
            },
        )?;
        Ok(Nvram {
            store,
            registered: BTreeMap::new(),
        })
    }

    /// What open found damaged and repaired from the image's redundant copies
    /// (one line each, for the log); empty for a healthy image. After start,
    /// [`NvramHandle::notes`] has these and what start decided.
    pub fn repairs(&self) -> &[String] {
        self.store.findings()
    }

    /// Write `ops` as one batch before start, whoever registered the blobs
    /// (salvage fills a new image this way).
    pub(crate) fn commit_all(&mut self, ops: &[Op]) -> Result<()> {
        self.store.commit(ops)
    }

    /// Register a blob by name with its maximum size (before start).
    pub fn register(&mut self, name: &str, max_size: u64) -> Result<()> {
        check_name(name)?;
        self.registered.insert(name.to_string(), max_size);
        Ok(())
    }

    /// Reconcile registrations with the image and spawn the storage thread.
    /// Blobs of other users are kept; a blob larger than its registered maximum,
    /// or an image too small for every maximum, is an error.
    pub fn start(mut self) -> Result<NvramHandle> {
        let path = self.store.path().to_path_buf();
        for (name, data) in self.store.blobs() {
            if let Some(&max) = self.registered.get(name) {
                if data.len() as u64 > max {
                    return Err(Error::BlobTooLarge {
                        path,
                        name: name.clone(),
                        size: data.len() as u64,
                        max,
                    });
                }
            }
        }
        // A region must hold every blob at its largest plus one more write of the largest.
        let others = self
            .store
            .blobs()
            .iter()
            .filter(|(n, _)| !self.registered.contains_key(*n))
            .map(|(n, d)| (n.as_str(), d.len() as u64));
        let mine = self.registered.iter().map(|(n, &m)| (n.as_str(), m));
        let snapshot = self.store.snapshot_size(others.chain(mine));
        let largest = self
            .registered
            .iter()
            .map(|(n, &m)| self.store.snapshot_size(std::iter::once((n.as_str(), m))))
            .max()
            .unwrap_or(0);
        // Each region holds the log and its copy; an image too small for both
        // at the registered maxima keeps the copies while the state fits, and
        // must hold at least the log alone.
        let need = snapshot + largest;
        let region = self.store.header.region_size;
        if region < need {
            return Err(Error::TooSmall {
                path,
                size: self.store.image_size(),
                needed: format::REGIONS_START + 4 * need + 4 * format::SLOT_SIZE,
            });
        }
        if Layout::of(format::VERSION, region).largest_batch() < need {
            self.store.note_small(need);
        }
        let total = self.store.image_size();
        let notes = self.store.findings().to_vec();
        let shared: Arc<Shared> = Arc::new(parking_lot::RwLock::new(
            self.store
                .blobs()
                .iter()
                .map(|(n, d)| (n.clone(), Arc::new(d.clone())))
                .collect(),
        ));
        let worker = Worker::spawn(self.store, shared.clone());
        Ok(NvramHandle {
            inner: Arc::new(Inner {
                worker,
                shared,
                registered: self.registered.into_iter().collect(),
                total,
                notes,
            }),
        })
    }

    /// The committed blobs (before start; for inspection).
    pub fn blobs(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.store
            .blobs()
            .iter()
            .map(|(n, d)| (n.as_str(), d.as_slice()))
    }
}

struct Inner {
    worker: Worker,
    shared: Arc<Shared>,
    registered: HashMap<String, u64>,
    total: u64,
    notes: Vec<String>,
}

/// A cloneable handle to a started NVRAM; the storage thread ends when the last handle drops.
#[derive(Clone)]
pub struct NvramHandle {
    inner: Arc<Inner>,
}

/// How long a writer whose write another thread commits yield-spins before it sleeps.
const WAIT_SPIN: std::time::Duration = std::time::Duration::from_micros(400);

/// A pending write or delete: wait for durability or for the error.
pub struct Completion {
    rx: Option<crossbeam_channel::Receiver<Result<()>>>,
    early: Option<Error>,
}

impl Completion {
    /// Block until the write is durable (or failed).
    pub fn wait(self) -> Result<()> {
        if let Some(e) = self.early {
            return Err(e);
        }
        match self.rx {
            Some(rx) => {
                // Someone else is committing our write: yield-spin about one
                // flush before sleeping, so the acknowledgement needs no
                // wake-up (waking a batch of writers one by one cost as much as
                // the flush) and the CPU still goes to whoever can run.
                let start = std::time::Instant::now();
                while start.elapsed() < WAIT_SPIN {
                    match rx.try_recv() {
                        Ok(r) => return r,
                        Err(crossbeam_channel::TryRecvError::Disconnected) => {
                            return Err(Error::Stopped)
                        }
                        Err(crossbeam_channel::TryRecvError::Empty) => std::thread::yield_now(),
                    }
                }
                rx.recv().unwrap_or(Err(Error::Stopped))
            }
            None => Err(Error::Stopped),
        }
    }
}

impl NvramHandle {
    /// What opening the image repaired, and why it lacks redundant copies if
    /// it does (one line each, for the log); empty for a healthy image.
    pub fn notes(&self) -> &[String] {
        &self.inner.notes
    }

    fn check(&self, name: &str, size: Option<usize>) -> Result<()> {
        let max = *self
            .inner
            .registered
            .get(name)
            .ok_or_else(|| Error::NotRegistered(name.to_string()))?;
        match size {
            Some(n) if n as u64 > max => Err(Error::WriteTooLarge {
                name: name.to_string(),
                size: n,
                max,
            }),
            _ => Ok(()),
        }
    }

    fn post(&self, op: Op, size: Option<usize>) -> Completion {
        if let Err(e) = self.check(op.name(), size) {
            return Completion {
                rx: None,
                early: Some(e),
            };
        }
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.inner.worker.post(Msg {
            op,
            done: Done::Chan(tx),
        });
        Completion {
            rx: Some(rx),
            early: None,
        }
    }

    /// Read a blob: `Ok(None)` if absent, `Ok(Some(vec![]))` if present and empty.
    pub fn read(&self, name: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.inner.shared.read().get(name).map(|d| d.to_vec()))
    }

    /// Post a write to the storage thread.
    pub fn write(&self, name: &str, data: Vec<u8>) -> Completion {
        let n = data.len();
        self.post(Op::Put(name.to_string(), data), Some(n))
    }

    /// Write a blob and return once it is durable (or failed). With the store
    /// idle and nothing queued the write is committed on the caller's thread
    /// without waking the storage thread; otherwise it is posted and waited for.
    pub fn write_sync(&self, name: &str, data: Vec<u8>) -> Result<()> {
        self.check(name, Some(data.len()))?;
        match self
            .inner
            .worker
            .core_ref()
            .commit_now(Op::Put(name.to_string(), data))
        {
            Ok(r) => r,
            Err(op) => self.post(op, None).wait(),
        }
    }

    /// Post a write; `done` is called on the storage thread when durable or failed
    /// (at once, on the caller's thread, if the write is refused outright).
    pub fn write_with(&self, name: &str, data: Vec<u8>, done: Box<dyn FnOnce(Result<()>) + Send>) {
        match self.check(name, Some(data.len())) {
            Err(e) => done(Err(e)),
            Ok(()) => self.inner.worker.post(Msg {
                op: Op::Put(name.to_string(), data),
                done: Done::Callback(done),
            }),
        }
    }

    /// Post a delete.
    pub fn delete(&self, name: &str) -> Completion {
        self.post(Op::Delete(name.to_string()), None)
    }

    /// Every blob on the image with its size.
    pub fn list(&self) -> Vec<BlobInfo> {
        self.inner
            .shared
            .read()
            .iter()
            .map(|(n, d)| BlobInfo {
                name: n.clone(),
                size: d.len() as u64,
                max_size: self.inner.registered.get(n).copied(),
            })
            .collect()
    }

    /// Total size of the NVRAM (the image) in bytes.
    pub fn total_size(&self) -> u64 {
        self.inner.total
    }

    /// Total size of the NVRAM in KiB.
    pub fn total_kib(&self) -> u64 {
        self.inner.total / 1024
    }

    /// Hand the image over to another process (an outgoing migration):
    /// commit what is queued, flush everything (relaxed-mode batches too),
    /// then release the image's lock. From then on every write and delete
    /// fails with [`Error::Failed`] saying so; reads keep returning the last
    /// committed blobs. The lock is never taken back through this handle
    /// (see the crate documentation): open the image again to write.
    ///
    /// If the flush fails the lock is kept and the error returned: the next
    /// holder must find everything this one acknowledged. Releasing twice is
    /// harmless.
    pub fn release_lock(&self) -> Result<()> {
        self.inner.worker.release()
    }

    /// Whether [`NvramHandle::release_lock`] handed the image over.
    pub fn lock_released(&self) -> bool {
        self.inner.worker.core_ref().released()
    }
}
