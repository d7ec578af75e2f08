"""The compatibility suite's request set as a BlackSheep application."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from blacksheep import Application, Content, Request, Response, StreamedContent, WebSocket, json, text
from blacksheep.cookies import Cookie
from blacksheep.server.websocket import WebSocketDisconnectError

from tests.frameworks.apps.hooks import COOKIE, CUSTOM_HEADER, STREAM_CHUNKS, record, started

app = Application()


async def on_start(application: Application) -> None:
    record("startup")


async def on_stop(application: Application) -> None:
    record("shutdown")


app.on_start += on_start
app.on_stop += on_stop


@app.router.get("/hello")
async def hello() -> Response:
    return text("hello")


@app.router.get("/json")
async def as_json(request: Request) -> Response:
    return json({name: values[0] for name, values in request.query.items()})


@app.router.post("/echo")
async def echo(request: Request) -> Response:
    return Response(200, content=Content(b"application/octet-stream", await request.read() or b""))


@app.router.get("/stream")
async def stream() -> Response:
    async def chunks() -> AsyncIterator[bytes]:
        for chunk in STREAM_CHUNKS:
            yield chunk
            await asyncio.sleep(0)

    return Response(200, content=StreamedContent(b"text/plain", chunks))


@app.router.get("/headers")
async def headers() -> Response:
    response = text("headers")
    response.add_header(CUSTOM_HEADER[0].encode(), CUSTOM_HEADER[1].encode())
    response.set_cookie(Cookie(*COOKIE))
    return response


@app.router.get("/startup")
async def startup_ran() -> Response:
    return text(started())


@app.router.ws("/ws")
async def ws_echo(websocket: WebSocket) -> None:
    await websocket.accept()
    try:
        while True:
            await websocket.send_text(await websocket.receive_text())
    except WebSocketDisconnectError:
        return
