"""Issue 6 on the real cluster: HDFS mounts, checkpoint resume, environments that travel.

Every job goes through the real `dlsubmit` CLI. HDFS paths live under a fresh
``/tmp/dlsubmit-it/<id>`` (removed at the end). The localization numbers come from the
NodeManagers' own logs (``.cluster/logs/nm*.log`` of the dev cluster): the time a container
spends between ``NEW to LOCALIZING`` and ``LOCALIZING to SCHEDULED``, and whether the
NodeManager downloaded the mount (``Downloading public resource``) or found it in its cache.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pytest

from client.hdfs import Hdfs
from client.record import spec_path
from tests.integration.helpers import REPO, dlsubmit, status_json, wait_for, write_job

pytestmark = pytest.mark.yarn

# The cluster's state dir holds its conf dir (HADOOP_CONF_DIR) and the daemons' logs.
NM_LOGS = Path(os.environ.get("HADOOP_CONF_DIR", str(REPO / ".cluster" / "conf"))).parent / "logs"
BIG_FILES, BIG_FILE_MB = 4, 50  # the "large" ro mount: 200 MB keeps CI fast


@pytest.fixture(scope="module")
def hdfs(cluster: dict[str, str]) -> Hdfs:
    return Hdfs()


@pytest.fixture(scope="module")
def base(hdfs: Hdfs) -> Iterator[str]:
    """A fresh HDFS directory for this module's data (world-readable, as /tmp is)."""
    path = f"/tmp/dlsubmit-it/{uuid.uuid4().hex[:10]}"
    hdfs.makedirs(path)
    yield path
    hdfs.delete(path, recursive=True)


def submit(*args: str, code: int = 0) -> str:
    res = dlsubmit("submit", *args, timeout=900)  # the dev cluster is shared: queues happen
    assert res.code == code, res.err
    return res.out.strip().splitlines()[0]


def wait_end(app_id: str, timeout: float = 600) -> dict[str, Any]:
    res = dlsubmit("wait", app_id, "--timeout", str(int(timeout)), timeout=timeout + 30)
    assert res.code in (0, 1), res.err
    return status_json(app_id)


def logs(app_id: str, *args: str) -> str:
    return dlsubmit("logs", app_id, *args).out


def user() -> str:
    return os.environ.get("HADOOP_USER_NAME") or __import__("getpass").getuser()


def put_shards(hdfs: Hdfs, path: str, shards: int = 4) -> None:
    """The example's data set: ``*.npz`` shards of train.py's synthetic problem."""
    import sys

    sys.path.insert(0, str(REPO / "examples"))
    from train import synthetic_shard

    for i in range(shards):
        x, y = synthetic_shard(0, 4096, 16, i, shards)
        buf = io.BytesIO()
        np.savez(buf, x=x, y=y)
        hdfs.write_bytes(f"{path}/shard-{i}.npz", buf.getvalue())


IMAGE_JOB = """
name: it-image
appmaster: {resources: {memory: 512 MiB}}
environment: {image: "library/python:3.11-slim"}
roles:
  worker:
    resources: {memory: 256 MiB}
    command: echo ran-on-the-host
"""

RW_DENIED_JOB = """
name: it-rw-denied
appmaster: {resources: {memory: 512 MiB}}
retry: {max_attempts: 2}
mounts:
  - {source: "hdfs://TARGET", path: out, mode: rw}
roles:
  worker:
    resources: {memory: 256 MiB}
    command: echo never-runs > out/x
"""


