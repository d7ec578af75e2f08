from __future__ import annotations

import asyncio
import errno
import inspect
import json
import logging
import logging.config
import os
import socket
import stat
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from turboasgi.config import (
    LOGGING_CONFIG,
    ASGI2Middleware,
    Config,
    ConfigError,
)
from turboasgi.lifespan import LifespanOff, LifespanOn
from turboasgi.logging import TRACE_LOG_LEVEL, DefaultFormatter, has_output

pytestmark = pytest.mark.timeout(30)


async def asgi3_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    pass


class ASGI3Class:
    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        pass


class ASGI2App:
    def __init__(self, scope: dict[str, Any]) -> None:
        self.scope = scope

    async def __call__(self, receive: Any, send: Any) -> None:
        await send({"type": "seen", "scope_type": self.scope["type"]})


def app_factory() -> Any:
    return asgi3_app


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("WEB_CONCURRENCY", "FORWARDED_ALLOW_IPS"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def _restore_loggers() -> Iterator[None]:
    """Some tests install other logging configurations; put the turboasgi loggers back afterwards."""
    yield
    for name in (
        "turboasgi",
        "turboasgi.error",
        "turboasgi.access",
        "turboasgi.asgi",
        "uvicorn",
        "uvicorn.error",
        "uvicorn.access",
        "uvicorn.asgi",
    ):
        logger = logging.getLogger(name)
        logger.handlers = []
        logger.propagate = True
        logger.setLevel(logging.NOTSET)
        logger.disabled = False
    logging.config.dictConfig(LOGGING_CONFIG)


@pytest.fixture
def records() -> Iterator[list[logging.LogRecord]]:
    """Log records of ``turboasgi.error`` (the logger does not propagate to the root, so caplog
    does not see it)."""
    captured: list[logging.LogRecord] = []

    class ListHandler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            captured.append(record)

    handler = ListHandler(level=1)
    logger = logging.getLogger("turboasgi.error")
    old_level = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    yield captured
    logger.removeHandler(handler)
    logger.setLevel(old_level)


def messages(records: list[logging.LogRecord]) -> list[str]:
    return [r.getMessage() for r in records]


# ---------------------------------------------------------------------------------- uvicorn parity


def test_constructor_accepts_every_uvicorn_config_argument() -> None:
    ours = inspect.signature(Config).parameters
    theirs = inspect.signature(uvicorn.Config).parameters
    missing = [name for name in theirs if name not in ours]
    assert missing == []
    for name, param in theirs.items():
        if name == "log_config":
            continue  # ours defaults to turboasgi's LOGGING_CONFIG
        assert ours[name].default == param.default, name
    assert ours["threads"].default is None


def test_defaults_match_uvicorn() -> None:
    ours = Config("examples.hello:app", log_config=None)
    theirs = uvicorn.Config("examples.hello:app", log_config=None)
    for name in (
        "host port uds fd loop http ws ws_max_size ws_max_queue ws_ping_interval ws_ping_timeout "
        "ws_per_message_deflate lifespan access_log use_colors interface reload reload_delay workers "
        "proxy_headers server_header date_header root_path limit_concurrency limit_max_requests "
        "backlog timeout_keep_alive timeout_notify timeout_graceful_shutdown callback_notify "
        "ssl_keyfile ssl_certfile ssl_version ssl_cert_reqs ssl_ca_certs ssl_ciphers headers factory "
        "h11_max_incomplete_event_size loaded is_ssl use_subprocess should_reload"
    ).split():
        assert getattr(ours, name) == getattr(theirs, name), name


# ---------------------------------------------------------------------------------- unsupported


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"workers": -2}, "--workers must be at least 1, got -2"),
        ({"reload_delay": -1}, "--reload-delay must not be negative"),
        ({"limit_max_requests": 0}, "--limit-max-requests must be at least 1"),
        ({"limit_max_requests_jitter": -1}, "--limit-max-requests-jitter must not be negative"),
        ({"threads": 0}, "threads must be at least 1"),
        ({"ssl_context_factory": lambda config, default: default()}, "ssl_context_factory"),
        ({"ws": "h11"}, "--ws h11 is not yet supported"),
        ({"ws_max_size": 0}, "--ws-max-size must be at least 1"),
        ({"ws_max_queue": 1}, "--ws-max-queue"),
        ({"ws_ping_interval": -1.0}, "--ws-ping-interval must be a positive number"),
        ({"ws_ping_timeout": 0.0}, "--ws-ping-timeout must be a positive number"),
        ({"interface": "wsgi"}, "--interface wsgi"),
        ({"http2": True, "http": "1"}, "--http2 and --http 1 contradict each other"),
        ({"http": "3"}, "Invalid --http '3'"),
        ({"h2_max_concurrent_streams": 0}, "--h2-max-concurrent-streams must be between 1 and"),
        ({"h2_max_frame_size": 1000}, "--h2-max-frame-size must be between 16384 and 16777215, got 1000"),
        ({"h2_initial_stream_window_size": 2**31}, "--h2-initial-stream-window-size must be between 1 and"),
        ({"h2_keep_alive_interval": 0.0}, "--h2-keep-alive-interval must be a positive number"),
        ({"reset_contextvars": True}, "--reset-contextvars"),
    ],
)
def test_unsupported_options_are_rejected(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        Config("examples.hello:app", log_config=None, **kwargs)
    assert message in str(info.value)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"lifespan": "bogus"},
        {"interface": "asgi4"},
        {"workers": -1},
        {"threads": 0},
        {"uds": "/tmp/x.sock", "fd": 3},
        {"limit_concurrency": 0},
        {"headers": ["no-colon"]},
        {"log_level": "loud"},
    ],
)
def test_invalid_values_are_rejected(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        Config("examples.hello:app", log_config=None, **kwargs)


def test_supported_values_are_accepted() -> None:
    config = Config(
        "examples.hello:app",
        log_config=None,
        ws="none",
        http="httptools",
        loop="asyncio",
        threads=1,
        workers=1,
        ssl_ciphers="ECDHE",  # without key/cert TLS stays off, like uvicorn
        limit_max_requests=10,
        timeout_graceful_shutdown=3,
    )
    assert config.ws == "none" and config.threads == 1 and not config.is_ssl


@pytest.mark.parametrize(
    ("kwargs", "notice"),
    [
        (
            {"http": "h11"},
            "--http h11 is accepted for compatibility and ignored: turboasgi parses HTTP with its own",
        ),
        ({"http": "httptools"}, "--http httptools is accepted for compatibility and ignored"),
        (
            {"ws": "wsproto"},
            "--ws wsproto is accepted for compatibility: WebSockets are served by turboasgi's own",
        ),
    ],
)
def test_compatibility_only_options_say_so(
    kwargs: dict[str, Any], notice: str, records: list[logging.LogRecord]
) -> None:
    """issue 10 item 10: accepted only so that uvicorn command lines keep working, and logged as such."""
    Config("examples.hello:app", log_config=None, **kwargs)
    assert [m for m in messages(records) if "compatibility" in m] == [
        m for m in messages(records) if notice in m
    ]
    assert len([m for m in messages(records) if notice in m]) == 1


def test_default_options_log_no_compatibility_notice(records: list[logging.LogRecord]) -> None:
    Config("examples.hello:app", log_config=None)
    assert not [m for m in messages(records) if "compatibility" in m]


def test_web_concurrency(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEB_CONCURRENCY", "1")
    assert Config("examples.hello:app", log_config=None).workers == 1
    monkeypatch.setenv("WEB_CONCURRENCY", "3")
    assert Config("examples.hello:app", log_config=None).workers == 3
    monkeypatch.setenv("WEB_CONCURRENCY", "-3")
    with pytest.raises(ConfigError, match=r"--workers must be at least 1, got -3 \(from \$WEB_CONCURRENCY\)"):
        Config("examples.hello:app", log_config=None)
    # an explicit workers argument wins over the environment
    assert Config("examples.hello:app", log_config=None, workers=1).workers == 1


# ---------------------------------------------------------------------------------- options


def test_forwarded_allow_ips(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Config("a:b", log_config=None).forwarded_allow_ips == ["127.0.0.1", "::1"]  # as uvicorn
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "10.0.0.1, 10.0.0.0/8")
    assert Config("a:b", log_config=None).forwarded_allow_ips == ["10.0.0.1", "10.0.0.0/8"]
    config = Config("a:b", log_config=None, forwarded_allow_ips="*")
    assert config.forwarded_allow_ips == ["*"]
    config = Config("a:b", log_config=None, forwarded_allow_ips=["1.2.3.4", "::1"])
    assert config.forwarded_allow_ips == ["1.2.3.4", "::1"]


def test_headers_accept_pairs_and_strings() -> None:
    config = Config("a:b", log_config=None, headers=[("X-One", "1"), "X-Two: two:2", ["X-Three", "3"]])
    assert config.headers == [("X-One", "1"), ("X-Two", "two:2"), ("X-Three", "3")]
    assert config.default_headers() == [(b"x-one", b"1"), (b"x-two", b"two:2"), (b"x-three", b"3")]


def test_env_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, records: list[logging.LogRecord]) -> None:
    monkeypatch.delenv("TURBOASGI_TEST_FROM_DOTENV", raising=False)
    env = tmp_path / ".env"
    env.write_text("TURBOASGI_TEST_FROM_DOTENV=hello\n")
    Config("a:b", log_config=None, env_file=str(env))
    assert os.environ["TURBOASGI_TEST_FROM_DOTENV"] == "hello"
    assert f"Loading environment from '{env}'" in messages(records)
    monkeypatch.delenv("TURBOASGI_TEST_FROM_DOTENV")


def test_reload_options_without_reload_warn(records: list[logging.LogRecord]) -> None:
    Config("a:b", log_config=None, reload_dirs=["."])
    assert any("will not reload" in m for m in messages(records))


@pytest.fixture
def fake_core(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Stand-in for the compiled ``turboasgi._core``, recording the CoreConfig arguments."""
    seen: dict[str, Any] = {}

    class CoreConfig:
        def __init__(self, **kwargs: Any) -> None:
            seen.update(kwargs)

    module = types.ModuleType("turboasgi._core")
    module.CoreConfig = CoreConfig  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "turboasgi._core", module)
    return seen


def test_core_config_defaults(fake_core: dict[str, Any]) -> None:
    Config("a:b", log_config=None).core_config()
    assert fake_core == {
        "root_path": "",
        "server_header": True,
        "date_header": True,
        "default_headers": [],
        "timeout_keep_alive": 5.0,
        "limit_concurrency": None,
        "proxy_headers": True,
        "forwarded_allow_ips": ["127.0.0.1", "::1"],
        "max_header_bytes": 65536,
        "tokio_threads": 1,
        "ws_enabled": True,
        "ws_max_size": 16 * 1024 * 1024,
        "ws_ping_interval": 20.0,
        "ws_ping_timeout": 20.0,
        "ws_per_message_deflate": True,
        "metrics": False,
        "timeout_request_head": None,
        "timeout_request_body": None,
        "limit_request_line": None,
        "limit_request_fields": None,
        "limit_request_field_size": None,
        "trace_connections": False,
        "tls": None,
        "http_protocols": "auto",
        "h2_max_concurrent_streams": 100,
        "h2_max_header_list_size": 65536,
        "h2_initial_stream_window_size": 1024 * 1024,
        "h2_initial_connection_window_size": 1024 * 1024,
        "h2_max_frame_size": 16384,
        "h2_keep_alive_interval": None,
        "h2_keep_alive_timeout": 20.0,
        "h2_max_pending_accept_reset_streams": 20,
        "h2_max_local_error_reset_streams": 1024,
    }


def test_core_config_trace_connections_follow_the_log_level(fake_core: dict[str, Any]) -> None:
    Config("a:b", log_config=LOGGING_CONFIG, log_level="trace").core_config()
    assert fake_core["trace_connections"] is True
    Config("a:b", log_config=LOGGING_CONFIG, log_level="debug").core_config()
    assert fake_core["trace_connections"] is False


@pytest.mark.parametrize(
    ("http", "protocols"),
    [("auto", "auto"), ("h11", "auto"), ("httptools", "auto"), ("zttp", "auto"), ("1", "1"), ("2", "2")],
)
def test_http_versions_from_the_http_option(fake_core: dict[str, Any], http: str, protocols: str) -> None:
    Config("a:b", log_config=None, http=http).core_config()
    assert fake_core["http_protocols"] == protocols


def test_core_config_mapping(fake_core: dict[str, Any]) -> None:
    Config(
        "a:b",
        log_config=None,
        root_path="/api",
        date_header=False,
        headers=["X-Powered-By:turbo", ("Server", "custom")],
        timeout_keep_alive=2,
        limit_concurrency=7,
        proxy_headers=False,
        forwarded_allow_ips="10.0.0.1,10.0.0.2",
        h11_max_incomplete_event_size=1024,
        ws="none",
        ws_per_message_deflate=False,
    ).core_config()
    assert fake_core["root_path"] == "/api"
    assert fake_core["date_header"] is False
    # a user "server" header replaces the default one, as in uvicorn
    assert fake_core["server_header"] is False
    assert fake_core["default_headers"] == [(b"x-powered-by", b"turbo"), (b"server", b"custom")]
    assert fake_core["timeout_keep_alive"] == 2.0
    assert fake_core["limit_concurrency"] == 7
    assert fake_core["proxy_headers"] is False
    assert fake_core["forwarded_allow_ips"] == ["10.0.0.1", "10.0.0.2"]
    assert fake_core["max_header_bytes"] == 1024
    assert fake_core["ws_enabled"] is False
    assert fake_core["ws_per_message_deflate"] is False


def test_core_config_tokio_threads(fake_core: dict[str, Any]) -> None:
    Config("a:b", log_config=None).core_config(tokio_threads=3)
    assert fake_core["tokio_threads"] == 3


def test_core_config_without_server_header(fake_core: dict[str, Any]) -> None:
    Config("a:b", log_config=None, server_header=False).core_config()
    assert fake_core["server_header"] is False


# ---------------------------------------------------------------------------------- load()


def test_load_asgi3_function() -> None:
    config = Config(asgi3_app, log_config=None)
    config.load()
    assert config.loaded and config.loaded_app is asgi3_app
    assert config.interface == "asgi3" and config.asgi_version == "3.0"
    assert config.lifespan_class is LifespanOn


def test_load_asgi3_instance_from_import_string() -> None:
    config = Config(f"{__name__}:ASGI3Class", log_config=None, factory=True)
    config.load()
    assert isinstance(config.loaded_app, ASGI3Class)
    assert config.interface == "asgi3"


def test_load_starlette_app() -> None:
    config = Config("examples.starlette_app:app", log_config=None)
    config.load()
    assert config.interface == "asgi3"


def test_load_asgi2_is_wrapped() -> None:
    config = Config(ASGI2App, log_config=None, lifespan="off")
    config.load()
    assert config.interface == "asgi2" and config.asgi_version == "2.0"
    assert isinstance(config.loaded_app, ASGI2Middleware)
    assert config.lifespan_class is LifespanOff

    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(config.loaded_app({"type": "http"}, receive, send))
    assert sent == [{"type": "seen", "scope_type": "http"}]


def test_explicit_interface_asgi2() -> None:
    config = Config(asgi3_app, log_config=None, interface="asgi2")
    config.load()
    assert isinstance(config.loaded_app, ASGI2Middleware)


def test_load_factory(records: list[logging.LogRecord]) -> None:
    config = Config(f"{__name__}:app_factory", log_config=None, factory=True)
    config.load()
    assert config.loaded_app is asgi3_app
    assert not any("factory detected" in m for m in messages(records))


def test_load_factory_detected_without_flag(records: list[logging.LogRecord]) -> None:
    config = Config(app_factory, log_config=None)
    config.load()
    assert config.loaded_app is asgi3_app
    assert (
        "ASGI app factory detected. Using it, but please consider setting the --factory flag explicitly."
        in messages(records)
    )


def test_load_factory_error_exits_3(records: list[logging.LogRecord]) -> None:
    config = Config(asgi3_app, log_config=None, factory=True)
    with pytest.raises(SystemExit) as info:
        config.load()
    assert info.value.code == 3
    assert messages(records)[-1].startswith("Error loading ASGI app factory: ")


def test_load_import_error_exits_3(records: list[logging.LogRecord]) -> None:
    config = Config("examples.hello:nope", log_config=None)
    with pytest.raises(SystemExit) as info:
        config.load()
    assert info.value.code == 3
    expected = 'Error loading ASGI app. Attribute "nope" not found in module "examples.hello".'
    assert messages(records)[-1] == expected


def test_load_twice_is_an_error() -> None:
    config = Config(asgi3_app, log_config=None)
    config.load()
    with pytest.raises(AssertionError):
        config.load()


def test_loop_factory() -> None:
    assert Config("a:b", log_config=None, loop="none").get_loop_factory() is None
    assert Config("a:b", log_config=None, loop="asyncio").get_loop_factory() is asyncio.new_event_loop
    factory = Config("a:b", log_config=None, loop="auto").get_loop_factory()
    assert factory is not None
    loop = factory()
    assert isinstance(loop, asyncio.AbstractEventLoop)
    loop.close()
    custom = Config("a:b", log_config=None, loop="asyncio:new_event_loop").get_loop_factory()
    assert custom is asyncio.new_event_loop


# ---------------------------------------------------------------------------------- bind_socket()


def _accepts(sock: socket.socket, family: int, address: Any) -> None:
    with socket.socket(family, socket.SOCK_STREAM) as client:
        client.settimeout(5)
        client.connect(address)
        conn, _ = sock.accept()
        conn.close()


def test_bind_port_zero_logs_real_port(records: list[logging.LogRecord]) -> None:
    sock = Config("a:b", log_config=None, port=0).bind_socket()
    try:
        port = sock.getsockname()[1]
        assert port != 0
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR) == 1
        assert sock.get_inheritable()
        assert messages(records)[-1] == f"Turboasgi running on http://127.0.0.1:{port} (Press CTRL+C to quit)"
        _accepts(sock, socket.AF_INET, ("127.0.0.1", port))
    finally:
        sock.close()


@pytest.mark.skipif(not socket.has_ipv6, reason="no IPv6")
def test_bind_ipv6(records: list[logging.LogRecord]) -> None:
    try:
        sock = Config("a:b", log_config=None, host="::1", port=0).bind_socket()
    except SystemExit:
        pytest.skip("IPv6 loopback not available")
    try:
        port = sock.getsockname()[1]
        assert sock.family == socket.AF_INET6
        assert messages(records)[-1] == f"Turboasgi running on http://[::1]:{port} (Press CTRL+C to quit)"
        _accepts(sock, socket.AF_INET6, ("::1", port))
    finally:
        sock.close()


def test_bind_address_in_use_exits_3(records: list[logging.LogRecord]) -> None:
    first = Config("a:b", log_config=None, port=0).bind_socket()
    try:
        port = first.getsockname()[1]
        with pytest.raises(SystemExit) as info:
            Config("a:b", log_config=None, port=port).bind_socket()
        assert info.value.code == 3
        assert messages(records)[-1] == (
            f"[Errno {errno.EADDRINUSE}] error while attempting to bind on address ('127.0.0.1', {port}): "
            "address already in use"
        )
    finally:
        first.close()


def test_bind_unix_socket(tmp_path: Path, records: list[logging.LogRecord]) -> None:
    path = str(tmp_path / "app.sock")
    # a stale socket file from an earlier run is replaced
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(path)
    stale.close()
    sock = Config("a:b", log_config=None, uds=path).bind_socket()
    try:
        mode = os.stat(path).st_mode
        assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o666
        assert messages(records)[-1] == f"Turboasgi running on unix socket {path} (Press CTRL+C to quit)"
        _accepts(sock, socket.AF_UNIX, path)
    finally:
        sock.close()


def test_bind_unix_socket_refuses_to_replace_a_regular_file(
    tmp_path: Path, records: list[logging.LogRecord]
) -> None:
    path = tmp_path / "not-a-socket"
    path.write_text("keep me")
    with pytest.raises(SystemExit) as info:
        Config("a:b", log_config=None, uds=str(path)).bind_socket()
    assert info.value.code == 3
    assert path.read_text() == "keep me"


def test_bind_fd(records: list[logging.LogRecord]) -> None:
    inherited = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    inherited.bind(("127.0.0.1", 0))  # bound but not listening: bind_socket() starts listening
    try:
        sock = Config("a:b", log_config=None, fd=inherited.fileno()).bind_socket()
        try:
            assert sock.fileno() != inherited.fileno()
            assert sock.family == socket.AF_INET
            port = sock.getsockname()[1]
            assert messages(records)[-1] == (
                f"Turboasgi running on socket ('127.0.0.1', {port}) (Press CTRL+C to quit)"
            )
            _accepts(sock, socket.AF_INET, ("127.0.0.1", port))
        finally:
            sock.close()
    finally:
        inherited.close()


# ---------------------------------------------------------------------------------- logging


def test_configure_logging_levels_and_access_log() -> None:
    Config("a:b", log_level="warning", access_log=False)
    assert logging.getLogger("turboasgi.error").level == logging.WARNING
    assert logging.getLogger("turboasgi.access").level == logging.WARNING
    assert logging.getLogger("turboasgi.access").handlers == []
    Config("a:b", log_level="trace")
    assert logging.getLogger("turboasgi.error").level == 5
    assert logging.getLevelName(5) == "TRACE"
    Config("a:b")
    assert logging.getLogger("turboasgi.error").level == logging.INFO
    assert len(logging.getLogger("turboasgi.access").handlers) == 1


def test_use_colors_does_not_mutate_the_default_config() -> None:
    Config("a:b", use_colors=True)
    assert LOGGING_CONFIG["formatters"]["default"]["use_colors"] is None
    formatter = logging.getLogger("turboasgi").handlers[0].formatter
    assert getattr(formatter, "use_colors", None) is True
    Config("a:b", use_colors=False)
    formatter = logging.getLogger("turboasgi").handlers[0].formatter
    assert getattr(formatter, "use_colors", None) is False


def _custom_dict_config() -> dict[str, Any]:
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": {"format": "custom %(levelname)s %(message)s"}},
        "handlers": {"h": {"class": "logging.StreamHandler", "formatter": "plain"}},
        "loggers": {"turboasgi.error": {"handlers": ["h"], "level": "DEBUG", "propagate": False}},
    }


def test_log_config_json(tmp_path: Path) -> None:
    path = tmp_path / "log.json"
    path.write_text(json.dumps(_custom_dict_config()))
    Config("a:b", log_config=str(path))
    assert logging.getLogger("turboasgi.error").level == logging.DEBUG
    assert logging.getLogger("turboasgi.error").handlers[0].formatter._fmt.startswith("custom")  # type: ignore[union-attr]


def test_log_config_yaml(tmp_path: Path) -> None:
    yaml = pytest.importorskip("yaml")
    path = tmp_path / "log.yaml"
    path.write_text(yaml.safe_dump(_custom_dict_config()))
    Config("a:b", log_config=path)  # a PathLike is accepted too
    assert logging.getLogger("turboasgi.error").level == logging.DEBUG


def test_log_config_ini(tmp_path: Path) -> None:
    path = tmp_path / "log.ini"
    path.write_text(
        "[loggers]\nkeys=root,turboasgi_error\n\n[handlers]\nkeys=h\n\n[formatters]\nkeys=f\n\n"
        "[logger_root]\nlevel=WARNING\nhandlers=h\n\n"
        "[logger_turboasgi_error]\nlevel=ERROR\nhandlers=h\nqualname=turboasgi.error\npropagate=0\n\n"
        "[handler_h]\nclass=StreamHandler\nformatter=f\nargs=(sys.stderr,)\n\n"
        "[formatter_f]\nformat=ini %(message)s\n"
    )
    Config("a:b", log_config=str(path))
    assert logging.getLogger("turboasgi.error").level == logging.ERROR


def test_default_log_output_format(capsys: pytest.CaptureFixture[str]) -> None:
    Config("a:b", use_colors=False)
    logging.getLogger("turboasgi.error").info("Started server process [%d]", 123)
    logging.getLogger("turboasgi.error").warning("careful")
    logging.getLogger("turboasgi.access").info(
        '%s - "%s %s HTTP/%s" %d', "127.0.0.1:54321", "GET", "/a/b%20c?x=1", "1.1", 200
    )
    captured = capsys.readouterr()
    assert captured.err == "INFO:     Started server process [123]\nWARNING:  careful\n"
    assert captured.out == 'INFO:     127.0.0.1:54321 - "GET /a/b%20c?x=1 HTTP/1.1" 200 OK\n'


# ---------------------------------------------------------------------------------- uvicorn log configs


class Captured(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=1)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _uvicorn_style(level: str = "INFO") -> dict[str, Any]:
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {
            "err": {"()": Captured},
            "acc": {"()": Captured},
        },
        "loggers": {
            "uvicorn": {"handlers": ["err"], "level": level, "propagate": False},
            "uvicorn.error": {"level": level},
            "uvicorn.access": {"handlers": ["acc"], "level": level, "propagate": False},
        },
    }


def _handler(name: str) -> Captured:
    handler = logging.getLogger(name).handlers[0]
    assert isinstance(handler, Captured)
    return handler


def test_uvicorn_log_config_receives_turboasgi_records() -> None:
    """issue 10 item 4: records of the turboasgi loggers reach the uvicorn loggers' handlers, named as
    uvicorn's own, through the uvicorn loggers' levels."""
    Config("a:b", log_config=_uvicorn_style("WARNING"))
    logging.getLogger("turboasgi.error").info("hidden by the uvicorn level")
    logging.getLogger("turboasgi.error").warning("shown")
    logging.getLogger("turboasgi.access").warning(
        '%s - "%s %s HTTP/%s" %d', "1.2.3.4:5", "GET", "/", "1.1", 200
    )
    errors, access = _handler("uvicorn").records, _handler("uvicorn.access").records
    assert [(r.name, r.getMessage()) for r in errors] == [("uvicorn.error", "shown")]
    assert [(r.name, r.getMessage()) for r in access] == [
        ("uvicorn.access", '1.2.3.4:5 - "GET / HTTP/1.1" 200')
    ]


def test_log_level_applies_to_the_uvicorn_loggers_too() -> None:
    Config("a:b", log_config=_uvicorn_style("WARNING"), log_level="trace")
    assert logging.getLogger("uvicorn.error").level == TRACE_LOG_LEVEL
    assert logging.getLogger("turboasgi.error").isEnabledFor(TRACE_LOG_LEVEL)
    logging.getLogger("turboasgi.error").log(TRACE_LOG_LEVEL, "connection made")
    assert [r.getMessage() for r in _handler("uvicorn").records] == ["connection made"]


def test_a_config_naming_turboasgi_loggers_is_used_as_written() -> None:
    config = _uvicorn_style()
    config["loggers"]["turboasgi.error"] = {"handlers": ["err"], "level": "ERROR", "propagate": False}
    Config("a:b", log_config=config)
    logging.getLogger("turboasgi.error").warning("below ERROR")
    logging.getLogger("turboasgi.error").error("kept")
    assert [(r.name, r.getMessage()) for r in _handler("uvicorn").records] == [("turboasgi.error", "kept")]


def test_no_access_log_with_a_uvicorn_log_config() -> None:
    Config("a:b", log_config=_uvicorn_style(), access_log=False)
    logging.getLogger("turboasgi.access").info('%s - "%s %s HTTP/%s" %d', "1.2.3.4:5", "GET", "/", "1.1", 200)
    assert _handler("uvicorn.access").records == []
    assert not has_output(logging.getLogger("turboasgi.access"))
    assert has_output(logging.getLogger("turboasgi.error"))


def test_uvicorn_formatter_classes_need_no_uvicorn(tmp_path: Path) -> None:
    """``uvicorn.logging.*`` in an ini file means ours: the formatters work without uvicorn."""
    ini = tmp_path / "log.ini"
    ini.write_text(
        "[loggers]\nkeys=root,uvicorn\n[handlers]\nkeys=h\n[formatters]\nkeys=f\n"
        "[logger_root]\nhandlers=\n[logger_uvicorn]\nlevel=INFO\nhandlers=h\npropagate=0\nqualname=uvicorn\n"
        "[handler_h]\nclass=logging.StreamHandler\nformatter=f\nargs=(sys.stderr,)\n"
        "[formatter_f]\nclass=uvicorn.logging.DefaultFormatter\nformat=%(levelprefix)s %(message)s\n"
    )
    Config("a:b", log_config=str(ini))
    handler = logging.getLogger("uvicorn").handlers[0]
    assert type(handler.formatter) is DefaultFormatter
