"""turboasgi behind a real nginx, over TCP and over a unix socket, with the configurations that
docs/deployment.md shows (docs/deploy/nginx*.conf): what the application sees (client, scheme, host,
root_path, the URLs it builds) and what the client gets, for plain requests, WebSockets, Server-Sent
Events, large uploads and a shutdown while nginx holds keep-alive connections."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import ssl
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from nginx_process import NGINX, Nginx, free_port, self_signed_certificate, site_from_docs, upstream_address
from server_process import ServerProcess, poll, running
from websockets.sync.client import connect

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(NGINX is None, reason="nginx is not installed (Debian: apt-get install nginx)"),
]

APP = "tests.apps.proxied:app"
TRANSPORTS = ["tcp", "uds"]
# The client connects from another loopback address than nginx (127.0.0.1, the trusted proxy), so the
# client address the application sees tells where it came from.
CLIENT_ADDRESS = "127.0.0.2"

SiteFactory = Callable[[str, int], str]


@dataclass
class Stack:
    server: ServerProcess
    nginx: Nginx
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return self_signed_certificate(tmp_path_factory.mktemp("tls"))


def transport_options(transport: str, tmp_path: Path) -> list[str]:
    if transport == "uds":
        # over a unix socket the peer has no address; "unix:" trusts it (as uvicorn's option does)
        return ["--uds", str(tmp_path / "turboasgi.sock"), "--forwarded-allow-ips", "unix:"]
    return ["--forwarded-allow-ips", "127.0.0.1"]


@contextmanager
def behind_nginx(
    tmp_path: Path, transport: str, site: SiteFactory, *options: str, env: dict[str, str] | None = None
) -> Iterator[Stack]:
    with running(
        APP, "--proxy-headers", *transport_options(transport, tmp_path), *options, env=env
    ) as server:
        upstream = upstream_address(server.uds if server.uds else server.address)
        port = free_port()
        with Nginx(tmp_path / "nginx", site(upstream, port)) as nginx:
            nginx.start(port)
            yield Stack(server, nginx, port)


def documented_site(
    certificate: tuple[Path, Path], https_port: int = 0, body_limit: str = "100m"
) -> SiteFactory:
    """docs/deploy/nginx.conf with the test's addresses, certificate and (optionally) body limit."""
    cert, key = certificate

    def site(upstream: str, port: int) -> str:
        return site_from_docs(
            "nginx.conf",
            {
                "server 127.0.0.1:8000;": f"server {upstream};",
                "listen 80;": f"listen 127.0.0.1:{port};",
                "listen 443 ssl;": f"listen 127.0.0.1:{https_port or free_port()} ssl;",
                "/etc/ssl/certs/example.com.pem": str(cert),
                "/etc/ssl/private/example.com.key": str(key),
                "client_max_body_size 100m;": f"client_max_body_size {body_limit};",
            },
        )

    return site


def root_path_site(upstream: str, port: int) -> str:
    # nginx-root-path.conf uses the map and upstream blocks of nginx.conf
    shared = (Path(__file__).parent.parent / "docs/deploy/nginx.conf").read_text().split("\nserver {")[0]
    shared = shared.replace("server 127.0.0.1:8000;", f"server {upstream};")
    return shared + site_from_docs("nginx-root-path.conf", {"listen 80;": f"listen 127.0.0.1:{port};"})


def default_site(upstream: str, port: int) -> str:
    """nginx's defaults: HTTP/1.0 to the upstream, a new connection per request, buffered responses."""
    return f"server {{ listen 127.0.0.1:{port}; location / {{ proxy_pass http://{upstream}; }} }}\n"


def client(
    headers: dict[str, str] | None = None, verify: bool | ssl.SSLContext = True, timeout: float = 5.0
) -> httpx.Client:
    """An httpx client connecting from CLIENT_ADDRESS."""
    transport = httpx.HTTPTransport(local_address=CLIENT_ADDRESS, verify=verify)
    return httpx.Client(transport=transport, timeout=timeout, headers=headers)


# ------------------------------------------------------------------------------ nginx's defaults


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_default_proxy_http10_one_connection_per_request(tmp_path: Path, transport: str) -> None:
    with behind_nginx(tmp_path, transport, default_site, "--no-proxy-headers") as stack, client() as http:
        seen = [http.get(f"{stack.url}/whoami").json() for _ in range(3)]
        # a streamed response over HTTP/1.0 (no chunked encoding: the end of the body is the close)
        stream_id = uuid.uuid4().hex
        assert http.get(f"{stack.url}/sse/release?id={stream_id}").text == "released"
        streamed = http.get(f"{stack.url}/sse?id={stream_id}")
    assert {s["http_version"] for s in seen} == {"1.0"}
    assert streamed.status_code == 200
    assert streamed.text == "data: first\n\ndata: second\n\n"
    if transport == "tcp":
        # nginx's own address, a new connection (port) each time
        assert {s["client"][0] for s in seen} == {"127.0.0.1"}
        assert len({s["client"][1] for s in seen}) == 3
        assert {s["host"] for s in seen} == {f"127.0.0.1:{stack.server.port}"}  # nginx's $proxy_host
    else:
        assert {s["client"] for s in seen} == {None}
        assert {s["host"] for s in seen} == {"localhost"}


