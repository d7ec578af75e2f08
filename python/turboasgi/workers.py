"""A gunicorn worker class: ``gunicorn app:app -k turboasgi.workers.TurboWorker``.

Gunicorn (an optional dependency) manages the processes and binds the sockets; each worker runs a
turboasgi ``Server`` on gunicorn's sockets. Gunicorn settings map to turboasgi's as follows:

- ``--keep-alive`` -> ``timeout_keep_alive``; ``--backlog`` -> ``backlog``
- ``--timeout`` -> the heartbeat: the worker notifies the arbiter from the server's tick
  (``callback_notify``), so a worker whose event loop is stuck is killed and replaced
- ``--max-requests`` / ``--max-requests-jitter`` -> ``limit_max_requests`` (gunicorn draws the jitter)
- ``--forwarded-allow-ips`` -> ``forwarded_allow_ips``
- TLS settings (``--keyfile``, ``--certfile``, ``--ca-certs``, ``--cert-reqs``, ``--ssl-version``,
  ``--ciphers``) -> the ``ssl_*`` options, served by turboasgi's rustls (gunicorn does not wrap the sockets)

Signals: SIGTERM is a graceful stop, SIGINT and SIGQUIT a quick one (connections are closed).
"""

from __future__ import annotations

import logging
import signal
import sys
from types import FrameType
from typing import Any

from gunicorn.arbiter import Arbiter
from gunicorn.workers.base import Worker

from turboasgi.config import Config

__all__ = ["TurboWorker"]


class TurboWorker(Worker):  # type: ignore[misc]
    """Run a turboasgi server in a gunicorn worker process."""

    CONFIG_KWARGS: dict[str, Any] = {"loop": "auto", "http": "auto"}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)

        # Log through gunicorn's handlers and levels.
        error_logger = logging.getLogger("turboasgi.error")
        error_logger.handlers = self.log.error_log.handlers
        error_logger.setLevel(self.log.error_log.level)
        error_logger.propagate = False
        access_logger = logging.getLogger("turboasgi.access")
        access_logger.handlers = self.log.access_log.handlers
        access_logger.setLevel(self.log.access_log.level)
        access_logger.propagate = False

        max_requests = self.max_requests if self.max_requests < sys.maxsize else None
        forwarded = self.cfg.forwarded_allow_ips
        ssl_kwargs: dict[str, Any] = {}
        if self.cfg.is_ssl:
            options = self.cfg.ssl_options
            ssl_kwargs = {
                "ssl_keyfile": options.get("keyfile"),
                "ssl_certfile": options.get("certfile"),
                "ssl_keyfile_password": options.get("password"),
                "ssl_version": options.get("ssl_version"),
                "ssl_cert_reqs": options.get("cert_reqs"),
                "ssl_ca_certs": options.get("ca_certs"),
                "ssl_ciphers": options.get("ciphers"),
            }
        self.config = Config(
            app=None,
            log_config=None,
            timeout_keep_alive=self.cfg.keepalive,
            timeout_notify=self.timeout,
            callback_notify=self.callback_notify,
            limit_max_requests=max_requests,
            forwarded_allow_ips=forwarded if forwarded else None,
            backlog=self.cfg.backlog,
            **ssl_kwargs,
            **self.CONFIG_KWARGS,
        )
        self.server: Any = None

    def init_process(self) -> None:
        from turboasgi.tls import TLSSetupError

        try:
            self.config.tls_config()
        except TLSSetupError as error:
            # After the fork: the worker exits with gunicorn's boot error status, so the arbiter
            # stops with "Worker failed to boot." instead of restarting it in a loop.
            self.log.error("%s", error)
            sys.exit(Arbiter.WORKER_BOOT_ERROR)
        super().init_process()

    def init_signals(self) -> None:
        # Gunicorn's own handlers would stop the worker abruptly: the server installs its SIGINT and
        # SIGTERM handlers in run(); SIGQUIT (gunicorn's quick stop) is handled here.
        for sig in self.SIGNALS:
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGUSR1, self.handle_usr1)
        signal.siginterrupt(signal.SIGUSR1, False)
        signal.signal(signal.SIGQUIT, self._handle_quit)

    def _handle_quit(self, sig: int, frame: FrameType | None) -> None:
        if self.server is not None:
            self.server.should_exit = True
            self.server.force_exit = True
        else:
            sys.exit(0)

    async def callback_notify(self) -> None:
        self.notify()

    def run(self) -> None:
        from turboasgi.server import Server

        self.config.app = self.wsgi
        self.server = Server(config=self.config)
        sockets = [getattr(sock, "sock", sock) for sock in self.sockets]
        try:
            self.server.run(sockets=sockets)
        except KeyboardInterrupt:
            pass
        if not self.server.started:
            sys.exit(Arbiter.WORKER_BOOT_ERROR)
