"""Opt-in protection beyond uvicorn: the request-head read timeout (408) and gunicorn's request limits
(--limit-request-line, --limit-request-fields, --limit-request-field-size), against a real server with
a raw socket client."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from server_process import RawClient, ServerProcess, request_bytes, running

pytestmark = pytest.mark.timeout(30)

PROBE = "tests.apps.probe:app"


@pytest.fixture(scope="module")
def head_timeout_server() -> Iterator[ServerProcess]:
    with running(PROBE, "--timeout-request-head", "0.5", "--timeout-keep-alive", "30") as proc:
        yield proc


def test_a_head_that_stalls_gets_408_and_the_connection_closes(head_timeout_server: ServerProcess) -> None:
    with RawClient(head_timeout_server.address) as client:
        client.send(b"GET / HTTP/1.1\r\nHost: test\r\nX-Slow: ")  # and nothing more
        started = time.monotonic()
        response = client.read_response()
        waited = time.monotonic() - started
        assert response.status == 408
        assert response.body == b"Request Timeout"
        assert response.header("connection") == "close"
        assert response.header("server") == "turboasgi" and response.header("date")
        assert client.closed_by_peer(timeout=5)
    assert 0.4 <= waited < 5


def test_the_clock_runs_per_head_not_per_connection(head_timeout_server: ServerProcess) -> None:
    with RawClient(head_timeout_server.address) as client:
        # Complete heads, each sent in two parts well inside the timeout, keep being served.
        for _ in range(3):
            client.send(b"GET / HTTP/1.1\r\n")
            time.sleep(0.2)  # part of what is tested: a slow but in-time head
            client.send(b"Host: test\r\n\r\n")
            assert client.read_response().status == 200
        # An idle keep-alive connection (no byte of a new head) is not timed out by this option.
        assert client.nothing_received(1.0)
        client.send(request_bytes("GET", "/"))
        assert client.read_response().status == 200
        # The next head that stalls does get the 408.
        client.send(b"GET / HTTP/1.1\r\n")
        assert client.read_response().status == 408


def test_without_the_option_a_stalled_head_gets_no_408() -> None:
    with running(PROBE) as server, RawClient(server.address) as client:
        client.send(b"GET / HTTP/1.1\r\nHost: test\r\n")
        assert client.nothing_received(1.5)


@pytest.fixture(scope="module")
def limited_server() -> Iterator[ServerProcess]:
    options = (
        "--limit-request-line",
        "64",
        "--limit-request-fields",
        "5",
        "--limit-request-field-size",
        "40",
    )
    with running(PROBE, *options) as proc:
        yield proc


def test_request_line_limit_gives_414(limited_server: ServerProcess) -> None:
    # "GET " + target + " HTTP/1.1" is 4 + len(target) + 9 bytes
    ok = "/" + "a" * (64 - 13 - 1)
    with httpx.Client(base_url=limited_server.url, timeout=5) as client:
        assert client.get(ok).status_code in (200, 404)
        too_long = client.get(ok + "a")
        assert too_long.status_code == 414
        assert too_long.headers["connection"] == "close"


def test_header_field_size_limit_gives_431(limited_server: ServerProcess) -> None:
    # "x-long: " + value is 8 + len(value) bytes
    with RawClient(limited_server.address) as client:
        client.send(request_bytes("GET", "/", [("x-long", "v" * 32)]))
        assert client.read_response().status == 200
        client.send(request_bytes("GET", "/", [("x-long", "v" * 33)]))
        too_large = client.read_response()
        assert too_large.status == 431
        assert too_large.header("connection") == "close"


def test_header_count_limit_gives_431(limited_server: ServerProcess) -> None:
    with RawClient(limited_server.address) as client:
        client.send(request_bytes("GET", "/", [(f"x-{i}", "1") for i in range(4)]))  # 5 with Host
        assert client.read_response().status == 200
    with RawClient(limited_server.address) as client:
        client.send(request_bytes("GET", "/", [(f"x-{i}", "1") for i in range(5)]))
        assert client.read_response().status == 431
    assert httpx.get(limited_server.url + "/", timeout=5).status_code == 200


@pytest.mark.parametrize(
    "option", ["--timeout-request-head=0", "--limit-request-line=0", "--limit-request-fields=-1"]
)
def test_invalid_values_are_usage_errors(option: str) -> None:
    server = ServerProcess([PROBE, "--port", "0", option])
    assert server.run_to_exit() == 2
    assert option.split("=")[0] in server.stderr
    server.close()


@pytest.fixture(scope="module")
def body_timeout_server() -> Iterator[ServerProcess]:
    with running(PROBE, "--timeout-request-body", "0.6") as proc:
        yield proc


def events_of(server: ServerProcess, key: str) -> list[str]:
    result: list[str] = httpx.get(server.url + "/events", params={"id": key}, timeout=5).json()
    return result


def test_a_body_that_trickles_past_the_timeout_gets_408(body_timeout_server: ServerProcess) -> None:
    with RawClient(body_timeout_server.address) as client:
        client.send(request_bytes("POST", "/upload?id=trickle", [("Content-Length", "1000")]))
        started = time.monotonic()
        response = None
        for _ in range(50):  # one byte every 0.1 s: 5 s if nothing stopped it
            try:
                client.send(b"x")
            except OSError:
                break
            if not client.nothing_received(0.1):
                break
        response = client.read_response()
        waited = time.monotonic() - started
        assert response.status == 408
        assert response.header("connection") == "close"
        assert client.closed_by_peer(timeout=5)
    assert 0.5 <= waited < 3
    # the app was told: its receive() returned http.disconnect
    assert events_of(body_timeout_server, "trickle")[-1] == "http.disconnect"


def test_a_body_sent_in_time_is_read_whole(body_timeout_server: ServerProcess) -> None:
    with RawClient(body_timeout_server.address) as client:
        client.send(request_bytes("POST", "/upload?id=in-time", [("Content-Length", "6")]))
        for piece in (b"ab", b"cd", b"ef"):
            time.sleep(0.15)  # part of what is tested: pauses that add up to less than the timeout
            client.send(piece)
        response = client.read_response()
    assert (response.status, response.body) == (200, b"6")


def test_an_upload_is_not_cut_off_by_the_app_reading_slowly(body_timeout_server: ServerProcess) -> None:
    # 1 MiB sent at once, read 64 KiB ahead of an app that pauses 0.05 s before each of its 16 or more
    # reads: over the 0.6 s timeout in all, but that time is the app's, not the client's.
    data = b"y" * (1024 * 1024)
    started = time.monotonic()
    response = httpx.post(
        body_timeout_server.url + "/upload?id=slow-app&pause=0.05", content=data, timeout=20
    )
    assert (response.status_code, response.text) == (200, str(len(data)))
    assert time.monotonic() - started > 0.6
