//! What each control command does, mapped onto [`Device`](crate::Device)
//! calls, with swtpm's checks and error codes. The control channel has its
//! own thread; each device operation is a job on the TPM thread
//! ([`TpmHandle`](crate::TpmHandle)), except cancelling, which must not
//! wait for the command it cancels.

use std::io::Read;
use std::os::fd::OwnedFd;
use std::sync::atomic::Ordering;

use super::codes::{rc, CtrlCommand, *};
use super::messages::*;
use super::CtrlMessage;
use crate::device::{Device, DeviceError, StateBlobKind};
use crate::endpoint::Stream;
use crate::swtpm_state::SwtpmState;
use crate::sync::lock;
use crate::wire::{Pad, Wire};

/// Largest state blob CMD_SET_STATEBLOB accepts; bigger ones are drained and refused.
pub const MAX_STATE_BLOB: u32 = 16 * 1024 * 1024;

/// The result of handling one message.
pub(crate) enum Outcome {
    /// Send these bytes.
    Reply(Vec<u8>),
    /// Send these bytes, then do something.
    ReplyThen(Vec<u8>, After),
    /// The connection broke while reading a payload: close without replying.
    Close,
}

/// Work done after the reply was sent.
pub(crate) enum After {
    /// CMD_SHUTDOWN: end the server.
    Terminate,
    /// CMD_SET_DATAFD: serve this descriptor as the data channel.
    DataFd(OwnedFd),
}

fn result(code: u32) -> Outcome {
    Outcome::Reply(ResultResp { result: code }.to_bytes())
}

fn code_of(r: Result<(), DeviceError>) -> u32 {
    match r {
        Ok(()) => rc::TPM_SUCCESS,
        Err(e) => {
            log::debug!("ctrl: device: {e}");
            // An error must never read as success.
            if e.code == 0 {
                rc::TPM_FAIL
            } else {
                e.code
            }
        }
    }
}

fn blob_kind(t: u32) -> Option<StateBlobKind> {
    match t {
        PTM_BLOB_TYPE_PERMANENT => Some(StateBlobKind::Permanent),
        PTM_BLOB_TYPE_VOLATILE => Some(StateBlobKind::Volatile),
        PTM_BLOB_TYPE_SAVESTATE => Some(StateBlobKind::SaveState),
        _ => None,
    }
}

/// The error reply of `cmd`. Most commands answer a bare result; the two
/// whose clients always read a longer response get it, zero-filled (QEMU
/// reads 8 bytes for GET_TPMESTABLISHED and 16 for GET_STATEBLOB whatever
/// the result), so that the stream stays in step.
fn error_reply(cmd: CtrlCommand, code: u32) -> Outcome {
    match cmd {
        CtrlCommand::GetTpmEstablished => Outcome::Reply(
            EstablishedResp {
                result: code,
                bit: 0,
                pad: Pad,
            }
            .to_bytes(),
        ),
        CtrlCommand::GetStateBlob => Outcome::Reply(
            GetStateResp {
                result: code,
                state_flags: 0,
                totlength: 0,
                length: 0,
            }
            .to_bytes(),
        ),
        _ => result(code),
    }
}

/// Which power state a command needs, as swtpm checks it (before the body).
fn needs_running(cmd: CtrlCommand) -> Option<bool> {
    use CtrlCommand::*;
    match cmd {
        GetTpmEstablished | HashStart | HashData | HashEnd | CancelTpmCmd | StoreVolatile
        | ResetTpmEstablished | GetStateBlob => Some(true),
        SetStateBlob => Some(false),
        _ => None,
    }
}

