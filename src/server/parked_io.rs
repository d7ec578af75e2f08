//! The socket as hyper sees it, so that an idle keep-alive connection can leave hyper and come back.
//!
//! hyper holds an 8 KiB read buffer, an 8 KiB write buffer, the boxed service future and a cached
//! header map for as long as a connection lives, idle or not. A connection idle for a while is
//! therefore taken apart (`into_parts`) and waits for its next bytes on the bare socket; those bytes
//! become a prefix that the next hyper connection reads first. Parking is only safe when hyper has
//! nothing left to write, which only the socket's own calls show: hence the activity flags.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bytes read at once while parked: a typical request head fits, a bigger one is read on by hyper.
const PARKED_READ: usize = 1024;

/// What the socket saw since hyper last flushed, readable while hyper owns the socket.
#[derive(Default)]
pub struct IoActivity {
    /// hyper wrote since its last successful flush: its write buffer may hold bytes.
    unflushed: AtomicBool,
    /// Bytes arrived since the last flush of written bytes: hyper may hold part of a request, or a
    /// whole one it has not answered yet.
    read_since_flush: AtomicBool,
}

impl IoActivity {
    /// Nothing written and unflushed, nothing read since the last flush: hyper is between requests.
    pub fn quiet(&self) -> bool {
        !self.unflushed.load(Ordering::Relaxed) && !self.read_since_flush.load(Ordering::Relaxed)
    }
}

pub struct ParkableIo<IO> {
    io: IO,
    /// Read from the socket but not yet by hyper: served before the socket.
    prefix: Bytes,
    activity: Arc<IoActivity>,
}

impl<IO> ParkableIo<IO>
where
    IO: AsyncRead + Unpin,
{
    pub fn new(io: IO) -> Self {
        ParkableIo {
            io,
            prefix: Bytes::new(),
            activity: Arc::new(IoActivity::default()),
        }
    }

    pub fn activity(&self) -> Arc<IoActivity> {
        self.activity.clone()
    }

    /// Hands bytes hyper had read but not parsed to the next hyper connection.
    pub fn set_prefix(&mut self, prefix: Bytes) {
        self.prefix = prefix;
    }

    /// Waits on the bare socket for the next bytes and keeps them for hyper; false at EOF.
    pub async fn wait_for_bytes(&mut self) -> io::Result<bool> {
        std::future::poll_fn(|cx| {
            // On the stack of one poll, not in the task: a parked connection keeps no buffer.
            let mut buf = [0u8; PARKED_READ];
            let mut read = ReadBuf::new(&mut buf);
            ready!(Pin::new(&mut self.io).poll_read(cx, &mut read))?;
            self.prefix = Bytes::copy_from_slice(read.filled());
            Poll::Ready(Ok(!self.prefix.is_empty()))
        })
        .await
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for ParkableIo<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.prefix.is_empty() {
            let n = this.prefix.len().min(buf.remaining());
            buf.put_slice(&this.prefix[..n]);
            this.prefix.advance(n);
            this.activity
                .read_since_flush
                .store(true, Ordering::Relaxed);
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let result = Pin::new(&mut this.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.activity
                .read_since_flush
                .store(true, Ordering::Relaxed);
        }
        result
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for ParkableIo<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.activity.unflushed.store(true, Ordering::Relaxed);
        Pin::new(&mut this.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.activity.unflushed.store(true, Ordering::Relaxed);
        Pin::new(&mut this.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.io).poll_flush(cx);
        // hyper flushes the socket only once its own write buffer is empty. A flush with nothing
        // written since (hyper flushes on every turn) says nothing of what was read: a request read
        // and in flight, its response not written yet, must keep the connection from being parked.
        if matches!(result, Poll::Ready(Ok(())))
            && this.activity.unflushed.swap(false, Ordering::Relaxed)
        {
            this.activity
                .read_since_flush
                .store(false, Ordering::Relaxed);
        }
        result
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}
