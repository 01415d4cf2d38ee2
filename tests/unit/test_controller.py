"""Unit tests for appmaster.controller: the AppMaster's decisions, driven by a fake cluster.

:class:`FakeCluster` plays Skein and the task launchers: it carries out the controller's
actions (a container id for every request, published environments, kills, the shutdown) and
feeds back what a real cluster would report, on a clock the test moves by hand.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from appmaster.controller import (
    MAX_HOST_REFUSALS,
    SETTLE_S,
    YARN_VIEW_WAIT_S,
    Action,
    Controller,
    KillContainer,
    PublishEnv,
    RequestContainer,
    Shutdown,
)
from client.spec import JobSpec

T0 = 1_700_000_000.0  # epoch seconds: real clocks are never near 0
APP_ID = "application_1700000000000_0001"
LOST_NODE = "Container released on a *lost* node"
MEMORY_KILL = (
    "Container [pid=1,containerID=c] is running 100B beyond the 'PHYSICAL' memory limit. "
    "Current usage: 600 MB of 512 MB physical memory used; 2.1 GB of 1.0 GB virtual memory "
    "used. Killing container."
)
TRACEBACK = [
    "Traceback (most recent call last):",
    '  File "train.py", line 3, in <module>',
    "ValueError: bad learning rate",
]


def make_spec(
    *,
    framework: str = "pytorch",
    roles: dict[str, Any] | None = None,
    retry: dict[str, Any] | None = None,
    scheduling: dict[str, Any] | None = None,
) -> JobSpec:
    raw: dict[str, Any] = {
        "name": "ddp",
        "framework": framework,
        "roles": roles
        or {"worker": {"instances": 2, "command": "python train.py",
                       "resources": {"memory": "512 MiB"}}},
        "retry": {"backoff": "10s", **(retry or {})},
        "scheduling": scheduling or {},
    }
    return JobSpec.from_dict(raw)


class FakeCluster:
    """Skein and the launchers, as far as the controller can tell."""

    def __init__(self, spec: JobSpec, controller: Controller | None = None) -> None:
        self.spec = spec
        self.ctl = controller or Controller(spec, APP_ID, user="alice")
        self.now = T0
        self.seq = 0
        self.cid: dict[str, str] = {}  # task -> its current Skein container id
        self.requests: list[RequestContainer] = []
        self.published: dict[str, dict[str, str]] = {}
        self.killed: list[str] = []
        self.shutdowns: list[Shutdown] = []

    # ---- carrying out actions ----------------------------------------------------------

    def apply(self, actions: list[Action]) -> list[Action]:
        for action in actions:
            if isinstance(action, RequestContainer):
                self.seq += 1
                cid = f"{action.service}_{self.seq}"
                self.ctl.bind_container(action.task, cid)
                self.cid[action.task] = cid
                self.requests.append(action)
            elif isinstance(action, PublishEnv):
                self.published[action.key] = action.env
            elif isinstance(action, KillContainer):
                self.killed.append(action.container_id)
            elif isinstance(action, Shutdown):
                self.shutdowns.append(action)
        return actions

    # ---- what the cluster reports ------------------------------------------------------

    def at(self, t: float) -> FakeCluster:
        self.now = T0 + t
        return self

    def start(self) -> list[Action]:
        return self.apply(self.ctl.start(self.now))

    def tick(self, t: float) -> list[Action]:
        self.at(t)
        return self.apply(self.ctl.tick(self.now))

    def place(self, task: str, host: str = "node-a") -> list[Action]:
        cid = self.cid[task]
        return self.apply(self.ctl.on_container(
            cid, "RUNNING", yarn_container_id=f"container_{cid}",
            node_http_address=f"{host}:8042", exit_message="", finish_time=None, now=self.now,
        ))

    def register(self, task: str, host: str = "node-a", port: int = 29500) -> list[Action]:
        return self.apply(self.ctl.on_registration(
            task, {"host": host, "port": port, "container_id": f"container_{self.cid[task]}"},
            self.now,
        ))

    def run_all(self, hosts: dict[str, str] | None = None) -> None:
        """Place, register and start every task of the current attempt."""
        tasks = [str(t) for t in self.spec.tasks()]
        for i, task in enumerate(tasks):
            host = (hosts or {}).get(task, f"node-{i}")
            self.place(task, host)
            self.register(task, host, 29500 + i)
        for task in tasks:
            self.ctl.on_started(task, self.now)

    def exit(self, task: str, code: int, log_tail: list[str] | None = None,
             finished: float | None = None) -> list[Action]:
        report = {"exit_code": code, "log_tail": log_tail or [], "started": T0,
                  "finished": T0 + finished if finished is not None else self.now}
        return self.apply(self.ctl.on_exit_report(task, report, self.now))

    def yarn_end(self, task: str, state: str, message: str = "",
                 finished: float | None = None) -> list[Action]:
        cid = self.cid[task]
        return self.apply(self.ctl.on_container(
            cid, state, yarn_container_id=f"container_{cid}", node_http_address=None,
            exit_message=message, finish_time=T0 + finished if finished is not None else self.now,
            now=self.now,
        ))

    def fail(self, task: str, code: int, log_tail: list[str] | None = None) -> list[Action]:
        """A task exits non-zero on its own: its launcher's report, then YARN's view."""
        message = f"Container exited with a non-zero exit code {code}. Error file: prelaunch.err."
        return self.exit(task, code, log_tail) + self.yarn_end(task, "FAILED", message)

    def succeed(self, task: str) -> list[Action]:
        return self.exit(task, 0) + self.yarn_end(task, "SUCCEEDED", "")

    # ---- reading the outcome -----------------------------------------------------------

    def snap(self) -> dict[str, Any]:
        return self.ctl.snapshot(self.now)

    def task(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self.snap()["tasks"][name]
        return result


def kinds(actions: list[Action], kind: type) -> list[Any]:
    return [a for a in actions if isinstance(a, kind)]


def fail_attempt(c: FakeCluster, t: float, task: str = "worker:1", code: int = 1,
                 log_tail: list[str] | None = None) -> list[Action]:
    """``task`` fails at ``t``; the settle window closes; returns the closing actions."""
    c.at(t)
    c.fail(task, code, log_tail)
    return c.tick(t + SETTLE_S)


# ---- gang start ----------------------------------------------------------------------------


def test_start_requests_one_container_per_task_with_launcher_env() -> None:
    c = FakeCluster(make_spec())
    actions = c.start()
    assert [(a.task, a.service) for a in actions] == [
        ("worker:0", "worker"), ("worker:1", "worker")
    ]
    assert actions[1].env["DLSUBMIT_ATTEMPT"] == "1"
    assert actions[1].env["DLSUBMIT_INDEX"] == "1"
    assert c.ctl.state == "QUEUED"


def test_prestarted_attempt_1_adopts_the_containers_skein_started_from_the_spec() -> None:
    spec = make_spec(retry={"policy": "always", "max_attempts": 2, "backoff": "10s"})
    c = FakeCluster(spec, Controller(spec, APP_ID, user="alice", prestarted=True))
    assert c.start() == []  # nothing to ask for: the submitted spec already did
    # Skein names them <service>_<n>; the controller knows them before YARN places them.
    for task in ("worker:0", "worker:1"):
        c.cid[task] = f"worker_{task[-1]}"
        assert c.ctl.owns(c.cid[task])
    assert "attempt 1/2 started: asked for at submit 2 containers" in [
        e["message"] for e in c.snap()["events"]
    ]
    c.run_all()
    assert set(c.published) == {"a1/env/worker:0", "a1/env/worker:1"}
    assert c.ctl.state == "RUNNING"
    # A retry is the AppMaster's own request again.
    fail_attempt(c, 10, code=3)
    retry = kinds(c.tick(10 + SETTLE_S + 10), RequestContainer)
    assert [(r.task, r.env["DLSUBMIT_ATTEMPT"]) for r in retry] == [
        ("worker:0", "2"), ("worker:1", "2")
    ]
    assert not c.ctl.owns("worker_0")  # attempt 1's containers are no longer the job's


def test_a_resumed_job_does_not_adopt_the_specs_containers() -> None:
    # A restarted AppMaster resumes at a new attempt: it requests its containers itself.
    spec = make_spec()
    first = FakeCluster(spec, Controller(spec, APP_ID, user="alice", prestarted=True))
    first.start()
    record = first.snap()
    resumed = Controller(spec, APP_ID, user="alice", am_attempt=2, record=record, prestarted=True)
    assert len(kinds(resumed.start(T0 + 30), RequestContainer)) == 2
    assert not resumed.owns("worker_0")


def test_gang_publishes_nothing_until_every_task_registered() -> None:
    spec = make_spec(roles={"worker": {"instances": 3, "command": "python train.py"}})
    c = FakeCluster(spec)
    c.start()
    hosts = {"worker:0": "node-a", "worker:1": "node-b", "worker:2": "node-a"}
    for task, host in hosts.items():
        c.place(task, host)
    # Registration order is not rank order: ranks must still follow the spec.
    assert c.register("worker:2", "node-a", 29502) == []
    assert c.register("worker:1", "node-b", 29501) == []
    assert c.ctl.state == "QUEUED"
    assert c.published == {}

    actions = c.register("worker:0", "node-a", 29500)

    assert {a.key for a in kinds(actions, PublishEnv)} == {
        "a1/env/worker:0", "a1/env/worker:1", "a1/env/worker:2"
    }
    for rank in range(3):
        env = c.published[f"a1/env/worker:{rank}"]
        assert env["RANK"] == str(rank)
        assert env["WORLD_SIZE"] == "3"
        assert (env["MASTER_ADDR"], env["MASTER_PORT"]) == ("node-a", "29500")
        assert env["DLSUBMIT_APP_ID"] == APP_ID
        assert env["DLSUBMIT_ATTEMPT"] == "1"
    assert c.published["a1/env/worker:2"]["LOCAL_RANK"] == "1"
    assert c.ctl.state == "RUNNING"
    assert c.snap()["attempts"][0]["state"] == "RUNNING"
    # A repeated registration (the master re-reads the KV store) publishes nothing new.
    assert c.register("worker:1", "node-b", 29501) == []


def test_registration_before_yarn_reports_running_still_counts() -> None:
    c = FakeCluster(make_spec())
    c.start()
    c.register("worker:0", "node-a", 1)
    actions = c.register("worker:1", "node-b", 2)
    assert len(kinds(actions, PublishEnv)) == 2
    assert c.ctl.state == "RUNNING"


# ---- success --------------------------------------------------------------------------------


def test_success_shuts_down_succeeded_and_kills_untracked_roles() -> None:
    spec = make_spec(roles={
        "worker": {"instances": 2, "command": "python train.py"},
        "ps": {"instances": 1, "command": "python ps.py", "tracked": False},
    })
    c = FakeCluster(spec)
    c.start()
    c.run_all()
    c.at(50)
    assert c.succeed("worker:0") == []
    assert c.ctl.progress() == pytest.approx(0.1 + 0.85 / 2)

    actions = c.succeed("worker:1")

    assert kinds(actions, KillContainer) == [KillContainer(c.cid["ps:0"])]
    assert kinds(actions, Shutdown)[0].status == "SUCCEEDED"
    assert "succeeded on attempt 1/3" in c.shutdowns[0].diagnostics
    snap = c.snap()
    assert snap["state"] == "SUCCEEDED"
    assert snap["root_cause"] is None
    assert snap["progress"] == 1.0
    assert snap["attempts"][0]["state"] == "SUCCEEDED"
    assert snap["tasks"]["ps:0"]["state"] == "SUCCEEDED"  # stopped while running: its job is done
    assert snap["tasks"]["ps:0"]["failure"] is None
    # YARN reporting the ps container killed afterwards changes nothing.
    c.yarn_end("ps:0", "KILLED", "Killed by user request.")
    assert c.snap()["state"] == "SUCCEEDED"
    assert c.tick(100) == []


def test_success_waits_for_every_tracked_task() -> None:
    c = FakeCluster(make_spec())
    c.start()
    c.run_all()
    c.succeed("worker:0")
    assert c.tick(1000) == []
    assert c.shutdowns == []
    assert c.ctl.state == "RUNNING"


# ---- one failure: YARN's view, settle window, collateral ----------------------------------


def test_nonzero_exit_waits_for_yarns_view_then_uses_it() -> None:
    c = FakeCluster(make_spec())
    c.start()
    c.run_all()
    c.at(10)
    assert c.exit("worker:1", 143) == []
    c.tick(10 + YARN_VIEW_WAIT_S - 0.1)
    assert c.task("worker:1")["failure"] is None
    assert c.ctl.state == "RUNNING"

    # YARN's view arrives: the exit code was a symptom of the memory kill.
    c.at(12)
    c.yarn_end("worker:1", "FAILED", MEMORY_KILL)

    failure = c.task("worker:1")["failure"]
    assert failure["category"] == "HOST_OOM"
    assert failure["yarn_exit_status"] == -104


@pytest.mark.parametrize(
    ("message", "status"),
    [
        ("682.0 MB of 256 MB physical memory used", -104),
        ("1.2 GB of 537.6 MB virtual memory used", -103),
        ("Container killed by YARN for exceeding memory limits", -104),
    ],
)
def test_skeins_short_memory_kill_message_is_a_memory_kill(message: str, status: int) -> None:
    # Skein's exit message for a -104/-103 kill is only the usage, not YARN's diagnostics
    # (seen on the dev cluster: it used to be classified KILLED_EXTERNALLY and retried).
    c = FakeCluster(make_spec())
    c.start()
    c.run_all()
    c.at(10)
    c.exit("worker:1", 143)
    c.yarn_end("worker:1", "FAILED", message)

    failure = c.task("worker:1")["failure"]
    assert failure["category"] == "HOST_OOM"
    assert failure["retryable"] is False
    assert failure["yarn_exit_status"] == status
    if status == -104 and "MB of" in message:
        assert failure["hint"] == (
            "raise roles.worker.resources.memory (now 512 MiB; the task used 682 MiB)"
        )


def test_nonzero_exit_without_yarns_view_is_classified_after_the_wait() -> None:
    c = FakeCluster(make_spec())
    c.start()
    c.run_all()
    c.at(10)
    c.exit("worker:1", 1, TRACEBACK)
    c.tick(10 + YARN_VIEW_WAIT_S - 0.1)
    assert c.task("worker:1")["failure"] is None

    c.tick(10 + YARN_VIEW_WAIT_S)

    failure = c.task("worker:1")["failure"]
    assert failure["category"] == "USER_CODE_ERROR"
    assert c.task("worker:1")["state"] == "FAILED"
    assert failure["evidence"][-1] == "ValueError: bad learning rate"


def test_peers_are_stopped_only_after_the_settle_window() -> None:
    spec = make_spec(roles={"worker": {"instances": 3, "command": "python train.py"}})
    c = FakeCluster(spec)
    c.start()
    c.run_all()
    c.at(20)
    assert c.fail("worker:0", 1, TRACEBACK) == []
    assert c.tick(20 + SETTLE_S - 0.1) == []
    assert c.killed == []

    actions = c.tick(20 + SETTLE_S)

    assert set(c.killed) == {c.cid["worker:1"], c.cid["worker:2"]}
    assert kinds(actions, Shutdown)[0].status == "FAILED"
    for peer in ("worker:1", "worker:2"):
        assert c.task(peer)["state"] == "STOPPED"
        assert c.task(peer)["failure"]["category"] == "PEER_ABORTED"
    root = c.snap()["root_cause"]
    assert (root["category"], root["task"]) == ("USER_CODE_ERROR", "worker:0")


def test_root_cause_is_the_non_collateral_failure() -> None:
    c = FakeCluster(make_spec())
    c.start()
    c.run_all()
    c.at(30)
    c.fail("worker:0", 1, TRACEBACK)
    # worker:1 goes down with its peer (an NCCL abort, then YARN's kill of the container)
    # while the settle window is open.
    c.at(30.5)
    c.yarn_end("worker:1", "KILLED", "Container killed by the ApplicationMaster.")
    c.tick(30 + SETTLE_S)

    snap = c.snap()
    assert snap["tasks"]["worker:1"]["failure"]["category"] == "PEER_ABORTED"
    assert (snap["root_cause"]["category"], snap["root_cause"]["task"]) == (
        "USER_CODE_ERROR", "worker:0"
    )
    assert snap["attempts"][0]["failure"]["task"] == "worker:0"
    assert "USER_CODE_ERROR worker:0" in c.shutdowns[0].diagnostics


def test_untracked_failure_fails_the_attempt_even_if_tracked_tasks_then_succeed() -> None:
    spec = make_spec(retry={"policy": "never"}, roles={
        "worker": {"instances": 2, "command": "python train.py"},
        "ps": {"instances": 1, "command": "python ps.py", "tracked": False},
    })
    c = FakeCluster(spec)
    c.start()
    c.run_all()
    c.at(30)
    c.fail("ps:0", 1, TRACEBACK)
    c.at(31)
    c.succeed("worker:0")
    assert c.succeed("worker:1") == []  # every tracked task is done, but the ps failed
    assert c.shutdowns == []

    c.tick(30 + SETTLE_S)

    assert [s.status for s in c.shutdowns] == ["FAILED"]
    root = c.snap()["root_cause"]
    assert (root["category"], root["task"]) == ("USER_CODE_ERROR", "ps:0")


def test_failure_reported_in_the_settle_window_is_not_collateral() -> None:
    """A task that exited on its own before the AppMaster stopped anything failed by itself.

    worker:0 crashed first (finished at t=9) but YARN's view of it is slow; worker:1's failure
    is fully known at t=10 and opens the settle window. When the window closes, worker:0 must be
    classified on its own report (and, being earliest, be the root cause), not marked
    PEER_ABORTED as if the AppMaster had stopped it.
    """
    c = FakeCluster(make_spec())
    c.start()
    c.run_all()
    c.at(9.5)
    c.exit("worker:0", 1, ["RuntimeError: NCCL error in: ProcessGroupNCCL.cpp:1, unhandled "
                           "system error"], finished=9)
    c.at(10)
    c.fail("worker:1", 1, TRACEBACK)

    c.tick(10 + SETTLE_S)

    snap = c.snap()
    assert snap["tasks"]["worker:0"]["state"] == "FAILED"
    assert snap["tasks"]["worker:0"]["failure"]["category"] == "NCCL_ERROR"
    assert (snap["root_cause"]["category"], snap["root_cause"]["task"]) == (
        "NCCL_ERROR", "worker:0"
    )
    assert {f["task"] for f in snap["attempts"][0]["failures"]} == {"worker:0", "worker:1"}
    # NCCL_ERROR is retried (counted): the next attempt starts after the backoff.
    assert c.ctl.state == "RETRYING"


# ---- retry decisions -----------------------------------------------------------------------


def test_exit_3_with_smart_policy_fails_after_one_attempt() -> None:
    c = FakeCluster(make_spec(retry={"policy": "smart", "max_attempts": 3}))
    c.start()
    c.run_all()
    actions = fail_attempt(c, 40, code=3, log_tail=TRACEBACK)

    assert [s.status for s in kinds(actions, Shutdown)] == ["FAILED"]
    assert c.ctl.state == "FAILED"
    assert len(c.requests) == 2  # the first attempt's containers only
    assert c.tick(1000) == []
    snap = c.snap()
    assert snap["attempt"] == 1
    assert snap["root_cause"]["category"] == "USER_CODE_ERROR"
    assert snap["root_cause"]["exit_code"] == 3
    assert snap["attempts"][0]["counted"] is True
    assert snap["budget"] == {"attempts_counted": 1, "infra_retries_used": 0}
    assert snap["diagnostics"].startswith("dlsubmit: USER_CODE_ERROR worker:1")


def test_policy_always_retries_until_max_attempts() -> None:
    c = FakeCluster(make_spec(retry={"policy": "always", "max_attempts": 2, "backoff": "10s"}))
    c.start()
    c.run_all()
    fail_attempt(c, 40, code=3, log_tail=TRACEBACK)
    assert c.ctl.state == "RETRYING"
    assert c.shutdowns == []

    assert c.tick(40 + SETTLE_S + 9.9) == []
    second = kinds(c.tick(40 + SETTLE_S + 10), RequestContainer)
    assert [r.env["DLSUBMIT_ATTEMPT"] for r in second] == ["2", "2"]
    assert c.ctl.state == "QUEUED"
    c.run_all()
    assert "a2/env/worker:0" in c.published
    assert c.published["a2/env/worker:0"]["DLSUBMIT_ATTEMPT"] == "2"

    fail_attempt(c, 100, code=3, log_tail=TRACEBACK)

    assert [s.status for s in c.shutdowns] == ["FAILED"]
    snap = c.snap()
    assert snap["attempt"] == 2
    assert [a["state"] for a in snap["attempts"]] == ["FAILED", "FAILED"]
    assert "max_attempts=2 is used up" in snap["attempts"][1]["decision"]
    assert snap["budget"]["attempts_counted"] == 2
    assert len(c.requests) == 4


def test_exit_200_is_retried_and_the_job_then_succeeds() -> None:
    c = FakeCluster(make_spec())
    c.start()
    c.run_all()
    fail_attempt(c, 40, code=200, log_tail=["transient: storage busy"])
    assert c.ctl.state == "RETRYING"
    c.tick(40 + SETTLE_S + 10)
    c.run_all()
    c.at(80)
    c.succeed("worker:0")
    c.succeed("worker:1")

    assert [s.status for s in c.shutdowns] == ["SUCCEEDED"]
    snap = c.snap()
    assert snap["state"] == "SUCCEEDED"
    assert snap["attempt"] == 2
    first, second = snap["attempts"]
    assert first["state"] == "FAILED"
    assert first["failure"]["category"] == "USER_DECLARED"
    assert first["failure"]["retryable"] is True
    assert first["counted"] is True
    assert second["state"] == "SUCCEEDED"
    assert snap["tasks"]["worker:0"]["attempt"] == 2
    # A job that succeeded has no root cause; attempt 1's failure stays in its history.
    assert snap["root_cause"] is None


def test_yarn_memory_kill_is_host_oom_and_not_retried() -> None:
    c = FakeCluster(make_spec())
    c.start()
    c.run_all({"worker:0": "node-a", "worker:1": "node-b"})
    c.at(40)
    c.yarn_end("worker:1", "FAILED", MEMORY_KILL)  # YARN killed it: no launcher report
    c.tick(40 + SETTLE_S)

    assert [s.status for s in c.shutdowns] == ["FAILED"]
    root = c.snap()["root_cause"]
    assert (root["category"], root["task"], root["host"]) == ("HOST_OOM", "worker:1", "node-b")
    assert root["retryable"] is False
    assert "roles.worker.resources.memory" in root["hint"]
    assert "512 MiB" in root["hint"]
    assert len(c.requests) == 2


# ---- timeouts and deadline -------------------------------------------------------------------


def test_allocation_timeout_is_retried_uncounted_with_growing_backoff() -> None:
    spec = make_spec(scheduling={"allocation_timeout": "60s"}, retry={"backoff": "10s"})
    c = FakeCluster(spec)
    c.start()
    c.place("worker:0")  # worker:1 never gets a container
    assert c.tick(59.9) == []

    actions = c.tick(60)

    # The pending request is cancelled along with the placed container.
    assert set(kinds(actions, KillContainer)) == {
        KillContainer(c.cid["worker:0"]), KillContainer(c.cid["worker:1"])
    }
    assert c.shutdowns == []
    assert c.ctl.state == "RETRYING"
    snap = c.snap()
    failure = snap["attempts"][0]["failure"]
    assert failure["category"] == "ALLOCATION_TIMEOUT"
    assert "worker x1" in failure["evidence"][0]
    assert snap["attempts"][0]["counted"] is False
    assert snap["budget"] == {"attempts_counted": 0, "infra_retries_used": 1}

    assert c.tick(69.9) == []
    assert len(kinds(c.tick(70), RequestContainer)) == 2
    # The second timeout backs off twice as long (10 s, then 20 s).
    c.tick(130)
    assert c.ctl.state == "RETRYING"
    assert kinds(c.tick(149.9), RequestContainer) == []
    assert len(kinds(c.tick(150), RequestContainer)) == 2
    assert c.snap()["attempt"] == 3


def test_registration_timeout_is_rendezvous_timeout() -> None:
    spec = make_spec(scheduling={"registration_timeout": "30s"})
    c = FakeCluster(spec)
    c.start()
    c.at(1)
    c.place("worker:0", "node-a")
    c.place("worker:1", "node-b")
    c.register("worker:0", "node-a")
    assert c.tick(30.9) == []

    actions = c.tick(31)

    assert set(kinds(actions, KillContainer)) == {
        KillContainer(c.cid["worker:0"]), KillContainer(c.cid["worker:1"])
    }
    snap = c.snap()
    failure = snap["attempts"][0]["failure"]
    assert (failure["category"], failure["task"], failure["host"]) == (
        "RENDEZVOUS_TIMEOUT", "worker:1", "node-b"
    )
    assert snap["tasks"]["worker:1"]["state"] == "FAILED"
    assert snap["attempts"][0]["counted"] is True
    assert c.ctl.state == "RETRYING"  # smart retries it, counted


def test_max_runtime_is_deadline_exceeded_and_final() -> None:
    c = FakeCluster(make_spec(scheduling={"max_runtime": "100s"}, retry={"policy": "always"}))
    c.start()
    c.run_all()
    assert c.tick(99.9) == []

    actions = c.tick(100)

    assert set(kinds(actions, KillContainer)) == {
        KillContainer(c.cid["worker:0"]), KillContainer(c.cid["worker:1"])
    }
    assert [s.status for s in c.shutdowns] == ["FAILED"]
    snap = c.snap()
    assert snap["state"] == "FAILED"
    assert snap["root_cause"]["category"] == "DEADLINE_EXCEEDED"
    assert snap["attempts"][0]["state"] == "FAILED"
    assert "DEADLINE_EXCEEDED" in c.shutdowns[0].diagnostics
    assert c.tick(200) == []
    assert len(c.requests) == 2


def test_terminate_kills_everything_as_user_cancelled() -> None:
    c = FakeCluster(make_spec())
    c.start()
    c.run_all()
    c.at(30)

    actions = c.apply(c.ctl.on_terminate(c.now))

    assert set(kinds(actions, KillContainer)) == {
        KillContainer(c.cid["worker:0"]), KillContainer(c.cid["worker:1"])
    }
    assert [s.status for s in c.shutdowns] == ["KILLED"]
    snap = c.snap()
    assert snap["state"] == "KILLED"
    assert snap["root_cause"]["category"] == "USER_CANCELLED"
    assert snap["attempts"][0]["state"] == "KILLED"
    assert c.ctl.on_terminate(c.now) == []
    assert c.tick(40) == []


# ---- avoided hosts ---------------------------------------------------------------------------


def _lose_node_a(c: FakeCluster) -> None:
    """Attempt 1 loses worker:0's node (node-a); the retry is due at t=60."""
    c.start()
    c.run_all({"worker:0": "node-a", "worker:1": "node-b"})
    c.at(40)
    c.yarn_end("worker:0", "FAILED", LOST_NODE)
    c.tick(40 + SETTLE_S)
    assert c.ctl.state == "RETRYING"
    c.tick(60)
    assert c.ctl.attempt == 2


