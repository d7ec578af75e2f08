"""A small HTTP/2 client over one cleartext connection (h2c with prior knowledge), built on the ``h2``
package's state machine, that shows what the server sent per stream: headers, data, resets, GOAWAY.
Raw frames (``send_raw``) can be written around it for the misbehaving-client tests.

The ``h2`` package closes its connection state on the first GOAWAY, while a graceful GOAWAY is
followed by the responses of the streams still open: frames are fed to ``h2`` one at a time, and
those after a GOAWAY are read with ``hyperframe`` directly.
"""

from __future__ import annotations

import select
import socket
import time
from dataclasses import dataclass, field

import h2.config
import h2.connection
import h2.events
import h2.exceptions
from hyperframe.frame import (
    DataFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    RstStreamFrame,
    WindowUpdateFrame,
)


@dataclass
class StreamResult:
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    data: bytes = b""
    trailers: list[tuple[bytes, bytes]] = field(default_factory=list)
    ended: bool = False
    reset: int | None = None

    @property
    def status(self) -> int:
        return int(dict(self.headers)[b":status"])

    def header(self, name: bytes) -> bytes | None:
        return next((v for k, v in self.headers if k == name), None)

    @property
    def done(self) -> bool:
        return self.ended or self.reset is not None


@dataclass
class GoAway:
    error_code: int
    last_stream_id: int


