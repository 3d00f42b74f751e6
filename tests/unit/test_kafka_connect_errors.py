"""Error handling of the Kafka Connect resource that a real worker cannot easily produce on demand.

A tiny local HTTP server stands in for the worker here, on purpose and only here: it answers 409
(rebalance in progress) a few times, or fails with a worker-style error body. Everything else the
resource does is exercised against the real worker by the integration tests.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from cdc_platform.kafka_connect import KafkaConnectError, KafkaConnectResource


class _Worker(BaseHTTPRequestHandler):
    conflicts_left = 0
    #: 500s as a follower answers while the leader it knew is gone (before the group elects another)
    leader_gone_left = 0
    calls: list[str] = []

    def log_message(self, *args) -> None:  # keep test output quiet
        return None

    def _reply(self, code: int, body: dict | list) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        type(self).calls.append(f"GET {self.path}")
        if self.path.endswith("/config"):
            self._reply(404, {"error_code": 404, "message": "Connector shop-sink not found"})
        else:
            self._reply(500, {"error_code": 500, "message": "Request timed out"})

    def do_PUT(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        type(self).calls.append(f"PUT {self.path}")
        if type(self).leader_gone_left > 0:
            type(self).leader_gone_left -= 1
            self._reply(500, {"error_code": 500, "message": "IO Error trying to forward REST request: "
                              "java.net.ConnectException: Connection refused"})  # fmt: skip
        elif type(self).conflicts_left > 0:
            type(self).conflicts_left -= 1
            self._reply(
                409,
                {"error_code": 409, "message": "Cannot complete request because of a conflicting operation"},
            )
        else:
            self._reply(201, {"name": "shop-sink", "config": {}, "tasks": []})


@pytest.fixture()
def worker():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Worker)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Worker.calls = []
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_put_retries_while_the_cluster_rebalances(worker):
    _Worker.conflicts_left = 3
    connect = KafkaConnectResource(url=worker, rebalance_retries=5)
    assert connect.put_config("shop-sink", {"connector.class": "x"}) == "created"
    assert [c for c in _Worker.calls if c.startswith("PUT")] == ["PUT /connectors/shop-sink/config"] * 4


def test_put_retries_while_the_leader_it_knew_is_gone(worker):
    """After the leader worker stopped, a follower still forwards writes to it for a moment."""
    _Worker.leader_gone_left = 2
    connect = KafkaConnectResource(url=worker, rebalance_retries=5)
    assert connect.put_config("shop-sink", {"connector.class": "x"}) == "created"
    assert [c for c in _Worker.calls if c.startswith("PUT")] == ["PUT /connectors/shop-sink/config"] * 3


def test_gives_up_after_the_retry_budget_with_the_connector_named(worker):
    _Worker.conflicts_left = 100
    connect = KafkaConnectResource(url=worker, rebalance_retries=2)
    with pytest.raises(KafkaConnectError) as info:
        connect.put_config("shop-sink", {"connector.class": "x"})
    assert info.value.status_code == 409 and info.value.connector == "shop-sink"
    assert "conflicting operation" in str(info.value) and "'shop-sink'" in str(info.value)


def test_worker_errors_carry_the_workers_message(worker):
    connect = KafkaConnectResource(url=worker)
    with pytest.raises(KafkaConnectError, match="failed with 500: Request timed out"):
        connect.status("shop-sink")


def test_unreachable_worker_is_a_clear_error():
    connect = KafkaConnectResource(url="http://127.0.0.1:9", timeout_seconds=2)
    with pytest.raises(KafkaConnectError, match="could not be reached for connector 'x'"):
        connect.get_config("x")


def test_every_worker_unreachable_names_each_one():
    connect = KafkaConnectResource(url="http://127.0.0.1:9, http://127.0.0.1:7/", timeout_seconds=2)
    with pytest.raises(KafkaConnectError, match="could not be reached for connector 'x'") as info:
        connect.get_config("x")
    assert "http://127.0.0.1:9 (ConnectError" in str(info.value) and "http://127.0.0.1:7 (" in str(info.value)


def test_a_stopped_worker_hands_the_request_to_the_next(worker):
    connect = KafkaConnectResource(url=f"http://127.0.0.1:9,{worker}", timeout_seconds=2)
    with pytest.raises(KafkaConnectError, match="failed with 500: Request timed out"):
        connect.status("shop-sink")  # the answer came from the second URL's worker
