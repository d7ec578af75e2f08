"""Run a real nginx (the Debian package's binary) in front of a test server.

nginx runs in the foreground as a child of the test (``-p PREFIX -c CONF -g 'daemon off;'``) with
every path it writes (pid, logs, temporary files) inside a per-test directory, listening on loopback
ports chosen here. ``site_from_docs()`` turns one of the documented configurations in docs/deploy/
into one for the test by replacing its example addresses, checking each example is really there so
that a change in the documented file cannot go unnoticed.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
from collections.abc import Mapping
from pathlib import Path

from server_process import ROOT, poll

DEPLOY_DOCS = ROOT / "docs" / "deploy"


def find_nginx() -> str | None:
    found = shutil.which("nginx")
    if found is None and os.access("/usr/sbin/nginx", os.X_OK):
        found = "/usr/sbin/nginx"  # Debian's path, not on a normal user's PATH
    return found


NGINX = find_nginx()

MAIN_CONF = """\
{user}
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log info;
events {{
    worker_connections 512;
}}
http {{
    access_log {prefix}/access.log;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    include {prefix}/site.conf;
}}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def upstream_address(server_address: tuple[str, int] | str) -> str:
    """nginx's spelling of a TCP address or a unix socket path."""
    if isinstance(server_address, str):
        return f"unix:{server_address}"
    host, port = server_address
    return f"{host}:{port}"


def replace_examples(text: str, replacements: Mapping[str, str]) -> str:
    for example, actual in replacements.items():
        if example not in text:
            raise AssertionError(f"{example!r} is no longer in the documented configuration")
        text = text.replace(example, actual)
    return text


def site_from_docs(name: str, replacements: Mapping[str, str]) -> str:
    return replace_examples((DEPLOY_DOCS / name).read_text(), replacements)


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 made with the openssl command line tool."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"),
            *("-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


class Nginx:
    """One nginx master (plus one worker) serving ``site`` (the contents of an http-level include)."""

    def __init__(self, prefix: Path, site: str) -> None:
        assert NGINX is not None, "nginx is not installed"
        self.prefix = prefix
        prefix.mkdir(parents=True, exist_ok=True)
        (prefix / "site.conf").write_text(site)
        # as root, nginx's workers would switch to "nobody" and could not reach the test's directories
        user = "user root;" if os.geteuid() == 0 else ""
        (prefix / "nginx.conf").write_text(MAIN_CONF.format(user=user, prefix=prefix))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def error_log(self) -> str:
        path = self.prefix / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def start(self, port: int, timeout: float = 10.0) -> Nginx:
        assert NGINX is not None
        self.proc = subprocess.Popen(
            [NGINX, "-p", str(self.prefix), "-e", str(self.prefix / "error.log")]
            + ["-c", str(self.prefix / "nginx.conf"), "-g", "daemon off;"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

        def listening() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                stderr = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                raise RuntimeError(f"nginx exited with {self.proc.returncode}: {stderr}\n{self.error_log}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1.0).close()
                return True
            except OSError:
                return False

        poll(listening, timeout, what=f"nginx to listen on port {port}")
        return self

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # fast shutdown
            try:
                self.proc.wait(10.0)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5.0)
        if self.proc.stderr is not None:
            self.proc.stderr.close()

    def __enter__(self) -> Nginx:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
