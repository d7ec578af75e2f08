//! One WebSocket connection as the app sees it: `websocket.connect` before the handshake, accept
//! or deny, then messages both ways over bounded queues (spec W1–W10).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use http::{header, HeaderMap, HeaderName, HeaderValue, Response, StatusCode};
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyInt, PyString};
use tokio::sync::{mpsc, oneshot, Notify};
use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::message::{
    bool_field, bytes_field, message_dict, message_type, parse_http_send, utf8_of, HttpSend,
};
use crate::bridge::awaitable::{done, resolve_waiters};
use crate::bridge::inbox::{Notifier, Wakeable};
use crate::bridge::outbox::{current_loop, LoopLink};
use crate::errors::ClientDisconnected;
use crate::state::body::ResponseBody;
use crate::state::connection::ConnInfo;
use crate::state::responses;
use crate::state::ws_message::Outgoing;
use crate::state::Shared;
use crate::sync::lock_or_recover;

/// Messages from the client buffered before the app reads them.
pub const INCOMING_QUEUE: usize = 16;
/// Messages from the app buffered before the socket takes them.
pub const OUTGOING_QUEUE: usize = 16;

pub struct WsCtx {
    pub parts: http::request::Parts,
    pub shared: Arc<WsShared>,
    pub decide: oneshot::Sender<Handshake>,
}

/// The app's answer to the handshake.
pub enum Handshake {
    Accept {
        subprotocol: Option<String>,
        headers: Vec<(HeaderName, HeaderValue)>,
        outgoing: mpsc::Receiver<Outgoing>,
    },
    Deny(Response<ResponseBody>),
}

pub enum Incoming {
    Text(Utf8Bytes),
    Binary(Bytes),
}

struct WsState {
    connect_delivered: bool,
    incoming: VecDeque<Incoming>,
    /// `(code, reason)` once the connection is over, as `websocket.disconnect` reports it.
    closed: Option<(u16, String)>,
    waiters: Vec<Py<PyAny>>,
}

/// State shared by the socket task and the loop thread.
pub struct WsShared {
    state: Mutex<WsState>,
    inbox: Arc<dyn Notifier>,
    pub server: Arc<Shared>,
    pub conn: Arc<ConnInfo>,
    /// The app read a message: the socket task may read the next one.
    pub space: Notify,
}

