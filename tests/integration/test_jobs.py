"""Issue 3 on the real cluster: a distributed job end to end through the `dlsubmit` CLI."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from tests.integration.helpers import REPO, dlsubmit, rm_app, status_json, wait_for, write_job

pytestmark = pytest.mark.yarn


def test_example_ddp_job_succeeds_with_distinct_ranks_and_falling_loss(cluster, record_app) -> None:
    res = dlsubmit("submit", str(REPO / "examples" / "job.yaml"), "--wait")
    app_id = record_app(res.out.strip().splitlines()[0])
    assert res.code == 0, res.err
    assert app_id.startswith("application_")

    logs = dlsubmit("logs", app_id)
    assert logs.code == 0, logs.err
    starts = re.findall(r"^\[(worker:\d)\] rank (\d) world 2 master (\S+)$", logs.out, re.M)
    assert sorted(r for _, r, _ in starts) == ["0", "1"], logs.out[-2000:]
    assert len({m for _, _, m in starts}) == 1, "every worker must see the same MASTER_ADDR:PORT"
    final = re.search(r"\[worker:0\] rank 0 .* final_loss (\S+) first_loss (\S+)", logs.out)
    assert final, logs.out[-2000:]
    assert float(final.group(1)) < 0.6 * float(final.group(2))

    st = status_json(app_id)
    assert st["state"] == "SUCCEEDED"
    assert rm_app(app_id)["finalStatus"] == "SUCCEEDED"
    assert rm_app(app_id)["progress"] == 100.0


def test_tensorflow_tasks_see_tf_config_with_every_real_endpoint(cluster, record_app) -> None:
    res = dlsubmit("submit", str(REPO / "examples" / "tf_job.yaml"), "--wait")
    app_id = record_app(res.out.strip().splitlines()[0])
    assert res.code == 0, res.err
    logs = dlsubmit("logs", app_id).out
    configs = {
        task: json.loads(cfg)
        for task, cfg in re.findall(r"^\[(\w+:\d)\] TF_CONFIG=(.*)$", logs, re.M)
    }
    assert set(configs) == {"chief:0", "worker:0", "worker:1"}, logs[-2000:]
    tasks = status_json(app_id)["tasks"]
    real = {name: f"{t['host']}:{t['port']}" for name, t in tasks.items()}
    for task, cfg in configs.items():
        role, index = task.split(":")
        assert cfg["task"] == {"type": role, "index": int(index)}
        assert cfg["cluster"] == {
            "chief": [real["chief:0"]],
            "worker": [real["worker:0"], real["worker:1"]],
        }


def test_failing_command_fails_after_max_attempts_and_names_the_task(
    cluster, record_app, tmp_path: Path
) -> None:
    job = write_job(
        tmp_path,
        """
        name: exit-three
        retry: {max_attempts: 2, policy: always, backoff: 1s}
        roles:
          worker:
            instances: 2
            resources: {memory: 256 MiB}
            command: |
              if [ "$DLSUBMIT_INDEX" = 1 ]; then echo "about to fail" >&2; echo "the last words" >&2; exit 3; fi
              sleep 60
    """,
    )
    res = dlsubmit("submit", str(job), "--wait")
    app_id = record_app(res.out.strip().splitlines()[0])
    assert res.code == 1, res.err
    st = status_json(app_id)
    assert st["state"] == "FAILED"
    assert st["attempt"] == 2
    root = st["root_cause"]
    assert root["task"] == "worker:1" and root["exit_code"] == 3
    human = dlsubmit("status", app_id).out
    assert "worker:1" in human and "exit 3" in human and "the last words" in human
    # Skein leaves a FAILED app registered while YARN attempts remain; the second AppMaster
    # repeats the outcome, so YARN's final diagnostics come a few seconds after ours.
    app = wait_for(
        lambda: (a := rm_app(app_id))["state"] in ("FINISHED", "FAILED") and a,
        120,
        "YARN to finish the application",
    )
    diag = app["diagnostics"]
    assert "worker:1" in diag and "(exit 3)" in diag and "the last words" in diag


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            "roles: {worker: {instnaces: 2, command: 'true'}}",
            "roles.worker.instnaces: unknown field; did you mean 'instances'?",
        ),
        (
            "roles: {worker: {command: 'true', resources: {gpus: -1}}}",
            "roles.worker.resources.gpus",
        ),
        ("queue: nosuchqueue\nroles: {worker: {command: 'true'}}", "queue: no queue 'nosuchqueue'"),
        (
            "roles: {worker: {command: 'true', resources: {memory: 64 GiB}}}",
            "roles.worker.resources.memory",
        ),
    ],
    ids=["unknown-key", "negative-gpus", "unknown-queue", "too-much-memory"],
)
def test_bad_specs_exit_2_naming_the_field(
    cluster, tmp_path: Path, spec: str, message: str
) -> None:
    job = tmp_path / "bad.yaml"
    job.write_text("name: bad\n" + spec + "\n")
    res = dlsubmit("submit", str(job))
    assert res.code == 2, (res.out, res.err)
    assert message in res.err
    assert "Traceback" not in res.err
    assert res.out == ""


def test_kill_logs_while_running_and_clone(cluster, record_app, tmp_path: Path) -> None:
    job = write_job(
        tmp_path,
        """
        name: sleeper
        roles:
          worker:
            instances: 1
            resources: {memory: 256 MiB}
            command: echo "hello from $DLSUBMIT_ROLE:$DLSUBMIT_INDEX attempt $DLSUBMIT_ATTEMPT"; sleep 600
    """,
    )
    res = dlsubmit("submit", str(job))
    assert res.code == 0, res.err
    app_id = record_app(res.out.strip())
    wait_for(lambda: status_json(app_id)["state"] == "RUNNING", 120, "RUNNING")
    live = wait_for(
        lambda: "hello from worker:0" in (out := dlsubmit("logs", app_id).out) and out,
        60,
        "live log line",
    )
    assert "[worker:0] hello from worker:0 attempt 1" in live

    started = time.monotonic()
    assert dlsubmit("kill", app_id).code == 0
    wait_for(lambda: status_json(app_id)["state"] == "KILLED", 30, "KILLED")
    assert time.monotonic() - started < 30
    assert dlsubmit("wait", app_id).code == 1
    after = wait_for(
        lambda: "hello from worker:0" in (out := dlsubmit("logs", app_id).out) and out,
        90,
        "logs after the end",
    )
    assert "[worker:0] hello from worker:0" in after

    cloned = dlsubmit("clone", app_id, "--set", "roles.worker.command=echo cloned-run")
    assert cloned.code == 0, cloned.err
    new_id = record_app(cloned.out.strip())
    assert new_id != app_id
    assert dlsubmit("wait", new_id, "--timeout", "240").code == 0
    assert "cloned-run" in dlsubmit("logs", new_id).out


def test_unknown_application_exits_4(cluster) -> None:
    res = dlsubmit("status", "application_1_0001")
    assert res.code == 4, res.err


def test_secrets_reach_tasks_but_are_not_stored(cluster, record_app, tmp_path: Path) -> None:
    import hashlib

    from client.hdfs import Hdfs
    from client.record import job_dir

    value = "s3cr3t-" + tmp_path.name[-8:]
    job = write_job(tmp_path, """
        name: secret-job
        environment: {secrets: [TEST_SECRET_TOKEN]}
        roles:
          worker:
            resources: {memory: 256 MiB}
            command: 'echo "token sha256 $(printf %s "$TEST_SECRET_TOKEN" | sha256sum | cut -c1-16)"'
    """)
    res = dlsubmit("submit", str(job), "--wait", env={"TEST_SECRET_TOKEN": value})
    app_id = record_app(res.out.strip().splitlines()[0])
    assert res.code == 0, res.err
    digest = hashlib.sha256(value.encode()).hexdigest()[:16]
    assert f"token sha256 {digest}" in dlsubmit("logs", app_id).out
    hdfs = Hdfs()
    import getpass

    stored = b"".join(
        hdfs.read_bytes(f"{job_dir(getpass.getuser(), app_id)}/{rel}") or b""
        for rel, _ in hdfs.walk_files(job_dir(getpass.getuser(), app_id))
    )
    assert stored and value.encode() not in stored
    assert value not in res.err and value not in res.out
    # What is kept for an AppMaster restart is sealed and readable by the owner only.
    from client.record import secrets_path

    sealed = hdfs.status(secrets_path(getpass.getuser(), app_id))
    assert sealed is not None and sealed["permission"] == "600", sealed


def test_missing_secret_is_refused_before_submit(cluster, tmp_path: Path) -> None:
    job = write_job(tmp_path, """
        name: secret-missing
        environment: {secrets: [TEST_UNSET_SECRET_TOKEN]}
        roles: {worker: {command: 'true'}}
    """)
    res = dlsubmit("submit", str(job))
    assert res.code == 2
    assert "environment.secrets" in res.err and "TEST_UNSET_SECRET_TOKEN" in res.err


def test_dead_cluster_is_one_clear_error_with_exit_3(cluster) -> None:
    dead = {"DLSUBMIT_RM_URL": "http://127.0.0.1:1", "DLSUBMIT_WEBHDFS_URL": "http://127.0.0.1:2"}
    res = dlsubmit("submit", str(REPO / "examples" / "job.yaml"), env=dead, timeout=60)
    assert res.code == 3, res.err
    assert "unreachable" in res.err and "Traceback" not in res.err and res.out == ""


def test_validate_print_env_shows_each_task_environment(cluster) -> None:
    res = dlsubmit("validate", str(REPO / "examples" / "job.yaml"), "--print-env")
    assert res.code == 0, res.err
    assert "[worker:0]" in res.out and "[worker:1]" in res.out
    assert "RANK=1" in res.out and "MASTER_ADDR=<host of worker:0>" in res.out
