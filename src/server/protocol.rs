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
        Some(ALPN_H2) => return http2::serve(io, svc, shutdown).await,
        Some(_) => return conn::serve(io, svc, shutdown).await,
        None => {}
    }
    match svc.server.settings.http_protocols {
        HttpProtocols::Http1Only => conn::serve(io, svc, shutdown).await,
        // Anything else than the preface fails hyper's preface check and gets a GOAWAY.
        HttpProtocols::Http2Only => http2::serve(io, svc, shutdown).await,
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
                Sniffed::Http2 => http2::serve(io, svc, shutdown).await,
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
