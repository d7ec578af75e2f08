//! Responses from one asyncio loop to the network thread, handed over in batches: the first
//! response of a loop iteration schedules one flush (`loop.call_soon`), and the flush wakes the
//! network thread once for every response the iteration produced.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use http::Response;
use pyo3::prelude::*;
use tokio::sync::{oneshot, Notify};

use crate::asgi::body::ResponseBody;

type Delivery = (
    oneshot::Sender<Response<ResponseBody>>,
    Response<ResponseBody>,
);

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
        match self.queue.lock() {
            Ok(mut q) => q.push(delivery),
            Err(p) => p.into_inner().push(delivery),
        }
        !self.flush_scheduled.swap(true, Ordering::AcqRel)
    }

    fn flush(&self) {
        self.flush_scheduled.store(false, Ordering::Release);
        self.bell.notify_one();
    }

    /// Runs on the network thread: completes every queued response's oneshot (local wakeups).
    pub async fn dispatch(self: Arc<Self>) {
        let mut batch = Vec::with_capacity(64);
        loop {
            self.bell.notified().await;
            match self.queue.lock() {
                Ok(mut q) => std::mem::swap(&mut *q, &mut batch),
                Err(p) => std::mem::swap(&mut *p.into_inner(), &mut batch),
            }
            for (tx, response) in batch.drain(..) {
                let _ = tx.send(response);
            }
            if Arc::strong_count(&self) == 1 {
                return;
            }
        }
    }
}

#[pyclass(module = "turboasgi._core", frozen)]
pub struct OutboxFlush {
    outbox: Arc<Outbox>,
}

#[pymethods]
impl OutboxFlush {
    fn __call__(&self) {
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
        if self.outbox.push((tx, response)) {
            self.call_soon.bind(py).call1((self.flush.bind(py),))?;
        }
        Ok(true)
    }
}
