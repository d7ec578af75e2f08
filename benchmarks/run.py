"""Benchmark turboasgi against uvicorn, granian and a bare hyper server on one machine.

Every server runs pinned to one core (``taskset -c 0``) and ``wrk`` to another (``taskset -c 1``);
servers are interleaved round by round and medians are reported. A run that had any non-2xx/3xx
response or any socket error is never reported as a number: its cell is marked invalid and the
harness exits non-zero. See ``benchmarks/README.md``.

    python benchmarks/run.py [--duration 10] [--rounds 3] [--workloads ...] [--servers ...] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import datetime as dt
import http.client
import importlib.metadata
import json
import os
import platform
import re
import resource
import shlex
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from workloads import APPS_DIR, BY_NAME, WORKLOADS, Workload

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
DOCS_FILE = REPO / "docs" / "benchmarks.md"
CEILING_DIR = BENCH_DIR / "ceiling"
CEILING_BIN = CEILING_DIR / "target" / "release" / "ceiling"
HOST = "127.0.0.1"
SERVER_ORDER = ("ceiling", "turboasgi", "turboasgi-base", "uvicorn", "granian")
PEERS = ("turboasgi", "turboasgi-base", "uvicorn", "granian")
# Servers that are a turboasgi build: the installed one, or one from a directory (--turboasgi-path,
# --baseline) put first on PYTHONPATH.
TURBOASGI_BUILDS = ("turboasgi", "turboasgi-base")
# What benchmarks/build_turboasgi.py writes next to the package it installs into a directory.
BUILD_INFO = "turboasgi-build.json"
DOCS_BEGIN = "<!-- benchmarks:begin (written by benchmarks/run.py; edit outside these markers) -->"
DOCS_END = "<!-- benchmarks:end -->"


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------------
# Process handling: every child runs in its own process group, killed on any exit path.
# --------------------------------------------------------------------------------------------------

_LIVE_GROUPS: set[int] = set()


def _kill_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _kill_all_groups() -> None:
    for pgid in list(_LIVE_GROUPS):
        _kill_group(pgid, signal.SIGKILL)
        _LIVE_GROUPS.discard(pgid)


def _on_signal(signum: int, _frame: object) -> None:
    # Turn SIGTERM/SIGHUP into an exception so that every ``finally`` runs and stops its server.
    raise SystemExit(128 + signum)


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
    """SIGTERM the process group (graceful shutdown), then SIGKILL it after ``timeout``."""
    pgid = proc.pid  # start_new_session=True: the child leads its own group
    if proc.poll() is None:
        _kill_group(pgid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
    # Workers or helper processes may outlive the leader: kill whatever is left of the group.
    _kill_group(pgid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(2)
    _LIVE_GROUPS.discard(pgid)


def spawn(argv: Sequence[str], *, log_path: Path, cwd: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with open(log_path, "wb") as out:
        proc = subprocess.Popen(
            list(argv), cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    _LIVE_GROUPS.add(proc.pid)
    return proc


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def wait_for_port(proc: subprocess.Popen[bytes], port: int, deadline_s: float) -> str | None:
    """Wait until ``port`` accepts connections; an error message if the server exited or timed out."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return f"exited with code {proc.returncode} before listening"
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=0.5):
            return None
        time.sleep(0.05)
    return f"not listening on port {port} after {deadline_s:.0f}s"


def tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.strip().splitlines()[-lines:])


def tree_pids(pid: int) -> list[int]:
    """``pid`` and all its descendants (via /proc/PID/task/TID/children)."""
    pids: list[int] = []
    stack = [pid]
    while stack:
        current = stack.pop()
        pids.append(current)
        try:
            tids = os.listdir(f"/proc/{current}/task")
        except OSError:
            continue
        for tid in tids:
            with contextlib.suppress(OSError):
                children = Path(f"/proc/{current}/task/{tid}/children").read_text().split()
                stack.extend(int(c) for c in children)
    return pids


CLK_TCK = os.sysconf("SC_CLK_TCK")


def tree_cpu_split_s(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds, all threads, used so far by the live processes of the tree."""
    user = system = 0
    for p in tree_pids(pid):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            user, system = user + int(fields[11]), system + int(fields[12])  # fields 14, 15 of stat
    return user / CLK_TCK, system / CLK_TCK


def tree_cpu_s(pid: int) -> float:
    """CPU seconds (user + system, all threads) used so far by the live processes of the tree."""
    return sum(tree_cpu_split_s(pid))


def cpu_jiffies(cpu: int) -> tuple[int, int]:
    """(busy, total) jiffies of one CPU from /proc/stat: busy counts every process on that core."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/stat").read_text().splitlines():
            if line.startswith(f"cpu{cpu} "):
                values = [int(v) for v in line.split()[1:]]
                idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
                total = sum(values[:8])  # guest time is already counted in user
                return total - idle, total
    return 0, 0


def tree_rss_kib(pid: int) -> int:
    """Sum of VmRSS over the process tree, in KiB."""
    total = 0
    for p in tree_pids(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
                    break
    return total


# --------------------------------------------------------------------------------------------------
# Servers
# --------------------------------------------------------------------------------------------------


@dataclass
class Server:
    name: str
    version: str = ""
    available: bool = True
    reason: str = ""  # why it is not available
    warning: str = ""  # available, but the numbers may not be representative
    # A directory holding a built `turboasgi` package, put first on PYTHONPATH so that it wins over
    # the installed one ("" = the installed one).
    pythonpath: str = ""
    build: str = ""  # which build of turboasgi this is (commit, where it was imported from)
    tls: tuple[str, str] | None = None  # (certificate, key) files: serve HTTPS (run.py --tls)
    extra: tuple[str, ...] = ()  # more turboasgi options, to measure what one costs (instructions.py)

    def argv(self, workload: Workload, port: int, *, idle_conns: int = 0) -> list[str]:
        """The server's command line; ``idle_conns`` > 0 adapts it to hold that many idle connections."""
        py = sys.executable
        if self.name == "ceiling":
            return [str(CEILING_BIN), "--host", HOST, "--port", str(port)]
        if self.name in TURBOASGI_BUILDS:
            cmd = [py, "-m", "turboasgi", workload.app, "--host", HOST, "--port", str(port)]
            cmd += ["--no-access-log", "--log-level", "warning"]
            if idle_conns:
                cmd += ["--timeout-keep-alive", "3600"]
            if self.tls:
                cmd += ["--ssl-certfile", self.tls[0], "--ssl-keyfile", self.tls[1]]
            return cmd + list(self.extra)
        if self.name == "uvicorn":
            cmd = [py, "-m", "uvicorn", workload.app, "--host", HOST, "--port", str(port)]
            cmd += ["--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning"]
            if idle_conns:
                cmd += ["--timeout-keep-alive", "3600"]
            if self.tls:
                cmd += ["--ssl-certfile", self.tls[0], "--ssl-keyfile", self.tls[1]]
            return cmd
        if self.name == "granian":
            cmd = [py, "-m", "granian", "--interface", "asgi", "--workers", "1", "--runtime-threads", "1"]
            cmd += ["--loop", "uvloop", "--host", HOST, "--port", str(port), "--log-level", "warning"]
            if idle_conns:
                # granian's --backpressure caps accepted connections per worker (default: backlog
                # = 1024), idle keep-alive ones included: raise it, or connections beyond it stall.
                cmd += ["--backlog", "4096", "--backpressure", str(idle_conns + 64)]
                cmd += ["--http1-header-read-timeout", "60000"]
            if self.tls:
                cmd += ["--ssl-certificate", self.tls[0], "--ssl-keyfile", self.tls[1]]
            return cmd + [workload.app]
        raise ValueError(self.name)

    def serves(self, workload: Workload) -> bool:
        # the bare hyper ceiling speaks plain HTTP only
        return self.name != "ceiling" or (workload.ceiling and self.tls is None)


def dist_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def probe_import(modules: Sequence[str]) -> str | None:
    """Import ``modules`` in a fresh interpreter; the error's last line if that fails."""
    code = "; ".join(f"import {m}" for m in modules)
    try:
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        return f"`{code}` timed out"
    if proc.returncode == 0:
        return None
    lines = proc.stderr.strip().splitlines()
    return lines[-1] if lines else f"`{code}` exited with {proc.returncode}"


def build_ceiling() -> str | None:
    if CEILING_BIN.exists():
        return None
    cargo = shutil.which("cargo")
    if cargo is None:
        return "binary missing and cargo not found"
    manifest = CEILING_DIR / "Cargo.toml"
    log(f"building the ceiling binary: cargo build --release --manifest-path {manifest.relative_to(REPO)}")
    proc = subprocess.run(
        [cargo, "build", "--release", "--manifest-path", str(manifest)], capture_output=True, text=True
    )
    if proc.returncode != 0 or not CEILING_BIN.exists():
        return "cargo build failed: " + (proc.stderr.strip().splitlines() or ["?"])[-1]
    return None


def ceiling_version() -> str:
    lock = CEILING_DIR / "Cargo.lock"
    hyper = "?"
    with contextlib.suppress(OSError):
        m = re.search(r'name = "hyper"\nversion = "([^"]+)"', lock.read_text())
        if m:
            hyper = m.group(1)
    rustc = "rustc ?"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
        rustc = " ".join(rustc.split()[:2])
    return f"hyper {hyper}, {rustc}"


def python_env(pythonpath: str = "") -> dict[str, str]:
    """The environment of a server or probe: ``pythonpath`` (if any), then the apps, then the caller's."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [pythonpath, str(APPS_DIR), env.get("PYTHONPATH", "")]))
    return env


def turboasgi_files(pythonpath: str) -> tuple[Path, Path] | str:
    """Where ``turboasgi`` and its ``_core`` import from in a server's environment, or why they do not."""
    code = "import turboasgi, turboasgi._core as c; print(turboasgi.__file__); print(c.__file__)"
    try:
        proc = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=APPS_DIR,
            env=python_env(pythonpath),
        )
    except subprocess.TimeoutExpired:
        return "importing turboasgi timed out"
    lines = proc.stdout.split()
    if proc.returncode != 0 or len(lines) != 2:
        err = proc.stderr.strip().splitlines()
        return err[-1] if err else f"importing turboasgi exited with {proc.returncode}"
    return Path(lines[0]), Path(lines[1])


