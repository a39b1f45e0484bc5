//! The TPM thread: the only owner of the [`Tpm`] engine. The engine is
//! created on that thread and never leaves it; the thread runs the
//! transport's [`TpmLoop`](transport::TpmLoop), which serves the data
//! channel itself (read, execute, answer: one wake-up per command) and runs
//! the jobs other threads post with a [`TpmHandle`] (control channel, mssim
//! platform port, start-up and shutdown here). [`Engine`] is the
//! [`transport::Device`] the loop drives. Cancelling is the exception: the
//! control thread sets the engine's cancel flag directly (the device's
//! canceller), since queueing it behind the command it should cancel would
//! be useless.
//!
//! Auto-shutdown (swtpm's behaviour unless `--flags disable-auto-shutdown`):
//! before the TPM is powered off or re-initialised by the control channel,
//! and when vtpm exits, a TPM2_Shutdown(SU_STATE) is sent unless the last
//! command already was TPM2_Shutdown; if it fails for another reason than
//! TPM_RC_INITIALIZE, TPM2_Shutdown(SU_CLEAR) is tried. An orderly shutdown
//! keeps the dictionary-attack counter from counting an unclean power loss.
//!
//! If the engine ever panics (a bug: no input may panic it), the panic is
//! caught, logged, and the device enters failure mode: every command answers
//! TPM_RC_FAILURE and nothing more is persisted, like a real TPM's failure mode.
//!
//! The TPM thread also owns the [`StateHolder`]. The engine exists only while
//! the state has been loaded from a held lock: with `--migration incoming`
//! the first operation that needs the state takes the lock and creates the
//! engine; with `--migration release-lock-outgoing` reading the savestate
//! blob hands the state over. After a hand-over, an operation that needs the
//! state takes it back first (as swtpm does before each command) and fails
//! if it cannot: a TPM command is then answered TPM_RC_NV_UNAVAILABLE without
//! being executed, so this instance never acts on a state another process
//! holds; powering off drops the engine without writing anything.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use tpm_core::constants as c;
use tpm_core::engine::error_response;
use tpm_core::persist::BlobKind;
use tpm_core::{Tpm, TpmConfig};
use transport::{Canceller, Device, DeviceError, StateBlobKind, TpmHandle};

use crate::cli::MigrationSpec;
use crate::error::{Error, Result};
use crate::holder::{Phase, StateHolder, MAX_LOCK_WAIT, RETRY_EVERY};
use crate::migration_key::{self, MigrationKey};
use crate::storage::NvramStorage;

/// TPM 1.2-style codes the swtpm control channel reports.
mod ctrl_rc {
    /// TPM_BAD_PARAMETER.
    pub const BAD_PARAMETER: u32 = 3;
    /// TPM_FAIL.
    pub const FAIL: u32 = 9;
    /// TPM_INVALID_POSTINIT: the operation does not fit the power state.
    pub const INVALID_POSTINIT: u32 = 0x26;
    /// TPM_BAD_LOCALITY.
    pub const BAD_LOCALITY: u32 = 0x3d;
}

/// TPM_CC_Startup.
const CC_STARTUP: u32 = 0x144;
/// TPM_CC_Shutdown.
const CC_SHUTDOWN: u32 = 0x145;

/// A 12-byte TPM2_Startup or TPM2_Shutdown command: tag, size, code, TPM_SU.
fn su_command(cc: u32, su: u16) -> Vec<u8> {
    let mut cmd = Vec::with_capacity(12);
    cmd.extend_from_slice(&c::ST_NO_SESSIONS.to_be_bytes());
    cmd.extend_from_slice(&12u32.to_be_bytes());
    cmd.extend_from_slice(&cc.to_be_bytes());
    cmd.extend_from_slice(&su.to_be_bytes());
    cmd
}

/// The response code of a response (TPM_RC_FAILURE if it is too short to have one).
pub fn response_code(resp: &[u8]) -> u32 {
    resp.get(6..10)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        .unwrap_or(c::RC_FAILURE)
}

