"""client.rm, client.preflight and the live part of client.logs against the real cluster."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import skein

from client.errors import NoSuchApplicationError, PreflightError
from client.hadoop_conf import hadoop_user
from client.hdfs import Hdfs
from client.logs import follow, task_logs
from client.preflight import preflight
from client.record import job_dir, status_path
from client.rm import ResourceManager, YarnAppState
from client.spec import JobSpec

pytestmark = pytest.mark.yarn

# Writes numbered lines into its container's own `stdout` file, as our launcher does.
WRITER = (
    'out="${LOG_DIRS%%,*}/stdout"; '
    'for i in $(seq 1 600); do echo "line-$i" >> "$out"; sleep 0.2; done'
)


@pytest.fixture(scope="module")
def rm(cluster: dict[str, str]) -> ResourceManager:
    """The dev cluster's ResourceManager, located through HADOOP_CONF_DIR."""
    return ResourceManager()


@pytest.fixture(scope="module")
def hdfs(cluster: dict[str, str]) -> Hdfs:
    """The dev cluster's HDFS."""
    return Hdfs()


@pytest.fixture
def hdfs_dir(hdfs: Hdfs) -> Iterator[str]:
    """A fresh HDFS directory, removed afterwards."""
    path = f"/tmp/dlsubmit-it-{uuid.uuid4().hex[:8]}"
    hdfs.makedirs(path)
    yield path
    hdfs.delete(path, recursive=True)


def spec(tmp_path: Path, **fields: Any) -> JobSpec:
    raw: dict[str, Any] = {
        "name": "preflight-it",
        "roles": {"worker": {"instances": 2, "command": "python3 -c pass",
                             "resources": {"memory": "512 MiB", "vcores": 1}}},
        "appmaster": {"resources": {"memory": "512 MiB", "vcores": 1}},
    }
    raw.update(fields)
    return JobSpec.from_dict(raw, tmp_path)


def problems(tmp_path: Path, rm: ResourceManager, hdfs: Hdfs, **fields: Any) -> list[str]:
    with pytest.raises(PreflightError) as info:
        preflight(spec(tmp_path, **fields), rm, hdfs, environ={})
    return str(info.value).splitlines()


# ---------------------------------------------------------------------------------------------
# ResourceManager reads


def test_cluster_queues_and_nodes(rm: ResourceManager) -> None:
    assert rm.cluster_info().rm_version.startswith("3.")
    queues = rm.queues()
    assert {"default", "research"} <= set(queues)
    default = queues["default"]
    assert default.state == "RUNNING"
    assert default.maximum_allocation is not None
    assert default.maximum_allocation.memory_mib >= 1024
    running = [node for node in rm.nodes() if node.state == "RUNNING"]
    assert len(running) >= 2
    assert all(node.http_address and node.total.memory_mib > 0 for node in running)
    assert any((node.total.gpus or 0) > 0 for node in running)  # the dev GPU plugin
    assert isinstance(rm.node_labels(), list)
    assert rm.scheduler_max_allocation() is not None


def test_unknown_application(rm: ResourceManager) -> None:
    cluster_id = rm.cluster_info().id
    with pytest.raises(NoSuchApplicationError):
        rm.app(f"application_{cluster_id}_999999")


# ---------------------------------------------------------------------------------------------
# preflight


def test_preflight_passes_a_fitting_spec(
    tmp_path: Path, rm: ResourceManager, hdfs: Hdfs, hdfs_dir: str
) -> None:
    (tmp_path / "train.py").write_text("print('hi')\n")
    fields = {
        "queue": "research",
        "files": {"train.py": "train.py"},
        "mounts": [{"source": f"hdfs://{hdfs_dir}", "path": "data"},
                   {"source": f"{hdfs_dir}/out-not-yet", "path": "out", "mode": "rw"}],
    }
    assert preflight(spec(tmp_path, **fields), rm, hdfs, environ={}) == []


def test_preflight_unknown_queue(tmp_path: Path, rm: ResourceManager, hdfs: Hdfs) -> None:
    (line,) = problems(tmp_path, rm, hdfs, queue="reserch")
    assert line.startswith("queue: no queue 'reserch' on this cluster; queues are ")
    assert "research" in line
    assert line.endswith("did you mean 'research'?")


def test_preflight_too_much_memory(tmp_path: Path, rm: ResourceManager, hdfs: Hdfs) -> None:
    roles = {"worker": {"command": "x", "resources": {"memory": "64 GiB"}}}
    (line,) = problems(tmp_path, rm, hdfs, roles=roles)
    assert line.startswith("roles.worker.resources.memory: 64 GiB is more than any node offers "
                           "(largest: 4 GiB on ")
    assert line.endswith("; lower it or add bigger nodes")


