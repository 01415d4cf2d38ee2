"""`docker/cluster up` that fails half way stops the daemons it started.

The daemons are real processes started by the launcher's own code: a stand-in ``java`` that
idles like a daemon, except the ResourceManager, which dies at once (as when its port is
taken). The one thing replaced is the HTTP probe, so that the real cluster other tests may be
running on the fixed ports is never reached.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.machinery
import importlib.util
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]

FAKE_JAVA = """#!/bin/bash
# Stand-in JVM: a format succeeds, the ResourceManager dies, every other daemon idles.
case "$*" in
  *-format*) exit 0 ;;
  *ResourceManager*) echo "fake ResourceManager: Address already in use (port 8088)"; exit 1 ;;
  *) while :; do sleep 0.2; done ;;
esac
"""


def _load_launcher(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    jdk = tmp_path / "jdk"
    (jdk / "bin").mkdir(parents=True)
    java = jdk / "bin" / "java"
    java.write_text(FAKE_JAVA)
    java.chmod(0o755)
    # A jar cache that already "holds" the POM's jars: no Maven run.
    cache = tmp_path / "cache"
    lib = cache / "hadoop-3.4.2" / "lib"
    lib.mkdir(parents=True)
    pom = (REPO / "docker" / "hadoop" / "pom.xml").read_bytes()
    (lib / ".complete").write_text(hashlib.sha256(pom).hexdigest() + "\n")
    monkeypatch.setenv("JAVA_HOME", str(jdk))
    monkeypatch.setenv("DLSUBMIT_CACHE", str(cache))
    monkeypatch.setenv("DLSUBMIT_CLUSTER_DIR", str(tmp_path / "state"))
    path = str(REPO / "docker" / "cluster")
    loader = importlib.machinery.SourceFileLoader("dlsubmit_cluster_launcher", path)
    spec = importlib.util.spec_from_loader(loader.name, loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, loader.name, module)  # dataclasses look it up there
    loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def _no_stand_in_outlives_the_test(tmp_path: Path) -> Iterator[None]:
    yield
    # Even when a test fails, kill every stand-in daemon it left (their argv names tmp_path).
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            argv = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if str(tmp_path / "jdk").encode() in argv:
            with contextlib.suppress(OSError):
                os.kill(int(proc.name), signal.SIGKILL)


def _gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"  # exited, not yet reaped


def test_up_that_fails_half_way_stops_what_it_started(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    launcher = _load_launcher(tmp_path, monkeypatch)

    def nothing_listens(url: str, method: str = "GET", timeout_s: float = 3.0) -> object:
        raise ConnectionRefusedError(f"{method} {url}: connection refused")

    monkeypatch.setattr(launcher, "http_json", nothing_listens)
    with pytest.raises(SystemExit) as exit_info:
        launcher.cmd_up(argparse.Namespace(nodemanagers=None))
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert "rm exited while waiting for the ResourceManager" in err, err
    assert "Address already in use (port 8088)" in err, "the dead daemon's log tail is shown"
    assert "`up` failed; stopping what it started: nn, dn, rm" in err, err
    stopped = {
        line.split()[2]: int(line.rsplit("pid ", 1)[1].rstrip(")"))
        for line in err.splitlines()
        if line.startswith("cluster: stopped ")
    }
    assert set(stopped) == {"nn", "dn"}, err  # the RM had already died
    deadline = time.monotonic() + 10
    while not all(_gone(pid) for pid in stopped.values()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert all(_gone(pid) for pid in stopped.values()), "a stand-in daemon is still running"
    run_dir = tmp_path / "state" / "run"
    assert not list(run_dir.glob("nn.pid")) and not list(run_dir.glob("dn.pid"))


def test_up_leaves_daemons_it_did_not_start_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Restarting one daemon (the others already up) and failing must not take the others down.
    launcher = _load_launcher(tmp_path, monkeypatch)
    monkeypatch.setattr(launcher, "http_json", lambda *a, **k: (_ for _ in ()).throw(OSError()))
    for path in (launcher.RUN_DIR, launcher.LOG_DIR):
        path.mkdir(parents=True, exist_ok=True)
    running = {d.name: d for d in launcher.daemons(2) if d.name in ("nn", "dn")}
    pids = {name: launcher.start(d) for name, d in running.items()}
    try:
        with pytest.raises(SystemExit):
            launcher.cmd_up(argparse.Namespace(nodemanagers=None))
        err = capsys.readouterr().err
        assert "stopping what it started: rm" in err, err
        assert all(not _gone(pid) for pid in pids.values()), "up stopped daemons it found running"
    finally:
        for pid in pids.values():
            os.kill(pid, signal.SIGKILL)
