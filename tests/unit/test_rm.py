"""Unit tests for client.rm against a fake YARN web server (the HTTP boundary).

The fake serves JSON shaped like Hadoop 3.4.2's (trimmed), and NodeManager log files in the
NM's envelope; :class:`FakeYarn` and the ``*_json`` builders are reused by the preflight and
logs tests.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from client import rm as rm_module
from client.errors import (
    ClusterUnreachableError,
    DLSubmitError,
    NoSuchApplicationError,
    UsageError,
    WaitTimeoutError,
)
from client.rm import (
    AppInfo,
    ContainerLogChunk,
    Resource,
    ResourceManager,
    YarnAppState,
    parse_log_dump,
)

APP = "application_1795981701459_0001"
CONTAINER = "container_1795981701459_0001_01_000002"
LONG_MAX = 2**63 - 1

# ---------------------------------------------------------------------------------------------
# The fake server


@dataclass
class Reply:
    """What the fake answers: a status and a JSON value (dict/list) or raw text/bytes."""

    status: int = 200
    body: Any = None
    content_type: str | None = None
    delay_s: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Seen:
    """One request the fake received."""

    method: str
    path: str
    query: dict[str, str]
    body: Any
    headers: dict[str, str]


Handler = Callable[[Seen], Reply]


class FakeYarn:
    """An HTTP server on 127.0.0.1:<free port> answering from a route table.

    ``route(method, path, reply)``: ``reply`` is a :class:`Reply`, a JSON-able value (200), a
    list of Replies (one per call, the last repeating) or a function of the request.
    Unrouted paths answer 404 with the RM's NotFoundException body.
    """

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], Handler] = {}
        self.prefix_routes: list[tuple[str, str, Handler]] = []
        self.seen: list[Seen] = []
        fake = self

        class _Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def _serve(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                seen = Seen(
                    self.command,
                    parts.path,
                    {k: v[-1] for k, v in parse_qs(parts.query).items()},
                    json.loads(raw) if raw else None,
                    dict(self.headers.items()),
                )
                fake.seen.append(seen)
                handler = fake.handler(self.command, parts.path)
                reply = handler(seen) if handler else _not_found(parts.path)
                time.sleep(reply.delay_s)
                body = reply.body
                if isinstance(body, (dict, list)):
                    data, ctype = json.dumps(body).encode(), "application/json"
                elif isinstance(body, str):
                    data, ctype = body.encode(), "text/plain;charset=utf-8"
                else:
                    data, ctype = body or b"", "text/plain;charset=utf-8"
                self.send_response(reply.status)
                self.send_header("Content-Type", reply.content_type or ctype)
                self.send_header("Content-Length", str(len(data)))
                for key, value in reply.headers.items():
                    self.send_header(key, value)
                self.end_headers()
                # The client may have given up (the timeout test).
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(data)

            do_GET = do_PUT = do_POST = _serve  # noqa: N815

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        self.thread.start()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    @property
    def address(self) -> str:
        """``127.0.0.1:<port>``, as YARN writes NodeManager web addresses."""
        return f"127.0.0.1:{self.server.server_address[1]}"

    def route(self, method: str, path: str, reply: Any) -> None:
        """Answer ``method path`` with ``reply`` (see the class docstring)."""
        if callable(reply):
            self.routes[(method, path)] = reply
        elif isinstance(reply, list) and reply and isinstance(reply[0], Reply):
            queue = list(reply)
            self.routes[(method, path)] = lambda _seen: queue.pop(0) if len(queue) > 1 else queue[0]
        elif isinstance(reply, Reply):
            self.routes[(method, path)] = lambda _seen: reply
        else:
            self.routes[(method, path)] = lambda _seen: Reply(200, reply)

    def route_prefix(self, method: str, prefix: str, handler: Handler) -> None:
        """Answer every ``method`` request under ``prefix`` with ``handler``."""
        self.prefix_routes.append((method, prefix, handler))

    def handler(self, method: str, path: str) -> Handler | None:
        """The handler for a request (exact routes first)."""
        if (method, path) in self.routes:
            return self.routes[(method, path)]
        for route_method, prefix, handler in self.prefix_routes:
            if method == route_method and path.startswith(prefix):
                return handler
        return None

    def requests_to(self, path: str) -> list[Seen]:
        """Requests received for ``path``."""
        return [seen for seen in self.seen if seen.path == path]

    def close(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()


def _not_found(path: str) -> Reply:
    message = f"java.lang.Exception: {path} not found"
    return Reply(404, remote_exception("NotFoundException", message))


def remote_exception(kind: str, message: str) -> dict[str, Any]:
    """The RM's error body."""
    return {"RemoteException": {"exception": kind, "message": message,
                                "javaClassName": f"org.apache.hadoop.yarn.webapp.{kind}"}}


