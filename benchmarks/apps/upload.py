"""Raw ASGI upload: reads the whole request body (1 MiB in the benchmark) and answers with the
number of bytes received."""

from __future__ import annotations

from _asgi import Receive, Scope, Send, lifespan


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "http":
        received = 0
        more_body = True
        while more_body:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            received += len(message.get("body", b""))
            more_body = message.get("more_body", False)
        body = str(received).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body, "more_body": False})
    elif scope["type"] == "lifespan":
        await lifespan(receive, send)
