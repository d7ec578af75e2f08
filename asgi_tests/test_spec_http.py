"""ASGI HTTP spec assertions (H1-H12) and general ones (G1-G8) checked over HTTP."""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from asgi_tests.apps.tagging import Opaque, untag
from asgi_tests.client import RawClient, build_request, get_json, wait_observed
from asgi_tests.harness import ServerProcess

pytestmark = pytest.mark.spec

ScopeOf = Callable[..., dict[str, Any]]


def new_id() -> str:
    return uuid.uuid4().hex[:12]


def raw_scope(server: ServerProcess, request: bytes) -> dict[str, Any]:
    with RawClient(server.host, server.port) as client:
        client.send(request)
        response = client.read_response()
    assert response.status == 200, response
    result: dict[str, Any] = response.json()["scope"]
    return result


# --------------------------------------------------------------------------------------- scope: H1, G1


def test_scope_type_is_http(scope_of: ScopeOf) -> None:
    # spec H1
    assert scope_of()["type"] == "http"


def test_scope_asgi_version_is_3_0(scope_of: ScopeOf) -> None:
    # spec G1 H1
    asgi = scope_of()["asgi"]
    assert isinstance(asgi, dict)
    assert asgi["version"] == "3.0"


def test_scope_asgi_spec_version_is_known(scope_of: ScopeOf) -> None:
    # spec H1: spec_version is optional (defaults to "2.0") but must be a known version string when present
    asgi = scope_of()["asgi"]
    if "spec_version" in asgi:
        assert asgi["spec_version"] in {"2.0", "2.1", "2.2", "2.3", "2.4", "2.5"}


def test_scope_http_version_1_1(scope_of: ScopeOf) -> None:
    # spec H1
    assert scope_of()["http_version"] == "1.1"


def test_scope_http_version_1_0(server: ServerProcess) -> None:
    # spec H1: "1.0", not "1"
    scope = raw_scope(server, b"GET /scope HTTP/1.0\r\nHost: localhost\r\n\r\n")
    assert scope["http_version"] == "1.0"


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
def test_scope_method(server: ServerProcess, method: str) -> None:
    # spec H1: method is an uppercase str
    response = httpx.request(method, server.base_url + "/scope", timeout=5.0)
    assert response.status_code == 200
    scope = untag(response.json())["scope"]
    assert scope["method"] == method
    assert isinstance(scope["method"], str)


def test_scope_extension_method_passes_through(server: ServerProcess) -> None:
    # spec H1: any token is a method; the server hands it over unchanged
    scope = raw_scope(server, build_request("PURGE", "/scope"))
    assert scope["method"] == "PURGE"


def test_scope_scheme_http(scope_of: ScopeOf) -> None:
    # spec H1
    assert scope_of()["scheme"] == "http"


def test_scope_path_percent_decoded(scope_of: ScopeOf) -> None:
    # spec H1
    scope = scope_of("/a%20b")
    assert scope["path"] == "/scope/a b"
    assert isinstance(scope["path"], str)


def test_scope_path_utf8_decoded(scope_of: ScopeOf) -> None:
    # spec H1: percent-decoded bytes are UTF-8 decoded
    assert scope_of("/caf%C3%A9")["path"] == "/scope/café"


def test_scope_path_excludes_query(scope_of: ScopeOf) -> None:
    # spec H1
    assert scope_of("/p?x=1")["path"] == "/scope/p"


def test_scope_raw_path_as_received(scope_of: ScopeOf) -> None:
    # spec H1: raw_path is the undecoded path bytes, without the query string
    scope = scope_of("/a%20b%2Fc?q=1")
    assert scope["raw_path"] == b"/scope/a%20b%2Fc"


def test_scope_query_string_still_encoded(scope_of: ScopeOf) -> None:
    # spec H1
    scope = scope_of("?a=1&b=%20x&c=%C3%A9")
    assert scope["query_string"] == b"a=1&b=%20x&c=%C3%A9"


def test_scope_query_string_empty(scope_of: ScopeOf) -> None:
    # spec H1: bytes, empty when there is no query
    assert scope_of()["query_string"] == b""


def test_scope_root_path_is_str(scope_of: ScopeOf) -> None:
    # spec H1: root_path defaults to ""
    assert scope_of().get("root_path", "") == ""


