//! The TPM thread's loop: the one place the [`Device`] is used.
//!
//! The thread that owns the engine waits in one `epoll_wait` over a wake-up
//! eventfd, the data-channel listeners and the data connections. A data
//! command is read, executed and answered on this thread, so a command costs
//! one thread wake-up (the TPM thread's, when the command arrives) and no
//! hand-off between threads. Everything else that needs the engine — control
//! channel messages, mssim platform signals, the binary's own start-up and
//! shutdown — is queued as a job by a [`TpmHandle`] and reaches the loop
//! through the eventfd. When nothing arrives the thread sleeps in
//! `epoll_wait` without a timeout: an idle TPM costs no CPU at all. (epoll
//! rather than `poll`: the descriptors are registered once, not on every
//! command.)
//!
//! The connections served here never block the thread: reads and writes are
//! non-blocking (`MSG_DONTWAIT`), a partial command waits in the connection's
//! buffer for the rest, and a client that does not read its responses only
//! stops its own connection (its input is not read until its output drains).

use std::collections::VecDeque;
use std::io::{self, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use nix::poll::PollTimeout;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};
use nix::sys::eventfd::{EfdFlags, EventFd};

use crate::device::{Canceller, Device, DeviceError};
use crate::endpoint::{Listener, Stream};
use crate::error::Error;
use crate::sync::lock;

/// TPM_FAIL, what a device operation answers when the TPM thread has stopped.
const TPM_FAIL: u32 = 9;
/// Bytes read from a connection at a time.
const READ_CHUNK: usize = 16 * 1024;
/// Commands already buffered are not executed while more than this much of
/// their responses waits to be sent (a client that pipelines commands
/// without reading answers cannot make the output grow without bound).
const OUTPUT_HIGH: usize = 64 * 1024;
/// How long a listener rests after `accept` failed (EMFILE and friends).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// Connections accepted per listener and wake-up, so that a flood of
/// connections cannot starve the commands of the connections already open.
const ACCEPT_BURST: usize = 16;
/// The epoll token of the wake-up eventfd; a source's token is its slot + 1.
const WAKE_TOKEN: u64 = 0;
/// Events taken per `epoll_wait`.
const EVENTS: usize = 64;

type Job = Box<dyn FnOnce(&mut dyn Device) + Send>;

/// What other threads send to the loop.
enum Msg {
    /// Run this with the device.
    Job(Job),
    /// Serve this listener or connection on the TPM thread.
    Add(Source),
    /// Run this last (if given), then end the loop.
    Stop(Option<Job>),
}

struct Queue {
    msgs: VecDeque<Msg>,
    /// The loop has ended (or will, after a `Stop`): nothing more is taken.
    closed: bool,
}

/// What the loop and its handles share.
struct Shared {
    queue: Mutex<Queue>,
    /// Readable while messages wait or a server asked for its sources to be dropped.
    wake: EventFd,
    /// `Device::is_running` as of the last job or command, for callers that
    /// must not wait for the TPM thread (CMD_CANCEL_TPM_CMD during a command).
    running: AtomicBool,
    canceller: OnceLock<Canceller>,
    /// The thread running the loop, so that a call from that very thread
    /// fails instead of waiting for itself forever.
    thread: OnceLock<ThreadId>,
}

impl Shared {
    fn post(&self, msg: Msg) -> bool {
        {
            let mut q = lock(&self.queue);
            if q.closed {
                return false;
            }
            if matches!(msg, Msg::Stop(_)) {
                q.closed = true;
            }
            q.msgs.push_back(msg);
        }
        self.wake();
        true
    }

    fn wake(&self) {
        // Only fails if the counter would overflow, i.e. it is readable anyway.
        let _ = self.wake.write(1);
    }
}

