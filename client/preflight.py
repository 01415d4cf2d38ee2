"""Checks of a job spec against the live cluster, run before anything is uploaded.

:func:`preflight` asks the ResourceManager for its queues, nodes and node labels, HDFS for the
read-only mount sources, and the local machine for the files to ship and the secrets to pass.
It reports every problem at once, one line each, starting with the spec field to change::

    queue: no queue 'reserch' on this cluster; queues are default, research; did you mean ...
    roles.worker.resources.memory: 64 GiB is more than any node offers (largest: 4 GiB on ...
    mounts[0].source: hdfs:///x does not exist in HDFS; upload it first (hdfs dfs -put ...) ...

Problems raise one :class:`~client.errors.PreflightError` (exit 2); a cluster that does not
answer raises :class:`~client.errors.ClusterUnreachableError` (exit 3). What may still work
but probably will not as hoped comes back as warnings.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from client.errors import HdfsError, PreflightError
from client.hdfs import Hdfs
from client.rm import NodeInfo, QueueInfo, Resource, ResourceManager
from client.spec import JobSpec, MountMode, Resources
from client.units import format_duration_s, format_size_mib

__all__ = ["ClusterView", "preflight"]

_HDFS_SCHEME = "hdfs://"


@dataclass(frozen=True)
class ClusterView:
    """What the checks need from the ResourceManager, read once.

    Attributes:
        queues: leaf queues by name.
        nodes: every NodeManager the RM lists.
        labels: the cluster's node labels.
    """

    queues: Mapping[str, QueueInfo]
    nodes: tuple[NodeInfo, ...]
    labels: tuple[str, ...]

    @classmethod
    def read(cls, rm: ResourceManager) -> ClusterView:
        """Ask the RM (queues first: the cheapest proof it is up).

        Raises:
            ClusterUnreachableError: the RM does not answer.
        """
        return cls(rm.queues(), tuple(rm.nodes()), tuple(rm.node_labels()))

    @property
    def running_nodes(self) -> list[NodeInfo]:
        """Nodes that can take containers now (the RM marks unhealthy ones UNHEALTHY)."""
        return [node for node in self.nodes if node.state == "RUNNING"]

    @property
    def has_gpus(self) -> bool:
        """Whether any node reports the ``yarn.io/gpu`` resource at all."""
        return any(node.total.gpus is not None for node in self.nodes)

    def find_queue(self, name: str) -> QueueInfo | None:
        """The leaf queue called ``name`` (short name or full path)."""
        if name in self.queues:
            return self.queues[name]
        return next((q for q in self.queues.values() if name in (q.path, q.name)), None)


@dataclass
class _Report:
    """Problems and warnings collected by the checks."""

    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def warn(self, message: str) -> None:
        """Add a warning once (several checks can notice the same thing)."""
        if message not in self.warnings:
            self.warnings.append(message)


@dataclass(frozen=True)
class _Request:
    """One container size the job asks for, and the spec field that sets it."""

    path: str  # roles.worker.resources / appmaster.resources
    resources: Resources
    node_label: str


def preflight(
    spec: JobSpec,
    rm: ResourceManager,
    hdfs: Hdfs,
    environ: Mapping[str, str] | None = None,
) -> list[str]:
    """Check that ``spec`` can run on the cluster, before anything is uploaded.

    Checks: the queue exists and is RUNNING; every role's and the AppMaster's container fits
    the queue's maximum allocation and the largest RUNNING node (with its node label, if any);
    ``yarn.io/gpu`` exists when GPUs are asked for; node labels exist; with
    ``scheduling.gang`` the whole gang fits the cluster at once; read-only mount sources
    exist in HDFS; local ``files`` and a local ``environment.archive`` exist; every
    ``environment.secrets`` name is set in the submitter's environment.

    Args:
        spec: the validated spec.
        rm: the cluster's ResourceManager.
        hdfs: the cluster's HDFS.
        environ: where secrets are read from (default ``os.environ``).

    Returns:
        Warnings: things that may make the job wait or behave unexpectedly.

    Raises:
        PreflightError: one line per problem, each starting with the spec field.
        ClusterUnreachableError: the ResourceManager or the NameNode does not answer.
    """
    cluster = ClusterView.read(rm)
    report = _Report()
    queue = _check_queue(spec, cluster, report)
    _check_labels(spec, cluster, report)
    before = len(report.errors)
    for request in _requests(spec):
        _check_fits(request, queue, cluster, report)
    if len(report.errors) == before:  # with a container that never fits, the gang is moot
        _check_gang(spec, queue, cluster, report)
    _check_mounts(spec, hdfs, report)
    _check_local_paths(spec, hdfs, report)
    _check_secrets(spec, os.environ if environ is None else environ, report)
    if report.errors:
        raise PreflightError("\n".join(report.errors))
    return report.warnings


# --------------------------------------------------------------------------------------------
# Queue and labels.


def _check_queue(spec: JobSpec, cluster: ClusterView, report: _Report) -> QueueInfo | None:
    queue = cluster.find_queue(spec.queue)
    names = sorted(cluster.queues)
    if queue is None:
        message = f"queue: no queue {spec.queue!r} on this cluster; queues are {', '.join(names)}"
        report.errors.append(message + _suggest(spec.queue, names))
        return None
    if queue.state != "RUNNING":
        running = [q.name for q in cluster.queues.values() if q.state == "RUNNING"]
        report.errors.append(
            f"queue: queue {queue.name!r} is {queue.state} and accepts no jobs; use a running "
            f"queue ({', '.join(sorted(running)) or 'none'}) or ask the cluster admin"
        )
    return queue


def _check_labels(spec: JobSpec, cluster: ClusterView, report: _Report) -> None:
    reported: set[str] = set()
    for name, role in spec.roles.items():
        label = spec.node_label_for(name)
        if not label or label in cluster.labels:
            continue
        where = f"roles.{name}.node_label" if role.node_label is not None else "node_label"
        if where in reported:
            continue  # the job-wide label: reported once
        reported.add(where)
        known = ", ".join(cluster.labels) if cluster.labels else "none are defined"
        report.errors.append(
            f"{where}: no node label {label!r} on this cluster; labels: {known}"
            + _suggest(label, cluster.labels)
        )


def _suggest(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


# --------------------------------------------------------------------------------------------
# Container sizes.


def _requests(spec: JobSpec) -> list[_Request]:
    requests = [
        _Request(f"roles.{name}.resources", role.resources, spec.node_label_for(name))
        for name, role in spec.roles.items()
    ]
    # The AppMaster gets no node label (JOBSPEC.md: node_label is "not the AM").
    requests.append(_Request("appmaster.resources", spec.appmaster.resources, ""))
    return requests


def _candidates(request: _Request, cluster: ClusterView) -> list[NodeInfo]:
    """The nodes a request can go to (all RUNNING ones when its label is itself an error)."""
    nodes = cluster.running_nodes
    if request.node_label and request.node_label in cluster.labels:
        nodes = [node for node in nodes if request.node_label in node.node_labels]
    return nodes


def _check_fits(
    request: _Request, queue: QueueInfo | None, cluster: ClusterView, report: _Report
) -> None:
    """The request fits one node and the queue's maximum allocation, dimension by dimension."""
    res = request.resources
    if res.gpus > 0 and not cluster.has_gpus:
        report.errors.append(
            f"{request.path}.gpus: this cluster has no yarn.io/gpu resource; "
            "set gpus: 0 or enable YARN's GPU plugin"
        )
        return
    nodes = _candidates(request, cluster)
    if not nodes:
        report.warn(_no_nodes(request, cluster))
    errors = []
    for key, amount, show in _dimensions(res):
        if key == "gpus" and amount == 0:
            continue
        message = _node_limit(request, key, amount, show, nodes) or _queue_limit(
            request, key, amount, show, queue
        )
        if message:
            errors.append(message)
    if nodes and not errors and not any(_fits(res, node.total) for node in nodes):
        errors.append(
            f"{request.path}: no single node offers {_describe(res)} together; "
            f"nodes offer {_node_list(nodes)}; lower the request or add bigger nodes"
        )
    report.errors += errors


