//! Locking that survives a poisoned mutex: a panic elsewhere must not take every later request,
//! message or wakeup down with it, and the guarded state stays consistent between statements.

use std::sync::{Mutex, MutexGuard};

pub fn lock_or_recover<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
