"""Unit tests for appmaster.rendezvous: what each task sees in its environment."""

from __future__ import annotations

import json
from typing import Any

import pytest

from appmaster.rendezvous import Endpoint, placeholder_endpoints, task_env
from client.spec import JobSpec, TaskId

APP_ID = "application_1700000000000_0007"


def make_spec(framework: str, roles: dict[str, Any], env: dict[str, str] | None = None) -> JobSpec:
    return JobSpec.from_dict({
        "name": "mnist",
        "framework": framework,
        "environment": {"env": env or {}},
        "roles": roles,
    })


# chief listed last on purpose: it still ranks first.
MIXED_ROLES = {
    "worker": {"instances": 2, "command": "python train.py"},
    "ps": {"instances": 1, "command": "python ps.py", "tracked": False},
    "chief": {"instances": 1, "command": "python train.py"},
}
ORDER = ["chief:0", "worker:0", "worker:1", "ps:0"]


def endpoints(hosts: dict[str, str]) -> dict[str, Endpoint]:
    return {task: Endpoint(host, 20000 + i) for i, (task, host) in enumerate(hosts.items())}


def env_of(spec: JobSpec, task: str, eps: dict[str, Endpoint], **kw: Any) -> dict[str, str]:
    return task_env(spec, TaskId.parse(task), app_id=APP_ID, attempt=2, endpoints=eps, **kw)


def test_ranks_follow_jobspec_order_chief_first() -> None:
    spec = make_spec("generic", MIXED_ROLES)
    eps = endpoints(dict.fromkeys(ORDER, "node-a"))
    for rank, task in enumerate(ORDER):
        env = env_of(spec, task, eps)
        assert env["DLSUBMIT_RANK"] == str(rank), task
        assert env["DLSUBMIT_WORLD_SIZE"] == "4"
        role, index = task.split(":")
        assert (env["DLSUBMIT_ROLE"], env["DLSUBMIT_INDEX"]) == (role, index)
        assert env["DLSUBMIT_APP_ID"] == APP_ID
        assert env["DLSUBMIT_JOB_NAME"] == "mnist"
        assert env["DLSUBMIT_ATTEMPT"] == "2"


def test_generic_gets_no_framework_wiring() -> None:
    spec = make_spec("generic", MIXED_ROLES)
    env = env_of(spec, "worker:0", endpoints(dict.fromkeys(ORDER, "node-a")))
    assert not {"MASTER_ADDR", "RANK", "TF_CONFIG", "HOROVOD_RANK"} & set(env)


def test_pytorch_master_is_rank_0_and_local_ranks_are_per_host() -> None:
    spec = make_spec("pytorch", MIXED_ROLES)
    hosts = {"chief:0": "node-a", "worker:0": "node-b", "worker:1": "node-a", "ps:0": "node-a"}
    eps = endpoints(hosts)
    expected_local = {"chief:0": (0, 3), "worker:0": (0, 1), "worker:1": (1, 3), "ps:0": (2, 3)}
    for rank, task in enumerate(ORDER):
        env = env_of(spec, task, eps)
        assert (env["MASTER_ADDR"], env["MASTER_PORT"]) == ("node-a", "20000"), task
        assert (env["RANK"], env["WORLD_SIZE"]) == (str(rank), "4")
        local_rank, local_size = expected_local[task]
        assert (env["LOCAL_RANK"], env["LOCAL_WORLD_SIZE"]) == (str(local_rank), str(local_size))


def test_pytorch_master_follows_the_endpoint_of_rank_0() -> None:
    spec = make_spec("pytorch", {"worker": {"instances": 2, "command": "python train.py"}})
    eps = {"worker:0": Endpoint("10.0.0.5", 41000), "worker:1": Endpoint("10.0.0.6", 42000)}
    env = env_of(spec, "worker:1", eps)
    assert (env["MASTER_ADDR"], env["MASTER_PORT"]) == ("10.0.0.5", "41000")


