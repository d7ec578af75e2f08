//! The network side: listeners, connections, shutdown, and the Python-facing `ServerCore`.

pub mod conn;
pub mod listener;
pub mod responses;
pub mod validate;
pub mod websocket;
mod ws_deflate;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use pyo3::exceptions::{PyOSError, PyRuntimeError};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use tokio::runtime::Runtime;
use tokio::sync::{watch, Notify};

use crate::bridge::inbox::{ring_bell, Event, Inbox};
use crate::bridge::loop_handle::{LoopEntry, LoopHandle};
use crate::bridge::outbox::Outbox;
use crate::config::{CoreConfig, Settings};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ShutdownStage {
    Running,
    /// Stop accepting, close idle keep-alive connections, let in-flight requests finish.
    Graceful,
    /// Close every connection now.
    Force,
}

/// Process-wide state of one server, shared by every connection task.
pub struct Shared {
    pub settings: Settings,
    pub runtime: &'static Runtime,
    loops: RwLock<Vec<Arc<Inbox>>>,
    next_loop: AtomicUsize,
    in_flight: AtomicUsize,
    requests_total: AtomicU64,
    connections: AtomicUsize,
    connections_changed: Notify,
    shutdown: watch::Sender<ShutdownStage>,
    error_logger: Py<PyAny>,
}

pub struct ConnectionCount(Arc<Shared>);

impl Drop for ConnectionCount {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::AcqRel);
        self.0.connections_changed.notify_waiters();
    }
}

impl Shared {
    /// Counts the request against `--limit-concurrency`; false when over the limit.
    pub fn try_start_request(&self) -> bool {
        let now = self.in_flight.fetch_add(1, Ordering::AcqRel) + 1;
        self.requests_total.fetch_add(1, Ordering::Relaxed);
        if let Some(limit) = self.settings.limit_concurrency {
            if now > limit {
                self.in_flight.fetch_sub(1, Ordering::AcqRel);
                return false;
            }
        }
        true
    }

    pub fn request_finished(&self) {
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
    }

    pub fn connection_opened(self: &Arc<Self>) -> ConnectionCount {
        self.connections.fetch_add(1, Ordering::AcqRel);
        ConnectionCount(self.clone())
    }

    pub fn pick_loop(&self) -> Option<Arc<Inbox>> {
        let loops = match self.loops.read() {
            Ok(l) => l,
            Err(p) => p.into_inner(),
        };
        if loops.is_empty() {
            return None;
        }
        let i = self.next_loop.fetch_add(1, Ordering::Relaxed) % loops.len();
        Some(loops[i].clone())
    }

    pub fn shutdown_receiver(&self) -> watch::Receiver<ShutdownStage> {
        self.shutdown.subscribe()
    }

    /// Logs on the loop thread: tokio threads never attach to Python (an attach racing with
    /// interpreter finalization crashes free-threaded CPython).
    pub fn log_warning(&self, inbox: &Inbox, message: &'static str) {
        inbox.push(Event::Warning(message));
    }

    pub fn error_logger(&self) -> &Py<PyAny> {
        &self.error_logger
    }

