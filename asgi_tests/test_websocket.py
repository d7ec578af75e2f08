"""WebSocket: the ASGI websocket scope (W1-W10) and RFC 6455 behaviour on the wire."""

from __future__ import annotations

import json
import select
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from asgi_tests.apps.tagging import untag
from asgi_tests.client import (
    RawClient,
    wait_observed,
    ws_accept_value,
    ws_close_payload,
    ws_frame,
    ws_handshake_request,
    ws_read_close,
    ws_read_frame,
)
from asgi_tests.harness import ServerProcess

pytestmark = pytest.mark.websocket

KEY = b"dGhlIHNhbXBsZSBub25jZQ=="


def new_id() -> str:
    return uuid.uuid4().hex[:12]


@contextmanager
def ws_connect(server: ServerProcess, path: str, **kwargs: Any) -> Iterator[ClientConnection]:
    kwargs.setdefault("open_timeout", 5)
    kwargs.setdefault("close_timeout", 2)
    with connect(server.ws_url + path, **kwargs) as ws:
        yield ws


def closed_with(ws: ClientConnection) -> tuple[int | None, str]:
    """Wait for the server's close frame; return its (code, reason)."""
    with pytest.raises(ConnectionClosed) as info:
        while True:
            ws.recv(timeout=5)
    rcvd = info.value.rcvd
    return (rcvd.code, rcvd.reason) if rcvd is not None else (None, "")


def ws_scope(server: ServerProcess, path: str = "/ws/scope", **kwargs: Any) -> dict[str, Any]:
    with ws_connect(server, path, **kwargs) as ws:
        result: dict[str, Any] = untag(json.loads(ws.recv(timeout=5)))
    return result


def raw_upgrade(server: ServerProcess, path: str, headers: dict[str, str] | None = None) -> RawClient:
    client = RawClient(server.host, server.port)
    client.send(ws_handshake_request(path, headers, KEY))
    return client


def raw_open(server: ServerProcess, path: str) -> RawClient:
    client = raw_upgrade(server, path)
    response = client.read_head()
    assert response.status == 101, response
    return client


# ------------------------------------------------------------------------------------------ handshake


def test_handshake_101_with_accept_key(server: ServerProcess) -> None:
    # RFC 6455 4.2.2
    with raw_upgrade(server, "/ws/echo") as client:
        response = client.read_head()
    assert response.status == 101
    assert response.header("upgrade") is not None and response.header("upgrade").lower() == b"websocket"
    assert b"upgrade" in (response.header("connection") or b"").lower()
    assert response.header("sec-websocket-accept") == ws_accept_value(KEY)


def test_handshake_missing_key_rejected(server: ServerProcess) -> None:
    # RFC 6455 4.2.1: a handshake without Sec-WebSocket-Key is not an upgrade
    client = RawClient(server.host, server.port)
    with client:
        client.send(
            b"GET /ws/echo HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Version: 13\r\n\r\n"
        )
        response = client.read_head()
    assert response.status != 101
    assert 400 <= response.status < 500


def test_handshake_unsupported_version_rejected(server: ServerProcess) -> None:
    # RFC 6455 4.4: unsupported version -> 426 with Sec-WebSocket-Version (400 tolerated)
    with raw_upgrade(server, "/ws/echo", {"Sec-WebSocket-Version": "7"}) as client:
        response = client.read_head()
    assert response.status in (400, 426)
    if response.status == 426:
        assert b"13" in (response.header("sec-websocket-version") or b"")


# ---------------------------------------------------------------------------------------- scope (W1)


@pytest.mark.spec
def test_scope_type_websocket(server: ServerProcess) -> None:
    # spec W1
    assert ws_scope(server)["type"] == "websocket"


@pytest.mark.spec
def test_scope_asgi_version(server: ServerProcess) -> None:
    # spec G1 W1
    assert ws_scope(server)["asgi"]["version"] == "3.0"


@pytest.mark.spec
def test_scope_scheme_ws(server: ServerProcess) -> None:
    # spec W1
    assert ws_scope(server)["scheme"] == "ws"


@pytest.mark.spec
def test_scope_has_no_method(server: ServerProcess) -> None:
    # spec W1: like HTTP without method
    assert "method" not in ws_scope(server)


@pytest.mark.spec
def test_scope_http_version(server: ServerProcess) -> None:
    # spec W1
    assert ws_scope(server)["http_version"] in ("1.1", "2")


