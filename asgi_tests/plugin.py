"""pytest plugin of the conformance suite: options, server fixtures, markers.

``asgi_tests/conftest.py`` loads it when pytest is pointed at the package directory
(``pytest asgi_tests``). With ``--pyargs`` pytest registers command-line options only from plugins
loaded up front, so name it: ``pytest -p asgi_tests.plugin --pyargs asgi_tests ...``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from asgi_tests.client import get_json
from asgi_tests.harness import KNOWN_SERVERS, ServerFailed, ServerKind, ServerProcess

PROBE_APP = "asgi_tests.apps.probe:app"
GROUPS = ("spec", "http1", "http2", "websocket", "lifespan", "compat", "tls")
# What turboasgi does not do yet, by test name: each is a strict xfail so a fix shows up as XPASS.
TURBOASGI_KNOWN_GAPS: dict[str, str] = {
    "test_scope_header_order_and_duplicates_kept": "hyper's HeaderMap groups repeated names: interleaved "
    "duplicates (X-A, X-B, X-A) reach the app grouped by name (order within a name is kept)",
    "test_invalid_request_body_and_type": "requests rejected by hyper's own parser get its 400 with an "
    "empty body (the server's own checks answer with uvicorn's text)",
}
DEFAULT_TEST_TIMEOUT = 30.0
SUITE_DIR = Path(__file__).resolve().parent


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("asgi_tests", "ASGI server conformance suite")
    group.addoption(
        "--asgi-server",
        default="turboasgi",
        choices=sorted(KNOWN_SERVERS),
        help="known server to test (default: turboasgi)",
    )
    group.addoption(
        "--asgi-server-cmd",
        default=None,
        help="command for any other server, with {app}, {host}, {port} (and {python}) placeholders, e.g. "
        '"myserver {app} --host {host} --port {port}"; overrides --asgi-server',
    )
    group.addoption(
        "--asgi-server-name",
        default=None,
        help="name of the server started by --asgi-server-cmd (used in reports; default: custom)",
    )


def pytest_configure(config: pytest.Config) -> None:
    descriptions = {
        "spec": "ASGI specification assertions (G*, H*, W*, L*)",
        "http1": "RFC 9112 HTTP/1.1 behaviour on raw sockets",
        "http2": "HTTP/2 with prior knowledge (h2c): scope, streams, resets, forbidden headers",
        "websocket": "WebSocket (RFC 6455 + ASGI websocket scope)",
        "lifespan": "lifespan protocol",
        "compat": "uvicorn-observable behaviour the spec leaves open",
        "tls": "HTTPS/WSS scope and TLS-port robustness (servers with a known TLS option)",
    }
    for name, text in descriptions.items():
        config.addinivalue_line("markers", f"{name}: {text}")
    if not config.pluginmanager.hasplugin("timeout"):
        config.addinivalue_line("markers", "timeout(seconds): per-test timeout (needs pytest-timeout)")


def server_kind_from_config(config: pytest.Config) -> ServerKind:
    cmd = config.getoption("--asgi-server-cmd", default=None)
    if cmd:
        name = config.getoption("--asgi-server-name", default=None) or "custom"
        return ServerKind(name, cmd)
    return KNOWN_SERVERS[config.getoption("--asgi-server", default="turboasgi")]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    kind = server_kind_from_config(config)
    has_timeout = config.pluginmanager.hasplugin("timeout")
    for item in items:
        if SUITE_DIR not in Path(item.path).resolve().parents:
            continue
        if kind.name == "turboasgi" and item.name in TURBOASGI_KNOWN_GAPS:
            item.add_marker(pytest.mark.xfail(reason=TURBOASGI_KNOWN_GAPS[item.name], strict=True))
        if has_timeout and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(DEFAULT_TEST_TIMEOUT))


def pytest_report_header(config: pytest.Config) -> str:
    kind = server_kind_from_config(config)
    return f"asgi_tests: server under test: {kind.name} ({kind.command})"


class ServerPool:
    """Session-wide servers, one per (app, options) combination."""

    def __init__(self, kind: ServerKind) -> None:
        self.kind = kind
        self.servers: dict[tuple[str, tuple[tuple[str, str], ...]], ServerProcess] = {}
        self.failures: dict[tuple[str, tuple[tuple[str, str], ...]], str] = {}

    def get(self, app: str, options: Sequence[tuple[str, str]] = ()) -> ServerProcess:
        key = (app, tuple(options))
        if key in self.failures:
            pytest.fail(self.failures[key], pytrace=False)
        server = self.servers.get(key)
        if server is not None and server.proc is not None and server.proc.poll() is not None:
            # It died (a crash found by an earlier test): report that once, then start a fresh one.
            del self.servers[key]
            server.stop()
        if key not in self.servers:
            server = ServerProcess(self.kind, app, options)
            try:
                server.start().wait_ready()
            except ServerFailed as exc:
                self.failures[key] = str(exc)
                pytest.fail(str(exc), pytrace=False)
            self.servers[key] = server
        return self.servers[key]

    def close(self) -> None:
        for server in self.servers.values():
            server.cleanup()
        self.servers.clear()


@pytest.fixture(scope="session")
def server_kind(pytestconfig: pytest.Config) -> ServerKind:
    return server_kind_from_config(pytestconfig)


@pytest.fixture(scope="session")
def server_pool(server_kind: ServerKind) -> Iterator[ServerPool]:
    pool = ServerPool(server_kind)
    yield pool
    pool.close()


@pytest.fixture
def server(server_pool: ServerPool) -> ServerProcess:
    """The session's server running the main probe app (restarted if an earlier test crashed it)."""
    return server_pool.get(PROBE_APP)


