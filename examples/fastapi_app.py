"""A FastAPI application exercising the common features: ``turboasgi examples.fastapi_app:app``.

Routes: path and query parameters, a pydantic-validated JSON body (invalid bodies get FastAPI's 422),
StreamingResponse, a server-sent events stream, FileResponse, a StaticFiles mount, BackgroundTasks,
lifespan state used by a route, HTTPException, response headers and several cookies (one
``set-cookie`` header each).
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import BackgroundTasks, FastAPI, HTTPException, Request, Response
from fastapi.responses import FileResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

ITEMS: dict[int, dict[str, Any]] = {}
BACKGROUND_LOG: list[str] = []


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
    workdir = tempfile.TemporaryDirectory(prefix="turboasgi-example-")
    download = Path(workdir.name) / "hello.txt"
    download.write_text("Hello from a file!\n")
    try:
        yield {"started": True, "download": download, "counter": {"hits": 0}}
    finally:
        workdir.cleanup()


STATIC = Path(__file__).resolve().parent / "static"

app = FastAPI(title="turboasgi example", lifespan=lifespan)
app.mount("/static", StaticFiles(directory=STATIC), name="static")


class Item(BaseModel):
    name: str = Field(min_length=1)
    price: float = Field(gt=0)
    tags: list[str] = []


@app.get("/")
async def root() -> dict[str, str]:
    return {"message": "Hello, world!"}


@app.get("/items/{item_id}")
async def read_item(item_id: int, q: str | None = None, limit: int = 10) -> dict[str, Any]:
    """``/items/abc`` or ``?limit=x`` fail validation: FastAPI answers 422."""
    return {"item_id": item_id, "q": q, "limit": limit, "item": ITEMS.get(item_id)}


@app.post("/items/{item_id}", status_code=201)
async def create_item(item_id: int, item: Item) -> dict[str, Any]:
    if item_id in ITEMS:
        raise HTTPException(status_code=409, detail=f"item {item_id} exists")
    ITEMS[item_id] = item.model_dump()
    return {"item_id": item_id, **ITEMS[item_id]}


@app.get("/missing")
async def missing() -> None:
    raise HTTPException(status_code=404, detail="Nothing here", headers={"x-error": "missing"})


@app.get("/stream")
async def stream(count: int = 5) -> StreamingResponse:
    async def generate() -> AsyncIterator[bytes]:
        for i in range(count):
            yield f"chunk {i}\n".encode()
            await asyncio.sleep(0)

    return StreamingResponse(generate(), media_type="text/plain")


@app.get("/events")
async def events(count: int = 3) -> StreamingResponse:
    """Server-sent events: ``count`` events, each after a short wait (as a live feed would)."""

    async def generate() -> AsyncIterator[str]:
        for i in range(count):
            await asyncio.sleep(0.01)
            yield f'id: {i}\nevent: tick\ndata: {{"n": {i}}}\n\n'

    return StreamingResponse(
        generate(), media_type="text/event-stream", headers={"cache-control": "no-cache"}
    )


@app.get("/file")
async def file() -> FileResponse:
    return FileResponse(STATIC / "hello.txt", media_type="text/plain")


@app.get("/download")
async def download(request: Request) -> FileResponse:
    return FileResponse(request.state.download, filename="hello.txt", media_type="text/plain")


@app.post("/background", status_code=202)
async def background(message: str, tasks: BackgroundTasks) -> dict[str, str]:
    tasks.add_task(BACKGROUND_LOG.append, message)
    return {"queued": message}


@app.get("/background")
async def background_log() -> list[str]:
    return BACKGROUND_LOG


@app.get("/state")
async def state(request: Request) -> dict[str, Any]:
    # request.state is a shallow copy of the lifespan state: the mutable counter is shared
    request.state.counter["hits"] += 1
    return {"started": request.state.started, "hits": request.state.counter["hits"]}


@app.get("/cookies")
async def cookies(response: Response) -> dict[str, str]:
    response.headers["x-custom"] = "turboasgi"
    response.set_cookie("session", "abc123", httponly=True)
    response.set_cookie("theme", "dark", max_age=3600)
    return {"cookies": "set"}


@app.get("/headers")
async def echo_headers(request: Request) -> dict[str, Any]:
    return {"headers": dict(request.headers), "client": request.client.host if request.client else None}
