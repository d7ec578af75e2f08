"""``Server``: runs a ``Config`` on the running asyncio loop with the Rust core doing the network."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import signal
import socket
import sys
import threading
from collections.abc import Generator, Sequence
from types import FrameType
from typing import TYPE_CHECKING

from turboasgi._core import ServerCore
from turboasgi.loops import (
    LoopRuntime,
    LoopThread,
    default_loop_count,
    free_threaded_build,
    gil_enabled,
    tokio_thread_count,
)

if TYPE_CHECKING:
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
        self.main_runtime: LoopRuntime | None = None
        self.loop_threads: list[LoopThread] = []
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
        self.loop_count = config.threads or default_loop_count()
        access_log = bool(config.access_log) and logging.getLogger("turboasgi.access").hasHandlers()
        self.main_runtime = LoopRuntime(config, asyncio.get_running_loop(), access_log)
        self.lifespan = self.main_runtime.lifespan

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
        assert self.main_runtime is not None
        core = ServerCore(config.core_config(tokio_threads=tokio_thread_count(self.loop_count)))
        self.core = core
        self.main_runtime.attach(core)
        if not await self._start_loop_threads(core):
            self.should_exit = True
            return

        try:
            listening = list(sockets) if sockets else [config.bind_socket()]
        except SystemExit:
            await self.lifespan.shutdown()
            raise
        for sock in listening:
            core.listen(sock.fileno(), unix=sock.family == socket.AF_UNIX)
        if not sockets:
            self._sockets = listening
        if config.metrics_port is not None:
            metrics = config.bind_metrics_socket()
            core.serve_metrics(metrics.fileno())
            self._sockets.append(metrics)
        self.started = True

    async def _start_loop_threads(self, core: ServerCore) -> bool:
        """Starts loops 2..N, each running lifespan startup on itself (spec L2); False if one failed."""
        access_log = self.main_runtime.http.access_log if self.main_runtime else False
        self.loop_threads = [LoopThread(i, self.config, core, access_log) for i in range(1, self.loop_count)]
        for thread in self.loop_threads:
            thread.start()
        # Polled rather than waited for in an executor thread: no extra thread may catch signals.
        while not all(thread.ready.is_set() for thread in self.loop_threads):
            await asyncio.sleep(0.01)
        if any(t.failed for t in self.loop_threads):
            await self._stop_loop_threads()
            await self.lifespan.shutdown()
            return False
        self._log_loops()
        return True

    def _log_loops(self) -> None:
        if free_threaded_build():
            gil = "enabled" if gil_enabled() else "disabled"
            logger.info("Serving with %d event loop thread(s); the GIL is %s.", self.loop_count, gil)
            if gil_enabled():
                logger.warning(
                    "The GIL was re-enabled at run time (an imported extension does not declare "
                    "free-threading support): loop threads now take turns instead of running in parallel."
                )
        elif self.loop_count > 1:
            logger.warning(
                "Running %d event loop threads under the GIL: they take turns, which adds contention "
                "and no parallelism. Use --workers on GIL builds.",
                self.loop_count,
            )

    async def _stop_loop_threads(self) -> None:
        for thread in self.loop_threads:
            thread.stop(force=self.force_exit)
        deadline = asyncio.get_running_loop().time() + 30.0
        while any(t.thread.is_alive() for t in self.loop_threads):
            if asyncio.get_running_loop().time() > deadline:
                logger.warning("An event loop thread did not stop within 30 seconds.")
                break
            await asyncio.sleep(0.01)

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
        if limit is not None and self.core is not None:
            # The jitter is drawn once per process, so that workers do not all recycle together.
            request_limit: int | None = getattr(self, "_request_limit", None)
            if request_limit is None:
                request_limit = limit + random.randint(0, max(0, self.config.limit_max_requests_jitter))
                self._request_limit = request_limit
            if self.core.request_count() >= request_limit:
                logger.warning("Maximum request limit of %d exceeded. Terminating process.", request_limit)
                return True
        if self.config.callback_notify is not None and counter % 10 == 0:
            await self.config.callback_notify()
        return False

    async def shutdown(self) -> None:
        logger.info("Shutting down")
        core = self.core
        runtime = self.main_runtime
        if core is not None and runtime is not None:
            if core.connection_count() or runtime.tasks:
                logger.info("Waiting for connections to close. (CTRL+C to force quit)")
            assert runtime.handle is not None
            closing = core.shutdown(runtime.handle, self.config.timeout_graceful_shutdown)
            # New clients are refused from now on, not left waiting in the backlog.
            for sock in self._sockets:
                sock.close()
            while not closing.done():
                if self.force_exit:
                    core.force_close()
                await asyncio.wait({closing}, timeout=0.1)
            if runtime.tasks:
                logger.info("Waiting for background tasks to complete. (CTRL+C to force quit)")
            await runtime.wait_tasks(self.config.timeout_graceful_shutdown, lambda: self.force_exit)
            runtime.detach()
            await self._stop_loop_threads()
        if not self.force_exit:
            await self.lifespan.shutdown()

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
