"""What a uvicorn user sees on the wire when switching (issue 10): HEAD with a declared length,
HTTP/1.0 keep-alive (ApacheBench -k), when the head goes out, bytes-like bodies."""

from __future__ import annotations

import select
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from server_process import RawClient, ServerProcess, request_bytes, running

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
