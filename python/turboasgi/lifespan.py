"""The ASGI lifespan protocol (spec 2.0), with uvicorn's interface and log lines.

``LifespanOn`` runs the app once with a ``lifespan`` scope, as a task on the running loop; the server
calls ``await startup()`` before accepting connections and ``await shutdown()`` after the last one
closed. ``LifespanOff`` has the same interface and does nothing.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from turboasgi.config import Config

__all__ = ["LifespanOn", "LifespanOff", "LifespanProtocolError"]

STATE_TRANSITION_ERROR = "Got invalid state transition on lifespan protocol."

_SEND_TYPES = (
    "lifespan.startup.complete",
    "lifespan.startup.failed",
    "lifespan.shutdown.complete",
    "lifespan.shutdown.failed",
)


class LifespanProtocolError(RuntimeError):
    """The app sent a message that is not valid at this point of the lifespan protocol."""


class LifespanOn:
    """Drive the application's lifespan protocol.

    After ``startup()``: ``should_exit`` is True when the server must not serve (startup failed,
    or the app raised in ``lifespan="on"`` mode). ``state`` is the dict passed as ``scope["state"]``;
    the server gives each request a shallow copy of it.
    """

    def __init__(self, config: Config) -> None:
        if not config.loaded:
            config.load()
        self.config = config
        self.logger = logging.getLogger("turboasgi.error")
        self.state: dict[str, Any] = {}
        self.should_exit = False
        self.error_occurred = False
        self.startup_failed = False
        self.shutdown_failed = False
        self.startup_event = asyncio.Event()
        self.shutdown_event = asyncio.Event()
        self.receive_queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.main_task: asyncio.Task[None] | None = None

    @property
    def error_occured(self) -> bool:
        """Alias of ``error_occurred`` (the spelling used by older uvicorn releases)."""
        return self.error_occurred

    async def startup(self) -> None:
        self.logger.info("Waiting for application startup.")
        # keep a strong reference: the loop only holds weak references to tasks
        self.main_task = asyncio.get_running_loop().create_task(self.main())
        await self.receive_queue.put({"type": "lifespan.startup"})
        await self.startup_event.wait()

        if self.startup_failed or (self.error_occurred and self.config.lifespan == "on"):
            self.logger.error("Application startup failed. Exiting.")
            self.should_exit = True
        else:
            self.logger.info("Application startup complete.")

    async def shutdown(self) -> None:
        if self.error_occurred or self.main_task is None:
            return
        self.logger.info("Waiting for application shutdown.")
        await self.receive_queue.put({"type": "lifespan.shutdown"})
        await self.shutdown_event.wait()

        if self.shutdown_failed or self.error_occurred:
            self.logger.error("Application shutdown failed. Exiting.")
            self.should_exit = True
        else:
            self.logger.info("Application shutdown complete.")

    async def main(self) -> None:
        app = self.config.loaded_app
        assert app is not None
        scope: dict[str, Any] = {
            "type": "lifespan",
            "asgi": {"version": self.config.asgi_version, "spec_version": "2.0"},
            "state": self.state,
        }
        try:
            await app(scope, self.receive, self.send)
        except BaseException as exc:
            self.error_occurred = True
            if self.startup_failed or self.shutdown_failed:
                return
            started = self.startup_event.is_set()
            if not started and self.config.lifespan == "auto":
                # an app that does not speak lifespan typically raises on the unknown scope type
                self.logger.info("ASGI 'lifespan' protocol appears unsupported.")
            else:
                self.logger.error("Exception in 'lifespan' protocol\n", exc_info=exc)
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
        finally:
            self.startup_event.set()
            self.shutdown_event.set()

    async def send(self, message: dict[str, Any]) -> None:
        message_type = message.get("type") if isinstance(message, dict) else None
        if message_type not in _SEND_TYPES:
            raise LifespanProtocolError(
                f"Expected ASGI message type to be one of {', '.join(_SEND_TYPES)}, got {message_type!r}."
            )
        if message_type.startswith("lifespan.startup."):
            if self.startup_event.is_set() or self.shutdown_event.is_set():
                raise LifespanProtocolError(STATE_TRANSITION_ERROR)
            if message_type == "lifespan.startup.failed":
                self.startup_failed = True
                if message.get("message"):
                    self.logger.error(message["message"])
            self.startup_event.set()
        else:
            if not self.startup_event.is_set() or self.shutdown_event.is_set():
                raise LifespanProtocolError(STATE_TRANSITION_ERROR)
            if message_type == "lifespan.shutdown.failed":
                self.shutdown_failed = True
                if message.get("message"):
                    self.logger.error(message["message"])
            self.shutdown_event.set()

    async def receive(self) -> dict[str, Any]:
        return await self.receive_queue.get()


class LifespanOff:
    """``--lifespan off``: the app never sees a lifespan scope."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.state: dict[str, Any] = {}
        self.should_exit = False
        self.error_occurred = False
        self.startup_failed = False
        self.shutdown_failed = False

    @property
    def error_occured(self) -> bool:
        return self.error_occurred

    async def startup(self) -> None:
        pass

    async def shutdown(self) -> None:
        pass
