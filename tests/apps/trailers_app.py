"""`http.response.trailers` (issue 12 item 6): /extensions lists the scope's extensions; /send?id=..
answers with `trailers: True`, a body in one or several messages (``parts``), a declared length if
``length=1``, and trailers in two messages; ``misuse`` sends a wrong sequence. What send() raised is
reported on /raised?id=.."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

Scope = dict[str, Any]

# send() errors of /send, by the id the test gave ("" when nothing raised)
RAISED: dict[str, str] = {}

START_TRAILERS = {
    "type": "http.response.trailers",
    "headers": [(b"x-checksum", b"abc")],
    "more_trailers": True,
}
LAST_TRAILERS = {"type": "http.response.trailers", "headers": [(b"x-count", b"2")], "more_trailers": False}


async def respond_json(send: Any, value: object) -> None:
    body = json.dumps(value).encode()
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]}
    )
    await send({"type": "http.response.body", "body": body})


async def answer(query: dict[str, str], send: Any) -> None:
    parts = [b"part-%d;" % i for i in range(int(query.get("parts", "1")))]
    headers = [(b"trailer", b"x-checksum, x-count")]
    if query.get("length") == "1":
        headers.append((b"content-length", str(sum(map(len, parts))).encode()))
    misuse = query.get("misuse", "")
    await send(
        {"type": "http.response.start", "status": 200, "headers": headers, "trailers": misuse != "no-flag"}
    )
    for i, part in enumerate(parts):
        await send({"type": "http.response.body", "body": part, "more_body": i < len(parts) - 1})
    if misuse == "body-after-body":
        await send({"type": "http.response.body", "body": b"late"})
    await send(START_TRAILERS)
    await send(LAST_TRAILERS)


async def app(scope: Scope, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    query = dict(parse_qsl(scope["query_string"].decode()))
    if scope["path"] == "/extensions":
        await respond_json(send, sorted(scope.get("extensions") or {}))
    elif scope["path"] == "/raised":
        await respond_json(send, RAISED.get(query["id"]))
    elif scope["path"] == "/send":
        try:
            await answer(query, send)
        except Exception as exc:
            RAISED[query["id"]] = f"{type(exc).__name__}: {exc}"
            raise
        RAISED[query["id"]] = ""
