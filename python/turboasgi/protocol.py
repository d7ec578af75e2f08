"""The per-request coroutine the Rust core starts as an asyncio Task for every HTTP request."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from http import HTTPStatus
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from turboasgi._core import ClientDisconnected

if TYPE_CHECKING:
    from turboasgi._core import HttpTransport, WebSocketTransport
    from turboasgi.access_log import AccessLogFormat

logger = logging.getLogger("turboasgi.error")
access_logger = logging.getLogger("turboasgi.access")

ASGIApp = Any


def _client_addr(scope: dict[str, Any]) -> str:
    client = scope.get("client")
    if not client:
        return ""
    return f"{client[0]}:{client[1]}"


def _path_with_query(scope: dict[str, Any]) -> str:
    path = quote(scope["path"])  # already includes root_path
    query = scope["query_string"]
    return f"{path}?{query.decode('ascii', 'replace')}" if query else path


def _request_line(scope: dict[str, Any]) -> str:
    return (
        f'{_client_addr(scope)} - "{scope["method"]} {_path_with_query(scope)} HTTP/{scope["http_version"]}"'
    )


class HttpRunner:
    """Runs the app for one request and turns whatever goes wrong into the right wire outcome."""

    def __init__(
        self,
        app: ASGIApp,
        loop: asyncio.AbstractEventLoop,
        *,
        access_log: bool,
        access_format: AccessLogFormat | None = None,
    ) -> None:
        self.app = app
        # Passed to current_task(): without a loop it asks get_running_loop(), which on CPython 3.11
        # makes a getpid() system call, one per request.
        self.loop = loop
        self.access_log = access_log
        self.access_format = access_format
        self.tasks: set[asyncio.Task[None]] = set()
        # Set when the graceful-shutdown timeout cancels the remaining Tasks of this loop.
        self.shutdown_cancelled = False

    async def __call__(self, scope: dict[str, Any], transport: HttpTransport) -> None:
        task = asyncio.current_task(self.loop)
        if task is not None:
            self.tasks.add(task)
        if self.access_log:
            # Written when the head goes out, with the status the client gets (as uvicorn does):
            # not at all when the client got nothing.
            started = time.monotonic() if self.access_format is not None else None
            transport.on_response(functools.partial(self.log_response, scope, started=started))
        try:
            await self.app(scope, transport.receive, transport.send)
        except ClientDisconnected:
            # spec G7: the client went away; the app merely did not catch our error
            transport.fail()
        except asyncio.CancelledError:
            gone = transport.client_disconnected
            answered_500 = transport.fail()
            if self.shutdown_cancelled:  # by the graceful-shutdown timeout: say what the client got
                if answered_500:
                    logger.error("%s cancelled at shutdown: answered 500.", _request_line(scope))
                elif not gone:
                    logger.error(
                        "%s cancelled at shutdown: response cut off, connection closed.", _request_line(scope)
                    )
            raise
        except BaseException as exc:
            logger.error("Exception in ASGI application\n", exc_info=exc)
            transport.fail()
            if not isinstance(exc, Exception):
                raise
        else:
            if not transport.response_complete:
                if transport.client_disconnected:
                    pass  # nothing could be sent anyway; not an app error
                elif transport.response_started:
                    logger.error("ASGI callable returned without completing response.")
                else:
                    logger.error("ASGI callable returned without starting response.")
                transport.fail()
        finally:
            if task is not None:
                self.tasks.discard(task)

    def log_response(
        self, scope: dict[str, Any], status: int, length: int | None = None, *, started: float | None = None
    ) -> None:
        """The access line of a response whose head went out (also for the server's own 503s)."""
        if self.access_format is not None:
            duration = None if started is None else time.monotonic() - started
            access_logger.info(self.access_format.render(scope, status, length, duration))
            return
        access_logger.info(
            '%s - "%s %s HTTP/%s" %d',
            _client_addr(scope),
            scope["method"],
            _path_with_query(scope),
            scope["http_version"],
            status,
        )


class WebSocketRunner:
    """Runs the app for one WebSocket connection (spec W8: close 1011 or answer 500 when it fails)."""

    def __init__(
        self,
        app: ASGIApp,
        loop: asyncio.AbstractEventLoop,
        *,
        access_log: bool,
        tasks: set[asyncio.Task[None]],
    ) -> None:
        self.app = app
        self.loop = loop
        self.access_log = access_log
        self.tasks = tasks

    async def __call__(self, scope: dict[str, Any], transport: WebSocketTransport) -> None:
        task = asyncio.current_task(self.loop)
        if task is not None:
            self.tasks.add(task)
        # Logged whether or not the access log is on: these lines go to the error logger (uvicorn too).
        transport.on_answer(functools.partial(_log_handshake, scope))
        try:
            await self.app(scope, transport.receive, transport.send)
        except ClientDisconnected:
            transport.finish()
        except asyncio.CancelledError:
            transport.fail()
            raise
        except BaseException as exc:
            logger.error("Exception in ASGI application\n", exc_info=exc)
            transport.fail()
            if not isinstance(exc, Exception):
                raise
        else:
            if transport.status is None:
                logger.error("ASGI callable returned without sending handshake.")
            transport.finish()
        finally:
            if task is not None:
                self.tasks.discard(task)
            if transport.accepted:
                logger.debug("connection closed")


def _log_handshake(scope: dict[str, Any], status: int, accepted: bool) -> None:
    """The lines uvicorn writes when the handshake is answered, to the error logger (the access
    formatter expects HTTP fields): the request, then the outcome in the words of the websockets
    library that uvicorn's default WebSocket implementation uses."""
    outcome = "[accepted]" if accepted else str(status)
    logger.info('%s - "WebSocket %s" %s', _client_addr(scope), _path_with_query(scope), outcome)
    if accepted:
        logger.info("connection open")
    else:
        logger.info("connection rejected (%d %s)", status, _phrase(status))


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""
