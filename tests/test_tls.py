"""TLS (rustls) with uvicorn's ``--ssl-*`` options, against real servers and real clients (httpx, curl,
``openssl s_client``, websockets over wss, raw sockets). Certificates are made at test time with the
openssl command line (``tests/certs.py``), and with ``cryptography`` for other key types and encrypted
keys where it is installed; only loopback addresses are used.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import select
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from server_process import ServerProcess, poll, running, turboasgi_server

from tests import certs as pki

pytestmark = pytest.mark.timeout(60)

TLS_APP = "tests.apps.tls_app:app"
TLS12, TLS13 = 0x0303, 0x0304


CLIENT_SUBJECT = "/O=Acme, Inc/CN=client one"
CLIENT_NAME_RFC4514 = "CN=client one,O=Acme\\, Inc"


@dataclass
class Certs:
    ca: pki.CA
    ca_file: Path
    cert_file: Path
    key_file: Path
    client_cert_file: Path
    client_key_file: Path
    client_cert_pem: str
    stranger_cert_file: Path  # a client certificate from a CA the server does not trust
    stranger_key_file: Path

    def server_options(self, *extra: str) -> list[str]:
        return ["--ssl-keyfile", str(self.key_file), "--ssl-certfile", str(self.cert_file), *extra]


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    if not pki.available():
        pytest.skip("the openssl command line is needed to make test certificates")
    root = tmp_path_factory.mktemp("certs")
    ca = pki.CA.create(root, "test-ca")
    server = ca.issue("server", "/CN=localhost", server=True)
    client = ca.issue("client", CLIENT_SUBJECT, server=False)
    stranger = pki.CA.create(root / "other", "other-ca").issue("stranger", "/CN=stranger", server=False)
    return Certs(
        ca=ca,
        ca_file=ca.cert,
        cert_file=server.cert,
        key_file=server.key,
        client_cert_file=client.cert,
        client_key_file=client.key,
        client_cert_pem=client.cert_pem,
        stranger_cert_file=stranger.cert,
        stranger_key_file=stranger.key,
    )


def client_context(
    certs: Certs,
    cert: tuple[Path, Path] | None = None,
    maximum: ssl.TLSVersion | None = None,
    minimum: ssl.TLSVersion | None = None,
) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(certs.ca_file))
    if cert is not None:
        ctx.load_cert_chain(str(cert[0]), str(cert[1]))
    if maximum is not None:
        ctx.maximum_version = maximum
    if minimum is not None:
        ctx.minimum_version = minimum
    return ctx


def unverified_context() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def get_tls(server: ServerProcess, ctx: ssl.SSLContext) -> dict[str, Any]:
    response = httpx.get(server.url + "/", verify=ctx, timeout=5.0)
    assert response.status_code == 200
    result: dict[str, Any] = response.json()
    return result


def assert_still_serving(server: ServerProcess, certs: Certs) -> None:
    assert get_tls(server, client_context(certs))["scheme"] == "https"


def client_hello() -> bytes:
    """The first flight of a real TLS client (a complete ClientHello record)."""
    ctx = unverified_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


def closed_by_server(sock: socket.socket, timeout: float) -> bool:
    """True when the server closes ``sock`` within ``timeout`` (anything it sends first, such as a TLS
    alert, is read and dropped)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            if not sock.recv(65536):
                return True
        except TimeoutError:
            return False
        except ConnectionResetError:
            return True
    return False


def connect(server: ServerProcess) -> socket.socket:
    return socket.create_connection(server.address, timeout=5.0)


@pytest.fixture(scope="module")
def server(certs: Certs) -> Iterator[ServerProcess]:
    """Client certificates optional (so one server shows both), debug log to see handshake failures."""
    options = certs.server_options("--ssl-cert-reqs", "1", "--ssl-ca-certs", str(certs.ca_file))
    with running(TLS_APP, *options, "--log-level", "debug") as proc:
        yield proc


# ------------------------------------------------------------------------------ serving


def test_https_scope_and_tls_extension(server: ServerProcess, certs: Certs) -> None:
    # spec G8 / the ASGI TLS extension: present on TLS connections, each field of the right type
    seen = get_tls(server, client_context(certs))
    assert seen["scheme"] == "https"
    tls = seen["tls"]
    assert tls["server_cert"] == certs.cert_file.read_text()
    assert tls["client_cert_chain"] == []
    assert tls["client_cert_name"] is None
    assert tls["client_cert_error"] is None
    assert tls["tls_version"] == TLS13
    assert tls["cipher_suite"] in (0x1301, 0x1302, 0x1303)