def test_node_failure_is_retried_uncounted_and_its_host_avoided() -> None:
    c = FakeCluster(make_spec())
    _lose_node_a(c)
    snap = c.snap()
    assert snap["attempts"][0]["failure"]["category"] == "NODE_FAILURE"
    assert snap["attempts"][0]["counted"] is False
    # The NodeManager (host:port) is avoided, not the host: it may run other NodeManagers.
    assert snap["avoid_hosts"] == ["node-a:8042"]
    assert snap["attempts"][0]["failure"]["host"] == "node-a"
    assert "avoiding node-a:8042" in snap["attempts"][0]["decision"]
    assert snap["budget"] == {"attempts_counted": 0, "infra_retries_used": 1}


def test_container_on_avoided_host_is_refused_and_requested_again() -> None:
    c = FakeCluster(make_spec())
    _lose_node_a(c)
    refused = c.cid["worker:0"]

    actions = c.place("worker:0", "node-a")

    assert actions[0] == KillContainer(refused)
    assert [(r.task, r.env["DLSUBMIT_ATTEMPT"]) for r in kinds(actions, RequestContainer)] == [
        ("worker:0", "2")
    ]
    assert c.cid["worker:0"] != refused
    assert c.task("worker:0")["host"] is None
    # YARN's report of the refused container does not touch the task.
    c.apply(c.ctl.on_container(refused, "KILLED", yarn_container_id=None, node_http_address=None,
                               exit_message="Killed by user request.", finish_time=None,
                               now=c.now))
    assert c.task("worker:0")["failure"] is None
    # A container elsewhere is accepted.
    assert c.place("worker:0", "node-c") == []
    assert c.task("worker:0")["host"] == "node-c"
    c.register("worker:0", "node-c")
    c.place("worker:1", "node-b")
    assert len(kinds(c.register("worker:1", "node-b"), PublishEnv)) == 2