/// Handle one control message; may read a payload that follows it.
pub(crate) fn handle(st: &SwtpmState, msg: CtrlMessage, stream: &mut Stream) -> Outcome {
    let Some(code) = msg.code else {
        return result(rc::TPM_BAD_PARAMETER);
    };
    let Some(cmd) = CtrlCommand::from_code(code) else {
        log::warn!("ctrl: unknown command {code:#x}");
        return result(rc::TPM_BAD_ORDINAL);
    };
    let body = msg.body;
    if let Some(want) = needs_running(cmd) {
        // CANCEL_TPM_CMD must not wait for the TPM thread: it is meant for the
        // command that keeps it busy.
        let running = if cmd == CtrlCommand::CancelTpmCmd {
            st.tpm.is_running()
        } else {
            is_running(st)
        };
        if running != want {
            // Keep the stream in step: swallow a payload announced by the header.
            if drain_payload(cmd, &body, stream).is_err() {
                return Outcome::Close;
            }
            return error_reply(cmd, rc::TPM_BAD_ORDINAL);
        }
    }
    if !cmd.request_body().accepts(body.len()) {
        return error_reply(cmd, rc::TPM_BAD_PARAMETER);
    }
    let tpm = &st.tpm;
    match cmd {
        CtrlCommand::GetCapability => Outcome::Reply(CapabilityResp { caps: VTPM_CAPS }.to_bytes()),
        CtrlCommand::Init => {
            let flags = InitReq::decode(&body).map_or(0, |r| r.init_flags);
            *lock(&st.blob_cache) = None;
            let delete_volatile = flags & PTM_INIT_FLAG_DELETE_VOLATILE != 0;
            result(code_of(tpm.call_dev(move |d| d.init(delete_volatile))))
        }
        CtrlCommand::Shutdown => {
            let r = code_of(tpm.call_dev(power_off_if_running));
            Outcome::ReplyThen(ResultResp { result: r }.to_bytes(), After::Terminate)
        }
        CtrlCommand::Stop => {
            *lock(&st.blob_cache) = None;
            result(code_of(tpm.call_dev(power_off_if_running)))
        }
        CtrlCommand::GetTpmEstablished => match tpm.call_dev(|d| d.tpm_established()) {
            Ok(bit) => Outcome::Reply(
                EstablishedResp {
                    result: 0,
                    bit: bit as u8,
                    pad: Pad,
                }
                .to_bytes(),
            ),
            Err(e) => error_reply(cmd, e.code),
        },
        CtrlCommand::SetLocality => {
            let loc = LocalityReq::decode(&body).map_or(u8::MAX, |r| r.loc);
            if !st.locality_ok(loc) {
                return result(rc::TPM_BAD_LOCALITY);
            }
            st.locality.store(loc, Ordering::SeqCst);
            result(rc::TPM_SUCCESS)
        }
        CtrlCommand::ResetTpmEstablished => {
            let loc = LocalityReq::decode(&body).map_or(u8::MAX, |r| r.loc);
            if loc > 4 {
                return result(rc::TPM_BAD_LOCALITY);
            }
            result(code_of(tpm.call_dev(move |d| d.reset_established(loc))))
        }
        CtrlCommand::HashStart => result(code_of(tpm.call_dev(|d| d.hash_start()))),
        CtrlCommand::HashData => hash_data(st, &body, stream),
        CtrlCommand::HashEnd => result(code_of(tpm.call_dev(|d| d.hash_end()))),
        CtrlCommand::CancelTpmCmd => {
            tpm.cancel();
            result(rc::TPM_SUCCESS)
        }
        CtrlCommand::StoreVolatile => result(code_of(tpm.call_dev(|d| d.store_volatile()))),
        CtrlCommand::GetStateBlob => get_state_blob(st, &body),
        CtrlCommand::SetStateBlob => set_state_blob(st, &body, stream),
        CtrlCommand::GetConfig => match tpm.call(|d| d.config_flags()) {
            Some(flags) => Outcome::Reply(ConfigResp { result: 0, flags }.to_bytes()),
            None => result(rc::TPM_FAIL),
        },
        CtrlCommand::SetDataFd => {
            // swtpm: a live data descriptor first (TPM_IOERROR), then the cmsg check.
            if st.datafd_active.load(Ordering::SeqCst) {
                return result(rc::TPM_IOERROR);
            }
            let Some(fd) = msg.fd else {
                return result(rc::TPM_BAD_PARAMETER);
            };
            if st.datafd_active.swap(true, Ordering::SeqCst) {
                return result(rc::TPM_IOERROR);
            }
            Outcome::ReplyThen(ResultResp { result: 0 }.to_bytes(), After::DataFd(fd))
        }
        CtrlCommand::SetBufferSize => {
            let wanted = BufferSizeReq::decode(&body).map_or(0, |r| r.buffersize);
            if wanted > 0 {
                if is_running(st) {
                    return result(rc::TPM_BAD_ORDINAL);
                }
                st.buffer_size
                    .store(wanted.clamp(st.min_buffer, st.max_buffer), Ordering::SeqCst);
            }
            Outcome::Reply(
                BufferSizeResp {
                    result: 0,
                    buffersize: st.buffer_size.load(Ordering::SeqCst),
                    minsize: st.min_buffer,
                    maxsize: st.max_buffer,
                }
                .to_bytes(),
            )
        }
        CtrlCommand::GetInfo => get_info(st, &body),
        CtrlCommand::LockStorage => {
            let retries = LockStorageReq::decode(&body).map_or(0, |r| r.retries);
            result(code_of(tpm.call_dev(move |d| d.lock_storage(retries))))
        }
    }
}