@pytest.mark.spec
def test_scope_path_query_raw_path(server: ServerProcess) -> None:
    # spec W1
    scope = ws_scope(server, "/ws/scope/a%20b?x=%201")
    assert scope["path"] == "/ws/scope/a b"
    assert scope["query_string"] == b"x=%201"
    assert scope.get("raw_path", b"/ws/scope/a%20b") == b"/ws/scope/a%20b"


@pytest.mark.spec
def test_scope_headers_lowercased_bytes(server: ServerProcess) -> None:
    # spec W1
    scope = ws_scope(server, additional_headers={"X-Probe-Header": "Value"})
    headers = [tuple(h) for h in scope["headers"]]
    assert (b"x-probe-header", b"Value") in headers
    assert all(isinstance(k, bytes) and isinstance(v, bytes) and k == k.lower() for k, v in headers)


@pytest.mark.spec
def test_scope_subprotocols_parsed(server: ServerProcess) -> None:
    # spec W1: comma-split and stripped
    with raw_upgrade(server, "/ws/subprotocol", {"Sec-WebSocket-Protocol": "alpha, beta ,gamma"}) as client:
        assert client.read_head().status == 101
        _, opcode, payload = ws_read_frame(client)
    assert opcode == 0x1
    assert untag(json.loads(payload)) == ["alpha", "beta", "gamma"]


@pytest.mark.spec
def test_scope_subprotocols_empty(server: ServerProcess) -> None:
    # spec W1: an empty list when the client offered none
    assert ws_scope(server).get("subprotocols", []) == []


@pytest.mark.spec
def test_scope_client_and_server(server: ServerProcess) -> None:
    # spec W1
    scope = ws_scope(server)
    assert scope["client"][0] == "127.0.0.1" and isinstance(scope["client"][1], int)
    assert tuple(scope["server"]) == ("127.0.0.1", server.port)


@pytest.mark.spec
def test_scope_state(server: ServerProcess) -> None:
    # spec L7: WebSocket scopes get the lifespan state too
    assert ws_scope(server).get("state", {}).get("probe_started") == "yes"


# -------------------------------------------------------------------------------------- connect (W3)


@pytest.mark.spec
def test_first_event_is_connect(server: ServerProcess) -> None:
    # spec W3
    key = new_id()
    with ws_connect(server, f"/ws/record/{key}") as ws:
        ws.send("one")
    events = wait_observed(server.base_url, key, until="done")["events"]
    assert untag(events[0])["type"] == "websocket.connect"


@pytest.mark.spec
def test_handshake_waits_for_accept(server: ServerProcess) -> None:
    # spec W3: no 101 before the app accepts
    key = new_id()
    with raw_upgrade(server, f"/ws/wait-release/{key}") as client:
        wait_observed(server.base_url, key, until="connected")
        client.sock.settimeout(0.5)
        try:
            early = client.sock.recv(1)
        except TimeoutError:
            early = None
        assert early is None, "handshake answered before the app accepted"
        client.sock.settimeout(5)
        httpx.get(f"{server.base_url}/release/{key}", timeout=5)
        assert client.read_head().status == 101
        _, opcode, payload = ws_read_frame(client)
    assert payload == b"accepted after release"


# --------------------------------------------------------------------------------------- accept (W4)


@pytest.mark.spec
def test_accept_subprotocol(server: ServerProcess) -> None:
    # spec W4
    with ws_connect(server, "/ws/subprotocol?choose=beta", subprotocols=["alpha", "beta"]) as ws:
        assert ws.subprotocol == "beta"
        assert ws.response is not None
        assert ws.response.headers.get("Sec-WebSocket-Protocol") == "beta"


@pytest.mark.spec
def test_accept_without_subprotocol(server: ServerProcess) -> None:
    # spec W4: subprotocol None -> no Sec-WebSocket-Protocol header
    with raw_upgrade(server, "/ws/subprotocol", {"Sec-WebSocket-Protocol": "alpha"}) as client:
        response = client.read_head()
    assert response.status == 101
    assert response.header("sec-websocket-protocol") is None


@pytest.mark.spec
def test_accept_headers(server: ServerProcess) -> None:
    # spec W4 (2.1): headers on websocket.accept are added to the 101 response
    with raw_upgrade(server, "/ws/accept-headers") as client:
        response = client.read_head()
    assert response.status == 101
    assert response.header("x-probe-accept") == b"yes"
    assert response.header_list("set-cookie") == [b"a=1", b"b=2"]


