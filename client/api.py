"""The Python library: :class:`Client` (a cluster) and :class:`Job` (one application).

    from client import Client, JobSpec
    client = Client()                                   # reads HADOOP_CONF_DIR
    job = client.submit(JobSpec.load("job.yaml", overrides={"roles.worker.instances": 4}))
    job.wait(timeout=600); job.status(); job.logs(task="worker:0"); job.diagnose()

Reads (status, list, kill, diagnose, logs) go to the RM REST API and the job's record in HDFS;
only submission goes through Skein's Java driver.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from client.errors import (
    ClusterUnreachableError,
    DLSubmitError,
    NoSuchApplicationError,
    UsageError,
    WaitTimeoutError,
)
from client.failures import Failure
from client.hadoop_conf import addresses, hadoop_user
from client.hdfs import Hdfs
from client.record import spec_path, status_path
from client.rm import AppInfo, ResourceManager
from client.states import JobState

if TYPE_CHECKING:
    from client.spec import JobSpec

# The read paths (status, list, kill, logs) import only what they use: the spec model (yaml),
# staging (zip) and Skein are imported by submit/clone alone. `dlsubmit status` is a new
# process each time, and its imports are most of its cost (BENCHMARKS.md).

logger = logging.getLogger(__name__)

__all__ = ["Client", "Job", "JobStatus"]

_YARN_TERMINAL = {"FINISHED", "FAILED", "KILLED"}


@dataclass(frozen=True)
class JobStatus:
    """What ``dlsubmit status`` shows."""

    app_id: str
    name: str
    state: JobState
    yarn_state: str
    attempt: int
    max_attempts: int
    roles: dict[str, dict[str, int]]  # role -> task state -> count
    root_cause: Failure | None
    diagnostics: str
    tracking_url: str
    progress: float
    queue: str = ""
    user: str = ""
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "app_id": self.app_id,
            "name": self.name,
            "state": str(self.state),
            "yarn_state": self.yarn_state,
            "attempt": self.attempt,
            "max_attempts": self.max_attempts,
            "roles": self.roles,
            "root_cause": self.root_cause.to_dict() if self.root_cause else None,
            "diagnostics": self.diagnostics,
            "tracking_url": self.tracking_url,
            "progress": self.progress,
            "queue": self.queue,
            "user": self.user,
            "tasks": self.tasks,
        }


def job_state(app: AppInfo, record: dict[str, Any] | None) -> JobState:
    """Merge the RM's view and the AppMaster's record into one JOBSPEC.md state."""
    recorded = JobState(record["state"]) if record and record.get("state") else None
    if recorded is not None and recorded.is_terminal():
        # The AppMaster decided. YARN may lag behind: Skein does not unregister a FAILED app
        # while AppMaster attempts remain, so a second AppMaster repeats the outcome.
        return recorded
    if app.state in _YARN_TERMINAL:
        if app.state == "KILLED" or app.final_status == "KILLED":
            return JobState.KILLED
        if app.state == "FINISHED" and app.final_status == "SUCCEEDED":
            return JobState.SUCCEEDED
        return JobState.FAILED
    if app.state in ("NEW", "NEW_SAVING", "SUBMITTED"):
        return JobState.SUBMITTED
    if recorded is not None and recorded is not JobState.SUBMITTED:
        return recorded
    return JobState.QUEUED


class Job:
    """A handle on one dlsubmit application."""

    def __init__(self, client: Client, app_id: str) -> None:
        self.client = client
        self.app_id = app_id

    def __repr__(self) -> str:
        return f"Job({self.app_id!r})"

    def record(self) -> dict[str, Any] | None:
        """The AppMaster's record in HDFS (None before the AppMaster wrote one)."""
        user = self.client.user
        try:
            data = self.client.hdfs.read_json(status_path(user, self.app_id))
        except DLSubmitError as exc:
            logger.debug("no record for %s: %s", self.app_id, exc)
            return None
        return data if isinstance(data, dict) else None

    def status(self) -> JobStatus:
        """State, attempt, per-role task counts, root cause, tracking URL."""
        app = self.client.rm.app(self.app_id)
        record = self.record()
        state = job_state(app, record)
        roles: dict[str, dict[str, int]] = {}
        tasks = (record or {}).get("tasks", {})
        for t in tasks.values():
            counts = roles.setdefault(t["role"], {})
            counts[t["state"]] = counts.get(t["state"], 0) + 1
        root = (record or {}).get("root_cause")
        return JobStatus(
            app_id=self.app_id,
            name=app.name,
            state=state,
            yarn_state=app.state,
            attempt=int((record or {}).get("attempt", 0)),
            max_attempts=int((record or {}).get("max_attempts", 0)),
            roles=roles,
            root_cause=Failure.from_dict(root) if root else None,
            diagnostics=(record or {}).get("diagnostics") or app.diagnostics,
            tracking_url=app.tracking_url,
            progress=app.progress,
            queue=app.queue,
            user=app.user,
            tasks=tasks,
            events=(record or {}).get("events", []),
        )

    def wait(
        self,
        timeout: float | None = None,
        *,
        on_change: Callable[[JobStatus], None] | None = None,
        poll_interval_s: float = 1.0,
    ) -> JobStatus:
        """Block until the job ends; ``on_change`` sees each new (state, attempt, counts).

        Raises:
            WaitTimeoutError: ``timeout`` seconds passed first (the job keeps running).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        last: tuple[Any, ...] | None = None
        while True:
            status = self.status()
            key = (status.state, status.attempt, repr(sorted(status.roles.items())))
            if key != last and on_change is not None:
                on_change(status)
            last = key
            if status.state.is_terminal():
                return status
            if deadline is not None and time.monotonic() >= deadline:
                raise WaitTimeoutError(
                    f"{self.app_id} is still {status.state} after {timeout:g}s; it keeps running"
                )
            time.sleep(poll_interval_s)

    def kill(self) -> None:
        """Stop the job (state KILLED)."""
        self.client.rm.kill(self.app_id)
        record = self.record()
        if record is not None and not JobState(record.get("state", "SUBMITTED")).is_terminal():
            # The AppMaster may not have had time to write its last word before SIGKILL.
            record["state"] = str(JobState.KILLED)
            record["diagnostics"] = "dlsubmit: USER_CANCELLED -- stopped by dlsubmit kill"
            record["root_cause"] = {
                "category": "USER_CANCELLED",
                "retryable": False,
                "evidence": ["stopped by dlsubmit kill"],
                "time": time.time(),
            }
            for task in record.get("tasks", {}).values():
                if task.get("state") not in ("SUCCEEDED", "FAILED", "STOPPED"):
                    task["state"] = "KILLED"
            record.setdefault("events", []).append(
                {"time": time.time(), "message": "job KILLED: stopped by dlsubmit kill"}
            )
            try:
                self.client.hdfs.write_json(status_path(self.client.user, self.app_id), record)
            except DLSubmitError as exc:  # YARN has killed it; the record is a courtesy
                logger.warning(
                    "%s is killed; its record could not be updated: %s", self.app_id, exc
                )

    def diagnose(self) -> dict[str, Any]:
        """Root cause and every attempt's failure (JOBSPEC.md, "Diagnosis")."""
        from client.diagnose import diagnosis

        app = self.client.rm.app(self.app_id)
        return diagnosis(app, self.record())

    def logs(
        self, task: str | None = None, attempt: int | None = None, tail: int | None = None
    ) -> list[str]:
        """Log lines prefixed with their task (live while running, from HDFS after)."""
        from client.logs import task_logs

        return task_logs(
            self.client.rm,
            self.client.hdfs,
            self.client.rm.app(self.app_id),
            self.record(),
            user=self.client.user,
            task=_task_id(task),
            attempt=attempt,
            tail=tail,
        )

    def follow_logs(self, task: str | None = None) -> Iterator[str]:
        """New log lines as they appear, until the job ends."""
        from client.logs import follow

        return follow(
            self.client.rm,
            self.client.hdfs,
            self.app_id,
            user=self.client.user,
            task=_task_id(task),
        )

    def stored_spec(self) -> dict[str, Any]:
        """The spec this job was submitted with (as stored in its record)."""
        data = self.client.hdfs.read_json(spec_path(self.client.user, self.app_id))
        if not isinstance(data, dict):
            raise NoSuchApplicationError(
                f"{self.app_id}: no stored dlsubmit spec (was it submitted with dlsubmit?)"
            )
        return data


