//! The Prometheus endpoint (`--metrics-port`): its own listener and a tiny HTTP/1.1 service that
//! renders the counters of `state::metrics` and the server's gauges. No Python runs here, so a
//! scrape never waits for a busy event loop.

use std::fmt::Write as _;
use std::io;
use std::os::fd::FromRawFd;
use std::sync::Arc;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use super::loops::Loops;
use crate::state::body::ResponseBody;
use crate::state::{Shared, ShutdownStage};

const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Serves the metrics on an already bound TCP socket until shutdown begins.
pub fn start(shared: Arc<Shared>, loops: Arc<Loops>, fd: i32) -> io::Result<()> {
    // SAFETY: F_DUPFD_CLOEXEC has no memory-safety preconditions; the result is checked.
    let owned = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
    if owned < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `owned` is a fresh duplicate that nothing else owns.
    let std_listener = unsafe { std::net::TcpListener::from_raw_fd(owned) };
    std_listener.set_nonblocking(true)?;
    let _guard = shared.runtime.enter();
    let listener = TcpListener::from_std(std_listener)?;
    shared
        .runtime
        .spawn(accept(listener, shared.clone(), loops));
    Ok(())
}

async fn accept(listener: TcpListener, shared: Arc<Shared>, loops: Arc<Loops>) {
    let mut stop = shared.shutdown_receiver();
    loop {
        if *stop.borrow() != ShutdownStage::Running {
            return;
        }
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let shared = shared.clone();
                let loops = loops.clone();
                let mut stop = shared.shutdown_receiver();
                shared.runtime.spawn(async move {
                    let service = service_fn(move |req| {
                        let body = scrape(&req, &shared, &loops);
                        async move { Ok::<_, std::convert::Infallible>(body) }
                    });
                    let connection = http1::Builder::new()
                        .keep_alive(true)
                        .serve_connection(TokioIo::new(stream), service);
                    // A scraper's keep-alive connection must not hold up a shutdown.
                    tokio::select! {
                        _ = connection => {}
                        _ = stop.wait_for(|stage| *stage != ShutdownStage::Running) => {}
                    }
                });
            }
            changed = stop.changed() => if changed.is_err() { return },
        }
    }
}

fn scrape(req: &Request<Incoming>, shared: &Shared, loops: &Loops) -> Response<ResponseBody> {
    let (status, body) = match (req.method(), req.uri().path()) {
        (&Method::GET | &Method::HEAD, "/metrics" | "/") => (StatusCode::OK, render(shared, loops)),
        _ => (
            StatusCode::NOT_FOUND,
            "not found: the metrics are at /metrics\n".to_string(),
        ),
    };
    let body = if req.method() == Method::HEAD {
        None
    } else {
        Some(Bytes::from(body))
    };
    let mut response = Response::new(ResponseBody::Full(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    response
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// The Prometheus text exposition format (version 0.0.4).
pub fn render(shared: &Shared, loops: &Loops) -> String {
    let metrics = &shared.metrics;
    let mut out = String::with_capacity(2048);
    family(
        &mut out,
        "turboasgi_requests_total",
        "counter",
        "HTTP responses sent (including the server's own 4xx/5xx and WebSocket handshake answers), by status class.",
    );
    for (i, n) in metrics.responses_by_class().iter().enumerate() {
        let _ = writeln!(
            out,
            "turboasgi_requests_total{{status_class=\"{}xx\"}} {n}",
            i + 1
        );
    }
    family(
        &mut out,
        "turboasgi_request_duration_seconds",
        "histogram",
        "Time from a request's head being read to its response head being handed to the connection.",
    );
    let d = metrics.durations();
    for (bound, count) in &d.cumulative {
        let _ = writeln!(
            out,
            "turboasgi_request_duration_seconds_bucket{{le=\"{bound}\"}} {count}"
        );
    }
    let _ = writeln!(
        out,
        "turboasgi_request_duration_seconds_bucket{{le=\"+Inf\"}} {}\nturboasgi_request_duration_seconds_sum {}\nturboasgi_request_duration_seconds_count {}",
        d.count, d.sum_seconds, d.count
    );
    family(
        &mut out,
        "turboasgi_requests_in_flight",
        "gauge",
        "HTTP requests and WebSocket connections being served now.",
    );
    let _ = writeln!(
        out,
        "turboasgi_requests_in_flight {}",
        shared.requests_in_flight()
    );
    family(
        &mut out,
        "turboasgi_connections_open",
        "gauge",
        "Open client connections, WebSockets included.",
    );
    let _ = writeln!(
        out,
        "turboasgi_connections_open {}",
        shared.connection_count()
    );
    family(
        &mut out,
        "turboasgi_websockets_open",
        "gauge",
        "Open WebSocket connections.",
    );
    let _ = writeln!(out, "turboasgi_websockets_open {}", metrics.websockets());
    family(
        &mut out,
        "turboasgi_rejected_requests_total",
        "counter",
        "Requests and WebSocket handshakes answered 503 because of --limit-concurrency.",
    );
    let _ = writeln!(
        out,
        "turboasgi_rejected_requests_total {}",
        metrics.rejected_total()
    );
    family(
        &mut out,
        "turboasgi_event_loop_lag_seconds",
        "gauge",
        "Longest wait, since the previous scrape, between the network side waking an event loop and that loop taking its work.",
    );
    for (i, lag) in loops.take_lags().iter().enumerate() {
        let _ = writeln!(
            out,
            "turboasgi_event_loop_lag_seconds{{loop=\"{i}\"}} {lag}"
        );
    }
    out
}
