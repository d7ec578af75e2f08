"""permessage-deflate (RFC 7692) end to end: a real server subprocess, raw sockets and ``websockets``.

Raw sockets drive what a client library won't do (chosen offers, RSV1 on any frame, hand-made
DEFLATE payloads); the ``websockets`` client checks interoperability. The app is
``tests/apps/ws_probe.py`` (``/echo``), whose side channel shows what the app itself received: plain
text and bytes, whatever went over the wire.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Iterator

import pytest
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
from websockets.sync.client import connect

from tests.server_process import ServerProcess, running
from tests.test_websocket import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    PROBE,
    RawWebSocket,
    close_info,
    close_payload,
    events,
    find,
    frame,
    has,
    new_id,
    proc_status_kib,
    wait_events,
    ws_url,
)

pytestmark = pytest.mark.timeout(60)

DEFLATE = "permessage-deflate"
TAIL = b"\x00\x00\xff\xff"  # RFC 7692 7.2.1: the end of a sync flush, removed from every message


# ------------------------------------------------------------------------------------ helpers


def dframe(opcode: int, payload: bytes = b"", *, fin: bool = True, rsv1: bool = False) -> bytes:
    """One masked client frame, with RSV1 (RFC 7692 6: the "Per-Message Compressed" bit) if asked."""
    data = frame(opcode, payload, fin=fin)
    return bytes([data[0] | 0x40]) + data[1:] if rsv1 else data


def deflate(message: bytes, compressor: zlib._Compress | None = None) -> bytes:
    """RFC 7692 7.2.1: raw DEFLATE, sync flush, trailing 00 00 ff ff removed. A shared ``compressor``
    keeps its LZ77 window from one message to the next (context takeover, RFC 7692 7.2.3.2)."""
    comp = compressor or zlib.compressobj(9, zlib.DEFLATED, -15)
    data = comp.compress(message) + comp.flush(zlib.Z_SYNC_FLUSH)
    assert data.endswith(TAIL)
    return data[: -len(TAIL)]


def inflate(payload: bytes, decompressor: zlib._Decompress) -> bytes:
    """RFC 7692 7.2.2: append 00 00 ff ff and inflate. The output is drawn 64 bytes at a time, so zlib
    checks every back-reference against the decompressor's window: in one large output buffer it
    also accepts distances that reach back into that buffer, whatever the window size."""
    out: list[bytes] = []
    data = payload + TAIL
    while True:
        chunk = decompressor.decompress(data, 64)
        data = decompressor.unconsumed_tail
        if not chunk and not data:
            return b"".join(out)
        out.append(chunk)


def window_bits(extension: str) -> int:
    """The server's LZ77 window from an accepted ``permessage-deflate`` response (15 by default)."""
    for param in extension.split(";")[1:]:
        name, _, value = param.strip().partition("=")
        if name == "server_max_window_bits":
            return int(value)
    return 15


class DeflateSocket(RawWebSocket):
    """A raw WebSocket that offers extensions and reads the RSV1 bit of the server's frames."""

    def negotiate(self, path: str, offers: list[str]) -> str | None:
        """Handshake with one Sec-WebSocket-Extensions header per offer; return the accepted one."""
        self.send(self.handshake_bytes(path, [("Sec-WebSocket-Extensions", offer) for offer in offers]))
        response = self.read_response()
        assert response.status == 101, response
        accepted = response.all("sec-websocket-extensions")
        assert len(accepted) <= 1, response
        return accepted[0] if accepted else None

    def read_frame_rsv1(self) -> tuple[bool, bool, int, bytes]:
        """One server frame: FIN, RSV1, opcode, payload (RSV2 and RSV3 are never set)."""
        while not self.buffer:
            if not self._fill():
                raise ConnectionError("connection closed before a frame")
        first = self.buffer[0]
        assert not first & 0x30, f"RSV2/RSV3 set in {first:#04x}"
        fin, opcode, payload = self.read_frame()
        return fin, bool(first & 0x40), opcode, payload

    def read_compressed(self, decompressor: zlib._Decompress) -> tuple[int, bytes]:
        """One server message: a single frame with RSV1 set; return its opcode and inflated payload."""
        fin, rsv1, opcode, payload = self.read_frame_rsv1()
        assert fin and rsv1 and opcode in (OP_TEXT, OP_BINARY), (fin, rsv1, opcode, payload[:50])
        return opcode, inflate(payload, decompressor)

    def close_code(self) -> int | None:
        """Read up to the server's close frame; return its code. RFC 7692 6: no RSV1 on control frames."""
        while True:
            _, rsv1, opcode, payload = self.read_frame_rsv1()
            if opcode == OP_CLOSE:
                assert not rsv1, "RSV1 set on a close frame"
                return int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with running(PROBE) as srv:
        yield srv


