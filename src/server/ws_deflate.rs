//! permessage-deflate (RFC 7692) for server sockets: choosing an offer, compressing what the app
//! sends, and a read adapter that inflates compressed frames before tungstenite parses them.
//!
//! tungstenite has no extension hooks: it rejects any frame with RSV1 set. So compressed frames from
//! the client are rewritten below it (inflated, RSV1 cleared), and every check tungstenite makes —
//! UTF-8, fragmentation rules, control frames, sizes — still runs on the decompressed message.

use std::io::{self, Cursor};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use super::write_through::write_through;
use bytes::{Buf, Bytes, BytesMut};
use flate2::{Decompress, FlushDecompress, Status};
use http::HeaderValue;
use tokio::io::{AsyncRead, ReadBuf};
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::{Frame, FrameHeader};
use zlib_rs::{Deflate, DeflateConfig, DeflateFlush};

/// What every compressed message ends with after a sync flush; RFC 7692 7.2.1 strips it on the
/// wire and 7.2.2 has the receiver append it again.
const SYNC_TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// zlib's default level and uvicorn's memLevel. The window stays 32 KiB unless the client asks for
/// less: measured with benchmarks/ws_deflate_cost.py, zlib-rs compresses a 16 KiB message 3x slower
/// with uvicorn's 4 KiB window (+110 instead of +36 µs per JSON-like echo) for 28% less memory.
const LEVEL: i32 = 6;
const MEM_LEVEL: i32 = 5;

/// The raw-deflate window sizes zlib can produce (it cannot do 8 without a zlib header).
const MIN_SERVER_WINDOW_BITS: u8 = 9;
const MAX_WINDOW_BITS: u8 = 15;

const READ_CHUNK: usize = 16 * 1024;

/// The accepted parameters of one permessage-deflate offer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeflateParams {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: Option<u8>,
}

impl DeflateParams {
    /// The first permessage-deflate offer in the client's Sec-WebSocket-Extensions values that we
    /// can accept (RFC 7692 5: the server picks one offer or none).
    pub fn negotiate<'a>(values: impl Iterator<Item = &'a HeaderValue>) -> Option<Self> {
        values
            .filter_map(|v| v.to_str().ok())
            .flat_map(split_outside_quotes(','))
            .find_map(Self::from_offer)
    }

    fn from_offer(offer: &str) -> Option<Self> {
        let mut parts = split_outside_quotes(';')(offer);
        let name = parts.next()?.trim();
        if !name.eq_ignore_ascii_case("permessage-deflate") {
            return None;
        }
        let mut params = DeflateParams::default();
        let mut client_max_window_bits = false;
        for part in parts {
            let (key, value) = match part.split_once('=') {
                Some((k, v)) => (k.trim(), Some(unquote(v.trim())?)),
                None => (part.trim(), None),
            };
            let key = key.to_ascii_lowercase();
            // RFC 7692 7: an offer with an unknown, repeated or malformed parameter is declined
            match (key.as_str(), value) {
                ("server_no_context_takeover", None) if !params.server_no_context_takeover => {
                    params.server_no_context_takeover = true;
                }
                ("client_no_context_takeover", None) if !params.client_no_context_takeover => {
                    params.client_no_context_takeover = true;
                }
                ("server_max_window_bits", Some(v)) if params.server_max_window_bits.is_none() => {
                    let bits = window_bits(v)?;
                    if bits < MIN_SERVER_WINDOW_BITS {
                        return None;
                    }
                    params.server_max_window_bits = Some(bits);
                }
                ("client_max_window_bits", v) if !client_max_window_bits => {
                    if let Some(v) = v {
                        window_bits(v)?;
                    }
                    // Our inflater always has a 32 KiB window: any client window decodes.
                    client_max_window_bits = true;
                }
                _ => return None,
            }
        }
        Some(params)
    }

    pub fn response_header(&self) -> HeaderValue {
        let mut value = String::from("permessage-deflate");
        if self.server_no_context_takeover {
            value.push_str("; server_no_context_takeover");
        }
        if self.client_no_context_takeover {
            value.push_str("; client_no_context_takeover");
        }
        if let Some(bits) = self.server_max_window_bits {
            value.push_str(&format!("; server_max_window_bits={bits}"));
        }
        HeaderValue::from_str(&value).unwrap_or(HeaderValue::from_static("permessage-deflate"))
    }
}

