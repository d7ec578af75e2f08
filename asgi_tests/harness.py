"""Starting and stopping the server under test as a subprocess."""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

HOST = "127.0.0.1"
PACKAGE_PARENT = str(Path(__file__).resolve().parent.parent)


@dataclass(frozen=True)
class ServerKind:
    """How to run one server: a command template plus the extra options it understands."""

    name: str
    command: str
    # capability -> argument template; ``{value}`` is replaced by the test's value.
    options: dict[str, str] = field(default_factory=dict)
    description: str = ""

    def supports(self, option: str) -> bool:
        return option in self.options


_UVICORN_STYLE_OPTIONS = {
    "limit_concurrency": "--limit-concurrency {value}",
    "timeout_keep_alive": "--timeout-keep-alive {value}",
    "lifespan_on": "--lifespan on",
    "ssl_keyfile": "--ssl-keyfile {value}",
    "ssl_certfile": "--ssl-certfile {value}",
}

KNOWN_SERVERS: dict[str, ServerKind] = {
    "turboasgi": ServerKind(
        "turboasgi",
        "{python} -m turboasgi {app} --host {host} --port {port}",
        dict(_UVICORN_STYLE_OPTIONS),
    ),
    "uvicorn": ServerKind(
        "uvicorn",
        "{python} -m uvicorn {app} --host {host} --port {port}",
        dict(_UVICORN_STYLE_OPTIONS),
    ),
    "granian": ServerKind(
        "granian",
        "{python} -m granian --interface asgi --host {host} --port {port} {app}",
        {"ssl_keyfile": "--ssl-keyfile {value}", "ssl_certfile": "--ssl-certificate {value}"},
    ),
    "hypercorn": ServerKind(
        "hypercorn",
        "{python} -m hypercorn --bind {host}:{port} {app}",
        {"ssl_keyfile": "--keyfile {value}", "ssl_certfile": "--certfile {value}"},
    ),
    "daphne": ServerKind("daphne", "{python} -m daphne -b {host} -p {port} {app}"),
}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def can_connect(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


class ServerFailed(RuntimeError):
    pass


class ServerProcess:
    """One server subprocess with its output captured to a file."""

    def __init__(
        self,
        kind: ServerKind,
        app: str,
        options: Sequence[tuple[str, str]] = (),
        env: dict[str, str] | None = None,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.kind = kind
        self.app = app
        self.host = HOST
        self.port = free_port()
        argv = shlex.split(
            kind.command.format(python=shlex.quote(sys.executable), app=app, host=self.host, port=self.port)
        )
        for option, value in options:
            argv.extend(shlex.split(kind.options[option].format(value=value)))
        argv.extend(extra_args)
        self.argv = argv
        self.env = dict(os.environ)
        self.env["PYTHONPATH"] = os.pathsep.join(p for p in (PACKAGE_PARENT, self.env.get("PYTHONPATH")) if p)
        self.env["PYTHONUNBUFFERED"] = "1"
        self.env.update(env or {})
        fd, log_path = tempfile.mkstemp(prefix=f"asgi_tests-{kind.name}-", suffix=".log")
        os.close(fd)
        self.log_path = Path(log_path)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    def start(self) -> ServerProcess:
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=tempfile.gettempdir(),
                start_new_session=True,
            )
        return self

    def output(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def describe(self) -> str:
        return f"{' '.join(shlex.quote(a) for a in self.argv)}\n--- server output ---\n{self.output()}"

    def wait_ready(self, timeout: float = 30.0) -> ServerProcess:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerFailed(
                    f"server exited with code {self.proc.returncode} before accepting connections:\n"
                    + self.describe()
                )
            if can_connect(self.host, self.port):
                return self
            time.sleep(0.05)
        self.stop()
        raise ServerFailed(f"server did not accept connections within {timeout} s:\n" + self.describe())

    def wait_exit(self, timeout: float) -> int | None:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def stop(self, grace: float = 5.0) -> int | None:
        """SIGINT, then SIGTERM, then SIGKILL (the whole process group); returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            for sig, wait in ((signal.SIGINT, grace), (signal.SIGTERM, 3.0)):
                self.proc.send_signal(sig)
                if self.wait_exit(wait) is not None:
                    break
            else:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(5)
        try:  # worker processes of multi-process servers
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        return self.proc.returncode

    def cleanup(self) -> None:
        self.stop()
        try:
            self.log_path.unlink()
        except FileNotFoundError:
            pass

    def wait_for_output(self, text: str, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.output():
                return True
            time.sleep(0.05)
        return text in self.output()
