"""The compatibility suite's request set as a Litestar application."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from litestar import Litestar, Request, Response, WebSocket, get, post, websocket
from litestar.datastructures import Cookie
from litestar.response import Stream

from tests.frameworks.apps.hooks import COOKIE, CUSTOM_HEADER, STREAM_CHUNKS, record, started


@get("/hello", media_type="text/plain")
async def hello() -> str:
    return "hello"


@get("/json")
async def as_json(x: str) -> dict[str, str]:
    return {"x": x}


@post("/echo", status_code=200)
async def echo(request: Request) -> Response[bytes]:
    return Response(await request.body(), media_type="application/octet-stream")


@get("/stream")
async def stream() -> Stream:
    async def chunks() -> AsyncIterator[bytes]:
        for chunk in STREAM_CHUNKS:
            yield chunk
            await asyncio.sleep(0)

    return Stream(chunks(), media_type="text/plain")


@get("/headers", media_type="text/plain")
async def headers() -> Response[str]:
    return Response(
        "headers", headers=dict([CUSTOM_HEADER]), cookies=[Cookie(key=COOKIE[0], value=COOKIE[1])]
    )


@get("/startup", media_type="text/plain")
async def startup_ran() -> str:
    return started()


@websocket("/ws")
async def ws_echo(socket: WebSocket) -> None:
    await socket.accept()
    while True:
        message = await socket.receive()
        if message["type"] == "websocket.disconnect":
            return
        await socket.send_text(message.get("text") or "")


app = Litestar(
    route_handlers=[hello, as_json, echo, stream, headers, startup_ran, ws_echo],
    on_startup=[lambda: record("startup")],
    on_shutdown=[lambda: record("shutdown")],
)
