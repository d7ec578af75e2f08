"""Run a real server (``python -m turboasgi`` or ``python -m uvicorn``) as a subprocess for tests.

The server is started with its output written to temporary files (no pipe can fill up and block it),
the real address is parsed from the ``... running on http://HOST:PORT`` log line, and readiness is
polled with a deadline. ``stop()`` sends SIGINT (or the given signal), then SIGTERM and SIGKILL if the
process does not exit in time, and returns the exit code; ``stdout``/``stderr`` hold the output.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Literal

import turboasgi

ROOT = Path(__file__).resolve().parent.parent
PACKAGE_PARENT = str(Path(turboasgi.__file__).resolve().parent.parent)

ServerKind = Literal["turboasgi", "uvicorn"]

RUNNING_RE = re.compile(
    r"(?:Turboasgi|Uvicorn) running on (?:(?P<scheme>https?)://(?P<host>\[[^\]]+\]|[^:\s]+):(?P<port>\d+)"
    r"|unix socket (?P<uds>\S+)|socket (?P<sock>.+?)) \(Press CTRL\+C to quit\)"
)

# Environment variables that would change how the server under test behaves.
_SCRUBBED_PREFIXES = ("TURBOASGI_", "UVICORN_")
# ...except the loop count a whole test run may choose (.ci/run runs the suite with 1 and 2 loops)
_KEPT = ("TURBOASGI_THREADS",)
_SCRUBBED = ("WEB_CONCURRENCY", "FORWARDED_ALLOW_IPS", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES")


class ServerError(RuntimeError):
    """The server did not start (or stop) as expected; the message includes its output."""


def poll(
    predicate: Callable[[], bool], timeout: float = 10.0, interval: float = 0.02, what: str = "condition"
) -> None:
    """Call ``predicate`` until it returns true; raise ``TimeoutError`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def clean_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The current environment without server-specific variables, with the package and the repository
    root importable, plus ``env``."""
    full = {
        key: value
        for key, value in os.environ.items()
        if (not key.startswith(_SCRUBBED_PREFIXES) or key in _KEPT) and key not in _SCRUBBED
    }
    paths = [PACKAGE_PARENT, str(ROOT), full.get("PYTHONPATH", "")]
    full["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(p for p in paths if p))
    full["PYTHONUNBUFFERED"] = "1"
    full.update(env or {})
    return full


class ServerProcess:
    """One server subprocess. Use as a context manager, or call ``start()`` and ``stop()``."""

    def __init__(
        self,
        args: Sequence[str],
        *,
        kind: ServerKind = "turboasgi",
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        pass_fds: Sequence[int] = (),
        command: Sequence[str] | None = None,
    ) -> None:
        self.kind = kind
        self.args = list(args)
        self.command = list(command) if command is not None else [sys.executable, "-m", kind, *self.args]
        self.env = clean_env(env)
        self.cwd = str(cwd) if cwd is not None else str(ROOT)
        self.pass_fds = tuple(pass_fds)
        self.proc: subprocess.Popen[bytes] | None = None
        self.returncode: int | None = None
        self.host: str | None = None
        self.port: int | None = None
        self.uds: str | None = None
        self.scheme = "http"
        self._out: IO[bytes] | None = None
        self._err: IO[bytes] | None = None

    # ------------------------------------------------------------------------------------ output

    @staticmethod
    def _read(file: IO[bytes] | None) -> str:
        if file is None:
            return ""
        file.flush()
        with open(file.name, "rb") as reader:
            return reader.read().decode("utf-8", "replace")

    @property
    def stdout(self) -> str:
        return self._read(self._out)

    @property
    def stderr(self) -> str:
        return self._read(self._err)

    @property
    def output(self) -> str:
        return f"--- stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr}"

    @property
    def url(self) -> str:
        assert self.host is not None and self.port is not None, "the server is not listening on TCP"
        return f"{self.scheme}://{self.host}:{self.port}"

    @property
    def address(self) -> tuple[str, int]:
        assert self.host is not None and self.port is not None, "the server is not listening on TCP"
        return self.host.strip("[]"), self.port

    def wait_for_output(
        self, text: str | re.Pattern[str], timeout: float = 10.0, stream: str = "both"
    ) -> str:
        """Poll the output until ``text`` (a substring or a compiled regex) appears; return the output."""
        found = ""

        def check() -> bool:
            nonlocal found
            if stream == "stdout":
                found = self.stdout
            elif stream == "stderr":
                found = self.stderr
            else:
                found = self.stdout + self.stderr
            return (text.search(found) is not None) if isinstance(text, re.Pattern) else text in found

        try:
            poll(check, timeout, what=repr(text))
        except TimeoutError:
            raise TimeoutError(f"{text!r} not in the server output\n{self.output}") from None
        return found

    # ------------------------------------------------------------------------------------ lifecycle

    def launch(self) -> None:
        """Start the process without waiting for anything."""
        self._out = tempfile.NamedTemporaryFile(prefix="server-out-", suffix=".log")
        self._err = tempfile.NamedTemporaryFile(prefix="server-err-", suffix=".log")
        self.proc = subprocess.Popen(
            self.command,
            cwd=self.cwd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self._out,
            stderr=self._err,
            pass_fds=self.pass_fds,
        )

    def start(self, timeout: float = 15.0) -> ServerProcess:
        """Launch and wait for the ``running on`` line; raise ``ServerError`` if the process exits first."""
        self.launch()
        assert self.proc is not None
        match: re.Match[str] | None = None

        def ready() -> bool:
            nonlocal match
            match = RUNNING_RE.search(self.stderr)
            if match is not None:
                return True
            if self.proc is not None and self.proc.poll() is not None:
                raise ServerError(f"server exited with {self.proc.returncode} before serving\n{self.output}")
            return False

        try:
            poll(ready, timeout, what="the 'running on' log line")
        except TimeoutError:
            self.kill()
            raise ServerError(f"server did not start in {timeout} s\n{self.output}") from None
        assert match is not None
        if match["port"]:
            self.scheme = match["scheme"]
            self.host = match["host"]
            self.port = int(match["port"])
        elif match["uds"]:
            self.uds = match["uds"]
        return self

    def wait(self, timeout: float = 15.0) -> int:
        """Wait for the process to exit on its own; return the exit code."""
        assert self.proc is not None
        try:
            self.returncode = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise ServerError(f"server still running after {timeout} s\n{self.output}") from None
        return self.returncode

    def run_to_exit(self, timeout: float = 15.0) -> int:
        """For servers expected to fail at startup: launch, and wait for the exit code."""
        self.launch()
        return self.wait(timeout)

    def send_signal(self, sig: int = signal.SIGINT) -> None:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def stop(self, sig: int = signal.SIGINT, timeout: float = 10.0) -> int:
        """Send ``sig``; escalate to SIGTERM, then SIGKILL. Return the exit code."""
        proc = self.proc
        if proc is None:
            raise ServerError("server not started")
        if proc.poll() is None:
            for current, wait in ((sig, timeout), (signal.SIGTERM, 3.0), (signal.SIGKILL, 3.0)):
                proc.send_signal(current)
                try:
                    proc.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        self.returncode = proc.wait(5.0)
        return self.returncode

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5.0)
        if self.proc is not None:
            self.returncode = self.proc.returncode

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def close(self) -> None:
        """Kill if still running and drop the output files."""
        self.kill()
        for file in (self._out, self._err):
            if file is not None:
                file.close()

    def __enter__(self) -> ServerProcess:
        if self.proc is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.running:
            self.stop()
        # the output stays readable after the block; the temporary files go with the object


def _with_port(options: Sequence[str]) -> list[str]:
    if any(opt in options for opt in ("--port", "--uds", "--fd")):
        return list(options)
    return [*options, "--port", "0"]


def turboasgi_server(
    app: str,
    *options: str,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    pass_fds: Sequence[int] = (),
) -> ServerProcess:
    """A turboasgi server for ``app``, on a free port of 127.0.0.1 unless the options say otherwise."""
    return ServerProcess([app, *_with_port(options)], kind="turboasgi", env=env, cwd=cwd, pass_fds=pass_fds)


def uvicorn_server(
    app: str,
    *options: str,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    pass_fds: Sequence[int] = (),
) -> ServerProcess:
    """The same under uvicorn (for differential tests)."""
    return ServerProcess([app, *_with_port(options)], kind="uvicorn", env=env, cwd=cwd, pass_fds=pass_fds)


@contextmanager
def running(
    app: str,
    *options: str,
    kind: ServerKind = "turboasgi",
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
) -> Iterator[ServerProcess]:
    """``with running("tests.apps.probe:app", "--no-access-log") as server: ...``; stopped with SIGINT
    at the end of the block (if still running)."""
    factory = turboasgi_server if kind == "turboasgi" else uvicorn_server
    server = factory(app, *options, env=env, cwd=cwd)
    try:
        server.start()
        yield server
    finally:
        if server.running:
            server.stop()


# ------------------------------------------------------------------------------------ raw sockets


class RawResponse:
    def __init__(self, status: int, reason: str, version: str, headers: list[tuple[str, str]], body: bytes):
        self.status = status
        self.reason = reason
        self.version = version
        self.headers = headers
        self.body = body

    def header(self, name: str) -> str | None:
        values = self.all(name)
        return values[0] if values else None

    def all(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key.lower() == name.lower()]

    def __repr__(self) -> str:
        return f"RawResponse({self.status} {self.reason!r}, {self.headers!r}, {self.body[:200]!r})"


class RawClient:
    """A plain TCP (or unix) socket speaking hand-written HTTP/1.x, for what httpx cannot send."""

    def __init__(self, address: tuple[str, int] | str, timeout: float = 5.0) -> None:
        family = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
        if not isinstance(address, str) and ":" in address[0]:
            family = socket.AF_INET6
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(address)
        self.timeout = timeout
        self.buffer = b""
        self.eof = False

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> bool:
        """Read more into the buffer; False at end of stream (EOF or reset)."""
        if self.eof:
            return False
        try:
            data = self.sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            data = b""
        if not data:
            self.eof = True
            return False
        self.buffer += data
        return True

    def _read_until(self, marker: bytes) -> bytes:
        while marker not in self.buffer:
            if not self._fill():
                raise ConnectionError(f"connection closed before {marker!r}; got {self.buffer!r}")
        head, _, self.buffer = self.buffer.partition(marker)
        return head

    def _read_exact(self, count: int) -> bytes:
        while len(self.buffer) < count:
            if not self._fill():
                raise ConnectionError(f"connection closed after {len(self.buffer)} of {count} bytes")
        data, self.buffer = self.buffer[:count], self.buffer[count:]
        return data

    def read_response(self, head_request: bool = False) -> RawResponse:
        """Read exactly one response (a 1xx interim response counts as one)."""
        head = self._read_until(b"\r\n\r\n").decode("latin-1")
        status_line, *lines = head.split("\r\n")
        version, code, *reason = status_line.split(" ", 2)
        headers = [(name.strip(), value.strip()) for name, _, value in (ln.partition(":") for ln in lines)]
        response = RawResponse(int(code), reason[0] if reason else "", version, headers, b"")
        if head_request or response.status < 200 or response.status in (204, 304):
            return response
        encoding = (response.header("transfer-encoding") or "").lower()
        length = response.header("content-length")
        if "chunked" in encoding:
            chunks: list[bytes] = []
            while True:
                size = int(self._read_until(b"\r\n").split(b";")[0], 16)
                if size == 0:
                    self._read_until(b"\r\n")  # no trailers expected
                    break
                chunks.append(self._read_exact(size))
                self._read_exact(2)
            response.body = b"".join(chunks)
        elif length is not None:
            response.body = self._read_exact(int(length))
        else:
            while self._fill():
                pass
            response.body, self.buffer = self.buffer, b""
        return response

    def read_all(self) -> bytes:
        """Everything until the server closes the connection."""
        while self._fill():
            pass
        data, self.buffer = self.buffer, b""
        return data

    def closed_by_peer(self, timeout: float | None = None) -> bool:
        """True when the server closes the connection within ``timeout`` (buffered data is dropped)."""
        self.sock.settimeout(timeout if timeout is not None else self.timeout)
        try:
            while self._fill():
                pass
            return True
        except TimeoutError:
            return False
        finally:
            self.sock.settimeout(self.timeout)

    def nothing_received(self, timeout: float) -> bool:
        """True when no byte (and no EOF) arrives within ``timeout`` seconds."""
        if self.buffer or self.eof:
            return False
        self.sock.settimeout(timeout)
        try:
            self._fill()
            return False
        except TimeoutError:
            return True
        finally:
            self.sock.settimeout(self.timeout)


def request_bytes(
    method: str,
    target: str,
    headers: Sequence[tuple[str, str]] = (),
    body: bytes = b"",
    version: str = "HTTP/1.1",
    host: str | None = "test",
) -> bytes:
    lines = [f"{method} {target} {version}"]
    if host is not None:
        lines.append(f"Host: {host}")
    lines += [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
