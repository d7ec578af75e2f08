"""A small ASGI app for the worker, reload and stress tests.

Routes: ``/pid`` (the serving process id), ``/gil`` (``sys._is_gil_enabled()`` and the loop thread),
``/echo?id=X`` (the id back, with the request body's length and checksum), ``/stream?id=X&n=N``
(N chunks each naming the id), ``/slow?id=X&ms=M`` (answers after M milliseconds).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sys
import threading
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


async def _respond(send: Send, body: bytes, content_type: bytes = b"application/json") -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    query = {k: v[-1] for k, v in parse_qs(scope["query_string"].decode()).items()}
    path = scope["path"]
    if path == "/pid":
        await _respond(send, str(os.getpid()).encode(), b"text/plain")
    elif path == "/gil":
        check = getattr(sys, "_is_gil_enabled", None)
        data = {"gil": None if check is None else check(), "thread": threading.current_thread().name}
        await _respond(send, json.dumps(data).encode())
    elif path == "/echo":
        digest = hashlib.sha256()
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            digest.update(chunk)
            size += len(chunk)
            if not message.get("more_body", False):
                break
        data = {"id": query.get("id"), "size": size, "sha256": digest.hexdigest(), "pid": os.getpid()}
        await _respond(send, json.dumps(data).encode())
    elif path == "/stream":
        ident = query.get("id", "")
        count = int(query.get("n", "10"))
        headers = [(b"content-type", b"text/plain")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for index in range(count):
            line = f"{ident}:{index}\n".encode()
            await send({"type": "http.response.body", "body": line, "more_body": True})
            if index % 4 == 0:
                await asyncio.sleep(0)
        await send({"type": "http.response.body", "body": b""})
    elif path == "/slow":
        await asyncio.sleep(int(query.get("ms", "100")) / 1000)
        await _respond(send, json.dumps({"id": query.get("id")}).encode())
    else:
        await _respond(send, b"not found", b"text/plain")
