"""Idle keep-alive connections: parked outside hyper after a second of idleness (hyper's buffers
freed), resumed by their next bytes, still bound by the keep-alive timeout and graceful shutdown.

Some tests wait out the idleness on purpose (``PARKED_AFTER``): parking is what happens after a
connection has been idle that long, so there is no event to wait for instead.
"""

from __future__ import annotations

import json
import resource
import signal
import socket
import time
from collections.abc import Iterator

import pytest
from server_process import RawClient, ServerProcess, poll, request_bytes, running
from test_websocket import proc_status_kib

pytestmark = pytest.mark.timeout(60)

PROBE = "tests.apps.probe:app"
# src/server/conn.rs PARK_AFTER (1 s), with room for a loaded machine.
PARKED_AFTER = 1.6
IDLE_CONNECTIONS = 2000
# What an idle keep-alive connection may cost once parked, the server's own growth for serving a
# burst included. Unparked: 14 (release build) to 20 KiB (debug build) of RSS, hyper's read and write
# buffers alone being 16 KiB; parked: 3 KiB, plus about 5 KiB per connection of that growth here.
PARKED_KIB_PER_CONNECTION = 12.0


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    # The server inherits the limit: both ends of every idle connection must fit.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = IDLE_CONNECTIONS + 200
    if soft < wanted:
        if hard != resource.RLIM_INFINITY and hard < wanted:
            pytest.skip(f"RLIMIT_NOFILE hard limit {hard} is below {wanted}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    try:
        with running(PROBE, "--timeout-keep-alive", "3600", "--no-access-log") as proc:
            yield proc
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def open_idle(server: ServerProcess, count: int, batch: int = 50) -> list[RawClient]:
    """``count`` connections, each having sent one request and read its answer, ``batch`` at a time
    (a thousand requests in flight at once would grow the app's heap, which is not what is measured)."""
    clients: list[RawClient] = []
    while len(clients) < count:
        opened = [RawClient(server.address) for _ in range(min(batch, count - len(clients)))]
        clients += opened
        for client in opened:
            client.send(request_bytes("GET", "/"))
        for client in opened:
            assert client.read_response().body == b"ok"
    return clients


def test_idle_connections_are_parked_and_cost_little_memory(server: ServerProcess) -> None:
    # The server has served a batch of requests at once before the baseline (its heap has grown to
    # that), so the growth measured is the idle connections'.
    for client in open_idle(server, 50):
        client.close()
    before = proc_status_kib(server.proc.pid)  # type: ignore[union-attr]
    clients = open_idle(server, IDLE_CONNECTIONS)
    try:

        def kib_per_connection() -> float:
            return (proc_status_kib(server.proc.pid) - before) / IDLE_CONNECTIONS  # type: ignore[union-attr]

        try:
            poll(lambda: kib_per_connection() < PARKED_KIB_PER_CONNECTION, timeout=15.0, interval=0.2)
        except TimeoutError:
            pytest.fail(f"idle connections still cost {kib_per_connection():.1f} KiB each")
        # Every parked connection comes back for its next request.
        for client in clients:
            client.send(request_bytes("GET", "/"))
        for client in clients:
            assert client.read_response().body == b"ok"
    finally:
        for client in clients:
            client.close()


def test_parked_connection_resumes_with_a_split_request_head(server: ServerProcess) -> None:
    with RawClient(server.address) as raw:
        raw.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        raw.send(request_bytes("GET", "/"))
        assert raw.read_response().body == b"ok"
        time.sleep(PARKED_AFTER)
        request = request_bytes("GET", "/echo", headers=[("X-Split", "yes")])
        raw.send(request[:7])  # what the parked socket reads first ...
        raw.send(request[7:])  # ... and what the resumed hyper connection reads on
        response = raw.read_response()
        assert response.status == 200
        echoed = json.loads(response.body)
        assert echoed["path"] == "/echo"
        assert ["x-split", "yes"] in echoed["headers"]


def test_parked_connection_resumes_with_pipelined_requests_and_a_body(server: ServerProcess) -> None:
    with RawClient(server.address) as raw:
        raw.send(request_bytes("GET", "/"))
        assert raw.read_response().body == b"ok"
        time.sleep(PARKED_AFTER)
        body = b"x" * 50_000  # more than the parked socket reads at once
        post = request_bytes("POST", "/echo", headers=[("Content-Length", str(len(body)))], body=body)
        raw.send(post + request_bytes("GET", "/"))
        first = raw.read_response()
        assert first.status == 200
        assert json.loads(first.body)["body"] == body.decode()
        assert raw.read_response().body == b"ok"


def test_requests_arriving_as_the_park_timer_runs_out_are_answered(server: ServerProcess) -> None:
    # A request read by hyper just as the 1 s idle timer fired used to be taken apart with its
    # connection (hyper had flushed, so the socket looked quiet): no answer ever came. Each request
    # here comes after an idle time a few milliseconds either side of the park time.
    with RawClient(server.address) as raw:
        raw.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        raw.send(request_bytes("GET", "/"))
        assert raw.read_response().body == b"ok"
        for idle_ms in range(960, 1050, 6):
            time.sleep(idle_ms / 1000)  # the idle time is what is tested
            raw.send(request_bytes("GET", "/"))
            assert raw.read_response().body == b"ok", f"after {idle_ms} ms idle"


def test_parked_connection_closed_at_the_keep_alive_timeout() -> None:
    with running(PROBE, "--timeout-keep-alive", "3") as proc, RawClient(proc.address) as raw:
        raw.send(request_bytes("GET", "/"))
        assert raw.read_response().body == b"ok"
        idle_since = time.monotonic()
        assert raw.closed_by_peer(timeout=8.0)
        idle = time.monotonic() - idle_since
        # Parked after 1 s, the keep-alive time still counts from the end of the response.
        assert 2.5 <= idle < 4.5, f"closed after {idle:.2f} s"


def test_parked_connection_closed_at_graceful_shutdown() -> None:
    with running(PROBE) as proc, RawClient(proc.address) as raw:
        raw.send(request_bytes("GET", "/"))
        assert raw.read_response().body == b"ok"
        time.sleep(PARKED_AFTER)
        started = time.monotonic()
        proc.send_signal(signal.SIGINT)
        assert raw.closed_by_peer(timeout=4.0), "the parked connection must be closed at shutdown"
        assert proc.wait() == 0
        assert time.monotonic() - started < 3.0  # well before the 5 s keep-alive timeout