# ------------------------------------------------------------------------------------- messages (W5)


@pytest.mark.spec
@pytest.mark.parametrize("message", ["hello", "", "unicode ✓ é 中文"], ids=["ascii", "empty", "unicode"])
def test_echo_text(server: ServerProcess, message: str) -> None:
    # spec W5
    with ws_connect(server, "/ws/echo") as ws:
        ws.send(message)
        assert ws.recv(timeout=5) == message


@pytest.mark.spec
@pytest.mark.parametrize("message", [b"\x00\x01\xff", b""], ids=["binary", "empty"])
def test_echo_bytes(server: ServerProcess, message: bytes) -> None:
    # spec W5
    with ws_connect(server, "/ws/echo") as ws:
        ws.send(message)
        assert ws.recv(timeout=5) == message


@pytest.mark.spec
def test_large_message(server: ServerProcess) -> None:
    # spec W5: a 4 MiB message arrives whole
    payload = bytes(range(256)) * 16384
    with ws_connect(server, "/ws/echo", max_size=None) as ws:
        ws.send(payload)
        assert ws.recv(timeout=10) == payload


@pytest.mark.spec
def test_message_order(server: ServerProcess) -> None:
    with ws_connect(server, "/ws/echo") as ws:
        for i in range(50):
            ws.send(f"m{i}")
        assert [ws.recv(timeout=5) for _ in range(50)] == [f"m{i}" for i in range(50)]


@pytest.mark.spec
def test_receive_events_have_exactly_one_payload(server: ServerProcess) -> None:
    # spec W5: exactly one of bytes/text is set on websocket.receive
    key = new_id()
    with ws_connect(server, f"/ws/record/{key}") as ws:
        ws.send("text")
        ws.send(b"bytes")
    events = [untag(e) for e in wait_observed(server.base_url, key, until="done")["events"]]
    received = [e for e in events if e["type"] == "websocket.receive"]
    assert len(received) == 2
    assert received[0].get("text") == "text" and received[0].get("bytes") is None
    assert received[1].get("bytes") == b"bytes" and received[1].get("text") is None


@pytest.mark.spec
def test_send_with_both_text_and_bytes_raises(server: ServerProcess) -> None:
    # spec W5 G5: a websocket.send with both bytes and text set is malformed
    key = new_id()
    with ws_connect(server, f"/ws/send-both/{key}") as ws:
        try:
            while True:
                ws.recv(timeout=5)
        except ConnectionClosed:
            pass
    assert wait_observed(server.base_url, key)["raised"], "send() accepted a message with both bytes and text"


# ----------------------------------------------------------------------------- fragments and pings (W2)


@pytest.mark.spec
def test_fragmented_text_reassembled(server: ServerProcess) -> None:
    # spec W2
    with ws_connect(server, "/ws/echo") as ws:
        ws.send(["frag-", "ment", "ed"])
        assert ws.recv(timeout=5) == "frag-mented"


@pytest.mark.spec
def test_fragmented_binary_reassembled(server: ServerProcess) -> None:
    # spec W2
    with ws_connect(server, "/ws/echo") as ws:
        ws.send([b"\x01\x02", b"\x03", b"\x04"])
        assert ws.recv(timeout=5) == b"\x01\x02\x03\x04"


@pytest.mark.spec
def test_ping_interleaved_with_fragments(server: ServerProcess) -> None:
    # spec W2 / RFC 6455 5.4: control frames may be injected between fragments
    with raw_open(server, "/ws/echo") as client:
        client.send(
            ws_frame(0x1, b"part1-", fin=False)
            + ws_frame(0x9, b"ping-data")
            + ws_frame(0x0, b"part2", fin=True)
        )
        frames = [ws_read_frame(client), ws_read_frame(client)]
    assert (True, 0xA, b"ping-data") in frames
    assert (True, 0x1, b"part1-part2") in frames


@pytest.mark.spec
def test_ping_answered(server: ServerProcess) -> None:
    # spec W2: the server answers pings itself
    with ws_connect(server, "/ws/echo") as ws:
        pong = ws.ping(b"probe")
        assert pong.wait(5), "no pong for a ping"


@pytest.mark.spec
def test_unsolicited_pong_ignored(server: ServerProcess) -> None:
    # RFC 6455 5.5.3: an unsolicited pong is allowed and needs no answer
    with raw_open(server, "/ws/echo") as client:
        client.send(ws_frame(0xA, b"unsolicited") + ws_frame(0x1, b"after pong"))
        assert ws_read_frame(client) == (True, 0x1, b"after pong")


