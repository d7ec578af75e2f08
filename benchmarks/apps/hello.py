"""Raw ASGI hello world: the smallest possible app, so the server's own cost dominates.

Answers exactly what the ``ceiling`` hyper binary answers: 200, ``text/plain``, ``Hello, world!``.
"""

from __future__ import annotations

from _asgi import Receive, Scope, Send, lifespan

BODY = b"Hello, world!"
START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(BODY)).encode())],
}
RESPONSE_BODY = {"type": "http.response.body", "body": BODY, "more_body": False}


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "http":
        await send(START)
        await send(RESPONSE_BODY)
    elif scope["type"] == "lifespan":
        await lifespan(receive, send)
