"""Memory per idle keep-alive connection, and what a server gives back after floods of them close.

    python benchmarks/conn_memory.py [--servers turboasgi uvicorn granian] [--conns 10000] [--floods 3]

For each server (pinned to ``--server-cpu`` like ``run.py``'s, raw hello app, idle connections allowed
to stay): read the RSS of its process tree 1 s after start, then ``--floods`` times: open ``--conns``
connections (200 at a time, each sending one keep-alive ``GET /`` and reading the answer), read the RSS
2 s later, close them all from the client, read the RSS ``run.CLOSE_SETTLE_S`` later. Prints a Markdown
table: per flood the KiB per connection and the RSS kept over the start. Servers, pinning, the flood
and the RSS reader are ``run.py``'s; ``--baseline``/``--turboasgi-path`` work as there.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run  # noqa: E402  (the HTTP harness: servers, spawning, pinning, the flood, RSS)
from workloads import BY_NAME  # noqa: E402


@dataclass
class Flood:
    loaded_kib: int
    closed_kib: int


@dataclass
class ServerMemory:
    start_kib: int = 0
    floods: list[Flood] = field(default_factory=list)
    error: str = ""


def measure(cfg: run.Config, server: run.Server, floods: int, tmp: Path) -> ServerMemory:
    result = ServerMemory()
    with run.running(server, BY_NAME["hello"], cfg, tmp, idle_conns=cfg.memory_conns) as live:
        if isinstance(live, str):
            result.error = live
            return result
        time.sleep(1.0)
        result.start_kib = run.tree_rss_kib(live.proc.pid)
        for _ in range(floods):
            loop = asyncio.new_event_loop()
            conns: list[run.Conn] = []
            try:
                conns, errors = loop.run_until_complete(
                    run._open_idle_conns(live.port, cfg.memory_conns, 200)
                )
                if errors:
                    result.error = f"{len(errors)} connections failed (first: {errors[0]})"
                    return result
                loop.run_until_complete(asyncio.sleep(2.0))
                loaded = run.tree_rss_kib(live.proc.pid)
            finally:
                for _, writer in conns:
                    writer.transport.abort()
                loop.run_until_complete(asyncio.sleep(0))
                loop.close()
            time.sleep(run.CLOSE_SETTLE_S)
            result.floods.append(Flood(loaded, run.tree_rss_kib(live.proc.pid)))
            if live.proc.poll() is not None:
                result.error = f"server exited with {live.proc.returncode}"
                return result
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="benchmarks/conn_memory.py", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument("--servers", nargs="+", default=["turboasgi"], choices=run.PEERS)
    parser.add_argument("--conns", type=int, default=10_000, help="connections per flood (default 10000)")
    parser.add_argument("--floods", type=int, default=3, help="floods per server (default 3)")
    parser.add_argument("--server-cpu", type=int, default=0)
    parser.add_argument("--client-cpu", type=int, default=1)
    parser.add_argument("--baseline", metavar="DIR", help="a build directory served as turboasgi-base")
    parser.add_argument("--turboasgi-path", metavar="DIR", help="a build directory served as turboasgi")
    args = parser.parse_args(argv)
    builds = {}
    if args.turboasgi_path:
        builds["turboasgi"] = str(Path(args.turboasgi_path).resolve())
    if args.baseline:
        builds["turboasgi-base"] = str(Path(args.baseline).resolve())
        if "turboasgi-base" not in args.servers:
            args.servers.append("turboasgi-base")
    nofile = run.raise_nofile(args.conns + 1024)
    conns = min(args.conns, nofile - 200)
    cfg = run.Config(
        duration=0,
        rounds=1,
        warmup=0,
        concurrency=[],
        workloads=["hello"],
        servers=args.servers,
        server_cpu=args.server_cpu,
        client_cpu=args.client_cpu,
        memory_conns=conns,
        start_timeout=30.0,
        wrk_timeout=5.0,
        app_cost=False,
        docs=False,
        tag="",
        builds=builds,
    )
    atexit.register(run._kill_all_groups)
    os.sched_setaffinity(0, {cfg.client_cpu})  # the flood client stays off the server's core
    servers = run.discover_servers(cfg.servers, builds)
    print(
        f"Commit {run.git_revision()}; {conns:,} idle keep-alive connections per flood, "
        f"RSS read 2 s after a flood opened and {run.CLOSE_SETTLE_S:g} s after it closed.\n"
    )
    header = "| server | build | start MiB | " + " | ".join(
        f"flood {i + 1}: KiB/conn, kept MiB" for i in range(args.floods)
    )
    print(header + " |")
    print("|---|---|---:|" + "---:|" * args.floods)
    failed = False
    with tempfile.TemporaryDirectory(prefix="turboasgi-connmem-") as tmpdir:
        for name in cfg.servers:
            server = servers[name]
            if not server.available:
                print(f"| {name} | {server.reason} |")
                continue
            mem = measure(cfg, server, args.floods, Path(tmpdir))
            cells = [
                f"{(f.loaded_kib - mem.start_kib) / conns:.1f}, {(f.closed_kib - mem.start_kib) / 1024:+.1f}"
                for f in mem.floods
            ]
            line = f"| {name} | {server.build or server.version} | {mem.start_kib / 1024:.1f} | "
            line += " | ".join(cells)
            if mem.error:
                failed = True
                line += f" | **invalid**: {mem.error.splitlines()[0]}"
            print(line + " |", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
