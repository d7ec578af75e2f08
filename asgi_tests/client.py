"""A small raw-socket HTTP/1.x client that shows exactly what the server put on the wire."""

from __future__ import annotations

import json
import select
import socket
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from asgi_tests.apps.tagging import untag


class ProtocolError(AssertionError):
    """The server's bytes could not be parsed as an HTTP/1.x response."""


@dataclass
class Response:
    version: str
    status: int
    reason: str
    headers: list[tuple[str, bytes]]
    body: bytes = b""
    chunked: bool = False
    chunk_sizes: list[int] = field(default_factory=list)
    trailers: list[tuple[str, bytes]] = field(default_factory=list)
    complete: bool = True
    raw_head: bytes = b""

    def header(self, name: str) -> bytes | None:
        values = self.header_list(name)
        return values[0] if values else None

    def header_list(self, name: str) -> list[bytes]:
        return [v for k, v in self.headers if k == name.lower()]

    def json(self) -> Any:
        return untag(json.loads(self.body))


class RawClient:
    """One TCP connection; responses are parsed incrementally from a buffer."""

    def __init__(self, host: str, port: int, timeout: float = 5.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.timeout = timeout
        self.buffer = bytearray()
        self.eof = False

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> bool:
        """Read more bytes; False on EOF or reset."""
        if self.eof:
            return False
        try:
            data = self.sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            data = b""
        if not data:
            self.eof = True
            return False
        self.buffer.extend(data)
        return True

    def _read_line(self) -> bytes:
        while True:
            idx = self.buffer.find(b"\r\n")
            if idx >= 0:
                line = bytes(self.buffer[:idx])
                del self.buffer[: idx + 2]
                return line
            if not self._fill():
                raise ProtocolError(f"connection closed mid-line; buffered {bytes(self.buffer)[:200]!r}")

    def _read_exact(self, n: int) -> bytes:
        while len(self.buffer) < n:
            if not self._fill():
                raise ProtocolError(f"connection closed after {len(self.buffer)} of {n} body bytes")
        data = bytes(self.buffer[:n])
        del self.buffer[:n]
        return data

    def has_response_start(self) -> bool:
        """Whether any response bytes are available (waits up to the socket timeout)."""
        if self.buffer:
            return True
        return self._fill()

    def read_head(self) -> Response:
        head = bytearray()
        while True:
            idx = self.buffer.find(b"\r\n\r\n")
            if idx >= 0:
                head = self.buffer[: idx + 4]
                del self.buffer[: idx + 4]
                break
            if len(self.buffer) > 1024 * 1024:
                raise ProtocolError("response head larger than 1 MiB")
            if not self._fill():
                raise ProtocolError(
                    f"connection closed before a complete response head: {bytes(self.buffer)[:300]!r}"
                )
        lines = bytes(head[:-4]).split(b"\r\n")
        status_line = lines[0].decode("latin-1")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
            raise ProtocolError(f"bad status line {status_line!r}")
        headers: list[tuple[str, bytes]] = []
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if not sep:
                raise ProtocolError(f"bad header line {line!r}")
            headers.append((name.decode("latin-1").lower(), value.strip(b" \t")))
        return Response(
            version=parts[0],
            status=int(parts[1]),
            reason=parts[2] if len(parts) > 2 else "",
            headers=headers,
            raw_head=bytes(head),
        )

    def read_response(self, head_request: bool = False, skip_informational: bool = True) -> Response:
        while True:
            response = self.read_head()
            if 100 <= response.status < 200 and response.status != 101 and skip_informational:
                continue
            break
        if head_request or response.status in (204, 304) or 100 <= response.status < 200:
            return response
        te = b",".join(response.header_list("transfer-encoding")).lower()
        if te:
            if not te.replace(b" ", b"").endswith(b"chunked"):
                raise ProtocolError(f"unexpected transfer-encoding {te!r}")
            response.chunked = True
            body = bytearray()
            while True:
                size_line = self._read_line()
                size_text = size_line.split(b";", 1)[0].strip()
                try:
                    size = int(size_text, 16)
                except ValueError as exc:
                    raise ProtocolError(f"bad chunk size line {size_line!r}") from exc
                response.chunk_sizes.append(size)
                if size == 0:
                    break
                body.extend(self._read_exact(size))
                if self._read_line() != b"":
                    raise ProtocolError("chunk data not followed by CRLF")
            while True:
                line = self._read_line()
                if not line:
                    break
                name, _, value = line.partition(b":")
                response.trailers.append((name.decode("latin-1").lower(), value.strip()))
            response.body = bytes(body)
            return response
        lengths = response.header_list("content-length")
        if lengths:
            if len(set(lengths)) != 1:
                raise ProtocolError(f"conflicting content-length headers {lengths!r}")
            response.body = self._read_exact(int(lengths[0]))
            return response
        # close-delimited
        while self._fill():
            pass
        response.body = bytes(self.buffer)
        self.buffer.clear()
        return response

    def read_partial_body(self, declared: int) -> bytes:
        """Read up to ``declared`` bytes of a body, stopping early at EOF."""
        while len(self.buffer) < declared and self._fill():
            pass
        data = bytes(self.buffer[:declared])
        del self.buffer[:declared]
        return data

    def is_closed(self, timeout: float = 3.0) -> bool:
        """Waits up to ``timeout`` for EOF/reset; True if the server closed the connection.

        Bytes received meanwhile are kept in the buffer (and mean the connection was not closed yet)."""
        if self.eof:
            return True
        if self.buffer:
            return False
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            readable, _, _ = select.select([self.sock], [], [], remaining)
            if readable:
                return not self._fill()

    def request(
        self, method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b""
    ) -> Response:
        self.send(build_request(method, path, headers, body))
        return self.read_response(head_request=method == "HEAD")


def build_request(
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
    version: str = "HTTP/1.1",
) -> bytes:
    all_headers = {"Host": "localhost"}
    all_headers.update(headers or {})
    if body and not any(k.lower() in ("content-length", "transfer-encoding") for k in all_headers):
        all_headers["Content-Length"] = str(len(body))
    lines = [f"{method} {path} {version}"] + [f"{k}: {v}" for k, v in all_headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def get_json(base_url: str, path: str) -> Any:
    response = httpx.get(base_url + path, timeout=5.0)
    response.raise_for_status()
    return untag(response.json())


def wait_observed(base_url: str, key: str, timeout: float = 5.0, until: str | None = None) -> Any:
    """Poll ``/observed/{key}`` until it exists (and, if ``until`` is given, that key is truthy)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        response = httpx.get(f"{base_url}/observed/{key}", timeout=5.0)
        if response.status_code == 200:
            last = untag(response.json())
            if until is None or (isinstance(last, dict) and last.get(until)):
                return last
        if time.monotonic() > deadline:
            raise AssertionError(
                f"probe {key!r} observed nothing conclusive within {timeout} s (last: {last!r})"
            )
        time.sleep(0.02)


# ------------------------------------------------------------------------------------- raw WebSocket

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def ws_accept_value(key: bytes) -> bytes:
    import base64
    import hashlib

    return base64.b64encode(hashlib.sha1(key + WS_GUID).digest())


def ws_handshake_request(
    path: str, headers: dict[str, str] | None = None, key: bytes = b"dGhlIHNhbXBsZSBub25jZQ=="
) -> bytes:
    all_headers = {
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": key.decode(),
        "Sec-WebSocket-Version": "13",
    }
    all_headers.update(headers or {})
    return build_request("GET", path, {k: v for k, v in all_headers.items() if v is not None})


def ws_frame(opcode: int, payload: bytes, fin: bool = True, mask: bool = True, rsv: int = 0) -> bytes:
    import os
    import struct

    first = (0x80 if fin else 0) | (rsv << 4) | opcode
    length = len(payload)
    mask_bit = 0x80 if mask else 0
    if length < 126:
        header = struct.pack("!BB", first, mask_bit | length)
    elif length < 65536:
        header = struct.pack("!BBH", first, mask_bit | 126, length)
    else:
        header = struct.pack("!BBQ", first, mask_bit | 127, length)
    if not mask:
        return header + payload
    key = os.urandom(4)
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return header + key + masked


def ws_close_payload(code: int | None, reason: str = "") -> bytes:
    import struct

    return b"" if code is None else struct.pack("!H", code) + reason.encode()


def ws_read_frame(client: RawClient) -> tuple[bool, int, bytes]:
    """Read one server frame: (fin, opcode, payload)."""
    import struct

    head = client._read_exact(2)
    fin, opcode = bool(head[0] & 0x80), head[0] & 0x0F
    length = head[1] & 0x7F
    if head[1] & 0x80:
        raise ProtocolError("server sent a masked frame")
    if length == 126:
        length = struct.unpack("!H", client._read_exact(2))[0]
    elif length == 127:
        length = struct.unpack("!Q", client._read_exact(8))[0]
    return fin, opcode, client._read_exact(length)


def ws_read_close(client: RawClient) -> tuple[int | None, str]:
    """Skip data/ping frames until a close frame; return (code, reason); code None for an empty close."""
    import struct

    while True:
        _, opcode, payload = ws_read_frame(client)
        if opcode == 0x8:
            if not payload:
                return None, ""
            return struct.unpack("!H", payload[:2])[0], payload[2:].decode("utf-8", "replace")
