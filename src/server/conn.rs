//! One HTTP/1.1 connection: hyper's state machine around the service, the keep-alive timer, and
//! graceful and forced shutdown.

use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;

use super::head_scan::HeadScan;
use super::head_timeout::HeadTimeout;
use super::service::Service;
use crate::asgi::dispatch::AsgiInbox;
use crate::state::connection::ConnInfo;
use crate::state::ShutdownStage;

/// How long a connection that has not sent its first request yet may still start one once a
/// graceful shutdown began.
pub(super) const FIRST_REQUEST_GRACE: Duration = Duration::from_millis(500);

/// Request header lines accepted (hyper's default is 100; httptools-based servers take more).
const MAX_HEADERS: usize = 256;

/// Without `--timeout-request-head`, headers that take longer than this to arrive close the
/// connection (slow-client protection).
pub(super) const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// With `--log-level trace`: "<peer> - HTTP connection made" now, "... lost" when dropped (as uvicorn
/// logs them), unless the connection became a WebSocket, whose own lines take over.
pub struct ConnectionTrace {
    inbox: Arc<AsgiInbox>,
    conn: Arc<ConnInfo>,
    kind: &'static str,
}

impl ConnectionTrace {
    pub fn start(svc: &Service, kind: &'static str) -> Option<Self> {
        if !svc.server.settings.trace_connections {
            return None;
        }
        let prefix = svc.conn.log_prefix();
        svc.inbox
            .log_trace(format!("{prefix}{kind} connection made"));
        Some(ConnectionTrace {
            inbox: svc.inbox.clone(),
            conn: svc.conn.clone(),
            kind,
        })
    }
}

impl Drop for ConnectionTrace {
    fn drop(&mut self) {
        if self.kind == "HTTP" && self.conn.is_upgraded() {
            return;
        }
        let prefix = self.conn.log_prefix();
        self.inbox
            .log_trace(format!("{prefix}{} connection lost", self.kind));
    }
}

pub async fn serve<IO>(io: IO, svc: Arc<Service>, shutdown: watch::Receiver<ShutdownStage>)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    if let Some(timeout) = svc.server.settings.timeout_request_head {
        let io = HeadTimeout::new(io, svc.conn.clone(), svc.server.clone(), timeout);
        // Ours answers 408; hyper's own would only close the socket.
        return drive(io, svc, shutdown, None).await;
    }
    drive(io, svc, shutdown, Some(HEADER_READ_TIMEOUT)).await
}

async fn drive<IO>(
    io: IO,
    svc: Arc<Service>,
    mut shutdown: watch::Receiver<ShutdownStage>,
    header_read_timeout: Option<Duration>,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let conn = svc.conn.clone();
    let server = svc.server.clone();
    let _trace = ConnectionTrace::start(&svc, "HTTP");
    let settings = &server.settings;
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .keep_alive(true)
        .half_close(false)
        .max_buf_size(settings.max_header_bytes.max(8192) + 8192)
        .max_header_size(settings.max_header_bytes)
        .max_headers(settings.limit_request_fields.unwrap_or(MAX_HEADERS))
        .header_read_timeout(header_read_timeout)
        .auto_date_header(settings.date_header)
        .pipeline_flush(false);
    let service_inbox = svc.inbox.clone();
    let service = service_fn(move |req| {
        let svc = svc.clone();
        async move { Ok::<_, std::convert::Infallible>(svc.call(req).await) }
    });
    let connection = builder
        .serve_connection(TokioIo::new(HeadScan::new(io)), service)
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
            if conn.has_requests() {
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
                    tokio::select! {
                        _ = tokio::time::sleep_until(deadline) => {}
                        _ = conn.next_activity() => {}
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
                        service_inbox.log_warning("Invalid HTTP request received.");
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
