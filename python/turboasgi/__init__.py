"""turboasgi: an ASGI server with a Rust (tokio + hyper) network side, a drop-in replacement for uvicorn."""

from __future__ import annotations

import logging as _stdlib_logging  # plain `logging` is rebound to turboasgi.logging
import os
import sys
from typing import TYPE_CHECKING, Any

from turboasgi.config import STARTUP_FAILURE, Config, ConfigError


def _read_version() -> str:
    try:
        from importlib.metadata import PackageNotFoundError, version
    except ImportError:  # pragma: no cover
        return "0.1.0"
    try:
        return version("turboasgi")
    except PackageNotFoundError:
        return "0.1.0"


__version__: str = _read_version()

if TYPE_CHECKING:
    from turboasgi.server import Server

__all__ = ["Config", "ConfigError", "Server", "run", "__version__"]


def run(app: Any, *, app_dir: str | None = None, **kwargs: Any) -> None:
    """Run ``app`` (an ASGI application or a ``"module:attribute"`` import string) until stopped.

    Accepts the keyword arguments of ``Config`` (the same as ``uvicorn.run``). Exits the process with
    status 3 when the server could not start (import error, bind error, lifespan startup failure).
    Raises ``ConfigError`` (a ``ValueError``) for invalid or not yet supported options.
    """
    if app_dir is not None:
        sys.path.insert(0, app_dir)

    config = Config(app, **kwargs)
    if config.reload or config.workers > 1:
        if not isinstance(app, str):
            _stdlib_logging.getLogger("turboasgi.error").warning(
                "You must pass the application as an import string to enable 'reload' or 'workers'."
            )
            sys.exit(STARTUP_FAILURE)
    else:
        config.load_app()  # fail fast, before any socket is bound
    config.load_tls()  # checked once here too, so a bad --ssl-* option stops before any worker starts

    try:
        if config.should_reload:
            from turboasgi.reload import run_reloader

            status = run_reloader(config, [config.bind_socket()])
        elif config.workers > 1:
            from turboasgi.supervisor import run_workers

            status = run_workers(config, [config.bind_socket(reuse_port=True)])
        else:
            from turboasgi.server import Server

            server = Server(config=config)
            try:
                server.run()
            except KeyboardInterrupt:
                pass
            status = 0 if server.started else STARTUP_FAILURE
    finally:
        if config.uds and os.path.exists(config.uds):
            os.remove(config.uds)

    if status:
        sys.exit(status)


def __getattr__(name: str) -> Any:
    # Server (and through it the Rust core) is imported on first use, so that the CLI, Config and
    # the lifespan classes work without the compiled extension.
    if name == "Server":
        from turboasgi.server import Server

        return Server
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
