"""Worker processes: ``--workers N`` runs a supervisor that binds once and starts N worker processes.

The supervisor (the parent) binds the listening socket(s) once and hands them to every worker, started
with the ``spawn`` start method. Each worker runs ``Server(config).run(sockets=...)`` and so keeps
``--threads`` loops and the core's default tokio sizing. All workers accept from the same socket: the
listen queue stays open for as long as the supervisor lives, so replacing a worker never refuses a
connection.

Worker and supervisor talk over a pipe: the worker says ``ready`` once it serves, and answers the
supervisor's periodic ``ping`` with ``pong`` (``--timeout-worker-healthcheck``); a worker that stops
answering is killed and replaced. A worker that loses its supervisor stops itself.

Signals to the supervisor:

- SIGINT / SIGTERM: graceful stop: SIGTERM to every worker, wait for them, exit 0. A second SIGINT
  while waiting forces the workers to close their connections.
- SIGHUP: rolling restart, one worker at a time: start the replacement, wait until it serves, then
  stop the old worker gracefully.
- SIGTTIN / SIGTTOU: one worker more / one worker less.

A worker that dies is replaced, with an exponential back-off when it keeps dying soon after starting.
A worker that fails at startup (exit status 3: import error, lifespan startup failed) stops the whole
server with exit status 3 instead of looping.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Sequence
from multiprocessing.connection import Connection
from multiprocessing.context import SpawnProcess
from types import FrameType
from typing import TYPE_CHECKING

from turboasgi.config import STARTUP_FAILURE

if TYPE_CHECKING:
    from turboasgi.config import Config

logger = logging.getLogger("turboasgi.error")

spawn = multiprocessing.get_context("spawn")

SUPERVISOR_SIGNALS = (
    signal.SIGINT,
    signal.SIGTERM,
    signal.SIGHUP,
    signal.SIGTTIN,
    signal.SIGTTOU,
)
# Back-off between restarts of a worker that keeps dying: 0.1 s doubling up to MAX_BACKOFF; a worker
# that lived STABLE_AFTER seconds resets it.
FIRST_BACKOFF = 0.1
MAX_BACKOFF = 5.0
STABLE_AFTER = 10.0
# How long a replacement may take to start serving during a rolling restart before it is given up.
READY_TIMEOUT = 60.0
HEALTHCHECK_INTERVAL = 1.0


# ------------------------------------------------------------------------------------ worker side


def _watch_parent(conn: Connection, lock: threading.Lock) -> None:
    """Worker thread: answer health checks; stop the worker when the supervisor goes away."""
    signal.pthread_sigmask(signal.SIG_BLOCK, SUPERVISOR_SIGNALS)
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            break
        if message == "ping":
            try:
                with lock:
                    conn.send("pong")
            except OSError:
                break
    # No supervisor any more: shut down as if it had sent SIGTERM.
    os.kill(os.getpid(), signal.SIGTERM)


def worker_main(
    config: Config, sockets: Sequence[socket.socket], conn: Connection | None, stdin_fd: int | None
) -> None:
    """Entry point of a worker process (also used by the reloader): serve until told to stop.

    Exits with status 3 when the server did not start (import error, lifespan startup failure).
    """
    if stdin_fd is not None:
        try:
            sys.stdin = os.fdopen(stdin_fd)
        except OSError:
            pass
    config.configure_logging()

    from turboasgi.server import Server

    lock = threading.Lock()

    class WorkerServer(Server):
        async def startup(self, sockets: Sequence[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            if self.started and conn is not None:
                with lock:
                    conn.send("ready")

    if conn is not None:
        watcher = threading.Thread(target=_watch_parent, args=(conn, lock), name="turboasgi-parent")
        watcher.daemon = True
        watcher.start()
    # A stop signal that arrives before the server captures signals, or that the server re-raises
    # once it has finished, ends the worker with status 0 rather than death by signal.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _exit_quietly)
    server = WorkerServer(config)
    try:
        server.run(sockets=sockets)
    except KeyboardInterrupt:
        pass
    if not server.started:
        sys.exit(STARTUP_FAILURE)


def _exit_quietly(sig: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def _stdin_fd() -> int | None:
    try:
        return sys.stdin.fileno()
    except (AttributeError, OSError, ValueError):
        return None


# ------------------------------------------------------------------------------------ supervisor side


class WorkerProcess:
    """The supervisor's handle on one worker process."""

    def __init__(self, config: Config, sockets: Sequence[socket.socket]) -> None:
        parent_conn, child_conn = spawn.Pipe()
        self.conn = parent_conn
        self._child_conn = child_conn
        self.process: SpawnProcess = spawn.Process(
            target=worker_main,
            kwargs={"config": config, "sockets": list(sockets), "conn": child_conn, "stdin_fd": _stdin_fd()},
        )
        self.started_at = 0.0
        self.ready = False
        self.ping_sent_at: float | None = None
        self.last_ping = 0.0
        self.terminated = False

    @property
    def pid(self) -> int:
        return self.process.pid or 0

    def start(self) -> None:
        self.process.start()
        self._child_conn.close()
        self.started_at = time.monotonic()
        self.last_ping = self.started_at

    def is_alive(self) -> bool:
        return self.process.is_alive()

    @property
    def exitcode(self) -> int | None:
        return self.process.exitcode

    def read_messages(self) -> None:
        try:
            while self.conn.poll():
                message = self.conn.recv()
                if message == "ready":
                    self.ready = True
                elif message == "pong":
                    self.ping_sent_at = None
        except (EOFError, OSError):
            pass

    def ping(self, now: float) -> None:
        if self.ping_sent_at is not None or not self.ready:
            return
        try:
            self.conn.send("ping")
        except OSError:
            return
        self.ping_sent_at = now
        self.last_ping = now

    def signal(self, sig: int) -> None:
        if self.process.pid is not None and self.process.exitcode is None:
            try:
                os.kill(self.process.pid, sig)
            except ProcessLookupError:
                pass

    def terminate(self) -> None:
        self.terminated = True
        self.signal(signal.SIGTERM)

    def close(self) -> None:
        self.conn.close()
        try:
            self.process.close()
        except ValueError:
            pass


