"""The ``turboasgi`` command line, run as a real subprocess (``python -m turboasgi``).

Only paths that end before a server starts are covered here: usage and configuration errors,
``--help``, ``--version`` and application import failures.
"""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

import click
import pytest
import turboasgi

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parent.parent
PACKAGE_PARENT = str(Path(turboasgi.__file__).resolve().parent.parent)


def run_cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path = ROOT
) -> subprocess.CompletedProcess[str]:
    full_env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("TURBOASGI_") and key not in ("WEB_CONCURRENCY", "FORWARDED_ALLOW_IPS")
    }
    full_env["PYTHONPATH"] = os.pathsep.join(p for p in (PACKAGE_PARENT, full_env.get("PYTHONPATH")) if p)
    full_env["COLUMNS"] = "200"
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "turboasgi", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=30,
    )


def uvicorn_option_names() -> list[str]:
    names: list[str] = []
    uvicorn_cli = importlib.import_module("uvicorn.main").main  # the click command
    for param in uvicorn_cli.params:
        if isinstance(param, click.Option):
            names.extend(param.opts + param.secondary_opts)
    return names


# ---------------------------------------------------------------------------------- help / version


def test_help_lists_every_uvicorn_option() -> None:
    result = run_cli("--help")
    assert result.returncode == 0, result.stderr
    documented = set(re.findall(r"--[a-z0-9-]+", result.stdout))
    missing = [name for name in uvicorn_option_names() if name not in documented]
    assert missing == []
    assert "--threads" in documented
    assert "Usage: python -m turboasgi [OPTIONS] APP" in result.stdout


def test_help_marks_unsupported_options() -> None:
    out = run_cli("--help").stdout
    lines = {}
    for block in re.split(r"\n(?=  --)", out):
        match = re.match(r"\s*(--[a-z0-9-]+)", block)
        if match:
            lines[match.group(1)] = " ".join(block.split())
    for option in ("--reset-contextvars",):
        assert "not yet supported" in lines[option], option
    for option in [name for name in lines if name.startswith("--ssl-")]:
        assert "not yet supported" not in lines[option], option
    for option in ("--host", "--port", "--uds", "--fd", "--lifespan", "--root-path", "--header", "--threads"):
        assert "not yet supported" not in lines[option], option
    for option in ("--reload", "--reload-dir", "--reload-include", "--reload-exclude", "--reload-delay"):
        assert "not yet supported" not in lines[option], option
    for option in ("--workers", "--limit-max-requests", "--limit-max-requests-jitter"):
        assert "not yet supported" not in lines[option], option
    assert "[default: 127.0.0.1]" in lines["--host"]
    assert "[default: 8000]" in lines["--port"]
    assert "[default: 2048]" in lines["--backlog"]


def test_version() -> None:
    result = run_cli("--version")
    assert result.returncode == 0
    assert re.fullmatch(
        r"Running turboasgi \d+\.\d+\.\d+\S* with CPython 3\.\d+\.\d+\S* on Linux\n", result.stdout
    )


def test_missing_app_is_a_usage_error() -> None:
    result = run_cli()
    assert result.returncode == 2
    assert "Missing argument 'APP'" in result.stderr


# ---------------------------------------------------------------------------------- import errors


@pytest.mark.parametrize(
    ("app", "message"),
    [
        ("nope_module_xyz:app", 'Could not import module "nope_module_xyz".'),
        ("examples.hello:nope", 'Attribute "nope" not found in module "examples.hello".'),
        ("examples.hello:app.missing", 'Attribute "app.missing" not found in module "examples.hello".'),
        ("examples.hello", 'Import string "examples.hello" must be in format "<module>:<attribute>".'),
    ],
)
def test_import_errors_exit_3(app: str, message: str) -> None:
    result = run_cli(app)
    assert result.returncode == 3
    assert result.stderr == f"ERROR:    Error loading ASGI app. {message}\n"
    assert result.stdout == ""


def test_app_dir(tmp_path: Path) -> None:
    (tmp_path / "elsewhere_app.py").write_text("async def app(scope, receive, send):\n    pass\n")
    # the module is importable only through --app-dir; a missing attribute proves it was imported
    result = run_cli("--app-dir", str(tmp_path), "elsewhere_app:missing")
    assert result.returncode == 3
    assert 'Attribute "missing" not found in module "elsewhere_app"' in result.stderr
    result = run_cli("elsewhere_app:missing")
    assert result.returncode == 3
    assert 'Could not import module "elsewhere_app"' in result.stderr


def test_default_app_dir_is_the_working_directory(tmp_path: Path) -> None:
    (tmp_path / "main.py").write_text("app = None\n")
    result = run_cli("main:missing", cwd=tmp_path)
    assert result.returncode == 3
    assert 'Attribute "missing" not found in module "main"' in result.stderr


def test_factory_that_is_not_a_factory_exits_3() -> None:
    result = run_cli("--factory", "examples.hello:app")
    assert result.returncode == 3
    assert "ERROR:    Error loading ASGI app factory: " in result.stderr


