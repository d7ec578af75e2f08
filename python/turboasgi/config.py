"""Server configuration: the same constructor arguments and attributes as ``uvicorn.Config``.

``Config`` validates options, configures logging, imports the application (``load()``), binds the
listening socket (``bind_socket()``) and translates itself into the Rust core's ``CoreConfig``
(``core_config()``). Options turboasgi does not implement yet are rejected with ``ConfigError``
instead of being silently ignored.
"""

from __future__ import annotations

import asyncio
import copy
import inspect
import json
import logging
import logging.config
import os
import socket
import ssl
import stat
import sys
from collections.abc import Awaitable, Callable, Iterable, Sequence
from configparser import ConfigParser, RawConfigParser
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal

from turboasgi.access_log import AccessLogFormat
from turboasgi.importer import ImportFromStringError, import_from_string
from turboasgi.logging import (
    LOGGING_CONFIG,
    TRACE_LOG_LEVEL,
    configured_logger_names,
    forward_to_uvicorn,
    style,
    translate_formatter_classes,
    translate_ini_formatter_classes,
    uses_uvicorn_loggers,
)
from turboasgi.systemd import SystemdSocketError, take_listen_fd

if TYPE_CHECKING:
    from turboasgi._core import CoreConfig, TlsConfig
    from turboasgi.lifespan import LifespanOff, LifespanOn

__all__ = [
    "Config",
    "ConfigError",
    "ASGI2Middleware",
    "LOGGING_CONFIG",
    "LOG_LEVELS",
    "LIFESPAN",
    "INTERFACES",
    "STARTUP_FAILURE",
    "SSL_PROTOCOL_VERSION",
]

HTTPProtocolType = Literal["auto", "h11", "httptools"]
WSProtocolType = Literal["auto", "none", "websockets", "websockets-sansio", "wsproto"]
LifespanType = Literal["auto", "on", "off"]
LoopFactoryType = Literal["none", "auto", "asyncio", "uvloop"]
InterfaceType = Literal["auto", "asgi3", "asgi2", "wsgi"]

LOG_LEVELS: dict[str, int] = {
    "critical": logging.CRITICAL,
    "error": logging.ERROR,
    "warning": logging.WARNING,
    "info": logging.INFO,
    "debug": logging.DEBUG,
    "trace": TRACE_LOG_LEVEL,
}
LIFESPAN: dict[str, str] = {
    "auto": "turboasgi.lifespan:LifespanOn",
    "on": "turboasgi.lifespan:LifespanOn",
    "off": "turboasgi.lifespan:LifespanOff",
}
INTERFACES: list[str] = ["auto", "asgi3", "asgi2", "wsgi"]
# "auto": HTTP/1.1 and HTTP/2 (h2c with prior knowledge, or ALPN h2 over TLS); "1"/"2": only that
# version. uvicorn's implementation names select turboasgi's own implementation, like "auto".
HTTP_CHOICES: list[str] = ["auto", "1", "2", "h11", "httptools", "zttp"]
WS_CHOICES: list[str] = ["auto", "none", "websockets", "websockets-sansio", "wsproto"]
LOOP_CHOICES: list[str] = ["none", "auto", "asyncio", "uvloop"]
# The WebSocket implementation is ours (tokio-tungstenite); uvicorn's implementation names are accepted
# as synonyms of "auto" so that existing command lines keep working.
SUPPORTED_WS: tuple[str, ...] = ("auto", "none", "websockets", "websockets-sansio", "wsproto")

SSL_PROTOCOL_VERSION: int = ssl.PROTOCOL_TLS_SERVER
STARTUP_FAILURE = 3
# uvicorn ends with an uncaught ssl/OS error (status 1) when its TLS files cannot be used.
TLS_SETUP_FAILURE = 1

DEFAULT_WS_MAX_SIZE = 16 * 1024 * 1024
DEFAULT_WS_MAX_QUEUE = 32
DEFAULT_WS_PING_INTERVAL = 20.0
DEFAULT_WS_PING_TIMEOUT = 20.0
DEFAULT_MAX_HEADER_BYTES = 65536
# both loopback addresses, as uvicorn (0.30 and later) and gunicorn trust by default
DEFAULT_FORWARDED_ALLOW_IPS = ["127.0.0.1", "::1"]
# HTTP/2 defaults; docs/usage.md ("HTTP/2") says why each.
DEFAULT_H2_MAX_CONCURRENT_STREAMS = 100
DEFAULT_H2_MAX_HEADER_LIST_SIZE = 65536
DEFAULT_H2_INITIAL_STREAM_WINDOW_SIZE = 1024 * 1024
DEFAULT_H2_INITIAL_CONNECTION_WINDOW_SIZE = 1024 * 1024
DEFAULT_H2_MAX_FRAME_SIZE = 16384
DEFAULT_H2_KEEP_ALIVE_TIMEOUT = 20.0
DEFAULT_H2_MAX_PENDING_ACCEPT_RESET_STREAMS = 20
DEFAULT_H2_MAX_LOCAL_ERROR_RESET_STREAMS = 1024
H2_MIN_FRAME_SIZE = 1 << 14
H2_MAX_FRAME_SIZE = (1 << 24) - 1
H2_MAX_WINDOW_SIZE = (1 << 31) - 1

