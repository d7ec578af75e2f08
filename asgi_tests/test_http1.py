"""RFC 9112 (HTTP/1.1 message syntax) behaviour, checked on raw sockets.

Malformed requests must be answered with a 4xx and a closed connection, never mis-parsed. Where the RFC
explicitly allows a server to repair the message instead (obs-fold, bare LF, bare CR or NUL replaced by
SP, CL+TE handled by Transfer-Encoding alone), the test accepts the repair but checks it was done right.
"""

from __future__ import annotations

import email.utils
import time
import uuid
from collections.abc import Callable

import httpx
import pytest

from asgi_tests.client import ProtocolError, RawClient, Response, build_request
from asgi_tests.harness import ServerProcess

pytestmark = pytest.mark.http1

SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: localhost\r\n\r\n"


def new_id() -> str:
    return uuid.uuid4().hex[:12]


def send_and_read(server: ServerProcess, data: bytes) -> tuple[Response | None, RawClient, str]:
    """Send ``data`` (tolerating an early close) and read one response, or None if the server just closed."""
    client = RawClient(server.host, server.port)
    try:
        for i in range(0, len(data), 65536):
            client.send(data[i : i + 65536])
    except (BrokenPipeError, ConnectionResetError):
        pass
    try:
        return client.read_response(), client, ""
    except (ProtocolError, ConnectionResetError, TimeoutError) as exc:
        return None, client, str(exc)


def assert_rejected(
    server: ServerProcess, data: bytes, allowed: Callable[[int], bool] | None = None
) -> Response:
    """The request is answered with a 4xx (or another allowed status) and the connection is closed."""
    ok = allowed or (lambda s: 400 <= s < 500)
    response, client, error = send_and_read(server, data)
    with client:
        assert response is not None, f"connection closed without an error response ({error})"
        assert ok(response.status), (
            f"malformed request answered with {response.status}: {response.body[:200]!r}"
        )
        assert client.is_closed(), "connection left open after rejecting a malformed request"
    return response


def assert_not_misparsed_body(server: ServerProcess, data: bytes) -> None:
    """Invalid chunked framing: no success response, and the connection is closed."""
    response, client, error = send_and_read(server, data)
    with client:
        if response is not None:
            assert not 200 <= response.status < 300, (
                f"invalid body accepted: {response.status} {response.body!r}"
            )
            assert response.status >= 400
        assert client.is_closed(), "connection left open after invalid chunked framing"


# ---------------------------------------------------------------------------------------- connection


def test_keep_alive_default_http11(server: ServerProcess) -> None:
    with RawClient(server.host, server.port) as client:
        first = client.request("GET", "/head")
        assert first.status == 200
        assert first.header("connection") != b"close"
        assert not client.is_closed(timeout=0.3), "HTTP/1.1 connection closed without Connection: close"
        assert client.request("GET", "/head").status == 200


def test_keep_alive_many_requests(server: ServerProcess) -> None:
    with RawClient(server.host, server.port) as client:
        for i in range(20):
            response = client.request("POST", "/echo", body=f"request {i}".encode())
            assert response.body == f"request {i}".encode()


def test_connection_close_from_client(server: ServerProcess) -> None:
    with RawClient(server.host, server.port) as client:
        response = client.request("GET", "/head", headers={"Connection": "close"})
        assert response.status == 200
        assert client.is_closed(), "server kept the connection after Connection: close"


def test_connection_close_from_app(server: ServerProcess) -> None:
    with RawClient(server.host, server.port) as client:
        response = client.request("GET", "/conn-close")
        assert response.body == b"closing"
        assert client.is_closed(), "server ignored the app's Connection: close"


def test_http10_closes_after_response(server: ServerProcess) -> None:
    with RawClient(server.host, server.port) as client:
        client.send(b"GET /head HTTP/1.0\r\nHost: localhost\r\n\r\n")
        response = client.read_response()
        assert response.status == 200 and response.body == b"hello world"
        assert client.is_closed(), "HTTP/1.0 connection without keep-alive left open"


def test_http10_without_host_accepted(server: ServerProcess) -> None:
    # Host is only mandatory in HTTP/1.1
    with RawClient(server.host, server.port) as client:
        client.send(b"GET /head HTTP/1.0\r\n\r\n")
        assert client.read_response().status == 200


