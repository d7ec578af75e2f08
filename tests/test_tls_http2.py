"""HTTP/2 over TLS: the protocol chosen by ALPN (h2 preferred, http/1.1 fallback), limited by --http,
with curl, httpx and openssl as clients. Certificates come from the openssl command, so this runs on
free-threaded CPython too."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from server_process import ServerProcess, running

from tests import certs as pki

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(
        not pki.available(), reason="the openssl command line is needed to make test certificates"
    ),
]

PROBE = "tests.apps.probe:app"


@dataclass(frozen=True)
class ServerCerts:
    ca_file: Path
    cert_file: Path
    key_file: Path

    def server_options(self, *extra: str) -> list[str]:
        return ["--ssl-keyfile", str(self.key_file), "--ssl-certfile", str(self.cert_file), *extra]


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> ServerCerts:
    ca = pki.CA.create(tmp_path_factory.mktemp("h2-certs"), "h2-ca")
    server = ca.issue("server", "/CN=localhost", server=True)
    return ServerCerts(ca.cert, server.cert, server.key)


@pytest.fixture(scope="module", params=["1", "2"])
def server(request: pytest.FixtureRequest, certs: ServerCerts) -> Iterator[ServerProcess]:
    with running(PROBE, *certs.server_options("--threads", request.param)) as proc:
        yield proc


def https(server: ServerProcess) -> str:
    return f"https://localhost:{server.port}"


def test_httpx_negotiates_h2(server: ServerProcess, certs: ServerCerts) -> None:
    ctx = ssl.create_default_context(cafile=str(certs.ca_file))
    with httpx.Client(http2=True, verify=ctx, timeout=5) as client:
        responses = [client.post(https(server) + "/echo?n=" + str(i), content=b"x" * i) for i in range(3)]
    for i, response in enumerate(responses):
        assert response.http_version == "HTTP/2"
        seen = response.json()
        assert (seen["http_version"], seen["scheme"], seen["body"]) == ("2", "https", "x" * i)
        assert seen["headers"][0] == ["host", f"localhost:{server.port}"]  # :authority, first


def test_a_client_without_h2_gets_http11(server: ServerProcess, certs: ServerCerts) -> None:
    ctx = ssl.create_default_context(cafile=str(certs.ca_file))
    response = httpx.get(https(server) + "/echo", verify=ctx, timeout=5)
    assert response.http_version == "HTTP/1.1"
    assert response.json()["http_version"] == "1.1"


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_http2_over_tls(server: ServerProcess, certs: ServerCerts) -> None:
    out = subprocess.run(
        [
            "curl",
            "-sS",
            "--http2",
            "--cacert",
            str(certs.ca_file),
            "-w",
            "\n%{http_version}",
            https(server) + "/",
        ],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["ok", "2"]


def alpn_offer(server: ServerProcess, certs: ServerCerts, offer: str) -> str:
    """The ALPN protocol the server picks from ``offer`` (openssl s_client's report)."""
    out = subprocess.run(
        [
            "openssl",
            "s_client",
            "-connect",
            f"127.0.0.1:{server.port}",
            "-alpn",
            offer,
            "-CAfile",
            str(certs.ca_file),
        ],
        input="",
        capture_output=True,
        text=True,
        timeout=20,
    )
    for line in out.stdout.splitlines():
        if line.startswith("ALPN protocol:"):
            return line.split(":", 1)[1].strip()
        if line.startswith("No ALPN negotiated"):
            return ""
    raise AssertionError(out.stdout + out.stderr)


def test_alpn_prefers_h2_and_follows_http_option(certs: ServerCerts, tmp_path: Path) -> None:
    with running(PROBE, *certs.server_options()) as server:
        assert alpn_offer(server, certs, "http/1.1,h2") == "h2"
        assert alpn_offer(server, certs, "http/1.1") == "http/1.1"
    with running(PROBE, *certs.server_options("--http", "1")) as server:
        assert alpn_offer(server, certs, "h2,http/1.1") == "http/1.1"
    with running(PROBE, *certs.server_options("--http", "2")) as server:
        assert alpn_offer(server, certs, "h2,http/1.1") == "h2"


def test_scope_extensions_over_h2(server: ServerProcess, certs: ServerCerts) -> None:
    # spec G8 / issue 12 item 6: an h2 stream gets the same extensions as an HTTP/1.1 request on TLS
    ctx = ssl.create_default_context(cafile=str(certs.ca_file))
    with httpx.Client(http2=True, verify=ctx, timeout=5) as client:
        response = client.get(https(server) + "/spec")
    assert response.http_version == "HTTP/2"
    assert {"tls", "http.response.pathsend"} <= set(response.json()["extensions"])


def test_tls_extension_over_h2(certs: ServerCerts) -> None:
    ctx = ssl.create_default_context(cafile=str(certs.ca_file))
    with running("tests.apps.tls_app:app", *certs.server_options()) as server:
        with httpx.Client(http2=True, verify=ctx, timeout=5) as client:
            responses = [client.get(https(server) + f"/{i}") for i in range(2)]
    for response in responses:
        assert response.http_version == "HTTP/2"
        seen = response.json()
        assert seen["scheme"] == "https"
        tls = seen["tls"]
        assert tls["tls_version"] == 0x0304  # TLS 1.3
        assert tls["cipher_suite"] in (0x1301, 0x1302, 0x1303)
        assert tls["client_cert_chain"] == []
        assert tls["server_cert"] == certs.cert_file.read_text()
