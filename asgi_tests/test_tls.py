"""TLS: the scope of HTTPS and WSS connections (scheme, the ASGI ``tls`` extension) and what a TLS port
does with input that is not a well-behaved TLS client. Runs against every server the suite knows a
certificate option for (``--ssl-keyfile``/``--ssl-certfile`` and their equivalents); skipped otherwise.
"""

from __future__ import annotations

import http.client
import json
import shutil
import socket
import ssl
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from asgi_tests.apps.tagging import untag
from asgi_tests.harness import ServerProcess
from asgi_tests.plugin import PROBE_APP, ServerPool

pytestmark = pytest.mark.tls

TLS_VERSIONS = {"TLSv1.2": 0x0303, "TLSv1.3": 0x0304}


@dataclass(frozen=True)
class TlsFiles:
    ca: Path
    cert: Path
    key: Path


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """trustme's CA and leaf where trustme installs; else one self-signed certificate from the openssl
    command line (it is its own CA)."""
    root = tmp_path_factory.mktemp("asgi_tests_tls")
    files = TlsFiles(root / "ca.pem", root / "cert.pem", root / "key.pem")
    try:
        import trustme
    except ImportError:
        if shutil.which("openssl") is None:
            pytest.skip("needs trustme or the openssl command line to make a certificate")
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
            + ["-keyout", str(files.key), "-out", str(files.cert), "-days", "2", "-subj", "/CN=localhost"]
            + ["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
            check=True,
            capture_output=True,
            timeout=60,
        )
        shutil.copy(files.cert, files.ca)
        return files
    ca = trustme.CA()
    leaf = ca.issue_cert("localhost", "127.0.0.1")
    ca.cert_pem.write_to_path(str(files.ca))
    leaf.cert_chain_pems[0].write_to_path(str(files.cert))
    leaf.private_key_pem.write_to_path(str(files.key))
    return files


@pytest.fixture
def tls_server(server_pool: ServerPool, require_option: Any, tls_files: TlsFiles) -> ServerProcess:
    require_option("ssl_certfile")
    return server_pool.get(
        PROBE_APP, [("ssl_keyfile", str(tls_files.key)), ("ssl_certfile", str(tls_files.cert))]
    )


@pytest.fixture
def context(tls_files: TlsFiles) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(tls_files.ca))


def https_url(server: ServerProcess, path: str) -> str:
    return f"https://{server.host}:{server.port}{path}"


def https_scope(server: ServerProcess, context: ssl.SSLContext) -> tuple[dict[str, Any], str]:
    """The scope of a GET over TLS, and the TLS version the client negotiated (e.g. ``TLSv1.3``)."""
    conn = http.client.HTTPSConnection(server.host, server.port, context=context, timeout=5)
    try:
        conn.request("GET", "/scope")
        response = conn.getresponse()
        body = response.read()
        assert response.status == 200, body
        assert isinstance(conn.sock, ssl.SSLSocket)
        version = conn.sock.version() or ""
    finally:
        conn.close()
    scope: dict[str, Any] = untag(json.loads(body))["scope"]
    return scope, version


def still_serving(server: ServerProcess, context: ssl.SSLContext) -> None:
    response = httpx.get(https_url(server, "/scope"), verify=context, timeout=5.0)
    assert response.status_code == 200


def closed_by_server(sock: socket.socket, timeout: float) -> bool:
    """True once the server closed ``sock`` (what it sent first, e.g. a TLS alert, is dropped)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            data = sock.recv(65536)
        except TimeoutError:
            return False
        except ConnectionResetError:
            return True
        if not data:
            return True
        assert not data.startswith(b"HTTP/"), f"a plain HTTP answer on the TLS port: {data[:80]!r}"
    return False


def client_hello() -> bytes:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


@pytest.mark.spec
def test_https_scope_scheme(tls_server: ServerProcess, context: ssl.SSLContext) -> None:
    # spec H1: scheme is "https" on a TLS connection
    scope, _ = https_scope(tls_server, context)
    assert scope["scheme"] == "https"


@pytest.mark.spec
def test_wss_scope_scheme(tls_server: ServerProcess, context: ssl.SSLContext) -> None:
    # spec W1: scheme is "wss" on a TLS connection
    from websockets.sync.client import connect

    with connect(f"wss://{tls_server.host}:{tls_server.port}/ws/scope", ssl=context, open_timeout=5) as ws:
        scope = untag(json.loads(ws.recv(timeout=5)))
    assert scope["scheme"] == "wss"


@pytest.mark.spec
def test_tls_extension_fields(
    tls_server: ServerProcess, context: ssl.SSLContext, tls_files: TlsFiles
) -> None:
    # the ASGI TLS extension (spec G8: advertised only when really provided); fields per the TLS spec
    scope, version = https_scope(tls_server, context)
    tls = (scope.get("extensions") or {}).get("tls")
    if tls is None:
        pytest.skip("the server does not provide the ASGI tls extension")
    assert tls["server_cert"] in (None, tls_files.cert.read_text())
    assert list(tls["client_cert_chain"]) == []
    assert tls["client_cert_name"] is None
    assert tls["client_cert_error"] is None
    assert tls["tls_version"] == TLS_VERSIONS.get(version)
    assert isinstance(tls["cipher_suite"], int) and 0 < tls["cipher_suite"] < 0x10000


@pytest.mark.spec
def test_no_tls_extension_on_the_plain_port(server: ServerProcess) -> None:
    # spec G8: `tls` belongs to TLS connections only
    scope = untag(httpx.get(server.base_url + "/scope", timeout=5.0).json())["scope"]
    assert "tls" not in (scope.get("extensions") or {})


@pytest.mark.http1
def test_plain_http_on_the_tls_port_is_closed(tls_server: ServerProcess, context: ssl.SSLContext) -> None:
    with socket.create_connection((tls_server.host, tls_server.port), timeout=5) as sock:
        sock.sendall(b"GET /scope HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert closed_by_server(sock, 10.0)
    still_serving(tls_server, context)


@pytest.mark.http1
def test_garbage_and_truncated_handshakes_leave_others_served(
    tls_server: ServerProcess, context: ssl.SSLContext
) -> None:
    hello = client_hello()
    with socket.create_connection((tls_server.host, tls_server.port), timeout=5) as garbage:
        garbage.sendall(b"\x16\x03\x01\x00\x05hello")
        assert closed_by_server(garbage, 10.0)
    with socket.create_connection((tls_server.host, tls_server.port), timeout=5) as truncated:
        truncated.sendall(hello[: len(hello) // 2])
    still_serving(tls_server, context)


@pytest.mark.http1
def test_stalled_handshakes_do_not_block_other_clients(
    tls_server: ServerProcess, context: ssl.SSLContext
) -> None:
    hello = client_hello()
    stalled: list[socket.socket] = []
    try:
        for _ in range(50):
            sock = socket.create_connection((tls_server.host, tls_server.port), timeout=5)
            sock.sendall(hello[:30])
            stalled.append(sock)
        started = time.monotonic()
        still_serving(tls_server, context)
        assert time.monotonic() - started < 5.0
    finally:
        for sock in stalled:
            sock.close()