@pytest.fixture(scope="module")
def early_jobs(hdfs: Hdfs, base: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Jobs whose verdict is quick and needs no interaction: submitted first, checked later,
    so that they run while the other tests do (the file stays within a few minutes)."""
    tmp = tmp_path_factory.mktemp("early")
    # dfs.permissions.enabled=false on the dev cluster: a path below a FILE cannot be created.
    hdfs.write_bytes(f"{base}/a-file", b"not a directory")
    target = f"{base}/a-file/out"
    jobs: dict[str, Any] = {"rw_target": target}
    jobs["image_submitted"] = time.time()
    jobs["image"] = submit(str(write_job(tmp, IMAGE_JOB, "image.yaml")))
    jobs["rw_denied"] = submit(
        str(write_job(tmp, RW_DENIED_JOB.replace("TARGET", target), "rw.yaml"))
    )
    return jobs


@pytest.fixture(scope="module", autouse=True)
def _start_early_jobs(early_jobs: dict[str, Any]) -> None:
    """Submit the early jobs before the first test of this module runs."""


# ---------------------------------------------------------------------------------------------
# rw mounts (checkpoint resume, kill, a target that cannot be written); environment.image


def test_training_resumes_on_attempt_2_from_the_last_synced_checkpoint(
    cluster, record_app, hdfs: Hdfs, base: str
) -> None:
    put_shards(hdfs, f"{base}/resume-data")
    runs = f"{base}/resume-runs"
    app_id = record_app(
        submit(
            str(REPO / "examples" / "data_job.yaml"),
            "--set", f"mounts[0].source=hdfs://{base}/resume-data",
            "--set", f"mounts[1].source=hdfs://{runs}",
            "--set", "retry.backoff=1s",
            "--set", "appmaster.resources.memory=512",
            "--wait",
        )
    )  # fmt: skip
    st = status_json(app_id)
    assert st["state"] == "SUCCEEDED", st
    assert st["attempt"] == 2
    first = logs(app_id, "--task", "worker:0", "--attempt", "1")
    second = logs(app_id, "--task", "worker:0", "--attempt", "2")
    assert "checkpoint step 15 path out/ckpt.npz" in first, first[-2000:]
    assert "failing on purpose at step 18 (attempt 1), exit 200" in first
    assert "resumed from step 15" in second, second[-2000:]
    steps = [int(s) for s in re.findall(r"step (\d+)/30 loss", second)]
    assert steps[0] == 16 and steps[-1] == 30, steps  # continues, does not restart
    # Both attempts read the same ro data set (train.py exits 2 when --data has no shards).
    assert "backend numpy local_rank 0 attempt 2" in second

    data = hdfs.read_bytes(f"{runs}/ckpt.npz")
    assert data is not None, "the final checkpoint is not in HDFS"
    with np.load(io.BytesIO(data)) as ckpt:
        assert int(ckpt["step"]) == 30
    assert not [n for n in hdfs.list(runs) if n.endswith("._COPYING_")]


def test_files_of_a_killed_task_are_in_hdfs_up_to_the_last_sync(
    cluster, record_app, tmp_path: Path, hdfs: Hdfs, base: str
) -> None:
    out = f"{base}/killed-out"
    job = write_job(tmp_path, f"""
        name: it-kill-sync
        appmaster: {{resources: {{memory: 512 MiB}}}}
        mounts:
          - {{source: "hdfs://{out}", path: out, mode: rw, sync_interval: 2s}}
        roles:
          worker:
            resources: {{memory: 256 MiB}}
            command: |
              i=0
              while true; do
                i=$((i+1)); n=$(printf %04d $i)
                echo "file $i" > out/f$n; echo "wrote f$n"
                sleep 0.25
              done
    """)
    app_id = record_app(submit(str(job)))
    wait_for(lambda: status_json(app_id)["state"] == "RUNNING", 600, "RUNNING", interval_s=2)

    def in_hdfs(at_least: int) -> list[str]:
        names = [n for n in hdfs.list(out) if n.startswith("f") and "._COPYING_" not in n]
        return names if len(names) >= at_least else []

    first = wait_for(lambda: in_hdfs(4), 120, "a first periodic sync", interval_s=0.5)
    synced = wait_for(lambda: in_hdfs(len(first) + 8), 60, "later periodic syncs", 0.5)
    # What the task had written just before the kill, from its live log (the NodeManager's
    # copy): a container killed this way may never reach YARN's aggregated logs.
    live = logs(app_id, "--task", "worker:0")
    assert dlsubmit("kill", app_id).code == 0
    written = max(int(n) for n in re.findall(r"wrote f(\d+)", live))
    wait_for(lambda: status_json(app_id)["state"] == "KILLED", 60, "KILLED")

    after = sorted(n for n in hdfs.list(out) if not n.endswith("._COPYING_"))
    numbers = [int(n[1:]) for n in after]
    assert numbers == list(range(1, len(numbers) + 1)), after  # no holes: every sync complete
    assert len(after) >= len(synced)
    for name in after[-3:]:
        assert hdfs.read_bytes(f"{out}/{name}") == f"file {int(name[1:])}\n".encode()
    print(f"\nkilled task: {written}+ files written before the kill, {len(after)} in HDFS "
          f"after it (sync every 2 s = 8 files)")  # fmt: skip
    # What the task wrote after the last periodic sync may be lost: one interval (2 s = 8
    # files) plus the sync's own time (a WebHDFS create+close takes ~0.5 s here). The final
    # sync after SIGTERM rarely makes it: SIGKILL follows 250 ms later.
    assert written - len(after) <= 16, (written, len(after))


def test_an_rw_target_that_cannot_be_written_ends_data_access(
    cluster, record_app, early_jobs: dict[str, Any]
) -> None:
    app_id = record_app(early_jobs["rw_denied"])
    target = early_jobs["rw_target"]
    st = wait_end(app_id)
    assert st["state"] == "FAILED"
    cause = st["root_cause"]
    assert cause["category"] == "DATA_ACCESS", cause
    assert cause["retryable"] is False and st["attempt"] == 1  # not retried by `smart`
    evidence = " ".join(cause["evidence"])
    assert target in evidence and "is not a directory" in evidence, evidence
    assert f"check hdfs://{target}:" in cause["hint"], cause["hint"]
    assert "never-runs" not in logs(app_id)


def test_an_image_on_a_cluster_without_docker_ends_setup_failed_within_a_minute(
    cluster, record_app, hdfs: Hdfs, early_jobs: dict[str, Any]
) -> None:
    app_id = record_app(early_jobs["image"])
    st = wait_end(app_id)
    assert st["state"] == "FAILED"
    cause = st["root_cause"]
    assert cause["category"] == "SETUP_FAILED", cause
    evidence = " ".join(cause["evidence"])
    assert "environment.image" in evidence and "DefaultContainerExecutor" in evidence, evidence
    assert "environment.archive" in evidence  # what to do instead
    assert "ran-on-the-host" not in logs(app_id)
    diag = json.loads(dlsubmit("diagnose", app_id, "--json").out)
    assert diag["root_cause"]["category"] == "SETUP_FAILED"

    # How long it took: from submit (wall clock, includes waiting for the shared cluster to
    # start the AppMaster) and from the AppMaster's launch (what dlsubmit itself controls).
    record = hdfs.read_json(f"/user/{user()}/.dlsubmit/jobs/{app_id}/status.json")
    ended = next(e["time"] for e in record["events"] if e["message"].startswith("job FAILED"))
    with urllib.request.urlopen(
        f"http://127.0.0.1:8088/ws/v1/cluster/apps/{app_id}", timeout=10
    ) as resp:
        launched = json.load(resp)["app"]["launchTime"] / 1000
    from_submit = ended - early_jobs["image_submitted"]
    from_launch = ended - launched
    print(f"\nenvironment.image: SETUP_FAILED {from_submit:.0f} s after submit, "
          f"{from_launch:.0f} s after the AppMaster's container was launched")  # fmt: skip
    assert from_launch < 60, from_launch


# ---------------------------------------------------------------------------------------------
# ro mounts


def test_a_missing_ro_source_fails_validate_and_submit_with_exit_2(
    cluster, tmp_path: Path, base: str
) -> None:
    missing = f"hdfs://{base}/no-such-dataset"
    job = write_job(tmp_path, f"""
        name: it-missing-ro
        mounts: [{{source: "{missing}", path: data}}]
        roles: {{worker: {{command: ls data}}}}
    """)
    for command in ("validate", "submit"):
        res = dlsubmit(command, str(job))
        assert res.code == 2, (command, res.err)
        assert f"mounts[0].source: {missing} does not exist in HDFS" in res.err
        assert "Traceback" not in res.err
        assert res.out == ""


class Localization(NamedTuple):
    node: str  # which NodeManager (its log file)
    seconds: float  # NEW to LOCALIZING until LOCALIZING to SCHEDULED
    downloaded: bool  # the NodeManager downloaded the mount meanwhile (else: its cache)


def _nm_localization(app_id: str, path: str) -> dict[str, Localization]:
    """The NodeManagers' view of each worker container of ``app_id``."""
    stamp = r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) "
    cont = app_id.replace("application_", "container_")

    def when(m: re.Match[str]) -> float:
        return datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()

    result: dict[str, Localization] = {}
    for log in sorted(NM_LOGS.glob("nm*.log")):
        text = log.read_text(errors="replace")
        downloads = [
            when(m)
            for m in re.finditer(
                stamp + rf".*Downloading public resource: {{ hdfs:{re.escape(path)},", text, re.M
            )
        ]
        times: dict[tuple[str, str], float] = {}
        for m in re.finditer(
            stamp + rf".*Container ({cont}_\d+_\d+) transitioned from (\w+) to (\w+)$", text, re.M
        ):
            times[(m.group(2), f"{m.group(3)}>{m.group(4)}")] = when(m)
        for (cid, edge), start in times.items():
            if edge != "NEW>LOCALIZING" or cid.endswith("_000001"):  # the AppMaster: no mounts
                continue
            done = times.get((cid, "LOCALIZING>SCHEDULED"))
            if done is not None:
                fetched = any(start <= t <= done for t in downloads)
                result[cid] = Localization(log.stem, done - start, fetched)
    return result


