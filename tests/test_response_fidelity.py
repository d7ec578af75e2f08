"""What a uvicorn user sees on the wire when switching (issue 10): HEAD with a declared length,
HTTP/1.0 keep-alive (ApacheBench -k), when the head goes out, bytes-like bodies."""

from __future__ import annotations

import re
import select
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from server_process import RawClient, ServerProcess, poll, request_bytes, running

pytestmark = pytest.mark.timeout(60)

PROBE = "tests.apps.probe:app"
FILES = "tests.apps.files_app:app"
APPS_DIR = Path(__file__).resolve().parent / "apps"


@pytest.fixture(scope="module")
def probe() -> Iterator[ServerProcess]:
    with running(PROBE) as proc:
        yield proc


@pytest.fixture(scope="module")
def files() -> Iterator[ServerProcess]:
    with running(FILES) as proc:
        yield proc


# ------------------------------------------------------------------------------ HEAD (issue 10 item 1)


@pytest.mark.parametrize("path", ["/static/probe.py", "/file"])
def test_head_on_files_with_httpx(files: ServerProcess, path: str) -> None:
    size = (APPS_DIR / "probe.py").stat().st_size
    head = httpx.head(files.url + path, timeout=5.0)
    assert head.status_code == 200
    assert head.headers["content-length"] == str(size)
    assert head.content == b""
    assert httpx.get(files.url + path, timeout=5.0).content == (APPS_DIR / "probe.py").read_bytes()
    assert "Exception in ASGI application" not in files.stderr
    assert "Content-Length" not in files.stderr


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
@pytest.mark.parametrize("path", ["/static/probe.py", "/file"])
def test_head_on_files_with_curl(files: ServerProcess, path: str) -> None:
    result = subprocess.run(
        ["curl", "-sS", "-I", "--max-time", "5", files.url + path],
        capture_output=True,
        timeout=10,
        check=True,
    )
    status_line, *lines = result.stdout.decode("latin-1").split("\r\n")
    assert status_line == "HTTP/1.1 200 OK"
    size = (APPS_DIR / "probe.py").stat().st_size
    assert f"content-length: {size}" in [line.lower() for line in lines]
    assert f'"HEAD {path} HTTP/1.1" 200' in files.stderr + files.stdout


# ------------------------------------------------------------------------------ HTTP/1.0 keep-alive (item 2)


@pytest.mark.skipif(
    shutil.which("ab") is None, reason="ApacheBench (`ab`, Debian package apache2-utils) is not installed"
)
def test_apachebench_keep_alive_has_no_failures(probe: ServerProcess) -> None:
    # ab -k speaks HTTP/1.0 with `Connection: keep-alive` and counts every early close as a failure.
    result = subprocess.run(
        ["ab", "-k", "-n", "2000", "-c", "10", "-s", "10", probe.url + "/"],
        capture_output=True,
        text=True,
        timeout=50,
    )
    assert result.returncode == 0, result.stderr
    report = dict(
        (key.strip(), value.strip())
        for key, _, value in (ln.partition(":") for ln in result.stdout.splitlines())
    )
    assert report["Complete requests"] == "2000"
    assert report["Failed requests"] == "0"
    assert report["Keep-Alive requests"] == "2000"


# ------------------------------------------------------------------------------ head timing (item 12)


def wait_readable(sock: socket.socket, timeout: float) -> bool:
    return bool(select.select([sock], [], [], timeout)[0])


def test_head_sent_before_a_late_first_body(probe: ServerProcess) -> None:
    # An SSE endpoint that waits for its first event: the client sees status and headers at once.
    with RawClient(probe.address) as raw:
        raw.send(request_bytes("GET", "/late-body?name=late-1"))
        assert wait_readable(raw.sock, 5.0), "no response head while the app waits before its first body"
        head = raw.sock.recv(65536)
        assert head.startswith(b"HTTP/1.1 200 OK\r\n")
        assert b"content-type: text/event-stream" in head
        assert httpx.get(probe.url + "/signal", params={"name": "late-1"}, timeout=5.0).text == "signalled"
        rest = head
        while b"data: 1" not in rest and wait_readable(raw.sock, 5.0):
            chunk = raw.sock.recv(65536)
            if not chunk:
                break
            rest += chunk
        assert b"data: 1\n\n" in rest


