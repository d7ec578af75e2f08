//! Rejects a bare LF as line terminator in request heads. RFC 9112 2.2 lets a server reject it, and
//! `Host: a\nX-Injected: 1` read as two headers here but as one by a proxy in front is an injection
//! vector. httparse accepts a bare LF and hyper has no switch for it, so the bytes are checked on
//! their way to hyper: a bare LF in a head becomes a NUL, which hyper's parser answers with 400.
//!
//! Only heads are checked. The scanner follows the framing just enough to skip `Content-Length`
//! bodies (bare LFs are fine there) and stops for good after a head whose body or follow-up it
//! cannot frame this cheaply (chunked, an upgrade, CONNECT) or does not understand.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use super::write_through::write_through;
use tokio::io::{AsyncRead, ReadBuf};

/// Bytes kept of each head line: enough for `content-length:` and any length value.
const LINE_PREFIX: usize = 48;

pub struct HeadScan<IO> {
    io: IO,
    scanner: Scanner,
}

impl<IO> HeadScan<IO> {
    pub fn new(io: IO) -> Self {
        HeadScan {
            io,
            scanner: Scanner::new(),
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum State {
    Head,
    /// Bytes of a `Content-Length` body still to pass.
    Body(u64),
    /// No more checks on this connection.
    Off,
}

struct Scanner {
    state: State,
    /// The start of the current line (at most `LINE_PREFIX` bytes, CR excluded).
    line: [u8; LINE_PREFIX],
    line_len: usize,
    /// The current line is longer than `line` holds.
    line_long: bool,
    /// The last byte of the current line so far is a CR.
    last_cr: bool,
    in_request: bool,
    content_length: Option<u64>,
    /// Stop after this head: its body or what follows it is not framed by a length.
    stop_after_head: bool,
}

impl Scanner {
    fn new() -> Self {
        Scanner {
            state: State::Head,
            line: [0; LINE_PREFIX],
            line_len: 0,
            line_long: false,
            last_cr: false,
            in_request: false,
            content_length: None,
            stop_after_head: false,
        }
    }

    /// Checks bytes just read, in order; a bare LF in a head is overwritten with a NUL.
    fn scan(&mut self, data: &mut [u8]) {
        let mut at = 0;
        while at < data.len() {
            match self.state {
                State::Off => return,
                State::Body(rest) => {
                    let take = rest.min((data.len() - at) as u64);
                    at += take as usize;
                    self.state = if take == rest {
                        State::Head
                    } else {
                        State::Body(rest - take)
                    };
                }
                State::Head => match data[at..].iter().position(|&b| b == b'\n') {
                    None => {
                        self.extend_line(&data[at..]);
                        return;
                    }
                    Some(offset) => {
                        let newline = at + offset;
                        self.extend_line(&data[at..newline]);
                        if !self.last_cr {
                            data[newline] = 0;
                            self.state = State::Off;
                            return;
                        }
                        self.end_line();
                        at = newline + 1;
                    }
                },
            }
        }
    }

    fn extend_line(&mut self, bytes: &[u8]) {
        let Some(&last) = bytes.last() else { return };
        if self.last_cr {
            // a CR inside a line, not before its LF: keep it as content
            self.push_line(b"\r");
        }
        let (content, cr) = match last {
            b'\r' => (&bytes[..bytes.len() - 1], true),
            _ => (bytes, false),
        };
        self.push_line(content);
        self.last_cr = cr;
    }

    fn push_line(&mut self, bytes: &[u8]) {
        let room = LINE_PREFIX - self.line_len;
        if bytes.len() > room {
            self.line_long = true;
        }
        let n = bytes.len().min(room);
        self.line[self.line_len..self.line_len + n].copy_from_slice(&bytes[..n]);
        self.line_len += n;
    }

    fn end_line(&mut self) {
        let empty = self.line_len == 0 && !self.line_long;
        if empty {
            if self.in_request {
                self.end_head();
            } // else: an empty line before the request line, which parsers skip
        } else if !self.in_request {
            self.in_request = true;
            if self.line.starts_with(b"CONNECT ") {
                self.stop_after_head = true;
            }
        } else {
            self.header_line();
        }
        self.line_len = 0;
        self.line_long = false;
        self.last_cr = false;
    }

    fn header_line(&mut self) {
        let line = &self.line[..self.line_len];
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return; // malformed: hyper rejects it
        };
        let name = &line[..colon];
        if name.eq_ignore_ascii_case(b"content-length") {
            let value = std::str::from_utf8(&line[colon + 1..])
                .ok()
                .map(str::trim)
                .and_then(|v| v.parse::<u64>().ok());
            match (value, self.content_length) {
                (Some(v), None) if !self.line_long => self.content_length = Some(v),
                (Some(v), Some(seen)) if v == seen && !self.line_long => {}
                _ => self.stop_after_head = true,
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding")
            || name.eq_ignore_ascii_case(b"upgrade")
        {
            self.stop_after_head = true;
        }
    }

    fn end_head(&mut self) {
        self.state = if self.stop_after_head {
            State::Off
        } else {
            match self.content_length {
                Some(length) if length > 0 => State::Body(length),
                _ => State::Head,
            }
        };
        self.in_request = false;
        self.content_length = None;
        self.stop_after_head = false;
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for HeadScan<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = Pin::new(&mut this.io).poll_read(cx, buf);
        if this.scanner.state != State::Off {
            if let Poll::Ready(Ok(())) = result {
                this.scanner.scan(&mut buf.filled_mut()[before..]);
            }
        }
        result
    }
}

write_through!(HeadScan, io);

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in pieces of `step` bytes; returns what hyper would read.
    fn scanned(input: &[u8], step: usize) -> Vec<u8> {
        let mut scanner = Scanner::new();
        let mut out = input.to_vec();
        for piece in out.chunks_mut(step) {
            scanner.scan(piece);
        }
        out
    }

    fn every_split(input: &[u8]) -> Vec<Vec<u8>> {
        (1..=input.len()).map(|step| scanned(input, step)).collect()
    }

    #[test]
    fn crlf_heads_pass_unchanged() {
        let input = b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n";
        for out in every_split(input) {
            assert_eq!(out, input);
        }
    }

    #[test]
    fn bare_lf_in_a_header_is_poisoned() {
        let input = b"GET / HTTP/1.1\r\nHost: a\nX-Injected: 1\r\n\r\n";
        for out in every_split(input) {
            assert_eq!(&out[..23], b"GET / HTTP/1.1\r\nHost: a");
            assert_eq!(out[23], 0);
        }
    }

    #[test]
    fn bare_lf_request_line_and_blank_line_are_poisoned() {
        for input in [
            &b"GET / HTTP/1.1\nHost: a\r\n\r\n"[..],
            &b"GET / HTTP/1.1\r\nHost: a\r\n\n"[..],
        ] {
            for out in every_split(input) {
                assert!(out.contains(&0), "{:?}", String::from_utf8_lossy(&out));
            }
        }
    }

    #[test]
    fn content_length_bodies_are_skipped_and_the_next_head_checked() {
        let mut input = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\na\nb\nc".to_vec();
        input.extend_from_slice(b"GET / HTTP/1.1\r\nHost: a\nX: 1\r\n\r\n");
        for out in every_split(&input) {
            assert_eq!(out.iter().filter(|&&b| b == 0).count(), 1);
            assert!(
                out.starts_with(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\na\nb\nc")
            );
        }
    }

    #[test]
    fn chunked_and_upgrade_stop_the_checks() {
        for input in [
            &b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n\n\r\n0\r\n\r\n"[..],
            &b"GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n\x81\x05\n\n\n\n\n"[..],
            &b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n\n"[..],
        ] {
            for out in every_split(input) {
                assert_eq!(out, input);
            }
        }
    }

    #[test]
    fn cr_inside_a_line_is_content() {
        let input = b"GET / HTTP/1.1\r\nX: a\rb\r\n\r\n";
        for out in every_split(input) {
            assert_eq!(out, input);
        }
    }
}
