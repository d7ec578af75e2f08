"""Async views for the compatibility suite's request set. Django has no lifespan hooks (its ASGI
handler refuses the lifespan scope), so /startup answers "no" under every server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse

from tests.frameworks.apps.hooks import COOKIE, CUSTOM_HEADER, STREAM_CHUNKS, started


async def hello(request: HttpRequest) -> HttpResponse:
    return HttpResponse("hello", content_type="text/plain")


async def as_json(request: HttpRequest) -> JsonResponse:
    return JsonResponse(dict(request.GET.items()))


async def echo(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return HttpResponse(status=405)
    return HttpResponse(request.body, content_type="application/octet-stream")


async def stream(request: HttpRequest) -> StreamingHttpResponse:
    async def chunks() -> AsyncIterator[bytes]:
        for chunk in STREAM_CHUNKS:
            yield chunk
            await asyncio.sleep(0)

    return StreamingHttpResponse(chunks(), content_type="text/plain")


async def headers(request: HttpRequest) -> HttpResponse:
    response = HttpResponse("headers", content_type="text/plain")
    response[CUSTOM_HEADER[0]] = CUSTOM_HEADER[1]
    response.set_cookie(*COOKIE)
    return response


async def startup_ran(request: HttpRequest) -> HttpResponse:
    return HttpResponse(started(), content_type="text/plain")
