//! One HTTP request as the app sees it: the shared state between the hyper task and the loop
//! thread, and the `HttpTransport` whose `receive`/`send` the app awaits.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::{Bytes, BytesMut};
use http::{header, HeaderMap, HeaderValue, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use pyo3::exceptions::PyRuntimeError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use tokio::sync::{mpsc, oneshot, Notify};

use super::message::{parse_http_send, HttpSend};
use crate::bridge::awaitable::{done, resolve_waiters};
use crate::bridge::inbox::{Notifier, Wakeable};
use crate::bridge::outbox::LoopLink;
use crate::errors::ClientDisconnected;
use crate::state::body::{OnWire, RequestGuard, ResponseBody};
use crate::state::connection::ConnInfo;
use crate::state::responses;
use crate::state::Shared;
use crate::sync::lock_or_recover;

/// How many request-body bytes are read ahead of the app.
const READ_AHEAD: usize = 64 * 1024;
/// Streamed response chunks buffered between `send()` and the socket.
const STREAM_CHANNEL: usize = 8;

pub struct RequestCtx {
    pub parts: http::request::Parts,
    pub shared: Arc<RequestShared>,
    pub respond: oneshot::Sender<Response<ResponseBody>>,
}

#[derive(PartialEq, Eq, Clone, Copy)]
enum BodyState {
    Reading,
    Done,
    Failed,
}

struct RequestState {
    body: Option<Incoming>,
    pump_started: bool,
    chunks: VecDeque<Bytes>,
    buffered: usize,
    body_state: BodyState,
    final_delivered: bool,
    waiters: Vec<Py<PyAny>>,
    disconnected: bool,
    response_complete: bool,
}

/// State shared by the hyper side (body pump, response body, drop guard) and the loop thread.
pub struct RequestShared {
    state: Mutex<RequestState>,
    inbox: Arc<dyn Notifier>,
    pub server: Arc<Shared>,
    pub conn: Arc<ConnInfo>,
    space: Notify,
    /// The request body broke (bad chunked encoding): the hyper task answers 400 if it can.
    pub body_failed: Notify,
    pub finished_cleanly: AtomicBool,
    on_wire_done: AtomicBool,
}

impl RequestShared {
    pub fn new(
        body: Incoming,
        inbox: Arc<dyn Notifier>,
        server: Arc<Shared>,
        conn: Arc<ConnInfo>,
        has_body: bool,
    ) -> Arc<Self> {
        Arc::new(RequestShared {
            state: Mutex::new(RequestState {
                body: Some(body),
                pump_started: false,
                chunks: VecDeque::new(),
                buffered: 0,
                body_state: if has_body {
                    BodyState::Reading
                } else {
                    BodyState::Done
                },
                final_delivered: false,
                waiters: Vec::new(),
                disconnected: false,
                response_complete: false,
            }),
            inbox,
            server,
            conn,
            space: Notify::new(),
            body_failed: Notify::new(),
            finished_cleanly: AtomicBool::new(false),
            on_wire_done: AtomicBool::new(false),
        })
    }

    fn lock(&self) -> MutexGuard<'_, RequestState> {
        lock_or_recover(&self.state)
    }

    pub fn body_failed_now(&self) -> bool {
        self.lock().body_state == BodyState::Failed
    }

    pub fn is_disconnected(&self) -> bool {
        self.lock().disconnected
    }

    fn start_pump(self: &Arc<Self>, st: &mut RequestState) {
        if st.pump_started || st.body_state != BodyState::Reading {
            return;
        }
        st.pump_started = true;
        if let Some(body) = st.body.take() {
            let shared = self.clone();
            self.server.runtime.spawn(pump_body(shared, body));
        }
    }

    /// The next `receive()` event if one is ready now.
    fn ready_event(&self, py: Python<'_>, st: &mut RequestState) -> PyResult<Option<Py<PyAny>>> {
        if !st.chunks.is_empty() {
            let data = if st.chunks.len() == 1 {
                st.chunks.pop_front().unwrap_or_default()
            } else {
                let mut joined = BytesMut::with_capacity(st.buffered);
                for c in st.chunks.drain(..) {
                    joined.extend_from_slice(&c);
                }
                joined.freeze()
            };
            st.buffered = 0;
            self.space.notify_one();
            let more = st.body_state == BodyState::Reading;
            if !more {
                st.final_delivered = true;
            }
            return Ok(Some(request_event(py, &data, more)?));
        }
        match st.body_state {
            BodyState::Done if !st.final_delivered => {
                st.final_delivered = true;
                Ok(Some(request_event(py, b"", false)?))
            }
            BodyState::Reading if !st.disconnected => Ok(None),
            _ if st.disconnected || st.response_complete || st.body_state == BodyState::Failed => {
                Ok(Some(disconnect_event(py)?))
            }
            _ => Ok(None),
        }
    }
}