def test_client_certificate_reaches_the_scope(server: ServerProcess, certs: Certs) -> None:
    ctx = client_context(certs, cert=(certs.client_cert_file, certs.client_key_file))
    tls = get_tls(server, ctx)["tls"]
    # leaf first; OpenSSL clients may add the CA they found in their own trust store
    assert tls["client_cert_chain"][0] == certs.client_cert_pem
    assert all(pem.startswith("-----BEGIN CERTIFICATE-----\n") for pem in tls["client_cert_chain"])
    assert tls["client_cert_name"] == CLIENT_NAME_RFC4514


def test_tls_extension_is_not_shared_between_scopes(server: ServerProcess, certs: Certs) -> None:
    # built once per connection, but an app changing its scope's copy does not change the next request's
    with httpx.Client(verify=client_context(certs), timeout=5.0) as http:
        first = http.get(server.url + "/mutate").json()["tls"]
        second = http.get(server.url + "/").json()["tls"]
    assert first["tls_version"] == 0 and first["client_cert_chain"] is None  # the app's own change
    assert second["tls_version"] == TLS13 and second["client_cert_chain"] == []


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_with_cacert_and_client_cert(server: ServerProcess, certs: Certs) -> None:
    url = server.url + "/"
    plain = subprocess.run(
        ["curl", "-sS", "--max-time", "10", "--cacert", str(certs.ca_file), url],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert plain.returncode == 0, plain.stderr
    assert json.loads(plain.stdout)["tls"]["client_cert_chain"] == []
    mutual = subprocess.run(
        [
            "curl",
            "-sS",
            "--max-time",
            "10",
            "--cacert",
            str(certs.ca_file),
            "--cert",
            str(certs.client_cert_file),
            "--key",
            str(certs.client_key_file),
            url,
        ],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert mutual.returncode == 0, mutual.stderr
    assert json.loads(mutual.stdout)["tls"]["client_cert_chain"][0] == certs.client_cert_pem


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
def test_openssl_s_client_verifies_and_gets_h2_by_alpn(server: ServerProcess, certs: Certs) -> None:
    host, port = server.address
    result = subprocess.run(
        [
            "openssl",
            "s_client",
            "-connect",
            f"{host}:{port}",
            "-servername",
            "localhost",
            "-CAfile",
            str(certs.ca_file),
            "-alpn",
            "h2,http/1.1",
        ],
        input="",
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert "Verify return code: 0 (ok)" in result.stdout, result.stdout + result.stderr
    # the server prefers h2 (tests/test_tls_http2.py covers the fallback and --http)
    assert "ALPN protocol: h2" in result.stdout


def test_websocket_over_wss(server: ServerProcess, certs: Certs) -> None:
    from websockets.sync.client import connect as ws_connect

    host, port = server.address
    with ws_connect(f"wss://{host}:{port}/ws", ssl=client_context(certs), open_timeout=5) as ws:
        seen = json.loads(ws.recv(timeout=5))
        assert seen["scheme"] == "wss"
        assert seen["tls"]["tls_version"] == TLS13
        ws.send("over tls")
        assert ws.recv(timeout=5) == "over tls"


def test_session_tickets_come_with_the_first_response_and_resume(server: ServerProcess, certs: Certs) -> None:
    # Tickets sent the moment the handshake ends reach a client while it writes its first request;
    # Python's ssl read by one thread and written by another then sometimes drops that request.
    ctx = client_context(certs)
    with ctx.wrap_socket(connect(server), server_hostname="localhost") as tls:
        raw = socket.socket(fileno=os.dup(tls.fileno()))
        with raw:
            readable, _, _ = select.select([raw], [], [], 0.5)
            assert readable == [], "the server sent something after the handshake, before any request"
        tls.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        response = b""
        while chunk := tls.recv(65536):
            response += chunk
        assert response.startswith(b"HTTP/1.1 200")
        session = tls.session
    assert session is not None and session.has_ticket
    with ctx.wrap_socket(connect(server), server_hostname="localhost", session=session) as resumed:
        assert resumed.session_reused
        assert resumed.version() == "TLSv1.3"


def test_wss_handshakes_in_a_row_with_the_threaded_sync_client(server: ServerProcess, certs: Certs) -> None:
    # The websockets sync client reads in a thread of its own from before its first write: each
    # handshake stalled for its whole timeout about 1 time in 50 (3.11) to 1 in 3 (3.13t) while the
    # server sent its tickets right after the handshake.
    from websockets.sync.client import connect as ws_connect

    host, port = server.address
    ctx = client_context(certs)
    for _ in range(40):
        with ws_connect(f"wss://{host}:{port}/ws", ssl=ctx, open_timeout=5) as ws:
            assert json.loads(ws.recv(timeout=5))["scheme"] == "wss"


def test_proxy_headers_still_apply_over_tls(server: ServerProcess, certs: Certs) -> None:
    # --proxy-headers is unchanged: a trusted proxy (127.0.0.1 by default) may say the scheme was http
    response = httpx.get(
        server.url + "/", headers={"x-forwarded-proto": "http"}, verify=client_context(certs), timeout=5.0
    )
    assert response.json()["scheme"] == "http"


# ------------------------------------------------------------------------------ bad input


def test_plain_http_to_the_tls_port_is_closed(server: ServerProcess, certs: Certs) -> None:
    with connect(server) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert closed_by_server(sock, 5.0)
    assert_still_serving(server, certs)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"\x16\x03\x01\x00\x05hello", id="garbage-handshake-record"),
        pytest.param(bytes(range(256)) * 4, id="random-bytes"),
    ],
)
def test_garbage_client_hello_is_closed(server: ServerProcess, certs: Certs, data: bytes) -> None:
    with connect(server) as sock:
        sock.sendall(data)
        assert closed_by_server(sock, 5.0)
    assert_still_serving(server, certs)


