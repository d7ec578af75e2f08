"""The benchmark workloads: which app each one serves, and the request that wrk sends to it.

Shared by ``run.py`` (load runs) and ``appcost.py`` (the in-process cost of each app).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

APPS_DIR = Path(__file__).resolve().parent / "apps"

MIB = 1024 * 1024
POST_ITEM = json.dumps({"name": "widget", "price": 9.99, "quantity": 3, "tags": ["red", "small"]}).encode()


@dataclass(frozen=True)
class Workload:
    name: str
    app: str  # "module:attribute", importable with APPS_DIR on sys.path
    description: str
    method: str = "GET"
    path: str = "/"
    query: str = ""
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    ceiling: bool = False  # the bare hyper binary answers this workload too
    default: bool = True  # part of a run when --workloads is not given
    quick: bool = False  # part of a --quick run
    response_size: int | None = None  # expected body size, checked before the load run

    @property
    def target(self) -> str:
        return self.path + (f"?{self.query}" if self.query else "")

    def wrk_lua(self) -> str | None:
        """A wrk script for requests that plain ``wrk URL`` cannot send (a method or a body)."""
        if self.method == "GET" and not self.body and not self.headers:
            return None
        lines = [f'wrk.method = "{self.method}"']
        for name, value in self.headers:
            lines.append(f'wrk.headers["{name}"] = "{value}"')
        if self.body:
            if len(set(self.body)) == 1:
                # A 1 MiB body written out in the script would make a 1 MiB script: build it instead.
                lines.append(f"wrk.body = string.rep({json.dumps(chr(self.body[0]))}, {len(self.body)})")
            else:
                lines.append(f"wrk.body = {lua_string(self.body)}")
        return "\n".join(lines) + "\n"


def lua_string(data: bytes) -> str:
    return (
        '"' + "".join(c if c.isalnum() or c in " {}[]:,.-_" else f"\\{ord(c)}" for c in data.decode()) + '"'
    )


WORKLOADS: tuple[Workload, ...] = (
    Workload(
        name="hello",
        app="hello:app",
        description="raw ASGI hello world (13-byte text body)",
        ceiling=True,
        quick=True,
        response_size=13,
    ),
    Workload(
        name="hello-close",
        app="hello:app",
        description="raw ASGI hello world, one request per connection (`Connection: close`): with --tls, "
        "the rate of new handshakes",
        headers=(("Connection", "close"),),
        ceiling=True,
        default=False,
        response_size=13,
    ),
    Workload(
        name="starlette-json",
        app="starlette_json:app",
        description="Starlette route returning a small JSON document",
        quick=True,
    ),
    Workload(
        name="fastapi-get",
        app="fastapi_params:app",
        description="FastAPI GET with an int path parameter and a str query parameter",
        path="/items/42",
        query="q=hello",
    ),
    Workload(
        name="fastapi-post",
        app="fastapi_post:app",
        description="FastAPI POST with a pydantic-validated JSON body (~80 bytes)",
        method="POST",
        path="/items",
        body=POST_ITEM,
        headers=(("Content-Type", "application/json"),),
    ),
    Workload(
        name="stream-1mib",
        app="stream:app",
        description="raw ASGI streamed response, 1 MiB in 64 KiB chunks",
        response_size=MIB,
    ),
    Workload(
        name="file-1mib",
        app="file_response:app",
        description="Starlette FileResponse of a 1 MiB file (http.response.pathsend where advertised)",
        response_size=MIB,
        default=False,
    ),
    Workload(
        name="upload-1mib",
        app="upload:app",
        description="raw ASGI app reading a 1 MiB request body to the end",
        method="POST",
        body=b"x" * MIB,
        headers=(("Content-Type", "application/octet-stream"),),
    ),
    Workload(
        name="fastapi-cpu",
        app="fastapi_cpu:app",
        description="FastAPI async endpoint burning ~1 ms of CPU in Python (for scaling)",
        path="/cpu",
    ),
)

BY_NAME = {w.name: w for w in WORKLOADS}
