"""The deployment configurations of docs/deployment.md (files in docs/deploy/) run as documented:
the systemd socket + service units, the gunicorn config, the Dockerfile's command (Docker itself cannot
run here: its build is checked against the CI wheel build instead) and the Kubernetes Deployment's
probes and shutdown timing. nginx's configs are run by test_nginx.py."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
import yaml
from nginx_process import DEPLOY_DOCS, free_port
from server_process import ROOT, ServerProcess, poll
from systemd_launch import socket_activated

pytestmark = pytest.mark.timeout(60)

APP = "tests.apps.proxied:app"
DOCS = ROOT / "docs" / "deployment.md"


def unit_settings(name: str) -> dict[str, dict[str, str]]:
    """A systemd unit file's settings by section (comments and blank lines skipped)."""
    sections: dict[str, dict[str, str]] = {}
    current: dict[str, str] = {}
    for line in (DEPLOY_DOCS / name).read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
        else:
            key, _, value = line.partition("=")
            current[key.strip()] = value.strip()
    return sections


def option(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def serve_app(args: list[str]) -> list[str]:
    """A documented turboasgi command line with the test's app in place of app.main:app."""
    assert args[0] == "app.main:app", args
    return [APP, *args[1:]]


def in_flight_request(url: str, journal: Path, results: list[int]) -> threading.Thread:
    """A one-second request, started and seen by the app (tests/apps/proxied.py's journal) on return."""
    thread = threading.Thread(
        target=lambda: results.append(httpx.get(f"{url}/slow?id=stop&ms=1000", timeout=10.0).status_code)
    )
    thread.start()
    poll(lambda: journal.exists() and "start stop" in journal.read_text(), what="the request to start")
    return thread


# ------------------------------------------------------------------------------ systemd


def exec_start() -> list[str]:
    argv = shlex.split(unit_settings("turboasgi.service")["Service"]["ExecStart"])
    assert argv[0].endswith("/bin/turboasgi")
    return argv[1:]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    executable = shutil.which("turboasgi") or sys.executable
    for name in ("turboasgi.socket", "turboasgi.service"):
        text = (DEPLOY_DOCS / name).read_text().replace("/srv/app/venv/bin/turboasgi", executable)
        (tmp_path / name).write_text(text)
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", "turboasgi.socket", "turboasgi.service"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Unknown" not in output and "Invalid" not in output, output


@pytest.mark.parametrize("how", ["LISTEN_FDS", "--fd 3"])
def test_systemd_service_serves_the_socket_unit(how: str, tmp_path: Path) -> None:
    socket_unit = unit_settings("turboasgi.socket")["Socket"]
    host, _, port = socket_unit["ListenStream"].rpartition(":")
    assert (host, port) == ("127.0.0.1", "8000")  # where nginx.conf's upstream points
    args = serve_app(exec_start())
    service = unit_settings("turboasgi.service")["Service"]
    assert int(service["TimeoutStopSec"]) > float(option(args, "--timeout-graceful-shutdown"))
    with socket.socket() as sock:
        # the socket unit's listener, on a free port
        sock.bind((host, 0))
        sock.listen(int(socket_unit["Backlog"]))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        journal = {"PROXIED_JOURNAL": str(tmp_path / "journal")}
        if how == "LISTEN_FDS":
            server = socket_activated(sock, args, env=journal)
        else:
            server = socket_activated(sock, [*args, "--fd", "3"], listen_env=None, env=journal)
        with server:
            server.wait_for_output("Application startup complete.")
            seen = httpx.get(f"{url}/whoami", headers={"x-forwarded-for": "192.0.2.1"}, timeout=5.0).json()
            assert seen["client"][0] == "192.0.2.1"  # --proxy-headers, nginx on 127.0.0.1 trusted
            # systemd's stop: SIGTERM to the main process (KillMode=mixed); in-flight requests finish
            results: list[int] = []
            thread = in_flight_request(url, tmp_path / "journal", results)
            started = time.monotonic()
            server.send_signal(signal.SIGTERM)
            thread.join(15.0)
            server.wait(float(service["TimeoutStopSec"]))
            assert time.monotonic() - started < float(service["TimeoutStopSec"])
    assert results == [200]


# ------------------------------------------------------------------------------ gunicorn


def test_gunicorn_config(tmp_path: Path) -> None:
    pytest.importorskip("gunicorn")
    config = DEPLOY_DOCS / "gunicorn.conf.py"
    settings: dict[str, object] = {}
    exec(config.read_text(), settings)  # a gunicorn config file is Python
    assert settings["worker_class"] == "turboasgi.workers.TurboWorker"
    assert settings["bind"] == "127.0.0.1:8000"
    # the command line's -b replaces the config's bind, for a free port
    command = [sys.executable, "-m", "gunicorn", "-c", str(config), "-b", "127.0.0.1:0", APP]
    server = ServerProcess([], command=command, env={"PROXIED_JOURNAL": str(tmp_path / "journal")})
    listening = re.compile(r"Listening at: http://127\.0\.0\.1:(\d+)")
    try:
        server.launch()
        found = listening.search(server.wait_for_output(listening, timeout=20.0))
        assert found is not None
        url = f"http://127.0.0.1:{found[1]}"
        poll(lambda: server.stderr.count("Application startup complete.") == settings["workers"], 20.0)
        seen = httpx.get(f"{url}/whoami", headers={"x-forwarded-for": "192.0.2.1"}, timeout=5.0).json()
        assert seen["client"][0] == "192.0.2.1"  # forwarded_allow_ips = nginx on 127.0.0.1
        server.wait_for_output('"GET /whoami HTTP/1.1" 200', stream="stdout")  # accesslog = "-"
        results: list[int] = []
        thread = in_flight_request(url, tmp_path / "journal", results)
        server.send_signal(signal.SIGTERM)  # graceful: the request in flight finishes
        thread.join(15.0)
        assert server.wait(float(str(settings["graceful_timeout"]))) == 0
    finally:
        server.close()
    assert results == [200]


# ------------------------------------------------------------------------------ Docker, Kubernetes


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined."""
    text = (DEPLOY_DOCS / "Dockerfile").read_text().replace("\\\n", " ")
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, rest = line.partition(" ")
            instructions.append((name.upper(), " ".join(rest.split())))
    return instructions


def docker_cmd() -> list[str]:
    cmd = [args for name, args in dockerfile_instructions() if name == "CMD"]
    assert len(cmd) == 1
    argv = json.loads(cmd[0])
    assert argv[0] == "turboasgi"
    return list(argv[1:])


def test_dockerfile_builds_the_wheel_as_ci_does() -> None:
    """Docker cannot run here: the build stage's commands are checked against .ci/wheel.sh (which CI
    runs on every interpreter) and the runtime stage's install against .ci/smoke-wheel.sh."""
    runs = [args for name, args in dockerfile_instructions() if name == "RUN"]
    build = [run for run in runs if run.startswith("maturin build")]
    assert build == ["maturin build --release --locked --out /wheels"]
    ci_build = (ROOT / ".ci" / "wheel.sh").read_text()
    assert re.search(r'"\$\{MATURIN:-maturin\}" build --release --locked .*--out', ci_build)
    installs = [run for run in runs if "/wheels/turboasgi-*.whl" in run]
    assert installs and installs[0].startswith("pip install --no-cache-dir /wheels/turboasgi-*.whl")
    stages = [args for name, args in dockerfile_instructions() if name == "FROM"]
    assert len(stages) == 2 and stages[0].endswith(" AS build")
    assert "COPY --from=build /wheels /wheels" in [f"{n} {a}" for n, a in dockerfile_instructions()]