def _dimensions(res: Resources) -> list[tuple[str, int, str]]:
    return [
        ("memory", res.memory_mib, format_size_mib(res.memory_mib)),
        ("vcores", res.vcores, str(res.vcores)),
        ("gpus", res.gpus, str(res.gpus)),
    ]


def _amount(resource: Resource, key: str) -> int | None:
    if key == "memory":
        return resource.memory_mib
    return resource.vcores if key == "vcores" else resource.gpus


def _show(key: str, amount: int) -> str:
    return format_size_mib(amount) if key == "memory" else str(amount)


def _node_limit(
    request: _Request, key: str, amount: int, show: str, nodes: list[NodeInfo]
) -> str | None:
    if not nodes:
        return None
    largest = max(nodes, key=lambda node: _amount(node.total, key) or 0)
    offered = _amount(largest.total, key) or 0
    if amount <= offered:
        return None
    labelled = [node for node in nodes if request.node_label in node.node_labels]
    where = f" labelled {request.node_label!r}" if request.node_label and labelled else ""
    return (
        f"{request.path}.{key}: {show} is more than any node{where} offers "
        f"(largest: {_show(key, offered)} on {largest.id}); lower it or add bigger nodes"
    )


def _queue_limit(
    request: _Request, key: str, amount: int, show: str, queue: QueueInfo | None
) -> str | None:
    if queue is None or queue.maximum_allocation is None:
        return None
    limit = _amount(queue.maximum_allocation, key)
    if limit is None or amount <= limit:
        return None
    return (
        f"{request.path}.{key}: {show} is more than queue {queue.name!r} allows for one "
        f"container (maximum allocation: {_show(key, limit)}); lower it or use another queue"
    )


