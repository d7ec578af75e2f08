"""``Server``: runs a ``Config`` on the running asyncio loop with the Rust core doing the network."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Generator, Sequence
from types import FrameType
from typing import TYPE_CHECKING

from turboasgi._core import ServerCore
from turboasgi.protocol import HttpRunner, WebSocketRunner

if TYPE_CHECKING:
    from turboasgi._core import LoopHandle
    from turboasgi.config import Config

HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM)

logger = logging.getLogger("turboasgi.error")


class Server:
    """The same interface as ``uvicorn.Server``: ``run()``, ``await serve()``, ``started``,
    ``should_exit``, ``force_exit``, ``handle_exit()``, ``capture_signals()``."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.started = False
        self.should_exit = False
        self.force_exit = False
        self.core: ServerCore | None = None
        self.runner: HttpRunner | None = None
        self._handle: LoopHandle | None = None
        self._sockets: list[socket.socket] = []
        self._captured_signals: list[int] = []

    def run(self, sockets: Sequence[socket.socket] | None = None) -> None:
        loop_factory = self.config.get_loop_factory()
        if loop_factory is None:
            asyncio.run(self.serve(sockets=sockets))
            return
        if sys.version_info >= (3, 12):
            asyncio.run(self.serve(sockets=sockets), loop_factory=loop_factory)
        else:
            with asyncio.Runner(loop_factory=loop_factory) as runner:
                runner.run(self.serve(sockets=sockets))

    async def serve(self, sockets: Sequence[socket.socket] | None = None) -> None:
        with self.capture_signals():
            await self._serve(sockets)

    async def _serve(self, sockets: Sequence[socket.socket] | None = None) -> None:
        process_id = os.getpid()
        config = self.config
        if not config.loaded:
            config.load()
        self.lifespan = config.lifespan_class(config)

        message = "Started server process [%d]"
        logger.info(message, process_id, extra={"color_message": message})

        await self.startup(sockets=sockets)
        if self.should_exit:
            return
        await self.main_loop()
        await self.shutdown()

        logger.info("Finished server process [%d]", process_id, extra={"color_message": message})

    async def startup(self, sockets: Sequence[socket.socket] | None = None) -> None:
        await self.lifespan.startup()
        if self.lifespan.should_exit:
            self.should_exit = True
            return

        config = self.config
        loop = asyncio.get_running_loop()
        core = ServerCore(config.core_config())
        access_log = bool(config.access_log) and logging.getLogger("turboasgi.access").hasHandlers()
        self.runner = HttpRunner(config.loaded_app, access_log=access_log)
        ws_runner = WebSocketRunner(config.loaded_app, access_log=access_log, tasks=self.runner.tasks)
        self._handle = core.add_loop(loop, self.runner, self.lifespan.state, ws_runner)
        loop.add_reader(self._handle.fileno(), self._handle.drain)
        self.core = core

        try:
            listening = list(sockets) if sockets else [config.bind_socket()]
        except SystemExit:
            await self.lifespan.shutdown()
            raise
        for sock in listening:
            core.listen(sock.fileno(), unix=sock.family == socket.AF_UNIX)
        if not sockets:
            self._sockets = listening
        self.started = True

    async def main_loop(self) -> None:
        counter = 0
        should_exit = await self.on_tick(counter)
        while not should_exit:
            counter = (counter + 1) % 864000
            await asyncio.sleep(0.1)
            should_exit = await self.on_tick(counter)

    async def on_tick(self, counter: int) -> bool:
        if self.should_exit:
            return True
        limit = self.config.limit_max_requests
        if limit is not None and self.core is not None and self.core.request_count() >= limit:
            logger.warning("Maximum request limit of %d exceeded. Terminating process.", limit)
            return True
        if self.config.callback_notify is not None and counter % 10 == 0:
            await self.config.callback_notify()
        return False

    async def shutdown(self) -> None:
        logger.info("Shutting down")
        core = self.core
        if core is not None:
            if core.connection_count() or (self.runner and self.runner.tasks):
                logger.info("Waiting for connections to close. (CTRL+C to force quit)")
            closing = asyncio.ensure_future(core.shutdown(self.config.timeout_graceful_shutdown))
            # New clients are refused from now on, not left waiting in the backlog.
            for sock in self._sockets:
                sock.close()
            while not closing.done():
                if self.force_exit:
                    core.force_close()
                await asyncio.wait({closing}, timeout=0.1)
            await self._wait_tasks()
            if self._handle is not None:
                asyncio.get_running_loop().remove_reader(self._handle.fileno())
        if not self.force_exit:
            await self.lifespan.shutdown()

    async def _wait_tasks(self) -> None:
        """Request Tasks may outlive their connection (background work after the response)."""
        if self.runner is None or not self.runner.tasks:
            return
        logger.info("Waiting for background tasks to complete. (CTRL+C to force quit)")
        timeout = self.config.timeout_graceful_shutdown
        deadline = None if timeout is None else asyncio.get_running_loop().time() + timeout
        while self.runner.tasks and not self.force_exit:
            if deadline is not None and asyncio.get_running_loop().time() >= deadline:
                break
            await asyncio.wait(set(self.runner.tasks), timeout=0.1)
        for task in list(self.runner.tasks):
            task.cancel()
        if self.runner.tasks:
            await asyncio.wait(set(self.runner.tasks), timeout=1.0)

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        original = {sig: signal.signal(sig, self.handle_exit) for sig in HANDLED_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)
        # Re-raise captured signals so that an outer handler (or the default) sees them too.
        for captured in reversed(self._captured_signals):
            signal.raise_signal(captured)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self._captured_signals.append(sig)
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True
        else:
            self.should_exit = True
