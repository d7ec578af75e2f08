//! TLS connections: the handshake runs in the connection's own task (never on the accept loop),
//! bounded by a timeout and abandoned at shutdown; the decrypted stream is then served like a plain
//! connection, with what the handshake settled recorded on the connection for the `tls` extension.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio_rustls::rustls::ProtocolVersion;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use super::held_writes::HeldWrites;
use super::protocol;
use super::service::Service;
use crate::asgi::dispatch::AsgiInbox;
use crate::config::tls::TlsSettings;
use crate::config::{HttpProtocols, ALPN_H2, ALPN_HTTP11};
use crate::state::connection::{ConnInfo, TlsInfo};
use crate::state::{Shared, ShutdownStage};

/// A client that has not finished its handshake by then is dropped (a slowloris on the handshake
/// holds one socket and a few KiB for at most this long).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Resolves once shutdown has begun (or the server is gone).
async fn shutdown_started(shutdown: &mut watch::Receiver<ShutdownStage>) {
    loop {
        if *shutdown.borrow_and_update() != ShutdownStage::Running {
            return;
        }
        if shutdown.changed().await.is_err() {
            return;
        }
    }
}

/// The handshake over `HeldWrites`: a TLS 1.3 connection keeps its session tickets until the first
/// response bytes; anything else the handshake left (TLS 1.2's Finished, an alert) is sent now.
async fn handshake<IO>(
    acceptor: TlsAcceptor,
    io: IO,
) -> std::io::Result<Box<TlsStream<HeldWrites<IO>>>>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    match acceptor.accept(HeldWrites::new(io)).into_fallible().await {
        Ok(mut stream) => {
            let (io, session) = stream.get_mut();
            io.handshake_done();
            if session.protocol_version() != Some(ProtocolVersion::TLSv1_3) {
                io.release().await?;
            }
            // Boxed: the futures of the layers above keep copies of their IO argument's size, and a
            // TLS stream is 1.2 KiB where a socket is 32 bytes.
            Ok(Box::new(stream))
        }
        Err((e, mut io)) => {
            io.handshake_done();
            // Best effort: the alert tells the client why (an unknown CA, a certificate required).
            let _ = io.release().await;
            Err(e)
        }
    }
}

pub async fn handshake_then_serve<IO>(
    io: IO,
    tls: Arc<TlsSettings>,
    info: ConnInfo,
    inbox: Arc<AsgiInbox>,
    server: Arc<Shared>,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // Counted from the first byte, so a graceful shutdown also waits for (and ends) handshakes.
    let count = server.connection_opened();
    let mut shutdown = server.shutdown_receiver();
    let acceptor = TlsAcceptor::from(tls.server_config.clone());
    // Boxed: rustls' handshake state is several KiB that the connection's task would otherwise
    // reserve for the connection's whole life (an idle, parked one included).
    let handshake = Box::pin(tokio::time::timeout(
        HANDSHAKE_TIMEOUT,
        handshake(acceptor, io),
    ));
    let stream = tokio::select! {
        outcome = handshake => match outcome {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                inbox.log_debug(format!("{}TLS handshake failed: {e}", info.log_prefix()));
                return;
            }
            Err(_) => {
                inbox.log_debug(format!("{}TLS handshake timed out.", info.log_prefix()));
                return;
            }
        },
        _ = shutdown_started(&mut shutdown) => return,
    };
    let session = stream.get_ref().1;
    // HTTP/2 over TLS needs ALPN (RFC 9113 3.2): a client that negotiated none speaks HTTP/1.1 (h2 only
    // with `--http 2`), so no preface is sniffed through the TLS stream.
    let alpn = Some(session.alpn_protocol().map_or_else(
        || match server.settings.http_protocols {
            HttpProtocols::Http2Only => ALPN_H2.to_vec(),
            _ => ALPN_HTTP11.to_vec(),
        },
        <[u8]>::to_vec,
    ));
    let settled = TlsInfo {
        version: session.protocol_version().map(u16::from).unwrap_or(0),
        cipher_suite: session
            .negotiated_cipher_suite()
            .map(|s| u16::from(s.suite()))
            .unwrap_or(0),
        client_chain: session
            .peer_certificates()
            .map(|chain| chain.iter().map(|c| c.as_ref().to_vec()).collect())
            .unwrap_or_default(),
        settings: tls,
    };
    let svc = Arc::new(Service {
        conn: Arc::new(info.with_tls(settled)),
        inbox,
        server: server.clone(),
    });
    protocol::serve_connection(stream, svc, server.shutdown_receiver(), alpn, count).await;
}
