//! Response bodies handed to hyper: one complete buffer, a bounded stream fed by `send()` (which
//! may end with trailers), or a file read in chunks on tokio's blocking pool (`pathsend`).

use std::fmt;
use std::fs::File;
use std::future::Future;
use std::io::{self, Read};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// How much of a file one read takes: one such chunk per download is what a slow client costs
/// (hyper asks for the next only once it has written this one).
const FILE_CHUNK: usize = 128 * 1024;

/// The app failed mid-response: hyper must abort the connection rather than end the body cleanly.
#[derive(Debug)]
pub struct BodyAborted;

impl fmt::Display for BodyAborted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("response body aborted by the application")
    }
}

impl std::error::Error for BodyAborted {}

/// The request a response belongs to, as the body sees it. Implemented by the transport layer, so
/// that bodies sit below it.
pub trait OnWire: Send + Sync {
    /// Called once when the protocol is done with the request (response written or connection lost).
    fn finish_on_wire(self: Arc<Self>);
    /// Whether the app completed its response (a stream ending otherwise is an abort).
    fn finished_cleanly(&self) -> bool;
}

/// Marks the request as finished for the connection (keep-alive timer, concurrency limit) and, if
/// the response did not complete, as disconnected for the app.
pub struct RequestGuard {
    shared: Option<Arc<dyn OnWire>>,
}

impl RequestGuard {
    pub fn new(shared: Arc<dyn OnWire>) -> Self {
        RequestGuard {
            shared: Some(shared),
        }
    }

    /// The streamed body took over: its own guard reports the end.
    pub fn disarm(mut self) {
        self.shared = None;
    }

    fn finished_cleanly(&self) -> bool {
        self.shared.as_ref().is_some_and(|s| s.finished_cleanly())
    }
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.take() {
            shared.finish_on_wire();
        }
    }
}

pub enum ResponseBody {
    Full(Option<Bytes>),
    Stream {
        /// Body chunks, then at most one trailers frame.
        rx: mpsc::Receiver<Frame<Bytes>>,
        guard: RequestGuard,
        /// On abort, one Pending lets hyper flush what was already sent before the error closes it.
        flushed_before_abort: bool,
    },
    File(FileBody),
}

impl ResponseBody {
    /// A file body of exactly `length` bytes (the head's content-length), read from `file`.
    pub fn file(file: File, length: u64, guard: RequestGuard) -> Self {
        ResponseBody::File(FileBody {
            read: FileRead::Idle(file),
            remaining: length,
            _guard: guard,
            flushed_before_abort: false,
        })
    }

    /// Whether the body reports the end of the request itself (its guard), so the service's own
    /// guard must stand down.
    pub fn guards_request(&self) -> bool {
        !matches!(self, ResponseBody::Full(_))
    }
}

/// A file streamed to the client: each chunk is read by a blocking-pool task when hyper asks for
/// it, so reads never block a network thread or the event loop, and never run ahead of the client.
pub struct FileBody {
    read: FileRead,
    remaining: u64,
    /// Reports the end of the request (written, or the client gone) when hyper drops the body.
    _guard: RequestGuard,
    flushed_before_abort: bool,
}

enum FileRead {
    Idle(File),
    Reading(JoinHandle<io::Result<(File, Bytes)>>),
    Failed,
}

/// Reads up to `want` bytes, fewer only at the end of the file.
fn read_chunk(mut file: File, want: usize) -> io::Result<(File, Bytes)> {
    let mut buf = vec![0u8; want];
    let mut filled = 0;
    while filled < want {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(filled);
    Ok((file, Bytes::from(buf)))
}

impl FileBody {
    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, BodyAborted>>> {
        loop {
            match std::mem::replace(&mut self.read, FileRead::Failed) {
                FileRead::Failed => return Poll::Ready(Some(Err(BodyAborted))),
                FileRead::Idle(file) => {
                    if self.remaining == 0 {
                        self.read = FileRead::Idle(file);
                        return Poll::Ready(None);
                    }
                    let want = self.remaining.min(FILE_CHUNK as u64) as usize;
                    // hyper polls bodies inside the runtime; without one there is nothing to read on
                    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
                        return Poll::Ready(Some(Err(BodyAborted)));
                    };
                    self.read =
                        FileRead::Reading(runtime.spawn_blocking(move || read_chunk(file, want)));
                }
                FileRead::Reading(mut task) => match Pin::new(&mut task).poll(cx) {
                    Poll::Pending => {
                        self.read = FileRead::Reading(task);
                        return Poll::Pending;
                    }
                    Poll::Ready(Ok(Ok((file, chunk)))) if !chunk.is_empty() => {
                        self.remaining -= chunk.len() as u64;
                        self.read = FileRead::Idle(file);
                        return Poll::Ready(Some(Ok(chunk)));
                    }
                    // The file ended before its declared length (it shrank), could not be read, or
                    // the read task was lost: the client must see a cut-off response.
                    Poll::Ready(_) => return Poll::Ready(Some(Err(BodyAborted))),
                },
            }
        }
    }
}

impl http_body::Body for ResponseBody {
    type Data = Bytes;
    type Error = BodyAborted;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyAborted>>> {
        match self.get_mut() {
            ResponseBody::Full(data) => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            ResponseBody::Stream {
                rx,
                guard,
                flushed_before_abort,
            } => match rx.poll_recv(cx) {
                Poll::Ready(Some(frame)) => Poll::Ready(Some(Ok(frame))),
                Poll::Ready(None) => {
                    if guard.finished_cleanly() {
                        Poll::Ready(None)
                    } else if !*flushed_before_abort {
                        *flushed_before_abort = true;
                        cx.waker().wake_by_ref();
                        Poll::Pending
                    } else {
                        Poll::Ready(Some(Err(BodyAborted)))
                    }
                }
                Poll::Pending => Poll::Pending,
            },
            ResponseBody::File(file) => match file.poll_chunk(cx) {
                Poll::Ready(Some(Err(aborted))) => {
                    if file.flushed_before_abort {
                        Poll::Ready(Some(Err(aborted)))
                    } else {
                        file.flushed_before_abort = true;
                        cx.waker().wake_by_ref();
                        Poll::Pending
                    }
                }
                other => other.map(|chunk| chunk.map(|c| c.map(Frame::data))),
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ResponseBody::Full(data) => data.is_none(),
            ResponseBody::Stream { .. } => false,
            ResponseBody::File(file) => file.remaining == 0,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ResponseBody::Full(Some(d)) => SizeHint::with_exact(d.len() as u64),
            ResponseBody::Full(None) => SizeHint::with_exact(0),
            ResponseBody::Stream { .. } => SizeHint::default(),
            ResponseBody::File(file) => SizeHint::with_exact(file.remaining),
        }
    }
}
