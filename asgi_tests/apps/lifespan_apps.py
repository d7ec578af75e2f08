"""Lifespan variants, each served by a short-lived server of its own.

HTTP requests are delegated to the main probe app. Events are appended to the file named by
``ASGI_TESTS_RECORD`` (see ``probe.record_line``).
"""

from __future__ import annotations

import asyncio

from asgi_tests.apps import probe
from asgi_tests.apps.probe import Receive, Scope, Send, record_line

STARTUP_FAILED_MESSAGE = "asgi-tests startup failure 4be1c2"
SHUTDOWN_FAILED_MESSAGE = "asgi-tests shutdown failure 9a7d35"
UNSUPPORTED_MESSAGE = "asgi-tests lifespan not supported 51f0aa"

STARTUP = {"complete": False}


async def startup_failed(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        message = await receive()
        record_line(message["type"])
        await send({"type": "lifespan.startup.failed", "message": STARTUP_FAILED_MESSAGE})
        return
    await probe.app(scope, receive, send)


async def unsupported(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        raise RuntimeError(UNSUPPORTED_MESSAGE)
    await probe.app(scope, receive, send)


async def shutdown_failed(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            record_line(message["type"])
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.failed", "message": SHUTDOWN_FAILED_MESSAGE})
                return
    await probe.app(scope, receive, send)


async def slow(scope: Scope, receive: Receive, send: Send) -> None:
    """Startup and shutdown each take a while; requests report whether startup had completed."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            record_line(message["type"])
            if message["type"] == "lifespan.startup":
                await asyncio.sleep(1.0)
                STARTUP["complete"] = True
                record_line("startup-done")
                await send({"type": "lifespan.startup.complete"})
            else:
                record_line("shutdown-begin")
                await asyncio.sleep(0.5)
                record_line("shutdown-end")
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] == "http" and scope["path"] == "/startup-status":
        record_line("request")
        await probe.respond(send, 200, b"complete" if STARTUP["complete"] else b"incomplete")
        return
    await probe.app(scope, receive, send)
