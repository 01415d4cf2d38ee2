"""Each task's environment: ranks, PyTorch / TensorFlow / Horovod wiring (pure).

The AppMaster calls :func:`task_env` once every task of an attempt has registered its
``host:port``; ``dlsubmit validate --print-env`` calls it with placeholder endpoints. Nothing
here does I/O, so what a task sees is unit-tested without a cluster.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from client.spec import Framework, JobSpec, TaskId

__all__ = ["Endpoint", "placeholder_endpoints", "task_env"]


@dataclass(frozen=True)
class Endpoint:
    """Where a task listens: the host its container runs on and the port its launcher reserved."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port if self.port >= 0 else '<port>'}"


def placeholder_endpoints(spec: JobSpec) -> dict[str, Endpoint]:
    """Stand-in endpoints for ``validate --print-env`` (hosts are only known at run time)."""
    return {str(t): Endpoint(f"<host of {t}>", -1) for t in spec.tasks()}


def task_env(
    spec: JobSpec,
    task: TaskId,
    *,
    app_id: str,
    attempt: int,
    endpoints: Mapping[str, Endpoint],
    rendezvous: Endpoint | None = None,
) -> dict[str, str]:
    """The environment dlsubmit gives ``task`` (JOBSPEC.md, "What a task sees").

    User variables (``environment.env``, then the role's ``env``) come first; dlsubmit's own
    variables are set last so a spec cannot break the wiring by accident.

    Args:
        spec: the job.
        task: the task whose environment this is.
        app_id: the YARN application id.
        attempt: 1-based attempt number.
        endpoints: ``"worker:0"`` → its registered endpoint, for every task of the attempt.
        rendezvous: the AppMaster's rendezvous endpoint (Horovod's gloo rendezvous).
    """
    tasks = spec.tasks()
    rank = tasks.index(task)
    env: dict[str, str] = {**spec.environment.env, **spec.roles[task.role].env}
    env.update(
        DLSUBMIT_APP_ID=app_id,
        DLSUBMIT_JOB_NAME=spec.name,
        DLSUBMIT_ATTEMPT=str(attempt),
        DLSUBMIT_ROLE=task.role,
        DLSUBMIT_INDEX=str(task.index),
        DLSUBMIT_RANK=str(rank),
        DLSUBMIT_WORLD_SIZE=str(len(tasks)),
    )
    local_rank, local_size = _local_rank(tasks, task, endpoints)
    if spec.framework is Framework.PYTORCH:
        master = endpoints[str(tasks[0])]
        env.update(
            MASTER_ADDR=master.host,
            MASTER_PORT=str(master.port) if master.port >= 0 else "<port>",
            WORLD_SIZE=str(len(tasks)),
            RANK=str(rank),
            LOCAL_RANK=str(local_rank),
            LOCAL_WORLD_SIZE=str(local_size),
        )
    elif spec.framework is Framework.TENSORFLOW:
        env["TF_CONFIG"] = tf_config(spec, task, endpoints)
    elif spec.framework is Framework.HOROVOD:
        env.update(_horovod_env(tasks, task, rank, local_rank, local_size, endpoints, rendezvous))
    return env


def tf_config(spec: JobSpec, task: TaskId, endpoints: Mapping[str, Endpoint]) -> str:
    """TensorFlow's ``TF_CONFIG``: every role's ``host:port`` list, and this task's place."""
    cluster = {
        role: [str(endpoints[f"{role}:{i}"]) for i in range(spec.roles[role].instances)]
        for role in spec.role_order()
    }
    return json.dumps(
        {"cluster": cluster, "task": {"type": task.role, "index": task.index}},
        separators=(",", ":"),
    )


def _local_rank(
    tasks: list[TaskId], task: TaskId, endpoints: Mapping[str, Endpoint]
) -> tuple[int, int]:
    host = endpoints[str(task)].host
    same_host = [t for t in tasks if endpoints[str(t)].host == host]
    return same_host.index(task), len(same_host)


def _horovod_env(
    tasks: list[TaskId],
    task: TaskId,
    rank: int,
    local_rank: int,
    local_size: int,
    endpoints: Mapping[str, Endpoint],
    rendezvous: Endpoint | None,
) -> dict[str, str]:
    hosts: list[str] = []
    for t in tasks:
        host = endpoints[str(t)].host
        if host not in hosts:
            hosts.append(host)
    host = endpoints[str(task)].host
    # Tasks with the same local rank on different hosts form one "cross" ring.
    cross = [t for t in tasks if _local_rank(tasks, t, endpoints)[0] == local_rank]
    env = {
        "HOROVOD_CONTROLLER": "gloo",
        "HOROVOD_CPU_OPERATIONS": "gloo",
        "HOROVOD_RANK": str(rank),
        "HOROVOD_SIZE": str(len(tasks)),
        "HOROVOD_LOCAL_RANK": str(local_rank),
        "HOROVOD_LOCAL_SIZE": str(local_size),
        "HOROVOD_CROSS_RANK": str(cross.index(task)),
        "HOROVOD_CROSS_SIZE": str(len(cross)),
        "HOROVOD_HOSTNAME": host,
    }
    if rendezvous is not None:
        env["HOROVOD_GLOO_RENDEZVOUS_ADDR"] = rendezvous.host
        env["HOROVOD_GLOO_RENDEZVOUS_PORT"] = str(rendezvous.port)
    return env