/// RFC 7692 7.1.2: a decimal 8..15 without leading zeros.
fn window_bits(value: &str) -> Option<u8> {
    if value.is_empty() || value.starts_with('0') || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let bits: u8 = value.parse().ok()?;
    (8..=MAX_WINDOW_BITS).contains(&bits).then_some(bits)
}

/// A parameter value is a token or a quoted string holding a token (RFC 7692 7).
fn unquote(value: &str) -> Option<&str> {
    match value.strip_prefix('"') {
        Some(rest) => rest.strip_suffix('"').filter(|v| !v.contains('"')),
        None => Some(value),
    }
}

fn split_outside_quotes(sep: char) -> impl Fn(&str) -> std::vec::IntoIter<&str> {
    move |s: &str| {
        let mut pieces = Vec::new();
        let mut start = 0;
        let mut quoted = false;
        for (i, c) in s.char_indices() {
            if c == '"' {
                quoted = !quoted;
            } else if c == sep && !quoted {
                pieces.push(&s[start..i]);
                start = i + 1;
            }
        }
        pieces.push(&s[start..]);
        pieces.into_iter()
    }
}

/// Compresses the messages the app sends, one frame per message with RSV1 set.
pub struct MessageDeflater {
    compress: Option<Deflate>,
    window_bits: u8,
    reset_each: bool,
}

impl MessageDeflater {
    pub fn new(params: &DeflateParams) -> Self {
        MessageDeflater {
            compress: None,
            window_bits: params.server_max_window_bits.unwrap_or(MAX_WINDOW_BITS),
            reset_each: params.server_no_context_takeover,
        }
    }

    pub fn frame(&mut self, opcode: Data, data: &[u8]) -> io::Result<Frame> {
        // Allocated on the first message: an idle socket holds no compressor.
        let window_bits = self.window_bits;
        let compress = self.compress.get_or_insert_with(|| {
            Deflate::new_with_config(DeflateConfig {
                level: LEVEL,
                window_bits: -i32::from(window_bits),
                mem_level: MEM_LEVEL,
                ..DeflateConfig::default()
            })
        });
        let mut out = vec![0u8; data.len() / 2 + 64];
        let mut written = 0;
        let mut input = data;
        loop {
            if out.len() - written < 64 {
                out.resize(out.len() * 2, 0);
            }
            let (in_before, out_before) = (compress.total_in(), compress.total_out());
            compress
                .compress(input, &mut out[written..], DeflateFlush::SyncFlush)
                .map_err(|e| io::Error::other(e.as_str()))?;
            input = &input[(compress.total_in() - in_before) as usize..];
            written += (compress.total_out() - out_before) as usize;
            // Done when all input is in and the flush left spare room (nothing pending).
            if input.is_empty() && written < out.len() {
                break;
            }
        }
        out.truncate(written);
        if out.ends_with(&SYNC_TAIL) {
            out.truncate(out.len() - SYNC_TAIL.len());
        }
        if out.is_empty() {
            // zlib emits nothing for an empty flush right after a flush; the receiver appends
            // the tail to whatever comes, so it needs an empty stored block (RFC 7692 7.2.3.6).
            out.push(0x00);
        }
        if self.reset_each {
            compress.reset();
        }
        let mut frame = Frame::message(Bytes::from(out), OpCode::Data(opcode), true);
        frame.header_mut().rsv1 = true;
        Ok(frame)
    }
}

/// The read side of an upgraded socket: with deflate negotiated, compressed frames are inflated and
/// handed on as plain (zero-masked) frames; everything else passes through byte for byte.
pub struct InflatingStream<S> {
    inner: S,
    inflate: Option<Box<Inflater>>,
}

impl<S> InflatingStream<S> {
    pub fn new(inner: S, params: Option<&DeflateParams>, max_size: usize) -> Self {
        InflatingStream {
            inner,
            inflate: params.map(|p| Box::new(Inflater::new(p, max_size))),
        }
    }
}

struct Inflater {
    /// Bytes read from the socket and not yet looked at.
    raw: BytesMut,
    /// Bytes ready for tungstenite.
    ready: BytesMut,
    /// Payload bytes of a frame being passed through unchanged.
    passthrough: u64,
    /// Inside a compressed message: its continuation frames are compressed too.
    in_message: bool,
    message_len: usize,
    decompress: Option<Decompress>,
    reset_after_message: bool,
    max_size: usize,
    eof: bool,
    /// Something tungstenite will reject came by: stop interpreting and let it see the bytes.
    opaque: bool,
}

