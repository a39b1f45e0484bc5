//! The storage thread: owns the store, takes posted writes from a crossbeam
//! channel, and commits everything queued as one batch (group commit) with
//! one flush. Several writes to one blob in a batch collapse to the last.
//! Completions fire only after the batch is durable.
//!
//! A blocking writer that is alone (store idle, nothing queued, the last batch
//! a single write) commits on its own thread instead (see
//! [`Core::commit_now`]): it then pays no thread hand-off in either
//! direction, only the write and its flush. Several writers go through the
//! storage thread, which gathers them into one batch. Messages are only ever
//! taken off the channel with the store locked, and an inline commit checks
//! the queue with the store locked, so writes commit in the order they were
//! posted whoever commits them.
//!
//! Handing the image over ([`Worker::release`]) happens under the same store
//! lock: what was posted before is committed, everything is flushed, then the
//! store is marked released and every later commit fails without touching
//! the image.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_channel::{Receiver, Select, Sender, TryRecvError};
use parking_lot::{Mutex, RwLock};

use crate::error::{Error, Result};
use crate::ops::Op;
use crate::store::Store;

/// How a writer learns the outcome.
pub enum Done {
    /// A channel the writer waits on.
    Chan(Sender<Result<()>>),
    /// A callback run on the storage thread.
    Callback(Box<dyn FnOnce(Result<()>) + Send>),
}

impl Done {
    fn fire(self, r: Result<()>) {
        match self {
            Done::Chan(tx) => {
                let _ = tx.send(r);
            }
            Done::Callback(f) => f(r),
        }
    }
}

/// A posted change.
pub struct Msg {
    /// The change.
    pub op: Op,
    /// Who to tell.
    pub done: Done,
}

/// The committed blobs as readers see them.
pub type Shared = RwLock<BTreeMap<String, Arc<zeroize::Zeroizing<Vec<u8>>>>>;

/// What the storage thread and waiting writers share: the store (locked by
/// whoever commits), the queue and the readers' view.
pub struct Core {
    store: Mutex<Store>,
    rx: Receiver<Msg>,
    shared: Arc<Shared>,
    /// Writes in the storage thread's last batch: above one, writers are
    /// concurrent and commit nothing themselves, or a writer committing
    /// alone would split the group's batch in two (and pay two flushes).
    last_batch: std::sync::atomic::AtomicUsize,
    /// The image was handed over: nothing may be committed any more. Read
    /// and written with the store locked.
    released: AtomicBool,
}

impl Core {
    /// Whether the image was handed over ([`Worker::release`]).
    pub fn released(&self) -> bool {
        self.released.load(Ordering::SeqCst)
    }

    /// Several writers were in the storage thread's last batch.
    fn concurrent(&self) -> bool {
        self.last_batch.load(std::sync::atomic::Ordering::Relaxed) > 1
    }

    /// Commit `op` at once on the caller's thread if the store is idle and
    /// nothing is queued (checked with the store locked, so nothing posted
    /// earlier is still uncommitted); otherwise hand `op` back to be posted.
    /// Nothing is sent on the channel, so the storage thread is not woken.
    pub fn commit_now(&self, op: Op) -> std::result::Result<Result<()>, Op> {
        if !self.rx.is_empty() || self.concurrent() {
            return Err(op);
        }
        let Some(mut store) = self.store.try_lock() else {
            return Err(op);
        };
        if !self.rx.is_empty() {
            return Err(op);
        }
        Ok(commit_ops(self, &mut store, vec![op])
            .map_err(|(path, reason)| Error::Failed { path, reason }))
    }
}

/// The thread and its channel; dropping it finishes queued writes and joins.
pub struct Worker {
    tx: Mutex<Option<Sender<Msg>>>,
    join: Mutex<Option<JoinHandle<()>>>,
    core: Arc<Core>,
}

