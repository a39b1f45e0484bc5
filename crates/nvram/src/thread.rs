//! The storage thread: owns the store, takes posted writes from a crossbeam
//! channel, and commits everything queued as one batch (group commit) with
//! one flush. Several writes to one blob in a batch collapse to the last.
//! Completions fire only after the batch is durable.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};
use parking_lot::{Mutex, RwLock};

use crate::error::{Error, Result};
use crate::store::{Op, Store};

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

/// The thread and its channel; dropping it finishes queued writes and joins.
pub struct Worker {
    tx: Mutex<Option<Sender<Msg>>>,
    join: Mutex<Option<JoinHandle<()>>>,
}

impl Worker {
    /// Start the thread over `store`, publishing committed state into `shared`.
    pub fn spawn(store: Store, shared: Arc<Shared>) -> Worker {
        let (tx, rx) = crossbeam_channel::unbounded();
        let join = std::thread::Builder::new()
            .name("nvram-storage".into())
            .spawn(move || run(store, rx, shared))
            .ok();
        Worker {
            tx: Mutex::new(Some(tx)),
            join: Mutex::new(join),
        }
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

/// Commit everything posted as one batch with one flush, acknowledge it, repeat.
fn run(mut store: Store, rx: Receiver<Msg>, shared: Arc<Shared>) {
    let path = store.path().to_path_buf();
    let mut expected = 1;
    loop {
        if expected > 1 {
            // The writers just acknowledged will post again at once: let them,
            // rather than be woken by the first of them.
            std::thread::yield_now();
        }
        let Ok(first) = rx.recv() else { break };
        let msgs = gather(&rx, first, expected);
        let batch = msgs.len();
        let (ops, dones) = collapse(msgs);
        let result = store.commit(&ops);
        // The writers about to be acknowledged will post again, and whoever
        // queued during the flush is waiting too: gather them all into the next
        // batch, or groups of writers settle into alternating half-full batches.
        // (Counted before acknowledging, so a quick re-post is not counted twice.)
        expected = batch + rx.len();
        match result {
            Ok(()) => {
                publish(&shared, ops);
                for d in dones {
                    d.fire(Ok(()));
                }
            }
            Err(e) => {
                let reason = match e {
                    Error::Io { op, source, .. } => format!("{op}: {source}"),
                    e => e.to_string(),
                };
                fail_all(dones, &path, &reason)
            }
        }
    }
    // A clean shutdown makes relaxed-mode batches durable too.
    let _ = store.sync_all();
}