logger = logging.getLogger("turboasgi.error")

ASGIApp = Callable[..., Any]
LogConfig = dict[str, Any] | str | os.PathLike[str] | RawConfigParser | IO[Any] | None


class ConfigError(ValueError):
    """An option value is invalid, or names a feature turboasgi does not support yet."""


def _not_supported(what: str) -> ConfigError:
    return ConfigError(f"{what} is not yet supported by turboasgi")


def _iscoroutinefunction(obj: Any) -> bool:
    if sys.version_info >= (3, 14):
        return inspect.iscoroutinefunction(obj)
    return asyncio.iscoroutinefunction(obj)


class ASGI2Middleware:
    """Adapt a legacy ASGI2 application (``app(scope)`` returning ``instance(receive, send)``) to ASGI3."""

    def __init__(self, app: Callable[[dict[str, Any]], Any]) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        instance = self.app(scope)
        await instance(receive, send)


def _as_list(value: Sequence[str] | str | None) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return list(dict.fromkeys(value))


def _split_ips(value: Sequence[str] | str) -> list[str]:
    items = value.split(",") if isinstance(value, str) else list(value)
    return [item.strip() for item in items if item.strip()]


def _parse_header(header: Any) -> tuple[str, str]:
    if isinstance(header, str):
        name, sep, value = header.partition(":")
        if not sep or not name.strip():
            raise ConfigError(f'Invalid header "{header}": expected "Name:Value".')
        return name.strip(), value.strip()
    try:
        name, value = header
    except (TypeError, ValueError):
        raise ConfigError(f"Invalid header {header!r}: expected a (name, value) pair.") from None
    return str(name), str(value)


def _bind_error(exc: OSError, address: tuple[str, int] | str) -> str:
    """The message asyncio's ``create_server`` gives (and so uvicorn, single process): it names the
    address, e.g. ``[Errno 98] error while attempting to bind on address ('127.0.0.1', 8000): address
    already in use``."""
    if exc.errno is None or not exc.strerror:
        return f"error while attempting to bind on address {address!r}: {exc}"
    return (
        f"[Errno {exc.errno}] error while attempting to bind on address {address!r}: {exc.strerror.lower()}"
    )


