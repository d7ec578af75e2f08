//! One HTTP/1.1 connection: hyper's state machine around the service, the keep-alive timer,
//! graceful and forced shutdown, and parking: a connection idle for `PARK_AFTER` leaves hyper (and
//! its buffers) until its next bytes arrive (`parked_io.rs`).

use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio::time::Instant;

use super::head_scan::HeadScan;
use super::head_timeout::HeadTimeout;
use super::parked_io::ParkableIo;
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

/// A keep-alive connection idle this long is parked: hyper's ~18 KiB per connection (read and write
/// buffers, boxed service future, cached header map) are freed until its next request. Long enough
/// that a busy connection never pays for a fresh hyper connection, short against keep-alive times.
const PARK_AFTER: Duration = Duration::from_secs(1);

/// Whether idle keep-alive connections are parked at all (the memory they save is measured in
/// docs/benchmarks.md; switching it off is the way to rule parking out when hunting a stall).
const PARKING_ENABLED: bool = true;

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
    // Below hyper (and below parking, so that their state lasts the whole connection): the request
    // head timeout when asked for, then the bare-LF check, which sees every byte once.
    if let Some(timeout) = svc.server.settings.timeout_request_head {
        let io = HeadTimeout::new(io, svc.conn.clone(), svc.server.clone(), timeout);
        // Ours answers 408; hyper's own would only close the socket.
        return drive(HeadScan::new(io), svc, shutdown, None).await;
    }
    drive(HeadScan::new(io), svc, shutdown, Some(HEADER_READ_TIMEOUT)).await
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
    let mut service = service_fn(move |req| {
        let svc = svc.clone();
        async move { Ok::<_, std::convert::Infallible>(svc.call(req).await) }
    });
    let keep_alive = settings.timeout_keep_alive;
    let mut io = ParkableIo::new(io);
    let activity = io.activity();
    // (requests seen, idle time already spent) when parking was given up until the next request:
    // hyper still had bytes to write, or it was taken apart holding part of a request (then a client
    // trickling a request head cannot escape the header-read timeout by being parked and resumed).
    let mut no_park_before_request: Option<(u64, Duration)> = None;
    loop {
        // hyper's connection and the waits around it live in a box of their own (~2.5 KiB), freed
        // when the connection is parked: the task keeps only what the parked state needs.
        let turn = Box::pin(async {
            let mut connection = builder
                .serve_connection(TokioIo::new(io), service)
                .with_upgrades();
            let mut closing = false;
            // A connection accepted just before shutdown may have its first request in the socket,
            // unread: it gets a short grace to start that request (then answered with `Connection: close`).
            let mut first_request_grace: Option<Instant> = None;
            loop {
                let stage = *shutdown.borrow();
                if stage == ShutdownStage::Force {
                    return None; // dropping the connection closes the socket
                }
                if stage == ShutdownStage::Graceful && !closing {
                    if conn.has_requests() {
                        closing = true;
                        std::pin::Pin::new(&mut connection).graceful_shutdown();
                    } else {
                        let deadline = *first_request_grace
                            .get_or_insert_with(|| Instant::now() + FIRST_REQUEST_GRACE);
                        if Instant::now() >= deadline {
                            closing = true;
                            std::pin::Pin::new(&mut connection).graceful_shutdown();
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
                let seen = conn.requests_seen();
                let held_back = no_park_before_request.filter(|(at, _)| *at == seen);
                let may_park = PARKING_ENABLED
                    && !closing
                    && stage == ShutdownStage::Running
                    && PARK_AFTER < keep_alive
                    && held_back.is_none();
                // One idle timer (a waiter and a timer entry re-armed at every request's start and end)
                // serves both: first the park check, else the keep-alive, less any idle time spent.
                let idle_wait = if may_park {
                    PARK_AFTER
                } else {
                    keep_alive.saturating_sub(held_back.map_or(Duration::ZERO, |(_, spent)| spent))
                };
                tokio::select! {
                    _ = grace_wait => {}
                    result = &mut connection => {
                        if let Err(e) = result {
                            if e.is_parse() || e.is_parse_too_large() {
                                service_inbox.log_warning("Invalid HTTP request received.");
                            }
                        }
                        return None;
                    }
                    changed = shutdown.changed() => {
                        if changed.is_err() {
                            return None;
                        }
                    }
                    _ = conn.idle_for(idle_wait), if !closing => {
                        if !may_park {
                            closing = true;
                            std::pin::Pin::new(&mut connection).graceful_shutdown();
                        } else if activity.quiet() {
                            // hyper flushed everything it wrote and nothing came in since: it is
                            // waiting for the next request head, and taking it apart loses nothing.
                            // None when upgraded: the WebSocket task owns the socket now.
                            return connection.into_parts();
                        } else {
                            no_park_before_request = Some((seen, PARK_AFTER));
                        }
                    }
                }
            }
        });
        let Some(parts) = turn.await else {
            return;
        };
        let http1::Parts {
            io: parked,
            read_buf,
            service: returned,
            ..
        } = parts;
        io = parked.into_inner();
        service = returned;
        if !read_buf.is_empty() {
            // Part of a request arrived since hyper last flushed: resume at once, with those bytes.
            io.set_prefix(read_buf);
            no_park_before_request = Some((conn.requests_seen(), Duration::ZERO));
            continue;
        }
        // Even empty, it is a view of hyper's whole read buffer: freeing that is the point.
        drop(read_buf);
        no_park_before_request = None;
        let idle_since = Instant::now()
            .checked_sub(PARK_AFTER)
            .unwrap_or_else(Instant::now);
        let _parked = server.connection_parked();
        if !wait_parked(&mut io, &conn, &mut shutdown, idle_since + keep_alive).await {
            return;
        }
    }
}

/// A parked connection waits for its next bytes on the bare socket; true when they came (hyper
/// takes over again), false when the connection is to close: EOF or a read error, the keep-alive
/// time is over, or the server shuts down (a connection that never sent a request still gets the
/// first-request grace).
async fn wait_parked<IO>(
    io: &mut ParkableIo<IO>,
    conn: &ConnInfo,
    shutdown: &mut watch::Receiver<ShutdownStage>,
    keep_alive_deadline: Instant,
) -> bool
where
    IO: AsyncRead + Unpin,
{
    let mut deadline = keep_alive_deadline;
    loop {
        match *shutdown.borrow() {
            ShutdownStage::Force => return false,
            ShutdownStage::Graceful if conn.has_requests() => return false,
            ShutdownStage::Graceful => {
                deadline = deadline.min(Instant::now() + FIRST_REQUEST_GRACE);
            }
            ShutdownStage::Running => {}
        }
        tokio::select! {
            read = io.wait_for_bytes() => return matches!(read, Ok(true)),
            _ = tokio::time::sleep_until(deadline) => return false,
            changed = shutdown.changed() => {
                if changed.is_err() {
                    return false;
                }
            }
        }
    }
}