def turboasgi_build_warning(core: Path) -> str:
    """Flag a debug (unoptimised) build of turboasgi._core: it is several times slower.

    The project's release profile sets no ``debug``, so debug info in the extension module means it came
    from the dev profile (e.g. ``maturin develop`` without ``--release``).
    """
    try:
        size = core.stat().st_size
    except OSError:
        return ""
    # A debug section, not the string: release builds of std mention ".debug_info" in their symbolizer.
    sections = subprocess.run(["readelf", "-S", "-W", str(core)], capture_output=True, text=True, check=False)
    has_debug = " .debug_info " in sections.stdout if sections.returncode == 0 else size > 16 * 2**20
    if has_debug:
        return (
            f"{core.name} ({size / 2**20:.0f} MiB) carries debug info: probably an unoptimised "
            "dev-profile build (`maturin develop` without `--release`); its numbers are not representative"
        )
    return ""


def stale_build_warning(core: Path) -> str:
    """Flag an in-tree build older than the Rust sources it is built from: it does not measure them."""
    try:
        built = core.stat().st_mtime
        tracked = subprocess.run(
            ["git", "ls-files", "-z", "src", "Cargo.toml", "Cargo.lock"],
            capture_output=True,
            text=True,
            cwd=REPO,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return ""
    newer = [
        f for f in tracked.split("\0") if f and (REPO / f).exists() and (REPO / f).stat().st_mtime > built
    ]
    if newer:
        return (
            f"{core.name} is older than {', '.join(sorted(newer)[:3])}{'…' if len(newer) > 3 else ''}: "
            "it was built before the last change to the Rust sources (rebuild it)"
        )
    return ""


def read_build_info(directory: Path) -> dict[str, str]:
    """What build_turboasgi.py recorded about the build installed in ``directory`` ({} if nothing)."""
    with contextlib.suppress(OSError, ValueError):
        info = json.loads((directory / BUILD_INFO).read_text())
        if isinstance(info, dict):
            return {str(k): str(v) for k, v in info.items()}
    return {}


def describe_turboasgi(server: Server) -> str | None:
    """Fill in which turboasgi build ``server`` runs (and warnings about it); an error if it is unusable."""
    files = turboasgi_files(server.pythonpath)
    if isinstance(files, str):
        return files
    package, core = files
    if server.pythonpath:
        root = Path(server.pythonpath).resolve()
        if not core.resolve().is_relative_to(root):
            return f"turboasgi._core imports from {core}, not from {root}: {root} holds no built turboasgi"
        info = read_build_info(root)
        if info:
            server.version = info.get("version", server.version)
            server.build = (
                f"{info.get('commit', '?')} ({info.get('subject', '')[:72]}), "
                f"{info.get('profile', '?')} build of {info.get('built', '?')} in {root}"
            )
        else:
            server.build = f"{root} (no {BUILD_INFO}: commit unknown)"
    elif package.resolve().is_relative_to(REPO):
        server.build = f"this repository's tree ({core.resolve().relative_to(REPO)})"
    else:
        server.build = f"installed at {package.parent}"
    warnings = [turboasgi_build_warning(core)]
    if not server.pythonpath and package.resolve().is_relative_to(REPO):
        warnings.append(stale_build_warning(core))
    server.warning = "; ".join(filter(None, warnings))
    if server.warning:
        log(f"{server.name}: WARNING: {server.warning}")
    return None


def discover_servers(names: Sequence[str], builds: dict[str, str] | None = None) -> dict[str, Server]:
    """The servers to run; ``builds`` maps a turboasgi server name to the directory its build is in."""
    servers: dict[str, Server] = {}
    for name in names:
        server = Server(name)
        if name == "ceiling":
            err = build_ceiling()
            server.version = ceiling_version()
        elif name in TURBOASGI_BUILDS:
            server.pythonpath = (builds or {}).get(name, "")
            server.version = dist_version("turboasgi") or "?"
            if name != "turboasgi" and not server.pythonpath:
                err = "needs a build directory (--baseline)"
            else:
                err = describe_turboasgi(server)
        elif name == "uvicorn":
            err = probe_import(["uvicorn", "uvloop", "httptools"])
            server.version = dist_version("uvicorn") or "?"
        elif name == "granian":
            err = probe_import(["granian", "uvloop"])
            server.version = dist_version("granian") or "?"
        else:
            err = "unknown server"
        if err:
            server.available, server.reason = False, f"not available: {err}"
            log(f"{name}: {server.reason}")
        servers[name] = server
    return servers


@dataclass
class Running:
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path


@contextlib.contextmanager
def running(
    server: Server, workload: Workload, cfg: Config, tmp: Path, *, idle_conns: int = 0
) -> Iterator[Running | str]:
    """Start ``server`` on ``workload``'s app; yields a Running, or an error string if it did not start."""
    port = free_port()
    argv = ["taskset", "-c", str(cfg.server_cpu), *server.argv(workload, port, idle_conns=idle_conns)]
    env = python_env(server.pythonpath)
    env["PYTHONUNBUFFERED"] = "1"
    log_path = tmp / f"{server.name}-{workload.name}-{port}.log"
    proc = spawn(argv, log_path=log_path, cwd=APPS_DIR, env=env)
    try:
        err = wait_for_port(proc, port, cfg.start_timeout)
        if err is None:
            err = check_response(workload, port, tls=server.tls is not None)
        if err is not None:
            out = tail(log_path)
            yield f"failed to start: {err}" + (f"\n{out}" if out else "")
            return
        yield Running(proc, port, log_path)
    finally:
        stop_process(proc)


def display_command(cfg: Config, server: Server, workload: Workload, *, idle_conns: int = 0) -> str:
    """The server's command as a reader would type it: ``python``, paths relative to the repository."""
    argv = ["taskset", "-c", str(cfg.server_cpu), *server.argv(workload, 8000, idle_conns=idle_conns)]
    argv = ["python" if a == sys.executable else a for a in argv]
    argv = [os.path.relpath(a, REPO) if a.startswith(str(REPO) + os.sep) else a for a in argv]
    if server.pythonpath:
        argv = [f"PYTHONPATH={server.pythonpath}:benchmarks/apps", *argv]
    return shlex.join(argv)


def client_tls_context() -> ssl.SSLContext:
    """The benchmark's own self-signed certificate is not verified: the load is what is measured."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def make_certificate(directory: Path) -> tuple[str, str]:
    """A self-signed ECDSA P-256 certificate for 127.0.0.1 (what a typical deployment's key is)."""
    cert, key = directory / "bench-cert.pem", directory / "bench-key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
        + ["-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=localhost"]
        + ["-addext", f"subjectAltName=IP:{HOST},DNS:localhost"],
        check=True,
        capture_output=True,
    )
    return str(cert), str(key)


def check_response(workload: Workload, port: int, *, tls: bool = False) -> str | None:
    """One request, checked (status 2xx, body size where known), before any load is put on a server."""
    conn: http.client.HTTPConnection = (
        http.client.HTTPSConnection(HOST, port, timeout=10, context=client_tls_context())
        if tls
        else http.client.HTTPConnection(HOST, port, timeout=10)
    )
    try:
        headers = dict(workload.headers)
        conn.request(workload.method, workload.target, body=workload.body or None, headers=headers)
        resp = conn.getresponse()
        body = resp.read()
    except (OSError, http.client.HTTPException) as exc:
        return f"request failed: {exc!r}"
    finally:
        conn.close()
    if not 200 <= resp.status < 300:
        return f"{workload.method} {workload.target} answered {resp.status}: {body[:200]!r}"
    if workload.response_size is not None and len(body) != workload.response_size:
        return (
            f"{workload.method} {workload.target} sent {len(body)} bytes, expected {workload.response_size}"
        )
    return None


# --------------------------------------------------------------------------------------------------
# wrk
# --------------------------------------------------------------------------------------------------


@dataclass
class WrkResult:
    rps: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    requests: int = 0
    non2xx: int = 0
    socket_errors: dict[str, int] = field(default_factory=dict)
    error: str = ""  # why this run is invalid ("" when valid)
    # CPU accounting over the measured run (wall clock around wrk):
    wall_s: float = 0.0
    server_cpu_s: float = 0.0  # the server's process tree
    wrk_cpu_s: float = 0.0
    core_busy: float = 0.0  # fraction of the server's core busy, whoever used it

    @property
    def valid(self) -> bool:
        return not self.error

    @property
    def server_cpu(self) -> float:
        return self.server_cpu_s / self.wall_s if self.wall_s else 0.0

    @property
    def wrk_cpu(self) -> float:
        return self.wrk_cpu_s / self.wall_s if self.wall_s else 0.0

    @property
    def cpu_us(self) -> float:
        """Server CPU µs per completed request: unlike 1e6/rps, not inflated by CPU stolen by others."""
        return self.server_cpu_s / self.requests * 1e6 if self.requests else 0.0


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def parse_duration_ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text.strip())
    if not m:
        raise ValueError(f"bad wrk duration {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_wrk(output: str) -> WrkResult:
    r = WrkResult()
    m = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.M)
    if m is None:
        r.error = "wrk printed no Requests/sec"
        return r
    r.rps = float(m.group(1))
    m = re.search(r"^\s*(\d+) requests in ", output, re.M)
    r.requests = int(m.group(1)) if m else 0
    for pct, attr in (("50", "p50_ms"), ("99", "p99_ms")):
        m = re.search(rf"^\s+{pct}(?:\.0+)?%\s+(\S+)", output, re.M)
        if m:
            setattr(r, attr, parse_duration_ms(m.group(1)))
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    r.non2xx = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    if m:
        r.socket_errors = {
            k: int(v) for k, v in zip(("connect", "read", "write", "timeout"), m.groups(), strict=True)
        }
    problems = []
    if r.non2xx:
        problems.append(f"{r.non2xx} non-2xx/3xx responses")
    errors = {k: v for k, v in r.socket_errors.items() if v}
    if errors:
        problems.append("socket errors " + ", ".join(f"{k} {v}" for k, v in errors.items()))
    if r.requests == 0 or r.rps <= 0:
        problems.append("no requests completed")
    r.error = "; ".join(problems)
    return r


