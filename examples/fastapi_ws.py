"""FastAPI WebSockets on turboasgi: ``turboasgi examples.fastapi_ws:app``.

The same routes as ``examples/starlette_ws.py``, written the FastAPI way (path, query and header
parameters injected, ``WebSocketException`` to refuse a handshake):

- ``/ws/echo``: echo of text and bytes; subprotocols ``echo.v2``/``echo.v1``; the text ``bye`` makes
  the server close with code 4000, reason ``"bye requested"``.
- ``/ws/room/{room}?nick=NAME``: chat room broadcasting ``"NAME: message"`` to all members.
- ``/ws/info``: one JSON message describing the connection, then close 1000 ``"done"``.
- ``/ws/private?token=secret``: without the token the handshake is refused (HTTP 403).
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import FastAPI, Header, Query, WebSocket, WebSocketDisconnect, WebSocketException, status

ECHO_SUBPROTOCOLS = ("echo.v2", "echo.v1")

app = FastAPI(title="turboasgi WebSocket example")


class Room:
    """The members of one chat room (all on one event loop: no lock needed)."""

    def __init__(self) -> None:
        self.members: dict[WebSocket, str] = {}

    async def broadcast(self, text: str) -> None:
        members = list(self.members)
        results = await asyncio.gather(*(ws.send_text(text) for ws in members), return_exceptions=True)
        for ws, result in zip(members, results, strict=True):
            if isinstance(result, BaseException):
                self.members.pop(ws, None)


ROOMS: dict[str, Room] = {}


@app.get("/")
async def homepage() -> dict[str, list[str]]:
    return {"websockets": ["/ws/echo", "/ws/room/{room}", "/ws/info", "/ws/private"]}


@app.websocket("/ws/echo")
async def echo(websocket: WebSocket) -> None:
    offered = websocket.scope.get("subprotocols", [])
    subprotocol = next((p for p in offered if p in ECHO_SUBPROTOCOLS), None)
    await websocket.accept(subprotocol=subprotocol)
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text")
        if text == "bye":
            await websocket.close(code=4000, reason="bye requested")
            return
        if text is not None:
            await websocket.send_text(text)
        else:
            await websocket.send_bytes(message.get("bytes") or b"")


@app.websocket("/ws/room/{room}")
async def chat_room(
    websocket: WebSocket,
    room: str,
    nick: Annotated[str | None, Query()] = None,
    x_nick: Annotated[str | None, Header()] = None,
) -> None:
    name = nick or x_nick or "anonymous"
    await websocket.accept()
    members = ROOMS.setdefault(room, Room())
    members.members[websocket] = name
    await members.broadcast(f"* {name} joined {room} ({len(members.members)} here)")
    try:
        while True:
            text = await websocket.receive_text()
            await members.broadcast(f"{name}: {text}")
    except WebSocketDisconnect:
        pass
    finally:
        members.members.pop(websocket, None)
        if members.members:
            await members.broadcast(f"* {name} left")
        else:
            ROOMS.pop(room, None)


@app.websocket("/ws/info")
async def info(
    websocket: WebSocket,
    user_agent: Annotated[str | None, Header()] = None,
    x_token: Annotated[str | None, Header()] = None,
) -> None:
    await websocket.accept()
    await websocket.send_json(
        {
            "path": websocket.url.path,
            "scheme": websocket.url.scheme,
            "query": dict(websocket.query_params),
            "user_agent": user_agent,
            "x_token": x_token,
            "subprotocols": websocket.scope.get("subprotocols", []),
            "client": list(websocket.client) if websocket.client else None,
        }
    )
    await websocket.close(code=1000, reason="done")


@app.websocket("/ws/private")
async def private(websocket: WebSocket, token: Annotated[str | None, Query()] = None) -> None:
    if token != "secret":
        # raised before accept: the server refuses the handshake with HTTP 403
        raise WebSocketException(code=status.WS_1008_POLICY_VIOLATION, reason="token required")
    await websocket.accept()
    await websocket.send_text("welcome")
    await websocket.close()
