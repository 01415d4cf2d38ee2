"""Unit tests for client.preflight: every message, against a fake RM (HTTP) and a fake HDFS."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from client.errors import ClusterUnreachableError, HdfsError, PreflightError
from client.hdfs import Hdfs, hdfs_path
from client.preflight import preflight
from client.rm import ResourceManager
from client.spec import JobSpec
from tests.unit.test_rm import (
    FakeYarn,
    dead_url,
    node_json,
    nodes_json,
    queue_json,
    scheduler_json,
)

NODE_A = "127.0.0.1:45451"
NODE_B = "127.0.0.1:45452"


class FakeHdfs:
    """The Hdfs boundary: paths that exist, paths whose check fails."""

    def __init__(self, existing: set[str] | None = None, broken: set[str] | None = None):
        self.existing = existing or set()
        self.broken = broken or set()
        self.checked: list[str] = []

    def exists(self, path: str) -> bool:
        path = hdfs_path(path)
        self.checked.append(path)
        if path in self.broken:
            raise HdfsError(f"HDFS stat {path}: Permission denied: user=bob, access=EXECUTE")
        return path in self.existing


class DeadHdfs:
    """A NameNode that does not answer."""

    def exists(self, path: str) -> bool:
        raise ClusterUnreachableError("HDFS NameNode at http://x:9870 is unreachable")


@pytest.fixture
def yarn() -> Iterator[FakeYarn]:
    """The dev cluster's shape: queues default and research, two 4 GiB / 4 vcore / 2 GPU nodes."""
    server = FakeYarn()
    server.route("GET", "/ws/v1/cluster/scheduler",
                 scheduler_json(queue_json("default", capacity=70.0),
                                queue_json("research", capacity=30.0)))
    server.route("GET", "/ws/v1/cluster/nodes",
                 nodes_json(node_json(NODE_A), node_json(NODE_B, http="localhost:8043")))
    server.route("GET", "/ws/v1/cluster/get-node-labels", {})
    yield server
    server.close()


def spec_of(tmp_path: Path, **fields: Any) -> JobSpec:
    """A small valid spec (one 1 GiB worker) with ``fields`` replacing the defaults."""
    raw: dict[str, Any] = {
        "name": "t",
        "roles": {"worker": {"instances": 2, "command": "python train.py",
                             "resources": {"memory": "1 GiB", "vcores": 1}}},
    }
    raw.update(fields)
    return JobSpec.from_dict(raw, tmp_path)


def worker(**resources: Any) -> dict[str, Any]:
    """``roles`` with one worker of these resources."""
    return {"worker": {"instances": 1, "command": "x", "resources": resources}}


def run(
    yarn: FakeYarn,
    spec: JobSpec,
    hdfs: object | None = None,
    environ: dict[str, str] | None = None,
) -> list[str]:
    return preflight(spec, ResourceManager(yarn.url), cast(Hdfs, hdfs or FakeHdfs()),
                     environ=environ or {})


def errors(yarn: FakeYarn, spec: JobSpec, hdfs: object | None = None) -> list[str]:
    with pytest.raises(PreflightError) as info:
        run(yarn, spec, hdfs)
    assert info.value.exit_code == 2
    return str(info.value).splitlines()


# ---------------------------------------------------------------------------------------------