def messages_seen(server: ServerProcess, key: str) -> list[dict[str, object]]:
    return [e for e in events(server, key) if isinstance(e, dict) and "text" in e]


# ------------------------------------------------------------------------------------ negotiation

NEGOTIATION = [
    # (offers, one Sec-WebSocket-Extensions header each; the accepted response, None for none)
    ([], None),
    ([DEFLATE], DEFLATE),
    # RFC 7692 7.1.2.2: client_max_window_bits with or without a value; the server never answers it
    ([f"{DEFLATE}; client_max_window_bits"], DEFLATE),
    ([f"{DEFLATE}; client_max_window_bits=8"], DEFLATE),
    ([f'{DEFLATE}; client_max_window_bits="15"'], DEFLATE),  # RFC 7692 7.1: quoted token
    # RFC 7692 7.1.1.1, 7.1.1.2, 7.1.2.1: echoed in a fixed order, whatever the offer's order
    (
        [
            f"{DEFLATE}; client_max_window_bits=10; server_max_window_bits=11; "
            "client_no_context_takeover; server_no_context_takeover"
        ],
        f"{DEFLATE}; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=11",
    ),
    ([f"{DEFLATE}; server_max_window_bits=9"], f"{DEFLATE}; server_max_window_bits=9"),
    ([f'{DEFLATE}; server_max_window_bits="15"'], f"{DEFLATE}; server_max_window_bits=15"),
    # RFC 6455 9.1 with RFC 2616 2.1 implicit linear whitespace: spaces around ';' are optional
    (
        [f"{DEFLATE};server_no_context_takeover;client_max_window_bits"],
        f"{DEFLATE}; server_no_context_takeover",
    ),
    ([f"{DEFLATE} ;  client_no_context_takeover"], f"{DEFLATE}; client_no_context_takeover"),
    # RFC 7692 7: an offer with an invalid value, an unknown or a duplicated parameter is declined
    ([f"{DEFLATE}; server_max_window_bits=8"], None),  # zlib cannot make raw deflate with 256 bytes
    ([f"{DEFLATE}; server_max_window_bits=16"], None),
    ([f"{DEFLATE}; server_max_window_bits"], None),  # RFC 7692 7.1.2.1: the value is required
    ([f"{DEFLATE}; server_max_window_bits=010"], None),  # RFC 7692 7.1.2.1: no leading zeros
    ([f"{DEFLATE}; server_max_window_bits=ten"], None),
    ([f"{DEFLATE}; client_max_window_bits=7"], None),
    ([f"{DEFLATE}; client_max_window_bits=16"], None),
    ([f"{DEFLATE}; server_no_context_takeover=true"], None),  # RFC 7692 7.1.1.1: no value
    ([f"{DEFLATE}; client_no_context_takeover=1"], None),
    ([f"{DEFLATE}; mode=fast"], None),
    ([f"{DEFLATE}; server_no_context_takeover; server_no_context_takeover"], None),
    ([f"{DEFLATE}; client_max_window_bits; client_max_window_bits=10"], None),
    (["x-webkit-deflate-frame"], None),
    # RFC 7692 5: offers in preference order; the first acceptable one wins, in a list or across headers
    (
        [f"{DEFLATE}; server_max_window_bits=8, {DEFLATE}; client_no_context_takeover"],
        f"{DEFLATE}; client_no_context_takeover",
    ),
    (
        ["x-webkit-deflate-frame", f"{DEFLATE}; mode=fast", f"{DEFLATE}; server_max_window_bits=12"],
        f"{DEFLATE}; server_max_window_bits=12",
    ),
    ([f"{DEFLATE}; server_no_context_takeover, {DEFLATE}"], f"{DEFLATE}; server_no_context_takeover"),
    ([f'{DEFLATE}; server_max_window_bits="10", {DEFLATE}'], f"{DEFLATE}; server_max_window_bits=10"),
    ([f"{DEFLATE}; client_no_context_takeover", DEFLATE], f"{DEFLATE}; client_no_context_takeover"),
]