def test_avoided_host_is_accepted_after_max_refusals() -> None:
    c = FakeCluster(make_spec())
    _lose_node_a(c)
    for _ in range(MAX_HOST_REFUSALS):
        assert kinds(c.place("worker:0", "node-a"), RequestContainer)
    # The cluster keeps offering only node-a: better to run there than never.
    assert c.place("worker:0", "node-a") == []
    assert c.task("worker:0")["host"] == "node-a"


def test_other_nodemanager_on_the_failed_nodes_host_is_not_avoided() -> None:
    # The dev cluster runs two NodeManagers on localhost; losing one must not make the retry
    # refuse the other (seen on the real cluster: every placement was refused).
    c = FakeCluster(make_spec())
    _lose_node_a(c)
    actions = c.apply(c.ctl.on_container(
        c.cid["worker:0"], "RUNNING", yarn_container_id="container_x",
        node_http_address="node-a:8043", exit_message="", finish_time=None, now=c.now,
    ))
    assert actions == []
    assert c.task("worker:0")["nm_http_address"] == "node-a:8043"
    assert not any("avoided" in e["message"] for e in c.snap()["events"])


def test_refused_containers_launcher_is_not_taken_for_the_task() -> None:
    # A container refused on an avoided node may still start its launcher, which registers and
    # then reports an exit (killed while waiting for its environment) under the task's keys.
    # Seen on the real cluster: the refused launcher's port went into the published
    # environment and its exit 1 failed the attempt as USER_CODE_ERROR.
    c = FakeCluster(make_spec())
    _lose_node_a(c)
    refused = f"container_{c.cid['worker:0']}"
    c.place("worker:0", "node-a")  # refused
    replacement = c.cid["worker:0"]
    c.apply(c.ctl.on_registration(
        "worker:0", {"host": "node-a", "port": 1111, "container_id": refused, "time": T0 + 61},
        c.now,
    ))
    assert c.task("worker:0")["state"] == "REQUESTED"
    stale_exit = {"exit_code": 1, "log_tail": [], "started": T0 + 61, "finished": T0 + 62}
    assert c.ctl.on_exit_report("worker:0", stale_exit, c.now) == []
    assert c.task("worker:0")["exit_code"] is None

    c.place("worker:0", "node-c")
    c.place("worker:1", "node-b")
    c.register("worker:1", "node-b", 2222)
    published = kinds(c.apply(c.ctl.on_registration(
        "worker:0",
        {"host": "node-c", "port": 3333, "container_id": f"container_{replacement}",
         "time": T0 + 65},
        c.now,
    )), PublishEnv)
    assert len(published) == 2
    assert published[0].env["MASTER_ADDR"] == "node-c"
    assert published[0].env["MASTER_PORT"] == "3333"
    # The refused launcher's report, should it arrive now, still does not count.
    assert c.ctl.on_exit_report("worker:0", stale_exit, c.now) == []
    assert c.task("worker:0")["failure"] is None
    ok = {"exit_code": 0, "log_tail": [], "started": T0 + 65, "finished": T0 + 70}
    c.apply(c.ctl.on_exit_report("worker:0", ok, c.now))
    assert c.task("worker:0")["state"] == "SUCCEEDED"


