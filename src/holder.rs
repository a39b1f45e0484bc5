//! Who holds the TPM state: the state lock (`.lock`, see [`crate::state_dir`])
//! and the open NVRAM (which locks the image itself), taken together and
//! given up together.
//!
//! Normally they are taken at start and kept until exit. swtpm's
//! `--migration` changes both ends (docs/architecture.md, "Formatting and
//! locking"):
//!
//! * `incoming`: nothing is taken at start; the first operation that needs
//!   the state (CMD_SET_STATEBLOB, CMD_INIT, CMD_LOCK_STORAGE) takes it,
//!   waiting up to [`LOCK_WAIT`] for the outgoing instance to let go. (A TPM
//!   command before CMD_INIT needs no state: it is answered as by a TPM
//!   without power.)
//! * `release-lock-outgoing`: once the savestate blob has been read out, the
//!   state is handed over ([`StateHolder::release`]): queued writes are
//!   committed and flushed, the image lock and then the `.lock` are released,
//!   and the NVRAM refuses every later write. Taking the state back opens the
//!   image again, because whoever held it meanwhile may have changed it.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nvram::{KeySource, NvramHandle};

use crate::error::{Error, Result};
use crate::keys::KeySpec;
use crate::state_dir::{StateLock, StateSpec};
use crate::storage;

/// How long an acquisition nobody asked to wait for (CMD_INIT,
/// CMD_SET_STATEBLOB, a TPM command after a hand-over) waits for the other
/// holder: the 300 tries of 10 ms that swtpm and QEMU give the side of a
/// migration that lets go.
pub const LOCK_WAIT: Duration = Duration::from_secs(3);
/// Between two tries (swtpm's CMD_LOCK_STORAGE counts its retries in these).
pub const RETRY_EVERY: Duration = Duration::from_millis(10);
/// The longest a CMD_LOCK_STORAGE may make the TPM thread wait, whatever
/// retry count it asks for: a control message must not freeze the TPM.
pub const MAX_LOCK_WAIT: Duration = Duration::from_secs(30);

pub use crate::storage::Slot;

/// Where the state stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Never taken yet (`--migration incoming`).
    NotYet,
    /// Held: the lock is ours and the NVRAM writes.
    Held,
    /// Handed over after an outgoing migration: the locks are released and
    /// the NVRAM refuses writes until the state is taken back.
    HandedOver,
}

/// The state lock and the open NVRAM of one running vtpm.
pub struct StateHolder {
    spec: StateSpec,
    /// Loaded once: a `--key fd=` can be read only once and a key file may
    /// be removed after reading, yet a taken-back state is opened again.
    key: Option<KeySource>,
    slot: Slot,
    lock: Option<StateLock>,
    phase: Phase,
    /// How long the next acquisition that nobody asked to wait for may wait.
    /// [`LOCK_WAIT`] when another instance is expected to let go (incoming,
    /// or after a hand-over); nothing after a failed attempt, so a guest's
    /// commands are not each delayed by it.
    implicit_wait: Duration,
}

impl StateHolder {
    /// A holder of the state `spec` (nothing is taken yet); the key is loaded now.
    pub fn new(spec: StateSpec, key: Option<&KeySpec>, incoming: bool) -> Result<StateHolder> {
        Ok(StateHolder {
            spec,
            key: key.map(KeySpec::load).transpose()?,
            slot: Arc::new(Mutex::new(None)),
            lock: None,
            phase: Phase::NotYet,
            implicit_wait: if incoming { LOCK_WAIT } else { Duration::ZERO },
        })
    }

    /// The NVRAM slot for the engine's persistence port.
    pub fn slot(&self) -> Slot {
        self.slot.clone()
    }

    /// Where the state stands.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Whether the locks are held and the NVRAM writes.
    pub fn is_held(&self) -> bool {
        self.phase == Phase::Held
    }

    /// The committed contents of blob `name` in the open NVRAM (None: absent,
    /// or nothing open).
    pub fn read(&self, name: &str) -> Option<Vec<u8>> {
        let handle = lock_slot(&self.slot).clone()?;
        handle.read(name).ok().flatten()
    }

    /// What to name in messages: the state directory or image.
    pub fn display(&self) -> PathBuf {
        self.spec.display().to_path_buf()
    }

    /// Take the lock and open the NVRAM, retrying every [`RETRY_EVERY`] while
    /// another process holds either, for `wait` (None: the implicit budget,
    /// see [`StateHolder`]). Any other failure (a damaged image, a wrong
    /// key) is returned at once. Holding already is success.
    pub fn acquire(&mut self, wait: Option<Duration>) -> Result<()> {
        if self.is_held() {
            return Ok(());
        }
        let deadline = Instant::now() + wait.unwrap_or(self.implicit_wait);
        loop {
            match self.try_acquire() {
                Ok(()) => {
                    self.phase = Phase::Held;
                    return Ok(());
                }
                Err(e) if contended(&e) && Instant::now() < deadline => {
                    std::thread::sleep(RETRY_EVERY);
                }
                Err(e) => {
                    self.implicit_wait = Duration::ZERO;
                    return Err(e);
                }
            }
        }
    }

    fn try_acquire(&mut self) -> Result<()> {
        let lock = self.spec.prepare()?;
        let opts = self.spec.open_options(self.key.clone());
        // A failure drops `lock`, releasing it again.
        let handle = storage::open(&self.spec, opts)?;
        self.spec.apply_mode()?;
        // A handle released at a hand-over is replaced: its storage thread
        // ends and its file is closed.
        *lock_slot(&self.slot) = Some(handle);
        self.lock = Some(lock);
        Ok(())
    }

    /// Hand the state over: the NVRAM commits what is queued, flushes and
    /// releases the image lock (refusing every later write), then the
    /// `.lock` is released. The image goes first because a new holder takes
    /// `.lock` first: it never gets `.lock` while the image is still ours.
    /// Reads keep working from what was committed. Not holding is success.
    pub fn release(&mut self) -> Result<()> {
        if !self.is_held() {
            return Ok(());
        }
        let handle = lock_slot(&self.slot).clone();
        if let Some(h) = handle {
            h.release_lock().map_err(|source| Error::Nvram {
                path: self.spec.image(),
                source,
            })?;
        }
        self.lock = None;
        self.phase = Phase::HandedOver;
        self.implicit_wait = LOCK_WAIT;
        Ok(())
    }
}

impl Drop for StateHolder {
    fn drop(&mut self) {
        // The NVRAM first (its storage thread finishes and closes the image),
        // then `.lock`, in the order a new holder takes them.
        let handle = lock_slot(&self.slot).take();
        drop(handle);
        if let Some(lock) = self.lock.take() {
            let path = lock.path().to_path_buf();
            drop(lock);
            log::info!("state lock {} released", path.display());
        }
    }
}

/// The slot, even if a thread panicked while holding it (the handle inside
/// is still sound: nvram keeps its own state consistent).
fn lock_slot(slot: &Slot) -> std::sync::MutexGuard<'_, Option<NvramHandle>> {
    slot.lock().unwrap_or_else(|e| e.into_inner())
}

/// Whether `e` says another process holds the state (worth waiting for).
fn contended(e: &Error) -> bool {
    matches!(
        e,
        Error::Locked { .. }
            | Error::Nvram {
                source: nvram::Error::InUse(_) | nvram::Error::Leased { .. },
                ..
            }
    )
}