def wrk_argv(
    cfg: Config, workload: Workload, port: int, conns: int, duration: float, script: Path | None
) -> list[str]:
    argv = ["taskset", "-c", str(cfg.client_cpu), "wrk", "-t1", f"-c{conns}", f"-d{duration:g}s", "--latency"]
    argv += ["--timeout", f"{cfg.wrk_timeout:g}s"]
    if script is not None:
        argv += ["-s", str(script)]
    scheme = "https" if cfg.tls else "http"
    return argv + [f"{scheme}://{HOST}:{port}{workload.target}"]


def run_wrk(argv: list[str], duration: float) -> tuple[str, str | None, float]:
    """wrk's stdout, an error (or None) and the CPU seconds wrk used."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60)
    except subprocess.TimeoutExpired:
        return "", "wrk did not finish", 0.0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        return proc.stdout, f"wrk exited with {proc.returncode}: {proc.stderr.strip()[-300:]}", cpu
    return proc.stdout, None, cpu


def load_run(
    cfg: Config, workload: Workload, run: Running, conns: int, script: Path | None, warmup: bool
) -> tuple[WrkResult, list[str]]:
    if warmup and cfg.warmup > 0:
        run_wrk(wrk_argv(cfg, workload, run.port, conns, cfg.warmup, script), cfg.warmup)  # result unused
    argv = wrk_argv(cfg, workload, run.port, conns, cfg.duration, script)
    cpu0, (busy0, total0), t0 = tree_cpu_s(run.proc.pid), cpu_jiffies(cfg.server_cpu), time.monotonic()
    out, err, wrk_cpu = run_wrk(argv, cfg.duration)
    cpu1, (busy1, total1), t1 = tree_cpu_s(run.proc.pid), cpu_jiffies(cfg.server_cpu), time.monotonic()
    result = parse_wrk(out) if err is None else WrkResult(error=err)
    result.wall_s, result.server_cpu_s, result.wrk_cpu_s = t1 - t0, cpu1 - cpu0, wrk_cpu
    result.core_busy = (busy1 - busy0) / (total1 - total0) if total1 > total0 else 0.0
    if run.proc.poll() is not None:
        result.error = "; ".join(filter(None, [result.error, f"server exited with {run.proc.returncode}"]))
    return result, argv


# --------------------------------------------------------------------------------------------------
# Memory with idle keep-alive connections
# --------------------------------------------------------------------------------------------------


@dataclass
class MemResult:
    idle_kib: int = 0
    loaded_kib: int = 0
    conns: int = 0
    alive: int = 0
    failed: int = 0  # connections that did not open or got no (or the wrong) answer
    closed_kib: int = 0  # RSS CLOSE_SETTLE_S after the client closed every connection (0: not measured)
    error: str = ""

    @property
    def extra_kib(self) -> int:
        return self.loaded_kib - self.idle_kib

    @property
    def kept_kib(self) -> int:
        """RSS the server still holds after the flood closed, over its idle RSS before it."""
        return self.closed_kib - self.idle_kib


# How long after the flood of idle connections closes the RSS is read again: time for the server to
# see every close and for a periodic allocator trim (turboasgi checks four times a second) to happen.
CLOSE_SETTLE_S = 3.0


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    m = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
    if m is None:
        raise ValueError("response without content-length")
    await reader.readexactly(int(m.group(1)))
    return status


def _get_request(port: int) -> bytes:
    return f"GET / HTTP/1.1\r\nHost: {HOST}:{port}\r\n\r\n".encode()


Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]
# What a new idle connection sends (given the server's port; called once per connection), and how its
# answer is read: to the end, returning the status code.
RequestFor = Callable[[int], bytes]
ReadStatus = Callable[[asyncio.StreamReader], Awaitable[int]]


async def _open_idle_conns(
    port: int,
    count: int,
    parallel: int,
    *,
    request: RequestFor = _get_request,
    read_status: ReadStatus = _read_response,
    expect: int = 200,
    tls: ssl.SSLContext | None = None,
) -> tuple[list[Conn], list[str]]:
    """Open ``count`` connections, ``parallel`` at a time, each sending one request and reading the answer.

    Returns the connections (failed ones included, to be closed by the caller) and one error per failure.
    """
    sem = asyncio.Semaphore(parallel)
    conns: list[Conn] = []
    errors: list[str] = []

    async def one() -> None:
        async with sem:
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST, port, ssl=tls), 10)
                conns.append((reader, writer))
                writer.write(request(port))
                status = await asyncio.wait_for(read_status(reader), 10)
                if status != expect:
                    errors.append(f"status {status}")
            except (OSError, ValueError, asyncio.IncompleteReadError, asyncio.TimeoutError) as exc:
                errors.append(repr(exc))

    await asyncio.gather(*(one() for _ in range(count)))
    return conns, errors


def measure_memory(
    cfg: Config,
    server: Server,
    tmp: Path,
    *,
    workload: Workload = BY_NAME["hello"],
    request: RequestFor = _get_request,
    read_status: ReadStatus = _read_response,
    expect: int = 200,
) -> MemResult:
    """RSS of ``server``'s process tree idle, with ``cfg.memory_conns`` idle connections open, and
    ``CLOSE_SETTLE_S`` after they all closed.

    Each connection sends ``request(port)`` and reads the answer with ``read_status``, which must be
    ``expect``; the defaults are one keep-alive ``GET /`` on ``workload``'s app.
    """
    result = MemResult(conns=cfg.memory_conns)
    with running(server, workload, cfg, tmp, idle_conns=cfg.memory_conns) as run:
        if isinstance(run, str):
            result.error = run
            return result
        time.sleep(1.0)
        result.idle_kib = tree_rss_kib(run.proc.pid)
        loop = asyncio.new_event_loop()
        conns: list[Conn] = []
        try:
            conns, errors = loop.run_until_complete(
                _open_idle_conns(
                    run.port,
                    cfg.memory_conns,
                    200,
                    request=request,
                    read_status=read_status,
                    expect=expect,
                    tls=client_tls_context() if server.tls else None,
                )
            )
            result.failed = len(errors)
            err = f"{len(errors)} connections failed (first: {errors[0]})" if errors else ""
            loop.run_until_complete(asyncio.sleep(2.0))
            result.loaded_kib = tree_rss_kib(run.proc.pid)
            loop.run_until_complete(asyncio.sleep(0.2))
            # A connection the server closed has seen EOF by now.
            result.alive = sum(1 for r, w in conns if not w.is_closing() and not r.at_eof())
            if err:
                result.error = err
            elif result.alive < cfg.memory_conns:
                result.error = f"only {result.alive} of {cfg.memory_conns} connections still open"
            elif run.proc.poll() is not None:
                result.error = f"server exited with {run.proc.returncode}"
        finally:
            for _, w in conns:
                w.transport.abort()
            loop.run_until_complete(asyncio.sleep(0))
            loop.close()
        if not result.error:
            time.sleep(CLOSE_SETTLE_S)
            result.closed_kib = tree_rss_kib(run.proc.pid)
    return result


# --------------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------------


@dataclass
class Config:
    duration: float
    rounds: int
    warmup: float
    concurrency: list[int]
    workloads: list[str]
    servers: list[str]
    server_cpu: int
    client_cpu: int
    memory_conns: int
    start_timeout: float
    wrk_timeout: float
    app_cost: bool
    docs: bool
    tag: str
    # Publish to docs/benchmarks.md even when the tree has uncommitted changes.
    allow_dirty: bool = False
    # A turboasgi server name -> the directory holding its build (--turboasgi-path, --baseline).
    builds: dict[str, str] = field(default_factory=dict)
    tls: bool = False  # every server serves HTTPS with one self-signed ECDSA P-256 certificate


@dataclass
class Cell:
    runs: list[WrkResult] = field(default_factory=list)
    error: str = ""  # server did not start for one of the rounds

    @property
    def valid(self) -> bool:
        return bool(self.runs) and not self.error and all(r.valid for r in self.runs)

    def median(self, attr: str) -> float:
        return float(statistics.median(float(getattr(r, attr)) for r in self.runs))

    def with_span(self, attr: str, fmt: Callable[[float], str]) -> str:
        """The median, then the min–max over rounds when there was more than one."""
        return median_span([float(getattr(r, attr)) for r in self.runs], fmt)

    def problem(self) -> str:
        if self.error:
            return self.error.splitlines()[0]
        bad = [r.error for r in self.runs if r.error]
        return "; ".join(bad) if bad else ("no run" if not self.runs else "")


@dataclass
class Results:
    cells: dict[str, dict[int, dict[str, Cell]]] = field(default_factory=dict)
    memory: dict[str, list[MemResult]] = field(default_factory=dict)
    app_cost: dict[str, float] = field(default_factory=dict)
    wrk_commands: dict[str, str] = field(default_factory=dict)
    server_commands: dict[str, str] = field(default_factory=dict)
    loadavg_start: str = ""
    revision: str = ""  # the repository's commit line, read before anything was measured or written
    dirty: list[str] = field(default_factory=list)  # its uncommitted changes then

    def cell(self, workload: str, conns: int, server: str) -> Cell:
        return self.cells.setdefault(workload, {}).setdefault(conns, {}).setdefault(server, Cell())


def ensure_wrk() -> None:
    if shutil.which("wrk"):
        return
    if os.geteuid() == 0 and shutil.which("apt-get"):
        log("wrk not found: apt-get install -y wrk")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        if subprocess.run(["apt-get", "install", "-y", "wrk"], env=env).returncode != 0:
            subprocess.run(["apt-get", "update"], env=env)
            subprocess.run(["apt-get", "install", "-y", "wrk"], env=env)
    if not shutil.which("wrk"):
        sys.exit(
            "wrk is not installed and could not be installed: install it (Debian/Ubuntu: apt-get install wrk)"
        )


def raise_nofile(wanted: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def measure_app_cost(cfg: Config, workloads: Sequence[str], quick: bool) -> dict[str, float]:
    argv = ["taskset", "-c", str(cfg.server_cpu), sys.executable, str(BENCH_DIR / "appcost.py"), *workloads]
    if quick:
        argv += ["--seconds", "0.1", "--repeat", "3"]
    log("in-process app cost: " + " ".join(workloads))
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=BENCH_DIR, timeout=600)
    if proc.returncode != 0:
        log(f"app cost measurement failed: {proc.stderr.strip()[-500:]}")
        return {}
    data: dict[str, dict[str, Any]] = json.loads(proc.stdout)
    return {name: float(v["us"]) for name, v in data.items()}


def loadavg() -> str:
    with contextlib.suppress(OSError):
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return "?"


def execute(cfg: Config, servers: dict[str, Server], quick: bool) -> Results:
    rev, dirty = tree_state()
    results = Results(loadavg_start=loadavg(), revision=describe_revision(rev, dirty), dirty=dirty)
    available = [s for s in cfg.servers if servers[s].available]
    if cfg.app_cost:
        results.app_cost = measure_app_cost(cfg, cfg.workloads, quick)
    with tempfile.TemporaryDirectory(prefix="turboasgi-bench-") as tmpdir:
        tmp = Path(tmpdir)
        scripts: dict[str, Path | None] = {}
        for name in cfg.workloads:
            lua = BY_NAME[name].wrk_lua()
            scripts[name] = None
            if lua is not None:
                path = tmp / f"{name}.lua"
                path.write_text(lua)
                scripts[name] = path
        for rnd in range(cfg.rounds):
            # Rotate the server order every round so no server always runs first (or last).
            order = available[rnd % len(available) :] + available[: rnd % len(available)] if available else []
            log(f"round {rnd + 1}/{cfg.rounds}: {', '.join(order)}")
            for name in cfg.workloads:
                workload = BY_NAME[name]
                for sname in order:
                    server = servers[sname]
                    if not server.serves(workload):
                        continue
                    results.server_commands.setdefault(sname, display_command(cfg, server, workload))
                    with running(server, workload, cfg, tmp) as run:
                        if isinstance(run, str):
                            log(f"{sname} on {name}: {run}")
                            for conns in cfg.concurrency:
                                results.cell(name, conns, sname).error = run
                            continue
                        for i, conns in enumerate(cfg.concurrency):
                            # One warm-up per server start: the later concurrencies find it warm.
                            res, argv = load_run(cfg, workload, run, conns, scripts[name], warmup=i == 0)
                            results.cell(name, conns, sname).runs.append(res)
                            shown = [f"{name}.lua" if a == str(scripts[name]) else a for a in argv]
                            results.wrk_commands.setdefault(
                                f"{name}/{conns}", shlex.join(shown).replace(f":{run.port}/", ":8000/")
                            )
                            status = "ok" if res.valid else f"INVALID: {res.error}"
                            log(
                                f"{name:<15} c={conns:<4} {sname:<14} {res.rps:>10.0f} req/s  "
                                f"p50 {res.p50_ms:.2f} ms  p99 {res.p99_ms:.2f} ms  "
                                f"cpu {res.cpu_us:.1f} us/req  srv {res.server_cpu:.0%} "
                                f"core {res.core_busy:.0%} wrk {res.wrk_cpu:.0%}  {status}"
                            )
            if cfg.memory_conns > 0:
                for sname in order:
                    log(f"memory: {sname} with {cfg.memory_conns} idle keep-alive connections")
                    mem = measure_memory(cfg, servers[sname], tmp)
                    results.memory.setdefault(sname, []).append(mem)
                    if mem.error:
                        log(f"memory: {sname}: INVALID: {mem.error.splitlines()[0]}")
                    else:
                        log(
                            f"memory: {sname}: idle {mem.idle_kib / 1024:.1f} MiB, "
                            f"+{mem.extra_kib / 1024:.1f} MiB with {mem.conns} connections, "
                            f"{mem.kept_kib / 1024:+.1f} MiB after they closed"
                        )
    return results


# --------------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------------


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def mem_total_gib() -> float:
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    return 0.0


# Files the harness itself writes: changing them does not change what is measured.
HARNESS_OUTPUTS = ("benchmarks/results/", "docs/benchmarks.md")


def tree_state() -> tuple[str, list[str]]:
    """The short commit of the repository and its uncommitted changes (untracked files included,
    ignored files and the harness's own outputs excluded); ("", []) outside a git checkout."""
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain=v1", "-z", "--untracked-files=all"],
            capture_output=True,
            text=True,
            cwd=REPO,
        ).stdout
    except OSError:
        return "", []
    dirty: list[str] = []
    entries = iter(status.split("\0"))
    for entry in entries:
        if len(entry) < 4:
            continue
        if entry[0] in "RC":
            next(entries, None)  # -z puts a rename's source path in the next entry
        path = entry[3:]
        if not path.startswith(HARNESS_OUTPUTS):
            dirty.append(path)
    return rev, dirty


