"""``--reload``: a supervisor that restarts its one worker process when a watched file changes.

The reloader binds the socket once and runs the server in a ``spawn`` worker process (the same entry
point as ``--workers``); when a file under the ``--reload-dir`` directories (default: the current
directory) that matches ``--reload-include`` (default ``*.py``) and no ``--reload-exclude`` (default
``.*``, ``.py[cod]``, ``.sw.*``, ``~*``) changes, the worker is stopped and a new one started, so the
application is imported afresh. Changes are detected with watchfiles when it is installed, else by
polling modification times every ``--reload-delay`` seconds. A worker that fails to start (a syntax
error being edited) is not restarted until the next change.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from collections.abc import Iterator, Sequence
from fnmatch import fnmatch
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from turboasgi.supervisor import WorkerProcess

if TYPE_CHECKING:
    from turboasgi.config import Config

logger = logging.getLogger("turboasgi.error")

DEFAULT_INCLUDES = ["*.py"]
DEFAULT_EXCLUDES = [".*", ".py[cod]", ".sw.*", "~*"]
ALWAYS_EXCLUDED_DIRS = {"__pycache__", "node_modules"}
HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def resolve_patterns(config: Config) -> tuple[list[Path], list[str], list[str]]:
    """The watched directories, include patterns and exclude patterns for ``config``, like uvicorn:
    the defaults, plus the user's; a user include removes the same default exclude and vice versa."""
    includes = list(dict.fromkeys([*DEFAULT_INCLUDES, *config.reload_includes]))
    excludes = list(dict.fromkeys([*DEFAULT_EXCLUDES, *config.reload_excludes]))
    includes = [p for p in includes if p not in config.reload_excludes]
    excludes = [p for p in excludes if p not in config.reload_includes]
    dirs = [Path(d).resolve() for d in config.reload_dirs] or [Path.cwd()]
    # Drop directories nested in another watched one.
    unique: list[Path] = []
    for directory in sorted(set(dirs), key=lambda p: len(p.parts)):
        if not any(directory.is_relative_to(parent) for parent in unique):
            unique.append(directory)
    return unique, includes, excludes


class FileFilter:
    """Decide whether a changed path should trigger a reload."""

    def __init__(self, dirs: Sequence[Path], includes: Sequence[str], excludes: Sequence[str]) -> None:
        self.dirs = list(dirs)
        self.includes = list(includes)
        self.excludes = list(excludes)

    def _matches(self, path: Path, patterns: Sequence[str]) -> bool:
        return any(fnmatch(path.name, p) or path.match(p) for p in patterns)

    def excluded_dir(self, name: str) -> bool:
        return name in ALWAYS_EXCLUDED_DIRS or any(fnmatch(name, p) for p in self.excludes)

    def __call__(self, path: Path) -> bool:
        for directory in self.dirs:
            if path.is_relative_to(directory):
                parents = path.relative_to(directory).parts[:-1]
                if any(self.excluded_dir(part) for part in parents):
                    return False
                break
        return self._matches(path, self.includes) and not self._matches(path, self.excludes)


class BaseReload:
    """Watch for changes and restart the worker; subclasses implement ``changes()``."""

    name = "BaseReload"

    def __init__(self, config: Config, sockets: Sequence[socket.socket]) -> None:
        self.config = config
        self.sockets = list(sockets)
        self.dirs, includes, excludes = resolve_patterns(config)
        self.filter = FileFilter(self.dirs, includes, excludes)
        self.should_exit = threading.Event()
        self.pid = os.getpid()
        self.worker: WorkerProcess | None = None
        self.force_exit = False

    def _handle_signal(self, sig: int, frame: FrameType | None) -> None:
        if self.should_exit.is_set() and sig == signal.SIGINT:
            self.force_exit = True
        self.should_exit.set()

    def changes(self) -> Iterator[list[Path]]:
        """Yield the changed paths (an empty list when nothing changed) about every reload delay,
        until ``should_exit`` is set."""
        raise NotImplementedError

    def _start_worker(self) -> None:
        self.worker = WorkerProcess(self.config, self.sockets)
        self.worker.start()

    def _stop_worker(self) -> None:
        worker = self.worker
        if worker is None:
            return
        worker.terminate()
        forced = False
        while worker.is_alive():
            if self.force_exit and not forced:
                forced = True
                worker.signal(signal.SIGINT)
                worker.signal(signal.SIGINT)
            worker.process.join(0.1)
        worker.close()
        self.worker = None

    def run(self) -> int:
        logger.info("Will watch for changes in these directories: %s", sorted(map(str, self.dirs)))
        message = f"Started reloader process [{self.pid}] using {self.name}"
        logger.info(message, extra={"color_message": message})
        original = {sig: signal.signal(sig, self._handle_signal) for sig in HANDLED_SIGNALS}
        try:
            self._start_worker()
            for changed in self.changes():
                if self.worker is not None:
                    self.worker.read_messages()  # keep the pipe drained (ready / pong)
                if not changed:
                    continue
                names = ", ".join(f"'{self._display(p)}'" for p in changed)
                logger.warning("%s detected changes in %s. Reloading...", self.name, names)
                self._stop_worker()
                self._start_worker()
            self._stop_worker()
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)
        logger.info("Stopping reloader process [%d]", self.pid)
        return 0

    @staticmethod
    def _display(path: Path) -> str:
        try:
            return str(path.relative_to(Path.cwd()))
        except ValueError:
            return str(path)


class WatchFilesReload(BaseReload):
    name = "WatchFiles"

    def changes(self) -> Iterator[list[Path]]:
        from watchfiles import watch

        delay_ms = max(1, int(self.config.reload_delay * 1000))
        for batch in watch(
            *self.dirs,
            watch_filter=lambda _change, path: self.filter(Path(path)),
            stop_event=self.should_exit,
            rust_timeout=delay_ms,
            yield_on_timeout=True,
            raise_interrupt=False,
        ):
            if self.should_exit.is_set():
                return
            yield sorted({Path(path) for _change, path in batch})


class StatReload(BaseReload):
    name = "StatReload"

    def _scan(self) -> dict[Path, float]:
        found: dict[Path, float] = {}
        for directory in self.dirs:
            for root, subdirs, files in os.walk(directory):
                subdirs[:] = [d for d in subdirs if not self.filter.excluded_dir(d)]
                for name in files:
                    path = Path(root, name)
                    if not self.filter(path):
                        continue
                    try:
                        found[path] = path.stat().st_mtime
                    except OSError:
                        pass
        return found

    def changes(self) -> Iterator[list[Path]]:
        known = self._scan()
        while not self.should_exit.wait(self.config.reload_delay):
            current = self._scan()
            changed = [p for p, mtime in current.items() if known.get(p) != mtime]
            changed += [p for p in known if p not in current]
            known = current
            yield sorted(changed)


def reloader_class() -> type[BaseReload]:
    try:
        import watchfiles  # noqa: F401
    except ImportError:
        return StatReload
    return WatchFilesReload


def run_reloader(config: Config, sockets: Sequence[socket.socket]) -> int:
    return reloader_class()(config, sockets).run()


__all__ = ["BaseReload", "FileFilter", "StatReload", "WatchFilesReload", "reloader_class", "run_reloader"]