impl WsShared {
    pub fn new(inbox: Arc<dyn Notifier>, server: Arc<Shared>, conn: Arc<ConnInfo>) -> Arc<Self> {
        Arc::new(WsShared {
            state: Mutex::new(WsState {
                connect_delivered: false,
                incoming: VecDeque::new(),
                closed: None,
                waiters: Vec::new(),
            }),
            inbox,
            server,
            conn,
            space: Notify::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, WsState> {
        lock_or_recover(&self.state)
    }

    fn notify(self: &Arc<Self>, wake: bool) {
        if wake {
            self.inbox.wake(self.clone());
        }
    }

    /// A message from the client; false when the queue is full and reading should pause.
    pub fn push_incoming(self: &Arc<Self>, message: Incoming) -> bool {
        let (wake, room) = {
            let mut st = self.lock();
            st.incoming.push_back(message);
            (!st.waiters.is_empty(), st.incoming.len() < INCOMING_QUEUE)
        };
        self.notify(wake);
        room
    }

    pub fn has_room(&self) -> bool {
        self.lock().incoming.len() < INCOMING_QUEUE
    }

    /// The connection is over (first call wins): the app's next `receive()` reports it.
    pub fn set_closed(self: &Arc<Self>, code: u16, reason: String) {
        let wake = {
            let mut st = self.lock();
            if st.closed.is_none() {
                st.closed = Some((code, reason));
            }
            !st.waiters.is_empty()
        };
        self.notify(wake);
    }

    pub fn is_closed(&self) -> bool {
        self.lock().closed.is_some()
    }

    fn ready_event(&self, py: Python<'_>, st: &mut WsState) -> PyResult<Option<Py<PyAny>>> {
        let d = PyDict::new(py);
        if !st.connect_delivered {
            st.connect_delivered = true;
            d.set_item(intern!(py, "type"), intern!(py, "websocket.connect"))?;
            return Ok(Some(d.into_any().unbind()));
        }
        if let Some(message) = st.incoming.pop_front() {
            self.space.notify_one();
            d.set_item(intern!(py, "type"), intern!(py, "websocket.receive"))?;
            match message {
                Incoming::Text(text) => {
                    d.set_item(intern!(py, "text"), text.as_str())?;
                    d.set_item(intern!(py, "bytes"), py.None())?;
                }
                Incoming::Binary(data) => {
                    d.set_item(intern!(py, "bytes"), PyBytes::new(py, &data))?;
                    d.set_item(intern!(py, "text"), py.None())?;
                }
            }
            return Ok(Some(d.into_any().unbind()));
        }
        if let Some((code, reason)) = &st.closed {
            d.set_item(intern!(py, "type"), intern!(py, "websocket.disconnect"))?;
            d.set_item(intern!(py, "code"), *code)?;
            d.set_item(intern!(py, "reason"), reason.as_str())?;
            return Ok(Some(d.into_any().unbind()));
        }
        Ok(None)
    }
}

impl Wakeable for WsShared {
    fn wake_waiters(&self, py: Python<'_>) -> PyResult<()> {
        resolve_waiters(
            py,
            || self.lock(),
            |st: &mut WsState| &mut st.waiters,
            |py, st| self.ready_event(py, st),
        )
    }
}

enum Phase {
    Connecting {
        decide: oneshot::Sender<Handshake>,
    },
    /// A denial response is being sent (`websocket.http.response.*`).
    Denying {
        decide: oneshot::Sender<Handshake>,
        status: u16,
        headers: HeaderMap,
        body: Vec<u8>,
    },
    Open {
        tx: mpsc::Sender<Outgoing>,
    },
    Closed,
}

struct TransportState {
    phase: Phase,
    accepted: bool,
    status: Option<u16>,
    /// The app closed or denied the connection itself (a second close is its own mistake).
    app_closed: bool,
}

#[pyclass(module = "turboasgi._core", frozen)]
pub struct WebSocketTransport {
    shared: Arc<WsShared>,
    state: Mutex<TransportState>,
    link: Arc<LoopLink>,
    /// Called once with (status, accepted) when the handshake is answered: the access log line.
    on_answer: Mutex<Option<Py<PyAny>>>,
}

fn str_field(
    dict: &Bound<'_, PyDict>,
    key: &Bound<'_, PyString>,
    what: &str,
) -> PyResult<Option<String>> {
    str_object_field(dict, key, what)?
        .map(|s| Ok(s.to_str()?.to_owned()))
        .transpose()
}

fn str_object_field<'py>(
    dict: &Bound<'py, PyDict>,
    key: &Bound<'py, PyString>,
    what: &str,
) -> PyResult<Option<Bound<'py, PyString>>> {
    match dict.get_item(key)? {
        None => Ok(None),
        Some(v) if v.is_none() => Ok(None),
        Some(v) => match v.cast_into::<PyString>() {
            Ok(s) => Ok(Some(s)),
            Err(e) => Err(PyTypeError::new_err(format!(
                "{what} '{}' must be a str, got {}",
                key.to_str()?,
                e.into_inner().get_type().name()?
            ))),
        },
    }
}

fn close_code(dict: &Bound<'_, PyDict>) -> PyResult<u16> {
    let py = dict.py();
    match dict.get_item(intern!(py, "code"))? {
        None => Ok(1000),
        Some(v) if v.is_none() => Ok(1000),
        Some(v) => {
            let int = v
                .cast::<PyInt>()
                .map_err(|_| PyTypeError::new_err("websocket.close 'code' must be an int"))?;
            let code: i64 = int.extract().unwrap_or(-1);
            if (1000..=4999).contains(&code) {
                Ok(code as u16)
            } else {
                Err(PyValueError::new_err(format!(
                    "websocket.close 'code' must be between 1000 and 4999, got {code}"
                )))
            }
        }
    }
}

fn accept_headers(dict: &Bound<'_, PyDict>) -> PyResult<Vec<(HeaderName, HeaderValue)>> {
    let py = dict.py();
    // Reuse the HTTP validation of header pairs through a synthetic start message.
    let Some(headers) = dict.get_item(intern!(py, "headers"))? else {
        return Ok(Vec::new());
    };
    if headers.is_none() {
        return Ok(Vec::new());
    }
    let start = PyDict::new(py);
    start.set_item(intern!(py, "type"), intern!(py, "http.response.start"))?;
    start.set_item(intern!(py, "status"), 101)?;
    start.set_item(intern!(py, "headers"), headers)?;
    match parse_http_send(start.as_any()) {
        Ok(HttpSend::Start { headers, .. }) => Ok(headers),
        Ok(_) => Ok(Vec::new()),
        Err(e) => Err(PyTypeError::new_err(
            e.to_string()
                .replace("http.response.start", "websocket.accept"),
        )),
    }
}

impl WebSocketTransport {
    pub fn new(
        shared: Arc<WsShared>,
        decide: oneshot::Sender<Handshake>,
        link: Arc<LoopLink>,
    ) -> Self {
        WebSocketTransport {
            shared,
            state: Mutex::new(TransportState {
                phase: Phase::Connecting { decide },
                accepted: false,
                status: None,
                app_closed: false,
            }),
            link,
            on_answer: Mutex::new(None),
        }
    }

