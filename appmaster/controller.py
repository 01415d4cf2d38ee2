"""The AppMaster's decisions: attempts, gang start, failures, retries (pure, time injected).

The master loop (:mod:`appmaster.master`) feeds this controller what it observes — containers
from Skein, registrations and exit reports from the task launchers, the clock — and carries out
the :data:`Action` values it returns. Nothing here sleeps, talks to Skein or touches files, so
every path (gang timeout, a failure and its collateral, retries, deadlines, resume after an
AppMaster loss) is unit-tested with a fake clock.

A task moves ``PENDING → REQUESTED → ALLOCATED → REGISTERED → RUNNING → SUCCEEDED | FAILED |
STOPPED``. An attempt is RUNNING once every task has registered (gang); the first failure
opens a short settle window in which other failures of the same attempt are collected, then
the remaining tasks are stopped (PEER_ABORTED), the root cause is chosen and the retry policy
decides.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from appmaster import classify as cls
from appmaster.rendezvous import Endpoint, attempt_envs
from appmaster.retry import Decision, RetryBudget, decide, next_budget
from client.failures import Category, Failure
from client.spec import JobSpec, TaskId
from client.states import JobState, check_move

logger = logging.getLogger(__name__)

__all__ = [
    "Action",
    "Controller",
    "KillContainer",
    "PublishEnv",
    "RequestContainer",
    "Shutdown",
    "TaskRecord",
]

# After a task's launcher reports a non-zero exit, wait this long for YARN's own view of the
# container (a memory kill shows up there, not in the exit code) before classifying.
YARN_VIEW_WAIT_S = 5.0
# After the first failure of an attempt, collect other failures this long before stopping the
# rest: the root cause is the earliest failure, and it is not always the first one reported.
# Cut short when every task of the attempt has already ended.
SETTLE_S = 2.0
# How often a container placed on an avoided node is refused before it is accepted anyway.
# Nodes are avoided by NodeManager address (host:port), not host name: several NodeManagers
# can share a host (the dev cluster runs two on localhost), and only the failed one is bad.
MAX_HOST_REFUSALS = 3


@dataclass(frozen=True)
class RequestContainer:
    """Ask Skein for a container of ``service`` for ``task``, with these launcher variables."""

    task: str
    service: str
    env: dict[str, str]


@dataclass(frozen=True)
class PublishEnv:
    """Hand a registered task its environment (KV key ``a<N>/env/<task>``)."""

    key: str
    env: dict[str, str]


@dataclass(frozen=True)
class KillContainer:
    """Stop (or cancel the request of) a container."""

    container_id: str


@dataclass(frozen=True)
class Shutdown:
    """End the application: YARN final status and one line of diagnostics."""

    status: str  # SUCCEEDED | FAILED | KILLED
    diagnostics: str


Action = RequestContainer | PublishEnv | KillContainer | Shutdown


@dataclass
class TaskRecord:
    """One task of the current attempt, as the AppMaster knows it."""

    task: TaskId
    rank: int
    attempt: int
    state: str = "PENDING"
    container_id: str | None = None  # Skein's id ("worker_3")
    yarn_container_id: str | None = None
    host: str | None = None
    nm_http_address: str | None = None
    port: int | None = None
    requested: float | None = None
    allocated: float | None = None
    registered: float | None = None
    started: float | None = None
    finished: float | None = None
    exit_code: int | None = None
    log_tail: list[str] = field(default_factory=list)
    report: cls.LauncherReport | None = None
    report_time: float | None = None
    yarn: cls.YarnView | None = None
    stopped_by_am: bool = False
    failure: Failure | None = None
    gpus: str = ""
    gpu: dict[str, Any] = field(default_factory=dict)
    refusals: int = 0
    # Containers refused on an avoided node. Their launchers may still start, register and
    # report an exit under this task's keys: those reports are not this task's.
    refused: set[str] = field(default_factory=set)
    launcher_started: float | None = None  # "time" of the accepted registration
    stale_launchers: set[float] = field(default_factory=set)  # "time" of refused launchers

    @property
    def done(self) -> bool:
        return self.state in ("SUCCEEDED", "FAILED", "STOPPED")

    def to_dict(self) -> dict[str, Any]:
        return {
            "role": self.task.role,
            "index": self.task.index,
            "rank": self.rank,
            "attempt": self.attempt,
            "state": self.state,
            "container_id": self.yarn_container_id,
            "host": self.host,
            "port": self.port,
            "nm_http_address": self.nm_http_address,
            "exit_code": self.exit_code,
            "log_tail": self.log_tail[-20:],
            "started": self.started,
            "finished": self.finished,
            "gpus": self.gpus,
            "gpu": self.gpu,
            "failure": self.failure.to_dict() if self.failure else None,
        }


class Controller:
    """Drives one job through its attempts; see the module docstring."""

    def __init__(
        self,
        spec: JobSpec,
        app_id: str,
        *,
        user: str,
        am_attempt: int = 1,
        record: Mapping[str, Any] | None = None,
        rendezvous: Endpoint | None = None,
        prestarted: bool = False,
    ) -> None:
        self.spec = spec
        self.app_id = app_id
        self.user = user
        self.am_attempt = am_attempt
        self.rendezvous = rendezvous  # Horovod's gloo rendezvous, served by the AppMaster
        # Skein started attempt 1's containers from the submitted spec: adopt, do not request.
        self.prestarted = prestarted and record is None
        self.state = JobState.SUBMITTED
        self.attempt = 0
        self.tasks: dict[str, TaskRecord] = {}
        self._containers: dict[str, TaskRecord] = {}  # Skein container id -> task
        self._tracked_left = 0  # tracked tasks of this attempt that have not succeeded
        self._unregistered = 0  # tasks of this attempt whose launcher has not registered
        self.attempts: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []
        self.budget = RetryBudget()
        self.avoid_hosts: frozenset[str] = frozenset()
        self.root_cause: Failure | None = None
        self.diagnostics = ""
        self.started: float | None = None
        self.dirty = True
        self._attempt_started = 0.0
        self._failing_since: float | None = None
        self._retry_at: float | None = None
        self._failures: list[Failure] = []
        self._shutdown: Shutdown | None = None
        self._resume_note: str | None = None
        if record:
            self._resume(record)

    # ---- inputs -------------------------------------------------------------------------

    def start(self, now: float) -> list[Action]:
        """Begin the job (or continue it after an AppMaster restart)."""
        if self.started is None:
            self.started = now
        if self._shutdown:
            return [self._shutdown]
        if self._resume_note:
            self._event(now, self._resume_note)
            self._resume_note = None
        return self._start_attempt(now)

    def bind_container(self, task: str, container_id: str) -> None:
        """Record the Skein container id returned for ``task``'s request."""
        self.tasks[task].container_id = container_id
        self._containers[container_id] = self.tasks[task]

    def owns(self, container_id: str) -> bool:
        """True when ``container_id`` runs (or ran) a task of the current attempt."""
        return container_id in self._containers

    def on_container(
        self,
        container_id: str,
        state: str,
        *,
        yarn_container_id: str | None,
        node_http_address: str | None,
        exit_message: str,
        finish_time: float | None,
        now: float,
    ) -> list[Action]:
        """What Skein says of one of our containers (called for each container, each poll)."""
        rec = self._by_container(container_id)
        if rec is None:
            return []
        actions: list[Action] = []
        if rec.yarn_container_id is None and yarn_container_id:
            rec.yarn_container_id = yarn_container_id
        if node_http_address and rec.nm_http_address is None:
            rec.nm_http_address = node_http_address
            rec.host = node_http_address.rsplit(":", 1)[0]
        if state == "RUNNING" and rec.state == "REQUESTED":
            rec.state, rec.allocated = "ALLOCATED", now
            self.dirty = True
            actions += self._maybe_refuse_host(rec, now)
        elif state in ("SUCCEEDED", "FAILED", "KILLED") and rec.yarn is None:
            rec.yarn = cls.YarnView(
                state=state,
                exit_status=_exit_status(exit_message),
                diagnostics=exit_message,
                host=rec.host,
                memory_limit_mib=self.spec.roles[rec.task.role].resources.memory_mib,
            )
            rec.finished = rec.finished or finish_time or now
            self.dirty = True
            actions += self._task_ended(rec, now)
        return actions

    def on_registration(self, task: str, data: Mapping[str, Any], now: float) -> list[Action]:
        """A launcher reported in with its ``host`` and ``port``."""
        rec = self.tasks.get(task)
        if rec is None or rec.registered is not None or rec.done:
            return []
        if data.get("container_id") in rec.refused:
            if data.get("time") is not None:
                rec.stale_launchers.add(float(data["time"]))
            return []
        rec.launcher_started = data.get("time")
        rec.registered = now
        self._unregistered -= 1
        rec.port = int(data["port"])
        rec.host = str(data.get("host") or rec.host)
        rec.gpus = str(data.get("gpus", ""))
        rec.nm_http_address = rec.nm_http_address or data.get("nm_http_address")
        rec.yarn_container_id = rec.yarn_container_id or data.get("container_id")
        if rec.state in ("REQUESTED", "ALLOCATED"):
            rec.state = "REGISTERED"
            rec.allocated = rec.allocated or now
        self.dirty = True
        return self._maybe_publish(now)

    def on_exit_report(self, task: str, data: Mapping[str, Any], now: float) -> list[Action]:
        """A launcher's exit report: exit code, log tail, error file, metrics."""
        rec = self.tasks.get(task)
        if rec is None or rec.report is not None:
            return []
        # A launcher's exit report carries the start time it registered with ("started" ==
        # the registration's "time"): a report of another launcher is a refused container's.
        started = data.get("started")
        if started is not None and (
            started in rec.stale_launchers
            or (rec.launcher_started is not None and started != rec.launcher_started)
        ):
            return []
        rec.report = cls.LauncherReport(
            exit_code=data.get("exit_code"),
            signal=data.get("signal"),
            log_tail=tuple(data.get("log_tail") or ()),
            error_file=data.get("error_file"),
            registered=rec.registered is not None,
            stopped_by_appmaster=rec.stopped_by_am,
            peak_rss_mib=data.get("peak_rss_mib"),
            gpu_peak_memory_mib=data.get("gpu_peak_memory_mib"),
            gpu_health_errors=tuple(data.get("gpu_health_errors") or ()),
            setup_error=data.get("setup_error"),
            data_access_error=data.get("data_access_error"),
        )
        rec.report_time = now
        rec.exit_code = rec.report.exit_code
        rec.log_tail = list(rec.report.log_tail)
        rec.started = data.get("started") or rec.started
        rec.finished = data.get("finished") or now
        self.dirty = True
        return self._task_ended(rec, now)

    def on_metrics(self, task: str, data: Mapping[str, Any]) -> None:
        """Latest GPU metrics of a task (shown by ``status`` and the tracking page)."""
        rec = self.tasks.get(task)
        if rec is not None and data != rec.gpu:
            rec.gpu = dict(data)
            self.dirty = True

    def on_started(self, task: str, started: float) -> None:
        """The launcher started the user command."""
        rec = self.tasks.get(task)
        if rec is not None and rec.state == "REGISTERED":
            rec.state, rec.started = "RUNNING", started
            self.dirty = True

    def tick(self, now: float) -> list[Action]:
        """Timers: settle window, allocation/registration timeouts, deadline, retry backoff."""
        if self._shutdown or self.state.is_terminal():
            return []
        actions: list[Action] = []
        for rec in self.tasks.values():
            # A report without YARN's view: classify once YARN had its chance.
            if (
                rec.report is not None
                and rec.failure is None
                and not rec.done
                and now - (rec.report_time or now) >= YARN_VIEW_WAIT_S
            ):
                actions += self._fail_task(rec, now)
        if self.state is JobState.RETRYING:
            if self._retry_at is not None and now >= self._retry_at:
                return actions + self._start_attempt(now)
            return actions
        max_runtime = self.spec.scheduling.max_runtime_s
        if max_runtime and self.started is not None and now - self.started >= max_runtime:
            return actions + self._finish_all(
                JobState.FAILED, cls.deadline_exceeded(max_runtime, now=now), now
            )
        if self._failing_since is not None:
            # The window waits for other tasks' failures; with every task already ended
            # (a one-task job, say) there is nothing left to wait for.
            if now - self._failing_since >= SETTLE_S or self._all_ended():
                actions += self._end_attempt(now)
            return actions
        actions += self._check_timeouts(now)
        return actions

    def on_terminate(self, now: float) -> list[Action]:
        """YARN (``dlsubmit kill``) stopped the application."""
        if self.state.is_terminal():
            return []
        return self._finish_all(JobState.KILLED, cls.user_cancelled(now=now), now)

    # ---- attempts -------------------------------------------------------------------------

    def _start_attempt(self, now: float) -> list[Action]:
        self.attempt += 1
        self._attempt_started = now
        self._failing_since = None
        self._retry_at = None
        self._failures = []
        self._move(JobState.QUEUED)
        self.tasks = {
            str(t): TaskRecord(task=t, rank=rank, attempt=self.attempt)
            for rank, t in enumerate(self.spec.tasks())
        }
        self._containers = {}
        self._unregistered = len(self.tasks)
        self._tracked_left = sum(
            1 for rec in self.tasks.values() if self.spec.roles[rec.task.role].tracked
        )
        self.attempts.append(
            {
                "attempt": self.attempt,
                "state": "QUEUED",
                "started": now,
                "finished": None,
                "failure": None,
                "failures": [],
                "decision": "",
                "counted": None,
                "am_attempt": self.am_attempt,
            }
        )
        adopt = self.prestarted and self.attempt == 1
        asked = "asked for at submit" if adopt else "requesting"
        self._event(now, f"attempt {self._label()} started: {asked} {len(self.tasks)} containers")
        actions: list[Action] = []
        for name, rec in self.tasks.items():
            rec.state, rec.requested = "REQUESTED", now
            if adopt:
                # Skein names a service's containers <service>_<n>, n from 0 in order.
                self.bind_container(name, f"{rec.task.role}_{rec.task.index}")
            else:
                actions.append(RequestContainer(name, rec.task.role, self._launcher_env(rec)))
        return actions

    def _launcher_env(self, rec: TaskRecord) -> dict[str, str]:
        resources = self.spec.roles[rec.task.role].resources
        return {
            "DLSUBMIT_ATTEMPT": str(rec.attempt),
            "DLSUBMIT_ROLE": rec.task.role,
            "DLSUBMIT_INDEX": str(rec.task.index),
            "DLSUBMIT_GPUS": str(resources.gpus),
        }

    def _maybe_refuse_host(self, rec: TaskRecord, now: float) -> list[Action]:
        node = rec.nm_http_address
        if node not in self.avoid_hosts or rec.refusals >= MAX_HOST_REFUSALS:
            return []
        # YARN has no per-request node blacklist through Skein: refuse and ask again.
        self._event(now, f"{rec.task} placed on avoided node {node}: asking for another")
        old = rec.container_id
        rec.refusals += 1
        if rec.yarn_container_id:
            rec.refused.add(rec.yarn_container_id)
        rec.state, rec.container_id, rec.host, rec.nm_http_address = "REQUESTED", None, None, None
        rec.yarn_container_id = None
        actions: list[Action] = [
            RequestContainer(str(rec.task), rec.task.role, self._launcher_env(rec))
        ]
        if old:
            actions.insert(0, KillContainer(old))
        return actions

    def _maybe_publish(self, now: float) -> list[Action]:
        if self.state is not JobState.QUEUED or self._failing_since is not None:
            return []
        if self._unregistered > 0:  # a counter: this runs once per registration
            return []
        endpoints = {
            name: Endpoint(rec.host or "localhost", rec.port or 0)
            for name, rec in self.tasks.items()
        }
        envs = attempt_envs(
            self.spec,
            app_id=self.app_id,
            attempt=self.attempt,
            endpoints=endpoints,
            rendezvous=self.rendezvous,
        )
        actions: list[Action] = [
            PublishEnv(f"a{self.attempt}/env/{name}", env) for name, env in envs.items()
        ]
        self._move(JobState.RUNNING)
        self.attempts[-1]["state"] = "RUNNING"
        waited = now - self._attempt_started
        self._event(
            now,
            f"attempt {self._label()} running: all {len(self.tasks)} tasks registered "
            f"after {waited:.1f}s",
        )
        return actions

    def _check_timeouts(self, now: float) -> list[Action]:
        sched = self.spec.scheduling
        if self.state is JobState.QUEUED:
            missing = [r for r in self.tasks.values() if r.state == "REQUESTED"]
            if missing and now - self._attempt_started >= sched.allocation_timeout_s:
                counts: dict[str, int] = {}
                for r in missing:
                    counts[r.task.role] = counts.get(r.task.role, 0) + 1
                placed = len(self.tasks) - len(missing)
                offered = (
                    f"{placed} of {len(self.tasks)} containers in {sched.allocation_timeout_s:.0f}s"
                )
                failure = cls.allocation_timeout(
                    counts, offered, sched.allocation_timeout_s, now=now
                )
                self._failures.append(failure)
                return self._end_attempt(now)
            for r in self.tasks.values():
                if (
                    r.state == "ALLOCATED"
                    and r.allocated is not None
                    and now - r.allocated >= sched.registration_timeout_s
                ):
                    failure = cls.rendezvous_timeout(
                        str(r.task), r.host, sched.registration_timeout_s, now=now
                    )
                    r.failure, r.state = failure, "FAILED"
                    r.stopped_by_am, r.finished = True, now
                    self._failures.append(failure)
                    # Marked FAILED (done) above, so _stop_remaining skips it: stop its
                    # container here, or it lingers into the next attempt holding resources.
                    kill: list[Action] = [KillContainer(r.container_id)] if r.container_id else []
                    return kill + self._end_attempt(now)
        return []

    def _task_ended(self, rec: TaskRecord, now: float) -> list[Action]:
        if rec.done:
            return []
        if rec.report is not None and rec.report.exit_code == 0 and not rec.stopped_by_am:
            rec.state = "SUCCEEDED"
            rec.exit_code = 0
            self.dirty = True
            return self._maybe_succeed(rec, now)
        if rec.report is None and rec.yarn is not None and rec.yarn.state == "SUCCEEDED":
            rec.state, rec.exit_code = "SUCCEEDED", 0
            return self._maybe_succeed(rec, now)
        if rec.report is not None and rec.yarn is None and not rec.stopped_by_am:
            return []  # wait (bounded, see tick) for YARN's view before classifying
        return self._fail_task(rec, now)

    def _fail_task(self, rec: TaskRecord, now: float) -> list[Action]:
        failure = cls.classify(
            str(rec.task),
            rec.yarn,
            rec.report,
            memory_limit_mib=self.spec.roles[rec.task.role].resources.memory_mib,
            role_field=f"roles.{rec.task.role}",
            now=rec.finished or now,
        )
        if rec.stopped_by_am and failure.category is not Category.PEER_ABORTED:
            failure = _as_peer_aborted(failure)
        if "APP_ID" in failure.hint:
            failure = dataclasses.replace(failure, hint=failure.hint.replace("APP_ID", self.app_id))
        rec.failure = failure
        rec.state = "STOPPED" if failure.category is Category.PEER_ABORTED else "FAILED"
        self.dirty = True
        if self.state.is_terminal() or self.state is JobState.RETRYING:
            return []
        if failure.category is not Category.PEER_ABORTED:
            self._failures.append(failure)
            self._event(now, f"task {rec.task} failed: {failure.one_line()}")
            if self._failing_since is None:
                self._failing_since = now
        return []

    def _all_ended(self) -> bool:
        # Only asked while an attempt is failing (the settle window): a pass is affordable.
        return all(rec.done for rec in self.tasks.values())

    def _maybe_succeed(self, rec: TaskRecord, now: float) -> list[Action]:
        # Called once per task that succeeded: a counter, not a pass over every task.
        if self.spec.roles[rec.task.role].tracked:
            self._tracked_left -= 1
        if self._failing_since is not None or self._tracked_left > 0:
            return []
        tracked = [r for r in self.tasks.values() if self.spec.roles[r.task.role].tracked]
        if not all(r.state == "SUCCEEDED" for r in tracked):
            return []
        actions = self._stop_remaining(now)
        self.attempts[-1].update(state="SUCCEEDED", finished=now)
        self.root_cause = None  # earlier attempts' failures stay in their history
        self.diagnostics = (
            f"dlsubmit: all {len(tracked)} tracked tasks succeeded on attempt {self._label()}"
        )
        self._move(JobState.SUCCEEDED)
        self._event(now, f"job SUCCEEDED on attempt {self._label()}")
        self._shutdown = Shutdown("SUCCEEDED", self.diagnostics)
        return [*actions, self._shutdown]

    def _stop_remaining(self, now: float, why: str = "another task failed") -> list[Action]:
        actions: list[Action] = []
        for rec in self.tasks.values():
            if rec.done:
                continue
            rec.stopped_by_am = True
            if rec.container_id:
                actions.append(KillContainer(rec.container_id))
            if not self.spec.roles[rec.task.role].tracked and not self._failures:
                rec.state = "SUCCEEDED" if rec.state == "RUNNING" else "STOPPED"
            else:
                rec.state = "STOPPED"
                rec.failure = _as_peer_aborted(
                    Failure(
                        Category.PEER_ABORTED, False, task=str(rec.task), host=rec.host, time=now
                    ),
                    why,
                )
            rec.finished = rec.finished or now
        self.dirty = True
        return actions

    def _end_attempt(self, now: float) -> list[Action]:
        # A launcher that reported a non-zero exit in the settle window (YARN's view still
        # pending) failed on its own: classify it now, not as collateral of the stop below.
        for rec in self.tasks.values():
            if rec.report is not None and rec.failure is None and not rec.done:
                self._fail_task(rec, now)
        failure = cls.root_cause(self._failures) or Failure(
            Category.UNKNOWN, True, evidence=("the attempt failed without a recorded cause",)
        )
        why = "another task failed" if failure.task else f"the attempt ended ({failure.category})"
        actions = self._stop_remaining(now, why)
        decision = decide(
            self._on_node(failure),
            policy=str(self.spec.retry.policy),
            max_attempts=self.spec.retry.max_attempts,
            max_infra_retries=self.spec.retry.max_infra_retries,
            budget=self.budget,
            backoff_s=self.spec.retry.backoff_s,
            avoid_hosts=self.avoid_hosts,
        )
        self._record_attempt_failure(failure, decision, now)
        if decision.retry:
            self._move(JobState.RETRYING)
            self._retry_at = now + decision.delay_s
            self._failing_since = None
            self._event(now, f"retrying in {decision.delay_s:.0f}s: {decision.reason}")
            return actions
        self._event(now, f"giving up: {decision.reason}")
        return actions + self._finish(JobState.FAILED, failure, now)

    def _on_node(self, failure: Failure) -> Failure:
        """``failure`` with its NodeManager address as host, for the node to avoid."""
        rec = self.tasks.get(failure.task or "")
        if failure.avoid_host and rec is not None and rec.nm_http_address:
            return dataclasses.replace(failure, host=rec.nm_http_address)
        return failure

    def _record_attempt_failure(self, failure: Failure, decision: Decision, now: float) -> None:
        self.budget = next_budget(self.budget, decision)
        self.avoid_hosts = decision.avoid_hosts
        self.root_cause = failure
        entry = self.attempts[-1]
        entry.update(
            state="FAILED",
            finished=now,
            failure=failure.to_dict(),
            failures=[f.to_dict() for f in self._failures],
            decision=decision.reason,
            counted=decision.counted,
        )
        self._event(now, f"attempt {self._label()} failed: {failure.one_line()}")

    def _finish_all(self, state: JobState, failure: Failure, now: float) -> list[Action]:
        actions = self._stop_remaining(now)
        if self.attempts and self.attempts[-1]["finished"] is None:
            self.attempts[-1].update(
                state=str(state),
                finished=now,
                failure=failure.to_dict(),
                failures=[failure.to_dict()],
            )
        self.root_cause = failure
        return actions + self._finish(state, failure, now)

    def _finish(self, state: JobState, failure: Failure, now: float) -> list[Action]:
        self.diagnostics = f"dlsubmit: {failure.one_line()}"
        self._move(state)
        self._event(now, f"job {state}: {failure.one_line()}")
        status = "KILLED" if state is JobState.KILLED else "FAILED"
        self._shutdown = Shutdown(status, self.diagnostics)
        return [self._shutdown]

    # ---- helpers ---------------------------------------------------------------------------

    def _by_container(self, container_id: str) -> TaskRecord | None:
        # An index, not a scan: the master asks for every container on every poll.
        rec = self._containers.get(container_id)
        return rec if rec is not None and rec.container_id == container_id else None

    def _move(self, new: JobState) -> None:
        if new is not self.state:
            self.state = check_move(self.state, new)
            self.dirty = True

    def _label(self) -> str:
        limit = self.spec.retry.max_attempts
        if self.attempt <= limit:
            return f"{self.attempt}/{limit}"
        # Uncounted (infrastructure) retries go past max_attempts: say what was counted.
        return f"{self.attempt} ({self.budget.attempts_counted + 1}/{limit} counted)"

    def _event(self, now: float, message: str) -> None:
        logger.info("%s", message)
        self.events.append({"time": now, "message": message})
        del self.events[:-200]
        self.dirty = True

    def progress(self) -> float:
        """Fraction for the RM UI: placement, then finished tracked tasks."""
        if self.state.is_terminal():
            return 1.0
        if self.state is not JobState.RUNNING:
            return 0.05
        tracked = [r for r in self.tasks.values() if self.spec.roles[r.task.role].tracked]
        done = sum(r.state == "SUCCEEDED" for r in tracked)
        return 0.1 + 0.85 * done / max(1, len(tracked))

    def snapshot(self, now: float) -> dict[str, Any]:
        """The job record (``status.json``, see :mod:`client.record`)."""
        return {
            "app_id": self.app_id,
            "name": self.spec.name,
            "user": self.user,
            "state": str(self.state),
            "attempt": self.attempt,
            "max_attempts": self.spec.retry.max_attempts,
            "am_attempt": self.am_attempt,
            "started": self.started,
            "updated": now,
            "diagnostics": self.diagnostics,
            "root_cause": self.root_cause.to_dict() if self.root_cause else None,
            "attempts": self.attempts,
            "tasks": {name: rec.to_dict() for name, rec in self.tasks.items()},
            "events": self.events,
            "budget": {
                "attempts_counted": self.budget.attempts_counted,
                "infra_retries_used": self.budget.infra_retries_used,
            },
            "avoid_hosts": sorted(self.avoid_hosts),
            "progress": self.progress(),
        }

    def _resume(self, record: Mapping[str, Any]) -> None:
        """Continue after an AppMaster loss: keep history and budget; the lost attempt failed."""
        self.attempt = int(record.get("attempt", 0))
        self.attempts = list(record.get("attempts", []))
        self.events = list(record.get("events", []))
        self.started = record.get("started")
        budget = record.get("budget") or {}
        self.budget = RetryBudget(
            int(budget.get("attempts_counted", 0)), int(budget.get("infra_retries_used", 0))
        )
        self.avoid_hosts = frozenset(record.get("avoid_hosts") or ())
        state = JobState(record.get("state", "SUBMITTED"))
        if state.is_terminal():
            # The job had ended; this AppMaster only repeats the outcome to YARN.
            self.state = state
            self.diagnostics = record.get("diagnostics", "")
            root = record.get("root_cause")
            self.root_cause = Failure.from_dict(root) if root else None
            status = "SUCCEEDED" if state is JobState.SUCCEEDED else str(state)
            self._shutdown = Shutdown(status if status != "KILLED" else "KILLED", self.diagnostics)
            return
        if self.attempts and self.attempts[-1].get("finished") is None:
            lost = Failure(
                Category.NODE_FAILURE,
                True,
                evidence=(
                    f"the AppMaster (YARN attempt {self.am_attempt - 1}) was lost while "
                    f"attempt {self.attempt} ran; its containers went with it",
                ),
                hint="nothing to change: a new AppMaster resumed the job from its HDFS record",
                counted=False,
            )
            self.budget = RetryBudget(
                self.budget.attempts_counted, self.budget.infra_retries_used + 1
            )
            # The record's last update is the last moment the lost attempt was known alive.
            self.attempts[-1].update(
                state="FAILED",
                finished=record.get("updated") or self.attempts[-1].get("started"),
                failure=lost.to_dict(),
                failures=[lost.to_dict()],
                decision="AppMaster lost: retried, not counted",
                counted=False,
            )
            self.root_cause = lost
        # Logged by start(), with the time the resume actually happens.
        self._resume_note = (
            f"AppMaster attempt {self.am_attempt} resumed the job after attempt {self.attempt}"
        )


