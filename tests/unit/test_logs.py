"""Unit tests for client.logs with fakes at the boundaries: the NodeManager (HTTP), HDFS and
the ``yarn logs`` runner."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any, cast

import pytest

from client.errors import UsageError
from client.hdfs import Hdfs
from client.logs import follow, task_logs
from client.record import status_path, task_log_path
from client.rm import AppInfo, ResourceManager, YarnAppState
from client.spec import TaskId
from tests.unit.test_rm import APP, FakeYarn, Reply, app_json, dead_url, serve_logs

USER = "alice"
C_CHIEF = "container_1795981701459_0001_01_000002"
C_W0 = "container_1795981701459_0001_01_000003"
C_W0_2 = "container_1795981701459_0001_02_000003"  # worker:0 in attempt 2


class FakeHdfs:
    """The Hdfs boundary: files by path; the record is ``files[status_path]`` as a dict."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.record: dict[str, Any] | None = None
        self.reads: list[str] = []

    def read_bytes(self, path: str) -> bytes | None:
        self.reads.append(path)
        return self.files.get(path)

    def read_json(self, path: str) -> Any:
        assert path == status_path(USER, APP)
        return self.record


class FakeYarnLogs:
    """The ``yarn logs`` runner: dumps by container id."""

    def __init__(self, dumps: dict[str, bytes] | None = None) -> None:
        self.dumps = dumps or {}
        self.calls: list[tuple[str, str, str]] = []

    def __call__(self, app_id: str, container_id: str, owner: str) -> bytes | None:
        self.calls.append((app_id, container_id, owner))
        return self.dumps.get(container_id)


@pytest.fixture
def nm() -> Iterator[FakeYarn]:
    """A fake RM + NodeManager web server."""
    server = FakeYarn()
    yield server
    server.close()


def app_info(state: str = "RUNNING") -> AppInfo:
    """An AppInfo as the RM would report it."""
    return AppInfo(
        id=APP, name="mnist", user=USER, queue="default", queue_path="root.default",
        state=YarnAppState(state), final_status="UNDEFINED", progress=0.0, tracking_url="",
        diagnostics="", started_ms=1, launched_ms=2, finished_ms=0, tags=("dlsubmit",),
        am_host_http="localhost:8042", am_container_logs="", application_type="dlsubmit",
        allocated_memory_mib=0, allocated_vcores=0, running_containers=0,
        log_aggregation_status="",
    )


def record_of(nm_address: str, attempt: int = 1, w0: str = C_W0) -> dict[str, Any]:
    """A status.json with chief:0 (rank 0) and worker:0 (rank 1); worker listed first."""
    def task(role: str, rank: int, container: str) -> dict[str, Any]:
        return {"role": role, "index": 0, "rank": rank, "attempt": attempt, "state": "RUNNING",
                "container_id": container, "nm_http_address": nm_address}

    return {"app_id": APP, "user": USER, "attempt": attempt, "max_attempts": 3,
            "tasks": {"worker:0": task("worker", 1, w0), "chief:0": task("chief", 0, C_CHIEF)}}


def logs(
    nm: FakeYarn,
    record: dict[str, Any] | None,
    hdfs: FakeHdfs,
    state: str = "RUNNING",
    **kwargs: Any,
) -> list[str]:
    return task_logs(ResourceManager(nm.url), cast(Hdfs, hdfs), app_info(state), record,
                     **kwargs)


def nm_requests(nm: FakeYarn) -> list[Any]:
    return [seen for seen in nm.seen if "/containerlogs/" in seen.path]


# ---------------------------------------------------------------------------------------------
# task_logs: live


def test_live_logs_in_rank_order(nm: FakeYarn) -> None:
    serve_logs(nm, {
        (C_CHIEF, "stdout"): b"chief says hi\n",
        (C_W0, "stdout"): b"epoch 1\r\nepoch 2\n",
        (C_W0, "stderr"): b"launcher: done\n",
    })
    assert logs(nm, record_of(nm.address), FakeHdfs()) == [
        "[chief:0] chief says hi",
        "[worker:0] epoch 1",
        "[worker:0] epoch 2",
        "[worker:0] launcher: done",
    ]