class Slot:
    """One of the N worker positions: its current worker and its restart back-off."""

    def __init__(self) -> None:
        self.worker: WorkerProcess | None = None
        self.failures = 0
        self.restart_at = 0.0


class Multiprocess:
    """Supervise ``config.workers`` worker processes serving ``sockets`` (see the module docstring)."""

    def __init__(self, config: Config, sockets: Sequence[socket.socket]) -> None:
        self.config = config
        self.sockets = list(sockets)
        # Slot i > 0 gets its own SO_REUSEPORT socket on the same address when the listening socket
        # allows it: the kernel balances new connections over the workers, instead of whichever worker
        # wakes first taking a whole burst. The supervisor keeps every socket open, so a restarted
        # worker takes over its slot's socket and its queued connections.
        self.slot_sockets: dict[int, list[socket.socket]] = {}
        self.slots: list[Slot] = []
        self.retiring: list[WorkerProcess] = []
        self.should_exit = False
        self.force_exit = False
        self.exit_code = 0
        self.pid = os.getpid()
        self._signals: list[int] = []
        self._wake = threading.Event()
        # Rolling restart: slots still to replace, and the replacement being started.
        self._restart_queue: list[int] = []
        self._replacement: tuple[int, WorkerProcess] | None = None

    # -------------------------------------------------------------------------------- signals

    def _handle_signal(self, sig: int, frame: FrameType | None) -> None:
        self._signals.append(sig)
        self._wake.set()

    def _process_signals(self) -> None:
        while self._signals:
            sig = self._signals.pop(0)
            if sig in (signal.SIGINT, signal.SIGTERM):
                if self.should_exit and sig == signal.SIGINT:
                    self.force_exit = True
                self.should_exit = True
            elif sig == signal.SIGHUP:
                logger.info("Received SIGHUP, restarting the worker processes one at a time.")
                for index in range(len(self.slots)):
                    if index not in self._restart_queue:
                        self._restart_queue.append(index)
            elif sig == signal.SIGTTIN:
                self.slots.append(Slot())
                logger.info("Received SIGTTIN, increasing the number of workers to %d.", len(self.slots))
            elif sig == signal.SIGTTOU:
                if len(self.slots) <= 1:
                    logger.info("Received SIGTTOU, but there is only one worker left.")
                    continue
                slot = self.slots.pop()
                self._restart_queue = [i for i in self._restart_queue if i < len(self.slots)]
                if slot.worker is not None:
                    self._retire(slot.worker)
                logger.info("Received SIGTTOU, decreasing the number of workers to %d.", len(self.slots))

    # -------------------------------------------------------------------------------- workers

    def _sockets_for(self, index: int) -> list[socket.socket]:
        if index == 0 or len(self.sockets) != 1:
            return self.sockets
        if index not in self.slot_sockets:
            sibling = self.config.bind_sibling(self.sockets[0])
            self.slot_sockets[index] = [sibling] if sibling is not None else self.sockets
        return self.slot_sockets[index]

    def _spawn(self, index: int) -> WorkerProcess:
        worker = WorkerProcess(self.config, self._sockets_for(index))
        worker.start()
        return worker

    def _retire(self, worker: WorkerProcess) -> None:
        worker.terminate()
        self.retiring.append(worker)

    def _startup_failed(self, worker: WorkerProcess) -> bool:
        """True (and the supervisor stops, exit 3) when ``worker`` died at startup with status 3."""
        if worker.exitcode == STARTUP_FAILURE and not worker.ready:
            logger.error(
                "Child process [%d] failed to start (exit status %d); stopping.", worker.pid, STARTUP_FAILURE
            )
            self.exit_code = STARTUP_FAILURE
            self.should_exit = True
            return True
        return False

    def _check_slots(self, now: float) -> None:
        for index, slot in enumerate(self.slots):
            worker = slot.worker
            if worker is None:
                if now >= slot.restart_at and not self.should_exit:
                    slot.worker = self._spawn(index)
                continue
            worker.read_messages()
            if worker.is_alive():
                timeout = self.config.timeout_worker_healthcheck
                if worker.ping_sent_at is not None and now - worker.ping_sent_at > timeout:
                    logger.error("Child process [%d] is not responding; killing it.", worker.pid)
                    worker.signal(signal.SIGKILL)
                    worker.ping_sent_at = None
                elif now - worker.last_ping >= HEALTHCHECK_INTERVAL:
                    worker.ping(now)
                continue
            # The worker is gone.
            worker.process.join()
            worker.read_messages()
            if self._startup_failed(worker):
                return
            code = worker.exitcode
            if code == 0 and worker.ready:
                logger.info("Child process [%d] exited; starting a new one.", worker.pid)
                slot.failures = 0
                slot.restart_at = now
            else:
                logger.warning("Child process [%d] died (exit status %s).", worker.pid, code)
                if now - worker.started_at >= STABLE_AFTER:
                    slot.failures = 0
                delay = 0.0
                if slot.failures:
                    delay = min(MAX_BACKOFF, FIRST_BACKOFF * 2 ** (slot.failures - 1))
                slot.failures += 1
                slot.restart_at = now + delay
                if delay:
                    logger.info("Restarting it in %.1f s.", delay)
            worker.close()
            slot.worker = None
            if now >= slot.restart_at and not self.should_exit:
                slot.worker = self._spawn(index)

    def _check_rolling_restart(self, now: float) -> None:
        if self._replacement is None:
            while self._restart_queue:
                index = self._restart_queue.pop(0)
                if index < len(self.slots) and self.slots[index].worker is not None:
                    self._replacement = (index, self._spawn(index))
                    break
            return
        index, new = self._replacement
        new.read_messages()
        if new.ready:
            self._replacement = None
            if index < len(self.slots):
                slot = self.slots[index]
                old, slot.worker, slot.failures = slot.worker, new, 0
                if old is not None:
                    self._retire(old)
            else:  # the slot went away (SIGTTOU) meanwhile
                self._retire(new)
            return
        if not new.is_alive():
            new.process.join()
            self._replacement = None
            if self._startup_failed(new):
                return
            logger.error(
                "Replacement worker [%d] died before serving (exit status %s); rolling restart stopped.",
                new.pid,
                new.exitcode,
            )
            self._restart_queue.clear()
            new.close()
        elif now - new.started_at > READY_TIMEOUT:
            logger.error("Replacement worker [%d] did not start serving in time; killing it.", new.pid)
            new.signal(signal.SIGKILL)

    def _reap_retiring(self) -> None:
        for worker in list(self.retiring):
            if not worker.is_alive():
                worker.process.join()
                logger.info("Child process [%d] stopped.", worker.pid)
                worker.close()
                self.retiring.remove(worker)

    # -------------------------------------------------------------------------------- main

    def run(self) -> int:
        """Supervise until stopped; return the exit status (0, or 3 after a startup failure)."""
        message = "Started parent process [%d]"
        logger.info(message, self.pid, extra={"color_message": message})
        original = {sig: signal.signal(sig, self._handle_signal) for sig in SUPERVISOR_SIGNALS}
        try:
            self.slots = [Slot() for _ in range(self.config.workers)]
            for index, slot in enumerate(self.slots):
                slot.worker = self._spawn(index)
            while True:
                self._process_signals()
                if self.should_exit:
                    break
                now = time.monotonic()
                self._check_slots(now)
                if self.should_exit:
                    break
                self._check_rolling_restart(now)
                self._reap_retiring()
                self._wake.wait(0.05)
                self._wake.clear()
            self._shutdown()
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)
        logger.info("Stopping parent process [%d]", self.pid)
        return self.exit_code

    def _all_workers(self) -> list[WorkerProcess]:
        workers = [slot.worker for slot in self.slots if slot.worker is not None]
        if self._replacement is not None:
            workers.append(self._replacement[1])
        return workers + self.retiring

    def _shutdown(self) -> None:
        workers = self._all_workers()
        for worker in workers:
            worker.terminate()
        forced = False
        for worker in workers:
            logger.info("Waiting for child process [%d]", worker.pid)
            while worker.is_alive():
                self._process_signals()
                if self.force_exit and not forced:
                    forced = True
                    # A second SIGINT makes each worker's server close its connections now.
                    for other in workers:
                        other.signal(signal.SIGINT)
                        other.signal(signal.SIGINT)
                worker.process.join(0.1)
            worker.close()


def run_workers(config: Config, sockets: Sequence[socket.socket]) -> int:
    return Multiprocess(config, sockets).run()


__all__ = ["Multiprocess", "WorkerProcess", "run_workers", "worker_main"]