def _as_peer_aborted(failure: Failure, why: str = "another task failed") -> Failure:
    return Failure(
        Category.PEER_ABORTED,
        False,
        task=failure.task,
        host=failure.host,
        exit_code=failure.exit_code,
        yarn_exit_status=failure.yarn_exit_status,
        evidence=(f"stopped by the AppMaster because {why}",),
        time=failure.time,
    )


def _exit_status(message: str) -> int | None:
    """YARN's exit status from Skein's exit message ("... Exit code is 143", "-104" ...).

    For a memory kill Skein does not pass YARN's diagnostics on: its exit message is only the
    usage ("682.0 MB of 256 MB physical memory used", or "... virtual memory used"), or
    "Container killed by YARN for exceeding memory limits" when it found no usage.
    """
    import re

    if "beyond the 'PHYSICAL' memory limit" in message or "physical memory used" in message:
        return -104
    if "beyond the 'VIRTUAL' memory limit" in message or "virtual memory used" in message:
        return -103
    if "exceeding memory limits" in message:
        return -104  # pmem or vmem; pmem is the check clusters keep on
    if "preempted" in message.lower():
        return -102
    if "lost" in message.lower() and "node" in message.lower():
        return -100
    match = re.search(r"[Ee]xit (?:code|status)(?: is|:)? (-?\d+)", message)
    return int(match.group(1)) if match else None