@pytest.fixture
def yarn() -> Iterator[FakeYarn]:
    """A fresh fake YARN web server."""
    server = FakeYarn()
    yield server
    server.close()


@pytest.fixture
def rm(yarn: FakeYarn) -> ResourceManager:
    """A ResourceManager client pointed at the fake."""
    return ResourceManager(yarn.url)


# ---------------------------------------------------------------------------------------------
# JSON builders shaped like Hadoop 3.4.2's answers


def resource_json(memory: int, vcores: int, gpus: int | None = None) -> dict[str, Any]:
    """A YARN resource object with ``resourceInformations`` (gpus None: no GPU type)."""
    infos = [
        {"attributes": {}, "maximumAllocation": LONG_MAX, "minimumAllocation": 0,
         "name": "memory-mb", "resourceType": "COUNTABLE", "units": "Mi", "value": memory},
        {"attributes": {}, "maximumAllocation": LONG_MAX, "minimumAllocation": 0,
         "name": "vcores", "resourceType": "COUNTABLE", "units": "", "value": vcores},
    ]
    if gpus is not None:
        infos.append({"attributes": {}, "maximumAllocation": LONG_MAX, "minimumAllocation": 0,
                      "name": "yarn.io/gpu", "resourceType": "COUNTABLE", "units": "",
                      "value": gpus})
    return {"memory": memory, "vCores": vcores,
            "resourceInformations": {"resourceInformation": infos}}


def queue_json(
    name: str,
    *,
    state: str = "RUNNING",
    max_alloc: tuple[int, int, int | None] | None = (4096, 4, LONG_MAX),
    max_effective: tuple[int, int, int | None] | None = (8192, 8, 4),
    capacity: float = 50.0,
    path: str | None = None,
) -> dict[str, Any]:
    """A CapacityScheduler leaf queue."""
    raw: dict[str, Any] = {
        "type": "capacitySchedulerLeafQueueInfo",
        "queuePath": path or f"root.{name}",
        "queueName": name,
        "state": state,
        "capacity": capacity,
        "maxCapacity": 100.0,
        "absoluteCapacity": capacity,
        "absoluteMaxCapacity": 100.0,
        "numApplications": 0,
        "nodeLabels": ["*"],
    }
    if max_alloc is not None:
        raw["maximumAllocation"] = resource_json(*max_alloc)
    if max_effective is not None:
        raw["maxEffectiveCapacity"] = resource_json(*max_effective)
    return raw


def scheduler_json(*queues: dict[str, Any]) -> dict[str, Any]:
    """``/ws/v1/cluster/scheduler`` of a CapacityScheduler with these root children."""
    return {"scheduler": {"schedulerInfo": {
        "type": "capacityScheduler", "queueName": "root", "queuePath": "root",
        "capacity": 100.0, "maxCapacity": 100.0,
        "maximumAllocation": resource_json(4096, 4, LONG_MAX),
        "queues": {"queue": list(queues)},
    }}}


def node_json(
    node_id: str = "localhost:45451",
    *,
    http: str = "localhost:8042",
    state: str = "RUNNING",
    total: tuple[int, int, int | None] = (4096, 4, 2),
    used: tuple[int, int, int | None] = (0, 0, 0),
    labels: list[str] | None = None,
    health: str = "",
) -> dict[str, Any]:
    """One node of ``/ws/v1/cluster/nodes``."""
    gpus_free = None if total[2] is None else total[2] - (used[2] or 0)
    raw: dict[str, Any] = {
        "rack": "/default-rack", "state": state, "id": node_id,
        "nodeHostName": node_id.split(":")[0], "nodeHTTPAddress": http,
        "lastHealthUpdate": 1795981704258, "version": "3.4.2", "healthReport": health,
        "numContainers": 0, "usedMemoryMB": used[0], "availMemoryMB": total[0] - used[0],
        "usedVirtualCores": used[1], "availableVirtualCores": total[1] - used[1],
        "usedResource": resource_json(*used),
        "availableResource": resource_json(total[0] - used[0], total[1] - used[1], gpus_free),
        "totalResource": resource_json(*total),
    }
    if labels is not None:
        raw["nodeLabels"] = labels
    return raw