def test_docker_cmd_and_kubernetes_deployment(tmp_path: Path) -> None:
    """The image's CMD serves the Deployment's probes on its containerPort; a pod's stop (preStop,
    then SIGTERM) lets a request in flight finish, well inside terminationGracePeriodSeconds."""
    args = docker_cmd()
    deployment = yaml.safe_load((DEPLOY_DOCS / "kubernetes.yaml").read_text())
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    exposed = [a for n, a in dockerfile_instructions() if n == "EXPOSE"]
    assert exposed == [option(args, "--port")] and ports["http"] == int(option(args, "--port"))
    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    graceful = float(option(args, "--timeout-graceful-shutdown"))
    assert pod["terminationGracePeriodSeconds"] > float(pre_stop[1]) + graceful

    port = free_port()
    local = [APP, *args[1:]]
    local[local.index("0.0.0.0")] = "127.0.0.1"  # only loopback in tests
    local[local.index("--port") + 1] = str(port)
    server = ServerProcess(local, env={"PROXIED_JOURNAL": str(tmp_path / "journal")})
    with server:
        url = f"http://127.0.0.1:{port}"
        for probe in ("readinessProbe", "livenessProbe"):
            check = container[probe]["httpGet"]
            assert check["port"] == "http"
            assert httpx.get(f"{url}{check['path']}", timeout=5.0).status_code == 200
        results: list[int] = []
        thread = in_flight_request(url, tmp_path / "journal", results)
        started = time.monotonic()
        server.send_signal(signal.SIGTERM)  # after preStop, the kubelet's SIGTERM
        thread.join(15.0)
        server.wait(graceful)
        assert time.monotonic() - started < graceful
    assert results == [200]


# ------------------------------------------------------------------------------ the documentation


@pytest.mark.parametrize("name", sorted(p.name for p in DEPLOY_DOCS.iterdir()))
def test_deployment_docs_quote_the_tested_file(name: str) -> None:
    """docs/deployment.md shows each file of docs/deploy/ verbatim, in a fenced block."""
    docs = DOCS.read_text()
    content = (DEPLOY_DOCS / name).read_text()
    assert re.search(r"```[a-z]*\n" + re.escape(content) + r"```\n", docs), f"{name} is not quoted verbatim"