def test_scope_headers_are_byte_pairs(scope_of: ScopeOf) -> None:
    # spec H1: headers is an iterable of [name, value] pairs of bytes
    headers = scope_of(headers={"X-Probe": "v"})["headers"]
    assert isinstance(headers, (list, tuple))
    for pair in headers:
        assert isinstance(pair, (list, tuple)) and len(pair) == 2
        assert isinstance(pair[0], bytes) and isinstance(pair[1], bytes)


def test_scope_header_names_lowercased(server: ServerProcess) -> None:
    # spec H1
    scope = raw_scope(server, build_request("GET", "/scope", {"X-MiXeD-Case": "Value-Case"}))
    assert (b"x-mixed-case", b"Value-Case") in [tuple(h) for h in scope["headers"]]


def test_scope_header_order_and_duplicates_kept(server: ServerProcess) -> None:
    # spec H1: order and duplicates are preserved
    request = b"GET /scope HTTP/1.1\r\nHost: localhost\r\nX-A: 1\r\nX-B: 2\r\nX-A: 3\r\nX-C: 4\r\n\r\n"
    scope = raw_scope(server, request)
    names = [tuple(h) for h in scope["headers"] if h[0] in (b"x-a", b"x-b", b"x-c")]
    assert names == [(b"x-a", b"1"), (b"x-b", b"2"), (b"x-a", b"3"), (b"x-c", b"4")]


def test_scope_header_value_whitespace_trimmed(server: ServerProcess) -> None:
    # spec H1 / RFC 9112 5: optional whitespace around the value is not part of it
    scope = raw_scope(server, b"GET /scope HTTP/1.1\r\nHost: localhost\r\nX-Pad: \t padded value \t\r\n\r\n")
    assert (b"x-pad", b"padded value") in [tuple(h) for h in scope["headers"]]


def test_scope_client_is_host_and_int_port(server: ServerProcess) -> None:
    # spec H1: client is (host: str, port: int)
    with socket.create_connection((server.host, server.port), timeout=5) as sock:
        local_port = sock.getsockname()[1]
        sock.sendall(build_request("GET", "/scope", {"Connection": "close"}))
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    scope = untag(json.loads(data.split(b"\r\n\r\n", 1)[1]))["scope"]
    client = scope["client"]
    assert isinstance(client, (list, tuple)) and len(client) == 2
    assert client[0] == "127.0.0.1"
    assert isinstance(client[1], int) and not isinstance(client[1], bool)
    assert client[1] == local_port


def test_scope_server_is_host_and_int_port(server: ServerProcess, scope_of: ScopeOf) -> None:
    # spec H1: server is (host: str, port: int)
    srv = scope_of()["server"]
    assert isinstance(srv, (list, tuple)) and len(srv) == 2
    assert srv[0] == "127.0.0.1"
    assert isinstance(srv[1], int) and not isinstance(srv[1], bool)
    assert srv[1] == server.port


def test_scope_values_have_plain_types(scope_of: ScopeOf) -> None:
    # spec G4: only bytes, str, int, float, list/tuple, dict, bool, None in the scope
    def walk(value: Any, where: str) -> None:
        assert not isinstance(value, Opaque), f"{where} has type {value.type_name}"
        assert not isinstance(value, bytearray), f"{where} is a bytearray"
        if isinstance(value, (list, tuple)):
            for i, v in enumerate(value):
                walk(v, f"{where}[{i}]")
        elif isinstance(value, dict):
            for k, v in value.items():
                walk(v, f"{where}[{k!r}]")

    scope = scope_of("?x=1")
    scope.pop("state", None)  # holds the app's own objects
    walk(scope, "scope")


def test_scope_extensions_are_dicts(scope_of: ScopeOf) -> None:
    # spec G8: extensions are advertised as {name: {}}
    ext = scope_of().get("extensions")
    if ext is None:
        return
    assert isinstance(ext, dict)
    for name, value in ext.items():
        assert isinstance(name, str)
        assert isinstance(value, dict), f"extension {name!r} advertised with {value!r}"


def test_scope_no_tls_extension_on_plain_tcp(scope_of: ScopeOf) -> None:
    # spec G8: only advertise what is really handled; `tls` belongs to TLS connections only
    assert "tls" not in (scope_of().get("extensions") or {})


def test_scope_state_copy_from_lifespan(scope_of: ScopeOf) -> None:
    # spec H1 L7: state is a copy of what lifespan startup stored
    scope = scope_of()
    assert "state" in scope, "no state in the request scope although lifespan startup filled one"
    assert scope["state"].get("probe_started") == "yes"