    fn lock(&self) -> MutexGuard<'_, TransportState> {
        lock_or_recover(&self.state)
    }

    /// Answers the handshake with an HTTP response instead of accepting it.
    fn deny(&self, st: &mut TransportState, response: Response<ResponseBody>) -> PyResult<()> {
        st.app_closed = true;
        let decide = match std::mem::replace(&mut st.phase, Phase::Closed) {
            Phase::Connecting { decide } | Phase::Denying { decide, .. } => decide,
            _ => return Ok(()),
        };
        st.status = Some(response.status().as_u16());
        let sent = decide.send(Handshake::Deny(response)).is_ok();
        self.shared.set_closed(1006, String::new());
        if sent {
            Ok(())
        } else {
            Err(ClientDisconnected::new_err("client disconnected"))
        }
    }

    fn queue(
        &self,
        py: Python<'_>,
        st: &mut TransportState,
        message: Outgoing,
    ) -> PyResult<Py<PyAny>> {
        let Phase::Open { tx } = &st.phase else {
            return Err(ClientDisconnected::new_err("websocket is closed"));
        };
        let at_home = self.link.is_current();
        // A slot reserved now keeps the queue bounded; on its own loop the message then travels
        // with the loop's outbox, from another loop's thread it goes straight to the socket.
        match tx.clone().try_reserve_owned() {
            Ok(permit) => {
                if at_home {
                    self.link.send_ws(py, permit, message)?;
                } else {
                    permit.send(message);
                }
                Ok(self.link.sent(py))
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                st.phase = Phase::Closed;
                Err(ClientDisconnected::new_err("websocket is closed"))
            }
            Err(mpsc::error::TrySendError::Full(tx)) => {
                // The future belongs to the caller's loop and is resolved through its inbox.
                let (link, resolver) = current_loop()
                    .unwrap_or_else(|| (self.link.clone(), self.shared.inbox.clone()));
                let fut = link.new_future(py)?;
                let resolve = fut.clone_ref(py);
                let work = async move {
                    let delivered = tx.send(message).await.is_ok();
                    resolver.resolve(resolve, delivered);
                };
                if at_home {
                    self.link.spawn_in_order(py, work)?;
                } else {
                    self.shared.server.runtime.spawn(work);
                }
                Ok(fut)
            }
        }
    }

    fn denial_response(
        status: u16,
        headers: HeaderMap,
        body: Vec<u8>,
        shared: &WsShared,
    ) -> Response<ResponseBody> {
        let mut response = Response::new(ResponseBody::Full(Some(Bytes::from(body))));
        *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::FORBIDDEN);
        *response.headers_mut() = headers;
        responses::apply_default_headers(response.headers_mut(), &shared.server.settings);
        // A denied handshake ends the connection (spec W9), like the 403 of an early close.
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        response
    }
}