def test_live_tail_reads_only_the_end(nm: FakeYarn) -> None:
    body = b"".join(b"line %d\n" % i for i in range(10000))
    serve_logs(nm, {(C_W0, "stdout"): body, (C_W0, "stderr"): b"e1\ne2\ne3\n"})
    lines = logs(nm, record_of(nm.address), FakeHdfs(), task="worker:0", tail=2)
    assert lines == ["[worker:0] line 9998", "[worker:0] line 9999",
                     "[worker:0] e2", "[worker:0] e3"]
    assert all(seen.query.get("size", "0").startswith("-") for seen in nm_requests(nm))


def test_live_tail_reads_more_when_lines_are_long(nm: FakeYarn) -> None:
    body = b"".join(b"%d " % i + b"x" * 3000 + b"\n" for i in range(50))
    serve_logs(nm, {(C_W0, "stdout"): body})
    lines = logs(nm, record_of(nm.address), FakeHdfs(), task=TaskId("worker", 0), tail=3)
    assert [line.split()[1] for line in lines] == ["47", "48", "49"]
    sizes = [int(s.query["size"]) for s in nm_requests(nm) if s.path.endswith("stdout")]
    assert len(sizes) == 2 and sizes[1] < sizes[0] < 0


def test_tail_longer_than_the_log(nm: FakeYarn) -> None:
    serve_logs(nm, {(C_W0, "stdout"): b"a\nb\nno newline yet"})
    assert logs(nm, record_of(nm.address), FakeHdfs(), task="worker:0", tail=10) == [
        "[worker:0] a", "[worker:0] b"]
    assert logs(nm, record_of(nm.address), FakeHdfs(), task="worker:0", tail=0) == []


def test_unknown_task(nm: FakeYarn) -> None:
    with pytest.raises(UsageError, match=r"task worker:5: no such task; tasks are chief:0, "
                                         r"worker:0"):
        logs(nm, record_of(nm.address), FakeHdfs(), task="worker:5")
    with pytest.raises(UsageError, match="expected ROLE:INDEX"):
        logs(nm, record_of(nm.address), FakeHdfs(), task="worker")


def test_bad_tail(nm: FakeYarn) -> None:
    with pytest.raises(UsageError, match="tail"):
        logs(nm, record_of(nm.address), FakeHdfs(), tail=-1)


def test_live_falls_back_to_hdfs_when_the_nm_lacks_the_container(nm: FakeYarn) -> None:
    serve_logs(nm, {})
    hdfs = FakeHdfs()
    hdfs.files[task_log_path(USER, APP, 1, "worker:0")] = b"uploaded at exit\n"
    assert logs(nm, record_of(nm.address), hdfs, task="worker:0") == [
        "[worker:0] uploaded at exit"]


def test_unreachable_nm_falls_back_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    hdfs = FakeHdfs()
    hdfs.files[task_log_path(USER, APP, 1, "chief:0")] = b"stored\n"
    rm = ResourceManager(dead_url())
    record = record_of(dead_url().removeprefix("http://"))
    with caplog.at_level(logging.WARNING, logger="client.logs"):
        lines = task_logs(rm, cast(Hdfs, hdfs), app_info(), record, task="chief:0")
    assert lines == ["[chief:0] stored"]
    assert "live log unavailable" in caplog.text


# ---------------------------------------------------------------------------------------------
# task_logs: after the end


def test_finished_reads_hdfs_not_the_nm(nm: FakeYarn) -> None:
    hdfs = FakeHdfs()
    hdfs.files[task_log_path(USER, APP, 1, "worker:0")] = b"w1\nw2\nw3\n"
    hdfs.files[task_log_path(USER, APP, 1, "chief:0")] = b"c1\n"
    assert logs(nm, record_of(nm.address), hdfs, state="FINISHED", tail=2) == [
        "[chief:0] c1", "[worker:0] w2", "[worker:0] w3"]
    assert nm.seen == []


