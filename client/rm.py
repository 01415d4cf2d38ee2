"""The one module that speaks YARN's REST APIs: the ResourceManager's and, for live logs, the
NodeManagers'.

Answers become small frozen dataclasses (:class:`AppInfo`, :class:`QueueInfo`,
:class:`NodeInfo`, ...) so that the rest of the client never walks raw JSON. HTTP goes through
the standard library (:mod:`http.client`): ``dlsubmit status``/``list``/``kill`` are started
as new processes, and importing ``requests`` alone would cost more than the calls themselves
(see BENCHMARKS.md). Every transport error is translated here, in
:meth:`ResourceManager._send`:

* no connection or a timeout → :class:`~client.errors.ClusterUnreachableError` (exit 3), naming
  the URL and how the cluster was located (``HADOOP_CONF_DIR``);
* HTTP 404 for an application → :class:`~client.errors.NoSuchApplicationError` (exit 4);
* any other HTTP error → :class:`~client.errors.DLSubmitError` with the status and the message of
  the RM's ``RemoteException``.

Shapes were checked against Hadoop 3.4.2 (Jersey 1, JAXB "natural" JSON). Where other versions
differ (a one-element list rendered as an object, an absent ``resourceInformations``), the
parsing helpers accept both.
"""

from __future__ import annotations

import enum
import http.client
import json as jsonlib
import logging
import os
import re
import time
import urllib.parse
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from client.errors import (
    ClusterUnreachableError,
    DLSubmitError,
    NoSuchApplicationError,
    UsageError,
    WaitTimeoutError,
)
from client.hadoop_conf import addresses, hadoop_user

__all__ = [
    "GPU_RESOURCE",
    "AppAttemptInfo",
    "AppInfo",
    "ClusterInfo",
    "ContainerLogChunk",
    "LogBlock",
    "NodeInfo",
    "QueueInfo",
    "Resource",
    "ResourceManager",
    "YarnAppState",
    "parse_log_dump",
]

logger = logging.getLogger(__name__)

GPU_RESOURCE = "yarn.io/gpu"

# (connect, read) seconds: a CLI call should fail fast rather than hang on a dead host.
_TIMEOUT_S = (3.0, 10.0)
_JSON = {"Accept": "application/json"}
_TEXT = {"Accept": "text/plain, */*"}
_MAX_REDIRECTS = 5


class _TransportError(Exception):
    """A connection could not be made or timed out (``timed_out`` tells which)."""

    def __init__(self, message: str, timed_out: bool) -> None:
        super().__init__(message)
        self.timed_out = timed_out


@dataclass(frozen=True)
class _Response:
    """The parts of an HTTP answer this module reads."""

    status_code: int
    reason: str
    content: bytes

    @property
    def ok(self) -> bool:
        return self.status_code < 400

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        return jsonlib.loads(self.content)


def _http(
    method: str,
    url: str,
    params: Mapping[str, str] | None,
    body: Any,
    headers: Mapping[str, str] | None,
) -> _Response:
    """One HTTP exchange (following redirects), with (connect, read) timeouts."""
    if params:
        url = f"{url}{'&' if '?' in url else '?'}{urllib.parse.urlencode(params)}"
    data = None if body is None else jsonlib.dumps(body).encode()
    send_headers = {**_JSON, **(headers or {})}
    if data is not None:
        send_headers["Content-Type"] = "application/json"
    connect_s, read_s = _TIMEOUT_S
    for _ in range(_MAX_REDIRECTS + 1):
        parts = urllib.parse.urlsplit(url)
        conn = http.client.HTTPConnection(parts.hostname or "", parts.port or 80, timeout=connect_s)
        try:
            try:
                conn.connect()
            except TimeoutError as exc:
                raise _TransportError(str(exc) or "connect timed out", True) from exc
            except OSError as exc:
                raise _TransportError(str(exc), False) from exc
            assert conn.sock is not None
            conn.sock.settimeout(read_s)
            path = parts.path + (f"?{parts.query}" if parts.query else "")
            try:
                conn.request(method, path or "/", body=data, headers=send_headers)
                answer = conn.getresponse()
                content = answer.read()
            except TimeoutError as exc:
                raise _TransportError(str(exc) or "read timed out", True) from exc
            except (OSError, http.client.HTTPException) as exc:
                raise _TransportError(str(exc) or type(exc).__name__, False) from exc
        finally:
            conn.close()
        location = answer.getheader("Location")
        if answer.status in (301, 302, 303, 307, 308) and location:
            url = urllib.parse.urljoin(url, location)
            continue
        return _Response(answer.status, answer.reason or "", content)
    raise DLSubmitError(f"{method} {url}: too many redirects (more than {_MAX_REDIRECTS})")


