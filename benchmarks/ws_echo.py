"""WebSocket echo benchmark: turboasgi against uvicorn and granian, round trips per second.

Every server runs ``apps/ws_echo.py`` pinned to one core (``taskset -c 0``); the Rust load client in
``ws_echo/`` (tokio current-thread, tokio-tungstenite) runs pinned to another (``taskset -c 1``) and
keeps N connections busy, each sending one message and waiting for its echo in a loop. Servers are
interleaved round by round and medians are reported. A run with any error (failed connect, unexpected
close, wrong echo, stuck round trip) is never reported as a number: its cell is marked invalid and the
harness exits non-zero. Then, once per server, the RSS of the server's process tree with N idle
WebSockets open (``--idle-conns``), with ``run.py``'s memory measurement. Server processes, pinning,
stopping and memory accounting come from ``run.py``. See ``benchmarks/README.md``.

    python benchmarks/ws_echo.py [--duration 10] [--rounds 2] [--sizes 32 16384] [--connections 64]
                                 [--idle-conns 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import base64
import contextlib
import datetime as dt
import json
import os
import platform
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run  # noqa: E402  (the HTTP harness: servers, spawning, pinning, CPU accounting, docs update)
from run import (  # noqa: E402
    HOST,
    REPO,
    Config,
    MemResult,
    Running,
    Server,
    cpu_jiffies,
    cpu_model,
    dist_version,
    git_revision,
    loadavg,
    log,
    measure_memory,
    mem_total_gib,
    probe_import,
    running,
    spawn,
    stop_process,
    tree_cpu_s,
    tree_cpu_split_s,
)
from workloads import Workload  # noqa: E402

CLIENT_DIR = run.BENCH_DIR / "ws_echo"
CLIENT_BIN = CLIENT_DIR / "target" / "release" / "ws_echo"
SERVER_ORDER = ("turboasgi", "uvicorn", "granian")
PATH = "/ws"
DOCS_BEGIN = "<!-- ws-echo:begin (written by benchmarks/ws_echo.py; edit outside these markers) -->"
DOCS_END = "<!-- ws-echo:end -->"
# The client's own deadline for a round trip in flight at the end, plus its closing handshake.
CLIENT_GRACE_S = 5.0 + 1.0

APP = Workload(
    name="ws-echo",
    app="ws_echo:app",
    description="raw ASGI WebSocket echo (same message type back); plain HTTP answers 200 `ok`",
    response_size=2,
)


class WsServer(Server):
    """run.py's server command lines, with each server's WebSocket implementation named explicitly."""

    uvicorn_ws = "websockets-sansio"  # uvicorn's --ws (--uvicorn-ws); what its default "auto" picks

    def argv(self, workload: Workload, port: int, *, idle_conns: int = 0) -> list[str]:
        cmd = super().argv(workload, port, idle_conns=idle_conns)
        if self.name == "uvicorn":
            return [*cmd, "--ws", self.uvicorn_ws]
        if self.name == "granian":
            # On by default; named so the command says so. The app stays the last argument.
            return [*cmd[:-1], "--ws", cmd[-1]]
        return cmd  # turboasgi: its own WebSocket implementation is always the one used


# --------------------------------------------------------------------------------------------------
# The load client
# --------------------------------------------------------------------------------------------------


def build_client() -> str | None:
    """``cargo build --release`` the client (a no-op when it is up to date); an error if unusable."""
    cargo = shutil.which("cargo")
    if cargo is None:
        return None if CLIENT_BIN.exists() else "client binary missing and cargo not found"
    manifest = CLIENT_DIR / "Cargo.toml"
    argv = [cargo, "build", "--release", "--manifest-path", str(manifest)]
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0 or not CLIENT_BIN.exists():
        last = (proc.stderr.strip().splitlines() or ["?"])[-1]
        if CLIENT_BIN.exists():
            log(f"cargo build of the client failed ({last}): using the existing binary")
            return None
        return f"cargo build --release --manifest-path {manifest.relative_to(REPO)} failed: {last}"
    return None


def client_version() -> str:
    tungstenite = "?"
    with contextlib.suppress(OSError):
        m = re.search(
            r'name = "tokio-tungstenite"\nversion = "([^"]+)"', (CLIENT_DIR / "Cargo.lock").read_text()
        )
        if m:
            tungstenite = m.group(1)
    rustc = "rustc ?"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout
        rustc = " ".join(out.split()[:2]) or rustc
    return f"tokio-tungstenite {tungstenite}, {rustc}"


@dataclass
class EchoResult:
    rps: float = 0.0  # round trips per second
    round_trips: int = 0
    p50_ms: float = 0.0
    p90_ms: float = 0.0
    p99_ms: float = 0.0
    errors: int = 0
    connections_completed: int = 0
    error: str = ""  # why this run is invalid ("" when valid)
    # CPU accounting over the measured window (after the client's warm-up), from /proc:
    window_s: float = 0.0
    server_cpu_s: float = 0.0
    server_sys_s: float = 0.0  # the part of server_cpu_s spent in the kernel
    core_busy: float = 0.0  # fraction of the server's core busy, whoever used it
    client_core_busy: float = 0.0  # the same for the client's core
    client_cpu_s: float = 0.0

    @property
    def valid(self) -> bool:
        return not self.error

    @property
    def server_cpu(self) -> float:
        return self.server_cpu_s / self.window_s if self.window_s else 0.0

    @property
    def client_cpu(self) -> float:
        return self.client_cpu_s / self.window_s if self.window_s else 0.0

    @property
    def cpu_us(self) -> float:
        """Server CPU µs per round trip (not inflated by CPU that other processes took)."""
        return self.server_cpu_s / self.round_trips * 1e6 if self.round_trips else 0.0

    @property
    def sys_us(self) -> float:
        """The kernel's part of ``cpu_us``: sockets, wakeups, scheduling."""
        return self.server_sys_s / self.round_trips * 1e6 if self.round_trips else 0.0