# ------------------------------------------------------------------------------ the documented config


def test_keepalive_pool_reuses_upstream_connections(tmp_path: Path, certificate: tuple[Path, Path]) -> None:
    site = documented_site(certificate)
    with behind_nginx(tmp_path, "tcp", site, "--no-proxy-headers") as stack:
        seen = []
        for _ in range(10):
            with client() as http:  # a new client connection to nginx each time
                seen.append(http.get(f"{stack.url}/whoami").json())
    assert {s["http_version"] for s in seen} == {"1.1"}
    ports = Counter(s["client"][1] for s in seen)
    assert len(ports) == 1, f"nginx should reuse one upstream connection, used {ports}"


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_forwarded_headers(tmp_path: Path, transport: str, certificate: tuple[Path, Path]) -> None:
    https_port = free_port()
    with behind_nginx(tmp_path, transport, documented_site(certificate, https_port)) as stack:
        with client(headers={"host": "example.com"}) as http:
            plain = http.get(f"{stack.url}/whoami").json()
            # a client cannot choose its address by sending its own X-Forwarded-For: nginx appends the
            # real one, and the server takes the last address not from a trusted proxy
            spoofed = http.get(f"{stack.url}/whoami", headers={"x-forwarded-for": "203.0.113.9"}).json()
        trust = ssl.create_default_context(cafile=str(certificate[0]))
        with client(headers={"host": "example.com"}, verify=trust) as https:
            secure = https.get(f"https://127.0.0.1:{https_port}/whoami").json()
    assert plain["client"][0] == CLIENT_ADDRESS
    assert plain["scheme"] == "http"
    assert plain["host"] == "example.com"
    assert plain["url_for"] == "http://example.com/whoami"
    assert spoofed["client"][0] == CLIENT_ADDRESS
    assert secure["client"][0] == CLIENT_ADDRESS
    assert secure["scheme"] == "https"  # from X-Forwarded-Proto: nginx terminated TLS
    assert secure["url_for"] == "https://example.com/whoami"


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_websocket_proxied(tmp_path: Path, transport: str, certificate: tuple[Path, Path]) -> None:
    with behind_nginx(tmp_path, transport, documented_site(certificate)) as stack:
        with connect(f"ws://127.0.0.1:{stack.port}/ws", open_timeout=5) as ws:
            seen = json.loads(ws.recv(timeout=5))
            ws.send("hello")
            assert ws.recv(timeout=5) == "hello"
            ws.send(b"\x00\x01" * 40_000)
            assert ws.recv(timeout=5) == b"\x00\x01" * 40_000
        # the same keep-alive pool still serves plain requests after the upgraded connection
        with client() as http:
            assert http.get(f"{stack.url}/whoami").json()["http_version"] == "1.1"
    assert seen["scheme"] == "ws"
    assert seen["client"][0] == "127.0.0.1"  # websockets' client connects from 127.0.0.1
    assert seen["host"] == "127.0.0.1"  # nginx's $host: the name without the port
    assert seen["url_for"] == "ws://127.0.0.1/ws"


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_server_sent_events_arrive_unbuffered(
    tmp_path: Path, transport: str, certificate: tuple[Path, Path]
) -> None:
    stream_id = uuid.uuid4().hex
    with behind_nginx(tmp_path, transport, documented_site(certificate)) as stack, client() as http:
        with http.stream("GET", f"{stack.url}/sse?id={stream_id}") as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            chunks = response.iter_raw()
            # the app holds the second event until released: if the first were held back anywhere
            # (turboasgi or nginx), this read would time out. (nginx 1.22 passes it on promptly with
            # proxy_buffering on as well; the documented config turns buffering off for long streams.)
            first = next(chunks)
            with client() as other:
                assert other.get(f"{stack.url}/sse/release?id={stream_id}").text == "released"
            rest = b"".join(chunks)
    assert first == b"data: first\n\n"
    assert rest == b"data: second\n\n"


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_large_uploads(tmp_path: Path, transport: str, certificate: tuple[Path, Path]) -> None:
    body = os.urandom(8 * 1024 * 1024)
    expected = {"size": len(body), "sha256": hashlib.sha256(body).hexdigest()}

    def chunked() -> Iterator[bytes]:
        for start in range(0, len(body), 256 * 1024):
            yield body[start : start + 256 * 1024]

    with behind_nginx(tmp_path, transport, documented_site(certificate)) as stack, client() as http:
        assert http.post(f"{stack.url}/upload", content=body).json() == expected
        assert http.post(f"{stack.url}/upload", content=chunked()).json() == expected