def test_single_body_keeps_content_length(probe: ServerProcess) -> None:
    # start + complete body in the same loop iteration: one response with a length, not chunked
    plain = httpx.get(probe.url + "/", timeout=5.0)
    assert plain.headers["content-length"] == "2"
    assert "transfer-encoding" not in plain.headers


# ------------------------------------------------------------------------------ bytes-like bodies (item 11)


@pytest.mark.parametrize("size", [5, 20_000])
def test_bytes_like_response_bodies(probe: ServerProcess, size: int) -> None:
    response = httpx.get(probe.url + "/bytes-like", params={"size": size}, timeout=5.0)
    assert response.status_code == 200
    assert response.content == b"a" * size * 3 + b"end", "a buffer changed after send() changed the response"


# ------------------------------------------------------------------------------ access log (item 3)


def access_line(path: str, status: int) -> re.Pattern[str]:
    return re.compile(rf'127\.0\.0\.1:\d+ - "\w+ {re.escape(path)} HTTP/1\.1" {status}\b')


def test_access_line_written_when_the_head_goes_out(probe: ServerProcess) -> None:
    # an SSE stream that has not sent its first event yet: uvicorn logs it already
    path = "/late-body?name=log-1"
    with RawClient(probe.address) as raw:
        raw.send(request_bytes("GET", path))
        assert wait_readable(raw.sock, 5.0)
        probe.wait_for_output(access_line(path, 200), stream="stdout")
        httpx.get(probe.url + "/signal", params={"name": "log-1"}, timeout=5.0)


def test_access_line_reports_the_servers_500(probe: ServerProcess) -> None:
    assert httpx.get(probe.url + "/raise-before", timeout=5.0).status_code == 500
    probe.wait_for_output(access_line("/raise-before", 500), stream="stdout")


def test_access_line_reports_400_for_a_broken_chunked_body(probe: ServerProcess) -> None:
    path = "/upload?id=broken-chunk"
    with RawClient(probe.address) as raw:
        raw.send(
            b"POST " + path.encode() + b" HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"
        )
        assert raw.read_response().status == 400
    probe.wait_for_output(access_line(path, 400), stream="stdout")
    assert not access_line(path, 500).search(probe.stdout)


def test_no_access_line_when_the_client_got_nothing(probe: ServerProcess) -> None:
    path = "/slow?delay=0.3&id=gone-1"
    with RawClient(probe.address) as raw:
        raw.send(request_bytes("GET", path))
        poll(lambda: "started" in events(probe, "gone-1"), what="the slow request to start")
    poll(lambda: "finished" in events(probe, "gone-1"), what="the app to try its answer")
    assert httpx.get(probe.url + "/a/after-gone", timeout=5.0).status_code == 200
    probe.wait_for_output(access_line("/a/after-gone", 200), stream="stdout")
    assert path not in probe.stdout, "a response the client never got was logged"


def test_access_line_for_503_over_the_concurrency_limit() -> None:
    # the held request is cut at shutdown after 1 s
    options = ("--limit-concurrency", "1", "--timeout-graceful-shutdown", "1")
    with running(PROBE, *options) as proc, RawClient(proc.address) as holder:
        holder.send(request_bytes("GET", "/expect?name=hold-503"))
        poll(lambda: events_blocked_on(proc), what="the first request to hold the only slot")
        assert httpx.get(proc.url + "/a/refused", timeout=5.0).status_code == 503
        proc.wait_for_output(access_line("/a/refused", 503), stream="stdout")
        proc.wait_for_output("Exceeded concurrency limit.", stream="stderr")


def events_blocked_on(proc: ServerProcess) -> bool:
    # /events itself is refused while the slot is taken: a 503 there means the holder is running
    return httpx.get(proc.url + "/events", params={"id": "hold-503"}, timeout=5.0).status_code == 503


def events(server: ServerProcess, key: str) -> list[str]:
    result: list[str] = httpx.get(server.url + "/events", params={"id": key}, timeout=5.0).json()
    return result