def test_scope_state_is_shallow_copy(server: ServerProcess) -> None:
    # spec L7: top-level writes in one request do not leak into the next request's state
    marker = new_id()
    first = get_json(server.base_url, f"/state/{marker}")
    assert first["has_state"]
    second = get_json(server.base_url, f"/state/{new_id()}")
    assert second["state"].get("probe_mutated_by_request") != marker
    assert second["state"].get("probe_started") == "yes"


def test_app_called_once_per_request(server: ServerProcess) -> None:
    # spec G1: once per request, also on one keep-alive connection
    with RawClient(server.host, server.port) as client:
        before = client.request("GET", "/count").json()["http"]
        for _ in range(3):
            assert client.request("GET", "/head").status == 200
        after = client.request("GET", "/count").json()["http"]
    assert after - before == 4


# ------------------------------------------------------------------------------------- request body H3 H4


def test_body_content_length_delivered(server: ServerProcess) -> None:
    # spec H4
    with RawClient(server.host, server.port) as client:
        response = client.request("POST", "/echo", body=b"hello body")
    assert response.body == b"hello body"


def test_body_chunked_is_dechunked(server: ServerProcess) -> None:
    # spec H3 H4: the app sees the de-chunked body
    request = (
        b"POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\n\r\n"
    )
    with RawClient(server.host, server.port) as client:
        client.send(request)
        response = client.read_response()
    assert response.status == 200
    assert response.body == b"hello world"


def test_body_large_reassembled(server: ServerProcess) -> None:
    # spec H4: the concatenation of all bodies is the request body
    payload = bytes(range(256)) * 4096  # 1 MiB
    response = httpx.post(server.base_url + "/echo", content=payload, timeout=10.0)
    assert response.status_code == 200
    assert response.content == payload


def test_body_events_well_typed(server: ServerProcess) -> None:
    # spec H4 G4: http.request with body bytes and more_body bool; last one has more_body False
    payload = b"x" * 300_000
    result = get_json_post(server, "/body-events", payload)
    events = result["events"]
    assert all(e["type"] == "http.request" for e in events)
    for e in events:
        assert e["value_types"].get("body", "bytes") == "bytes"
        assert e["value_types"].get("more_body", "bool") == "bool"
    assert events[-1]["more_body"] in (False, "<missing>")
    assert all(e["more_body"] is True for e in events[:-1])
    assert result["body"] == payload


def test_body_empty_request_single_event(server: ServerProcess) -> None:
    # spec H4: a request without a body still yields one http.request with an empty body
    events = get_json(server.base_url, "/body-events")["events"]
    assert events[0]["type"] == "http.request"
    assert sum(e["body_len"] for e in events) == 0
    assert events[-1]["more_body"] in (False, "<missing>")


def get_json_post(server: ServerProcess, path: str, payload: bytes) -> Any:
    response = httpx.post(server.base_url + path, content=payload, timeout=10.0)
    response.raise_for_status()
    return untag(response.json())


# --------------------------------------------------------------------------------------- receive() H5


def test_receive_blocks_after_body(server: ServerProcess) -> None:
    # spec H5: after the body, receive() blocks while the response is not complete
    key = new_id()
    with RawClient(server.host, server.port) as client:
        assert client.request("POST", f"/receive-after-body/{key}", body=b"abc").status == 200
    result = wait_observed(server.base_url, key)
    assert result["blocked"], f"receive() returned {result.get('message')} instead of blocking"


def test_receive_disconnect_after_response_complete(server: ServerProcess) -> None:
    # spec H5: once the response is complete, receive() returns http.disconnect
    key = new_id()
    with RawClient(server.host, server.port) as client:
        assert client.request("GET", f"/disconnect-after-response/{key}").status == 200
        result = wait_observed(server.base_url, key, timeout=6.0)
    assert result["message"] is not None, "receive() still blocked 5 s after the response completed"
    assert result["message"]["type"] == "http.disconnect"


def test_receive_disconnect_when_client_leaves(server: ServerProcess) -> None:
    # spec H5: a client that goes away wakes a pending receive() with http.disconnect, promptly
    key = new_id()
    client = RawClient(server.host, server.port)
    client.send(build_request("GET", f"/wait-disconnect/{key}"))
    wait_observed(server.base_url, key, until="waiting")
    closed_at = time.monotonic()
    client.close()
    deadline = closed_at + 3.0
    while True:
        result = wait_observed(server.base_url, key)
        if not result.get("waiting"):
            break
        assert time.monotonic() < deadline, "http.disconnect not delivered within 3 s of the client closing"
        time.sleep(0.02)
    assert result["message"] is not None
    assert result["message"]["type"] == "http.disconnect"


