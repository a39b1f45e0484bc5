//! The Microsoft/IBM TPM simulator protocol ("mssim") as tpm2-tss'
//! `mssim:host=H,port=P` TCTI speaks it: TPM commands on the command port P,
//! platform signals (power, NV, cancel, physical presence) on port P+1.
//! Every u32 on the wire is big-endian.
//!
//! The command port is served on the TPM thread (see `tpm_loop`), like the
//! swtpm data channel; the platform port has a thread per connection and
//! posts each signal to the TPM thread.

use std::io::Write;
use std::sync::Arc;

use crate::device::{power_off_if_running, Device, DeviceError};
use crate::endpoint::{bind, Bound, Endpoint, Stream};
use crate::error::Error;
use crate::frame::{
    check_command, frame_incomplete, read_sim_body, read_u32, sim_response, tpm_error_response,
    FrameError, TPM_RC_COMMAND_SIZE, TPM_RC_FAILURE,
};
use crate::server::{ExitReason, Server, ServerCore};
use crate::tpm_loop::{Progress, Session, Source, TpmHandle};

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

struct MssimState {
    tpm: TpmHandle,
    core: Arc<ServerCore>,
}

/// Start an mssim-compatible server for the TPM behind `tpm`.
pub fn serve_mssim(cfg: MssimConfig, tpm: &TpmHandle) -> Result<Server, Error> {
    let command = bind(cfg.command)?;
    let platform = bind(cfg.platform)?;
    let core = ServerCore::new(tpm)?;
    let st = Arc::new(MssimState {
        tpm: tpm.clone(),
        core: Arc::clone(&core),
    });
    let server = Server::new(Arc::clone(&core));
    match command {
        Bound::Listener(l) => {
            let s = Arc::clone(&st);
            let make = move || -> Box<dyn Session> { Box::new(CommandSession::new(&s)) };
            core.add_tpm_listener("mssim-cmd", l, tpm, Box::new(make))?;
        }
        Bound::Connected(c) => {
            let session = Box::new(CommandSession::new(&st));
            if !tpm.add(Source::conn(core.owner(), c, session)) {
                return Err(crate::server::tpm_gone());
            }
        }
    }
    match platform {
        Bound::Listener(l) => {
            let s = Arc::clone(&st);
            core.add_listener(
                "mssim-platform",
                l,
                Arc::new(move |c| platform_loop(c, &s, None)),
            )?;
        }
        Bound::Connected(c) => {
            let s = Arc::clone(&st);
            core.spawn_conn("mssim-platform", c, move |c| platform_loop(c, &s, None));
        }
    }
    Ok(server)
}

/// The acknowledgement of a signal: the simulator always answers 0; a device
/// failure is reported as its code instead so that the client does not go
/// on blindly.
fn ack_code(r: Result<(), DeviceError>) -> [u8; 4] {
    let code = match r {
        Ok(()) => 0,
        Err(e) => {
            log::warn!("mssim: device: {e}");
            e.code.max(1)
        }
    };
    code.to_be_bytes()
}

fn ack(stream: &mut Stream, r: Result<(), DeviceError>) -> bool {
    stream.write_all(&ack_code(r)).is_ok()
}

/// The end of TPM_STOP on either port: the server stops (the TPM was powered off).
fn stopped(core: &ServerCore, r: Result<(), DeviceError>) {
    if let Err(e) = r {
        log::warn!("mssim: power off at stop: {e}");
    }
    core.finish(ExitReason::Stopped);
}

/// One command-port connection, served on the TPM thread.
struct CommandSession {
    core: Arc<ServerCore>,
    /// Inside TPM_SIGNAL_HASH_DATA: octets still to hash (never 0), and the
    /// result so far (after a failure the rest is read but not hashed).
    hashing: Option<(u64, Result<(), DeviceError>)>,
}

impl CommandSession {
    fn new(st: &MssimState) -> CommandSession {
        CommandSession {
            core: Arc::clone(&st.core),
            hashing: None,
        }
    }
}

/// The u32 at `at`, if it has arrived.
fn u32_at(input: &[u8], at: usize) -> Option<u32> {
    input
        .get(at..at + 4)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_be_bytes)
}

