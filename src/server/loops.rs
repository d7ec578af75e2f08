//! The event loops connections are spread over (round robin).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard};

use crate::asgi::dispatch::AsgiInbox;

#[derive(Default)]
pub struct Loops {
    inboxes: RwLock<Vec<Arc<AsgiInbox>>>,
    next: AtomicUsize,
}

impl Loops {
    pub fn add(&self, inbox: Arc<AsgiInbox>) {
        match self.inboxes.write() {
            Ok(mut l) => l.push(inbox),
            Err(p) => p.into_inner().push(inbox),
        }
    }

    fn inboxes(&self) -> RwLockReadGuard<'_, Vec<Arc<AsgiInbox>>> {
        self.inboxes
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The loop the next connection is pinned to; None before any loop was added.
    pub fn pick(&self) -> Option<Arc<AsgiInbox>> {
        let inboxes = self.inboxes();
        if inboxes.is_empty() {
            return None;
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) % inboxes.len();
        Some(inboxes[i].clone())
    }

    /// Each loop's longest wakeup-to-drain wait since the previous call, in seconds.
    pub fn take_lags(&self) -> Vec<f64> {
        self.inboxes()
            .iter()
            .map(|inbox| inbox.take_lag())
            .collect()
    }
}