impl Worker {
    /// Start the thread over `store`, publishing committed state into `shared`.
    pub fn spawn(store: Store, shared: Arc<Shared>) -> Worker {
        let (tx, rx) = crossbeam_channel::unbounded();
        let core = Arc::new(Core {
            store: Mutex::new(store),
            rx,
            shared,
            last_batch: std::sync::atomic::AtomicUsize::new(1),
            released: AtomicBool::new(false),
        });
        let thread_core = core.clone();
        let join = std::thread::Builder::new()
            .name("nvram-storage".into())
            .spawn(move || run(&thread_core))
            .ok();
        Worker {
            tx: Mutex::new(Some(tx)),
            join: Mutex::new(join),
            core,
        }
    }

    /// The shared state, borrowed.
    pub fn core_ref(&self) -> &Core {
        &self.core
    }

    /// Hand the image over: commit what was posted before (it belongs to this
    /// writer), flush everything, mark the store released so that no later
    /// commit touches the image, and release the backend (a file's lock).
    /// Done with the store locked, so no commit runs in between. A failed
    /// flush keeps the lock (the next holder must find every acknowledged
    /// write) and is returned.
    pub fn release(&self) -> Result<()> {
        let core = &*self.core;
        let mut store = core.store.lock();
        if core.released() {
            return Ok(());
        }
        let queued: Vec<Msg> = core.rx.try_iter().collect();
        let outcome = (!queued.is_empty()).then(|| commit(core, &mut store, queued));
        let result = store.sync_all().and_then(|()| {
            core.released.store(true, Ordering::SeqCst);
            store.release_backend()
        });
        drop(store);
        if let Some(o) = outcome {
            o.fire();
        }
        result
    }

