//! The TPM thread: the only owner of the [`Tpm`] engine. Transport threads
//! reach it through [`TpmDevice`], which implements [`transport::Device`] by
//! posting a job on a crossbeam channel and blocking on the job's reply
//! channel, so commands and control messages are serialised in arrival order.
//! `cancel` is the exception: it sets the engine's cancel flag directly, since
//! queueing it behind the command it should cancel would be useless.
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

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};
use tpm_core::constants as c;
use tpm_core::engine::error_response;
use tpm_core::persist::BlobKind;
use tpm_core::Tpm;
use transport::{Device, DeviceError, StateBlobKind};

use crate::error::{Error, Result};

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

/// What the TPM thread owns.
struct Engine {
    tpm: Tpm,
    /// Command code of the last command executed (for auto-shutdown).
    last_command: Option<u32>,
    auto_shutdown: bool,
    /// The engine panicked: answer everything with failure.
    failed: bool,
    /// Mirror of `tpm.is_powered()` readable without a round trip.
    running: Arc<AtomicBool>,
    /// Set while a command executes, so `cancel` only touches a running command.
    busy: Arc<AtomicBool>,
    stop: bool,
}

type Job = Box<dyn FnOnce(&mut Engine) + Send>;

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

fn gone() -> DeviceError {
    DeviceError {
        code: ctrl_rc::FAIL,
        msg: "the TPM thread has stopped".into(),
    }
}

fn blob_kind(k: StateBlobKind) -> BlobKind {
    match k {
        StateBlobKind::Permanent => BlobKind::Permanent,
        StateBlobKind::Volatile => BlobKind::Volatile,
        StateBlobKind::SaveState => BlobKind::SaveState,
    }
}

impl Engine {
    fn execute(&mut self, locality: u8, command: &[u8]) -> Vec<u8> {
        if self.failed {
            return error_response(c::RC_FAILURE);
        }
        let cc = command
            .get(6..10)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
        self.last_command = cc;
        self.busy.store(true, Ordering::SeqCst);
        let resp = self.tpm.execute(locality, command);
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
            || !self.tpm.is_powered()
            || self.last_command == Some(CC_SHUTDOWN)
        {
            return;
        }
        for su in [c::SU_STATE, c::SU_CLEAR] {
            let rc = response_code(&self.execute(0, &su_command(CC_SHUTDOWN, su)));
            log::debug!(
                "auto-shutdown: TPM2_Shutdown({}) -> rc {rc:#x}",
                if su == c::SU_STATE { "STATE" } else { "CLEAR" }
            );
            if rc == 0 || rc == c::RC_INITIALIZE {
                break;
            }
        }
    }

    fn power_off(&mut self) -> std::result::Result<(), DeviceError> {
        self.maybe_shutdown();
        let r = if self.failed {
            Ok(())
        } else {
            self.tpm.power_off().map_err(engine_error)
        };
        self.running.store(false, Ordering::SeqCst);
        r
    }

    fn init(&mut self, delete_volatile: bool) -> std::result::Result<(), DeviceError> {
        if self.failed {
            return Err(failed());
        }
        if self.tpm.is_powered() {
            self.power_off()?;
        }
        self.tpm.power_on(delete_volatile).map_err(engine_error)?;
        self.last_command = None;
        self.running.store(true, Ordering::SeqCst);
        Ok(())
    }

    fn checked<R>(
        &mut self,
        f: impl FnOnce(&mut Tpm) -> std::result::Result<R, tpm_core::Error>,
    ) -> std::result::Result<R, DeviceError> {
        if self.failed {
            return Err(failed());
        }
        f(&mut self.tpm).map_err(engine_error)
    }
}

/// How long each side of the hand-off spins before it blocks. Most commands take
/// a few microseconds; a futex sleep and wake on both sides would cost more
/// than the command, and more than swtpm's single-threaded loop.
const SPIN: std::time::Duration = std::time::Duration::from_micros(50);

