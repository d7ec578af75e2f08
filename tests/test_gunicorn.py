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

LISTENING_RE = re.compile(r"Listening at: https?://127\.0\.0\.1:(\d+)")


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


def _tls_files(tmp_path: Path) -> tuple[Path, Path, Path, Path, Path]:
    from tests import certs

    if not certs.available():
        pytest.skip("the openssl command line is needed to make test certificates")
    ca = certs.CA.create(tmp_path, "ca")
    server = ca.issue("server", "/CN=localhost", server=True)
    client = ca.issue("client", "/CN=client", server=False)
    return ca.cert, server.cert, server.key, client.cert, client.key


@pytest.mark.timeout(60)
def test_gunicorn_serves_tls_with_client_certificates(tmp_path: Path) -> None:
    # gunicorn's --certfile/--keyfile/--ca-certs/--cert-reqs become turboasgi's --ssl-* options
    import ssl

    import httpx

    ca, cert, key, client_cert, client_key = _tls_files(tmp_path)
    server = gunicorn(
        "tests.apps.tls_app:app",
        "--keyfile",
        str(key),
        "--certfile",
        str(cert),
        "--ca-certs",
        str(ca),
        "--cert-reqs",
        "2",
        cwd=tmp_path if supports_control_socket() else None,
    )
    try:
        port = started(server)
        context = ssl.create_default_context(cafile=str(ca))
        context.load_cert_chain(str(client_cert), str(client_key))

        def answer() -> dict[str, object] | None:
            try:
                return httpx.get(f"https://127.0.0.1:{port}/", verify=context, timeout=5).json()  # type: ignore[no-any-return]
            except httpx.TransportError:
                return None

        poll(lambda: answer() is not None, 20, what="a gunicorn worker serving HTTPS")
        seen = answer()
        assert seen is not None and seen["scheme"] == "https"
        assert isinstance(seen["tls"], dict) and len(seen["tls"]["client_cert_chain"]) >= 1
        with pytest.raises(httpx.TransportError):  # --cert-reqs 2: no client certificate, no answer
            httpx.get(
                f"https://127.0.0.1:{port}/", verify=ssl.create_default_context(cafile=str(ca)), timeout=5
            )
        assert server.stop(signal.SIGTERM, timeout=15) == 0, server.output
    finally:
        server.close()


@pytest.mark.timeout(60)
def test_gunicorn_bad_tls_key_stops_the_arbiter(tmp_path: Path) -> None:
    key = tmp_path / "key.pem"
    _, cert, _, _, _ = _tls_files(tmp_path)
    key.write_text("not a key")
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
        assert "--ssl-keyfile: no PEM private key found" in server.stderr
    finally:
        server.close()
