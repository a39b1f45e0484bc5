//! The running server: listener threads and one thread per connection for
//! the channels served off the TPM thread (control, mssim platform), the
//! registration of those served on it (data channel, mssim command port, see
//! `tpm_loop`), and the exit bookkeeping shared by the swtpm and mssim
//! protocols.

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use crate::endpoint::{Listener, Stream};
use crate::error::Error;
use crate::sync::lock;
use crate::tpm_loop::{Owner, SessionFactory, Source, TpmHandle, Waker};

/// Why [`Server::wait`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitReason {
    /// A control client sent CMD_SHUTDOWN.
    CtrlShutdown,
    /// An mssim client sent TPM_STOP.
    Stopped,
    /// [`Server::shutdown`] was called (signal, or the server was dropped).
    Requested,
    /// The control connection closed and `terminate_on_ctrl_close` was set.
    CtrlClosed,
    /// A data connection closed and `DataOptions::terminate_on_data_close` was set.
    DataClosed,
}

/// A running transport server. Dropping it shuts it down.
#[derive(Debug)]
pub struct Server {
    core: Arc<ServerCore>,
}

impl Server {
    pub(crate) fn new(core: Arc<ServerCore>) -> Server {
        Server { core }
    }

    /// The bound TCP addresses (with the real port when port 0 was asked for),
    /// in configuration order: data then control (swtpm), command then
    /// platform (mssim). UNIX endpoints and connected descriptors are not listed.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        lock(&self.core.addrs).clone()
    }

    /// Block until the server ends (CMD_SHUTDOWN, mssim STOP, [`Server::shutdown`],
    /// or the control connection closing with `terminate_on_ctrl_close`).
    pub fn wait(&self) -> ExitReason {
        let mut g = lock(&self.core.exit);
        loop {
            if let (true, Some(r)) = (g.done, g.reason) {
                return r;
            }
            g = self.core.cv.wait(g).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Stop accepting, close every connection, remove UNIX socket files and
    /// unblock [`Server::wait`]. Safe to call from any thread, more than once.
    pub fn shutdown(&self) {
        self.core.finish(ExitReason::Requested);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.core.finish(ExitReason::Requested);
    }
}

/// The exit reason and whether the clean-up after it is complete.
#[derive(Debug)]
struct ExitState {
    reason: Option<ExitReason>,
    done: bool,
}

/// State shared by all threads of one server.
#[derive(Debug)]
pub(crate) struct ServerCore {
    exit: Mutex<ExitState>,
    cv: Condvar,
    stopping: AtomicBool,
    /// Written once at shutdown; stays readable, so every listener's poll wakes.
    wake_tx: Mutex<UnixStream>,
    wake_rx: UnixStream,
    conns: Mutex<HashMap<u64, Stream>>,
    next_conn: AtomicU64,
    unix_paths: Mutex<Vec<PathBuf>>,
    addrs: Mutex<Vec<SocketAddr>>,
    /// Wakes the TPM thread at the end, so that it drops the listeners and
    /// connections of this server it serves.
    tpm: Waker,
}

impl ServerCore {
    pub(crate) fn new(tpm: &TpmHandle) -> Result<Arc<ServerCore>, Error> {
        let (tx, rx) = UnixStream::pair().map_err(|source| Error::Io {
            context: "creating wake-up socket pair",
            source,
        })?;
        Ok(Arc::new(ServerCore {
            exit: Mutex::new(ExitState {
                reason: None,
                done: false,
            }),
            cv: Condvar::new(),
            stopping: AtomicBool::new(false),
            wake_tx: Mutex::new(tx),
            wake_rx: rx,
            conns: Mutex::new(HashMap::new()),
            next_conn: AtomicU64::new(0),
            unix_paths: Mutex::new(Vec::new()),
            addrs: Mutex::new(Vec::new()),
            tpm: tpm.waker(),
        }))
    }

    /// Readable once the server is ending: threads that wait in `poll` on
    /// a descriptor of their own (the CUSE device) watch it too.
    pub(crate) fn wake_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.wake_rx.as_fd()
    }

    /// Whether the server is ending.
    pub(crate) fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// End the server with `reason` (the first reason wins). `wait` returns
    /// only once the sockets are closed and the socket files removed.
    pub(crate) fn finish(&self, reason: ExitReason) {
        {
            let mut g = lock(&self.exit);
            if g.reason.is_none() {
                g.reason = Some(reason);
                log::info!("transport: ending ({reason:?})");
            }
        }
        if !self.stopping.swap(true, Ordering::SeqCst) {
            let _ = lock(&self.wake_tx).write_all(&[1]);
            for s in lock(&self.conns).values() {
                s.shutdown();
            }
            for p in lock(&self.unix_paths).drain(..) {
                let _ = std::fs::remove_file(&p);
            }
            self.tpm.wake();
            lock(&self.exit).done = true;
            self.cv.notify_all();
        }
    }

    /// Serve `listener` on the TPM thread: each connection it accepts is
    /// served there with a session from `make` (see `tpm_loop`).
    pub(crate) fn add_tpm_listener(
        self: &Arc<Self>,
        name: &'static str,
        listener: Listener,
        tpm: &TpmHandle,
        make: SessionFactory,
    ) -> Result<(), Error> {
        if let Some(a) = listener.tcp_addr() {
            lock(&self.addrs).push(a);
        }
        if let Some(p) = listener.unix_path() {
            lock(&self.unix_paths).push(p);
        }
        let src = Source::listener(self.owner(), name, listener, make)?;
        if tpm.add(src) {
            Ok(())
        } else {
            Err(tpm_gone())
        }
    }
}