# ------------------------------------------------------------------------------------- close (W6, W7)


@pytest.mark.spec
def test_close_before_accept_is_403(server: ServerProcess) -> None:
    # spec W6
    with pytest.raises(InvalidStatus) as info:
        with ws_connect(server, "/ws/close-before-accept"):
            pass
    assert info.value.response.status_code == 403


@pytest.mark.spec
def test_close_with_code_and_reason(server: ServerProcess) -> None:
    # spec W6
    with ws_connect(server, "/ws/close/4000?reason=probe%20bye") as ws:
        assert closed_with(ws) == (4000, "probe bye")


@pytest.mark.spec
def test_close_default_code_1000(server: ServerProcess) -> None:
    # spec W6: code defaults to 1000, reason to ""
    with ws_connect(server, "/ws/close/default") as ws:
        assert closed_with(ws) == (1000, "")


@pytest.mark.spec
def test_disconnect_after_server_close(server: ServerProcess) -> None:
    # spec W7: after the app's close, the next receive() is websocket.disconnect
    key = new_id()
    with ws_connect(server, f"/ws/close/4002?id={key}") as ws:
        closed_with(ws)
    message = wait_observed(server.base_url, key)["after_close"]
    assert message["type"] == "websocket.disconnect"
    assert isinstance(message.get("code"), int)


@pytest.mark.spec
def test_client_close_code_delivered(server: ServerProcess) -> None:
    # spec W7
    key = new_id()
    with ws_connect(server, f"/ws/record/{key}") as ws:
        ws.close(4001, "client reason")
    events = [untag(e) for e in wait_observed(server.base_url, key, until="done")["events"]]
    disconnect = events[-1]
    assert disconnect["type"] == "websocket.disconnect"
    assert disconnect["code"] == 4001
    assert isinstance(disconnect["code"], int)


@pytest.mark.spec
def test_client_close_reason_delivered(server: ServerProcess) -> None:
    # spec W7 (2.5): the close reason is delivered on websocket.disconnect
    key = new_id()
    with ws_connect(server, f"/ws/record/{key}") as ws:
        ws.close(4001, "client reason")
    events = [untag(e) for e in wait_observed(server.base_url, key, until="done")["events"]]
    disconnect = events[-1]
    if "reason" not in disconnect:
        scope = ws_scope(server)
        version = scope["asgi"].get("spec_version", "2.0")
        if tuple(int(p) for p in version.split(".")) < (2, 5):
            pytest.skip(f"server advertises spec_version {version} < 2.5 (no reason on websocket.disconnect)")
    assert disconnect["reason"] == "client reason"


@pytest.mark.spec
def test_client_close_without_code_is_1005(server: ServerProcess) -> None:
    # spec W7: 1005 when the client's close frame had no code
    key = new_id()
    with raw_open(server, f"/ws/record/{key}") as client:
        client.send(ws_frame(0x8, ws_close_payload(None)))
        ws_read_close(client)
    events = [untag(e) for e in wait_observed(server.base_url, key, until="done")["events"]]
    assert events[-1]["type"] == "websocket.disconnect"
    assert events[-1]["code"] == 1005


@pytest.mark.spec
def test_abrupt_loss_is_1006(server: ServerProcess) -> None:
    # spec W7: 1006 when the connection is lost without a close frame
    key = new_id()
    client = raw_open(server, f"/ws/record/{key}")
    client.send(ws_frame(0x1, b"then vanish"))
    client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    client.close()
    events = [untag(e) for e in wait_observed(server.base_url, key, until="done")["events"]]
    assert events[-1]["type"] == "websocket.disconnect"
    assert events[-1]["code"] == 1006


@pytest.mark.spec
def test_close_handshake_echoed(server: ServerProcess) -> None:
    # RFC 6455 5.5.1: the server answers a close frame with a close frame, then closes TCP
    with raw_open(server, "/ws/echo") as client:
        client.send(ws_frame(0x8, ws_close_payload(1000, "done")))
        code, _ = ws_read_close(client)
        assert code == 1000
        assert client.is_closed()


# ---------------------------------------------------------------------------------- app errors (W8)


