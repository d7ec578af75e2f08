//! One HTTP/1.1 connection: hyper's state machine around the service, the keep-alive timer, and
//! graceful and forced shutdown.

use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;

use super::service::Service;
use crate::state::ShutdownStage;

/// How long a connection that has not sent its first request yet may still start one once a
/// graceful shutdown began.
pub(super) const FIRST_REQUEST_GRACE: Duration = Duration::from_millis(500);

/// Request header lines accepted (hyper's default is 100; httptools-based servers take more).
const MAX_HEADERS: usize = 256;

/// Headers that take longer than this to arrive close the connection (slow-client protection).
pub(super) const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

pub async fn serve<IO>(io: IO, svc: Arc<Service>, mut shutdown: watch::Receiver<ShutdownStage>)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let conn = svc.conn.clone();
    let server = svc.server.clone();
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
    let service_inbox = svc.inbox.clone();
    let service = service_fn(move |req| {
        let svc = svc.clone();
        async move { Ok::<_, std::convert::Infallible>(svc.call(req).await) }
    });
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