@pytest.mark.parametrize(("offers", "expected"), NEGOTIATION, ids=lambda v: repr(v) if v else "-")
def test_negotiation(server: ServerProcess, offers: list[str], expected: str | None) -> None:
    message = "negotiated or not? " * 20
    with DeflateSocket(server.address) as ws:
        assert ws.negotiate(f"/echo?id={new_id()}", offers) == expected
        # what was agreed is what the connection does: compressed replies exactly when accepted
        ws.send(frame(OP_TEXT, message.encode()))
        fin, rsv1, opcode, payload = ws.read_frame_rsv1()
        assert (fin, rsv1, opcode) == (True, expected is not None, OP_TEXT)
        if expected is not None:
            payload = inflate(payload, zlib.decompressobj(-window_bits(expected)))
        assert payload == message.encode()


@pytest.mark.parametrize(
    ("options", "env", "enabled"),
    [
        (["--ws-per-message-deflate", "false"], {}, False),
        ([], {"TURBOASGI_WS_PER_MESSAGE_DEFLATE": "false"}, False),
        (["--ws-per-message-deflate", "true"], {}, True),
    ],
    ids=["cli-false", "env-false", "cli-true"],
)
def test_option(options: list[str], env: dict[str, str], enabled: bool) -> None:
    with running(PROBE, *options, env=env) as srv:
        with DeflateSocket(srv.address) as ws:
            assert ws.negotiate(f"/echo?id={new_id()}", [DEFLATE]) == (DEFLATE if enabled else None)
        with connect(ws_url(srv, f"/echo?id={new_id()}")) as client:
            assert client.response.headers.get("Sec-WebSocket-Extensions") == (DEFLATE if enabled else None)
            client.send("über " * 100)
            assert client.recv(timeout=5) == "über " * 100
        if not enabled:
            # RFC 6455 5.2: RSV1 without a negotiated extension fails the connection
            key = new_id()
            with DeflateSocket(srv.address) as ws:
                assert ws.negotiate(f"/echo?id={key}", [DEFLATE]) is None
                ws.send(dframe(OP_TEXT, deflate(b"compressed anyway"), rsv1=True))
                assert ws.close_code() == 1002


@pytest.mark.parametrize("offers", [[], [f"{DEFLATE}; server_max_window_bits=8"]], ids=["none", "declined"])
def test_rsv1_without_negotiation_is_1002(server: ServerProcess, offers: list[str]) -> None:
    key = new_id()
    with DeflateSocket(server.address) as ws:
        assert ws.negotiate(f"/echo?id={key}", offers) is None
        ws.send(dframe(OP_TEXT, deflate(b"compressed anyway"), rsv1=True))
        assert ws.close_code() == 1002  # RFC 6455 5.2: RSV1 MUST be 0 with no extension negotiated
    evs = wait_events(server, key, has("disconnect"))
    assert find(evs, "disconnect")["disconnect"] == 1002
    assert messages_seen(server, key) == []