@pytest.fixture
def launch(server_kind: ServerKind) -> Iterator[Callable[..., ServerProcess]]:
    """Start a short-lived server of the kind under test (not waited for); stopped after the test."""
    started: list[ServerProcess] = []

    def _launch(
        app: str,
        options: Sequence[tuple[str, str]] = (),
        env: dict[str, str] | None = None,
    ) -> ServerProcess:
        proc = ServerProcess(server_kind, app, options, env=env)
        started.append(proc)
        return proc.start()

    yield _launch
    for proc in started:
        proc.cleanup()


@pytest.fixture
def require_option(server_kind: ServerKind) -> Callable[[str], None]:
    def _require(option: str) -> None:
        if not server_kind.supports(option):
            pytest.skip(f"{server_kind.name}: the suite knows no command-line option for {option!r}")

    return _require


@pytest.fixture
def scope_of(server: ServerProcess) -> Callable[..., dict[str, Any]]:
    """GET ``/scope{suffix}`` through httpx and return the scope the app saw."""

    def _scope(suffix: str = "", headers: dict[str, str] | None = None) -> dict[str, Any]:
        import httpx

        response = httpx.get(server.base_url + "/scope" + suffix, headers=headers, timeout=5.0)
        assert response.status_code == 200, response.text
        from asgi_tests.apps.tagging import untag

        result: dict[str, Any] = untag(response.json())["scope"]
        return result

    return _scope


@pytest.fixture
def extensions(server: ServerProcess) -> dict[Any, Any]:
    ext = get_json(server.base_url, "/scope")["scope"].get("extensions")
    return ext if isinstance(ext, dict) else {}


@pytest.fixture
def spec_version(server: ServerProcess) -> tuple[int, ...]:
    asgi = get_json(server.base_url, "/scope")["scope"].get("asgi", {})
    text = str(asgi.get("spec_version", "2.0"))
    return tuple(int(p) for p in text.split(".") if p.isdigit())


@pytest.fixture(autouse=True)
def _record_groups(request: pytest.FixtureRequest, record_property: Callable[[str, object], None]) -> None:
    # junit properties per test case need the xunit1 family (report.py passes -o junit_family=xunit1)
    if request.config.getini("junit_family") not in ("xunit1", "legacy"):
        return
    groups = [g for g in GROUPS if request.node.get_closest_marker(g) is not None]
    record_property("groups", ",".join(groups))