def test_finished_falls_back_to_yarn_logs(nm: FakeYarn) -> None:
    dump = (
        b"Container: " + C_W0.encode() + b" on localhost_45451\n"
        b"LogAggregationType: AGGREGATED\n" + b"=" * 60 + b"\n"
        b"LogType:stdout\nLogLastModifiedTime:Sun Nov 29 19:53:02 +0000 2026\nLogLength:6\n"
        b"LogContents:\nagg 1\n\nEnd of LogType:stdout\n" + b"*" * 87 + b"\n\n"
    )
    runner = FakeYarnLogs({C_W0: dump})
    lines = logs(nm, record_of(nm.address), FakeHdfs(), state="FAILED", task="worker:0",
                 yarn_logs=runner)
    assert lines == ["[worker:0] agg 1"]
    assert runner.calls == [(APP, C_W0, USER)]


def test_finished_without_any_log_warns(
    nm: FakeYarn, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="client.logs"):
        lines = logs(nm, record_of(nm.address), FakeHdfs(), state="KILLED", task="chief:0",
                     yarn_logs=FakeYarnLogs())
    assert lines == []
    assert "[chief:0] no log for attempt 1" in caplog.text
    assert task_log_path(USER, APP, 1, "chief:0") in caplog.text


def test_older_attempt_is_read_from_hdfs(nm: FakeYarn) -> None:
    serve_logs(nm, {(C_W0_2, "stdout"): b"attempt 2 live\n"})
    hdfs = FakeHdfs()
    hdfs.files[task_log_path(USER, APP, 1, "worker:0")] = b"attempt 1 stored\n"
    record = record_of(nm.address, attempt=2, w0=C_W0_2)
    runner = FakeYarnLogs()
    assert logs(nm, record, hdfs, task="worker:0", attempt=1, yarn_logs=runner) == [
        "[worker:0] attempt 1 stored"]
    assert logs(nm, record, hdfs, task="worker:0") == ["[worker:0] attempt 2 live"]
    with pytest.raises(UsageError, match=r"attempt 3: no such attempt; the job has 1\.\.2"):
        logs(nm, record, hdfs, attempt=3)
    # A finished job's older attempt: its containers are not in the record, so no `yarn logs`.
    assert logs(nm, record, FakeHdfs(), state="FINISHED", attempt=1, yarn_logs=runner) == []
    assert runner.calls == []


def test_no_record_yet(nm: FakeYarn) -> None:
    assert logs(nm, None, FakeHdfs()) == []


def test_user_overrides_the_record_directory(nm: FakeYarn) -> None:
    hdfs = FakeHdfs()
    hdfs.files[task_log_path("bob", APP, 1, "chief:0")] = b"bob's\n"
    assert logs(nm, record_of(nm.address), hdfs, state="FINISHED", task="chief:0",
                user="bob", yarn_logs=FakeYarnLogs()) == ["[chief:0] bob's"]


# ---------------------------------------------------------------------------------------------
# follow


class Script:
    """The fake sleep of follow: runs one scripted change per poll."""

    def __init__(self, steps: list[Callable[[], None]]) -> None:
        self.steps = steps
        self.calls = 0

    def __call__(self, seconds: float) -> None:
        assert seconds == 1.0
        if self.calls < len(self.steps):
            self.steps[self.calls]()
        self.calls += 1


def app_states(nm: FakeYarn, *states: str) -> None:
    """The RM reports these states, one per poll (the last repeats)."""
    nm.route("GET", f"/ws/v1/cluster/apps/{APP}",
             [Reply(200, {"app": app_json(state=s, user=USER)}) for s in states])


def run_follow(nm: FakeYarn, hdfs: FakeHdfs, script: Script, **kwargs: Any) -> list[str]:
    return list(follow(ResourceManager(nm.url), cast(Hdfs, hdfs), APP, sleep=script,
                       yarn_logs=FakeYarnLogs(), **kwargs))


def test_follow_yields_each_line_once(nm: FakeYarn) -> None:
    files = {(C_W0, "stdout"): b"one\npar"}
    serve_logs(nm, files)
    hdfs = FakeHdfs()
    hdfs.record = record_of(nm.address)
    app_states(nm, "RUNNING", "RUNNING", "RUNNING", "FINISHED")

    def write(more: bytes) -> Callable[[], None]:
        return lambda: files.__setitem__((C_W0, "stdout"), files[(C_W0, "stdout")] + more)

    script = Script([write(b"tial\ntwo\n"), write(b""), write(b"three\n")])
    lines = run_follow(nm, hdfs, script, task="worker:0")
    assert lines == ["[worker:0] one", "[worker:0] partial", "[worker:0] two",
                     "[worker:0] three"]
    # Every read after the first asks for a tail, not the whole file.
    sizes = [seen.query.get("size") for seen in nm_requests(nm) if seen.path.endswith("stdout")]
    assert all(size is not None and int(size) < 0 for size in sizes)


