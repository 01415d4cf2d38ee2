"""Unit tests for client.appspec: the Skein application spec of a job, built without a cluster."""

from __future__ import annotations

from typing import Any

import skein

from client.appspec import build_app_spec
from client.spec import JobSpec
from client.staging import Staged, StagedFile

STAGING = "hdfs:///user/alice/.dlsubmit/staging/blobs"
CLUSTER_ENV = {"DLSUBMIT_RM_URL": "http://rm:8088", "DLSUBMIT_WEBHDFS_URL": "http://nn:9870"}


def make_spec(**extra: Any) -> JobSpec:
    raw: dict[str, Any] = {
        "name": "mnist-ddp",
        "queue": "research",
        "tags": ["team-vision", "dlsubmit"],
        "node_label": "cpu",
        "roles": {
            "worker": {"instances": 2, "command": "python train.py",
                       "resources": {"memory": "2 GiB", "vcores": 2, "gpus": 1},
                       "node_label": "gpu"},
            "ps": {"instances": 1, "command": "python ps.py", "tracked": False},
        },
        "mounts": [
            {"source": "hdfs:///datasets/mnist", "path": "data"},
            {"source": "/datasets/vocab.tar.gz", "path": "vocab", "mode": "ro"},
            {"source": "hdfs:///user/alice/runs/mnist", "path": "out", "mode": "rw"},
        ],
        "appmaster": {"resources": {"memory": "768 MiB", "vcores": 1}},
        **extra,
    }
    return JobSpec.from_dict(raw)


def make_staged(archive: bool = False) -> Staged:
    return Staged(
        package=StagedFile(f"{STAGING}/aaa/dlsubmit.zip", "file"),
        spec=StagedFile("hdfs:///user/alice/.dlsubmit/staging/specs/s.json", "file"),
        files={"train.py": StagedFile(f"{STAGING}/bbb/train.py", "file")},
        archive=StagedFile(f"{STAGING}/ccc/env.tar.gz", "archive") if archive else None,
        uploaded_bytes=0,
    )


def build(spec: JobSpec | None = None, staged: Staged | None = None) -> dict[str, Any]:
    return build_app_spec(spec or make_spec(), staged or make_staged(), user="alice",
                          cluster_env=CLUSTER_ENV)


def test_every_role_is_a_service_the_appmaster_drives() -> None:
    app = build()
    assert set(app["services"]) == {"worker", "ps"}
    for name, service in app["services"].items():
        # Skein starts attempt 1's containers (so YARN is asked while the Python AppMaster
        # boots) and restarts nothing: the AppMaster adds later attempts' containers and judges
        # failures itself. The services' env makes a container attempt 1 of its role.
        assert service["instances"] == {"worker": 2, "ps": 1}[name]
        assert service["env"]["DLSUBMIT_ATTEMPT"] == "1"
        assert service["env"]["DLSUBMIT_ROLE"] == name
        assert "DLSUBMIT_INDEX" not in service["env"]  # from SKEIN_CONTAINER_ID
        assert service["max_restarts"] == 0
        assert service["allow_failures"] is True
        assert "-m appmaster.launcher" in service["script"]
    worker, ps = app["services"]["worker"], app["services"]["ps"]
    assert worker["resources"] == {"memory": 2048, "vcores": 2, "gpus": 1}
    assert ps["resources"] == {"memory": 1024, "vcores": 1, "gpus": 0}
    assert worker["node_label"] == "gpu"
    assert ps["node_label"] == "cpu"  # the job's default


def test_master_runs_the_python_appmaster() -> None:
    app = build()
    master = app["master"]
    assert "exec python3 -m appmaster\n" in master["script"]
    assert "dlsubmit.zip" in master["script"]  # the package is importable
    assert master["resources"] == {"memory": 768, "vcores": 1}
    assert master["env"]["DLSUBMIT_PRESTARTED"] == "1"  # the AppMaster adopts attempt 1's
    assert set(master["files"]) == {"dlsubmit.zip", "dlsubmit-spec.json"}
    assert master["files"]["dlsubmit-spec.json"]["source"].endswith("/specs/s.json")
    assert app["max_attempts"] == 2  # a lost AppMaster is replaced once and resumes


