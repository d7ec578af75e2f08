//! `ws_echo --url ws://HOST:PORT/PATH [--connections 64] [--size 32] [--duration 10] [--warmup 2] [--text]`
//!
//! A WebSocket echo load client on a tokio current-thread runtime (one core; pin it with `taskset`).
//! It opens `--connections` WebSocket connections (no extension offered: tungstenite does not implement
//! permessage-deflate, so nothing is compressed), and on each one, in a loop, sends one message of
//! `--size` bytes (binary, or text with `--text`), waits for the echo and checks that it has the same
//! type, length and content. Round trips that complete during the `--duration` seconds that follow the
//! `--warmup` seconds are counted and their latency recorded. It prints one JSON object on stdout.
//!
//! Errors (failed connects, the server closing or breaking a connection, an echo that does not match,
//! a round trip stuck past the end of the run) end that connection and are counted; the run still
//! prints its JSON, and a consumer must treat any error as an invalid run.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::time::{timeout, timeout_at, Instant};
use tokio_tungstenite::connect_async_with_config;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

/// How long a round trip in flight when the run ends may take before it counts as a timeout.
const GRACE: Duration = Duration::from_secs(5);
/// How long the closing handshake of each connection may take at the end (not counted as an error).
const CLOSE_WAIT: Duration = Duration::from_secs(1);
/// Distinct payloads, sent in turn, so that an echo of an earlier message is caught as a mismatch.
const VARIANTS: usize = 26;

struct Args {
    url: String,
    connections: usize,
    size: usize,
    duration: f64,
    warmup: f64,
    text: bool,
}

fn usage(problem: &str) -> ! {
    if !problem.is_empty() {
        eprintln!("ws_echo: {problem}");
    }
    eprintln!(
        "usage: ws_echo --url ws://HOST:PORT/PATH [--connections 64] [--size 32] [--duration 10] \
         [--warmup 2] [--text]"
    );
    std::process::exit(2);
}

fn value<T: std::str::FromStr>(flag: &str, raw: Option<String>) -> T {
    let raw = raw.unwrap_or_else(|| usage(&format!("{flag} needs a value")));
    raw.parse()
        .unwrap_or_else(|_| usage(&format!("{flag}: cannot parse {raw:?}")))
}

fn parse_args() -> Args {
    let mut args = Args {
        url: String::new(),
        connections: 64,
        size: 32,
        duration: 10.0,
        warmup: 2.0,
        text: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--url" => args.url = value(&flag, it.next()),
            "--connections" => args.connections = value(&flag, it.next()),
            "--size" => args.size = value(&flag, it.next()),
            "--duration" => args.duration = value(&flag, it.next()),
            "--warmup" => args.warmup = value(&flag, it.next()),
            "--text" => args.text = true,
            "-h" | "--help" => usage(""),
            other => usage(&format!("unknown argument {other:?}")),
        }
    }
    if !(args.url.starts_with("ws://") || args.url.starts_with("wss://")) {
        usage("--url ws://HOST:PORT/PATH is required");
    }
    if args.connections == 0 || args.size == 0 {
        usage("--connections and --size must be at least 1");
    }
    if !(args.duration.is_finite() && args.duration > 0.0) {
        usage("--duration must be a positive number of seconds");
    }
    if !(args.warmup.is_finite() && args.warmup >= 0.0) {
        usage("--warmup must be zero or a positive number of seconds");
    }
    args
}

// ------------------------------------------------------------------------------------------------
// Latency histogram: exact below 128 ns, then 64 linear sub-buckets per power of two (< 1.6% error).
// ------------------------------------------------------------------------------------------------

const SUB_BITS: u32 = 6;
const SUB: usize = 1 << SUB_BITS;
const LINEAR: usize = 2 * SUB;
const BUCKETS: usize = LINEAR + (64 - SUB_BITS as usize - 1) * SUB;

