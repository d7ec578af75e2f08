//! WebSocket upgrades: the handshake answered by the app, then one task per socket moving frames
//! between tokio-tungstenite and the app's bounded queues, with server pings and shutdown (1012).

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use http::{header, HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming as HyperIncoming;
use hyper_util::rt::TokioIo;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError, ProtocolError};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::conn::ConnectionTrace;
use super::service::Service;
use super::ws_deflate::{DeflateParams, InflatingStream, MessageDeflater};
use crate::asgi::dispatch::Job;
use crate::asgi::ws::{Handshake, Incoming, WsCtx, WsShared};
use crate::bridge::inbox::Event;
use crate::state::body::ResponseBody;
use crate::state::responses;
use crate::state::ws_message::Outgoing;
use crate::state::{Shared, ShutdownStage};

/// tungstenite zero-fills up to this much of its read buffer before every socket read, and allocates
/// it per socket for the socket's whole life: its 128 KiB default cost 21% of the CPU of a 32-byte
/// echo. Measured with benchmarks/ws_echo.py, 32 B and 16 KiB messages echo as fast with 8 KiB as with
/// 16 or 32 KiB (a larger frame reserves its own room), and an idle socket holds 8 KiB less than with
/// 16 KiB (18.5 instead of 26.3 KiB per idle WebSocket).
const READ_BUFFER_SIZE: usize = 8 * 1024;

/// How long a closing handshake may take before the socket is dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

fn has_token(req: &Request<HyperIncoming>, name: header::HeaderName, token: &str) -> bool {
    req.headers().get_all(name).iter().any(|v| {
        v.to_str()
            .map(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
            .unwrap_or(false)
    })
}

pub fn is_upgrade(req: &Request<HyperIncoming>) -> bool {
    req.method() == http::Method::GET
        && req.version() == http::Version::HTTP_11
        && has_token(req, header::CONNECTION, "upgrade")
        && has_token(req, header::UPGRADE, "websocket")
}

/// Cancels the handshake for the app when the client leaves before it is answered.
struct PendingGuard(Option<Arc<WsShared>>);

impl Drop for PendingGuard {
    fn drop(&mut self) {
        if let Some(shared) = self.0.take() {
            shared.set_closed(1006, String::new());
            shared.conn.request_finished();
            shared.server.request_finished();
        }
    }
}

pub async fn handle_upgrade(
    mut req: Request<HyperIncoming>,
    svc: &Service,
) -> Response<ResponseBody> {
    let Service {
        conn,
        inbox,
        server,
    } = svc;
    let settings = &server.settings;
    let key = req.headers().get(header::SEC_WEBSOCKET_KEY).cloned();
    let version_ok = req
        .headers()
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_some_and(|v| v.as_bytes() == b"13");
    let Some(key) = key.filter(|_| version_ok) else {
        let mut response = responses::bad_request(settings);
        response.headers_mut().insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
        return response;
    };
    let protocols_ascii = req
        .headers()
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .all(|v| v.to_str().is_ok());
    if !protocols_ascii {
        // Dropping the value would lose the client's valid tokens too; uvicorn answers 400.
        inbox.log_info("connection rejected (400 Bad Request)");
        return responses::invalid_subprotocol(settings);
    }
    if !server.try_start_request() {
        return svc.refuse_over_limit(req.into_parts().0);
    }
    conn.request_started();
    if settings.trace_connections {
        // From here on the WebSocket lines tell the connection's story, as in uvicorn.
        conn.mark_upgraded();
        inbox.log_trace(format!("{}Upgrading to WebSocket", conn.log_prefix()));
    }
    // Lives until the socket task ends (accepted) or the handshake is answered otherwise.
    let trace = ConnectionTrace::start(svc, "WebSocket");
    let on_upgrade = hyper::upgrade::on(&mut req);
    let (parts, _body) = req.into_parts();
    let deflate = if settings.ws_per_message_deflate {
        DeflateParams::negotiate(
            parts
                .headers
                .get_all(header::SEC_WEBSOCKET_EXTENSIONS)
                .iter(),
        )
    } else {
        None
    };
    let shared = WsShared::new(inbox.clone(), server.clone(), conn.clone());
    let mut guard = PendingGuard(Some(shared.clone()));
    let (decide, decision) = oneshot::channel();
    inbox.push(Event::Job(Job::WebSocket(Box::new(WsCtx {
        parts,
        shared: shared.clone(),
        decide,
    }))));
    match decision.await {
        Ok(Handshake::Accept {
            subprotocol,
            headers,
            outgoing,
        }) => {
            guard.0 = None;
            let mut response = Response::new(ResponseBody::Full(None));
            *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
            let h = response.headers_mut();
            for (name, value) in headers {
                h.append(name, value);
            }
            h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
            h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
            if let Ok(accept) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
                h.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
            }
            if let Some(protocol) = subprotocol.and_then(|p| HeaderValue::from_str(&p).ok()) {
                h.insert(header::SEC_WEBSOCKET_PROTOCOL, protocol);
            }
            // The server owns extension negotiation: an app's own value would promise framing
            // this socket does not do.
            h.remove(header::SEC_WEBSOCKET_EXTENSIONS);
            if let Some(params) = &deflate {
                h.insert(header::SEC_WEBSOCKET_EXTENSIONS, params.response_header());
            }
            responses::apply_default_headers(h, settings);
            let task_server = server.clone();
            server.runtime.spawn(async move {
                let _trace = trace;
                let _count = task_server.connection_opened();
                match on_upgrade.await {
                    Ok(upgraded) => {
                        let io = InflatingStream::new(
                            TokioIo::new(upgraded),
                            deflate.as_ref(),
                            task_server.settings.ws_max_size,
                        );
                        let ws = WebSocketStream::from_raw_socket(
                            io,
                            Role::Server,
                            Some(socket_config(&task_server)),
                        )
                        .await;
                        let deflater = deflate.as_ref().map(MessageDeflater::new);
                        task_server.metrics.websocket_opened();
                        run_socket(ws, shared.clone(), outgoing, deflater).await;
                        task_server.metrics.websocket_closed();
                    }
                    Err(_) => shared.set_closed(1006, String::new()),
                }
                shared.conn.request_finished();
                task_server.request_finished();
            });
            response
        }
        Ok(Handshake::Deny(response)) => response,
        Err(_) => responses::internal_error(settings),
    }
}

