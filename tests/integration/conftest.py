"""Fixtures for integration tests: a real Hadoop cluster, started when none is configured.

A cluster that cannot be reached or started is a test *failure*, never a skip: the integration
tier exists to prove features on real YARN and HDFS.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from client.errors import DLSubmitError
from client.rm import ResourceManager

REPO = Path(__file__).resolve().parents[2]


def _rm_alive(url: str = "http://127.0.0.1:8088/ws/v1/cluster/info") -> bool:
    try:
        with urllib.request.urlopen(url, timeout=3) as resp:
            return resp.status == 200
    except OSError:
        return False


def _apply_env_lines(text: str) -> None:
    for line in text.splitlines():
        if not line.startswith("export "):
            continue
        key, _, value = line[len("export ") :].partition("=")
        value = value.replace('"$PATH"', os.environ.get("PATH", "")).strip('"')
        os.environ[key] = value


@pytest.fixture(scope="session")
def cluster() -> Iterator[dict[str, str]]:
    """The cluster to test against: HADOOP_CONF_DIR if set, else the dev cluster (started now)."""
    if not os.environ.get("HADOOP_CONF_DIR") or not _rm_alive():
        launcher = REPO / "docker" / "cluster"
        up = subprocess.run([sys.executable, str(launcher), "up"], capture_output=True, text=True)
        if up.returncode != 0:
            pytest.fail(f"the dev cluster did not start:\n{up.stderr[-4000:]}", pytrace=False)
        env = subprocess.run(
            [sys.executable, str(launcher), "env"], capture_output=True, text=True, check=True
        )
        _apply_env_lines(env.stdout)
    if not _rm_alive():
        pytest.fail("the ResourceManager at 127.0.0.1:8088 does not answer", pytrace=False)
    yield {"HADOOP_CONF_DIR": os.environ["HADOOP_CONF_DIR"]}


def yarn_logs(app_id: str) -> str:
    """Aggregated logs of an application (`yarn logs`), for failure reports and assertions."""
    out = subprocess.run(
        ["yarn", "logs", "-applicationId", app_id], capture_output=True, text=True, timeout=120
    )
    return out.stdout + out.stderr


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """When an integration test fails, attach `yarn logs` of the apps it recorded."""
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed:
        for app_id in getattr(item, "dlsubmit_apps", []):
            report.sections.append((f"yarn logs {app_id}", yarn_logs(app_id)[-20000:]))


@pytest.fixture
def record_app(request: pytest.FixtureRequest) -> Iterator[Callable[[str], str]]:
    """Call with an application id so its logs are printed if the test fails. Applications
    still running when the test ends are killed: they would hold containers that the next
    test's capacity and placement depend on."""

    def record(app_id: str) -> str:
        apps = getattr(request.node, "dlsubmit_apps", [])
        apps.append(app_id)
        request.node.dlsubmit_apps = apps
        return app_id

    yield record
    apps = getattr(request.node, "dlsubmit_apps", [])
    if apps:
        rm = ResourceManager()
        for app_id in apps:
            with contextlib.suppress(DLSubmitError, OSError):
                rm.kill(app_id, diagnostics="killed at the end of its integration test")
