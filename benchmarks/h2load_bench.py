"""HTTP/2 cleartext (h2c, prior knowledge) benchmark with h2load: turboasgi vs granian (``--http 2``)
vs hypercorn, each pinned to core 0 with h2load on core 1, rounds interleaved.

Reports per server and workload: requests/s (median, min-max over rounds) and the server's CPU time
per request (user + system of its whole process tree, from /proc), the steadier figure on a shared
machine. A round with any failed request is reported as invalid, never as a number.

    python benchmarks/h2load_bench.py [--rounds 3] [--duration 5] [--servers turboasgi,granian,hypercorn]

Run it with the interpreter of a venv holding a release build of turboasgi, granian, hypercorn,
uvloop and fastapi (see docs/benchmarks.md, "HTTP/2").
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from run import HOST, free_port, spawn, stop_process, tree_cpu_s, wait_for_port

APPS = Path(__file__).resolve().parent / "apps"


@dataclass(frozen=True)
class H2Workload:
    name: str
    app: str
    path: str
    clients: int
    streams: int  # max concurrent streams per client (h2load -m)


WORKLOADS = (
    H2Workload("hello c16 m32", "hello:app", "/", 16, 32),
    H2Workload("hello c64 m1", "hello:app", "/", 64, 1),
    H2Workload("fastapi-get c16 m32", "fastapi_params:app", "/items/42?q=hello", 16, 32),
    H2Workload("stream-1mib c16 m1", "stream:app", "/", 16, 1),
)


def server_argv(name: str, app: str, port: int) -> list[str]:
    py = sys.executable
    if name == "turboasgi":
        return [py, "-m", "turboasgi", app, "--host", HOST, "--port", str(port), "--no-access-log"] + [
            "--log-level",
            "warning",
        ]
    if name == "granian":
        return [py, "-m", "granian", "--interface", "asgi", "--http", "2", "--workers", "1"] + [
            "--runtime-threads",
            "1",
            "--loop",
            "uvloop",
            "--host",
            HOST,
            "--port",
            str(port),
            "--log-level",
            "warning",
            app,
        ]
    if name == "hypercorn":
        return [py, "-m", "hypercorn", "--bind", f"{HOST}:{port}", "--worker-class", "uvloop", app]
    raise ValueError(name)


@dataclass
class Sample:
    rps: float
    cpu_us: float
    valid: bool
    note: str = ""


H2LOAD_DONE = re.compile(r"finished in ([\d.]+)s, ([\d.]+) req/s")
H2LOAD_REQS = re.compile(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed")
STATUS_2XX = re.compile(r"status codes: (\d+) 2xx")


def h2load(url: str, workload: H2Workload, duration: float) -> tuple[str, float, int, int]:
    argv = ["taskset", "-c", "1", "h2load", "-D", f"{duration:g}", "-c", str(workload.clients)]
    argv += ["-m", str(workload.streams), "-t", "1", url]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60).stdout
    done = H2LOAD_DONE.search(out)
    reqs = H2LOAD_REQS.search(out)
    ok = STATUS_2XX.search(out)
    if not (done and reqs and ok):
        return out, 0.0, 0, 1
    return out, float(done.group(2)), int(ok.group(1)), int(reqs.group(5))


def measure(name: str, workload: H2Workload, duration: float) -> Sample:
    port = free_port()
    log = Path(f"/tmp/h2bench-{name}.log")
    proc = spawn(
        ["taskset", "-c", "0", *server_argv(name, workload.app, port)],
        log_path=log,
        cwd=APPS,
        env={"PYTHONPATH": str(APPS), "PATH": "/usr/bin:/bin"},
    )
    try:
        error = wait_for_port(proc, port, 30)
        if error:
            return Sample(0, 0, False, error)
        url = f"http://{HOST}:{port}{workload.path}"
        h2load(url, workload, 1.0)  # warm-up
        before = tree_cpu_s(proc.pid)
        out, rps, succeeded, failed = h2load(url, workload, duration)
        cpu = tree_cpu_s(proc.pid) - before
        if failed or not succeeded:
            return Sample(rps, 0, False, f"{failed} failed / {succeeded} 2xx: {out[-300:]}")
        return Sample(rps, cpu / succeeded * 1e6, True)
    finally:
        stop_process(proc)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--servers", default="turboasgi,granian,hypercorn")
    parser.add_argument("--workloads", default=",".join(w.name for w in WORKLOADS))
    args = parser.parse_args()
    servers = args.servers.split(",")
    chosen = [w for w in WORKLOADS if w.name in args.workloads.split(",")]
    results: dict[tuple[str, str], list[Sample]] = {}
    for round_no in range(args.rounds):
        for workload in chosen:
            for name in servers:
                sample = measure(name, workload, args.duration)
                results.setdefault((workload.name, name), []).append(sample)
                state = f"{sample.rps:,.0f} req/s, {sample.cpu_us:.1f} us" if sample.valid else sample.note
                print(f"[round {round_no + 1}] {workload.name} {name}: {state}", file=sys.stderr, flush=True)
                time.sleep(0.5)
    print("| workload | server | req/s median (min-max) | server CPU us/request median (min-max) |")
    print("|---|---|---|---|")
    for workload in chosen:
        for name in servers:
            samples = results[(workload.name, name)]
            valid = [s for s in samples if s.valid]
            if len(valid) < len(samples):
                print(f"| {workload.name} | {name} | invalid ({len(samples) - len(valid)} rounds failed) | |")
                continue
            rps = [s.rps for s in valid]
            cpu = [s.cpu_us for s in valid]
            rps_cell = f"{statistics.median(rps):,.0f} ({min(rps):,.0f}-{max(rps):,.0f})"
            cpu_cell = f"{statistics.median(cpu):.1f} ({min(cpu):.1f}-{max(cpu):.1f})"
            print(f"| {workload.name} | {name} | {rps_cell} | {cpu_cell} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
