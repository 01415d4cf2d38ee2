"""The NodeManager's GPU assignment over REST, against a local HTTP server."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest

from gpu_plugin.errors import NmAssignmentError
from gpu_plugin.nm_assignment import (
    NM_GPU_PATH,
    fetch_assignment,
    nm_web_address_from_env,
    parse_assignment,
)

ME = "container_1712345678901_0001_01_000002"
OTHER = "container_1712345678901_0001_01_000003"

# The shape Hadoop 3.x's NMGpuResourceInfo serialises to.
DOCUMENT = {
    "gpuDeviceInformation": {"gpus": [], "driverVersion": "550.54.15"},
    "totalGpuDevices": [{"index": i, "minorNumber": i} for i in range(4)],
    "assignedGpuDevices": [
        {"index": 2, "minorNumber": 2, "containerId": ME},
        {"index": 0, "minorNumber": 0, "containerId": OTHER},
        {"index": 1, "minorNumber": 1, "containerId": ME},
    ],
}


class _Server:
    def __init__(self) -> None:
        self.status = 200
        self.body: bytes = json.dumps(DOCUMENT).encode()
        self.requests: list[tuple[str, str | None]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append((self.path, self.headers.get("Accept")))
                self.send_response(server.status)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(server.body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = HTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.httpd.server_port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture
def nm() -> Iterator[_Server]:
    server = _Server()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


def test_fetch_returns_this_containers_indices(nm: _Server) -> None:
    assert fetch_assignment(nm.address, ME) == [1, 2]
    assert fetch_assignment(f"http://{nm.address}/", OTHER) == [0]
    assert nm.requests == [(NM_GPU_PATH, "application/json")] * 2


def test_none_when_nothing_is_assigned_to_this_container(nm: _Server) -> None:
    assert fetch_assignment(nm.address, "container_1712345678901_0001_01_000009") is None
    nm.body = json.dumps({**DOCUMENT, "assignedGpuDevices": []}).encode()
    assert fetch_assignment(nm.address, ME) is None


def test_none_when_the_nodemanager_has_no_gpu_plugin(nm: _Server) -> None:
    nm.status = 404
    nm.body = b'{"RemoteException": {}}'
    assert fetch_assignment(nm.address, ME) is None


def test_server_errors_and_garbage_are_nm_assignment_errors(nm: _Server) -> None:
    nm.status = 500
    with pytest.raises(NmAssignmentError, match="HTTP 500"):
        fetch_assignment(nm.address, ME)
    nm.status = 200
    nm.body = b"<html>"
    with pytest.raises(NmAssignmentError, match="not JSON"):
        fetch_assignment(nm.address, ME)


def test_unreachable_nodemanager() -> None:
    with pytest.raises(NmAssignmentError, match=r"GET http://127\.0\.0\.1:1/ws/v1/node"):
        fetch_assignment("127.0.0.1:1", ME, timeout_s=2)


@pytest.mark.parametrize(
    "document",
    [
        {"nmGpuResourceInfo": DOCUMENT},  # Jersey root wrapping
        {"assignedGpuDevices": {"index": "1", "minorNumber": "1", "containerId": ME}},
        {"assignedGpuDevices": [{"index": "1", "minorNumber": 1, "containerId": ME}]},
    ],
)
def test_parse_accepts_jersey_json_variants(document: Any) -> None:
    expected = [1, 2] if "nmGpuResourceInfo" in document else [1]
    assert parse_assignment(document, ME) == expected


@pytest.mark.parametrize("document", [{}, {"assignedGpuDevices": None}, {"totalGpuDevices": []}])
def test_parse_without_assignments_is_none(document: Any) -> None:
    assert parse_assignment(document, ME) is None


def test_parse_rejects_nonsense() -> None:
    with pytest.raises(NmAssignmentError):
        parse_assignment(["not", "an", "object"], ME)
    with pytest.raises(NmAssignmentError, match="without a usable index"):
        parse_assignment({"assignedGpuDevices": [{"containerId": ME}]}, ME)


def test_nm_address_from_the_container_environment() -> None:
    assert nm_web_address_from_env({"NM_HOST": "node-a", "NM_HTTP_PORT": "8042"}) == (
        "http://node-a:8042"
    )
    assert nm_web_address_from_env({"NM_HOST": "node-a"}) is None
    assert nm_web_address_from_env({}) is None
