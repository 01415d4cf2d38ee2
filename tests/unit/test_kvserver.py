"""The AppMaster's Horovod rendezvous store speaks HTTPStore's protocol."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest

from appmaster.kvserver import KeyValueServer


def _call(method: str, url: str, data: bytes | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=data, method=method)
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, b""


@pytest.fixture
def server():
    kv = KeyValueServer()
    port = kv.start("127.0.0.1")
    yield kv, f"http://127.0.0.1:{port}"
    kv.stop()


def test_put_get_delete_and_404_while_missing(server) -> None:
    _kv, base = server
    assert _call("GET", f"{base}/global/rank_0")[0] == 404
    assert _call("PUT", f"{base}/global/rank_0", b"\x00addr")[0] == 200
    assert _call("GET", f"{base}/global/rank_0") == (200, b"\x00addr")
    assert _call("GET", f"{base}/local/rank_0")[0] == 404  # scopes are separate
    assert _call("DELETE", f"{base}/global/rank_0")[0] == 200
    assert _call("GET", f"{base}/global/rank_0")[0] == 404


def test_clear_forgets_the_previous_attempt(server) -> None:
    kv, base = server
    _call("PUT", f"{base}/global/k", b"v")
    kv.clear()
    assert _call("GET", f"{base}/global/k")[0] == 404