def test_upload_above_client_max_body_size_stops_at_nginx(
    tmp_path: Path, certificate: tuple[Path, Path]
) -> None:
    site = documented_site(certificate, body_limit="1m")
    with behind_nginx(tmp_path, "tcp", site) as stack, client() as http:
        response = http.post(f"{stack.url}/upload", content=b"x" * (2 * 1024 * 1024))
        assert http.get(f"{stack.url}/whoami").status_code == 200
        stack.server.wait_for_output('"GET /whoami HTTP/1.1" 200')
    assert response.status_code == 413
    assert "/upload" not in stack.server.stdout, "the application must not see the refused upload"


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_root_path_behind_a_path_prefix(tmp_path: Path, transport: str) -> None:
    with behind_nginx(tmp_path, transport, root_path_site, "--root-path", "/api") as stack:
        with client(headers={"host": "example.com"}) as http:
            inside = http.get(f"{stack.url}/api/whoami")
            outside = http.get(f"{stack.url}/whoami")
        with connect(f"ws://127.0.0.1:{stack.port}/api/ws", open_timeout=5) as ws:
            ws_seen = json.loads(ws.recv(timeout=5))
    assert inside.status_code == 200
    seen = inside.json()
    assert seen["root_path"] == "/api"
    assert seen["path"] == "/api/whoami"  # ASGI: path includes root_path
    assert seen["url_for"] == "http://example.com/api/whoami"
    assert outside.status_code == 404  # no location outside the prefix: nginx's own answer
    assert ws_seen["root_path"] == "/api"
    assert ws_seen["url_for"] == "ws://127.0.0.1/api/ws"


# ------------------------------------------------------------------------------ shutdown


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_sigterm_with_keepalive_connections_loses_no_request(
    tmp_path: Path, transport: str, certificate: tuple[Path, Path]
) -> None:
    """Clients keep requests in flight through nginx's keep-alive pool while turboasgi gets SIGTERM.
    Every request the application started must be answered and reach its client with 200; a request
    nginx could not deliver any more is a 502 that the application never saw; nothing else."""
    clients, per_client_limit = 8, 200
    journal = tmp_path / "journal"
    outcomes: dict[str, int | str] = {}
    lock = threading.Lock()

    def journal_lines() -> list[str]:
        return journal.read_text().splitlines() if journal.exists() else []

    def run_client(index: int, url: str) -> None:
        with client(timeout=15.0) as http:
            for n in range(per_client_limit):
                request_id = f"{index}-{n}"
                try:
                    status: int | str = http.get(f"{url}/slow?id={request_id}&ms=300").status_code
                except httpx.HTTPError as exc:
                    status = repr(exc)
                with lock:
                    outcomes[request_id] = status
                if status != 200:
                    return  # the first refused request ends this client

    env = {"PROXIED_JOURNAL": str(journal)}
    with behind_nginx(tmp_path, transport, documented_site(certificate), env=env) as stack:
        threads = [threading.Thread(target=run_client, args=(i, stack.url)) for i in range(clients)]
        for thread in threads:
            thread.start()
        # every client has had at least one request answered, and requests are in flight
        poll(lambda: Counter(line.split()[0] for line in journal_lines())["end"] >= 2 * clients, 20.0)
        stack.server.send_signal(signal.SIGTERM)
        lines_at_signal = journal_lines()
        # as uvicorn: SIGTERM is re-raised after the graceful shutdown
        assert stack.server.wait(20.0) == -signal.SIGTERM
        assert "Finished server process" in stack.server.stderr
        for thread in threads:
            thread.join(20.0)
        assert not any(thread.is_alive() for thread in threads)

    lines = journal_lines()
    started = {line.split()[1] for line in lines if line.startswith("start ")}
    ended = {line.split()[1] for line in lines if line.startswith("end ")}
    in_flight_at_signal = {line.split()[1] for line in lines_at_signal if line.startswith("start ")} - {
        line.split()[1] for line in lines_at_signal if line.startswith("end ")
    }
    answered = {request_id for request_id, status in outcomes.items() if status == 200}
    refused = {request_id for request_id, status in outcomes.items() if status == 502}

    assert in_flight_at_signal, "the signal must arrive while requests are in flight"
    assert in_flight_at_signal <= answered
    assert started == ended, "a request the application started was not finished"
    assert answered == ended, "every finished request must reach its client"
    assert not refused & started, "a 502 for a request the application saw"
    assert len(refused) == clients, f"one 502 per client, then it stops: {Counter(outcomes.values())}"
    assert set(outcomes) == answered | refused, f"other outcomes: {Counter(outcomes.values())}"
