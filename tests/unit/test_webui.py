"""Unit tests for appmaster.webui: the tracking page and its HTTP server."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from appmaster.webui import StatusServer, render_html

EVIL = '<script>alert("x")</script>'


def make_record(**extra: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "app_id": "application_1700000000000_0003",
        "name": "mnist-ddp",
        "user": "alice",
        "state": "FAILED",
        "attempt": 2,
        "max_attempts": 3,
        "root_cause": {"category": "HOST_OOM", "task": "worker:1",
                       "hint": "raise roles.worker.resources.memory (now 2 GiB)"},
        "attempts": [
            {"attempt": 1, "state": "FAILED", "failure": {"category": "NCCL_ERROR"},
             "decision": "retrying as attempt 2/3"},
            {"attempt": 2, "state": "FAILED", "failure": {"category": "HOST_OOM"},
             "decision": "not retryable under policy smart"},
        ],
        "tasks": {
            "worker:0": {"rank": 0, "host": "node-a", "state": "STOPPED", "exit_code": 143,
                         "nm_http_address": "node-a:8042", "container_id": "container_1_0002",
                         "gpu": {"0": {"util_pct": 91, "mem_used_mib": 7000}}},
            "worker:1": {"rank": 1, "host": "node-b", "state": "FAILED", "exit_code": 137},
        },
        "events": [{"time": 1_700_000_000.0, "message": "attempt 2/3 failed: HOST_OOM worker:1"}],
    }
    record.update(extra)
    return record


def test_page_shows_state_attempt_root_cause_and_tasks() -> None:
    page = render_html(make_record())
    assert 'State <b class="FAILED">FAILED</b>' in page
    assert "attempt 2/3" in page
    assert "Root cause:</b> HOST_OOM worker:1 - raise roles.worker.resources.memory" in page
    assert "<td>worker:1</td>" in page
    assert "NCCL_ERROR" in page and "not retryable under policy smart" in page
    assert "attempt 2/3 failed: HOST_OOM worker:1" in page
    assert "gpu0: 91% 7000 MiB" in page
    assert 'href="http://node-a:8042/node/containerlogs/container_1_0002/alice"' in page


def test_page_without_root_cause_says_none() -> None:
    page = render_html(make_record(state="RUNNING", root_cause=None))
    assert "Root cause" not in page
    assert 'class="RUNNING">RUNNING</b>' in page


def test_untrusted_text_is_escaped() -> None:
    # Task names, log lines (in events and evidence), hints and decisions come from the job.
    record = make_record(
        name=EVIL,
        root_cause={"category": "USER_CODE_ERROR", "task": EVIL, "hint": EVIL},
        tasks={EVIL: {"rank": 0, "host": '"><img src=x onerror=alert(1)>', "state": EVIL,
                      "nm_http_address": 'n"><script>', "container_id": "c"}},
        attempts=[{"attempt": 1, "state": "FAILED", "failure": {"category": EVIL},
                   "decision": EVIL}],
        events=[{"time": 1_700_000_000.0, "message": f"task worker:0 failed: {EVIL}"}],
    )

    page = render_html(record)

    assert "<script>" not in page
    assert "<img" not in page
    assert 'href="http://n"' not in page  # no breaking out of the log link's attribute
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert "task worker:0 failed: &lt;script&gt;" in page


@pytest.fixture
def server() -> Iterator[tuple[StatusServer, str, dict[str, Any]]]:
    record = make_record()
    srv = StatusServer(lambda: record)
    url = srv.start()
    yield srv, url, record
    srv.stop()


def _get(url: str) -> tuple[int, str, bytes]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status, response.headers["Content-Type"], response.read()


def test_server_serves_html_and_json_on_loopback(
    server: tuple[StatusServer, str, dict[str, Any]],
) -> None:
    _srv, url, record = server
    assert url.startswith("http://127.0.0.1:")

    status, ctype, body = _get(url + "/")
    assert status == 200
    assert ctype.startswith("text/html")
    assert "mnist-ddp" in body.decode()

    status, ctype, body = _get(url + "/status.json")
    assert status == 200
    assert ctype == "application/json"
    assert json.loads(body) == record


def test_server_reflects_the_latest_snapshot() -> None:
    state = {"value": "RUNNING"}
    srv = StatusServer(lambda: make_record(state=state["value"]))
    url = srv.start()
    try:
        assert json.loads(_get(url + "/status.json")[2])["state"] == "RUNNING"
        state["value"] = "SUCCEEDED"
        assert json.loads(_get(url + "/status.json")[2])["state"] == "SUCCEEDED"
    finally:
        srv.stop()


def test_stop_before_start_is_harmless() -> None:
    StatusServer(make_record).stop()
