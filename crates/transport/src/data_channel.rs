//! The swtpm data channel: TPM commands in, responses out, as many per
//! connection as the client sends (tcti-swtpm uses one connection per command,
//! QEMU one for its lifetime).

use std::io::Write;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::endpoint::Stream;
use crate::frame::{
    check_command, read_data_frame, sim_response, tpm_error_response, Frame, FrameError,
    TPM2_CC_SET_LOCALITY, TPM_HEADER_SIZE, TPM_RC_FAILURE, TPM_RC_INSUFFICIENT, TPM_RC_LOCALITY,
    TPM_RC_SUCCESS,
};
use crate::server::ExitReason;
use crate::swtpm::SwtpmState;

/// Serve one data connection until the client closes it or the server ends;
/// `one_shot`: close after the first response (swtpm's `disconnect`).
pub(crate) fn serve(mut stream: Stream, st: Arc<SwtpmState>, one_shot: bool) {
    // Counted as idle until its first frame arrives (see ctrl's mssim detection).
    st.idle_data.fetch_add(1, Ordering::SeqCst);
    let mut idle = true;
    while !st.core.is_stopping() {
        let read = read_data_frame(&mut stream, st.max_command());
        if std::mem::take(&mut idle) {
            st.idle_data.fetch_sub(1, Ordering::SeqCst);
        }
        let frame = match read {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(FrameError::BadSize { size, sim }) => {
                // The rest of the stream cannot be parsed: answer as the TPM
                // would (TPM_RC_COMMAND_SIZE) and close.
                log::debug!("data channel: command size {size} out of range");
                let r = tpm_error_response(crate::frame::TPM_RC_COMMAND_SIZE);
                let _ = stream.write_all(&if sim { sim_response(&r) } else { r });
                break;
            }
            Err(FrameError::Truncated { size, missing }) => {
                log::debug!(
                    "data channel: stream ended {missing} octets short of a {size}-octet command"
                );
                let _ = stream.write_all(&tpm_error_response(crate::frame::TPM_RC_COMMAND_SIZE));
                break;
            }
            Err(FrameError::Io(e)) => {
                // A client that vanished mid-command: the TPM never saw it.
                log::debug!("data channel: {e}");
                break;
            }
        };
        let out = match frame {
            Frame::Raw(cmd) => process(&st, cmd),
            Frame::Sim { locality, command } => {
                let resp = if st.locality_ok(locality) {
                    // swtpm keeps the frame's locality for later raw commands too.
                    st.locality.store(locality, Ordering::SeqCst);
                    process(&st, command)
                } else {
                    tpm_error_response(TPM_RC_LOCALITY)
                };
                sim_response(&resp)
            }
        };
        if let Err(e) = stream.write_all(&out) {
            log::debug!("data channel: cannot send response: {e}");
            break;
        }
        if one_shot {
            break;
        }
    }
    if idle {
        st.idle_data.fetch_sub(1, Ordering::SeqCst);
    }
    if st.data.terminate_on_data_close && !st.core.is_stopping() {
        st.core.finish(ExitReason::DataClosed);
    }
}

/// Execute one command (already read whole) and return the response.
pub(crate) fn process(st: &SwtpmState, cmd: Vec<u8>) -> Vec<u8> {
    if !st.dev.is_running() {
        // swtpm: a TPM that was not initialised (CMD_INIT) fails every command.
        log::trace!(
            "data: command {:#x} before CMD_INIT: TPM_RC_FAILURE",
            cmd.get(6..10)
                .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        );
        return tpm_error_response(TPM_RC_FAILURE);
    }
    let hdr = match check_command(&cmd) {
        Ok(h) => h,
        Err(rc) => return tpm_error_response(rc),
    };
    if hdr.code == TPM2_CC_SET_LOCALITY {
        return set_locality_in_band(st, &cmd);
    }
    st.dev.execute(st.locality.load(Ordering::SeqCst), cmd)
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
        return tpm_error_response(TPM_RC_LOCALITY);
    }
    st.locality.store(loc, Ordering::SeqCst);
    tpm_error_response(TPM_RC_SUCCESS)
}
