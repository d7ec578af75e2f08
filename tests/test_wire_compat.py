"""HTTP/1.x wire behaviour of a real turboasgi process, as uvicorn (httptools) shows it on the wire:
keep-alive, ``Connection: close``, HTTP/1.0, pipelining, chunked bodies, bodiless responses,
``Expect: 100-continue``, invalid requests, ``set-cookie`` and the ``date`` header."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from email.utils import parsedate_to_datetime

import httpx
import pytest
from server_process import RawClient, ServerProcess, poll, request_bytes, running

pytestmark = pytest.mark.timeout(30)

PROBE = "tests.apps.probe:app"
INVALID_BODY = b"Invalid HTTP request received."


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with running(PROBE) as proc:
        yield proc


def get(path: str) -> bytes:
    return request_bytes("GET", path)


def events(server: ServerProcess, key: str) -> list[str]:
    result: list[str] = httpx.get(server.url + "/events", params={"id": key}, timeout=5.0).json()
    return result


# ------------------------------------------------------------------------------ connection management


def test_keep_alive_by_default(server: ServerProcess) -> None:
    with RawClient(server.address) as raw:
        for _ in range(3):
            raw.send(get("/"))
            response = raw.read_response()
            assert (response.status, response.body) == (200, b"ok")
            assert (response.header("connection") or "").lower() != "close"
        assert raw.nothing_received(0.2), "an idle keep-alive connection stays open"


def test_client_connection_close(server: ServerProcess) -> None:
    with RawClient(server.address) as raw:
        raw.send(request_bytes("GET", "/", [("Connection", "close")]))
        response = raw.read_response()
        assert response.body == b"ok"
        assert response.header("connection") == "close"
        assert raw.closed_by_peer()


def test_app_connection_close(server: ServerProcess) -> None:
    with RawClient(server.address) as raw:
        raw.send(get("/close"))
        response = raw.read_response()
        assert response.body == b"closing"
        assert response.all("connection") == ["close"]
        assert raw.closed_by_peer(), "the server honours the app's Connection: close"


def test_http10_closes_after_response(server: ServerProcess) -> None:
    with RawClient(server.address) as raw:
        raw.send(request_bytes("GET", "/", version="HTTP/1.0"))
        response = raw.read_response()
        assert (response.status, response.body) == (200, b"ok")
        assert raw.closed_by_peer()


def test_http10_is_never_chunked(server: ServerProcess) -> None:
    with RawClient(server.address) as raw:
        raw.send(request_bytes("GET", "/chunked", version="HTTP/1.0"))
        data = raw.read_all()
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.split(b" ")[1] == b"200", data
    assert b"transfer-encoding" not in head.lower(), data
    assert body == b"hello world"  # close-delimited


def test_http10_scope(server: ServerProcess) -> None:
    with RawClient(server.address) as raw:
        raw.send(request_bytes("GET", "/echo", version="HTTP/1.0"))
        assert json.loads(raw.read_response().body)["http_version"] == "1.0"


def test_pipelined_requests_answered_in_order(server: ServerProcess) -> None:
    with RawClient(server.address) as raw:
        raw.send(
            get("/echo?n=1")
            + request_bytes("POST", "/echo?n=2", [("Content-Length", "4")], b"body")
            + get("/slow?delay=0.2&id=pipelined")
            + get("/echo?n=4")
        )
        first, second, third, fourth = (raw.read_response() for _ in range(4))
    assert json.loads(first.body)["query_string"] == "n=1"
    assert json.loads(second.body)["query_string"] == "n=2"
    assert json.loads(second.body)["body"] == "body"
    assert third.body == b"slow done"
    assert json.loads(fourth.body)["query_string"] == "n=4"


# ------------------------------------------------------------------------------ framing


def test_chunked_request_body_is_dechunked(server: ServerProcess) -> None:
    with RawClient(server.address) as raw:
        raw.send(
            request_bytes("POST", "/echo", [("Transfer-Encoding", "chunked")])
            + b"3\r\nhel\r\n2;ext=1\r\nlo\r\n0\r\n\r\n"
        )
        response = raw.read_response()
    assert json.loads(response.body)["body"] == "hello"


def test_chunked_response_on_http11_without_length(server: ServerProcess) -> None:
    with RawClient(server.address) as raw:
        raw.send(get("/chunked"))
        response = raw.read_response()
        assert response.header("transfer-encoding") == "chunked"
        assert response.header("content-length") is None
        assert response.body == b"hello world"
        raw.send(get("/"))  # the framing was right: the connection is still usable
        assert raw.read_response().body == b"ok"


@pytest.mark.parametrize("path", ["/", "/chunked", "/echo"])
def test_head_has_no_body(server: ServerProcess, path: str) -> None:
    with RawClient(server.address) as raw:
        raw.send(request_bytes("HEAD", path))
        response = raw.read_response(head_request=True)
        assert response.status == 200
        if path == "/":
            assert response.header("content-length") == "2"  # the GET length is kept
        raw.send(get("/"))
        follow_up = raw.read_response()
        assert (follow_up.status, follow_up.body) == (200, b"ok"), "no body bytes were sent after the HEAD"


@pytest.mark.parametrize("code", [204, 304])
def test_no_body_for_204_and_304(server: ServerProcess, code: int) -> None:
    with RawClient(server.address) as raw:
        raw.send(get(f"/status?code={code}"))
        response = raw.read_response()
        assert response.status == code
        assert response.header("transfer-encoding") is None
        if code == 204:
            assert response.header("content-length") is None
        raw.send(get("/"))
        assert raw.read_response().body == b"ok", "no body bytes were sent after the bodiless response"


# ------------------------------------------------------------------------------ request bodies


def test_small_body_sent_with_the_head_is_at_hand_on_the_first_receive(server: ServerProcess) -> None:
    # The network side hands over what hyper already read with the request: the app's first
    # receive() completes without a round trip to the network thread.
    with RawClient(server.address) as raw:
        for _ in range(5):
            raw.send(request_bytes("POST", "/first-receive", [("Content-Length", "5")], body=b"hello"))
            response = raw.read_response()
            assert json.loads(response.body) == {"waited": False, "body": "hello", "more": False}


def test_body_sent_after_the_head_is_waited_for(server: ServerProcess) -> None:
    with RawClient(server.address) as raw:
        raw.send(request_bytes("POST", "/first-receive", [("Content-Length", "5")]))
        assert raw.nothing_received(0.3), "answered before the body came"
        raw.send(b"hello")
        assert json.loads(raw.read_response().body) == {"waited": True, "body": "hello", "more": False}


# ------------------------------------------------------------------------------ Expect: 100-continue


def test_100_continue_only_when_app_reads(server: ServerProcess) -> None:
    name = "continue-1"
    with RawClient(server.address) as raw:
        raw.send(
            request_bytes(
                "POST", f"/expect?name={name}", [("Content-Length", "5"), ("Expect", "100-continue")]
            )
        )
        poll(lambda: events(server, name) == ["waiting"], what="the app to be waiting before receive()")
        assert raw.nothing_received(0.3), "100 Continue sent before the app called receive()"
        assert httpx.get(server.url + "/signal", params={"name": name}, timeout=5.0).text == "signalled"
        interim = raw.read_response()
        assert (interim.status, interim.reason) == (100, "Continue")
        raw.send(b"hello")
        final = raw.read_response()
        assert (final.status, final.body) == (200, b"got hello")


def test_no_100_continue_when_app_never_reads(server: ServerProcess) -> None:
    with RawClient(server.address) as raw:
        raw.send(request_bytes("POST", "/", [("Content-Length", "5"), ("Expect", "100-continue")]))
        response = raw.read_response()
        assert (response.status, response.body) == (200, b"ok")


# ------------------------------------------------------------------------------ invalid requests


def assert_invalid_request_response(server: ServerProcess, data: bytes) -> None:
    with RawClient(server.address) as raw:
        raw.send(data)
        response = raw.read_response()
        assert response.status == 400, response
        assert response.body == INVALID_BODY, response
        assert response.header("content-type") == "text/plain; charset=utf-8"
        assert raw.closed_by_peer()
    assert httpx.get(server.url, timeout=5.0).text == "ok"


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"GET / HTTP/1.1\r\nX-A: 1\r\n\r\n", id="missing-host"),
        pytest.param(b"GET * HTTP/1.1\r\nHost: t\r\n\r\n", id="get-star"),
        pytest.param(
            b"POST /upload HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            id="bad-chunk-size",
        ),
        pytest.param(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", id="two-hosts"),
        # RFC 9112 3.2: the target is ASCII; httptools answers 400 too
        pytest.param(b"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: t\r\n\r\n", id="non-ascii-path"),
    ],
)
def test_invalid_request_400(server: ServerProcess, data: bytes) -> None:
    assert_invalid_request_response(server, data)


def test_http10_keep_alive_client_gets_one_close_on_rejection(server: ServerProcess) -> None:
    # hyper adds `keep-alive` to an HTTP/1.1 head when the client asked for it: the server's own 400
    # must announce only the close it does
    with RawClient(server.address) as raw:
        raw.send(b"GET * HTTP/1.0\r\nHost: t\r\nConnection: keep-alive\r\n\r\n")
        response = raw.read_response()
        assert response.status == 400
        assert response.all("connection") == ["close"]
        assert raw.closed_by_peer()


def test_invalid_request_logs_warning() -> None:
    with running(PROBE) as proc, RawClient(proc.address) as raw:
        raw.send(b"GET * HTTP/1.1\r\nHost: t\r\n\r\n")
        assert raw.read_response().status == 400
        assert raw.closed_by_peer()
        proc.wait_for_output("WARNING:  Invalid HTTP request received.", stream="stderr", timeout=2.0)


HYPER_EMPTY_400 = (
    "bug: requests rejected by hyper's own parser get 400 with an empty body and no content-type, "
    "not uvicorn's 'Invalid HTTP request received.'"
)


@pytest.mark.xfail(strict=True, reason=HYPER_EMPTY_400)
@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"GET / HTTP/1.1\r\nHost: t\r\nX-Folded: a\r\n  b\r\n\r\n", id="obs-fold"),
        pytest.param(b"GET / HTTP/1.1\r\nHost: t\r\nX-Nul: a\x00b\r\n\r\n", id="nul-in-header"),
        pytest.param(
            b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
            id="conflicting-content-length",
        ),
        pytest.param(b"NOT HTTP AT ALL\r\n\r\n", id="garbage"),
    ],
)
def test_invalid_request_400_from_parser(server: ServerProcess, data: bytes) -> None:
    assert_invalid_request_response(server, data)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"GET /echo HTTP/1.1\r\nHost: a\nX-Injected: 1\r\n\r\n", id="in-header"),
        pytest.param(b"GET /echo HTTP/1.1\nHost: a\nX-Injected: 1\n\n", id="every-line"),
        pytest.param(b"GET /echo HTTP/1.1\r\nHost: a\r\nX-Injected: 1\r\n\n", id="blank-line"),
        pytest.param(
            b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /echo HTTP/1.1\r\nHost: a\nX-Injected: 1\r\n\r\n",
            id="pipelined",
        ),
        pytest.param(
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\na\nb\n"
            b"GET /echo HTTP/1.1\r\nHost: a\nX-Injected: 1\r\n\r\n",
            id="after-a-body",
        ),
    ],
)
def test_bare_lf_in_head_is_400(server: ServerProcess, data: bytes) -> None:
    # RFC 9112 2.2 allows rejecting a bare LF, and uvicorn does: `Host: a\nX-Injected: 1` must not
    # reach the app as two headers when a proxy in front may read it as one.
    with RawClient(server.address) as raw:
        raw.send(data)
        statuses = []
        while True:
            response = raw.read_response()
            statuses.append(response.status)
            assert b"x-injected" not in response.body, "the injected header reached the app"
            if response.status == 400:
                break
        assert statuses[-1] == 400 and all(s == 200 for s in statuses[:-1]), statuses
        assert raw.closed_by_peer()


def test_bare_lf_ending_a_head_that_came_in_two_reads_is_400_at_once(server: ServerProcess) -> None:
    # hyper keeps waiting for the end of a partial head; the rejected one must be answered now, not
    # when the 30 s head timeout closes the connection.
    with RawClient(server.address, timeout=5.0) as raw:
        raw.send(b"GET /echo HTTP/1.1\r\nHost: a\r\nX-Injected")
        assert raw.nothing_received(0.2)  # the first part is read on its own
        raw.send(b": 1\r\n\n")
        assert raw.read_response().status == 400
        assert raw.closed_by_peer()


def test_bare_lf_inside_a_body_is_data(server: ServerProcess) -> None:
    body = b"line one\nline two\n"
    response = httpx.post(server.url + "/echo", content=body, timeout=5.0)
    assert response.json()["body"] == body.decode()


# ------------------------------------------------------------------------------ headers


def test_multiple_set_cookie_preserved(server: ServerProcess) -> None:
    with RawClient(server.address) as raw:
        raw.send(get("/cookies"))
        response = raw.read_response()
    assert response.all("set-cookie") == ["a=1; Path=/", "b=2; HttpOnly", "c=3"]


def test_date_header_format(server: ServerProcess) -> None:
    with RawClient(server.address) as raw:
        raw.send(get("/"))
        response = raw.read_response()
    dates = response.all("date")
    assert len(dates) == 1
    assert re.fullmatch(
        r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} "
        r"\d{2}:\d{2}:\d{2} GMT",
        dates[0],
    ), dates[0]
    assert abs(parsedate_to_datetime(dates[0]).timestamp() - time.time()) < 5


def test_request_headers_in_scope(server: ServerProcess) -> None:
    with RawClient(server.address) as raw:
        raw.send(request_bytes("GET", "/echo", [("X-Dup", "1"), ("x-dup", "2"), ("X-Mixed-Case", "Value")]))
        headers = json.loads(raw.read_response().body)["headers"]
    assert headers == [["host", "test"], ["x-dup", "1"], ["x-dup", "2"], ["x-mixed-case", "Value"]]


def test_header_value_whitespace_stripped(server: ServerProcess) -> None:
    """RFC 9110 5.5: leading and trailing whitespace is not part of a field value (httptools keeps the
    trailing part; the stricter RFC reading is the one to follow)."""
    with RawClient(server.address) as raw:
        raw.send(b"GET /echo HTTP/1.1\r\nHost: t\r\nX-Spaces: \t padded value \t \r\n\r\n")
        headers = json.loads(raw.read_response().body)["headers"]
    assert ["x-spaces", "padded value"] in headers


# ------------------------------------------------------------------------------ bodies and limits


def test_app_transfer_encoding_is_ignored(server: ServerProcess) -> None:
    """spec H3: the server owns the framing, whatever transfer-encoding the app claims."""
    with RawClient(server.address) as raw:
        raw.send(get("/app-te"))
        response = raw.read_response()
        assert response.body == b"hello world"
        assert response.all("transfer-encoding") == ["chunked"]
        raw.send(get("/"))
        assert raw.read_response().body == b"ok"
    with RawClient(server.address) as raw:
        raw.send(request_bytes("GET", "/app-te", version="HTTP/1.0"))
        head, _, body = raw.read_all().partition(b"\r\n\r\n")
    assert b"transfer-encoding" not in head.lower()
    assert body == b"hello world"


def test_large_response_body(server: ServerProcess) -> None:
    size = 10 * 1024 * 1024 + 7
    response = httpx.get(server.url + "/big", params={"size": str(size)}, timeout=10.0)
    assert response.headers["content-length"] == str(size)
    expected = (bytes(range(256)) * 256 * (size // 65536 + 1))[:size]
    assert response.content == expected


def test_large_request_body(server: ServerProcess) -> None:
    body = b"0123456789abcdef" * (10 * 1024 * 1024 // 16)

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 1 << 20):
            yield body[start : start + (1 << 20)]

    assert httpx.post(server.url + "/upload", content=body, timeout=10.0).text == str(len(body))
    assert httpx.post(server.url + "/upload", content=chunks(), timeout=10.0).text == str(len(body))


def test_many_request_headers_accepted(server: ServerProcess) -> None:
    with RawClient(server.address) as raw:
        raw.send(request_bytes("GET", "/echo", [(f"X-H{i}", "v") for i in range(150)]))
        response = raw.read_response()
        assert response.status == 200, response
        assert len(json.loads(response.body)["headers"]) == 151


def test_max_header_size_option() -> None:
    """turboasgi applies ``--h11-max-incomplete-event-size`` to the request head (at least 8 KiB)."""
    with running(PROBE, "--h11-max-incomplete-event-size", "16384") as proc:
        with RawClient(proc.address) as raw:
            raw.send(request_bytes("GET", "/", [("X-Small", "a" * 12000)]))
            assert raw.read_response().status == 200
        with RawClient(proc.address) as raw:
            raw.send(request_bytes("GET", "/", [("X-Big", "a" * 20000)]))
            assert raw.read_response().status == 431
            assert raw.closed_by_peer()


@pytest.mark.parametrize("code", [299, 599])
def test_unregistered_status_code_reason_phrase(server: ServerProcess, code: int) -> None:
    with RawClient(server.address) as raw:
        raw.send(get(f"/status?code={code}"))
        response = raw.read_response()
    assert response.status == code
    assert response.body == b"body"
    assert response.reason == "", f"status line reason {response.reason!r}"
