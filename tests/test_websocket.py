"""WebSockets end to end: a real server subprocess, the ``websockets`` client and raw sockets.

Assertions cite the checklist items of /work/shared/reference/asgi-spec-checklist.md (``spec W3``).
The app under test is ``tests/apps/ws_probe.py``: it records what it observed, and the tests read
that back over plain HTTP on the same server (``/events?id=X``) — the side channel.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from tests.server_process import RawClient, ServerProcess, poll, request_bytes, running

pytestmark = pytest.mark.timeout(60)

PROBE = "tests.apps.ws_probe:app"
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


# ------------------------------------------------------------------------------------ helpers


def new_id() -> str:
    return uuid.uuid4().hex[:12]


def ws_url(server: ServerProcess, path: str) -> str:
    host, port = server.address
    return f"ws://{host}:{port}{path}"


def events(server: ServerProcess, key: str) -> list[Any]:
    response = httpx.get(f"{server.url}/events", params={"id": key}, timeout=5)
    response.raise_for_status()
    result: list[Any] = response.json()
    return result


def wait_events(
    server: ServerProcess, key: str, predicate: Callable[[list[Any]], bool], timeout: float = 10.0
) -> list[Any]:
    """Poll the side channel until ``predicate(events)`` holds; return the events."""
    seen: list[Any] = []

    def check() -> bool:
        nonlocal seen
        seen = events(server, key)
        return predicate(seen)

    try:
        poll(check, timeout, interval=0.02, what=f"events of {key}")
    except TimeoutError:
        raise AssertionError(f"events of {key} never matched; last seen: {seen}\n{server.output}") from None
    return seen


def has(kind: str) -> Callable[[list[Any]], bool]:
    return lambda evs: any(isinstance(e, dict) and kind in e for e in evs)


def find(evs: list[Any], kind: str) -> dict[str, Any]:
    return next(e for e in evs if isinstance(e, dict) and kind in e)


def release(server: ServerProcess, key: str) -> None:
    httpx.get(f"{server.url}/release", params={"id": key}, timeout=5).raise_for_status()


def frame(opcode: int, payload: bytes = b"", *, fin: bool = True) -> bytes:
    """One masked client frame."""
    head = bytes([(0x80 if fin else 0) | opcode])
    size = len(payload)
    if size < 126:
        head += bytes([0x80 | size])
    elif size < 65536:
        head += bytes([0x80 | 126]) + size.to_bytes(2, "big")
    else:
        head += bytes([0x80 | 127]) + size.to_bytes(8, "big")
    key = os.urandom(4)
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return head + key + masked


def close_payload(code: int, reason: str = "") -> bytes:
    return code.to_bytes(2, "big") + reason.encode()


class RawWebSocket(RawClient):
    """A raw socket speaking the WebSocket protocol by hand (for what a client library won't do)."""

    KEY = base64.b64encode(b"turboasgi-tests!").decode()

    def handshake_bytes(self, path: str, headers: list[tuple[str, str]] | None = None) -> bytes:
        base = [
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", self.KEY),
            ("Sec-WebSocket-Version", "13"),
        ]
        return request_bytes("GET", path, [*base, *(headers or [])])

    def open(self, path: str, headers: list[tuple[str, str]] | None = None) -> None:
        self.send(self.handshake_bytes(path, headers))
        response = self.read_response()
        assert response.status == 101, response

    def read_frame(self) -> tuple[bool, int, bytes]:
        b0, b1 = self._read_exact(2)
        assert not b1 & 0x80, "server frames must not be masked"
        size = b1 & 0x7F
        if size == 126:
            size = int.from_bytes(self._read_exact(2), "big")
        elif size == 127:
            size = int.from_bytes(self._read_exact(8), "big")
        return bool(b0 & 0x80), b0 & 0x0F, self._read_exact(size)

    def read_until_close(self, answer_pings: bool = False) -> tuple[list[int], int | None, str]:
        """Read frames until a close frame; return the opcodes seen, the close code and reason."""
        opcodes: list[int] = []
        while True:
            _, opcode, payload = self.read_frame()
            opcodes.append(opcode)
            if opcode == OP_PING and answer_pings:
                self.send(frame(OP_PONG, payload))
            if opcode == OP_CLOSE:
                if len(payload) >= 2:
                    return opcodes, int.from_bytes(payload[:2], "big"), payload[2:].decode()
                return opcodes, None, ""


def accept_key(key: str) -> str:
    return base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()


def close_info(ws: ClientConnection) -> tuple[int | None, str | None]:
    """Wait for the server's close; return the code and reason it sent."""
    with pytest.raises(ConnectionClosed) as info:
        while True:
            ws.recv(timeout=10)
    rcvd = info.value.rcvd
    return (rcvd.code, rcvd.reason) if rcvd is not None else (None, None)


def proc_status_kib(pid: int, field: str = "VmRSS") -> int:
    """A memory figure of /proc/PID/status in KiB: ``VmRSS`` (now) or ``VmHWM`` (peak)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    raise AssertionError(f"no {field}")


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with running(PROBE) as srv:
        yield srv


# ------------------------------------------------------------------------------------ scope


def test_scope(server: ServerProcess) -> None:
    key = new_id()
    with RawWebSocket(server.address) as raw:
        raw.open(
            f"/echo?id={key}&x=1",
            [("Sec-WebSocket-Protocol", "chat, superchat ,v1"), ("Sec-WebSocket-Protocol", "v2")],
        )
        evs = wait_events(server, key, has("first"))
    scope = find(evs, "first")["scope"]
    assert find(evs, "first")["first"] == "websocket.connect"  # spec W3
    assert scope["type"] == "websocket"
    assert scope["scheme"] == "ws"  # spec W1
    assert scope["has_method"] is False  # spec W1: no method
    assert scope["subprotocols"] == ["chat", "superchat", "v1", "v2"]  # spec W1: comma-split, stripped
    assert scope["path"] == "/echo"
    assert scope["query_string"] == f"id={key}&x=1"
    assert scope["http_version"] == "1.1"
    assert scope["client"][0] == "127.0.0.1"
    assert scope["asgi"]["version"] == "3.0"
    assert "websocket.http.response" in scope["extensions"]  # spec W9: the extension is advertised
    names = [name for name, _ in scope["headers"]]
    assert "sec-websocket-key" in names and "upgrade" in names


@pytest.mark.parametrize(
    ("proto", "scheme"), [("wss", "wss"), ("https", "wss"), ("ws", "ws"), ("http", "ws")]
)
def test_scope_scheme_and_client_from_proxy_headers(server: ServerProcess, proto: str, scheme: str) -> None:
    """issue 10 item 7: X-Forwarded-Proto from a trusted proxy sets the WebSocket scheme in its ws
    spelling, and X-Forwarded-For with a port gives the client's (host, port)."""
    key = new_id()
    headers = {"X-Forwarded-Proto": proto, "X-Forwarded-For": "[2001:db8::7]:4444"}
    with connect(ws_url(server, f"/echo?id={key}"), additional_headers=headers, open_timeout=5):
        pass
    scope = find(wait_events(server, key, has("first")), "first")["scope"]
    assert scope["scheme"] == scheme
    assert scope["client"] == ["2001:db8::7", 4444]


def test_scope_without_subprotocols(server: ServerProcess) -> None:
    key = new_id()
    with connect(ws_url(server, f"/echo?id={key}")) as ws:
        ws.send("hi")
        assert ws.recv(timeout=5) == "hi"
    scope = find(events(server, key), "first")["scope"]
    assert scope["subprotocols"] == []  # spec W1


# ------------------------------------------------------------------------------------ handshake


def test_connect_before_handshake_completes(server: ServerProcess) -> None:
    key = new_id()
    with RawWebSocket(server.address) as raw:
        raw.send(
            raw.handshake_bytes(f"/gate?id={key}&subprotocol=v2", [("Sec-WebSocket-Protocol", "v1, v2")])
        )
        # spec W3: the app already has websocket.connect ...
        wait_events(server, key, has("first"))
        # ... but the 101 is not sent until the app accepts
        assert raw.nothing_received(0.3)
        assert "accepting" not in events(server, key)
        release(server, key)
        response = raw.read_response()
        assert response.status == 101, response
        assert response.header("sec-websocket-accept") == accept_key(raw.KEY)
        # spec W4: the accepted subprotocol and the app's extra headers are on the 101
        assert response.header("sec-websocket-protocol") == "v2"
        assert response.header("x-probe") == "accepted"
        assert response.all("set-cookie") == ["a=1", "b=2"]
        raw.send(frame(OP_TEXT, b"after accept"))
        assert raw.read_frame() == (True, OP_TEXT, b"after accept")


def test_subprotocol_negotiation(server: ServerProcess) -> None:
    with connect(ws_url(server, f"/echo?id={new_id()}&subprotocol=v2"), subprotocols=["v1", "v2"]) as ws:
        assert ws.subprotocol == "v2"  # spec W4
    with connect(ws_url(server, f"/echo?id={new_id()}"), subprotocols=["v1"]) as ws:
        assert ws.subprotocol is None  # spec W4: None -> no Sec-WebSocket-Protocol header


def test_bad_handshake_is_rejected(server: ServerProcess) -> None:
    with RawClient(server.address) as raw:
        raw.send(
            request_bytes(
                "GET",
                "/echo",
                [("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Version", "13")],
            )
        )
        response = raw.read_response()
        assert response.status == 400  # no Sec-WebSocket-Key
    with RawWebSocket(server.address) as ws_raw:
        ws_raw.send(ws_raw.handshake_bytes("/echo").replace(b"Version: 13", b"Version: 8"))
        response = ws_raw.read_response()
        assert response.status == 400
        assert response.header("sec-websocket-version") == "13"


# ------------------------------------------------------------------------------------ messages


def test_text_and_bytes(server: ServerProcess) -> None:
    key = new_id()
    with connect(ws_url(server, f"/echo?id={key}")) as ws:
        ws.send("héllo")
        assert ws.recv(timeout=5) == "héllo"
        ws.send(b"\x00\x01\xff")
        assert ws.recv(timeout=5) == b"\x00\x01\xff"
        ws.send("")
        assert ws.recv(timeout=5) == ""
        ws.send(b"")
        assert ws.recv(timeout=5) == b""
    evs = [e for e in events(server, key) if "text" in e]
    # spec W5: exactly one of text / bytes is set
    assert evs == [
        {"text": "héllo", "bytes_len": None},
        {"text": None, "bytes_len": 3},
        {"text": "", "bytes_len": None},
        {"text": None, "bytes_len": 0},
    ]


def test_fragmented_messages_are_reassembled(server: ServerProcess) -> None:
    key = new_id()
    with RawWebSocket(server.address) as raw:
        raw.open(f"/echo?id={key}")
        raw.send(frame(OP_TEXT, b"frag", fin=False))
        raw.send(frame(OP_PING, b"mid"))  # spec W2: control frames may come between fragments
        raw.send(frame(OP_CONT, "mén".encode()[:2], fin=False))  # split inside a UTF-8 sequence
        raw.send(frame(OP_CONT, "mén".encode()[2:] + b"ted"))
        assert raw.read_frame() == (True, OP_PONG, b"mid")  # spec W2: the server answers pings
        assert raw.read_frame() == (True, OP_TEXT, "fragménted".encode())
        raw.send(frame(OP_BINARY, b"\x01\x02", fin=False) + frame(OP_CONT, b"\x03"))
        assert raw.read_frame() == (True, OP_BINARY, b"\x01\x02\x03")
    with connect(ws_url(server, f"/echo?id={key}")) as ws:
        ws.send([b"ab", b"cd", b"ef"])  # the client library fragments an iterable
        assert ws.recv(timeout=5) == b"abcdef"
    received = [e for e in events(server, key) if "text" in e]
    # spec W2: the app sees whole messages only
    assert received == [
        {"text": "fragménted", "bytes_len": None},
        {"text": None, "bytes_len": 3},
        {"text": None, "bytes_len": 6},
    ]


# ------------------------------------------------------------------------------------ closing


def test_client_close_code_and_reason(server: ServerProcess) -> None:
    key = new_id()
    with connect(ws_url(server, f"/echo?id={key}")) as ws:
        ws.close(4321, "client bye")
    evs = wait_events(server, key, has("disconnect"))
    assert find(evs, "disconnect") == {"disconnect": 4321, "reason": "client bye"}  # spec W7


def test_client_close_without_code_is_1005(server: ServerProcess) -> None:
    key = new_id()
    with RawWebSocket(server.address) as raw:
        raw.open(f"/echo?id={key}")
        raw.send(frame(OP_CLOSE))
        _, opcode, payload = raw.read_frame()
        assert opcode == OP_CLOSE
        assert payload == b""  # the reply to a close without a code carries none (RFC 6455 5.5.1)
    evs = wait_events(server, key, has("disconnect"))
    assert find(evs, "disconnect") == {"disconnect": 1005, "reason": ""}  # spec W7


def test_abrupt_loss_is_1006(server: ServerProcess) -> None:
    key = new_id()
    raw = RawWebSocket(server.address)
    raw.open(f"/hold?id={key}")
    wait_events(server, key, lambda evs: "accepted" in evs)
    raw.close()  # no close frame
    evs = wait_events(server, key, has("disconnect"))
    assert find(evs, "disconnect") == {"disconnect": 1006, "reason": ""}  # spec W7


def test_server_close_code_and_reason(server: ServerProcess) -> None:
    key = new_id()
    with connect(ws_url(server, f"/echo?id={key}")) as ws:
        ws.send("close:4002:server bye")
        assert close_info(ws) == (4002, "server bye")  # spec W6
    with connect(ws_url(server, f"/echo?id={new_id()}")) as ws:
        ws.send("close::")
        assert close_info(ws) == (1000, "")  # spec W6: defaults 1000 and ""
    evs = wait_events(server, key, has("disconnect"))
    assert find(evs, "disconnect")["disconnect"] == 4002


def test_close_before_accept_is_403(server: ServerProcess) -> None:
    with pytest.raises(InvalidStatus) as info:
        connect(ws_url(server, f"/deny?id={new_id()}"))
    assert info.value.response.status_code == 403  # spec W6
    with RawWebSocket(server.address) as raw:
        raw.send(raw.handshake_bytes(f"/deny?id={new_id()}"))
        response = raw.read_response()
        assert response.status == 403
        assert response.header("upgrade") is None


def test_app_error_before_accept_is_500(server: ServerProcess) -> None:
    for path in ("/error-before", "/return-before"):
        key = new_id()
        with RawWebSocket(server.address) as raw:
            raw.send(raw.handshake_bytes(f"{path}?id={key}"))
            assert raw.read_response().status == 500  # spec W8
        # the access line reports the answer the client got, as uvicorn's does
        server.wait_for_output(re.compile(rf'"WebSocket {path}\?id={key}" 500'))
    server.wait_for_output("boom before accept")
    server.wait_for_output("ASGI callable returned without sending handshake.")


def test_app_error_after_accept_is_1011(server: ServerProcess) -> None:
    key = new_id()
    with connect(ws_url(server, f"/error-after?id={key}")) as ws:
        ws.send("trigger")
        code, _ = close_info(ws)
        assert code == 1011  # spec W8
    server.wait_for_output("boom after accept")


def test_denial_response_extension(server: ServerProcess) -> None:
    with RawWebSocket(server.address) as raw:
        raw.send(raw.handshake_bytes(f"/deny-response?id={new_id()}"))
        response = raw.read_response()
        # spec W9: the app's status, headers and (multi-part) body
        assert response.status == 401
        assert response.header("www-authenticate") == "Bearer"
        assert response.header("content-type") == "text/plain"
        assert response.body == b"no entry"
        assert raw.closed_by_peer(5)  # spec W9: ... and the connection is closed
    with pytest.raises(InvalidStatus) as info:
        connect(ws_url(server, "/deny-response"))
    assert info.value.response.status_code == 401
    assert info.value.response.body == b"no entry"


@pytest.mark.parametrize("who", ["client", "server"])
def test_send_after_close_raises_oserror(server: ServerProcess, who: str) -> None:
    key = new_id()
    with connect(ws_url(server, f"/send-after-close?id={key}&who={who}")) as ws:
        if who == "client":
            ws.close(1000)
        else:
            assert close_info(ws) == (4001, "bye")
    evs = wait_events(server, key, has("send_error"))
    error = find(evs, "send_error")
    assert error["send_error"] is not None, "send() after close did not raise"
    assert error["oserror"] is True, error  # spec W10


# ------------------------------------------------------------------------------------ options


@pytest.mark.timeout(30)
def test_ws_max_size() -> None:
    with running(PROBE, "--ws-max-size", "1024") as srv:
        key = new_id()
        with connect(ws_url(srv, f"/echo?id={key}"), max_size=None) as ws:
            ws.send("a" * 1024)
            assert ws.recv(timeout=5) == "a" * 1024
            ws.send(b"b" * 1025)
            assert close_info(ws)[0] == 1009
        evs = wait_events(srv, key, has("disconnect"))
        assert find(evs, "disconnect")["disconnect"] == 1009


@pytest.mark.timeout(30)
def test_ping_timeout_closes_1011() -> None:
    with running(PROBE, "--ws-ping-interval", "0.5", "--ws-ping-timeout", "0.5") as srv:
        # a client that never answers pings
        key = new_id()
        with RawWebSocket(srv.address, timeout=10) as raw:
            raw.open(f"/hold?id={key}")
            opcodes, code, _ = raw.read_until_close(answer_pings=False)
            assert OP_PING in opcodes
            assert code == 1011
        evs = wait_events(srv, key, has("disconnect"))
        assert find(evs, "disconnect")["disconnect"] == 1011
        # a client that answers them stays connected
        with RawWebSocket(srv.address, timeout=10) as raw:
            raw.open(f"/hold?id={new_id()}")
            for _ in range(4):
                _, opcode, payload = raw.read_frame()
                assert opcode == OP_PING
                raw.send(frame(OP_PONG, payload))
        # and so does the websockets client (it answers pings itself)
        with connect(ws_url(srv, f"/echo?id={new_id()}")) as ws:
            deadline = time.monotonic() + 1.5
            while time.monotonic() < deadline:
                ws.send("still here")
                assert ws.recv(timeout=5) == "still here"
                with pytest.raises(TimeoutError):
                    ws.recv(timeout=0.25)


@pytest.mark.timeout(30)
def test_graceful_shutdown_sends_1012() -> None:
    with running(PROBE) as srv:
        keys = [new_id(), new_id()]
        with ExitStack() as stack:
            clients = [stack.enter_context(connect(ws_url(srv, f"/hold?id={key}"))) for key in keys]
            for key in keys:
                wait_events(srv, key, lambda evs: "accepted" in evs)
            srv.send_signal(signal.SIGINT)
            for ws in clients:
                assert close_info(ws)[0] == 1012
        assert srv.wait(15) == 0


def test_ws_none_serves_upgrade_as_http() -> None:
    with running(PROBE, "--ws", "none") as srv:
        with RawWebSocket(srv.address) as raw:
            raw.send(raw.handshake_bytes("/echo"))
            response = raw.read_response()
        assert response.status == 200
        assert json.loads(response.body) == {"type": "http", "path": "/echo", "upgrade": "websocket"}


def test_access_log_line(server: ServerProcess) -> None:
    key = new_id()
    with connect(ws_url(server, f"/echo?id={key}")) as ws:
        # written when the handshake is answered, as uvicorn does: the socket is still open here
        server.wait_for_output(re.compile(rf'127\.0\.0\.1:\d+ - "WebSocket /echo\?id={key}" \[accepted\]'))
        ws.send("x")
        assert ws.recv(timeout=5) == "x"
    denied = new_id()
    with pytest.raises(InvalidStatus):
        connect(ws_url(server, f"/deny?id={denied}"))
    server.wait_for_output(re.compile(rf'127\.0\.0\.1:\d+ - "WebSocket /deny\?id={denied}" 403'))


# ------------------------------------------------------------------------------------ backpressure


@pytest.mark.timeout(60)
def test_backpressure_blocks_send_and_bounds_memory(server: ServerProcess) -> None:
    assert server.proc is not None
    key = new_id()
    size, limit = 65536, 2000  # 128 MiB if nothing held the app back
    before = proc_status_kib(server.proc.pid)
    with RawWebSocket(server.address, timeout=10) as raw:
        raw.open(f"/flood?id={key}&size={size}&limit={limit}")
        # the client reads nothing: the app's send() must block, so its count stops growing
        history: list[int] = []

        def stalled() -> bool:
            evs = events(server, key)
            history.append(evs[0]["sent"] if evs and "sent" in evs[0] else 0)
            return len(history) >= 15 and history[-1] > 0 and len(set(history[-15:])) == 1

        poll(stalled, timeout=20, interval=0.05, what="the app's send count to stop growing")
        stalled_at = history[-1]
        print(f"send() blocked after {stalled_at} messages of {size} bytes")
        assert stalled_at < limit // 2, f"send() did not block: {stalled_at} messages sent"
        grown_mib = (proc_status_kib(server.proc.pid) - before) / 1024
        print(f"server RSS grew by {grown_mib:.1f} MiB")
        assert grown_mib < 48, f"server RSS grew by {grown_mib:.0f} MiB with a non-reading client"
        # reading resumes the flow: every message arrives, whole and in order
        for _ in range(limit):
            fin, opcode, payload = raw.read_frame()
            assert (fin, opcode, len(payload)) == (True, OP_BINARY, size)
        wait_events(server, key, lambda evs: evs[0].get("sent") == limit)
        raw.send(frame(OP_CLOSE, close_payload(1000)))
        assert raw.read_frame()[1] == OP_CLOSE
    wait_events(server, key, has("disconnect"))


# ------------------------------------------------------------------------------------ examples


@pytest.fixture(scope="module", params=["examples.starlette_ws:app", "examples.fastapi_ws:app"])
def example(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    with running(request.param) as srv:
        yield srv


def test_example_echo(example: ServerProcess) -> None:
    with connect(ws_url(example, "/ws/echo"), subprotocols=["nope", "echo.v1", "echo.v2"]) as ws:
        assert ws.subprotocol == "echo.v1"  # the client's first supported choice
        ws.send("hello")
        assert ws.recv(timeout=5) == "hello"
        ws.send(b"\x00bytes")
        assert ws.recv(timeout=5) == b"\x00bytes"
        ws.send("bye")
        assert close_info(ws) == (4000, "bye requested")  # server-initiated close with a reason
    with connect(ws_url(example, "/ws/echo")) as ws:
        assert ws.subprotocol is None


def test_example_room(example: ServerProcess) -> None:
    room = new_id()
    with connect(ws_url(example, f"/ws/room/{room}?nick=ann")) as ann:
        assert ann.recv(timeout=5) == f"* ann joined {room} (1 here)"
        with connect(ws_url(example, f"/ws/room/{room}"), additional_headers={"X-Nick": "bob"}) as bob:
            assert bob.recv(timeout=5) == f"* bob joined {room} (2 here)"
            assert ann.recv(timeout=5) == f"* bob joined {room} (2 here)"
            ann.send("hi bob")
            assert ann.recv(timeout=5) == "ann: hi bob"
            assert bob.recv(timeout=5) == "ann: hi bob"
        assert ann.recv(timeout=5) == "* bob left"


def test_example_info(example: ServerProcess) -> None:
    url = ws_url(example, "/ws/info?a=1&b=two")
    with connect(
        url, subprotocols=["p1", "p2"], additional_headers={"X-Token": "t0k"}, user_agent_header="probe/1"
    ) as ws:
        info = json.loads(ws.recv(timeout=5))
        assert close_info(ws) == (1000, "done")
    assert info["path"] == "/ws/info"
    assert info["scheme"] == "ws"
    assert info["query"] == {"a": "1", "b": "two"}
    assert info["x_token"] == "t0k"
    assert info["user_agent"] == "probe/1"
    assert info["subprotocols"] == ["p1", "p2"]


def test_example_private(example: ServerProcess) -> None:
    with pytest.raises(InvalidStatus) as denied:
        connect(ws_url(example, "/ws/private"))
    assert denied.value.response.status_code == 403
    with connect(ws_url(example, "/ws/private?token=secret")) as ws:
        assert ws.recv(timeout=5) == "welcome"
        assert close_info(ws) == (1000, "")


# ------------------------------------------------------------------------------------ uvicorn fidelity


@pytest.mark.parametrize("read_first", [True, False])
def test_close_after_client_close_is_a_noop(server: ServerProcess, read_first: bool) -> None:
    key = new_id()
    with connect(ws_url(server, f"/close-after-client-close?id={key}&read={int(read_first)}")) as ws:
        ws.close(1000)
    if not read_first:
        release(server, key)
    evs = wait_events(
        server, key, lambda evs: len([e for e in evs if isinstance(e, dict) and "sent" in e]) == 2
    )
    results = {e["sent"]: e["error"] for e in evs if isinstance(e, dict) and "sent" in e}
    # uvicorn ignores a close while the connection is closing; a data send still fails (spec W10)
    assert results == {"websocket.close": None, "websocket.send": "ClientDisconnected"}


def test_bytes_like_messages(server: ServerProcess) -> None:
    with connect(ws_url(server, f"/bytes-like?id={new_id()}")) as ws:
        assert ws.recv(timeout=5) == b"view"
        assert ws.recv(timeout=5) == b"array"


def test_non_ascii_subprotocol_is_400(server: ServerProcess) -> None:
    # uvicorn (websockets) answers 400; dropping the header would lose the valid tokens with it
    with RawWebSocket(server.address) as raw:
        data = raw.handshake_bytes(f"/echo?id={new_id()}", [("Sec-WebSocket-Protocol", "chat, X")])
        raw.send(data.replace(b"chat, X", b"chat, \xc3\xa9x"))
        response = raw.read_response()
        assert response.status == 400
        assert response.header("upgrade") is None
        assert raw.closed_by_peer(5)
    server.wait_for_output("connection rejected (400 Bad Request)")


def test_close_before_accept_403_has_empty_body_and_log_lines(server: ServerProcess) -> None:
    key = new_id()
    with RawWebSocket(server.address) as raw:
        raw.send(raw.handshake_bytes(f"/deny?id={key}"))
        response = raw.read_response()
        assert (response.status, response.body) == (403, b"")  # as uvicorn sends it
    server.wait_for_output(
        re.compile(rf'"WebSocket /deny\?id={key}" 403\n.*connection rejected \(403 Forbidden\)')
    )
