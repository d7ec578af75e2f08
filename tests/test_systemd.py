"""systemd socket activation: the server is started the way systemd starts a socket-activated service
(the listening socket bound by the launcher, passed as file descriptor 3, ``LISTEN_FDS=1`` and
``LISTEN_PID`` set to the service's own pid) and must serve that socket."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator, Mapping

import httpx
import pytest
from server_process import ServerProcess, poll
from systemd_launch import ACTIVATED, socket_activated

pytestmark = pytest.mark.timeout(30)

PROBE = "tests.apps.probe:app"


def activated(
    sock: socket.socket, *options: str, listen_env: Mapping[str, str] | None = None
) -> ServerProcess:
    return socket_activated(sock, [PROBE, *options], ACTIVATED if listen_env is None else listen_env)


@pytest.fixture
def listening() -> Iterator[socket.socket]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock


def get(port: int, path: str) -> str:
    return httpx.get(f"http://127.0.0.1:{port}{path}", timeout=5.0).text


def test_serves_the_socket_systemd_passed(listening: socket.socket) -> None:
    port = listening.getsockname()[1]
    # --port would bind elsewhere: the activated socket replaces --host/--port, as under gunicorn
    with activated(listening, "--port", "0") as proc:
        assert "Serving the socket passed by systemd (LISTEN_FDS), file descriptor 3" in proc.stderr
        assert f"Turboasgi running on socket ('127.0.0.1', {port}) (Press CTRL+C to quit)" in proc.stderr
        assert get(port, "/") == "ok"
        # read and removed, as sd_listen_fds(unset_environment=1) does: the app's children see nothing
        for name in ("LISTEN_FDS", "LISTEN_PID"):
            assert get(port, f"/env?name={name}") == "<unset>"
        assert proc.stop() == 0


def test_worker_processes_serve_the_activated_socket(listening: socket.socket) -> None:
    port = listening.getsockname()[1]
    with activated(listening, "--workers", "2") as proc:
        proc.wait_for_output("Application startup complete.")
        assert get(port, "/") == "ok"
        assert get(port, "/env?name=LISTEN_FDS") == "<unset>"
        assert proc.stop() == 0


def test_listen_pid_of_another_process_is_ignored(listening: socket.socket) -> None:
    # variables inherited from a parent that was activated: not meant for this process
    env = {"LISTEN_FDS": "1", "LISTEN_PID": str(os.getppid())}
    with activated(listening, "--port", "0", listen_env=env) as proc:
        assert proc.port is not None and proc.port != listening.getsockname()[1]
        assert "systemd" not in proc.stderr
        assert httpx.get(proc.url, timeout=5.0).text == "ok"
        assert get(proc.port, "/env?name=LISTEN_FDS") == "<unset>"
        assert proc.stop() == 0


def test_explicit_uds_wins_over_listen_fds(listening: socket.socket, tmp_path: os.PathLike[str]) -> None:
    path = os.path.join(tmp_path, "explicit.sock")
    with activated(listening, "--uds", path) as proc:
        assert proc.uds == path
        with httpx.Client(transport=httpx.HTTPTransport(uds=path), timeout=5.0) as client:
            assert client.get("http://localhost/").text == "ok"
        assert proc.stop() == 0


@pytest.mark.parametrize(
    ("listen_env", "message"),
    [
        ({"LISTEN_FDS": "one", "LISTEN_PID": "self"}, "Error: LISTEN_FDS must be an integer, got 'one'"),
        ({"LISTEN_FDS": "1", "LISTEN_PID": "x"}, "Error: LISTEN_PID must be an integer, got 'x'"),
        (
            {"LISTEN_FDS": "2", "LISTEN_PID": "self"},
            "Error: LISTEN_FDS=2: turboasgi serves one socket; give the socket unit a single ListenStream=",
        ),
    ],
)
def test_unusable_listen_fds_is_a_clear_error(
    listening: socket.socket, listen_env: dict[str, str], message: str
) -> None:
    proc = activated(listening, listen_env=listen_env)
    try:
        assert proc.run_to_exit() == 2
        poll(lambda: message in proc.stderr, what="the error line")
        assert "Traceback" not in proc.stderr
    finally:
        proc.close()