# ---- resume after an AppMaster loss ----------------------------------------------------------


def _record_of(c: FakeCluster) -> dict[str, Any]:
    """The job record as the next AppMaster reads it back from HDFS."""
    record: dict[str, Any] = json.loads(json.dumps(c.snap()))
    return record


def test_resume_continues_the_attempt_count_and_keeps_history() -> None:
    spec = make_spec(retry={"max_attempts": 2})
    old = FakeCluster(spec)
    old.start()
    old.run_all()
    fail_attempt(old, 40, code=200)  # attempt 1: counted, retried
    old.tick(60)
    old.run_all()  # attempt 2 running when the AppMaster dies
    old.at(90)
    record = _record_of(old)

    ctl = Controller(spec, APP_ID, user="alice", am_attempt=2, record=record)
    new = FakeCluster(spec, ctl).at(200)
    requests = kinds(new.start(), RequestContainer)

    assert [r.env["DLSUBMIT_ATTEMPT"] for r in requests] == ["3", "3"]
    snap = new.snap()
    assert snap["attempt"] == 3
    assert snap["am_attempt"] == 2
    assert snap["started"] == T0
    first, lost, current = snap["attempts"]
    assert first["failure"]["category"] == "USER_DECLARED"
    assert first["counted"] is True
    assert lost["state"] == "FAILED"
    assert lost["counted"] is False
    assert lost["failure"]["category"] == "NODE_FAILURE"
    assert lost["failure"]["counted"] is False
    assert lost["started"] == T0 + 60
    assert current["attempt"] == 3
    assert current["am_attempt"] == 2
    assert snap["budget"] == {"attempts_counted": 1, "infra_retries_used": 1}
    old_messages = [e["message"] for e in record["events"]]
    assert [e["message"] for e in snap["events"]][: len(old_messages)] == old_messages
    assert any("resumed" in e["message"] for e in snap["events"])
    # The lost attempt did not use up max_attempts=2: one counted failure is still allowed
    # to end the job, and it does (1 + 1 = 2 counted).
    new.run_all()
    fail_attempt(new, 240, code=200)
    assert [s.status for s in new.shutdowns] == ["FAILED"]