@pytest.mark.spec
def test_app_error_before_accept_is_500(server: ServerProcess) -> None:
    # spec W8: HTTP 500 when the app dies before accepting
    with raw_upgrade(server, f"/ws/error-before/{new_id()}") as client:
        response = client.read_head()
    assert response.status == 500


@pytest.mark.spec
def test_app_error_after_accept_is_1011(server: ServerProcess) -> None:
    # spec W8: close 1011 when the app dies after accepting
    with ws_connect(server, f"/ws/error-after/{new_id()}") as ws:
        code, _ = closed_with(ws)
    assert code == 1011


@pytest.mark.spec
def test_server_survives_ws_app_errors(server: ServerProcess) -> None:
    # spec G6
    for _ in range(3):
        with ws_connect(server, f"/ws/error-after/{new_id()}") as ws:
            closed_with(ws)
    with ws_connect(server, "/ws/echo") as ws:
        ws.send("still alive")
        assert ws.recv(timeout=5) == "still alive"


# ------------------------------------------------------------------------------------- W9, W10


@pytest.mark.spec
def test_denial_response(server: ServerProcess) -> None:
    # spec W9: websocket.http.response.* when advertised
    extensions = ws_scope(server).get("extensions") or {}
    if "websocket.http.response" not in extensions:
        pytest.skip("server does not advertise websocket.http.response")
    with raw_upgrade(server, "/ws/deny") as client:
        response = client.read_response()
        assert response.status == 401
        assert response.header("x-denied") == b"yes"
        assert response.body == b"denied by probe"
        assert client.is_closed()


@pytest.mark.spec
def test_send_after_close_raises_oserror(server: ServerProcess) -> None:
    # spec W10 (2.4)
    version = ws_scope(server)["asgi"].get("spec_version", "2.0")
    if tuple(int(p) for p in version.split(".")) < (2, 4):
        pytest.skip(f"server advertises spec_version {version} < 2.4")
    key = new_id()
    with ws_connect(server, f"/ws/send-after-close/{key}") as ws:
        wait_observed(server.base_url, key, until="accepted")
        ws.close(1000)
    result = wait_observed(server.base_url, key, until="disconnect")
    assert result["raised"], "send() on a closed WebSocket did not raise"
    assert result["is_oserror"], f"raised {result['exc_type']}, not an OSError subclass"


# ------------------------------------------------------------------------------- RFC 6455 protocol errors


def test_unmasked_client_frame_fails_connection(server: ServerProcess) -> None:
    # RFC 6455 5.1: a server MUST close the connection on an unmasked client frame (1002)
    with raw_open(server, "/ws/echo") as client:
        client.send(ws_frame(0x1, b"unmasked", mask=False))
        try:
            code, _ = ws_read_close(client)
        except AssertionError:
            code = None  # closed without a close frame
        assert code in (1002, None)
        assert client.is_closed()


def test_invalid_utf8_text_fails_connection(server: ServerProcess) -> None:
    # RFC 6455 8.1: invalid UTF-8 in a text message -> close 1007
    with raw_open(server, "/ws/echo") as client:
        client.send(ws_frame(0x1, b"\xff\xfe invalid"))
        code, _ = ws_read_close(client)
    assert code == 1007


def test_reserved_opcode_fails_connection(server: ServerProcess) -> None:
    # RFC 6455 5.2: an unknown opcode -> fail the connection (1002)
    with raw_open(server, "/ws/echo") as client:
        client.send(ws_frame(0x3, b"reserved"))
        code, _ = ws_read_close(client)
    assert code == 1002


def test_oversized_control_frame_fails_connection(server: ServerProcess) -> None:
    # RFC 6455 5.5: control frames carry at most 125 bytes
    with raw_open(server, "/ws/echo") as client:
        client.send(ws_frame(0x9, b"p" * 200))
        code, _ = ws_read_close(client)
    assert code == 1002


@pytest.mark.timeout(60)
def test_oversized_message_closed_1009(server: ServerProcess) -> None:
    # a message above the server's limit (16 MiB by default in uvicorn) -> close 1009
    frame = ws_frame(0x2, b"x" * (17 * 1024 * 1024))
    with raw_open(server, "/ws/echo") as client:
        for i in range(0, len(frame), 65536):
            readable, _, _ = select.select([client.sock], [], [], 0)
            if readable:
                break  # the server answered (or closed) before the whole message went out
            try:
                client.send(frame[i : i + 65536])
            except (BrokenPipeError, ConnectionResetError):
                break
        code, _ = ws_read_close(client)
    assert code == 1009