_APP_ID_RE = re.compile(r"application_\d+_\d+")
_CONTAINER_ID_RE = re.compile(r"container_(?:e\d+_)?\d+_\d+_\d+_\d+")
# Java's Long.MAX_VALUE: what YARN reports for "no limit" (e.g. a queue's GPU maximum).
_UNLIMITED = 2**63 - 1
# Fields of an app the list endpoint can leave out; they are large and unused here.
_APP_DESELECTS = "resourceRequests,resourceInfo,timeouts,appNodeLabelExpression"
# NodeManager answers for a container or file that is not (or no longer) on its disk.
_NM_MISSING = ("Cannot find this log", "Unknown container", "NotFoundException")


class YarnAppState(enum.StrEnum):
    """A YARN application's state, as the RM reports it (not dlsubmit's JobState)."""

    NEW = "NEW"
    NEW_SAVING = "NEW_SAVING"
    SUBMITTED = "SUBMITTED"
    ACCEPTED = "ACCEPTED"  # waiting for (or starting) the AppMaster container
    RUNNING = "RUNNING"  # the AppMaster registered
    # Passing states that only the per-app state endpoint (/apps/{id}/state) reports.
    FINAL_SAVING = "FINAL_SAVING"
    FINISHING = "FINISHING"
    KILLING = "KILLING"
    FINISHED = "FINISHED"  # the AppMaster unregistered; see final_status for the result
    FAILED = "FAILED"
    KILLED = "KILLED"

    def is_terminal(self) -> bool:
        """True for FINISHED, FAILED and KILLED."""
        return self in (YarnAppState.FINISHED, YarnAppState.FAILED, YarnAppState.KILLED)


@dataclass(frozen=True)
class Resource:
    """An amount of YARN resources.

    Attributes:
        memory_mib: memory in MiB (YARN's "MB" are MiB).
        vcores: virtual cores.
        gpus: ``yarn.io/gpu`` units; None when the RM reports no such resource (no GPU plugin),
            or, for a limit, when there is no limit.
    """

    memory_mib: int
    vcores: int
    gpus: int | None = None


@dataclass(frozen=True)
class ClusterInfo:
    """``/ws/v1/cluster/info``."""

    id: int
    state: str  # STARTED, ...
    ha_state: str  # ACTIVE, STANDBY, ...
    rm_version: str
    hadoop_version: str
    started_ms: int


@dataclass(frozen=True)
class AppInfo:
    """One YARN application, as the RM reports it.

    Attributes:
        id: ``application_<cluster timestamp>_<sequence>``.
        name: the application name.
        user: who submitted it.
        queue: the leaf queue name (``default``), even where the RM reports a path.
        queue_path: the queue as the RM reports it (``root.default`` on 3.4).
        state: YARN's state.
        final_status: ``UNDEFINED`` while running, then ``SUCCEEDED``, ``FAILED`` or ``KILLED``.
        progress: 0-100 as set by the AppMaster.
        tracking_url: the RM proxy URL of the AppMaster's UI ("" when none).
        diagnostics: YARN's diagnostics text.
        started_ms: epoch ms of submission.
        launched_ms: epoch ms of the AppMaster launch (0 before).
        finished_ms: epoch ms of the end (0 while running).
        tags: application tags (YARN lowercases them).
        am_host_http: the AppMaster's NodeManager web address (``host:8042``, "" before).
        am_container_logs: URL of the AppMaster container's logs ("" before).
        application_type: ``skein``, ``MAPREDUCE``, ...
        allocated_memory_mib: memory held now (-1/0 when finished).
        allocated_vcores: vcores held now.
        running_containers: containers held now.
        log_aggregation_status: ``NOT_START``, ``RUNNING``, ``SUCCEEDED``, ``DISABLED``, ...
    """

    id: str
    name: str
    user: str
    queue: str
    queue_path: str
    state: YarnAppState
    final_status: str
    progress: float
    tracking_url: str
    diagnostics: str
    started_ms: int
    launched_ms: int
    finished_ms: int
    tags: tuple[str, ...]
    am_host_http: str
    am_container_logs: str
    application_type: str
    allocated_memory_mib: int
    allocated_vcores: int
    running_containers: int
    log_aggregation_status: str

    @property
    def is_terminal(self) -> bool:
        """Whether the application has ended (FINISHED, FAILED or KILLED)."""
        return self.state.is_terminal()


