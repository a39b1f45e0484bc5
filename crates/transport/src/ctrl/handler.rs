//! What each control command does, mapped onto [`Device`](crate::Device)
//! calls, with swtpm's checks and error codes: (command, request bytes) ->
//! (response bytes, what to do after sending them). Both carriers of the
//! control commands use it: the socket control channel (`ctrl::serve`,
//! big-endian messages) and the CUSE device's ioctls (`cuse::ioctl`, host
//! order); a [`Dialect`] says how they differ. Payloads that a carrier
//! streams (the socket's HASH_DATA and SET_STATEBLOB data) are collected by
//! the carrier and handed over here whole or in chunks. The callers run on
//! threads of their own; each device operation is a job on the TPM thread
//! ([`TpmHandle`](crate::TpmHandle)), except cancelling, which must not wait
//! for the command it cancels.

use std::os::fd::OwnedFd;
use std::sync::atomic::Ordering;

use super::codes::{rc, CtrlCommand, *};
use super::messages::*;
use crate::device::{power_off_if_running, DeviceError, StateBlobKind};
use crate::swtpm_state::SwtpmState;
use crate::sync::lock;
use crate::wire::{Endian, Pad, Wire};

/// Largest state blob CMD_SET_STATEBLOB accepts; bigger ones are drained and refused.
pub const MAX_STATE_BLOB: u32 = 16 * 1024 * 1024;

/// How one carrier of the control commands encodes and limits them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Dialect {
    /// Byte order of requests and responses.
    pub(crate) order: Endian,
    /// What GET_CAPABILITY answers.
    pub(crate) caps: u64,
    /// Largest part of a state blob one GET_STATEBLOB response carries, with
    /// `totlength` the whole blob's length; `None`: everything from the
    /// offset on, `totlength` being that length.
    pub(crate) blob_chunk: Option<usize>,
}

/// The socket control channel.
pub(crate) const SOCKET: Dialect = Dialect {
    order: Endian::Big,
    caps: VTPM_CAPS,
    blob_chunk: None,
};

/// The result of handling one request.
pub(crate) struct Handled {
    /// The response bytes.
    pub(crate) reply: Vec<u8>,
    /// What to do once they are sent.
    pub(crate) then: Then,
}

/// Work done after the reply was sent.
pub(crate) enum Then {
    /// Nothing.
    Nothing,
    /// CMD_SHUTDOWN: end the server.
    Terminate,
    /// CMD_SET_DATAFD: serve this descriptor as the data channel.
    DataFd(OwnedFd),
}

impl Handled {
    fn reply(reply: Vec<u8>) -> Handled {
        Handled {
            reply,
            then: Then::Nothing,
        }
    }
}

/// A response holding only `code` (`ptm_res`).
pub(crate) fn result_reply(d: &Dialect, code: u32) -> Vec<u8> {
    ResultResp { result: code }.to_bytes_in(d.order)
}