def nodes_json(*nodes: dict[str, Any]) -> dict[str, Any]:
    """``/ws/v1/cluster/nodes``."""
    return {"nodes": {"node": list(nodes)}}


def app_json(app_id: str = APP, **overrides: Any) -> dict[str, Any]:
    """One app as ``/ws/v1/cluster/apps/{id}`` reports it (3.4.2: queue as a path)."""
    raw: dict[str, Any] = {
        "id": app_id, "user": "alice", "name": "mnist", "queue": "root.default",
        "state": "RUNNING", "finalStatus": "UNDEFINED", "progress": 10.0,
        "trackingUI": "ApplicationMaster",
        "trackingUrl": f"http://localhost:8088/proxy/{app_id}/",
        "diagnostics": "", "clusterId": 1795981701459, "applicationType": "dlsubmit",
        "applicationTags": "dlsubmit,team-vision", "priority": 0,
        "startedTime": 1795981840415, "launchTime": 1795981841632, "finishedTime": 0,
        "elapsedTime": 8528,
        "amContainerLogs": "http://localhost:8042/node/containerlogs/c/alice",
        "amHostHttpAddress": "localhost:8042", "allocatedMB": 512, "allocatedVCores": 1,
        "runningContainers": 1, "logAggregationStatus": "NOT_START",
    }
    raw.update(overrides)
    return raw


def nm_envelope(container_id: str, file_name: str, content: bytes, length: int) -> bytes:
    """A NodeManager ``/containerlogs`` answer around ``content`` (a running container's)."""
    header = (
        f"Container: {container_id} on localhost:45451\n"
        "LogAggregationType: LOCAL\n"
        + "=" * 68 + "\n"
        f"LogType:{file_name}\n"
        "LogLastModifiedTime:Sun Nov 29 19:51:05 +0000 2026\n"
        f"LogLength:{length}\n"
        "LogContents:\n"
    ).encode()
    footer = (
        f"End of LogType:{file_name}.This log file belongs to a running container "
        f"({container_id}) and so may not be complete.\n" + "*" * 87 + "\n\n"
    ).encode()
    return header + content + footer


def serve_logs(yarn: FakeYarn, files: dict[tuple[str, str], bytes]) -> None:
    """Serve ``files[(container_id, name)]`` (a live dict) as a 3.4.2 NodeManager does.

    ``size=-N`` answers the last N bytes, ``size=N`` the first N; unknown containers/files
    answer 404 with "Cannot find this log on the local disk."
    """

    def handler(seen: Seen) -> Reply:
        _, _, rest = seen.path.partition("/ws/v1/node/containerlogs/")
        container_id, _, name = rest.partition("/")
        data = files.get((container_id, name))
        if data is None:
            return Reply(404, "java.lang.Exception: Cannot find this log on the local disk.")
        size = seen.query.get("size")
        part = data
        if size is not None:
            n = int(size)
            part = data[len(data) - min(-n, len(data)) :] if n < 0 else data[:n]
        return Reply(200, nm_envelope(container_id, name, part, len(data)))

    yarn.route_prefix("GET", "/ws/v1/node/containerlogs/", handler)