def describe_revision(rev: str, dirty: Sequence[str]) -> str:
    """The commit line of a report: names the uncommitted changes instead of passing for ``rev``."""
    if not rev:
        return "? (not a git checkout)"
    if not dirty:
        return f"{rev} (clean: no uncommitted changes)"
    shown = ", ".join(f"`{p}`" for p in dirty[:5]) + (f" and {len(dirty) - 5} more" if len(dirty) > 5 else "")
    return f"{rev} **with uncommitted changes** ({shown}): not a measurement of {rev}"


def git_revision() -> str:
    return describe_revision(*tree_state())


def wrk_version() -> str:
    with contextlib.suppress(OSError):
        out = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout
        m = re.search(r"wrk (\S+)", out)
        if m:
            return m.group(1)
    return "?"


def fmt_rps(v: float) -> str:
    return f"{v:,.0f}"


def fmt_ms(v: float) -> str:
    return f"{v:.2f}" if v < 100 else f"{v:.0f}"


def environment(cfg: Config, servers: dict[str, Server], results: Results) -> list[str]:
    libs = ["uvloop", "httptools", "starlette", "fastapi", "pydantic"]
    lib_versions = ", ".join(f"{lib} {dist_version(lib) or 'missing'}" for lib in libs)
    server_versions = ", ".join(
        f"{s.name} {s.version or '?'}" + ("" if s.available else " (not available)") for s in servers.values()
    )
    warnings = [f"- **Warning — {s.name}**: {s.warning}" for s in servers.values() if s.warning]
    return [
        f"- Machine: {cpu_model()}, {os.cpu_count()} cores, {mem_total_gib():.0f} GiB RAM, "
        f"Linux {platform.release()}",
        f"- Load average (1, 5, 15 min) at start: {results.loadavg_start}, at the end: {loadavg()} "
        "(other work on the machine shows here and in the *core busy* column)",
        f"- Pinning: server on CPU {cfg.server_cpu} (`taskset -c {cfg.server_cpu}`), "
        f"wrk on CPU {cfg.client_cpu} (`taskset -c {cfg.client_cpu}`)",
        f"- Python {platform.python_version()} ({platform.python_implementation()}); {lib_versions}",
        f"- Servers: {server_versions}; wrk {wrk_version()}",
        f"- Repository commit: {results.revision}",
        *[
            f"- {s.name} build: {s.build}" + ("" if s.available else " (not available)")
            for s in servers.values()
            if s.build
        ],
        *(
            [
                "- **HTTPS**: every server serves TLS with one self-signed ECDSA P-256 certificate; wrk's "
                "OpenSSL client, TLS 1.3"
            ]
            if cfg.tls
            else []
        ),
        *warnings,
        f"- Load: wrk -t1, {cfg.duration:g} s per run ({cfg.warmup:g} s warm-up after each server start), "
        f"concurrency {', '.join(map(str, cfg.concurrency))}; {cfg.rounds} round(s), servers interleaved "
        f"(order rotated every round), median reported with the min–max over rounds in brackets",
    ]


