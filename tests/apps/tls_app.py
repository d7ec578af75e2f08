"""Reports what a TLS connection looks like to the app: the scheme and the ``tls`` scope extension.

HTTP: any path answers ``{"scheme": ..., "tls": ...}`` as JSON (``/mutate`` first changes its own
``tls`` dict). WebSocket: accepts, sends the same JSON, then echoes text messages until the client
closes.
"""

from __future__ import annotations

import json
from typing import Any

Scope = dict[str, Any]


def describe(scope: Scope) -> bytes:
    return json.dumps({"scheme": scope["scheme"], "tls": (scope.get("extensions") or {}).get("tls")}).encode()


async def app(scope: Scope, receive: Any, send: Any) -> None:
    if scope["type"] == "http":
        if scope["path"] == "/mutate":  # an app changing its scope must not change the next request's
            scope["extensions"]["tls"]["tls_version"] = 0
            scope["extensions"]["tls"]["client_cert_chain"] = None
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": describe(scope)})
    elif scope["type"] == "websocket":
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": describe(scope).decode()})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            await send({"type": "websocket.send", "text": message.get("text") or ""})
    elif scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
