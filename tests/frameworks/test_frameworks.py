"""Framework compatibility: a small real application of each major ASGI framework (tests/frameworks/
apps/, versions pinned in requirements.txt) answers the same request set on turboasgi as on uvicorn:
status, body and headers (all but date and server), a WebSocket echo, and the lifespan hooks."""

from __future__ import annotations

import importlib.util
import os
import re
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from server_process import ServerKind, ServerProcess, turboasgi_server, uvicorn_server
from websockets.sync.client import connect

pytestmark = pytest.mark.timeout(90)


@dataclass(frozen=True)
class Framework:
    app: str
    modules: tuple[str, ...]  # what must be importable (the framework and its compiled dependencies)
    lifespan_hooks: bool = True


FRAMEWORKS = {
    "django": Framework("tests.frameworks.apps.django_site.asgi:application", ("django", "channels"), False),
    "litestar": Framework("tests.frameworks.apps.litestar_app:app", ("litestar", "msgspec")),
    "quart": Framework("tests.frameworks.apps.quart_app:app", ("quart",)),
    "falcon": Framework("tests.frameworks.apps.falcon_app:app", ("falcon",)),
    "blacksheep": Framework("tests.frameworks.apps.blacksheep_app:app", ("blacksheep",)),
    "starlette": Framework("tests.frameworks.apps.starlette_app:app", ("starlette",)),
    "fastapi": Framework("tests.frameworks.apps.fastapi_app:app", ("fastapi", "pydantic_core")),
}

REQUIREMENTS = Path(__file__).with_name("requirements.txt")
NO_WHEEL_MARK = "# no free-threaded wheel:"


def frameworks_without_free_threaded_wheel() -> dict[str, str]:
    """The frameworks .ci/run leaves out on free-threaded CPython, and why: the marked lines of
    requirements.txt (checked with `pip download --only-binary=:all:` for the pinned versions)."""
    marked = {}
    for line in REQUIREMENTS.read_text().splitlines():
        requirement, mark, reason = line.partition(NO_WHEEL_MARK)
        if mark and "==" in requirement:
            marked[requirement.split("==")[0].strip()] = reason.strip()
    return marked


NO_FREE_THREADED_WHEEL = frameworks_without_free_threaded_wheel()

# Frameworks whose lifespan handling assumes one event loop per application object, and what goes
# wrong when turboasgi runs several loops in one process (--threads, or the default on free-threaded
# Python), where the same application object gets one lifespan cycle per loop. Listed in
# docs/deployment.md.
ONE_LOOP_PER_APP = {
    "blacksheep": (
        "BlackSheep 2.6: Application.start() returns at once when the app object is already started, "
        "Application.stop() does not, so with N event loops on_start runs once and on_stop N times"
    ),
}

FREE_THREADED = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))

# (method, path, body): the request set every framework app implements
REQUESTS: list[tuple[str, str, bytes | None]] = [
    ("GET", "/hello", None),
    ("GET", "/json?x=1", None),
    ("POST", "/echo", b"payload \x00\xff" * 5000),
    ("GET", "/stream", None),
    ("GET", "/headers", None),
    ("GET", "/startup", None),
    ("GET", "/missing", None),
]
WS_MESSAGES = ["one", "ünïcödé ✓", "x" * 70_000]
VARIABLE_HEADERS = {"date", "server"}


def require(name: str) -> None:
    missing = [m for m in FRAMEWORKS[name].modules if importlib.util.find_spec(m) is None]
    if not missing:
        return
    if FREE_THREADED and name in NO_FREE_THREADED_WHEEL:
        pytest.skip(NO_FREE_THREADED_WHEEL[name])
    message = f"{', '.join(missing)} not installed: pip install -r tests/frameworks/requirements.txt"
    if os.environ.get("TURBOASGI_REQUIRE_FRAMEWORKS"):  # set by .ci/run, which installs them
        pytest.fail(message)
    pytest.skip(message)


@dataclass
class Observed:
    responses: dict[str, tuple[int, list[tuple[str, str]], bytes]] = field(default_factory=dict)
    websocket: list[str | bytes] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    log: str = ""