def test_app_sees_plain_messages_and_the_offer(server: ServerProcess) -> None:
    key = new_id()
    with connect(ws_url(server, f"/echo?id={key}")) as ws:
        assert ws.response.headers["Sec-WebSocket-Extensions"] == DEFLATE
        ws.send("héllo " * 100)
        assert ws.recv(timeout=5) == "héllo " * 100
        ws.send(bytes(1000))
        assert ws.recv(timeout=5) == bytes(1000)
    evs = events(server, key)
    headers = find(evs, "first")["scope"]["headers"]
    # the client's offer stays in the scope (websockets 17 offers client_max_window_bits)
    assert ["sec-websocket-extensions", f"{DEFLATE}; client_max_window_bits"] in headers
    # compression is invisible to the app: it received the plain message
    assert messages_seen(server, key) == [
        {"text": "héllo " * 100, "bytes_len": None},
        {"text": None, "bytes_len": 1000},
    ]


# ------------------------------------------------------------------------------------ server -> client


@pytest.mark.parametrize("offer", [DEFLATE, f"{DEFLATE}; server_no_context_takeover"])
def test_server_compresses_every_message(server: ServerProcess, offer: str) -> None:
    fresh = "server_no_context_takeover" in offer
    text = "héllo wörld, " * 50
    data = bytes(range(256)) * 8
    sent = [(OP_TEXT, text.encode()), (OP_TEXT, text.encode()), (OP_BINARY, data), (OP_BINARY, data)]
    sent += [(OP_TEXT, b""), (OP_BINARY, b""), (OP_TEXT, text.encode())]
    key = new_id()
    with DeflateSocket(server.address) as ws:
        assert ws.negotiate(f"/echo?id={key}", [offer]) == offer
        shared = zlib.decompressobj(-15)
        for opcode, payload in sent:
            ws.send(frame(opcode, payload))  # RFC 7692 6: a client may send uncompressed messages
            # RFC 7692 7.1.1.1: with server_no_context_takeover every message inflates on its own
            # (the repeated messages would reach back into the previous one otherwise); without it,
            # one decompressor serves the whole connection (RFC 7692 7.2.3.2)
            decompressor = zlib.decompressobj(-15) if fresh else shared
            assert ws.read_compressed(decompressor) == (opcode, payload)
    assert messages_seen(server, key) == [
        {"text": p.decode(), "bytes_len": None} if op == OP_TEXT else {"text": None, "bytes_len": len(p)}
        for op, p in sent
    ]


@pytest.mark.parametrize("bits", [9, 12])
def test_server_max_window_bits(server: ServerProcess, bits: int) -> None:
    # each block repeats at a distance just over the window: only a compressor that honours
    # server_max_window_bits produces output a decompressor with that window accepts (RFC 7692 7.1.2.1)
    block = os.urandom((1 << bits) + 500)
    message = block * 3 + bytes(1000)
    with pytest.raises(zlib.error, match="too far back"):  # the check below is a real one
        inflate(deflate(message), zlib.decompressobj(-bits))
    offer = f"{DEFLATE}; server_max_window_bits={bits}"
    with DeflateSocket(server.address) as ws:
        assert ws.negotiate(f"/echo?id={new_id()}", [offer]) == offer
        decompressor = zlib.decompressobj(-bits)
        for payload in (message, block + message):  # the second one with context takeover
            ws.send(frame(OP_BINARY, payload))
            assert ws.read_compressed(decompressor) == (OP_BINARY, payload)


# ------------------------------------------------------------------------------------ client -> server


