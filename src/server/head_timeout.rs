//! `--timeout-request-head`: an HTTP/1 request head that starts arriving but is not complete within
//! the timeout is answered `408 Request Timeout` and the connection closed. hyper's own header
//! timeout only closes the socket, so this sits below hyper as a wrapper of the connection's IO:
//! the head's first byte starts the clock, the service being called for it stops the clock, and on
//! expiry the wrapper writes the 408 itself (hyper writes nothing while it waits for a head) and
//! reports end of stream to hyper.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use super::write_through::write_through;
use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::state::body::ResponseBody;
use crate::state::connection::ConnInfo;
use crate::state::responses;
use crate::state::Shared;

enum Phase {
    /// Between requests, or a request in flight: no clock.
    Idle,
    /// A head is arriving; `seen` is the connection's request count when its first byte came.
    Reading { seen: u64 },
    /// The timeout passed: the 408 is being written.
    Answering { response: Bytes, written: usize },
    /// Answered and shut down: hyper sees end of stream.
    Closed,
}

pub struct HeadTimeout<IO> {
    io: IO,
    conn: Arc<ConnInfo>,
    timeout: Duration,
    timer: Pin<Box<Sleep>>,
    phase: Phase,
    server: Arc<Shared>,
}

impl<IO> HeadTimeout<IO> {
    pub fn new(io: IO, conn: Arc<ConnInfo>, server: Arc<Shared>, timeout: Duration) -> Self {
        HeadTimeout {
            io,
            conn,
            timeout,
            timer: Box::pin(tokio::time::sleep(timeout)),
            phase: Phase::Idle,
            server,
        }
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> HeadTimeout<IO> {
    fn poll_answer(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Phase::Answering { response, written } = &mut self.phase {
            if *written == response.len() {
                ready!(Pin::new(&mut self.io).poll_shutdown(cx))?;
                self.phase = Phase::Closed;
                break;
            }
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &response[*written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *written += n;
        }
        Poll::Ready(Ok(()))
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncRead for HeadTimeout<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if matches!(this.phase, Phase::Answering { .. }) {
            // A write error is the client's loss: it left; hyper gets end of stream either way.
            let _ = ready!(this.poll_answer(cx));
        }
        if matches!(this.phase, Phase::Closed) {
            return Poll::Ready(Ok(()));
        }
        if let Phase::Reading { seen } = this.phase {
            if this.conn.requests_seen() != seen || this.conn.in_flight() > 0 {
                this.phase = Phase::Idle; // the head was complete: the service took it
            }
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let got = buf.filled().len() > before;
                if got && matches!(this.phase, Phase::Idle) && this.conn.in_flight() == 0 {
                    this.phase = Phase::Reading {
                        seen: this.conn.requests_seen(),
                    };
                    let deadline = Instant::now() + this.timeout;
                    this.timer.as_mut().reset(deadline);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                if matches!(this.phase, Phase::Reading { .. })
                    && this.timer.as_mut().poll(cx).is_ready()
                {
                    this.phase = Phase::Answering {
                        response: timeout_response(&this.server),
                        written: 0,
                    };
                    let _ = ready!(this.poll_answer(cx));
                    return Poll::Ready(Ok(()));
                }
                Poll::Pending
            }
        }
    }
}

write_through!(HeadTimeout, io);

/// The whole 408 response as bytes: written below hyper, with the same default headers as the
/// server's other own responses.
fn timeout_response(server: &Shared) -> Bytes {
    let response = responses::request_timeout(&server.settings);
    let status = response.status();
    let mut out = format!(
        "HTTP/1.1 {} {}\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or_default()
    )
    .into_bytes();
    let body = match response.body() {
        ResponseBody::Full(Some(body)) => body.clone(),
        _ => Bytes::new(),
    };
    for (name, value) in response.headers() {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("content-length: {}\r\n\r\n", body.len()).as_bytes());
    out.extend_from_slice(&body);
    Bytes::from(out)
}