fn socket_config(server: &Shared) -> WebSocketConfig {
    let mut config = WebSocketConfig::default();
    config.max_message_size = Some(server.settings.ws_max_size);
    config.max_frame_size = Some(server.settings.ws_max_size);
    config.write_buffer_size = 0;
    config.read_buffer_size = READ_BUFFER_SIZE;
    config
}

async fn run_socket<S>(
    ws: WebSocketStream<S>,
    shared: Arc<WsShared>,
    mut outgoing: mpsc::Receiver<Outgoing>,
    mut deflater: Option<MessageDeflater>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let settings = &shared.server.settings;
    let mut shutdown: watch::Receiver<ShutdownStage> = shared.server.shutdown_receiver();
    // Built once: a fresh `changed()` per loop turn joined and left the server-wide waiter list.
    let shutdown_started = async move {
        while *shutdown.borrow_and_update() == ShutdownStage::Running {
            if shutdown.changed().await.is_err() {
                return;
            }
        }
    };
    tokio::pin!(shutdown_started);
    let mut shutdown_seen = false;
    let (mut sink, mut stream) = ws.split();
    let ping_interval = settings.ws_ping_interval;
    let ping_timeout = settings.ws_ping_timeout;
    let mut next_ping = ping_interval.map(|i| Instant::now() + i);
    let mut awaiting_pong_since: Option<Instant> = None;
    // Set once we sent a close frame: wait (bounded) for the client's reply, then stop.
    let mut closing_deadline: Option<Instant> = None;
    let mut close_sent: Option<(u16, String)> = None;
    // One timer for the socket, moved only when its deadline changes: a fresh sleep per loop turn
    // (two turns per echoed message) registered and removed a timer-wheel entry every time.
    let timer = tokio::time::sleep_until(Instant::now());
    tokio::pin!(timer);
    let mut timer_at: Option<Instant> = None;

    loop {
        if let Some(deadline) = closing_deadline {
            if Instant::now() >= deadline {
                let (code, reason) = close_sent.clone().unwrap_or((1006, String::new()));
                shared.set_closed(code, reason);
                return;
            }
        }
        let room = shared.has_room();
        // Once a close frame went out, only the closing deadline matters: no more pings.
        let pinging = close_sent.is_none();
        let wake_at = [
            next_ping.filter(|_| pinging),
            awaiting_pong_since
                .zip(ping_timeout)
                .map(|(s, t)| s + t)
                .filter(|_| pinging),
            closing_deadline,
        ]
        .into_iter()
        .flatten()
        .min();
        if wake_at != timer_at {
            if let Some(at) = wake_at {
                timer.as_mut().reset(at);
            }
            timer_at = wake_at;
        }
        tokio::select! {
            frame = stream.next(), if room => match frame {
                Some(Ok(Message::Text(text))) => {
                    shared.push_incoming(Incoming::Text(text));
                }
                Some(Ok(Message::Binary(data))) => {
                    shared.push_incoming(Incoming::Binary(data));
                }
                Some(Ok(Message::Pong(_))) => awaiting_pong_since = None,
                Some(Ok(Message::Ping(_))) | Some(Ok(Message::Frame(_))) => {}
                Some(Ok(Message::Close(frame))) => {
                    // tungstenite queues the echo of the close frame; flush it out.
                    let _ = sink.flush().await;
                    let (code, reason) = match (&close_sent, frame) {
                        (Some(sent), _) => sent.clone(),
                        (None, Some(f)) => (u16::from(f.code), f.reason.as_str().to_owned()),
                        (None, None) => (1005, String::new()),
                    };
                    shared.set_closed(code, reason);
                    return;
                }
                Some(Err(WsError::Capacity(CapacityError::MessageTooLong { .. }))) => {
                    let _ = sink.send(close_message(1009, "")).await;
                    shared.set_closed(1009, String::new());
                    return;
                }
                Some(Err(WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake))) => {
                    // The peer vanished without a close frame: abrupt loss (spec W7)
                    let (code, reason) = close_sent.clone().unwrap_or((1006, String::new()));
                    shared.set_closed(code, reason);
                    return;
                }
                Some(Err(WsError::Io(e))) if e.kind() == std::io::ErrorKind::InvalidData => {
                    // Compressed data that does not inflate (RFC 7692 8): a protocol error.
                    let _ = sink.send(close_message(1002, "")).await;
                    shared.set_closed(1002, String::new());
                    return;
                }
                Some(Err(e @ (WsError::Protocol(_) | WsError::Utf8(_)))) => {
                    // RFC 6455 7.4.1: 1007 for text that is not UTF-8, 1002 for other violations
                    let code = if matches!(e, WsError::Utf8(_)) { 1007 } else { 1002 };
                    let _ = sink.send(close_message(code, "")).await;
                    shared.set_closed(code, String::new());
                    return;
                }
                Some(Err(_)) | None => {
                    let (code, reason) = close_sent.clone().unwrap_or((1006, String::new()));
                    shared.set_closed(code, reason);
                    return;
                }
            },
            _ = shared.space.notified(), if !room => {}
            out = outgoing.recv(), if close_sent.is_none() => {
                let message = match (out, deflater.as_mut()) {
                    (Some(Outgoing::Text(t)), Some(d)) => match d.frame(Data::Text, &t) {
                        Ok(frame) => Message::Frame(frame),
                        Err(_) => text_frame(t),
                    },
                    (Some(Outgoing::Binary(b)), Some(d)) => match d.frame(Data::Binary, &b) {
                        Ok(frame) => Message::Frame(frame),
                        Err(_) => Message::Binary(b),
                    },
                    (Some(Outgoing::Text(t)), None) => text_frame(t),
                    (Some(Outgoing::Binary(b)), None) => Message::Binary(b),
                    (Some(Outgoing::Close { code, reason }), _) => {
                        close_sent = Some((code, reason.clone()));
                        closing_deadline = Some(Instant::now() + CLOSE_TIMEOUT);
                        close_message(code, &reason)
                    }
                    (None, _) => {
                        // The app is gone without closing (its Task ended): close normally.
                        close_sent = Some((1000, String::new()));
                        closing_deadline = Some(Instant::now() + CLOSE_TIMEOUT);
                        close_message(1000, "")
                    }
                };
                if sink.send(message).await.is_err() {
                    let (code, reason) = close_sent.clone().unwrap_or((1006, String::new()));
                    shared.set_closed(code, reason);
                    return;
                }
            }
            _ = &mut shutdown_started, if close_sent.is_none() && !shutdown_seen => {
                shutdown_seen = true;
                close_sent = Some((1012, String::new()));
                closing_deadline = Some(Instant::now() + Duration::from_secs(1));
                let _ = sink.send(close_message(1012, "")).await;
            }
            _ = &mut timer, if timer_at.is_some() => {
                timer_at = None;
                let now = Instant::now();
                if let (Some(since), Some(timeout)) = (awaiting_pong_since, ping_timeout) {
                    if now >= since + timeout && close_sent.is_none() {
                        let reason = "keepalive ping timeout";
                        close_sent = Some((1011, reason.to_owned()));
                        closing_deadline = Some(now + Duration::from_secs(1));
                        let _ = sink.send(close_message(1011, reason)).await;
                        continue;
                    }
                }
                if let (Some(at), Some(interval)) = (next_ping, ping_interval) {
                    if now >= at && close_sent.is_none() {
                        next_ping = Some(now + interval);
                        if awaiting_pong_since.is_none() {
                            awaiting_pong_since = Some(now);
                        }
                        if sink.send(Message::Ping(bytes::Bytes::new())).await.is_err() {
                            shared.set_closed(1006, String::new());
                            return;
                        }
                    }
                }
            }
        }
    }
}

/// The app's str is valid UTF-8 already: frame its bytes as they are, without a second check.
fn text_frame(utf8: bytes::Bytes) -> Message {
    Message::Frame(Frame::message(utf8, OpCode::Data(Data::Text), true))
}

fn close_message(code: u16, reason: &str) -> Message {
    Message::Close(Some(CloseFrame {
        code: CloseCode::from(code),
        reason: reason.to_owned().into(),
    }))
}