impl Session for CommandSession {
    fn on_input(
        &mut self,
        input: &[u8],
        eof: bool,
        dev: &mut dyn Device,
        out: &mut Vec<u8>,
    ) -> Progress {
        // Nothing complete can come of what is left once the client has ended.
        let wait = if eof { Progress::Close } else { Progress::Wait };
        if let Some((remain, res)) = &mut self.hashing {
            // Hash what has arrived, in chunks as the reference simulator reads them.
            let n = input
                .len()
                .min(4096)
                .min(usize::try_from(*remain).unwrap_or(usize::MAX));
            if n == 0 {
                return wait;
            }
            if res.is_ok() {
                *res = dev.hash_data(&input[..n]);
            }
            *remain -= n as u64;
            if *remain == 0 {
                let r = std::mem::replace(res, Ok(()));
                self.hashing = None;
                out.extend_from_slice(&ack_code(r));
            }
            return Progress::Used(n);
        }
        let Some(code) = u32_at(input, 0) else {
            return wait;
        };
        match code {
            TPM_SEND_COMMAND => {
                if !eof && frame_incomplete(input, MSSIM_MAX_COMMAND) {
                    return wait;
                }
                let mut rest = &input[4..];
                match read_sim_body(&mut rest, MSSIM_MAX_COMMAND) {
                    Ok((locality, cmd)) => {
                        out.extend_from_slice(&sim_response(&execute(dev, locality, &cmd)));
                        Progress::Used(input.len() - rest.len())
                    }
                    Err(FrameError::BadSize { .. } | FrameError::Truncated { .. }) => {
                        out.extend_from_slice(&sim_response(&tpm_error_response(
                            TPM_RC_COMMAND_SIZE,
                        )));
                        Progress::Close
                    }
                    // Not all there yet (a slice only ends, it never fails).
                    Err(FrameError::Io(_)) => wait,
                }
            }
            TPM_SIGNAL_HASH_START => {
                out.extend_from_slice(&ack_code(dev.hash_start()));
                Progress::Used(4)
            }
            TPM_SIGNAL_HASH_DATA => match u32_at(input, 4) {
                Some(0) => {
                    out.extend_from_slice(&ack_code(Ok(())));
                    Progress::Used(8)
                }
                Some(size) => {
                    self.hashing = Some((u64::from(size), Ok(())));
                    Progress::Used(8)
                }
                None => wait,
            },
            TPM_SIGNAL_HASH_END => {
                out.extend_from_slice(&ack_code(dev.hash_end()));
                Progress::Used(4)
            }
            TPM_REMOTE_HANDSHAKE => match u32_at(input, 4) {
                Some(v) if v != 0 => {
                    for w in [SERVER_VERSION, ENDPOINT_INFO, 0] {
                        out.extend_from_slice(&w.to_be_bytes());
                    }
                    Progress::Used(8)
                }
                Some(_) => Progress::Close,
                None => wait,
            },
            TPM_SESSION_END => Progress::Close,
            TPM_STOP => {
                stopped(&self.core, power_off_if_running(dev));
                Progress::Close
            }
            other => {
                log::warn!("mssim: unknown command-port code {other}; closing");
                Progress::Close
            }
        }
    }
}

/// Run one TPM command from the command port.
fn execute(dev: &mut dyn Device, locality: u8, cmd: &[u8]) -> Vec<u8> {
    if !dev.is_running() {
        // The reference simulator answers nothing useful before power-on;
        // a well-formed failure is kinder to clients.
        return tpm_error_response(TPM_RC_FAILURE);
    }
    if let Err(rc) = check_command(cmd) {
        return tpm_error_response(rc);
    }
    if locality > 4 {
        return tpm_error_response(crate::frame::TPM_RC_LOCALITY);
    }
    dev.execute(locality, cmd)
}

/// Serve an mssim platform client that connected to a swtpm control port
/// (see `ctrl::serve`); its first signal, TPM_SIGNAL_POWER_ON, was read there.
pub(crate) fn serve_platform_handover(stream: Stream, tpm: TpmHandle, core: Arc<ServerCore>) {
    let st = MssimState { tpm, core };
    platform_loop(stream, &st, Some(TPM_SIGNAL_POWER_ON));
}

/// One platform-port connection (on a thread of its own).
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
    let tpm = &st.tpm;
    Some(match code {
        TPM_SIGNAL_POWER_ON => tpm.call_dev(|d| {
            if d.is_running() {
                Ok(())
            } else {
                d.init(false)
            }
        }),
        TPM_SIGNAL_POWER_OFF => tpm.call_dev(power_off_if_running),
        TPM_SIGNAL_RESET | TPM_SIGNAL_RESTART => tpm.call_dev(|d| {
            // _TPM_Init of a powered TPM; without power there is nothing to reset.
            if d.is_running() {
                d.init(false)
            } else {
                Ok(())
            }
        }),
        TPM_SIGNAL_PHYS_PRES_ON | TPM_SIGNAL_PHYS_PRES_OFF => {
            let on = code == TPM_SIGNAL_PHYS_PRES_ON;
            tpm.call_dev(move |d| {
                d.set_physical_presence(on);
                Ok(())
            })
        }
        TPM_SIGNAL_CANCEL_ON => {
            tpm.cancel();
            Ok(())
        }
        TPM_SIGNAL_CANCEL_OFF | TPM_SIGNAL_KEY_CACHE_ON | TPM_SIGNAL_KEY_CACHE_OFF => Ok(()),
        TPM_SIGNAL_NV_ON | TPM_SIGNAL_NV_OFF => {
            let on = code == TPM_SIGNAL_NV_ON;
            tpm.call_dev(move |d| {
                d.set_nv_available(on);
                Ok(())
            })
        }
        TPM_SESSION_END => return None,
        TPM_STOP => {
            stopped(&st.core, tpm.call_dev(power_off_if_running));
            return None;
        }
        other => {
            log::warn!("mssim: unknown platform code {other}; closing");
            return None;
        }
    })
}
