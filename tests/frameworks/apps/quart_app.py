"""The compatibility suite's request set as a Quart application."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from quart import Quart, Response, request, websocket

from tests.frameworks.apps.hooks import COOKIE, CUSTOM_HEADER, STREAM_CHUNKS, record, started

app = Quart(__name__)


@app.before_serving
async def startup() -> None:
    record("startup")


@app.after_serving
async def shutdown() -> None:
    record("shutdown")


@app.get("/hello")
async def hello() -> Response:
    return Response("hello", content_type="text/plain")


@app.get("/json")
async def as_json() -> dict[str, str]:
    return dict(request.args)


@app.post("/echo")
async def echo() -> Response:
    return Response(await request.get_data(), content_type="application/octet-stream")


@app.get("/stream")
async def stream() -> Response:
    async def chunks() -> AsyncIterator[bytes]:
        for chunk in STREAM_CHUNKS:
            yield chunk
            await asyncio.sleep(0)

    return Response(chunks(), content_type="text/plain")


@app.get("/headers")
async def headers() -> Response:
    response = Response("headers", content_type="text/plain", headers=dict([CUSTOM_HEADER]))
    response.set_cookie(*COOKIE)
    return response


@app.get("/startup")
async def startup_ran() -> Response:
    return Response(started(), content_type="text/plain")


@app.websocket("/ws")
async def ws_echo() -> None:
    while True:
        await websocket.send(await websocket.receive())
