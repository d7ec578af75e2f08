"""An app for the metrics endpoint's tests: chosen statuses, a loop-blocking route, a request held
open until released, and a WebSocket echo."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

HELD = asyncio.Event()


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        while (message := await receive())["type"] == "websocket.receive":
            await send({"type": "websocket.send", "text": message.get("text") or ""})
        return
    path = scope["path"]
    status = 200
    if path.startswith("/status/"):
        status = int(path.rsplit("/", 1)[1])
    elif path == "/block":
        # Blocks the event loop on purpose, after telling the test (a file) that it does.
        Path(scope["query_string"].decode()).write_text("blocking")
        time.sleep(0.6)
    elif path == "/hold":
        HELD.clear()
        await HELD.wait()
    elif path == "/release":
        HELD.set()
    elif path == "/fail":
        raise RuntimeError("boom")
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})
