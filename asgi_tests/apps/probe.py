"""The main probe application (``asgi_tests.apps.probe:app``).

Routes are plain path prefixes; ``{id}`` segments key the side channel: whatever a probe route observes
is stored under its id and read back with ``GET /observed/{id}`` (tagged JSON, see ``tagging``).
``GET /release/{id}`` wakes a route that waits on ``{id}``.

If the environment variable ``ASGI_TESTS_RECORD`` names a file, lifespan events and the start and end of
``/slow`` requests are appended to it, one line each, so tests can check the order after the server exits.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

from asgi_tests.apps.tagging import tag

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

logger = logging.getLogger("asgi_tests.probe")

STORE: dict[str, Any] = {}
RELEASES: dict[str, Gate] = {}
RELEASES_LOCK = threading.Lock()
CALLS = {"http": 0, "websocket": 0}
LIFESPAN: dict[str, Any] = {"scope": None, "events": [], "loop_id": None, "loop_ids": [], "startups": 0}


def record_line(line: str) -> None:
    path = os.environ.get("ASGI_TESTS_RECORD")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(line + "\n")
            f.flush()


class Gate:
    """An event that may be set from a request served by another event loop (servers may run several
    loops in threads, and module globals are shared between them): waiters are woken thread-safely."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open = False
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    def set(self) -> None:
        with self._lock:
            self._open = True
            waiters, self._waiters = self._waiters, []
        for loop, future in waiters:
            loop.call_soon_threadsafe(_resolve, future)

    async def wait(self) -> None:
        with self._lock:
            if self._open:
                return
            loop = asyncio.get_running_loop()
            future: asyncio.Future[None] = loop.create_future()
            self._waiters.append((loop, future))
        await future


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def release_event(key: str) -> Gate:
    with RELEASES_LOCK:
        gate = RELEASES.get(key)
        if gate is None:
            gate = RELEASES[key] = Gate()
    return gate


def query(scope: Scope) -> dict[str, str]:
    raw = scope.get("query_string", b"")
    text = raw.decode("latin-1") if isinstance(raw, (bytes, bytearray)) else str(raw)
    return {k: v[-1] for k, v in parse_qs(text, keep_blank_values=True).items()}


def segments(scope: Scope) -> list[str]:
    return [s for s in str(scope.get("path", "")).split("/") if s]


def summarize_event(message: Message) -> dict[str, Any]:
    body = message.get("body", b"")
    return {
        "type": message.get("type"),
        "keys": sorted(str(k) for k in message),
        "value_types": {str(k): type(v).__name__ for k, v in message.items()},
        "body_len": len(body) if isinstance(body, (bytes, bytearray)) else -1,
        "more_body": message.get("more_body", "<missing>"),
    }


async def read_body(receive: Receive) -> tuple[bytes, list[dict[str, Any]]]:
    chunks: list[bytes] = []
    events: list[dict[str, Any]] = []
    while True:
        message = await receive()
        events.append(summarize_event(message))
        if message.get("type") != "http.request":
            break
        chunks.append(bytes(message.get("body", b"")))
        if not message.get("more_body", False):
            break
    return b"".join(chunks), events


