//! The swtpm control channel: out-of-band commands (power, locality, state
//! blobs, buffer size, descriptor passing) as QEMU and tcti-swtpm send them.

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
use codes::{CtrlCommand, PTM_HDATA_SIZE};
use handler::{After, Outcome};

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
        let (reply, after) = match handler::handle(&st, msg, &mut stream) {
            Outcome::Reply(r) => (r, None),
            Outcome::ReplyThen(r, a) => (r, Some(a)),
            Outcome::Close => break,
        };
        if let Err(e) = stream.write_all(&reply) {
            log::debug!("ctrl: cannot send response: {e}");
            break;
        }
        match after {
            Some(After::Terminate) => {
                st.core.finish(ExitReason::CtrlShutdown);
                return;
            }
            Some(After::DataFd(fd)) => adopt_data_fd(&st, fd, &start_data),
            None => {}
        }
    }
    if st.terminate_on_ctrl_close && !st.core.is_stopping() {
        st.core.finish(ExitReason::CtrlClosed);
    }
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