def median_span(values: Sequence[float], fmt: Callable[[float], str]) -> str:
    """The median of ``values``, then their min–max when there is more than one."""
    text = fmt(statistics.median(values))
    if len(values) > 1:
        text += f" ({fmt(min(values))}–{fmt(max(values))})"
    return text


def ratio(a: Cell | None, b: Cell | None) -> str:
    """Median over median; in brackets the min–max of the same-round ratios (servers of one round ran
    back to back, so a round's ratio is the fairest single comparison)."""
    if a is None or b is None or not a.valid or not b.valid:
        return ""
    text = f"{a.median('rps') / b.median('rps'):.2f}×"
    if len(a.runs) > 1 and len(a.runs) == len(b.runs):
        per_round = [x.rps / y.rps for x, y in zip(a.runs, b.runs, strict=True)]
        text += f" ({min(per_round):.2f}–{max(per_round):.2f})"
    return text


def report_tables(cfg: Config, servers: dict[str, Server], results: Results) -> list[str]:
    cols = [s for s in SERVER_ORDER if s in cfg.servers]
    out: list[str] = []
    out += ["### Requests per second (median, min–max over rounds)", ""]
    out += ["| workload | conns | " + " | ".join(cols) + " |", "|---|---:|" + "---:|" * len(cols)]
    for name in cfg.workloads:
        for conns in cfg.concurrency:
            row = [f"`{name}`", str(conns)]
            for s in cols:
                server = servers[s]
                cell = results.cells.get(name, {}).get(conns, {}).get(s)
                if not server.serves(BY_NAME[name]):
                    row.append("")
                elif not server.available:
                    row.append("n/a")
                elif cell is None:
                    row.append("")
                elif not cell.valid:
                    row.append("**invalid**")
                else:
                    row.append(cell.with_span("rps", fmt_rps))
            out.append("| " + " | ".join(row) + " |")
    out.append("")

    peers = [p for p in PEERS if p in cfg.servers and servers[p].available]
    ratio_cols = [*peers, *(["ceiling"] if "ceiling" in cfg.servers and servers["ceiling"].available else [])]
    out += ["### Throughput, latency and ratios", ""]
    out += [
        "Medians over rounds, min–max over rounds in brackets. A ratio is this row's median requests/s "
        "over the column server's (same workload and concurrency); in brackets the min–max of the ratios "
        "within one round.",
        "",
    ]
    header = ["workload", "conns", "server", "req/s", "p50 ms", "p99 ms"] + [f"vs {p}" for p in ratio_cols]
    out += ["| " + " | ".join(header) + " |", "|---|---:|---|" + "---:|" * (len(header) - 3)]
    for name, conns, s, cell, row_cells in _detail_rows(cfg, servers, results, cols):
        row = [f"`{name}`", str(conns), s]
        if not cell.valid:
            row += [f"**invalid**: {cell.problem()}", "", ""] + [""] * len(ratio_cols)
        else:
            row += [
                cell.with_span("rps", fmt_rps),
                fmt_ms(cell.median("p50_ms")),
                cell.with_span("p99_ms", fmt_ms),
            ]
            row += ["" if p == s else ratio(cell, row_cells.get(p)) for p in ratio_cols]
        out.append("| " + " | ".join(row) + " |")
    out.append("")

    out += ["### Per-request cost", ""]
    out += [
        "- **µs/req** = 1e6 / (requests/s): what one request costs the server's core when it is saturated.",
        "- **app µs**: the in-process cost of the app alone (no server, no I/O, no Task; `appcost.py`); "
        "**server µs** = µs/req − app µs, the server's own overhead per request.",
        "- **CPU µs/req**: CPU time the server's processes used during the run / requests completed "
        "(median, min–max over rounds in brackets). It does not count CPU that other processes took from "
        "the core, so it is the steadier number on a shared machine; **server CPU µs** = CPU µs/req − "
        "app µs.",
        "- **srv CPU**: the server's CPU use / wall time (100% = one core); **core busy**: the server core's "
        "busy time from /proc/stat, whoever used it; **wrk CPU**: the load generator's. Notes: *shared core* "
        "when others used over 10% of the server's core, *client-bound* when wrk used over 90% of its core "
        "while the server had less than 90% of its own (the server was not the bottleneck).",
        "",
    ]
    header = ["workload", "conns", "server", "µs/req", "app µs", "server µs", "CPU µs/req", "server CPU µs"]
    header += ["srv CPU", "core busy", "wrk CPU", "notes"]
    out += ["| " + " | ".join(header) + " |", "|---|---:|---|" + "---:|" * (len(header) - 4) + "---|"]
    for name, conns, s, cell, _ in _detail_rows(cfg, servers, results, cols):
        if not cell.valid:
            continue
        us = 1e6 / cell.median("rps")
        app_us = results.app_cost.get(name)
        row = [f"`{name}`", str(conns), s, f"{us:.1f}"]
        row += ["", ""] if s == "ceiling" or app_us is None else [f"{app_us:.1f}", f"{us - app_us:.1f}"]
        srv, busy, wrk = cell.median("server_cpu"), cell.median("core_busy"), cell.median("wrk_cpu")
        cpu_us = cell.median("cpu_us")
        row.append(cell.with_span("cpu_us", lambda v: f"{v:.1f}"))
        row.append("" if s == "ceiling" or app_us is None else f"{cpu_us - app_us:.1f}")
        row += [f"{srv:.0%}", f"{busy:.0%}", f"{wrk:.0%}"]
        notes = []
        if busy - srv > 0.10:
            notes.append("shared core")
        if wrk > 0.90 and srv < 0.90:
            notes.append("client-bound")
        out.append("| " + " | ".join(row + [", ".join(notes)]) + " |")
    out.append("")

    if results.memory:
        out += [f"### Memory with {cfg.memory_conns:,} idle keep-alive connections", ""]
        out += [
            "RSS of the server's process tree (sum of VmRSS from /proc/PID/status), idle after one request, "
            f"then with {cfg.memory_conns:,} connections open, each having sent one request and read its "
            "response (raw hello app; keep-alive timeout raised to 3600 s where the server has one), then "
            f"{CLOSE_SETTLE_S:g} s after the client closed them all (**kept**: RSS then − idle RSS). "
            "Median over rounds, min–max in brackets.",
            "",
            "| server | idle RSS MiB | RSS with conns MiB | extra MiB | KiB per connection "
            "| RSS after close MiB | kept MiB |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for s in cols:
            mems = results.memory.get(s)
            if not mems:
                continue
            bad = [m.error for m in mems if m.error]
            if bad:
                out.append(f"| {s} | **invalid**: {bad[0].splitlines()[0]} | | | | | |")
                continue

            def mib(values: list[int]) -> str:
                return median_span([v / 1024 for v in values], lambda v: f"{v:.1f}")

            per_conn = median_span([m.extra_kib / cfg.memory_conns for m in mems], lambda v: f"{v:.1f}")
            out.append(
                f"| {s} | {mib([m.idle_kib for m in mems])} | {mib([m.loaded_kib for m in mems])} "
                f"| {mib([m.extra_kib for m in mems])} | {per_conn} | {mib([m.closed_kib for m in mems])} "
                f"| {mib([m.kept_kib for m in mems])} |"
            )
        out.append("")

    unavailable = [s for s in cols if not servers[s].available]
    failed = sorted(
        {
            f"- **{s}** on `{w}`: {cell.error.splitlines()[0]}"
            for w, by_conns in results.cells.items()
            for by_server in by_conns.values()
            for s, cell in by_server.items()
            if cell.error
        }
    )
    if unavailable or failed:
        out += ["### Servers not measured", ""]
        out += [f"- **{s}**: {servers[s].reason}" for s in unavailable]
        out += failed
        out.append("")
    return out


def _detail_rows(
    cfg: Config, servers: dict[str, Server], results: Results, cols: Sequence[str]
) -> Iterator[tuple[str, int, str, Cell, dict[str, Cell]]]:
    for name in cfg.workloads:
        for conns in cfg.concurrency:
            row_cells = results.cells.get(name, {}).get(conns, {})
            for s in cols:
                cell = row_cells.get(s)
                if cell is not None and servers[s].available:
                    yield name, conns, s, cell, row_cells


def report_commands(cfg: Config, results: Results, argv: Sequence[str]) -> list[str]:
    out = ["### Exact commands", "", "Reproduce (from the repository root):", "", "```sh"]
    out += [shlex.join(["python", "benchmarks/run.py", *argv]), "```", ""]
    out += [
        "Servers (shown with the first workload's app; port 8000 stands for a free port picked per run; "
        "cwd and PYTHONPATH: `benchmarks/apps`):"
    ]
    out += ["", "```sh"] + [results.server_commands[s] for s in SERVER_ORDER if s in results.server_commands]
    out += ["```", "", "Load (per workload, shown for the first concurrency):", "", "```sh"]
    shown = {
        k.split("/")[0]: v for k, v in results.wrk_commands.items() if k.endswith(f"/{cfg.concurrency[0]}")
    }
    out += [f"{shown[w]}  # {w}" for w in cfg.workloads if w in shown]
    out += ["```", ""]
    lua = [(w, BY_NAME[w].wrk_lua()) for w in cfg.workloads]
    for w, script in lua:
        if script:
            out += [f"`{w}.lua`:", "", "```lua", script.rstrip("\n"), "```", ""]
    return out


def workload_list(cfg: Config) -> list[str]:
    out = ["### Workloads", ""]
    for name in cfg.workloads:
        w = BY_NAME[name]
        out.append(f"- `{name}` — {w.description}: `{w.method} {w.target}`, app `benchmarks/apps/{w.app}`")
    return out + [""]


def chart(cfg: Config, servers: dict[str, Server], results: Results, path: Path, title: str) -> str | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.artist import Artist
    except ImportError:
        return "matplotlib is not installed (pip install -r benchmarks/requirements.txt): no chart"
    colors = {
        "ceiling": "#9e9e9e",
        "turboasgi": "#d84315",
        "turboasgi-base": "#ffab91",
        "uvicorn": "#1565c0",
        "granian": "#2e7d32",
    }
    names = [w for w in cfg.workloads if w in results.cells]
    if not names:
        return "no results to chart"
    ncols = min(3, len(names))
    nrows = (len(names) + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(max(8.0, 5.2 * ncols), 3.4 * nrows + 0.4), squeeze=False)
    for ax in axes.flat[len(names) :]:
        ax.set_visible(False)
    for ax, name in zip(axes.flat, names, strict=False):
        cols = [s for s in SERVER_ORDER if s in cfg.servers and servers[s].serves(BY_NAME[name])]
        width = 0.8 / max(1, len(cols))
        for i, s in enumerate(cols):
            xs, ys, labels = [], [], []
            for j, conns in enumerate(cfg.concurrency):
                cell = results.cells.get(name, {}).get(conns, {}).get(s)
                x = j + (i - (len(cols) - 1) / 2) * width
                if cell is not None and cell.valid:
                    xs.append(x)
                    ys.append(cell.median("rps"))
                    labels.append(f"{cell.median('rps') / 1000:.1f}k")
                else:
                    text = "n/a" if not servers[s].available else "invalid"
                    ax.text(x, 0, text, rotation=90, ha="center", va="bottom", fontsize=7, color=colors[s])
            bars = ax.bar(xs, ys, width, label=s, color=colors[s])
            ax.bar_label(bars, labels=labels, fontsize=6, padding=1)
        ax.set_title(name, fontsize=10)
        ax.set_xticks(range(len(cfg.concurrency)), [f"c={c}" for c in cfg.concurrency])
        ax.set_ylabel("requests/s")
        ax.margins(y=0.15)
        ax.grid(axis="y", alpha=0.3)
    handles: dict[str, Artist] = {}
    for ax in axes.flat:
        for h, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, h)
    height = fig.get_figheight()
    top = 1 - 0.55 / height  # room for the title and the legend (0.55 inch), as a figure fraction
    fig.suptitle(title, y=1 - 0.05 / height, fontsize=9)
    fig.legend(
        list(handles.values()),
        list(handles.keys()),
        loc="upper center",
        bbox_to_anchor=(0.5, 1 - 0.25 / height),
        ncol=len(handles),
        frameon=False,
        fontsize=9,
    )
    for ax in axes.flat:
        ax.yaxis.set_major_formatter(lambda v, _pos: f"{v / 1000:g}k" if v >= 1000 else f"{v:g}")
    fig.tight_layout(rect=(0, 0, 1, top))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None