def test_receive_never_returns_second_request(server: ServerProcess) -> None:
    # spec H5: never another http.request after more_body=False
    key = new_id()
    with RawClient(server.host, server.port) as client:
        client.request("POST", f"/receive-after-body/{key}", body=b"abc")
    result = wait_observed(server.base_url, key)
    if not result["blocked"]:
        assert result["message"]["type"] == "http.disconnect"


# -------------------------------------------------------------------------------------- responses H6-H11


@pytest.mark.parametrize("status", [200, 201, 202, 301, 400, 404, 418, 500, 503])
def test_response_status_passed_through(server: ServerProcess, status: int) -> None:
    # spec H6
    with RawClient(server.host, server.port) as client:
        response = client.request("GET", f"/status/{status}")
    assert response.status == status
    assert response.body == f"status {status}".encode()


def test_response_headers_delivered(server: ServerProcess) -> None:
    # spec H6
    with RawClient(server.host, server.port) as client:
        response = client.request("GET", "/head")
    assert response.header("x-method") == b"GET"
    assert response.header("content-type") == b"text/plain; charset=utf-8"


def test_response_headers_any_iterable(server: ServerProcess) -> None:
    # spec H6: headers is an iterable of two-item iterables (here a tuple holding a list and a tuple)
    with RawClient(server.host, server.port) as client:
        response = client.request("GET", "/headers-iter")
    assert response.status == 200
    assert response.header("x-from-tuple") == b"yes"
    assert response.body == b"iter"


def test_response_extra_message_keys_ignored(server: ServerProcess) -> None:
    # spec G5: extra keys are ignored
    with RawClient(server.host, server.port) as client:
        response = client.request("GET", "/extra-keys")
    assert response.status == 200 and response.body == b"extra"


def test_response_multiple_body_messages_concatenated(server: ServerProcess) -> None:
    # spec H7 H8
    with RawClient(server.host, server.port) as client:
        response = client.request("GET", "/stream?n=4&size=3")
    assert response.body == b"000111222333"


def test_response_without_length_http11_framed(server: ServerProcess) -> None:
    # spec H3: without content-length an HTTP/1.1 response is chunked or close-delimited, and complete
    with RawClient(server.host, server.port) as client:
        response = client.request("GET", "/stream?n=3&size=4")
        assert response.body == b"000011112222"
        if not response.chunked and response.header("content-length") is None:
            assert client.is_closed(), "close-delimited response but connection left open"


def test_response_without_length_http10_not_chunked(server: ServerProcess) -> None:
    # spec H3: HTTP/1.0 has no chunked coding; the body is close-delimited (or has a content-length)
    with RawClient(server.host, server.port) as client:
        client.send(b"GET /stream?n=3&size=4 HTTP/1.0\r\nHost: localhost\r\n\r\n")
        response = client.read_response()
    assert response.header("transfer-encoding") is None, "chunked response sent to an HTTP/1.0 client"
    assert response.body == b"000011112222"


def test_app_transfer_encoding_header_ignored(server: ServerProcess) -> None:
    # spec H3: the server owns framing; an app-supplied transfer-encoding must not break it
    with RawClient(server.host, server.port) as client:
        response = client.request("GET", "/te-header")
        assert response.body == b"hello world"
        assert len(response.header_list("transfer-encoding")) <= 1
        # the connection is still in sync
        assert client.request("GET", "/head").body == b"hello world"


def test_app_transfer_encoding_header_not_sent_to_http10(server: ServerProcess) -> None:
    # spec H3: an app-supplied transfer-encoding must be ignored, so HTTP/1.0 clients get no chunking
    with RawClient(server.host, server.port) as client:
        client.send(b"GET /te-header HTTP/1.0\r\nHost: localhost\r\n\r\n")
        response = client.read_response()
    assert response.header("transfer-encoding") is None
    assert response.body == b"hello world"


def test_response_body_flushed_before_complete(server: ServerProcess) -> None:
    # spec H8: data is flushed before send() returns, so the client sees the first part while the app waits
    key = new_id()
    with RawClient(server.host, server.port) as client:
        client.send(build_request("GET", f"/flush/{key}"))
        head = client.read_head()
        assert head.status == 200
        deadline = time.monotonic() + 5.0
        while b"first-part;" not in client.buffer:
            assert time.monotonic() < deadline, "first body part not flushed while the response is open"
            assert client.has_response_start()
        httpx.get(f"{server.base_url}/release/{key}", timeout=5.0)
        while b"second-part" not in client.buffer:
            assert client._fill(), "connection closed before the second part"


