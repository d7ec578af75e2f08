"""An app whose lifespan handler raises on ``lifespan.startup`` but serves HTTP normally.

With ``--lifespan on`` the server must exit 3; with ``auto`` it logs that lifespan is unsupported and serves.
"""

from __future__ import annotations

from typing import Any


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await receive()
        raise RuntimeError("lifespan boom")
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"7")]})
    await send({"type": "http.response.body", "body": b"serving"})