/// Whether the TPM is powered on, asked on the TPM thread (so the answer
/// follows every operation queued before it).
fn is_running(st: &SwtpmState) -> bool {
    st.tpm.call(|d| d.is_running()).unwrap_or(false)
}

/// CMD_SHUTDOWN / CMD_STOP: power off if on (one job, so nothing runs in between).
fn power_off_if_running(d: &mut dyn Device) -> Result<(), DeviceError> {
    if d.is_running() {
        d.power_off()
    } else {
        Ok(())
    }
}

/// Hash one chunk of CMD_HASH_DATA on the TPM thread.
fn hash_chunk(st: &SwtpmState, chunk: &[u8]) -> Result<(), DeviceError> {
    let data = chunk.to_vec();
    st.tpm.call_dev(move |d| d.hash_data(&data))
}

/// Read and discard `n` bytes in small pieces (no allocation proportional to `n`).
fn drain(stream: &mut Stream, mut n: u64) -> std::io::Result<()> {
    let mut scratch = [0u8; 4096];
    while n > 0 {
        let want = scratch.len().min(usize::try_from(n).unwrap_or(usize::MAX));
        stream.read_exact(&mut scratch[..want])?;
        n -= want as u64;
    }
    Ok(())
}

/// The payload still to come after a HASH_DATA / SET_STATEBLOB header, if the
/// header arrived (0 for other commands).
fn pending_payload(cmd: CtrlCommand, body: &[u8]) -> u64 {
    let (declared, header) = match cmd {
        CtrlCommand::HashData => (
            HashDataReq::decode(body).map(|h| h.length),
            HashDataReq::SIZE,
        ),
        CtrlCommand::SetStateBlob => (
            SetStateReq::decode(body).map(|h| h.length),
            SetStateReq::SIZE,
        ),
        _ => (None, 0),
    };
    let have = body.len().saturating_sub(header) as u64;
    declared.map_or(0, |d| u64::from(d).saturating_sub(have))
}

fn drain_payload(cmd: CtrlCommand, body: &[u8], stream: &mut Stream) -> std::io::Result<()> {
    drain(stream, pending_payload(cmd, body))
}

/// CMD_HASH_DATA: hash the data in chunks as it arrives.
fn hash_data(st: &SwtpmState, body: &[u8], stream: &mut Stream) -> Outcome {
    let Some(hdr) = HashDataReq::decode(body) else {
        return result(rc::TPM_BAD_PARAMETER);
    };
    let first = body.get(HashDataReq::SIZE..).unwrap_or(&[]);
    if first.len() as u64 > u64::from(hdr.length) {
        return result(rc::TPM_BAD_PARAMETER);
    }
    let mut res = if first.is_empty() {
        Ok(())
    } else {
        hash_chunk(st, first)
    };
    let mut remain = u64::from(hdr.length) - first.len() as u64;
    let mut chunk = vec![0u8; PTM_HDATA_SIZE];
    while remain > 0 {
        let want = chunk
            .len()
            .min(usize::try_from(remain).unwrap_or(usize::MAX));
        if stream.read_exact(&mut chunk[..want]).is_err() {
            return result(rc::TPM_IOERROR);
        }
        remain -= want as u64;
        // After a failure keep reading (to stay in step) but stop hashing.
        if res.is_ok() {
            res = hash_chunk(st, &chunk[..want]);
        }
    }
    result(code_of(res))
}