@dataclass(frozen=True)
class AppAttemptInfo:
    """One AppMaster attempt of an application (``/apps/{id}/appattempts``)."""

    attempt: int  # 1-based
    app_attempt_id: str  # appattempt_..._000001
    state: str  # RUNNING, FINISHED, FAILED, KILLED, ...
    container_id: str
    node_id: str
    node_http_address: str
    logs_link: str
    started_ms: int
    finished_ms: int
    diagnostics: str


@dataclass(frozen=True)
class QueueInfo:
    """A leaf queue of the scheduler.

    Attributes:
        name: the short name (``default``).
        path: the full path (``root.default``).
        state: ``RUNNING``, ``STOPPED`` or ``DRAINING``.
        capacity: guaranteed share of the parent, percent.
        max_capacity: the most of the parent it may grow to, percent.
        absolute_capacity: guaranteed share of the cluster, percent.
        absolute_max_capacity: the most of the cluster it may grow to, percent.
        maximum_allocation: the largest single container it grants; None when not reported.
            Its ``gpus`` is None when the GPU maximum is unlimited or not reported.
        max_effective: the most it may hold at once (``maxEffectiveCapacity``); None when not
            reported.
        num_applications: applications in it now.
        node_labels: labels it may use (``*`` = any).
    """

    name: str
    path: str
    state: str
    capacity: float
    max_capacity: float
    absolute_capacity: float
    absolute_max_capacity: float
    maximum_allocation: Resource | None
    max_effective: Resource | None
    num_applications: int
    node_labels: tuple[str, ...]


@dataclass(frozen=True)
class NodeInfo:
    """A NodeManager as the RM sees it (``/ws/v1/cluster/nodes``).

    Attributes:
        id: ``host:port`` of the NodeManager's RPC endpoint (YARN's NodeId).
        host: host name.
        rack: rack name.
        state: ``RUNNING``, ``UNHEALTHY``, ``LOST``, ``DECOMMISSIONED``, ...
        http_address: ``host:port`` of its web server (where live logs are read).
        health_report: the health checker's output ("" when healthy).
        total: what it offers in all.
        available: what is free now.
        used: what containers hold now.
        num_containers: containers running on it.
        node_labels: its node labels (partition).
        last_health_update_ms: epoch ms of its last health report.
    """

    id: str
    host: str
    rack: str
    state: str
    http_address: str
    health_report: str
    total: Resource
    available: Resource
    used: Resource
    num_containers: int
    node_labels: tuple[str, ...]
    last_health_update_ms: int


@dataclass(frozen=True)
class ContainerLogChunk:
    """Bytes of one container log file read from a NodeManager.

    Attributes:
        data: the bytes returned.
        start: offset of ``data`` in the file.
        file_length: the file's length when it was read (``start + len(data)`` for a tail).
    """

    data: bytes
    start: int
    file_length: int


@dataclass(frozen=True)
class LogBlock:
    """One file of a YARN log dump (NodeManager log REST or ``yarn logs``)."""

    container_id: str
    file_name: str
    file_length: int
    content: bytes


