"""Gunicorn with ``-k turboasgi.workers.TurboWorker`` (skipped when gunicorn is not installed)."""

from __future__ import annotations

import http.client
import json
import re
import signal
import sys
from pathlib import Path

import pytest

from tests.server_process import ServerProcess, poll

pytest.importorskip("gunicorn")

LISTENING_RE = re.compile(r"Listening at: http://127\.0\.0\.1:(\d+)")


def gunicorn(app: str, *options: str, cwd: Path | None = None) -> ServerProcess:
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "-k",
        "turboasgi.workers.TurboWorker",
        "-b",
        "127.0.0.1:0",
        *options,
        app,
    ]
    if cwd is not None:
        command[3:3] = ["--control-socket", str(cwd / "gunicorn.ctl")]
    return ServerProcess([], command=command)


def request(port: int, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def started(server: ServerProcess, timeout: float = 20.0) -> int:
    server.launch()
    output = server.wait_for_output(LISTENING_RE, timeout=timeout)
    match = LISTENING_RE.search(output)
    assert match is not None
    return int(match.group(1))


def supports_control_socket() -> bool:
    import gunicorn

    return int(gunicorn.__version__.split(".")[0]) >= 24


@pytest.mark.timeout(60)
def test_gunicorn_serves_the_fastapi_example(tmp_path: Path) -> None:
    pytest.importorskip("fastapi")
    server = gunicorn(
        "examples.fastapi_app:app",
        "-w",
        "2",
        "--keep-alive",
        "7",
        "--max-requests",
        "1000",
        cwd=tmp_path if supports_control_socket() else None,
    )
    try:
        port = started(server)

        def ok() -> bool:
            try:
                return request(port, "/")[0] == 200
            except OSError:
                return False

        poll(ok, 20, what="a gunicorn worker serving")
        status, body = request(port, "/items/3?q=x")
        assert status in (200, 404), body
        status, body = request(port, "/openapi.json")
        assert status == 200 and json.loads(body)["info"]["title"] == "turboasgi example"
        server.wait_for_output("Application startup complete.")
        assert "Booting worker" in server.stderr
        assert server.stop(signal.SIGTERM, timeout=15) == 0, server.output
        assert "Finished server process" in server.stderr
    finally:
        server.close()


@pytest.mark.timeout(60)
def test_gunicorn_tls_is_rejected(tmp_path: Path) -> None:
    key = tmp_path / "key.pem"
    cert = tmp_path / "cert.pem"
    key.write_text("not a key")
    cert.write_text("not a cert")
    server = gunicorn(
        "examples.hello:app",
        "--keyfile",
        str(key),
        "--certfile",
        str(cert),
        cwd=tmp_path if supports_control_socket() else None,
    )
    try:
        server.launch()
        code = server.wait(30)
        assert code != 0
        assert "TLS (gunicorn --keyfile/--certfile) is not yet supported by turboasgi" in server.stderr
    finally:
        server.close()