class H2Client:
    """One HTTP/2 connection. ``auto_window=False`` leaves received DATA unacknowledged, so the
    server's flow-control window runs out (a slow reader)."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        timeout: float = 5.0,
        settings: dict[int, int] | None = None,
        auto_window: bool = True,
    ) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.host = f"{host}:{port}"
        self.timeout = timeout
        self.auto_window = auto_window
        config = h2.config.H2Configuration(client_side=True, header_encoding=None)
        self.conn = h2.connection.H2Connection(config=config)
        self.conn.initiate_connection()
        if settings:
            self.conn.update_settings(settings)
        self.streams: dict[int, StreamResult] = {}
        self.goaway: GoAway | None = None
        self._unparsed = bytearray()
        self.server_settings: dict[int, int] = {}
        self.eof = False
        self.flush()

    def __enter__(self) -> H2Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _send_quietly(self, data: bytes) -> None:
        """After a GOAWAY the server may close at any time: a failed write is not the test's concern."""
        try:
            self.sock.sendall(data)
        except OSError:
            pass

    def request(
        self,
        method: str,
        path: str,
        headers: list[tuple[bytes, bytes]] | None = None,
        body: bytes | None = None,
        *,
        end_stream: bool = True,
    ) -> int:
        stream_id: int = self.conn.get_next_available_stream_id()
        pseudo = [
            (b":method", method.encode()),
            (b":scheme", b"http"),
            (b":authority", self.host.encode()),
            (b":path", path.encode()),
        ]
        last = end_stream and not body
        self.conn.send_headers(stream_id, pseudo + (headers or []), end_stream=last)
        self.streams[stream_id] = StreamResult()
        if body:
            self._send_body(stream_id, body, end_stream)
        self.flush()
        return stream_id

    def _send_body(self, stream_id: int, body: bytes, end_stream: bool) -> None:
        """DATA frames within the server's frame size and flow-control windows."""
        view = memoryview(body)
        while view:
            room = min(self.conn.local_flow_control_window(stream_id), self.conn.max_outbound_frame_size)
            if room <= 0:
                self.flush()
                self.wait(
                    lambda: self.conn.local_flow_control_window(stream_id) > 0,
                    what=f"flow-control window for stream {stream_id}",
                )
                continue
            chunk, view = view[:room], view[room:]
            self.conn.send_data(stream_id, bytes(chunk), end_stream=end_stream and not view)

    def reset(self, stream_id: int, code: int = 8) -> None:
        """RST_STREAM with CANCEL (8) by default."""
        self.conn.reset_stream(stream_id, code)
        self.flush()

    def pump(self, timeout: float) -> bool:
        """Read and handle what arrives within ``timeout``; False once the server closed."""
        if self.eof:
            return False
        ready, _, _ = select.select([self.sock], [], [], max(timeout, 0))
        if not ready:
            return True
        try:
            data = self.sock.recv(65536)
        except (ConnectionResetError, TimeoutError):
            data = b""
        if not data:
            self.eof = True
            return False
        self._unparsed += data
        while len(self._unparsed) >= 9:
            size = 9 + int.from_bytes(self._unparsed[:3], "big")
            if len(self._unparsed) < size:
                break
            frame = bytes(self._unparsed[:size])
            del self._unparsed[:size]
            if self.goaway is None:
                for event in self.conn.receive_data(frame):
                    self._handle(event)
                self.flush()
            else:
                self._handle_after_goaway(frame)
        return True

    def _handle_after_goaway(self, raw: bytes) -> None:
        frame, _ = Frame.parse_frame_header(memoryview(raw[:9]))
        frame.parse_body(memoryview(raw[9:]))
        stream = self.streams.get(frame.stream_id)
        if isinstance(frame, HeadersFrame) and stream is not None:
            stream.headers.extend(self.conn.decoder.decode(frame.data, raw=True))
        elif isinstance(frame, DataFrame) and stream is not None:
            stream.data += frame.data
            if self.auto_window and frame.data and "END_STREAM" not in frame.flags:
                for stream_id in (0, frame.stream_id):
                    update = WindowUpdateFrame(stream_id, window_increment=len(frame.data))
                    self._send_quietly(update.serialize())
        elif isinstance(frame, RstStreamFrame) and stream is not None:
            stream.reset = frame.error_code
        elif isinstance(frame, PingFrame) and "ACK" not in frame.flags:
            self._send_quietly(PingFrame(0, frame.opaque_data, flags=["ACK"]).serialize())
        elif isinstance(frame, GoAwayFrame):
            self.goaway = GoAway(frame.error_code, frame.last_stream_id)
        if stream is not None and "END_STREAM" in frame.flags:
            stream.ended = True

    def _handle(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.ResponseReceived | h2.events.InformationalResponseReceived):
            self.streams.setdefault(event.stream_id, StreamResult()).headers.extend(event.headers)
        elif isinstance(event, h2.events.TrailersReceived):
            self.streams[event.stream_id].trailers.extend(event.headers)
        elif isinstance(event, h2.events.DataReceived):
            self.streams[event.stream_id].data += event.data
            if self.auto_window and event.flow_controlled_length:
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, h2.events.StreamEnded):
            self.streams[event.stream_id].ended = True
        elif isinstance(event, h2.events.StreamReset):
            self.streams.setdefault(event.stream_id, StreamResult()).reset = event.error_code
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.goaway = GoAway(event.error_code, event.last_stream_id)
        elif isinstance(event, h2.events.RemoteSettingsChanged):
            for key, setting in event.changed_settings.items():
                self.server_settings[key] = setting.new_value

    def wait(self, predicate: object, timeout: float | None = None, what: str = "condition") -> None:
        """Pump until ``predicate()`` is true; TimeoutError after ``timeout`` seconds."""
        assert callable(predicate)
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while not predicate():
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"timed out waiting for {what}")
            if not self.pump(min(left, 0.1)) and not predicate():
                raise ConnectionError(f"server closed the connection while waiting for {what}")

    def response(self, stream_id: int, timeout: float | None = None) -> StreamResult:
        self.wait(lambda: self.streams[stream_id].done, timeout, what=f"stream {stream_id}")
        return self.streams[stream_id]

    def get(self, path: str, headers: list[tuple[bytes, bytes]] | None = None) -> StreamResult:
        return self.response(self.request("GET", path, headers))

    def closed_by_server(self, timeout: float) -> bool:
        """Whether the server closes the connection within ``timeout`` (frames before are handled)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if not self.pump(min(deadline - time.monotonic(), 0.1)):
                    return True
            except h2.exceptions.ProtocolError:
                # the server's frames after our own violation no longer fit h2's state machine
                return self._drain_raw(deadline)
        return False

    def _drain_raw(self, deadline: float) -> bool:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.sock], [], [], max(deadline - time.monotonic(), 0))
            if not ready:
                return False
            try:
                if not self.sock.recv(65536):
                    return True
            except OSError:
                return True
        return False