/// Receive from `rx`, spinning up to [`SPIN`] before blocking.
fn recv_spin<T>(rx: &Receiver<T>) -> Option<T> {
    let start = std::time::Instant::now();
    loop {
        match rx.try_recv() {
            Ok(v) => return Some(v),
            Err(crossbeam_channel::TryRecvError::Disconnected) => return None,
            Err(crossbeam_channel::TryRecvError::Empty) if start.elapsed() < SPIN => {
                std::hint::spin_loop()
            }
            Err(crossbeam_channel::TryRecvError::Empty) => return rx.recv().ok(),
        }
    }
}

fn tpm_thread(mut engine: Engine, jobs: Receiver<Job>) {
    while let Some(job) = recv_spin(&jobs) {
        // The engine must never panic; if it does, keep serving failure responses
        // instead of taking the process (and the guest's TPM) down with it.
        if catch_unwind(AssertUnwindSafe(|| job(&mut engine))).is_err() {
            log::error!("the TPM engine panicked; the TPM is now in failure mode");
            engine.failed = true;
            engine.busy.store(false, Ordering::SeqCst);
        }
        if engine.stop {
            break;
        }
    }
    log::debug!("TPM thread stopped");
}

/// The TPM device: a handle to the TPM thread.
pub struct TpmDevice {
    jobs: Sender<Job>,
    running: Arc<AtomicBool>,
    busy: Arc<AtomicBool>,
    cancel: Arc<AtomicBool>,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// The state is encrypted at rest (`--key`), reported by CMD_GET_CONFIG.
    encrypted: bool,
}

impl TpmDevice {
    /// Spawn the TPM thread, creating the engine on it with `make` (so the
    /// engine never crosses threads). Fails if the engine cannot load its state.
    pub fn start<F>(make: F, auto_shutdown: bool, encrypted: bool) -> Result<Arc<TpmDevice>>
    where
        F: FnOnce() -> std::result::Result<Tpm, tpm_core::Error> + Send + 'static,
    {
        let (jobs_tx, jobs_rx) = crossbeam_channel::unbounded::<Job>();
        let (ready_tx, ready_rx) = crossbeam_channel::bounded(1);
        let running = Arc::new(AtomicBool::new(false));
        let busy = Arc::new(AtomicBool::new(false));
        let (r, b) = (running.clone(), busy.clone());
        let thread = std::thread::Builder::new()
            .name("tpm".into())
            .spawn(move || {
                let tpm = match catch_unwind(AssertUnwindSafe(make)) {
                    Ok(Ok(tpm)) => tpm,
                    Ok(Err(e)) => {
                        let _ = ready_tx.send(Err(e.to_string()));
                        return;
                    }
                    Err(_) => {
                        let _ = ready_tx.send(Err(
                            "the engine panicked while loading its state".to_string()
                        ));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(tpm.cancel_flag()));
                let engine = Engine {
                    tpm,
                    last_command: None,
                    auto_shutdown,
                    failed: false,
                    running: r,
                    busy: b,
                    stop: false,
                };
                tpm_thread(engine, jobs_rx);
            })
            .map_err(|e| Error::Process(format!("cannot start the TPM thread: {e}")))?;
        let cancel = match ready_rx.recv() {
            Ok(Ok(flag)) => flag,
            Ok(Err(msg)) => return Err(Error::Engine(msg)),
            Err(_) => return Err(Error::Engine("the TPM thread ended during start-up".into())),
        };
        Ok(Arc::new(TpmDevice {
            jobs: jobs_tx,
            running,
            busy,
            cancel,
            thread: Mutex::new(Some(thread)),
            encrypted,
        }))
    }

    /// Run `f` on the TPM thread and wait for its result (None if the thread is gone
    /// or the job panicked).
    fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Engine) -> R + Send + 'static,
    ) -> Option<R> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let job: Job = Box::new(move |e| {
            let _ = tx.send(f(e));
        });
        self.jobs.send(job).ok()?;
        recv_spin(&rx)
    }

    fn call_dev<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Engine) -> std::result::Result<R, DeviceError> + Send + 'static,
    ) -> std::result::Result<R, DeviceError> {
        self.call(f).unwrap_or_else(|| Err(gone()))
    }

    /// Send TPM2_Startup(`su`) (`--flags startup-clear|startup-state`); returns the response code.
    pub fn startup(&self, su: u16) -> u32 {
        response_code(&self.execute(0, su_command(CC_STARTUP, su)))
    }

    /// Final shutdown: auto-shutdown, power off (persisting what must be), stop
    /// the TPM thread and wait for it. Later calls on the device fail cleanly.
    pub fn shutdown(&self) -> std::result::Result<(), DeviceError> {
        // None: the thread is already gone, so there is nothing left to power off.
        let r = self
            .call(|e| {
                e.stop = true;
                e.power_off()
            })
            .unwrap_or(Ok(()));
        let thread = self.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(t) = thread {
            let _ = t.join();
        }
        r
    }
}

