"""FastAPI: an ``async def`` endpoint that burns about 1 ms of CPU in Python per request.

The work is a fixed number of loop iterations (not a time budget), so a slower interpreter does the
same work more slowly: ~1 ms with CPython 3.11 on the reference machine. Set ``BENCH_CPU_ITERATIONS``
to change it. The server's own per-request cost is negligible next to it, which makes it the workload
for scaling (processes, loop threads on free-threaded builds).
"""

from __future__ import annotations

import os

from fastapi import FastAPI

ITERATIONS = int(os.environ.get("BENCH_CPU_ITERATIONS", "16000"))

app = FastAPI()


def burn(iterations: int) -> int:
    acc = 0
    for i in range(iterations):
        acc = (acc + i * i) % 1000003
    return acc


@app.get("/cpu")
async def cpu() -> dict[str, int]:
    return {"result": burn(ITERATIONS)}