def test_node_python_runs_appmaster_and_launchers() -> None:
    app = build_app_spec(make_spec(), make_staged(), user="alice", cluster_env={},
                         node_python="/opt/py/bin/python3")
    assert "exec /opt/py/bin/python3 -m appmaster\n" in app["master"]["script"]
    assert "exec /opt/py/bin/python3 -m appmaster.launcher" in app["services"]["ps"]["script"]


def test_name_queue_and_tags() -> None:
    app = build()
    assert (app["name"], app["queue"]) == ("mnist-ddp", "research")
    assert app["tags"] == ["dlsubmit", "team-vision"]  # dlsubmit once, even if the user set it
    plain = build(make_spec(tags=[]))
    assert plain["tags"] == ["dlsubmit"]


def test_ro_mounts_are_public_localized_files_rw_mounts_are_not() -> None:
    files = build()["services"]["worker"]["files"]
    assert files["data"] == {"source": "hdfs:///datasets/mnist", "type": "file",
                             "visibility": "public"}
    assert files["vocab"] == {"source": "hdfs:///datasets/vocab.tar.gz", "type": "archive",
                              "visibility": "public"}
    assert "out" not in files  # synced by the launcher, never localized
    assert files["train.py"]["source"] == f"{STAGING}/bbb/train.py"
    assert files["train.py"]["visibility"] == "application"
    assert "dlsubmit.zip" in files


def test_env_archive_is_localized_for_every_role() -> None:
    app = build(staged=make_staged(archive=True))
    for service in app["services"].values():
        assert service["files"]["dlsubmit-env"]["type"] == "archive"
    assert "dlsubmit-env" not in build()["services"]["worker"]["files"]


def test_cluster_env_and_user_reach_master_and_tasks() -> None:
    app = build()
    for env in [app["master"]["env"], *(s["env"] for s in app["services"].values())]:
        assert env["DLSUBMIT_USER"] == "alice"
        assert env["DLSUBMIT_RM_URL"] == "http://rm:8088"
        assert env["DLSUBMIT_WEBHDFS_URL"] == "http://nn:9870"


def test_image_selects_yarns_docker_runtime_for_tasks() -> None:
    app = build(make_spec(environment={"image": "registry/torch:2.4"}))
    for service in app["services"].values():
        assert service["env"]["YARN_CONTAINER_RUNTIME_TYPE"] == "docker"
        assert service["env"]["YARN_CONTAINER_RUNTIME_DOCKER_IMAGE"] == "registry/torch:2.4"
    assert "YARN_CONTAINER_RUNTIME_TYPE" not in build()["services"]["worker"]["env"]


def test_skein_accepts_the_spec() -> None:
    app = build(make_spec(environment={"image": "registry/torch:2.4"}),
                make_staged(archive=True))

    parsed = skein.ApplicationSpec.from_dict(app)

    assert parsed.name == "mnist-ddp"
    assert parsed.queue == "research"
    assert parsed.max_attempts == 2
    assert set(parsed.tags) == {"dlsubmit", "team-vision"}
    worker = parsed.services["worker"]
    assert worker.instances == 2
    assert worker.max_restarts == 0
    assert worker.allow_failures is True
    assert (worker.resources.memory, worker.resources.vcores, worker.resources.gpus) == (2048, 2, 1)
    assert worker.node_label == "gpu"
    assert worker.files["data"].visibility == "public"
    assert worker.files["vocab"].type == "archive"
    assert parsed.master.script == app["master"]["script"]


def test_a_container_started_from_the_spec_finds_its_index_in_skein_s_name() -> None:
    from appmaster.launcher import task_index

    assert task_index({"SKEIN_CONTAINER_ID": "worker_3"}) == 3
    assert task_index({"SKEIN_CONTAINER_ID": "param_server_1"}) == 1  # role names may have _
    # The AppMaster's own requests (retries) say it, whatever Skein's numbering is by then.
    assert task_index({"DLSUBMIT_INDEX": "0", "SKEIN_CONTAINER_ID": "worker_7"}) == 0