/// CMD_GET_STATEBLOB: the whole blob from `offset` on, in one response.
fn get_state_blob(st: &SwtpmState, body: &[u8]) -> Outcome {
    let cmd = CtrlCommand::GetStateBlob;
    let Some(req) = GetStateReq::decode(body) else {
        return error_reply(cmd, rc::TPM_BAD_PARAMETER);
    };
    let Some(kind) = blob_kind(req.blob_type) else {
        return error_reply(cmd, rc::TPM_BAD_PARAMETER);
    };
    let mut cache = lock(&st.blob_cache);
    // Offset 0 starts a transfer; later offsets continue the same snapshot.
    let cached = matches!(&*cache, Some((k, _, _)) if *k == kind);
    if req.offset == 0 || !cached {
        // Blobs sealed with a migration key are flagged as encrypted.
        match st.tpm.call_dev(move |d| {
            let sealed = d.config_flags() & PTM_CONFIG_FLAG_MIGRATION_KEY != 0;
            d.get_state_blob(kind).map(|b| (b, sealed))
        }) {
            Ok((b, enc)) => *cache = Some((kind, b, enc)),
            Err(e) => {
                *cache = None;
                return error_reply(cmd, e.code);
            }
        }
    }
    let (blob, sealed) = cache
        .as_ref()
        .map_or((&[][..], false), |(_, b, e)| (b.as_slice(), *e));
    let data = blob.get(req.offset as usize..).unwrap_or(&[]);
    let hdr = GetStateResp {
        result: 0,
        state_flags: if sealed { PTM_STATE_FLAG_ENCRYPTED } else { 0 },
        totlength: data.len() as u32,
        length: data.len() as u32,
    };
    let mut out = Vec::with_capacity(GetStateResp::SIZE + data.len());
    hdr.encode(&mut out);
    out.extend_from_slice(data);
    Outcome::Reply(out)
}

/// CMD_SET_STATEBLOB: collect `length` bytes (part may have come with the
/// header), then hand the whole blob to the device.
fn set_state_blob(st: &SwtpmState, body: &[u8], stream: &mut Stream) -> Outcome {
    let Some(hdr) = SetStateReq::decode(body) else {
        return result(rc::TPM_BAD_PARAMETER);
    };
    let first = body.get(SetStateReq::SIZE..).unwrap_or(&[]);
    if first.len() as u64 > u64::from(hdr.length) {
        return result(rc::TPM_BAD_PARAMETER);
    }
    *lock(&st.blob_cache) = None;
    if hdr.length > MAX_STATE_BLOB {
        return match drain(stream, u64::from(hdr.length) - first.len() as u64) {
            Ok(()) => result(rc::TPM_SIZE),
            Err(_) => Outcome::Close,
        };
    }
    let total = hdr.length as usize;
    // Grow with what actually arrives, so a lying length costs nothing.
    let mut blob = Vec::with_capacity(total.min(64 * 1024));
    blob.extend_from_slice(first);
    let mut chunk = [0u8; 4096];
    while blob.len() < total {
        let want = chunk.len().min(total - blob.len());
        match stream.read(&mut chunk[..want]) {
            Ok(n) if n > 0 => blob.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            _ => return Outcome::Close,
        }
    }
    let Some(kind) = blob_kind(hdr.blob_type) else {
        return result(rc::TPM_BAD_PARAMETER);
    };
    // A blob flagged encrypted needs a migration key. The device opens a
    // sealed blob (which says so itself, flag or not) with its key or
    // refuses it.
    if hdr.state_flags & PTM_STATE_FLAG_ENCRYPTED != 0 {
        let has_key = st
            .tpm
            .call(|d| d.config_flags() & PTM_CONFIG_FLAG_MIGRATION_KEY != 0)
            .unwrap_or(false);
        if !has_key {
            return result(rc::TPM_KEYNOTFOUND);
        }
    }
    result(code_of(
        st.tpm.call_dev(move |d| d.set_state_blob(kind, blob)),
    ))
}

/// CMD_GET_INFO: a slice of the NUL-terminated JSON string.
fn get_info(st: &SwtpmState, body: &[u8]) -> Outcome {
    let Some(req) = InfoReq::decode(body) else {
        return result(rc::TPM_BAD_PARAMETER);
    };
    let flags = req.flags;
    let Some(text) = st.tpm.call(move |d| d.info(flags)) else {
        return result(rc::TPM_FAIL);
    };
    let mut text = text.into_bytes();
    let strlen = text.len();
    if req.offset as usize >= strlen {
        return result(rc::TPM_BAD_PARAMETER);
    }
    text.push(0);
    let data = &text[req.offset as usize..];
    let data = &data[..data.len().min(PTM_GETINFO_SIZE)];
    let mut out = Vec::with_capacity(InfoResp::SIZE + data.len());
    InfoResp {
        result: 0,
        totlength: text.len() as u32,
        length: data.len() as u32,
    }
    .encode(&mut out);
    out.extend_from_slice(data);
    Outcome::Reply(out)
}
