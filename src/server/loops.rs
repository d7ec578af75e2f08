//! The event loops connections are spread over (round robin).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

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

    /// The loop the next connection is pinned to; None before any loop was added.
    pub fn pick(&self) -> Option<Arc<AsgiInbox>> {
        let inboxes = match self.inboxes.read() {
            Ok(l) => l,
            Err(p) => p.into_inner(),
        };
        if inboxes.is_empty() {
            return None;
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) % inboxes.len();
        Some(inboxes[i].clone())
    }
}