class Config:
    def __init__(
        self,
        app: ASGIApp | str,
        host: str = "127.0.0.1",
        port: int = 8000,
        uds: str | None = None,
        fd: int | None = None,
        loop: str = "auto",
        http: type[asyncio.Protocol] | str = "auto",
        http2: bool = False,
        ws: type[asyncio.Protocol] | str = "auto",
        ws_max_size: int = DEFAULT_WS_MAX_SIZE,
        ws_max_queue: int = DEFAULT_WS_MAX_QUEUE,
        ws_ping_interval: float | None = DEFAULT_WS_PING_INTERVAL,
        ws_ping_timeout: float | None = DEFAULT_WS_PING_TIMEOUT,
        ws_per_message_deflate: bool = True,
        lifespan: LifespanType | str = "auto",
        env_file: str | os.PathLike[str] | None = None,
        log_config: LogConfig = LOGGING_CONFIG,
        log_level: str | int | None = None,
        access_log: bool = True,
        use_colors: bool | None = None,
        interface: InterfaceType | str = "auto",
        reload: bool = False,
        reload_dirs: list[str] | str | None = None,
        reload_delay: float = 0.25,
        reload_includes: list[str] | str | None = None,
        reload_excludes: list[str] | str | None = None,
        workers: int | None = None,
        proxy_headers: bool = True,
        server_header: bool = True,
        date_header: bool = True,
        forwarded_allow_ips: list[str] | str | None = None,
        root_path: str = "",
        limit_concurrency: int | None = None,
        limit_max_requests: int | None = None,
        limit_max_requests_jitter: int = 0,
        backlog: int = 2048,
        timeout_keep_alive: int | float = 5,
        timeout_notify: int = 30,
        timeout_graceful_shutdown: int | float | None = None,
        timeout_worker_healthcheck: int = 5,
        callback_notify: Callable[..., Awaitable[None]] | None = None,
        ssl_keyfile: str | os.PathLike[str] | None = None,
        ssl_certfile: str | os.PathLike[str] | None = None,
        ssl_keyfile_password: str | None = None,
        ssl_version: int = SSL_PROTOCOL_VERSION,
        ssl_cert_reqs: int = ssl.CERT_NONE,
        ssl_ca_certs: str | os.PathLike[str] | None = None,
        ssl_ciphers: str | None = None,
        ssl_context_factory: Callable[..., ssl.SSLContext] | None = None,
        headers: Iterable[tuple[str, str] | list[str] | str] | None = None,
        factory: bool = False,
        h11_max_incomplete_event_size: int | None = None,
        reset_contextvars: bool = False,
        threads: int | None = None,
        metrics_port: int | None = None,
        metrics_host: str | None = None,
        timeout_request_head: float | None = None,
        timeout_request_body: float | None = None,
        limit_request_line: int | None = None,
        limit_request_fields: int | None = None,
        limit_request_field_size: int | None = None,
        access_log_format: str | None = None,
        h2_max_concurrent_streams: int = DEFAULT_H2_MAX_CONCURRENT_STREAMS,
        h2_max_header_list_size: int = DEFAULT_H2_MAX_HEADER_LIST_SIZE,
        h2_initial_stream_window_size: int = DEFAULT_H2_INITIAL_STREAM_WINDOW_SIZE,
        h2_initial_connection_window_size: int = DEFAULT_H2_INITIAL_CONNECTION_WINDOW_SIZE,
        h2_max_frame_size: int = DEFAULT_H2_MAX_FRAME_SIZE,
        h2_keep_alive_interval: float | None = None,
        h2_keep_alive_timeout: float = DEFAULT_H2_KEEP_ALIVE_TIMEOUT,
        h2_max_pending_accept_reset_streams: int = DEFAULT_H2_MAX_PENDING_ACCEPT_RESET_STREAMS,
        h2_max_local_error_reset_streams: int = DEFAULT_H2_MAX_LOCAL_ERROR_RESET_STREAMS,
    ) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.uds = uds
        self.fd = fd
        self.loop = loop
        self.http = http
        self.http2 = http2
        self.ws = ws
        self.ws_max_size = ws_max_size
        self.ws_max_queue = ws_max_queue
        self.ws_ping_interval = ws_ping_interval
        self.ws_ping_timeout = ws_ping_timeout
        self.ws_per_message_deflate = ws_per_message_deflate
        self.lifespan = lifespan
        self.env_file = env_file
        self.log_config = log_config
        self.log_level = log_level
        self.access_log = access_log
        self.use_colors = use_colors
        self.interface = interface
        self.reload = reload
        self.reload_delay = reload_delay
        self.workers = workers or 1
        self.proxy_headers = proxy_headers
        self.server_header = server_header
        self.date_header = date_header
        self.root_path = root_path
        self.limit_concurrency = limit_concurrency
        self.limit_max_requests = limit_max_requests
        self.limit_max_requests_jitter = limit_max_requests_jitter
        self.backlog = backlog
        self.timeout_keep_alive = timeout_keep_alive
        self.timeout_notify = timeout_notify
        self.timeout_graceful_shutdown = timeout_graceful_shutdown
        self.timeout_worker_healthcheck = timeout_worker_healthcheck
        self.callback_notify = callback_notify
        self.ssl_keyfile = ssl_keyfile
        self.ssl_certfile = ssl_certfile
        self.ssl_keyfile_password = ssl_keyfile_password
        self.ssl_version = ssl_version
        self.ssl_cert_reqs = ssl_cert_reqs
        self.ssl_ca_certs = ssl_ca_certs
        self.ssl_ciphers = ssl_ciphers
        self.ssl_context_factory = ssl_context_factory
        self.headers: list[tuple[str, str]] = [_parse_header(h) for h in headers or []]
        self.encoded_headers: list[tuple[bytes, bytes]] = []
        self.factory = factory
        self.h11_max_incomplete_event_size = h11_max_incomplete_event_size
        self.reset_contextvars = reset_contextvars
        self.threads = threads
        self.metrics_port = metrics_port
        self.metrics_host = metrics_host if metrics_host is not None else host
        self.timeout_request_head = timeout_request_head
        self.timeout_request_body = timeout_request_body
        self.limit_request_line = limit_request_line
        self.limit_request_fields = limit_request_fields
        self.limit_request_field_size = limit_request_field_size
        self.access_log_format = access_log_format
        self.access_format: AccessLogFormat | None = None

        try:
            systemd_fd = take_listen_fd()
        except SystemdSocketError as exc:
            raise ConfigError(str(exc)) from None
        # socket activation: systemd's socket replaces --host/--port (an explicit --uds/--fd wins)
        self.systemd_socket = systemd_fd is not None and uds is None and fd is None
        if self.systemd_socket:
            self.fd = systemd_fd
        self.h2_max_concurrent_streams = h2_max_concurrent_streams
        self.h2_max_header_list_size = h2_max_header_list_size
        self.h2_initial_stream_window_size = h2_initial_stream_window_size
        self.h2_initial_connection_window_size = h2_initial_connection_window_size
        self.h2_max_frame_size = h2_max_frame_size
        self.h2_keep_alive_interval = h2_keep_alive_interval
        self.h2_keep_alive_timeout = h2_keep_alive_timeout
        self.h2_max_pending_accept_reset_streams = h2_max_pending_accept_reset_streams
        self.h2_max_local_error_reset_streams = h2_max_local_error_reset_streams

        self.loaded = False
        self.loaded_app: ASGIApp | None = None
        self.lifespan_class: type[LifespanOn] | type[LifespanOff] | None = None
        # uvicorn's SSLContext; always None here: TLS is rustls, set up in `tls` by load().
        self.ssl: ssl.SSLContext | None = None
        self.tls: TlsConfig | None = None

        self.configure_logging()
        if self.systemd_socket:
            logger.info("Serving the socket passed by systemd (LISTEN_FDS), file descriptor %d", self.fd)

        self.reload_dirs: list[Path] = []
        self.reload_dirs_excludes: list[Path] = []
        self.reload_includes: list[str] = _as_list(reload_includes)
        self.reload_excludes: list[str] = _as_list(reload_excludes)
        if reload_dirs or reload_includes or reload_excludes:
            self.reload_dirs = [Path(d) for d in _as_list(reload_dirs)]
            if not self.should_reload:
                logger.warning(
                    "Current configuration will not reload as not all conditions are met, "
                    "please refer to documentation."
                )

        if env_file is not None:
            from dotenv import load_dotenv

            logger.info("Loading environment from '%s'", env_file)
            load_dotenv(dotenv_path=env_file)

        self._workers_from_env = False
        if workers is None and "WEB_CONCURRENCY" in os.environ:
            try:
                self.workers = int(os.environ["WEB_CONCURRENCY"])
            except ValueError:
                raise ConfigError(
                    f"WEB_CONCURRENCY must be an integer, got {os.environ['WEB_CONCURRENCY']!r}"
                ) from None
            self._workers_from_env = True

        if forwarded_allow_ips is None:
            env_ips = os.environ.get("FORWARDED_ALLOW_IPS")
            self.forwarded_allow_ips: list[str] = (
                _split_ips(env_ips) if env_ips is not None else list(DEFAULT_FORWARDED_ALLOW_IPS)
            )
        else:
            self.forwarded_allow_ips = _split_ips(forwarded_allow_ips)

        self._validate()
        self._log_compatibility_notices()

    # ----------------------------------------------------------------------------------- validation

    def _log_compatibility_notices(self) -> None:
        """Options kept only so that uvicorn command lines keep working say so, once, at startup."""
        if self.http not in ("auto", "1", "2"):  # "1"/"2" choose the HTTP versions: not ignored
            name = (
                self.http if isinstance(self.http, str) else getattr(self.http, "__name__", repr(self.http))
            )
            logger.warning(
                "--http %s is accepted for compatibility and ignored: turboasgi parses HTTP with its own "
                "implementation (Rust, hyper).",
                name,
            )
        if self.ws in ("websockets", "websockets-sansio", "wsproto"):
            logger.info(
                "--ws %s is accepted for compatibility: WebSockets are served by turboasgi's own "
                "implementation (Rust, tokio-tungstenite).",
                self.ws,
            )

    def _validate(self) -> None:
        if self.lifespan not in LIFESPAN:
            raise ConfigError(f"Invalid lifespan {self.lifespan!r}: expected one of auto, on, off.")
        if self.interface not in INTERFACES:
            choices = ", ".join(INTERFACES)
            raise ConfigError(f"Invalid interface {self.interface!r}: expected one of {choices}.")
        if self.interface == "wsgi":
            raise _not_supported("--interface wsgi")
        if self.workers < 1:
            source = " (from $WEB_CONCURRENCY)" if self._workers_from_env else ""
            raise ConfigError(f"--workers must be at least 1, got {self.workers}{source}")
        if self.reload and self.workers > 1:
            logger.warning('"workers" flag is ignored when reloading is enabled.')
        if self.reload_delay < 0:
            raise ConfigError(f"--reload-delay must not be negative, got {self.reload_delay}")
        if self.limit_max_requests is not None and self.limit_max_requests < 1:
            raise ConfigError(f"--limit-max-requests must be at least 1, got {self.limit_max_requests}")
        if self.limit_max_requests_jitter < 0:
            raise ConfigError(
                f"--limit-max-requests-jitter must not be negative, got {self.limit_max_requests_jitter}"
            )
        if self.access_log_format is not None:
            try:
                self.access_format = AccessLogFormat(self.access_log_format)
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
        if self.timeout_request_head is not None and not self.timeout_request_head > 0:
            raise ConfigError(
                f"--timeout-request-head must be a positive number, got {self.timeout_request_head}"
            )
        for option, limit in (
            ("--limit-request-line", self.limit_request_line),
            ("--limit-request-fields", self.limit_request_fields),
            ("--limit-request-field-size", self.limit_request_field_size),
        ):
            if limit is not None and limit < 1:
                raise ConfigError(f"{option} must be at least 1, got {limit}")
        if self.metrics_port is not None:
            if not 0 <= self.metrics_port <= 65535:
                raise ConfigError(f"--metrics-port must be a TCP port (0-65535), got {self.metrics_port}")
            if self.workers > 1 and not self.reload:
                raise ConfigError(
                    "--metrics-port reports the counters of one process and cannot be combined with "
                    "--workers; use --threads for several event loops in one process."
                )
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"threads must be at least 1, got {self.threads}")
        if self.ssl_context_factory is not None:
            raise _not_supported(
                "ssl_context_factory (TLS is served by rustls, not an ssl.SSLContext: use the ssl_* options)"
            )
        self._validate_http()
        if self.reset_contextvars:
            raise _not_supported("--reset-contextvars")
        if not isinstance(self.ws, str) or self.ws not in SUPPORTED_WS:
            raise _not_supported(f"--ws {self.ws}")
        if self.ws_max_queue != DEFAULT_WS_MAX_QUEUE:
            raise _not_supported("A non-default --ws-max-queue")
        if self.ws_max_size < 1:
            raise ConfigError(f"--ws-max-size must be at least 1, got {self.ws_max_size}")
        for option, value in (
            ("--ws-ping-interval", self.ws_ping_interval),
            ("--ws-ping-timeout", self.ws_ping_timeout),
        ):
            if value is not None and value <= 0:
                raise ConfigError(f"{option} must be a positive number of seconds, got {value}")
        if self.uds is not None and self.fd is not None:
            raise ConfigError("--uds and --fd are mutually exclusive")
        if self.limit_concurrency is not None and self.limit_concurrency < 1:
            raise ConfigError(f"--limit-concurrency must be at least 1, got {self.limit_concurrency}")

    def _validate_http(self) -> None:
        if isinstance(self.http, str) and self.http not in HTTP_CHOICES:
            raise ConfigError(f"Invalid --http {self.http!r}: expected one of {', '.join(HTTP_CHOICES)}.")
        if self.http2 and self.http == "1":
            raise ConfigError("--http2 and --http 1 contradict each other: HTTP/2 would be off.")
        for option, value, low, high in (
            ("--h2-max-concurrent-streams", self.h2_max_concurrent_streams, 1, 2**32 - 1),
            ("--h2-max-header-list-size", self.h2_max_header_list_size, 1024, 2**32 - 1),
            ("--h2-initial-stream-window-size", self.h2_initial_stream_window_size, 1, H2_MAX_WINDOW_SIZE),
            (
                "--h2-initial-connection-window-size",
                self.h2_initial_connection_window_size,
                1,
                H2_MAX_WINDOW_SIZE,
            ),
            ("--h2-max-frame-size", self.h2_max_frame_size, H2_MIN_FRAME_SIZE, H2_MAX_FRAME_SIZE),
            ("--h2-max-pending-accept-reset-streams", self.h2_max_pending_accept_reset_streams, 1, 2**32),
            ("--h2-max-local-error-reset-streams", self.h2_max_local_error_reset_streams, 1, 2**32),
        ):
            if not low <= value <= high:
                raise ConfigError(f"{option} must be between {low} and {high}, got {value}")
        for option, seconds in (
            ("--h2-keep-alive-interval", self.h2_keep_alive_interval),
            ("--h2-keep-alive-timeout", self.h2_keep_alive_timeout),
        ):
            if seconds is not None and not seconds > 0:
                raise ConfigError(f"{option} must be a positive number of seconds, got {seconds}")

    # ----------------------------------------------------------------------------------- properties

    @property
    def http_protocols(self) -> Literal["auto", "1", "2"]:
        """The HTTP versions served: ``--http 1`` or ``2`` alone, else both."""
        if self.http == "1":
            return "1"
        if self.http == "2":
            return "2"
        return "auto"

    @property
    def asgi_version(self) -> Literal["2.0", "3.0"]:
        return "2.0" if self.interface == "asgi2" else "3.0"

    @property
    def is_ssl(self) -> bool:
        return bool(self.ssl_keyfile or self.ssl_certfile or self.ssl_context_factory)

    @property
    def use_subprocess(self) -> bool:
        return bool(self.reload or self.workers > 1)

    @property
    def should_reload(self) -> bool:
        return isinstance(self.app, str) and self.reload

    # ----------------------------------------------------------------------------------- logging

    def configure_logging(self) -> None:
        """Apply ``log_config`` (dict, .json, .yaml/.yml or an ini file for ``fileConfig``), then
        ``log_level`` and the ``access_log`` switch, like uvicorn does.

        A configuration written for uvicorn (it sets up ``uvicorn``, ``uvicorn.error`` or
        ``uvicorn.access`` and no turboasgi logger) works unchanged: the turboasgi loggers forward to
        their uvicorn counterparts, and ``uvicorn.logging.*`` formatter classes mean ours."""
        logging.addLevelName(TRACE_LOG_LEVEL, "TRACE")

        configured: set[str] = set()
        if self.log_config is not None:
            if isinstance(self.log_config, os.PathLike):
                self.log_config = os.fspath(self.log_config)
            if isinstance(self.log_config, dict):
                if self.use_colors in (True, False):
                    # never mutate the caller's dict (often the module-level LOGGING_CONFIG)
                    self.log_config = copy.deepcopy(self.log_config)
                    for name in ("default", "access"):
                        formatter = self.log_config.get("formatters", {}).get(name)
                        if isinstance(formatter, dict):
                            formatter["use_colors"] = self.use_colors
                configured = self._apply_dict_config(self.log_config)
            elif isinstance(self.log_config, str) and self.log_config.endswith(".json"):
                with open(self.log_config) as file:
                    configured = self._apply_dict_config(json.load(file))
            elif isinstance(self.log_config, str) and self.log_config.endswith((".yaml", ".yml")):
                try:
                    import yaml
                except ImportError as exc:
                    raise ImportError(
                        "Install the PyYAML package or turboasgi[standard] to use `--log-config` "
                        "with YAML files."
                    ) from exc
                with open(self.log_config) as file:
                    configured = self._apply_dict_config(yaml.safe_load(file))
            else:
                configured = self._apply_file_config(self.log_config)

        forwarded = uses_uvicorn_loggers(configured)
        if self.log_level is not None:
            if isinstance(self.log_level, str):
                try:
                    level = LOG_LEVELS[self.log_level.lower()]
                except KeyError:
                    raise ConfigError(
                        f"Invalid log level {self.log_level!r}: expected one of {', '.join(LOG_LEVELS)}."
                    ) from None
            else:
                level = self.log_level
            roots = ("turboasgi", "uvicorn") if forwarded else ("turboasgi",)
            for root in roots:
                for name in ("error", "access", "asgi"):
                    logging.getLogger(f"{root}.{name}").setLevel(level)
        if forwarded:
            forward_to_uvicorn()
        if self.access_log is False:
            access = logging.getLogger("turboasgi.access")
            access.handlers = []
            access.propagate = False

    @staticmethod
    def _apply_dict_config(config: dict[str, Any]) -> set[str]:
        logging.config.dictConfig(translate_formatter_classes(config))
        return configured_logger_names(config)

    @staticmethod
    def _apply_file_config(source: str | RawConfigParser | IO[Any]) -> set[str]:
        # Read the way fileConfig reads (interpolation included), so that the parser handed to it
        # behaves the same, with uvicorn's formatter classes swapped for ours.
        if isinstance(source, RawConfigParser):
            parser = source
        else:
            parser = ConfigParser()
            if isinstance(source, str):
                if not parser.read(source, encoding="utf-8"):
                    raise ConfigError(f"--log-config {source!r}: the file cannot be read")
            else:
                parser.read_file(source)
        translate_ini_formatter_classes(parser)
        logging.config.fileConfig(parser, disable_existing_loggers=False)
        return configured_logger_names(parser)

    # ----------------------------------------------------------------------------------- app loading

    def load_app(self) -> Any:
        """Import the application named by ``self.app``; log and exit with status 3 on failure."""
        try:
            return import_from_string(self.app)
        except ImportFromStringError as exc:
            logger.error("Error loading ASGI app. %s", exc)
            sys.exit(STARTUP_FAILURE)

    def load(self) -> None:
        """Import the app, apply ``factory`` and ``interface``, pick the lifespan class.

        Sets ``loaded_app`` (always an ASGI3 callable), ``interface`` (``asgi3`` or ``asgi2`` once
        detected), ``lifespan_class``, ``encoded_headers`` and ``loaded``.
        """
        assert not self.loaded, "Config.load() called twice"

        self.encoded_headers = [
            (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in self.headers
        ]
        self.lifespan_class = import_from_string(LIFESPAN[self.lifespan])
        self.tls = self.load_tls()

        app = self.load_app()
        try:
            produced = app()
        except TypeError as exc:
            if self.factory:
                logger.error("Error loading ASGI app factory: %s", exc)
                sys.exit(STARTUP_FAILURE)
        else:
            if not self.factory:
                logger.warning(
                    "ASGI app factory detected. Using it, "
                    "but please consider setting the --factory flag explicitly."
                )
            app = produced

        if self.interface == "auto":
            if inspect.isclass(app):
                is_asgi3 = hasattr(app, "__await__")
            elif inspect.isfunction(app):
                is_asgi3 = _iscoroutinefunction(app)
            else:
                is_asgi3 = _iscoroutinefunction(type(app).__call__) if callable(app) else False
            self.interface = "asgi3" if is_asgi3 else "asgi2"

        if self.interface == "asgi2":
            app = ASGI2Middleware(app)

        if logger.isEnabledFor(TRACE_LOG_LEVEL):
            from turboasgi.message_logger import MessageLogger

            app = MessageLogger(app)

        self.loaded_app = app
        self.loaded = True

    def tls_config(self) -> TlsConfig | None:
        """The Rust core's TLS configuration from the ``ssl_*`` options (None without TLS); raises
        ``turboasgi.tls.TLSSetupError`` naming the option at fault."""
        if not self.is_ssl:
            return None
        from turboasgi.tls import build_tls_config

        return build_tls_config(self)

    def load_tls(self) -> TlsConfig | None:
        """``tls_config()``, or log the error and exit with status 1 (as uvicorn does)."""
        from turboasgi.tls import TLSSetupError

        try:
            return self.tls_config()
        except TLSSetupError as exc:
            logger.error("%s", exc)
            sys.exit(TLS_SETUP_FAILURE)

    def get_loop_factory(self) -> Callable[[], asyncio.AbstractEventLoop] | None:
        """The event loop factory for ``loop``: ``none`` -> None (let asyncio decide), ``auto`` -> uvloop
        when importable, else asyncio's default loop; anything else is an import string."""
        if self.loop == "none":
            return None
        if self.loop in ("auto", "uvloop"):
            try:
                import uvloop
            except ImportError:
                if self.loop == "uvloop":
                    logger.error("Error loading event loop: uvloop is not installed.")
                    sys.exit(STARTUP_FAILURE)
            else:
                return uvloop.new_event_loop  # type: ignore[no-any-return]
            return asyncio.new_event_loop
        if self.loop == "asyncio":
            return asyncio.new_event_loop
        try:
            return import_from_string(self.loop)  # type: ignore[no-any-return]
        except ImportFromStringError as exc:
            logger.error("Error loading custom loop setup function. %s", exc)
            sys.exit(STARTUP_FAILURE)

    # ----------------------------------------------------------------------------------- sockets

    def bind_socket(self, reuse_port: bool = False) -> socket.socket:
        """Return a bound, listening, inheritable socket for ``uds``, ``fd`` or ``host``/``port``, and log
        the ``Turboasgi running on ...`` line. Bind errors are logged and exit with status 3.

        ``reuse_port`` (host/port only) sets SO_REUSEPORT, so that ``bind_sibling()`` can add more
        listening sockets on the same address for worker processes."""
        suffix = " (Press CTRL+C to quit)"
        args: list[Any]
        if self.uds is not None:
            sock = self._bind_unix(self.uds)
            message = "Turboasgi running on unix socket %s" + suffix
            color_message = "Turboasgi running on unix socket " + style("%s", bold=True) + suffix
            args = [self.uds]
        elif self.fd is not None:
            sock = self._from_fd(self.fd)
            message = "Turboasgi running on socket %s" + suffix
            color_message = "Turboasgi running on socket " + style("%s", bold=True) + suffix
            args = [sock.getsockname()]
        else:
            family = socket.AF_INET6 if self.host and ":" in self.host else socket.AF_INET
            address = "%s://[%s]:%d" if family == socket.AF_INET6 else "%s://%s:%d"
            sock = socket.socket(family=family, type=socket.SOCK_STREAM)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if reuse_port and hasattr(socket, "SO_REUSEPORT"):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                sock.bind((self.host, self.port))
                sock.listen(self.backlog)
            except OSError as exc:
                sock.close()
                logger.error(_bind_error(exc, (self.host, self.port)))
                sys.exit(STARTUP_FAILURE)
            message = "Turboasgi running on " + address + suffix
            color_message = "Turboasgi running on " + style(address, bold=True) + suffix
            args = ["https" if self.is_ssl else "http", self.host, sock.getsockname()[1]]
        logger.info(message, *args, extra={"color_message": color_message})
        sock.set_inheritable(True)
        return sock

    def bind_metrics_socket(self) -> socket.socket:
        """The listening socket of the Prometheus endpoint (``metrics_port``), with a log line naming
        its address. Bind errors are logged and exit with status 3, like the main socket's."""
        assert self.metrics_port is not None
        host = self.metrics_host or "127.0.0.1"
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family=family, type=socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, self.metrics_port))
            sock.listen(64)
        except OSError as exc:
            sock.close()
            logger.error("Cannot serve metrics on %s port %d: %s", host, self.metrics_port, exc)
            sys.exit(STARTUP_FAILURE)
        address = "http://[%s]:%d/metrics" if family == socket.AF_INET6 else "http://%s:%d/metrics"
        logger.info("Prometheus metrics on " + address, host, sock.getsockname()[1])
        return sock

    def bind_sibling(self, sock: socket.socket) -> socket.socket | None:
        """Another listening socket on ``sock``'s address, when ``sock`` has SO_REUSEPORT: the kernel
        then spreads new connections over the sockets, one per worker. None when that is not possible."""
        if not hasattr(socket, "SO_REUSEPORT") or sock.family not in (socket.AF_INET, socket.AF_INET6):
            return None
        if not sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT):
            return None
        sibling = socket.socket(family=sock.family, type=socket.SOCK_STREAM)
        try:
            sibling.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sibling.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sibling.bind(sock.getsockname()[:2])
            sibling.listen(self.backlog)
        except OSError as exc:
            sibling.close()
            logger.warning("Could not bind a per-worker socket (%s); workers share one.", exc)
            return None
        sibling.set_inheritable(True)
        return sibling

    def _bind_unix(self, path: str) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            try:
                if stat.S_ISSOCK(os.stat(path).st_mode):
                    os.unlink(path)  # a stale socket left by a previous run
            except FileNotFoundError:
                pass
            sock.bind(path)
            os.chmod(path, 0o666)
            sock.listen(self.backlog)
        except OSError as exc:
            sock.close()
            logger.error(_bind_error(exc, path))
            sys.exit(STARTUP_FAILURE)
        return sock

    def _from_fd(self, fd: int) -> socket.socket:
        try:
            # socket.socket(fileno=...) detects the family and type of the inherited socket
            sock = socket.socket(fileno=os.dup(fd))
            if not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
                sock.listen(self.backlog)
        except OSError as exc:
            logger.error(exc)
            sys.exit(STARTUP_FAILURE)
        return sock

    # ----------------------------------------------------------------------------------- core

    def default_headers(self) -> list[tuple[bytes, bytes]]:
        """``headers`` as lowercased-name ``(bytes, bytes)`` pairs, in the given order."""
        return [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in self.headers]

    def core_config(self, tokio_threads: int = 1) -> CoreConfig:
        """Build the Rust core's ``CoreConfig`` from this configuration."""
        from turboasgi._core import CoreConfig

        headers = self.default_headers()
        # like uvicorn: a user-supplied "server" header replaces the default one
        server_header = self.server_header and not any(name == b"server" for name, _ in headers)
        return CoreConfig(
            root_path=self.root_path,
            server_header=server_header,
            date_header=self.date_header,
            default_headers=headers,
            timeout_keep_alive=float(self.timeout_keep_alive),
            limit_concurrency=self.limit_concurrency,
            proxy_headers=self.proxy_headers,
            forwarded_allow_ips=list(self.forwarded_allow_ips),
            max_header_bytes=self.h11_max_incomplete_event_size or DEFAULT_MAX_HEADER_BYTES,
            tokio_threads=tokio_threads,
            ws_enabled=self.ws != "none",
            ws_max_size=self.ws_max_size,
            ws_ping_interval=self.ws_ping_interval,
            ws_ping_timeout=self.ws_ping_timeout,
            ws_per_message_deflate=self.ws_per_message_deflate,
            metrics=self.metrics_port is not None,
            timeout_request_head=self.timeout_request_head,
            timeout_request_body=self.timeout_request_body,
            limit_request_line=self.limit_request_line,
            limit_request_fields=self.limit_request_fields,
            limit_request_field_size=self.limit_request_field_size,
            # decided once: with trace off, connections cost no log work at all
            trace_connections=logger.isEnabledFor(TRACE_LOG_LEVEL),
            tls=self.tls,
            http_protocols=self.http_protocols,
            h2_max_concurrent_streams=self.h2_max_concurrent_streams,
            h2_max_header_list_size=self.h2_max_header_list_size,
            h2_initial_stream_window_size=self.h2_initial_stream_window_size,
            h2_initial_connection_window_size=self.h2_initial_connection_window_size,
            h2_max_frame_size=self.h2_max_frame_size,
            h2_keep_alive_interval=self.h2_keep_alive_interval,
            h2_keep_alive_timeout=float(self.h2_keep_alive_timeout),
            h2_max_pending_accept_reset_streams=self.h2_max_pending_accept_reset_streams,
            h2_max_local_error_reset_streams=self.h2_max_local_error_reset_streams,
        )