class ResourceManager:
    """Client of the ResourceManager REST API (and NodeManager logs).

    Args:
        url: the RM web address, e.g. ``http://127.0.0.1:8088``; default from
            :func:`client.hadoop_conf.addresses` (``HADOOP_CONF_DIR``).

    Raises:
        ClusterUnreachableError: no URL was given and the cluster cannot be located.
    """

    def __init__(self, url: str | None = None) -> None:
        self.url = (url or addresses().rm_url).rstrip("/")

    def __repr__(self) -> str:
        return f"ResourceManager({self.url!r})"

    # ---- cluster ----------------------------------------------------------------------------

    def cluster_info(self) -> ClusterInfo:
        """The RM's identity and versions (a cheap "is it up?" call)."""
        info = _obj(self._get("/ws/v1/cluster/info"), "clusterInfo")
        return ClusterInfo(
            id=_int(info.get("id")),
            state=_str(info.get("state")),
            ha_state=_str(info.get("haState")),
            rm_version=_str(info.get("resourceManagerVersion")),
            hadoop_version=_str(info.get("hadoopVersion")),
            started_ms=_int(info.get("startedOn")),
        )

    def queues(self) -> dict[str, QueueInfo]:
        """Leaf queues of the scheduler, by short name.

        Handles the CapacityScheduler tree (queues nested under ``queues.queue``), the
        FairScheduler (``rootQueue.childQueues``) and the FIFO scheduler (one ``default``
        queue). Should two leaves share a short name, both are keyed by their full path.
        """
        info = _obj(_obj(self._get("/ws/v1/cluster/scheduler"), "scheduler"), "schedulerInfo")
        leaves = list(_leaf_queues(info))
        names = [queue.name for queue in leaves]
        return {
            (queue.name if names.count(queue.name) == 1 else queue.path): queue for queue in leaves
        }

    def scheduler_max_allocation(self) -> Resource | None:
        """The scheduler-wide largest container (``yarn.scheduler.maximum-allocation-*``).

        Returns:
            The limit, or None when this RM does not report it.
        """
        info = _obj(_obj(self._get("/ws/v1/cluster/scheduler"), "scheduler"), "schedulerInfo")
        return _limit(info.get("maximumAllocation"))

    def nodes(self, states: Iterable[str] | None = None) -> list[NodeInfo]:
        """The cluster's NodeManagers.

        Args:
            states: only nodes in these states (``RUNNING``, ``UNHEALTHY``, ...); default all
                the RM lists.
        """
        params = {"states": ",".join(states)} if states else None
        nodes = _obj(self._get("/ws/v1/cluster/nodes", params), "nodes")
        return [_node(raw) for raw in _items(nodes.get("node"))]

    def node_labels(self) -> list[str]:
        """Names of the cluster's node labels ([] when none are defined)."""
        data = self._get("/ws/v1/cluster/get-node-labels")
        labels: list[str] = []
        for key in ("nodeLabelInfo", "nodeLabelsInfo", "nodeLabels", "nodeLabel"):
            for item in _items(data.get(key) if isinstance(data, dict) else None):
                name = item.get("name") if isinstance(item, dict) else item
                if isinstance(name, str) and name and name not in labels:
                    labels.append(name)
        return labels

    # ---- applications -----------------------------------------------------------------------

    def app(self, app_id: str) -> AppInfo:
        """One application.

        Raises:
            UsageError: ``app_id`` is not an application id.
            NoSuchApplicationError: the RM does not know it.
        """
        _check_app_id(app_id)
        return _app(_obj(self._get(f"/ws/v1/cluster/apps/{app_id}", app_id=app_id), "app"))

    def app_state(self, app_id: str) -> YarnAppState:
        """Only the state of an application (cheaper than :meth:`app` for polling).

        Raises:
            UsageError: ``app_id`` is not an application id.
            NoSuchApplicationError: the RM does not know it.
        """
        _check_app_id(app_id)
        data = self._get(f"/ws/v1/cluster/apps/{app_id}/state", app_id=app_id)
        return _state(data.get("state"))

    def apps(
        self,
        states: Iterable[str] | None = None,
        user: str | None = None,
        tags: Iterable[str] | None = None,
        queue: str | None = None,
        limit: int | None = None,
        *,
        all_tags: bool = False,
    ) -> list[AppInfo]:
        """Applications, filtered by the RM.

        Args:
            states: YARN states to include (any of them), e.g. ``["RUNNING", "ACCEPTED"]``.
            user: only this user's.
            tags: only applications with any of these tags (the RM's rule), or with all of
                them when ``all_tags``.
            queue: only this queue's (short name or path).
            limit: at most this many (applied by the RM, before ``all_tags`` filters).
            all_tags: keep only applications that carry every tag in ``tags`` (e.g.
                ``["dlsubmit", "team-vision"]``; the RM itself only matches any one).

        Raises:
            DLSubmitError: the RM refused a filter (its message says which, e.g. a bad state).
        """
        params: dict[str, str] = {"deSelects": _APP_DESELECTS}
        if states:
            params["states"] = ",".join(state.upper() for state in states)
        if user:
            params["user"] = user
        if tags:
            params["applicationTags"] = ",".join(tag.lower() for tag in tags)
        if queue:
            params["queue"] = queue
        if limit is not None:
            params["limit"] = str(limit)
        listed = _obj(self._get("/ws/v1/cluster/apps", params), "apps")
        apps = [_app(raw) for raw in _items(listed.get("app"))]
        if all_tags and tags:
            wanted = {tag.lower() for tag in tags}
            apps = [app for app in apps if wanted <= set(app.tags)]
        return apps

    def app_attempts(self, app_id: str) -> list[AppAttemptInfo]:
        """The AppMaster attempts of an application, oldest first.

        Raises:
            UsageError: ``app_id`` is not an application id.
            NoSuchApplicationError: the RM does not know it.
        """
        _check_app_id(app_id)
        data = self._get(f"/ws/v1/cluster/apps/{app_id}/appattempts", app_id=app_id)
        attempts = [_attempt(raw) for raw in _items(_obj(data, "appAttempts").get("appAttempt"))]
        return sorted(attempts, key=lambda attempt: attempt.attempt)

    def kill(
        self,
        app_id: str,
        diagnostics: str | None = None,
        timeout_s: float = 30.0,
        poll_interval_s: float = 0.5,
    ) -> AppInfo:
        """Kill an application and wait (bounded) until YARN says it ended.

        Idempotent: an application that already ended is left as it is and returned.

        Args:
            app_id: the application.
            diagnostics: text YARN records as the reason (shown by ``yarn application -status``).
            timeout_s: longest wait for the KILLED state.
            poll_interval_s: pause between state polls.

        Returns:
            The application after the kill (state KILLED, or the end state it already had).

        Raises:
            UsageError: ``app_id`` is not an application id.
            NoSuchApplicationError: the RM does not know it.
            WaitTimeoutError: the kill was accepted but the application had not ended within
                ``timeout_s``; YARN goes on with it.
            DLSubmitError: the RM refused the kill (e.g. 403 for another user's application).
        """
        _check_app_id(app_id)
        body: dict[str, str] = {"state": YarnAppState.KILLED.value}
        if diagnostics:
            body["diagnostics"] = diagnostics
        path = f"/ws/v1/cluster/apps/{app_id}/state"
        # user.name: on clusters with simple HTTP auth the RM otherwise acts as dr.who, who may
        # not kill anything; with the default static-user filter it is ignored.
        self._send(
            "PUT", self.url + path, params={"user.name": hadoop_user()}, json=body, app_id=app_id
        )
        deadline = time.monotonic() + timeout_s
        while True:
            state = self.app_state(app_id)
            if state.is_terminal():
                return self.app(app_id)
            if time.monotonic() >= deadline:
                raise WaitTimeoutError(
                    f"{app_id}: kill requested, but YARN still reports {state} after "
                    f"{timeout_s:g}s; it will finish the kill on its own"
                )
            time.sleep(poll_interval_s)

    # ---- NodeManager logs -------------------------------------------------------------------

    def read_container_log(
        self, nm_http_address: str, container_id: str, file_name: str, size: int | None = None
    ) -> ContainerLogChunk | None:
        """Read a container's log file from its NodeManager (live, while the app runs).

        Args:
            nm_http_address: the NodeManager's web address, ``host:8042``.
            container_id: the container.
            file_name: ``stdout``, ``stderr``, ...
            size: None for the whole file; ``-N`` for the last N bytes; ``N`` for the first N.

        Returns:
            The bytes read, or None when the NodeManager has no such container or file (not
            started, or gone after the application ended and its logs were aggregated).

        Raises:
            UsageError: ``container_id`` is not a container id.
            ClusterUnreachableError: the NodeManager does not answer.
        """
        _check_container_id(container_id)
        url = f"{_nm_url(nm_http_address)}/ws/v1/node/containerlogs/{container_id}/{file_name}"
        params = None if size is None else {"size": str(size)}
        # Plain text: asked for JSON, the NM answers a missing log with a 503 and no message.
        response = self._send(
            "GET", url, params=params, headers=_TEXT, missing_ok=True, what="NodeManager"
        )
        if response is None:
            return None
        blocks = parse_log_dump(response.content, size=size)
        if not blocks:  # an NM that sends the bare file, without the envelope
            data = response.content
            return ContainerLogChunk(data, 0, len(data))
        block = blocks[0]
        tail = size is not None and size < 0
        start = block.file_length - len(block.content) if tail else 0
        return ContainerLogChunk(block.content, start, block.file_length)

    def container_log(
        self,
        nm_http_address: str,
        container_id: str,
        file_name: str,
        tail_bytes: int | None = None,
    ) -> str:
        """A container's log file as text, read live from its NodeManager.

        Args:
            nm_http_address: the NodeManager's web address, ``host:8042``.
            container_id: the container.
            file_name: ``stdout``, ``stderr``, ...
            tail_bytes: only the last N bytes (None: the whole file).

        Returns:
            The text ("" when the NodeManager has no such container or file; use
            :meth:`read_container_log` to tell the two apart). Undecodable bytes are replaced.

        Raises:
            ClusterUnreachableError: the NodeManager does not answer.
        """
        size = None if tail_bytes is None else -abs(tail_bytes)
        chunk = self.read_container_log(nm_http_address, container_id, file_name, size)
        return "" if chunk is None else chunk.data.decode("utf-8", errors="replace")

    def container_log_files(self, nm_http_address: str, container_id: str) -> list[str]:
        """Names of a live container's log files on its NodeManager ([] when it has none).

        Raises:
            UsageError: ``container_id`` is not a container id.
            ClusterUnreachableError: the NodeManager does not answer.
        """
        _check_container_id(container_id)
        url = f"{_nm_url(nm_http_address)}/ws/v1/node/containers/{container_id}/logs"
        response = self._send("GET", url, missing_ok=True, what="NodeManager")
        if response is None:
            return []
        names: list[str] = []
        for info in _items(_json(response, url).get("containerLogsInfo")):
            for item in _items(info.get("containerLogInfo") if isinstance(info, dict) else None):
                name = item.get("fileName") if isinstance(item, dict) else None
                if isinstance(name, str) and name not in names:
                    names.append(name)
        return names

    # ---- HTTP -------------------------------------------------------------------------------

    def _get(
        self, path: str, params: Mapping[str, str] | None = None, *, app_id: str | None = None
    ) -> dict[str, Any]:
        url = self.url + path
        response = self._send("GET", url, params=params, app_id=app_id)
        assert response is not None  # missing_ok is False
        return _json(response, url)

    def _send(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        app_id: str | None = None,
        missing_ok: bool = False,
        what: str = "ResourceManager",
    ) -> _Response | None:
        """One HTTP call with every transport error translated into the dlsubmit tree."""
        try:
            response = _http(method, url, params, json, headers)
        except _TransportError as exc:
            raise ClusterUnreachableError(_unreachable(what, method, url, exc)) from exc
        if response.ok:
            return response
        message = _remote_message(response)
        if missing_ok and (response.status_code == 404 or _nm_missing(message)):
            return None
        if app_id and (response.status_code == 404 or "not found" in message.lower()):
            raise NoSuchApplicationError(
                f"{app_id}: no such application on the ResourceManager at {self.url}"
            )
        raise DLSubmitError(
            f"{what} {method} {_short(url)} answered {response.status_code} "
            f"{response.reason or ''}: {message}".replace("  ", " ")
        )