def test_preflight_too_many_gpus(tmp_path: Path, rm: ResourceManager, hdfs: Hdfs) -> None:
    roles = {"worker": {"command": "x", "resources": {"gpus": 3}}}
    (line,) = problems(tmp_path, rm, hdfs, roles=roles)
    assert line.startswith("roles.worker.resources.gpus: 3 is more than any node offers "
                           "(largest: 2 on ")


def test_preflight_missing_ro_source(
    tmp_path: Path, rm: ResourceManager, hdfs: Hdfs, hdfs_dir: str
) -> None:
    missing = f"hdfs://{hdfs_dir}/nope"
    assert problems(tmp_path, rm, hdfs, mounts=[{"source": missing, "path": "data"}]) == [
        f"mounts[0].source: {missing} does not exist in HDFS; upload it first "
        "(hdfs dfs -put ...) or fix the path"
    ]


def test_preflight_gang_larger_than_the_cluster(
    tmp_path: Path, rm: ResourceManager, hdfs: Hdfs
) -> None:
    roles = {"worker": {"instances": 4, "command": "x", "resources": {"memory": "3 GiB"}}}
    (line,) = problems(tmp_path, rm, hdfs, roles=roles)
    assert line.startswith("scheduling.gang: the gang needs 12.5 GiB and 5 vcores at once")
    assert "ALLOCATION_TIMEOUT" in line


# ---------------------------------------------------------------------------------------------
# A real application: state, attempts, live container logs, task logs, kill


@pytest.fixture
def writer_app(rm: ResourceManager, record_app: Callable[[str], str]) -> Iterator[str]:
    """A running Skein application whose AppMaster container writes `line-N` to its stdout."""
    tag = f"dlsubmit-it-{uuid.uuid4().hex[:8]}"
    app_spec = skein.ApplicationSpec(
        name="dlsubmit-rm-it", queue="default", tags=[tag],
        master=skein.Master(resources=skein.Resources(memory=512, vcores=1), script=WRITER),
    )
    with skein.Client() as client:
        app_id = record_app(client.submit(app_spec))
    try:
        _wait_for(lambda: rm.app(app_id).state == YarnAppState.RUNNING, 120, f"{app_id} RUNNING")
        yield app_id
    finally:
        rm.kill(app_id)


def _wait_for(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def test_running_application(rm: ResourceManager, hdfs: Hdfs, writer_app: str) -> None:
    app = rm.app(writer_app)
    assert app.queue == "default"
    assert app.application_type == "skein"
    assert any(tag.startswith("dlsubmit-it-") for tag in app.tags)
    assert writer_app in [a.id for a in rm.apps(states=["RUNNING"], tags=list(app.tags))]
    (attempt,) = rm.app_attempts(writer_app)
    container, nm = attempt.container_id, attempt.node_http_address
    assert container and nm == app.am_host_http

    _wait_for(lambda: "line-5\n" in rm.container_log(nm, container, "stdout"), 60, "line-5")
    assert "stdout" in rm.container_log_files(nm, container)
    assert rm.container_log(nm, container, "stdout").startswith("line-1\nline-2\n")
    tail = rm.read_container_log(nm, container, "stdout", -7)
    assert tail is not None
    assert tail.start + len(tail.data) == tail.file_length
    assert tail.data.endswith(b"\n")
    assert rm.read_container_log(nm, container, "no-such-file") is None

    record = {"app_id": writer_app, "user": app.user, "attempt": 1,
              "tasks": {"worker:0": {"role": "worker", "index": 0, "rank": 0, "attempt": 1,
                                     "state": "RUNNING", "container_id": container,
                                     "nm_http_address": nm}}}
    lines = task_logs(rm, hdfs, app, record, tail=3)
    assert len(lines) == 3
    assert all(line.startswith("[worker:0] line-") for line in lines)


def test_follow_then_kill(rm: ResourceManager, hdfs: Hdfs, writer_app: str) -> None:
    app = rm.app(writer_app)
    (attempt,) = rm.app_attempts(writer_app)
    record = {"app_id": writer_app, "user": app.user, "attempt": 1,
              "tasks": {"worker:0": {"role": "worker", "index": 0, "rank": 0, "attempt": 1,
                                     "state": "RUNNING", "container_id": attempt.container_id,
                                     "nm_http_address": attempt.node_http_address}}}
    user = hadoop_user()
    hdfs.write_json(status_path(user, writer_app), record)
    try:
        seen: list[str] = []
        for line in follow(rm, hdfs, writer_app, user=user, poll_interval_s=0.5,
                           yarn_logs=lambda *_: None):
            seen.append(line)
            if line == "[worker:0] line-12":
                killed = rm.kill(writer_app)
                assert killed.state == "KILLED"
        numbers = [int(line.rpartition("-")[2]) for line in seen]
        assert numbers[:12] == list(range(1, 13))
        assert numbers == sorted(set(numbers))  # no line twice, none out of order
        assert rm.kill(writer_app).state == "KILLED"  # idempotent
    finally:
        hdfs.delete(job_dir(user, writer_app), recursive=True)
