"""What every framework app shares: the lifespan journal and the request set's fixed data.

Startup and shutdown hooks append a line to the file named by ``FRAMEWORK_EVENTS`` (one ``write(2)``
on an ``O_APPEND`` file, so several event loops can record at once); ``/startup`` answers whether the
startup hook ran in this process.
"""

from __future__ import annotations

import os

STARTED: set[str] = set()

# The body of /stream, sent as three chunks with a turn of the event loop between them.
STREAM_CHUNKS = [b"first,", b"second,", b"third"]
CUSTOM_HEADER = ("x-custom", "custom value")
COOKIE = ("session", "abc123")


def record(event: str) -> None:
    if event == "startup":
        STARTED.add(event)
    path = os.environ.get("FRAMEWORK_EVENTS")
    if path:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{event}\n".encode())
        finally:
            os.close(fd)


def started() -> str:
    return "yes" if STARTED else "no"
