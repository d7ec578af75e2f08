"""Starlette's FileResponse of a 1 MiB file. Where the scope advertises ``http.response.pathsend``
(turboasgi) Starlette hands the path to the server; elsewhere (uvicorn, granian) it reads the file in
Python, 64 KiB per ``http.response.body``."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from _asgi import Receive, Scope, Send, lifespan
from starlette.responses import FileResponse

SIZE = 1024 * 1024
FILE = Path(tempfile.gettempdir()) / f"turboasgi-bench-file-{SIZE}.bin"

if not FILE.is_file() or FILE.stat().st_size != SIZE:
    # written once per machine; a rename so that a server starting meanwhile never sees half a file
    partial = FILE.with_name(f"{FILE.name}.{os.getpid()}")
    partial.write_bytes(bytes(range(256)) * (SIZE // 256))
    os.replace(partial, FILE)


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "http":
        await FileResponse(FILE, media_type="application/octet-stream")(scope, receive, send)
    elif scope["type"] == "lifespan":
        await lifespan(receive, send)
