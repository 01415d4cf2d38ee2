"""Each task's environment: ranks, PyTorch / TensorFlow / Horovod wiring (pure).

The AppMaster calls :func:`attempt_envs` once every task of an attempt has registered its
``host:port``; ``dlsubmit validate --print-env`` calls :func:`task_env` with placeholder
endpoints. Nothing here does I/O, so what a task sees is unit-tested without a cluster.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from client.spec import Framework, JobSpec, TaskId

__all__ = ["Endpoint", "Layout", "attempt_envs", "placeholder_endpoints", "task_env"]


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
    variables are set last so a spec cannot break the wiring by accident. For every task of an
    attempt at once, use :func:`attempt_envs` (linear in the number of tasks).

    Args:
        spec: the job.
        task: the task whose environment this is.
        app_id: the YARN application id.
        attempt: 1-based attempt number.
        endpoints: ``"worker:0"`` → its registered endpoint, for every task of the attempt.
        rendezvous: the AppMaster's rendezvous endpoint (Horovod's gloo rendezvous).
    """
    layout = Layout(spec, endpoints)
    return layout.env(task, app_id=app_id, attempt=attempt, rendezvous=rendezvous)


def attempt_envs(
    spec: JobSpec,
    *,
    app_id: str,
    attempt: int,
    endpoints: Mapping[str, Endpoint],
    rendezvous: Endpoint | None = None,
) -> dict[str, dict[str, str]]:
    """Every task's environment (``"worker:0"`` → env), the layout computed once."""
    layout = Layout(spec, endpoints)
    return {
        str(task): layout.env(task, app_id=app_id, attempt=attempt, rendezvous=rendezvous)
        for task in layout.tasks
    }


class Layout:
    """Ranks, local ranks and host groups of one attempt, computed once (O(tasks))."""

    def __init__(self, spec: JobSpec, endpoints: Mapping[str, Endpoint]) -> None:
        self.spec = spec
        self.endpoints = endpoints
        self.tasks = spec.tasks()
        self.rank = {str(t): i for i, t in enumerate(self.tasks)}
        by_host: dict[str, list[str]] = {}
        for t in self.tasks:
            by_host.setdefault(endpoints[str(t)].host, []).append(str(t))
        self.local_rank: dict[str, int] = {}
        self.local_size: dict[str, int] = {}
        for names in by_host.values():
            for i, name in enumerate(names):
                self.local_rank[name], self.local_size[name] = i, len(names)
        # Tasks with the same local rank on different hosts form one "cross" ring (Horovod).
        rings: dict[int, list[str]] = {}
        for t in self.tasks:
            rings.setdefault(self.local_rank[str(t)], []).append(str(t))
        self.cross_rank = {name: i for ring in rings.values() for i, name in enumerate(ring)}
        self.cross_size = {name: len(ring) for ring in rings.values() for name in ring}
        # TF_CONFIG's cluster part is the same for every task: serialized once, not per task.
        self._tf_cluster_json = json.dumps(
            {
                role: [str(endpoints[f"{role}:{i}"]) for i in range(spec.roles[role].instances)]
                for role in spec.role_order()
            },
            separators=(",", ":"),
        )

    def env(
        self, task: TaskId, *, app_id: str, attempt: int, rendezvous: Endpoint | None
    ) -> dict[str, str]:
        """One task's environment (see :func:`task_env`)."""
        spec, name = self.spec, str(task)
        rank, world = self.rank[name], len(self.tasks)
        env: dict[str, str] = {**spec.environment.env, **spec.roles[task.role].env}
        env.update(
            DLSUBMIT_APP_ID=app_id,
            DLSUBMIT_JOB_NAME=spec.name,
            DLSUBMIT_ATTEMPT=str(attempt),
            DLSUBMIT_ROLE=task.role,
            DLSUBMIT_INDEX=str(task.index),
            DLSUBMIT_RANK=str(rank),
            DLSUBMIT_WORLD_SIZE=str(world),
        )
        local_rank, local_size = self.local_rank[name], self.local_size[name]
        if spec.framework is Framework.PYTORCH:
            master = self.endpoints[str(self.tasks[0])]
            env.update(
                MASTER_ADDR=master.host,
                MASTER_PORT=str(master.port) if master.port >= 0 else "<port>",
                WORLD_SIZE=str(world),
                RANK=str(rank),
                LOCAL_RANK=str(local_rank),
                LOCAL_WORLD_SIZE=str(local_size),
            )
        elif spec.framework is Framework.TENSORFLOW:
            place = json.dumps({"type": task.role, "index": task.index}, separators=(",", ":"))
            env["TF_CONFIG"] = f'{{"cluster":{self._tf_cluster_json},"task":{place}}}'
        elif spec.framework is Framework.HOROVOD:
            env.update(
                HOROVOD_CONTROLLER="gloo",
                HOROVOD_CPU_OPERATIONS="gloo",
                HOROVOD_RANK=str(rank),
                HOROVOD_SIZE=str(world),
                HOROVOD_LOCAL_RANK=str(local_rank),
                HOROVOD_LOCAL_SIZE=str(local_size),
                HOROVOD_CROSS_RANK=str(self.cross_rank[name]),
                HOROVOD_CROSS_SIZE=str(self.cross_size[name]),
                HOROVOD_HOSTNAME=self.endpoints[name].host,
            )
            if rendezvous is not None:
                env["HOROVOD_GLOO_RENDEZVOUS_ADDR"] = rendezvous.host
                env["HOROVOD_GLOO_RENDEZVOUS_PORT"] = str(rendezvous.port)
        return env