def test_truncated_client_hello_then_close(server: ServerProcess, certs: Certs) -> None:
    hello = client_hello()
    with connect(server) as sock:
        sock.sendall(hello[: len(hello) // 2])
    assert_still_serving(server, certs)


def test_handshake_failures_log_at_debug_not_warning(server: ServerProcess, certs: Certs) -> None:
    with connect(server) as sock:
        sock.sendall(b"\x16\x03\x01\x00\x05hello-again")
        assert closed_by_server(sock, 5.0)
    server.wait_for_output("TLS handshake failed")
    failures = [line for line in server.stderr.splitlines() if "TLS handshake" in line]
    assert failures and all(line.startswith("DEBUG:") for line in failures), failures
    assert any(re.search(r"127\.0\.0\.1:\d+ - TLS handshake failed: ", line) for line in failures), failures


def test_sni_mismatch_fails_on_the_client_and_the_server_keeps_serving(
    server: ServerProcess, certs: Certs
) -> None:
    # one certificate for every name: the client refuses a name it does not cover
    with connect(server) as raw:
        with pytest.raises(ssl.SSLCertVerificationError):
            client_context(certs).wrap_socket(raw, server_hostname="other.example")
    assert_still_serving(server, certs)


def test_untrusted_client_certificate_is_refused(server: ServerProcess, certs: Certs) -> None:
    ctx = client_context(certs, cert=(certs.stranger_cert_file, certs.stranger_key_file))
    with pytest.raises(httpx.TransportError):
        # TLS 1.3: the client learns of the refusal on its first read
        httpx.get(server.url + "/", verify=ctx, timeout=5.0)
    assert_still_serving(server, certs)


def test_abrupt_close_mid_record(server: ServerProcess, certs: Certs) -> None:
    ctx = client_context(certs)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
    with connect(server) as sock:
        for _ in range(20):  # bounded: a TLS 1.3 handshake takes two round trips at most
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                sock.sendall(outgoing.read())
                data = sock.recv(65536)
                assert data, "server closed during the handshake"
                incoming.write(data)
        sock.sendall(outgoing.read())  # the client's Finished
        tls.write(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        record = outgoing.read()
        sock.sendall(record[: len(record) // 2])
    assert_still_serving(server, certs)


def test_unfinished_handshake_times_out(server: ServerProcess, certs: Certs) -> None:
    with connect(server) as sock:
        sock.sendall(client_hello()[:20])
        started = time.monotonic()
        assert closed_by_server(sock, 15.0)
        assert time.monotonic() - started > 5.0  # the 10 s handshake timeout, not an early close
    server.wait_for_output("TLS handshake timed out.")
    assert_still_serving(server, certs)


@pytest.mark.timeout(90)
def test_a_thousand_half_open_handshakes_do_not_stop_service(server: ServerProcess, certs: Certs) -> None:
    hello = client_hello()
    held: list[socket.socket] = []
    try:
        for _ in range(1000):
            sock = connect(server)
            sock.sendall(hello[:40])
            held.append(sock)
        started = time.monotonic()
        assert_still_serving(server, certs)
        assert time.monotonic() - started < 5.0
    finally:
        for sock in held:
            sock.close()


# ------------------------------------------------------------------------------ options


def test_required_client_certificate(certs: Certs) -> None:
    options = certs.server_options("--ssl-cert-reqs", "2", "--ssl-ca-certs", str(certs.ca_file))
    with running(TLS_APP, *options) as server:
        with pytest.raises(httpx.TransportError):
            httpx.get(server.url + "/", verify=client_context(certs), timeout=5.0)
        ctx = client_context(certs, cert=(certs.client_cert_file, certs.client_key_file))
        assert get_tls(server, ctx)["tls"]["client_cert_chain"][0] == certs.client_cert_pem


def test_tls12_only_with_a_chosen_cipher(certs: Certs) -> None:
    # trustme's keys are ECDSA P-256
    options = certs.server_options("--ssl-version", "771", "--ssl-ciphers", "ECDHE-ECDSA-AES128-GCM-SHA256")
    with running(TLS_APP, *options) as server:
        tls = get_tls(server, client_context(certs))["tls"]
        assert (tls["tls_version"], tls["cipher_suite"]) == (TLS12, 0xC02B)
        with pytest.raises(httpx.ConnectError):
            httpx.get(
                server.url + "/", verify=client_context(certs, minimum=ssl.TLSVersion.TLSv1_3), timeout=5
            )


def test_tls13_only(certs: Certs) -> None:
    with running(TLS_APP, *certs.server_options("--ssl-version", "772")) as server:
        assert get_tls(server, client_context(certs))["tls"]["tls_version"] == TLS13
        with pytest.raises(httpx.ConnectError):
            httpx.get(
                server.url + "/", verify=client_context(certs, maximum=ssl.TLSVersion.TLSv1_2), timeout=5
            )


def write_self_signed(root: Path, kind: str, key_format: str) -> list[str]:
    """A self-signed certificate for localhost with a new ``kind`` key written in ``key_format``
    (``traditional``: PKCS#1 for RSA, SEC1 for EC; ``pkcs8``)."""
    pytest.importorskip("cryptography")
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
    from cryptography.x509.oid import NameOID

    key: Any = {
        "rsa": lambda: rsa.generate_private_key(65537, 2048),
        "p256": lambda: ec.generate_private_key(ec.SECP256R1()),
        "p384": lambda: ec.generate_private_key(ec.SECP384R1()),
        "ed25519": ed25519.Ed25519PrivateKey.generate,
    }[kind]()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(datetime.datetime(2020, 1, 1))
        .not_valid_after(datetime.datetime(2100, 1, 1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, None if kind == "ed25519" else hashes.SHA256())
    )
    formats = {
        "traditional": serialization.PrivateFormat.TraditionalOpenSSL,
        "pkcs8": serialization.PrivateFormat.PKCS8,
    }
    cert_file, key_file = root / "server.crt", root / "server.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem = key.private_bytes(serialization.Encoding.PEM, formats[key_format], serialization.NoEncryption())
    key_file.write_bytes(pem)
    return ["--ssl-keyfile", str(key_file), "--ssl-certfile", str(cert_file)]


@pytest.mark.parametrize(
    ("kind", "key_format", "marker"),
    [
        pytest.param("rsa", "traditional", "RSA PRIVATE KEY", id="rsa-pkcs1"),
        pytest.param("rsa", "pkcs8", "BEGIN PRIVATE KEY", id="rsa-pkcs8"),
        pytest.param("p256", "traditional", "EC PRIVATE KEY", id="p256-sec1"),
        pytest.param("p384", "traditional", "EC PRIVATE KEY", id="p384-sec1"),
        pytest.param("p384", "pkcs8", "BEGIN PRIVATE KEY", id="p384-pkcs8"),
        pytest.param("ed25519", "pkcs8", "BEGIN PRIVATE KEY", id="ed25519-pkcs8"),
    ],
)
def test_key_formats(tmp_path: Path, kind: str, key_format: str, marker: str) -> None:
    options = write_self_signed(tmp_path, kind, key_format)
    assert marker in Path(options[1]).read_text()
    with running(TLS_APP, *options) as server:
        # the handshake proves the server signs with this key (the client checks CertificateVerify)
        response = httpx.get(server.url + "/", verify=unverified_context(), timeout=5.0)
        assert response.json()["scheme"] == "https"


def encrypt_key(certs: Certs, tmp_path: Path, traditional: bool, password: str) -> Path:
    """The server key encrypted with ``password`` by the openssl command line: traditional PEM
    (``Proc-Type: 4,ENCRYPTED``) or encrypted PKCS#8."""
    out = tmp_path / "encrypted.key"
    if traditional:
        args = ["ec", "-in", str(certs.key_file), "-aes256", "-passout", f"pass:{password}", "-out", str(out)]
    else:
        args = [
            "pkcs8",
            "-topk8",
            "-in",
            str(certs.key_file),
            "-passout",
            f"pass:{password}",
            "-out",
            str(out),
        ]
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)
    marker = "Proc-Type: 4,ENCRYPTED" if traditional else "BEGIN ENCRYPTED PRIVATE KEY"
    assert marker in out.read_text()
    return out


@pytest.mark.parametrize("traditional", [True, False], ids=["traditional-pem", "pkcs8"])
def test_encrypted_keys(tmp_path: Path, certs: Certs, traditional: bool) -> None:
    pytest.importorskip("cryptography")  # --ssl-keyfile-password decrypts with it
    key_file = encrypt_key(certs, tmp_path, traditional, "s3cret")
    base = ["--ssl-keyfile", str(key_file), "--ssl-certfile", str(certs.cert_file)]
    with running(TLS_APP, *base, "--ssl-keyfile-password", "s3cret") as server:
        assert_still_serving(server, certs)
    wrong = turboasgi_server(TLS_APP, *base, "--ssl-keyfile-password", "wrong")
    assert wrong.run_to_exit() == 1, wrong.output
    assert "--ssl-keyfile-password: cannot decrypt the key of --ssl-keyfile" in wrong.stderr


def test_key_in_the_certificate_file(tmp_path: Path, certs: Certs) -> None:
    # like ssl.SSLContext.load_cert_chain(): without --ssl-keyfile the key is read from --ssl-certfile
    combined = tmp_path / "combined.pem"
    combined.write_text(certs.cert_file.read_text() + certs.key_file.read_text())
    with running(TLS_APP, "--ssl-certfile", str(combined)) as server:
        assert_still_serving(server, certs)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--ssl-keyfile", "{key}", "--ssl-certfile", "{missing}"], "--ssl-certfile: cannot read"),
        (["--ssl-keyfile", "{missing}", "--ssl-certfile", "{cert}"], "--ssl-keyfile: cannot read"),
        (["--ssl-keyfile", "{key}"], "--ssl-certfile: required"),
        (["--ssl-keyfile", "{cert}", "--ssl-certfile", "{cert}"], "--ssl-keyfile: no PEM private key found"),
        (["--ssl-keyfile", "{key}", "--ssl-certfile", "{key}"], "--ssl-certfile: no PEM certificate found"),
        (
            ["--ssl-keyfile", "{client_key}", "--ssl-certfile", "{cert}"],
            "--ssl-keyfile: the private key does not",
        ),
        (["--ssl-version", "3"], "--ssl-version: 3 unsupported, use 17"),
        (["--ssl-cert-reqs", "7"], "--ssl-cert-reqs: 7 is not 0"),
        (
            ["--ssl-cert-reqs", "2"],
            "--ssl-cert-reqs: client certificates are requested but no --ssl-ca-certs",
        ),
        (["--ssl-ciphers", "HIGH:!aNULL"], '--ssl-ciphers: unsupported cipher "HIGH"; supported'),
        (["--ssl-ca-certs", "{key}", "--ssl-cert-reqs", "1"], "--ssl-ca-certs: no PEM certificate found"),
        (
            ["--ssl-version", "772", "--ssl-ciphers", "ECDHE-RSA-AES128-GCM-SHA256:TLS_AES_128_GCM_SHA256"],
            None,
        ),
    ],
)
def test_startup_errors_exit_1_naming_the_option(
    tmp_path: Path, certs: Certs, options: list[str], message: str
) -> None:
    values = {
        "key": str(certs.key_file),
        "cert": str(certs.cert_file),
        "client_key": str(certs.client_key_file),
        "missing": str(tmp_path / "missing.pem"),
    }
    args = [option.format(**values) for option in options]
    if "--ssl-certfile" not in args and "--ssl-keyfile" not in args:
        args = certs.server_options(*args)
    if not message:  # a valid combination: it starts
        with running(TLS_APP, *args) as server:
            assert_still_serving(server, certs)
        return
    proc = turboasgi_server(TLS_APP, *args)
    assert proc.run_to_exit() == 1, proc.output
    errors = [line for line in proc.stderr.splitlines() if line.startswith("ERROR:")]
    assert len(errors) == 1 and message in errors[0], proc.output
    assert "Traceback" not in proc.stderr


def test_encrypted_key_without_password(tmp_path: Path, certs: Certs) -> None:
    key_file = encrypt_key(certs, tmp_path, False, "pw")
    proc = turboasgi_server(TLS_APP, "--ssl-keyfile", str(key_file), "--ssl-certfile", str(certs.cert_file))
    assert proc.run_to_exit() == 1
    assert "--ssl-keyfile: the key is encrypted; give its password with --ssl-keyfile-password" in proc.stderr


# ------------------------------------------------------------------------------ process models


@pytest.mark.parametrize(
    "mode", [["--threads", "2"], ["--workers", "2"], ["--reload"]], ids=["threads", "workers", "reload"]
)
def test_process_models_serve_tls(tmp_path: Path, certs: Certs, mode: list[str]) -> None:
    extra = ["--reload-dir", str(tmp_path)] if mode == ["--reload"] else []
    with running(TLS_APP, *certs.server_options(*mode, *extra)) as server:
        assert server.url.startswith("https://")
        poll(lambda: _serves(server, certs), timeout=20.0, what="an HTTPS answer")


def _serves(server: ServerProcess, certs: Certs) -> bool:
    try:
        return get_tls(server, client_context(certs))["tls"] is not None
    except httpx.TransportError:
        return False


def test_open_tls_connections_are_counted_once(certs: Certs) -> None:
    # the handshake and the HTTP driver of one connection are one open connection for metrics/shutdown
    pytest.importorskip("prometheus_client")
    from tests.test_metrics import scrape, value

    with running(TLS_APP, *certs.server_options("--metrics-port", "0")) as server:
        with httpx.Client(verify=client_context(certs), timeout=5.0) as http:
            assert http.get(server.url + "/").status_code == 200  # keep-alive: the connection stays open
            assert value(scrape(server), "turboasgi_connections_open") == 1


def test_certificate_chain_file_with_an_intermediate(tmp_path: Path, certs: Certs) -> None:
    # --ssl-certfile holds the chain: leaf, then the intermediate; clients trust only the root
    intermediate = certs.ca.child("intermediate")
    leaf = intermediate.issue("leaf", "/CN=localhost", server=True)
    chain_file, key_file = tmp_path / "chain.pem", leaf.key
    chain_file.write_text(leaf.cert_pem + intermediate.cert.read_text())
    assert chain_file.read_text().count("BEGIN CERTIFICATE") == 2
    with running(TLS_APP, "--ssl-keyfile", str(key_file), "--ssl-certfile", str(chain_file)) as server:
        assert_still_serving(server, certs)


def test_tls_over_a_unix_socket(tmp_path: Path, certs: Certs) -> None:
    path = str(tmp_path / "tls.sock")
    with running(TLS_APP, *certs.server_options("--uds", path)):
        transport = httpx.HTTPTransport(uds=path, verify=client_context(certs))
        with httpx.Client(transport=transport, timeout=5.0) as http:
            seen = http.get("https://localhost/").json()
    assert seen["scheme"] == "https" and seen["tls"]["tls_version"] == TLS13
