"""The in-process per-request cost of each benchmark app, with no server and no I/O.

Each request awaits ``app(scope, receive, send)`` directly on one event loop (uvloop when installed,
like the servers under test) with a fresh copy of a prebuilt scope, an in-memory ``receive`` that hands
out the request body in 64 KiB chunks and a ``send`` that only checks the status. No Task is created
per request and no scope is built from the wire: both are part of a server's own overhead. The result
(µs per request) lets the report split a server's 1e6/rps into app time and server time.

Usage: ``python benchmarks/appcost.py [WORKLOAD ...] [--seconds 0.3] [--repeat 5]``; prints JSON
``{workload: {"us": best, "median_us": median, "loop": "uvloop"}}`` on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from workloads import APPS_DIR, BY_NAME, WORKLOADS, Workload

Message = MutableMapping[str, Any]
App = Callable[
    [MutableMapping[str, Any], Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]],
    Awaitable[None],
]

CHUNK = 64 * 1024


def load_app(spec: str) -> App:
    if str(APPS_DIR) not in sys.path:
        sys.path.insert(0, str(APPS_DIR))
    module_name, _, attr = spec.partition(":")
    app: App = getattr(importlib.import_module(module_name), attr)
    return app


def make_scope(w: Workload) -> dict[str, Any]:
    headers: list[tuple[bytes, bytes]] = [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"appcost")]
    headers += [(k.lower().encode(), v.encode()) for k, v in w.headers]
    if w.body:
        headers.append((b"content-length", str(len(w.body)).encode()))
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
        "scheme": "http",
        "method": w.method,
        "root_path": "",
        "path": w.path,
        "raw_path": w.path.encode(),
        "query_string": w.query.encode(),
        "headers": headers,
        "state": {},
    }


class Exchange:
    """One request's in-memory receive/send."""

    __slots__ = ("chunks", "index", "status", "size")

    def __init__(self, chunks: list[Message]) -> None:
        self.chunks = chunks
        self.index = 0
        self.status = 0
        self.size = 0

    async def receive(self) -> Message:
        if self.index < len(self.chunks):
            message = self.chunks[self.index]
            self.index += 1
            return message
        await asyncio.Future()  # the client never disconnects: wait forever
        raise AssertionError("unreachable")

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
        elif message["type"] == "http.response.body":
            self.size += len(message.get("body", b""))


def body_messages(body: bytes) -> list[Message]:
    if not body:
        return [{"type": "http.request", "body": b"", "more_body": False}]
    parts = [body[i : i + CHUNK] for i in range(0, len(body), CHUNK)]
    return [
        {"type": "http.request", "body": part, "more_body": i < len(parts) - 1}
        for i, part in enumerate(parts)
    ]


async def measure(w: Workload, seconds: float, repeat: int) -> dict[str, Any]:
    app = load_app(w.app)
    template = make_scope(w)
    chunks = body_messages(w.body)

    async def one() -> Exchange:
        ex = Exchange(chunks)
        scope = dict(template)
        scope["headers"] = list(template["headers"])
        scope["state"] = {}
        await app(scope, ex.receive, ex.send)
        return ex

    # Check the answer, warm caches (imports, validators, route compilation).
    ex = await one()
    if not 200 <= ex.status < 300:
        raise SystemExit(f"appcost: {w.name} answered {ex.status}")
    if w.response_size is not None and ex.size != w.response_size:
        raise SystemExit(f"appcost: {w.name} sent {ex.size} bytes, expected {w.response_size}")
    for _ in range(200):
        await one()

    # Calibrate the batch size to ~seconds per batch.
    n = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(n):
            await one()
        elapsed = time.perf_counter() - t0
        if elapsed >= seconds / 4:
            n = max(1, int(n * seconds / elapsed))
            break
        n *= 4
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(n):
            await one()
        samples.append((time.perf_counter() - t0) / n * 1e6)
    return {"us": min(samples), "median_us": statistics.median(samples), "requests": n * repeat}


def new_loop() -> tuple[asyncio.AbstractEventLoop, str]:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop(), "asyncio"
    return uvloop.new_event_loop(), "uvloop"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("workloads", nargs="*", metavar="WORKLOAD", help=", ".join(BY_NAME))
    parser.add_argument("--seconds", type=float, default=0.3, help="duration of one timed batch")
    parser.add_argument("--repeat", type=int, default=5, help="timed batches per workload (best is reported)")
    args = parser.parse_args()
    loop, loop_name = new_loop()
    names: list[str] = args.workloads or [w.name for w in WORKLOADS]
    unknown = [n for n in names if n not in BY_NAME]
    if unknown:
        parser.error(f"unknown workload(s): {', '.join(unknown)}; known: {', '.join(BY_NAME)}")
    results: dict[str, Any] = {}
    try:
        for name in names:
            result = loop.run_until_complete(measure(BY_NAME[name], args.seconds, args.repeat))
            result["loop"] = loop_name
            results[name] = result
    finally:
        loop.close()
    json.dump(results, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
