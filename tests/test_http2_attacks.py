"""Misbehaving HTTP/2 clients, written frame by frame (hyperframe, hpack), against a real server.

Each case checks three things: the attacker's connection is closed (with the GOAWAY code RFC 9113
asks for where there is one) or held back by flow control / TCP backpressure; the server's memory
stays bounded (VmRSS of /proc/PID/status); and a normal client is answered within a second while the
attacker is still connected. Every loop is bounded.
"""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest
from hpack import Decoder, Encoder
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    RstStreamFrame,
    SettingsFrame,
)
from server_process import ServerProcess, running
from test_websocket import proc_status_kib

pytestmark = pytest.mark.timeout(90)

PROBE = "tests.apps.probe:app"
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# RFC 9113 7: error codes
PROTOCOL_ERROR = 0x1
FRAME_SIZE_ERROR = 0x6
ENHANCE_YOUR_CALM = 0xB

MIB = 1024


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with running(PROBE, "--no-access-log") as proc:
        yield proc


@dataclass
class Outcome:
    closed: bool
    goaway_code: int | None
    statuses: dict[int, int] = field(default_factory=dict)
    resets: dict[int, int] = field(default_factory=dict)


class Attacker:
    """A raw HTTP/2 connection: the preface and an empty SETTINGS, then whatever the test writes."""

    def __init__(self, server: ServerProcess, settings: dict[int, int] | None = None) -> None:
        self.sock = socket.create_connection(server.address, timeout=2.0)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.encoder = Encoder()
        self.decoder = Decoder()
        self.authority = f"{server.host}:{server.port}".encode()
        self.sock.sendall(PREFACE + SettingsFrame(0, settings=settings or {}).serialize())

    def close(self) -> None:
        self.sock.close()

    def header_block(self, path: str = "/", extra: list[tuple[bytes, bytes]] | None = None) -> bytes:
        headers = [
            (b":method", b"GET"),
            (b":scheme", b"http"),
            (b":authority", self.authority),
            (b":path", path.encode()),
        ]
        return bytes(self.encoder.encode(headers + (extra or [])))

    def get(self, stream_id: int, path: str = "/") -> bytes:
        return HeadersFrame(
            stream_id, self.header_block(path), flags=["END_HEADERS", "END_STREAM"]
        ).serialize()

    @staticmethod
    def header_frames(stream_id: int, block: bytes) -> bytes:
        """A header block over HEADERS and CONTINUATION frames of at most 16 KiB each."""
        pieces = [block[i : i + 16384] for i in range(0, len(block), 16384)]
        frames = []
        for index, piece in enumerate(pieces):
            flags = ["END_HEADERS"] if index == len(pieces) - 1 else []
            if index == 0:
                frames.append(HeadersFrame(stream_id, piece, flags=[*flags, "END_STREAM"]).serialize())
            else:
                frames.append(ContinuationFrame(stream_id, piece, flags=flags).serialize())
        return b"".join(frames)

    def send(self, data: bytes, repeat: int = 1, batch: int = 64) -> str:
        """Write ``data`` ``repeat`` times: "sent", "closed" (by the server) or "blocked" (the server
        stopped reading: TCP backpressure)."""
        try:
            for start in range(0, repeat, batch):
                self.sock.sendall(data * min(batch, repeat - start))
        except TimeoutError:
            return "blocked"
        except (BrokenPipeError, ConnectionResetError):
            return "closed"
        return "sent"

    def outcome(self, timeout: float = 5.0) -> Outcome:
        """Read (and drop) frames until the server closes the connection or ``timeout`` passes."""
        buffer = bytearray()
        outcome = Outcome(False, None)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.sock], [], [], max(deadline - time.monotonic(), 0))
            if not ready:
                break
            try:
                data = self.sock.recv(1 << 20)
            except (ConnectionResetError, TimeoutError):
                data = b""
            if not data:
                outcome.closed = True
                return outcome
            buffer += data
            while len(buffer) >= 9:
                size = 9 + int.from_bytes(buffer[:3], "big")
                if len(buffer) < size:
                    break
                frame, _ = Frame.parse_frame_header(memoryview(bytes(buffer[:9])))
                frame.parse_body(memoryview(bytes(buffer[9:size])))
                del buffer[:size]
                if isinstance(frame, GoAwayFrame):
                    outcome.goaway_code = frame.error_code
                elif isinstance(frame, RstStreamFrame):
                    outcome.resets[frame.stream_id] = frame.error_code
                elif isinstance(frame, HeadersFrame) and "END_HEADERS" in frame.flags:
                    headers = dict(self.decoder.decode(frame.data, raw=True))
                    outcome.statuses[frame.stream_id] = int(headers[b":status"])
        return outcome


