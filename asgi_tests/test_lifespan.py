"""Lifespan protocol (L1-L7): order, state, failures. Failure and shutdown tests start their own server."""

from __future__ import annotations

import signal
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from asgi_tests.apps import lifespan_apps
from asgi_tests.client import RawClient, get_json
from asgi_tests.harness import ServerProcess

pytestmark = pytest.mark.lifespan

Launch = Callable[..., ServerProcess]
PROBE = "asgi_tests.apps.probe:app"


def record_file() -> Path:
    handle = tempfile.NamedTemporaryFile(prefix="asgi_tests-record-", suffix=".txt", delete=False)
    handle.close()
    RECORD_FILES.append(Path(handle.name))
    return Path(handle.name)


RECORD_FILES: list[Path] = []


@pytest.fixture(autouse=True)
def _remove_record_files() -> Iterator[None]:
    yield
    while RECORD_FILES:
        RECORD_FILES.pop().unlink(missing_ok=True)


def lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").split()


def wait_for_line(path: Path, line: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while line not in lines(path):
        assert time.monotonic() < deadline, f"{line!r} never recorded; got {lines(path)}"
        time.sleep(0.02)


def launch_recorded(launch: Launch, app: str = PROBE) -> tuple[ServerProcess, Path]:
    path = record_file()
    server = launch(app, env={"ASGI_TESTS_RECORD": str(path)})
    server.wait_ready()
    return server, path


# ------------------------------------------------------------------------------ observed on the main server


@pytest.mark.spec
def test_lifespan_scope(server: ServerProcess) -> None:
    # spec L1
    info = get_json(server.base_url, "/lifespan-info")
    assert info["scope"] is not None, "the app was never called with a lifespan scope"
    assert info["scope"]["type"] == "lifespan"
    assert info["scope"]["asgi"]["version"] == "3.0"


@pytest.mark.spec
def test_lifespan_state_is_empty_dict(server: ServerProcess) -> None:
    # spec L1: state starts as an empty dict
    info = get_json(server.base_url, "/lifespan-info")
    assert info["state_type"] == "dict"
    assert info["state_initial"] == {}


@pytest.mark.spec
def test_lifespan_on_request_loop(server: ServerProcess) -> None:
    # spec L2: lifespan runs on the event loop that serves requests
    # (a server may run several loops: then each has its own lifespan run)
    info = get_json(server.base_url, "/lifespan-info")
    assert info["request_loop_id"] in info["loop_ids"]


@pytest.mark.spec
def test_lifespan_startup_once(server: ServerProcess) -> None:
    # spec L2: one startup per loop, not per request
    before = get_json(server.base_url, "/lifespan-info")
    for _ in range(3):
        get_json(server.base_url, "/count")
    info = get_json(server.base_url, "/lifespan-info")
    assert info["startups"] == before["startups"] >= 1
    assert len(set(info["loop_ids"])) == info["startups"], "more than one startup on one loop"
    assert info["events"] == ["lifespan.startup"] * info["startups"]


@pytest.mark.spec
def test_lifespan_state_reaches_requests(server: ServerProcess) -> None:
    # spec L7
    state = get_json(server.base_url, "/state")["state"]
    assert state is not None and state.get("probe_started") == "yes"
    assert state.get("probe_nested") == {"shared": "value"}


# -------------------------------------------------------------------------------------------- own servers


@pytest.mark.spec
def test_startup_completes_before_serving(launch: Launch) -> None:
    # spec L4: no request is served before lifespan.startup.complete
    path = record_file()
    server = launch("asgi_tests.apps.lifespan_apps:slow", env={"ASGI_TESTS_RECORD": str(path)})
    deadline = time.monotonic() + 20
    body = None
    while body is None:
        assert time.monotonic() < deadline, server.describe()
        assert server.proc is not None and server.proc.poll() is None, server.describe()
        try:
            body = httpx.get(server.base_url + "/startup-status", timeout=5).content
        except httpx.TransportError:
            time.sleep(0.02)
    assert body == b"complete"
    recorded = lines(path)
    assert recorded.index("startup-done") < recorded.index("request")


@pytest.mark.spec
def test_startup_failed_exits_nonzero(launch: Launch) -> None:
    # spec L5: lifespan.startup.failed -> the message is logged and the server exits non-zero
    server = launch("asgi_tests.apps.lifespan_apps:startup_failed")
    code = server.wait_exit(20)
    assert code is not None, "server still running after lifespan.startup.failed:\n" + server.describe()
    assert code != 0
    assert lifespan_apps.STARTUP_FAILED_MESSAGE in server.output()


@pytest.mark.spec
def test_startup_failed_serves_nothing(launch: Launch) -> None:
    # spec L5: a failed startup never serves requests
    server = launch("asgi_tests.apps.lifespan_apps:startup_failed")
    served = False
    deadline = time.monotonic() + 20
    while server.wait_exit(0.05) is None and time.monotonic() < deadline:
        try:
            served = served or httpx.get(server.base_url + "/head", timeout=1).status_code == 200
        except httpx.TransportError:
            pass
    assert server.proc is not None and server.proc.poll() is not None, "server did not exit"
    assert not served


@pytest.mark.spec
def test_unsupported_lifespan_still_serves(launch: Launch) -> None:
    # spec L3: an app that raises on the lifespan scope is served anyway
    server = launch("asgi_tests.apps.lifespan_apps:unsupported").wait_ready()
    assert httpx.get(server.base_url + "/head", timeout=5).content == b"hello world"


@pytest.mark.spec
def test_unsupported_lifespan_logged(launch: Launch) -> None:
    # spec L3: the server logs that lifespan is unsupported
    server = launch("asgi_tests.apps.lifespan_apps:unsupported").wait_ready()
    httpx.get(server.base_url + "/head", timeout=5)
    assert "lifespan" in server.output().lower(), server.describe()


@pytest.mark.spec
def test_shutdown_event_on_sigint(launch: Launch) -> None:
    # spec L6: SIGINT -> lifespan.shutdown is sent and the server exits
    server, path = launch_recorded(launch)
    assert httpx.get(server.base_url + "/head", timeout=5).status_code == 200
    server.signal(signal.SIGINT)
    assert server.wait_exit(10) is not None, "server did not exit after SIGINT:\n" + server.describe()
    assert lines(path)[-1] == "lifespan.shutdown"
    assert lines(path)[0] == "lifespan.startup"


@pytest.mark.spec
def test_shutdown_event_on_sigterm(launch: Launch) -> None:
    # spec L6
    server, path = launch_recorded(launch)
    server.signal(signal.SIGTERM)
    assert server.wait_exit(10) is not None, "server did not exit after SIGTERM:\n" + server.describe()
    assert "lifespan.shutdown" in lines(path)


@pytest.mark.spec
def test_shutdown_waits_for_complete(launch: Launch) -> None:
    # spec L6: the server waits for lifespan.shutdown.complete before exiting
    server, path = launch_recorded(launch, "asgi_tests.apps.lifespan_apps:slow")
    server.signal(signal.SIGINT)
    assert server.wait_exit(10) is not None
    recorded = lines(path)
    assert "shutdown-begin" in recorded
    assert "shutdown-end" in recorded, f"server exited before the app completed shutdown: {recorded}"


@pytest.mark.spec
def test_shutdown_failed_logged(launch: Launch) -> None:
    # spec L6: lifespan.shutdown.failed is logged
    server = launch("asgi_tests.apps.lifespan_apps:shutdown_failed").wait_ready()
    server.signal(signal.SIGINT)
    assert server.wait_exit(10) is not None
    assert lifespan_apps.SHUTDOWN_FAILED_MESSAGE in server.output(), server.describe()


@pytest.mark.spec
def test_inflight_request_finishes_before_shutdown(launch: Launch) -> None:
    # spec L6: in-flight requests finish, then lifespan.shutdown
    server, path = launch_recorded(launch)
    result: dict[str, object] = {}

    def slow_request() -> None:
        try:
            response = httpx.get(server.base_url + "/slow/x?delay=1.0", timeout=10)
            result["status"], result["body"] = response.status_code, response.content
        except httpx.HTTPError as exc:
            result["error"] = repr(exc)

    thread = threading.Thread(target=slow_request)
    thread.start()
    wait_for_line(path, "request-start")
    server.signal(signal.SIGINT)
    thread.join(15)
    assert result.get("status") == 200 and result.get("body") == b"slow done", result
    assert server.wait_exit(10) is not None
    recorded = lines(path)
    assert recorded.index("request-end") < recorded.index("lifespan.shutdown"), recorded


@pytest.mark.spec
def test_stops_accepting_on_shutdown(launch: Launch) -> None:
    # spec L6: after the signal no new connection is served
    server, path = launch_recorded(launch)
    thread = threading.Thread(
        target=lambda: httpx.get(server.base_url + "/slow/y?delay=2.0", timeout=10), daemon=True
    )
    thread.start()
    wait_for_line(path, "request-start")
    server.signal(signal.SIGINT)
    deadline = time.monotonic() + 1.8
    refused = False
    while time.monotonic() < deadline and not refused:
        try:
            with socket.create_connection((server.host, server.port), timeout=0.5) as sock:
                sock.sendall(b"GET /head HTTP/1.1\r\nHost: localhost\r\n\r\n")
                sock.settimeout(0.5)
                data = sock.recv(100)
                refused = not data.startswith(b"HTTP/1.1 200")
        except OSError:
            refused = True
        if not refused:
            time.sleep(0.05)
    assert refused, "new requests were still served during graceful shutdown"
    thread.join(10)


@pytest.mark.spec
def test_idle_keepalive_closed_on_shutdown(launch: Launch) -> None:
    # spec L6: idle keep-alive connections are closed, they do not hold the shutdown
    server, path = launch_recorded(launch)
    with RawClient(server.host, server.port) as client:
        assert client.request("GET", "/head").status == 200
        started = time.monotonic()
        server.signal(signal.SIGINT)
        assert client.is_closed(timeout=5.0), "idle keep-alive connection not closed at shutdown"
        assert server.wait_exit(5) is not None
        assert time.monotonic() - started < 5
    assert "lifespan.shutdown" in lines(path)