impl Device for TpmDevice {
    fn execute(&self, locality: u8, command: Vec<u8>) -> Vec<u8> {
        self.call(move |e| e.execute(locality, &command))
            .unwrap_or_else(|| error_response(c::RC_FAILURE))
    }

    fn init(&self, delete_volatile: bool) -> std::result::Result<(), DeviceError> {
        log::debug!("init (delete volatile state: {delete_volatile})");
        self.call_dev(move |e| e.init(delete_volatile))
    }

    fn power_off(&self) -> std::result::Result<(), DeviceError> {
        log::debug!("power off");
        self.call_dev(|e| e.power_off())
    }

    fn is_running(&self) -> bool {
        self.running.load(Ordering::SeqCst)
    }

    fn cancel(&self) {
        // Only a command in progress can be cancelled; a flag left set would
        // cancel the next long command instead.
        if self.busy.load(Ordering::SeqCst) {
            self.cancel.store(true, Ordering::SeqCst);
        }
    }

    fn tpm_established(&self) -> std::result::Result<bool, DeviceError> {
        self.call_dev(|e| e.checked(|t| Ok(t.tpm_established())))
    }

    fn reset_established(&self, locality: u8) -> std::result::Result<(), DeviceError> {
        if locality < 3 {
            return Err(DeviceError {
                code: ctrl_rc::BAD_LOCALITY,
                msg: format!("tpmEstablished cannot be reset from locality {locality}"),
            });
        }
        self.call_dev(move |e| e.checked(|t| t.reset_established(locality)))
    }

    fn hash_start(&self) -> std::result::Result<(), DeviceError> {
        self.call_dev(|e| e.checked(|t| t.hash_start()))
    }

    fn hash_data(&self, data: &[u8]) -> std::result::Result<(), DeviceError> {
        let data = data.to_vec();
        self.call_dev(move |e| e.checked(|t| t.hash_data(&data)))
    }

    fn hash_end(&self) -> std::result::Result<(), DeviceError> {
        self.call_dev(|e| e.checked(|t| t.hash_end()))
    }

    fn store_volatile(&self) -> std::result::Result<(), DeviceError> {
        self.call_dev(|e| e.checked(|t| t.store_volatile()))
    }

    fn get_state_blob(&self, kind: StateBlobKind) -> std::result::Result<Vec<u8>, DeviceError> {
        self.call_dev(move |e| e.checked(|t| t.state_blob(blob_kind(kind))))
    }

    fn set_state_blob(
        &self,
        kind: StateBlobKind,
        data: Vec<u8>,
    ) -> std::result::Result<(), DeviceError> {
        self.call_dev(move |e| e.checked(|t| t.set_state_blob(blob_kind(kind), &data)))
    }

    fn lock_storage(&self, _retries: u32) -> std::result::Result<(), DeviceError> {
        // vtpm always holds the state lock from start-up (see state_dir).
        Ok(())
    }

    fn set_physical_presence(&self, asserted: bool) {
        let _ = self.call(move |e| e.tpm.set_physical_presence(asserted));
    }

    fn set_nv_available(&self, available: bool) {
        let _ = self.call(move |e| e.tpm.set_nv_available(available));
    }

    fn config_flags(&self) -> u32 {
        // PTM_CONFIG_FLAG_FILE_KEY when the image is encrypted; never
        // PTM_CONFIG_FLAG_MIGRATION_KEY, since --migration-key is not used.
        u32::from(self.encrypted)
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