def normal_client_answered(server: ServerProcess) -> None:
    for _ in range(3):
        started = time.monotonic()
        response = httpx.get(server.url + "/", timeout=1.0)
        assert response.text == "ok"
        assert time.monotonic() - started < 1.0


def rss_mib(server: ServerProcess) -> float:
    assert server.proc is not None
    return proc_status_kib(server.proc.pid) / MIB


def test_rapid_reset_closes_the_connection(server: ServerProcess) -> None:
    # CVE-2023-44487: open a stream and cancel it at once, thousands of times
    before = rss_mib(server)
    attacker = Attacker(server)
    try:
        frames = b"".join(
            attacker.get(stream_id) + RstStreamFrame(stream_id, error_code=8).serialize()
            for stream_id in range(1, 20_001, 2)
        )
        attacker.send(frames)
        normal_client_answered(server)
        outcome = attacker.outcome()
    finally:
        attacker.close()
    assert outcome.closed
    assert outcome.goaway_code == ENHANCE_YOUR_CALM
    assert rss_mib(server) - before < 32
    normal_client_answered(server)


def test_continuation_flood_closes_the_connection(server: ServerProcess) -> None:
    # a header block that never ends: HEADERS without END_HEADERS, then CONTINUATION frames
    before = rss_mib(server)
    attacker = Attacker(server)
    try:
        filler = attacker.encoder.encode([(b"x-filler", b"v" * 8000)])
        result = attacker.send(HeadersFrame(1, attacker.header_block()).serialize())
        assert result == "sent"
        result = attacker.send(ContinuationFrame(1, bytes(filler)).serialize(), repeat=8_000)  # 64 MB
        normal_client_answered(server)
        outcome = attacker.outcome()
    finally:
        attacker.close()
    assert result in ("closed", "blocked")
    assert outcome.closed
    assert rss_mib(server) - before < 32
    normal_client_answered(server)


@pytest.mark.parametrize(
    "frame",
    [SettingsFrame(0).serialize(), PingFrame(0, b"12345678").serialize()],
    ids=["settings", "ping"],
)
def test_settings_and_ping_floods_are_held_back(server: ServerProcess, frame: bytes) -> None:
    # each frame asks for an ACK; the attacker never reads them: the server must not queue ACKs without
    # bound, but stop reading (or close) once its writes back up
    before = rss_mib(server)
    attacker = Attacker(server)
    try:
        result = attacker.send(frame, repeat=2_000_000, batch=4096)  # up to 34 MB of frames
        normal_client_answered(server)
        grown = rss_mib(server) - before
    finally:
        attacker.close()
    assert result in ("closed", "blocked")
    assert grown < 32
    normal_client_answered(server)


def test_zero_window_slow_reader_is_bounded(server: ServerProcess) -> None:
    # streams whose window is 0: the app's response cannot leave, and must not pile up in memory
    before = rss_mib(server)
    attacker = Attacker(server, settings={SettingsFrame.INITIAL_WINDOW_SIZE: 0})
    try:
        frames = b"".join(attacker.get(stream_id, "/big?size=50000000") for stream_id in range(1, 100, 2))
        assert attacker.send(frames) == "sent"
        time.sleep(0.5)  # what the app can push before it is stopped; nothing to poll for
        normal_client_answered(server)
        grown = rss_mib(server) - before
        outcome = attacker.outcome(timeout=0.5)
    finally:
        attacker.close()
    assert not outcome.closed  # held back by flow control, not an error
    # 50 streams x (8 chunks of 64 KiB queued for the stream + the one hyper holds)
    assert grown < 48
    normal_client_answered(server)