/// Create the loop and the first handle on it. Run the loop on the thread
/// that owns the device ([`TpmLoop::run`]); give handles to the servers.
pub fn tpm_loop() -> Result<(TpmLoop, TpmHandle), Error> {
    let wake =
        EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK).map_err(|e| {
            Error::Io {
                context: "creating the TPM thread's eventfd",
                source: e.into(),
            }
        })?;
    let shared = Arc::new(Shared {
        queue: Mutex::new(Queue {
            msgs: VecDeque::new(),
            closed: false,
        }),
        wake,
        running: AtomicBool::new(false),
        canceller: OnceLock::new(),
        thread: OnceLock::new(),
    });
    let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).map_err(|e| Error::Io {
        context: "creating the TPM thread's epoll instance",
        source: e.into(),
    })?;
    epoll
        .add(
            &shared.wake,
            EpollEvent::new(EpollFlags::EPOLLIN, WAKE_TOKEN),
        )
        .map_err(|e| Error::Io {
            context: "watching the TPM thread's eventfd",
            source: e.into(),
        })?;
    let handle = TpmHandle {
        life: Arc::new(Life {
            shared: Arc::clone(&shared),
        }),
    };
    Ok((TpmLoop { shared, epoll }, handle))
}

/// Start a thread named `tpm` that owns `dev` and runs the loop until the
/// last handle is dropped or [`TpmHandle::finish`] is called. For devices
/// that may be created on one thread and used on another (tests, mocks); the
/// `vtpm` binary creates its engine on the TPM thread and calls
/// [`tpm_loop`] and [`TpmLoop::run`] itself.
pub fn spawn_tpm<D: Device + Send + 'static>(mut dev: D) -> Result<TpmHandle, Error> {
    let (tpm_loop, handle) = tpm_loop()?;
    std::thread::Builder::new()
        .name("tpm".into())
        .spawn(move || tpm_loop.run(&mut dev))
        .map_err(|source| Error::Io {
            context: "spawning the TPM thread",
            source,
        })?;
    Ok(handle)
}

/// Ends the loop when the last [`TpmHandle`] is dropped.
struct Life {
    shared: Arc<Shared>,
}

impl Drop for Life {
    fn drop(&mut self) {
        self.shared.post(Msg::Stop(None));
    }
}

/// A handle on the TPM thread: runs jobs there and waits for their result.
/// Cheap to clone; the loop ends when the last clone is dropped.
#[derive(Clone)]
pub struct TpmHandle {
    life: Arc<Life>,
}

impl std::fmt::Debug for TpmHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TpmHandle").finish_non_exhaustive()
    }
}

/// The error of a device operation whose TPM thread is gone.
fn gone() -> DeviceError {
    DeviceError {
        code: TPM_FAIL,
        msg: "the TPM thread has stopped".into(),
    }
}

impl TpmHandle {
    fn shared(&self) -> &Shared {
        &self.life.shared
    }

    /// Run `f` with the device on the TPM thread and wait for its result;
    /// `None` if the loop has ended (or ends before running it), if `f`
    /// panicked, or if called from the TPM thread itself.
    pub fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut dyn Device) -> R + Send + 'static,
    ) -> Option<R> {
        self.send(f, false)
    }

    /// [`TpmHandle::call`] for device operations: a TPM thread that is gone
    /// answers TPM_FAIL.
    pub fn call_dev<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut dyn Device) -> Result<R, DeviceError> + Send + 'static,
    ) -> Result<R, DeviceError> {
        self.call(f).unwrap_or_else(|| Err(gone()))
    }

    /// Run `f` with the device on the TPM thread without waiting for it
    /// (the CUSE device's commands, whose answer is fetched by a later
    /// read). False if the loop has ended.
    pub fn post(&self, f: impl FnOnce(&mut dyn Device) + Send + 'static) -> bool {
        self.shared().post(Msg::Job(Box::new(f)))
    }

    /// Run `f` as the last job, then end the loop (later calls answer
    /// `None`). `None` if the loop had already ended.
    pub fn finish<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut dyn Device) -> R + Send + 'static,
    ) -> Option<R> {
        self.send(f, true)
    }

    fn send<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut dyn Device) -> R + Send + 'static,
        last: bool,
    ) -> Option<R> {
        if self.shared().thread.get() == Some(&std::thread::current().id()) {
            log::error!("a TPM job was posted from the TPM thread itself; refused");
            return None;
        }
        let (tx, rx) = crossbeam_channel::bounded(1);
        let job: Job = Box::new(move |dev| {
            let _ = tx.send(f(dev));
        });
        let msg = if last {
            Msg::Stop(Some(job))
        } else {
            Msg::Job(job)
        };
        if !self.shared().post(msg) {
            return None;
        }
        rx.recv().ok()
    }

    /// Whether the TPM was powered on after the last job or command the TPM
    /// thread finished. Never waits, so it may be one operation behind; use
    /// `call(|d| d.is_running())` where that matters.
    pub fn is_running(&self) -> bool {
        self.shared().running.load(Ordering::SeqCst)
    }

    /// Ask the command in progress to stop early (CMD_CANCEL_TPM_CMD): runs
    /// the device's [`Canceller`] on the calling thread, since a job would
    /// only run after the command it should cancel.
    pub fn cancel(&self) {
        if let Some(c) = self.shared().canceller.get() {
            c();
        }
    }

    /// Serve `src` on the TPM thread. False if the loop has ended.
    pub(crate) fn add(&self, src: Source) -> bool {
        self.shared().post(Msg::Add(src))
    }

    /// A waker that does not keep the loop alive.
    pub(crate) fn waker(&self) -> Waker {
        Waker {
            shared: Arc::clone(&self.life.shared),
        }
    }
}

