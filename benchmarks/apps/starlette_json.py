"""Starlette: one route returning a small JSON document."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def hello(request: Request) -> JSONResponse:
    return JSONResponse({"message": "Hello, world!"})


app = Starlette(routes=[Route("/", hello)])
