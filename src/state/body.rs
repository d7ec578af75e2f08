//! Response bodies handed to hyper: one complete buffer, or a bounded stream fed by `send()`.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use tokio::sync::mpsc;

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
        rx: mpsc::Receiver<Bytes>,
        guard: RequestGuard,
        /// On abort, one Pending lets hyper flush what was already sent before the error closes it.
        flushed_before_abort: bool,
    },
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
                Poll::Ready(Some(chunk)) => Poll::Ready(Some(Ok(Frame::data(chunk)))),
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
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, ResponseBody::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ResponseBody::Full(Some(d)) => SizeHint::with_exact(d.len() as u64),
            ResponseBody::Full(None) => SizeHint::with_exact(0),
            ResponseBody::Stream { .. } => SizeHint::default(),
        }
    }
}