# --------------------------------------------------------------------------------------------
# Log dumps: NodeManager's /containerlogs and `yarn logs` wrap each file in the same envelope.

_BLOCK_RE = re.compile(
    rb"Container: (?P<container>\S+) on \S+\r?\n"
    rb"(?:LogAggregationType: \S+\r?\n)?"
    rb"=+\r?\n"
    rb"LogType:(?P<file>[^\r\n]*)\r?\n"
    rb"(?:LogLastModifiedTime:[^\r\n]*\r?\n)?"
    rb"LogLength:(?P<length>\d+)\r?\n"
    rb"LogContents:\r?\n"
)


def parse_log_dump(data: bytes, size: int | None = None) -> list[LogBlock]:
    """Split a YARN log dump into its files.

    Both the NodeManager's ``/ws/v1/node/containerlogs`` answer and ``yarn logs`` wrap each
    file as ``Container: … LogType:<file> … LogLength:<n> LogContents:`` + bytes +
    ``End of LogType:<file>…``. The content is cut by byte count (the footer's exact form
    differs between the two), so it is exact even when a log contains "End of LogType".

    Args:
        data: the dump.
        size: the ``size`` the dump was asked for: None (whole files), ``-N`` (last N bytes),
            ``N`` (first N bytes).

    Returns:
        One block per file, in order ([] when ``data`` has no envelope).
    """
    blocks: list[LogBlock] = []
    position = 0
    while match := _BLOCK_RE.search(data, position):
        length = int(match.group("length"))
        count = length if size is None else min(abs(size), length)
        start = match.end()
        content = data[start : start + count]
        blocks.append(
            LogBlock(
                container_id=match.group("container").decode(errors="replace"),
                file_name=match.group("file").decode(errors="replace").strip(),
                file_length=length,
                content=content,
            )
        )
        position = start + len(content)
    return blocks