def test_resume_times_the_lost_attempt_and_the_resume_event_truthfully() -> None:
    """The lost attempt ended at the record's last update at the latest, not when it started;
    the resume is logged when the new AppMaster starts, not at the job's start time."""
    spec = make_spec()
    old = FakeCluster(spec)
    old.start()
    old.at(5).run_all()
    old.at(90)
    record = _record_of(old)

    new = FakeCluster(spec, Controller(spec, APP_ID, user="alice", am_attempt=2, record=record))
    new.at(200).start()

    snap = new.snap()
    lost = snap["attempts"][0]
    assert lost["finished"] == T0 + 90
    resumed = [e for e in snap["events"] if "resumed" in e["message"]]
    assert [e["time"] for e in resumed] == [T0 + 200]
    times = [e["time"] for e in snap["events"]]
    assert times == sorted(times)


def test_resume_of_a_finished_job_only_repeats_its_outcome() -> None:
    spec = make_spec()
    old = FakeCluster(spec)
    old.start()
    old.run_all()
    fail_attempt(old, 40, code=3, log_tail=TRACEBACK)
    record = _record_of(old)

    new = FakeCluster(spec, Controller(spec, APP_ID, user="alice", am_attempt=2, record=record))
    actions = new.start()

    assert actions == [Shutdown("FAILED", old.shutdowns[0].diagnostics)]
    assert new.requests == []


