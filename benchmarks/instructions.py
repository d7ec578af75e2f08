"""Instructions per request under callgrind: a noise-free comparison of turboasgi builds.

    python benchmarks/instructions.py --turboasgi-path NEW_DIR --baseline OLD_DIR [--workloads ...]

On a shared machine requests/s and even CPU µs/req move by tens of percent with the neighbours' load;
the number of instructions a request executes does not. For each round, workload and turboasgi build,
this starts the server under ``valgrind --tool=callgrind --instr-atstart=no`` (instrumentation off,
so start-up is quick), warms it up with ``--warmup`` requests, switches instrumentation on
(``callgrind_control -i on``), sends ``--requests`` requests over ``--connections`` keep-alive
connections from this process (not instrumented), dumps the counters (``callgrind_control -d``) and
divides the instructions executed (all threads: the network side, the event loop, the app) by the
requests. Prints a Markdown table, median and min–max over rounds, with each build's ratio to the
first. callgrind runs everything on one thread at a time, so how requests batch across the tokio and
loop threads differs from a real run: compare builds with this, not servers.
"""

from __future__ import annotations

import argparse
import atexit
import http.client
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run  # noqa: E402  (the HTTP harness: servers, their builds and environment, processes)
from workloads import APPS_DIR, BY_NAME, Workload  # noqa: E402


