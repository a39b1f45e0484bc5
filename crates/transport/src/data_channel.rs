//! The swtpm data channel: TPM commands in, responses out, as many per
//! connection as the client sends (tcti-swtpm uses one connection per command,
//! QEMU one for its lifetime). Served on the TPM thread (see `tpm_loop`):
//! the command is read, executed and answered there, with no hand-off.

use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::device::Device;
use crate::endpoint::Stream;
use crate::frame::{
    check_command, frame_incomplete, read_data_frame, sim_response, tpm_error_response, Frame,
    FrameError, TPM2_CC_SET_LOCALITY, TPM_HEADER_SIZE, TPM_RC_COMMAND_SIZE, TPM_RC_FAILURE,
    TPM_RC_INSUFFICIENT, TPM_RC_LOCALITY, TPM_RC_SUCCESS,
};
use crate::server::ExitReason;
use crate::swtpm_state::SwtpmState;
use crate::tpm_loop::{Progress, Session, Source};

/// One data connection.
pub(crate) struct DataSession {
    st: Arc<SwtpmState>,
    /// Close after the first response (swtpm's `disconnect`).
    one_shot: bool,
    /// No byte has arrived yet (counted in `idle_data` for the mssim detection).
    idle: bool,
    /// A descriptor data channel: only one may be live, as in swtpm.
    fd_channel: bool,
}

impl DataSession {
    /// A session for a connection the data listener accepted.
    pub(crate) fn accepted(st: Arc<SwtpmState>, one_shot: bool) -> DataSession {
        DataSession::new(st, one_shot, false)
    }

    fn new(st: Arc<SwtpmState>, one_shot: bool, fd_channel: bool) -> DataSession {
        // Counted as idle until its first bytes arrive (see ctrl's mssim detection).
        st.idle_data.fetch_add(1, Ordering::SeqCst);
        DataSession {
            st,
            one_shot,
            idle: true,
            fd_channel,
        }
    }

    fn not_idle(&mut self) {
        if std::mem::take(&mut self.idle) {
            self.st.idle_data.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// Serve a descriptor data channel (SET_DATAFD or an inherited connected
/// descriptor) on the TPM thread; the caller has marked it live in
/// `datafd_active`, which is cleared when it closes.
pub(crate) fn start_fd(st: &Arc<SwtpmState>, stream: Stream) {
    let session = DataSession::new(Arc::clone(st), false, true);
    if !st
        .tpm
        .add(Source::conn(st.core.owner(), stream, Box::new(session)))
    {
        log::warn!("data channel: the TPM thread has stopped; descriptor closed");
    }
}

impl Session for DataSession {
    fn on_input(
        &mut self,
        input: &[u8],
        eof: bool,
        dev: &mut dyn Device,
        out: &mut Vec<u8>,
    ) -> Progress {
        if !input.is_empty() {
            self.not_idle();
        }
        if !eof && frame_incomplete(input, self.st.max_command()) {
            return Progress::Wait;
        }
        let mut rest = input;
        let frame = match read_data_frame(&mut rest, self.st.max_command()) {
            Ok(Some(f)) => f,
            Ok(None) => return Progress::Wait,
            Err(FrameError::BadSize { size, sim }) => {
                // The rest of the stream cannot be parsed: answer as the TPM
                // would (TPM_RC_COMMAND_SIZE) and close.
                log::debug!("data channel: command size {size} out of range");
                let r = tpm_error_response(TPM_RC_COMMAND_SIZE);
                out.extend_from_slice(&if sim { sim_response(&r) } else { r });
                return Progress::Close;
            }
            Err(FrameError::Truncated { size, missing }) => {
                if !eof {
                    return Progress::Wait;
                }
                log::debug!(
                    "data channel: stream ended {missing} octets short of a {size}-octet command"
                );
                out.extend_from_slice(&tpm_error_response(TPM_RC_COMMAND_SIZE));
                return Progress::Close;
            }
            Err(FrameError::Io(e)) if e.kind() == io::ErrorKind::UnexpectedEof && !eof => {
                return Progress::Wait;
            }
            Err(FrameError::Io(e)) => {
                // A client that vanished mid-header: the TPM never saw a command.
                log::debug!("data channel: {e}");
                return Progress::Close;
            }
        };
        let used = input.len() - rest.len();
        match frame {
            Frame::Raw(cmd) => out.extend_from_slice(&process(&self.st, dev, &cmd)),
            Frame::Sim { locality, command } => {
                let resp = if self.st.locality_ok(locality) {
                    // swtpm keeps the frame's locality for later raw commands too.
                    self.st.locality.store(locality, Ordering::SeqCst);
                    process(&self.st, dev, &command)
                } else {
                    tpm_error_response(TPM_RC_LOCALITY)
                };
                out.extend_from_slice(&sim_response(&resp));
            }
        }
        if self.one_shot {
            Progress::Close
        } else {
            Progress::Used(used)
        }
    }

    fn on_close(&mut self) {
        self.not_idle();
        log::debug!("data channel: connection closed");
        if self.fd_channel {
            self.st.datafd_active.store(false, Ordering::SeqCst);
        }
        if self.st.data.terminate_on_data_close && !self.st.core.is_stopping() {
            self.st.core.finish(ExitReason::DataClosed);
        }
    }
}

/// Execute one command (already read whole) and return the response; also
/// the CUSE device's, for a command written to it.
pub(crate) fn process(st: &SwtpmState, dev: &mut dyn Device, cmd: &[u8]) -> Vec<u8> {
    if !dev.is_running() {
        // swtpm: a TPM that was not initialised (CMD_INIT) fails every command.
        log::trace!(
            "data: command {:#x} before CMD_INIT: TPM_RC_FAILURE",
            cmd.get(6..10)
                .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        );
        return tpm_error_response(TPM_RC_FAILURE);
    }
    let hdr = match check_command(cmd) {
        Ok(h) => h,
        Err(rc) => return tpm_error_response(rc),
    };
    if hdr.code == TPM2_CC_SET_LOCALITY {
        return set_locality_in_band(st, cmd);
    }
    dev.execute(st.locality.load(Ordering::SeqCst), cmd)
}

/// The vTPM proxy's in-band TPM2_SetLocality, answered the way swtpm does.
fn set_locality_in_band(st: &SwtpmState, cmd: &[u8]) -> Vec<u8> {
    if !st.allow_set_locality {
        return tpm_error_response(TPM_RC_FAILURE);
    }
    let Some(&loc) = cmd.get(TPM_HEADER_SIZE) else {
        return tpm_error_response(TPM_RC_INSUFFICIENT);
    };
    if !st.locality_ok(loc) {
        log::trace!("in-band TPM2_SetLocality({loc}): refused");
        return tpm_error_response(TPM_RC_LOCALITY);
    }
    log::trace!("in-band TPM2_SetLocality({loc})");
    st.locality.store(loc, Ordering::SeqCst);
    tpm_error_response(TPM_RC_SUCCESS)
}
