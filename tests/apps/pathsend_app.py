"""`http.response.pathsend` (issue 12 item 6): Starlette's FileResponse, which uses the extension on
its own when the scope advertises it, and a raw route that sends any message the test names, reporting
what send() raised on /raised."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

Scope = dict[str, Any]

# send() errors of the raw route, by the id the test gave
RAISED: dict[str, dict[str, str]] = {}


async def file_response(request: Request) -> Response:
    return FileResponse(request.query_params["path"], media_type="application/octet-stream")


async def extensions(request: Request) -> Response:
    return JSONResponse(sorted(request.scope.get("extensions") or {}))


async def raised(request: Request) -> Response:
    return JSONResponse(RAISED.get(request.query_params["id"]))


starlette_app = Starlette(
    routes=[
        Route("/file", file_response, methods=["GET", "HEAD"]),
        Route("/extensions", extensions),
        Route("/raised", raised),
    ]
)


async def raw(scope: Scope, receive: Any, send: Any) -> None:
    """/raw?id=..&path=..[&length=N][&body=first]: start, then pathsend (or a body first)."""
    query = dict(parse_qsl(scope["query_string"].decode()))
    headers = [(b"content-type", b"application/octet-stream")]
    if "length" in query:
        headers.append((b"content-length", query["length"].encode()))
    try:
        await send(
            {"type": "http.response.start", "status": int(query.get("status", "200")), "headers": headers}
        )
        if query.get("body") == "first":
            await send({"type": "http.response.body", "body": b"x", "more_body": True})
        await send({"type": "http.response.pathsend", "path": query["path"]})
    except Exception as exc:
        RAISED[query["id"]] = {"type": type(exc).__name__, "message": str(exc)}
        raise
    RAISED[query["id"]] = {"type": "", "message": ""}


async def app(scope: Scope, receive: Any, send: Any) -> None:
    if scope["type"] == "http" and scope["path"] == "/raw":
        await raw(scope, receive, send)
    else:
        await starlette_app(scope, receive, send)