struct Histogram {
    counts: Vec<u64>,
    total: u64,
    sum_ns: u128,
    max_ns: u64,
}

impl Histogram {
    fn new() -> Self {
        Histogram {
            counts: vec![0; BUCKETS],
            total: 0,
            sum_ns: 0,
            max_ns: 0,
        }
    }

    fn index(ns: u64) -> usize {
        if ns < LINEAR as u64 {
            return ns as usize;
        }
        let msb = 63 - ns.leading_zeros(); // at least SUB_BITS + 1
        let shift = msb - SUB_BITS;
        let mantissa = (ns >> shift) as usize - SUB; // 0..SUB
        LINEAR + (msb - SUB_BITS - 1) as usize * SUB + mantissa
    }

    /// The middle of bucket `i`'s range of values.
    fn midpoint(i: usize) -> u64 {
        if i < LINEAR {
            return i as u64;
        }
        let j = i - LINEAR;
        let shift = (j / SUB) as u32 + 1;
        let low = ((j % SUB + SUB) as u64) << shift;
        low + (1u64 << (shift - 1))
    }

    fn record(&mut self, ns: u64) {
        self.counts[Self::index(ns)] += 1;
        self.total += 1;
        self.sum_ns += u128::from(ns);
        self.max_ns = self.max_ns.max(ns);
    }

    fn merge(&mut self, other: &Histogram) {
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
        self.total += other.total;
        self.sum_ns += other.sum_ns;
        self.max_ns = self.max_ns.max(other.max_ns);
    }

    /// The value below which a fraction `q` of the samples lie (0 when there is none).
    fn quantile_ns(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, &count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Self::midpoint(i).min(self.max_ns);
            }
        }
        self.max_ns
    }

    fn mean_ns(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.sum_ns as f64 / self.total as f64
        }
    }
}

// ------------------------------------------------------------------------------------------------
// One connection
// ------------------------------------------------------------------------------------------------

struct Payloads {
    messages: Vec<Message>,
    bytes: Vec<Bytes>,
    text: bool,
}

impl Payloads {
    /// `VARIANTS` distinct ASCII payloads of `size` bytes (valid UTF-8, so usable as text too).
    fn new(size: usize, text: bool) -> Result<Self, String> {
        let mut messages = Vec::with_capacity(VARIANTS);
        let mut bytes = Vec::with_capacity(VARIANTS);
        for k in 0..VARIANTS {
            let data: Vec<u8> = (0..size).map(|i| b'a' + ((i + k) % 26) as u8).collect();
            let data = Bytes::from(data);
            let message = if text {
                let utf8 = Utf8Bytes::try_from(data.clone()).map_err(|e| e.to_string())?;
                Message::Text(utf8)
            } else {
                Message::Binary(data.clone())
            };
            messages.push(message);
            bytes.push(data);
        }
        Ok(Payloads {
            messages,
            bytes,
            text,
        })
    }
}

struct Window {
    measure_from: Instant,
    end: Instant,
}

#[derive(Default)]
struct Outcome {
    round_trips: u64,
    connect_failed: u64,
    unexpected_closes: u64,
    mismatches: u64,
    timeouts: u64,
    completed: bool,
    first_error: Option<String>,
}

impl Outcome {
    fn note(&mut self, error: String) {
        if self.first_error.is_none() {
            self.first_error = Some(error);
        }
    }
}

fn describe(message: &Message) -> String {
    match message {
        Message::Text(t) => format!("text of {} bytes", t.len()),
        Message::Binary(b) => format!("binary of {} bytes", b.len()),
        Message::Ping(_) => "ping".into(),
        Message::Pong(_) => "pong".into(),
        Message::Close(frame) => format!("close {frame:?}"),
        Message::Frame(_) => "raw frame".into(),
    }
}

