//! One client connection: hyper's HTTP/1.1 state machine, the keep-alive timer, graceful and
//! forced shutdown, and the service that hands each request to its loop's inbox.

use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use pyo3::prelude::*;
use std::time::Duration;

use http::{Request, Response, Version};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{oneshot, watch, Notify};

use super::responses;
use super::{Shared, ShutdownStage};
use crate::asgi::body::{RequestGuard, ResponseBody};
use crate::asgi::http::{RequestCtx, RequestShared};
use crate::bridge::inbox::{Event, Inbox};

/// How long a connection that has not sent its first request yet may still start one once a
/// graceful shutdown began.
const FIRST_REQUEST_GRACE: Duration = Duration::from_millis(500);

/// Request header lines accepted (hyper's default is 100; httptools-based servers take more).
const MAX_HEADERS: usize = 256;

/// Headers that take longer than this to arrive close the connection (slow-client protection).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

pub struct ConnInfo {
    pub client: Option<(String, u16)>,
    pub client_ip: Option<IpAddr>,
    /// `(host, Some(port))` for TCP, `(unix_path, None)` for a unix socket.
    pub server: Option<(String, Option<u16>)>,
    pub inbox: Arc<Inbox>,
    in_flight: AtomicUsize,
    requests_seen: AtomicU64,
    activity: Notify,
    /// `scope["client"]` / `scope["server"]` built once per connection, on its loop thread.
    client_py: OnceLock<Py<PyAny>>,
    server_py: OnceLock<Py<PyAny>>,
}

impl ConnInfo {
    pub fn new(
        client: Option<(String, u16)>,
        client_ip: Option<IpAddr>,
        server: Option<(String, Option<u16>)>,
        inbox: Arc<Inbox>,
    ) -> Self {
        ConnInfo {
            client,
            client_ip,
            server,
            inbox,
            in_flight: AtomicUsize::new(0),
            requests_seen: AtomicU64::new(0),
            activity: Notify::new(),
            client_py: OnceLock::new(),
            server_py: OnceLock::new(),
        }
    }

    pub fn client_tuple<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        built_once(&self.client_py, py, || {
            Ok(match &self.client {
                Some((host, port)) => (host.as_str(), *port).into_pyobject(py)?.into_any(),
                None => py.None().into_bound(py),
            })
        })
    }

    pub fn server_tuple<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        built_once(&self.server_py, py, || {
            Ok(match &self.server {
                Some((host, Some(port))) => (host.as_str(), *port).into_pyobject(py)?.into_any(),
                Some((path, None)) => (path.as_str(), py.None()).into_pyobject(py)?.into_any(),
                None => py.None().into_bound(py),
            })
        })
    }

    pub fn request_started(&self) {
        self.requests_seen.fetch_add(1, Ordering::AcqRel);
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.activity.notify_waiters();
    }

    pub fn request_finished(&self) {
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.activity.notify_waiters();
    }

    /// Resolves once the connection has had no request in flight for `timeout`.
    async fn idle_for(&self, timeout: Duration) {
        loop {
            let notified = self.activity.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.in_flight.load(Ordering::Acquire) > 0 {
                notified.await;
                continue;
            }
            tokio::select! {
                _ = tokio::time::sleep(timeout) => return,
                _ = notified => continue,
            }
        }
    }
}

/// A Python value of the connection, built on first use and shared by all its scopes.
fn built_once<'py>(
    cell: &OnceLock<Py<PyAny>>,
    py: Python<'py>,
    build: impl FnOnce() -> PyResult<Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    if let Some(value) = cell.get() {
        return Ok(value.bind(py).clone());
    }
    let value = build()?;
    Ok(cell.get_or_init(|| value.unbind()).bind(py).clone())
}

