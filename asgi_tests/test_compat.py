"""uvicorn-observable behaviour that the ASGI spec leaves open (see uvicorn-compat.md).

Failures here against servers other than uvicorn/turboasgi are differences from uvicorn, not spec bugs.
Tests that need a command-line option only some servers have are skipped with the reason for the others.
"""

from __future__ import annotations

import re
import select
import signal
import time
import uuid
from collections.abc import Callable

import httpx
import pytest

from asgi_tests.apps import lifespan_apps
from asgi_tests.client import RawClient, build_request, wait_observed
from asgi_tests.harness import ServerProcess
from asgi_tests.plugin import PROBE_APP, ServerPool

pytestmark = pytest.mark.compat

Launch = Callable[..., ServerProcess]


def new_id() -> str:
    return uuid.uuid4().hex[:12]


def test_default_server_header(server: ServerProcess) -> None:
    with RawClient(server.host, server.port) as client:
        response = client.request("GET", "/head")
    assert len(response.header_list("server")) == 1


def test_default_headers_before_app_headers(server: ServerProcess) -> None:
    # uvicorn writes date and server first, then the app's headers in order
    with RawClient(server.host, server.port) as client:
        response = client.request("GET", "/cookies")
    names = [k for k, _ in response.headers]
    assert names.index("date") < names.index("set-cookie")
    assert names.index("server") < names.index("set-cookie")
    app_order = [k for k in names if k in ("set-cookie", "x-multi")]
    assert app_order == ["set-cookie", "set-cookie", "x-multi"]


def test_invalid_request_body_and_type(server: ServerProcess) -> None:
    with RawClient(server.host, server.port) as client:
        client.send(b"GET /head HTTP/1.1\r\nHost: localhost\r\nContent-Length: abc\r\n\r\n")
        response = client.read_response()
        assert response.status == 400
        assert response.header("content-type") == b"text/plain; charset=utf-8"
        assert response.body == b"Invalid HTTP request received."
        assert client.is_closed()


def test_app_error_500_body_and_close(server: ServerProcess) -> None:
    with RawClient(server.host, server.port) as client:
        response = client.request("GET", f"/error-before/{new_id()}")
        assert response.status == 500
        assert response.header("content-type") == b"text/plain; charset=utf-8"
        assert response.body == b"Internal Server Error"
        assert client.is_closed()


def test_app_error_logged_with_traceback(server: ServerProcess) -> None:
    token = new_id()
    with RawClient(server.host, server.port) as client:
        client.request("GET", f"/error-before/{token}")
    assert server.wait_for_output(token)
    output = server.output()
    assert "Exception in ASGI application" in output
    assert "Traceback" in output


def test_app_returns_without_response_500(server: ServerProcess) -> None:
    with RawClient(server.host, server.port) as client:
        response = client.request("GET", "/no-response")
        assert response.status == 500
        assert response.body == b"Internal Server Error"


@pytest.mark.parametrize("mismatch", ["long", "short"])
def test_body_length_mismatch_raises_and_closes(server: ServerProcess, mismatch: str) -> None:
    key = new_id()
    with RawClient(server.host, server.port) as client:
        client.send(build_request("GET", f"/len-mismatch/{mismatch}/{key}"))
        head = client.read_head()
        declared = int(head.header("content-length") or b"0")
        body = client.read_partial_body(declared + 5)
        assert len(body) <= declared
        assert client.is_closed()
    result = wait_observed(server.base_url, key)
    assert result["raised"], f"send() accepted a body {mismatch}er than content-length"


def test_continue_only_when_app_reads(server: ServerProcess) -> None:
    with RawClient(server.host, server.port) as client:
        client.send(
            b"POST /continue?read=0 HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n"
            b"Expect: 100-continue\r\n\r\n"
        )
        first = client.read_response(skip_informational=False)
    assert first.status == 200, "100 Continue sent although the app never called receive()"
    assert first.body == b"did not read"


def test_access_log_line(server: ServerProcess) -> None:
    token = new_id()
    with RawClient(server.host, server.port) as client:
        client.request("GET", f"/head?{token}")
    assert server.wait_for_output(token)
    pattern = rf'127\.0\.0\.1:\d+ - "GET /head\?{token} HTTP/1\.1" 200'
    assert re.search(pattern, server.output()), server.output()[-2000:]


def test_startup_log_lines(server: ServerProcess) -> None:
    output = server.output()
    for line in ("Waiting for application startup.", "Application startup complete."):
        assert line in output
    assert f"running on http://127.0.0.1:{server.port}" in output


def test_proxy_headers_scheme(server: ServerProcess) -> None:
    # X-Forwarded-Proto from a trusted peer (127.0.0.1 by default) sets the scheme
    response = httpx.get(server.base_url + "/scope", headers={"X-Forwarded-Proto": "https"}, timeout=5)
    from asgi_tests.apps.tagging import untag

    assert untag(response.json())["scope"]["scheme"] == "https"


def test_proxy_headers_client(server: ServerProcess) -> None:
    response = httpx.get(server.base_url + "/scope", headers={"X-Forwarded-For": "203.0.113.7"}, timeout=5)
    from asgi_tests.apps.tagging import untag

    assert untag(response.json())["scope"]["client"][0] == "203.0.113.7"