impl OnWire for RequestShared {
    fn finish_on_wire(self: Arc<Self>) {
        if self.on_wire_done.swap(true, Ordering::AcqRel) {
            return;
        }
        self.server.request_finished();
        self.conn.request_finished();
        let wake = {
            let mut st = self.lock();
            // Not a disconnect when every byte of the response was handed over, even if the app's
            // closing `more_body=False` message is still to come (hyper ends a body at its length).
            if !self.finished_cleanly.load(Ordering::Acquire) {
                st.disconnected = true;
            }
            !st.waiters.is_empty()
        };
        if wake {
            self.inbox.wake(self.clone());
        }
    }

    fn finished_cleanly(&self) -> bool {
        self.finished_cleanly.load(Ordering::Acquire)
    }
}

impl Wakeable for RequestShared {
    /// Resolves waiting `receive()` futures with whatever is ready. Loop thread only.
    fn wake_waiters(&self, py: Python<'_>) -> PyResult<()> {
        resolve_waiters(
            py,
            || self.lock(),
            |st: &mut RequestState| &mut st.waiters,
            |py, st| self.ready_event(py, st),
        )
    }
}

fn request_event(py: Python<'_>, data: &[u8], more: bool) -> PyResult<Py<PyAny>> {
    let d = PyDict::new(py);
    d.set_item(intern!(py, "type"), intern!(py, "http.request"))?;
    d.set_item(intern!(py, "body"), PyBytes::new(py, data))?;
    d.set_item(intern!(py, "more_body"), more)?;
    Ok(d.into_any().unbind())
}

fn disconnect_event(py: Python<'_>) -> PyResult<Py<PyAny>> {
    let d = PyDict::new(py);
    d.set_item(intern!(py, "type"), intern!(py, "http.disconnect"))?;
    Ok(d.into_any().unbind())
}

/// Reads the request body into a bounded buffer, a little ahead of the app.
async fn pump_body(shared: Arc<RequestShared>, mut body: Incoming) {
    loop {
        loop {
            {
                let st = shared.lock();
                if st.disconnected || st.response_complete {
                    return;
                }
                if st.buffered < READ_AHEAD {
                    break;
                }
            }
            shared.space.notified().await;
        }
        let frame = body.frame().await;
        let mut failed = false;
        let wake = {
            let mut st = shared.lock();
            match frame {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        if !data.is_empty() {
                            st.buffered += data.len();
                            st.chunks.push_back(data);
                        }
                    }
                    if hyper::body::Body::is_end_stream(&body) {
                        st.body_state = BodyState::Done;
                    }
                }
                Some(Err(_)) => {
                    // A broken body (bad chunked framing) ends the exchange like a disconnect.
                    st.body_state = BodyState::Failed;
                    st.disconnected = true;
                    failed = true;
                }
                None => st.body_state = BodyState::Done,
            }
            !st.waiters.is_empty()
        };
        if failed {
            shared.body_failed.notify_one();
        }
        if wake {
            shared.inbox.wake(shared.clone());
        }
        if shared.lock().body_state != BodyState::Reading {
            return;
        }
    }
}

enum Phase {
    /// Nothing sent yet.
    Idle,
    /// `http.response.start` received; the head waits for the first body message.
    Started {
        status: u16,
        headers: HeaderMap,
        declared_length: Option<u64>,
    },
    Streaming {
        tx: mpsc::Sender<Bytes>,
        declared_length: Option<u64>,
        sent: u64,
    },
    Complete,
}

struct TransportState {
    respond: Option<oneshot::Sender<Response<ResponseBody>>>,
    phase: Phase,
    status: Option<u16>,
}

#[pyclass(module = "turboasgi._core", frozen)]
pub struct HttpTransport {
    shared: Arc<RequestShared>,
    state: Mutex<TransportState>,
    link: Arc<LoopLink>,
    close_after: bool,
}

impl HttpTransport {
    pub fn new(
        shared: Arc<RequestShared>,
        respond: oneshot::Sender<Response<ResponseBody>>,
        link: Arc<LoopLink>,
        close_after: bool,
    ) -> Self {
        HttpTransport {
            shared,
            state: Mutex::new(TransportState {
                respond: Some(respond),
                phase: Phase::Idle,
                status: None,
            }),
            link,
            close_after,
        }
    }

