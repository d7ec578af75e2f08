//! One inbox per asyncio loop: tokio threads push events without touching Python, the loop thread
//! drains them in batches after a single eventfd wakeup. Generic over the jobs it carries (for the
//! ASGI layer: a request or a WebSocket handshake to start), so the bridge knows no protocol.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Instant;

use tokio::sync::Notify;

use pyo3::prelude::*;

use crate::sync::lock_or_recover;

/// Something whose waiting `receive()` futures may now be resolvable.
pub trait Wakeable: Send + Sync {
    fn wake_waiters(&self, py: Python<'_>) -> PyResult<()>;
}

/// What a tokio thread hands to a loop thread.
pub enum Event<J> {
    /// Work the layer above starts on the loop (for ASGI: a request's or a handshake's Task).
    Job(J),
    /// Data, end of body or a disconnect arrived: resolve waiting `receive()` futures.
    Wake(Arc<dyn Wakeable>),
    /// A `send()` that had to wait for the client finished: resolve its future.
    SendDone { future: Py<PyAny>, delivered: bool },
    /// A line for the `turboasgi.error` logger at a `logging` level.
    Log(LogLevel, Cow<'static, str>),
}

/// The `logging` levels the network side writes at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogLevel {
    Warning,
    Info,
    Debug,
    /// uvicorn's level 5 (`turboasgi.logging.TRACE_LOG_LEVEL`).
    Trace,
}

impl LogLevel {
    /// The number Python's `logging` uses for the level.
    pub fn number(self) -> u8 {
        match self {
            LogLevel::Warning => 30,
            LogLevel::Info => 20,
            LogLevel::Debug => 10,
            LogLevel::Trace => 5,
        }
    }
}

/// What a transport needs of its loop's inbox from a network thread, whatever jobs the inbox carries.
pub trait Notifier: Send + Sync {
    /// Resolve the loop's waiting `receive()` futures of `target`.
    fn wake(&self, target: Arc<dyn Wakeable>);
    /// Complete a future of the loop: with None, or with `ClientDisconnected` when not delivered.
    fn resolve(&self, future: Py<PyAny>, delivered: bool);
}

impl<J: Send> Notifier for Inbox<J> {
    fn wake(&self, target: Arc<dyn Wakeable>) {
        self.push(Event::Wake(target));
    }

    fn resolve(&self, future: Py<PyAny>, delivered: bool) {
        self.push(Event::SendDone { future, delivered });
    }
}

impl<J> Inbox<J> {
    /// Logs on the loop thread: tokio threads never attach to Python (an attach racing with
    /// interpreter finalization crashes free-threaded CPython).
    pub fn log_warning(&self, message: &'static str) {
        self.push(Event::Log(LogLevel::Warning, Cow::Borrowed(message)));
    }

    pub fn log_info(&self, message: &'static str) {
        self.push(Event::Log(LogLevel::Info, Cow::Borrowed(message)));
    }

    /// Only pushed with `--log-level trace` (the caller checks), so it may format freely.
    pub fn log_trace(&self, message: String) {
        self.push(Event::Log(LogLevel::Trace, Cow::Owned(message)));
    }

    /// Routine per-connection failures (a failed TLS handshake) that a scanner can cause by the
    /// thousand: never at warning.
    pub fn log_debug(&self, message: String) {
        self.push(Event::Log(LogLevel::Debug, Cow::Owned(message)));
    }
}

pub struct Inbox<J> {
    queue: Mutex<VecDeque<Event<J>>>,
    /// When the eventfd was last written, and the longest wait from a write to the loop's drain
    /// since `take_lag()`: the event loop's lag as the metrics endpoint reports it.
    rung_at: AtomicU64,
    max_lag: AtomicU64,
    /// True while a wakeup is pending or written and not yet consumed: pushes in between skip it.
    armed: AtomicBool,
    event_fd: OwnedFd,
    /// Rung by the first push of a batch; the bell task writes the eventfd once the network thread
    /// has run its other ready tasks, so one loop wakeup carries every request that arrived together.
    doorbell: Arc<Notify>,
}

impl<J> Drop for Inbox<J> {
    fn drop(&mut self) {
        self.doorbell.notify_one(); // lets the bell task see that the inbox is gone
    }
}

/// Writes the eventfd after the tasks that are ready now have run (one wakeup per batch).
pub async fn ring_bell<J>(inbox: Weak<Inbox<J>>, doorbell: Arc<Notify>) {
    loop {
        doorbell.notified().await;
        tokio::task::yield_now().await;
        match inbox.upgrade() {
            Some(inbox) => inbox.wake_loop(),
            None => return,
        }
    }
}

impl<J> Inbox<J> {
    pub fn new() -> io::Result<Arc<Self>> {
        // SAFETY: eventfd has no memory-safety preconditions; the result is checked below.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh descriptor owned by nobody else.
        let event_fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Arc::new(Inbox {
            queue: Mutex::new(VecDeque::with_capacity(64)),
            rung_at: AtomicU64::new(0),
            max_lag: AtomicU64::new(0),
            armed: AtomicBool::new(false),
            event_fd,
            doorbell: Arc::new(Notify::new()),
        }))
    }

    pub fn doorbell(&self) -> Arc<Notify> {
        self.doorbell.clone()
    }

    fn wake_loop(&self) {
        self.rung_at.store(nanos_since_start(), Ordering::Relaxed);
        let one: u64 = 1;
        // SAFETY: writing 8 bytes from a valid u64 to an eventfd we own.
        unsafe {
            libc::write(
                self.event_fd.as_raw_fd(),
                &one as *const u64 as *const libc::c_void,
                8,
            );
        }
    }

    pub fn fileno(&self) -> i32 {
        self.event_fd.as_raw_fd()
    }

    pub fn push(&self, event: Event<J>) {
        lock_or_recover(&self.queue).push_back(event);
        if !self.armed.swap(true, Ordering::AcqRel) {
            self.doorbell.notify_one();
        }
    }

    /// Takes every queued event. Clears the wakeup first so that a push racing with the drain
    /// writes a fresh one rather than being lost.
    pub fn take_all(&self, into: &mut VecDeque<Event<J>>) {
        let mut counter: u64 = 0;
        // SAFETY: reading 8 bytes into a valid u64 from an eventfd we own (non-blocking).
        unsafe {
            libc::read(
                self.event_fd.as_raw_fd(),
                &mut counter as *mut u64 as *mut libc::c_void,
                8,
            );
        }
        self.armed.store(false, Ordering::Release);
        if counter > 0 {
            let lag = nanos_since_start().saturating_sub(self.rung_at.load(Ordering::Relaxed));
            self.max_lag.fetch_max(lag, Ordering::Relaxed);
        }
        let mut q = lock_or_recover(&self.queue);
        std::mem::swap(&mut *q, into);
    }

    /// The longest wakeup-to-drain wait since the last call, in seconds.
    pub fn take_lag(&self) -> f64 {
        self.max_lag.swap(0, Ordering::Relaxed) as f64 / 1e9
    }
}

fn nanos_since_start() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    let start = *START.get_or_init(Instant::now);
    u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX)
}