impl Inflater {
    fn new(params: &DeflateParams, max_size: usize) -> Self {
        Inflater {
            raw: BytesMut::new(),
            ready: BytesMut::new(),
            passthrough: 0,
            in_message: false,
            message_len: 0,
            decompress: None,
            reset_after_message: params.client_no_context_takeover,
            max_size,
            eof: false,
            opaque: false,
        }
    }

    fn forward(&mut self, n: usize) {
        let bytes = self.raw.split_to(n);
        if self.ready.is_empty() {
            self.ready = bytes;
        } else {
            self.ready.extend_from_slice(&bytes);
        }
    }

    fn is_compressed(&self, header: &FrameHeader, len: u64) -> bool {
        let plain_rsv = !header.rsv2 && !header.rsv3;
        let fits = len <= self.max_size as u64;
        let data = match header.opcode {
            OpCode::Data(Data::Text | Data::Binary) => header.rsv1 && !self.in_message,
            OpCode::Data(Data::Continue) => !header.rsv1 && self.in_message,
            _ => false,
        };
        data && plain_rsv && fits && header.mask.is_some()
    }

    /// Moves whatever complete work `raw` holds into `ready`.
    fn process(&mut self) -> io::Result<()> {
        loop {
            if self.opaque || self.eof {
                let n = self.raw.len();
                self.forward(n);
                return Ok(());
            }
            if self.passthrough > 0 {
                if self.raw.is_empty() {
                    return Ok(());
                }
                let n = self.passthrough.min(self.raw.len() as u64) as usize;
                self.forward(n);
                self.passthrough -= n as u64;
                continue;
            }
            let mut cursor = Cursor::new(&self.raw[..]);
            let (header, len) = match FrameHeader::parse(&mut cursor) {
                Ok(Some(parsed)) => parsed,
                Ok(None) => return Ok(()),
                Err(_) => {
                    self.opaque = true;
                    continue;
                }
            };
            let header_len = cursor.position() as usize;
            if !self.is_compressed(&header, len) {
                self.forward(header_len);
                self.passthrough = len;
                continue;
            }
            let total = header_len + len as usize;
            if self.raw.len() < total {
                self.raw.reserve(total - self.raw.len());
                return Ok(());
            }
            let mut payload = self.raw.split_to(total).split_off(header_len);
            if let Some(mask) = header.mask {
                unmask(&mut payload, mask);
            }
            let out = self.inflate(&payload, header.is_final)?;
            let plain = FrameHeader {
                rsv1: false,
                mask: Some([0; 4]),
                ..header
            };
            let mut head = Vec::with_capacity(14);
            plain
                .format(out.len() as u64, &mut head)
                .map_err(io::Error::other)?;
            self.ready.extend_from_slice(&head);
            self.ready.extend_from_slice(&out);
            if self.message_len > self.max_size {
                // tungstenite now sees an oversized message and closes with 1009; inflating
                // anything more would only spend memory.
                self.opaque = true;
            } else if header.is_final {
                self.in_message = false;
                self.message_len = 0;
                if self.reset_after_message {
                    if let Some(d) = self.decompress.as_mut() {
                        d.reset(false);
                    }
                }
            } else {
                self.in_message = true;
            }
        }
    }

    /// Inflates one frame's payload, stopping one byte past the message size limit.
    fn inflate(&mut self, payload: &[u8], fin: bool) -> io::Result<Vec<u8>> {
        let limit = self.max_size.saturating_sub(self.message_len) + 1;
        let d = self
            .decompress
            .get_or_insert_with(|| Decompress::new(false));
        let mut out = Vec::new();
        let ended = inflate_into(d, payload, &mut out, limit)?;
        // After a final block (BFINAL, RFC 7692 7.2.3.4) the tail would start a bogus new stream.
        if fin && !ended && out.len() < limit {
            inflate_into(d, &SYNC_TAIL, &mut out, limit)?;
        }
        self.message_len += out.len();
        Ok(out)
    }
}