def update_docs(section: str, begin: str = DOCS_BEGIN, end: str = DOCS_END) -> None:
    """Replace the text between the ``begin``/``end`` markers of docs/benchmarks.md (append it if absent)."""
    block = f"{begin}\n{section.rstrip()}\n{end}\n"
    if DOCS_FILE.exists():
        text = DOCS_FILE.read_text()
        if begin in text and end in text:
            before, rest = text.split(begin, 1)
            after = rest.split(end, 1)[1].lstrip("\n")
            text = before + block + (f"\n{after}" if after else "")
        else:
            text = text.rstrip() + "\n\n" + block
    else:
        text = DOCS_INTRO + "\n" + block
    DOCS_FILE.parent.mkdir(parents=True, exist_ok=True)
    DOCS_FILE.write_text(text)


DOCS_INTRO = """# Benchmarks

turboasgi is measured against uvicorn (`uvicorn[standard]`: uvloop + httptools, 1 worker) and granian
(ASGI interface, 1 worker, 1 runtime thread, uvloop), and against a bare hyper HTTP/1.1 hello-world binary
(`benchmarks/ceiling/`) that is the physical limit of one core. Every server runs pinned to one core and
`wrk` to the other; servers are interleaved round by round and the median is reported. A run with any
non-2xx response or socket error is reported as invalid, never as a number. Absolute numbers drift with
the machine (it is shared and noisy): compare ratios within one run.

How the harness works, and how to run it: [`benchmarks/README.md`](../benchmarks/README.md).
All results: [`benchmarks/results/`](../benchmarks/results/).
"""