    async fn wait_connections_closed(&self) {
        loop {
            let notified = self.connections_changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.connections.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }
}

static RUNTIME: OnceLock<Runtime> = OnceLock::new();

/// Python runs signal handlers in the main thread only, and CPython notices a signal promptly only
/// when the kernel delivers it to that thread: network threads must never receive them.
fn block_process_signals() {
    // SAFETY: plain libc calls on a local, initialized sigset_t.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT] {
            libc::sigaddset(&mut set, sig);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

fn runtime(threads: usize) -> PyResult<&'static Runtime> {
    if let Some(rt) = RUNTIME.get() {
        return Ok(rt);
    }
    let build_error =
        |e: std::io::Error| PyRuntimeError::new_err(format!("cannot start the tokio runtime: {e}"));
    if threads > 1 {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("turboasgi-io")
            .on_thread_start(block_process_signals)
            .enable_all()
            .build()
            .map_err(build_error)?;
        return Ok(RUNTIME.get_or_init(|| rt));
    }
    // One network thread: a current-thread scheduler driven by its own thread skips the
    // work-stealing machinery (measured: fewer cycles per request than a 1-worker multi-thread runtime).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(build_error)?;
    let rt: &'static Runtime = RUNTIME.get_or_init(|| rt);
    std::thread::Builder::new()
        .name("turboasgi-io".into())
        .spawn(move || {
            block_process_signals();
            rt.block_on(std::future::pending::<()>());
        })
        .map_err(build_error)?;
    Ok(rt)
}

#[pyclass(module = "turboasgi._core", frozen)]
pub struct ServerCore {
    shared: Arc<Shared>,
}

#[pymethods]
impl ServerCore {
    #[new]
    fn new(py: Python<'_>, config: PyRef<'_, CoreConfig>) -> PyResult<Self> {
        let settings = config.settings.clone();
        let runtime = runtime(settings.tokio_threads)?;
        let logging = py.import("logging")?;
        let error_logger = logging
            .call_method1("getLogger", ("turboasgi.error",))?
            .unbind();
        let (shutdown, _) = watch::channel(ShutdownStage::Running);
        Ok(ServerCore {
            shared: Arc::new(Shared {
                settings,
                runtime,
                loops: RwLock::new(Vec::new()),
                next_loop: AtomicUsize::new(0),
                in_flight: AtomicUsize::new(0),
                requests_total: AtomicU64::new(0),
                connections: AtomicUsize::new(0),
                connections_changed: Notify::new(),
                shutdown,
                error_logger,
            }),
        })
    }

    #[pyo3(signature = (event_loop, handler, state, ws_handler = None))]
    fn add_loop(
        &self,
        event_loop: Bound<'_, PyAny>,
        handler: Bound<'_, PyAny>,
        state: Bound<'_, PyDict>,
        ws_handler: Option<Bound<'_, PyAny>>,
    ) -> PyResult<LoopHandle> {
        let inbox = Inbox::new().map_err(|e| PyOSError::new_err(format!("eventfd: {e}")))?;
        self.shared
            .runtime
            .spawn(ring_bell(Arc::downgrade(&inbox), inbox.doorbell()));
        let outbox = Outbox::new();
        self.shared.runtime.spawn(outbox.clone().dispatch());
        let entry = LoopEntry::new(
            &event_loop,
            handler,
            ws_handler,
            state,
            inbox.clone(),
            outbox,
            self.shared.clone(),
        )?;
        match self.shared.loops.write() {
            Ok(mut l) => l.push(inbox),
            Err(p) => p.into_inner().push(inbox),
        }
        Ok(LoopHandle::new(entry))
    }

    #[pyo3(signature = (fd, *, unix = false))]
    fn listen(&self, fd: i32, unix: bool) -> PyResult<()> {
        listener::start(self.shared.clone(), fd, unix)
            .map_err(|e| PyOSError::new_err(format!("cannot listen on fd {fd}: {e}")))
    }

    /// Returns a future of `handle`'s loop, resolved through that loop's inbox.
    #[pyo3(signature = (handle, timeout = None))]
    fn shutdown(
        &self,
        py: Python<'_>,
        handle: PyRef<'_, LoopHandle>,
        timeout: Option<f64>,
    ) -> PyResult<Py<PyAny>> {
        let shared = self.shared.clone();
        let future = handle.create_future(py)?;
        let resolve = future.clone_ref(py);
        let inbox = handle.inbox();
        self.shared.runtime.spawn(async move {
            let _ = shared.shutdown.send(ShutdownStage::Graceful);
            let graceful = shared.wait_connections_closed();
            let finished = match timeout {
                Some(t) if t.is_finite() && t >= 0.0 => {
                    tokio::time::timeout(Duration::from_secs_f64(t), graceful)
                        .await
                        .is_ok()
                }
                _ => {
                    graceful.await;
                    true
                }
            };
            if !finished {
                let _ = shared.shutdown.send(ShutdownStage::Force);
                let _ =
                    tokio::time::timeout(Duration::from_secs(5), shared.wait_connections_closed())
                        .await;
            }
            inbox.push(Event::SendDone {
                future: resolve,
                delivered: true,
            });
        });
        Ok(future)
    }

    /// Closes every connection at once (a second Ctrl+C).
    fn force_close(&self) {
        let _ = self.shared.shutdown.send(ShutdownStage::Force);
    }

    fn connection_count(&self) -> usize {
        self.shared.connections.load(Ordering::Acquire)
    }

    fn request_count(&self) -> u64 {
        self.shared.requests_total.load(Ordering::Relaxed)
    }
}