@pytest.mark.parametrize("offer", [DEFLATE, f"{DEFLATE}; client_no_context_takeover"])
def test_client_compressed_messages(server: ServerProcess, offer: str) -> None:
    takeover = "client_no_context_takeover" not in offer
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    text = "dès le début, " * 40
    sent = [
        (OP_TEXT, text.encode(), True),
        (OP_TEXT, text.encode(), True),  # with takeover: one back-reference into the previous message
        (OP_BINARY, bytes(300) + os.urandom(300), True),
        (OP_TEXT, b"plain", False),  # RFC 7692 6: RSV1 clear, an uncompressed message
        (OP_BINARY, b"\x00\x01\x02", False),
        (OP_TEXT, b"", True),  # RFC 7692 7.2.3.6: the empty message compresses to one 0x00 byte
        (OP_BINARY, b"", True),
        (OP_TEXT, text.encode(), True),  # takeover goes on across uncompressed messages
    ]
    key = new_id()
    with DeflateSocket(server.address) as ws:
        assert ws.negotiate(f"/echo?id={key}", [offer]) == offer
        decompressor = zlib.decompressobj(-15)
        for opcode, payload, compressed in sent:
            if compressed:
                ws.send(dframe(opcode, deflate(payload, compressor if takeover else None), rsv1=True))
            else:
                ws.send(frame(opcode, payload))
            assert ws.read_compressed(decompressor) == (opcode, payload)
    assert messages_seen(server, key) == [
        {"text": p.decode(), "bytes_len": None} if op == OP_TEXT else {"text": None, "bytes_len": len(p)}
        for op, p, _ in sent
    ]


def test_client_message_ending_with_bfinal(server: ServerProcess) -> None:
    # RFC 7692 7.2.3.4: a sender may end a message with a DEFLATE block that has BFINAL set; the
    # receiver still appends 00 00 ff ff (RFC 7692 7.2.2), which lies past the end of the stream
    def finished(message: bytes) -> bytes:
        compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
        return compressor.compress(message) + compressor.flush(zlib.Z_FINISH)

    sent = [
        (OP_TEXT, b"final block " * 20, finished),
        (OP_BINARY, bytes(range(200)) * 3, deflate),  # a new stream, from a fresh compressor
        (OP_TEXT, b"final again " * 20, finished),
        (OP_TEXT, b"and then one more", deflate),
    ]
    key = new_id()
    with DeflateSocket(server.address) as ws:
        assert ws.negotiate(f"/echo?id={key}", [DEFLATE]) == DEFLATE
        decompressor = zlib.decompressobj(-15)
        for opcode, payload, compress in sent:
            ws.send(dframe(opcode, compress(payload), rsv1=True))
            assert ws.read_compressed(decompressor) == (opcode, payload)
    assert len(messages_seen(server, key)) == len(sent)


def test_client_fragmented_compressed_message(server: ServerProcess) -> None:
    text = "fragmentée, compressée. " * 100
    data = bytes(range(256)) * 20
    key = new_id()
    with DeflateSocket(server.address) as ws:
        assert ws.negotiate(f"/echo?id={key}", [DEFLATE]) == DEFLATE
        decompressor = zlib.decompressobj(-15)
        # RFC 7692 6: RSV1 on the first frame only; a ping between fragments is still answered
        payload = deflate(text.encode())
        third = len(payload) // 3
        ws.send(dframe(OP_TEXT, payload[:third], fin=False, rsv1=True))
        ws.send(frame(OP_PING, b"mid"))
        ws.send(frame(OP_CONT, payload[third : 2 * third], fin=False))
        ws.send(frame(OP_CONT, payload[2 * third :]))
        assert ws.read_frame_rsv1() == (True, False, OP_PONG, b"mid")
        assert ws.read_compressed(decompressor) == (OP_TEXT, text.encode())
        # an empty first fragment carries RSV1, the compressed data follows in continuations
        payload = deflate(data)
        ws.send(
            dframe(OP_BINARY, b"", fin=False, rsv1=True)
            + frame(OP_CONT, payload[:5], fin=False)
            + frame(OP_CONT, payload[5:])
        )
        assert ws.read_compressed(decompressor) == (OP_BINARY, data)
    assert messages_seen(server, key) == [
        {"text": text, "bytes_len": None},
        {"text": None, "bytes_len": len(data)},
    ]


