"""--access-log-format: the access line from the operator's template (issue 14 item 5), with a real
server and real clients; the default line stays uvicorn's."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest
from server_process import ServerProcess, poll, running

pytestmark = pytest.mark.timeout(30)

PROBE = "tests.apps.probe:app"
TEMPLATE = (
    '{client} {method} {path}{query} {status} {bytes} {duration_ms}ms {request_id} "{user_agent}" "{referer}"'
)


def access_lines(server: ServerProcess, count: int) -> list[str]:
    """The first ``count`` access lines (stdout), waiting for them to be written."""
    poll(lambda: len(server.stdout.splitlines()) >= count, timeout=5, what=f"{count} access lines")
    return server.stdout.splitlines()[:count]


def test_every_field_of_the_template() -> None:
    with running(PROBE, "--access-log-format", TEMPLATE) as server:
        headers = {"x-request-id": "req-42", "user-agent": "probe/1.0", "referer": "http://ref.test/"}
        assert httpx.get(server.url + "/?a=1", headers=headers, timeout=5).status_code == 200
        assert httpx.get(server.url + "/chunked", timeout=5).status_code == 200  # streamed, no length
        first, second = access_lines(server, 2)
    port = r"\d+"
    assert re.fullmatch(
        rf'INFO:     127\.0\.0\.1:{port} GET /\?a=1 200 2 \d+\.\d{{3}}ms req-42 "probe/1\.0" "http://ref\.test/"',
        first,
    ), first
    assert re.fullmatch(
        rf'INFO:     127\.0\.0\.1:{port} GET /chunked 200 - \d+\.\d{{3}}ms - "python-httpx/[^"]+" "-"', second
    ), second


def test_the_servers_own_503_uses_the_template_too() -> None:
    options = ("--access-log-format", "{status} {method} {path} {duration_ms}", "--limit-concurrency", "1")
    with running(PROBE, *options) as server, httpx.Client(base_url=server.url, timeout=10) as client:
        with client.stream("GET", "/forever") as held:  # holds the one slot
            assert held.status_code == 200
            assert httpx.get(server.url + "/", timeout=5).status_code == 503
            lines = access_lines(server, 2)
    assert lines == ["INFO:     200 GET /forever " + lines[0].rsplit(" ", 1)[1], "INFO:     503 GET / -"]


def test_without_the_option_the_line_is_uvicorns() -> None:
    with running(PROBE) as server:
        httpx.get(server.url + "/?a=1", timeout=5)
        (line,) = access_lines(server, 1)
    assert re.fullmatch(r'INFO:     127\.0\.0\.1:\d+ - "GET /\?a=1 HTTP/1\.1" 200 OK', line), line


def test_a_log_config_written_for_uvicorn_prints_the_template(tmp_path: Path) -> None:
    config = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "default": {"()": "uvicorn.logging.DefaultFormatter", "fmt": "%(levelprefix)s %(message)s"},
            "access": {
                "()": "uvicorn.logging.AccessFormatter",
                "fmt": '%(levelprefix)s %(client_addr)s - "%(request_line)s" %(status_code)s',
                "use_colors": False,
            },
        },
        "handlers": {
            "default": {
                "formatter": "default",
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
            },
            "access": {"formatter": "access", "class": "logging.StreamHandler", "stream": "ext://sys.stdout"},
        },
        "loggers": {
            "uvicorn.error": {"handlers": ["default"], "level": "INFO"},
            "uvicorn.access": {"handlers": ["access"], "level": "INFO", "propagate": False},
        },
    }
    path = tmp_path / "log.json"
    path.write_text(json.dumps(config))
    with running(
        PROBE, "--log-config", str(path), "--access-log-format", "{method} {path} -> {status}"
    ) as server:
        httpx.get(server.url + "/", timeout=5)
        (line,) = access_lines(server, 1)
    assert line == "INFO:     GET / -> 200"


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{client} {nope}", "unknown field 'nope'"),
        ("{status:d}", "--access-log-format:"),
        ("{}", "unknown field '{}'"),
    ],
)
def test_a_bad_template_is_a_usage_error(template: str, message: str) -> None:
    server = ServerProcess([PROBE, "--port", "0", "--access-log-format", template])
    assert server.run_to_exit() == 2
    assert message in server.stderr, server.output
    server.close()
