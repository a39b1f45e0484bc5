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
            let _ = j.join();
        }
    }
}

fn run(mut store: Store, rx: Receiver<Msg>, shared: Arc<Shared>) {
    while let Ok(first) = rx.recv() {
        let mut msgs = vec![first];
        msgs.extend(rx.try_iter());
        // Collapse: the last change to each blob wins; order among blobs does not matter.
        let mut last: HashMap<String, usize> = HashMap::new();
        for (i, m) in msgs.iter().enumerate() {
            last.insert(m.op.name().to_string(), i);
        }
        let mut idx: Vec<usize> = last.into_values().collect();
        idx.sort_unstable();
        let ops: Vec<Op> = idx.iter().map(|&i| msgs[i].op.clone()).collect();
        let result = store.commit(&ops);
        if result.is_ok() {
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
        let reason = result.as_ref().err().map(|e| e.to_string());
        for m in msgs {
            let r = match &reason {
                None => Ok(()),
                Some(reason) => Err(Error::Failed {
                    path: store.path().to_path_buf(),
                    reason: reason.clone(),
                }),
            };
            m.done.fire(r);
        }
    }
}