async fn connection(
    url: Arc<str>,
    payloads: Arc<Payloads>,
    window: Arc<Window>,
) -> (Outcome, Histogram) {
    let mut out = Outcome::default();
    let mut hist = Histogram::new();
    let hard_end = window.end + GRACE;
    let connected = timeout_at(window.end, connect_async_with_config(&*url, None, true)).await;
    let mut ws = match connected {
        Ok(Ok((ws, _response))) => ws,
        Ok(Err(e)) => {
            out.connect_failed += 1;
            out.note(format!("connect: {e}"));
            return (out, hist);
        }
        Err(_) => {
            out.connect_failed += 1;
            out.note("connect: not connected before the end of the run".into());
            return (out, hist);
        }
    };
    let mut seq = 0usize;
    while Instant::now() < window.end {
        let k = seq % VARIANTS;
        seq += 1;
        let started = Instant::now();
        match timeout_at(hard_end, ws.send(payloads.messages[k].clone())).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                out.unexpected_closes += 1;
                out.note(format!("send: {e}"));
                return (out, hist);
            }
            Err(_) => {
                out.timeouts += 1;
                out.note("send: stuck past the end of the run".into());
                return (out, hist);
            }
        }
        let reply = loop {
            match timeout_at(hard_end, ws.next()).await {
                Ok(Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)))) => continue,
                Ok(Some(Ok(Message::Close(frame)))) => {
                    out.unexpected_closes += 1;
                    out.note(format!("server closed the connection: {frame:?}"));
                    return (out, hist);
                }
                Ok(Some(Ok(message))) => break message,
                Ok(Some(Err(e))) => {
                    out.unexpected_closes += 1;
                    out.note(format!("receive: {e}"));
                    return (out, hist);
                }
                Ok(None) => {
                    out.unexpected_closes += 1;
                    out.note("receive: connection ended without a close frame".into());
                    return (out, hist);
                }
                Err(_) => {
                    out.timeouts += 1;
                    out.note("receive: no echo before the end of the run".into());
                    return (out, hist);
                }
            }
        };
        let done = Instant::now();
        let expected = &payloads.bytes[k];
        let matches = match &reply {
            Message::Text(t) if payloads.text => t.as_bytes() == expected.as_ref(),
            Message::Binary(b) if !payloads.text => b == expected,
            _ => false,
        };
        if !matches {
            out.mismatches += 1;
            let kind = if payloads.text { "text" } else { "binary" };
            out.note(format!(
                "mismatch: sent {kind} of {} bytes, got back {}{}",
                expected.len(),
                describe(&reply),
                if reply.len() == expected.len() {
                    " with different content"
                } else {
                    ""
                }
            ));
            return (out, hist);
        }
        if done >= window.measure_from && done < window.end {
            out.round_trips += 1;
            let ns = u64::try_from((done - started).as_nanos()).unwrap_or(u64::MAX);
            hist.record(ns);
        }
    }
    // Close politely; how the server answers the close does not count.
    let _ = timeout(CLOSE_WAIT, async {
        if ws.close(None).await.is_ok() {
            while let Some(Ok(_)) = ws.next().await {}
        }
    })
    .await;
    out.completed = true;
    (out, hist)
}

// ------------------------------------------------------------------------------------------------
// The run and its JSON report
// ------------------------------------------------------------------------------------------------

fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn ms(ns: f64) -> String {
    format!("{:.4}", ns / 1e6)
}

