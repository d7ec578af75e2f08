"""Raw ASGI WebSocket echo: accepts every WebSocket and sends each message back with its type.

A text message comes back as text, a binary one as binary, unchanged. Plain HTTP requests get a
200 ``text/plain`` ``ok`` so that readiness checks work. Used by ``benchmarks/ws_echo.py``.
"""

from __future__ import annotations

from _asgi import Receive, Scope, Send, lifespan

BODY = b"ok"
START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(BODY)).encode())],
}
RESPONSE_BODY = {"type": "http.response.body", "body": BODY, "more_body": False}
ACCEPT = {"type": "websocket.accept"}


async def echo(receive: Receive, send: Send) -> None:
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    await send(ACCEPT)
    while True:
        message = await receive()
        if message["type"] != "websocket.receive":
            return  # websocket.disconnect
        text = message.get("text")
        if text is not None:
            await send({"type": "websocket.send", "text": text})
        else:
            await send({"type": "websocket.send", "bytes": message.get("bytes") or b""})


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "websocket":
        await echo(receive, send)
    elif scope["type"] == "http":
        await send(START)
        await send(RESPONSE_BODY)
    elif scope["type"] == "lifespan":
        await lifespan(receive, send)
