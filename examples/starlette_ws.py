"""Starlette WebSockets on turboasgi: ``turboasgi examples.starlette_ws:app``.

Routes (use any WebSocket client, e.g. ``python -m websockets ws://127.0.0.1:8000/ws/echo``):

- ``/ws/echo``: echoes text and bytes. Offers the subprotocols ``echo.v2`` and ``echo.v1`` (the
  first one the client asks for that the server knows wins). Sending the text ``bye`` makes the
  server close the socket with code 4000 and the reason ``"bye requested"``.
- ``/ws/room/{room}?nick=NAME``: a chat room; every message is broadcast to all members as
  ``"NAME: message"``; joins and leaves are announced. The nick may also come from an ``x-nick``
  header.
- ``/ws/info?...``: sends one JSON message describing the connection (path, query parameters, a few
  headers, requested subprotocols, client scheme), then closes with code 1000 and reason ``"done"``.
- ``/ws/private?token=...``: refuses the handshake (HTTP 403) without ``token=secret``.
"""

from __future__ import annotations

import asyncio

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

ECHO_SUBPROTOCOLS = ("echo.v2", "echo.v1")

# room name -> connected members (one event loop: no lock needed)
ROOMS: dict[str, dict[WebSocket, str]] = {}


def choose_subprotocol(websocket: WebSocket, supported: tuple[str, ...]) -> str | None:
    """The first subprotocol the client offers that the server supports (the client's preference)."""
    for offered in websocket.scope.get("subprotocols", []):
        if offered in supported:
            return offered
    return None


async def homepage(request: Request) -> Response:
    return PlainTextResponse("WebSocket examples: /ws/echo, /ws/room/{room}, /ws/info, /ws/private\n")


async def echo(websocket: WebSocket) -> None:
    await websocket.accept(subprotocol=choose_subprotocol(websocket, ECHO_SUBPROTOCOLS))
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


async def broadcast(room: str, text: str) -> None:
    members = ROOMS.get(room, {})
    snapshot = list(members)
    results = await asyncio.gather(*(ws.send_text(text) for ws in snapshot), return_exceptions=True)
    for ws, result in zip(snapshot, results, strict=True):
        if isinstance(result, BaseException):
            members.pop(ws, None)  # gone: it leaves with its own disconnect


async def chat_room(websocket: WebSocket) -> None:
    room = websocket.path_params["room"]
    nick = websocket.query_params.get("nick") or websocket.headers.get("x-nick") or "anonymous"
    await websocket.accept()
    members = ROOMS.setdefault(room, {})
    members[websocket] = nick
    await broadcast(room, f"* {nick} joined {room} ({len(members)} here)")
    try:
        while True:
            text = await websocket.receive_text()
            await broadcast(room, f"{nick}: {text}")
    except WebSocketDisconnect:
        pass
    finally:
        members.pop(websocket, None)
        if members:
            await broadcast(room, f"* {nick} left")
        else:
            ROOMS.pop(room, None)


async def info(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_json(
        {
            "path": websocket.url.path,
            "scheme": websocket.url.scheme,
            "query": dict(websocket.query_params),
            "user_agent": websocket.headers.get("user-agent"),
            "x_token": websocket.headers.get("x-token"),
            "subprotocols": websocket.scope.get("subprotocols", []),
            "client": list(websocket.client) if websocket.client else None,
        }
    )
    await websocket.close(code=1000, reason="done")


async def private(websocket: WebSocket) -> None:
    if websocket.query_params.get("token") != "secret":
        await websocket.close(code=1008)  # before accept: the server answers HTTP 403
        return
    await websocket.accept()
    await websocket.send_text("welcome")
    await websocket.close()


app = Starlette(
    routes=[
        Route("/", homepage),
        WebSocketRoute("/ws/echo", echo),
        WebSocketRoute("/ws/room/{room}", chat_room),
        WebSocketRoute("/ws/info", info),
        WebSocketRoute("/ws/private", private),
    ]
)