HELLO = deflate(b"hello, hello, hello")


def _reference_before_the_start() -> bytes:
    """A message whose first back-reference reaches 1000 bytes back, where a connection that has seen
    only ``HELLO`` has no data: invalid DEFLATE (RFC 1951 3.2: a distance cannot refer past the
    beginning of the output stream)."""
    block = os.urandom(1000)  # random: its only match is its earlier copy, exactly 1000 bytes back
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    deflate(block, compressor)
    payload = deflate(block, compressor)
    primed = zlib.decompressobj(-15)
    inflate(HELLO, primed)
    with pytest.raises(zlib.error, match="too far back"):  # the payload is invalid after HELLO
        inflate(payload, primed)
    return payload


PROTOCOL_ERRORS = {
    # RFC 7692 6: RSV1 on a non-first fragment or on a control frame fails the connection
    "rsv1-on-continuation": (
        dframe(OP_TEXT, HELLO[:3], fin=False, rsv1=True) + dframe(OP_CONT, HELLO[3:], rsv1=True),
        1002,
    ),
    "rsv1-on-continuation-of-plain": (
        frame(OP_TEXT, b"ab", fin=False) + dframe(OP_CONT, b"cd", rsv1=True),
        1002,
    ),
    "rsv1-on-ping": (dframe(OP_PING, b"p", rsv1=True), 1002),
    "rsv1-on-pong": (dframe(OP_PONG, b"p", rsv1=True), 1002),
    "rsv1-on-close": (dframe(OP_CLOSE, close_payload(1000), rsv1=True), 1002),
    # RFC 7692 6.2 / 7.2.2: a payload that does not inflate fails the connection
    "invalid-block-type": (dframe(OP_BINARY, b"\xff\xff\xff\xff", rsv1=True), 1002),
    "distance-too-far-back": (dframe(OP_BINARY, _reference_before_the_start(), rsv1=True), 1002),
    # RFC 6455 8.1: the inflated text must be UTF-8
    "invalid-utf8-inflated": (dframe(OP_TEXT, deflate(b"ok \xff\xfe"), rsv1=True), 1007),
}


@pytest.mark.parametrize(("data", "code"), PROTOCOL_ERRORS.values(), ids=PROTOCOL_ERRORS.keys())
def test_protocol_errors(server: ServerProcess, data: bytes, code: int) -> None:
    key = new_id()
    with DeflateSocket(server.address) as ws:
        assert ws.negotiate(f"/echo?id={key}", [DEFLATE]) == DEFLATE
        ws.send(dframe(OP_TEXT, HELLO, rsv1=True))
        assert ws.read_compressed(zlib.decompressobj(-15)) == (OP_TEXT, b"hello, hello, hello")
        ws.send(data)
        assert ws.close_code() == code
    evs = wait_events(server, key, has("disconnect"))
    assert find(evs, "disconnect")["disconnect"] == code
    assert messages_seen(server, key) == [{"text": "hello, hello, hello", "bytes_len": None}]