def client_argv(
    cfg: EchoConfig, port: int, size: int, duration: float, warmup: float, conns: int
) -> list[str]:
    argv = ["taskset", "-c", str(cfg.client_cpu), str(CLIENT_BIN), "--url", f"ws://{HOST}:{port}{PATH}"]
    argv += ["--connections", str(conns), "--size", str(size)]
    argv += ["--duration", f"{duration:g}", "--warmup", f"{warmup:g}"]
    return argv + (["--text"] if cfg.text else [])


def parse_client(output: str) -> tuple[dict[str, Any] | None, str]:
    for line in reversed(output.strip().splitlines()):
        if line.startswith("{"):
            with contextlib.suppress(json.JSONDecodeError):
                data: dict[str, Any] = json.loads(line)
                return data, ""
    return None, "client printed no result: " + (output.strip()[-300:] or "no output")


def _wait(proc: subprocess.Popen[bytes], until: float) -> None:
    """Sleep until the monotonic time ``until``, or until ``proc`` exits."""
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(max(0.0, until - time.monotonic()))


def echo_run(
    cfg: EchoConfig, server: Running, size: int, tmp: Path, *, duration: float, warmup: float, conns: int
) -> EchoResult:
    """One client run against a running server, with the server's CPU read around the measured window."""
    argv = client_argv(cfg, server.port, size, duration, warmup, conns)
    log_path = tmp / f"client-{server.port}-{size}-{conns}.log"
    t0 = time.monotonic()
    proc = spawn(argv, log_path=log_path, cwd=REPO, env=dict(os.environ))
    try:
        _wait(proc, t0 + warmup)
        (user0, sys0), (busy0, total0) = tree_cpu_split_s(server.proc.pid), cpu_jiffies(cfg.server_cpu)
        w0 = time.monotonic()
        cbusy0, ctotal0, ccpu0 = *cpu_jiffies(cfg.client_cpu), tree_cpu_s(proc.pid)
        _wait(proc, t0 + warmup + duration)
        (user1, sys1), (busy1, total1) = tree_cpu_split_s(server.proc.pid), cpu_jiffies(cfg.server_cpu)
        w1 = time.monotonic()
        cbusy1, ctotal1, ccpu1 = *cpu_jiffies(cfg.client_cpu), tree_cpu_s(proc.pid)
        try:
            proc.wait(CLIENT_GRACE_S + 30)
        except subprocess.TimeoutExpired:
            return EchoResult(error="client did not finish")
    finally:
        stop_process(proc)
    output = log_path.read_text(errors="replace")
    data, err = parse_client(output)
    r = EchoResult(
        window_s=w1 - w0,
        server_cpu_s=(user1 + sys1) - (user0 + sys0),
        server_sys_s=sys1 - sys0,
        client_cpu_s=ccpu1 - ccpu0,
    )
    r.core_busy = (busy1 - busy0) / (total1 - total0) if total1 > total0 else 0.0
    r.client_core_busy = (cbusy1 - cbusy0) / (ctotal1 - ctotal0) if ctotal1 > ctotal0 else 0.0
    problems: list[str] = []
    if data is None:
        problems.append(err)
    else:
        r.rps = float(data["round_trips_per_s"])
        r.round_trips = int(data["round_trips"])
        latency = data["latency_ms"]
        r.p50_ms, r.p90_ms, r.p99_ms = float(latency["p50"]), float(latency["p90"]), float(latency["p99"])
        r.errors = int(data["errors"])
        r.connections_completed = int(data["connections_completed"])
        if r.errors:
            kinds = ("connect_failed", "unexpected_closes", "mismatches", "timeouts")
            counts = ", ".join(f"{k.replace('_', ' ')} {data[k]}" for k in kinds if data.get(k))
            problems.append(f"{r.errors} errors ({counts}; first: {data.get('first_error')})")
        if r.round_trips == 0:
            problems.append("no round trip completed")
    if proc.returncode not in (0, None) and data is None:
        problems.append(f"client exited with {proc.returncode}")
    if server.proc.poll() is not None:
        problems.append(f"server exited with {server.proc.returncode}")
    r.error = "; ".join(problems)
    return r


