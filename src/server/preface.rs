//! Telling HTTP/2 with prior knowledge from HTTP/1.1 on a cleartext connection: read until the
//! bytes either are the 24-byte HTTP/2 connection preface or cannot be, then hand the connection on
//! with those bytes put back in front of it.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

/// RFC 9113 3.4: every HTTP/2 connection with prior knowledge starts with these bytes.
pub const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The sniff reads as much as hyper's own first read would (its initial buffer is 8 KiB), so an
/// HTTP/1.1 request reaches hyper in the same pieces as without the sniff, usually whole.
const FIRST_READ: usize = 8192;

/// What the first bytes of a connection say.
#[derive(Debug, PartialEq, Eq)]
pub enum Sniffed {
    Http2,
    /// Anything that is not the HTTP/2 preface, including an empty or short connection: the
    /// HTTP/1.1 parser answers (or drops) it.
    Http1,
}

/// Reads until 24 bytes are in or one differs from the preface, so an HTTP/1.1 request (`G`, `PO`,
/// `PU`…) is decided after its first read.
pub async fn sniff<IO>(io: &mut IO) -> io::Result<(Sniffed, Bytes)>
where
    IO: AsyncRead + Unpin,
{
    let mut read = BytesMut::with_capacity(FIRST_READ);
    while read.len() < H2_PREFACE.len() {
        let before = read.len();
        if io.read_buf(&mut read).await? == 0 {
            return Ok((Sniffed::Http1, read.freeze()));
        }
        // Bytes past the preface are the first frames (or the rest of an HTTP/1.1 request): they go
        // back in front of the connection too.
        let end = read.len().min(H2_PREFACE.len());
        if read[before.min(end)..end] != H2_PREFACE[before.min(end)..end] {
            return Ok((Sniffed::Http1, read.freeze()));
        }
    }
    Ok((Sniffed::Http2, read.freeze()))
}

/// The connection with the sniffed bytes in front of what is still unread.
pub struct Rewound<IO> {
    prefix: Bytes,
    io: IO,
}

impl<IO> Rewound<IO> {
    pub fn new(prefix: Bytes, io: IO) -> Self {
        Rewound { prefix, io }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Rewound<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.prefix.has_remaining() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            if !self.prefix.has_remaining() {
                self.prefix = Bytes::new(); // release the sniff buffer for the connection's lifetime
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Rewound<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sniff_bytes(input: &[u8]) -> (Sniffed, Bytes) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let mut reader = input;
        rt.block_on(sniff(&mut reader)).unwrap()
    }

    #[test]
    fn preface_is_http2() {
        let mut input = H2_PREFACE.to_vec();
        input.extend_from_slice(b"\x00\x00\x00\x04");
        let (kind, read) = sniff_bytes(&input);
        assert_eq!(kind, Sniffed::Http2);
        // the frame bytes read with the preface go back too
        assert_eq!(&read[..], &input[..]);
    }

    #[test]
    fn http1_is_decided_at_the_first_difference() {
        let (kind, read) = sniff_bytes(b"POST / HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(kind, Sniffed::Http1);
        // the whole request comes back in one piece, as hyper would have read it
        assert_eq!(&read[..], b"POST / HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(sniff_bytes(b"").0, Sniffed::Http1);
        assert_eq!(sniff_bytes(b"PRI * HTTP/2.0\r\n").0, Sniffed::Http1);
    }

    #[test]
    fn rewound_reads_the_prefix_first() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let mut io = Rewound::new(Bytes::from_static(b"GET "), &b"/ HTTP/1.1"[..]);
        let mut all = Vec::new();
        rt.block_on(io.read_to_end(&mut all)).unwrap();
        assert_eq!(all, b"GET / HTTP/1.1");
    }
}
