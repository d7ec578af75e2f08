"""Free-threaded correctness under load: 4 event-loop threads, 200 concurrent connections.

The connections mix keep-alive GETs, chunked streaming responses, uploads (checked by SHA-256) and
clients that disconnect mid-request; every response must name the request it answers (an id echoed
back), and none may fail. On a free-threaded build the server must still run with the GIL disabled.
Runs for ``$TURBOASGI_STRESS_SECONDS`` seconds (default 10; 30 for the long version).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import sysconfig
from dataclasses import dataclass, field

import pytest

from tests.server_process import turboasgi_server

APP = "tests.apps.workers_app:app"
CONNECTIONS = 200
SECONDS = float(os.environ.get("TURBOASGI_STRESS_SECONDS", "10"))
READ_TIMEOUT = 20.0


@dataclass
class Tally:
    ok: int = 0
    disconnects: int = 0
    failures: list[str] = field(default_factory=list)
    kinds: dict[str, int] = field(default_factory=dict)

    def fail(self, message: str) -> None:
        if len(self.failures) < 50:
            self.failures.append(message)
        else:
            self.failures.append("...")


class Response:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body


async def read_response(reader: asyncio.StreamReader) -> Response:
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").rstrip("\r\n").split("\r\n")
    status = int(status_line.split(" ", 2)[1])
    headers: dict[str, str] = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        parts: list[bytes] = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                break
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
        body = b"".join(parts)
    else:
        body = await reader.read()
    return Response(status, headers, body)


def request(method: str, target: str, body: bytes = b"", extra: str = "") -> bytes:
    head = f"{method} {target} HTTP/1.1\r\nHost: stress\r\n{extra}"
    if (body or method == "POST") and "Content-Length" not in extra:
        head += f"Content-Length: {len(body)}\r\n"
    return (head + "\r\n").encode() + body


async def one_client(number: int, host: str, port: int, deadline: float, tally: Tally) -> None:
    rng = random.Random(number)
    loop = asyncio.get_running_loop()
    sequence = 0
    while loop.time() < deadline:
        try:
            reader, writer = await asyncio.open_connection(host, port)
        except OSError as exc:
            tally.fail(f"client {number}: connect failed: {exc!r}")
            await asyncio.sleep(0.05)
            continue
        try:
            # A keep-alive connection carries a few requests, then closes or is abandoned.
            for _ in range(rng.randint(1, 8)):
                if loop.time() >= deadline:
                    break
                sequence += 1
                ident = f"c{number}-{sequence}"
                kind = rng.choices(["get", "stream", "upload", "disconnect"], [4, 2, 2, 1])[0]
                tally.kinds[kind] = tally.kinds.get(kind, 0) + 1
                if kind == "disconnect":
                    if rng.random() < 0.5:
                        writer.write(request("GET", f"/slow?id={ident}&ms=50"))
                    else:  # an upload cut short
                        head = request("POST", f"/echo?id={ident}", extra="Content-Length: 100000\r\n")
                        writer.write(head + b"x" * 1000)
                    await writer.drain()
                    tally.disconnects += 1
                    break
                if kind == "get":
                    writer.write(request("GET", f"/echo?id={ident}"))
                    expected_body = b""
                elif kind == "upload":
                    expected_body = rng.randbytes(rng.choice([1, 100, 5000, 70000]))
                    writer.write(request("POST", f"/echo?id={ident}", expected_body))
                else:
                    count = rng.randint(1, 40)
                    writer.write(request("GET", f"/stream?id={ident}&n={count}"))
                await writer.drain()
                response = await asyncio.wait_for(read_response(reader), READ_TIMEOUT)
                if response.status != 200:
                    tally.fail(f"{ident} ({kind}): status {response.status}")
                    break
                if kind == "stream":
                    expected = "".join(f"{ident}:{i}\n" for i in range(count)).encode()
                    if response.body != expected:
                        tally.fail(f"{ident} (stream): got {response.body[:80]!r}")
                        break
                else:
                    data = json.loads(response.body)
                    digest = hashlib.sha256(expected_body).hexdigest()
                    if data["id"] != ident or data["size"] != len(expected_body) or data["sha256"] != digest:
                        tally.fail(f"{ident} ({kind}): mis-routed or corrupted: {data}")
                        break
                tally.ok += 1
        except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError) as exc:
            tally.fail(f"client {number} request {sequence}: {exc!r}")
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except OSError:
                pass


async def get_json(host: str, port: int, target: str) -> dict[str, object]:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(request("GET", target, extra="Connection: close\r\n"))
        await writer.drain()
        response = await asyncio.wait_for(read_response(reader), READ_TIMEOUT)
        assert response.status == 200
        result: dict[str, object] = json.loads(response.body)
        return result
    finally:
        writer.close()


async def stress(host: str, port: int) -> tuple[Tally, set[object], list[object]]:
    tally = Tally()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SECONDS
    await asyncio.gather(*(one_client(n, host, port, deadline, tally) for n in range(CONNECTIONS)))
    probes = [await get_json(host, port, "/gil") for _ in range(12)]
    return tally, {p["thread"] for p in probes}, [p["gil"] for p in probes]


@pytest.mark.timeout(SECONDS + 60)
def test_four_loops_200_connections() -> None:
    server = turboasgi_server(APP, "--threads", "4", "--no-access-log", "--timeout-keep-alive", "30")
    try:
        server.start()
        host, port = server.address
        tally, threads, gil = asyncio.run(stress(host, port))
        print(
            f"{tally.ok} responses checked, {tally.disconnects} disconnects, {tally.kinds}, loops {threads}"
        )
        assert tally.failures == [], tally.failures[:10]
        assert tally.ok > 1000, tally
        assert all(tally.kinds.get(k, 0) > 0 for k in ("get", "stream", "upload", "disconnect")), tally.kinds
        assert len(threads) >= 2, threads  # connections really are spread over the loops
        if sysconfig.get_config_var("Py_GIL_DISABLED"):
            assert gil == [False] * len(gil), "the GIL was re-enabled in the server"
        assert server.running
        assert server.stop() == 0, server.output
        assert "Traceback" not in server.stderr, server.stderr[-3000:]
    finally:
        server.close()
