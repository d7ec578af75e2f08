"""What permessage-deflate costs the server: CPU per WebSocket round trip with and without it, and
memory per socket that has compressed.

The echo app of ``ws_echo.py`` runs under turboasgi and uvicorn (same pinning: server on one core);
the client is the Python ``websockets`` library, which negotiates permessage-deflate unless told not
to. Throughput here is the client's, so the figure that matters is the server's CPU time per round
trip (from /proc), which does not depend on how fast the client is.

    python benchmarks/ws_deflate_cost.py                 # 8 connections x 2,000 messages per case
    python benchmarks/ws_deflate_cost.py --messages 500  # quicker
    python benchmarks/ws_deflate_cost.py --held 1000     # memory figure with 1,000 open sockets

Writes ``benchmarks/results/<date>-ws-deflate.md`` and prints the table.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import random
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import run  # noqa: E402
from run import log, running, tree_cpu_s, tree_rss_kib  # noqa: E402
from ws_echo import APP, PATH, discover, parse_args  # noqa: E402

SIZE = 16 * 1024


def json_like(size: int) -> str:
    """Deterministic JSON-ish text that compresses the way API payloads do (about 5-10x)."""
    rng = random.Random(7)
    words = ["alpha", "beta", "gamma", "delta", "status", "active", "user", "price", "2026-11-27"]
    parts: list[str] = []
    while sum(map(len, parts)) < size:
        parts.append(
            f'{{"id": {rng.randrange(10**6)}, "name": "{rng.choice(words)}-{rng.randrange(1000)}", '
            f'"tags": ["{rng.choice(words)}", "{rng.choice(words)}"], "score": {rng.random():.4f}}}, '
        )
    return "".join(parts)[:size]


PAYLOADS: dict[str, str | bytes] = {
    "JSON-like text, 16 KiB": json_like(SIZE),
    "random bytes, 16 KiB": random.Random(11).randbytes(SIZE),
}


async def load(port: int, payload: str | bytes, compression: str | None, conns: int, messages: int) -> int:
    from websockets.asyncio.client import connect

    async def one() -> int:
        url = f"ws://{run.HOST}:{port}{PATH}"
        async with connect(url, compression=compression, max_size=None) as ws:
            for _ in range(messages):
                await ws.send(payload)
                if await ws.recv() != payload:
                    raise RuntimeError("wrong echo")
            return messages

    return sum(await asyncio.gather(*(one() for _ in range(conns))))


async def hold_compressed(port: int, count: int, pid: int) -> float:
    """KiB of server memory per open WebSocket that has sent and received one compressed message
    (so both its compressor and its decompressor exist)."""
    from websockets.asyncio.client import connect

    before = tree_rss_kib(pid)
    message = PAYLOADS["JSON-like text, 16 KiB"]
    sockets = []
    try:
        for _ in range(count):
            ws = await connect(f"ws://{run.HOST}:{port}{PATH}", max_size=None, ping_interval=None)
            sockets.append(ws)
            await ws.send(message)
            if await ws.recv() != message:
                raise RuntimeError("wrong echo")
        await asyncio.sleep(2)
        return (tree_rss_kib(pid) - before) / count
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--messages", type=int, default=2000, help="per connection and case")
    parser.add_argument("--held", type=int, default=500, help="open compressed sockets for the memory figure")
    args = parser.parse_args()
    cfg = parse_args(["--servers", "turboasgi", "uvicorn", "--no-docs"])
    servers = discover(cfg)
    rcfg = cfg.run_config()
    os.sched_setaffinity(0, {cfg.client_cpu})
    rows: list[str] = []
    memory: list[str] = []
    with tempfile.TemporaryDirectory(prefix="turboasgi-ws-deflate-") as tmpdir:
        for name in ("turboasgi", "uvicorn"):
            server = servers[name]
            if not server.available:
                rows.append(f"| {name} | not available: {server.reason} | | | |")
                continue
            with running(server, APP, rcfg, Path(tmpdir)) as live:
                if isinstance(live, str):
                    rows.append(f"| {name} | {live.splitlines()[0]} | | | |")
                    continue
                for label, payload in PAYLOADS.items():
                    cells = []
                    for compression in ("deflate", None):
                        cpu0, t0 = tree_cpu_s(live.proc.pid), time.monotonic()
                        done = asyncio.run(
                            load(live.port, payload, compression, args.connections, args.messages)
                        )
                        cpu1, t1 = tree_cpu_s(live.proc.pid), time.monotonic()
                        cells.append((cpu1 - cpu0) / done * 1e6)
                        log(
                            f"{name:<10} {label:<24} {compression or 'none':<8} {cells[-1]:6.1f} µs/rt  "
                            f"({done / (t1 - t0):,.0f} rt/s, client-bound)"
                        )
                    rows.append(
                        f"| {name} | {label} | {cells[0]:.1f} | {cells[1]:.1f} | {cells[0] - cells[1]:+.1f} |"
                    )
                kib = asyncio.run(hold_compressed(live.port, args.held, live.proc.pid))
                log(f"{name:<10} {kib:.1f} KiB per open socket after one compressed echo")
                memory.append(f"| {name} | {kib:.1f} |")
    today = dt.date.today().isoformat()
    text = "\n".join(
        [
            f"# permessage-deflate cost — {today}",
            "",
            f"`python benchmarks/ws_deflate_cost.py --connections {args.connections} "
            f"--messages {args.messages}`: server CPU µs per echo round trip (server pinned to CPU "
            f"{cfg.server_cpu}, the `websockets` client on CPU {cfg.client_cpu}); uvicorn "
            f"`--ws {cfg.uvicorn_ws}`. Both compress at zlib level 6, memLevel 5; to the client's default "
            "offer uvicorn answers with 4 KiB windows (`server_max_window_bits=12; "
            "client_max_window_bits=12`), turboasgi keeps 32 KiB windows.",
            "",
            "| server | message | with deflate | without | deflate adds |",
            "|---|---|---:|---:|---:|",
            *rows,
            "",
            f"Server memory per open WebSocket after one compressed 16 KiB echo each ({args.held:,} held "
            "open, RSS of the server's process tree before and after):",
            "",
            "| server | KiB per socket |",
            "|---|---:|",
            *memory,
            "",
        ]
    )
    out = run.RESULTS_DIR / f"{today}-ws-deflate.md"
    out.write_text(text)
    print(text)
    log(f"wrote {out.relative_to(run.REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