@pytest.mark.timeout(60)
def test_response_backpressure(server: ServerProcess) -> None:
    # spec H8 G3: a client that does not read makes send() wait; nothing is buffered without bound
    key = new_id()
    total = 64 * 1024 * 1024
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    sock.connect((server.host, server.port))
    sock.settimeout(10)
    try:
        sock.sendall(build_request("GET", f"/backpressure/{key}?total={total}"))
        first = wait_observed(server.base_url, key, until="sent")
        assert not first["done"]
        # not reading: the app must stall well before handing everything over
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            progress = wait_observed(server.base_url, key)
            assert not progress["done"], "send() accepted 64 MiB for a client that reads nothing"
            time.sleep(0.1)
        stalled_at = wait_observed(server.base_url, key)["sent"]
        assert stalled_at < total // 2
        data = bytearray()
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            assert chunk, "connection closed before the response head"
            data += chunk
        received = len(data) - (data.index(b"\r\n\r\n") + 4)
        while received < total:
            chunk = sock.recv(1 << 20)
            if not chunk:
                break
            received += len(chunk)
        assert received == total
        assert wait_observed(server.base_url, key, until="done")["done"]
    finally:
        sock.close()


def test_send_after_complete_does_not_corrupt(server: ServerProcess) -> None:
    # spec H9: messages after more_body=False must not corrupt the connection
    key = new_id()
    with RawClient(server.host, server.port) as client:
        response = client.request("GET", f"/after-complete/{key}")
        assert response.body == b"complete"
        wait_observed(server.base_url, key)
        if not client.is_closed(timeout=0.2):
            second = client.request("GET", "/head")
            assert second.status == 200 and second.body == b"hello world"
            assert b"GARBAGE" not in second.raw_head


def test_multiple_set_cookie_preserved(server: ServerProcess) -> None:
    # spec H11
    with RawClient(server.host, server.port) as client:
        response = client.request("GET", "/cookies")
    assert response.header_list("set-cookie") == [b"a=1; Path=/", b"b=2; HttpOnly"]


def test_trailers_extension(server: ServerProcess) -> None:
    # spec H10: trailers sent when advertised and the client sent TE: trailers (a server may
    # advertise the extension only to such clients, so the probe app decides per request)
    with RawClient(server.host, server.port) as client:
        response = client.request("GET", "/trailers", headers={"TE": "trailers"})
    if response.status == 501:
        pytest.skip("server does not advertise http.response.trailers")
    assert response.status == 200
    assert response.body == b"with trailers"
    assert ("x-trailer", b"yes") in response.trailers


# ----------------------------------------------------------------------------------------- errors G5-G7


@pytest.mark.parametrize(
    "kind",
    [
        "unknown-type",
        "missing-status",
        "status-str",
        "header-str",
        "body-before-start",
        "body-str",
        "start-twice",
    ],
)
def test_malformed_send_raises(server: ServerProcess, kind: str) -> None:
    # spec G5: a malformed message makes send() raise
    key = new_id()
    with RawClient(server.host, server.port) as client:
        client.send(build_request("GET", f"/malformed/{kind}/{key}", {"Connection": "close"}))
        try:
            client.read_response()
        except AssertionError:
            pass  # the server may abort the connection
    result = wait_observed(server.base_url, key)
    assert result["raised"], f"send() accepted the malformed message ({kind}) silently"
    assert result["message"].strip(), f"{result['exc_type']} raised without a message"


def test_app_exception_before_start_gives_500(server: ServerProcess) -> None:
    # spec G6: the server terminates the request (500) and logs the exception
    token = new_id()
    with RawClient(server.host, server.port) as client:
        response = client.request("GET", f"/error-before/{token}")
    assert response.status == 500
    assert server.wait_for_output(token), "the app's exception was not logged"


def test_app_exception_server_keeps_serving(server: ServerProcess) -> None:
    # spec G6: the server itself keeps serving after app errors
    for _ in range(3):
        with RawClient(server.host, server.port) as client:
            client.request("GET", f"/error-before/{new_id()}")
    with RawClient(server.host, server.port) as client:
        assert client.request("GET", "/head").status == 200


