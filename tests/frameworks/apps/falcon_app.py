"""The compatibility suite's request set as a Falcon (ASGI) application."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import falcon
import falcon.asgi

from tests.frameworks.apps.hooks import COOKIE, CUSTOM_HEADER, STREAM_CHUNKS, record, started


class Lifespan:
    async def process_startup(self, scope: dict[str, object], event: dict[str, object]) -> None:
        record("startup")

    async def process_shutdown(self, scope: dict[str, object], event: dict[str, object]) -> None:
        record("shutdown")


class Hello:
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.content_type = falcon.MEDIA_TEXT
        resp.text = "hello"


class AsJson:
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.media = dict(req.params)


class Echo:
    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.content_type = "application/octet-stream"
        resp.data = await req.stream.read()


class Stream:
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        async def chunks() -> AsyncIterator[bytes]:
            for chunk in STREAM_CHUNKS:
                yield chunk
                await asyncio.sleep(0)

        resp.content_type = falcon.MEDIA_TEXT
        resp.stream = chunks()


class Headers:
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.content_type = falcon.MEDIA_TEXT
        resp.set_header(*CUSTOM_HEADER)
        resp.set_cookie(*COOKIE, secure=False)
        resp.text = "headers"


class Startup:
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.content_type = falcon.MEDIA_TEXT
        resp.text = started()


class WsEcho:
    async def on_websocket(self, req: falcon.asgi.Request, ws: falcon.asgi.WebSocket) -> None:
        await ws.accept()
        while True:
            try:
                text = await ws.receive_text()
            except falcon.WebSocketDisconnected:
                return
            await ws.send_text(text)


app = falcon.asgi.App(middleware=[Lifespan()])
app.add_route("/hello", Hello())
app.add_route("/json", AsJson())
app.add_route("/echo", Echo())
app.add_route("/stream", Stream())
app.add_route("/headers", Headers())
app.add_route("/startup", Startup())
app.add_route("/ws", WsEcho())
