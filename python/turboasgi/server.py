"""``Server``: runs a ``Config`` on the running asyncio loop with the Rust core doing the network."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import random
import signal
import socket
import sys
import threading
import time
from collections.abc import Generator, Sequence
from types import FrameType
from typing import TYPE_CHECKING

from turboasgi._core import ServerCore
from turboasgi.config import STARTUP_FAILURE
from turboasgi.logging import has_output, style
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


class Listener:
    """One entry of ``Server.servers``: the listening sockets, like the ``asyncio.Server`` objects
    uvicorn keeps there (``server.servers[0].sockets[0].getsockname()`` gives the bound address).
    The sockets are served by the Rust core, which accepts on duplicates of them."""

    def __init__(self, sockets: Sequence[socket.socket]) -> None:
        self.sockets: tuple[socket.socket, ...] = tuple(sockets)

    def is_serving(self) -> bool:
        return any(sock.fileno() != -1 for sock in self.sockets)

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()

    async def wait_closed(self) -> None:
        return None


class ServerState:
    """``Server.server_state`` as in uvicorn, read from the Rust core: ``total_requests``,
    ``connections`` (only its size: connections live in Rust, not as Python protocol objects),
    ``tasks`` (the request Tasks of the main loop) and ``default_headers``."""

    def __init__(self, server: Server) -> None:
        self._server = server

    @property
    def total_requests(self) -> int:
        core = self._server.core
        return core.request_count() if core is not None else 0

    @property
    def connections(self) -> ConnectionCount:
        return ConnectionCount(self._server.core)

    @property
    def tasks(self) -> set[asyncio.Task[None]]:
        runtime = self._server.main_runtime
        return runtime.tasks if runtime is not None else set()

    @property
    def default_headers(self) -> list[tuple[bytes, bytes]]:
        return self._server.config.default_headers()


class ConnectionCount:
    """``len(server.server_state.connections)``: the open connections, counted by the Rust core."""

    def __init__(self, core: ServerCore | None) -> None:
        self._count = core.connection_count() if core is not None else 0

    def __len__(self) -> int:
        return self._count

    def __bool__(self) -> bool:
        return self._count > 0


class Server:
    """The same interface as ``uvicorn.Server``: ``run()``, ``await serve()``, ``startup()``,
    ``main_loop()``, ``on_tick()``, ``shutdown()``, ``started``, ``should_exit``, ``force_exit``,
    ``servers``, ``server_state``, ``last_notified``, ``limit_max_requests``, ``handle_exit()``,
    ``capture_signals()``."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.server_state = ServerState(self)
        self.started = False
        self.should_exit = False
        self.force_exit = False
        self.last_notified = 0.0
        self.servers: list[Listener] = []
        self.core: ServerCore | None = None
        self.main_runtime: LoopRuntime | None = None
        self.loop_threads: list[LoopThread] = []
        self._sockets: list[socket.socket] = []
        self._captured_signals: list[int] = []

    @functools.cached_property
    def limit_max_requests(self) -> int | None:
        """``--limit-max-requests`` plus the jitter, drawn once per process so that workers do not all
        recycle together."""
        if self.config.limit_max_requests is None:
            return None
        return self.config.limit_max_requests + random.randint(
            0, max(0, self.config.limit_max_requests_jitter)
        )

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
        access_log = bool(config.access_log) and has_output(logging.getLogger("turboasgi.access"))
        self.main_runtime = LoopRuntime(config, asyncio.get_running_loop(), access_log)
        self.lifespan = self.main_runtime.lifespan

        message = "Started server process [%d]"
        color_message = "Started server process [" + style("%d", fg="cyan") + "]"
        logger.info(message, process_id, extra={"color_message": color_message})

        await self.startup(sockets=sockets)
        if not self.should_exit:
            await self.main_loop()
        # A stop asked for during startup still shuts down what started (uvicorn's order).
        if self.started:
            await self.shutdown(sockets=sockets)
            message = "Finished server process [%d]"
            color_message = "Finished server process [" + style("%d", fg="cyan") + "]"
            logger.info(message, process_id, extra={"color_message": color_message})

    async def startup(self, sockets: Sequence[socket.socket] | None = None) -> None:
        """Lifespan startup, the core and its loops, the listening sockets. A failed startup raises
        ``SystemExit(3)``, as uvicorn's does."""
        await self.lifespan.startup()
        if self.lifespan.should_exit:
            sys.exit(STARTUP_FAILURE)

        config = self.config
        assert self.main_runtime is not None
        core = ServerCore(config.core_config(tokio_threads=tokio_thread_count(self.loop_count)))
        self.core = core
        self.main_runtime.attach(core)
        if not await self._start_loop_threads(core):
            self.main_runtime.detach()
            sys.exit(STARTUP_FAILURE)

        try:
            # Metrics first: once the "running on" line is out, everything is being served.
            metrics = config.bind_metrics_socket() if config.metrics_port is not None else None
            listening = list(sockets) if sockets else [config.bind_socket()]
        except SystemExit:
            await self.lifespan.shutdown()
            raise
        for sock in listening:
            core.listen(sock.fileno(), unix=sock.family == socket.AF_UNIX)
        if not sockets:
            self._sockets = listening
        if metrics is not None:
            core.serve_metrics(metrics.fileno())
            self._sockets.append(metrics)
        self.servers = [Listener(listening)]
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
        if counter % 10 == 0 and self.config.callback_notify is not None:
            now = time.time()
            if now - self.last_notified > self.config.timeout_notify:
                self.last_notified = now
                await self.config.callback_notify()
        if self.should_exit:
            return True
        request_limit = self.limit_max_requests
        if request_limit is not None and self.core is not None:
            if self.core.request_count() >= request_limit:
                logger.info("Maximum request limit of %d exceeded. Terminating process.", request_limit)
                return True
        return False

    async def shutdown(self, sockets: Sequence[socket.socket] | None = None) -> None:
        """Stop accepting, let in-flight requests and their tasks finish, then run lifespan shutdown.

        ``--timeout-graceful-shutdown N`` bounds the whole wait, on every loop together: after N
        seconds the remaining request Tasks are cancelled (a request with no response yet is answered
        500, a response already under way is cut off) and the remaining connections are closed."""
        logger.info("Shutting down")
        for sock in sockets or []:
            sock.close()
        core = self.core
        runtime = self.main_runtime
        if core is not None and runtime is not None:
            loop = asyncio.get_running_loop()
            timeout = self.config.timeout_graceful_shutdown
            deadline = None if timeout is None else loop.time() + max(0.0, timeout)
            if core.connection_count() or self._pending_tasks():
                logger.info("Waiting for connections to close. (CTRL+C to force quit)")
            assert runtime.handle is not None
            # No timeout in the core: this method owns the deadline, so that N is spent only once.
            closing = core.shutdown(runtime.handle, None)
            # New clients are refused from now on, not left waiting in the backlog.
            for sock in self._sockets:
                sock.close()
            await self._wait_drained(closing, deadline)
            if self.force_exit:
                core.force_close()
            elif not closing.done() or self._pending_tasks():
                await self._cancel_remaining(closing)
                core.force_close()
            await asyncio.wait({closing}, timeout=10.0)
            await runtime.wait_tasks(0.0, lambda: self.force_exit)  # cancels what a forced exit left
            runtime.detach()
            await self._stop_loop_threads()
        if not self.force_exit:
            await self.lifespan.shutdown()

    def _runtimes(self) -> list[LoopRuntime]:
        runtimes = [self.main_runtime] if self.main_runtime is not None else []
        return runtimes + [t.runtime for t in self.loop_threads if t.runtime is not None]

    def _pending_tasks(self) -> int:
        return sum(len(runtime.tasks) for runtime in self._runtimes())

    async def _wait_drained(self, closing: asyncio.Future[None], deadline: float | None) -> None:
        """Until every connection is closed and every request Task (on every loop) has finished,
        the deadline passes, or a second Ctrl+C asks to force the exit."""
        loop = asyncio.get_running_loop()
        announced = False
        while not self.force_exit:
            if closing.done():
                if not self._pending_tasks():
                    return
                if not announced:
                    announced = True
                    logger.info("Waiting for background tasks to complete. (CTRL+C to force quit)")
            if deadline is not None and loop.time() >= deadline:
                return
            await asyncio.wait(
                {closing}, timeout=0.1 if deadline is None else min(0.1, deadline - loop.time())
            )

    async def _cancel_remaining(self, closing: asyncio.Future[None]) -> None:
        """The graceful-shutdown timeout passed: cancel the request Tasks on every loop, then give the
        500 responses this produces a moment to reach their clients before the connections close."""
        logger.error("Cancel %s running task(s), timeout graceful shutdown exceeded", self._pending_tasks())
        for runtime in self._runtimes():
            runtime.cancel_tasks_threadsafe()
        loop = asyncio.get_running_loop()
        flush_deadline = loop.time() + 1.0
        while (not closing.done() or self._pending_tasks()) and loop.time() < flush_deadline:
            await asyncio.wait({closing}, timeout=0.02)

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