async fn run(args: Args) -> Result<String, String> {
    let payloads = Arc::new(Payloads::new(args.size, args.text)?);
    let url: Arc<str> = Arc::from(args.url.as_str());
    let start = Instant::now();
    let measure_from = start + Duration::from_secs_f64(args.warmup);
    let window = Arc::new(Window {
        measure_from,
        end: measure_from + Duration::from_secs_f64(args.duration),
    });
    let tasks: Vec<_> = (0..args.connections)
        .map(|_| tokio::spawn(connection(url.clone(), payloads.clone(), window.clone())))
        .collect();
    let mut total = Outcome::default();
    let mut hist = Histogram::new();
    let mut completed = 0u64;
    let mut crashed = 0u64;
    for task in tasks {
        match task.await {
            Ok((out, h)) => {
                hist.merge(&h);
                total.round_trips += out.round_trips;
                total.connect_failed += out.connect_failed;
                total.unexpected_closes += out.unexpected_closes;
                total.mismatches += out.mismatches;
                total.timeouts += out.timeouts;
                completed += u64::from(out.completed);
                if let Some(e) = out.first_error {
                    total.note(e);
                }
            }
            Err(e) => {
                crashed += 1;
                total.note(format!("connection task failed: {e}"));
            }
        }
    }
    let seconds = (window.end - window.measure_from).as_secs_f64();
    let errors = total.connect_failed
        + total.unexpected_closes
        + total.mismatches
        + total.timeouts
        + crashed;
    let first_error = total
        .first_error
        .as_deref()
        .map_or_else(|| "null".to_string(), json_string);
    Ok(format!(
        concat!(
            "{{\"url\": {}, \"connections\": {}, \"size\": {}, \"type\": \"{}\", ",
            "\"warmup_s\": {}, \"seconds\": {:.3}, \"round_trips\": {}, \"round_trips_per_s\": {:.1}, ",
            "\"latency_ms\": {{\"p50\": {}, \"p90\": {}, \"p99\": {}, \"max\": {}, \"mean\": {}}}, ",
            "\"errors\": {}, \"connect_failed\": {}, \"unexpected_closes\": {}, \"mismatches\": {}, ",
            "\"timeouts\": {}, \"connections_completed\": {}, \"first_error\": {}}}"
        ),
        json_string(&args.url),
        args.connections,
        args.size,
        if args.text { "text" } else { "binary" },
        args.warmup,
        seconds,
        total.round_trips,
        total.round_trips as f64 / seconds,
        ms(hist.quantile_ns(0.50) as f64),
        ms(hist.quantile_ns(0.90) as f64),
        ms(hist.quantile_ns(0.99) as f64),
        ms(hist.max_ns as f64),
        ms(hist.mean_ns()),
        errors,
        total.connect_failed,
        total.unexpected_closes,
        total.mismatches,
        total.timeouts + crashed,
        completed,
        first_error,
    ))
}

fn main() {
    let args = parse_args();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ws_echo: cannot start the tokio runtime: {e}");
            std::process::exit(1);
        }
    };
    match runtime.block_on(run(args)) {
        Ok(json) => println!("{json}"),
        Err(e) => {
            eprintln!("ws_echo: {e}");
            std::process::exit(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Histogram;

    #[test]
    fn buckets_round_trip() {
        for ns in (0..100_000u64).chain([1 << 20, 123_456_789, u64::MAX / 3, u64::MAX]) {
            let i = Histogram::index(ns);
            assert!(i < super::BUCKETS, "{ns} -> {i}");
            let mid = Histogram::midpoint(i);
            let error = mid.abs_diff(ns) as f64 / (ns.max(1)) as f64;
            assert!(error <= 1.0 / 64.0, "{ns} -> bucket {i} mid {mid}");
            if i + 1 < super::BUCKETS {
                assert!(Histogram::midpoint(i + 1) > mid);
            }
        }
    }

    #[test]
    fn quantiles() {
        let mut h = Histogram::new();
        for ns in 1..=1000u64 {
            h.record(ns * 1000);
        }
        let p50 = h.quantile_ns(0.5) as f64;
        let p99 = h.quantile_ns(0.99) as f64;
        assert!((p50 - 500_000.0).abs() / 500_000.0 < 0.02, "{p50}");
        assert!((p99 - 990_000.0).abs() / 990_000.0 < 0.02, "{p99}");
        assert_eq!(h.quantile_ns(1.0), 1_000_000);
        assert_eq!(Histogram::new().quantile_ns(0.5), 0);
    }
}