/// Wakes the loop so that it drops the sources of servers that have ended.
#[derive(Clone)]
pub(crate) struct Waker {
    shared: Arc<Shared>,
}

impl Waker {
    pub(crate) fn wake(&self) {
        self.shared.wake();
    }
}

impl std::fmt::Debug for Waker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Waker").finish_non_exhaustive()
    }
}

/// What a connection served on the TPM thread does with its bytes: the
/// protocol (swtpm data channel, mssim command port), over buffered input.
pub(crate) trait Session: Send {
    /// Handle the start of `input` (all that has arrived and is not used
    /// yet): use one whole request if it is there, writing its answer to
    /// `out`. `eof`: the client will send nothing more.
    fn on_input(
        &mut self,
        input: &[u8],
        eof: bool,
        dev: &mut dyn Device,
        out: &mut Vec<u8>,
    ) -> Progress;

    /// The connection is closed (by either side, or the server ended).
    fn on_close(&mut self) {}
}

/// What [`Session::on_input`] did.
pub(crate) enum Progress {
    /// Used this many bytes of the input (call again with the rest).
    Used(usize),
    /// No whole request yet: wait for more input.
    Wait,
    /// Close the connection once `out` is sent.
    Close,
}

/// Makes the session of each connection a listener accepts.
pub(crate) type SessionFactory = Box<dyn FnMut() -> Box<dyn Session> + Send>;

/// What a listener or connection served on the TPM thread belongs to (a
/// server): when it ends, the TPM thread drops them.
pub(crate) trait Owner: Send + Sync {
    /// Whether the owner is ending.
    fn is_ending(&self) -> bool;
}

/// A listener or a connection served on the TPM thread, with the server it
/// belongs to (dropped when that server ends).
pub(crate) struct Source {
    owner: Arc<dyn Owner>,
    kind: Kind,
}

enum Kind {
    Listener {
        name: &'static str,
        listener: Listener,
        make: SessionFactory,
        resting_until: Option<Instant>,
    },
    Conn(Box<Conn>),
}

impl Source {
    /// A listener whose connections are served with sessions from `make`.
    pub(crate) fn listener(
        owner: Arc<dyn Owner>,
        name: &'static str,
        listener: Listener,
        make: SessionFactory,
    ) -> Result<Source, Error> {
        listener.set_nonblocking().map_err(|source| Error::Io {
            context: "making a listener non-blocking",
            source,
        })?;
        Ok(Source {
            owner,
            kind: Kind::Listener {
                name,
                listener,
                make,
                resting_until: None,
            },
        })
    }

    /// One connection served with `session`.
    pub(crate) fn conn(owner: Arc<dyn Owner>, stream: Stream, session: Box<dyn Session>) -> Source {
        Source {
            owner,
            kind: Kind::Conn(Box::new(Conn::new(stream, session))),
        }
    }