/// How the device behaves, from the command line.
pub struct DeviceOptions {
    /// Send TPM2_Shutdown before power-off and exit (swtpm's auto-shutdown).
    pub auto_shutdown: bool,
    /// The state is encrypted at rest (`--key`), reported by CMD_GET_CONFIG.
    pub encrypted: bool,
    /// `--migration-key`: seals the state blobs read out, opens those written in.
    pub migration_key: Option<MigrationKey>,
    /// `--migration`.
    pub migration: MigrationSpec,
    /// The engine's configuration.
    pub config: TpmConfig,
}

/// What the TPM thread owns.
struct Engine {
    /// None until the state is first loaded (`--migration incoming`), and
    /// again after a powered-off hand-over.
    tpm: Option<Tpm>,
    /// The state lock and the NVRAM.
    holder: StateHolder,
    config: TpmConfig,
    /// The transport's cancel flag, given to every engine created.
    cancel: Arc<AtomicBool>,
    release_lock_outgoing: bool,
    /// Physical presence and NV availability (mssim), kept here so that an
    /// engine created later starts with them.
    physical_presence: bool,
    nv_available: bool,
    /// A failure to take the state lock was logged as an error; repeats
    /// (every command of a guest) are logged at debug level.
    lock_failure_logged: bool,
    /// The last permanent blob read out with CMD_GET_STATEBLOB.
    permanent_out: Option<Vec<u8>>,
    /// While handed over: the permanent blobs the image may hold when the
    /// state is taken back with this engine's RAM still current — the one
    /// on the image at the hand-over, and the one read out (which an
    /// incoming instance writes with CMD_SET_STATEBLOB). Anything else means
    /// another instance moved the state on.
    handed_over: Vec<Vec<u8>>,
    /// Command code of the last command executed (for auto-shutdown).
    last_command: Option<u32>,
    auto_shutdown: bool,
    /// The engine panicked: answer everything with failure.
    failed: bool,
    /// Powered on (CMD_INIT succeeded, no power-off since).
    running: bool,
    /// Set while a command executes, so that cancelling only touches a running command.
    busy: Arc<AtomicBool>,
    /// The state is encrypted at rest (`--key`), reported by CMD_GET_CONFIG.
    encrypted: bool,
    /// `--migration-key`.
    migration_key: Option<MigrationKey>,
}

fn engine_error(e: tpm_core::Error) -> DeviceError {
    let code = match &e {
        tpm_core::Error::Persist(_) => ctrl_rc::FAIL,
        tpm_core::Error::BadState { .. } => ctrl_rc::BAD_PARAMETER,
        tpm_core::Error::WrongPowerState(_) => ctrl_rc::INVALID_POSTINIT,
    };
    DeviceError {
        code,
        msg: e.to_string(),
    }
}

fn failed() -> DeviceError {
    DeviceError {
        code: ctrl_rc::FAIL,
        msg: "the TPM is in failure mode".into(),
    }
}

fn blob_kind(k: StateBlobKind) -> BlobKind {
    match k {
        StateBlobKind::Permanent => BlobKind::Permanent,
        StateBlobKind::Volatile => BlobKind::Volatile,
        StateBlobKind::SaveState => BlobKind::SaveState,
    }
}

fn no_state() -> DeviceError {
    DeviceError {
        code: ctrl_rc::INVALID_POSTINIT,
        msg: "the TPM state is not loaded".into(),
    }
}

impl Engine {
    /// Make sure the state lock is held and the engine exists before an
    /// operation that needs the state (`why`, for the log): take the lock
    /// (deferred by `--migration incoming`, or back after a hand-over),
    /// waiting up to `wait` (None: the holder's implicit budget), then create
    /// the engine from the image if there is none.
    fn ensure(
        &mut self,
        why: &str,
        wait: Option<Duration>,
    ) -> std::result::Result<(), DeviceError> {
        if !self.holder.is_held() {
            let before = self.holder.phase();
            if let Err(e) = self.holder.acquire(wait) {
                if self.lock_failure_logged {
                    log::debug!("{why}: the TPM state lock is still not available: {e}");
                } else {
                    log::error!("{why}: cannot take the TPM state lock: {e}");
                    self.lock_failure_logged = true;
                }
                return Err(DeviceError {
                    code: ctrl_rc::FAIL,
                    msg: format!("cannot take the TPM state lock: {e}"),
                });
            }
            self.lock_failure_logged = false;
            if before == Phase::HandedOver && self.tpm.is_some() {
                let now = self.holder.read(BlobKind::Permanent.name());
                let current = now.is_some_and(|p| self.handed_over.contains(&p));
                if !current {
                    // Going on from RAM would roll the state back over what
                    // the other instance wrote: cut the power instead, and
                    // load the state as it is on the image.
                    log::warn!(
                        "the TPM state changed while it was handed over: the running TPM is powered off and its state loaded from the image"
                    );
                    self.tpm = None;
                    self.running = false;
                }
            }
            self.handed_over.clear();
            match before {
                Phase::NotYet => log::info!(
                    "TPM state {} locked at {why} (deferred by --migration incoming)",
                    self.holder.display().display()
                ),
                Phase::HandedOver => log::info!(
                    "TPM state {} taken back at {why}: the image was opened again",
                    self.holder.display().display()
                ),
                Phase::Held => {}
            }
        }
        if self.tpm.is_none() {
            self.create()?;
        }
        Ok(())
    }