def test_a_large_ro_mount_is_localized_once_per_node_then_cached(
    cluster, record_app, tmp_path: Path, hdfs: Hdfs, base: str
) -> None:
    local = tmp_path / "big"
    local.mkdir()
    for i in range(BIG_FILES):
        (local / f"part-{i}.bin").write_bytes(os.urandom(BIG_FILE_MB << 20))
    total_mb = BIG_FILES * BIG_FILE_MB
    remote = f"{base}/big"
    subprocess.run(["hdfs", "dfs", "-put", str(local), remote], check=True, timeout=300)

    job = write_job(tmp_path, f"""
        name: it-big-ro
        retry: {{max_attempts: 1}}
        appmaster: {{resources: {{memory: 512 MiB}}}}
        mounts: [{{source: "hdfs://{remote}", path: data}}]
        roles:
          worker:
            resources: {{memory: 256 MiB}}
            command: echo "mount $(du -sbL data | cut -f1) bytes at $(readlink -f data)"
    """)
    # The cache is per NodeManager: run until a run lands on a node that already has the mount
    # (the second run, when YARN picks the same node; with N nodes, at most N + 1 runs).
    first: Localization | None = None
    cached: Localization | None = None
    colds: list[Localization] = []
    for _ in range(len(list(NM_LOGS.glob("nm*.log"))) + 1):
        app_id = record_app(submit(str(job), "--wait"))
        text = logs(app_id)
        found = re.search(r"mount (\d+) bytes at (\S+)", text)
        assert found, text[-2000:]
        assert int(found.group(1)) >= total_mb << 20  # the whole directory (plus .crc files)
        where = found.group(2)
        assert "/local/filecache/" in where and "/usercache/" not in where, where  # PUBLIC
        (loc,) = wait_for(lambda a=app_id: list(_nm_localization(a, remote).values()),
                          30, "the NodeManager's log lines")  # fmt: skip
        if loc.node in {c.node for c in colds}:
            cached = loc
            break
        assert loc.downloaded, loc  # a node that never had it copies it
        colds.append(loc)
        first = first or loc
    assert first is not None and cached is not None, colds
    assert not cached.downloaded, cached  # found in the node's public cache

    started = time.monotonic()
    subprocess.run(["hdfs", "dfs", "-get", remote, str(tmp_path / "got")], check=True)
    get_s = time.monotonic() - started
    started = time.monotonic()
    subprocess.run(["hdfs", "dfs", "-test", "-d", remote], check=True)
    jvm_s = time.monotonic() - started

    print(
        f"\nro mount of {total_mb} MB, container localization (NodeManager logs):"
        f"\n  first run  {first.seconds:.2f} s on {first.node} "
        f"-> {total_mb / first.seconds:.0f} MB/s"
        + "".join(f"\n  (cold on {c.node}: {c.seconds:.2f} s)" for c in colds[1:])
        + f"\n  later run  {cached.seconds:.2f} s on {cached.node} (public cache hit, "
        f"{cached.seconds / first.seconds:.0%} of the first)"
        f"\n  hdfs dfs -get of the same data: {get_s:.2f} s -> {total_mb / get_s:.0f} MB/s "
        f"(of which ~{jvm_s:.2f} s is the JVM start of any hdfs dfs call)"
    )
    # No second download and a fraction of the time: what is left is the job's own small
    # files (~0.1-0.3 s on the shared dev cluster), whatever the size of the mount.
    cold_s = min(c.seconds for c in colds if c.node == cached.node)
    assert cached.seconds < 0.5 * cold_s, (colds, cached)