def test_startup_failed_exit_code_3(launch: Launch) -> None:
    server = launch("asgi_tests.apps.lifespan_apps:startup_failed")
    assert server.wait_exit(20) == 3, server.describe()
    assert "Application startup failed. Exiting." in server.output()


def test_lifespan_unsupported_message(launch: Launch) -> None:
    server = launch("asgi_tests.apps.lifespan_apps:unsupported").wait_ready()
    assert server.wait_for_output("ASGI 'lifespan' protocol appears unsupported."), server.describe()


def test_lifespan_on_unsupported_exits_3(launch: Launch, require_option: Callable[[str], None]) -> None:
    require_option("lifespan_on")
    server = launch("asgi_tests.apps.lifespan_apps:unsupported", options=[("lifespan_on", "")])
    assert server.wait_exit(20) == 3, server.describe()
    assert lifespan_apps.UNSUPPORTED_MESSAGE in server.output()


def test_sigint_exit_code_0(launch: Launch) -> None:
    server = launch(PROBE_APP).wait_ready()
    server.signal(signal.SIGINT)
    assert server.wait_exit(10) == 0, server.describe()


def test_shutdown_log_lines(launch: Launch) -> None:
    server = launch(PROBE_APP).wait_ready()
    server.signal(signal.SIGINT)
    assert server.wait_exit(10) is not None
    output = server.output()
    for line in ("Shutting down", "Waiting for application shutdown.", "Application shutdown complete."):
        assert line in output, output


def test_limit_concurrency_503(server_pool: ServerPool, require_option: Callable[[str], None]) -> None:
    require_option("limit_concurrency")
    limited = server_pool.get(PROBE_APP, [("limit_concurrency", "2")])
    held: list[RawClient] = []
    rejected = None
    try:
        for _ in range(3):
            client = RawClient(limited.host, limited.port)
            client.send(build_request("GET", f"/hold/{new_id()}?timeout=1.5"))
            readable, _, _ = select.select([client.sock], [], [], 0.5)
            if readable:
                rejected = client.read_response()
                client.close()
                break
            held.append(client)
        assert rejected is not None, "no request refused above --limit-concurrency 2"
        assert rejected.status == 503
        assert rejected.body == b"Service Unavailable"
        for client in held:
            assert client.read_response().status == 200
    finally:
        for client in held:
            client.close()
    deadline = time.monotonic() + 3
    while httpx.get(limited.base_url + "/head", timeout=5).status_code != 200:
        assert time.monotonic() < deadline, "still refusing requests after the held ones finished"
        time.sleep(0.05)


def test_timeout_keep_alive(server_pool: ServerPool, require_option: Callable[[str], None]) -> None:
    require_option("timeout_keep_alive")
    server = server_pool.get(PROBE_APP, [("timeout_keep_alive", "1")])
    with RawClient(server.host, server.port) as client:
        assert client.request("GET", "/head").status == 200
        started = time.monotonic()
        assert client.is_closed(timeout=4.0), "idle connection kept past --timeout-keep-alive 1"
        assert time.monotonic() - started >= 0.5


def test_default_keep_alive_outlives_a_second(server: ServerProcess) -> None:
    # the default --timeout-keep-alive is 5 s
    with RawClient(server.host, server.port) as client:
        assert client.request("GET", "/head").status == 200
        assert not client.is_closed(timeout=1.5)
        assert client.request("GET", "/head").status == 200


@pytest.mark.websocket
def test_websocket_permessage_deflate_negotiated(server: ServerProcess) -> None:
    from asgi_tests.client import ws_handshake_request

    with RawClient(server.host, server.port) as client:
        client.send(ws_handshake_request("/ws/echo", {"Sec-WebSocket-Extensions": "permessage-deflate"}))
        response = client.read_head()
    assert response.status == 101
    assert b"permessage-deflate" in (response.header("sec-websocket-extensions") or b"")


@pytest.mark.websocket
def test_websocket_accept_log_line(server: ServerProcess) -> None:
    from websockets.sync.client import connect

    token = new_id()
    with connect(f"{server.ws_url}/ws/echo?{token}", open_timeout=5) as ws:
        ws.send("x")
        ws.recv(timeout=5)
    assert server.wait_for_output(token)
    assert re.search(rf'"WebSocket /ws/echo\?{token}" \[accepted\]', server.output())


@pytest.mark.websocket
def test_websocket_closed_1012_on_shutdown(launch: Launch) -> None:
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    server = launch(PROBE_APP).wait_ready()
    with connect(f"{server.ws_url}/ws/echo", open_timeout=5) as ws:
        ws.send("x")
        assert ws.recv(timeout=5) == "x"
        server.signal(signal.SIGINT)
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=5)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1012


@pytest.mark.websocket
def test_websocket_proxy_scheme_wss(server: ServerProcess) -> None:
    import json

    from websockets.sync.client import connect

    from asgi_tests.apps.tagging import untag

    with connect(f"{server.ws_url}/ws/scope", additional_headers={"X-Forwarded-Proto": "wss"}) as ws:
        scope = untag(json.loads(ws.recv(timeout=5)))
    assert scope["scheme"] == "wss"