# ---- the record ------------------------------------------------------------------------------

RECORD_KEYS = {
    "app_id", "name", "user", "state", "attempt", "max_attempts", "am_attempt", "updated",
    "diagnostics", "root_cause", "attempts", "tasks", "events", "budget", "avoid_hosts",
}
ATTEMPT_KEYS = {"attempt", "state", "started", "finished", "counted", "failure", "failures",
                "decision"}
TASK_KEYS = {"role", "index", "rank", "attempt", "state", "host", "port", "container_id",
             "nm_http_address", "exit_code", "log_tail", "started", "finished", "gpus", "gpu"}


def _check_layout(snap: dict[str, Any]) -> None:
    assert json.loads(json.dumps(snap)) == snap  # JSON-serialisable, nothing lost
    assert set(snap) >= RECORD_KEYS
    assert set(snap["budget"]) == {"attempts_counted", "infra_retries_used"}
    for attempt in snap["attempts"]:
        assert set(attempt) >= ATTEMPT_KEYS
    for task in snap["tasks"].values():
        assert set(task) >= TASK_KEYS
    for event in snap["events"]:
        assert set(event) == {"time", "message"}


def test_snapshot_is_json_and_follows_the_record_layout() -> None:
    c = FakeCluster(make_spec())
    _check_layout(c.snap())  # before start
    c.start()
    c.run_all()
    c.ctl.on_metrics("worker:0", {"0": {"util_pct": 97, "mem_used_mib": 1000}})
    snap = c.snap()
    _check_layout(snap)
    assert snap["app_id"] == APP_ID
    assert snap["user"] == "alice"
    assert snap["updated"] == c.now
    worker = snap["tasks"]["worker:1"]
    assert (worker["role"], worker["index"], worker["rank"]) == ("worker", 1, 1)
    assert worker["container_id"] == f"container_{c.cid['worker:1']}"
    assert worker["nm_http_address"] == "node-1:8042"
    assert snap["tasks"]["worker:0"]["gpu"] == {"0": {"util_pct": 97, "mem_used_mib": 1000}}

    fail_attempt(c, 40, code=1, log_tail=TRACEBACK)
    snap = c.snap()
    _check_layout(snap)
    assert snap["tasks"]["worker:1"]["log_tail"] == TRACEBACK
    assert snap["tasks"]["worker:1"]["exit_code"] == 1
    assert snap["attempts"][0]["failure"] == snap["root_cause"]
    assert any("attempt 1/3 failed: USER_CODE_ERROR worker:1" in e["message"]
               for e in snap["events"])


def test_settle_window_is_cut_short_when_every_task_has_ended() -> None:
    retry = {"policy": "always", "max_attempts": 2, "backoff": "0s"}
    # One task: when it has failed nothing else can, so the retry is decided at the next tick.
    one = FakeCluster(make_spec(roles={"worker": {"instances": 1, "command": "x"}}, retry=retry))
    one.start()
    one.run_all()
    one.at(10).fail("worker:0", 3)
    one.tick(10.5)
    assert one.ctl.state == "RETRYING"
    # Two tasks, one still running: the window stays open for its failure, if one comes.
    two = FakeCluster(make_spec(retry=retry))
    two.start()
    two.run_all()
    two.at(10).fail("worker:1", 3)
    two.tick(10.5)
    assert two.ctl.state != "RETRYING"
    two.tick(10 + SETTLE_S)
    assert two.ctl.state == "RETRYING"