def test_hpack_bomb_is_refused(server: ServerProcess) -> None:
    # one 4 KB header in the dynamic table, then referenced 16,000 times: 64 MB from a 16 KB block
    before = rss_mib(server)
    attacker = Attacker(server)
    try:
        insert = bytes(attacker.encoder.encode([(b"x-bomb", b"b" * 4000)]))
        first_dynamic_entry = b"\xbe"  # indexed header field, index 62
        block = attacker.header_block() + insert + first_dynamic_entry * 16_000
        frames = attacker.header_frames(1, block) + attacker.get(3)
        attacker.send(frames)
        normal_client_answered(server)
        outcome = attacker.outcome(timeout=2)
    finally:
        attacker.close()
    assert rss_mib(server) - before < 32
    # refused: a 431 or RST_STREAM for the stream, or the connection closed; never served
    assert outcome.statuses.get(1) in (None, 431)
    assert outcome.closed or 1 in outcome.resets or outcome.statuses.get(1) == 431
    normal_client_answered(server)


@pytest.mark.parametrize(
    ("frames", "code"),
    [
        # client streams are odd: HEADERS on an even id is a connection error (RFC 9113 5.1.1)
        (lambda a: a.get(2), PROTOCOL_ERROR),
        # a new stream id must be larger than every id used before (RFC 9113 5.1.1)
        (lambda a: a.get(5) + a.get(3), PROTOCOL_ERROR),
        # DATA larger than SETTINGS_MAX_FRAME_SIZE (16384) (RFC 9113 4.2)
        (lambda a: a.get(1) + DataFrame(1, b"x" * 16385).serialize(), FRAME_SIZE_ERROR),
    ],
    ids=["even-stream-id", "lower-stream-id", "oversized-frame"],
)
def test_protocol_violations_close_with_goaway(server: ServerProcess, frames: object, code: int) -> None:
    attacker = Attacker(server)
    try:
        assert callable(frames)
        attacker.send(frames(attacker))
        outcome = attacker.outcome()
    finally:
        attacker.close()
    assert (outcome.closed, outcome.goaway_code) == (True, code)
    normal_client_answered(server)


def test_frame_on_a_closed_stream_is_an_error(server: ServerProcess) -> None:
    attacker = Attacker(server)
    try:
        attacker.send(attacker.get(1))
        time.sleep(0.3)  # the response ends stream 1 on the server's side
        attacker.send(DataFrame(1, b"late", flags=["END_STREAM"]).serialize())
        outcome = attacker.outcome()
    finally:
        attacker.close()
    # RFC 9113 5.1: STREAM_CLOSED (5), as a connection error (GOAWAY) or at least a stream error
    assert outcome.statuses.get(1) == 200
    assert outcome.goaway_code == 5 or outcome.resets.get(1) == 5, outcome
    normal_client_answered(server)


@pytest.mark.parametrize("http", ["auto", "2"])
def test_bad_preface_is_closed(http: str) -> None:
    with running(PROBE, "--http", http) as srv:
        sock = socket.create_connection(srv.address, timeout=2.0)
        try:
            sock.sendall(b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n" + SettingsFrame(0).serialize())
            closed = False
            deadline = time.monotonic() + 2
            while time.monotonic() < deadline:
                ready, _, _ = select.select([sock], [], [], max(deadline - time.monotonic(), 0))
                try:
                    closed = bool(ready) and not sock.recv(65536)
                except ConnectionResetError:
                    closed = True
                if closed:
                    break
        finally:
            sock.close()
        assert closed
        if http == "auto":
            normal_client_answered(srv)


def test_stalled_preface_is_closed_after_the_request_head_timeout() -> None:
    # half a preface, then nothing: neither protocol can start; the connection must not be held for
    # longer than an HTTP/1.1 head may take
    with running(PROBE, "--timeout-request-head", "1") as srv:
        sock = socket.create_connection(srv.address, timeout=5.0)
        try:
            sock.sendall(PREFACE[:16])
            started = time.monotonic()
            ready, _, _ = select.select([sock], [], [], 5)
            try:
                closed = bool(ready) and not sock.recv(65536)
            except ConnectionResetError:
                closed = True
        finally:
            sock.close()
        assert closed
        assert 0.8 < time.monotonic() - started < 3
        normal_client_answered(srv)
