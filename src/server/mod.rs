//! The network side, the top layer: listeners, per-protocol connections around the
//! protocol-agnostic service, WebSocket upgrades, shutdown, and the Python-facing `ServerCore`.

pub mod conn;
mod head_scan;
mod head_timeout;
mod heap_trim;
mod held_writes;
pub mod http2;
pub mod limits;
pub mod listener;
pub mod loops;
pub mod metrics;
mod parked_io;
mod preface;
pub mod protocol;
pub mod service;
pub mod tls;
pub mod validate;
pub mod websocket;
mod write_through;
mod ws_deflate;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use pyo3::exceptions::{PyOSError, PyRuntimeError};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use tokio::runtime::Runtime;

use crate::asgi::dispatch::{AsgiInbox, LoopEntry, LoopHandle};
use crate::bridge::inbox::{ring_bell, Event, Inbox};
use crate::bridge::outbox::Outbox;
use crate::config::CoreConfig;
use crate::state::{Shared, ShutdownStage};
use loops::Loops;

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
    loops: Arc<Loops>,
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
        let shared = Arc::new(Shared::new(settings, runtime, error_logger));
        runtime.spawn(heap_trim::trim_after_floods(Arc::downgrade(&shared)));
        Ok(ServerCore {
            shared,
            loops: Arc::new(Loops::default()),
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
        let inbox: Arc<AsgiInbox> =
            Inbox::new().map_err(|e| PyOSError::new_err(format!("eventfd: {e}")))?;
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
        self.loops.add(inbox);
        Ok(LoopHandle::new(entry))
    }

    #[pyo3(signature = (fd, *, unix = false))]
    fn listen(&self, fd: i32, unix: bool) -> PyResult<()> {
        listener::start(self.shared.clone(), self.loops.clone(), fd, unix)
            .map_err(|e| PyOSError::new_err(format!("cannot listen on fd {fd}: {e}")))
    }

    /// Serves the Prometheus metrics on this bound TCP socket (`--metrics-port`).
    fn serve_metrics(&self, fd: i32) -> PyResult<()> {
        metrics::start(self.shared.clone(), self.loops.clone(), fd)
            .map_err(|e| PyOSError::new_err(format!("cannot serve metrics on fd {fd}: {e}")))
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
            shared.begin_shutdown(ShutdownStage::Graceful);
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
                shared.begin_shutdown(ShutdownStage::Force);
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
        self.shared.begin_shutdown(ShutdownStage::Force);
    }

    fn connection_count(&self) -> usize {
        self.shared.connection_count()
    }

    fn request_count(&self) -> u64 {
        self.shared.request_count()
    }
}