async def respond(
    send: Send,
    status: int,
    body: bytes,
    headers: list[tuple[bytes, bytes]] | None = None,
    content_type: bytes = b"text/plain; charset=utf-8",
) -> None:
    all_headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    all_headers.extend(headers or [])
    await send({"type": "http.response.start", "status": status, "headers": all_headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def respond_json(send: Send, value: Any, status: int = 200) -> None:
    body = json.dumps(tag(value)).encode()
    await respond(send, status, body, content_type=b"application/json")


def describe_scope(scope: Scope) -> dict[str, Any]:
    described = dict(scope)
    if "state" in described and isinstance(described["state"], dict):
        described["state"] = dict(described["state"])
    return described


async def try_send(send: Send, message: Message) -> str | None:
    """Send and report the exception type name instead of raising."""
    try:
        await send(message)
    except Exception as exc:  # noqa: BLE001 - probing
        return type(exc).__name__
    return None


def exception_info(exc: BaseException) -> dict[str, Any]:
    return {
        "raised": True,
        "exc_type": type(exc).__name__,
        "exc_mro": [c.__name__ for c in type(exc).__mro__],
        "is_oserror": isinstance(exc, OSError),
        "message": str(exc)[:500],
    }


# ---------------------------------------------------------------------------------------------- lifespan


async def lifespan(scope: Scope, receive: Receive, send: Send) -> None:
    LIFESPAN["scope"] = {k: v for k, v in scope.items() if k != "state"}
    LIFESPAN["state_type"] = type(scope.get("state")).__name__ if "state" in scope else "<missing>"
    LIFESPAN["state_initial"] = dict(scope["state"]) if isinstance(scope.get("state"), dict) else None
    LIFESPAN["loop_id"] = id(asyncio.get_running_loop())
    LIFESPAN["loop_ids"].append(id(asyncio.get_running_loop()))
    while True:
        message = await receive()
        LIFESPAN["events"].append(message.get("type"))
        record_line(str(message.get("type")))
        if message["type"] == "lifespan.startup":
            LIFESPAN["startups"] += 1
            state = scope.get("state")
            if isinstance(state, dict):
                state["probe_started"] = "yes"
                state["probe_nested"] = {"shared": "value"}
            await send({"type": "lifespan.startup.complete"})
            record_line("startup-complete-sent")
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


# -------------------------------------------------------------------------------------------------- HTTP


async def http(scope: Scope, receive: Receive, send: Send) -> None:
    parts = segments(scope)
    route = parts[0] if parts else ""
    arg = parts[1] if len(parts) > 1 else ""
    arg2 = parts[2] if len(parts) > 2 else ""
    handler = HTTP_ROUTES.get(route)
    if handler is None:
        await respond(send, 404, b"no such probe route: " + route.encode())
        return
    await handler(scope, receive, send, arg, arg2)


async def r_scope(scope: Scope, receive: Receive, send: Send, arg: str, arg2: str) -> None:
    body, events = await read_body(receive)
    await respond_json(send, {"scope": describe_scope(scope), "body_len": len(body)})


async def r_echo(scope: Scope, receive: Receive, send: Send, arg: str, arg2: str) -> None:
    body, events = await read_body(receive)
    await respond(send, 200, body, content_type=b"application/octet-stream")


async def r_body_events(scope: Scope, receive: Receive, send: Send, arg: str, arg2: str) -> None:
    body, events = await read_body(receive)
    await respond_json(send, {"events": events, "body": body})


async def r_status(scope: Scope, receive: Receive, send: Send, arg: str, arg2: str) -> None:
    await read_body(receive)
    code = int(arg)
    if code in (204, 304) or code < 200:
        await send({"type": "http.response.start", "status": code, "headers": []})
        await send({"type": "http.response.body", "body": b""})
    else:
        await respond(send, code, f"status {code}".encode())


async def r_stream(scope: Scope, receive: Receive, send: Send, arg: str, arg2: str) -> None:
    await read_body(receive)
    q = query(scope)
    count, size = int(q.get("n", "3")), int(q.get("size", "5"))
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    for i in range(count):
        piece = (str(i % 10) * size).encode()
        await send({"type": "http.response.body", "body": piece, "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def r_nolength(scope: Scope, receive: Receive, send: Send, arg: str, arg2: str) -> None:
    await read_body(receive)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"no length given", "more_body": False})


async def r_big(scope: Scope, receive: Receive, send: Send, arg: str, arg2: str) -> None:
    await read_body(receive)
    size = int(query(scope).get("size", "1048576"))
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-length", str(size).encode())],
        }
    )
    sent = 0
    while sent < size:
        n = min(65536, size - sent)
        await send(
            {"type": "http.response.body", "body": bytes([65 + (sent // 65536) % 26]) * n, "more_body": True}
        )
        sent += n
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def r_head(scope: Scope, receive: Receive, send: Send, arg: str, arg2: str) -> None:
    await read_body(receive)
    await respond(send, 200, b"hello world", headers=[(b"x-method", str(scope["method"]).encode())])


async def r_head_length(scope: Scope, receive: Receive, send: Send, arg: str, arg2: str) -> None:
    """Answers like Starlette's FileResponse: `content-length` declared, and for HEAD the body left
    out (`empty`), sent anyway (`full`) or streamed in pieces (`stream`)."""
    await read_body(receive)
    body = b"hello world"
    head = scope["method"] == "HEAD"
    headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": int(arg2 or 200), "headers": headers})
    if arg == "stream":
        await send({"type": "http.response.body", "body": body[:5], "more_body": True})
        await asyncio.sleep(0)
        await send({"type": "http.response.body", "body": body[5:], "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    else:
        await send({"type": "http.response.body", "body": b"" if head and arg == "empty" else body})


async def r_ignore_body(scope: Scope, receive: Receive, send: Send, arg: str, arg2: str) -> None:
    """Answers without reading the request body."""
    await respond(send, 200, b"ignored")


async def r_cookies(scope: Scope, receive: Receive, send: Send, arg: str, arg2: str) -> None:
    await read_body(receive)
    await respond(
        send,
        200,
        b"cookies",
        headers=[(b"set-cookie", b"a=1; Path=/"), (b"set-cookie", b"b=2; HttpOnly"), (b"x-multi", b"one")],
    )


async def r_headers_iter(scope: Scope, receive: Receive, send: Send, arg: str, arg2: str) -> None:
    await read_body(receive)
    headers = ([b"content-length", b"4"], (b"x-from-tuple", b"yes"))
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"iter"})


async def r_extra_keys(scope: Scope, receive: Receive, send: Send, arg: str, arg2: str) -> None:
    await read_body(receive)
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-length", b"5")],
            "x-unknown-key": "ignored",
        }
    )
    await send({"type": "http.response.body", "body": b"extra", "more_body": False, "another-key": 1})


async def r_te_header(scope: Scope, receive: Receive, send: Send, arg: str, arg2: str) -> None:
    await read_body(receive)
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"transfer-encoding", b"chunked"), (b"content-type", b"text/plain")],
        }
    )
    await send({"type": "http.response.body", "body": b"hello ", "more_body": True})
    await send({"type": "http.response.body", "body": b"world", "more_body": False})