def dead_url() -> str:
    """A URL on which nothing listens (a port just released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# ---------------------------------------------------------------------------------------------
# Cluster info, queues, nodes, labels


def test_cluster_info(yarn: FakeYarn, rm: ResourceManager) -> None:
    yarn.route("GET", "/ws/v1/cluster/info", {"clusterInfo": {
        "id": 1795981701459, "startedOn": 1795981701459, "state": "STARTED",
        "haState": "ACTIVE", "resourceManagerVersion": "3.4.2", "hadoopVersion": "3.4.2"}})
    info = rm.cluster_info()
    assert (info.state, info.ha_state, info.rm_version, info.started_ms) == (
        "STARTED", "ACTIVE", "3.4.2", 1795981701459)


def test_default_url_comes_from_the_hadoop_conf(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DLSUBMIT_RM_URL", "http://rm.example:8088/")
    monkeypatch.setenv("DLSUBMIT_WEBHDFS_URL", "http://nn.example:9870")
    assert ResourceManager().url == "http://rm.example:8088"


def test_queues_flattens_the_capacity_tree(yarn: FakeYarn, rm: ResourceManager) -> None:
    parent = {
        "queuePath": "root.team", "queueName": "team", "capacity": 50.0, "state": "RUNNING",
        "queues": {"queue": [queue_json("vision", path="root.team.vision", state="STOPPED")]},
    }
    yarn.route("GET", "/ws/v1/cluster/scheduler", scheduler_json(queue_json("default"), parent))
    queues = rm.queues()
    assert sorted(queues) == ["default", "vision"]
    default = queues["default"]
    assert default.path == "root.default"
    assert default.state == "RUNNING"
    # Long.MAX_VALUE is YARN's "no limit": no GPU maximum.
    assert default.maximum_allocation == Resource(4096, 4, None)
    assert default.max_effective == Resource(8192, 8, 4)
    assert queues["vision"].path == "root.team.vision"
    assert queues["vision"].state == "STOPPED"


def test_queue_without_maximum_allocation_and_single_object_lists(
    yarn: FakeYarn, rm: ResourceManager
) -> None:
    lone = queue_json("default", max_alloc=None, max_effective=None)
    info = scheduler_json()
    info["scheduler"]["schedulerInfo"]["queues"] = {"queue": lone}  # one item, not a list
    yarn.route("GET", "/ws/v1/cluster/scheduler", info)
    queue = rm.queues()["default"]
    assert queue.maximum_allocation is None
    assert queue.max_effective is None


def test_queues_sharing_a_short_name_are_keyed_by_path(
    yarn: FakeYarn, rm: ResourceManager
) -> None:
    a = {"queuePath": "root.a", "queueName": "a",
         "queues": {"queue": [queue_json("x", path="root.a.x")]}}
    b = {"queuePath": "root.b", "queueName": "b",
         "queues": {"queue": [queue_json("x", path="root.b.x")]}}
    yarn.route("GET", "/ws/v1/cluster/scheduler", scheduler_json(a, b))
    assert sorted(rm.queues()) == ["root.a.x", "root.b.x"]


def test_fifo_scheduler_has_one_default_queue(yarn: FakeYarn, rm: ResourceManager) -> None:
    yarn.route("GET", "/ws/v1/cluster/scheduler",
               {"scheduler": {"schedulerInfo": {"type": "fifoScheduler", "qstate": "RUNNING"}}})
    assert list(rm.queues()) == ["default"]


def test_scheduler_max_allocation(yarn: FakeYarn, rm: ResourceManager) -> None:
    yarn.route("GET", "/ws/v1/cluster/scheduler", scheduler_json(queue_json("default")))
    assert rm.scheduler_max_allocation() == Resource(4096, 4, None)


def test_nodes(yarn: FakeYarn, rm: ResourceManager) -> None:
    yarn.route("GET", "/ws/v1/cluster/nodes", nodes_json(
        node_json("n1:45451", http="n1:8042", used=(1024, 1, 1), labels=["gpu"]),
        node_json("n2:45452", state="UNHEALTHY", total=(2048, 2, None), health="ERROR disk"),
    ))
    first, second = rm.nodes()
    assert first.id == "n1:45451"
    assert first.http_address == "n1:8042"
    assert first.total == Resource(4096, 4, 2)
    assert first.used == Resource(1024, 1, 1)
    assert first.available == Resource(3072, 3, 1)
    assert first.node_labels == ("gpu",)
    assert second.state == "UNHEALTHY"
    assert second.health_report == "ERROR disk"
    assert second.total.gpus is None  # no yarn.io/gpu resource type on this node


def test_nodes_state_filter_and_old_shape(yarn: FakeYarn, rm: ResourceManager) -> None:
    old = {"id": "n1:1", "state": "RUNNING", "nodeHTTPAddress": "n1:8042",
           "usedMemoryMB": 1024, "availMemoryMB": 3072,
           "usedVirtualCores": 1, "availableVirtualCores": 3}
    yarn.route("GET", "/ws/v1/cluster/nodes", {"nodes": {"node": old}})
    (node,) = rm.nodes(states=["RUNNING", "UNHEALTHY"])
    assert node.total == Resource(4096, 4, None)
    assert yarn.requests_to("/ws/v1/cluster/nodes")[0].query == {"states": "RUNNING,UNHEALTHY"}


def test_no_nodes(yarn: FakeYarn, rm: ResourceManager) -> None:
    yarn.route("GET", "/ws/v1/cluster/nodes", {"nodes": None})
    assert rm.nodes() == []


@pytest.mark.parametrize(
    ("body", "labels"),
    [
        ({}, []),
        ({"nodeLabelInfo": [{"name": "gpu", "exclusivity": True},
                            {"name": "big", "exclusivity": False}]}, ["gpu", "big"]),
        ({"nodeLabelInfo": {"name": "gpu", "exclusivity": True}}, ["gpu"]),
        ({"nodeLabels": ["gpu", "big"]}, ["gpu", "big"]),
        ({"nodeLabels": "gpu"}, ["gpu"]),
    ],
)
def test_node_labels(
    yarn: FakeYarn, rm: ResourceManager, body: dict[str, Any], labels: list[str]
) -> None:
    yarn.route("GET", "/ws/v1/cluster/get-node-labels", body)
    assert rm.node_labels() == labels


# ---------------------------------------------------------------------------------------------
# Applications


def test_app(yarn: FakeYarn, rm: ResourceManager) -> None:
    yarn.route("GET", f"/ws/v1/cluster/apps/{APP}", {"app": app_json()})
    app = rm.app(APP)
    assert isinstance(app, AppInfo)
    assert app.state is YarnAppState.RUNNING
    assert app.state == "RUNNING"  # a StrEnum: compares with plain strings
    assert not app.is_terminal
    assert (app.queue, app.queue_path) == ("default", "root.default")
    assert app.tags == ("dlsubmit", "team-vision")
    assert app.progress == 10.0
    assert app.am_host_http == "localhost:8042"
    assert app.allocated_memory_mib == 512
    assert app.started_ms == 1795981840415
    assert app.finished_ms == 0


def test_finished_app_without_tags(yarn: FakeYarn, rm: ResourceManager) -> None:
    raw = app_json(state="FINISHED", finalStatus="SUCCEEDED", applicationTags="",
                   finishedTime=1795981875218, queue="default")
    yarn.route("GET", f"/ws/v1/cluster/apps/{APP}", {"app": raw})
    app = rm.app(APP)
    assert app.is_terminal
    assert app.tags == ()
    assert app.queue == "default"
    assert app.final_status == "SUCCEEDED"


def test_unknown_app_is_exit_4(yarn: FakeYarn, rm: ResourceManager) -> None:
    message = f"java.lang.Exception: app with id: {APP} not found"
    yarn.route("GET", f"/ws/v1/cluster/apps/{APP}",
               Reply(404, remote_exception("NotFoundException", message)))
    with pytest.raises(NoSuchApplicationError) as info:
        rm.app(APP)
    assert info.value.exit_code == 4
    assert APP in str(info.value)


def test_malformed_app_id_is_a_usage_error(yarn: FakeYarn, rm: ResourceManager) -> None:
    for call in (rm.app, rm.app_state, rm.app_attempts, rm.kill):
        with pytest.raises(UsageError, match="expected application_"):
            call("bogus")
    assert yarn.seen == []


def test_apps_sends_the_filters(yarn: FakeYarn, rm: ResourceManager) -> None:
    yarn.route("GET", "/ws/v1/cluster/apps", {"apps": {"app": [app_json(), app_json(
        "application_1795981701459_0002", state="ACCEPTED")]}})
    apps = rm.apps(states=["running", "ACCEPTED"], user="alice", tags=["Team-Vision"],
                   queue="default", limit=5)
    assert [a.state for a in apps] == ["RUNNING", "ACCEPTED"]
    query = yarn.requests_to("/ws/v1/cluster/apps")[0].query
    assert query["states"] == "RUNNING,ACCEPTED"
    assert query["user"] == "alice"
    assert query["applicationTags"] == "team-vision"  # YARN stores tags lowercased
    assert query["queue"] == "default"
    assert query["limit"] == "5"
    assert "resourceRequests" in query["deSelects"]


def test_apps_with_all_tags(yarn: FakeYarn, rm: ResourceManager) -> None:
    other = app_json("application_1795981701459_0002", applicationTags="dlsubmit")
    yarn.route("GET", "/ws/v1/cluster/apps", {"apps": {"app": [app_json(), other]}})
    # The RM matches any tag; all_tags keeps the apps that carry every one.
    assert len(rm.apps(tags=["dlsubmit", "team-vision"])) == 2
    assert [a.id for a in rm.apps(tags=["dlsubmit", "Team-Vision"], all_tags=True)] == [APP]


@pytest.mark.parametrize("body", [{"apps": None}, {"apps": {}}])
def test_no_apps(yarn: FakeYarn, rm: ResourceManager, body: dict[str, Any]) -> None:
    yarn.route("GET", "/ws/v1/cluster/apps", body)
    assert rm.apps() == []


def test_rm_error_message_is_passed_on(yarn: FakeYarn, rm: ResourceManager) -> None:
    message = ("java.lang.Exception: Invalid application-state BOGUS specified. It should be one "
               "of [NEW, NEW_SAVING, SUBMITTED, ACCEPTED, RUNNING, FINISHED, FAILED, KILLED]")
    yarn.route("GET", "/ws/v1/cluster/apps",
               Reply(400, remote_exception("BadRequestException", message)))
    with pytest.raises(DLSubmitError) as info:
        rm.apps(states=["BOGUS"])
    text = str(info.value)
    assert "400" in text
    assert "Invalid application-state BOGUS specified" in text
    assert "java.lang.Exception" not in text
    assert type(info.value) is DLSubmitError


def test_non_json_answer_is_a_clear_error(yarn: FakeYarn, rm: ResourceManager) -> None:
    yarn.route("GET", "/ws/v1/cluster/info", Reply(200, "<html>proxy login</html>"))
    with pytest.raises(DLSubmitError, match="not JSON"):
        rm.cluster_info()


def test_app_attempts(yarn: FakeYarn, rm: ResourceManager) -> None:
    attempt = {"id": 2, "startTime": 2, "finishedTime": 0,
               "containerId": "container_1795981701459_0001_02_000001",
               "nodeHttpAddress": "localhost:8043", "nodeId": "localhost:45452",
               "logsLink": "http://x", "appAttemptId": "appattempt_1795981701459_0001_000002",
               "appAttemptState": "RUNNING"}
    first = dict(attempt, id=1, appAttemptState="FAILED", diagnosticsInfo="AM exited 1")
    yarn.route("GET", f"/ws/v1/cluster/apps/{APP}/appattempts",
               {"appAttempts": {"appAttempt": [attempt, first]}})
    attempts = rm.app_attempts(APP)
    assert [a.attempt for a in attempts] == [1, 2]
    assert attempts[0].diagnostics == "AM exited 1"
    assert attempts[1].container_id == "container_1795981701459_0001_02_000001"
    assert attempts[1].node_http_address == "localhost:8043"


# ---------------------------------------------------------------------------------------------
# Kill


def test_kill_waits_for_killed(yarn: FakeYarn, rm: ResourceManager) -> None:
    state = f"/ws/v1/cluster/apps/{APP}/state"
    yarn.route("PUT", state, Reply(202, {"state": "KILLING"}))
    yarn.route("GET", state, [Reply(200, {"state": "RUNNING"}), Reply(200, {"state": "KILLED"})])
    yarn.route("GET", f"/ws/v1/cluster/apps/{APP}",
               {"app": app_json(state="KILLED", finalStatus="KILLED")})
    app = rm.kill(APP, diagnostics="stopped by dlsubmit kill", poll_interval_s=0.01)
    assert app.state == "KILLED"
    (put,) = [seen for seen in yarn.seen if seen.method == "PUT"]
    assert put.body == {"state": "KILLED", "diagnostics": "stopped by dlsubmit kill"}
    assert "user.name" in put.query
    assert len(yarn.requests_to(state)) == 3  # the PUT and two polls


def test_kill_is_idempotent_on_a_finished_app(yarn: FakeYarn, rm: ResourceManager) -> None:
    state = f"/ws/v1/cluster/apps/{APP}/state"
    yarn.route("PUT", state, Reply(200, {"state": "FINISHED"}))
    yarn.route("GET", state, {"state": "FINISHED"})
    yarn.route("GET", f"/ws/v1/cluster/apps/{APP}",
               {"app": app_json(state="FINISHED", finalStatus="SUCCEEDED")})
    assert rm.kill(APP).state == "FINISHED"


def test_kill_is_bounded(yarn: FakeYarn, rm: ResourceManager) -> None:
    state = f"/ws/v1/cluster/apps/{APP}/state"
    yarn.route("PUT", state, Reply(202, {"state": "KILLING"}))
    yarn.route("GET", state, {"state": "RUNNING"})
    with pytest.raises(WaitTimeoutError, match="kill requested"):
        rm.kill(APP, timeout_s=0.1, poll_interval_s=0.02)


def test_kill_unknown_app(yarn: FakeYarn, rm: ResourceManager) -> None:
    with pytest.raises(NoSuchApplicationError):
        rm.kill(APP)


def test_kill_refused(yarn: FakeYarn, rm: ResourceManager) -> None:
    yarn.route("PUT", f"/ws/v1/cluster/apps/{APP}/state", Reply(403, remote_exception(
        "ForbiddenException", "java.lang.Exception: Unauthorized")))
    with pytest.raises(DLSubmitError, match=r"403.*Unauthorized"):
        rm.kill(APP)


# ---------------------------------------------------------------------------------------------
# NodeManager logs


def test_container_log_whole_and_tail(yarn: FakeYarn, rm: ResourceManager) -> None:
    files = {(CONTAINER, "stdout"): b"line 1\nline 2\nEnd of LogType:stdout\nlast\n"}
    serve_logs(yarn, files)
    assert rm.container_log(yarn.address, CONTAINER, "stdout") == files[(CONTAINER, "stdout")]\
        .decode()
    assert rm.container_log(yarn.address, CONTAINER, "stdout", tail_bytes=5) == "last\n"
    seen = yarn.requests_to(f"/ws/v1/node/containerlogs/{CONTAINER}/stdout")
    assert seen[-1].query == {"size": "-5"}
    assert "text/plain" in seen[-1].headers["Accept"]


def test_read_container_log_offsets(yarn: FakeYarn, rm: ResourceManager) -> None:
    serve_logs(yarn, {(CONTAINER, "stdout"): b"0123456789"})
    assert rm.read_container_log(f"http://{yarn.address}/", CONTAINER, "stdout", -4) == \
        ContainerLogChunk(b"6789", 6, 10)
    assert rm.read_container_log(yarn.address, CONTAINER, "stdout", -40) == \
        ContainerLogChunk(b"0123456789", 0, 10)
    assert rm.read_container_log(yarn.address, CONTAINER, "stdout", 3) == \
        ContainerLogChunk(b"012", 0, 10)
    assert rm.read_container_log(yarn.address, CONTAINER, "stdout", 0) == \
        ContainerLogChunk(b"", 0, 10)


def test_missing_container_log(yarn: FakeYarn, rm: ResourceManager) -> None:
    serve_logs(yarn, {})
    assert rm.read_container_log(yarn.address, CONTAINER, "stdout") is None
    assert rm.container_log(yarn.address, CONTAINER, "stdout") == ""


def test_container_log_files(yarn: FakeYarn, rm: ResourceManager) -> None:
    yarn.route("GET", f"/ws/v1/node/containers/{CONTAINER}/logs", {"containerLogsInfo": {
        "containerLogInfo": [{"fileName": "stdout", "fileSize": "10"},
                             {"fileName": "stderr", "fileSize": "0"}],
        "logAggregationType": "LOCAL", "containerId": CONTAINER}})
    assert rm.container_log_files(yarn.address, CONTAINER) == ["stdout", "stderr"]


def test_container_log_files_of_a_gone_container(yarn: FakeYarn, rm: ResourceManager) -> None:
    # What 3.4.2 answers once the container completed and its logs were aggregated.
    message = ("org.apache.hadoop.yarn.webapp.NotFoundException: java.lang.Exception: Unknown "
               "container. Container either has not started or has already completed or "
               "doesn't belong to this node at all.")
    yarn.route("GET", f"/ws/v1/node/containers/{CONTAINER}/logs",
               Reply(503, remote_exception("WebApplicationException", message)))
    assert rm.container_log_files(yarn.address, CONTAINER) == []
    # A container that never logged: no containerLogInfo at all.
    yarn.route("GET", f"/ws/v1/node/containers/{CONTAINER}/logs",
               {"containerLogsInfo": {"logAggregationType": "LOCAL"}})
    assert rm.container_log_files(yarn.address, CONTAINER) == []


def test_bad_container_id(rm: ResourceManager) -> None:
    with pytest.raises(UsageError, match="container id"):
        rm.container_log("localhost:8042", "../../etc", "stdout")


def test_parse_log_dump_of_yarn_logs() -> None:
    # `yarn logs` (aggregated) adds a newline after the content; the byte count excludes it.
    dump = (
        b"Container: container_1_0002_01_000001 on localhost_45451\n"
        b"LogAggregationType: AGGREGATED\n" + b"=" * 57 + b"\n"
        b"LogType:stdout\nLogLastModifiedTime:Sun Nov 29 19:53:02 +0000 2026\nLogLength:18\n"
        b"LogContents:\nout-1\nout-2\nout-3\n\nEnd of LogType:stdout\n" + b"*" * 87 + b"\n\n"
        b"Container: container_1_0002_01_000001 on localhost_45451\n"
        b"LogAggregationType: AGGREGATED\n" + b"=" * 57 + b"\n"
        b"LogType:stderr\nLogLastModifiedTime:Sun Nov 29 19:53:02 +0000 2026\nLogLength:3\n"
        b"LogContents:\nerr\nEnd of LogType:stderr\n" + b"*" * 87 + b"\n\n"
    )
    out, err = parse_log_dump(dump)
    assert (out.file_name, out.content, out.file_length) == ("stdout", b"out-1\nout-2\nout-3\n", 18)
    assert (err.file_name, err.content) == ("stderr", b"err")
    assert out.container_id == "container_1_0002_01_000001"
    assert parse_log_dump(b"Can not find any log file matching the pattern") == []


# ---------------------------------------------------------------------------------------------
# No requests exception leaks


def _every_call(rm: ResourceManager) -> list[Callable[[], Any]]:
    return [
        rm.cluster_info,
        rm.queues,
        rm.scheduler_max_allocation,
        rm.nodes,
        rm.node_labels,
        lambda: rm.app(APP),
        lambda: rm.app_state(APP),
        lambda: rm.apps(states=["RUNNING"]),
        lambda: rm.app_attempts(APP),
        lambda: rm.kill(APP),
    ]


def test_dead_rm_raises_cluster_unreachable_everywhere(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HADOOP_CONF_DIR", "/etc/hadoop/conf")
    url = dead_url()
    dead = ResourceManager(url)
    for call in _every_call(dead):
        with pytest.raises(ClusterUnreachableError) as info:
            call()
        assert info.value.exit_code == 3
        assert url in str(info.value)
        assert "is the cluster up? HADOOP_CONF_DIR=/etc/hadoop/conf" in str(info.value)
    nm = dead_url().removeprefix("http://")
    nm_calls: list[Callable[[], Any]] = [
        lambda: dead.container_log(nm, CONTAINER, "stdout"),
        lambda: dead.read_container_log(nm, CONTAINER, "stdout", -10),
        lambda: dead.container_log_files(nm, CONTAINER),
    ]
    for call in nm_calls:
        with pytest.raises(ClusterUnreachableError, match="NodeManager"):
            call()


def test_timeout_is_cluster_unreachable(
    yarn: FakeYarn, rm: ResourceManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rm_module, "_TIMEOUT_S", (1.0, 0.1))
    yarn.route("GET", "/ws/v1/cluster/info", Reply(200, {"clusterInfo": {}}, delay_s=0.5))
    with pytest.raises(ClusterUnreachableError, match="timed out"):
        rm.cluster_info()


def test_other_requests_errors_are_translated(yarn: FakeYarn, rm: ResourceManager) -> None:
    loop = Reply(302, "", headers={"Location": "/ws/v1/cluster/info"})
    yarn.route("GET", "/ws/v1/cluster/info", loop)
    with pytest.raises(DLSubmitError, match="redirects"):
        rm.cluster_info()
