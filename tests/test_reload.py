"""``--reload``: the reloader process restarts the server when a watched file changes."""

from __future__ import annotations

import http.client
import os
import signal
import threading
from pathlib import Path

import pytest

from tests.server_process import ServerProcess, poll, turboasgi_server

APP_SOURCE = """
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = {body!r}
    await send({{"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", str(len(body)).encode())]}})
    await send({{"type": "http.response.body", "body": body}})
"""


def write_app(path: Path, body: bytes) -> None:
    path.write_text(APP_SOURCE.format(body=body))


def fetch(server: ServerProcess) -> bytes | None:
    host, port = server.address
    conn = http.client.HTTPConnection(host, port, timeout=2)
    try:
        conn.request("GET", "/", headers={"Connection": "close"})
        return conn.getresponse().read()
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


def has_watchfiles() -> bool:
    try:
        import watchfiles  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.timeout(60)
def test_reload_picks_up_an_edited_file(tmp_path: Path) -> None:
    module = tmp_path / "reload_target_app.py"
    write_app(module, b"one")
    server = turboasgi_server(
        "reload_target_app:app",
        "--reload",
        "--reload-dir",
        str(tmp_path),
        "--reload-delay",
        "0.1",
        cwd=tmp_path,
    )
    try:
        server.start()
        poll(lambda: fetch(server) == b"one", 10, what="the first version")
        err = server.stderr
        assert f"Will watch for changes in these directories: ['{tmp_path.resolve()}']" in err
        name = "WatchFiles" if has_watchfiles() else "StatReload"
        assert f"Started reloader process [{server.proc.pid if server.proc else 0}] using {name}" in err

        (tmp_path / "notes.txt").write_text("not a python file")  # not included: no reload
        write_app(module, b"two")
        poll(lambda: fetch(server) == b"two", 15, what="the edited version")
        err = server.stderr
        assert f"{name} detected changes in 'reload_target_app.py'. Reloading..." in err
        assert "notes.txt" not in err
        assert server.stop(signal.SIGINT) == 0, server.output
        assert "Stopping reloader process" in server.stderr
    finally:
        server.close()


@pytest.mark.timeout(60)
def test_reload_survives_a_broken_edit(tmp_path: Path) -> None:
    module = tmp_path / "reload_broken_app.py"
    write_app(module, b"one")
    server = turboasgi_server(
        "reload_broken_app:app",
        "--reload",
        "--reload-dir",
        str(tmp_path),
        "--reload-delay",
        "0.1",
        cwd=tmp_path,
    )
    try:
        server.start()
        poll(lambda: fetch(server) == b"one", 10, what="the first version")
        module.write_text("def broken(:\n")
        server.wait_for_output("SyntaxError", timeout=15)
        assert server.running  # the reloader waits for the next change
        write_app(module, b"fixed")
        poll(lambda: fetch(server) == b"fixed", 15, what="the fixed version")
    finally:
        server.close()


@pytest.mark.timeout(60)
def test_workers_are_ignored_with_reload(tmp_path: Path) -> None:
    write_app(tmp_path / "reload_workers_app.py", b"ok")
    server = turboasgi_server(
        "reload_workers_app:app", "--reload", "--workers", "3", "--reload-dir", str(tmp_path), cwd=tmp_path
    )
    try:
        server.start()
        poll(lambda: fetch(server) == b"ok", 10, what="the server")
        err = server.stderr
        assert '"workers" flag is ignored when reloading is enabled.' in err
        assert "Started parent process" not in err
        assert err.count("Started server process") == 1
    finally:
        server.close()


# ------------------------------------------------------------------------------------ units


def test_file_filter_defaults(tmp_path: Path) -> None:
    from turboasgi.config import Config
    from turboasgi.reload import FileFilter, resolve_patterns

    config = Config(
        "a:b", log_config=None, reload=True, reload_dirs=[str(tmp_path)], reload_excludes=["build"]
    )
    dirs, includes, excludes = resolve_patterns(config)
    assert dirs == [tmp_path.resolve()]
    check = FileFilter(dirs, includes, excludes)
    root = tmp_path.resolve()
    assert check(root / "app.py")
    assert check(root / "pkg" / "mod.py")
    assert not check(root / "notes.txt")
    assert not check(root / ".hidden.py")
    assert not check(root / "mod.pyc")
    assert not check(root / ".venv" / "lib" / "x.py")
    assert not check(root / "__pycache__" / "x.py")
    assert not check(root / "build" / "x.py")


def test_include_overrides_a_default_exclude(tmp_path: Path) -> None:
    from turboasgi.config import Config
    from turboasgi.reload import FileFilter, resolve_patterns

    config = Config(
        "a:b", log_config=None, reload=True, reload_dirs=[str(tmp_path)], reload_includes=["*.html", ".*"]
    )
    check = FileFilter(*resolve_patterns(config))
    root = tmp_path.resolve()
    assert check(root / "page.html")
    assert check(root / ".env")


@pytest.mark.timeout(30)
def test_stat_reload_detects_changes(tmp_path: Path) -> None:
    from turboasgi.config import Config
    from turboasgi.reload import StatReload

    source = tmp_path / "mod.py"
    source.write_text("x = 1\n")
    config = Config("a:b", log_config=None, reload=True, reload_dirs=[str(tmp_path)], reload_delay=0.05)
    reloader = StatReload(config, [])
    changes = reloader.changes()
    assert next(changes) == []
    source.write_text("x = 2\n")
    os.utime(source, (1, 1))  # a different mtime even on coarse-grained file systems
    assert next(changes) == [source.resolve()]
    (tmp_path / "other.txt").write_text("ignored")
    assert next(changes) == []
    source.unlink()
    assert next(changes) == [source.resolve()]
    timer = threading.Timer(0.05, reloader.should_exit.set)
    timer.start()
    assert all(batch == [] for batch in changes)  # ends once should_exit is set
    timer.join()