#[pymethods]
impl WebSocketTransport {
    fn receive(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let mut st = self.shared.lock();
        if st.waiters.is_empty() {
            if let Some(event) = self.shared.ready_event(py, &mut st)? {
                return done(py, event);
            }
        }
        let fut = self.link.new_future(py)?;
        st.waiters.push(fut.clone_ref(py));
        Ok(fut)
    }

    fn send(&self, py: Python<'_>, message: Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let result = self.send_message(py, message);
        self.report_answer(py);
        result
    }

    /// Registers the callable told about the handshake's answer (see `report_answer`).
    fn on_answer(&self, callback: Py<PyAny>) {
        *lock_or_recover(&self.on_answer) = Some(callback);
    }

    /// The app raised: 500 before the handshake, close 1011 after.
    fn fail(&self, py: Python<'_>) -> PyResult<()> {
        let result = self.end(py, 1011, true);
        self.report_answer(py);
        result
    }

    /// The app returned: 500 if it never answered the handshake, close 1000 if still open.
    fn finish(&self, py: Python<'_>) -> PyResult<()> {
        let result = self.end(py, 1000, false);
        self.report_answer(py);
        result
    }

    #[getter]
    fn accepted(&self) -> bool {
        self.lock().accepted
    }

    #[getter]
    fn status(&self) -> Option<u16> {
        self.lock().status
    }
}

impl WebSocketTransport {
    /// Tells the `on_answer` callable, once, how the handshake was answered. Called with no lock
    /// held, so the callable may use the transport.
    fn report_answer(&self, py: Python<'_>) {
        let (status, accepted) = {
            let st = self.lock();
            (st.status, st.accepted)
        };
        let Some(status) = status else { return };
        let Some(callback) = lock_or_recover(&self.on_answer).take() else {
            return;
        };
        if let Err(err) = callback.call1(py, (status, accepted)) {
            err.write_unraisable(py, None);
        }
    }