# ---------------------------------------------------------------------------------- usage errors


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--reload-delay", "-1"], "Error: --reload-delay must not be negative, got -1.0"),
        (["--workers", "-2"], "Error: --workers must be at least 1, got -2"),
        (["--limit-max-requests-jitter", "-1"], "Error: --limit-max-requests-jitter must not be negative"),
        (["--threads", "0"], "Error: threads must be at least 1, got 0"),
        (["--ws-max-queue", "4"], "Error: A non-default --ws-max-queue is not yet supported by turboasgi"),
        (["--ws-ping-interval", "0"], "Error: --ws-ping-interval must be a positive number of seconds"),
        (["--interface", "wsgi"], "Error: --interface wsgi is not yet supported by turboasgi"),
        (["--uds", "/tmp/x.sock", "--fd", "3"], "Error: --uds and --fd are mutually exclusive"),
        (["--http", "3"], "Error: Invalid --http '3'"),
        (["--http", "1", "--http2"], "Error: --http2 and --http 1 contradict each other"),
        (["--h2-max-frame-size", "100"], "Error: --h2-max-frame-size must be between 16384 and 16777215"),
        (["--h2-keep-alive-timeout", "0"], "Error: --h2-keep-alive-timeout must be a positive number"),
    ],
)
def test_config_errors_are_one_line_exit_2(args: list[str], message: str) -> None:
    result = run_cli(*args, "examples.hello:app")
    assert result.returncode == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--port", "abc"], "Invalid value for '--port'"),
        (["--lifespan", "sometimes"], "Invalid value for '--lifespan'"),
        (["--log-level", "loud"], "Invalid value for '--log-level'"),
        (["--header", "no-colon"], "Invalid value for '--header'"),
        (["--log-config", "/nonexistent/log.json"], "Invalid value for '--log-config'"),
        (["--env-file", "/nonexistent/.env"], "Invalid value for '--env-file'"),
        (["--no-such-option"], "No such option"),
    ],
)
def test_click_usage_errors_exit_2(args: list[str], message: str) -> None:
    result = run_cli(*args, "examples.hello:app")
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


# ---------------------------------------------------------------------------------- environment


def test_app_from_environment() -> None:
    result = run_cli(env={"TURBOASGI_APP": "nope_module_xyz:app"})
    assert result.returncode == 3
    assert 'Could not import module "nope_module_xyz".' in result.stderr


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"TURBOASGI_RELOAD_DELAY": "-1"}, "Error: --reload-delay must not be negative"),
        ({"TURBOASGI_WORKERS": "-4"}, "Error: --workers must be at least 1, got -4"),
        ({"TURBOASGI_PORT": "abc"}, "Invalid value for '--port'"),
        ({"TURBOASGI_LIFESPAN": "sometimes"}, "Invalid value for '--lifespan'"),
        ({"TURBOASGI_HEADERS": "X-Ok:1 no-colon"}, "Invalid value for '--header'"),
        ({"TURBOASGI_RELOAD_DIRS": "/nonexistent-dir-xyz"}, "Invalid value for '--reload-dir'"),
        ({"WEB_CONCURRENCY": "-3"}, "Error: --workers must be at least 1, got -3 (from $WEB_CONCURRENCY)"),
        ({"TURBOASGI_H2_MAX_CONCURRENT_STREAMS": "0"}, "Error: --h2-max-concurrent-streams must be between"),
    ],
)
def test_options_from_environment(env: dict[str, str], message: str) -> None:
    result = run_cli("examples.hello:app", env=env)
    assert result.returncode == 2
    assert message in result.stderr


def test_log_level_from_environment() -> None:
    # at "critical" the import error is not logged, but the exit status stays 3
    result = run_cli("nope_module_xyz:app", env={"TURBOASGI_LOG_LEVEL": "critical"})
    assert result.returncode == 3
    assert result.stderr == ""


def test_command_line_wins_over_environment() -> None:
    result = run_cli("--workers", "1", "examples.hello:missing", env={"TURBOASGI_WORKERS": "4"})
    assert result.returncode == 3
    assert 'Attribute "missing" not found' in result.stderr


def test_env_file_is_loaded(tmp_path: Path) -> None:
    env_file = tmp_path / "prod.env"
    env_file.write_text("WEB_CONCURRENCY=-4\n")
    result = run_cli("--env-file", str(env_file), "examples.hello:app")
    assert result.returncode == 2
    assert f"INFO:     Loading environment from '{env_file}'" in result.stderr
    assert "Error: --workers must be at least 1, got -4 (from $WEB_CONCURRENCY)" in result.stderr


def test_log_config_file_is_used(tmp_path: Path) -> None:
    config = tmp_path / "log.json"
    config.write_text(
        '{"version": 1, "disable_existing_loggers": false,'
        ' "formatters": {"f": {"format": "CUSTOM %(levelname)s %(message)s"}},'
        ' "handlers": {"h": {"class": "logging.StreamHandler", "formatter": "f", "stream": "ext://sys.stderr"}},'
        ' "loggers": {"turboasgi.error": {"handlers": ["h"], "level": "INFO", "propagate": false}}}'
    )
    result = run_cli("--log-config", str(config), "nope_module_xyz:app")
    assert result.returncode == 3
    assert (
        result.stderr == 'CUSTOM ERROR Error loading ASGI app. Could not import module "nope_module_xyz".\n'
    )
