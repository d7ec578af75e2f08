//! The bottom layer: what every other layer shares. Server settings and counters, the per-connection
//! context, response bodies, the messages a WebSocket transport hands its socket, and the responses
//! the server writes itself. Nothing here knows about the bridge, the ASGI transports or a protocol.

pub mod body;
pub mod cert_name;
pub mod connection;
pub mod metrics;
pub mod responses;
pub mod ws_message;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use pyo3::prelude::*;
use tokio::runtime::Runtime;
use tokio::sync::{watch, Notify};

use crate::config::Settings;
use metrics::Metrics;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ShutdownStage {
    Running,
    /// Stop accepting, close idle keep-alive connections, let in-flight requests finish.
    Graceful,
    /// Close every connection now.
    Force,
}

/// Process-wide state of one server, shared by every connection task.
pub struct Shared {
    pub settings: Settings,
    pub runtime: &'static Runtime,
    in_flight: AtomicUsize,
    requests_total: AtomicU64,
    connections: AtomicUsize,
    /// Open connections parked outside hyper (idle keep-alive connections without their buffers).
    parked: AtomicUsize,
    /// The most connections open, and open and not parked, at once since the heap was last trimmed.
    open_peak: AtomicUsize,
    active_peak: AtomicUsize,
    connections_changed: Notify,
    shutdown: watch::Sender<ShutdownStage>,
    error_logger: Py<PyAny>,
    /// Counted only when `settings.metrics` is on.
    pub metrics: Metrics,
}

pub struct ConnectionCount(Arc<Shared>);

impl Drop for ConnectionCount {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::AcqRel);
        self.0.connections_changed.notify_waiters();
    }
}

/// Counts one connection as parked for as long as it lives.
pub struct ParkedCount(Arc<Shared>);

impl Drop for ParkedCount {
    fn drop(&mut self) {
        self.0.parked.fetch_sub(1, Ordering::AcqRel);
        self.0.note_active();
    }
}

/// Trimming only pays after this many connections were busy at once (a few MiB of buffers).
const TRIM_MIN_PEAK: usize = 128;

impl Shared {
    pub fn new(settings: Settings, runtime: &'static Runtime, error_logger: Py<PyAny>) -> Self {
        let (shutdown, _) = watch::channel(ShutdownStage::Running);
        Shared {
            settings,
            runtime,
            in_flight: AtomicUsize::new(0),
            requests_total: AtomicU64::new(0),
            connections: AtomicUsize::new(0),
            parked: AtomicUsize::new(0),
            open_peak: AtomicUsize::new(0),
            active_peak: AtomicUsize::new(0),
            connections_changed: Notify::new(),
            shutdown,
            error_logger,
            metrics: Metrics::default(),
        }
    }

    /// Counts the request against `--limit-concurrency`; false when over the limit.
    pub fn try_start_request(&self) -> bool {
        let now = self.in_flight.fetch_add(1, Ordering::AcqRel) + 1;
        self.requests_total.fetch_add(1, Ordering::Relaxed);
        if let Some(limit) = self.settings.limit_concurrency {
            if now > limit {
                self.in_flight.fetch_sub(1, Ordering::AcqRel);
                if self.settings.metrics {
                    self.metrics.rejected_over_limit();
                }
                return false;
            }
        }
        true
    }

    pub fn request_finished(&self) {
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
    }

    pub fn connection_opened(self: &Arc<Self>) -> ConnectionCount {
        self.connections.fetch_add(1, Ordering::AcqRel);
        self.note_active();
        ConnectionCount(self.clone())
    }

    pub fn requests_in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    pub fn connection_parked(self: &Arc<Self>) -> ParkedCount {
        self.parked.fetch_add(1, Ordering::AcqRel);
        ParkedCount(self.clone())
    }

    /// Connections open and not parked: the ones holding hyper's buffers.
    fn active_connections(&self) -> usize {
        let open = self.connections.load(Ordering::Acquire);
        open.saturating_sub(self.parked.load(Ordering::Acquire))
    }

    fn note_active(&self) {
        self.open_peak
            .fetch_max(self.connections.load(Ordering::Acquire), Ordering::AcqRel);
        self.active_peak
            .fetch_max(self.active_connections(), Ordering::AcqRel);
    }

    /// Whether the allocator should give freed memory back to the OS now: the open connections, or
    /// the busy ones (those holding hyper's buffers), have dropped to a quarter of their peak: a
    /// flood closed, or its connections were parked, and what they held is free but stays resident,
    /// the allocator keeping it for reuse. Re-arms at the next peak, so a steady load never trims.
    pub fn take_trim_due(&self) -> bool {
        let open = self.connections.load(Ordering::Acquire);
        let active = self.active_connections();
        let dropped = |peak: &AtomicUsize, now: usize| {
            let peak = peak.load(Ordering::Acquire);
            peak >= TRIM_MIN_PEAK && now <= peak / 4
        };
        if dropped(&self.open_peak, open) || dropped(&self.active_peak, active) {
            self.open_peak.store(open, Ordering::Release);
            self.active_peak.store(active, Ordering::Release);
            return true;
        }
        false
    }

    pub fn connection_count(&self) -> usize {
        self.connections.load(Ordering::Acquire)
    }

    pub fn request_count(&self) -> u64 {
        self.requests_total.load(Ordering::Relaxed)
    }

    pub fn shutdown_receiver(&self) -> watch::Receiver<ShutdownStage> {
        self.shutdown.subscribe()
    }

    pub fn begin_shutdown(&self, stage: ShutdownStage) {
        let _ = self.shutdown.send(stage);
    }

    pub fn error_logger(&self) -> &Py<PyAny> {
        &self.error_logger
    }

    pub async fn wait_connections_closed(&self) {
        loop {
            let notified = self.connections_changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.connections.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }
}
