//! Responses and WebSocket messages from one asyncio loop to the network thread, handed over in
//! batches: the first of a loop iteration schedules one flush (`loop.call_soon`), and the flush wakes
//! the network thread once for everything the iteration produced. Waking a socket's task straight
//! from the loop thread instead cost one eventfd write and a context switch per message.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use http::Response;
use pyo3::prelude::*;
use tokio::sync::mpsc::OwnedPermit;
use tokio::sync::{oneshot, Notify};

use super::inbox::Notifier;
use crate::state::body::ResponseBody;
use crate::state::ws_message::Outgoing;
use crate::sync::lock_or_recover;

/// The loop this thread runs and where its futures are resolved.
pub type LoopRef = (Arc<LoopLink>, Arc<dyn Notifier>);

thread_local! {
    /// Set by the loop's drain. A WebSocket may be sent to from another loop's task (a broadcast):
    /// that thread must not use the socket's loop's outbox (`call_soon` is not thread-safe).
    static CURRENT_LOOP: RefCell<Option<LoopRef>> = const { RefCell::new(None) };
}

/// Records that this thread runs `link`'s loop (cheap when already recorded).
pub fn enter_loop<R: Notifier + 'static>(link: &Arc<LoopLink>, inbox: &Arc<R>) {
    CURRENT_LOOP.with(|current| {
        let mut current = current.borrow_mut();
        if !current.as_ref().is_some_and(|(l, _)| Arc::ptr_eq(l, link)) {
            *current = Some((link.clone(), inbox.clone() as Arc<dyn Notifier>));
        }
    });
}

/// The loop this thread runs, if it runs one.
pub fn current_loop() -> Option<LoopRef> {
    CURRENT_LOOP.with(|current| current.borrow().clone())
}

impl LoopLink {
    /// Whether this thread runs this link's loop (no reference counts touched: every send asks).
    pub fn is_current(self: &Arc<Self>) -> bool {
        CURRENT_LOOP.with(|current| {
            current
                .borrow()
                .as_ref()
                .is_some_and(|(link, _)| Arc::ptr_eq(link, self))
        })
    }
}

enum Delivery {
    Response(
        oneshot::Sender<Response<ResponseBody>>,
        Response<ResponseBody>,
    ),
    /// A message for a socket's task, with the queue slot reserved when the app sent it.
    WebSocket(OwnedPermit<Outgoing>, Outgoing),
    /// Work that must start after the deliveries queued before it (a send waiting for room).
    Spawn(Pin<Box<dyn Future<Output = ()> + Send>>),
}

pub struct Outbox {
    queue: Mutex<Vec<Delivery>>,
    flush_scheduled: AtomicBool,
    bell: Notify,
}

impl Outbox {
    pub fn new() -> Arc<Self> {
        Arc::new(Outbox {
            queue: Mutex::new(Vec::with_capacity(64)),
            flush_scheduled: AtomicBool::new(false),
            bell: Notify::new(),
        })
    }

    /// Queues a response; true when the caller must schedule a flush.
    fn push(&self, delivery: Delivery) -> bool {
        lock_or_recover(&self.queue).push(delivery);
        !self.flush_scheduled.swap(true, Ordering::AcqRel)
    }

    /// True when the caller must schedule a flush (none is scheduled for this iteration yet).
    fn want_flush(&self) -> bool {
        !self.flush_scheduled.swap(true, Ordering::AcqRel)
    }

    fn flush(&self) {
        self.flush_scheduled.store(false, Ordering::Release);
        self.bell.notify_one();
    }

    /// Runs on the network thread: hands every queued response and message on (local wakeups).
    pub async fn dispatch(self: Arc<Self>) {
        let mut batch = Vec::with_capacity(64);
        loop {
            self.bell.notified().await;
            std::mem::swap(&mut *lock_or_recover(&self.queue), &mut batch);
            for delivery in batch.drain(..) {
                match delivery {
                    Delivery::Response(tx, response) => {
                        let _ = tx.send(response);
                    }
                    Delivery::WebSocket(permit, message) => {
                        permit.send(message);
                    }
                    Delivery::Spawn(work) => {
                        tokio::spawn(work);
                    }
                }
            }
            if Arc::strong_count(&self) == 1 {
                return;
            }
        }
    }
}

