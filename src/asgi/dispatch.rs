//! The loop-thread end of an inbox for ASGI: `drain()` runs as the asyncio reader callback of the
//! eventfd, builds scopes and starts one Task per request or WebSocket handshake.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::http::{HttpTransport, RequestCtx, RequestTraits};
use super::scope::{build_scope, ScopeKind, ScopeTemplates};
use super::ws::{WebSocketTransport, WsCtx};
use crate::bridge::inbox::{Event, Inbox};
use crate::bridge::outbox::{enter_loop, LoopLink, Outbox};
use crate::errors::ClientDisconnected;
use crate::state::connection::ConnInfo;
use crate::state::Shared;
use crate::sync::lock_or_recover;

/// What the network side asks an event loop to start.
pub enum Job {
    /// A new request: build its scope and start the app's Task.
    Request(Box<RequestCtx>),
    /// A WebSocket handshake: build its scope and start the app's Task.
    WebSocket(Box<WsCtx>),
    /// A request the network side answered itself (503 over `--limit-concurrency`): its access
    /// log line.
    Refused(Box<Refused>),
}

pub struct Refused {
    pub parts: http::request::Parts,
    pub conn: Arc<ConnInfo>,
    pub status: u16,
}

/// The inbox of one event loop serving ASGI.
pub type AsgiInbox = Inbox<Job>;

pub struct LoopEntry {
    inbox: Arc<AsgiInbox>,
    handler: Py<PyAny>,
    ws_handler: Option<Py<PyAny>>,
    create_task: Py<PyAny>,
    link: Arc<LoopLink>,
    state: Py<PyDict>,
    scopes: ScopeTemplates,
    server: Arc<Shared>,
    /// Whether the handler writes access log lines (`HttpRunner.access_log`).
    access_log: bool,
    /// Reused between drains so a busy loop does not allocate a queue per wakeup.
    batch: Mutex<VecDeque<Event<Job>>>,
}

impl LoopEntry {
    pub fn new(
        event_loop: &Bound<'_, PyAny>,
        handler: Bound<'_, PyAny>,
        ws_handler: Option<Bound<'_, PyAny>>,
        state: Bound<'_, PyDict>,
        inbox: Arc<AsgiInbox>,
        outbox: Arc<Outbox>,
        server: Arc<Shared>,
    ) -> PyResult<Arc<Self>> {
        let py = event_loop.py();
        let access_log = handler
            .getattr(intern!(py, "access_log"))
            .and_then(|flag| flag.is_truthy())
            .unwrap_or(false);
        Ok(Arc::new(LoopEntry {
            inbox,
            handler: handler.unbind(),
            ws_handler: ws_handler.map(Bound::unbind),
            create_task: event_loop.getattr(intern!(py, "create_task"))?.unbind(),
            link: LoopLink::new(event_loop, outbox)?,
            state: state.unbind(),
            scopes: ScopeTemplates::new(py)?,
            server,
            access_log,
            batch: Mutex::new(VecDeque::with_capacity(64)),
        }))
    }

    fn start_request(&self, py: Python<'_>, ctx: RequestCtx) -> PyResult<()> {
        let RequestCtx {
            parts,
            shared,
            respond,
        } = ctx;
        let scope = build_scope(
            py,
            ScopeKind::Http,
            &parts,
            &shared.conn,
            &self.server.settings,
            self.state.bind(py),
            &self.scopes,
        )?;
        let transport = HttpTransport::new(
            shared,
            respond,
            self.link.clone(),
            RequestTraits::of(&parts),
        );
        let coro = self.handler.bind(py).call1((scope, transport))?;
        self.create_task.bind(py).call1((coro,))?;
        Ok(())
    }

    fn log_refused(&self, py: Python<'_>, refused: Refused) -> PyResult<()> {
        if !self.access_log {
            return Ok(());
        }
        let scope = build_scope(
            py,
            ScopeKind::Http,
            &refused.parts,
            &refused.conn,
            &self.server.settings,
            self.state.bind(py),
            &self.scopes,
        )?;
        self.handler
            .bind(py)
            .call_method1(intern!(py, "log_response"), (scope, refused.status))?;
        Ok(())
    }

    fn start_websocket(&self, py: Python<'_>, ctx: WsCtx) -> PyResult<()> {
        let WsCtx {
            parts,
            shared,
            decide,
        } = ctx;
        let Some(handler) = &self.ws_handler else {
            return Ok(()); // dropping `decide` answers 500
        };
        let scope = build_scope(
            py,
            ScopeKind::WebSocket,
            &parts,
            &shared.conn,
            &self.server.settings,
            self.state.bind(py),
            &self.scopes,
        )?;
        let transport = WebSocketTransport::new(shared, decide, self.link.clone());
        let coro = handler.bind(py).call1((scope, transport))?;
        self.create_task.bind(py).call1((coro,))?;
        Ok(())
    }

    fn handle(&self, py: Python<'_>, event: Event<Job>) -> PyResult<()> {
        match event {
            Event::Job(Job::Request(ctx)) => self.start_request(py, *ctx),
            Event::Job(Job::WebSocket(ctx)) => self.start_websocket(py, *ctx),
            Event::Job(Job::Refused(refused)) => self.log_refused(py, *refused),
            Event::Wake(shared) => shared.wake_waiters(py),
            Event::Log(level, message) => {
                self.server
                    .error_logger()
                    .bind(py)
                    .call_method1(intern!(py, "log"), (level.number(), message))?;
                Ok(())
            }
            Event::SendDone { future, delivered } => {
                let fut = future.bind(py);
                if fut.call_method0(intern!(py, "done"))?.is_truthy()? {
                    return Ok(());
                }
                if delivered {
                    fut.call_method1(intern!(py, "set_result"), (py.None(),))?;
                } else {
                    let exc = ClientDisconnected::new_err("client disconnected");
                    fut.call_method1(intern!(py, "set_exception"), (exc.into_value(py),))?;
                }
                Ok(())
            }
        }
    }
}

#[pyclass(module = "turboasgi._core", frozen)]
pub struct LoopHandle {
    entry: Arc<LoopEntry>,
}

impl LoopHandle {
    pub fn new(entry: Arc<LoopEntry>) -> Self {
        LoopHandle { entry }
    }

    pub fn create_future(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.entry.link.new_future(py)
    }

    pub fn inbox(&self) -> Arc<AsgiInbox> {
        self.entry.inbox.clone()
    }
}

#[pymethods]
impl LoopHandle {
    fn fileno(&self) -> i32 {
        self.entry.inbox.fileno()
    }

    fn drain(&self, py: Python<'_>) {
        let mut batch = lock_or_recover(&self.entry.batch);
        enter_loop(&self.entry.link, &self.entry.inbox);
        self.entry.inbox.take_all(&mut batch);
        while let Some(event) = batch.pop_front() {
            if let Err(err) = self.entry.handle(py, event) {
                report(py, err);
            }
        }
    }
}

/// An error inside drain must not escape into the loop's reader callback: report it instead.
fn report(py: Python<'_>, err: PyErr) {
    let logged = py
        .import("logging")
        .and_then(|l| l.call_method1("getLogger", ("turboasgi.error",)))
        .and_then(|logger| {
            let kwargs = PyDict::new(py);
            kwargs.set_item("exc_info", err.clone_ref(py).into_value(py))?;
            logger.call_method(
                "error",
                ("Internal error while dispatching a request",),
                Some(&kwargs),
            )
        });
    if logged.is_err() {
        err.print(py);
    }
}
