"""The Prometheus endpoint (`--metrics-port`): scraped with prometheus_client's own text parser while
real clients use the server."""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import websockets.sync.client

from tests.server_process import ServerProcess, poll

parser = pytest.importorskip("prometheus_client.parser", reason="prometheus_client is a test dependency")

METRICS_RE = re.compile(r"Prometheus metrics on http://(?P<host>[^:\s]+):(?P<port>\d+)/metrics")


def scrape(server: ServerProcess) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """Every sample of the endpoint, by name and labels."""
    match = METRICS_RE.search(server.stderr)
    assert match, server.output
    response = httpx.get(f"http://{match['host']}:{match['port']}/metrics", timeout=5)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in parser.text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def value(samples: dict, name: str, **labels: str) -> float:
    return samples[name][tuple(sorted(labels.items()))]


@pytest.fixture
def server() -> Iterator[ServerProcess]:
    args = ["tests.apps.metrics_app:app", "--port", "0", "--metrics-port", "0", "--limit-concurrency", "2"]
    with ServerProcess(args) as proc:
        yield proc


def test_counts_responses_by_status_class_and_their_durations(server: ServerProcess) -> None:
    with httpx.Client(base_url=server.url, timeout=5) as client:
        for path, expected in [("/", 200), ("/status/204", 204), ("/status/404", 404), ("/fail", 500)]:
            assert client.get(path).status_code == expected
        client.get("/status/301", follow_redirects=False)
    samples = scrape(server)
    classes = {dict(k)["status_class"]: v for k, v in samples["turboasgi_requests_total"].items()}
    assert classes == {"1xx": 0, "2xx": 2, "3xx": 1, "4xx": 1, "5xx": 1}
    assert value(samples, "turboasgi_request_duration_seconds_count") == 5
    assert value(samples, "turboasgi_request_duration_seconds_bucket", le="+Inf") == 5
    assert 0 < value(samples, "turboasgi_request_duration_seconds_sum") < 5
    assert value(samples, "turboasgi_requests_in_flight") == 0
    assert value(samples, "turboasgi_rejected_requests_total") == 0


def test_gauges_follow_open_requests_connections_and_websockets(server: ServerProcess) -> None:
    held = threading.Thread(target=lambda: httpx.get(server.url + "/hold", timeout=10))
    held.start()
    with websockets.sync.client.connect(f"ws://{server.host}:{server.port}/ws") as ws:
        ws.send("ping")
        assert ws.recv(timeout=5) == "ping"

        def both_open() -> bool:
            s = scrape(server)
            return (
                value(s, "turboasgi_requests_in_flight") == 2 and value(s, "turboasgi_websockets_open") == 1
            )

        poll(both_open, timeout=5, what="one held request and one WebSocket in flight")
        samples = scrape(server)
        assert value(samples, "turboasgi_connections_open") >= 2
        # --limit-concurrency 2 is reached: the next request is answered 503 and counted
        assert httpx.get(server.url + "/", timeout=5).status_code == 503
        samples = scrape(server)
        assert value(samples, "turboasgi_rejected_requests_total") == 1
        assert value(samples, "turboasgi_requests_total", status_class="5xx") == 1
    httpx.get(server.url + "/release", timeout=5)
    held.join(10)

    def closed() -> bool:
        s = scrape(server)
        return value(s, "turboasgi_websockets_open") == 0 and value(s, "turboasgi_requests_in_flight") == 0

    poll(closed, timeout=5, what="the WebSocket and the held request to end")


def test_event_loop_lag_shows_a_blocked_loop(tmp_path: Path) -> None:
    marker = tmp_path / "blocking"
    args = ["tests.apps.metrics_app:app", "--port", "0", "--metrics-port", "0", "--threads", "1"]
    with ServerProcess(args) as server:
        scrape(server)  # resets the "since the previous scrape" maximum
        blocker = threading.Thread(
            target=httpx.get, args=(f"{server.url}/block?{marker}",), kwargs={"timeout": 10}
        )
        blocker.start()
        poll(marker.exists, timeout=5, what="the app to block its loop")
        # Arrives while the loop is blocked (0.6 s): it waits in the inbox until the loop is free.
        assert httpx.get(server.url + "/", timeout=10).status_code == 200
        blocker.join(10)
        lags = scrape(server)["turboasgi_event_loop_lag_seconds"]
    assert list(lags) == [(("loop", "0"),)]
    assert lags[(("loop", "0"),)] >= 0.2, lags


def test_event_loop_lag_has_one_series_per_loop() -> None:
    args = ["tests.apps.metrics_app:app", "--port", "0", "--metrics-port", "0", "--threads", "2"]
    with ServerProcess(args) as server:
        lags = scrape(server)["turboasgi_event_loop_lag_seconds"]
    assert sorted(dict(k)["loop"] for k in lags) == ["0", "1"]


def test_other_paths_are_404_and_metrics_cost_the_app_nothing_when_off() -> None:
    with ServerProcess(["tests.apps.metrics_app:app", "--port", "0", "--metrics-port", "0"]) as server:
        match = METRICS_RE.search(server.stderr)
        assert match
        assert httpx.get(f"http://{match['host']}:{match['port']}/other", timeout=5).status_code == 404
    with ServerProcess(["tests.apps.metrics_app:app", "--port", "0"]) as server:
        assert "Prometheus metrics" not in server.stderr
        assert httpx.get(server.url + "/", timeout=5).status_code == 200


def test_metrics_with_workers_is_a_usage_error() -> None:
    server = ServerProcess(
        ["tests.apps.metrics_app:app", "--port", "0", "--metrics-port", "0", "--workers", "2"]
    )
    assert server.run_to_exit() == 2
    assert "--metrics-port" in server.stderr and "--workers" in server.stderr
    server.close()


def test_metrics_port_in_use_names_it_and_exits_3() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = ServerProcess(["tests.apps.metrics_app:app", "--port", "0", "--metrics-port", str(port)])
        assert server.run_to_exit() == 3
        assert f"Cannot serve metrics on 127.0.0.1 port {port}" in server.stderr
        server.close()
