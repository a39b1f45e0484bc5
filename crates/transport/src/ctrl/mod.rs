//! The swtpm control channel: out-of-band commands (power, locality, state
//! blobs, buffer size, descriptor passing) as QEMU and tcti-swtpm send them.
//! This module is the socket carrier (message framing, streamed payloads);
//! what the commands do is in [`handler`], shared with the CUSE ioctls.

pub mod codes;
pub(crate) mod handler;
pub mod messages;

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::endpoint::{bind, Bound, Stream};
use crate::fdpass::recv_with_fd;
use crate::server::ExitReason;
use crate::swtpm_state::{DataFdStarter, SwtpmState};
use crate::wire::Wire;
use codes::{rc, CtrlCommand, PTM_HDATA_SIZE};
use handler::{Handled, Then, SOCKET};
use messages::{HashDataReq, SetStateReq};

/// The first read takes up to this much, like swtpm's `struct input`
/// (code + the largest request, `ptm_hdata`).
const FIRST_READ_MAX: usize = 4 + 4 + PTM_HDATA_SIZE;
/// swtpm gives a client 500 ms to complete a control message.
const MESSAGE_DEADLINE: Duration = Duration::from_millis(500);

/// One control message as received.
#[derive(Debug)]
pub(crate) struct CtrlMessage {
    /// The command code; `None` if fewer than 4 bytes arrived in time.
    pub(crate) code: Option<u32>,
    /// Every byte after the code that arrived with the message.
    pub(crate) body: Vec<u8>,
    /// A descriptor passed with SCM_RIGHTS (CMD_SET_DATAFD).
    pub(crate) fd: Option<OwnedFd>,
}

/// How long a lone first code 1 waits for an idle data connection to show up.
const DETECT_WAIT: Duration = Duration::from_millis(100);

