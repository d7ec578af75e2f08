//! One HTTP/2 connection: hyper's HTTP/2 state machine (the `h2` crate) around the same service as
//! HTTP/1.1, with our settings and limits, the idle timer, and graceful shutdown by GOAWAY.
//! Each stream is its own request: hyper runs every stream's service future as a task, and
//! dropping that future on a client RST_STREAM disconnects only that request.

use std::sync::Arc;

use http::{header, HeaderMap};
use hyper::server::conn::http2;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;

use super::service::Service;
use crate::state::ShutdownStage;

pub async fn serve<IO>(io: IO, svc: Arc<Service>, mut shutdown: watch::Receiver<ShutdownStage>)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let conn = svc.conn.clone();
    let server = svc.server.clone();
    let _trace = super::conn::ConnectionTrace::start(&svc, "HTTP");
    let settings = &server.settings;
    let limits = &settings.h2;
    let mut builder = http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.max_concurrent_streams)
        .max_header_list_size(limits.max_header_list_size)
        .initial_stream_window_size(limits.initial_stream_window_size)
        .initial_connection_window_size(limits.initial_connection_window_size)
        .max_frame_size(limits.max_frame_size)
        .keep_alive_interval(limits.keep_alive_interval)
        .keep_alive_timeout(limits.keep_alive_timeout)
        .max_pending_accept_reset_streams(limits.max_pending_accept_reset_streams)
        .max_local_error_reset_streams(limits.max_local_error_reset_streams)
        .auto_date_header(settings.date_header);
    let service = service_fn(move |req| {
        let svc = svc.clone();
        async move {
            let mut response = svc.call(req).await;
            drop_connection_headers(response.headers_mut());
            Ok::<_, std::convert::Infallible>(response)
        }
    });
    let connection = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(connection);
    let keep_alive = settings.timeout_keep_alive;
    let mut closing = false;
    loop {
        match *shutdown.borrow_and_update() {
            ShutdownStage::Force => return, // dropping the connection closes the socket
            // GOAWAY: no new streams; the open ones finish within --timeout-graceful-shutdown.
            ShutdownStage::Graceful if !closing => {
                closing = true;
                connection.as_mut().graceful_shutdown();
            }
            _ => {}
        }
        tokio::select! {
            // Protocol errors were already answered by GOAWAY or RST_STREAM; nothing to add.
            _ = connection.as_mut() => return,
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

/// RFC 9113 8.2.2: connection-specific fields are malformed in HTTP/2. The app may set them for
/// HTTP/1.1 (`Connection: close`, `Transfer-Encoding`); they are dropped here rather than left to
/// hyper, which drops them too but with a warning per response.
fn drop_connection_headers(headers: &mut HeaderMap) {
    for name in [
        header::CONNECTION,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
        header::TE,
    ] {
        headers.remove(name);
    }
    headers.remove("keep-alive");
    headers.remove("proxy-connection");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_specific_headers_are_dropped() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("connection", "close"),
            ("keep-alive", "timeout=5"),
            ("proxy-connection", "keep-alive"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "h2c"),
            ("te", "trailers"),
            ("content-type", "text/plain"),
        ] {
            headers.insert(
                http::HeaderName::from_static(name),
                http::HeaderValue::from_static(value),
            );
        }
        drop_connection_headers(&mut headers);
        let names: Vec<_> = headers.keys().map(|n| n.as_str()).collect();
        assert_eq!(names, ["content-type"]);
    }
}