def test_a_fitting_spec_passes(yarn: FakeYarn, tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text("print(1)\n")
    spec = spec_of(
        tmp_path,
        files={"train.py": "train.py"},
        mounts=[{"source": "hdfs:///datasets/mnist", "path": "data"},
                {"source": "hdfs:///user/alice/runs/x", "path": "out", "mode": "rw"}],
        environment={"secrets": ["WANDB_API_KEY"]},
    )
    hdfs = FakeHdfs(existing={"/datasets/mnist"})
    assert run(yarn, spec, hdfs, environ={"WANDB_API_KEY": "s3cret"}) == []
    assert hdfs.checked == ["/datasets/mnist"]  # rw mounts need not exist


def test_unknown_queue(yarn: FakeYarn, tmp_path: Path) -> None:
    assert errors(yarn, spec_of(tmp_path, queue="foo")) == [
        "queue: no queue 'foo' on this cluster; queues are default, research"
    ]
    assert errors(yarn, spec_of(tmp_path, queue="reserch")) == [
        "queue: no queue 'reserch' on this cluster; queues are default, research; "
        "did you mean 'research'?"
    ]


def test_queue_by_path(yarn: FakeYarn, tmp_path: Path) -> None:
    assert run(yarn, spec_of(tmp_path, queue="root.research")) == []


def test_stopped_queue(yarn: FakeYarn, tmp_path: Path) -> None:
    yarn.route("GET", "/ws/v1/cluster/scheduler",
               scheduler_json(queue_json("default"), queue_json("old", state="STOPPED")))
    (line,) = errors(yarn, spec_of(tmp_path, queue="old"))
    assert line.startswith("queue: queue 'old' is STOPPED")
    assert "(default)" in line


def test_memory_more_than_any_node(yarn: FakeYarn, tmp_path: Path) -> None:
    spec = spec_of(tmp_path, roles=worker(memory="64 GiB"))
    assert errors(yarn, spec) == [
        "roles.worker.resources.memory: 64 GiB is more than any node offers "
        f"(largest: 4 GiB on {NODE_A}); lower it or add bigger nodes"
    ]


def test_vcores_and_gpus_more_than_any_node(yarn: FakeYarn, tmp_path: Path) -> None:
    spec = spec_of(tmp_path, roles=worker(vcores=8, gpus=3))
    assert errors(yarn, spec) == [
        "roles.worker.resources.vcores: 8 is more than any node offers "
        f"(largest: 4 on {NODE_A}); lower it or add bigger nodes",
        "roles.worker.resources.gpus: 3 is more than any node offers "
        f"(largest: 2 on {NODE_A}); lower it or add bigger nodes",
    ]


def test_largest_node_is_named(yarn: FakeYarn, tmp_path: Path) -> None:
    yarn.route("GET", "/ws/v1/cluster/nodes", nodes_json(
        node_json(NODE_A, total=(2048, 2, 0)), node_json(NODE_B, total=(3072, 2, 0)),
        node_json("big:1", total=(65536, 64, 8), state="LOST"),  # not RUNNING: no offer
    ))
    (line,) = errors(yarn, spec_of(tmp_path, roles=worker(memory="4 GiB")))
    assert f"(largest: 3 GiB on {NODE_B})" in line


def test_gpus_without_the_gpu_resource(yarn: FakeYarn, tmp_path: Path) -> None:
    yarn.route("GET", "/ws/v1/cluster/nodes",
               nodes_json(node_json(NODE_A, total=(4096, 4, None))))
    assert errors(yarn, spec_of(tmp_path, roles=worker(gpus=1))) == [
        "roles.worker.resources.gpus: this cluster has no yarn.io/gpu resource; "
        "set gpus: 0 or enable YARN's GPU plugin"
    ]


def test_queue_maximum_allocation(yarn: FakeYarn, tmp_path: Path) -> None:
    yarn.route("GET", "/ws/v1/cluster/scheduler",
               scheduler_json(queue_json("default", max_alloc=(2048, 4, 1))))
    spec = spec_of(tmp_path, roles=worker(memory="3 GiB", gpus=2))
    assert errors(yarn, spec) == [
        "roles.worker.resources.memory: 3 GiB is more than queue 'default' allows for one "
        "container (maximum allocation: 2 GiB); lower it or use another queue",
        "roles.worker.resources.gpus: 2 is more than queue 'default' allows for one "
        "container (maximum allocation: 1); lower it or use another queue",
    ]


def test_appmaster_is_checked_too(yarn: FakeYarn, tmp_path: Path) -> None:
    spec = spec_of(tmp_path, appmaster={"resources": {"memory": "5 GiB", "vcores": 1}})
    assert errors(yarn, spec) == [
        "appmaster.resources.memory: 5 GiB is more than any node offers "
        f"(largest: 4 GiB on {NODE_A}); lower it or add bigger nodes"
    ]


def test_no_single_node_offers_everything(yarn: FakeYarn, tmp_path: Path) -> None:
    yarn.route("GET", "/ws/v1/cluster/nodes", nodes_json(
        node_json(NODE_A, total=(8192, 4, 0)), node_json(NODE_B, total=(2048, 4, 2))))
    (line,) = errors(yarn, spec_of(tmp_path, roles=worker(memory="4 GiB", gpus=1),
                                   scheduling={"gang": False}))
    assert line.startswith("roles.worker.resources: no single node offers "
                           "4 GiB, 1 vcore and 1 GPU together;")
    assert f"8 GiB, 4 vcores on {NODE_A}" not in line  # rendered with "and"
    assert f"8 GiB and 4 vcores on {NODE_A}" in line


def test_gang_larger_than_the_cluster(yarn: FakeYarn, tmp_path: Path) -> None:
    roles = {"worker": {"instances": 3, "command": "x",
                        "resources": {"memory": "3 GiB", "vcores": 1}}}
    (line,) = errors(yarn, spec_of(tmp_path, roles=roles))
    assert line == (
        "scheduling.gang: the gang needs 10 GiB and 4 vcores at once (appmaster + 3 tasks) but "
        "the cluster has 8 GiB, 8 vcores and 4 GPUs in all; it would wait for "
        "scheduling.allocation_timeout (5m) and fail with ALLOCATION_TIMEOUT; lower "
        "roles.*.instances or resources, or set scheduling.gang: false"
    )
    # Without gang scheduling tasks start as containers come: no error.
    assert run(yarn, spec_of(tmp_path, roles=roles, scheduling={"gang": False})) == []


def test_gang_larger_than_the_queue_can_grow(yarn: FakeYarn, tmp_path: Path) -> None:
    yarn.route("GET", "/ws/v1/cluster/scheduler",
               scheduler_json(queue_json("default", max_effective=(4096, 8, 4))))
    (line,) = errors(yarn, spec_of(tmp_path, roles=worker(memory="4 GiB")))
    assert "queue 'default' can hold at most 4 GiB, 8 vcores and 4 GPUs in all" in line
    assert "5 GiB and 2 vcores" in line


def test_gang_that_does_not_pack_is_a_warning(yarn: FakeYarn, tmp_path: Path) -> None:
    roles = {"worker": {"instances": 3, "command": "x",
                        "resources": {"memory": "2.5 GiB", "vcores": 1}}}
    spec = spec_of(tmp_path, roles=roles, appmaster={"resources": {"memory": "512 MiB"}})
    (warning,) = run(yarn, spec)
    assert warning.startswith("scheduling.gang: the appmaster + 3 tasks (8 GiB and 4 vcores) "
                              "do not pack onto the 2 RUNNING node(s)")


def test_missing_ro_mount(yarn: FakeYarn, tmp_path: Path) -> None:
    spec = spec_of(tmp_path, mounts=[{"source": "hdfs:///x", "path": "data"},
                                     {"source": "/runs/new", "path": "out", "mode": "rw"}])
    assert errors(yarn, spec) == [
        "mounts[0].source: hdfs:///x does not exist in HDFS; upload it first "
        "(hdfs dfs -put ...) or fix the path"
    ]


def test_mount_that_cannot_be_checked(yarn: FakeYarn, tmp_path: Path) -> None:
    spec = spec_of(tmp_path, mounts=[{"source": "/secret/data", "path": "data"}])
    (line,) = errors(yarn, spec, FakeHdfs(broken={"/secret/data"}))
    assert line.startswith("mounts[0].source: cannot check /secret/data in HDFS: ")
    assert "Permission denied" in line


def test_missing_local_files_and_archive(yarn: FakeYarn, tmp_path: Path) -> None:
    spec = spec_of(tmp_path, files={"train.py": "train.py", "conf": "hdfs:///conf/a.yaml"},
                   environment={"archive": "env.tar.gz"})
    assert errors(yarn, spec) == [
        f"files.train.py: {tmp_path / 'train.py'} does not exist",
        "files.conf: hdfs:///conf/a.yaml does not exist in HDFS; upload it first or fix "
        "the path",
        f"environment.archive: {tmp_path / 'env.tar.gz'} does not exist",
    ]


def test_archive_in_hdfs(yarn: FakeYarn, tmp_path: Path) -> None:
    spec = spec_of(tmp_path, environment={"archive": "hdfs:///envs/torch.tar.gz"})
    assert run(yarn, spec, FakeHdfs(existing={"/envs/torch.tar.gz"})) == []
    (line,) = errors(yarn, spec)
    assert line.startswith("environment.archive: hdfs:///envs/torch.tar.gz does not exist")


def test_secret_not_set(yarn: FakeYarn, tmp_path: Path) -> None:
    spec = spec_of(tmp_path, environment={"secrets": ["WANDB_API_KEY", "HF_TOKEN"]})
    with pytest.raises(PreflightError) as info:
        run(yarn, spec, environ={"HF_TOKEN": "x"})
    assert str(info.value) == "environment.secrets: WANDB_API_KEY is not set in your environment"


def test_unknown_node_labels(yarn: FakeYarn, tmp_path: Path) -> None:
    yarn.route("GET", "/ws/v1/cluster/get-node-labels",
               {"nodeLabelInfo": [{"name": "gpu", "exclusivity": True}]})
    roles = {
        "worker": {"command": "x", "node_label": "gpus"},
        "ps": {"command": "x", "tracked": False},
        "eval": {"command": "x"},
    }
    spec = spec_of(tmp_path, roles=roles, node_label="cpu", scheduling={"gang": False})
    lines = errors(yarn, spec)
    assert lines[:2] == [
        "roles.worker.node_label: no node label 'gpus' on this cluster; labels: gpu; "
        "did you mean 'gpu'?",
        # Reported once, though two roles inherit it.
        "node_label: no node label 'cpu' on this cluster; labels: gpu; did you mean 'gpu'?",
    ]


def test_label_without_labels_on_the_cluster(yarn: FakeYarn, tmp_path: Path) -> None:
    assert errors(yarn, spec_of(tmp_path, node_label="gpu")) == [
        "node_label: no node label 'gpu' on this cluster; labels: none are defined"
    ]


def test_a_label_limits_the_nodes(yarn: FakeYarn, tmp_path: Path) -> None:
    yarn.route("GET", "/ws/v1/cluster/get-node-labels", {"nodeLabelInfo": [{"name": "gpu"}]})
    yarn.route("GET", "/ws/v1/cluster/nodes", nodes_json(
        node_json(NODE_A, total=(8192, 8, 0)),
        node_json(NODE_B, total=(2048, 2, 2), labels=["gpu"])))
    spec = spec_of(tmp_path, roles={"worker": {"command": "x", "node_label": "gpu",
                                               "resources": {"memory": "4 GiB"}}})
    assert errors(yarn, spec) == [
        "roles.worker.resources.memory: 4 GiB is more than any node labelled 'gpu' offers "
        f"(largest: 2 GiB on {NODE_B}); lower it or add bigger nodes"
    ]


def test_no_running_node_is_a_warning(yarn: FakeYarn, tmp_path: Path) -> None:
    yarn.route("GET", "/ws/v1/cluster/nodes", nodes_json(
        node_json(NODE_A, state="UNHEALTHY", health="ERROR GPU 0 fell off the bus")))
    (warning,) = run(yarn, spec_of(tmp_path))
    assert "no RUNNING NodeManager" in warning
    assert "ERROR GPU 0 fell off the bus" in warning


def test_every_problem_is_reported_at_once(yarn: FakeYarn, tmp_path: Path) -> None:
    spec = spec_of(tmp_path, queue="foo", roles=worker(memory="64 GiB"),
                   mounts=[{"source": "hdfs:///x", "path": "data"}],
                   environment={"secrets": ["WANDB_API_KEY"]})
    fields = [line.split(":")[0] for line in errors(yarn, spec)]
    assert fields == ["queue", "roles.worker.resources.memory", "mounts[0].source",
                      "environment.secrets"]


def test_unreachable_rm_is_exit_3(tmp_path: Path) -> None:
    with pytest.raises(ClusterUnreachableError) as info:
        preflight(spec_of(tmp_path), ResourceManager(dead_url()), cast(Hdfs, FakeHdfs()))
    assert info.value.exit_code == 3


def test_unreachable_hdfs_is_exit_3(yarn: FakeYarn, tmp_path: Path) -> None:
    spec = spec_of(tmp_path, mounts=[{"source": "hdfs:///x", "path": "data"}])
    with pytest.raises(ClusterUnreachableError):
        run(yarn, spec, DeadHdfs())
