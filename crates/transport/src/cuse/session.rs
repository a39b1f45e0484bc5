//! The request loop of the CUSE device: one request read from /dev/cuse at
//! a time, answered by one write. A TPM command written to the device is
//! executed on the TPM thread as a job, without waiting (so that a
//! PTM_CANCEL_TPM_CMD ioctl can still arrive); the next read gets its
//! response, and a read that comes first is parked and answered by the job
//! when it ends. The ioctls go to [`ioctl`](super::ioctl). POLL is not
//! implemented: the kernel then reports the device always ready and a
//! read waits for the response, as with swtpm's device.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::sync::{Arc, Mutex};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use super::ioctl::{self, Transfer};
use super::proto::{self, op, Request};
use crate::ctrl::handler::{self, Then};
use crate::data_channel;
use crate::frame::{tpm_error_response, TPM_RC_COMMAND_SIZE};
use crate::server::ExitReason;
use crate::swtpm_state::SwtpmState;
use crate::sync::lock;
use crate::wire::Wire;

/// Largest READ and WRITE the device takes at once (the kernel splits bigger ones).
pub(crate) const MAX_IO: u32 = 64 * 1024;
/// The read buffer: a WRITE request with `MAX_IO` data and its headers, or
/// an ioctl with the largest `ptm_*` structure, fit (the kernel refuses a
/// read whose buffer is smaller than a WRITE could need).
const READ_BUFFER: usize = MAX_IO as usize + 4096;

/// The device as CUSE_INIT announces it.
#[derive(Debug, Clone)]
pub(crate) struct DeviceInfo {
    /// The name under /dev.
    pub(crate) name: String,
    /// Major number; 0: the kernel picks one.
    pub(crate) major: u32,
    /// Minor number.
    pub(crate) minor: u32,
}

/// What the loop thread and the TPM thread's command jobs share.
pub(crate) struct Shared {
    /// /dev/cuse (or, in tests, one end of a packet socket pair).
    dev: File,
    pub(crate) st: Arc<SwtpmState>,
    io: Mutex<CommandIo>,
}

/// The TPM command in flight and its response.
#[derive(Default)]
struct CommandIo {
    /// A command is executing on the TPM thread.
    busy: bool,
    response: Vec<u8>,
    /// How much of `response` has been read.
    read_at: usize,
    /// A READ waiting for the command in flight: (unique, size).
    parked: Option<(u64, usize)>,
}

impl Shared {
    /// Send one reply; a request the kernel gave up on (interrupted) answers ENOENT.
    fn send(&self, msg: &[u8]) {
        match (&self.dev).write(msg) {
            Ok(n) if n == msg.len() => {}
            Ok(n) => log::warn!("cuse: reply cut short ({n} of {} bytes)", msg.len()),
            Err(e) if e.raw_os_error() == Some(Errno::ENOENT as i32) => {
                log::debug!("cuse: reply to a request that was interrupted")
            }
            Err(e) => log::warn!("cuse: cannot send reply: {e}"),
        }
    }

    /// The next piece of the response, up to `size` bytes (read on).
    fn take_response(io: &mut CommandIo, size: usize) -> &[u8] {
        let start = io.read_at.min(io.response.len());
        let n = (io.response.len() - start).min(size);
        io.read_at = start + n;
        &io.response[start..start + n]
    }

    /// The command job's end (on the TPM thread): keep the response and
    /// answer a parked READ.
    fn command_done(&self, response: Vec<u8>) {
        let mut io = lock(&self.io);
        io.busy = false;
        io.response = response;
        io.read_at = 0;
        if let Some((unique, size)) = io.parked.take() {
            let data = Self::take_response(&mut io, size);
            self.send(&proto::reply(unique, &[data]));
        }
    }
}

/// Whether the loop goes on.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Flow {
    /// Read the next request.
    Continue,
    /// The device is gone or the server ends.
    End,
}