def test_pipelined_requests_answered_in_order(server: ServerProcess) -> None:
    data = b"".join(build_request("POST", "/echo", body=f"pipelined-{i}".encode()) for i in range(5))
    with RawClient(server.host, server.port) as client:
        client.send(data)
        bodies = [client.read_response().body for _ in range(5)]
    assert bodies == [f"pipelined-{i}".encode() for i in range(5)]


def test_pipelined_mixed_framing(server: ServerProcess) -> None:
    data = (
        build_request("POST", "/echo", body=b"by-length")
        + b"POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"8\r\nby-chunk\r\n0\r\n\r\n"
        + build_request("GET", "/head")
    )
    with RawClient(server.host, server.port) as client:
        client.send(data)
        assert client.read_response().body == b"by-length"
        assert client.read_response().body == b"by-chunk"
        assert client.read_response().body == b"hello world"


def test_pipelined_response_order_with_slow_first(server: ServerProcess) -> None:
    key = new_id()
    with RawClient(server.host, server.port) as client:
        client.send(build_request("GET", f"/flush/{key}") + build_request("GET", "/head"))
        head = client.read_head()
        assert head.status == 200
        httpx.get(f"{server.base_url}/release/{key}", timeout=5.0)
        # finish reading the first (chunked or close-delimited) response, then the second
        client.buffer[:0] = head.raw_head
        first = client.read_response()
        assert first.body == b"first-part;second-part"
        second = client.read_response()
        assert second.body == b"hello world"


def test_pipelined_request_after_connection_close_not_served(server: ServerProcess) -> None:
    data = build_request("GET", "/head", {"Connection": "close"}) + SMUGGLED
    with RawClient(server.host, server.port) as client:
        client.send(data)
        assert client.read_response().status == 200
        assert client.is_closed()
        assert b"smuggled" not in bytes(client.buffer)


def test_unread_body_does_not_become_a_request(server: ServerProcess) -> None:
    # the app answers without reading the body; the body must be discarded (or the connection closed)
    data = build_request("POST", "/continue?read=0", body=SMUGGLED) + build_request("GET", "/head")
    with RawClient(server.host, server.port) as client:
        client.send(data)
        assert client.read_response().body == b"did not read"
        if not client.is_closed(timeout=1.0):
            response = client.read_response()
            assert response.body == b"hello world", f"request body parsed as a request: {response!r}"


def test_unread_chunked_body_does_not_become_a_request(server: ServerProcess) -> None:
    chunk = b"%x\r\n" % len(SMUGGLED) + SMUGGLED + b"\r\n0\r\n\r\n"
    data = (
        b"POST /continue?read=0 HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
        + chunk
        + build_request("GET", "/head")
    )
    with RawClient(server.host, server.port) as client:
        client.send(data)
        assert client.read_response().body == b"did not read"
        if not client.is_closed(timeout=1.0):
            response = client.read_response()
            assert response.body == b"hello world", f"request body parsed as a request: {response!r}"


def test_leading_empty_line_ignored(server: ServerProcess) -> None:
    # RFC 9112 2.2: a server SHOULD ignore at least one empty line before the request-line
    with RawClient(server.host, server.port) as client:
        client.send(b"\r\n" + build_request("GET", "/head"))
        assert client.read_response().body == b"hello world"


def test_absolute_form_target_accepted(server: ServerProcess) -> None:
    # RFC 9112 3.2.2: a server MUST accept the absolute-form in requests
    with RawClient(server.host, server.port) as client:
        client.send(b"GET http://localhost/scope/abs?x=1 HTTP/1.1\r\nHost: localhost\r\n\r\n")
        response = client.read_response()
    assert response.status == 200
    scope = response.json()["scope"]
    assert scope["path"] == "/scope/abs"
    assert scope["query_string"] == b"x=1"


# -------------------------------------------------------------------------------------- request bodies


def test_chunked_request_with_extensions(server: ServerProcess) -> None:
    data = (
        b"POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;name=value\r\nhello\r\n6;flag\r\n world\r\n0\r\n\r\n"
    )
    with RawClient(server.host, server.port) as client:
        client.send(data)
        assert client.read_response().body == b"hello world"


