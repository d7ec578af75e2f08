"""systemd socket activation: the ``LISTEN_FDS``/``LISTEN_PID`` protocol of ``sd_listen_fds(3)``.

systemd (or any launcher following the protocol) binds the socket itself, passes it to the service as
file descriptor 3 and says so in the environment: ``LISTEN_FDS`` (how many descriptors, from 3 up) and
``LISTEN_PID`` (the process they are meant for). The variables are removed once read, as
``sd_listen_fds(unset_environment=1)`` does, so that worker processes and anything the application
starts do not take the descriptors for theirs.
"""

from __future__ import annotations

import os

__all__ = ["SD_LISTEN_FDS_START", "SystemdSocketError", "take_listen_fd"]

SD_LISTEN_FDS_START = 3

_VARIABLES = ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES")


class SystemdSocketError(ValueError):
    """``LISTEN_FDS``/``LISTEN_PID`` are set but cannot be used; the message names the variable."""


def _integer(name: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise SystemdSocketError(f"{name} must be an integer, got {value!r}") from None


def take_listen_fd() -> int | None:
    """The descriptor systemd passed to this process, or None when it passed none (no variables, or
    ``LISTEN_PID`` names another process: they were inherited from a parent that did not unset them).
    Removes the variables from the environment in every case."""
    values = {name: os.environ.pop(name, None) for name in _VARIABLES}
    pid, count = values["LISTEN_PID"], values["LISTEN_FDS"]
    if pid is None or count is None:
        return None
    if _integer("LISTEN_PID", pid) != os.getpid():
        return None
    fds = _integer("LISTEN_FDS", count)
    if fds == 0:
        return None
    if fds != 1:
        raise SystemdSocketError(
            f"LISTEN_FDS={fds}: turboasgi serves one socket; give the socket unit a single ListenStream="
        )
    fd = SD_LISTEN_FDS_START
    try:
        # like sd_listen_fds(): the passed descriptor is not inherited by processes the app starts
        # (bind_socket() serves a duplicate, made inheritable for worker processes)
        os.set_inheritable(fd, False)
    except OSError as exc:
        raise SystemdSocketError(f"LISTEN_FDS=1 but file descriptor {fd} is not open ({exc})") from None
    return fd
