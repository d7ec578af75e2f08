"""``--log-level trace``: one line per ASGI event of every connection, as uvicorn writes them.

Wraps the application only when the trace level is on (``Config.load()``), so that below it no request
pays for it. Lines go to ``turboasgi.asgi`` at TRACE: ``127.0.0.1:54321 - ASGI [2] Started scope={...}``,
``... Receive {...}``, ``... Send {...}``, ``... Completed`` or ``... Raised exception``. Bodies,
texts and headers are shown as their size (``'<12 bytes>'``, ``'<3 chars>'``, ``'<...>'``), never
their content.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from turboasgi.logging import TRACE_LOG_LEVEL

__all__ = ["MessageLogger", "summarised"]

logger = logging.getLogger("turboasgi.asgi")

Message = Mapping[str, Any]


def summarised(message: Message) -> dict[str, Any]:
    """A copy of ``message`` (or of a scope) with its content replaced by placeholders."""
    shown = dict(message)
    for key in ("body", "bytes"):
        if shown.get(key) is not None:
            shown[key] = f"<{len(shown[key])} bytes>"
    if shown.get("text") is not None:
        shown["text"] = f"<{len(shown['text'])} chars>"
    if shown.get("headers") is not None:
        shown["headers"] = "<...>"
    return shown


class MessageLogger:
    """An ASGI middleware that logs what passes between the server and the application."""

    def __init__(self, app: Callable[..., Awaitable[None]]) -> None:
        self.app = app
        # one numbering for every connection (and the lifespan), on every event loop thread
        self._numbers = itertools.count(1)

    async def __call__(
        self,
        scope: dict[str, Any],
        receive: Callable[[], Awaitable[Message]],
        send: Callable[[Message], Awaitable[None]],
    ) -> None:
        number = next(self._numbers)
        client = scope.get("client")
        prefix = f"{client[0]}:{client[1]} - ASGI" if client else "ASGI"

        async def logged_receive() -> Message:
            message = await receive()
            logger.log(TRACE_LOG_LEVEL, "%s [%d] Receive %s", prefix, number, summarised(message))
            return message

        async def logged_send(message: Message) -> None:
            logger.log(TRACE_LOG_LEVEL, "%s [%d] Send %s", prefix, number, summarised(message))
            await send(message)

        logger.log(TRACE_LOG_LEVEL, "%s [%d] Started scope=%s", prefix, number, summarised(scope))
        try:
            await self.app(scope, logged_receive, logged_send)
        except BaseException:
            logger.log(TRACE_LOG_LEVEL, "%s [%d] Raised exception", prefix, number)
            raise
        logger.log(TRACE_LOG_LEVEL, "%s [%d] Completed", prefix, number)