def test_chunked_request_with_trailers(server: ServerProcess) -> None:
    data = (
        b"POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"4\r\ndata\r\n0\r\nX-Trailer: t\r\n\r\n"
    )
    with RawClient(server.host, server.port) as client:
        client.send(data + build_request("GET", "/head"))
        assert client.read_response().body == b"data"
        assert client.read_response().body == b"hello world"


def test_chunked_request_uppercase_hex(server: ServerProcess) -> None:
    data = (
        b"POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"A\r\n0123456789\r\n0\r\n\r\n"
    )
    with RawClient(server.host, server.port) as client:
        client.send(data)
        assert client.read_response().body == b"0123456789"


def test_chunked_request_sent_slowly(server: ServerProcess) -> None:
    with RawClient(server.host, server.port) as client:
        client.send(b"POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n")
        for piece in (b"3\r\nabc\r\n", b"3\r\n", b"def", b"\r\n", b"0\r\n", b"\r\n"):
            client.send(piece)
        assert client.read_response().body == b"abcdef"


def test_transfer_encoding_case_insensitive(server: ServerProcess) -> None:
    data = (
        b"POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: Chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    )
    with RawClient(server.host, server.port) as client:
        client.send(data)
        assert client.read_response().body == b"abc"


def test_body_on_get_delivered(server: ServerProcess) -> None:
    with RawClient(server.host, server.port) as client:
        assert client.request("GET", "/echo", body=b"get body").body == b"get body"


def test_content_length_zero(server: ServerProcess) -> None:
    with RawClient(server.host, server.port) as client:
        response = client.request("POST", "/echo", headers={"Content-Length": "0"})
        assert response.status == 200 and response.body == b""


def test_expect_100_continue(server: ServerProcess) -> None:
    with RawClient(server.host, server.port) as client:
        client.send(
            b"POST /continue HTTP/1.1\r\nHost: localhost\r\nContent-Length: 7\r\nExpect: 100-continue\r\n\r\n"
        )
        interim = client.read_response(skip_informational=False)
        assert interim.status == 100, f"expected 100 Continue before the body, got {interim.status}"
        client.send(b"payload")
        final = client.read_response()
        assert final.status == 200 and final.body == b"read:payload"


# ----------------------------------------------------------------------------------- response framing


def test_chunked_response_framing(server: ServerProcess) -> None:
    with RawClient(server.host, server.port) as client:
        response = client.request("GET", "/stream?n=3&size=7")
        assert response.body == b"000000011111112222222"
        if response.chunked:
            assert response.chunk_sizes[-1] == 0
            assert response.header("content-length") is None
        assert client.request("GET", "/head").status == 200


def test_content_length_response_not_chunked(server: ServerProcess) -> None:
    with RawClient(server.host, server.port) as client:
        response = client.request("GET", "/head")
    assert response.header("content-length") == b"11"
    assert response.header("transfer-encoding") is None
    assert response.body == b"hello world"


def test_large_response_intact(server: ServerProcess) -> None:
    size = 5 * 1024 * 1024 + 17
    with RawClient(server.host, server.port, timeout=20) as client:
        response = client.request("GET", f"/big?size={size}")
    assert len(response.body) == size
    assert response.body[:65536] == b"A" * 65536
    assert response.body[-17:] == bytes([65 + (size // 65536) % 26]) * 17


def test_head_has_no_body(server: ServerProcess) -> None:
    with RawClient(server.host, server.port) as client:
        response = client.request("HEAD", "/head")
        assert response.status == 200
        assert response.header("content-length") == b"11"
        # the next response must start right away: no body bytes left on the wire
        second = client.request("GET", "/head")
        assert second.status == 200 and second.body == b"hello world"


def test_head_streaming_response_has_no_body(server: ServerProcess) -> None:
    with RawClient(server.host, server.port) as client:
        response = client.request("HEAD", "/stream?n=3&size=4")
        assert response.status == 200
        if not client.is_closed(timeout=0.3):
            assert client.request("GET", "/head").body == b"hello world"
        else:
            assert client.buffer == b"", f"body bytes after a HEAD response: {bytes(client.buffer)!r}"


def test_204_has_no_body_or_length(server: ServerProcess) -> None:
    # RFC 9110 8.6: no Content-Length in a 204; RFC 9112 6.3: no body
    with RawClient(server.host, server.port) as client:
        response = client.request("GET", "/status/204")
        assert response.status == 204
        assert response.header("content-length") in (None,)
        assert response.header("transfer-encoding") is None
        assert client.request("GET", "/head").body == b"hello world"


def test_304_has_no_body(server: ServerProcess) -> None:
    with RawClient(server.host, server.port) as client:
        response = client.request("GET", "/status/304")
        assert response.status == 304
        assert response.header("transfer-encoding") is None
        assert client.request("GET", "/head").body == b"hello world"


def test_status_line_format(server: ServerProcess) -> None:
    with RawClient(server.host, server.port) as client:
        response = client.request("GET", "/status/404")
    assert response.raw_head.startswith(b"HTTP/1.1 404")


def test_date_header_present_and_valid(server: ServerProcess) -> None:
    # RFC 9110 6.6.1: an origin server with a clock MUST send Date, in IMF-fixdate
    with RawClient(server.host, server.port) as client:
        response = client.request("GET", "/head")
    values = response.header_list("date")
    assert len(values) == 1, f"date headers: {values!r}"
    parsed = email.utils.parsedate_to_datetime(values[0].decode())
    assert values[0].endswith(b" GMT")
    assert abs(parsed.timestamp() - time.time()) < 5


def test_app_server_header_replaces_default(server: ServerProcess) -> None:
    # RFC 9110 5.3: Server is a singleton field; the app's value must not be duplicated by a default one
    with RawClient(server.host, server.port) as client:
        response = client.request("GET", "/server-header")
    assert response.header_list("server") == [b"probe-app"]


def test_app_date_header_replaces_default(server: ServerProcess) -> None:
    # RFC 9110 5.3: Date is a singleton field
    with RawClient(server.host, server.port) as client:
        response = client.request("GET", "/server-header")
    assert response.header_list("date") == [b"Thu, 01 Jan 1970 00:00:00 GMT"]


def test_keep_alive_after_error_status(server: ServerProcess) -> None:
    with RawClient(server.host, server.port) as client:
        assert client.request("GET", "/status/404").status == 404
        assert client.request("GET", "/head").status == 200


# ------------------------------------------------------------------------------------ malformed requests

POST = b"POST /echo HTTP/1.1\r\nHost: localhost\r\n"

REJECTED: dict[str, bytes] = {
    "conflicting-content-lengths": POST + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    "content-length-list-differs": POST + b"Content-Length: 5, 6\r\n\r\nhello!",
    "content-length-not-a-number": POST + b"Content-Length: abc\r\n\r\nhello",
    "content-length-negative": POST + b"Content-Length: -1\r\n\r\nhello",
    "content-length-plus-sign": POST + b"Content-Length: +5\r\n\r\nhello",
    "content-length-hex": POST + b"Content-Length: 0x5\r\n\r\nhello",
    "content-length-overflow": POST + b"Content-Length: 184467440737095516160\r\n\r\nhello",
    "whitespace-before-colon": POST + b"Content-Length : 5\r\n\r\nhello",
    "header-without-colon": b"GET /head HTTP/1.1\r\nHost: localhost\r\nX-No-Colon\r\n\r\n",
    "empty-header-name": b"GET /head HTTP/1.1\r\nHost: localhost\r\n: value\r\n\r\n",
    "header-name-invalid-char": b"GET /head HTTP/1.1\r\nHost: localhost\r\nX(Bad): 1\r\n\r\n",
    "control-byte-in-header-name": b"GET /head HTTP/1.1\r\nHost: localhost\r\nX-\x01Bad: 1\r\n\r\n",
    "space-in-target": b"GET /a b HTTP/1.1\r\nHost: localhost\r\n\r\n",
    "nul-in-target": b"GET /a\x00b HTTP/1.1\r\nHost: localhost\r\n\r\n",
    "missing-http-version": b"GET /head\r\nHost: localhost\r\n\r\n",
    "malformed-http-version": b"GET /head HTTP/1.x\r\nHost: localhost\r\n\r\n",
    "lowercase-http-version": b"GET /head http/1.1\r\nHost: localhost\r\n\r\n",
    "missing-host": b"GET /head HTTP/1.1\r\n\r\n",
    "duplicate-host": b"GET /head HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n",
    "transfer-encoding-chunked-not-last": POST + b""
    b"Transfer-Encoding: chunked, identity\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
}

# statuses the RFC allows besides a 4xx for some of these
ALLOW_501 = {"transfer-encoding-chunked-not-last"}
ALLOW_505 = {"malformed-http-version", "lowercase-http-version"}


@pytest.mark.parametrize("case", sorted(REJECTED))
def test_malformed_request_rejected(server: ServerProcess, case: str) -> None:
    data = REJECTED[case] + SMUGGLED
    extra = {501} if case in ALLOW_501 else {505} if case in ALLOW_505 else set()
    response = assert_rejected(server, data, lambda s: 400 <= s < 500 or s in extra)
    assert b"smuggled" not in response.body


@pytest.mark.parametrize(
    "coding",
    [b"gzip", b"xchunked", b"chunked-false"],
)
def test_unknown_transfer_coding_rejected(server: ServerProcess, coding: bytes) -> None:
    # RFC 9112 6.1: unknown coding -> 501; chunked not final -> 400; either way the framing is unknown
    data = (
        b"POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: "
        + coding
        + b"\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
    )
    assert_rejected(server, data, lambda s: 400 <= s < 500 or s == 501)


def test_invalid_method_token_rejected(server: ServerProcess) -> None:
    assert_rejected(
        server, b"G(T /head HTTP/1.1\r\nHost: localhost\r\n\r\n", lambda s: 400 <= s < 500 or s == 501
    )


def test_http_version_2_over_http1_rejected(server: ServerProcess) -> None:
    assert_rejected(
        server, b"GET /head HTTP/2.0\r\nHost: localhost\r\n\r\n", lambda s: 400 <= s < 500 or s == 505
    )


def test_content_length_and_transfer_encoding_not_smuggled(server: ServerProcess) -> None:
    # RFC 9112 6.1: reject, or frame by Transfer-Encoding alone and close the connection afterwards
    data = (
        b"POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n0\r\n\r\n" + SMUGGLED
    )
    response, client, error = send_and_read(server, data)
    with client:
        assert response is not None, f"no response ({error})"
        if 200 <= response.status < 300:
            assert response.body == b"hello", f"body framed by Content-Length: {response.body!r}"
        else:
            assert 400 <= response.status < 500
        assert client.is_closed(), "connection kept open after a request with both CL and TE"
        assert b"smuggled" not in bytes(client.buffer)


def test_duplicate_identical_content_length(server: ServerProcess) -> None:
    # RFC 9112 6.3: identical repeated values may be treated as one, or the message rejected
    data = b"POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello"
    response, client, error = send_and_read(server, data)
    with client:
        assert response is not None, f"no response ({error})"
        if 200 <= response.status < 300:
            assert response.body == b"hello"
        else:
            assert 400 <= response.status < 500
            assert client.is_closed()


def scope_headers_or_rejected(server: ServerProcess, data: bytes) -> list[tuple[bytes, bytes]] | None:
    """None when the server rejected the request properly (4xx + close); else the headers the app saw."""
    response, client, error = send_and_read(server, data)
    with client:
        assert response is not None, f"no response ({error})"
        if 400 <= response.status < 500:
            assert client.is_closed(), "connection left open after rejecting a malformed request"
            return None
        assert response.status == 200, response
        return [tuple(h) for h in response.json()["scope"]["headers"]]  # type: ignore[misc]


def test_obs_fold_rejected_or_unfolded(server: ServerProcess) -> None:
    # RFC 9112 5.2: reject with 400, or replace each obs-fold with SP
    headers = scope_headers_or_rejected(
        server, b"GET /scope HTTP/1.1\r\nHost: localhost\r\nX-Folded: first\r\n  second\r\nX-After: 1\r\n\r\n"
    )
    if headers is not None:
        values = [v for k, v in headers if k == b"x-folded"]
        assert len(values) == 1
        assert values[0].split() == [b"first", b"second"], f"obs-fold mis-parsed: {values[0]!r}"
        assert all(not k.startswith(b" ") for k, _ in headers)


def test_bare_lf_rejected_or_parsed(server: ServerProcess) -> None:
    # RFC 9112 2.2: a recipient MAY accept a bare LF as line terminator; otherwise reject
    headers = scope_headers_or_rejected(server, b"GET /scope HTTP/1.1\nHost: localhost\nX-Lf: yes\n\n")
    if headers is not None:
        assert (b"x-lf", b"yes") in headers


def test_bare_cr_in_header_value_rejected_or_replaced(server: ServerProcess) -> None:
    # RFC 9110 5.5: CR in a field value -> reject, or replace it with SP
    headers = scope_headers_or_rejected(
        server, b"GET /scope HTTP/1.1\r\nHost: localhost\r\nX-Cr: a\rb\r\n\r\n"
    )
    if headers is not None:
        values = [v for k, v in headers if k == b"x-cr"]
        assert values in ([b"a b"], []), f"bare CR passed to the app: {values!r}"


def test_nul_in_header_value_rejected_or_replaced(server: ServerProcess) -> None:
    # RFC 9110 5.5: NUL in a field value -> reject, or replace it with SP
    headers = scope_headers_or_rejected(
        server, b"GET /scope HTTP/1.1\r\nHost: localhost\r\nX-Nul: a\x00b\r\n\r\n"
    )
    if headers is not None:
        values = [v for k, v in headers if k == b"x-nul"]
        assert b"\x00" not in b"".join(values), f"NUL passed to the app: {values!r}"


@pytest.mark.timeout(60)
def test_oversized_request_line_rejected(server: ServerProcess) -> None:
    # RFC 9112 3: a request-target longer than the server wishes to parse -> 414 (or 400/431)
    target = b"/head?" + b"a" * (1024 * 1024)
    assert_rejected(server, b"GET " + target + b" HTTP/1.1\r\nHost: localhost\r\n\r\n")


@pytest.mark.timeout(60)
def test_oversized_header_rejected(server: ServerProcess) -> None:
    # RFC 6585 5: 431 (or 400) for a header section larger than the server accepts
    data = b"GET /head HTTP/1.1\r\nHost: localhost\r\nX-Big: " + b"b" * (1024 * 1024) + b"\r\n\r\n"
    assert_rejected(server, data)


@pytest.mark.timeout(60)
def test_too_many_headers_rejected(server: ServerProcess) -> None:
    lines = b"".join(b"X-H%d: v\r\n" % i for i in range(100_000))
    assert_rejected(server, b"GET /head HTTP/1.1\r\nHost: localhost\r\n" + lines + b"\r\n")


CHUNKED_HEAD = b"POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n"

BAD_CHUNKS: dict[str, bytes] = {
    "non-hex-size": b"zz\r\nhello\r\n0\r\n\r\n",
    "negative-size": b"-5\r\nhello\r\n0\r\n\r\n",
    "size-overflow": b"fffffffffffffffffffff\r\nhello\r\n0\r\n\r\n",
    "data-longer-than-size": b"3\r\nhello\r\n0\r\n\r\n",
    "missing-crlf-after-data": b"5\r\nhelloXX0\r\n\r\n",
    "size-with-0x-prefix": b"0x5\r\nhello\r\n0\r\n\r\n",
}


@pytest.mark.parametrize("case", sorted(BAD_CHUNKS))
def test_bad_chunked_body_not_accepted(server: ServerProcess, case: str) -> None:
    assert_not_misparsed_body(server, CHUNKED_HEAD + BAD_CHUNKS[case] + SMUGGLED)


def test_tls_handshake_on_plain_port(server: ServerProcess) -> None:
    # a TLS ClientHello is not HTTP: 400 or a plain close, nothing else
    hello = bytes.fromhex("16030100a5010000a10303") + b"\x00" * 32 + b"\x00\x00\x02\x13\x01\x01\x00"
    response, client, error = send_and_read(server, hello)
    with client:
        if response is not None:
            assert 400 <= response.status < 500
        assert client.is_closed()


# ------------------------------------------------------------------------------------ HEAD and lengths


@pytest.mark.parametrize("mode", ["empty", "full", "stream"])
def test_head_keeps_declared_length_without_body(server: ServerProcess, mode: str) -> None:
    # RFC 9110 9.3.2 / 8.6: a HEAD response may carry the Content-Length a GET would have, and no
    # body. Starlette's FileResponse/StaticFiles declare the length and send an empty body for HEAD.
    with RawClient(server.host, server.port) as client:
        response = client.request("HEAD", f"/head-length/{mode}")
        assert response.status == 200, response
        assert response.header_list("content-length") == [b"11"]
        assert response.header("transfer-encoding") is None
        # no body bytes: the next response on the connection starts right away
        following = client.request("GET", f"/head-length/{mode}")
        assert (following.status, following.body) == (200, b"hello world")


@pytest.mark.parametrize("status", [204, 304])
def test_bodyless_status_with_declared_length(server: ServerProcess, status: int) -> None:
    # RFC 9110 15.3.5 / 15.4.5: 204 and 304 never have a body, whatever the app sends
    with RawClient(server.host, server.port) as client:
        response = client.request("GET", f"/head-length/full/{status}")
        assert response.status == status
        assert client.request("GET", "/head").body == b"hello world", "body bytes leaked into the stream"


# ------------------------------------------------------------------------------------ HTTP/1.0 keep-alive


def test_http10_keep_alive_honoured(server: ServerProcess) -> None:
    # RFC 9112 9.3 / RFC 2068 19.7.1: an HTTP/1.0 client asks with `Connection: keep-alive`; a server
    # that keeps the connection says so, once, and the response has a length (ApacheBench -k relies on it).
    request = b"GET /head HTTP/1.0\r\nHost: localhost\r\nConnection: keep-alive\r\n\r\n"
    with RawClient(server.host, server.port) as client:
        for _ in range(3):
            client.send(request)
            response = client.read_response()
            assert (response.status, response.body) == (200, b"hello world")
            tokens = b",".join(response.header_list("connection")).replace(b" ", b"").lower().split(b",")
            assert tokens in ([b"keep-alive"], [b"close"]), f"contradicting connection options {tokens}"
            if tokens == [b"close"]:
                assert client.is_closed()
                return
            assert not client.is_closed(timeout=0.2), "announced keep-alive, then closed"


def test_http10_keep_alive_without_length_closes(server: ServerProcess) -> None:
    # A streamed HTTP/1.0 response has no chunked framing: its end is the close, so keep-alive is off.
    request = b"GET /stream?n=3&size=4 HTTP/1.0\r\nHost: localhost\r\nConnection: keep-alive\r\n\r\n"
    with RawClient(server.host, server.port) as client:
        client.send(request)
        response = client.read_response()
        assert response.status == 200
        if response.header("content-length") is None:
            assert response.body == b"000011112222"
            assert b"keep-alive" not in b",".join(response.header_list("connection")).lower()
        assert client.is_closed() or response.header("content-length") is not None


# ------------------------------------------------------------------------------------ unread request bodies


def test_unread_large_body_announces_close(server: ServerProcess) -> None:
    # RFC 9112 9.6: a server that closes after the response (the rest of a 4 MiB body is not worth
    # reading) should say so with `Connection: close`.
    with RawClient(server.host, server.port) as client:
        client.send(
            build_request("POST", "/ignore-body", {"Content-Length": str(4 * 1024 * 1024)}) + b"x" * 1000
        )
        response = client.read_response()
        assert (response.status, response.body) == (200, b"ignored")
        if client.is_closed(timeout=1.0):
            assert response.header("connection") == b"close", "closed after the response without saying so"


def test_unread_small_body_keeps_connection(server: ServerProcess) -> None:
    with RawClient(server.host, server.port) as client:
        response = client.request("POST", "/ignore-body", body=b"x" * 20_000)
        assert (response.status, response.body) == (200, b"ignored")
        if response.header("connection") != b"close":
            assert client.request("GET", "/head").body == b"hello world"