class Client:
    """A YARN cluster as dlsubmit sees it (``HADOOP_CONF_DIR``)."""

    def __init__(
        self, rm_url: str | None = None, webhdfs_url: str | None = None, user: str | None = None
    ) -> None:
        self._rm_url = rm_url
        self._webhdfs_url = webhdfs_url
        self.user = user or hadoop_user()
        self._rm: ResourceManager | None = None
        self._hdfs: Hdfs | None = None

    @property
    def rm(self) -> ResourceManager:
        if self._rm is None:
            self._rm = ResourceManager(self._rm_url or addresses().rm_url)
        return self._rm

    @property
    def hdfs(self) -> Hdfs:
        if self._hdfs is None:
            self._hdfs = Hdfs(self._webhdfs_url or addresses().webhdfs_url, user=self.user)
        return self._hdfs

    def validate(self, spec: JobSpec) -> list[str]:
        """Every check of submit against the live cluster; nothing is uploaded."""
        from client.preflight import preflight

        return preflight(spec, self.rm, self.hdfs)

    def submit(self, spec: JobSpec, *, staged_files: dict[str, str] | None = None) -> Job:
        """Validate against the cluster, stage files, submit; returns the job handle."""
        self.validate(spec)
        from client.appspec import build_app_spec
        from client.staging import stage
        from client.yarn import submit_application

        staged = stage(spec, self.hdfs, self.user)
        cluster_env = {
            "DLSUBMIT_RM_URL": self.rm.url,
            "DLSUBMIT_WEBHDFS_URL": self.hdfs.url,
        }
        app_spec = build_app_spec(spec, staged, user=self.user, cluster_env=cluster_env)
        names = spec.environment.secrets
        secrets = {name: os.environ[name] for name in names if name in os.environ}
        app_id = submit_application(app_spec, secrets=secrets or None)
        try:
            self.hdfs.write_json(
                spec_path(self.user, app_id),
                {
                    "spec": spec.to_dict(),
                    "staged": staged.to_dict(),
                    "submitted": time.time(),
                    "user": self.user,
                },
            )
        except DLSubmitError as exc:
            logger.warning("could not store the spec of %s: %s", app_id, exc)
        return Job(self, app_id)

    def job(self, app_id: str) -> Job:
        """A handle on an existing application (checked to exist)."""
        if not app_id.startswith("application_"):
            raise UsageError(f"{app_id!r} is not a YARN application id (application_<ts>_<n>)")
        self.rm.app(app_id)
        return Job(self, app_id)

    def jobs(
        self,
        states: Sequence[str] | None = None,
        user: str | None = None,
        tags: Sequence[str] | None = None,
        all_apps: bool = False,
    ) -> list[AppInfo]:
        """Applications on the cluster (dlsubmit's own unless ``all_apps``)."""
        wanted_tags = list(tags or [])
        if not all_apps:
            wanted_tags.append("dlsubmit")
        apps = self.rm.apps(
            states=list(states) if states else None,
            user=user,
            tags=wanted_tags or None,
            all_tags=True,
        )
        return sorted(apps, key=lambda a: a.started_ms, reverse=True)  # newest first

    def clone(self, app_id: str, overrides: dict[str, Any] | None = None) -> Job:
        """Submit the stored spec of ``app_id`` again, with overrides."""
        from client.spec import apply_overrides

        stored = self.job(app_id).stored_spec()
        raw = dict(stored["spec"])
        # Reuse the staged copies of the files: the local originals may be gone.
        staged_files = (stored.get("staged") or {}).get("files") or {}
        raw["files"] = {dest: f["source"] for dest, f in staged_files.items()}
        if overrides:
            raw = apply_overrides(raw, overrides)
        from client.spec import JobSpec

        return self.submit(JobSpec.from_dict(raw))

    def ping(self) -> None:
        """Raise ClusterUnreachableError unless the RM answers."""
        try:
            self.rm.cluster_info()
        except ClusterUnreachableError:
            raise


def _task_id(task: str | None) -> Any:
    from client.spec import TaskId

    return TaskId.parse(task) if task else None
