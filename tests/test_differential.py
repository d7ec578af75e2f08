"""``examples/fastapi_app.py`` served by turboasgi and by uvicorn in the same session: every request
below must get the same status, body and headers from both.

Headers left out of the comparison, and why:
- ``date``: the clock moves between the two requests.
- ``server``: ``turboasgi`` vs ``uvicorn`` by design.
- ``etag`` and ``last-modified`` on ``/download`` only: the file is written by each server's lifespan
  into its own temporary directory, so its mtime (hence Starlette's etag) differs.
- ``content-length`` / ``transfer-encoding`` on the empty stream only: the app gives no length and
  sends no data; the framing is the server's (ASGI H3). uvicorn has already sent the head when the
  body ends, so it answers ``transfer-encoding: chunked``; turboasgi holds the head until the first
  body message and can answer ``content-length: 0``. Both are the same empty body to a client.

Reason phrases are compared too, except 416: uvicorn takes Python's ``http.HTTPStatus`` phrase
("Requested Range Not Satisfiable", RFC 7233), turboasgi the RFC 9110 one ("Range Not Satisfiable").

Every request is sent with ``Host: example.test`` so that the servers' different ports do not show in
redirect locations or in echoed headers. The requests run in order; the stateful ones (creating items,
background tasks, the lifespan counter) reach both servers in the same order, so both states agree.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from server_process import RawClient, ServerKind, ServerProcess, poll, request_bytes, running

pytestmark = pytest.mark.timeout(30)

APP = "examples.fastapi_app:app"
HOST = "example.test"
ALWAYS_EXCLUDED = {"date", "server"}
FRAMING = frozenset({"content-length", "transfer-encoding"})
# Reason phrases are not compared: uvicorn takes them from Python's http.HTTPStatus, which renamed some
# between versions (3.13: 422 "Unprocessable Content", 416 "Range Not Satisfiable"); clients must
# ignore them (RFC 9112 4). turboasgi sends the http crate's phrase, or none for unregistered codes.


@dataclass(frozen=True)
class Case:
    id: str
    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    json_body: Any = None
    content: bytes | None = None
    chunked: bool = False
    excluded: frozenset[str] = frozenset()
    # a multipart/byteranges answer: its boundary is random, compared as "<boundary>"
    multipart: bool = False
    # a case that fails because of an issue item another change fixes: strict, so it is flipped then
    xfail: str | None = None

    def send(self, client: httpx.Client) -> httpx.Response:
        content: Any = self.content
        if self.chunked and self.content is not None:
            body = self.content
            content = iter([body[: len(body) // 2], body[len(body) // 2 :]])  # no length: chunked
        return client.request(
            self.method,
            self.path,
            headers={"host": HOST, **self.headers},
            json=self.json_body,
            content=content,
        )


ITEM = {"name": "widget", "price": 9.5, "tags": ["a", "b"]}
FILE_HEADERS = frozenset({"etag", "last-modified"})

CASES = [
    Case("root", "GET", "/"),
    Case("item", "GET", "/items/1"),
    Case("item-query", "GET", "/items/42?q=hello&limit=3"),
    Case("item-query-utf8", "GET", "/items/5?q=caf%C3%A9+au+lait"),
    Case("item-bad-id-422", "GET", "/items/abc"),
    Case("item-bad-limit-422", "GET", "/items/1?limit=x"),
    Case("item-negative-id", "GET", "/items/-7"),
    Case("create-201", "POST", "/items/100", json_body=ITEM),
    Case("create-again-409", "POST", "/items/100", json_body=ITEM),
    Case("read-created", "GET", "/items/100"),
    Case("create-invalid-422", "POST", "/items/101", json_body={"name": "", "price": -1}),
    Case("create-missing-field-422", "POST", "/items/102", json_body={"name": "x"}),
    Case(
        "create-malformed-json-422",
        "POST",
        "/items/103",
        headers={"content-type": "application/json"},
        content=b'{"name": "x", ',
    ),
    Case("create-no-body-422", "POST", "/items/104"),
    Case(
        "create-text-plain",
        "POST",
        "/items/105",
        headers={"content-type": "text/plain"},
        content=json.dumps(ITEM).encode(),
    ),
    Case(
        "create-chunked-body",
        "POST",
        "/items/106",
        headers={"content-type": "application/json"},
        content=json.dumps(ITEM).encode(),
        chunked=True,
    ),
    Case(
        "create-large-body", "POST", "/items/107", json_body={**ITEM, "tags": [f"t{i}" for i in range(2000)]}
    ),
    Case("missing-404-with-header", "GET", "/missing"),
    Case("unknown-404", "GET", "/no/such/route"),
    Case("encoded-404", "GET", "/%7Enope%20x"),
    Case("delete-405", "DELETE", "/"),
    Case("post-405", "POST", "/"),
    Case("put-405", "PUT", "/items/1", json_body=ITEM),
    Case("options-405", "OPTIONS", "/"),
    Case("head", "HEAD", "/"),
    Case("head-item", "HEAD", "/items/1"),
    Case("trailing-slash-redirect", "GET", "/items/1/"),
    Case("stream", "GET", "/stream"),
    Case("stream-empty", "GET", "/stream?count=0", excluded=FRAMING),
    Case("stream-long", "GET", "/stream?count=200"),
    Case("head-stream", "HEAD", "/stream"),
    Case("download", "GET", "/download", excluded=FILE_HEADERS),
    Case("download-range", "GET", "/download", headers={"range": "bytes=0-4"}, excluded=FILE_HEADERS),
    Case("download-bad-range", "GET", "/download", headers={"range": "bytes=99-"}, excluded=FILE_HEADERS),
    Case("head-download", "HEAD", "/download", excluded=FILE_HEADERS),
    Case("background-202", "POST", "/background?message=hi"),
    Case("background-missing-param-422", "POST", "/background"),
    Case("state-1", "GET", "/state"),
    Case("state-2", "GET", "/state"),
    Case("cookies", "GET", "/cookies"),
    Case("echo-headers", "GET", "/headers", headers={"x-test": "1", "accept-language": "fr"}),
    Case("connection-close", "GET", "/items/3", headers={"connection": "close"}),
    Case("openapi", "GET", "/openapi.json"),
    Case("docs", "GET", "/docs"),
    Case("redoc", "GET", "/redoc"),
    Case("docs-oauth-redirect", "GET", "/docs/oauth2-redirect"),
    # StaticFiles and FileResponse on a file both servers see with the same mtime (so the same etag)
    Case("static-get", "GET", "/static/hello.txt"),
    Case("static-css", "GET", "/static/style.css"),
    Case("static-head", "HEAD", "/static/hello.txt"),
    Case("static-range", "GET", "/static/hello.txt", headers={"range": "bytes=6-10"}),
    Case("static-suffix-range", "GET", "/static/hello.txt", headers={"range": "bytes=-12"}),
    Case(
        "static-multi-range", "GET", "/static/hello.txt", headers={"range": "bytes=0-4,10-14"}, multipart=True
    ),
    Case("static-bad-range-416", "GET", "/static/hello.txt", headers={"range": "bytes=500-"}),
    Case("static-missing-404", "GET", "/static/nope.txt"),
    Case("static-post-405", "POST", "/static/hello.txt"),
    Case("file-get", "GET", "/file"),
    Case("file-head", "HEAD", "/file"),
    Case("file-range", "GET", "/file", headers={"range": "bytes=0-4"}),
    Case("file-head-range", "HEAD", "/file", headers={"range": "bytes=0-4"}),
    # server-sent events: a streamed text/event-stream response with waits between the events
    Case("sse", "GET", "/events"),
    Case("sse-long", "GET", "/events?count=20"),
]


@pytest.fixture(scope="module")
def turbo() -> Iterator[httpx.Client]:
    with running(APP, "--no-access-log") as proc, httpx.Client(base_url=proc.url, timeout=10.0) as client:
        yield client


@pytest.fixture(scope="module")
def uvicorn() -> Iterator[httpx.Client]:
    with (
        running(APP, "--no-access-log", kind="uvicorn") as proc,
        httpx.Client(base_url=proc.url, timeout=10.0) as client,
    ):
        yield client


def comparable_headers(response: httpx.Response, excluded: frozenset[str]) -> list[tuple[str, str]]:
    skip = ALWAYS_EXCLUDED | excluded
    return [
        (name.lower(), value) for name, value in response.headers.multi_items() if name.lower() not in skip
    ]


def test_enough_cases() -> None:
    assert len(CASES) >= 30
    assert len({case.id for case in CASES}) == len(CASES)


def _params(cases: list[Case]) -> list[Any]:
    return [
        pytest.param(
            case, id=case.id, marks=[pytest.mark.xfail(strict=True, reason=case.xfail)] if case.xfail else []
        )
        for case in cases
    ]


def _without_boundary(response: httpx.Response) -> tuple[bytes, list[tuple[str, str]]]:
    """The body and headers of a multipart response with its random boundary replaced."""
    boundary = response.headers["content-type"].partition("boundary=")[2].encode()
    assert boundary, response.headers
    headers = [
        (name.lower(), value.replace(boundary.decode(), "<boundary>"))
        for name, value in response.headers.multi_items()
        if name.lower() not in ALWAYS_EXCLUDED
    ]
    return response.content.replace(boundary, b"<boundary>"), headers


@pytest.mark.parametrize("case", _params(CASES))
def test_same_response(turbo: httpx.Client, uvicorn: httpx.Client, case: Case) -> None:
    expected = case.send(uvicorn)
    actual = case.send(turbo)
    assert actual.status_code == expected.status_code
    assert actual.reason_phrase, "a registered status code is sent with its reason phrase"
    if case.multipart:
        assert _without_boundary(actual) == _without_boundary(expected)
        return
    assert actual.content == expected.content
    assert comparable_headers(actual, case.excluded) == comparable_headers(expected, case.excluded)
    assert actual.headers.get_list("server") == ["turboasgi"]
    assert len(actual.headers.get_list("date")) == 1


def test_background_task_ran_on_both(turbo: httpx.Client, uvicorn: httpx.Client) -> None:
    """A background task runs after the response on both servers. Starlette runs a sync task in its
    thread pool, so it may finish just after the client has read the response: poll for it."""
    for client in (turbo, uvicorn):
        client.post("/background?message=again", headers={"host": HOST})
    for client in (turbo, uvicorn):
        deadline = time.monotonic() + 5.0
        while client.get("/background").json()[-1:] != ["again"]:
            assert time.monotonic() < deadline, "the background task never ran"
            time.sleep(0.01)
    assert turbo.get("/background").json() == uvicorn.get("/background").json()


# ------------------------------------------------------------------------------ the scope, via the probe app

PROBE = "tests.apps.probe:app"

# Trailing whitespace in a header value is not compared: httptools keeps it, turboasgi strips it as
# RFC 9110 5.5 requires (checked in test_wire_compat.py).
SCOPE_REQUESTS: dict[str, Any] = {
    "encoded-slash": b"GET /echo/a%2Fb HTTP/1.1\r\nHost: example.test\r\n\r\n",
    "utf8-path-and-query": b"GET /echo/caf%C3%A9?x=%20&y=+&z=%C3%A9 HTTP/1.1\r\nHost: example.test\r\n\r\n",
    "empty-query": b"GET /echo? HTTP/1.1\r\nHost: example.test\r\n\r\n",
    "invalid-percent": b"GET /echo/%ZZ?q=%ZZ HTTP/1.1\r\nHost: example.test\r\n\r\n",
    "absolute-form": b"GET http://example.test/echo/abs?q=1 HTTP/1.1\r\nHost: example.test\r\n\r\n",
    "double-slash": b"GET //echo HTTP/1.1\r\nHost: example.test\r\n\r\n",
    "lowercase-method": b"get /echo HTTP/1.1\r\nHost: example.test\r\n\r\n",
    "custom-method": b"PURGE /echo HTTP/1.1\r\nHost: example.test\r\n\r\n",
    "post-body": b"POST /echo HTTP/1.1\r\nHost: example.test\r\nContent-Length: 5\r\n\r\nhello",
    "chunked-body": b"POST /echo HTTP/1.1\r\nHost: example.test\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5\r\nhello\r\n1\r\n!\r\n0\r\n\r\n",
    "header-case-and-duplicates": b"GET /echo HTTP/1.1\r\nHost: example.test\r\nX-A: 1\r\nx-a: 2\r\n"
    b"Cookie: a=1\r\nCookie: b=2\r\nX-Empty:\r\nX-Spaces:   padded\r\n\r\n",
    "latin1-header-value": b"GET /echo HTTP/1.1\r\nHost: example.test\r\nX-Latin: caf\xe9\r\n\r\n",
    "http10-no-host": b"GET /echo HTTP/1.0\r\n\r\n",
    "options-star": b"OPTIONS * HTTP/1.1\r\nHost: example.test\r\n\r\n",
    # proxy headers from the trusted loopback peer (issue 10 item 7)
    "forwarded-for-with-port": b"GET /echo HTTP/1.1\r\nHost: example.test\r\n"
    b"X-Forwarded-For: 203.0.113.7:4444\r\nX-Forwarded-Proto: https\r\n\r\n",
    "forwarded-for-v6-with-port": b"GET /echo HTTP/1.1\r\nHost: example.test\r\n"
    b"X-Forwarded-For: [2001:db8::7]:4444\r\n\r\n",
    "forwarded-for-repeated": b"GET /echo HTTP/1.1\r\nHost: example.test\r\nX-Forwarded-For: 198.51.100.1\r\n"
    b"X-Forwarded-For: 203.0.113.7:80, 127.0.0.1\r\n\r\n",
}


@pytest.fixture(scope="module")
def probe_servers() -> Iterator[tuple[ServerProcess, ServerProcess]]:
    with running(PROBE, "--no-access-log") as turbo, running(PROBE, "--no-access-log", kind="uvicorn") as uv:
        yield turbo, uv


def _exchange(server: ServerProcess, data: bytes) -> tuple[int, Any]:
    with RawClient(server.address) as raw:
        raw.send(data)
        response = raw.read_response()
    if response.header("content-type") != "application/json":
        return response.status, response.body
    scope = json.loads(response.body)
    # the only legitimate difference: the ports of the two servers and their clients
    scope["server"][1] = "<port>"
    if scope["client"][0] == "127.0.0.1":
        scope["client"][1] = "<port>"
    return response.status, scope


@pytest.mark.parametrize(
    "data",
    list(SCOPE_REQUESTS.values()),
    ids=list(SCOPE_REQUESTS),
)
def test_same_scope(probe_servers: tuple[ServerProcess, ServerProcess], data: bytes) -> None:
    turbo, uv = probe_servers
    expected = _exchange(uv, data)
    assert _exchange(turbo, data) == expected


def test_same_access_log_lines() -> None:
    """The access log (stdout) reads the same under both servers, but for the client ports."""
    requests = [
        request_bytes("GET", "/a/b%20c?x=1"),
        request_bytes("GET", "/echo/caf%C3%A9?q=%C3%A9&r=a+b"),
        request_bytes("POST", "/upload?id=log", [("Content-Length", "3")], b"abc"),
        request_bytes("HEAD", "/"),
        request_bytes("GET", "/nowhere"),
        request_bytes("GET", "/status?code=204"),
        request_bytes("GET", "/status?code=304"),
        request_bytes("GET", "/raise-before"),
        request_bytes("GET", "/", version="HTTP/1.0"),
        request_bytes("DELETE", "/cookies"),
    ]
    logs = []
    kinds: tuple[ServerKind, ...] = ("uvicorn", "turboasgi")
    for kind in kinds:
        with running(PROBE, kind=kind) as proc:
            for data in requests:
                with RawClient(proc.address) as raw:
                    raw.send(data)
                    raw.read_response(head_request=data.startswith(b"HEAD"))
            assert proc.stop() == 0
        logs.append(re.sub(r"127\.0\.0\.1:\d+ ", "127.0.0.1:<port> ", proc.stdout).splitlines())
    assert len(logs[0]) == len(requests)
    assert logs[1] == logs[0]


# ------------------------------------------------------------------------- a log config written for uvicorn

UVICORN_LOG_CONFIG: dict[str, Any] = {
    "version": 1,
    # True on purpose: the turboasgi loggers exist already and are not named here
    "disable_existing_loggers": True,
    "formatters": {
        "default": {
            "()": "uvicorn.logging.DefaultFormatter",
            "fmt": "LOG %(name)s %(levelprefix)s %(message)s",
            "use_colors": False,
        },
        "access": {
            "()": "uvicorn.logging.AccessFormatter",
            "fmt": 'ACCESS %(name)s %(levelprefix)s %(client_addr)s - "%(request_line)s" %(status_code)s',
            "use_colors": False,
        },
    },
    "filters": {"only_access": {"name": "uvicorn.access"}},
    "handlers": {
        "default": {"formatter": "default", "class": "logging.StreamHandler", "stream": "ext://sys.stderr"},
        "access": {
            "formatter": "access",
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stdout",
            "filters": ["only_access"],
        },
    },
    "loggers": {
        "uvicorn": {"handlers": ["default"], "level": "INFO", "propagate": False},
        "uvicorn.error": {"level": "INFO"},
        "uvicorn.access": {"handlers": ["access"], "level": "INFO", "propagate": False},
    },
}

UVICORN_LOG_INI = """\
[loggers]
keys=root,uvicorn,error,access

