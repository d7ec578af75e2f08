"""A small Starlette application: ``turboasgi examples.starlette_app:app``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
    # the yielded dict becomes the lifespan state; each request sees a shallow copy as request.state
    yield {"greeting": "Hello"}


async def homepage(request: Request) -> Response:
    return PlainTextResponse(f"{request.state.greeting}, world!")


async def user(request: Request) -> Response:
    return JSONResponse(
        {
            "name": request.path_params["name"],
            "query": dict(request.query_params),
            "client": request.client.host if request.client else None,
        }
    )


async def echo(request: Request) -> Response:
    body = await request.body()
    return Response(body, media_type=request.headers.get("content-type", "application/octet-stream"))


async def numbers(request: Request) -> Response:
    async def generate() -> AsyncIterator[bytes]:
        for i in range(5):
            yield f"{i}\n".encode()

    return StreamingResponse(generate(), media_type="text/plain")


async def ws_echo(websocket: WebSocket) -> None:
    await websocket.accept()
    async for text in websocket.iter_text():
        await websocket.send_text(f"echo: {text}")


app = Starlette(
    routes=[
        Route("/", homepage),
        Route("/users/{name}", user),
        Route("/echo", echo, methods=["POST"]),
        Route("/numbers", numbers),
        WebSocketRoute("/ws", ws_echo),
    ],
    lifespan=lifespan,
)