    fn fd(&self) -> BorrowedFd<'_> {
        match &self.kind {
            Kind::Listener { listener, .. } => listener.as_fd(),
            Kind::Conn(c) => c.stream.as_fd(),
        }
    }

    fn interest(&self) -> EpollFlags {
        match &self.kind {
            Kind::Listener { resting_until, .. } => match resting_until {
                Some(_) => EpollFlags::empty(),
                None => EpollFlags::EPOLLIN,
            },
            Kind::Conn(c) => c.interest(),
        }
    }

    /// Whether the source is finished with (a connection that closed).
    fn is_done(&self) -> bool {
        matches!(&self.kind, Kind::Conn(c) if c.done)
    }

    /// Drop the source because its server ended: wake the client.
    fn end(&mut self) {
        if let Kind::Conn(c) = &mut self.kind {
            c.stream.shutdown();
            c.close();
        }
    }
}

impl Drop for Source {
    fn drop(&mut self) {
        if let Kind::Conn(c) = &mut self.kind {
            c.close();
        }
    }
}

/// One connection served on the TPM thread.
struct Conn {
    stream: Stream,
    session: Box<dyn Session>,
    /// Received and not used yet.
    input: Vec<u8>,
    /// Answers not sent yet, from `sent` on.
    output: Vec<u8>,
    sent: usize,
    /// The client has ended its side.
    eof: bool,
    /// No more input is taken; the connection closes once `output` is sent.
    closing: bool,
    /// Closed: the session has been told, the source is dropped.
    done: bool,
}

impl Conn {
    fn new(stream: Stream, session: Box<dyn Session>) -> Conn {
        Conn {
            stream,
            session,
            input: Vec::new(),
            output: Vec::new(),
            sent: 0,
            eof: false,
            closing: false,
            done: false,
        }
    }

    fn pending(&self) -> bool {
        self.sent < self.output.len()
    }

    fn interest(&self) -> EpollFlags {
        if self.pending() {
            EpollFlags::EPOLLOUT
        } else {
            EpollFlags::EPOLLIN
        }
    }

    fn close(&mut self) {
        if !self.done {
            self.done = true;
            self.session.on_close();
        }
    }

    /// The connection is ready for what `interest` asked (or has failed).
    fn on_ready(&mut self, dev: &mut dyn Device, scratch: &mut [u8]) {
        if self.pending() {
            self.flush();
        } else {
            self.read(scratch);
        }
        self.pump(dev);
        if self.closing && !self.pending() {
            self.close();
        }
    }

    /// Take what has arrived (one read: epoll says when there is more).
    fn read(&mut self, scratch: &mut [u8]) {
        let r = loop {
            match self.stream.recv_nowait(scratch) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => break r,
            }
        };
        match r {
            Ok(0) => self.eof = true,
            Ok(n) => self.input.extend_from_slice(&scratch[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => {
                log::debug!("connection: {e}");
                self.eof = true;
                self.closing = true;
                // Nothing can be sent on a broken connection either.
                self.output.clear();
                self.sent = 0;
            }
        }
    }

    /// Let the session use the buffered input while its answers can go out.
    fn pump(&mut self, dev: &mut dyn Device) {
        let mut used = 0;
        while !self.closing && self.output.len() - self.sent < OUTPUT_HIGH {
            let input = &self.input[used..];
            if input.is_empty() && !self.eof {
                break;
            }
            let (eof, session, out) = (self.eof, &mut self.session, &mut self.output);
            let step = catch_unwind(AssertUnwindSafe(|| session.on_input(input, eof, dev, out)));
            match step {
                Ok(Progress::Used(n)) if n > 0 => used += n.min(input.len()),
                Ok(Progress::Used(_) | Progress::Wait) => {
                    if self.eof {
                        self.closing = true;
                    }
                    break;
                }
                Ok(Progress::Close) => self.closing = true,
                Err(_) => {
                    log::error!("a connection's protocol handler panicked; closing it");
                    self.closing = true;
                }
            }
        }
        self.input.drain(..used);
        self.flush();
    }

    /// Send what is pending without blocking.
    fn flush(&mut self) {
        while self.pending() {
            match self.stream.send_nowait(&self.output[self.sent..]) {
                Ok(0) => break,
                Ok(n) => self.sent += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    log::debug!("connection: cannot send response: {e}");
                    self.output.clear();
                    self.sent = 0;
                    self.closing = true;
                    return;
                }
            }
        }
        if !self.pending() {
            self.output.clear();
            self.sent = 0;
            let _ = self.stream.flush();
        }
    }
}

