//! The Microsoft/IBM TPM simulator protocol ("mssim") as tpm2-tss'
//! `mssim:host=H,port=P` TCTI speaks it: TPM commands on the command port P,
//! platform signals (power, NV, cancel, physical presence) on port P+1.
//! Every u32 on the wire is big-endian.

use std::io::{Read, Write};
use std::sync::Arc;

use crate::device::DeviceError;
use crate::endpoint::{bind, Bound, Endpoint, Stream};
use crate::error::Error;
use crate::frame::{
    check_command, read_sim_body, read_u32, sim_response, tpm_error_response, FrameError,
    TPM_RC_COMMAND_SIZE, TPM_RC_FAILURE,
};
use crate::server::{ExitReason, Server, ServerCore};
use crate::Device;

/// Simulator command codes (TpmTcpProtocol.h of the reference simulator).
pub mod codes {
    /// Platform: power on (a no-op when already on).
    pub const TPM_SIGNAL_POWER_ON: u32 = 1;
    /// Platform: power off.
    pub const TPM_SIGNAL_POWER_OFF: u32 = 2;
    /// Platform: assert physical presence.
    pub const TPM_SIGNAL_PHYS_PRES_ON: u32 = 3;
    /// Platform: deassert physical presence.
    pub const TPM_SIGNAL_PHYS_PRES_OFF: u32 = 4;
    /// Command port: _TPM_Hash_Start.
    pub const TPM_SIGNAL_HASH_START: u32 = 5;
    /// Command port: _TPM_Hash_Data, followed by u32 size and the bytes.
    pub const TPM_SIGNAL_HASH_DATA: u32 = 6;
    /// Command port: _TPM_Hash_End.
    pub const TPM_SIGNAL_HASH_END: u32 = 7;
    /// Command port: u8 locality, u32 size, command → u32 size, response, u32 0.
    pub const TPM_SEND_COMMAND: u32 = 8;
    /// Platform: cancel the running command.
    pub const TPM_SIGNAL_CANCEL_ON: u32 = 9;
    /// Platform: end of cancel.
    pub const TPM_SIGNAL_CANCEL_OFF: u32 = 10;
    /// Platform: NV available.
    pub const TPM_SIGNAL_NV_ON: u32 = 11;
    /// Platform: NV unavailable.
    pub const TPM_SIGNAL_NV_OFF: u32 = 12;
    /// Platform: key cache on (no key cache in vtpm: acknowledged only).
    pub const TPM_SIGNAL_KEY_CACHE_ON: u32 = 13;
    /// Platform: key cache off (acknowledged only).
    pub const TPM_SIGNAL_KEY_CACHE_OFF: u32 = 14;
    /// Command port: u32 client version → u32 server version, u32 endpoint info, u32 0.
    pub const TPM_REMOTE_HANDSHAKE: u32 = 15;
    /// Platform: _TPM_Init while powered (a no-op when off).
    pub const TPM_SIGNAL_RESET: u32 = 17;
    /// Platform: _TPM_Init for a restart (treated like reset).
    pub const TPM_SIGNAL_RESTART: u32 = 18;
    /// Either port: the client ends its session; the connection is closed, no reply.
    pub const TPM_SESSION_END: u32 = 20;
    /// Either port: power off and stop the server; no reply.
    pub const TPM_STOP: u32 = 21;
}
use codes::*;

/// Server version answered to TPM_REMOTE_HANDSHAKE.
const SERVER_VERSION: u32 = 1;
/// TpmEndPointInfo answered to TPM_REMOTE_HANDSHAKE: platform available,
/// raw mode, physical presence supported.
const ENDPOINT_INFO: u32 = 0x01 | 0x04 | 0x08;
/// Largest command taken on the command port (the simulator's buffer size).
pub const MSSIM_MAX_COMMAND: usize = 4096;

/// Configuration of [`serve_mssim`].
#[derive(Debug)]
pub struct MssimConfig {
    /// The TPM command port (tcti `port=P`).
    pub command: Endpoint,
    /// The platform port (tcti uses P+1).
    pub platform: Endpoint,
}