    /// Post a change; if the thread is gone the completion fires with `Stopped`.
    pub fn post(&self, msg: Msg) {
        let sent = match self.tx.lock().as_ref() {
            Some(tx) => tx.send(msg).map_err(|e| e.into_inner()),
            None => Err(msg),
        };
        if let Err(msg) = sent {
            msg.done.fire(Err(Error::Stopped));
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.tx.lock().take();
        if let Some(j) = self.join.lock().take() {
            // A completion callback may drop the last handle on the storage
            // thread itself: it then ends on its own once the channel is closed.
            if j.thread().id() != std::thread::current().id() {
                let _ = j.join();
            }
        }
    }
}

/// Longest a batch waits for writers expected to join it.
const GATHER: std::time::Duration = std::time::Duration::from_micros(200);

/// Take everything posted now; with several writers in the last batch, wait
/// (bounded) for as many again: they all post within microseconds of their
/// acknowledgement, and waiting turns alternating small batches into full ones.
/// The wait yields rather than blocks in recv, so a send does not wake this thread.
fn gather(rx: &Receiver<Msg>, first: Msg, expected: usize) -> Vec<Msg> {
    let mut msgs = vec![first];
    msgs.extend(rx.try_iter());
    let deadline = std::time::Instant::now() + GATHER;
    while msgs.len() < expected && std::time::Instant::now() < deadline {
        // Yield rather than sleep: a 20 us sleep lasts ~70 us with the default
        // timer slack, and yielding hands the CPU straight to the writers.
        std::thread::yield_now();
        msgs.extend(rx.try_iter());
    }
    msgs
}

/// The last change to each blob wins; order among blobs does not matter.
fn collapse(msgs: Vec<Msg>) -> (Vec<Op>, Vec<Done>) {
    let mut last: HashMap<String, usize> = HashMap::new();
    for (i, m) in msgs.iter().enumerate() {
        last.insert(m.op.name().to_string(), i);
    }
    let mut keep: Vec<bool> = vec![false; msgs.len()];
    for &i in last.values() {
        keep[i] = true;
    }
    let mut ops = Vec::with_capacity(last.len());
    let mut dones = Vec::with_capacity(msgs.len());
    for (m, k) in msgs.into_iter().zip(keep) {
        if k {
            ops.push(m.op);
        }
        dones.push(m.done);
    }
    (ops, dones)
}

fn publish(shared: &Shared, ops: Vec<Op>) {
    let mut map = shared.write();
    for op in ops {
        match op {
            Op::Put(n, d) => {
                map.insert(n, Arc::new(zeroize::Zeroizing::new(d)));
            }
            Op::Delete(n) => {
                map.remove(&n);
            }
        }
    }
}

fn fail_all(dones: Vec<Done>, path: &std::path::Path, reason: &str) {
    for d in dones {
        d.fire(Err(Error::Failed {
            path: path.to_path_buf(),
            reason: reason.to_string(),
        }));
    }
}

/// A committed (or failed) batch: the completions to fire, outside the lock.
struct Outcome {
    dones: Vec<Done>,
    result: std::result::Result<(), (std::path::PathBuf, String)>,
}

impl Outcome {
    fn fire(self) {
        match self.result {
            Ok(()) => {
                for d in self.dones {
                    d.fire(Ok(()));
                }
            }
            Err((path, reason)) => fail_all(self.dones, &path, &reason),
        }
    }
}

/// Collapse `msgs`, commit them with one flush and publish them to readers.
fn commit(core: &Core, store: &mut Store, msgs: Vec<Msg>) -> Outcome {
    let (ops, dones) = collapse(msgs);
    Outcome {
        dones,
        result: commit_ops(core, store, ops),
    }
}

/// Commit `ops` with one flush and publish them; the error names the image.
/// After a hand-over nothing is committed: the image is another process's.
fn commit_ops(
    core: &Core,
    store: &mut Store,
    ops: Vec<Op>,
) -> std::result::Result<(), (std::path::PathBuf, String)> {
    if core.released() {
        return Err((
            store.path().to_path_buf(),
            "the image's lock was released (handed over to another process): this instance may not write it any more".into(),
        ));
    }
    match store.commit(&ops) {
        Ok(()) => {
            publish(&core.shared, ops);
            Ok(())
        }
        Err(e) => {
            let reason = match e {
                Error::Io { op, source, .. } => format!("{op}: {source}"),
                e => e.to_string(),
            };
            Err((store.path().to_path_buf(), reason))
        }
    }
}

/// Commit everything posted as one batch with one flush, acknowledge it, repeat.
fn run(core: &Core) {
    let rx = &core.rx;
    let mut expected = 1;
    // The backend's periodic work (a lease to renew), if any: when it is due.
    let mut beat = core.store.lock().heartbeat().map(|d| Instant::now() + d);
    loop {
        if expected > 1 {
            // The writers just acknowledged will post again at once: let them,
            // rather than be woken by the first of them.
            std::thread::yield_now();
        }
        // Wait without taking the message: it is taken with the store locked,
        // so an inline commit (which checks the queue under that lock) can
        // never overtake a message this thread holds.
        let mut sel = Select::new();
        sel.recv(rx);
        match beat {
            None => {
                sel.ready();
            }
            Some(at) => {
                if sel.ready_deadline(at).is_err() {
                    let mut store = core.store.lock();
                    beat = if core.released() {
                        None
                    } else {
                        store.heartbeat().map(|d| Instant::now() + d)
                    };
                    continue;
                }
            }
        }
        let mut store = core.store.lock();
        let first = match rx.try_recv() {
            Ok(m) => m,
            // Only this thread takes messages; a wake-up with nothing to take
            // is spurious: wait again.
            Err(TryRecvError::Empty) => continue,
            Err(TryRecvError::Disconnected) => break,
        };
        let msgs = gather(rx, first, expected);
        let batch = msgs.len();
        let outcome = commit(core, &mut store, msgs);
        // The writers about to be acknowledged will post again, and whoever
        // queued during the flush is waiting too: gather them all into the next
        // batch, or groups of writers settle into alternating half-full batches.
        // (Counted before acknowledging, so a quick re-post is not counted twice.)
        expected = batch + rx.len();
        core.last_batch
            .store(batch, std::sync::atomic::Ordering::Relaxed);
        drop(store);
        outcome.fire();
    }
    // A clean shutdown makes relaxed-mode batches durable too (a handed-over
    // image was flushed at the hand-over and is no longer ours to flush).
    let mut store = core.store.lock();
    if !core.released() {
        let _ = store.sync_all();
    }
}