    fn lock(&self) -> MutexGuard<'_, TransportState> {
        lock_or_recover(&self.state)
    }

    fn new_future(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.link.new_future(py)
    }

    fn mark_complete(&self, py: Python<'_>, st: &mut TransportState, clean: bool) -> PyResult<()> {
        st.phase = Phase::Complete;
        if clean {
            self.shared.finished_cleanly.store(true, Ordering::Release);
        }
        self.shared.lock().response_complete = true;
        self.shared.wake_waiters(py)
    }

    fn build_head(
        &self,
        status: u16,
        mut headers: HeaderMap,
        body: ResponseBody,
    ) -> Response<ResponseBody> {
        let mut response = Response::new(body);
        let code = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
        *response.status_mut() = code;
        if code.canonical_reason().is_none() {
            // hyper would write "<none>"; uvicorn sends an empty reason phrase
            response
                .extensions_mut()
                .insert(hyper::ext::ReasonPhrase::from_static(b""));
        }
        if self.close_after {
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        *response.headers_mut() = headers;
        response
    }

    fn deliver(
        &self,
        py: Python<'_>,
        st: &mut TransportState,
        response: Response<ResponseBody>,
    ) -> PyResult<()> {
        let sent = match st.respond.take() {
            Some(tx) => self.link.respond(py, tx, response)?,
            None => false,
        };
        if sent {
            Ok(())
        } else {
            Err(ClientDisconnected::new_err("client disconnected"))
        }
    }

    fn send_streamed(
        &self,
        py: Python<'_>,
        st: &mut TransportState,
        chunk: Bytes,
        more_body: bool,
    ) -> PyResult<Py<PyAny>> {
        let Phase::Streaming {
            tx,
            declared_length,
            sent,
        } = &mut st.phase
        else {
            return Err(PyRuntimeError::new_err("response is not streaming"));
        };
        *sent += chunk.len() as u64;
        if let Some(expected) = *declared_length {
            if *sent > expected || (!more_body && *sent < expected) {
                let msg = if *sent > expected {
                    "Response content longer than Content-Length"
                } else {
                    "Response content shorter than Content-Length"
                };
                self.abort(py, st)?;
                return Err(PyRuntimeError::new_err(msg));
            }
        }
        let tx = tx.clone();
        if !more_body || *declared_length == Some(*sent) {
            self.shared.finished_cleanly.store(true, Ordering::Release);
        }
        let outcome = if chunk.is_empty() {
            Ok(())
        } else {
            tx.try_send(chunk)
        };
        let result = match outcome {
            Ok(()) => Ok(self.link.sent(py)),
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.shared.finished_cleanly.store(false, Ordering::Release);
                st.phase = Phase::Complete;
                self.shared.lock().response_complete = true;
                return Err(ClientDisconnected::new_err("client disconnected"));
            }
            Err(mpsc::error::TrySendError::Full(chunk)) => {
                // The client reads slower than the app writes: wait for room in the channel.
                let fut = self.new_future(py)?;
                let resolve = fut.clone_ref(py);
                let inbox = self.shared.inbox.clone();
                self.shared.server.runtime.spawn(async move {
                    let delivered = tx.send(chunk).await.is_ok();
                    inbox.resolve(resolve, delivered);
                });
                Ok(fut)
            }
        };
        if !more_body {
            self.mark_complete(py, st, true)?;
        }
        result
    }

    fn abort(&self, py: Python<'_>, st: &mut TransportState) -> PyResult<()> {
        self.shared.finished_cleanly.store(false, Ordering::Release);
        st.phase = Phase::Complete;
        st.respond = None;
        self.shared.lock().response_complete = true;
        self.shared.wake_waiters(py)
    }
}

fn declared_length(headers: &HeaderMap) -> PyResult<Option<u64>> {
    match headers.get(header::CONTENT_LENGTH) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .map(Some)
            .ok_or_else(|| {
                pyo3::exceptions::PyValueError::new_err(
                    "http.response.start 'headers': content-length must be a non-negative integer",
                )
            }),
    }
}

#[pymethods]
impl HttpTransport {
    fn receive(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let mut st = self.shared.lock();
        if st.waiters.is_empty() {
            if let Some(event) = self.shared.ready_event(py, &mut st)? {
                return done(py, event);
            }
        }
        self.shared.start_pump(&mut st);
        let fut = self.new_future(py)?;
        st.waiters.push(fut.clone_ref(py));
        Ok(fut)
    }