def observe(kind: ServerKind, app: str, tmp_path: Path, *options: str) -> Observed:
    events = tmp_path / f"{kind}{''.join(options)}-events"
    factory = turboasgi_server if kind == "turboasgi" else uvicorn_server
    server: ServerProcess = factory(app, "--no-access-log", *options, env={"FRAMEWORK_EVENTS": str(events)})
    seen = Observed()
    with server:
        with httpx.Client(base_url=server.url, timeout=10.0) as http:
            for method, path, body in REQUESTS:
                response = http.request(method, path, content=body)
                headers = sorted(
                    (name, value)
                    for name, value in response.headers.multi_items()
                    if name not in VARIABLE_HEADERS
                )
                seen.responses[f"{method} {path}"] = (response.status_code, headers, response.content)
        with connect(f"ws://{server.host}:{server.port}/ws", open_timeout=10) as ws:
            for message in WS_MESSAGES:
                ws.send(message)
                seen.websocket.append(ws.recv(timeout=10))
        assert server.stop() == 0, server.output
    seen.events = events.read_text().splitlines() if events.exists() else []
    seen.log = server.output
    return seen


def loop_count(log: str) -> int:
    """Event loops the server ran, from turboasgi's startup log (one unless it says more)."""
    found = re.search(r"Serving with (\d+) event loop thread|Running (\d+) event loop threads", log)
    return int(found[1] or found[2]) if found else 1


def check_behaviour(seen: Observed, framework: Framework) -> None:
    """What each framework app must do, under any server (so a framework broken everywhere fails too)."""
    status, headers, body = seen.responses["GET /hello"]
    assert (status, body) == (200, b"hello")
    assert seen.responses["GET /json?x=1"][0] == 200
    assert seen.responses["POST /echo"][2] == b"payload \x00\xff" * 5000
    assert seen.responses["GET /stream"][2] == b"first,second,third"
    status, headers, body = seen.responses["GET /headers"]
    assert ("x-custom", "custom value") in headers
    assert any(name == "set-cookie" and value.startswith("session=abc123") for name, value in headers)
    assert seen.responses["GET /missing"][0] == 404
    assert seen.websocket == WS_MESSAGES
    assert seen.responses["GET /startup"][2] == (b"yes" if framework.lifespan_hooks else b"no")
    assert "Traceback" not in seen.log, seen.log


def check_lifespan(seen: Observed, framework: Framework, loops: int) -> None:
    """Startup hooks, then (at shutdown) shutdown hooks, once per event loop: turboasgi runs the
    lifespan protocol on each of its loops (docs/scaling.md)."""
    if framework.lifespan_hooks:
        assert seen.events == ["startup"] * loops + ["shutdown"] * loops
    else:
        assert seen.events == []


@pytest.mark.parametrize("threads", ["default", "2"])
@pytest.mark.parametrize("name", list(FRAMEWORKS))
def test_same_behaviour_as_uvicorn(name: str, threads: str, tmp_path: Path) -> None:
    """``threads``: turboasgi's default loop count (one, or one per core on free-threaded Python), and
    two event loops in one process, where each framework's lifespan runs once per loop."""
    require(name)
    framework = FRAMEWORKS[name]
    options = [] if threads == "default" else ["--threads", threads]
    expected = observe("uvicorn", framework.app, tmp_path)
    seen = observe("turboasgi", framework.app, tmp_path, *options)
    check_behaviour(expected, framework)
    check_behaviour(seen, framework)
    assert seen.responses == expected.responses
    assert seen.websocket == expected.websocket
    unsupported = "ASGI 'lifespan' protocol appears unsupported."
    assert (unsupported in seen.log) == (unsupported in expected.log)
    check_lifespan(expected, framework, 1)
    loops = loop_count(seen.log)
    if loops > 1 and name in ONE_LOOP_PER_APP:
        # the known misbehaviour, exactly, so that a change in it is noticed
        assert seen.events == ["startup"] + ["shutdown"] * loops
        pytest.xfail(ONE_LOOP_PER_APP[name])
    check_lifespan(seen, framework, loops)
