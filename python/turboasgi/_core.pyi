"""Type stubs for the Rust extension module ``turboasgi._core``.

The contract between the Python side (config, CLI, lifespan, server loop) and the Rust network side.
"""

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

__version__: str

class ClientDisconnected(OSError):
    """Raised by ``send()`` once the client is gone (ASGI spec 2.4)."""

class CoreConfig:
    def __init__(
        self,
        *,
        root_path: str = "",
        server_header: bool = True,
        date_header: bool = True,
        default_headers: list[tuple[bytes, bytes]] = ...,
        timeout_keep_alive: float = 5.0,
        limit_concurrency: int | None = None,
        proxy_headers: bool = True,
        forwarded_allow_ips: list[str] = ...,
        max_header_bytes: int = 65536,
        tokio_threads: int = 1,
        ws_enabled: bool = True,
        ws_max_size: int = 16777216,
        ws_ping_interval: float | None = 20.0,
        ws_ping_timeout: float | None = 20.0,
        ws_per_message_deflate: bool = True,
        metrics: bool = False,
        timeout_request_head: float | None = None,
        timeout_request_body: float | None = None,
        limit_request_line: int | None = None,
        limit_request_fields: int | None = None,
        limit_request_field_size: int | None = None,
        trace_connections: bool = False,
        http_protocols: str = "auto",
        h2_max_concurrent_streams: int = 100,
        h2_max_header_list_size: int = 65536,
        h2_initial_stream_window_size: int = 1048576,
        h2_initial_connection_window_size: int = 1048576,
        h2_max_frame_size: int = 16384,
        h2_keep_alive_interval: float | None = None,
        h2_keep_alive_timeout: float = 20.0,
        h2_max_pending_accept_reset_streams: int = 20,
        h2_max_local_error_reset_streams: int = 1024,
        tls: TlsConfig | None = None,
    ) -> None: ...

class TlsConfig:
    """The rustls server configuration, built once from PEM bytes; ``ValueError`` names the option."""

    def __init__(
        self,
        *,
        certfile: bytes,
        keyfile: bytes,
        versions: list[int],
        cert_reqs: int = 0,
        ca_certs: bytes | None = None,
        ciphers: str | None = None,
    ) -> None: ...

class LoopHandle:
    """One asyncio loop's inbox. The server calls ``loop.add_reader(handle.fileno(), handle.drain)``."""

    def fileno(self) -> int: ...
    def drain(self) -> None: ...

class ServerCore:
    def __init__(self, config: CoreConfig) -> None: ...
    def add_loop(
        self,
        loop: asyncio.AbstractEventLoop,
        handler: Callable[[dict[str, Any], HttpTransport], Coroutine[Any, Any, None]],
        state: dict[str, Any],
        ws_handler: Callable[[dict[str, Any], WebSocketTransport], Coroutine[Any, Any, None]] | None = None,
    ) -> LoopHandle: ...
    def listen(self, fd: int, *, unix: bool = False) -> None:
        """Serve connections accepted on a bound, listening socket (the fd is duplicated)."""
    def serve_metrics(self, fd: int) -> None:
        """Serve the Prometheus metrics on this bound TCP socket (``--metrics-port``)."""
    def shutdown(self, handle: LoopHandle, timeout: float | None = None) -> asyncio.Future[None]:
        """Stop accepting, close idle keep-alive connections, wait for in-flight requests (at most
        ``timeout`` seconds, then close them)."""
    def connection_count(self) -> int: ...
    def request_count(self) -> int: ...

class HttpTransport:
    """The receive/send pair of one HTTP request."""

    def receive(self) -> Awaitable[dict[str, Any]]: ...
    def send(self, message: dict[str, Any]) -> Awaitable[None]: ...
    @property
    def status(self) -> int | None: ...
    @property
    def response_started(self) -> bool: ...
    @property
    def response_complete(self) -> bool: ...
    @property
    def client_disconnected(self) -> bool: ...
    def fail(self) -> bool:
        """The app raised or returned early: 500 if nothing was sent yet (True), else abort the
        connection (False)."""
    def on_response(self, callback: Callable[[int, int | None], object]) -> None:
        """Call ``callback(status, length)`` once, when a response head goes out: the status the client
        gets and the body length the head declares (None when it streams without one)."""

class WebSocketTransport:
    """The receive/send pair of one WebSocket connection."""

    def receive(self) -> Awaitable[dict[str, Any]]: ...
    def send(self, message: dict[str, Any]) -> Awaitable[None]: ...
    @property
    def accepted(self) -> bool: ...
    @property
    def status(self) -> int | None: ...
    def on_answer(self, callback: Callable[[int, bool], object]) -> None:
        """Call ``callback(status, accepted)`` once, when the handshake is answered."""
    def fail(self) -> None:
        """The app raised: 500 before the handshake was answered, close 1011 after."""
    def finish(self) -> None:
        """The app returned: 500 if it never answered the handshake, close 1000 if still open."""