    fn send(&self, py: Python<'_>, message: Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let parsed = parse_http_send(&message)?;
        let mut st = self.lock();
        if self.shared.is_disconnected() {
            return Err(ClientDisconnected::new_err("client disconnected"));
        }
        match (parsed, &mut st.phase) {
            (HttpSend::Start { status, headers: pairs }, Phase::Idle) => {
                // The defaults go in first, in the same map: no second map per response.
                let mut headers = responses::default_headers(
                    |name| pairs.iter().any(|(app_name, _)| app_name == name),
                    pairs.len(),
                    &self.shared.server.settings,
                );
                for (name, value) in pairs {
                    if name == header::TRANSFER_ENCODING {
                        continue; // spec H3: the server owns response framing
                    }
                    headers.append(name, value);
                }
                let declared_length = declared_length(&headers)?;
                st.status = Some(status);
                st.phase = Phase::Started {
                    status,
                    headers,
                    declared_length,
                };
                Ok(self.link.sent(py))
            }
            (HttpSend::Start { .. }, _) => Err(PyRuntimeError::new_err(
                "Unexpected ASGI message 'http.response.start' sent, after response already started.",
            )),
            (HttpSend::Body { .. }, Phase::Idle) => Err(PyRuntimeError::new_err(
                "Expected ASGI message 'http.response.start', but got 'http.response.body'.",
            )),
            (HttpSend::Body { .. }, Phase::Complete) => Err(PyRuntimeError::new_err(
                "Unexpected ASGI message 'http.response.body' sent, after response already completed.",
            )),
            (HttpSend::Body { body, more_body }, Phase::Started { .. }) => {
                let Phase::Started {
                    status,
                    headers,
                    declared_length,
                } = std::mem::replace(&mut st.phase, Phase::Complete)
                else {
                    return Err(PyRuntimeError::new_err("invalid response state"));
                };
                if !more_body {
                    if let Some(expected) = declared_length {
                        let len = body.len() as u64;
                        if len != expected && !bodyless_status(status) {
                            self.abort(py, &mut st)?;
                            return Err(PyRuntimeError::new_err(if len > expected {
                                "Response content longer than Content-Length"
                            } else {
                                "Response content shorter than Content-Length"
                            }));
                        }
                    }
                    let response = self.build_head(status, headers, ResponseBody::Full(Some(body)));
                    self.shared.finished_cleanly.store(true, Ordering::Release);
                    self.shared.lock().response_complete = true;
                    let delivered = self.deliver(py, &mut st, response);
                    self.mark_complete(py, &mut st, delivered.is_ok())?;
                    delivered?;
                    return Ok(self.link.sent(py));
                }
                let (tx, rx) = mpsc::channel(STREAM_CHANNEL);
                let guard = RequestGuard::new(self.shared.clone());
                let response = self.build_head(status, headers, ResponseBody::Stream {
                        rx,
                        guard,
                        flushed_before_abort: false,
                    },
                );
                st.phase = Phase::Streaming {
                    tx,
                    declared_length,
                    sent: 0,
                };
                if let Err(e) = self.deliver(py, &mut st, response) {
                    st.phase = Phase::Complete;
                    self.shared.lock().response_complete = true;
                    return Err(e);
                }
                self.send_streamed(py, &mut st, body, true)
            }
            (HttpSend::Body { body, more_body }, Phase::Streaming { .. }) => {
                self.send_streamed(py, &mut st, body, more_body)
            }
        }
    }

    /// The app raised or returned without completing its response. True when the client gets an
    /// error response instead (nothing was sent yet), false when a response under way is cut off.
    fn fail(&self, py: Python<'_>) -> PyResult<bool> {
        let mut st = self.lock();
        match st.phase {
            Phase::Idle | Phase::Started { .. } => {
                let settings = &self.shared.server.settings;
                let response = if self.shared.body_failed_now() {
                    responses::bad_request(settings)
                } else {
                    responses::internal_error(settings)
                };
                self.shared.lock().response_complete = true;
                let _ = self.deliver(py, &mut st, response);
                st.status = Some(500);
                self.mark_complete(py, &mut st, false)?;
                Ok(true)
            }
            Phase::Streaming { .. } => self.abort(py, &mut st).map(|()| false),
            Phase::Complete => Ok(false),
        }
    }

    #[getter]
    fn status(&self) -> Option<u16> {
        self.lock().status
    }

    #[getter]
    fn response_started(&self) -> bool {
        !matches!(self.lock().phase, Phase::Idle)
    }

    #[getter]
    fn client_disconnected(&self) -> bool {
        self.shared.is_disconnected()
    }

    #[getter]
    fn response_complete(&self) -> bool {
        matches!(self.lock().phase, Phase::Complete)
    }
}

fn bodyless_status(status: u16) -> bool {
    status < 200 || status == 204 || status == 304
}

/// Whether a response to a request of this version must close the connection (HTTP/1.0 never
/// keeps it open).
pub fn close_after(version: http::Version) -> bool {
    version == http::Version::HTTP_10 || version == http::Version::HTTP_09
}
