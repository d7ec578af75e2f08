//! One HTTP request as the app sees it: the shared state between the hyper task and the loop
//! thread, and the `HttpTransport` whose `receive`/`send` the app awaits.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use futures_util::FutureExt;
use http::{header, HeaderMap, HeaderName, HeaderValue, Response, StatusCode};
use http_body::Frame;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use pyo3::exceptions::PyRuntimeError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use tokio::sync::{mpsc, oneshot, Notify};

use super::message::{parse_http_send, HttpSend};
use super::pathsend::open_regular_file;
use super::scope::response_trailers_possible;
use crate::bridge::awaitable::{done, resolve_waiters};
use crate::bridge::inbox::{Notifier, Wakeable};
use crate::bridge::outbox::{HeadFlush, LoopLink};
use crate::config::Settings;
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
/// A request body the app left unread is read and dropped after the response when at most this
/// much of it is still to come (the connection stays open); a longer or unknown rest closes the
/// connection, announced with `connection: close`.
const DRAIN_LIMIT: u64 = 64 * 1024;

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
    /// Body bytes read from the client so far.
    received: u64,
    /// The response is complete and the app's unread body is being read and dropped.
    draining: bool,
    /// The body failed because `--timeout-request-body` ran out (not because of bad framing).
    body_timed_out: bool,
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
    /// The body's Content-Length, when it has one.
    body_length: Option<u64>,
    /// The client waits for `100 Continue` before it sends the body.
    expects_continue: bool,
}

