"""HTTP/2 (h2c with prior knowledge) against a real server: interop with curl, httpx and nghttp, the
scope of an HTTP/2 request, per-stream disconnects and flow control, limits and graceful shutdown.
The misbehaving-client cases are in test_http2_attacks.py.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator

import httpx
import pytest
from h2.settings import SettingCodes
from server_process import ServerProcess, poll, running

from asgi_tests.h2client import H2Client

pytestmark = pytest.mark.timeout(60)

PROBE = "tests.apps.probe:app"


@pytest.fixture(scope="module", params=["1", "2"], ids=["threads1", "threads2"])
def server(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    # with two loop threads, the streams of one connection still share its loop
    with running(PROBE, "--threads", request.param) as proc:
        yield proc


def h2(server: ServerProcess, **kwargs: object) -> H2Client:
    host, port = server.address
    return H2Client(host, port, **kwargs)  # type: ignore[arg-type]


def events(server: ServerProcess, key: str) -> list[str]:
    result: list[str] = httpx.get(server.url + "/events", params={"id": key}, timeout=5.0).json()
    return result


# ------------------------------------------------------------------------------------------ interop


def test_curl_prior_knowledge(server: ServerProcess) -> None:
    result = subprocess.run(
        ["curl", "-sS", "--http2-prior-knowledge", "-w", "\n%{http_version}", server.url + "/"],
        capture_output=True,
        timeout=10,
        check=True,
    )
    body, version = result.stdout.rsplit(b"\n", 1)
    assert (body, version) == (b"ok", b"2")


def test_curl_upload_over_h2(server: ServerProcess) -> None:
    payload = b"x" * 300_000  # several DATA frames and window updates
    result = subprocess.run(
        ["curl", "-sS", "--http2-prior-knowledge", "--data-binary", "@-", server.url + "/upload"],
        input=payload,
        capture_output=True,
        timeout=10,
        check=True,
    )
    assert result.stdout == b"300000"


def test_httpx_http2_scope(server: ServerProcess) -> None:
    # spec H2: http_version "2", :authority as host at the front, no pseudo-headers
    with httpx.Client(http1=False, http2=True, timeout=5.0) as client:
        response = client.post(server.url + "/echo?q=1", content=b"body", headers={"x-a": "1"})
    assert response.http_version == "HTTP/2"
    seen = response.json()
    assert seen["http_version"] == "2"
    assert seen["headers"][0] == ["host", f"{server.host}:{server.port}"]
    assert not [name for name, _ in seen["headers"] if name.startswith(":")]
    assert ["x-a", "1"] in seen["headers"]
    assert (seen["path"], seen["query_string"], seen["body"]) == ("/echo", "q=1", "body")


def test_access_log_says_http_2(server: ServerProcess) -> None:
    with httpx.Client(http1=False, http2=True, timeout=5.0) as client:
        client.get(server.url + "/?access-log-h2")
    server.wait_for_output('"GET /?access-log-h2 HTTP/2" 200')


@pytest.mark.skipif(shutil.which("nghttp") is None, reason="nghttp missing (apt-get install nghttp2-client)")
def test_nghttp_multiplexed(server: ServerProcess) -> None:
    # three streams on one connection, one of them with a body
    urls = [server.url + path for path in ("/upload", "/", "/chunked")]
    result = subprocess.run(
        ["nghttp", "-n", "--stat", "-d", "-", *urls],
        input=b"12345",
        capture_output=True,
        timeout=10,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count(b" 200 ") == 3, result.stdout


def test_http1_still_served_on_the_same_port(server: ServerProcess) -> None:
    response = httpx.get(server.url + "/echo", timeout=5.0)
    assert response.http_version == "HTTP/1.1"
    assert response.json()["http_version"] == "1.1"


# ------------------------------------------------------------------------------------------ scope


def test_split_cookies_are_rejoined(server: ServerProcess) -> None:
    # RFC 9113 8.2.3: one cookie field per pair on the wire, one "; "-joined field in the scope
    with h2(server) as client:
        result = client.get("/echo", [(b"cookie", b"a=1"), (b"x-b", b"2"), (b"cookie", b"b=2")])
    headers = json.loads(result.data)["headers"]
    assert [v for k, v in headers if k == "cookie"] == ["a=1; b=2"]


def test_host_header_sent_with_authority_is_kept_once(server: ServerProcess) -> None:
    with h2(server) as client:
        result = client.get("/echo", [(b"host", client.host.encode())])
    headers = json.loads(result.data)["headers"]
    assert [v for k, v in headers if k == "host"] == [client.host]


def test_host_differing_from_authority_is_rejected(server: ServerProcess) -> None:
    with h2(server) as client:
        client.conn.config.validate_outbound_headers = False  # h2 would refuse to send it
        result = client.get("/echo", [(b"host", b"other.example")])
        assert result.status == 400
        assert client.get("/").status == 200  # the connection goes on


def test_connection_specific_headers_of_the_app_are_dropped(server: ServerProcess) -> None:
    # RFC 9113 8.2.2: the app's Connection / Transfer-Encoding must not reach the wire
    with h2(server) as client:
        closing = client.get("/close")
        framed = client.get("/app-te")
        again = client.get("/")
    assert closing.status == 200 and closing.header(b"connection") is None
    assert framed.data == b"hello world" and framed.header(b"transfer-encoding") is None
    assert again.status == 200  # "connection: close" from the app does not end an HTTP/2 connection


def test_expect_100_continue_is_answered(server: ServerProcess) -> None:
    # The client sends the body right away (as RFC 9110 10.1.1 allows): no hang, the body arrives.
    with h2(server) as client:
        stream = client.request("POST", "/upload", [(b"expect", b"100-continue")], b"abc")
        result = client.response(stream)
    assert (result.status, result.data) == (200, b"3")


# ------------------------------------------------------------------------------------------ streams


def test_reset_stream_disconnects_only_that_request(server: ServerProcess) -> None:
    with h2(server) as client:
        doomed = client.request("GET", "/forever?id=h2-rst")
        client.wait(lambda: client.streams[doomed].headers, what="the streaming response")
        other = client.request("GET", "/slow?delay=0.3&id=h2-rst-other")
        client.reset(doomed)
        poll(
            lambda: any("send raised" in e for e in events(server, "h2-rst")),
            timeout=5,
            what="send() to fail after RST_STREAM",
        )
        assert events(server, "h2-rst")[-1] == "send raised ClientDisconnected OSError=True"
        assert client.response(other).data == b"slow done"
        assert client.get("/").status == 200


def test_reset_during_body_gives_http_disconnect(server: ServerProcess) -> None:
    with h2(server) as client:
        stream = client.request("POST", "/upload?id=h2-rst-body", body=b"part", end_stream=False)
        poll(lambda: bool(events(server, "h2-rst-body")), timeout=5, what="the first body chunk")
        client.reset(stream)
        poll(
            lambda: events(server, "h2-rst-body")[-1] == "http.disconnect",
            timeout=5,
            what="http.disconnect after RST_STREAM",
        )
        assert client.get("/").status == 200


def test_slow_reader_of_one_stream_does_not_stall_the_others(server: ServerProcess) -> None:
    # The client never returns window for what it received: the big response stops at the stream
    # window while other streams of the same connection are answered.
    with h2(server, auto_window=False, settings={SettingCodes.INITIAL_WINDOW_SIZE: 16384}) as client:
        stuck = client.request("GET", "/big?size=10000000")
        client.wait(lambda: len(client.streams[stuck].data) >= 16384, what="the first window of data")
        for _ in range(3):
            assert client.response(client.request("GET", "/"), timeout=2).data == b"ok"
        assert not client.streams[stuck].done
        assert len(client.streams[stuck].data) == 16384


def test_request_body_is_held_back_by_the_stream_window(server: ServerProcess) -> None:
    # An app that does not read: the client may send one stream window (1 MiB) and no more; the
    # window reopens as the app reads.
    with h2(server) as client:
        assert client.get("/").status == 200  # the server's SETTINGS and connection window are in
        stream = client.request("POST", "/expect?name=h2-window", end_stream=False)
        poll(lambda: events(server, "h2-window") == ["waiting"], timeout=5, what="the app to wait")
        sent = 0
        for _ in range(1000):
            room = min(client.conn.local_flow_control_window(stream), 16384)
            if room == 0:
                break
            client.conn.send_data(stream, b"x" * room)
            sent += room
        client.flush()
        assert sent == 1024 * 1024
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline:  # no WINDOW_UPDATE while the app does not read
            client.pump(0.05)
        assert client.conn.local_flow_control_window(stream) == 0
        httpx.get(server.url + "/signal", params={"name": "h2-window"}, timeout=5)
        client.wait(lambda: client.conn.local_flow_control_window(stream) > 0, what="the window to reopen")
        client.conn.send_data(stream, b"y", end_stream=True)
        client.flush()
        result = client.response(stream)
    assert result.data == b"got " + b"x" * sent + b"y"


def test_limit_concurrency_counts_streams() -> None:
    with running(PROBE, "--limit-concurrency", "2") as srv, h2(srv) as client:
        slow = [client.request("GET", f"/slow?delay=1&id=h2-lc-{i}") for i in range(2)]
        # both streams in flight: a request on another connection is over the limit too
        poll(lambda: httpx.get(srv.url + "/", timeout=5).status_code == 503, timeout=5, what="a 503")
        over = client.response(client.request("GET", "/"))
        assert over.status == 503
        assert [client.response(s).data for s in slow] == [b"slow done", b"slow done"]
        assert client.get("/").status == 200


def test_settings_advertise_the_limits() -> None:
    options = [
        "--h2-max-concurrent-streams",
        "7",
        "--h2-initial-stream-window-size",
        "70000",
        "--h2-max-frame-size",
        "32768",
        "--h2-max-header-list-size",
        "20000",
    ]
    with running(PROBE, *options) as srv, h2(srv) as client:
        assert client.get("/").status == 200
        settings = client.server_settings
    assert settings[SettingCodes.MAX_CONCURRENT_STREAMS] == 7
    assert settings[SettingCodes.INITIAL_WINDOW_SIZE] == 70000
    assert settings[SettingCodes.MAX_FRAME_SIZE] == 32768
    assert settings[SettingCodes.MAX_HEADER_LIST_SIZE] == 20000


def test_streams_over_the_concurrency_setting_are_refused() -> None:
    with running(PROBE, "--h2-max-concurrent-streams", "2") as srv, h2(srv) as client:
        client.wait(lambda: bool(client.server_settings), what="the server's SETTINGS")
        # h2 (the client library) honours the limit itself; write the third HEADERS anyway
        client.conn.remote_settings[SettingCodes.MAX_CONCURRENT_STREAMS] = 100
        client.conn.remote_settings.acknowledge()
        streams = [client.request("GET", f"/slow?delay=1&id=h2-mcs-{i}") for i in range(3)]
        third = client.response(streams[2])
        assert third.reset == 7  # REFUSED_STREAM: safe for the client to retry
        assert [client.response(s).status for s in streams[:2]] == [200, 200]


def test_header_list_over_the_limit_is_refused(server: ServerProcess) -> None:
    with h2(server) as client:
        result = client.get("/", [(b"x-big", b"v" * 70_000)])
        assert result.reset is not None or result.status == 431
        assert client.get("/").status == 200


def test_http_1_only_refuses_the_preface() -> None:
    with running(PROBE, "--http", "1") as srv:
        with h2(srv) as client:
            assert client.closed_by_server(5)
        assert httpx.get(srv.url + "/", timeout=5).text == "ok"


def test_http_2_only_serves_h2c_and_closes_http1() -> None:
    with running(PROBE, "--http", "2") as srv:
        with h2(srv) as client:
            assert client.get("/").data == b"ok"
        with pytest.raises(httpx.HTTPError):
            httpx.get(srv.url + "/", timeout=5)


# ------------------------------------------------------------------------------------------ shutdown


def test_graceful_shutdown_sends_goaway_and_finishes_open_streams() -> None:
    with running(PROBE) as srv, h2(srv) as client:
        stream = client.request("GET", "/slow?delay=1&id=h2-goaway")
        poll(lambda: bool(events(srv, "h2-goaway")), timeout=5, what="the request to start")
        srv.send_signal(signal.SIGINT)
        client.wait(lambda: client.goaway is not None, what="GOAWAY")
        assert client.response(stream).data == b"slow done"
        assert srv.wait(10) == 0


def test_idle_connection_is_closed_after_keep_alive_timeout() -> None:
    with running(PROBE, "--timeout-keep-alive", "1") as srv, h2(srv) as client:
        assert client.get("/").status == 200
        started = time.monotonic()
        client.wait(lambda: client.goaway is not None, timeout=5, what="GOAWAY of an idle connection")
        assert client.goaway is not None and client.goaway.error_code == 0
        assert client.closed_by_server(5)
        assert 0.8 < time.monotonic() - started < 4


def test_graceful_shutdown_timeout_ends_streams_that_never_finish() -> None:
    with running(PROBE, "--timeout-graceful-shutdown", "1") as srv, h2(srv) as client:
        stream = client.request("GET", "/forever?id=h2-forever-shutdown")
        client.wait(lambda: client.streams[stream].headers, what="the streaming response")
        started = time.monotonic()
        srv.send_signal(signal.SIGINT)
        assert client.closed_by_server(10)
        assert srv.wait(10) == 0
        assert time.monotonic() - started < 5
        assert not client.streams[stream].ended