def _no_nodes(request: _Request, cluster: ClusterView) -> str:
    if request.node_label and request.node_label in cluster.labels:
        return (
            f"{request.path}: no RUNNING node has label {request.node_label!r}; "
            "the job will wait until one does"
        )
    others = [f"{n.id} {n.state}" + (f" ({n.health_report})" if n.health_report else "")
              for n in cluster.nodes]
    return (
        "the cluster has no RUNNING NodeManager"
        + (f" ({'; '.join(others)})" if others else "")
        + "; the job will wait until one joins"
    )


def _fits(res: Resources, offer: Resource) -> bool:
    return (
        res.memory_mib <= offer.memory_mib
        and res.vcores <= offer.vcores
        and res.gpus <= (offer.gpus or 0)
    )


def _describe(res: Resources | Resource) -> str:
    """``4 GiB and 2 vcores``, ``4 GiB, 2 vcores and 1 GPU``."""
    gpus = res.gpus or 0
    parts = [format_size_mib(res.memory_mib), f"{res.vcores} vcore{'s' if res.vcores != 1 else ''}"]
    if gpus:
        parts.append(f"{gpus} GPU{'s' if gpus != 1 else ''}")
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def _node_list(nodes: list[NodeInfo]) -> str:
    return "; ".join(f"{_describe(node.total)} on {node.id}" for node in nodes[:5])


# --------------------------------------------------------------------------------------------
# The gang.


