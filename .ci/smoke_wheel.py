"""Smoke test of an installed turboasgi wheel (run by .ci/smoke-wheel.sh from a directory holding
copies of examples/fastapi_app.py and examples/fastapi_ws.py): serve each with ``python -m turboasgi``,
answer HTTP requests and echo WebSocket messages. Standard library, httpx and websockets only."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import turboasgi
from websockets.sync.client import connect

RUNNING = re.compile(r"Turboasgi running on http://127\.0\.0\.1:(\d+)")


@contextmanager
def serving(app: str) -> Iterator[str]:
    with tempfile.TemporaryFile() as log:
        command = [sys.executable, "-m", "turboasgi", app, "--port", "0", "--app-dir", os.getcwd()]
        proc = subprocess.Popen(command, stdout=log, stderr=log)
        try:
            deadline = time.monotonic() + 30
            while not (found := RUNNING.search(read(log))):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"{app} did not start:\n{read(log)}")
                time.sleep(0.05)
            yield f"127.0.0.1:{found[1]}"
        finally:
            proc.send_signal(signal.SIGINT)
            code = proc.wait(15)
            if code != 0:
                raise SystemExit(f"{app} exited with {code}:\n{read(log)}")


def read(log: object) -> str:
    log.seek(0)  # type: ignore[attr-defined]
    return log.read().decode(errors="replace")  # type: ignore[attr-defined]


def main() -> None:
    location = os.path.dirname(turboasgi.__file__)
    assert sys.prefix in location, f"turboasgi imported from {location}, not from the venv"
    with serving("fastapi_app:app") as address, httpx.Client(base_url=f"http://{address}") as http:
        assert http.get("/").json() == {"message": "Hello, world!"}
        created = http.post("/items/7", json={"name": "wheel", "price": 1.5})
        assert created.status_code == 201, created.text
        assert http.get("/items/7").json()["item"]["name"] == "wheel"
        assert http.post("/items/8", json={"price": "free"}).status_code == 422
        assert http.get("/state").json()["started"], "the lifespan startup did not run"
        assert http.get("/stream").text, "empty streamed response"
    with serving("fastapi_ws:app") as address, connect(f"ws://{address}/ws/echo") as ws:
        ws.send("hello from the wheel")
        assert ws.recv(timeout=10) == "hello from the wheel"
        ws.send(b"\x00\x01")
        assert ws.recv(timeout=10) == b"\x00\x01"
    print(f"smoke test passed: turboasgi {turboasgi.__version__} from {location}")


if __name__ == "__main__":
    main()
