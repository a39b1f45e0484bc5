//! Locking shared by the transport's threads.

use std::sync::{Mutex, MutexGuard};

/// Lock a mutex, ignoring poisoning: every critical section in the transport
/// leaves the data consistent even if a thread panicked, and a transport must
/// go on.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