/// The loop's own state (touched by the loop thread only).
pub(crate) struct Session {
    shared: Arc<Shared>,
    info: DeviceInfo,
    /// CUSE_INIT was answered.
    pub(crate) initialised: bool,
    /// The device is open (swtpm allows one opener at a time).
    open: bool,
    transfer: Transfer,
    buf: Vec<u8>,
}

impl Session {
    /// A session on `dev`, for the TPM of `st`.
    pub(crate) fn new(dev: File, st: Arc<SwtpmState>, info: DeviceInfo) -> Session {
        Session {
            shared: Arc::new(Shared {
                dev,
                st,
                io: Mutex::new(CommandIo::default()),
            }),
            info,
            initialised: false,
            open: false,
            transfer: Transfer::Commands,
            buf: vec![0u8; READ_BUFFER],
        }
    }

    fn st(&self) -> &SwtpmState {
        &self.shared.st
    }

    /// Serve requests until the device goes away or the server ends.
    pub(crate) fn run(mut self) {
        while self.step() == Flow::Continue {}
        log::debug!("cuse: request loop ends");
    }

    /// Wait for one request (or the server's end) and handle it.
    pub(crate) fn step(&mut self) -> Flow {
        let core = Arc::clone(&self.shared.st.core);
        if core.is_stopping() {
            return Flow::End;
        }
        let mut fds = [
            PollFd::new(self.shared.dev.as_fd(), PollFlags::POLLIN),
            PollFd::new(core.wake_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(Errno::EINTR) => return Flow::Continue,
            Err(e) => {
                log::error!("cuse: poll failed: {e}");
                return Flow::End;
            }
        }
        if core.is_stopping() {
            return Flow::End;
        }
        let n = match (&self.shared.dev).read(&mut self.buf) {
            Ok(0) => return Flow::End,
            Ok(n) => n,
            Err(e) => {
                return match e.raw_os_error().map(Errno::from_raw) {
                    // Interrupted or withdrawn requests, or nothing there yet.
                    Some(Errno::EINTR | Errno::EAGAIN | Errno::ENOENT) => Flow::Continue,
                    Some(Errno::ENODEV) => Flow::End,
                    _ => {
                        log::error!("cuse: cannot read a request: {e}");
                        Flow::End
                    }
                };
            }
        };
        // The buffer is lent out while its request is handled (no copy).
        let buf = std::mem::take(&mut self.buf);
        let flow = self.handle(&buf[..n]);
        self.buf = buf;
        flow
    }

    /// Handle one request message.
    pub(crate) fn handle(&mut self, msg: &[u8]) -> Flow {
        let req = match Request::parse(msg) {
            None => {
                log::warn!(
                    "cuse: a request of {} bytes, shorter than its header",
                    msg.len()
                );
                return Flow::Continue;
            }
            Some(Err(hdr)) => {
                log::warn!(
                    "cuse: request length {} but {} bytes read",
                    hdr.len,
                    msg.len()
                );
                self.error(hdr.unique, Errno::EINVAL);
                return Flow::Continue;
            }
            Some(Ok(r)) => r,
        };
        let unique = req.hdr.unique;
        if !self.initialised && req.hdr.opcode != op::CUSE_INIT {
            self.error(unique, Errno::EIO);
            return Flow::Continue;
        }
        match req.hdr.opcode {
            op::CUSE_INIT => return self.init(&req),
            op::OPEN => self.open(&req),
            op::RELEASE => {
                self.open = false;
                self.transfer = Transfer::Commands;
                self.send(&proto::reply(unique, &[]));
            }
            op::FLUSH => self.send(&proto::reply(unique, &[])),
            op::READ => self.read(&req),
            op::WRITE => self.write(&req),
            op::IOCTL => return self.ioctl(&req),
            op::INTERRUPT => self.interrupt(&req),
            op::DESTROY => {
                self.send(&proto::reply(unique, &[]));
                return Flow::End;
            }
            // Without POLL the kernel treats the device as always ready.
            op::POLL => self.error(unique, Errno::ENOSYS),
            other => {
                log::debug!("cuse: opcode {other} not implemented");
                self.error(unique, Errno::ENOSYS);
            }
        }
        Flow::Continue
    }

    fn send(&self, msg: &[u8]) {
        self.shared.send(msg);
    }

    fn error(&self, unique: u64, errno: Errno) {
        self.send(&proto::error(unique, errno));
    }

    fn init(&mut self, req: &Request) -> Flow {
        let unique = req.hdr.unique;
        let Some(arg) = req.arg::<proto::CuseInitIn>() else {
            self.error(unique, Errno::EINVAL);
            return Flow::Continue;
        };
        if self.initialised {
            self.error(unique, Errno::EINVAL);
            return Flow::Continue;
        }
        if arg.major != proto::FUSE_MAJOR || arg.minor < proto::FUSE_MINOR_MIN {
            log::error!(
                "cuse: the kernel speaks FUSE {}.{}, vtpm needs 7.{} or later",
                arg.major,
                arg.minor,
                proto::FUSE_MINOR_MIN
            );
            self.error(unique, Errno::EPROTO);
            return Flow::End;
        }
        let out = proto::CuseInitOut {
            major: proto::FUSE_MAJOR,
            minor: arg.minor.min(proto::FUSE_MINOR),
            max_read: MAX_IO,
            max_write: MAX_IO,
            dev_major: self.info.major,
            dev_minor: self.info.minor,
            ..Default::default()
        };
        let devinfo = format!("DEVNAME={}\0", self.info.name);
        self.send(&proto::reply(
            unique,
            &[&out.to_bytes_in(proto::ORDER), devinfo.as_bytes()],
        ));
        self.initialised = true;
        log::info!("cuse: device /dev/{} announced", self.info.name);
        Flow::Continue
    }

    fn open(&mut self, req: &Request) {
        let unique = req.hdr.unique;
        if req.arg::<proto::OpenIn>().is_none() {
            self.error(unique, Errno::EINVAL);
            return;
        }
        if self.open {
            self.error(unique, Errno::EBUSY);
            return;
        }
        self.open = true;
        self.transfer = Transfer::Commands;
        self.send(&proto::reply(
            unique,
            &[&proto::OpenOut::default().to_bytes_in(proto::ORDER)],
        ));
    }

    fn read(&mut self, req: &Request) {
        let unique = req.hdr.unique;
        let Some(arg) = req.arg::<proto::ReadIn>() else {
            self.error(unique, Errno::EINVAL);
            return;
        };
        let size = arg.size as usize;
        match &mut self.transfer {
            Transfer::Commands => {
                let mut io = lock(&self.shared.io);
                if io.busy {
                    // Answered by the command's job (swtpm's read waits too,
                    // even on a non-blocking descriptor).
                    if io.parked.is_some() {
                        drop(io);
                        self.error(unique, Errno::EBUSY);
                    } else {
                        io.parked = Some((unique, size));
                    }
                    return;
                }
                let reply = proto::reply(unique, &[Shared::take_response(&mut io, size)]);
                drop(io);
                self.send(&reply);
            }
            Transfer::GetBlob { offset } => {
                let cache = lock(&self.shared.st.blob_cache);
                let Some((_, blob, _)) = cache.as_ref() else {
                    drop(cache);
                    self.transfer = Transfer::Commands;
                    self.error(unique, Errno::EIO);
                    return;
                };
                let rest = blob.get(*offset..).unwrap_or(&[]);
                let n = rest.len().min(size);
                let msg = proto::reply(unique, &[&rest[..n]]);
                // Fewer bytes than asked for end the transfer.
                let done = rest.len() < size;
                *offset += n;
                drop(cache);
                if done {
                    self.transfer = Transfer::Commands;
                }
                self.send(&msg);
            }
            Transfer::SetBlob { .. } => {
                self.transfer = Transfer::Commands;
                self.error(unique, Errno::EIO);
            }
        }
    }

    fn write(&mut self, req: &Request) {
        let unique = req.hdr.unique;
        let Some(arg) = req.arg::<proto::WriteIn>() else {
            self.error(unique, Errno::EINVAL);
            return;
        };
        let Some(data) = req.tail::<proto::WriteIn>().get(..arg.size as usize) else {
            self.error(unique, Errno::EINVAL);
            return;
        };
        let written = proto::WriteOut {
            size: arg.size,
            padding: 0,
        }
        .to_bytes_in(proto::ORDER);
        match &mut self.transfer {
            Transfer::Commands => self.command(unique, data, &written),
            Transfer::GetBlob { .. } => {
                self.transfer = Transfer::Commands;
                self.error(unique, Errno::EIO);
            }
            Transfer::SetBlob { data: blob, .. } => {
                if blob.len() + data.len() > handler::MAX_STATE_BLOB as usize {
                    self.transfer = Transfer::Commands;
                    self.error(unique, Errno::EIO);
                } else {
                    blob.extend_from_slice(data);
                    self.send(&proto::reply(unique, &[&written]));
                }
            }
        }
    }

    /// A TPM command: one write is one whole command, as in swtpm.
    fn command(&self, unique: u64, cmd: &[u8], written: &[u8]) {
        let mut io = lock(&self.shared.io);
        if io.busy {
            drop(io);
            self.error(unique, Errno::EBUSY);
            return;
        }
        io.response.clear();
        io.read_at = 0;
        if cmd.len() > self.st().max_command() {
            log::debug!(
                "cuse: command of {} bytes exceeds the buffer size",
                cmd.len()
            );
            io.response = tpm_error_response(TPM_RC_COMMAND_SIZE);
            drop(io);
            self.send(&proto::reply(unique, &[written]));
            return;
        }
        io.busy = true;
        let shared = Arc::clone(&self.shared);
        let cmd = cmd.to_vec();
        let posted = self.st().tpm.post(move |dev| {
            let resp = data_channel::process(&shared.st, dev, &cmd);
            shared.command_done(resp);
        });
        if !posted {
            io.busy = false;
            drop(io);
            self.error(unique, Errno::EIO);
            return;
        }
        drop(io);
        self.send(&proto::reply(unique, &[written]));
    }

    fn ioctl(&mut self, req: &Request) -> Flow {
        let unique = req.hdr.unique;
        let Some(arg) = req.arg::<proto::IoctlIn>() else {
            self.error(unique, Errno::EINVAL);
            return Flow::Continue;
        };
        let Some(input) = req.tail::<proto::IoctlIn>().get(..arg.in_size as usize) else {
            self.error(unique, Errno::EINVAL);
            return Flow::Continue;
        };
        // No lock is held here: the handler waits for the TPM thread, whose
        // command job may be about to answer a parked read.
        let Some(h) = ioctl::ioctl(&self.shared.st, &mut self.transfer, arg.cmd, input) else {
            log::debug!("cuse: unknown ioctl {:#x}", arg.cmd);
            self.error(unique, Errno::EINVAL);
            return Flow::Continue;
        };
        let out = &h.reply[..h.reply.len().min(arg.out_size as usize)];
        let hdr = proto::IoctlOut::default().to_bytes_in(proto::ORDER);
        self.send(&proto::reply(unique, &[&hdr, out]));
        match h.then {
            Then::Terminate => {
                log::info!("cuse: PTM_SHUTDOWN received");
                self.shared.st.core.finish(ExitReason::CtrlShutdown);
                Flow::End
            }
            Then::DataFd(_) | Then::Nothing => Flow::Continue,
        }
    }

    fn interrupt(&self, req: &Request) {
        let Some(arg) = req.arg::<proto::InterruptIn>() else {
            return;
        };
        let mut io = lock(&self.shared.io);
        if matches!(io.parked, Some((u, _)) if u == arg.unique) {
            io.parked = None;
            drop(io);
            self.error(arg.unique, Errno::EINTR);
        }
    }
}