    /// Create the engine over the held state (loading it from the image).
    fn create(&mut self) -> std::result::Result<(), DeviceError> {
        let nv = NvramStorage::new(self.holder.slot());
        let mut tpm = Tpm::new(Box::new(nv), self.config.clone())
            .map_err(engine_error)?
            .with_cancel_flag(self.cancel.clone());
        tpm.set_physical_presence(self.physical_presence);
        tpm.set_nv_available(self.nv_available);
        self.tpm = Some(tpm);
        Ok(())
    }

    /// A TPM command from a client: only on a state this instance holds.
    fn client_command(&mut self, locality: u8, command: &[u8]) -> Vec<u8> {
        if self.failed {
            return error_response(c::RC_FAILURE);
        }
        // A TPM without power answers without touching its state, so no lock
        // is taken for it: QEMU probes the TPM this way before CMD_INIT, also
        // on the incoming side while the source still holds the state (swtpm
        // does not lock before CMD_INIT either).
        match self.tpm.as_ref().map(Tpm::is_powered) {
            // No engine yet: what an engine without power would answer.
            None => return error_response(c::RC_FAILURE),
            Some(false) => return self.run(locality, command),
            Some(true) => {}
        }
        if self.ensure("a TPM command", None).is_err() {
            // Without the lock this instance must not act as the TPM whose
            // state another process now holds; NV_UNAVAILABLE says "retry
            // later", which succeeds once the lock can be taken back.
            return error_response(if self.tpm.is_some() {
                c::RC_NV_UNAVAILABLE
            } else {
                c::RC_FAILURE
            });
        }
        self.run(locality, command)
    }

    /// Execute a command on the engine (the caller made sure of the state).
    fn run(&mut self, locality: u8, command: &[u8]) -> Vec<u8> {
        let Some(tpm) = self.tpm.as_mut() else {
            return error_response(c::RC_FAILURE);
        };
        let cc = command
            .get(6..10)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
        self.last_command = cc;
        self.busy.store(true, Ordering::SeqCst);
        let resp = tpm.execute(locality, command);
        self.busy.store(false, Ordering::SeqCst);
        log::trace!(
            "command {:#x?} at locality {locality}: rc {:#x}",
            cc.unwrap_or(0),
            response_code(&resp)
        );
        resp
    }

    /// swtpm's auto-shutdown (see the module documentation).
    fn maybe_shutdown(&mut self) {
        if !self.auto_shutdown
            || self.failed
            || !self.tpm.as_ref().is_some_and(Tpm::is_powered)
            || self.last_command == Some(CC_SHUTDOWN)
        {
            return;
        }
        for su in [c::SU_STATE, c::SU_CLEAR] {
            let rc = response_code(&self.run(0, &su_command(CC_SHUTDOWN, su)));
            log::debug!(
                "auto-shutdown: TPM2_Shutdown({}) -> rc {rc:#x}",
                if su == c::SU_STATE { "STATE" } else { "CLEAR" }
            );
            if rc == 0 || rc == c::RC_INITIALIZE {
                break;
            }
        }
    }

