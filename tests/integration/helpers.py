"""Helpers for integration tests: run the real `dlsubmit` CLI, write small job specs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Result:
    code: int
    out: str
    err: str


def dlsubmit(*args: str, timeout: float = 300, env: dict[str, str] | None = None) -> Result:
    """Run `dlsubmit ARGS` as a user would (a new process, real cluster)."""
    proc = subprocess.run(
        [sys.executable, "-m", "client.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        env={**os.environ, **(env or {})},
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def write_job(tmp: Path, body: str, name: str = "job.yaml") -> Path:
    path = tmp / name
    path.write_text(textwrap.dedent(body))
    return path


def rm_app(app_id: str) -> dict[str, Any]:
    with urllib.request.urlopen(
        f"http://127.0.0.1:8088/ws/v1/cluster/apps/{app_id}", timeout=10
    ) as r:
        return json.load(r)["app"]  # type: ignore[no-any-return]


def status_json(app_id: str) -> dict[str, Any]:
    res = dlsubmit("status", app_id, "--json")
    assert res.code == 0, res.err
    return json.loads(res.out)  # type: ignore[no-any-return]


def wait_for(predicate: Any, timeout_s: float, what: str, interval_s: float = 1.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout_s}s waiting for {what}"
        time.sleep(interval_s)
