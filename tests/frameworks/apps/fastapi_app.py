"""The compatibility suite's request set as a FastAPI application."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response, WebSocket, WebSocketDisconnect
from fastapi.responses import PlainTextResponse, StreamingResponse

from tests.frameworks.apps.hooks import COOKIE, CUSTOM_HEADER, STREAM_CHUNKS, record, started


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    record("startup")
    yield
    record("shutdown")


app = FastAPI(lifespan=lifespan)


@app.get("/hello", response_class=PlainTextResponse)
async def hello() -> str:
    return "hello"


@app.get("/json")
async def as_json(x: str) -> dict[str, str]:
    return {"x": x}


@app.post("/echo")
async def echo(request: Request) -> Response:
    return Response(await request.body(), media_type="application/octet-stream")


@app.get("/stream")
async def stream() -> StreamingResponse:
    async def chunks() -> AsyncIterator[bytes]:
        for chunk in STREAM_CHUNKS:
            yield chunk
            await asyncio.sleep(0)

    return StreamingResponse(chunks(), media_type="text/plain")


@app.get("/headers", response_class=PlainTextResponse)
async def headers(response: Response) -> str:
    response.headers[CUSTOM_HEADER[0]] = CUSTOM_HEADER[1]
    response.set_cookie(*COOKIE)
    return "headers"


@app.get("/startup", response_class=PlainTextResponse)
async def startup_ran() -> str:
    return started()


@app.websocket("/ws")
async def ws_echo(websocket: WebSocket) -> None:
    await websocket.accept()
    try:
        while True:
            await websocket.send_text(await websocket.receive_text())
    except WebSocketDisconnect:
        pass