[handlers]
keys=default,access

[formatters]
keys=default,access

[logger_root]
level=WARNING
handlers=

[logger_uvicorn]
level=INFO
handlers=default
propagate=0
qualname=uvicorn

[logger_error]
level=INFO
handlers=
propagate=1
qualname=uvicorn.error

[logger_access]
level=INFO
handlers=access
propagate=0
qualname=uvicorn.access

[handler_default]
class=logging.StreamHandler
formatter=default
args=(sys.stderr,)

[handler_access]
class=logging.StreamHandler
formatter=access
args=(sys.stdout,)

[formatter_default]
class=uvicorn.logging.DefaultFormatter
format=LOG %(name)s %(levelprefix)s %(message)s

[formatter_access]
class=uvicorn.logging.AccessFormatter
format=ACCESS %(name)s %(levelprefix)s %(client_addr)s - "%(request_line)s" %(status_code)s
"""


def _normalised(text: str) -> list[str]:
    text = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:<port>", text)
    text = re.sub(r"process \[\d+\]", "process [<pid>]", text)
    return (
        text.replace("Uvicorn running", "<Server> running")
        .replace("Turboasgi running", "<Server> running")
        .splitlines()
    )


@pytest.mark.parametrize("form", ["json", "yaml", "ini"])
def test_same_output_with_a_uvicorn_log_config(tmp_path: Path, form: str) -> None:
    """issue 10 item 4: a --log-config written for uvicorn (its loggers, its formatter classes, a filter
    on the logger name) gives the same lines under turboasgi, in the same streams."""
    path = tmp_path / f"log.{form}"
    if form == "json":
        path.write_text(json.dumps(UVICORN_LOG_CONFIG))
    elif form == "yaml":
        yaml = pytest.importorskip("yaml")
        path.write_text(yaml.safe_dump(UVICORN_LOG_CONFIG))
    else:
        path.write_text(UVICORN_LOG_INI)
    outputs = []
    kinds: tuple[ServerKind, ...] = ("uvicorn", "turboasgi")
    for kind in kinds:
        with running(PROBE, "--log-config", str(path), kind=kind) as proc:
            for data in (request_bytes("GET", "/?x=1"), request_bytes("GET", "/nowhere")):
                with RawClient(proc.address) as raw:
                    raw.send(data)
                    raw.read_response()
            proc.wait_for_output('"GET /nowhere HTTP/1.1" 404', stream="stdout")
            assert proc.stop() == 0
        outputs.append((_normalised(proc.stderr), _normalised(proc.stdout)))
    (uv_err, uv_out), (turbo_err, turbo_out) = outputs
    assert turbo_out == uv_out
    assert turbo_out == [
        'ACCESS uvicorn.access INFO:     127.0.0.1:<port> - "GET /?x=1 HTTP/1.1" 200 OK',
        'ACCESS uvicorn.access INFO:     127.0.0.1:<port> - "GET /nowhere HTTP/1.1" 404 Not Found',
    ]
    # free-threaded builds add one line saying how many loops run and whether the GIL is disabled
    assert [line for line in turbo_err if "event loop thread(s)" not in line] == uv_err
    assert (
        "LOG uvicorn.error INFO:     <Server> running on http://127.0.0.1:<port> (Press CTRL+C to quit)"
        in uv_err
    )


# ------------------------------------------------------------------------- --log-level trace / debug lines

WS_PROBE = "tests.apps.ws_probe:app"

# uvicorn lines turboasgi does not write, by design (listed in docs/migrating-from-uvicorn.md): its
# message-logger middleware ("ASGI [n] ...") and the websockets library's frame-level DEBUG lines.
_UNMATCHED = re.compile(r"^(TRACE:\s+(\S+ - )?ASGI \[\d+\]|DEBUG:\s+[<>=] )")


def _count_at_least(proc: ServerProcess, text: str, count: int) -> None:
    poll(lambda: proc.stderr.count(text) >= count, what=f"{count} x {text!r}")


def test_same_connection_lines_at_trace_level() -> None:
    """issue 10 item 4: --log-level trace prints uvicorn's connection made/lost, upgrade, handshake,
    'connection open' and 'connection rejected (403 Forbidden)' lines, in the same order."""
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    outputs = []
    kinds: tuple[ServerKind, ...] = ("uvicorn", "turboasgi")
    for kind in kinds:
        with running(WS_PROBE, "--log-level", "trace", "--no-access-log", kind=kind) as proc:
            ws_base = proc.url.replace("http://", "ws://")
            with RawClient(proc.address) as raw:
                raw.send(request_bytes("GET", "/events?id=none", [("Connection", "close")]))
                raw.read_response()
            _count_at_least(proc, "HTTP connection lost", 1)
            with connect(f"{ws_base}/echo?id=trace", open_timeout=5) as ws:
                ws.send("hi")
                assert ws.recv(timeout=5) == "hi"
            _count_at_least(proc, "WebSocket connection lost", 1)
            with pytest.raises(InvalidStatus), connect(f"{ws_base}/deny?id=trace-deny", open_timeout=5):
                pass
            _count_at_least(proc, "WebSocket connection lost", 2)
            assert proc.stop() == 0
        lines = [line for line in _normalised(proc.stderr) if not _UNMATCHED.match(line)]
        outputs.append([line for line in lines if not line.startswith("DEBUG:")])
    uv_lines, turbo_lines = outputs
    assert [line for line in turbo_lines if "event loop thread(s)" not in line] == uv_lines
    assert "INFO:     connection rejected (403 Forbidden)" in uv_lines
    assert "TRACE:    127.0.0.1:<port> - Upgrading to WebSocket" in uv_lines


# ------------------------------------------------------------------------- conditional requests, HTTP/1.0


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/static/hello.txt"),
        ("HEAD", "/static/hello.txt"),
        ("GET", "/file"),
        ("HEAD", "/file"),
    ],
)
def test_same_conditional_answers(turbo: httpx.Client, uvicorn: httpx.Client, path: str, method: str) -> None:
    """If-None-Match and If-Modified-Since with the validators the app gave: 304 without a body from
    both servers, with the same headers."""
    first = uvicorn.get(path, headers={"host": HOST})
    validators = [
        {"if-none-match": first.headers["etag"]},
        {"if-modified-since": first.headers["last-modified"]},
        {"if-none-match": '"other"'},
    ]
    for extra in validators:
        expected = uvicorn.request(method, path, headers={"host": HOST, **extra})
        actual = turbo.request(method, path, headers={"host": HOST, **extra})
        assert (actual.status_code, actual.content) == (expected.status_code, expected.content), extra
        assert comparable_headers(actual, frozenset()) == comparable_headers(expected, frozenset()), extra
    if path.startswith("/static/"):  # StaticFiles answers conditional requests; FileResponse does not
        assert uvicorn.get(path, headers={"host": HOST, **validators[0]}).status_code == 304


HTTP10_REQUESTS: dict[str, Any] = {
    "root": request_bytes("GET", "/", version="HTTP/1.0", host=HOST),
    "no-host": request_bytes("GET", "/", version="HTTP/1.0", host=None),
    "static": request_bytes("GET", "/static/hello.txt", version="HTTP/1.0", host=HOST),
    "static-range": request_bytes(
        "GET", "/static/hello.txt", [("Range", "bytes=0-4")], version="HTTP/1.0", host=HOST
    ),
    "file-head": request_bytes("HEAD", "/file", version="HTTP/1.0", host=HOST),
    "stream": request_bytes("GET", "/stream", version="HTTP/1.0", host=HOST),
    "sse": request_bytes("GET", "/events", version="HTTP/1.0", host=HOST),
    "post-json": request_bytes(
        "POST",
        "/items/900",
        [("Content-Type", "application/json"), ("Content-Length", str(len(json.dumps(ITEM))))],
        json.dumps(ITEM).encode(),
        version="HTTP/1.0",
        host=HOST,
    ),
}


@pytest.fixture(scope="module")
def fastapi_servers() -> Iterator[tuple[ServerProcess, ServerProcess]]:
    with running(APP, "--no-access-log") as turbo, running(APP, "--no-access-log", kind="uvicorn") as uv:
        yield turbo, uv


def _raw_exchange(server: ServerProcess, data: bytes) -> tuple[int, list[tuple[str, str]], bytes, bool]:
    """One HTTP/1.0 exchange: status, headers (but date and server), body, and whether the server then
    closed the connection. The status line's version is left out: uvicorn answers HTTP/1.0 clients
    with ``HTTP/1.1``, hyper with ``HTTP/1.0`` (both valid; listed in docs/migrating-from-uvicorn.md)."""
    with RawClient(server.address) as raw:
        raw.send(data)
        response = raw.read_response(head_request=data.startswith(b"HEAD"))
        closed = raw.closed_by_peer(timeout=2.0)
    headers = [
        (name.lower(), value) for name, value in response.headers if name.lower() not in ALWAYS_EXCLUDED
    ]
    return response.status, headers, response.body, closed


@pytest.mark.parametrize("data", list(HTTP10_REQUESTS.values()), ids=list(HTTP10_REQUESTS))
def test_same_http10_answers(fastapi_servers: tuple[ServerProcess, ServerProcess], data: bytes) -> None:
    turbo, uv = fastapi_servers
    expected, actual = _raw_exchange(uv, data), _raw_exchange(turbo, data)
    if ("transfer-encoding", "chunked") in expected[1]:
        # uvicorn sends chunked framing to HTTP/1.0 clients, which RFC 9112 6.1 forbids; turboasgi
        # delimits the body by closing the connection (docs/migrating-from-uvicorn.md)
        assert not [value for name, value in actual[1] if name == "transfer-encoding"]
        expected = (expected[0], [h for h in expected[1] if h[0] != "transfer-encoding"], *expected[2:])
    assert actual == expected


def test_http10_keep_alive_announces_one_option(fastapi_servers: tuple[ServerProcess, ServerProcess]) -> None:
    """An HTTP/1.0 client asking for keep-alive gets the same answer, and exactly one connection
    option that the server then honours. (uvicorn answers ``close`` and closes; announcing
    ``keep-alive`` and keeping the connection open is the better choice, and ``ab -k`` relies on it.)"""
    turbo, uv = fastapi_servers
    data = request_bytes("GET", "/", [("Connection", "keep-alive")], version="HTTP/1.0", host=HOST)
    status, headers, body, closed = _raw_exchange(turbo, data)
    uv_status, _, uv_body, _ = _raw_exchange(uv, data)
    assert (status, body) == (uv_status, uv_body)
    options = [
        value.strip().lower() for name, value in headers if name == "connection" for value in value.split(",")
    ]
    assert options in (["keep-alive"], ["close"]), headers
    assert closed == (options == ["close"])


def test_same_asgi_message_lines_at_trace_level() -> None:
    """--log-level trace shows every ASGI event as uvicorn's message logger does: the lifespan, then per
    request ``Started``, each ``Receive``/``Send`` with bodies and headers as placeholders, and
    ``Completed``. The scope's own text is left out of the comparison (its keys come in another order,
    and turboasgi's spec_version differs)."""
    requests = [
        request_bytes("POST", "/echo", [("Content-Length", "5"), ("Connection", "close")], b"hello"),
        request_bytes("GET", "/?x=1", [("Connection", "close")]),
        request_bytes("GET", "/raise-before", [("Connection", "close")]),
    ]
    outputs = []
    kinds: tuple[ServerKind, ...] = ("uvicorn", "turboasgi")
    for kind in kinds:
        # uvicorn runs one event loop: so must turboasgi here (each loop numbers its own lifespan)
        one_loop = ("--threads", "1") if kind == "turboasgi" else ()
        with running(PROBE, "--log-level", "trace", "--no-access-log", *one_loop, kind=kind) as proc:
            for data in requests:
                with RawClient(proc.address) as raw:
                    raw.send(data)
                    raw.read_response()
                # one request after the other, so that the numbering and the order are the same
                _count_at_least(proc, "HTTP connection lost", requests.index(data) + 1)
            assert proc.stop() == 0
        lines = [
            re.sub(r"Started scope=\{'type': '(\w+)'.*", r"Started scope=\1", line)
            for line in _normalised(proc.stderr)
            if " ASGI [" in line
        ]
        outputs.append(lines)
    uv_lines, turbo_lines = outputs
    assert turbo_lines == uv_lines
    assert "TRACE:    127.0.0.1:<port> - ASGI [2] Started scope=http" in uv_lines
    assert "TRACE:    127.0.0.1:<port> - ASGI [4] Raised exception" in uv_lines
