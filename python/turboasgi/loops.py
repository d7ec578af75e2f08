"""Event-loop threads: one asyncio loop per thread, each fed by the same Rust core.

On a free-threaded build (GIL disabled) the loops run in parallel, one per core; under a GIL they only
add contention, so one loop is the default there.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import sysconfig
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from turboasgi.protocol import HttpRunner, WebSocketRunner

if TYPE_CHECKING:
    from turboasgi._core import LoopHandle, ServerCore
    from turboasgi.config import Config

logger = logging.getLogger("turboasgi.error")

BLOCKED_SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT}


def free_threaded_build() -> bool:
    return bool(sysconfig.get_config_var("Py_GIL_DISABLED"))


def gil_enabled() -> bool:
    check: Callable[[], bool] | None = getattr(sys, "_is_gil_enabled", None)
    return True if check is None else check()


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def default_loop_count() -> int:
    return usable_cores() if free_threaded_build() and not gil_enabled() else 1


def tokio_thread_count(loops: int) -> int:
    """Network threads: what the loops leave of the cores, at least 1, and 1 per 4 loops on big machines."""
    return max(1, usable_cores() - loops, loops // 4)


class LoopRuntime:
    """What one loop serves with: its runners, its lifespan and its inbox handle."""

    def __init__(self, config: Config, loop: asyncio.AbstractEventLoop, access_log: bool) -> None:
        self.config = config
        self.loop = loop
        self.http = HttpRunner(
            config.loaded_app, loop, access_log=access_log, access_format=config.access_format
        )
        self.websocket = WebSocketRunner(
            config.loaded_app, loop, access_log=access_log, tasks=self.http.tasks
        )
        self.lifespan: Any = config.lifespan_class(config)
        self.handle: LoopHandle | None = None

    @property
    def tasks(self) -> set[asyncio.Task[None]]:
        return self.http.tasks

    def attach(self, core: ServerCore) -> None:
        self.handle = core.add_loop(self.loop, self.http, self.lifespan.state, self.websocket)
        self.loop.add_reader(self.handle.fileno(), self.handle.drain)

    def cancel_tasks_threadsafe(self) -> None:
        """Cancel this loop's request Tasks (the graceful-shutdown timeout passed); callable from any
        thread."""
        try:
            self.loop.call_soon_threadsafe(self._cancel_tasks)
        except RuntimeError:
            pass  # that loop has already stopped: it has no Task left to cancel

    def _cancel_tasks(self) -> None:
        self.http.shutdown_cancelled = True  # the runners then log what each client got
        for task in list(self.tasks):
            task.cancel(msg="timeout graceful shutdown exceeded")

    def detach(self) -> None:
        if self.handle is not None:
            self.loop.remove_reader(self.handle.fileno())

    async def wait_tasks(self, timeout: float | None, force: Callable[[], bool]) -> None:
        """Request Tasks may outlive their connection (background work after the response)."""
        if not self.tasks:
            return
        deadline = None if timeout is None else self.loop.time() + timeout
        while self.tasks and not force():
            if deadline is not None and self.loop.time() >= deadline:
                break
            await asyncio.wait(set(self.tasks), timeout=0.1)
        for task in list(self.tasks):
            task.cancel()
        if self.tasks:
            await asyncio.wait(set(self.tasks), timeout=1.0)


class _ExtraLoopLifespanLogger:
    """The main loop logs the lifespan progress lines; extra loops log them at debug level only
    (errors stay errors), so a 16-loop server does not print every line 16 times."""

    def __init__(self, index: int) -> None:
        self.index = index

    def info(self, msg: str, *args: Any, **kwargs: Any) -> None:
        logger.debug(f"event loop {self.index}: {msg}", *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(logger, name)


class LoopThread:
    """An extra event loop in its own thread: lifespan startup, serve until stopped, lifespan shutdown."""

    def __init__(self, index: int, config: Config, core: ServerCore, access_log: bool) -> None:
        self.index = index
        self.config = config
        self.core = core
        self.access_log = access_log
        self.ready = threading.Event()
        self.failed = False
        self.force = False
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.runtime: LoopRuntime | None = None
        self.thread = threading.Thread(target=self._main, name=f"turboasgi-loop-{index}", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self, force: bool = False) -> None:
        self.force = self.force or force
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(stop.set)
            except RuntimeError:
                pass  # the loop already finished

    def join(self, timeout: float | None = None) -> None:
        self.thread.join(timeout)

    def _main(self) -> None:
        # The kernel must deliver process signals to the main thread, where Python handles them.
        signal.pthread_sigmask(signal.SIG_BLOCK, BLOCKED_SIGNALS)
        factory = self.config.get_loop_factory() or asyncio.new_event_loop
        loop = factory()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve(loop))
        except BaseException:
            logger.exception("Event loop %d stopped with an error", self.index)
            self.failed = True
        finally:
            self.ready.set()
            loop.close()

    async def _serve(self, loop: asyncio.AbstractEventLoop) -> None:
        self._stop = asyncio.Event()
        runtime = LoopRuntime(self.config, loop, self.access_log)
        self.runtime = runtime
        runtime.lifespan.logger = _ExtraLoopLifespanLogger(self.index)
        await runtime.lifespan.startup()
        if runtime.lifespan.should_exit:
            self.failed = True
            self.ready.set()
            return
        runtime.attach(self.core)
        self.ready.set()
        await self._stop.wait()
        # Server.shutdown() already waited (within --timeout-graceful-shutdown) for the Tasks of every
        # loop and cancelled them when the time ran out: whatever is left now is cancelled.
        await runtime.wait_tasks(0.0, lambda: self.force)
        runtime.detach()
        if not self.force:
            await runtime.lifespan.shutdown()