async def r_server_header(scope: Scope, receive: Receive, send: Send, arg: str, arg2: str) -> None:
    await read_body(receive)
    await respond(
        send,
        200,
        b"own headers",
        headers=[(b"server", b"probe-app"), (b"date", b"Thu, 01 Jan 1970 00:00:00 GMT")],
    )


async def r_conn_close(scope: Scope, receive: Receive, send: Send, arg: str, arg2: str) -> None:
    await read_body(receive)
    await respond(send, 200, b"closing", headers=[(b"connection", b"close")])


async def r_count(scope: Scope, receive: Receive, send: Send, arg: str, arg2: str) -> None:
    await read_body(receive)
    await respond_json(send, dict(CALLS))


async def r_state(scope: Scope, receive: Receive, send: Send, arg: str, arg2: str) -> None:
    await read_body(receive)
    state = scope.get("state")
    seen = dict(state) if isinstance(state, dict) else None
    if isinstance(state, dict):
        state["probe_mutated_by_request"] = arg or "yes"
    await respond_json(send, {"has_state": "state" in scope, "state": seen})


async def r_lifespan_info(scope: Scope, receive: Receive, send: Send, arg: str, arg2: str) -> None:
    await read_body(receive)
    info = dict(LIFESPAN)
    info["events"] = list(LIFESPAN["events"])
    info["loop_ids"] = list(LIFESPAN["loop_ids"])
    info["request_loop_id"] = id(asyncio.get_running_loop())
    await respond_json(send, info)


async def r_observed(scope: Scope, receive: Receive, send: Send, arg: str, arg2: str) -> None:
    await read_body(receive)
    if arg not in STORE:
        await respond(send, 404, b"nothing observed yet")
        return
    await respond_json(send, STORE[arg])


async def r_release(scope: Scope, receive: Receive, send: Send, arg: str, arg2: str) -> None:
    await read_body(receive)
    release_event(arg).set()
    await respond(send, 200, b"released")