def write_outputs(
    cfg: Config, servers: dict[str, Server], results: Results, argv: Sequence[str], started: dt.datetime
) -> tuple[Path, bool]:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stem = started.strftime("%Y-%m-%d") + (f"-{cfg.tag}" if cfg.tag else "")
    md_path, png_path, raw_path = (RESULTS_DIR / f"{stem}{ext}" for ext in (".md", ".png", ".raw.json"))
    title = f"turboasgi benchmarks {stem} — {cpu_model()}, server on 1 pinned core, wrk -t1"
    chart_err = chart(cfg, servers, results, png_path, title)
    if chart_err:
        log(chart_err)
    env = environment(cfg, servers, results)
    tables = report_tables(cfg, servers, results)
    commands = report_commands(cfg, results, argv)
    lines = [
        f"# turboasgi benchmarks — {stem}",
        "",
        f"Run started {started.isoformat(timespec='seconds')}.",
        "",
    ]
    lines += env + [""]
    if not chart_err:
        lines += [f"![requests per second]({png_path.name})", ""]
    lines += tables + workload_list(cfg) + commands
    md_path.write_text("\n".join(lines).rstrip() + "\n")
    raw = {
        "config": asdict(cfg),
        "servers": {k: asdict(v) for k, v in servers.items()},
        "app_cost_us": results.app_cost,
        "cells": {
            w: {str(c): {s: asdict(cell) for s, cell in by_s.items()} for c, by_s in by_c.items()}
            for w, by_c in results.cells.items()
        },
        "memory": {s: [asdict(m) for m in ms] for s, ms in results.memory.items()},
    }
    raw_path.write_text(json.dumps(raw, indent=1))
    log(f"wrote {md_path.relative_to(REPO)}" + ("" if chart_err else f" and {png_path.relative_to(REPO)}"))
    if cfg.docs and results.dirty and not cfg.allow_dirty:
        # The published table must name a commit that reproduces it.
        log(
            f"not updating {DOCS_FILE.relative_to(REPO)}: the tree had uncommitted changes "
            f"({', '.join(results.dirty[:5])}); commit them and rerun, or pass --allow-dirty"
        )
    elif cfg.docs:
        rel = os.path.relpath(RESULTS_DIR, DOCS_FILE.parent)
        section = [
            f"## Latest results ({stem})",
            "",
            f"Full report: [`{md_path.name}`]({rel}/{md_path.name}).",
            "",
        ]
        section += env + [""]
        if not chart_err:
            section += [f"![requests per second]({rel}/{png_path.name})", ""]
        section += [line.replace("### ", "### ", 1) for line in tables] + commands
        update_docs("\n".join(section))
        log(f"updated {DOCS_FILE.relative_to(REPO)}")
    return md_path, chart_err is None