impl RequestShared {
    pub fn new(
        body: Incoming,
        inbox: Arc<dyn Notifier>,
        server: Arc<Shared>,
        conn: Arc<ConnInfo>,
        has_body: bool,
        expects_continue: bool,
    ) -> Arc<Self> {
        let body_length = hyper::body::Body::size_hint(&body).exact();
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
                received: 0,
                draining: false,
                body_timed_out: false,
            }),
            inbox,
            server,
            conn,
            space: Notify::new(),
            body_failed: Notify::new(),
            finished_cleanly: AtomicBool::new(false),
            on_wire_done: AtomicBool::new(false),
            body_length,
            expects_continue,
        })
    }

    /// A client waiting for `100 Continue` that the app never asked for sends no body: reading it
    /// now would send the `100 Continue` after the final response.
    fn body_never_invited(&self, st: &RequestState) -> bool {
        self.expects_continue && !st.pump_started
    }

    /// Whether the response must close the connection because the app left more of the request
    /// body unread than is worth reading and dropping.
    fn unread_body_closes(&self) -> bool {
        let st = self.lock();
        if st.body_state != BodyState::Reading {
            return false;
        }
        if self.body_never_invited(&st) {
            return true;
        }
        match self.body_length {
            Some(length) => length.saturating_sub(st.received) > DRAIN_LIMIT,
            None => true,
        }
    }

    /// The response is complete: a short unread body is read and dropped so that the connection can
    /// carry the next request (otherwise hyper would close it without a word).
    fn drain_unread_body(self: &Arc<Self>) {
        let mut st = self.lock();
        let short_rest = self
            .body_length
            .is_some_and(|length| length.saturating_sub(st.received) <= DRAIN_LIMIT);
        if st.body_state != BodyState::Reading
            || st.disconnected
            || !short_rest
            || self.body_never_invited(&st)
        {
            return;
        }
        st.draining = true;
        st.chunks.clear();
        st.buffered = 0;
        self.space.notify_one();
        self.start_pump(&mut st);
    }

    fn lock(&self) -> MutexGuard<'_, RequestState> {
        lock_or_recover(&self.state)
    }

    /// The server's answer to a request whose body failed: 400 for bad framing, 408 when
    /// `--timeout-request-body` ran out. None while the body has not failed.
    pub fn body_failure_response(&self, settings: &Settings) -> Option<Response<ResponseBody>> {
        let st = self.lock();
        if st.body_state != BodyState::Failed {
            return None;
        }
        Some(if st.body_timed_out {
            responses::request_timeout(settings)
        } else {
            responses::bad_request(settings)
        })
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
            let idle = self.server.settings.timeout_keep_alive;
            self.server.runtime.spawn(pump_body(shared, body, idle));
        }
    }

    /// Takes the body bytes hyper already holds, without waiting, before the request goes to the
    /// loop: a small body usually arrives with its head, and the app's first `receive()` then needs
    /// no round trip to the network thread (measured on FastAPI POST: 1.6 context switches per
    /// request before). Never for a client waiting for `100 Continue`: reading would send it.
    pub fn take_ready_body(&self) {
        if self.expects_continue {
            return;
        }
        let mut st = self.lock();
        let Some(mut body) = st.body.take() else {
            return;
        };
        let mut failed = false;
        while st.body_state == BodyState::Reading && st.buffered < READ_AHEAD {
            let Some(frame) = body.frame().now_or_never() else {
                break;
            };
            failed = record_frame(&mut st, frame.map(|r| r.map_err(drop)), &body);
        }
        if st.body_state == BodyState::Reading {
            st.body = Some(body);
        }
        drop(st);
        if failed {
            self.body_failed.notify_one();
        }
    }

    /// The next `receive()` event if one is ready now.
    fn ready_event(&self, py: Python<'_>, st: &mut RequestState) -> PyResult<Option<Py<PyAny>>> {
        if !st.chunks.is_empty() {
            // Copied once, straight into the `bytes` object the app gets (several chunks were
            // joined into one buffer first, then copied again).
            let data = if st.chunks.len() == 1 {
                let chunk = st.chunks.pop_front().unwrap_or_default();
                PyBytes::new(py, &chunk)
            } else {
                let total = st.chunks.iter().map(Bytes::len).sum();
                PyBytes::new_with(py, total, |buf| {
                    let mut at = 0;
                    for c in st.chunks.drain(..) {
                        buf[at..at + c.len()].copy_from_slice(&c);
                        at += c.len();
                    }
                    Ok(())
                })?
            };
            st.buffered = 0;
            self.space.notify_one();
            let more = st.body_state == BodyState::Reading;
            if !more {
                st.final_delivered = true;
            }
            return Ok(Some(request_event(py, data, more)?));
        }
        match st.body_state {
            BodyState::Done if !st.final_delivered => {
                st.final_delivered = true;
                Ok(Some(request_event(py, PyBytes::new(py, b""), false)?))
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

fn request_event(py: Python<'_>, body: Bound<'_, PyBytes>, more: bool) -> PyResult<Py<PyAny>> {
    let d = PyDict::new(py);
    d.set_item(intern!(py, "type"), intern!(py, "http.request"))?;
    d.set_item(intern!(py, "body"), body)?;
    d.set_item(intern!(py, "more_body"), more)?;
    Ok(d.into_any().unbind())
}

fn disconnect_event(py: Python<'_>) -> PyResult<Py<PyAny>> {
    let d = PyDict::new(py);
    d.set_item(intern!(py, "type"), intern!(py, "http.disconnect"))?;
    Ok(d.into_any().unbind())
}

/// Keeps what one read of the body gave; true when the body broke.
fn record_frame(
    st: &mut RequestState,
    frame: Option<Result<Frame<Bytes>, ()>>,
    body: &Incoming,
) -> bool {
    match frame {
        Some(Ok(frame)) => {
            if let Ok(data) = frame.into_data() {
                st.received += data.len() as u64;
                if !data.is_empty() && !st.draining {
                    st.buffered += data.len();
                    st.chunks.push_back(data);
                }
            }
            if hyper::body::Body::is_end_stream(body) {
                st.body_state = BodyState::Done;
            }
            false
        }
        Some(Err(())) => {
            // A broken body (bad chunked framing) ends the exchange like a disconnect.
            st.body_state = BodyState::Failed;
            st.disconnected = true;
            true
        }
        None => {
            st.body_state = BodyState::Done;
            false
        }
    }
}

/// Reads the request body into a bounded buffer, a little ahead of the app; once draining, reads
/// and drops the rest, giving up (the connection then closes) after `idle` without data.
async fn pump_body(shared: Arc<RequestShared>, mut body: Incoming, idle: std::time::Duration) {
    // `--timeout-request-body`: what is left of the time the client may keep us waiting for its body
    // (time the app takes to read is not counted: the pump waits for room before it reads).
    let mut client_time = shared.server.settings.timeout_request_body;
    loop {
        let draining = loop {
            {
                let st = shared.lock();
                if st.disconnected || (st.response_complete && !st.draining) {
                    return;
                }
                if st.buffered < READ_AHEAD || st.draining {
                    break st.draining;
                }
            }
            shared.space.notified().await;
        };
        // Errors of hyper's body and a timeout end the body alike: only the kind is kept.
        let frame = if draining {
            match tokio::time::timeout(idle, body.frame()).await {
                Ok(frame) => frame.map(|r| r.map_err(drop)),
                Err(_) => return,
            }
        } else if let Some(left) = client_time {
            let started = tokio::time::Instant::now();
            match tokio::time::timeout(left, body.frame()).await {
                Ok(frame) => {
                    client_time = Some(left.saturating_sub(started.elapsed()));
                    frame.map(|r| r.map_err(drop))
                }
                Err(_) => {
                    shared.lock().body_timed_out = true;
                    Some(Err(()))
                }
            }
        } else {
            body.frame().await.map(|r| r.map_err(drop))
        };
        let (failed, wake) = {
            let mut st = shared.lock();
            let failed = record_frame(&mut st, frame, &body);
            (failed, !st.waiters.is_empty())
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
    /// `http.response.start` received; the head waits for the first body message, or for the end
    /// of this loop iteration if the app awaits something else first (`flush_head`).
    Started {
        status: u16,
        headers: HeaderMap,
        declared_length: Option<u64>,
    },
    Streaming {
        tx: mpsc::Sender<Frame<Bytes>>,
        declared_length: Option<u64>,
        sent: u64,
    },
    /// The body is complete; `http.response.trailers` messages are collected until the last one.
    Trailers {
        tx: mpsc::Sender<Frame<Bytes>>,
        fields: HeaderMap,
    },
    /// The head of a response without a body (to HEAD, or 1xx/204/304) went out: the app's body
    /// messages are accepted and dropped until its last one.
    Discarding,
    Complete,
}

struct TransportState {
    respond: Option<oneshot::Sender<Response<ResponseBody>>>,
    phase: Phase,
    status: Option<u16>,
    /// The status and declared length of a head just handed to the network side, for
    /// `on_response` once the lock is released.
    to_report: Option<(u16, Option<u64>)>,
    /// `http.response.start` said `trailers: True`: the response ends with the last trailers message.
    trailers_expected: bool,
}

/// What the request says about its response: whether it may have a body, and the connection.
#[derive(Clone, Copy)]
pub struct RequestTraits {
    head: bool,
    /// HTTP/1.0 (or 0.9): the connection closes unless the client asked for keep-alive.
    http10: bool,
    /// An HTTP/1.0 request with `Connection: keep-alive`.
    http10_keep_alive: bool,
    /// Trailers the app sends reach the client (else they are accepted and dropped).
    trailers: bool,
}

impl RequestTraits {
    pub fn of(parts: &http::request::Parts) -> Self {
        let http10 =
            parts.version == http::Version::HTTP_10 || parts.version == http::Version::HTTP_09;
        RequestTraits {
            head: parts.method == http::Method::HEAD,
            http10,
            http10_keep_alive: http10 && has_connection_token(&parts.headers, "keep-alive"),
            trailers: response_trailers_possible(parts),
        }
    }
}

fn has_connection_token(headers: &HeaderMap, token: &str) -> bool {
    headers.get_all(header::CONNECTION).iter().any(|v| {
        v.to_str()
            .map(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
            .unwrap_or(false)
    })
}

#[pyclass(module = "turboasgi._core", frozen)]
pub struct HttpTransport {
    shared: Arc<RequestShared>,
    state: Mutex<TransportState>,
    link: Arc<LoopLink>,
    request: RequestTraits,
    /// Called once with the status the client is sent, when its head goes out: the access log.
    on_response: Mutex<Option<Py<PyAny>>>,
}

/// Lets the loop's outbox send a head the app has not followed with a body by the end of the loop
/// iteration (the app awaits something else first: a stream, an SSE endpoint).
impl HeadFlush for Py<HttpTransport> {
    fn flush_head(&self, py: Python<'_>) {
        self.get().flush_head(py);
    }
}

impl HttpTransport {
    pub fn new(
        shared: Arc<RequestShared>,
        respond: oneshot::Sender<Response<ResponseBody>>,
        link: Arc<LoopLink>,
        request: RequestTraits,
    ) -> Self {
        HttpTransport {
            shared,
            state: Mutex::new(TransportState {
                respond: Some(respond),
                phase: Phase::Idle,
                status: None,
                to_report: None,
                trailers_expected: false,
            }),
            link,
            request,
            on_response: Mutex::new(None),
        }
    }

    /// Tells the `on_response` callable the status of a head that went out. Called with no lock
    /// held, so the callable may use the transport.
    fn report(&self, py: Python<'_>) {
        let Some((status, length)) = self.lock().to_report.take() else {
            return;
        };
        let Some(callback) = lock_or_recover(&self.on_response).take() else {
            return;
        };
        if let Err(err) = callback.call1(py, (status, length)) {
            err.write_unraisable(py, None);
        }
    }

    /// Whether a response with this status carries no body on the wire.
    fn bodyless(&self, status: u16) -> bool {
        self.request.head || bodyless_status(status)
    }

    /// Sends the head of a started response as a stream when no body came in the same loop
    /// iteration. Loop thread only.
    fn flush_head(&self, py: Python<'_>) {
        self.flush_head_locked(py);
        self.report(py);
    }

    fn flush_head_locked(&self, py: Python<'_>) {
        let mut st = self.lock();
        let Phase::Started { status, .. } = st.phase else {
            return;
        };
        let result = if self.bodyless(status) {
            self.send_bodyless(py, &mut st, None, true)
        } else {
            self.start_stream(py, &mut st)
        };
        if result.is_err() {
            // The client is gone: the app's next send() reports it.
            st.phase = Phase::Complete;
            let mut request = self.shared.lock();
            request.response_complete = true;
            request.disconnected = true;
        }
    }

    /// Takes the head of a started response out of the state (the phase becomes `Complete`).
    fn take_head(st: &mut TransportState) -> Option<(u16, HeaderMap, Option<u64>)> {
        match std::mem::replace(&mut st.phase, Phase::Complete) {
            Phase::Started {
                status,
                headers,
                declared_length,
            } => Some((status, headers, declared_length)),
            other => {
                st.phase = other;
                None
            }
        }
    }

    /// Sends the head of a response that has no body on the wire; the app's body is dropped.
    fn send_bodyless(
        &self,
        py: Python<'_>,
        st: &mut TransportState,
        body: Option<Bytes>,
        more_body: bool,
    ) -> PyResult<()> {
        let Some((status, headers, declared_length)) = Self::take_head(st) else {
            return Err(PyRuntimeError::new_err("invalid response state"));
        };
        // A declared length stays in the head (RFC 9110 8.6: the length a GET would have); without
        // one, a complete body still gives hyper the length to announce.
        let body = match body {
            Some(b) if declared_length.is_none() && !more_body => ResponseBody::Full(Some(b)),
            _ => ResponseBody::Full(None),
        };
        let response = self.build_head(status, headers, body, true);
        self.shared.finished_cleanly.store(true, Ordering::Release);
        let delivered = self.deliver(py, st, response);
        if more_body && delivered.is_ok() {
            st.phase = Phase::Discarding;
            return Ok(());
        }
        self.mark_complete(py, st, delivered.is_ok())?;
        delivered
    }

    /// Sends the head of a streamed response; its body follows through the channel.
    fn start_stream(&self, py: Python<'_>, st: &mut TransportState) -> PyResult<()> {
        let Some((status, headers, declared_length)) = Self::take_head(st) else {
            return Err(PyRuntimeError::new_err("invalid response state"));
        };
        let (tx, rx) = mpsc::channel(STREAM_CHANNEL);
        let guard = RequestGuard::new(self.shared.clone());
        let body = ResponseBody::Stream {
            rx,
            guard,
            flushed_before_abort: false,
        };
        let response = self.build_head(status, headers, body, declared_length.is_some());
        st.phase = Phase::Streaming {
            tx,
            declared_length,
            sent: 0,
        };
        if let Err(e) = self.deliver(py, st, response) {
            st.phase = Phase::Complete;
            self.shared.lock().response_complete = true;
            return Err(e);
        }
        Ok(())
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
            self.shared.drain_unread_body();
        }
        self.shared.lock().response_complete = true;
        self.shared.wake_waiters(py)
    }

    /// `length_known`: the body's end is known without closing the connection (a complete body,
    /// a declared length or no body at all), which HTTP/1.0 keep-alive needs.
    fn build_head(
        &self,
        status: u16,
        mut headers: HeaderMap,
        body: ResponseBody,
        length_known: bool,
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
        self.connection_header(&mut headers, length_known);
        if self.request.http10 {
            // hyper adds `keep-alive` to an HTTP/1.1 head the client wants kept alive, even after
            // our `close`; an HTTP/1.0 head is left as it is.
            *response.version_mut() = http::Version::HTTP_10;
        }
        *response.headers_mut() = headers;
        response
    }

    /// Announces exactly one connection option, and the one hyper will act on.
    fn connection_header(&self, headers: &mut HeaderMap, length_known: bool) {
        if has_connection_token(headers, "close") {
            return; // the app's own close is honoured as it is
        }
        let close = self.shared.unread_body_closes()
            || (self.request.http10 && !(self.request.http10_keep_alive && length_known));
        if close {
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        } else if self.request.http10 {
            headers.insert(header::CONNECTION, HeaderValue::from_static("keep-alive"));
        }
    }

    fn deliver(
        &self,
        py: Python<'_>,
        st: &mut TransportState,
        response: Response<ResponseBody>,
    ) -> PyResult<()> {
        let reported = (response.status().as_u16(), reported_length(&response));
        let sent = match st.respond.take() {
            Some(tx) => self.link.respond(py, tx, response)?,
            None => false,
        };
        if sent {
            st.to_report = Some(reported);
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
        let trailers_expected = st.trailers_expected;
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
        if (!more_body || *declared_length == Some(*sent)) && !trailers_expected {
            self.shared.finished_cleanly.store(true, Ordering::Release);
        }
        let result = if chunk.is_empty() {
            Ok(self.link.sent(py))
        } else {
            self.queue_frame(py, st, tx.clone(), Frame::data(chunk))
        };
        if !more_body && matches!(st.phase, Phase::Streaming { .. }) {
            if trailers_expected {
                st.phase = Phase::Trailers {
                    tx,
                    fields: HeaderMap::new(),
                };
            } else {
                self.mark_complete(py, st, true)?;
            }
        }
        result
    }

    /// Collects trailer fields; the last message sends them (when the client can get them) and
    /// ends the response.
    fn send_trailers(
        &self,
        py: Python<'_>,
        st: &mut TransportState,
        pairs: Vec<(HeaderName, HeaderValue)>,
        more_trailers: bool,
    ) -> PyResult<Py<PyAny>> {
        let Phase::Trailers { tx, fields } = &mut st.phase else {
            return Err(PyRuntimeError::new_err("response is not sending trailers"));
        };
        for (name, value) in pairs {
            fields.append(name, value);
        }
        if more_trailers {
            return Ok(self.link.sent(py));
        }
        let (tx, fields) = (tx.clone(), std::mem::take(fields));
        self.shared.finished_cleanly.store(true, Ordering::Release);
        let result = if self.request.trailers && !fields.is_empty() {
            self.queue_frame(py, st, tx, Frame::trailers(fields))
        } else {
            Ok(self.link.sent(py))
        };
        if matches!(st.phase, Phase::Trailers { .. }) {
            self.mark_complete(py, st, true)?;
        }
        result
    }

    /// Hands a frame to the response channel: at once when it fits, else `send()` returns a future
    /// resolved once the client has read enough.
    fn queue_frame(
        &self,
        py: Python<'_>,
        st: &mut TransportState,
        tx: mpsc::Sender<Frame<Bytes>>,
        frame: Frame<Bytes>,
    ) -> PyResult<Py<PyAny>> {
        match tx.try_send(frame) {
            Ok(()) => Ok(self.link.sent(py)),
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.shared.finished_cleanly.store(false, Ordering::Release);
                st.phase = Phase::Complete;
                self.shared.lock().response_complete = true;
                Err(ClientDisconnected::new_err("client disconnected"))
            }
            Err(mpsc::error::TrySendError::Full(frame)) => {
                // The client reads slower than the app writes: wait for room in the channel.
                let fut = self.new_future(py)?;
                let resolve = fut.clone_ref(py);
                let inbox = self.shared.inbox.clone();
                self.shared.server.runtime.spawn(async move {
                    let delivered = tx.send(frame).await.is_ok();
                    inbox.resolve(resolve, delivered);
                });
                Ok(fut)
            }
        }
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

    fn send(slf: &Bound<'_, Self>, message: Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let this = slf.get();
        let result = this.send_message(slf.py(), message, slf);
        this.report(slf.py());
        result
    }

    /// The app raised or returned without completing its response. True when the client gets an
    /// error response instead (nothing was sent yet), false when a response under way is cut off.
    fn fail(&self, py: Python<'_>) -> PyResult<bool> {
        let result = self.fail_locked(py);
        self.report(py);
        result
    }

    /// Registers the callable told the status the client is sent, when the head goes out.
    fn on_response(&self, callback: Py<PyAny>) {
        *lock_or_recover(&self.on_response) = Some(callback);
    }

    /// The status the client was sent, or the app's when nothing went out (yet).
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

impl HttpTransport {
    fn send_message(
        &self,
        py: Python<'_>,
        message: Bound<'_, PyAny>,
        me: &Bound<'_, Self>,
    ) -> PyResult<Py<PyAny>> {
        let parsed = parse_http_send(&message)?;
        let mut st = self.lock();
        if self.shared.is_disconnected() {
            return Err(ClientDisconnected::new_err("client disconnected"));
        }
        let trailers_expected = st.trailers_expected;
        match (parsed, &mut st.phase) {
            (
                HttpSend::Start {
                    status,
                    headers: pairs,
                    trailers,
                },
                Phase::Idle,
            ) => {
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
                st.trailers_expected = trailers;
                st.phase = Phase::Started {
                    status,
                    headers,
                    declared_length,
                };
                // Sent at the end of this loop iteration unless a body follows before.
                self.link.flush_head_later(py, Box::new(me.clone().unbind()))?;
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
            (HttpSend::Body { body, more_body }, Phase::Started { status, .. }) => {
                let status = *status;
                if self.bodyless(status) {
                    let more = more_body || st.trailers_expected;
                    self.send_bodyless(py, &mut st, Some(body), more)?;
                    return Ok(self.link.sent(py));
                }
                if more_body || st.trailers_expected {
                    self.start_stream(py, &mut st)?;
                    return self.send_streamed(py, &mut st, body, more_body);
                }
                let Some((status, headers, declared_length)) = Self::take_head(&mut st) else {
                    return Err(PyRuntimeError::new_err("invalid response state"));
                };
                if let Some(expected) = declared_length {
                    let len = body.len() as u64;
                    if len != expected {
                        self.abort(py, &mut st)?;
                        return Err(PyRuntimeError::new_err(if len > expected {
                            "Response content longer than Content-Length"
                        } else {
                            "Response content shorter than Content-Length"
                        }));
                    }
                }
                let response =
                    self.build_head(status, headers, ResponseBody::Full(Some(body)), true);
                self.shared.finished_cleanly.store(true, Ordering::Release);
                self.shared.lock().response_complete = true;
                let delivered = self.deliver(py, &mut st, response);
                self.mark_complete(py, &mut st, delivered.is_ok())?;
                delivered?;
                Ok(self.link.sent(py))
            }
            (HttpSend::Body { more_body, .. }, Phase::Discarding) => {
                if !more_body && !st.trailers_expected {
                    self.mark_complete(py, &mut st, true)?;
                }
                Ok(self.link.sent(py))
            }
            (HttpSend::Body { body, more_body }, Phase::Streaming { .. }) => {
                self.send_streamed(py, &mut st, body, more_body)
            }
            (HttpSend::Body { .. }, Phase::Trailers { .. }) => Err(PyRuntimeError::new_err(
                "Expected ASGI message 'http.response.trailers', but got 'http.response.body'.",
            )),
            (
                HttpSend::Trailers {
                    headers,
                    more_trailers,
                },
                Phase::Trailers { .. },
            ) => self.send_trailers(py, &mut st, headers, more_trailers),
            (HttpSend::Trailers { more_trailers, .. }, Phase::Discarding)
                if trailers_expected =>
            {
                if !more_trailers {
                    self.mark_complete(py, &mut st, true)?;
                }
                Ok(self.link.sent(py))
            }
            (HttpSend::Trailers { .. }, _) if !trailers_expected => Err(PyRuntimeError::new_err(
                "Unexpected ASGI message 'http.response.trailers': 'http.response.start' did not set 'trailers'.",
            )),
            (HttpSend::Trailers { .. }, Phase::Complete) => Err(PyRuntimeError::new_err(
                "Unexpected ASGI message 'http.response.trailers' sent, after response already completed.",
            )),
            (HttpSend::Trailers { .. }, _) => Err(PyRuntimeError::new_err(
                "Unexpected ASGI message 'http.response.trailers' sent before the last 'http.response.body'.",
            )),
            (HttpSend::PathSend { .. }, Phase::Trailers { .. }) => Err(PyRuntimeError::new_err(
                "Expected ASGI message 'http.response.trailers', but got 'http.response.pathsend'.",
            )),
            (HttpSend::PathSend { path }, Phase::Started { status, .. }) => {
                if self.bodyless(*status) {
                    self.send_bodyless(py, &mut st, None, false)?;
                } else {
                    self.send_file(py, &mut st, &path)?;
                }
                Ok(self.link.sent(py))
            }
            (HttpSend::PathSend { .. }, Phase::Discarding) => {
                self.mark_complete(py, &mut st, true)?;
                Ok(self.link.sent(py))
            }
            (HttpSend::PathSend { .. }, Phase::Idle) => Err(PyRuntimeError::new_err(
                "Expected ASGI message 'http.response.start', but got 'http.response.pathsend'.",
            )),
            (HttpSend::PathSend { .. }, Phase::Streaming { .. }) => Err(PyRuntimeError::new_err(
                "Unexpected ASGI message 'http.response.pathsend' sent, after the response body started.",
            )),
            (HttpSend::PathSend { .. }, Phase::Complete) => Err(PyRuntimeError::new_err(
                "Unexpected ASGI message 'http.response.pathsend' sent, after response already completed.",
            )),
        }
    }

    /// `http.response.pathsend`: the response body is the file, read and sent by the network side.
    /// Nothing goes out when the file cannot be opened or does not match the head's
    /// content-length: `send()` raises, and the app failing then answers 500.
    fn send_file(
        &self,
        py: Python<'_>,
        st: &mut TransportState,
        path: &std::path::Path,
    ) -> PyResult<()> {
        let (file, length) = open_regular_file(path)?;
        let Some((status, mut headers, declared_length)) = Self::take_head(st) else {
            return Err(PyRuntimeError::new_err("invalid response state"));
        };
        match declared_length {
            Some(expected) if expected != length => {
                self.abort(py, st)?;
                return Err(PyRuntimeError::new_err(format!(
                    "http.response.pathsend: the file is {length} bytes, the content-length {expected}"
                )));
            }
            Some(_) => {}
            None => {
                headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
            }
        }
        let body = ResponseBody::file(file, length, RequestGuard::new(self.shared.clone()));
        let response = self.build_head(status, headers, body, true);
        self.shared.finished_cleanly.store(true, Ordering::Release);
        let delivered = self.deliver(py, st, response);
        self.mark_complete(py, st, delivered.is_ok())?;
        delivered
    }

    fn fail_locked(&self, py: Python<'_>) -> PyResult<bool> {
        let mut st = self.lock();
        match st.phase {
            Phase::Idle | Phase::Started { .. } => {
                let settings = &self.shared.server.settings;
                let failure = self.shared.body_failure_response(settings);
                let body_failed = failure.is_some();
                let response = failure.unwrap_or_else(|| responses::internal_error(settings));
                let status = response.status().as_u16();
                self.shared.lock().response_complete = true;
                let delivered = self.deliver(py, &mut st, response).is_ok();
                st.status = Some(status);
                if body_failed && !delivered {
                    // The network side answered the failed body with its own 400 or 408.
                    st.to_report = Some((status, None));
                }
                self.mark_complete(py, &mut st, false)?;
                Ok(delivered)
            }
            Phase::Streaming { .. } | Phase::Trailers { .. } => {
                self.abort(py, &mut st).map(|()| false)
            }
            // The head of a bodyless response is out: the client has everything it will get.
            Phase::Discarding => self.mark_complete(py, &mut st, true).map(|()| false),
            Phase::Complete => Ok(false),
        }
    }
}

/// The response's length as its head declares it (or as its one body has it), for the access log.
fn reported_length(response: &Response<ResponseBody>) -> Option<u64> {
    declared_length(response.headers())
        .ok()
        .flatten()
        .or_else(|| http_body::Body::size_hint(response.body()).exact())
}