async def r_hold(scope: Scope, receive: Receive, send: Send, arg: str, arg2: str) -> None:
    await read_body(receive)
    STORE[arg] = {"started": True}
    try:
        await asyncio.wait_for(release_event(arg).wait(), float(query(scope).get("timeout", "30")))
    except asyncio.TimeoutError:
        pass
    await respond(send, 200, b"held " + arg.encode())


async def r_slow(scope: Scope, receive: Receive, send: Send, arg: str, arg2: str) -> None:
    await read_body(receive)
    delay = float(query(scope).get("delay", "1.0"))
    record_line("request-start")
    STORE[arg or "slow"] = {"started": True}
    await asyncio.sleep(delay)
    record_line("request-end")
    await respond(send, 200, b"slow done")


async def r_flush(scope: Scope, receive: Receive, send: Send, arg: str, arg2: str) -> None:
    await read_body(receive)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"first-part;", "more_body": True})
    STORE[arg] = {"first_sent": True}
    await release_event(arg).wait()
    await send({"type": "http.response.body", "body": b"second-part", "more_body": False})


async def r_error_before(scope: Scope, receive: Receive, send: Send, arg: str, arg2: str) -> None:
    await read_body(receive)
    raise RuntimeError(f"probe-error-before-start {arg}")


async def r_error_after(scope: Scope, receive: Receive, send: Send, arg: str, arg2: str) -> None:
    await read_body(receive)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"100")]})
    await send({"type": "http.response.body", "body": b"partial...", "more_body": True})
    raise RuntimeError(f"probe-error-after-start {arg}")


async def r_fence(scope: Scope, receive: Receive, send: Send, arg: str, arg2: str) -> None:
    """Write a marker to stderr: output before it was caused by earlier requests."""
    await read_body(receive)
    print(f"asgi-tests-fence {arg}", file=sys.stderr, flush=True)
    await respond(send, 200, b"fence " + arg.encode())


async def r_no_response(scope: Scope, receive: Receive, send: Send, arg: str, arg2: str) -> None:
    await read_body(receive)


MALFORMED: dict[str, list[Message]] = {
    "unknown-type": [{"type": "http.response.bogus"}],
    "missing-status": [{"type": "http.response.start", "headers": []}],
    "status-str": [{"type": "http.response.start", "status": "200", "headers": []}],
    "header-str": [{"type": "http.response.start", "status": 200, "headers": [("x-a", "b")]}],
    "body-before-start": [{"type": "http.response.body", "body": b"too early"}],
    "body-str": [
        {"type": "http.response.start", "status": 200, "headers": []},
        {"type": "http.response.body", "body": "a str body", "more_body": False},
    ],
    "start-twice": [
        {"type": "http.response.start", "status": 200, "headers": []},
        {"type": "http.response.start", "status": 200, "headers": []},
    ],
}


async def r_malformed(scope: Scope, receive: Receive, send: Send, arg: str, arg2: str) -> None:
    await read_body(receive)
    messages = MALFORMED[arg]
    started = False
    result: dict[str, Any] = {"raised": False}
    for message in messages:
        try:
            await send(message)
        except Exception as exc:  # noqa: BLE001 - probing
            result = exception_info(exc)
            result["failed_message"] = message["type"]
            break
        if message["type"] == "http.response.start":
            started = True
    STORE[arg2] = result
    if not started:
        await try_send(send, {"type": "http.response.start", "status": 200, "headers": []})
    await try_send(send, {"type": "http.response.body", "body": b"recovered", "more_body": False})


async def r_after_complete(scope: Scope, receive: Receive, send: Send, arg: str, arg2: str) -> None:
    await read_body(receive)
    await respond(send, 200, b"complete")
    result: dict[str, Any] = {"raised": False}
    try:
        await send({"type": "http.response.body", "body": b"GARBAGE-AFTER-COMPLETE", "more_body": False})
    except Exception as exc:  # noqa: BLE001 - probing
        result = exception_info(exc)
    STORE[arg] = result