/// A response head that waits for its first body message within the loop iteration that started
/// it; at the flush, whatever still waits is sent on its own.
pub trait HeadFlush: Send + Sync {
    fn flush_head(&self, py: Python<'_>);
}

#[pyclass(module = "turboasgi._core", frozen)]
pub struct OutboxFlush {
    outbox: Arc<Outbox>,
    /// Loop thread only; the lock is never contended.
    pending_heads: Mutex<Vec<Box<dyn HeadFlush>>>,
}

#[pymethods]
impl OutboxFlush {
    fn __call__(&self, py: Python<'_>) {
        let heads = std::mem::take(&mut *lock_or_recover(&self.pending_heads));
        // Before the flag is cleared: the heads' deliveries join this flush instead of scheduling
        // another one.
        for head in heads {
            head.flush_head(py);
        }
        self.outbox.flush();
    }
}

/// What a transport needs of its loop: futures, and the batched way back to the network thread.
pub struct LoopLink {
    pub create_future: Py<PyAny>,
    /// A future of this loop completed with None: what `send()` returns when the data was taken at
    /// once. Awaiting a done asyncio future costs no exception object (its iterator has `am_send`).
    sent: Py<PyAny>,
    call_soon: Py<PyAny>,
    flush: Py<OutboxFlush>,
    outbox: Arc<Outbox>,
}

impl LoopLink {
    pub fn new(event_loop: &Bound<'_, PyAny>, outbox: Arc<Outbox>) -> PyResult<Arc<Self>> {
        let py = event_loop.py();
        let sent = event_loop.call_method0("create_future")?;
        sent.call_method1("set_result", (py.None(),))?;
        Ok(Arc::new(LoopLink {
            create_future: event_loop.getattr("create_future")?.unbind(),
            sent: sent.unbind(),
            call_soon: event_loop.getattr("call_soon")?.unbind(),
            flush: Py::new(
                py,
                OutboxFlush {
                    outbox: outbox.clone(),
                    pending_heads: Mutex::new(Vec::new()),
                },
            )?,
            outbox,
        }))
    }

    pub fn sent(&self, py: Python<'_>) -> Py<PyAny> {
        self.sent.clone_ref(py)
    }

    pub fn new_future(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        Ok(self.create_future.bind(py).call0()?.unbind())
    }

    /// Hands a response to its request's hyper task; false when the client is already gone.
    pub fn respond(
        &self,
        py: Python<'_>,
        tx: oneshot::Sender<Response<ResponseBody>>,
        response: Response<ResponseBody>,
    ) -> PyResult<bool> {
        if tx.is_closed() {
            return Ok(false);
        }
        self.deliver(py, Delivery::Response(tx, response))?;
        Ok(true)
    }

    /// Hands a WebSocket message to its socket's task at the end of this loop iteration.
    pub fn send_ws(
        &self,
        py: Python<'_>,
        permit: OwnedPermit<Outgoing>,
        message: Outgoing,
    ) -> PyResult<()> {
        self.deliver(py, Delivery::WebSocket(permit, message))
    }

    /// Starts `work` on the network thread once everything queued before it was handed on, so a
    /// message that waits for room cannot overtake one sent earlier.
    pub fn spawn_in_order(
        &self,
        py: Python<'_>,
        work: impl Future<Output = ()> + Send + 'static,
    ) -> PyResult<()> {
        self.deliver(py, Delivery::Spawn(Box::pin(work)))
    }

    /// Has `head` sent at this loop iteration's flush if it is still waiting for a body then.
    pub fn flush_head_later(&self, py: Python<'_>, head: Box<dyn HeadFlush>) -> PyResult<()> {
        lock_or_recover(&self.flush.get().pending_heads).push(head);
        if self.outbox.want_flush() {
            self.call_soon.bind(py).call1((self.flush.bind(py),))?;
        }
        Ok(())
    }

    fn deliver(&self, py: Python<'_>, delivery: Delivery) -> PyResult<()> {
        if self.outbox.push(delivery) {
            self.call_soon.bind(py).call1((self.flush.bind(py),))?;
        }
        Ok(())
    }
}