def test_app_exception_after_start_closes_connection(server: ServerProcess) -> None:
    # spec G6: after the start was sent the server can only abort: truncated body, closed connection
    with RawClient(server.host, server.port) as client:
        client.send(build_request("GET", f"/error-after/{new_id()}"))
        head = client.read_head()
        assert head.status == 200
        body = client.read_partial_body(100)
        assert len(body) < 100, "a complete body was delivered although the app crashed mid-response"
        assert client.is_closed()


def test_client_gone_errors_not_logged_as_app_errors(server: ServerProcess) -> None:
    # spec G7: the error send() raises for a vanished client, when it propagates, is not an app error log
    key = new_id()
    before = len(server.output())
    client = RawClient(server.host, server.port)
    client.send(build_request("GET", f"/stream-until-disconnect/{key}?reraise=1"))
    client.read_head()
    client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    client.close()
    result = wait_observed(server.base_url, key, timeout=10.0, until="final")
    assert "streaming" not in result
    # fence: an app error with a known token is logged after anything the previous request caused
    fence = new_id()
    with RawClient(server.host, server.port) as c:
        c.request("GET", f"/fence/{fence}")
    assert server.wait_for_output(fence)
    window = server.output()[before:]
    window = window[: window.index(fence)]
    if result.get("raised"):
        assert result["exc_type"] not in window or "Traceback" not in window, (
            f"the client-gone {result['exc_type']} was logged as an application error:\n{window[-2000:]}"
        )
    assert "Traceback" not in window, f"unexpected traceback logged:\n{window[-2000:]}"


def test_send_after_disconnect_raises_oserror(server: ServerProcess, spec_version: tuple[int, ...]) -> None:
    # spec H12 (2.4): send() after the client disconnected raises an OSError subclass
    if spec_version < (2, 4):
        pytest.skip(f"server advertises spec_version {'.'.join(map(str, spec_version))} < 2.4")
    key = new_id()
    client = RawClient(server.host, server.port)
    client.send(build_request("GET", f"/stream-until-disconnect/{key}"))
    client.read_head()
    client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    client.close()
    result = wait_observed(server.base_url, key, timeout=10.0, until="final")
    assert result["raised"], f"{result['sends_after_disconnect']} sends after the disconnect did not raise"
    assert result["is_oserror"], f"raised {result['exc_type']} ({result['exc_mro']}), not an OSError"


def test_asgi2_app_served(launch: Callable[..., ServerProcess]) -> None:
    # spec G2: legacy double-callable apps should still be served
    server = launch("asgi_tests.apps.probe:Asgi2App").wait_ready()
    with RawClient(server.host, server.port) as client:
        response = client.request("GET", "/legacy")
    assert response.status == 200
    assert response.body == b"asgi2 /legacy"


# ------------------------------------------------------------------------------------------ extensions


def test_pathsend_extension(server: ServerProcess, extensions: dict[Any, Any]) -> None:
    # optional extension http.response.pathsend: the server streams the named file
    if "http.response.pathsend" not in extensions:
        pytest.skip("server does not advertise http.response.pathsend")
    import asgi_tests.apps.probe as probe_module

    with open(probe_module.__file__, "rb") as f:
        expected = f.read()
    with RawClient(server.host, server.port) as client:
        response = client.request("GET", "/pathsend")
    assert response.status == 200
    assert response.body == expected


def test_zerocopysend_extension(server: ServerProcess, extensions: dict[Any, Any]) -> None:
    # optional extension http.response.zerocopysend: offset and count respected
    if "http.response.zerocopysend" not in extensions:
        pytest.skip("server does not advertise http.response.zerocopysend")
    import asgi_tests.apps.probe as probe_module

    with open(probe_module.__file__, "rb") as f:
        expected = f.read()[10:30]
    with RawClient(server.host, server.port) as client:
        response = client.request("GET", "/zerocopysend")
    assert response.body == expected


def test_early_hint_extension(server: ServerProcess, extensions: dict[Any, Any]) -> None:
    # optional extension http.response.early_hint: a 103 with the links precedes the response
    if "http.response.early_hint" not in extensions:
        pytest.skip("server does not advertise http.response.early_hint")
    with RawClient(server.host, server.port) as client:
        client.send(build_request("GET", "/early-hint"))
        hint = client.read_response(skip_informational=False)
        assert hint.status == 103
        assert b"</style.css>" in b",".join(hint.header_list("link"))
        final = client.read_response()
    assert final.status == 200 and final.body == b"after hints"


def test_debug_extension_not_advertised(scope_of: ScopeOf) -> None:
    # optional extensions: http.response.debug is for test clients only, servers do not advertise it
    assert "http.response.debug" not in (scope_of().get("extensions") or {})