def _check_gang(
    spec: JobSpec, queue: QueueInfo | None, cluster: ClusterView, report: _Report
) -> None:
    """With gang scheduling every container must fit at once, or the attempt never starts."""
    if not spec.scheduling.gang or not cluster.running_nodes:
        return
    containers = [spec.appmaster.resources] + [
        role.resources for role in spec.roles.values() for _ in range(role.instances)
    ]
    need = Resource(
        sum(r.memory_mib for r in containers),
        sum(r.vcores for r in containers),
        # Without yarn.io/gpu the GPU request is already an error of its own.
        sum(r.gpus for r in containers) if cluster.has_gpus else 0,
    )
    nodes = cluster.running_nodes
    total = Resource(
        sum(n.total.memory_mib for n in nodes),
        sum(n.total.vcores for n in nodes),
        sum(n.total.gpus or 0 for n in nodes),
    )
    limits = [("the cluster has", total)]
    if queue is not None and queue.max_effective is not None:
        limits.append((f"queue {queue.name!r} can hold at most", queue.max_effective))
    timeout = format_duration_s(spec.scheduling.allocation_timeout_s)
    what = f"appmaster + {spec.world_size} task{'s' if spec.world_size != 1 else ''}"
    for where, limit in limits:
        if not _covers(limit, need):
            report.errors.append(
                f"scheduling.gang: the gang needs {_describe(need)} at once ({what}) but "
                f"{where} {_describe(limit)} in all; it would wait for "
                f"scheduling.allocation_timeout ({timeout}) and fail with ALLOCATION_TIMEOUT; "
                "lower roles.*.instances or resources, or set scheduling.gang: false"
            )
            return
    if not _packs(containers, nodes):
        report.warn(
            f"scheduling.gang: the {what} ({_describe(need)}) do not pack onto the "
            f"{len(nodes)} RUNNING node(s) ({_node_list(nodes)}) even when the cluster is idle; "
            f"the attempt may wait for scheduling.allocation_timeout ({timeout})"
        )


def _covers(limit: Resource, need: Resource) -> bool:
    gpus_ok = (need.gpus or 0) <= (limit.gpus if limit.gpus is not None else 1 << 62)
    return need.memory_mib <= limit.memory_mib and need.vcores <= limit.vcores and gpus_ok


def _packs(containers: list[Resources], nodes: list[NodeInfo]) -> bool:
    """First-fit decreasing: a quick, conservative answer to "do these fit these nodes?".

    It can miss a packing that exists, which is why its "no" is only a warning.
    """
    free = [[n.total.memory_mib, n.total.vcores, n.total.gpus or 0] for n in nodes]
    for res in sorted(containers, key=lambda r: (r.gpus, r.memory_mib, r.vcores), reverse=True):
        for slot in free:
            if res.memory_mib <= slot[0] and res.vcores <= slot[1] and res.gpus <= slot[2]:
                slot[0] -= res.memory_mib
                slot[1] -= res.vcores
                slot[2] -= res.gpus
                break
        else:
            return False
    return True


# --------------------------------------------------------------------------------------------
# HDFS and local paths, secrets.


def _check_mounts(spec: JobSpec, hdfs: Hdfs, report: _Report) -> None:
    for i, mount in enumerate(spec.mounts):
        if mount.mode is not MountMode.RO:
            continue  # rw mounts are created when missing
        _check_hdfs_path(
            hdfs, f"mounts[{i}].source", mount.source, report,
            "upload it first (hdfs dfs -put ...) or fix the path",
        )  # fmt: skip


def _check_hdfs_path(hdfs: Hdfs, where: str, uri: str, report: _Report, hint: str) -> None:
    try:
        exists = hdfs.exists(uri)
    except HdfsError as exc:
        report.errors.append(f"{where}: cannot check {uri} in HDFS: {exc}")
        return
    if not exists:
        report.errors.append(f"{where}: {uri} does not exist in HDFS; {hint}")


def _check_local_paths(spec: JobSpec, hdfs: Hdfs, report: _Report) -> None:
    for dest, source in spec.files.items():
        _check_source(hdfs, f"files.{dest}", source, report)
    archive = spec.environment.archive
    if archive is not None:
        _check_source(hdfs, "environment.archive", archive, report)


def _check_source(hdfs: Hdfs, where: str, source: str, report: _Report) -> None:
    """A file to ship: a local path (made absolute by the spec) or an hdfs:// URI."""
    if source.startswith(_HDFS_SCHEME):
        _check_hdfs_path(hdfs, where, source, report, "upload it first or fix the path")
    elif "://" not in source and not os.path.exists(source):
        report.errors.append(f"{where}: {source} does not exist")


def _check_secrets(spec: JobSpec, environ: Mapping[str, str], report: _Report) -> None:
    for name in spec.environment.secrets:
        if name not in environ:
            report.errors.append(
                f"environment.secrets: {name} is not set in your environment"
            )
