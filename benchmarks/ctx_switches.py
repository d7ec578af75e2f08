"""Context switches and CPU time per request under wrk load, per server and workload.

    python benchmarks/ctx_switches.py [--servers turboasgi granian] [--workloads hello starlette-json]

Servers start and are pinned like ``run.py``'s (``--turboasgi-path``/``--baseline`` as there); after a
1 s warm-up, ``wrk -t1 -c64`` runs ``--duration`` seconds while the voluntary and involuntary context
switches of every thread of the server (``/proc/PID/task/TID/status``) and its user and system CPU time
are read before and after. Counts per request do not depend on how fast the shared machine is today:
they show whether the tokio and loop threads cross more often for one app than for another.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run  # noqa: E402  (the HTTP harness: servers, pinning, wrk, CPU accounting)
from workloads import BY_NAME  # noqa: E402


def switches(pid: int) -> tuple[int, int]:
    """(voluntary, involuntary) context switches so far, over every thread of the process tree."""
    voluntary = involuntary = 0
    for proc in run.tree_pids(pid):
        tids: list[str] = []
        with contextlib.suppress(OSError):
            tids = os.listdir(f"/proc/{proc}/task")
        for tid in tids:
            with contextlib.suppress(OSError), open(f"/proc/{proc}/task/{tid}/status") as status:
                for line in status:
                    if line.startswith("voluntary_ctxt_switches"):
                        voluntary += int(line.split()[1])
                    elif line.startswith("nonvoluntary_ctxt_switches"):
                        involuntary += int(line.split()[1])
    return voluntary, involuntary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="benchmarks/ctx_switches.py", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument("--servers", nargs="+", default=["turboasgi", "granian"], choices=run.PEERS)
    parser.add_argument("--workloads", nargs="+", default=["hello", "starlette-json"], choices=list(BY_NAME))
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--turboasgi-path", metavar="DIR")
    parser.add_argument("--baseline", metavar="DIR")
    args = parser.parse_args(argv)
    builds = {}
    if args.turboasgi_path:
        builds["turboasgi"] = str(Path(args.turboasgi_path).resolve())
    if args.baseline:
        builds["turboasgi-base"] = str(Path(args.baseline).resolve())
    cfg = run.Config(
        duration=args.duration,
        rounds=args.rounds,
        warmup=1.0,
        concurrency=[64],
        workloads=args.workloads,
        servers=args.servers,
        server_cpu=0,
        client_cpu=1,
        memory_conns=0,
        start_timeout=30.0,
        wrk_timeout=5.0,
        app_cost=False,
        docs=False,
        tag="",
        builds=builds,
    )
    atexit.register(run._kill_all_groups)
    os.sched_setaffinity(0, {cfg.client_cpu})
    servers = run.discover_servers(args.servers, builds)
    print(f"Repository commit: {run.git_revision()}; wrk -t1 -c64 -d{args.duration:g}s, server on CPU 0\n")
    print(
        "| round | workload | server | req/s | voluntary / 1000 req | involuntary / 1000 req "
        "| user µs/req | system µs/req |"
    )
    print("|---:|---|---|---:|---:|---:|---:|---:|")
    failed = False
    with tempfile.TemporaryDirectory(prefix="turboasgi-ctxsw-") as tmpdir:
        for rnd in range(args.rounds):
            for wname in args.workloads:
                workload = BY_NAME[wname]
                for name in args.servers:
                    if not servers[name].available:
                        continue
                    with run.running(servers[name], workload, cfg, Path(tmpdir)) as live:
                        if isinstance(live, str):
                            print(f"| {rnd + 1} | `{wname}` | {name} | {live.splitlines()[0]} | | | | |")
                            failed = True
                            continue
                        script = None
                        lua = workload.wrk_lua()
                        if lua is not None:
                            script = Path(tmpdir) / f"{wname}.lua"
                            script.write_text(lua)
                        run.run_wrk(
                            run.wrk_argv(cfg, workload, live.port, 64, cfg.warmup, script), cfg.warmup
                        )
                        v0, i0 = switches(live.proc.pid)
                        u0, s0 = run.tree_cpu_split_s(live.proc.pid)
                        out, err, _ = run.run_wrk(
                            run.wrk_argv(cfg, workload, live.port, 64, cfg.duration, script), cfg.duration
                        )
                        v1, i1 = switches(live.proc.pid)
                        u1, s1 = run.tree_cpu_split_s(live.proc.pid)
                    result = run.parse_wrk(out) if err is None else run.WrkResult(error=err)
                    if not result.valid:
                        print(f"| {rnd + 1} | `{wname}` | {name} | invalid: {result.error} | | | | |")
                        failed = True
                        continue
                    n = result.requests
                    cells = [f"{1e3 * (v1 - v0) / n:.1f}", f"{1e3 * (i1 - i0) / n:.1f}"]
                    cells += [f"{1e6 * (u1 - u0) / n:.1f}", f"{1e6 * (s1 - s0) / n:.1f}"]
                    print(
                        f"| {rnd + 1} | `{wname}` | {name} | {result.rps:,.0f} | " + " | ".join(cells) + " |"
                    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