/// The connection loop of one port.
type PortLoop = fn(Stream, &MssimState);

struct MssimState {
    dev: Arc<dyn Device>,
    core: Arc<ServerCore>,
}

/// Start an mssim-compatible server for `dev`.
pub fn serve_mssim(cfg: MssimConfig, dev: Arc<dyn Device>) -> Result<Server, Error> {
    let command = bind(cfg.command)?;
    let platform = bind(cfg.platform)?;
    let core = ServerCore::new()?;
    let st = Arc::new(MssimState {
        dev,
        core: Arc::clone(&core),
    });
    let server = Server::new(Arc::clone(&core));
    let ports: [(&'static str, Bound, PortLoop); 2] = [
        ("mssim-cmd", command, serve_command),
        ("mssim-platform", platform, serve_platform),
    ];
    for (name, bound, f) in ports {
        match bound {
            Bound::Listener(l) => {
                let s = Arc::clone(&st);
                core.add_listener(name, l, Arc::new(move |c| f(c, &s)))?;
            }
            Bound::Connected(c) => {
                let s = Arc::clone(&st);
                core.spawn_conn(name, c, move |c| f(c, &s));
            }
        }
    }
    Ok(server)
}

fn ack(stream: &mut Stream, r: Result<(), DeviceError>) -> bool {
    // The simulator always acknowledges with 0; a device failure is reported
    // as its code instead so that the client does not go on blindly.
    let code = match r {
        Ok(()) => 0,
        Err(e) => {
            log::warn!("mssim: device: {e}");
            e.code.max(1)
        }
    };
    stream.write_all(&code.to_be_bytes()).is_ok()
}

/// Power off (if on) and stop the whole server: TPM_STOP on either port.
fn stop(st: &MssimState) {
    if st.dev.is_running() {
        if let Err(e) = st.dev.power_off() {
            log::warn!("mssim: power off at stop: {e}");
        }
    }
    st.core.finish(ExitReason::Stopped);
}

/// One command-port connection.
fn serve_command(mut stream: Stream, st: &MssimState) {
    while !st.core.is_stopping() {
        let Ok(Some(code)) = read_u32(&mut stream) else {
            break;
        };
        let ok = match code {
            TPM_SEND_COMMAND => match read_sim_body(&mut stream, MSSIM_MAX_COMMAND) {
                Ok((locality, cmd)) => {
                    let resp = execute(st, locality, cmd);
                    stream.write_all(&sim_response(&resp)).is_ok()
                }
                Err(FrameError::BadSize { .. } | FrameError::Truncated { .. }) => {
                    let _ =
                        stream.write_all(&sim_response(&tpm_error_response(TPM_RC_COMMAND_SIZE)));
                    false
                }
                Err(FrameError::Io(_)) => false,
            },
            TPM_SIGNAL_HASH_START => ack(&mut stream, st.dev.hash_start()),
            TPM_SIGNAL_HASH_DATA => match hash_data(&mut stream, st) {
                Some(r) => ack(&mut stream, r),
                None => false,
            },
            TPM_SIGNAL_HASH_END => ack(&mut stream, st.dev.hash_end()),
            TPM_REMOTE_HANDSHAKE => match read_u32(&mut stream) {
                Ok(Some(v)) if v != 0 => {
                    let mut out = Vec::with_capacity(12);
                    for w in [SERVER_VERSION, ENDPOINT_INFO, 0] {
                        out.extend_from_slice(&w.to_be_bytes());
                    }
                    stream.write_all(&out).is_ok()
                }
                _ => false,
            },
            TPM_SESSION_END => false,
            TPM_STOP => {
                stop(st);
                false
            }
            other => {
                log::warn!("mssim: unknown command-port code {other}; closing");
                false
            }
        };
        if !ok {
            break;
        }
    }
}

/// Run one TPM command from the command port.
fn execute(st: &MssimState, locality: u8, cmd: Vec<u8>) -> Vec<u8> {
    if !st.dev.is_running() {
        // The reference simulator answers nothing useful before power-on;
        // a well-formed failure is kinder to clients.
        return tpm_error_response(TPM_RC_FAILURE);
    }
    if let Err(rc) = check_command(&cmd) {
        return tpm_error_response(rc);
    }
    if locality > 4 {
        return tpm_error_response(crate::frame::TPM_RC_LOCALITY);
    }
    st.dev.execute(locality, cmd)
}

/// TPM_SIGNAL_HASH_DATA: u32 size and bytes, hashed in chunks. `None` when the
/// stream broke.
fn hash_data(stream: &mut Stream, st: &MssimState) -> Option<Result<(), DeviceError>> {
    let mut remain = read_u32(stream).ok()?? as usize;
    let mut chunk = [0u8; 4096];
    let mut res = Ok(());
    while remain > 0 {
        let n = remain.min(chunk.len());
        stream.read_exact(&mut chunk[..n]).ok()?;
        remain -= n;
        if res.is_ok() {
            res = st.dev.hash_data(&chunk[..n]);
        }
    }
    Some(res)
}

/// One platform-port connection.
fn serve_platform(stream: Stream, st: &MssimState) {
    platform_loop(stream, st, None);
}

/// Serve an mssim platform client that connected to a swtpm control port
/// (see `ctrl::serve`); its first signal, TPM_SIGNAL_POWER_ON, was read there.
pub(crate) fn serve_platform_handover(stream: Stream, dev: Arc<dyn Device>, core: Arc<ServerCore>) {
    let st = MssimState { dev, core };
    platform_loop(stream, &st, Some(TPM_SIGNAL_POWER_ON));
}

fn platform_loop(mut stream: Stream, st: &MssimState, mut first: Option<u32>) {
    while !st.core.is_stopping() {
        let code = match first.take() {
            Some(c) => c,
            None => match read_u32(&mut stream) {
                Ok(Some(c)) => c,
                _ => break,
            },
        };
        match platform_signal(code, st) {
            Some(r) => {
                if !ack(&mut stream, r) {
                    break;
                }
            }
            None => break,
        }
    }
}

/// Carry out one platform signal; None closes the connection.
fn platform_signal(code: u32, st: &MssimState) -> Option<Result<(), DeviceError>> {
    let dev = &st.dev;
    Some(match code {
        TPM_SIGNAL_POWER_ON => {
            if dev.is_running() {
                Ok(())
            } else {
                dev.init(false)
            }
        }
        TPM_SIGNAL_POWER_OFF => {
            if dev.is_running() {
                dev.power_off()
            } else {
                Ok(())
            }
        }
        TPM_SIGNAL_RESET | TPM_SIGNAL_RESTART => {
            // _TPM_Init of a powered TPM; without power there is nothing to reset.
            if dev.is_running() {
                dev.init(false)
            } else {
                Ok(())
            }
        }
        TPM_SIGNAL_PHYS_PRES_ON | TPM_SIGNAL_PHYS_PRES_OFF => {
            dev.set_physical_presence(code == TPM_SIGNAL_PHYS_PRES_ON);
            Ok(())
        }
        TPM_SIGNAL_CANCEL_ON => {
            dev.cancel();
            Ok(())
        }
        TPM_SIGNAL_CANCEL_OFF | TPM_SIGNAL_KEY_CACHE_ON | TPM_SIGNAL_KEY_CACHE_OFF => Ok(()),
        TPM_SIGNAL_NV_ON | TPM_SIGNAL_NV_OFF => {
            dev.set_nv_available(code == TPM_SIGNAL_NV_ON);
            Ok(())
        }
        TPM_SESSION_END => return None,
        TPM_STOP => {
            stop(st);
            return None;
        }
        other => {
            log::warn!("mssim: unknown platform code {other}; closing");
            return None;
        }
    })
}