@pytest.mark.timeout(60)
def test_inflated_size_limit_and_bomb() -> None:
    limit = 65536
    with running(PROBE, "--ws-max-size", str(limit)) as srv:
        assert srv.proc is not None
        key = new_id()
        with DeflateSocket(srv.address, timeout=10) as ws:
            assert ws.negotiate(f"/echo?id={key}", [DEFLATE]) == DEFLATE
            # --ws-max-size bounds the inflated message: exactly the limit passes ...
            ws.send(dframe(OP_BINARY, deflate(bytes(limit)), rsv1=True))
            assert ws.read_compressed(zlib.decompressobj(-15)) == (OP_BINARY, bytes(limit))
            # ... one byte more is 1009 (RFC 6455 7.4.1), though the frame is a few hundred bytes
            ws.send(dframe(OP_BINARY, deflate(bytes(limit + 1)), rsv1=True))
            assert ws.close_code() == 1009
        evs = wait_events(srv, key, has("disconnect"))
        assert find(evs, "disconnect")["disconnect"] == 1009
        # the limit holds over the whole fragmented message, not per frame
        with DeflateSocket(srv.address, timeout=10) as ws:
            assert ws.negotiate(f"/echo?id={new_id()}", [DEFLATE]) == DEFLATE
            payload = deflate(bytes(8 << 20))
            third = len(payload) // 3
            ws.send(
                dframe(OP_TEXT, payload[:third], fin=False, rsv1=True)
                + frame(OP_CONT, payload[third : 2 * third], fin=False)
                + frame(OP_CONT, payload[2 * third :])
            )
            assert ws.close_code() == 1009
        # the decompression bomb: 48 KiB on the wire, 48 MiB inflated; the server stops at the
        # limit instead of inflating it all (its peak RSS shows it)
        bomb = deflate(bytes(48 << 20))
        assert len(bomb) < limit
        peak_before = proc_status_kib(srv.proc.pid, "VmHWM")
        with DeflateSocket(srv.address, timeout=10) as ws:
            assert ws.negotiate(f"/echo?id={new_id()}", [DEFLATE]) == DEFLATE
            ws.send(dframe(OP_BINARY, bomb, rsv1=True))
            assert ws.close_code() == 1009
        grown_mib = (proc_status_kib(srv.proc.pid, "VmHWM") - peak_before) / 1024
        print(f"server peak RSS grew by {grown_mib:.1f} MiB on a 48 MiB bomb")
        assert grown_mib < 16, f"the server's peak RSS grew by {grown_mib:.0f} MiB on the bomb"


# ------------------------------------------------------------------------------------ websockets


def test_websockets_client_round_trips(server: ServerProcess) -> None:
    messages: list[str | bytes] = [
        "The quick brown fox jumps over the lazy dog. " * 20000,  # ~900 KiB, compressible
        os.urandom(1 << 19).decode("latin-1"),  # random code points: hardly compressible
        bytes(range(256)) * 4096,
        os.urandom(1 << 20),  # incompressible
        "",
        b"",
    ]
    with connect(ws_url(server, f"/echo?id={new_id()}"), max_size=None) as ws:
        assert ws.response.headers["Sec-WebSocket-Extensions"] == DEFLATE
        for message in messages:
            ws.send(message)
            assert ws.recv(timeout=10) == message


def test_websockets_client_with_parameters(server: ServerProcess) -> None:
    factory = ClientPerMessageDeflateFactory(
        server_no_context_takeover=True,
        client_no_context_takeover=True,
        server_max_window_bits=10,
        client_max_window_bits=9,
    )
    with connect(ws_url(server, f"/echo?id={new_id()}"), extensions=[factory], max_size=None) as ws:
        assert ws.response.headers["Sec-WebSocket-Extensions"] == (
            f"{DEFLATE}; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10"
        )
        block = os.urandom(2000)
        for message in (block * 5, "encore, " * 5000, os.urandom(100_000), block * 5):
            ws.send(message)
            assert ws.recv(timeout=10) == message


@pytest.mark.timeout(60)
def test_websockets_client_near_max_size() -> None:
    limit = 1 << 20
    with running(PROBE, "--ws-max-size", str(limit)) as srv:
        with connect(ws_url(srv, f"/echo?id={new_id()}"), max_size=None) as ws:
            assert ws.response.headers["Sec-WebSocket-Extensions"] == DEFLATE
            for message in (
                "a" * limit,
                bytes(limit),
                # random data grows a little when deflated: leave room for that on the wire
                os.urandom(limit - 4096),
                os.urandom((limit - 4096) // 2).decode("latin-1"),
            ):
                ws.send(message)
                assert ws.recv(timeout=10) == message
            # a few hundred bytes on the wire, one byte too many once inflated
            ws.send("a" * (limit + 1))
            assert close_info(ws)[0] == 1009