# --------------------------------------------------------------------------------------------
# JSON → dataclasses. The RM's JSON is loosely typed (numbers as strings in places, a single
# item as an object instead of a list), so every read goes through these helpers.


def _obj(data: Any, key: str) -> dict[str, Any]:
    """``data[key]`` as a dict; {} when absent or null (the RM writes ``{"apps": null}``)."""
    value = data.get(key) if isinstance(data, dict) else None
    return value if isinstance(value, dict) else {}


def _items(value: Any) -> list[Any]:
    """A JSON list that may also come as a single object, or be absent."""
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _str(value: Any) -> str:
    return "" if value is None else str(value)


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def _state(value: Any) -> YarnAppState:
    try:
        return YarnAppState(str(value))
    except ValueError:
        raise DLSubmitError(f"the ResourceManager reported an unknown state {value!r}") from None


def _resource_values(raw: Any) -> dict[str, int]:
    """``{"memory-mb": 4096, "vcores": 4, "yarn.io/gpu": 2}`` from a YARN resource object."""
    if not isinstance(raw, dict):
        return {}
    values: dict[str, int] = {}
    infos = _obj(raw, "resourceInformations").get("resourceInformation")
    for info in _items(infos):
        if isinstance(info, dict) and "name" in info:
            values[str(info["name"])] = _int(info.get("value"))
    # Older RMs (and some endpoints) give only memory / vCores.
    values.setdefault("memory-mb", _int(raw.get("memory")))
    values.setdefault("vcores", _int(raw.get("vCores")))
    return values


