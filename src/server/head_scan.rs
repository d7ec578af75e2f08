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

/// What ends a head: fed to hyper after a rejected head so that it answers without more bytes.
const HEAD_END: &[u8] = b"\r\n\r\n";

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
    /// A bare LF was turned into a NUL. hyper may still be waiting for the rest of that head: the
    /// next read ends it (`\r\n\r\n`), so hyper rejects it at once instead of waiting.
    Rejected,
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
                State::Off | State::Rejected => return,
                State::Body(rest) => {
                    let take = rest.min((data.len() - at) as u64);
                    at += take as usize;
                    self.state = if take == rest {
                        State::Head
                    } else {
                        State::Body(rest - take)
                    };
                }
                State::Head => {
                    let Some(newline) = find_newline(&data[at..]).map(|offset| at + offset) else {
                        self.carry(&data[at..]);
                        return;
                    };
                    let cr_before = if newline > at {
                        data[newline - 1] == b'\r'
                    } else {
                        self.last_cr
                    };
                    if !cr_before {
                        data[newline] = 0;
                        self.state = State::Rejected;
                        return;
                    }
                    if self.line_len == 0 && !self.line_long && !self.last_cr {
                        // the whole line is in this read (the common case): no copy
                        self.end_line(&data[at..newline - 1]);
                    } else {
                        self.carry(&data[at..newline]);
                        let (line, long) = (self.line, self.line_long);
                        let content = &line[..self.line_len];
                        if long {
                            self.end_long_line(content);
                        } else {
                            self.end_line(content);
                        }
                    }
                    self.line_len = 0;
                    self.line_long = false;
                    self.last_cr = false;
                    at = newline + 1;
                }
            }
        }
    }

    /// Keeps the start of a line that continues in the next read (its trailing CR aside).
    fn carry(&mut self, bytes: &[u8]) {
        let Some(&last) = bytes.last() else { return };
        if self.last_cr {
            // a CR inside a line, not before its LF: content
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

    /// A complete line, CRLF removed.
    fn end_line(&mut self, line: &[u8]) {
        if line.is_empty() {
            if self.in_request {
                self.end_head();
            } // else: an empty line before the request line, which parsers skip
        } else if !self.in_request {
            self.in_request = true;
            if line.starts_with(b"CONNECT ") {
                self.stop_after_head = true;
            }
        } else if matches!(line[0], b'c' | b'C' | b't' | b'T' | b'u' | b'U') {
            self.header_line(line);
        }
    }

    /// A line longer than what was kept of it: only its start is known.
    fn end_long_line(&mut self, start: &[u8]) {
        if !self.in_request {
            self.end_line(start);
        } else if matches!(start[0], b'c' | b'C' | b't' | b'T' | b'u' | b'U') {
            // a Content-Length value this long is not one this scan can trust
            self.header_line(start);
            if start.len() >= 15 && start[..15].eq_ignore_ascii_case(b"content-length:") {
                self.stop_after_head = true;
            }
        }
    }

    fn header_line(&mut self, line: &[u8]) {
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
                (Some(v), None) => self.content_length = Some(v),
                (Some(v), Some(seen)) if v == seen => {}
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

/// The first `\n` in `bytes`, eight bytes at a time (a byte-by-byte search cost 1 µs per 450-byte
/// head; a browser's head is mostly long header values).
fn find_newline(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    const NEWLINES: u64 = ONES * b'\n' as u64;
    let mut at = 0;
    while at + 8 <= bytes.len() {
        let mut word = [0u8; 8];
        word.copy_from_slice(&bytes[at..at + 8]);
        let x = u64::from_le_bytes(word) ^ NEWLINES;
        // a zero byte of x is a newline; the lowest flagged byte is always a true one
        let found = x.wrapping_sub(ONES) & !x & HIGHS;
        if found != 0 {
            return Some(at + (found.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    bytes[at..]
        .iter()
        .position(|&b| b == b'\n')
        .map(|offset| at + offset)
}

impl<IO: AsyncRead + Unpin> AsyncRead for HeadScan<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.scanner.state == State::Rejected && buf.remaining() >= HEAD_END.len() {
            this.scanner.state = State::Off;
            buf.put_slice(HEAD_END);
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let result = Pin::new(&mut this.io).poll_read(cx, buf);
        if this.scanner.state != State::Off && this.scanner.state != State::Rejected {
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

    /// The scan's cost per request head: `cargo test --release --lib head_scan_cost -- --ignored
    /// --nocapture` (a wrk head of 40 bytes and a browser-like one of about 500).
    #[test]
    #[ignore]
    fn head_scan_cost() {
        let wrk = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n\r\n".to_vec();
        let mut browser = b"GET /static/app.js?v=3 HTTP/1.1\r\nHost: example.org\r\n".to_vec();
        for (name, value) in [
            (
                "User-Agent",
                "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
            ),
            (
                "Accept",
                "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
            ),
            ("Accept-Language", "en-US,en;q=0.5"),
            ("Accept-Encoding", "gzip, deflate, br, zstd"),
            (
                "Cookie",
                "session=0123456789abcdef0123456789abcdef; theme=dark; consent=yes",
            ),
            (
                "Referer",
                "https://example.org/some/page/with/a/long/path?and=query",
            ),
            ("Connection", "keep-alive"),
        ] {
            browser.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        }
        browser.extend_from_slice(b"\r\n");
        for (label, head) in [("wrk", wrk), ("browser", browser)] {
            let mut buf = head.clone();
            let mut scanner = Scanner::new();
            let rounds = 2_000_000;
            let start = std::time::Instant::now();
            for _ in 0..rounds {
                scanner.scan(std::hint::black_box(&mut buf));
            }
            let per = start.elapsed().as_nanos() as f64 / rounds as f64;
            assert_eq!(scanner.state, State::Head);
            println!("{label} head ({} bytes): {per:.1} ns per head", head.len());
        }
    }

    #[test]
    fn find_newline_matches_a_plain_search() {
        // bytes around b'\n' and with the high bit set probe the word trick's borrows
        let alphabet = [b'\n', 0x0b, 0x09, 0x8a, 0x00, 0xff, b'a', 0x0a ^ 0x80];
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        for len in 0..64 {
            for _ in 0..200 {
                let bytes: Vec<u8> = (0..len)
                    .map(|_| {
                        state ^= state << 13;
                        state ^= state >> 7;
                        state ^= state << 17;
                        alphabet[(state % alphabet.len() as u64) as usize]
                    })
                    .collect();
                let plain = bytes.iter().position(|&b| b == b'\n');
                assert_eq!(find_newline(&bytes), plain, "{bytes:?}");
            }
        }
    }

    #[test]
    fn long_lines_split_anywhere() {
        let cookie = "c".repeat(300);
        let input = format!(
            "GET /{} HTTP/1.1\r\nCookie: {cookie}\r\nContent-Length: 3\r\n\r\na\nbGET / HTTP/1.1\nX: 1\r\n\r\n",
            "p".repeat(100)
        );
        for out in every_split(input.as_bytes()) {
            assert_eq!(out.iter().filter(|&&b| b == 0).count(), 1);
            assert_eq!(out[input.find("GET / HTTP/1.1").unwrap_or(0) + 14], 0);
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