    fn cut_power(&mut self) -> std::result::Result<(), DeviceError> {
        if self.holder.phase() == Phase::HandedOver {
            // The state belongs to another instance now: an auto-shutdown or
            // the clock write could overwrite what it wrote. Power is cut as
            // on a power loss; taking the state back loads it from the image.
            if self.tpm.take().is_some() {
                log::info!("powered off without saving anything: the TPM state was handed over");
            }
            self.running = false;
            return Ok(());
        }
        self.maybe_shutdown();
        let r = match self.tpm.as_mut() {
            Some(tpm) if !self.failed => tpm.power_off().map_err(engine_error),
            _ => Ok(()),
        };
        self.running = false;
        r
    }

    fn power_on(&mut self, delete_volatile: bool) -> std::result::Result<(), DeviceError> {
        if self.failed {
            return Err(failed());
        }
        self.ensure("CMD_INIT", None)?;
        if self.tpm.as_ref().is_some_and(Tpm::is_powered) {
            self.cut_power()?;
        }
        let tpm = self.tpm.as_mut().ok_or_else(no_state)?;
        tpm.power_on(delete_volatile).map_err(engine_error)?;
        self.last_command = None;
        self.running = true;
        Ok(())
    }

    /// `f` on the engine as it is (reading RAM: no lock needed).
    fn checked<R>(
        &mut self,
        f: impl FnOnce(&mut Tpm) -> std::result::Result<R, tpm_core::Error>,
    ) -> std::result::Result<R, DeviceError> {
        if self.failed {
            return Err(failed());
        }
        f(self.tpm.as_mut().ok_or_else(no_state)?).map_err(engine_error)
    }

    /// `f` on the engine once the state lock is held (`f` may write).
    fn locked<R>(
        &mut self,
        why: &str,
        f: impl FnOnce(&mut Tpm) -> std::result::Result<R, tpm_core::Error>,
    ) -> std::result::Result<R, DeviceError> {
        if self.failed {
            return Err(failed());
        }
        self.ensure(why, None)?;
        self.checked(f)
    }

    /// CMD_GET_STATEBLOB. With `--migration release-lock-outgoing` the state
    /// is handed over once the savestate blob was read, as swtpm does: QEMU
    /// reads it last (after the permanent and volatile blobs).
    fn state_blob(&mut self, kind: StateBlobKind) -> std::result::Result<Vec<u8>, DeviceError> {
        let blob = self.checked(|t| t.state_blob(blob_kind(kind)))?;
        if kind == StateBlobKind::Permanent {
            self.permanent_out = Some(blob.clone());
        }
        let blob = match &self.migration_key {
            Some(k) => k.seal(&blob)?,
            None => blob,
        };
        if kind == StateBlobKind::SaveState && self.release_lock_outgoing && self.holder.is_held() {
            let on_image = self.holder.read(BlobKind::Permanent.name());
            match self.holder.release() {
                Ok(()) => {
                    self.handed_over = on_image
                        .into_iter()
                        .chain(self.permanent_out.clone())
                        .collect();
                    log::info!(
                    "TPM state {} handed over (--migration release-lock-outgoing: the savestate blob was read); its lock is released and nothing is written until it is taken back",
                    self.holder.display().display()
                    )
                }
                // The blob was read all the same; the lock stays held.
                Err(e) => log::error!(
                    "cannot release the TPM state lock after the savestate blob was read: {e}"
                ),
            }
        }
        Ok(blob)
    }

    /// CMD_LOCK_STORAGE: take the lock now, trying `retries` times 10 ms.
    fn take_lock(&mut self, retries: u32) -> std::result::Result<(), DeviceError> {
        let wait = RETRY_EVERY.saturating_mul(retries).min(MAX_LOCK_WAIT);
        self.ensure("CMD_LOCK_STORAGE", Some(wait))
    }

    /// Run `f` on the engine; if the engine panics (a bug: no input may panic
    /// it), answer with `fallback` and stay in failure mode instead of taking
    /// the process (and the guest's TPM) down with it.
    fn guarded<R>(&mut self, fallback: impl FnOnce() -> R, f: impl FnOnce(&mut Self) -> R) -> R {
        match catch_unwind(AssertUnwindSafe(|| f(self))) {
            Ok(r) => r,
            Err(_) => {
                log::error!("the TPM engine panicked; the TPM is now in failure mode");
                self.failed = true;
                self.busy.store(false, Ordering::SeqCst);
                fallback()
            }
        }
    }
}