async def r_receive_after_body(scope: Scope, receive: Receive, send: Send, arg: str, arg2: str) -> None:
    body, events = await read_body(receive)
    try:
        message = await asyncio.wait_for(receive(), 0.3)
        result: dict[str, Any] = {"blocked": False, "message": summarize_event(message)}
    except asyncio.TimeoutError:
        result = {"blocked": True}
    result["events"] = events
    STORE[arg] = result
    await respond(send, 200, b"done")


async def r_disconnect_after_response(
    scope: Scope, receive: Receive, send: Send, arg: str, arg2: str
) -> None:
    await read_body(receive)
    await respond(send, 200, b"done")
    try:
        message = await asyncio.wait_for(receive(), 5.0)
        STORE[arg] = {"message": summarize_event(message)}
    except asyncio.TimeoutError:
        STORE[arg] = {"message": None}


async def r_wait_disconnect(scope: Scope, receive: Receive, send: Send, arg: str, arg2: str) -> None:
    await read_body(receive)
    STORE[arg] = {"waiting": True}
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        message = await asyncio.wait_for(receive(), 10.0)
        STORE[arg] = {"message": summarize_event(message), "elapsed": loop.time() - started, "waiting": False}
    except asyncio.TimeoutError:
        STORE[arg] = {"message": None, "waiting": False}
    await try_send(send, {"type": "http.response.start", "status": 200, "headers": []})
    await try_send(send, {"type": "http.response.body", "body": b"late"})


async def r_stream_until_disconnect(scope: Scope, receive: Receive, send: Send, arg: str, arg2: str) -> None:
    await read_body(receive)
    reraise = query(scope).get("reraise") == "1"
    disconnected = asyncio.Event()

    async def watch() -> None:
        while True:
            message = await receive()
            if message.get("type") == "http.disconnect":
                disconnected.set()
                return

    watcher = asyncio.ensure_future(watch())
    result: dict[str, Any] = {"raised": False, "sends_after_disconnect": 0}
    STORE[arg] = {"streaming": True}
    deadline = time.monotonic() + 8.0
    try:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        while time.monotonic() < deadline:
            await send({"type": "http.response.body", "body": b"x" * 16384, "more_body": True})
            if disconnected.is_set():
                result["sends_after_disconnect"] += 1
                if result["sends_after_disconnect"] >= 20:
                    break
            await asyncio.sleep(0.005)
    except Exception as exc:
        result.update(exception_info(exc))
        result["disconnect_seen"] = disconnected.is_set()
        result["final"] = True
        STORE[arg] = result
        if reraise:
            raise
        return
    finally:
        watcher.cancel()
    result["disconnect_seen"] = disconnected.is_set()
    result["final"] = True
    STORE[arg] = result


async def r_backpressure(scope: Scope, receive: Receive, send: Send, arg: str, arg2: str) -> None:
    await read_body(receive)
    total = int(query(scope).get("total", str(64 * 1024 * 1024)))
    chunk = b"z" * 65536
    progress: dict[str, Any] = {"sent": 0, "done": False, "total": total}
    STORE[arg] = progress
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", str(total).encode())]}
    )
    while progress["sent"] < total:
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
        progress["sent"] += len(chunk)
    await send({"type": "http.response.body", "body": b"", "more_body": False})
    progress["done"] = True


async def r_len_mismatch(scope: Scope, receive: Receive, send: Send, arg: str, arg2: str) -> None:
    await read_body(receive)
    declared, body = (5, b"0123456789") if arg == "long" else (10, b"01234")
    result: dict[str, Any] = {"raised": False}
    try:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", str(declared).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body, "more_body": False})
    except Exception as exc:  # noqa: BLE001 - probing
        result = exception_info(exc)
    STORE[arg2] = result


async def r_continue(scope: Scope, receive: Receive, send: Send, arg: str, arg2: str) -> None:
    if query(scope).get("read") == "0":
        await respond(send, 200, b"did not read")
        return
    body, events = await read_body(receive)
    await respond(send, 200, b"read:" + body)