def _resource(raw: Any) -> Resource:
    values = _resource_values(raw)
    return Resource(values["memory-mb"], values["vcores"], values.get(GPU_RESOURCE))


def _limit(raw: Any) -> Resource | None:
    """A maximum: None when absent; an unlimited GPU count (Long.MAX_VALUE) becomes None."""
    if not isinstance(raw, dict):
        return None
    resource = _resource(raw)
    gpus = resource.gpus
    return Resource(resource.memory_mib, resource.vcores, None if gpus == _UNLIMITED else gpus)


def _app(raw: dict[str, Any]) -> AppInfo:
    queue_path = _str(raw.get("queue"))
    tags = _str(raw.get("applicationTags"))
    return AppInfo(
        id=_str(raw.get("id")),
        name=_str(raw.get("name")),
        user=_str(raw.get("user")),
        queue=queue_path.rpartition(".")[2],
        queue_path=queue_path,
        state=_state(raw.get("state")),
        final_status=_str(raw.get("finalStatus")),
        progress=_float(raw.get("progress")),
        tracking_url=_str(raw.get("trackingUrl")),
        diagnostics=_str(raw.get("diagnostics")),
        started_ms=_int(raw.get("startedTime")),
        launched_ms=_int(raw.get("launchTime")),
        finished_ms=_int(raw.get("finishedTime")),
        tags=tuple(tag for tag in tags.split(",") if tag),
        am_host_http=_str(raw.get("amHostHttpAddress")),
        am_container_logs=_str(raw.get("amContainerLogs")),
        application_type=_str(raw.get("applicationType")),
        allocated_memory_mib=_int(raw.get("allocatedMB")),
        allocated_vcores=_int(raw.get("allocatedVCores")),
        running_containers=_int(raw.get("runningContainers")),
        log_aggregation_status=_str(raw.get("logAggregationStatus")),
    )


def _attempt(raw: dict[str, Any]) -> AppAttemptInfo:
    return AppAttemptInfo(
        attempt=_int(raw.get("id")),
        app_attempt_id=_str(raw.get("appAttemptId")),
        state=_str(raw.get("appAttemptState")),
        container_id=_str(raw.get("containerId")),
        node_id=_str(raw.get("nodeId")),
        node_http_address=_str(raw.get("nodeHttpAddress")),
        logs_link=_str(raw.get("logsLink")),
        started_ms=_int(raw.get("startTime")),
        finished_ms=_int(raw.get("finishedTime")),
        diagnostics=_str(raw.get("diagnosticsInfo")),
    )


def _node(raw: dict[str, Any]) -> NodeInfo:
    total = raw.get("totalResource")
    used = raw.get("usedResource")
    available = raw.get("availableResource")
    used_resource = (
        _resource(used)
        if used
        else Resource(_int(raw.get("usedMemoryMB")), _int(raw.get("usedVirtualCores")))
    )
    available_resource = (
        _resource(available)
        if available
        else Resource(_int(raw.get("availMemoryMB")), _int(raw.get("availableVirtualCores")))
    )
    if total:
        total_resource = _resource(total)
    else:  # RMs before 3.x: total = used + available
        total_resource = Resource(
            used_resource.memory_mib + available_resource.memory_mib,
            used_resource.vcores + available_resource.vcores,
        )
    return NodeInfo(
        id=_str(raw.get("id")),
        host=_str(raw.get("nodeHostName")),
        rack=_str(raw.get("rack")),
        state=_str(raw.get("state")),
        http_address=_str(raw.get("nodeHTTPAddress")),
        health_report=_str(raw.get("healthReport")),
        total=total_resource,
        available=available_resource,
        used=used_resource,
        num_containers=_int(raw.get("numContainers")),
        node_labels=tuple(str(label) for label in _items(raw.get("nodeLabels"))),
        last_health_update_ms=_int(raw.get("lastHealthUpdate")),
    )