/// With `ctrl_accepts_mssim`, a connection whose first message is a lone code 1
/// is either a swtpm client (CMD_GET_CAPABILITY) or an mssim platform client
/// (TPM_SIGNAL_POWER_ON). tcti-mssim opens its command connection first and
/// sends nothing on it until the platform has answered, while swtpm control
/// clients hold no idle data connection: an idle data connection means mssim.
fn is_mssim_client(st: &SwtpmState) -> bool {
    let until = Instant::now() + DETECT_WAIT;
    loop {
        if st.idle_data_connection() {
            return true;
        }
        if Instant::now() >= until {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Serve one control connection until it closes or the server ends;
/// `start_data` serves the descriptor of a CMD_SET_DATAFD.
pub(crate) fn serve(mut stream: Stream, st: Arc<SwtpmState>, start_data: DataFdStarter) {
    let mut first = true;
    while !st.core.is_stopping() {
        let msg = match read_message(&mut stream) {
            Ok(Some(m)) => m,
            Ok(None) => break,
            Err(e) => {
                log::debug!("ctrl: {e}");
                break;
            }
        };
        log::trace!(
            "ctrl: {:?} ({}), {} more bytes",
            msg.code.and_then(CtrlCommand::from_code),
            msg.code.unwrap_or(0),
            msg.body.len()
        );
        if std::mem::take(&mut first)
            && st.ctrl_accepts_mssim
            && msg.code == Some(CtrlCommand::GetCapability as u32)
            && msg.body.is_empty()
            && stream.is_socket()
            && is_mssim_client(&st)
        {
            log::debug!(
                "ctrl: an mssim platform client; serving the simulator's platform protocol"
            );
            if let Ok(s) = stream.try_clone() {
                crate::mssim::serve_platform_handover(s, st.tpm.clone(), Arc::clone(&st.core));
            }
            return;
        }
        let Some(Handled { reply, then }) = dispatch(&st, msg, &mut stream) else {
            break;
        };
        if let Err(e) = stream.write_all(&reply) {
            log::debug!("ctrl: cannot send response: {e}");
            break;
        }
        match then {
            Then::Terminate => {
                st.core.finish(ExitReason::CtrlShutdown);
                return;
            }
            Then::DataFd(fd) => adopt_data_fd(&st, fd, &start_data),
            Then::Nothing => {}
        }
    }
    if st.terminate_on_ctrl_close && !st.core.is_stopping() {
        st.core.finish(ExitReason::CtrlClosed);
    }
}

fn reply(reply: Vec<u8>) -> Option<Handled> {
    Some(Handled {
        reply,
        then: Then::Nothing,
    })
}

/// Handle one message; `None`: the connection broke while a payload was
/// read, close it without a reply.
fn dispatch(st: &SwtpmState, msg: CtrlMessage, stream: &mut Stream) -> Option<Handled> {
    let Some(code) = msg.code else {
        return reply(handler::result_reply(&SOCKET, rc::TPM_BAD_PARAMETER));
    };
    let Some(cmd) = CtrlCommand::from_code(code) else {
        log::warn!("ctrl: unknown command {code:#x}");
        return reply(handler::result_reply(&SOCKET, rc::TPM_BAD_ORDINAL));
    };
    match cmd {
        CtrlCommand::HashData | CtrlCommand::SetStateBlob => {
            if let Some(r) = handler::refuse(st, &SOCKET, cmd) {
                // Keep the stream in step: swallow a payload announced by the header.
                drain(stream, pending_payload(cmd, &msg.body)).ok()?;
                return reply(r);
            }
            if !cmd.request_body().accepts(msg.body.len()) {
                return reply(handler::result_reply(&SOCKET, rc::TPM_BAD_PARAMETER));
            }
            if cmd == CtrlCommand::HashData {
                hash_data(st, &msg.body, stream)
            } else {
                set_state_blob(st, msg.body, stream)
            }
        }
        _ => Some(handler::handle(st, &SOCKET, cmd, &msg.body, msg.fd)),
    }
}

/// Read and discard `n` bytes in small pieces (no allocation proportional to `n`).
fn drain(stream: &mut Stream, mut n: u64) -> io::Result<()> {
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

/// CMD_HASH_DATA on the socket: the data follows the header in the stream,
/// of any length; it is handed to the handler in `ptm_hdata`-sized chunks
/// as it arrives (after a failure the rest is read but not hashed).
fn hash_data(st: &SwtpmState, body: &[u8], stream: &mut Stream) -> Option<Handled> {
    let bad = || reply(handler::result_reply(&SOCKET, rc::TPM_BAD_PARAMETER));
    let Some(hdr) = HashDataReq::decode(body) else {
        return bad();
    };
    let first = body.get(HashDataReq::SIZE..).unwrap_or(&[]);
    if first.len() as u64 > u64::from(hdr.length) {
        return bad();
    }
    // The power state was checked for the whole message (dispatch): one
    // TPM-thread round trip per chunk.
    let hash = |chunk: &[u8]| handler::hash_chunk(st, chunk);
    let mut res = rc::TPM_SUCCESS;
    for piece in first.chunks(PTM_HDATA_SIZE) {
        if res == rc::TPM_SUCCESS {
            res = hash(piece);
        }
    }
    let mut remain = u64::from(hdr.length) - first.len() as u64;
    let mut chunk = vec![0u8; PTM_HDATA_SIZE];
    while remain > 0 {
        let want = chunk
            .len()
            .min(usize::try_from(remain).unwrap_or(usize::MAX));
        if stream.read_exact(&mut chunk[..want]).is_err() {
            return reply(handler::result_reply(&SOCKET, rc::TPM_IOERROR));
        }
        remain -= want as u64;
        if res == rc::TPM_SUCCESS {
            res = hash(&chunk[..want]);
        }
    }
    reply(handler::result_reply(&SOCKET, res))
}

/// CMD_SET_STATEBLOB on the socket: collect the `length` bytes that follow
/// the header (part may have come with it), then hand the whole request over.
fn set_state_blob(st: &SwtpmState, mut body: Vec<u8>, stream: &mut Stream) -> Option<Handled> {
    let Some(hdr) = SetStateReq::decode(&body) else {
        return reply(handler::result_reply(&SOCKET, rc::TPM_BAD_PARAMETER));
    };
    let first = body.len() - SetStateReq::SIZE;
    if first as u64 > u64::from(hdr.length) {
        return reply(handler::result_reply(&SOCKET, rc::TPM_BAD_PARAMETER));
    }
    if hdr.length > handler::MAX_STATE_BLOB {
        *crate::sync::lock(&st.blob_cache) = None;
        drain(stream, u64::from(hdr.length) - first as u64).ok()?;
        return reply(handler::result_reply(&SOCKET, rc::TPM_SIZE));
    }
    let total = SetStateReq::SIZE + hdr.length as usize;
    // Grow with what actually arrives, so a lying length costs nothing.
    body.reserve(total.min(64 * 1024).saturating_sub(body.len()));
    let mut chunk = [0u8; 4096];
    while body.len() < total {
        let want = chunk.len().min(total - body.len());
        match stream.read(&mut chunk[..want]) {
            Ok(n) if n > 0 => body.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            _ => return None,
        }
    }
    Some(handler::handle(
        st,
        &SOCKET,
        CtrlCommand::SetStateBlob,
        &body,
        None,
    ))
}

/// Turn the descriptor of CMD_SET_DATAFD into a data channel.
fn adopt_data_fd(st: &SwtpmState, fd: OwnedFd, start_data: &DataFdStarter) {
    match bind(crate::endpoint::Endpoint::Fd(fd)) {
        Ok(Bound::Connected(s)) => start_data(s),
        Ok(Bound::Listener(_)) => {
            log::warn!("ctrl: SET_DATAFD passed a listening socket; ignored");
            st.datafd_active
                .store(false, std::sync::atomic::Ordering::SeqCst);
        }
        Err(e) => {
            log::warn!("ctrl: SET_DATAFD: {e}");
            st.datafd_active
                .store(false, std::sync::atomic::Ordering::SeqCst);
        }
    }
}

/// Read one control message the way swtpm does: one receive (which also
/// collects a passed descriptor), then more reads until the command's fixed
/// request part is complete or 500 ms have passed. Bytes that arrived with
/// the message beyond that are kept in `body` (swtpm judges the length of
/// what one write delivered). `Ok(None)`: the client closed the connection.
pub(crate) fn read_message(stream: &mut Stream) -> io::Result<Option<CtrlMessage>> {
    let mut buf = vec![0u8; FIRST_READ_MAX];
    let (mut got, fd) = loop {
        let r = if stream.is_socket() {
            recv_with_fd(stream.as_fd(), &mut buf)
        } else {
            stream.read(&mut buf).map(|n| (n, None))
        };
        match r {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => break r?,
        }
    };
    if got == 0 {
        return Ok(None);
    }
    let deadline = Instant::now() + MESSAGE_DEADLINE;
    loop {
        let needed = match code_of(&buf[..got]) {
            None => 4,
            Some(code) => {
                4 + CtrlCommand::from_code(code).map_or(0, |c| c.request_body().minimum())
            }
        };
        if got >= needed {
            break;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        stream.set_read_timeout(Some(left))?;
        match stream.read(&mut buf[got..needed]) {
            Ok(0) => {
                stream.set_read_timeout(None)?;
                return Ok(None);
            }
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                break
            }
            Err(e) => return Err(e),
        }
    }
    stream.set_read_timeout(None)?;
    buf.truncate(got);
    let code = code_of(&buf);
    let body = if code.is_some() {
        buf.split_off(4)
    } else {
        Vec::new()
    };
    Ok(Some(CtrlMessage { code, body, fd }))
}

fn code_of(b: &[u8]) -> Option<u32> {
    b.get(..4)
        .and_then(|s| s.try_into().ok())
        .map(u32::from_be_bytes)
}
