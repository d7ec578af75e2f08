"""The ``turboasgi`` command line: the options of ``uvicorn``, with the same names and defaults.

Every option can also be set from the environment as ``TURBOASGI_<OPTION>`` (e.g. ``TURBOASGI_PORT``).
Exit status: 0 clean exit, 2 usage or configuration error, 3 startup failure.
"""

from __future__ import annotations

import platform
import ssl
import sys
from typing import Any

import click

from turboasgi.config import (
    HTTP_CHOICES,
    INTERFACES,
    LIFESPAN,
    LOG_LEVELS,
    LOGGING_CONFIG,
    LOOP_CHOICES,
    SSL_PROTOCOL_VERSION,
    WS_CHOICES,
    ConfigError,
)

__all__ = ["main"]

NYS = "[not yet supported]"
USAGE_ERROR = 2


def _print_version(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    import turboasgi

    click.echo(
        f"Running turboasgi {turboasgi.__version__} with {platform.python_implementation()} "
        f"{platform.python_version()} on {platform.system()}"
    )
    ctx.exit()


def _check_headers(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> tuple[str, ...]:
    for header in value:
        name, sep, _ = header.partition(":")
        if not sep or not name.strip():
            raise click.BadParameter(f'"{header}" is not in "Name:Value" form.')
    return value


def _metavar(choices: list[str]) -> str:
    return "[" + "|".join(c for c in choices if c != "none") + "]"


@click.command(context_settings={"auto_envvar_prefix": "TURBOASGI", "max_content_width": 110})
@click.argument("app", envvar="TURBOASGI_APP")
@click.option("--host", type=str, default="127.0.0.1", show_default=True, help="Address to bind to.")
@click.option(
    "--port", type=int, default=8000, show_default=True, help="Port to bind to; 0 picks a free port."
)
@click.option("--uds", type=str, default=None, help="Listen on this UNIX domain socket path instead.")
@click.option(
    "--fd", type=int, default=None, help="Serve an inherited socket with this file descriptor number."
)
@click.option(
    "--reload",
    is_flag=True,
    default=False,
    help="Restart the server when source files change (development only).",
)
@click.option(
    "--reload-dir",
    "reload_dirs",
    multiple=True,
    type=click.Path(exists=True),
    help="Directory to watch with --reload (repeatable; default: the current directory).",
)
@click.option(
    "--reload-include",
    "reload_includes",
    multiple=True,
    help="Glob pattern of files to watch with --reload (repeatable; default '*.py').",
)
@click.option(
    "--reload-exclude",
    "reload_excludes",
    multiple=True,
    help="Glob pattern of files (or directory names) to ignore with --reload "
    "(repeatable; default '.*, .py[cod], .sw.*, ~*').",
)
@click.option(
    "--reload-delay",
    type=float,
    default=0.25,
    show_default=True,
    help="Seconds between two checks for changed files with --reload.",
)
@click.option(
    "--workers",
    type=int,
    default=None,
    help="Number of worker processes sharing the listening socket, under a supervisor that replaces "
    "dead workers; SIGHUP restarts them one at a time (default: $WEB_CONCURRENCY, or 1). "
    "Ignored with --reload.",
)
@click.option(
    "--threads",
    type=int,
    default=None,
    help="Number of asyncio event-loop threads in one process, each connection pinned to one loop "
    "(default: the usable cores on free-threaded Python with the GIL disabled, else 1). "
    "Lifespan runs once per loop.",
)
@click.option(
    "--access-log-format",
    type=str,
    default=None,
    help="The access line as a template of {fields}: client, method, path, query, http_version, scheme, "
    "status, bytes, duration_ms, request_id, user_agent, referer (see docs/usage.md). [default: uvicorn's "
    "line]",
)
@click.option(
    "--timeout-request-head",
    type=float,
    default=None,
    help="Seconds a request head may take from its first byte to its end; slower heads are answered "
    "408 Request Timeout and the connection closed. [default: off: a head not complete in 30 s closes "
    "the connection without an answer]",
)
@click.option(
    "--timeout-request-body",
    type=float,
    default=None,
    help="Seconds a request body may keep the server waiting in all (time the app takes to read it is not "
    "counted); then the app sees http.disconnect and the client gets 408 if no response started. "
    "[default: off]",
)
@click.option(
    "--limit-request-line",
    type=int,
    default=None,
    help="Longest request line (method, target, version) in bytes; longer: 414. [default: no limit "
    "beyond --h11-max-incomplete-event-size]",
)
@click.option(
    "--limit-request-fields",
    type=int,
    default=None,
    help="Most header fields in a request; more: 431. [default: 256]",
)
@click.option(
    "--limit-request-field-size",
    type=int,
    default=None,
    help="Longest header field ('name: value') in bytes; longer: 431. [default: no limit beyond "
    "--h11-max-incomplete-event-size]",
)
@click.option(
    "--metrics-port",
    type=int,
    default=None,
    help="Serve Prometheus metrics (requests by status class, request durations, in-flight requests, "
    "open connections and WebSockets, event-loop lag, 503s from --limit-concurrency) at /metrics on "
    "this port, on a listener of its own; 0 picks a free port. Counted in Rust, off by default. "
    "Not with --workers.",
)
@click.option(
    "--metrics-host",
    type=str,
    default=None,
    help="Address the metrics listener binds to. [default: --host]",
)
@click.option(
    "--loop",
    type=str,
    default="auto",
    show_default=True,
    metavar=_metavar(LOOP_CHOICES),
    help="Event loop: uvloop when installed (auto), asyncio, uvloop, or a 'module:factory' import string.",
)
@click.option(
    "--http",
    type=str,
    default="auto",
    show_default=True,
    metavar=_metavar(HTTP_CHOICES),
    help="HTTP versions served: auto = HTTP/1.1 and HTTP/2 (h2c with prior knowledge on cleartext, "
    "ALPN h2 over TLS), 1 or 2 = only that version. uvicorn's h11, httptools and zttp are accepted "
    "and act as auto, with a warning: the HTTP implementation is turboasgi's own.",
)
@click.option(
    "--http2",
    is_flag=True,
    default=False,
    help="uvicorn's HTTP/2 switch; accepted for compatibility, HTTP/2 is on unless --http 1.",
)
@click.option(
    "--h2-max-concurrent-streams",
    type=int,
    default=100,
    show_default=True,
    help="HTTP/2 streams a client may have open at once on one connection (RFC 9113 asks for at "
    "least 100); each open stream is one request and one asyncio task.",
)
@click.option(
    "--h2-max-header-list-size",
    type=int,
    default=65536,
    show_default=True,
    help="Largest HTTP/2 request header list, in bytes (decoded, as RFC 9113 counts it); the same "
    "64 KiB as the HTTP/1.1 request head.",
)
@click.option(
    "--h2-initial-stream-window-size",
    type=int,
    default=1048576,
    show_default=True,
    help="HTTP/2 flow-control window per stream, in bytes: how much of a request body the client may "
    "send before the app reads it.",
)
@click.option(
    "--h2-initial-connection-window-size",
    type=int,
    default=1048576,
    show_default=True,
    help="HTTP/2 flow-control window per connection, in bytes: unread request bodies of all its "
    "streams together.",
)
@click.option(
    "--h2-max-frame-size",
    type=int,
    default=16384,
    show_default=True,
    help="Largest HTTP/2 frame payload accepted, in bytes (16384 to 16777215).",
)
@click.option(
    "--h2-keep-alive-interval",
    type=float,
    default=None,
    help="Seconds between HTTP/2 PING frames that check the client is alive (default: no pings; "
    "idle connections are closed after --timeout-keep-alive).",
)
@click.option(
    "--h2-keep-alive-timeout",
    type=float,
    default=20.0,
    show_default=True,
    help="Seconds to wait for a PING acknowledgement before closing the HTTP/2 connection.",
)
@click.option(
    "--h2-max-pending-accept-reset-streams",
    type=int,
    default=20,
    show_default=True,
    help="HTTP/2 streams opened and reset by the client before the server got to them; above this "
    "the connection is closed (rapid reset, CVE-2023-44487).",
)
@click.option(
    "--h2-max-local-error-reset-streams",
    type=int,
    default=1024,
    show_default=True,
    help="HTTP/2 streams the server had to reset for the client's protocol errors; above this the "
    "connection is closed.",
)
@click.option(
    "--ws",
    type=str,
    default="auto",
    show_default=True,
    metavar=_metavar(WS_CHOICES),
    help="WebSocket support: none turns it off; auto, websockets, websockets-sansio and wsproto all "
    "select turboasgi's own implementation.",
)
@click.option(
    "--ws-max-size",
    type=int,
    default=16777216,
    show_default=True,
    help="Largest WebSocket message accepted, in bytes; a larger one closes the connection with 1009.",
)
@click.option(
    "--ws-max-queue",
    type=int,
    default=32,
    show_default=True,
    help=f"Incoming WebSocket messages buffered per connection. {NYS} for other values than the default.",
)
@click.option(
    "--ws-ping-interval",
    type=float,
    default=20.0,
    show_default=True,
    help="Seconds between WebSocket keepalive pings.",
)
@click.option(
    "--ws-ping-timeout",
    type=float,
    default=20.0,
    show_default=True,
    help="Seconds to wait for a pong before closing the connection with 1011.",
)
@click.option(
    "--ws-per-message-deflate",
    type=bool,
    default=True,
    show_default=True,
    help="Negotiate permessage-deflate compression (RFC 7692) when the client offers it.",
)
@click.option(
    "--lifespan",
    type=click.Choice(list(LIFESPAN)),
    default="auto",
    show_default=True,
    help="Lifespan events: auto (used when the app supports them), on (required), off.",
)
@click.option(
    "--interface",
    type=click.Choice(INTERFACES),
    default="auto",
    show_default=True,
    help=f"Application interface: auto-detected, asgi3 or asgi2. wsgi: {NYS}.",
)
@click.option(
    "--env-file",
    type=click.Path(exists=True),
    default=None,
    help="Load environment variables from this file (python-dotenv).",
)
@click.option(
    "--log-config",
    type=click.Path(exists=True),
    default=None,
    help="Logging configuration file: .json or .yaml (dictConfig), anything else (fileConfig, .ini). "
    "One written for uvicorn's loggers works unchanged.",
)
@click.option(
    "--log-level",
    type=click.Choice(list(LOG_LEVELS)),
    default=None,
    help="Log level of the turboasgi loggers; trace adds a line per connection made/lost. [default: info]",
)
@click.option(
    "--access-log/--no-access-log", default=True, help="Write one access log line per response (stdout)."
)
@click.option(
    "--use-colors/--no-use-colors",
    default=None,
    help="Colour the log output (default: when writing to a terminal).",
)
@click.option(
    "--proxy-headers/--no-proxy-headers",
    default=True,
    help="Take the client address and scheme from X-Forwarded-For / X-Forwarded-Proto, "
    "for peers listed in --forwarded-allow-ips. [default: on]",
)
@click.option(
    "--server-header/--no-server-header", default=True, help="Send 'server: turboasgi'. [default: on]"
)
@click.option(
    "--date-header/--no-date-header", default=True, help="Send a 'date' response header. [default: on]"
)
@click.option(
    "--forwarded-allow-ips",
    type=str,
    default=None,
    help="Comma-separated addresses or networks trusted to send proxy headers; '*' trusts all. "
    "Default: $FORWARDED_ALLOW_IPS, or 127.0.0.1,::1.",
)
@click.option(
    "--root-path",
    type=str,
    default="",
    help="ASGI 'root_path' for an application mounted below a URL prefix.",
)
@click.option(
    "--limit-concurrency",
    type=int,
    default=None,
    help="Answer 503 once this many connections or tasks are in progress.",
)
@click.option("--backlog", type=int, default=2048, show_default=True, help="Listen queue length.")
@click.option(
    "--limit-max-requests",
    type=int,
    default=None,
    help="Stop a worker process after serving this many requests; with --workers, "
    "the supervisor starts a new one.",
)
@click.option(
    "--limit-max-requests-jitter",
    type=int,
    default=0,
    show_default=True,
    help="Add up to this many requests, at random and per worker, to --limit-max-requests.",
)
@click.option(
    "--timeout-keep-alive",
    type=int,
    default=5,
    show_default=True,
    help="Seconds an idle keep-alive connection stays open.",
)
@click.option(
    "--timeout-graceful-shutdown",
    type=int,
    default=None,
    help="Seconds the shutdown waits for in-flight requests and their tasks; then they are cancelled "
    "(500 if nothing was sent yet). Default: wait for all.",
)
@click.option(
    "--timeout-worker-healthcheck",
    type=int,
    default=5,
    show_default=True,
    help="Seconds a worker process may take to answer a health check (with --workers) "
    "before it is killed and replaced.",
)
@click.option("--ssl-keyfile", type=str, default=None, help="TLS private key (PKCS#1, PKCS#8 or SEC1 PEM).")
@click.option(
    "--ssl-certfile",
    type=str,
    default=None,
    help="TLS certificate chain file (PEM, server certificate first): serve HTTPS and WSS.",
)
@click.option(
    "--ssl-keyfile-password",
    type=str,
    default=None,
    help="Password of an encrypted --ssl-keyfile (decrypted with the cryptography package).",
)
@click.option(
    "--ssl-version",
    type=int,
    default=int(SSL_PROTOCOL_VERSION),
    show_default=True,
    help="TLS versions as a Python ssl constant: 17 TLS 1.2 and 1.3, 5 or 771 TLS 1.2, 772 TLS 1.3.",
)
@click.option(
    "--ssl-cert-reqs",
    type=int,
    default=int(ssl.CERT_NONE),
    show_default=True,
    help="Client certificates: 0 not asked, 1 optional, 2 required (verified against --ssl-ca-certs).",
)
@click.option("--ssl-ca-certs", type=str, default=None, help="CA bundle (PEM) to verify client certificates.")
@click.option(
    "--ssl-ciphers",
    type=str,
    default=None,
    help="Cipher suites: OpenSSL or IANA names separated by ':' (naming only TLS 1.2 suites leaves TLS 1.3 "
    "on). [default: every suite rustls offers]",
)
@click.option(
    "--header",
    "headers",
    multiple=True,
    callback=_check_headers,
    help="Extra default response header as 'Name:Value' (repeatable).",
)
@click.option(
    "--version",
    is_flag=True,
    callback=_print_version,
    expose_value=False,
    is_eager=True,
    help="Show the turboasgi and Python versions and exit.",
)
@click.option(
    "--app-dir",
    default="",
    show_default=True,
    help="Directory put first on sys.path before importing APP (default: the current directory).",
)
@click.option(
    "--h11-max-incomplete-event-size",
    "h11_max_incomplete_event_size",
    type=int,
    default=None,
    help="Largest request head (request line and headers) accepted, in bytes. [default: 65536]",
)
@click.option(
    "--reset-contextvars",
    is_flag=True,
    default=False,
    help=f"Run each request in an empty contextvars context. {NYS}",
)
@click.option(
    "--factory",
    is_flag=True,
    default=False,
    help="APP names a callable returning the ASGI application.",
)
def main(app: str, **options: Any) -> None:
    """Serve the ASGI application APP, given as 'module:attribute'."""
    headers: tuple[str, ...] = options.pop("headers")
    log_config = options.pop("log_config")
    reload_dirs = options.pop("reload_dirs")
    reload_includes = options.pop("reload_includes")
    reload_excludes = options.pop("reload_excludes")

    import turboasgi

    try:
        turboasgi.run(
            app,
            headers=[tuple(h.split(":", 1)) for h in headers],
            log_config=LOGGING_CONFIG if log_config is None else log_config,
            reload_dirs=list(reload_dirs) or None,
            reload_includes=list(reload_includes) or None,
            reload_excludes=list(reload_excludes) or None,
            **options,
        )
    except ConfigError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(USAGE_ERROR)


if __name__ == "__main__":
    main()
