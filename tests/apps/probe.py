"""A raw ASGI 3 application with one route per behaviour the server tests exercise.

State lives in the server process; the tests read it back through side-channel routes:
``/events?id=X`` (what the app saw for request ``X``) and ``/signal?name=X`` (wake a handler waiting
in ``/expect?name=X``).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

EVENTS: dict[str, list[str]] = {}
SIGNALS: dict[str, asyncio.Event] = {}


def _signal(name: str) -> asyncio.Event:
    return SIGNALS.setdefault(name, asyncio.Event())


async def respond(
    send: Send,
    body: bytes,
    status: int = 200,
    headers: list[tuple[bytes, bytes]] | None = None,
    content_type: bytes = b"text/plain; charset=utf-8",
) -> None:
    all_headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": all_headers + (headers or [])})
    await send({"type": "http.response.body", "body": body})


async def respond_json(send: Send, data: Any, status: int = 200) -> None:
    await respond(send, json.dumps(data).encode(), status, content_type=b"application/json")


async def read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await lifespan(receive, send)
        return
    if scope["type"] != "http":
        return
    query = {key: values[-1] for key, values in parse_qs(scope["query_string"].decode("latin-1")).items()}
    path: str = scope["path"]
    root_path: str = scope.get("root_path", "")
    if root_path and path.startswith(root_path):  # route like Starlette: below the mount point
        path = path[len(root_path) :]
    handler = ROUTES.get(path.rstrip("/") or "/")
    if handler is None and path.startswith(("/echo", "/a/")):
        handler = echo
    if handler is None:
        await respond(send, b"Not Found", 404)
        return
    await handler(scope, receive, send, query)


Handler = Callable[[Scope, Receive, Send, dict[str, str]], Awaitable[None]]


async def root(scope: Scope, receive: Receive, send: Send, query: dict[str, str]) -> None:
    await respond(send, b"ok")


async def echo(scope: Scope, receive: Receive, send: Send, query: dict[str, str]) -> None:
    """The request as the app saw it, as JSON."""
    body = await read_body(receive)
    await respond_json(
        send,
        {
            "method": scope["method"],
            "path": scope["path"],
            "raw_path": scope["raw_path"].decode("latin-1"),
            "root_path": scope["root_path"],
            "query_string": scope["query_string"].decode("latin-1"),
            "http_version": scope["http_version"],
            "scheme": scope["scheme"],
            "client": list(scope["client"]) if scope.get("client") else None,
            "server": list(scope["server"]) if scope.get("server") else None,
            "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in scope["headers"]],
            "body": body.decode("latin-1"),
        },
    )


async def upload(scope: Scope, receive: Receive, send: Send, query: dict[str, str]) -> None:
    """Read the body and record every message type for ``/events?id=``; answer with the byte count.
    ``?pause=S`` waits S seconds before each read (a slow app)."""
    events = EVENTS.setdefault(query.get("id", "upload"), [])
    pause = float(query.get("pause", 0))
    received = 0
    while True:
        if pause:
            await asyncio.sleep(pause)
        message = await receive()
        events.append(message["type"])
        if message["type"] == "http.disconnect":
            return
        received += len(message.get("body", b""))
        if not message.get("more_body", False):
            break
    await respond(send, str(received).encode())


async def events(scope: Scope, receive: Receive, send: Send, query: dict[str, str]) -> None:
    await respond_json(send, EVENTS.get(query.get("id", ""), []))


async def signal_route(scope: Scope, receive: Receive, send: Send, query: dict[str, str]) -> None:
    _signal(query["name"]).set()
    await respond(send, b"signalled")


async def expect(scope: Scope, receive: Receive, send: Send, query: dict[str, str]) -> None:
    """Record ``waiting``, wait for ``/signal?name=``, only then read the body (100-continue tests)."""
    name = query["name"]
    EVENTS.setdefault(name, []).append("waiting")
    await _signal(name).wait()
    EVENTS[name].append("reading")
    body = await read_body(receive)
    await respond(send, b"got " + body)


async def late_body(scope: Scope, receive: Receive, send: Send, query: dict[str, str]) -> None:
    """Start the response, then wait for ``/signal?name=`` before the first body (an SSE endpoint)."""
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]}
    )
    await _signal(query["name"]).wait()
    await send({"type": "http.response.body", "body": b"data: 1\n\n"})


async def bytes_like(scope: Scope, receive: Receive, send: Send, query: dict[str, str]) -> None:
    """Body pieces as memoryview and bytearray (uvicorn takes any bytes-like object); each buffer is
    changed right after send() returns, which must not change what the client gets."""
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    size = int(query.get("size", "5"))
    for make in (lambda b: memoryview(bytearray(b)), bytearray, lambda b: memoryview(b"%b" % b)[:]):
        piece = make(b"a" * size)
        await send({"type": "http.response.body", "body": piece, "more_body": True})
        if not isinstance(piece, memoryview) or not piece.readonly:
            piece[0:1] = b"X"
    await send({"type": "http.response.body", "body": memoryview(b"end")})


async def slow(scope: Scope, receive: Receive, send: Send, query: dict[str, str]) -> None:
    """Record that the request started (``/events?id=``), then answer after ``delay`` seconds;
    ``finished`` is recorded once the answer was attempted (the client may be gone by then)."""
    key = query.get("id", "slow")
    EVENTS.setdefault(key, []).append("started")
    try:
        await asyncio.sleep(float(query.get("delay", "1")))
        await respond(send, b"slow done")
    finally:
        EVENTS[key].append("finished")


async def forever(scope: Scope, receive: Receive, send: Send, query: dict[str, str]) -> None:
    """A streaming response that never ends."""
    key = query.get("id", "forever")
    EVENTS.setdefault(key, []).append("started")
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    while True:
        try:
            await send({"type": "http.response.body", "body": b"tick\n", "more_body": True})
        except BaseException as exc:
            EVENTS[key].append(f"send raised {type(exc).__name__} OSError={isinstance(exc, OSError)}")
            raise
        await asyncio.sleep(0.05)


async def chunked(scope: Scope, receive: Receive, send: Send, query: dict[str, str]) -> None:
    """No content-length: the server frames the response itself."""
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"hello ", "more_body": True})
    await send({"type": "http.response.body", "body": b"world", "more_body": False})


async def status(scope: Scope, receive: Receive, send: Send, query: dict[str, str]) -> None:
    """``?code=204`` / ``304``: answered with a body the server must not send; ``/status?code=N``."""
    code = int(query.get("code", "200"))
    await send(
        {"type": "http.response.start", "status": code, "headers": [(b"x-status", str(code).encode())]}
    )
    await send({"type": "http.response.body", "body": b"" if code in (204, 304) else b"body"})


async def cookies(scope: Scope, receive: Receive, send: Send, query: dict[str, str]) -> None:
    headers = [(b"set-cookie", b"a=1; Path=/"), (b"set-cookie", b"b=2; HttpOnly"), (b"set-cookie", b"c=3")]
    await respond(send, b"cookies", headers=headers)


async def app_close(scope: Scope, receive: Receive, send: Send, query: dict[str, str]) -> None:
    """The app asks for the connection to be closed after this response."""
    await respond(send, b"closing", headers=[(b"connection", b"close")])


async def own_server_date(scope: Scope, receive: Receive, send: Send, query: dict[str, str]) -> None:
    headers = [(b"server", b"probe-app"), (b"date", b"Thu, 01 Jan 1970 00:00:00 GMT")]
    await respond(send, b"own headers", headers=headers)


async def env(scope: Scope, receive: Receive, send: Send, query: dict[str, str]) -> None:
    await respond(send, os.environ.get(query["name"], "<unset>").encode())


async def big(scope: Scope, receive: Receive, send: Send, query: dict[str, str]) -> None:
    """``size`` bytes (a repeating pattern) in 64 KiB body messages, with a content-length."""
    size = int(query["size"])
    pattern = bytes(range(256)) * 256
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", str(size).encode())]}
    )
    sent = 0
    while sent < size:
        chunk = pattern[: min(len(pattern), size - sent)]
        sent += len(chunk)
        await send({"type": "http.response.body", "body": chunk, "more_body": sent < size})


async def spec(scope: Scope, receive: Receive, send: Send, query: dict[str, str]) -> None:
    await respond_json(send, {"asgi": scope["asgi"], "extensions": sorted(scope.get("extensions") or {})})


# ------------------------------------------------------------------------------ misbehaving routes


async def bad_header(scope: Scope, receive: Receive, send: Send, query: dict[str, str]) -> None:
    """Response splitting attempt: CR LF inside a header value."""
    await respond(send, b"split", headers=[(b"x-evil", b"a\r\nInjected: yes")])


async def app_transfer_encoding(scope: Scope, receive: Receive, send: Send, query: dict[str, str]) -> None:
    """The app claims chunked framing but sends raw bytes: the server must frame the body itself."""
    headers = [(b"content-type", b"text/plain"), (b"transfer-encoding", b"chunked")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"hello", "more_body": True})
    await send({"type": "http.response.body", "body": b" world"})


async def str_body(scope: Scope, receive: Receive, send: Send, query: dict[str, str]) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": "a str, not bytes"})


async def bad_status(scope: Scope, receive: Receive, send: Send, query: dict[str, str]) -> None:
    await send({"type": "http.response.start", "status": 1000, "headers": []})
    await send({"type": "http.response.body", "body": b"never"})


async def raise_before(scope: Scope, receive: Receive, send: Send, query: dict[str, str]) -> None:
    raise RuntimeError("raised before response start")


async def raise_after(scope: Scope, receive: Receive, send: Send, query: dict[str, str]) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"100")]})
    await send({"type": "http.response.body", "body": b"partial", "more_body": True})
    raise RuntimeError("raised after response start")


async def no_response(scope: Scope, receive: Receive, send: Send, query: dict[str, str]) -> None:
    return None


async def too_long(scope: Scope, receive: Receive, send: Send, query: dict[str, str]) -> None:
    """Declares 5 bytes, sends 10; records whether ``send`` raised in ``/events?id=too-long``."""
    await _mismatched_length(send, b"5", b"0123456789", "too-long")


async def too_short(scope: Scope, receive: Receive, send: Send, query: dict[str, str]) -> None:
    await _mismatched_length(send, b"10", b"01234", "too-short")


async def _mismatched_length(send: Send, declared: bytes, body: bytes, key: str) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", declared)]})
    try:
        await send({"type": "http.response.body", "body": body})
    except Exception as exc:
        EVENTS.setdefault(key, []).append(f"send raised {type(exc).__name__}")
        raise
    EVENTS.setdefault(key, []).append("send returned")


async def first_receive(scope: Scope, receive: Receive, send: Send, query: dict[str, str]) -> None:
    """Whether the first ``receive()`` had the body at hand (an awaitable already done) or had to wait."""
    pending = receive()
    waited = isinstance(pending, asyncio.Future) and not pending.done()
    message = await pending
    await respond_json(
        send, {"waited": waited, "body": message["body"].decode(), "more": message["more_body"]}
    )


ROUTES: dict[str, Handler] = {
    "/": root,
    "/first-receive": first_receive,
    "/upload": upload,
    "/events": events,
    "/signal": signal_route,
    "/expect": expect,
    "/slow": slow,
    "/late-body": late_body,
    "/bytes-like": bytes_like,
    "/forever": forever,
    "/chunked": chunked,
    "/status": status,
    "/cookies": cookies,
    "/own-server-date": own_server_date,
    "/close": app_close,
    "/env": env,
    "/big": big,
    "/spec": spec,
    "/bad-header": bad_header,
    "/app-te": app_transfer_encoding,
    "/str-body": str_body,
    "/bad-status": bad_status,
    "/raise-before": raise_before,
    "/raise-after": raise_after,
    "/no-response": no_response,
    "/too-long": too_long,
    "/too-short": too_short,
}