# --------------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------------


@dataclass
class EchoConfig:
    duration: float
    rounds: int
    warmup: float
    sizes: list[int]
    connections: int
    servers: list[str]
    server_cpu: int
    client_cpu: int
    start_timeout: float
    text: bool
    uvicorn_ws: str
    idle_conns: int
    docs: bool
    tag: str

    def run_config(self) -> Config:
        """What run.py's ``running()``, ``display_command()`` and ``measure_memory()`` read."""
        return Config(
            duration=self.duration,
            rounds=self.rounds,
            warmup=self.warmup,
            concurrency=[self.connections],
            workloads=[],
            servers=self.servers,
            server_cpu=self.server_cpu,
            client_cpu=self.client_cpu,
            memory_conns=self.idle_conns,
            start_timeout=self.start_timeout,
            wrk_timeout=5.0,
            app_cost=False,
            docs=self.docs,
            tag=self.tag,
        )


@dataclass
class Cell:
    runs: list[EchoResult] = field(default_factory=list)
    error: str = ""  # the server did not start (or failed its echo check) for one of the rounds

    @property
    def valid(self) -> bool:
        return bool(self.runs) and not self.error and all(r.valid for r in self.runs)

    def median(self, attr: str) -> float:
        return float(statistics.median(float(getattr(r, attr)) for r in self.runs))

    def errors(self) -> int:
        return sum(r.errors for r in self.runs)

    def problem(self) -> str:
        if self.error:
            return self.error.splitlines()[0]
        bad = [r.error for r in self.runs if r.error]
        return "; ".join(bad) if bad else ("no run" if not self.runs else "")


@dataclass
class Results:
    cells: dict[int, dict[str, Cell]] = field(default_factory=dict)
    server_commands: dict[str, str] = field(default_factory=dict)
    client_command: str = ""
    loadavg_start: str = ""
    memory: dict[str, MemResult] = field(default_factory=dict)  # idle WebSockets, one per server
    memory_commands: dict[str, str] = field(default_factory=dict)  # where they differ from server_commands

    def cell(self, size: int, server: str) -> Cell:
        return self.cells.setdefault(size, {}).setdefault(server, Cell())


def discover(cfg: EchoConfig) -> dict[str, WsServer]:
    servers = {name: WsServer(**asdict(s)) for name, s in run.discover_servers(cfg.servers).items()}
    uvicorn = servers.get("uvicorn")
    if uvicorn is not None:
        uvicorn.uvicorn_ws = cfg.uvicorn_ws
    if uvicorn is not None and uvicorn.available:
        err = probe_import(["wsproto" if cfg.uvicorn_ws == "wsproto" else "websockets"])
        if err:
            uvicorn.available, uvicorn.reason = False, f"not available: {err}"
            log(f"uvicorn: {uvicorn.reason}")
    return servers