impl Device for Engine {
    fn execute(&mut self, locality: u8, command: &[u8]) -> Vec<u8> {
        self.guarded(
            || error_response(c::RC_FAILURE),
            |e| e.client_command(locality, command),
        )
    }

    fn init(&mut self, delete_volatile: bool) -> std::result::Result<(), DeviceError> {
        log::debug!("init (delete volatile state: {delete_volatile})");
        self.guarded(|| Err(failed()), |e| e.power_on(delete_volatile))
    }

    fn power_off(&mut self) -> std::result::Result<(), DeviceError> {
        log::debug!("power off");
        self.guarded(|| Err(failed()), |e| e.cut_power())
    }

    fn is_running(&self) -> bool {
        self.running
    }

    fn canceller(&self) -> Option<Canceller> {
        let (busy, cancel) = (Arc::clone(&self.busy), Arc::clone(&self.cancel));
        Some(Arc::new(move || {
            // Only a command in progress can be cancelled; a flag left set
            // would cancel the next long command instead.
            if busy.load(Ordering::SeqCst) {
                cancel.store(true, Ordering::SeqCst);
            }
        }))
    }

    fn tpm_established(&mut self) -> std::result::Result<bool, DeviceError> {
        // Read from RAM: no lock needed.
        self.guarded(|| Err(failed()), |e| e.checked(|t| Ok(t.tpm_established())))
    }

    fn reset_established(&mut self, locality: u8) -> std::result::Result<(), DeviceError> {
        if locality < 3 {
            return Err(DeviceError {
                code: ctrl_rc::BAD_LOCALITY,
                msg: format!("tpmEstablished cannot be reset from locality {locality}"),
            });
        }
        self.guarded(
            || Err(failed()),
            |e| {
                e.locked("CMD_RESET_TPMESTABLISHED", |t| {
                    t.reset_established(locality)
                })
            },
        )
    }

    fn hash_start(&mut self) -> std::result::Result<(), DeviceError> {
        self.guarded(
            || Err(failed()),
            |e| e.locked("_TPM_Hash_Start", |t| t.hash_start()),
        )
    }

    fn hash_data(&mut self, data: &[u8]) -> std::result::Result<(), DeviceError> {
        self.guarded(
            || Err(failed()),
            |e| e.locked("_TPM_Hash_Data", |t| t.hash_data(data)),
        )
    }

    fn hash_end(&mut self) -> std::result::Result<(), DeviceError> {
        self.guarded(
            || Err(failed()),
            |e| e.locked("_TPM_Hash_End", |t| t.hash_end()),
        )
    }

    fn store_volatile(&mut self) -> std::result::Result<(), DeviceError> {
        self.guarded(
            || Err(failed()),
            |e| e.locked("CMD_STORE_VOLATILE", |t| t.store_volatile()),
        )
    }

    fn get_state_blob(&mut self, kind: StateBlobKind) -> std::result::Result<Vec<u8>, DeviceError> {
        self.guarded(|| Err(failed()), |e| e.state_blob(kind))
    }

    fn set_state_blob(
        &mut self,
        kind: StateBlobKind,
        data: Vec<u8>,
    ) -> std::result::Result<(), DeviceError> {
        self.guarded(
            || Err(failed()),
            |e| {
                let data = migration_key::unseal(e.migration_key.as_ref(), data)?;
                e.locked("CMD_SET_STATEBLOB", |t| {
                    t.set_state_blob(blob_kind(kind), &data)
                })
            },
        )
    }

    fn lock_storage(&mut self, retries: u32) -> std::result::Result<(), DeviceError> {
        self.guarded(|| Err(failed()), |e| e.take_lock(retries))
    }

    fn set_physical_presence(&mut self, asserted: bool) {
        self.physical_presence = asserted;
        self.guarded(
            || (),
            |e| {
                if let Some(t) = e.tpm.as_mut() {
                    t.set_physical_presence(asserted);
                }
            },
        );
    }

    fn set_nv_available(&mut self, available: bool) {
        self.nv_available = available;
        self.guarded(
            || (),
            |e| {
                if let Some(t) = e.tpm.as_mut() {
                    t.set_nv_available(available);
                }
            },
        );
    }

