//! The TCP stream under a TLS server connection, holding back what the handshake writes last.
//!
//! A TLS 1.3 server sends its session tickets right after the client's Finished, which is exactly
//! when the client writes its first request. Clients that read and write one TLS socket from two
//! threads (Python's `ssl` under the `websockets` sync client, whose reader thread starts before the
//! handshake request is sent) race inside OpenSSL when a ticket arrives mid-write, and the request
//! is sometimes never sent: about 1 WSS handshake in 50 stalled on CPython 3.11 and 1 in 3 on 3.13t.
//! Holding the tickets until the server's first response bytes keeps session resumption and takes
//! the ticket out of that window, as it is for request/response clients by then reading, not writing.
//!
//! During the handshake writes pass until the client has sent its first encrypted record (content
//! type 23): in TLS 1.3 that is its last flight (Finished, with any certificate before it), so what
//! the server writes after it is the tickets. TLS 1.2 encrypts only with content type 22 before the
//! handshake ends, and `release` sends anything held (an alert, a False Start's Finished) at once.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// TLS record content type of application data; what TLS 1.3 sends every encrypted record as.
const APPLICATION_DATA: u8 = 23;
const RECORD_HEADER_LEN: usize = 5;

pub struct HeldWrites<IO> {
    io: IO,
    held: Vec<u8>,
    /// How much of `held` the stream has taken.
    sent: usize,
    phase: Phase,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    /// Writes pass; the client's records are followed until one is encrypted.
    Handshake(RecordScan),
    /// The client has sent its last flight: writes are held.
    Holding,
    /// Writes send anything held first; reads never do.
    Served,
}

/// Where the client's record stream is: inside a header (`header_seen` bytes of it so far, its
/// first byte the content type) or inside a body with `body_left` bytes to go.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
struct RecordScan {
    header: [u8; RECORD_HEADER_LEN],
    header_seen: usize,
    body_left: usize,
}

impl RecordScan {
    /// Follows `bytes` (the next ones the client sent); true once an encrypted record begins.
    fn encrypted_record_started(&mut self, mut bytes: &[u8]) -> bool {
        while !bytes.is_empty() {
            if self.body_left > 0 {
                let skip = self.body_left.min(bytes.len());
                self.body_left -= skip;
                bytes = &bytes[skip..];
                continue;
            }
            self.header[self.header_seen] = bytes[0];
            self.header_seen += 1;
            bytes = &bytes[1..];
            if self.header[0] == APPLICATION_DATA {
                return true;
            }
            if self.header_seen == RECORD_HEADER_LEN {
                self.body_left = usize::from(u16::from_be_bytes([self.header[3], self.header[4]]));
                self.header_seen = 0;
            }
        }
        false
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> HeldWrites<IO> {
    pub fn new(io: IO) -> Self {
        HeldWrites {
            io,
            held: Vec::new(),
            sent: 0,
            phase: Phase::Handshake(RecordScan::default()),
        }
    }

    /// The handshake is over: what is held goes out with the next write (or `release`).
    pub fn handshake_done(&mut self) {
        self.phase = Phase::Served;
    }

    /// Writes out everything held.
    pub async fn release(&mut self) -> io::Result<()> {
        std::future::poll_fn(|cx| self.poll_release(cx)).await
    }

    fn poll_release(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.held.len() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.held[self.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        if !self.held.is_empty() {
            // A connection can sit idle for long: keep no buffer for it.
            self.held = Vec::new();
            self.sent = 0;
        }
        Poll::Ready(Ok(()))
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncRead for HeldWrites<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let Phase::Handshake(mut scan) = this.phase else {
            return Pin::new(&mut this.io).poll_read(cx, buf);
        };
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.io).poll_read(cx, buf))?;
        this.phase = match scan.encrypted_record_started(&buf.filled()[before..]) {
            true => Phase::Holding,
            false => Phase::Handshake(scan),
        };
        Poll::Ready(Ok(()))
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncWrite for HeldWrites<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.phase == Phase::Holding {
            this.held.extend_from_slice(buf);
            return Poll::Ready(Ok(buf.len()));
        }
        ready!(this.poll_release(cx))?;
        Pin::new(&mut this.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.phase == Phase::Holding {
            let before = this.held.len();
            for buf in bufs {
                this.held.extend_from_slice(buf);
            }
            return Poll::Ready(Ok(this.held.len() - before));
        }
        ready!(this.poll_release(cx))?;
        Pin::new(&mut this.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Held bytes wait for a write, not a flush: the handshake flushes right after its last
        // flight, and hyper flushes with nothing written.
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_release(cx))?;
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn record(content_type: u8, body: &[u8]) -> Vec<u8> {
        let mut r = vec![content_type, 3, 3];
        r.extend_from_slice(&u16::try_from(body.len()).unwrap().to_be_bytes());
        r.extend_from_slice(body);
        r
    }

    #[test]
    fn the_scan_finds_the_first_encrypted_record_across_reads() {
        let mut stream = record(22, b"client hello");
        stream.extend(record(20, b"\x01"));
        stream.extend(record(23, b"finished"));
        let first_encrypted = stream.len() - 13;
        for split in 1..stream.len() {
            let mut scan = RecordScan::default();
            let (a, b) = stream.split_at(split);
            let found = scan.encrypted_record_started(a) || scan.encrypted_record_started(b);
            assert!(found, "split at {split}");
            assert_eq!(
                RecordScan::default().encrypted_record_started(&stream[..split]),
                split > first_encrypted
            );
        }
    }

    #[tokio::test]
    async fn writes_after_the_clients_encrypted_flight_wait_for_the_first_response_write() {
        let (server, mut client) = tokio::io::duplex(4096);
        let mut held = HeldWrites::new(server);
        client.write_all(&record(22, b"hello")).await.unwrap();
        let mut hello = [0u8; 10];
        held.read_exact(&mut hello).await.unwrap();
        held.write_all(b"flight").await.unwrap();
        held.flush().await.unwrap();
        let mut flight = [0u8; 6];
        client.read_exact(&mut flight).await.unwrap();

        client.write_all(&record(23, b"fin")).await.unwrap();
        let mut fin = [0u8; 8];
        held.read_exact(&mut fin).await.unwrap();
        held.write_all(b"ticket").await.unwrap();
        held.flush().await.unwrap();
        held.handshake_done();
        client.write_all(b"request").await.unwrap();
        let mut request = [0u8; 7];
        held.read_exact(&mut request).await.unwrap();
        held.flush().await.unwrap();
        assert_eq!(
            held.held, b"ticket",
            "neither a read nor a flush releases the tickets"
        );

        held.write_all(b"response").await.unwrap();
        held.flush().await.unwrap();
        let mut both = [0u8; 14];
        client.read_exact(&mut both).await.unwrap();
        assert_eq!(&both, b"ticketresponse");
        assert_eq!(held.held.capacity(), 0);
    }

    #[tokio::test]
    async fn release_sends_what_is_held_at_once() {
        let (server, mut client) = tokio::io::duplex(1024);
        let mut held = HeldWrites::new(server);
        client.write_all(&record(23, b"x")).await.unwrap();
        let mut x = [0u8; 6];
        held.read_exact(&mut x).await.unwrap();
        held.write_all(b"alert").await.unwrap();
        held.handshake_done();
        held.release().await.unwrap();
        let mut got = [0u8; 5];
        client.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"alert");
    }
}
