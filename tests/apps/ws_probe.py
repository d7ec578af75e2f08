"""A raw ASGI app for the WebSocket tests: one path per behaviour, and a side channel.

Every WebSocket route records what the app observed under the ``id`` query parameter; tests read it
back with ``GET /events?id=X`` (a JSON list) over plain HTTP on the same server, and wake a handler
waiting at a gate with ``GET /release?id=X``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

EVENTS: dict[str, list[Any]] = {}
GATES: dict[str, asyncio.Event] = {}


def record(key: str, event: Any) -> None:
    EVENTS.setdefault(key, []).append(event)


def gate(key: str) -> asyncio.Event:
    return GATES.setdefault(key, asyncio.Event())


def query(scope: Scope) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(scope["query_string"].decode("latin-1")).items()}


async def respond(send: Send, status: int, body: bytes, content_type: bytes = b"application/json") -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def http(scope: Scope, receive: Receive, send: Send) -> None:
    params = query(scope)
    key = params.get("id", "")
    if scope["path"] == "/events":
        await respond(send, 200, json.dumps(EVENTS.get(key, [])).encode())
    elif scope["path"] == "/release":
        gate(key).set()
        await respond(send, 200, b"{}")
    else:
        # with --ws none an upgrade request lands here
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        body = json.dumps({"type": "http", "path": scope["path"], "upgrade": headers.get("upgrade")})
        await respond(send, 200, body.encode())


def describe_scope(scope: Scope) -> dict[str, Any]:
    return {
        "type": scope["type"],
        "scheme": scope["scheme"],
        "path": scope["path"],
        "raw_path": scope.get("raw_path", b"").decode("latin-1"),
        "query_string": scope["query_string"].decode("latin-1"),
        "root_path": scope.get("root_path"),
        "http_version": scope.get("http_version"),
        "has_method": "method" in scope,
        "subprotocols": scope.get("subprotocols"),
        "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in scope["headers"]],
        "client": list(scope["client"]) if scope.get("client") else None,
        "server": list(scope["server"]) if scope.get("server") else None,
        "asgi": scope.get("asgi"),
        "extensions": sorted((scope.get("extensions") or {}).keys()),
    }


async def drain(receive: Receive, key: str) -> Message:
    """Echo nothing; receive until the disconnect, record it and return it."""
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            record(key, {"disconnect": message.get("code"), "reason": message.get("reason")})
            return message
        record(key, {"receive": message.get("text"), "bytes_len": _len(message.get("bytes"))})


def _len(data: bytes | None) -> int | None:
    return None if data is None else len(data)


async def echo_loop(receive: Receive, send: Send, key: str) -> None:
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            record(key, {"disconnect": message.get("code"), "reason": message.get("reason")})
            return
        text, data = message.get("text"), message.get("bytes")
        record(key, {"text": text, "bytes_len": _len(data)})
        if text is not None and text.startswith("close:"):
            # "close:CODE:REASON": the server initiates the close
            _, code, reason = text.split(":", 2)
            close: Message = {"type": "websocket.close"}
            if code:
                close.update(code=int(code), reason=reason)
            await send(close)
            await drain(receive, key)
            return
        if text is not None:
            await send({"type": "websocket.send", "text": text})
        else:
            await send({"type": "websocket.send", "bytes": data})


async def websocket(scope: Scope, receive: Receive, send: Send) -> None:
    params = query(scope)
    key = params.get("id", "")
    path = scope["path"]
    first = await receive()
    record(key, {"first": first["type"], "scope": describe_scope(scope)})
    if first["type"] != "websocket.connect":
        return

    if path == "/gate":
        # spec W3: the handshake waits for this accept, which waits for the test's /release
        await gate(key).wait()
        record(key, "accepting")
        headers = [(b"x-probe", b"accepted"), (b"set-cookie", b"a=1"), (b"set-cookie", b"b=2")]
        await send({"type": "websocket.accept", "subprotocol": params.get("subprotocol"), "headers": headers})
        await echo_loop(receive, send, key)
    elif path == "/echo":
        await send({"type": "websocket.accept", "subprotocol": params.get("subprotocol")})
        await echo_loop(receive, send, key)
    elif path == "/deny":
        await send({"type": "websocket.close"})
    elif path == "/deny-response":
        await send(
            {
                "type": "websocket.http.response.start",
                "status": 401,
                "headers": [(b"content-type", b"text/plain"), (b"www-authenticate", b"Bearer")],
            }
        )
        await send({"type": "websocket.http.response.body", "body": b"no ", "more_body": True})
        await send({"type": "websocket.http.response.body", "body": b"entry"})
    elif path == "/error-before":
        raise RuntimeError("boom before accept")
    elif path == "/error-after":
        await send({"type": "websocket.accept"})
        message = await receive()
        record(key, {"text": message.get("text")})
        raise RuntimeError("boom after accept")
    elif path == "/return-before":
        return
    elif path == "/send-after-close":
        await send({"type": "websocket.accept"})
        if params.get("who") == "server":
            await send({"type": "websocket.close", "code": 4001, "reason": "bye"})
        else:
            await drain(receive, key)
        try:
            await send({"type": "websocket.send", "text": "too late"})
        except Exception as exc:  # spec W10
            record(key, {"send_error": type(exc).__name__, "oserror": isinstance(exc, OSError)})
        else:
            record(key, {"send_error": None})
    elif path == "/close-after-client-close":
        # Starlette's on_disconnect pattern: close after the client's Close frame arrived, either
        # after reading the disconnect (`read=1`) or before (the test releases the gate once the
        # client's close went out)
        await send({"type": "websocket.accept"})
        if params.get("read") == "1":
            await drain(receive, key)
        else:
            await gate(key).wait()
        for message in ({"type": "websocket.close"}, {"type": "websocket.send", "text": "too late"}):
            try:
                await send(message)
            except Exception as exc:
                record(key, {"sent": message["type"], "error": type(exc).__name__})
            else:
                record(key, {"sent": message["type"], "error": None})
    elif path == "/bytes-like":
        await send({"type": "websocket.accept"})
        for data in (memoryview(b"view"), bytearray(b"array")):
            await send({"type": "websocket.send", "bytes": data})
            if isinstance(data, bytearray):
                data[0:1] = b"X"  # changed after send() returned: the client must not see it
        await drain(receive, key)
    elif path == "/flood":
        await send({"type": "websocket.accept"})
        chunk = b"x" * int(params.get("size", "65536"))
        limit = int(params.get("limit", "100000"))
        sent = 0
        try:
            while sent < limit:
                await send({"type": "websocket.send", "bytes": chunk})
                sent += 1
                EVENTS[key] = [{"sent": sent}]
            await drain(receive, key)
        except Exception as exc:
            record(key, {"send_error": type(exc).__name__, "sent": sent})
    elif path == "/hold":
        await send({"type": "websocket.accept"})
        record(key, "accepted")
        await drain(receive, key)
    else:
        await send({"type": "websocket.close"})


async def lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "http":
        await http(scope, receive, send)
    elif scope["type"] == "websocket":
        await websocket(scope, receive, send)
    elif scope["type"] == "lifespan":
        await lifespan(receive, send)