def test_tf_config_lists_every_role_and_this_task() -> None:
    spec = make_spec("tensorflow", MIXED_ROLES)
    hosts = {"chief:0": "node-a", "worker:0": "node-b", "worker:1": "node-c", "ps:0": "node-d"}
    eps = endpoints(hosts)

    config = json.loads(env_of(spec, "worker:1", eps)["TF_CONFIG"])

    assert config["cluster"] == {
        "chief": ["node-a:20000"],
        "worker": ["node-b:20001", "node-c:20002"],
        "ps": ["node-d:20003"],
    }
    assert config["task"] == {"type": "worker", "index": 1}
    assert json.loads(env_of(spec, "ps:0", eps)["TF_CONFIG"])["task"] == {"type": "ps", "index": 0}
    assert "MASTER_ADDR" not in env_of(spec, "worker:1", eps)


def test_horovod_ranks_local_and_cross_rings() -> None:
    spec = make_spec("horovod", {"worker": {"instances": 3, "command": "python train.py"}})
    eps = endpoints({"worker:0": "node-a", "worker:1": "node-a", "worker:2": "node-b"})
    rendezvous = Endpoint("am-host", 5555)
    expected = {  # rank, local rank, local size, cross rank, cross size, hostname
        "worker:0": ("0", "0", "2", "0", "2", "node-a"),
        "worker:1": ("1", "1", "2", "0", "1", "node-a"),
        "worker:2": ("2", "0", "1", "1", "2", "node-b"),
    }
    for task, values in expected.items():
        env = env_of(spec, task, eps, rendezvous=rendezvous)
        got = tuple(env[k] for k in ("HOROVOD_RANK", "HOROVOD_LOCAL_RANK", "HOROVOD_LOCAL_SIZE",
                                     "HOROVOD_CROSS_RANK", "HOROVOD_CROSS_SIZE",
                                     "HOROVOD_HOSTNAME"))
        assert got == values, task
        assert env["HOROVOD_SIZE"] == "3"
        assert env["HOROVOD_CONTROLLER"] == "gloo"
        assert env["HOROVOD_GLOO_RENDEZVOUS_ADDR"] == "am-host"
        assert env["HOROVOD_GLOO_RENDEZVOUS_PORT"] == "5555"


def test_horovod_without_rendezvous_sets_no_rendezvous_address() -> None:
    spec = make_spec("horovod", {"worker": {"instances": 1, "command": "python train.py"}})
    env = env_of(spec, "worker:0", {"worker:0": Endpoint("node-a", 1)})
    assert "HOROVOD_GLOO_RENDEZVOUS_ADDR" not in env
    assert env["HOROVOD_RANK"] == "0"


def test_user_env_role_over_job_and_dlsubmit_wiring_wins() -> None:
    roles = {"worker": {"instances": 2, "command": "python train.py",
                        "env": {"OMP_NUM_THREADS": "8", "MASTER_PORT": "1"}}}
    spec = make_spec("pytorch", roles,
                     env={"OMP_NUM_THREADS": "4", "RANK": "99", "WANDB_MODE": "offline"})
    eps = {"worker:0": Endpoint("node-a", 29500), "worker:1": Endpoint("node-b", 29501)}

    env = env_of(spec, "worker:1", eps)

    assert env["WANDB_MODE"] == "offline"  # job-wide variable passes through
    assert env["OMP_NUM_THREADS"] == "8"  # the role's value beats the job's
    assert env["RANK"] == "1"  # dlsubmit's wiring beats both
    assert env["MASTER_PORT"] == "29500"


@pytest.mark.parametrize("framework", ["generic", "pytorch", "tensorflow", "horovod"])
def test_placeholder_endpoints_cover_every_task(framework: str) -> None:
    spec = make_spec(framework, MIXED_ROLES)
    eps = placeholder_endpoints(spec)
    assert set(eps) == set(ORDER)
    env = env_of(spec, "worker:1", eps)  # what validate --print-env shows
    assert env["DLSUBMIT_RANK"] == "2"
    if framework == "pytorch":
        assert env["MASTER_ADDR"] == "<host of chief:0>"