async def r_trailers(scope: Scope, receive: Receive, send: Send, arg: str, arg2: str) -> None:
    await read_body(receive)
    if "http.response.trailers" not in (scope.get("extensions") or {}):
        await respond(send, 501, b"trailers not advertised")
        return
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"trailer", b"x-trailer")],
            "trailers": True,
        }
    )
    await send({"type": "http.response.body", "body": b"with trailers", "more_body": False})
    await send(
        {"type": "http.response.trailers", "headers": [(b"x-trailer", b"yes")], "more_trailers": False}
    )


async def r_early_hint(scope: Scope, receive: Receive, send: Send, arg: str, arg2: str) -> None:
    await read_body(receive)
    if "http.response.early_hint" not in (scope.get("extensions") or {}):
        await respond(send, 501, b"early hints not advertised")
        return
    await send({"type": "http.response.early_hint", "links": [b"</style.css>; rel=preload; as=style"]})
    await respond(send, 200, b"after hints")


async def r_pathsend(scope: Scope, receive: Receive, send: Send, arg: str, arg2: str) -> None:
    await read_body(receive)
    if "http.response.pathsend" not in (scope.get("extensions") or {}):
        await respond(send, 501, b"pathsend not advertised")
        return
    path = os.path.abspath(__file__)
    size = os.path.getsize(path)
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", str(size).encode())]}
    )
    await send({"type": "http.response.pathsend", "path": path})


async def r_zerocopysend(scope: Scope, receive: Receive, send: Send, arg: str, arg2: str) -> None:
    await read_body(receive)
    if "http.response.zerocopysend" not in (scope.get("extensions") or {}):
        await respond(send, 501, b"zerocopysend not advertised")
        return
    with open(os.path.abspath(__file__), "rb") as f:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"20")]})
        await send(
            {"type": "http.response.zerocopysend", "file": f, "offset": 10, "count": 20, "more_body": False}
        )


HttpHandler = Callable[[Scope, Receive, Send, str, str], Awaitable[None]]

HTTP_ROUTES: dict[str, HttpHandler] = {
    "scope": r_scope,
    "echo": r_echo,
    "body-events": r_body_events,
    "status": r_status,
    "stream": r_stream,
    "nolength": r_nolength,
    "big": r_big,
    "head": r_head,
    "head-length": r_head_length,
    "ignore-body": r_ignore_body,
    "cookies": r_cookies,
    "headers-iter": r_headers_iter,
    "extra-keys": r_extra_keys,
    "te-header": r_te_header,
    "server-header": r_server_header,
    "conn-close": r_conn_close,
    "count": r_count,
    "state": r_state,
    "lifespan-info": r_lifespan_info,
    "observed": r_observed,
    "release": r_release,
    "hold": r_hold,
    "slow": r_slow,
    "flush": r_flush,
    "error-before": r_error_before,
    "error-after": r_error_after,
    "no-response": r_no_response,
    "fence": r_fence,
    "malformed": r_malformed,
    "after-complete": r_after_complete,
    "receive-after-body": r_receive_after_body,
    "disconnect-after-response": r_disconnect_after_response,
    "wait-disconnect": r_wait_disconnect,
    "stream-until-disconnect": r_stream_until_disconnect,
    "backpressure": r_backpressure,
    "len-mismatch": r_len_mismatch,
    "continue": r_continue,
    "trailers": r_trailers,
    "early-hint": r_early_hint,
    "pathsend": r_pathsend,
    "zerocopysend": r_zerocopysend,
}


# --------------------------------------------------------------------------------------------- WebSocket


async def ws_wait_disconnect(receive: Receive) -> Message:
    while True:
        message = await receive()
        if message.get("type") == "websocket.disconnect":
            return message


