//! Which HTTP version a connection speaks, decided once per connection: by the ALPN protocol when
//! TLS negotiated one, else by whether a cleartext connection starts with the HTTP/2 preface (h2c
//! with prior knowledge) — within what `--http` allows. The one entry point for every accepted
//! connection, whatever its transport.

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;

use super::preface::{self, Rewound, Sniffed};
use super::service::Service;
use super::{conn, http2};
use crate::config::{HttpProtocols, ALPN_H2};
use crate::state::{ConnectionCount, ShutdownStage};

/// Serves one accepted connection to its end. `alpn` is the protocol TLS negotiated, if any;
/// `_count` keeps the connection counted (taken by the caller at accept, so that a graceful shutdown
/// also waits for a connection still in its TLS handshake or being sniffed).
pub async fn serve_connection<IO>(
    mut io: IO,
    svc: Arc<Service>,
    mut shutdown: watch::Receiver<ShutdownStage>,
    alpn: Option<Vec<u8>>,
    _count: ConnectionCount,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    match alpn.as_deref() {
        // Boxed, here and below: the task of every connection is as big as its biggest state, and
        // an HTTP/2 connection's is several KiB that a parked HTTP/1.1 connection need not reserve.
        Some(ALPN_H2) => return Box::pin(http2::serve(io, svc, shutdown)).await,
        Some(_) => return conn::serve(io, svc, shutdown).await,
        None => {}
    }
    match svc.server.settings.http_protocols {
        HttpProtocols::Http1Only => conn::serve(io, svc, shutdown).await,
        // Anything else than the preface fails hyper's preface check and gets a GOAWAY.
        HttpProtocols::Http2Only => Box::pin(http2::serve(io, svc, shutdown)).await,
        HttpProtocols::Auto => {
            // A connection that sends nothing decidable in time is closed, like a slow HTTP/1.1 head.
            let limit = svc
                .server
                .settings
                .timeout_request_head
                .unwrap_or(conn::HEADER_READ_TIMEOUT);
            let sniffed = tokio::select! {
                sniffed = tokio::time::timeout(limit, preface::sniff(&mut io)) => sniffed,
                _ = closing_grace_over(&mut shutdown) => return,
            };
            let Ok(Ok((kind, read))) = sniffed else {
                return; // timed out or the socket failed: nothing was asked, nothing to answer
            };
            let io = Rewound::new(read, io);
            match kind {
                Sniffed::Http2 => Box::pin(http2::serve(io, svc, shutdown)).await,
                Sniffed::Http1 => conn::serve(io, svc, shutdown).await,
            }
        }
    }
}

/// Resolves once a shutdown began and a connection that has not sent its first bytes yet had the
/// same short grace the HTTP/1.1 driver gives a first request.
async fn closing_grace_over(shutdown: &mut watch::Receiver<ShutdownStage>) {
    while *shutdown.borrow_and_update() == ShutdownStage::Running {
        if shutdown.changed().await.is_err() {
            break;
        }
    }
    tokio::time::sleep(conn::FIRST_REQUEST_GRACE).await;
}

#[cfg(test)]
mod tests {
    use std::future::Future;

    use tokio::net::TcpStream;

    /// The size of the future an async fn of five arguments returns, found without calling it.
    fn future_size<A, B, C, D, E, F: Future>(_: impl FnOnce(A, B, C, D, E) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    /// A connection's task is allocated once, as big as its biggest state, and kept while the
    /// connection is parked: hyper's HTTP/1.1 connection, the HTTP/2 driver, the TLS handshake and
    /// the TLS stream are boxed so that their KiBs are not reserved for an idle connection's life.
    /// (Before: 2,752 bytes for a plain connection, 11,232 for a TLS one, release build.)
    #[test]
    fn connection_tasks_reserve_little_for_idle_connections() {
        let plain = future_size(super::serve_connection::<TcpStream>);
        let tls = future_size(super::super::tls::handshake_then_serve::<TcpStream>);
        assert!(plain <= 2048, "plain connection task: {plain} bytes");
        assert!(tls <= 2304, "TLS connection task: {tls} bytes");
    }
}