# ---------------------------------------------------------------------------------------------
# Environments and the pyarrow helper


def _make_venv(root: Path, marker: str) -> Path:
    venv = root / "venv"
    subprocess.run(
        ["python3", "-m", "venv", "--without-pip", "--system-site-packages", str(venv)],
        check=True,
    )
    site = next(venv.glob("lib/python3*/site-packages"))
    (site / "dlsubmit_it_probe.py").write_text(f'MARK = "{marker}"\n')
    return venv


def test_a_local_venv_is_packed_uploaded_once_and_used_and_the_helper_reads_parquet(
    cluster, record_app, tmp_path: Path, hdfs: Hdfs, base: str
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from client.hdfs_fs import filesystem

    # A small Parquet file written through the helper (WebHDFS here: no libhdfs on this box).
    fs = filesystem()
    table = pa.table({"x": list(range(1000)), "name": [f"row-{i}" for i in range(1000)]})
    parquet = f"{base}/table/part-0.parquet"
    pq.write_table(table, parquet, filesystem=fs)
    assert pq.read_table(parquet, filesystem=fs).equals(table)

    marker = f"probe-{uuid.uuid4().hex[:8]}"
    _make_venv(tmp_path, marker)  # tmp_path/venv, named relative to the spec below
    read = (
        "from client.hdfs_fs import filesystem; import pyarrow.parquet as pq; fs = filesystem(); "
        f"t = pq.read_table('hdfs://{parquet}', filesystem=fs); "
        "print('parquet', fs.type_name, t.num_rows, sum(t.column('x').to_pylist()))"
    )
    job = write_job(tmp_path, f"""
        name: it-venv
        retry: {{max_attempts: 1}}
        environment: {{archive: venv}}
        roles:
          worker:
            resources: {{memory: 512 MiB}}
            command: |
              python3 -c "import dlsubmit_it_probe, sys; print('probe', dlsubmit_it_probe.MARK, sys.prefix)"
              PYTHONPATH=dlsubmit.zip python3 -c "{read}"
    """)
    first = record_app(submit(str(job)))
    staged = hdfs.read_json(spec_path(user(), first))["staged"]
    blob = staged["archive"]["source"]
    assert blob.endswith("/venv.tar.gz") and blob in [f"hdfs://{p}" for p in staged["uploaded"]]
    mtime = hdfs.status(blob)["modificationTime"]

    second = record_app(submit(str(job)))  # unchanged venv: nothing packed, nothing uploaded
    staged2 = hdfs.read_json(spec_path(user(), second))["staged"]
    assert staged2["archive"]["source"] == blob
    assert staged2["uploaded"] == [] and staged2["uploaded_bytes"] == 0, staged2
    assert hdfs.status(blob)["modificationTime"] == mtime

    results: dict[str, dict[str, Any]] = {}
    threads = [
        threading.Thread(target=lambda a=a: results.__setitem__(a, wait_end(a)))
        for a in (first, second)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for app_id in (first, second):
        assert results[app_id]["state"] == "SUCCEEDED", results[app_id]
        text = logs(app_id)
        probe = re.search(r"probe (\S+) (\S+)", text)
        assert probe and probe.group(1) == marker, text[-2000:]
        assert probe.group(2).endswith("/dlsubmit-env"), probe.group(2)  # the venv's prefix
        assert "parquet py::webhdfs 1000 499500" in text, text[-2000:]
