"""`http.response.pathsend` (issue 12 item 6): the file an app names is read and sent by the network
side, never through Python. Starlette's FileResponse uses it on its own once the scope advertises it,
so these tests drive a real FileResponse over HTTP/1.1 and HTTP/2, and a raw app for the errors."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from server_process import RawClient, ServerProcess, poll, request_bytes, running

pytestmark = pytest.mark.timeout(60)

APP = "tests.apps.pathsend_app:app"


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with running(APP) as proc:
        yield proc


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("pathsend") / "big.bin"
    path.write_bytes(os.urandom(3 * 1024 * 1024 + 17))  # several read chunks, not a multiple of one
    return path


def client(http_version: str) -> httpx.Client:
    if http_version == "2":
        return httpx.Client(http1=False, http2=True, timeout=10.0)
    return httpx.Client(timeout=10.0)


def raised(server: ServerProcess, key: str) -> dict[str, str]:
    result: dict[str, str] | None = None

    def recorded() -> bool:
        nonlocal result
        result = httpx.get(server.url + "/raised", params={"id": key}, timeout=5.0).json()
        return result is not None

    poll(recorded, timeout=5.0, what="the app's send() outcome")
    assert result is not None
    return result


def raw_get(server: ServerProcess, **query: Any) -> tuple[int, bytes]:
    response = httpx.get(server.url + "/raw", params=query, timeout=10.0)
    return response.status_code, response.content


@pytest.mark.parametrize("http_version", ["1.1", "2"])
def test_scope_advertises_pathsend(server: ServerProcess, http_version: str) -> None:
    # spec G8: advertised as {name: {}} because it is handled, on both protocols
    with client(http_version) as c:
        assert "http.response.pathsend" in c.get(server.url + "/extensions").json()


@pytest.mark.parametrize("http_version", ["1.1", "2"])
def test_file_response_streams_the_file(server: ServerProcess, big_file: Path, http_version: str) -> None:
    expected = big_file.read_bytes()
    with client(http_version) as c:
        response = c.get(server.url + "/file", params={"path": str(big_file)})
    assert response.http_version == ("HTTP/2" if http_version == "2" else "HTTP/1.1")
    assert response.status_code == 200
    assert response.headers["content-length"] == str(len(expected))
    assert response.content == expected


@pytest.mark.parametrize("http_version", ["1.1", "2"])
def test_file_response_head_has_the_length_and_no_body(
    server: ServerProcess, big_file: Path, http_version: str
) -> None:
    with client(http_version) as c:
        response = c.head(server.url + "/file", params={"path": str(big_file)})
    assert response.status_code == 200
    assert response.headers["content-length"] == str(big_file.stat().st_size)
    assert response.content == b""


@pytest.mark.parametrize("http_version", ["1.1", "2"])
def test_file_response_range_still_served(server: ServerProcess, big_file: Path, http_version: str) -> None:
    # Starlette answers ranges itself (without pathsend): they must keep working beside it
    with client(http_version) as c:
        response = c.get(
            server.url + "/file", params={"path": str(big_file)}, headers={"Range": "bytes=100-199"}
        )
    assert response.status_code == 206
    assert response.content == big_file.read_bytes()[100:200]


def test_pathsend_works_on_a_kept_alive_connection(server: ServerProcess, big_file: Path) -> None:
    target = f"/file?path={big_file}"
    with RawClient(server.address) as raw:
        for _ in range(2):
            raw.send(request_bytes("GET", target))
            response = raw.read_response()
            assert response.status == 200
            assert len(response.body) == big_file.stat().st_size


def test_pathsend_without_content_length_gets_one(server: ServerProcess, tmp_path: Path) -> None:
    path = tmp_path / "small.txt"
    path.write_bytes(b"hello from a file\n")
    response = httpx.get(server.url + "/raw", params={"id": "nolen", "path": str(path)}, timeout=5.0)
    assert response.status_code == 200
    assert response.headers["content-length"] == str(len(b"hello from a file\n"))
    assert response.content == b"hello from a file\n"
    assert raised(server, "nolen") == {"type": "", "message": ""}


def test_empty_file(server: ServerProcess, tmp_path: Path) -> None:
    path = tmp_path / "empty"
    path.write_bytes(b"")
    assert raw_get(server, id="empty", path=str(path), length="0") == (200, b"")


def test_pathsend_on_204_sends_no_body(server: ServerProcess, big_file: Path) -> None:
    assert raw_get(server, id="nocontent", path=str(big_file), status="204") == (204, b"")


@pytest.mark.parametrize(
    ("case", "error", "words"),
    [
        ("relative", "ValueError", "must be an absolute path"),
        ("missing", "FileNotFoundError", "cannot open"),
        ("directory", "IsADirectoryError", "is a directory"),
        ("fifo", "ValueError", "not a regular file"),
        ("wrong-length", "RuntimeError", "content-length"),
    ],
)
def test_bad_path_raises_from_send_and_gives_500(
    server: ServerProcess, tmp_path: Path, big_file: Path, case: str, error: str, words: str
) -> None:
    paths = {
        "relative": "some/relative.txt",
        "missing": str(tmp_path / "missing.txt"),
        "directory": str(tmp_path),
        "fifo": str(tmp_path / "fifo"),
        "wrong-length": str(big_file),
    }
    if case == "fifo":
        os.mkfifo(paths["fifo"])
    query = {"id": f"bad-{case}", "path": paths[case]}
    if case == "wrong-length":
        query["length"] = "10"
    assert raw_get(server, **query)[0] == 500
    result = raised(server, f"bad-{case}")
    assert result["type"] == error
    assert "http.response.pathsend" in result["message"] and words in result["message"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file_raises_permission_error(server: ServerProcess, tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_bytes(b"no")
    path.chmod(0)
    assert raw_get(server, id="perm", path=str(path))[0] == 500
    result = raised(server, "perm")
    assert result["type"] == "PermissionError" and str(path) in result["message"]


def test_pathsend_after_a_body_is_refused(server: ServerProcess, big_file: Path) -> None:
    # the head and one body chunk are out: the response is cut off
    with pytest.raises(httpx.RemoteProtocolError):
        raw_get(server, id="after-body", path=str(big_file), body="first")
    result = raised(server, "after-body")
    assert result["type"] == "RuntimeError" and "http.response.pathsend" in result["message"]


def test_file_shrinking_mid_response_aborts_and_reads_stay_bounded(
    server: ServerProcess, tmp_path: Path
) -> None:
    # A slow reader: the server reads the file only as fast as the client takes it, so most of it
    # is still unread when the file shrinks, and the client gets a cut-off response, not a hang.
    size = 64 * 1024 * 1024
    path = tmp_path / "shrinking.bin"
    with path.open("wb") as f:
        f.truncate(size)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    sock.settimeout(10.0)
    with sock:
        sock.connect(server.address)
        sock.sendall(request_bytes("GET", f"/raw?id=shrink&path={path}"))
        received = sock.recv(65536)
        assert received.startswith(b"HTTP/1.1 200")
        os.truncate(path, 1024 * 1024)
        for _ in range(100_000):
            data = sock.recv(1024 * 1024)
            if not data:
                break
            received += data
    _, _, body = received.partition(b"\r\n\r\n")
    assert f"content-length: {size}".encode() in received.lower()
    assert 0 < len(body) < size / 2