/// The loop of the TPM thread; see the module documentation.
pub struct TpmLoop {
    shared: Arc<Shared>,
    epoll: Epoll,
}

impl std::fmt::Debug for TpmLoop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TpmLoop").finish_non_exhaustive()
    }
}

impl Drop for TpmLoop {
    /// Whether the loop ended or never ran: nothing more is taken, and the
    /// jobs still queued are dropped, so that their callers get `None`
    /// instead of waiting forever.
    fn drop(&mut self) {
        let rest = {
            let mut q = lock(&self.shared.queue);
            q.closed = true;
            std::mem::take(&mut q.msgs)
        };
        drop(rest);
        self.shared.running.store(false, Ordering::SeqCst);
    }
}

/// A registered source and the events it is registered for.
struct Entry {
    src: Source,
    registered: EpollFlags,
}

/// The sources, by slot; a source's epoll token is its slot + 1.
struct Sources<'e> {
    epoll: &'e Epoll,
    slots: Vec<Option<Entry>>,
    /// Free slots that may be reused.
    free: Vec<usize>,
    /// Slots freed while a batch of events is handled: reused only after it,
    /// so that a later event of the batch cannot reach a new source.
    freed: Vec<usize>,
}

impl Sources<'_> {
    fn insert(&mut self, src: Source) {
        let slot = self.free.pop().unwrap_or(self.slots.len());
        let registered = src.interest();
        let token = slot as u64 + 1;
        if let Err(e) = self.epoll.add(src.fd(), EpollEvent::new(registered, token)) {
            // A descriptor epoll cannot watch (a regular file): nothing to serve.
            log::warn!("TPM thread: cannot watch a descriptor: {e}; closing it");
            self.free.push(slot);
            return;
        }
        let entry = Some(Entry { src, registered });
        if slot == self.slots.len() {
            self.slots.push(entry);
        } else {
            self.slots[slot] = entry;
        }
    }

    /// Register the events the source at `slot` wants now, or drop it if done.
    fn update(&mut self, slot: usize) {
        let Some(entry) = self.slots.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        if entry.src.is_done() {
            self.remove(slot);
            return;
        }
        let want = entry.src.interest();
        if want != entry.registered {
            let mut ev = EpollEvent::new(want, slot as u64 + 1);
            match self.epoll.modify(entry.src.fd(), &mut ev) {
                Ok(()) => entry.registered = want,
                Err(e) => log::error!("TPM thread: epoll_ctl failed: {e}"),
            }
        }
    }

    fn remove(&mut self, slot: usize) {
        if let Some(entry) = self.slots.get_mut(slot).and_then(Option::take) {
            // Explicitly: a duplicate of the descriptor elsewhere would keep
            // the registration alive after the close.
            let _ = self.epoll.delete(entry.src.fd());
            self.freed.push(slot);
        }
    }

    /// Drop the sources of servers that have ended, waking their clients.
    fn prune(&mut self) {
        for slot in 0..self.slots.len() {
            if let Some(entry) = &mut self.slots[slot] {
                if entry.src.owner.is_ending() {
                    entry.src.end();
                    self.remove(slot);
                }
            }
        }
    }

    /// Let listeners whose rest is over accept again; returns how long until
    /// the next one's rest is over.
    fn wake_rested(&mut self, now: Instant) -> PollTimeout {
        let mut soonest: Option<Duration> = None;
        for slot in 0..self.slots.len() {
            let Some(entry) = &mut self.slots[slot] else {
                continue;
            };
            if let Kind::Listener { resting_until, .. } = &mut entry.src.kind {
                match *resting_until {
                    Some(t) if t <= now => {
                        *resting_until = None;
                        self.update(slot);
                    }
                    Some(t) => soonest = Some(soonest.map_or(t - now, |s| s.min(t - now))),
                    None => {}
                }
            }
        }
        match soonest {
            None => PollTimeout::NONE,
            Some(d) => PollTimeout::from(d.as_millis().clamp(1, 1000) as u16),
        }
    }

    /// The end of a batch: the slots freed in it may be reused.
    fn end_batch(&mut self) {
        self.free.append(&mut self.freed);
    }
}

