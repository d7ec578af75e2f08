//! Counters for the Prometheus endpoint (`--metrics-port`). Counted on the network threads with
//! relaxed atomics, only when the endpoint is on: the app's Python code never pays for them.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

/// Upper bounds of the request-duration histogram, in seconds (Prometheus' usual HTTP buckets).
pub const DURATION_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Default)]
pub struct Metrics {
    /// Responses by status class: index 0 is 1xx, 4 is 5xx.
    responses: [AtomicU64; 5],
    /// Per bucket (not cumulative); the last slot counts what exceeds every bound.
    duration_buckets: [AtomicU64; DURATION_BUCKETS.len() + 1],
    duration_sum_micros: AtomicU64,
    /// Requests and WebSocket handshakes answered 503 by `--limit-concurrency`.
    rejected_over_limit: AtomicU64,
    websockets_open: AtomicUsize,
}

/// A snapshot of the histogram, cumulative as Prometheus wants it.
pub struct DurationSnapshot {
    pub cumulative: Vec<(f64, u64)>,
    pub count: u64,
    pub sum_seconds: f64,
}

impl Metrics {
    /// One response head handed to the connection, `elapsed` after its request head was read.
    pub fn observe(&self, status: u16, elapsed: Duration) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.responses[class].fetch_add(1, Ordering::Relaxed);
        let seconds = elapsed.as_secs_f64();
        let bucket = DURATION_BUCKETS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(DURATION_BUCKETS.len());
        self.duration_buckets[bucket].fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.duration_sum_micros
            .fetch_add(micros, Ordering::Relaxed);
    }

    pub fn rejected_over_limit(&self) {
        self.rejected_over_limit.fetch_add(1, Ordering::Relaxed);
    }

    pub fn websocket_opened(&self) {
        self.websockets_open.fetch_add(1, Ordering::Relaxed);
    }

    pub fn websocket_closed(&self) {
        self.websockets_open.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn responses_by_class(&self) -> [u64; 5] {
        std::array::from_fn(|i| self.responses[i].load(Ordering::Relaxed))
    }

    pub fn rejected_total(&self) -> u64 {
        self.rejected_over_limit.load(Ordering::Relaxed)
    }

    pub fn websockets(&self) -> usize {
        self.websockets_open.load(Ordering::Relaxed)
    }

    pub fn durations(&self) -> DurationSnapshot {
        let mut running = 0;
        let mut cumulative = Vec::with_capacity(DURATION_BUCKETS.len());
        for (i, bound) in DURATION_BUCKETS.iter().enumerate() {
            running += self.duration_buckets[i].load(Ordering::Relaxed);
            cumulative.push((*bound, running));
        }
        let count = running + self.duration_buckets[DURATION_BUCKETS.len()].load(Ordering::Relaxed);
        DurationSnapshot {
            cumulative,
            count,
            sum_seconds: self.duration_sum_micros.load(Ordering::Relaxed) as f64 / 1e6,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_cumulative_and_classes_are_counted() {
        let m = Metrics::default();
        m.observe(200, Duration::from_millis(3));
        m.observe(404, Duration::from_millis(30));
        m.observe(503, Duration::from_secs(20));
        m.observe(101, Duration::ZERO);
        assert_eq!(m.responses_by_class(), [1, 1, 0, 1, 1]);
        let d = m.durations();
        assert_eq!(d.count, 4);
        assert_eq!(d.cumulative[0], (0.005, 2));
        assert_eq!(d.cumulative[3], (0.05, 3));
        assert_eq!(d.cumulative.last().map(|c| c.1), Some(3));
        assert!((d.sum_seconds - 20.033).abs() < 1e-6);
    }
}
