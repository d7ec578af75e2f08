"""``--workers``: the supervisor process, worker replacement, rolling restarts and request limits."""

from __future__ import annotations

import http.client
import os
import re
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.server_process import ServerProcess, poll, turboasgi_server

APP = "tests.apps.workers_app:app"


def get_pid(server: ServerProcess, timeout: float = 5.0) -> int:
    """One request on a fresh connection; the serving worker's PID."""
    host, port = server.address
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", "/pid", headers={"Connection": "close"})
        response = conn.getresponse()
        body = response.read()
        assert response.status == 200, (response.status, body)
        return int(body)
    finally:
        conn.close()


def try_pid(server: ServerProcess) -> int | None:
    try:
        return get_pid(server, timeout=2.0)
    except (OSError, http.client.HTTPException):
        return None


def worker_pids(server: ServerProcess, count: int, timeout: float = 10.0) -> set[int]:
    """Poll until ``count`` distinct workers have answered."""
    seen: set[int] = set()

    def enough() -> bool:
        pid = try_pid(server)
        if pid is not None:
            seen.add(pid)
        return len(seen) >= count

    poll(enough, timeout, interval=0.0, what=f"{count} distinct workers")
    return seen


class ClientLoop:
    """Sequential requests on fresh connections in a thread, recording every PID and failure."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.pids: list[int] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.pids.append(get_pid(self.server))
            except Exception as exc:  # every failure counts, whatever its kind
                self.failures.append(repr(exc))

    def __enter__(self) -> ClientLoop:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


def check_no_failures(failures: list[str]) -> None:
    # A connection accepted just before a worker's graceful shutdown still gets its answer.
    assert not failures, failures[:5]


@contextmanager
def workers(*options: str, env: dict[str, str] | None = None) -> Iterator[ServerProcess]:
    server = turboasgi_server(APP, "--no-access-log", *options, env=env)
    server.start()
    try:
        yield server
    finally:
        if server.running:
            server.stop(signal.SIGTERM)
        server.close()


def started_pids(output: str) -> list[int]:
    return [int(pid) for pid in re.findall(r"Started server process \[(\d+)\]", output)]


@pytest.mark.timeout(60)
def test_supervisor_logs_and_graceful_stop() -> None:
    with workers("--workers", "2") as server:
        pids = worker_pids(server, 2)
        assert server.proc is not None
        assert f"Started parent process [{server.proc.pid}]" in server.stderr
        code = server.stop(signal.SIGTERM)
        assert code == 0, server.output
        err = server.stderr
        for pid in pids:
            assert f"Waiting for child process [{pid}]" in err
            assert f"Finished server process [{pid}]" in err
        assert f"Stopping parent process [{server.proc.pid}]" in err
        for pid in pids:  # no orphan left behind
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)


@pytest.mark.timeout(60)
def test_sigint_stops_with_status_0() -> None:
    with workers("--workers", "2", "--http", "httptools") as server:
        worker_pids(server, 2)
        assert server.stop(signal.SIGINT) == 0, server.output
        # a compatibility-only option says once, not once per worker, that it is ignored (issue 10 item 10)
        assert server.stderr.count("--http httptools is accepted for compatibility and ignored") == 1


@pytest.mark.timeout(60)
def test_web_concurrency_sets_workers() -> None:
    with workers(env={"WEB_CONCURRENCY": "2"}) as server:
        worker_pids(server, 2)
        assert "Started parent process" in server.stderr


@pytest.mark.timeout(60)
def test_killed_worker_is_replaced() -> None:
    with workers("--workers", "2") as server:
        pids = worker_pids(server, 2)
        victim = min(pids)
        os.kill(victim, signal.SIGKILL)
        server.wait_for_output(f"Child process [{victim}] died")

        def replaced() -> bool:
            pid = try_pid(server)
            return pid is not None and pid not in pids

        poll(replaced, 15, interval=0.0, what="a replacement worker serving")
        assert len(started_pids(server.stderr)) == 3


@pytest.mark.timeout(60)
def test_sighup_restarts_every_worker_without_failures() -> None:
    with workers("--workers", "2") as server:
        old = worker_pids(server, 2)
        assert server.proc is not None
        with ClientLoop(server) as client:
            poll(lambda: len(client.pids) > 20, 10, what="the client loop")
            server.send_signal(signal.SIGHUP)
            for pid in old:
                server.wait_for_output(f"Child process [{pid}] stopped", timeout=20)
            count = len(client.pids)
            poll(lambda: len(client.pids) > count + 20, 10, what="requests after the restart")
        new = set(client.pids[-10:])
        assert new and not new & old, (old, new)
        assert len(started_pids(server.stderr)) == 4
        check_no_failures(client.failures)


@pytest.mark.timeout(60)
def test_limit_max_requests_recycles_a_worker_without_failures() -> None:
    # (with --workers 1 there is no supervisor, like uvicorn: the server just exits at the limit)
    with workers("--workers", "2", "--limit-max-requests", "100") as server:
        with ClientLoop(server) as client:
            poll(lambda: len(set(client.pids)) >= 3, 30, interval=0.01, what="a recycled worker")
        err = server.stderr
        recycled = [
            int(pid) for pid in re.findall(r"Child process \[(\d+)\] exited; starting a new one", err)
        ]
        assert recycled, err
        for pid in recycled:
            assert client.pids.count(pid) >= 100
        assert "Maximum request limit of 100 exceeded. Terminating process." in err
        assert "died" not in err
        check_no_failures(client.failures)


@pytest.mark.timeout(60)
def test_workers_and_threads_combine() -> None:
    # extra loops log their lifespan progress at debug level
    with workers("--workers", "2", "--threads", "2", "--log-level", "debug") as server:
        worker_pids(server, 2)
        assert server.stderr.count("Waiting for application startup.") == 4  # once per loop


@pytest.mark.timeout(60)
def test_worker_startup_failure_stops_the_supervisor() -> None:
    server = turboasgi_server("tests.apps.startup_failed:app", "--workers", "2")
    try:
        code = server.run_to_exit(timeout=30)
        err = server.stderr
    finally:
        server.close()
    assert code == 3, err
    assert "failed to start (exit status 3); stopping." in err
    assert len(started_pids(err)) <= 2  # no restart loop
    assert "Stopping parent process" in err


@pytest.mark.timeout(60)
def test_import_error_in_workers_exits_3() -> None:
    server = turboasgi_server("tests.apps.no_such_module_xyz:app", "--workers", "2")
    try:
        code = server.run_to_exit(timeout=30)
        err = server.stderr
    finally:
        server.close()
    assert code == 3, err
    assert 'Could not import module "tests.apps.no_such_module_xyz"' in err


def test_max_requests_jitter_is_drawn_per_process() -> None:
    import asyncio

    from turboasgi.config import Config
    from turboasgi.server import Server

    class FakeCore:
        def __init__(self, count: int) -> None:
            self.count = count

        def request_count(self) -> int:
            return self.count

    limits = set()
    for _ in range(30):
        config = Config(APP, log_config=None, limit_max_requests=10, limit_max_requests_jitter=5)
        server = Server(config)
        server.core = FakeCore(9)  # type: ignore[assignment]
        assert asyncio.run(server.on_tick(1)) is False
        server.core = FakeCore(15)  # type: ignore[assignment]
        assert asyncio.run(server.on_tick(1)) is True
        limit = server.limit_max_requests
        assert limit is not None
        assert 10 <= limit <= 15
        limits.add(limit)
        server.core = FakeCore(limit - 1)  # type: ignore[assignment]
        assert asyncio.run(server.on_tick(1)) is False  # drawn once, not per tick
    assert len(limits) > 1


@pytest.mark.timeout(30)
def test_non_string_app_with_workers_exits_3() -> None:
    import subprocess
    import sys

    from tests.server_process import clean_env

    code = (
        "import turboasgi\nasync def app(scope, receive, send): pass\nturboasgi.run(app, workers=2, port=0)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=20, env=clean_env()
    )
    assert result.returncode == 3
    assert "import string" in result.stderr


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (not yet reaped by init) counts as gone
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


@pytest.mark.timeout(60)
def test_workers_stop_when_the_supervisor_is_killed() -> None:
    with workers("--workers", "2") as server:
        pids = worker_pids(server, 2)
        server.send_signal(signal.SIGKILL)
        poll(lambda: not any(_alive(pid) for pid in pids), 15, what="orphaned workers to stop")