impl TpmLoop {
    /// Serve `dev` on the calling thread until [`TpmHandle::finish`] or the
    /// last handle is dropped. Jobs and commands run one at a time, in the
    /// order they arrive.
    pub fn run(self, dev: &mut dyn Device) {
        let shared = &self.shared;
        let _ = shared.thread.set(std::thread::current().id());
        if let Some(c) = dev.canceller() {
            let _ = shared.canceller.set(c);
        }
        shared.running.store(dev.is_running(), Ordering::SeqCst);
        let mut sources = Sources {
            epoll: &self.epoll,
            slots: Vec::new(),
            free: Vec::new(),
            freed: Vec::new(),
        };
        let mut scratch = vec![0u8; READ_CHUNK];
        let mut events = vec![EpollEvent::empty(); EVENTS];
        let mut resting = false;
        loop {
            let timeout = if resting {
                sources.wake_rested(Instant::now())
            } else {
                PollTimeout::NONE
            };
            let n = match self.epoll.wait(&mut events, timeout) {
                Ok(n) => n,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => {
                    // Cannot happen with a valid epoll descriptor; do not spin on it.
                    log::error!("TPM thread: epoll_wait failed: {e}");
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
            };
            let batch = &events[..n];
            // The wake-up first: sources of a server that ended go before any
            // of their commands runs (none may run after, say, the power-off
            // that follows the end), and jobs run in their arrival order.
            if batch.iter().any(|e| e.data() == WAKE_TOKEN) {
                let _ = shared.wake.read();
                sources.prune();
                let msgs = std::mem::take(&mut lock(&shared.queue).msgs);
                for msg in msgs {
                    match msg {
                        Msg::Job(job) => run_job(job, dev),
                        Msg::Add(src) => sources.insert(src),
                        Msg::Stop(last) => {
                            if let Some(job) = last {
                                run_job(job, dev);
                            }
                            // What was queued after the stop is dropped with
                            // the loop (see `Drop`): its callers get None.
                            log::debug!("TPM thread stopped");
                            return;
                        }
                    }
                }
                shared.running.store(dev.is_running(), Ordering::SeqCst);
            }
            for ev in batch.iter().filter(|e| e.data() != WAKE_TOKEN) {
                let slot = (ev.data() - 1) as usize;
                let Some(entry) = sources.slots.get_mut(slot).and_then(Option::as_mut) else {
                    continue;
                };
                match &mut entry.src.kind {
                    Kind::Listener {
                        name,
                        listener,
                        make,
                        resting_until,
                    } => {
                        let mut accepted = Vec::new();
                        *resting_until =
                            accept(name, listener, make, &entry.src.owner, &mut accepted);
                        resting |= resting_until.is_some();
                        sources.update(slot);
                        for src in accepted {
                            sources.insert(src);
                        }
                    }
                    Kind::Conn(c) => {
                        c.on_ready(dev, &mut scratch);
                        shared.running.store(dev.is_running(), Ordering::SeqCst);
                        sources.update(slot);
                    }
                }
            }
            sources.end_batch();
            if resting {
                resting = sources.slots.iter().flatten().any(|e| {
                    matches!(
                        e.src.kind,
                        Kind::Listener {
                            resting_until: Some(_),
                            ..
                        }
                    )
                });
            }
        }
    }
}

/// Run one job; a panic in it must not end the TPM thread.
fn run_job(job: Job, dev: &mut dyn Device) {
    if catch_unwind(AssertUnwindSafe(|| job(dev))).is_err() {
        log::error!("a job on the TPM thread panicked");
    }
}

/// Accept what is waiting on a listener; returns until when it must rest.
fn accept(
    name: &str,
    listener: &Listener,
    make: &mut SessionFactory,
    owner: &Arc<dyn Owner>,
    accepted: &mut Vec<Source>,
) -> Option<Instant> {
    for _ in 0..ACCEPT_BURST {
        match listener.accept() {
            Ok(stream) => {
                log::debug!("{name}: client connected");
                accepted.push(Source::conn(Arc::clone(owner), stream, make()));
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted
                ) => {}
            Err(e) => {
                // EMFILE and friends: rest instead of spinning on a listener
                // that stays readable.
                log::warn!("{name}: accept failed: {e}");
                return Some(Instant::now() + ACCEPT_BACKOFF);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A device that only counts its commands.
    struct Counter(u32);

    impl Device for Counter {
        fn execute(&mut self, _: u8, _: &[u8]) -> Vec<u8> {
            self.0 += 1;
            Vec::new()
        }
        fn init(&mut self, _: bool) -> Result<(), DeviceError> {
            Ok(())
        }
        fn power_off(&mut self) -> Result<(), DeviceError> {
            Ok(())
        }
        fn is_running(&self) -> bool {
            true
        }
        fn tpm_established(&mut self) -> Result<bool, DeviceError> {
            Ok(false)
        }
        fn reset_established(&mut self, _: u8) -> Result<(), DeviceError> {
            Ok(())
        }
        fn hash_start(&mut self) -> Result<(), DeviceError> {
            Ok(())
        }
        fn hash_data(&mut self, _: &[u8]) -> Result<(), DeviceError> {
            Ok(())
        }
        fn hash_end(&mut self) -> Result<(), DeviceError> {
            Ok(())
        }
        fn store_volatile(&mut self) -> Result<(), DeviceError> {
            Ok(())
        }
        fn get_state_blob(&mut self, _: crate::StateBlobKind) -> Result<Vec<u8>, DeviceError> {
            Ok(Vec::new())
        }
        fn set_state_blob(
            &mut self,
            _: crate::StateBlobKind,
            _: Vec<u8>,
        ) -> Result<(), DeviceError> {
            Ok(())
        }
        fn lock_storage(&mut self, _: u32) -> Result<(), DeviceError> {
            Ok(())
        }
        fn set_physical_presence(&mut self, _: bool) {}
        fn set_nv_available(&mut self, _: bool) {}
    }

    #[test]
    fn jobs_run_in_order_and_finish_ends_the_loop() {
        let tpm = spawn_tpm(Counter(0)).unwrap();
        for i in 1..=3 {
            assert_eq!(tpm.call(|d| d.execute(0, &[])).map(|_| ()), Some(()));
            assert_eq!(tpm.call(move |_| i), Some(i));
        }
        assert!(tpm.is_running());
        assert_eq!(tpm.finish(|d| d.power_off()), Some(Ok(())));
        assert_eq!(tpm.call(|_| 1), None);
        assert_eq!(tpm.call_dev(|_| Ok(1)).unwrap_err().code, TPM_FAIL);
    }

    #[test]
    fn a_panicking_job_leaves_the_loop_running() {
        let tpm = spawn_tpm(Counter(0)).unwrap();
        assert_eq!(tpm.call(|_| -> u32 { panic!("a bug") }), None);
        assert_eq!(tpm.call(|_| 7), Some(7));
    }

    #[test]
    fn a_loop_that_never_runs_does_not_leave_callers_waiting() {
        let (tpm_loop, tpm) = tpm_loop().unwrap();
        let caller = {
            let tpm = tpm.clone();
            std::thread::spawn(move || tpm.call(|_| 1))
        };
        std::thread::sleep(Duration::from_millis(50));
        drop(tpm_loop);
        assert_eq!(caller.join().unwrap(), None);
        assert_eq!(tpm.call(|_| 1), None);
    }

    #[test]
    fn a_job_from_the_tpm_thread_itself_is_refused() {
        let tpm = spawn_tpm(Counter(0)).unwrap();
        let inner = tpm.clone();
        assert_eq!(tpm.call(move |_| inner.call(|_| 1)), Some(None));
    }
}
