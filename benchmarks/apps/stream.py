"""Raw ASGI streamed response: 1 MiB sent as 16 chunks of 64 KiB (``more_body=True``), no
content-length, so the server must use chunked transfer encoding and honour backpressure."""

from __future__ import annotations

from _asgi import Receive, Scope, Send, lifespan

CHUNK = b"x" * (64 * 1024)
CHUNKS = 16  # 16 x 64 KiB = 1 MiB
START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"application/octet-stream")],
}


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "http":
        await send(START)
        for _ in range(CHUNKS):
            await send({"type": "http.response.body", "body": CHUNK, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    elif scope["type"] == "lifespan":
        await lifespan(receive, send)