fn result(d: &Dialect, code: u32) -> Handled {
    Handled::reply(result_reply(d, code))
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
fn error_reply(d: &Dialect, cmd: CtrlCommand, code: u32) -> Vec<u8> {
    match cmd {
        CtrlCommand::GetTpmEstablished => EstablishedResp {
            result: code,
            bit: 0,
            pad: Pad,
        }
        .to_bytes_in(d.order),
        CtrlCommand::GetStateBlob => GetStateResp {
            result: code,
            state_flags: 0,
            totlength: 0,
            length: 0,
        }
        .to_bytes_in(d.order),
        _ => result_reply(d, code),
    }
}

fn error(d: &Dialect, cmd: CtrlCommand, code: u32) -> Handled {
    Handled::reply(error_reply(d, cmd, code))
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

/// The error reply when the TPM's power state does not allow `cmd` (checked
/// before the request body, as swtpm does); `None` when it may go ahead.
/// Carriers that stream a payload ask this first, to drain it when refused.
pub(crate) fn refuse(st: &SwtpmState, d: &Dialect, cmd: CtrlCommand) -> Option<Vec<u8>> {
    let want = needs_running(cmd)?;
    // CANCEL_TPM_CMD must not wait for the TPM thread: it is meant for the
    // command that keeps it busy.
    let running = if cmd == CtrlCommand::CancelTpmCmd {
        st.tpm.is_running()
    } else {
        is_running(st)
    };
    (running != want).then(|| error_reply(d, cmd, rc::TPM_BAD_ORDINAL))
}

/// Handle one request: `body` is everything after the command code (for
/// HASH_DATA and SET_STATEBLOB the header and all of its data), `fd` a
/// descriptor passed with it.
pub(crate) fn handle(
    st: &SwtpmState,
    d: &Dialect,
    cmd: CtrlCommand,
    body: &[u8],
    fd: Option<OwnedFd>,
) -> Handled {
    if let Some(r) = refuse(st, d, cmd) {
        return Handled::reply(r);
    }
    if !cmd.request_body().accepts(body.len()) {
        return error(d, cmd, rc::TPM_BAD_PARAMETER);
    }
    let order = d.order;
    let tpm = &st.tpm;
    match cmd {
        CtrlCommand::GetCapability => {
            Handled::reply(CapabilityResp { caps: d.caps }.to_bytes_in(order))
        }
        CtrlCommand::Init => {
            let flags = InitReq::decode_in(body, order).map_or(0, |r| r.init_flags);
            *lock(&st.blob_cache) = None;
            let delete_volatile = flags & PTM_INIT_FLAG_DELETE_VOLATILE != 0;
            result(d, code_of(tpm.call_dev(move |d| d.init(delete_volatile))))
        }
        CtrlCommand::Shutdown => {
            let r = code_of(tpm.call_dev(power_off_if_running));
            Handled {
                reply: result_reply(d, r),
                then: Then::Terminate,
            }
        }
        CtrlCommand::Stop => {
            *lock(&st.blob_cache) = None;
            result(d, code_of(tpm.call_dev(power_off_if_running)))
        }
        CtrlCommand::GetTpmEstablished => match tpm.call_dev(|d| d.tpm_established()) {
            Ok(bit) => Handled::reply(
                EstablishedResp {
                    result: 0,
                    bit: bit as u8,
                    pad: Pad,
                }
                .to_bytes_in(order),
            ),
            Err(e) => error(d, cmd, e.code),
        },
        CtrlCommand::SetLocality => {
            let loc = LocalityReq::decode_in(body, order).map_or(u8::MAX, |r| r.loc);
            if !st.locality_ok(loc) {
                return result(d, rc::TPM_BAD_LOCALITY);
            }
            st.locality.store(loc, Ordering::SeqCst);
            result(d, rc::TPM_SUCCESS)
        }
        CtrlCommand::ResetTpmEstablished => {
            let loc = LocalityReq::decode_in(body, order).map_or(u8::MAX, |r| r.loc);
            if loc > 4 {
                return result(d, rc::TPM_BAD_LOCALITY);
            }
            result(d, code_of(tpm.call_dev(move |d| d.reset_established(loc))))
        }
        CtrlCommand::HashStart => result(d, code_of(tpm.call_dev(|d| d.hash_start()))),
        CtrlCommand::HashData => hash_data(st, d, body),
        CtrlCommand::HashEnd => result(d, code_of(tpm.call_dev(|d| d.hash_end()))),
        CtrlCommand::CancelTpmCmd => {
            tpm.cancel();
            result(d, rc::TPM_SUCCESS)
        }
        CtrlCommand::StoreVolatile => result(d, code_of(tpm.call_dev(|d| d.store_volatile()))),
        CtrlCommand::GetStateBlob => get_state_blob(st, d, body),
        CtrlCommand::SetStateBlob => set_state_blob(st, d, body),
        CtrlCommand::GetConfig => match tpm.call(|d| d.config_flags()) {
            Some(flags) => Handled::reply(ConfigResp { result: 0, flags }.to_bytes_in(order)),
            None => result(d, rc::TPM_FAIL),
        },
        CtrlCommand::SetDataFd => {
            // swtpm: a live data descriptor first (TPM_IOERROR), then the cmsg check.
            if st.datafd_active.load(Ordering::SeqCst) {
                return result(d, rc::TPM_IOERROR);
            }
            let Some(fd) = fd else {
                return result(d, rc::TPM_BAD_PARAMETER);
            };
            if st.datafd_active.swap(true, Ordering::SeqCst) {
                return result(d, rc::TPM_IOERROR);
            }
            Handled {
                reply: result_reply(d, 0),
                then: Then::DataFd(fd),
            }
        }
        CtrlCommand::SetBufferSize => {
            let wanted = BufferSizeReq::decode_in(body, order).map_or(0, |r| r.buffersize);
            if wanted > 0 {
                if is_running(st) {
                    return result(d, rc::TPM_BAD_ORDINAL);
                }
                st.buffer_size
                    .store(wanted.clamp(st.min_buffer, st.max_buffer), Ordering::SeqCst);
            }
            Handled::reply(
                BufferSizeResp {
                    result: 0,
                    buffersize: st.buffer_size.load(Ordering::SeqCst),
                    minsize: st.min_buffer,
                    maxsize: st.max_buffer,
                }
                .to_bytes_in(order),
            )
        }
        CtrlCommand::GetInfo => get_info(st, d, body),
        CtrlCommand::LockStorage => {
            let retries = LockStorageReq::decode_in(body, order).map_or(0, |r| r.retries);
            result(d, code_of(tpm.call_dev(move |d| d.lock_storage(retries))))
        }
    }
}

/// Whether the TPM is powered on, asked on the TPM thread (so the answer
/// follows every operation queued before it).
fn is_running(st: &SwtpmState) -> bool {
    st.tpm.call(|d| d.is_running()).unwrap_or(false)
}

/// CMD_HASH_DATA: `length` (at most one `ptm_hdata` buffer) and the data.
fn hash_data(st: &SwtpmState, d: &Dialect, body: &[u8]) -> Handled {
    let Some(hdr) = HashDataReq::decode_in(body, d.order) else {
        return result(d, rc::TPM_BAD_PARAMETER);
    };
    // swtpm's ioctl answers TPM_FAIL for more than its buffer holds.
    if hdr.length as usize > PTM_HDATA_SIZE {
        return result(d, rc::TPM_FAIL);
    }
    let Some(data) = body.get(HashDataReq::SIZE..HashDataReq::SIZE + hdr.length as usize) else {
        return result(d, rc::TPM_BAD_PARAMETER);
    };
    result(d, hash_chunk(st, data))
}

/// Hash one chunk of _TPM_Hash_Data on the TPM thread: its result code.
/// The socket's streamed HASH_DATA calls this per chunk once the power state
/// was checked for the whole message (the engine refuses data outside a
/// hash sequence anyway).
pub(crate) fn hash_chunk(st: &SwtpmState, data: &[u8]) -> u32 {
    if data.is_empty() {
        return rc::TPM_SUCCESS;
    }
    let data = data.to_vec();
    code_of(st.tpm.call_dev(move |dev| dev.hash_data(&data)))
}

/// CMD_GET_STATEBLOB: the blob from `offset` on (or the dialect's chunk of it).
fn get_state_blob(st: &SwtpmState, d: &Dialect, body: &[u8]) -> Handled {
    let cmd = CtrlCommand::GetStateBlob;
    let Some(req) = GetStateReq::decode_in(body, d.order) else {
        return error(d, cmd, rc::TPM_BAD_PARAMETER);
    };
    let Some(kind) = blob_kind(req.blob_type) else {
        return error(d, cmd, rc::TPM_BAD_PARAMETER);
    };
    let mut cache = lock(&st.blob_cache);
    // Offset 0 starts a transfer; later offsets continue the same snapshot.
    let cached = matches!(&*cache, Some((k, _, _)) if *k == kind);
    if req.offset == 0 || !cached {
        // Blobs sealed with a migration key are flagged as encrypted.
        match st.tpm.call_dev(move |dev| {
            let sealed = dev.config_flags() & PTM_CONFIG_FLAG_MIGRATION_KEY != 0;
            dev.get_state_blob(kind).map(|b| (b, sealed))
        }) {
            Ok((b, enc)) => *cache = Some((kind, b, enc)),
            Err(e) => {
                *cache = None;
                return error(d, cmd, e.code);
            }
        }
    }
    let (blob, sealed) = cache
        .as_ref()
        .map_or((&[][..], false), |(_, b, e)| (b.as_slice(), *e));
    let rest = blob.get(req.offset as usize..).unwrap_or(&[]);
    let (data, total) = match d.blob_chunk {
        Some(n) => (&rest[..rest.len().min(n)], blob.len()),
        None => (rest, rest.len()),
    };
    let hdr = GetStateResp {
        result: 0,
        state_flags: if sealed { PTM_STATE_FLAG_ENCRYPTED } else { 0 },
        totlength: total as u32,
        length: data.len() as u32,
    };
    let mut out = Vec::with_capacity(GetStateResp::SIZE + data.len());
    hdr.encode_in(&mut out, d.order);
    out.extend_from_slice(data);
    Handled::reply(out)
}

/// CMD_SET_STATEBLOB: the header and all `length` bytes of the blob.
fn set_state_blob(st: &SwtpmState, d: &Dialect, body: &[u8]) -> Handled {
    let Some(hdr) = SetStateReq::decode_in(body, d.order) else {
        return result(d, rc::TPM_BAD_PARAMETER);
    };
    *lock(&st.blob_cache) = None;
    if hdr.length > MAX_STATE_BLOB {
        return result(d, rc::TPM_SIZE);
    }
    let Some(blob) = body.get(SetStateReq::SIZE..SetStateReq::SIZE + hdr.length as usize) else {
        return result(d, rc::TPM_BAD_PARAMETER);
    };
    let Some(kind) = blob_kind(hdr.blob_type) else {
        return result(d, rc::TPM_BAD_PARAMETER);
    };
    // A blob flagged encrypted needs a migration key. The device opens a
    // sealed blob (which says so itself, flag or not) with its key or
    // refuses it.
    if hdr.state_flags & PTM_STATE_FLAG_ENCRYPTED != 0 {
        let has_key = st
            .tpm
            .call(|dev| dev.config_flags() & PTM_CONFIG_FLAG_MIGRATION_KEY != 0)
            .unwrap_or(false);
        if !has_key {
            return result(d, rc::TPM_KEYNOTFOUND);
        }
    }
    let blob = blob.to_vec();
    result(
        d,
        code_of(st.tpm.call_dev(move |d| d.set_state_blob(kind, blob))),
    )
}

/// CMD_GET_INFO: a slice of the NUL-terminated JSON string.
fn get_info(st: &SwtpmState, d: &Dialect, body: &[u8]) -> Handled {
    let Some(req) = InfoReq::decode_in(body, d.order) else {
        return result(d, rc::TPM_BAD_PARAMETER);
    };
    let flags = req.flags;
    let Some(text) = st.tpm.call(move |d| d.info(flags)) else {
        return result(d, rc::TPM_FAIL);
    };
    let mut text = text.into_bytes();
    let strlen = text.len();
    if req.offset as usize >= strlen {
        return result(d, rc::TPM_BAD_PARAMETER);
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
    .encode_in(&mut out, d.order);
    out.extend_from_slice(data);
    Handled::reply(out)
}
