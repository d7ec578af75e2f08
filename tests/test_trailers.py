"""`http.response.trailers` (issue 12 item 6): advertised on HTTP/2 and on HTTP/1.1 requests that say
`TE: trailers`; sent in the final HEADERS frame (h2) or after the last chunk (HTTP/1.1), checked on
raw frames and a raw socket since httpx does not expose trailers."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import httpx
import pytest
from server_process import ServerProcess, poll, running

from asgi_tests.client import RawClient
from asgi_tests.h2client import H2Client

pytestmark = pytest.mark.timeout(60)

APP = "tests.apps.trailers_app:app"
BODY = b"part-0;part-1;part-2;"


@pytest.fixture(scope="module", params=["1", "2"], ids=["threads1", "threads2"])
def server(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    with running(APP, "--threads", request.param) as proc:
        yield proc


def raised(server: ServerProcess, key: str) -> str:
    result: str | None = None

    def recorded() -> bool:
        nonlocal result
        result = httpx.get(server.url + "/raised", params={"id": key}, timeout=5.0).json()
        return result is not None

    poll(recorded, timeout=5.0, what="the app's send() outcome")
    assert result is not None
    return result


def raw(server: ServerProcess) -> RawClient:
    return RawClient(*server.address)


def test_http11_with_te_trailers_advertises_and_sends_them(server: ServerProcess) -> None:
    # spec H10: advertised, and sent after the last chunk, when the client said TE: trailers
    with raw(server) as client:
        extensions = json.loads(client.request("GET", "/extensions", headers={"TE": "trailers"}).body)
        assert "http.response.trailers" in extensions
        response = client.request("GET", "/send?id=h1&parts=3", headers={"TE": "trailers"})
        assert (response.status, response.chunked, response.body) == (200, True, BODY)
        assert response.trailers == [("x-checksum", b"abc"), ("x-count", b"2")]
        # the connection goes on after the trailer section
        assert client.request("GET", "/send?id=h1-again", headers={"TE": "trailers"}).body == b"part-0;"
    assert raised(server, "h1") == ""


def test_http11_single_body_message_with_trailers(server: ServerProcess) -> None:
    with raw(server) as client:
        response = client.request("GET", "/send?id=h1-single", headers={"TE": "gzip, Trailers"})
    assert (response.chunked, response.body) == (True, b"part-0;")
    assert response.trailers == [("x-checksum", b"abc"), ("x-count", b"2")]


@pytest.mark.parametrize("te", [None, "gzip"])
def test_http11_without_te_trailers_is_not_advertised_and_drops_them(
    server: ServerProcess, te: str | None
) -> None:
    headers = {"TE": te} if te else {}
    with raw(server) as client:
        assert "http.response.trailers" not in json.loads(
            client.request("GET", "/extensions", headers=headers).body
        )
        # an app sending them anyway gets a complete response without them
        response = client.request("GET", "/send?id=h1-no-te&parts=3", headers=headers)
        assert (response.status, response.body, response.trailers) == (200, BODY, [])
    assert raised(server, "h1-no-te") == ""


def test_http10_is_not_offered_trailers(server: ServerProcess) -> None:
    with socket.create_connection(server.address, timeout=5.0) as sock:
        sock.sendall(b"GET /extensions HTTP/1.0\r\nTE: trailers\r\n\r\n")
        data = b""
        for _ in range(1000):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    assert data.startswith(b"HTTP/1.0 200") and b"http.response.trailers" not in data


def test_head_with_trailers_completes(server: ServerProcess) -> None:
    with raw(server) as client:
        response = client.request("HEAD", "/send?id=head", headers={"TE": "trailers"})
        assert response.status == 200 and response.body == b""
        assert client.request("GET", "/send?id=after-head", headers={"TE": "trailers"}).body == b"part-0;"
    assert raised(server, "head") == ""


@pytest.mark.parametrize("query", ["parts=3", "parts=1", "parts=3&length=1"])
def test_http2_sends_trailers_in_the_last_headers_frame(server: ServerProcess, query: str) -> None:
    host, port = server.address
    with H2Client(host, port) as client:
        extensions = client.get("/extensions")
        assert b"http.response.trailers" in extensions.data  # no TE needed on HTTP/2
        result = client.get(f"/send?id=h2&{query}")
    assert result.status == 200 and result.ended
    assert result.data == BODY[: len(result.data)] and result.data.endswith(b";")
    assert result.trailers == [(b"x-checksum", b"abc"), (b"x-count", b"2")]


@pytest.mark.parametrize(
    ("misuse", "words"),
    [
        ("no-flag", "did not set 'trailers'"),
        ("body-after-body", "Expected ASGI message 'http.response.trailers'"),
    ],
)
def test_misordered_messages_raise(server: ServerProcess, misuse: str, words: str) -> None:
    key = f"misuse-{misuse}"
    with raw(server) as client:
        client.send(
            f"GET /send?id={key}&misuse={misuse} HTTP/1.1\r\nHost: x\r\nTE: trailers\r\n\r\n".encode()
        )
        try:
            client.read_response()
        except AssertionError:
            pass  # the response may be cut off
    outcome = raised(server, key)
    assert outcome.startswith("RuntimeError") and words in outcome


def test_http11_declared_length_sends_the_body_without_trailers(server: ServerProcess) -> None:
    # with a content-length the body is not chunked, so there is no place for trailers on HTTP/1.1
    with raw(server) as client:
        response = client.request("GET", "/send?id=h1-length&parts=3&length=1", headers={"TE": "trailers"})
        assert (response.status, response.chunked, response.body, response.trailers) == (200, False, BODY, [])
        assert client.request("GET", "/send?id=h1-length-again", headers={"TE": "trailers"}).trailers
    assert raised(server, "h1-length") == ""