def send_requests(port: int, workload: Workload, count: int, connections: int) -> str | None:
    """``count`` requests over ``connections`` keep-alive connections; an error if any failed."""
    errors: list[str] = []

    def one_connection(n: int) -> None:
        conn = http.client.HTTPConnection(run.HOST, port, timeout=120)
        try:
            for _ in range(n):
                conn.request(
                    workload.method,
                    workload.target,
                    body=workload.body or None,
                    headers=dict(workload.headers),
                )
                response = conn.getresponse()
                response.read()
                if not 200 <= response.status < 300:
                    errors.append(f"status {response.status}")
                    return
        except Exception as exc:  # noqa: BLE001 - any failure invalidates the measurement
            errors.append(repr(exc))
        finally:
            conn.close()

    shares = [count // connections + (1 if i < count % connections else 0) for i in range(connections)]
    threads = [threading.Thread(target=one_connection, args=(n,)) for n in shares]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors[0] if errors else None


def instructions_per_request(
    server: run.Server, workload: Workload, args: argparse.Namespace, tmp: Path
) -> float | str:
    port = run.free_port()
    out = tmp / f"callgrind.{server.name}.{workload.name}.{port}"
    # Children too (granian serves from a worker process): one counts file per process, summed.
    argv = ["valgrind", "--tool=callgrind", "--instr-atstart=no", "--trace-children=yes"]
    argv.append(f"--callgrind-out-file={out}.%p")
    if args.cache_sim:
        argv.append("--cache-sim=yes")
    argv += server.argv(workload, port)
    env = run.python_env(server.pythonpath)
    env["PYTHONUNBUFFERED"] = "1"
    log_path = tmp / f"{server.name}-{workload.name}-{port}.log"
    proc = run.spawn(argv, log_path=log_path, cwd=APPS_DIR, env=env)
    try:
        err = run.wait_for_port(proc, port, 120)
        err = err or send_requests(port, workload, args.warmup, args.connections)
        if err:
            return f"{err}: {run.tail(log_path, 5)}"
        pids = [str(pid) for pid in run.tree_pids(proc.pid)]
        for pid in pids:
            subprocess.run(["callgrind_control", "-i", "on", pid], capture_output=True)
        err = send_requests(port, workload, args.requests, args.connections)
        for pid in pids:
            subprocess.run(["callgrind_control", "-d", pid], capture_output=True)
        if err:
            return err
        total = 0
        events: dict[str, int] = {}
        for dump in tmp.glob(f"{out.name}.*"):
            if not re.fullmatch(r"\d+\.\d+", dump.name[len(out.name) + 1 :]):
                continue  # the per-process file callgrind finishes at exit, not our dump
            text = dump.read_text(errors="replace")
            m = re.search(r"^(?:summary|totals):\s+(\d+(?:\s+\d+)*)", text, re.M)
            names = re.search(r"^events:\s+(.+)$", text, re.M)
            if m:
                counts = [int(v) for v in m.group(1).split()]
                total += counts[0]
                for event, count in zip((names.group(1) if names else "Ir").split(), counts, strict=False):
                    events[event] = events.get(event, 0) + count
            dump.unlink()
        if args.cache_sim and events:
            per_request = ", ".join(f"{k} {v / args.requests:,.0f}" for k, v in events.items())
            run.log(f"{server.name} {workload.name} per request: {per_request}")
        if total == 0:
            return "callgrind wrote no counts"
        return total / args.requests
    finally:
        run.stop_process(proc, timeout=30)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="benchmarks/instructions.py", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument("--workloads", nargs="+", default=["hello", "fastapi-get"], choices=list(BY_NAME))
    parser.add_argument(
        "--turboasgi-path", metavar="DIR", help="build served as turboasgi (default: installed)"
    )
    parser.add_argument("--baseline", metavar="DIR", help="build served as turboasgi-base")
    parser.add_argument(
        "--others",
        nargs="*",
        default=[],
        choices=["uvicorn", "granian"],
        help="other servers to count too (their threads run differently under callgrind: a hint only)",
    )
    parser.add_argument("--requests", type=int, default=2000, help="measured requests (default 2000)")
    parser.add_argument("--warmup", type=int, default=300, help="requests before measuring (default 300)")
    parser.add_argument("--connections", type=int, default=8, help="keep-alive connections (default 8)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds, builds interleaved (default 2)")
    parser.add_argument(
        "--cache-sim",
        action="store_true",
        help="also simulate the caches (callgrind --cache-sim=yes) and log misses per request",
    )
    parser.add_argument(
        "--turboasgi-args",
        default="",
        help="options added to the turboasgi server only, e.g. '--metrics-port 0' against a --baseline of "
        "the same build: what the option costs",
    )
    args = parser.parse_args(argv)
    for tool in ("valgrind", "callgrind_control"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} not found: install valgrind")
    builds = {}
    if args.turboasgi_path:
        builds["turboasgi"] = str(Path(args.turboasgi_path).resolve())
    if args.baseline:
        builds["turboasgi-base"] = str(Path(args.baseline).resolve())
    names = ["turboasgi", *(["turboasgi-base"] if args.baseline else []), *args.others]
    atexit.register(run._kill_all_groups)
    servers = run.discover_servers(names, builds)
    servers["turboasgi"].extra = tuple(shlex.split(args.turboasgi_args))
    results: dict[tuple[str, str], list[float]] = {}
    failed = False
    with tempfile.TemporaryDirectory(prefix="turboasgi-instr-") as tmpdir:
        for rnd in range(args.rounds):
            order = names[rnd % len(names) :] + names[: rnd % len(names)]
            for wname in args.workloads:
                for name in order:
                    if not servers[name].available:
                        continue
                    value = instructions_per_request(servers[name], BY_NAME[wname], args, Path(tmpdir))
                    if isinstance(value, str):
                        run.log(f"{name} on {wname}: INVALID: {value}")
                        failed = True
                        continue
                    run.log(f"{wname:<12} {name:<15} {value:,.0f} instructions/request")
                    results.setdefault((wname, name), []).append(value)
    print(f"Repository commit: {run.git_revision()}")
    for name in names:
        s = servers[name]
        print(f"- {name}: {s.build or s.reason}" + (f" (warning: {s.warning})" if s.warning else ""))
    print(
        f"\n{args.requests} requests over {args.connections} keep-alive connections after {args.warmup} "
        f"warm-up requests, {args.rounds} round(s); median (min–max) instructions per request.\n"
    )
    ratio = bool(args.baseline)
    print("| workload | " + " | ".join(names) + (" | turboasgi / base |" if ratio else " |"))
    print("|---|" + "---:|" * (len(names) + (1 if ratio else 0)))
    for wname in args.workloads:
        cells = [run.median_span(results.get((wname, n), []) or [0.0], lambda v: f"{v:,.0f}") for n in names]
        row = f"| `{wname}` | " + " | ".join(cells)
        new, base = results.get((wname, "turboasgi")), results.get((wname, "turboasgi-base"))
        if ratio:
            row += f" | {statistics.median(new) / statistics.median(base):.3f}" if new and base else " | "
        print(row + " |")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
