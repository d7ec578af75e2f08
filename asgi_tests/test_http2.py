"""HTTP/2 over cleartext with prior knowledge (h2c, RFC 9113 3.3): the ASGI scope of a stream (spec
H2), one app call per stream, per-stream disconnects (spec H5, H12) and the connection-specific
headers HTTP/2 forbids. Servers that do not speak h2c with prior knowledge are skipped with a reason.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import httpx
import pytest

from asgi_tests.apps.tagging import untag
from asgi_tests.client import wait_observed
from asgi_tests.harness import ServerProcess

pytestmark = pytest.mark.http2

h2 = pytest.importorskip("h2", reason="HTTP/2 checks need the h2 package (httpx[http2])")
pytest.importorskip("hyperframe", reason="HTTP/2 checks need the hyperframe package")

from asgi_tests.h2client import H2Client  # noqa: E402 - after the skip for a missing h2


def new_id() -> str:
    return uuid.uuid4().hex[:12]


@pytest.fixture
def h2c(server: ServerProcess) -> Iterator[H2Client]:
    """A connection that has been answered over HTTP/2 once, or a skip."""
    try:
        client = H2Client(server.host, server.port)
        answer = client.get("/head")
    except (ConnectionError, TimeoutError, OSError, h2.exceptions.ProtocolError) as exc:
        pytest.skip(f"server does not speak HTTP/2 with prior knowledge over cleartext ({exc!r})")
    if answer.reset is not None:
        client.close()
        pytest.skip("server does not speak HTTP/2 with prior knowledge over cleartext")
    try:
        yield client
    finally:
        client.close()


def scope_over(client: H2Client, path: str, headers: list[tuple[bytes, bytes]] | None = None) -> dict:
    result = client.get(path, headers)
    assert result.status == 200, result
    scope: dict = untag(json.loads(result.data))["scope"]
    scope["headers"] = [tuple(pair) for pair in scope["headers"]]
    return scope


def test_h2_scope_has_no_pseudo_headers(h2c: H2Client) -> None:
    # spec H2: no pseudo-headers; :authority becomes a host header at the front; http_version "2"
    scope = scope_over(h2c, "/scope?h2=1")
    assert scope["http_version"] == "2"
    names = [h[0] for h in scope["headers"]]
    assert not any(name.startswith(b":") for name in names), names
    assert scope["headers"][0] == (b"host", h2c.host.encode())
    assert scope["path"] == "/scope" and scope["query_string"] == b"h2=1"
    assert scope["method"] == "GET" and scope["scheme"] == "http"


def test_h2_cookies_rejoined(h2c: H2Client) -> None:
    # spec H2 / RFC 9113 8.2.3: cookie fields split by the client reach the app as one "; "-joined field
    scope = scope_over(h2c, "/scope", [(b"cookie", b"a=1"), (b"cookie", b"b=2")])
    cookies = [value for name, value in scope["headers"] if name == b"cookie"]
    assert cookies == [b"a=1; b=2"]


def test_h2_one_scope_per_stream(server: ServerProcess, h2c: H2Client) -> None:
    # spec H2: one scope (one app call) per stream
    before = untag(httpx.get(server.base_url + "/count", timeout=5).json())["http"]
    streams = [h2c.request("POST", "/echo", body=f"s{i}".encode()) for i in range(3)]
    assert [h2c.response(s).data for s in streams] == [b"s0", b"s1", b"s2"]
    after = untag(httpx.get(server.base_url + "/count", timeout=5).json())["http"]
    assert after - before == 4  # three streams and the second /count


def test_h2_request_body_over_several_frames(h2c: H2Client) -> None:
    # spec H4: the body arrives whole, however the client framed it
    body = bytes(range(256)) * 1024  # 256 KiB: many DATA frames and window updates
    result = h2c.response(h2c.request("POST", "/echo", body=body))
    assert (result.status, result.data) == (200, body)


def test_h2_reset_stream_disconnects_only_that_stream(
    server: ServerProcess, h2c: H2Client, spec_version: tuple[int, ...]
) -> None:
    # spec H5, H12: RST_STREAM ends that request (http.disconnect; from spec 2.4 send() raises
    # OSError); the other streams of the connection go on
    key = new_id()
    doomed = h2c.request("GET", f"/stream-until-disconnect/{key}")
    wait_observed(server.base_url, key, until="streaming")
    other = h2c.request("GET", "/slow?delay=0.3")
    h2c.reset(doomed)
    result = wait_observed(server.base_url, key, timeout=10.0, until="final")
    if spec_version >= (2, 4):
        assert result["raised"], f"{result['sends_after_disconnect']} sends after the reset did not raise"
        assert result["is_oserror"], result
    else:
        assert result["disconnect_seen"], "no http.disconnect after the stream was reset"
    assert h2c.response(other).data == b"slow done"


def test_h2_reset_wakes_receive_with_disconnect(server: ServerProcess, h2c: H2Client) -> None:
    # spec H5: a pending receive() returns http.disconnect when the client resets the stream
    key = new_id()
    stream = h2c.request("GET", f"/wait-disconnect/{key}")
    wait_observed(server.base_url, key, until="waiting")
    h2c.reset(stream)
    result = wait_observed(server.base_url, key, timeout=6.0)
    for _ in range(100):
        if not result.get("waiting"):
            break
        result = wait_observed(server.base_url, key, timeout=6.0)
    assert result["message"] is not None and result["message"]["type"] == "http.disconnect"


def test_h2_no_connection_specific_headers(h2c: H2Client) -> None:
    # RFC 9113 8.2.2: Connection / Transfer-Encoding set by the app are not sent on HTTP/2 (a client
    # must treat them as malformed), and "connection: close" does not end the connection
    closing = h2c.get("/conn-close")
    framed = h2c.get("/te-header")
    assert closing.status == 200 and closing.header(b"connection") is None
    assert framed.data == b"hello world" and framed.header(b"transfer-encoding") is None
    assert h2c.get("/head").reset is None
