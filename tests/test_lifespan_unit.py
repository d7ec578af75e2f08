"""LifespanOn / LifespanOff driven on a real asyncio loop with real applications."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from turboasgi.config import Config
from turboasgi.lifespan import LifespanOff, LifespanOn

pytestmark = pytest.mark.timeout(30)

Message = dict[str, Any]


@pytest.fixture
def logs() -> Iterator[list[tuple[str, str]]]:
    """(levelname, message) of everything logged to ``turboasgi.error``."""
    captured: list[tuple[str, str]] = []

    class ListHandler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            captured.append((record.levelname, record.getMessage()))

    handler = ListHandler(level=1)
    logger = logging.getLogger("turboasgi.error")
    old_level = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    yield captured
    logger.removeHandler(handler)
    logger.setLevel(old_level)


def make(app: Any, lifespan: str = "auto") -> LifespanOn:
    config = Config(app, lifespan=lifespan, log_config=None)
    config.load()
    assert config.lifespan_class is not None
    instance = config.lifespan_class(config)
    assert isinstance(instance, LifespanOn)
    return instance


def run_cycle(lifespan: LifespanOn, events: list[str] | None = None) -> None:
    """startup -> (serving) -> shutdown, the way the server drives it."""

    async def cycle() -> None:
        await lifespan.startup()
        if events is not None:
            events.append("serving")
        if not lifespan.should_exit:
            await lifespan.shutdown()

    asyncio.run(cycle())


# ------------------------------------------------------------------------------------ happy path


def test_raw_app_startup_and_shutdown_order(logs: list[tuple[str, str]]) -> None:
    events: list[str] = []
    scopes: list[dict[str, Any]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        scopes.append(scope)
        assert (await receive()) == {"type": "lifespan.startup"}
        events.append("startup")
        scope["state"]["db"] = "connected"
        await send({"type": "lifespan.startup.complete"})
        assert (await receive()) == {"type": "lifespan.shutdown"}
        events.append("shutdown")
        await send({"type": "lifespan.shutdown.complete"})

    lifespan = make(app)
    run_cycle(lifespan, events)

    assert events == ["startup", "serving", "shutdown"]
    assert scopes == [
        {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": {"db": "connected"}}
    ]
    assert scopes[0]["state"] is lifespan.state
    assert lifespan.state == {"db": "connected"}
    assert not lifespan.should_exit and not lifespan.error_occurred and not lifespan.error_occured
    assert not lifespan.startup_failed and not lifespan.shutdown_failed
    assert logs == [
        ("INFO", "Waiting for application startup."),
        ("INFO", "Application startup complete."),
        ("INFO", "Waiting for application shutdown."),
        ("INFO", "Application shutdown complete."),
    ]


def test_startup_waits_for_the_app() -> None:
    order: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await asyncio.sleep(0.05)
        order.append("app ready")
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await asyncio.sleep(0.05)
        order.append("app closed")
        await send({"type": "lifespan.shutdown.complete"})

    lifespan = make(app, "on")

    async def cycle() -> None:
        await lifespan.startup()
        order.append("startup returned")
        await lifespan.shutdown()
        order.append("shutdown returned")

    asyncio.run(cycle())
    assert order == ["app ready", "startup returned", "app closed", "shutdown returned"]


def test_starlette_lifespan_state() -> None:
    events: list[str] = []

    @asynccontextmanager
    async def lifespan_cm(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        events.append("enter")
        yield {"pool": "ready"}
        events.append("exit")

    lifespan = make(Starlette(lifespan=lifespan_cm), "on")
    run_cycle(lifespan, events)
    assert events == ["enter", "serving", "exit"]
    assert lifespan.state == {"pool": "ready"}
    assert not lifespan.should_exit


def test_fastapi_example_lifespan_state() -> None:
    from examples.fastapi_app import app

    lifespan = make(app, "on")

    async def cycle() -> Path:
        await lifespan.startup()
        download = lifespan.state["download"]
        assert download.read_text() == "Hello from a file!\n"
        await lifespan.shutdown()
        return download

    download = asyncio.run(cycle())
    assert lifespan.state["started"] is True
    assert not download.exists()  # cleaned up at shutdown
    assert not lifespan.should_exit


def test_app_returning_without_messages_counts_as_complete(logs: list[tuple[str, str]]) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return

    lifespan = make(app)
    run_cycle(lifespan)
    assert not lifespan.should_exit
    assert ("INFO", "Application startup complete.") in logs


def test_asgi2_app_gets_asgi_version_2() -> None:
    seen: list[dict[str, Any]] = []

    class App:
        def __init__(self, scope: dict[str, Any]) -> None:
            seen.append(scope)

        async def __call__(self, receive: Any, send: Any) -> None:
            await receive()
            await send({"type": "lifespan.startup.complete"})
            await receive()
            await send({"type": "lifespan.shutdown.complete"})

    lifespan = make(App, "on")
    run_cycle(lifespan)
    assert seen[0]["asgi"] == {"version": "2.0", "spec_version": "2.0"}
    assert not lifespan.should_exit


# ------------------------------------------------------------------------------------ failures


async def http_only_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    assert scope["type"] == "http", "only HTTP is supported"


def test_auto_mode_unsupported_app_keeps_serving(logs: list[tuple[str, str]]) -> None:
    lifespan = make(http_only_app, "auto")
    events: list[str] = []
    run_cycle(lifespan, events)
    assert events == ["serving"]
    assert lifespan.error_occurred and lifespan.error_occured
    assert not lifespan.should_exit and not lifespan.startup_failed
    assert logs == [
        ("INFO", "Waiting for application startup."),
        ("INFO", "ASGI 'lifespan' protocol appears unsupported."),
        ("INFO", "Application startup complete."),
    ]  # no shutdown lines: the app is not asked to shut down


def test_on_mode_raising_app_fails_startup(logs: list[tuple[str, str]]) -> None:
    lifespan = make(http_only_app, "on")
    run_cycle(lifespan)
    assert lifespan.should_exit and lifespan.error_occurred
    assert logs[0] == ("INFO", "Waiting for application startup.")
    assert logs[1] == ("ERROR", "Exception in 'lifespan' protocol\n")
    assert logs[-1] == ("ERROR", "Application startup failed. Exiting.")


@pytest.mark.parametrize("mode", ["auto", "on"])
def test_startup_failed_message(mode: str, logs: list[tuple[str, str]]) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "database unreachable"})

    lifespan = make(app, mode)
    run_cycle(lifespan)
    assert lifespan.startup_failed and lifespan.should_exit
    assert logs == [
        ("INFO", "Waiting for application startup."),
        ("ERROR", "database unreachable"),
        ("ERROR", "Application startup failed. Exiting."),
    ]


def test_starlette_startup_exception_fails_startup(logs: list[tuple[str, str]]) -> None:
    @asynccontextmanager
    async def lifespan_cm(app: Starlette) -> AsyncIterator[None]:
        raise RuntimeError("cannot connect")
        yield

    lifespan = make(Starlette(lifespan=lifespan_cm), "auto")
    run_cycle(lifespan)
    assert lifespan.startup_failed and lifespan.should_exit
    assert any(level == "ERROR" and "cannot connect" in msg for level, msg in logs)
    assert logs[-1] == ("ERROR", "Application startup failed. Exiting.")


def test_shutdown_failed_message(logs: list[tuple[str, str]]) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await send({"type": "lifespan.shutdown.failed", "message": "flush failed"})

    lifespan = make(app, "on")
    run_cycle(lifespan)
    assert lifespan.shutdown_failed and lifespan.should_exit
    assert logs[-2:] == [("ERROR", "flush failed"), ("ERROR", "Application shutdown failed. Exiting.")]


def test_exception_during_shutdown_is_logged(logs: list[tuple[str, str]]) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        raise RuntimeError("boom in shutdown")

    lifespan = make(app, "auto")
    run_cycle(lifespan)
    # startup had succeeded, so this is a real error, not "lifespan unsupported"
    assert ("ERROR", "Exception in 'lifespan' protocol\n") in logs
    assert ("INFO", "ASGI 'lifespan' protocol appears unsupported.") not in logs
    assert logs[-1] == ("ERROR", "Application shutdown failed. Exiting.")


@pytest.mark.parametrize(
    "message",
    [
        {"type": "http.response.start", "status": 200},
        {"type": "lifespan.shutdown.complete"},  # shutdown before startup
        {"no": "type"},
    ],
)
def test_invalid_messages_fail_startup_in_on_mode(message: Message, logs: list[tuple[str, str]]) -> None:
    errors: list[BaseException] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        try:
            await send(message)
        except RuntimeError as exc:
            errors.append(exc)
            raise

    lifespan = make(app, "on")
    run_cycle(lifespan)
    assert len(errors) == 1
    assert lifespan.should_exit
    assert logs[-1] == ("ERROR", "Application startup failed. Exiting.")


def test_invalid_message_in_auto_mode_is_treated_as_unsupported(logs: list[tuple[str, str]]) -> None:
    # a naive app answering every scope with an HTTP response still runs, as with uvicorn
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})

    lifespan = make(app, "auto")
    run_cycle(lifespan)
    assert not lifespan.should_exit
    assert ("INFO", "ASGI 'lifespan' protocol appears unsupported.") in logs


def test_double_startup_complete_is_rejected() -> None:
    errors: list[BaseException] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "lifespan.startup.complete"})
        try:
            await send({"type": "lifespan.startup.complete"})
        except RuntimeError as exc:
            errors.append(exc)
        await receive()
        await send({"type": "lifespan.shutdown.complete"})

    lifespan = make(app, "on")
    run_cycle(lifespan)
    assert [str(e) for e in errors] == ["Got invalid state transition on lifespan protocol."]
    assert not lifespan.should_exit


# ------------------------------------------------------------------------------------ off / selection


def test_lifespan_off_never_calls_the_app() -> None:
    called: list[Any] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        called.append(scope)

    config = Config(app, lifespan="off", log_config=None)
    config.load()
    assert config.lifespan_class is LifespanOff
    lifespan = config.lifespan_class(config)

    async def cycle() -> None:
        await lifespan.startup()
        await lifespan.shutdown()

    asyncio.run(cycle())
    assert called == []
    assert lifespan.state == {} and not lifespan.should_exit
    assert not lifespan.error_occurred and not lifespan.startup_failed and not lifespan.shutdown_failed


def test_lifespan_on_loads_the_config_itself() -> None:
    config = Config(http_only_app, lifespan="on", log_config=None)
    assert not config.loaded
    LifespanOn(config)
    assert config.loaded and config.loaded_app is http_only_app