def _queue(raw: dict[str, Any], path: str) -> QueueInfo:
    name = _str(raw.get("queueName")) or path.rpartition(".")[2]
    return QueueInfo(
        name=name.rpartition(".")[2],
        path=path,
        state=_str(raw.get("state")) or "RUNNING",
        capacity=_float(raw.get("capacity")),
        max_capacity=_float(raw.get("maxCapacity")),
        absolute_capacity=_float(raw.get("absoluteCapacity")),
        absolute_max_capacity=_float(raw.get("absoluteMaxCapacity")),
        maximum_allocation=_limit(raw.get("maximumAllocation")),
        max_effective=_limit(raw.get("maxEffectiveCapacity")),
        num_applications=_int(raw.get("numApplications")),
        node_labels=tuple(str(label) for label in _items(raw.get("nodeLabels"))),
    )


def _leaf_queues(info: dict[str, Any]) -> Iterator[QueueInfo]:
    kind = _str(info.get("type"))
    if kind == "fifoScheduler":
        yield QueueInfo(
            "default",
            "root.default",
            _str(info.get("qstate")) or "RUNNING",
            100.0,
            100.0,
            100.0,
            100.0,
            None,
            None,
            0,
            (),
        )
    elif kind == "fairScheduler":
        yield from _fair_leaves(_obj(info, "rootQueue"))
    else:
        yield from _capacity_leaves(info, _str(info.get("queuePath")) or "root")


def _capacity_leaves(parent: dict[str, Any], parent_path: str) -> Iterator[QueueInfo]:
    for raw in _items(_obj(parent, "queues").get("queue")):
        if not isinstance(raw, dict):
            continue
        path = _str(raw.get("queuePath")) or f"{parent_path}.{_str(raw.get('queueName'))}"
        if _obj(raw, "queues"):
            yield from _capacity_leaves(raw, path)
        else:
            yield _queue(raw, path)


def _fair_leaves(raw: dict[str, Any]) -> Iterator[QueueInfo]:
    children = _items(_obj(raw, "childQueues").get("queue"))
    if not children:
        if raw.get("queueName"):
            yield _queue(raw, _str(raw.get("queueName")))
        return
    for child in children:
        if isinstance(child, dict):
            yield from _fair_leaves(child)


# --------------------------------------------------------------------------------------------
# HTTP helpers.


def _check_app_id(app_id: str) -> None:
    if not _APP_ID_RE.fullmatch(app_id):
        raise UsageError(
            f"application id {app_id!r}: expected application_<cluster id>_<number>, "
            "e.g. application_1700000000000_0001"
        )


def _check_container_id(container_id: str) -> None:
    if not _CONTAINER_ID_RE.fullmatch(container_id):
        raise UsageError(
            f"container id {container_id!r}: expected container_<cluster id>_<app>_<attempt>_<n>"
        )


def _nm_url(address: str) -> str:
    address = address.rstrip("/")
    return address if "://" in address else f"http://{address}"


def _nm_missing(message: str) -> bool:
    return any(marker in message for marker in _NM_MISSING)


def _json(response: _Response, url: str) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError as exc:
        raise DLSubmitError(
            f"{_short(url)} answered {response.status_code} with something that is not JSON: "
            f"{response.text[:200]!r}; is this a YARN web address?"
        ) from exc
    return data if isinstance(data, dict) else {}


def _remote_message(response: _Response) -> str:
    """The message of the RM's ``RemoteException`` (or the first line of a text answer)."""
    try:
        data = response.json()
    except ValueError:
        data = None
    message = ""
    if isinstance(data, dict):
        remote = data.get("RemoteException")
        if isinstance(remote, dict):
            message = _str(remote.get("message")) or _str(remote.get("exception"))
    if not message:
        message = response.text.strip().splitlines()[0] if response.text.strip() else ""
    # Java wraps messages in exception names: keep the human part.
    message = re.sub(r"^(?:[\w.]+(?:Exception|Error): )+", "", message.strip())
    return message[:500] or "(no message)"


def _unreachable(what: str, method: str, url: str, exc: Exception) -> str:
    kind = "timed out" if getattr(exc, "timed_out", False) else "is unreachable"
    base = url.split("/ws/", 1)[0]
    conf = os.environ.get("HADOOP_CONF_DIR") or "(not set)"
    return (
        f"{what} at {base} {kind} ({method} {_short(url)}); is the cluster up? "
        f"HADOOP_CONF_DIR={conf}"
    )


def _short(url: str) -> str:
    """The path part of a REST URL, for messages."""
    return "/ws/" + url.split("/ws/", 1)[1] if "/ws/" in url else url