def echo_check(cfg: EchoConfig, server: Running, tmp: Path) -> str | None:
    """One connection for a fraction of a second: every echo checked, before any load."""
    r = echo_run(cfg, server, max(cfg.sizes), tmp, duration=0.3, warmup=0.0, conns=1)
    return None if r.valid else f"echo check failed: {r.error}"


def ws_upgrade_request(port: int) -> bytes:
    """A WebSocket opening handshake with a fresh random key and no extension offered."""
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET {PATH} HTTP/1.1\r\nHost: {HOST}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


async def read_upgrade_status(reader: asyncio.StreamReader) -> int:
    """Read the handshake's response head (nothing follows it on an idle WebSocket); its status."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    if status == 101 and not re.search(rb"(?i)\r\nsec-websocket-accept:", head):
        raise ValueError("101 without Sec-WebSocket-Accept")
    return status


def measure_idle_websockets(
    cfg: EchoConfig, servers: dict[str, WsServer], results: Results, tmp: Path
) -> None:
    """Once per available server: RSS idle, then with ``cfg.idle_conns`` idle WebSockets open."""
    rcfg = cfg.run_config()
    for sname in (s for s in cfg.servers if servers[s].available):
        server = servers[sname]
        command = run.display_command(rcfg, server, APP, idle_conns=cfg.idle_conns)
        if command != results.server_commands.get(sname):
            results.memory_commands[sname] = command
        log(f"memory: {sname} with {cfg.idle_conns} idle WebSockets")
        mem = measure_memory(
            rcfg,
            server,
            tmp,
            workload=APP,
            request=ws_upgrade_request,
            read_status=read_upgrade_status,
            expect=101,
        )
        results.memory[sname] = mem
        if mem.error:
            log(f"memory: {sname}: INVALID: {mem.error.splitlines()[0]}")
        else:
            log(
                f"memory: {sname}: idle {mem.idle_kib / 1024:.1f} MiB, +{mem.extra_kib / 1024:.1f} MiB with "
                f"{mem.conns} WebSockets ({mem.extra_kib / mem.conns:.1f} KiB each)"
            )


def execute(cfg: EchoConfig, servers: dict[str, WsServer]) -> Results:
    results = Results(loadavg_start=loadavg())
    rcfg = cfg.run_config()
    available = [s for s in cfg.servers if servers[s].available]
    with tempfile.TemporaryDirectory(prefix="turboasgi-ws-echo-") as tmpdir:
        tmp = Path(tmpdir)
        for rnd in range(cfg.rounds):
            order = available[rnd % len(available) :] + available[: rnd % len(available)] if available else []
            log(f"round {rnd + 1}/{cfg.rounds}: {', '.join(order)}")
            for sname in order:
                server = servers[sname]
                results.server_commands.setdefault(sname, run.display_command(rcfg, server, APP))
                with running(server, APP, rcfg, tmp) as live:
                    err = live if isinstance(live, str) else echo_check(cfg, live, tmp)
                    if err is not None or isinstance(live, str):
                        if not isinstance(live, str):  # started, but did not echo: show its log
                            err = f"{err}\n{run.tail(live.log_path)}".rstrip()
                        log(f"{sname}: {err}")
                        for size in cfg.sizes:
                            results.cell(size, sname).error = err or "did not start"
                        continue
                    for size in cfg.sizes:
                        res = echo_run(
                            cfg,
                            live,
                            size,
                            tmp,
                            duration=cfg.duration,
                            warmup=cfg.warmup,
                            conns=cfg.connections,
                        )
                        results.cell(size, sname).runs.append(res)
                        if not results.client_command:
                            argv = client_argv(cfg, 8000, size, cfg.duration, cfg.warmup, cfg.connections)
                            argv = [os.path.relpath(a, REPO) if a.startswith(str(REPO)) else a for a in argv]
                            results.client_command = shlex.join(argv).replace(f"--size {size}", "--size SIZE")
                        status = "ok" if res.valid else f"INVALID: {res.error}"
                        log(
                            f"size {size:<6} {sname:<10} {res.rps:>10.0f} round trips/s  "
                            f"p50 {res.p50_ms:.3f} ms  p99 {res.p99_ms:.3f} ms  "
                            f"cpu {res.cpu_us:.1f} us/rt (kernel {res.sys_us:.1f})  "
                            f"srv {res.server_cpu:.0%} core {res.core_busy:.0%} "
                            f"client {res.client_cpu:.0%} core {res.client_core_busy:.0%}  {status}"
                        )
        if cfg.idle_conns > 0:
            measure_idle_websockets(cfg, servers, results, tmp)
    return results


# --------------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------------


def fmt_size(size: int) -> str:
    return f"{size // 1024} KiB" if size >= 1024 and size % 1024 == 0 else f"{size} B"


def notes(cell: Cell) -> str:
    out = []
    if any(r.core_busy - r.server_cpu > 0.10 for r in cell.runs):
        out.append("shared core")
    if any(r.client_core_busy - r.client_cpu > 0.10 for r in cell.runs):
        out.append("shared client core")
    if any(r.client_cpu > 0.90 and r.server_cpu < 0.90 for r in cell.runs):
        out.append("client-bound")
    return ", ".join(out)


def environment(cfg: EchoConfig, servers: dict[str, WsServer], results: Results) -> list[str]:
    libs = ["uvloop", "httptools", "wsproto" if cfg.uvicorn_ws == "wsproto" else "websockets"]
    lib_versions = ", ".join(f"{lib} {dist_version(lib) or 'missing'}" for lib in libs)
    server_versions = ", ".join(
        f"{s.name} {s.version or '?'}" + ("" if s.available else " (not available)") for s in servers.values()
    )
    warnings = [f"- **Warning — {s.name}**: {s.warning}" for s in servers.values() if s.warning]
    kind = "text" if cfg.text else "binary"
    uvicorn_note = []
    if "uvicorn" in servers:
        uvicorn_note.append(
            f"- uvicorn's WebSocket implementation: `--ws {cfg.uvicorn_ws}`"
            + (
                f" (its legacy one: uvicorn {servers['uvicorn'].version} deprecates it, and its `--ws auto` "
                "picks `websockets-sansio`)"
                if cfg.uvicorn_ws == "websockets"
                else ""
            )
        )
    return [
        f"- Machine: {cpu_model()}, {os.cpu_count()} cores, {mem_total_gib():.0f} GiB RAM, "
        f"Linux {platform.release()}",
        f"- Load average (1, 5, 15 min) at start: {results.loadavg_start}, at the end: {loadavg()}",
        f"- Pinning: server on CPU {cfg.server_cpu} (`taskset -c {cfg.server_cpu}`), "
        f"client on CPU {cfg.client_cpu} (`taskset -c {cfg.client_cpu}`)",
        f"- Python {platform.python_version()} ({platform.python_implementation()}); {lib_versions}",
        f"- Servers: {server_versions}; client `benchmarks/ws_echo` ({client_version()})",
        f"- Repository commit: {git_revision()}",
        *warnings,
        f"- Load: {cfg.connections} WebSocket connections, each sending one {kind} message and waiting for "
        f"its echo (checked: type, length, content) in a loop; {cfg.duration:g} s measured after "
        f"{cfg.warmup:g} s of warm-up (connections opened during it); {cfg.rounds} round(s), servers "
        "interleaved (order rotated every round), median reported",
        "- The client offers no WebSocket extension: tungstenite does not implement permessage-deflate, "
        "so every server sends and receives the messages uncompressed",
        *uvicorn_note,
    ]


def report_tables(cfg: EchoConfig, servers: dict[str, WsServer], results: Results) -> list[str]:
    cols = [s for s in SERVER_ORDER if s in cfg.servers]
    peers = [p for p in ("uvicorn", "granian") if p in cfg.servers and servers[p].available]
    out = ["### Round trips per second (median)", ""]
    out += ["| message | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
    for size in cfg.sizes:
        row = [fmt_size(size)]
        for s in cols:
            cell = results.cells.get(size, {}).get(s)
            if not servers[s].available:
                row.append("n/a")
            elif cell is None:
                row.append("")
            elif not cell.valid:
                row.append("**invalid**")
            else:
                row.append(f"{cell.median('rps'):,.0f}")
        out.append("| " + " | ".join(row) + " |")
    out.append("")

    out += ["### Round trips, latency, CPU and ratios", ""]
    out += [
        "Medians over rounds. **errors**: failed connects + unexpected closes + wrong echoes + stuck round "
        "trips, summed over rounds (any error makes the cell invalid). **CPU µs/rt**: the server's CPU time "
        "during the measured window / round trips (not inflated by CPU others took from its core); "
        "**of it kernel**: the part the kernel spent for the server (system time: sockets, wakeups); "
        "**srv CPU**: the server's CPU use / wall time (100% = one core); **core busy**: the server core's "
        "busy time from /proc/stat, whoever used it; **client CPU** and **client core**: the same two for "
        "the load client and its core. Notes: *shared core* / *shared client core* when other processes used "
        "over 10% of that core; *client-bound* when the client used over 90% of its core while the server "
        "had less than 90% of its own (the client, not the server, was the bottleneck). "
        "turboasgi's ratios: its round trips/s over the column server's (same message size).",
        "",
    ]
    header = ["message", "server", "round trips/s", "p50 ms", "p99 ms", "errors", "CPU µs/rt", "of it kernel"]
    header += ["srv CPU", "core busy", "client CPU", "client core", *(f"vs {p}" for p in peers), "notes"]
    out += ["| " + " | ".join(header) + " |", "|---|---|" + "---:|" * (len(header) - 3) + "---|"]
    for size in cfg.sizes:
        by_s = results.cells.get(size, {})
        for s in cols:
            cell = by_s.get(s)
            if cell is None:
                continue
            row = [fmt_size(size), s]
            if not cell.valid:
                row += [f"**invalid**: {cell.problem()}", "", "", str(cell.errors()) if cell.runs else ""]
                row += [""] * (len(header) - len(row))
            else:
                row += [
                    f"{cell.median('rps'):,.0f}",
                    f"{cell.median('p50_ms'):.3f}",
                    f"{cell.median('p99_ms'):.3f}",
                ]
                row += [
                    str(cell.errors()),
                    f"{cell.median('cpu_us'):.1f}",
                    f"{cell.median('sys_us'):.1f}",
                    f"{cell.median('server_cpu'):.0%}",
                ]
                row += [
                    f"{cell.median('core_busy'):.0%}",
                    f"{cell.median('client_cpu'):.0%}",
                    f"{cell.median('client_core_busy'):.0%}",
                ]
                for p in peers:
                    other = by_s.get(p)
                    if s == "turboasgi" and other is not None and other.valid:
                        row.append(f"{cell.median('rps') / other.median('rps'):.2f}×")
                    else:
                        row.append("")
                row.append(notes(cell))
            out.append("| " + " | ".join(row) + " |")
    out.append("")
    out += memory_table(cfg, results)
    unavailable = [f"- `{s.name}`: {s.reason}" for s in servers.values() if not s.available]
    if unavailable:
        out += ["Not measured:", "", *unavailable, ""]
    return out


def memory_table(cfg: EchoConfig, results: Results) -> list[str]:
    if not results.memory:
        return []
    n = cfg.idle_conns
    out = [f"### Memory with {n:,} idle WebSockets", ""]
    out += [
        "RSS of the server's process tree (sum of VmRSS from /proc/PID/status), idle 1 s after start and "
        f"one plain `GET /` (**RSS before**), then 2 s after {n:,} WebSocket connections to `{PATH}` "
        "(opened 200 at a time by the harness, from the client's core) completed the opening handshake "
        "(status 101; no extension offered) and stayed idle: **extra** is the difference, **KiB per "
        "WebSocket** = extra / connections. One measurement per server, on a fresh server process after the "
        "echo rounds (its command is under Exact commands). **still open**: connections the server had not "
        "closed at the measurement; **errors**: connections that failed to open or to complete the "
        "handshake. Invalid if any connection failed or was closed.",
        "",
        "| server | RSS before MiB | extra MiB | KiB per WebSocket | still open | errors |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for s in SERVER_ORDER:
        mem = results.memory.get(s)
        if mem is None:
            continue
        counts = [f"{mem.alive:,}", str(mem.failed)] if mem.idle_kib else ["", ""]
        if mem.error:
            out.append(f"| {s} | **invalid**: {mem.error.splitlines()[0]} | | | {' | '.join(counts)} |")
        else:
            out.append(
                f"| {s} | {mem.idle_kib / 1024:.1f} | {mem.extra_kib / 1024:.1f} | {mem.extra_kib / n:.1f} | "
                f"{' | '.join(counts)} |"
            )
    return [*out, ""]


def report_commands(cfg: EchoConfig, results: Results, argv: Sequence[str]) -> list[str]:
    out = ["### Exact commands", "", "```sh", shlex.join(["python", "benchmarks/ws_echo.py", *argv])]
    out += [f"{cmd}  # {name}" for name, cmd in results.server_commands.items()]
    out += [f"{cmd}  # {name}, idle WebSockets" for name, cmd in results.memory_commands.items()]
    if results.client_command:
        sizes = " ".join(map(str, cfg.sizes))
        out.append(f"{results.client_command}  # client, SIZE in {sizes}")
    return out + ["```", ""]


def write_outputs(
    cfg: EchoConfig, servers: dict[str, WsServer], results: Results, argv: Sequence[str], started: dt.datetime
) -> Path:
    run.RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stem = started.strftime("%Y-%m-%d") + "-ws-echo" + (f"-{cfg.tag}" if cfg.tag else "")
    md_path = run.RESULTS_DIR / f"{stem}.md"
    raw_path = run.RESULTS_DIR / f"{stem}.raw.json"
    env = environment(cfg, servers, results)
    tables = report_tables(cfg, servers, results)
    commands = report_commands(cfg, results, argv)
    lines = [
        f"# turboasgi WebSocket echo benchmark — {stem}",
        "",
        f"Run started {started.isoformat(timespec='seconds')}.",
        "",
    ]
    if cfg.duration < 5 or cfg.rounds < 2:
        lines += [
            f"**Short run ({cfg.duration:g} s, {cfg.rounds} round(s)): a check that things work, "
            "not numbers to quote.**",
            "",
        ]
    lines += [*env, "", *tables, *commands]
    md_path.write_text("\n".join(lines).rstrip() + "\n")
    raw = {
        "config": asdict(cfg),
        "servers": {k: asdict(v) for k, v in servers.items()},
        "cells": {
            str(size): {s: {"error": c.error, "runs": [asdict(r) for r in c.runs]} for s, c in by_s.items()}
            for size, by_s in results.cells.items()
        },
        "memory": {s: asdict(m) for s, m in results.memory.items()},
    }
    raw_path.write_text(json.dumps(raw, indent=1))
    log(f"wrote {os.path.relpath(md_path, REPO)}")
    if cfg.docs:
        rel = os.path.relpath(run.RESULTS_DIR, run.DOCS_FILE.parent)
        section = [
            f"## WebSocket echo ({stem})",
            "",
            "Round trips per second of a WebSocket echo app (`benchmarks/apps/ws_echo.py`) under a Rust load "
            "client (`benchmarks/ws_echo/`), same pinning as above: how to run it is in "
            "[`benchmarks/README.md`](../benchmarks/README.md). "
            f"Full report: [`{md_path.name}`]({rel}/{md_path.name}).",
            "",
            *env,
            "",
            *tables,
            *commands,
        ]
        run.update_docs("\n".join(section), DOCS_BEGIN, DOCS_END)
        log(f"updated {os.path.relpath(run.DOCS_FILE, REPO)}")
    return md_path


def parse_args(argv: Sequence[str]) -> EchoConfig:
    parser = argparse.ArgumentParser(
        prog="benchmarks/ws_echo.py", description=(__doc__ or "").split("\n\n")[0].replace("\n", " ")
    )
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds per run (default 10)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds, servers interleaved (default 2)")
    parser.add_argument(
        "--warmup", type=float, default=2.0, help="client warm-up seconds per run (default 2)"
    )
    parser.add_argument(
        "--sizes", nargs="+", type=int, default=[32, 16384], help="message sizes in bytes (default 32 16384)"
    )
    parser.add_argument("--connections", type=int, default=64, help="WebSocket connections (default 64)")
    parser.add_argument(
        "--servers",
        nargs="+",
        metavar="S",
        default=list(SERVER_ORDER),
        help="servers to run (default: all): " + ", ".join(SERVER_ORDER),
    )
    parser.add_argument("--text", action="store_true", help="send text messages (default: binary)")
    parser.add_argument(
        "--uvicorn-ws",
        choices=["websockets", "websockets-sansio", "wsproto"],
        default="websockets-sansio",
        help="uvicorn's WebSocket implementation, its --ws (default websockets-sansio: what uvicorn's own "
        "default, --ws auto, picks)",
    )
    parser.add_argument(
        "--idle-conns",
        type=int,
        default=2000,
        metavar="N",
        help="idle WebSockets for the memory measurement, once per server after the rounds (default 2000; "
        "0 skips it)",
    )
    parser.add_argument("--server-cpu", type=int, default=0, help="CPU the server is pinned to (default 0)")
    parser.add_argument("--client-cpu", type=int, default=1, help="CPU the client is pinned to (default 1)")
    parser.add_argument(
        "--start-timeout", type=float, default=30.0, help="seconds to wait for a server's port"
    )
    parser.add_argument("--no-docs", action="store_true", help="do not update docs/benchmarks.md")
    parser.add_argument(
        "--tag", default="", help="suffix for the result files: results/<date>-ws-echo-<tag>.md"
    )
    args = parser.parse_args(argv)
    unknown = [s for s in args.servers if s not in SERVER_ORDER]
    if unknown:
        parser.error(f"unknown server(s): {', '.join(unknown)}; known: {', '.join(SERVER_ORDER)}")
    if args.tag and not re.fullmatch(r"[\w.-]+", args.tag):
        parser.error("--tag: letters, digits, '.', '_' and '-' only")
    ncpu = os.cpu_count() or 1
    if ncpu < 2 or args.server_cpu == args.client_cpu or max(args.server_cpu, args.client_cpu) >= ncpu:
        parser.error(f"need two distinct CPUs below {ncpu} for --server-cpu and --client-cpu")
    if args.duration <= 0 or args.rounds < 1 or args.warmup < 0:
        parser.error("--duration must be > 0, --warmup >= 0 and --rounds >= 1")
    if args.connections < 1 or any(s < 1 for s in args.sizes):
        parser.error("--connections and --sizes must be at least 1")
    if args.idle_conns < 0:
        parser.error("--idle-conns must be >= 0")
    return EchoConfig(
        duration=args.duration,
        rounds=args.rounds,
        warmup=args.warmup,
        sizes=list(dict.fromkeys(args.sizes)),
        connections=args.connections,
        servers=[s for s in SERVER_ORDER if s in args.servers],
        server_cpu=args.server_cpu,
        client_cpu=args.client_cpu,
        start_timeout=args.start_timeout,
        text=args.text,
        uvicorn_ws=args.uvicorn_ws,
        idle_conns=args.idle_conns,
        docs=not args.no_docs,
        tag=args.tag,
    )


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    cfg = parse_args(argv)
    started = dt.datetime.now()
    atexit.register(run._kill_all_groups)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, run._on_signal)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    err = build_client()
    if err:
        log(err)
        return 1
    nofile = run.raise_nofile(max(cfg.connections, cfg.idle_conns) + 1024)
    if cfg.idle_conns + 100 > nofile:
        log(f"RLIMIT_NOFILE is {nofile}: memory measurement lowered to {nofile - 200} idle WebSockets")
        cfg.idle_conns = max(0, nofile - 200)
    # The harness itself stays off the server's core.
    with contextlib.suppress(OSError):
        os.sched_setaffinity(0, {cfg.client_cpu})
    servers = discover(cfg)
    try:
        results = execute(cfg, servers)
    except KeyboardInterrupt:
        log("interrupted: every server stopped, no report written")
        return 130
    finally:
        run._kill_all_groups()
    write_outputs(cfg, servers, results, argv, started)

    invalid = [
        f"{fmt_size(size)} {s}: {cell.problem()}"
        for size, by_s in results.cells.items()
        for s, cell in by_s.items()
        if not cell.valid
    ]
    invalid += [f"memory {s}: {m.error.splitlines()[0]}" for s, m in results.memory.items() if m.error]
    for line in invalid:
        log(f"INVALID {line}")
    for s in servers.values():
        if not s.available:
            log(f"{s.name}: {s.reason}")
    return 1 if invalid else 0


if __name__ == "__main__":
    sys.exit(main())