async def websocket(scope: Scope, receive: Receive, send: Send) -> None:
    parts = segments(scope)
    route = parts[1] if len(parts) > 1 else ""
    arg = parts[2] if len(parts) > 2 else ""
    q = query(scope)
    if route == "record":
        events = [tag(await receive())]
        STORE[arg] = {"events": events, "done": False}
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            events.append(tag(message))
            if message.get("type") == "websocket.disconnect":
                break
        STORE[arg] = {"events": events, "done": True}
        return

    connect = await receive()
    if connect.get("type") != "websocket.connect":
        STORE["ws-unexpected-first"] = connect
        return

    if route == "echo":
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                if arg:
                    STORE[arg] = {"disconnect": message}
                return
            if message.get("text") is not None:
                await send({"type": "websocket.send", "text": message["text"]})
            else:
                await send({"type": "websocket.send", "bytes": message.get("bytes") or b""})
    elif route == "scope":
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": json.dumps(tag(describe_scope(scope)))})
        await ws_wait_disconnect(receive)
    elif route == "subprotocol":
        choose = q.get("choose")
        await send({"type": "websocket.accept", "subprotocol": choose or None})
        await send({"type": "websocket.send", "text": json.dumps(tag(scope.get("subprotocols")))})
        await ws_wait_disconnect(receive)
    elif route == "accept-headers":
        await send(
            {
                "type": "websocket.accept",
                "headers": [(b"x-probe-accept", b"yes"), (b"set-cookie", b"a=1"), (b"set-cookie", b"b=2")],
            }
        )
        await ws_wait_disconnect(receive)
    elif route == "close-before-accept":
        await send({"type": "websocket.close"})
    elif route == "close":
        await send({"type": "websocket.accept"})
        if arg == "default":
            await send({"type": "websocket.close"})
        else:
            await send({"type": "websocket.close", "code": int(arg), "reason": q.get("reason", "")})
        message = await asyncio.wait_for(receive(), 5.0)
        if q.get("id"):
            STORE[q["id"]] = {"after_close": message}
    elif route == "error-before":
        raise RuntimeError(f"probe-ws-error-before-accept {arg}")
    elif route == "error-after":
        await send({"type": "websocket.accept"})
        raise RuntimeError(f"probe-ws-error-after-accept {arg}")
    elif route == "deny":
        if "websocket.http.response" not in (scope.get("extensions") or {}):
            await send({"type": "websocket.close"})
            return
        await send(
            {
                "type": "websocket.http.response.start",
                "status": 401,
                "headers": [(b"content-type", b"text/plain"), (b"x-denied", b"yes")],
            }
        )
        await send({"type": "websocket.http.response.body", "body": b"denied by probe", "more_body": False})
    elif route == "wait-release":
        STORE[arg] = {"connected": True}
        await release_event(arg).wait()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": "accepted after release"})
        await ws_wait_disconnect(receive)
    elif route == "send-after-close":
        await send({"type": "websocket.accept"})
        STORE[arg] = {"accepted": True}
        disconnect = await ws_wait_disconnect(receive)
        result: dict[str, Any] = {"raised": False, "disconnect": disconnect}
        try:
            await send({"type": "websocket.send", "text": "too late"})
        except Exception as exc:  # noqa: BLE001 - probing
            result.update(exception_info(exc))
        STORE[arg] = result
    elif route == "send-both":
        await send({"type": "websocket.accept"})
        result = {"raised": False}
        try:
            await send({"type": "websocket.send", "text": "text-part", "bytes": b"bytes-part"})
        except Exception as exc:  # noqa: BLE001 - probing
            result = exception_info(exc)
        STORE[arg] = result
        await send({"type": "websocket.close", "code": 1000})
    else:
        await send({"type": "websocket.close", "code": 1008})


# ---------------------------------------------------------------------------------------------- entry


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    kind = scope["type"]
    if kind == "lifespan":
        await lifespan(scope, receive, send)
        return
    CALLS[kind] = CALLS.get(kind, 0) + 1
    if kind == "http":
        await http(scope, receive, send)
    elif kind == "websocket":
        await websocket(scope, receive, send)


class Asgi2App:
    """A legacy ASGI 2 (double-callable) app: ``Asgi2App(scope)``, then ``await instance(receive, send)``."""

    def __init__(self, scope: Scope) -> None:
        self.scope = scope

    async def __call__(self, receive: Receive, send: Send) -> None:
        if self.scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if self.scope["type"] != "http":
            return
        await read_body(receive)
        await respond(send, 200, b"asgi2 " + str(self.scope["path"]).encode())