impl ServerCore {
    /// This server as the owner of what it serves on the TPM thread.
    pub(crate) fn owner(self: &Arc<Self>) -> Arc<dyn Owner> {
        Arc::clone(self) as Arc<dyn Owner>
    }
}

/// The TPM thread drops the listeners and connections of a server that ends.
impl Owner for ServerCore {
    fn is_ending(&self) -> bool {
        self.is_stopping()
    }
}

/// The error of starting a server on a TPM thread that has stopped.
pub(crate) fn tpm_gone() -> Error {
    Error::Config("the TPM thread has stopped".into())
}

impl ServerCore {
    /// Serve `listener` on its own thread, handing each accepted connection
    /// to `handler` on a new thread.
    pub(crate) fn add_listener(
        self: &Arc<Self>,
        name: &'static str,
        listener: Listener,
        handler: Arc<dyn Fn(Stream) + Send + Sync>,
    ) -> Result<(), Error> {
        if let Some(a) = listener.tcp_addr() {
            lock(&self.addrs).push(a);
        }
        if let Some(p) = listener.unix_path() {
            lock(&self.unix_paths).push(p);
        }
        let core = Arc::clone(self);
        std::thread::Builder::new()
            .name(format!("{name}-listen"))
            .spawn(move || core.accept_loop(name, listener, handler))
            .map_err(|source| Error::Io {
                context: "spawning listener thread",
                source,
            })?;
        Ok(())
    }

    fn accept_loop(
        self: Arc<Self>,
        name: &'static str,
        listener: Listener,
        handler: Arc<dyn Fn(Stream) + Send + Sync>,
    ) {
        while !self.is_stopping() {
            let mut fds = [
                PollFd::new(listener.as_fd(), PollFlags::POLLIN),
                PollFd::new(self.wake_rx.as_fd(), PollFlags::POLLIN),
            ];
            match poll(&mut fds, PollTimeout::NONE) {
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => {
                    log::error!("{name}: poll failed: {e}");
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
                Ok(_) => {}
            }
            if self.is_stopping() {
                break;
            }
            let ready = fds[0].revents().is_some_and(|r| !r.is_empty());
            if !ready {
                continue;
            }
            match listener.accept() {
                Ok(stream) => {
                    log::debug!("{name}: client connected");
                    let h = Arc::clone(&handler);
                    self.spawn_conn(name, stream, move |s| h(s));
                }
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    log::warn!("{name}: accept failed: {e}");
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
        log::debug!("{name}: listener ends");
    }

    /// Run `handler` for `stream` on its own thread; the stream is shut down
    /// if the server ends while the handler runs.
    pub(crate) fn spawn_conn<F>(self: &Arc<Self>, name: &'static str, stream: Stream, handler: F)
    where
        F: FnOnce(Stream) + Send + 'static,
    {
        let id = self.next_conn.fetch_add(1, Ordering::Relaxed);
        match stream.try_clone() {
            Ok(c) => {
                lock(&self.conns).insert(id, c);
            }
            Err(e) => log::warn!("{name}: cannot track connection: {e}"),
        }
        // finish() may have run between the check in the caller and the insert.
        if self.is_stopping() {
            stream.shutdown();
        }
        let core = Arc::clone(self);
        let spawned = std::thread::Builder::new()
            .name(format!("{name}-conn"))
            .spawn(move || {
                handler(stream);
                lock(&core.conns).remove(&id);
                log::debug!("{name}: connection closed");
            });
        if let Err(e) = spawned {
            log::error!("{name}: cannot spawn connection thread: {e}");
            if let Some(s) = lock(&self.conns).remove(&id) {
                s.shutdown();
            }
        }
    }
}
