"""Multi-core scaling: loop threads on free-threaded Python against worker processes.

Serves ``apps/fastapi_cpu.py`` (an ``async def`` FastAPI endpoint burning ~1 ms of Python per request)
with each configuration below, unpinned, and loads it with one ``wrk`` thread. Reports requests/s,
non-2xx/socket errors and the server's total RSS (all its processes), interleaving configurations round
by round and keeping the median.

    python benchmarks/scaling.py --py313t /tmp/venv313t/bin/python --py311 .venv/bin/python

Each interpreter needs turboasgi, uvicorn and fastapi installed (pydantic with
``--only-binary pydantic-core`` on 3.13t).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import (  # noqa: E402  (the harness's helpers, importable once the path is set)
    free_port,
    parse_wrk,
    spawn,
    stop_process,
    tail,
    tree_rss_kib,
    wait_for_port,
)

ROOT = Path(__file__).resolve().parent.parent
APPS = ROOT / "benchmarks" / "apps"


@dataclass
class Setup:
    name: str
    python_flag: str  # "py313t" or "py311"
    argv: list[str]  # after "<python> -m"


SETUPS = [
    Setup("turboasgi 3.13t --threads 1", "py313t", ["turboasgi", "--threads", "1"]),
    Setup("turboasgi 3.13t --threads 2", "py313t", ["turboasgi", "--threads", "2"]),
    Setup("uvicorn 3.13t (1 process)", "py313t", ["uvicorn"]),
    Setup("uvicorn 3.11 --workers 2", "py311", ["uvicorn", "--workers", "2"]),
    Setup("turboasgi 3.11 --workers 1", "py311", ["turboasgi", "--workers", "1"]),
    Setup("turboasgi 3.11 --workers 2", "py311", ["turboasgi", "--workers", "2"]),
]


def measure(
    python: str, setup: Setup, duration: float, connections: int, tmp: Path
) -> tuple[float, str, int]:
    port = free_port()
    argv = [python, "-m", *setup.argv, "fastapi_cpu:app", "--app-dir", str(APPS), "--port", str(port)]
    argv += ["--no-access-log", "--log-level", "warning"]
    log_path = tmp / f"{setup.name.replace(' ', '_')}.log"
    proc = spawn(argv, log_path=log_path, cwd=ROOT, env=dict(os.environ))
    try:
        problem = wait_for_port(proc, port, 30.0)
        if problem:
            return 0.0, f"did not start: {problem}: {tail(log_path)}", 0
        url = f"http://127.0.0.1:{port}/cpu"
        subprocess.run(["wrk", "-t1", f"-c{connections}", "-d4s", url], capture_output=True, check=False)
        out = subprocess.run(
            ["wrk", "-t1", f"-c{connections}", f"-d{int(duration)}s", url],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        rss_mib = tree_rss_kib(proc.pid) // 1024
        result = parse_wrk(out)
        errors = sum(result.socket_errors.values())
        status = "ok"
        if result.error or result.non2xx or errors:
            status = f"INVALID ({result.error} {result.non2xx} non-2xx, {errors} socket errors)"
        return result.rps, status, rss_mib
    finally:
        stop_process(proc)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--py313t", required=True, help="free-threaded 3.13t interpreter")
    parser.add_argument("--py311", default=sys.executable, help="CPython 3.11 interpreter")
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="TEXT",
        help="run only the setups whose name contains TEXT (repeatable), e.g. --only '3.13t --threads'",
    )
    args = parser.parse_args()
    setups = [s for s in SETUPS if not args.only or any(text in s.name for text in args.only)]
    if not setups:
        parser.error(f"--only {args.only}: no setup matches; setups: {[s.name for s in SETUPS]}")
    tmp = Path("/tmp/turboasgi-scaling")
    tmp.mkdir(exist_ok=True)
    pythons = {"py313t": args.py313t, "py311": args.py311}
    rps: dict[str, list[float]] = {s.name: [] for s in setups}
    rss: dict[str, list[int]] = {s.name: [] for s in setups}
    invalid: dict[str, str] = {}
    for round_no in range(args.rounds):
        for setup in setups[round_no % len(setups) :] + setups[: round_no % len(setups)]:
            value, status, mib = measure(
                pythons[setup.python_flag], setup, args.duration, args.connections, tmp
            )
            print(
                f"[{time.strftime('%H:%M:%S')}] {setup.name:32} {value:8.0f} req/s  rss {mib} MiB  {status}"
            )
            if status != "ok":
                invalid[setup.name] = status
            rps[setup.name].append(value)
            rss[setup.name].append(mib)
    base = statistics.median(rps[setups[0].name]) or 1.0
    print()
    print(f"| setup | requests/s (median of {args.rounds}) | vs {setups[0].name} | server RSS MiB |")
    print("|---|---:|---:|---:|")
    for setup in setups:
        med = statistics.median(rps[setup.name])
        note = f" ({invalid[setup.name]})" if setup.name in invalid else ""
        print(
            f"| {setup.name}{note} | {med:.0f} | {med / base:.2f}x | {statistics.median(rss[setup.name])} |"
        )
    one, two = SETUPS[0].name, SETUPS[1].name
    if one in rps and two in rps:
        # The free-threading target is per run: both loop counts measured in the same round.
        ratios = [b / a for a, b in zip(rps[one], rps[two], strict=True) if a]
        print(f"\n2 loops / 1 loop per round: {' '.join(f'{r:.2f}' for r in ratios)}")
        print(f"rounds at >= 1.8x: {sum(r >= 1.8 for r in ratios)} of {len(ratios)}")
    only = "".join(f" --only '{text}'" for text in args.only)
    print(
        f"\ncommand: python benchmarks/scaling.py --py313t {args.py313t} --py311 {args.py311} "
        f"--duration {args.duration:g} --rounds {args.rounds} --connections {args.connections}{only}"
    )
    return 1 if invalid else 0


if __name__ == "__main__":
    raise SystemExit(main())