async fn handle(
    req: Request<Incoming>,
    conn: Arc<ConnInfo>,
    server: Arc<Shared>,
) -> Result<Response<ResponseBody>, Infallible> {
    let settings = &server.settings;
    if super::validate::reject_reason(&req).is_some() {
        server.log_warning(&conn.inbox, "Invalid HTTP request received.");
        return Ok(responses::bad_request(settings));
    }
    if settings.ws_enabled && super::websocket::is_upgrade(&req) {
        return Ok(super::websocket::handle_upgrade(req, conn, server.clone()).await);
    }
    if !server.try_start_request() {
        server.log_warning(&conn.inbox, "Exceeded concurrency limit.");
        return Ok(responses::service_unavailable(settings));
    }
    conn.request_started();
    let (parts, body) = req.into_parts();
    let has_body = !hyper::body::Body::is_end_stream(&body);
    let shared = RequestShared::new(
        body,
        conn.inbox.clone(),
        server.clone(),
        conn.clone(),
        has_body,
    );
    let guard = RequestGuard::new(shared.clone());
    let (respond, response) = oneshot::channel();
    conn.inbox.push(Event::Request(Box::new(RequestCtx {
        parts,
        shared: shared.clone(),
        respond,
    })));
    tokio::select! {
        biased;
        outcome = response => match outcome {
            Ok(response) => {
                if matches!(response.body(), ResponseBody::Stream { .. }) {
                    guard.disarm();
                }
                Ok(response)
            }
            Err(_) => Ok(responses::internal_error(settings)),
        },
        _ = shared.body_failed.notified() => Ok(responses::bad_request(settings)),
    }
}

pub async fn serve<IO>(
    io: IO,
    conn: Arc<ConnInfo>,
    server: Arc<Shared>,
    mut shutdown: watch::Receiver<ShutdownStage>,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let _count = server.connection_opened();
    let settings = &server.settings;
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .keep_alive(true)
        .half_close(false)
        .max_buf_size(settings.max_header_bytes.max(8192) + 8192)
        .max_header_size(settings.max_header_bytes)
        .max_headers(MAX_HEADERS)
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .auto_date_header(settings.date_header)
        .pipeline_flush(false);
    let svc_conn = conn.clone();
    let svc_server = server.clone();
    let service = service_fn(move |req| handle(req, svc_conn.clone(), svc_server.clone()));
    let connection = builder
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    tokio::pin!(connection);
    let keep_alive = settings.timeout_keep_alive;
    let mut closing = false;
    // A connection accepted just before shutdown may have its first request in the socket, unread:
    // it gets a short grace to start that request (then answered with `Connection: close`).
    let mut first_request_grace: Option<tokio::time::Instant> = None;
    loop {
        let stage = *shutdown.borrow();
        if stage == ShutdownStage::Force {
            return; // dropping the connection closes the socket
        }
        if stage == ShutdownStage::Graceful && !closing {
            if conn.requests_seen.load(Ordering::Acquire) > 0
                || conn.in_flight.load(Ordering::Acquire) > 0
            {
                closing = true;
                connection.as_mut().graceful_shutdown();
            } else {
                let deadline = *first_request_grace
                    .get_or_insert_with(|| tokio::time::Instant::now() + FIRST_REQUEST_GRACE);
                if tokio::time::Instant::now() >= deadline {
                    closing = true;
                    connection.as_mut().graceful_shutdown();
                }
            }
        }
        let grace_wait = async {
            match first_request_grace {
                Some(deadline) if !closing => {
                    let notified = conn.activity.notified();
                    tokio::select! {
                        _ = tokio::time::sleep_until(deadline) => {}
                        _ = notified => {}
                    }
                }
                _ => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = grace_wait => {}
            result = connection.as_mut() => {
                if let Err(e) = result {
                    if e.is_parse() || e.is_parse_too_large() {
                        server.log_warning(&conn.inbox, "Invalid HTTP request received.");
                    }
                }
                return;
            }
            changed = shutdown.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            _ = conn.idle_for(keep_alive), if !closing => {
                closing = true;
                connection.as_mut().graceful_shutdown();
            }
        }
    }
}

/// Whether a response to this request must close the connection (HTTP/1.0 never keeps it open).
pub fn close_after(version: Version) -> bool {
    version == Version::HTTP_10 || version == Version::HTTP_09
}