    fn send_message(&self, py: Python<'_>, message: Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let dict = message_dict(&message)?;
        let kind = message_type(&dict)?;
        let mut st = self.lock();
        if kind == "websocket.close"
            && !st.app_closed
            && matches!(st.phase, Phase::Open { .. } | Phase::Closed)
            && self.shared.is_closed()
        {
            // The client's close frame arrived (the app may not have read the disconnect yet): the
            // connection is closing anyway, so closing it is a no-op, as under uvicorn.
            st.app_closed = true;
            st.phase = Phase::Closed;
            return Ok(self.link.sent(py));
        }
        match (kind.as_str(), &mut st.phase) {
            ("websocket.accept", Phase::Connecting { .. }) => {
                let subprotocol = str_field(&dict, intern!(py, "subprotocol"), "websocket.accept")?;
                let headers = accept_headers(&dict)?;
                let Phase::Connecting { decide } = std::mem::replace(&mut st.phase, Phase::Closed)
                else {
                    return Err(PyRuntimeError::new_err("invalid websocket state"));
                };
                let (tx, outgoing) = mpsc::channel(OUTGOING_QUEUE);
                if decide
                    .send(Handshake::Accept {
                        subprotocol,
                        headers,
                        outgoing,
                    })
                    .is_err()
                {
                    return Err(ClientDisconnected::new_err("client disconnected"));
                }
                st.accepted = true;
                st.status = Some(101);
                st.phase = Phase::Open { tx };
                Ok(self.link.sent(py))
            }
            ("websocket.close", Phase::Connecting { .. }) => {
                // spec W6: closing before accept denies the handshake with 403
                let response = responses::forbidden(&self.shared.server.settings);
                self.deny(&mut st, response)?;
                Ok(self.link.sent(py))
            }
            ("websocket.http.response.start", Phase::Connecting { .. }) => {
                let HttpSend::Start {
                    status, headers, ..
                } = parse_http_send_as(&dict, "http.response.start")?
                else {
                    return Err(PyRuntimeError::new_err("invalid denial response"));
                };
                let Phase::Connecting { decide } = std::mem::replace(&mut st.phase, Phase::Closed)
                else {
                    return Err(PyRuntimeError::new_err("invalid websocket state"));
                };
                let mut map = HeaderMap::new();
                for (n, v) in headers {
                    if n != header::TRANSFER_ENCODING {
                        map.append(n, v);
                    }
                }
                st.phase = Phase::Denying {
                    decide,
                    status,
                    headers: map,
                    body: Vec::new(),
                };
                Ok(self.link.sent(py))
            }
            ("websocket.http.response.body", Phase::Denying { body, .. }) => {
                let chunk =
                    bytes_field(&dict, intern!(py, "body"), "websocket.http.response.body")?
                        .unwrap_or_default();
                body.extend_from_slice(&chunk);
                if !bool_field(&dict, intern!(py, "more_body"))? {
                    let Phase::Denying {
                        status,
                        headers,
                        body,
                        ..
                    } = &mut st.phase
                    else {
                        return Err(PyRuntimeError::new_err("invalid websocket state"));
                    };
                    let response = Self::denial_response(
                        *status,
                        std::mem::take(headers),
                        std::mem::take(body),
                        &self.shared,
                    );
                    self.deny(&mut st, response)?;
                }
                Ok(self.link.sent(py))
            }
            ("websocket.send", Phase::Open { .. }) => {
                let text = str_object_field(&dict, intern!(py, "text"), "websocket.send")?;
                let data = bytes_field(&dict, intern!(py, "bytes"), "websocket.send")?;
                let outgoing = match (text, data) {
                    (Some(t), None) => Outgoing::Text(utf8_of(&t)?),
                    (None, Some(b)) => Outgoing::Binary(b),
                    _ => {
                        return Err(PyTypeError::new_err(
                            "websocket.send needs exactly one of 'bytes' or 'text'",
                        ))
                    }
                };
                if self.shared.is_closed() {
                    st.phase = Phase::Closed;
                    return Err(ClientDisconnected::new_err("websocket is closed"));
                }
                self.queue(py, &mut st, outgoing)
            }
            ("websocket.close", Phase::Open { .. }) => {
                let code = close_code(&dict)?;
                let reason =
                    str_field(&dict, intern!(py, "reason"), "websocket.close")?.unwrap_or_default();
                if reason.len() > 123 {
                    return Err(PyValueError::new_err(
                        "websocket.close 'reason' must be at most 123 bytes of UTF-8",
                    ));
                }
                let result = self.queue(py, &mut st, Outgoing::Close { code, reason });
                st.phase = Phase::Closed;
                st.app_closed = true;
                result
            }
            (_, Phase::Closed) => Err(ClientDisconnected::new_err("websocket is closed")),
            (
                "websocket.accept"
                | "websocket.close"
                | "websocket.send"
                | "websocket.http.response.start"
                | "websocket.http.response.body",
                _,
            ) => Err(PyRuntimeError::new_err(format!(
                "Unexpected ASGI message '{kind}' in this state of the WebSocket connection"
            ))),
            (other, _) => Err(PyRuntimeError::new_err(format!(
                "Unexpected ASGI message type '{other}' for a WebSocket connection"
            ))),
        }
    }

    fn end(&self, py: Python<'_>, code: u16, failed: bool) -> PyResult<()> {
        let _ = failed;
        let mut st = self.lock();
        match st.phase {
            Phase::Connecting { .. } | Phase::Denying { .. } => {
                let response = responses::internal_error(&self.shared.server.settings);
                let _ = self.deny(&mut st, response);
            }
            Phase::Open { .. } => {
                let _ = self.queue(
                    py,
                    &mut st,
                    Outgoing::Close {
                        code,
                        reason: String::new(),
                    },
                );
                st.phase = Phase::Closed;
            }
            Phase::Closed => {}
        }
        Ok(())
    }
}

fn parse_http_send_as(dict: &Bound<'_, PyDict>, as_type: &str) -> PyResult<HttpSend> {
    let py = dict.py();
    let copy = dict.copy()?;
    copy.set_item(intern!(py, "type"), as_type)?;
    parse_http_send(copy.as_any()).map_err(|e| {
        PyTypeError::new_err(
            e.to_string()
                .replace("http.response.start", "websocket.http.response.start"),
        )
    })
}
