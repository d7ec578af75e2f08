"""A Starlette application served behind nginx (tests/test_nginx.py): every route reports what the
application saw, so the tests can check what a reverse proxy changes on the way.

``PROXIED_JOURNAL`` names a file where ``/slow`` appends ``start <id>`` and ``end <id>`` lines, read by
the shutdown test to count the requests that reached the application and those it answered.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

# Set by /sse/release (possibly served by another event loop thread: a plain flag, polled).
SSE_RELEASED: set[str] = set()
POLL_LIMIT_S = 10.0


def seen(conn: Request | WebSocket, route: str) -> dict[str, Any]:
    scope = conn.scope
    return {
        "client": list(scope["client"]) if scope.get("client") else None,
        "scheme": scope["scheme"],
        "host": conn.headers.get("host"),
        "root_path": scope.get("root_path", ""),
        "path": scope["path"],
        "http_version": scope.get("http_version"),
        "url_for": str(conn.url_for(route)),
    }


async def healthz(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


async def whoami(request: Request) -> JSONResponse:
    return JSONResponse(seen(request, "whoami"))


async def upload(request: Request) -> JSONResponse:
    digest = hashlib.sha256()
    size = 0
    async for chunk in request.stream():
        digest.update(chunk)
        size += len(chunk)
    return JSONResponse({"size": size, "sha256": digest.hexdigest()})


async def sse(request: Request) -> StreamingResponse:
    """One event, then (after /sse/release?id=...) a second one: a proxy that buffers the response
    holds the first event back and the client waits for it in vain."""
    stream_id = request.query_params["id"]

    async def events() -> AsyncIterator[bytes]:
        yield b"data: first\n\n"
        deadline = asyncio.get_running_loop().time() + POLL_LIMIT_S
        while stream_id not in SSE_RELEASED and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)
        yield b"data: second\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")


async def sse_release(request: Request) -> PlainTextResponse:
    SSE_RELEASED.add(request.query_params["id"])
    return PlainTextResponse("released")


def journal(line: str) -> None:
    path = os.environ.get("PROXIED_JOURNAL")
    if path:
        # one write(2) per line on an O_APPEND file: lines from concurrent requests do not interleave
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (line + "\n").encode())
        finally:
            os.close(fd)


async def slow(request: Request) -> PlainTextResponse:
    request_id = request.query_params["id"]
    journal(f"start {request_id}")
    await asyncio.sleep(float(request.query_params.get("ms", "300")) / 1000)
    journal(f"end {request_id}")
    return PlainTextResponse(f"done {request_id}")


async def ws_echo(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_json(seen(websocket, "ws_echo"))
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("text") is not None:
            await websocket.send_text(message["text"])
        else:
            await websocket.send_bytes(message.get("bytes") or b"")


app = Starlette(
    routes=[
        Route("/healthz", healthz),
        Route("/whoami", whoami, name="whoami"),
        Route("/upload", upload, methods=["POST"]),
        Route("/sse", sse),
        Route("/sse/release", sse_release),
        Route("/slow", slow),
        WebSocketRoute("/ws", ws_echo, name="ws_echo"),
    ]
)
