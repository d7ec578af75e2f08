"""The compatibility suite's request set as a Starlette application."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from tests.frameworks.apps.hooks import COOKIE, CUSTOM_HEADER, STREAM_CHUNKS, record, started


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    record("startup")
    yield
    record("shutdown")


async def hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("hello")


async def as_json(request: Request) -> JSONResponse:
    return JSONResponse(dict(request.query_params))


async def echo(request: Request) -> Response:
    return Response(await request.body(), media_type="application/octet-stream")


async def stream(request: Request) -> StreamingResponse:
    async def chunks() -> AsyncIterator[bytes]:
        for chunk in STREAM_CHUNKS:
            yield chunk
            await asyncio.sleep(0)

    return StreamingResponse(chunks(), media_type="text/plain")


async def headers(request: Request) -> PlainTextResponse:
    response = PlainTextResponse("headers", headers=dict([CUSTOM_HEADER]))
    response.set_cookie(*COOKIE)
    return response


async def startup_ran(request: Request) -> PlainTextResponse:
    return PlainTextResponse(started())


async def ws_echo(websocket: WebSocket) -> None:
    await websocket.accept()
    async for text in websocket.iter_text():
        await websocket.send_text(text)


app = Starlette(
    routes=[
        Route("/hello", hello),
        Route("/json", as_json),
        Route("/echo", echo, methods=["POST"]),
        Route("/stream", stream),
        Route("/headers", headers),
        Route("/startup", startup_ran),
        WebSocketRoute("/ws", ws_echo),
    ],
    lifespan=lifespan,
)
