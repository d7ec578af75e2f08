"""Start a server the way systemd starts a socket-activated service: the launcher binds the socket,
passes it as file descriptor 3 and sets ``LISTEN_FDS=1`` and ``LISTEN_PID`` to the pid of the
process that execs the server (only known in the child, so a small ``python -c`` sets it)."""

from __future__ import annotations

import socket
import sys
from collections.abc import Mapping, Sequence

from server_process import ServerProcess

# dup2 the passed socket to fd 3, fill in LISTEN_PID, exec the server command (argv[2:])
LAUNCHER = """
import os, sys
passed = int(sys.argv[1])
if passed != 3:
    os.dup2(passed, 3)
    os.close(passed)
if os.environ.get("LISTEN_PID") == "self":
    os.environ["LISTEN_PID"] = str(os.getpid())
os.execv(sys.argv[2], sys.argv[2:])
"""

ACTIVATED = {"LISTEN_FDS": "1", "LISTEN_PID": "self"}


def socket_activated(
    sock: socket.socket,
    args: Sequence[str],
    listen_env: Mapping[str, str] | None = ACTIVATED,
    env: Mapping[str, str] | None = None,
) -> ServerProcess:
    """``python -m turboasgi ARGS`` with ``sock`` as fd 3 and ``listen_env`` (``LISTEN_PID`` "self" is
    the server's own pid; None: no variables, the socket is only there as fd 3, as for ``--fd 3``)."""
    fd = str(sock.fileno())
    command = [sys.executable, "-c", LAUNCHER, fd, sys.executable, "-m", "turboasgi", *args]
    full_env = {**(env or {}), **(listen_env or {})}
    return ServerProcess([], command=command, env=full_env, pass_fds=[sock.fileno()])