/// Returns whether the sender ended its deflate stream; the decompressor is then ready for a new one.
fn inflate_into(
    d: &mut Decompress,
    input: &[u8],
    out: &mut Vec<u8>,
    limit: usize,
) -> io::Result<bool> {
    let mut input = input;
    loop {
        if out.len() >= limit {
            out.truncate(limit);
            return Ok(false);
        }
        let want = (limit - out.len()).min((input.len() * 4).max(READ_CHUNK));
        out.reserve(want);
        let (in_before, out_before) = (d.total_in(), d.total_out());
        let status = d
            .decompress_vec(input, out, FlushDecompress::None)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        let consumed = (d.total_in() - in_before) as usize;
        let produced = d.total_out() - out_before;
        input = &input[consumed..];
        if status == Status::StreamEnd {
            d.reset(false);
            return Ok(true);
        }
        let room_left = out.len() < out.capacity();
        if input.is_empty() && room_left {
            return Ok(false);
        }
        if consumed == 0 && produced == 0 && room_left {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "permessage-deflate: undecodable data",
            ));
        }
    }
}

fn unmask(payload: &mut [u8], mask: [u8; 4]) {
    for (i, byte) in payload.iter_mut().enumerate() {
        *byte ^= mask[i & 3];
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for InflatingStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let Some(st) = this.inflate.as_deref_mut() else {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        };
        loop {
            if !st.ready.is_empty() {
                let n = buf.remaining().min(st.ready.len());
                buf.put_slice(&st.ready[..n]);
                st.ready.advance(n);
                return Poll::Ready(Ok(()));
            }
            st.process()?;
            if !st.ready.is_empty() {
                continue;
            }
            if st.eof {
                return Poll::Ready(Ok(()));
            }
            let start = st.raw.len();
            st.raw.resize(start + READ_CHUNK, 0);
            let mut read = ReadBuf::new(&mut st.raw[start..]);
            let polled = Pin::new(&mut this.inner).poll_read(cx, &mut read);
            let n = read.filled().len();
            st.raw.truncate(start + n);
            ready!(polled)?;
            if n == 0 {
                st.eof = true;
            }
        }
    }
}

write_through!(InflatingStream, inner);

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(s: &str) -> Option<DeflateParams> {
        let v = HeaderValue::from_str(s).ok()?;
        DeflateParams::negotiate(std::iter::once(&v))
    }

    #[test]
    fn negotiation_picks_the_first_acceptable_offer() {
        let p = offer("x-foo, permessage-deflate; server_max_window_bits=8, permessage-deflate; server_no_context_takeover; server_max_window_bits=\"10\"; client_max_window_bits").unwrap();
        assert_eq!(
            p.response_header(),
            "permessage-deflate; server_no_context_takeover; server_max_window_bits=10"
        );
        assert!(offer("permessage-deflate; foo").is_none());
        assert!(offer(
            "permessage-deflate; client_no_context_takeover; client_no_context_takeover"
        )
        .is_none());
        assert!(offer("permessage-deflate; server_max_window_bits=09").is_none());
        assert!(offer("permessage-deflate; server_max_window_bits").is_none());
        assert!(offer("permessage-deflate; client_max_window_bits=16").is_none());
        assert!(offer("permessage-deflate; server_no_context_takeover=1").is_none());
        assert_eq!(
            offer("permessage-deflate").unwrap().response_header(),
            "permessage-deflate"
        );
    }

    #[test]
    fn compressed_frames_round_trip_through_the_inflater() {
        let params = offer("permessage-deflate").unwrap();
        let mut deflater = MessageDeflater::new(&params);
        let message = b"hello hello hello hello hello".repeat(50);
        let frame = deflater.frame(Data::Text, &message).unwrap();
        assert!(frame.header().rsv1);
        assert!(frame.payload().len() < message.len());
        let mut inflater = Inflater::new(&params, 1 << 20);
        let out = inflater.inflate(frame.payload(), true).unwrap();
        assert_eq!(out, message);
        // An empty message between two others keeps both sides' streams in step.
        for m in [&b""[..], b"ab", b"", b"", b"hello"] {
            let frame = deflater.frame(Data::Binary, m).unwrap();
            assert_eq!(inflater.inflate(frame.payload(), true).unwrap(), m);
        }
    }

    #[test]
    fn inflation_stops_past_the_size_limit() {
        let params = offer("permessage-deflate").unwrap();
        let mut deflater = MessageDeflater::new(&params);
        let bomb = vec![0u8; 4 << 20];
        let frame = deflater.frame(Data::Binary, &bomb).unwrap();
        let mut inflater = Inflater::new(&params, 1000);
        let out = inflater.inflate(frame.payload(), true).unwrap();
        assert_eq!(out.len(), 1001);
    }

    #[test]
    fn garbage_is_invalid_data() {
        let params = offer("permessage-deflate").unwrap();
        let mut inflater = Inflater::new(&params, 1 << 20);
        let err = inflater.inflate(&[0xff; 16], true).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }
}
