//! The TPM thread: the only owner of the [`Tpm`] engine. The engine is
//! created on that thread and never leaves it; the thread runs the
//! transport's [`TpmLoop`](transport::TpmLoop), which serves the data
//! channel itself (read, execute, answer: one wake-up per command) and runs
//! the jobs other threads post with a [`TpmHandle`] (control channel, mssim
//! platform port, start-up and shutdown here). [`Engine`] is the
//! [`transport::Device`] the loop drives. Cancelling is the exception: the
//! control thread sets the engine's cancel flag directly, since queueing it
//! behind the command it should cancel would be useless.
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

use tpm_core::constants as c;
use tpm_core::engine::error_response;
use tpm_core::persist::BlobKind;
use tpm_core::Tpm;
use transport::{Canceller, Device, DeviceError, StateBlobKind, TpmHandle};

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

/// What the TPM thread owns: the engine and what the device remembers about it.
struct Engine {
    tpm: Tpm,
    /// Command code of the last command executed (for auto-shutdown).
    last_command: Option<u32>,
    auto_shutdown: bool,
    /// The engine panicked: answer everything with failure.
    failed: bool,
    /// Powered on (CMD_INIT succeeded, no power-off since).
    running: bool,
    /// Set while a command executes, so that cancelling only touches a running command.
    busy: Arc<AtomicBool>,
    /// The engine's cancel flag.
    cancel: Arc<AtomicBool>,
    /// The state is encrypted at rest (`--key`), reported by CMD_GET_CONFIG.
    encrypted: bool,
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

impl Engine {
    /// Run `f` on the engine unless it has failed; a panic puts the device
    /// in failure mode instead of ending the TPM thread (and the guest's TPM).
    fn guard<R>(&mut self, f: impl FnOnce(&mut Tpm) -> R) -> Option<R> {
        if self.failed {
            return None;
        }
        match catch_unwind(AssertUnwindSafe(|| f(&mut self.tpm))) {
            Ok(r) => Some(r),
            Err(_) => {
                log::error!("the TPM engine panicked; the TPM is now in failure mode");
                self.failed = true;
                self.busy.store(false, Ordering::SeqCst);
                None
            }
        }
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

    fn checked<R>(
        &mut self,
        f: impl FnOnce(&mut Tpm) -> std::result::Result<R, tpm_core::Error>,
    ) -> std::result::Result<R, DeviceError> {
        self.guard(f).ok_or_else(failed)?.map_err(engine_error)
    }
}

impl Device for Engine {
    fn execute(&mut self, locality: u8, command: &[u8]) -> Vec<u8> {
        let cc = command
            .get(6..10)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
        self.last_command = cc;
        self.busy.store(true, Ordering::SeqCst);
        let resp = self
            .guard(|t| t.execute(locality, command))
            .unwrap_or_else(|| error_response(c::RC_FAILURE));
        self.busy.store(false, Ordering::SeqCst);
        log::trace!(
            "command {:#x?} at locality {locality}: rc {:#x}",
            cc.unwrap_or(0),
            response_code(&resp)
        );
        resp
    }

    fn init(&mut self, delete_volatile: bool) -> std::result::Result<(), DeviceError> {
        log::debug!("init (delete volatile state: {delete_volatile})");
        if self.failed {
            return Err(failed());
        }
        if self.tpm.is_powered() {
            self.power_off()?;
        }
        self.checked(|t| t.power_on(delete_volatile))?;
        self.last_command = None;
        self.running = true;
        Ok(())
    }

    fn power_off(&mut self) -> std::result::Result<(), DeviceError> {
        log::debug!("power off");
        self.maybe_shutdown();
        let r = if self.failed {
            Ok(())
        } else {
            self.checked(|t| t.power_off())
        };
        self.running = false;
        r
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
        self.checked(|t| Ok(t.tpm_established()))
    }

    fn reset_established(&mut self, locality: u8) -> std::result::Result<(), DeviceError> {
        if locality < 3 {
            return Err(DeviceError {
                code: ctrl_rc::BAD_LOCALITY,
                msg: format!("tpmEstablished cannot be reset from locality {locality}"),
            });
        }
        self.checked(|t| t.reset_established(locality))
    }

    fn hash_start(&mut self) -> std::result::Result<(), DeviceError> {
        self.checked(|t| t.hash_start())
    }

    fn hash_data(&mut self, data: &[u8]) -> std::result::Result<(), DeviceError> {
        self.checked(|t| t.hash_data(data))
    }

    fn hash_end(&mut self) -> std::result::Result<(), DeviceError> {
        self.checked(|t| t.hash_end())
    }

    fn store_volatile(&mut self) -> std::result::Result<(), DeviceError> {
        self.checked(|t| t.store_volatile())
    }

    fn get_state_blob(&mut self, kind: StateBlobKind) -> std::result::Result<Vec<u8>, DeviceError> {
        self.checked(|t| t.state_blob(blob_kind(kind)))
    }

    fn set_state_blob(
        &mut self,
        kind: StateBlobKind,
        data: Vec<u8>,
    ) -> std::result::Result<(), DeviceError> {
        self.checked(|t| t.set_state_blob(blob_kind(kind), &data))
    }

    fn lock_storage(&mut self, _retries: u32) -> std::result::Result<(), DeviceError> {
        // vtpm always holds the state lock from start-up (see state_dir).
        Ok(())
    }

    fn set_physical_presence(&mut self, asserted: bool) {
        self.guard(|t| t.set_physical_presence(asserted));
    }

    fn set_nv_available(&mut self, available: bool) {
        self.guard(|t| t.set_nv_available(available));
    }

    fn config_flags(&self) -> u32 {
        // PTM_CONFIG_FLAG_FILE_KEY when the image is encrypted; never
        // PTM_CONFIG_FLAG_MIGRATION_KEY, since --migration-key is not used.
        u32::from(self.encrypted)
    }
}

/// The TPM device: the TPM thread and a handle on it.
pub struct TpmDevice {
    handle: TpmHandle,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl TpmDevice {
    /// Spawn the TPM thread, creating the engine on it with `make` (so the
    /// engine never crosses threads). Fails if the engine cannot load its state.
    pub fn start<F>(make: F, auto_shutdown: bool, encrypted: bool) -> Result<TpmDevice>
    where
        F: FnOnce() -> std::result::Result<Tpm, tpm_core::Error> + Send + 'static,
    {
        let (tpm_loop, handle) = transport::tpm_loop()
            .map_err(|e| Error::Process(format!("cannot start the TPM thread: {e}")))?;
        let (ready_tx, ready_rx) = crossbeam_channel::bounded(1);
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
                let mut engine = Engine {
                    cancel: tpm.cancel_flag(),
                    tpm,
                    last_command: None,
                    auto_shutdown,
                    failed: false,
                    running: false,
                    busy: Arc::new(AtomicBool::new(false)),
                    encrypted,
                };
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