def test_follow_takes_the_rest_from_hdfs_when_the_nm_dropped_it(nm: FakeYarn) -> None:
    files = {(C_W0, "stdout"): b"a\nb\n"}
    serve_logs(nm, files)
    hdfs = FakeHdfs()
    hdfs.record = record_of(nm.address)
    hdfs.files[task_log_path(USER, APP, 1, "worker:0")] = b"a\nb\nc\nd"
    app_states(nm, "RUNNING", "FINISHED")
    script = Script([lambda: files.clear()])  # the app ends; logs are aggregated away
    assert run_follow(nm, hdfs, script, task="worker:0") == [
        "[worker:0] a", "[worker:0] b", "[worker:0] c", "[worker:0] d"]


def test_follow_switches_to_the_next_attempt(nm: FakeYarn) -> None:
    files = {(C_W0, "stdout"): b"first try\n", (C_CHIEF, "stdout"): b""}
    serve_logs(nm, files)
    hdfs = FakeHdfs()
    hdfs.record = record_of(nm.address)
    app_states(nm, "RUNNING", "RUNNING", "RUNNING", "FINISHED")

    def crash() -> None:
        files[(C_W0, "stdout")] += b"Traceback\n"

    def retry() -> None:
        hdfs.record = record_of(nm.address, attempt=2, w0=C_W0_2)
        files[(C_W0_2, "stdout")] = b"second try\n"
        files[(C_CHIEF, "stdout")] = b""

    lines = run_follow(nm, hdfs, Script([crash, retry]), task="worker:0")
    assert lines == ["[worker:0] first try", "[worker:0] Traceback",
                     "[worker:0] --- attempt 2 ---", "[worker:0] second try"]


def test_follow_starts_with_the_tail(nm: FakeYarn) -> None:
    files = {(C_W0, "stdout"): b"".join(b"old %d\n" % i for i in range(100))}
    serve_logs(nm, files)
    hdfs = FakeHdfs()
    hdfs.record = record_of(nm.address)
    app_states(nm, "RUNNING", "RUNNING", "FINISHED")
    script = Script([lambda: files.__setitem__((C_W0, "stdout"), files[(C_W0, "stdout")]
                                               + b"new\n")])
    assert run_follow(nm, hdfs, script, task="worker:0", tail=2) == [
        "[worker:0] old 98", "[worker:0] old 99", "[worker:0] new"]


def test_follow_waits_for_the_record(nm: FakeYarn) -> None:
    files: dict[tuple[str, str], bytes] = {}
    serve_logs(nm, files)
    hdfs = FakeHdfs()
    app_states(nm, "ACCEPTED", "RUNNING", "RUNNING", "FINISHED")

    def start() -> None:
        hdfs.record = record_of(nm.address)
        files[(C_CHIEF, "stdout")] = b"up\n"

    assert run_follow(nm, hdfs, Script([start]), task="chief:0") == ["[chief:0] up"]


def test_follow_of_a_finished_job_prints_the_stored_logs(nm: FakeYarn) -> None:
    hdfs = FakeHdfs()
    hdfs.record = record_of(nm.address)
    hdfs.files[task_log_path(USER, APP, 1, "chief:0")] = b"1\n2\n3\n"
    app_states(nm, "FINISHED")
    script = Script([])
    assert run_follow(nm, hdfs, script, task="chief:0", tail=1) == ["[chief:0] 3"]
    assert script.calls == 0


def test_follow_of_an_older_attempt_does_not_wait(nm: FakeYarn) -> None:
    hdfs = FakeHdfs()
    hdfs.record = record_of(nm.address, attempt=2, w0=C_W0_2)
    hdfs.files[task_log_path(USER, APP, 1, "worker:0")] = b"old\n"
    app_states(nm, "RUNNING")
    script = Script([])
    assert run_follow(nm, hdfs, script, task="worker:0", attempt=1) == ["[worker:0] old"]
    assert script.calls == 0