def parse_args(argv: Sequence[str]) -> tuple[Config, bool]:
    parser = argparse.ArgumentParser(
        prog="benchmarks/run.py", description=(__doc__ or "").split("\n\n")[0].replace("\n", " ")
    )
    parser.add_argument("--duration", type=float, help="seconds per wrk run (default 10; --quick: 3)")
    parser.add_argument("--rounds", type=int, help="rounds, servers interleaved (default 3; --quick: 1)")
    parser.add_argument(
        "--warmup", type=float, help="seconds of wrk warm-up after each server start (default 2; --quick: 1)"
    )
    parser.add_argument(
        "--workloads",
        nargs="+",
        metavar="W",
        help="workloads to run (default: all): " + ", ".join(BY_NAME),
    )
    parser.add_argument(
        "--servers",
        nargs="+",
        metavar="S",
        help="servers to run (default: all but turboasgi-base, which --baseline adds): "
        + ", ".join(SERVER_ORDER),
    )
    parser.add_argument(
        "--concurrency", nargs="+", type=int, default=[64, 512], help="wrk connections (default 64 512)"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run: hello and starlette-json, 3 s runs, 1 round, 1 s warm-up, fast app cost",
    )
    parser.add_argument("--server-cpu", type=int, default=0, help="CPU the server is pinned to (default 0)")
    parser.add_argument("--client-cpu", type=int, default=1, help="CPU wrk is pinned to (default 1)")
    parser.add_argument(
        "--memory-conns",
        type=int,
        default=10_000,
        help="idle keep-alive connections for the memory measurement (default 10000; 0 skips it)",
    )
    parser.add_argument(
        "--start-timeout", type=float, default=30.0, help="seconds to wait for a server's port"
    )
    parser.add_argument("--wrk-timeout", type=float, default=5.0, help="wrk --timeout in seconds (default 5)")
    parser.add_argument("--no-app-cost", action="store_true", help="skip the in-process app cost measurement")
    parser.add_argument("--no-docs", action="store_true", help="do not update docs/benchmarks.md")
    parser.add_argument("--tag", default="", help="suffix for the result files: results/<date>-<tag>.md")
    parser.add_argument(
        "--baseline",
        metavar="DIR",
        help="also run the turboasgi build installed in DIR (benchmarks/build_turboasgi.py) as server "
        "turboasgi-base, with DIR first on PYTHONPATH",
    )
    parser.add_argument(
        "--turboasgi-path",
        metavar="DIR",
        help="run the turboasgi build installed in DIR as server turboasgi instead of the installed one",
    )
    parser.add_argument(
        "--allow-dirty",
        action="store_true",
        help="update docs/benchmarks.md even when the tree has uncommitted changes (the report names them)",
    )
    parser.add_argument(
        "--tls",
        action="store_true",
        help="serve and load over HTTPS (a self-signed ECDSA P-256 certificate made with openssl; "
        "no ceiling); the memory measurement then holds TLS connections",
    )
    args = parser.parse_args(argv)

    if args.workloads is None:
        workloads = [w.name for w in WORKLOADS if (w.quick if args.quick else w.default)]
    else:
        workloads = args.workloads
    server_names = args.servers or [s for s in SERVER_ORDER if s != "turboasgi-base"]
    if args.baseline and "turboasgi-base" not in server_names:
        server_names.append("turboasgi-base")
    if "turboasgi-base" in server_names and not args.baseline:
        parser.error("server turboasgi-base needs --baseline DIR")
    builds: dict[str, str] = {}
    for name, directory in (("turboasgi", args.turboasgi_path), ("turboasgi-base", args.baseline)):
        if directory is None:
            continue
        if not Path(directory).is_dir():
            option = "--turboasgi-path" if name == "turboasgi" else "--baseline"
            parser.error(f"{option}: {directory} is not a directory")
        builds[name] = str(Path(directory).resolve())
    for bad, known, what in ((workloads, BY_NAME, "workload"), (server_names, SERVER_ORDER, "server")):
        unknown = [x for x in bad if x not in known]
        if unknown:
            parser.error(f"unknown {what}(s): {', '.join(unknown)}; known: {', '.join(known)}")
    if args.tag and not re.fullmatch(r"[\w.-]+", args.tag):
        parser.error("--tag: letters, digits, '.', '_' and '-' only")
    ncpu = os.cpu_count() or 1
    if ncpu < 2 or args.server_cpu == args.client_cpu or max(args.server_cpu, args.client_cpu) >= ncpu:
        parser.error(f"need two distinct CPUs below {ncpu} for --server-cpu and --client-cpu")
    cfg = Config(
        duration=args.duration if args.duration is not None else (3.0 if args.quick else 10.0),
        rounds=args.rounds if args.rounds is not None else (1 if args.quick else 3),
        warmup=args.warmup if args.warmup is not None else (1.0 if args.quick else 2.0),
        concurrency=args.concurrency,
        workloads=list(dict.fromkeys(workloads)),
        servers=[s for s in SERVER_ORDER if s in server_names],
        server_cpu=args.server_cpu,
        client_cpu=args.client_cpu,
        memory_conns=args.memory_conns,
        start_timeout=args.start_timeout,
        wrk_timeout=args.wrk_timeout,
        app_cost=not args.no_app_cost,
        docs=not args.no_docs,
        tag=args.tag,
        allow_dirty=args.allow_dirty,
        builds=builds,
        tls=args.tls,
    )
    if cfg.duration <= 0 or cfg.rounds < 1:
        parser.error("--duration must be > 0 and --rounds >= 1")
    return cfg, args.quick


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    cfg, quick = parse_args(argv)
    started = dt.datetime.now()
    atexit.register(_kill_all_groups)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _on_signal)
    # Ctrl-C must stop the run even when started from a shell that ignores SIGINT for background jobs.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    ensure_wrk()
    nofile = raise_nofile(max(cfg.memory_conns, max(cfg.concurrency)) + 1024)
    if cfg.memory_conns + 100 > nofile:
        log(f"RLIMIT_NOFILE is {nofile}: memory measurement lowered to {nofile - 200} connections")
        cfg.memory_conns = max(0, nofile - 200)
    # The harness itself (and the memory client) stays off the server's core.
    with contextlib.suppress(OSError):
        os.sched_setaffinity(0, {cfg.client_cpu})
    servers = discover_servers(cfg.servers, cfg.builds)
    if cfg.tls:
        files = make_certificate(Path(tempfile.mkdtemp(prefix="bench-tls-")))
        for server in servers.values():
            server.tls = files
    try:
        results = execute(cfg, servers, quick)
    except KeyboardInterrupt:
        log("interrupted: every server stopped, no report written")
        return 130
    finally:
        _kill_all_groups()
    write_outputs(cfg, servers, results, argv, started)

    invalid = [
        f"{w} c={c} {s}: {cell.problem()}"
        for w, by_c in results.cells.items()
        for c, by_s in by_c.items()
        for s, cell in by_s.items()
        if not cell.valid
    ]
    invalid += [
        f"memory {s}: {m.error.splitlines()[0]}" for s, ms in results.memory.items() for m in ms if m.error
    ]
    for line in invalid:
        log(f"INVALID {line}")
    for s in servers.values():
        if not s.available:
            log(f"{s.name}: {s.reason}")
    return 1 if invalid else 0


if __name__ == "__main__":
    sys.exit(main())