    fn config_flags(&self) -> u32 {
        // PTM_CONFIG_FLAG_FILE_KEY (1) when the image is encrypted,
        // PTM_CONFIG_FLAG_MIGRATION_KEY (2) when state blobs are sealed.
        u32::from(self.encrypted) | (u32::from(self.migration_key.is_some()) << 1)
    }
}

/// The TPM device: the TPM thread and a handle on it.
pub struct TpmDevice {
    handle: TpmHandle,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl TpmDevice {
    /// Spawn the TPM thread, which owns `holder`. If the holder holds the
    /// state, the engine is created on the thread at once (it never crosses
    /// threads) and a state that cannot be loaded fails the start; otherwise
    /// (`--migration incoming`) it is created when the state is first needed.
    pub fn start(holder: StateHolder, opts: DeviceOptions) -> Result<TpmDevice> {
        let (tpm_loop, handle) = transport::tpm_loop()
            .map_err(|e| Error::Process(format!("cannot start the TPM thread: {e}")))?;
        let (ready_tx, ready_rx) = crossbeam_channel::bounded(1);
        let thread = std::thread::Builder::new()
            .name("tpm".into())
            .spawn(move || {
                let load_now = holder.is_held();
                let mut engine = Engine {
                    tpm: None,
                    holder,
                    config: opts.config,
                    cancel: Arc::new(AtomicBool::new(false)),
                    release_lock_outgoing: opts.migration.release_lock_outgoing,
                    physical_presence: false,
                    nv_available: true,
                    lock_failure_logged: false,
                    permanent_out: None,
                    handed_over: Vec::new(),
                    last_command: None,
                    auto_shutdown: opts.auto_shutdown,
                    failed: false,
                    running: false,
                    busy: Arc::new(AtomicBool::new(false)),
                    encrypted: opts.encrypted,
                    migration_key: opts.migration_key,
                };
                if load_now {
                    let loaded = match catch_unwind(AssertUnwindSafe(|| engine.create())) {
                        Ok(Ok(())) => Ok(()),
                        Ok(Err(e)) => Err(e.msg),
                        Err(_) => Err("the engine panicked while loading its state".to_string()),
                    };
                    if let Err(msg) = loaded {
                        let _ = ready_tx.send(Err(msg));
                        return;
                    }
                }
                let _ = ready_tx.send(Ok(()));
                tpm_loop.run(&mut engine);
            })
            .map_err(|e| Error::Process(format!("cannot start the TPM thread: {e}")))?;
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(msg)) => return Err(Error::Engine(msg)),
            Err(_) => return Err(Error::Engine("the TPM thread ended during start-up".into())),
        }
        Ok(TpmDevice {
            handle,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// The handle the transport serves the TPM with.
    pub fn handle(&self) -> &TpmHandle {
        &self.handle
    }

    /// Power on (`--flags not-need-init`), as CMD_INIT would.
    pub fn init(&self, delete_volatile: bool) -> std::result::Result<(), DeviceError> {
        self.handle.call_dev(move |d| d.init(delete_volatile))
    }

    /// Send TPM2_Startup(`su`) (`--flags startup-clear|startup-state`); returns the response code.
    pub fn startup(&self, su: u16) -> u32 {
        self.handle
            .call(move |d| response_code(&d.execute(0, &su_command(CC_STARTUP, su))))
            .unwrap_or(c::RC_FAILURE)
    }

    /// Final shutdown: auto-shutdown, power off (persisting what must be), stop
    /// the TPM thread and wait for it. Later calls on the device fail cleanly.
    pub fn shutdown(&self) -> std::result::Result<(), DeviceError> {
        // None: the thread is already gone, so there is nothing left to power off.
        let r = self.handle.finish(|d| d.power_off()).unwrap_or(Ok(()));
        let thread = self.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(t) = thread {
            let _ = t.join();
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn startup_command_bytes() {
        assert_eq!(
            su_command(CC_STARTUP, 0),
            [0x80, 0x01, 0, 0, 0, 12, 0, 0, 1, 0x44, 0, 0]
        );
        assert_eq!(response_code(&[0x80, 1, 0, 0, 0, 10, 0, 0, 1, 0]), 0x100);
        assert_eq!(response_code(&[0x80]), c::RC_FAILURE);
    }
}
