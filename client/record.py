"""The job's record in HDFS: where it lives and what it holds.

The AppMaster writes it (``status.json``, on every change of state); the client reads it for
``status``, ``diagnose``, ``logs`` and ``clone``. It outlives the AppMaster (Skein's key-value
store does not), so a restarted AppMaster resumes from it and finished jobs can be diagnosed.

Layout under :func:`job_dir` (``/user/<user>/.dlsubmit/jobs/<app_id>``)::

    spec.json                 the validated spec (JobSpec.to_dict) + staging dir, by the client
    status.json               the record below, rewritten by the AppMaster
    secrets.sealed            environment.secrets, encrypted (appmaster/secret_store.py; 0600),
                              so that a restarted AppMaster can hand them out again
    logs/attempt-<N>/<role>-<index>.log   each task's output, uploaded by its launcher

``status.json`` (all times epoch seconds)::

    {"app_id", "name", "user", "state", "attempt", "max_attempts", "am_attempt",
     "updated", "diagnostics",                 # one line: the root cause, as YARN shows it
     "root_cause": Failure.to_dict() | null,
     "attempts": [{"attempt", "state", "started", "finished", "counted",
                   "failure": Failure | null, "failures": [Failure...], "decision": str}],
     "tasks": {"worker:0": {"role", "index", "rank", "attempt", "state", "host", "port",
                            "container_id", "nm_http_address", "exit_code", "log_tail",
                            "started", "finished", "gpus": str, "gpu": {...}}},
     "events": [{"time", "message"}],          # the AppMaster's log vocabulary, newest last
     "budget": {"attempts_counted", "infra_retries_used"}, "avoid_hosts": [...]}
"""

from __future__ import annotations

import posixpath

__all__ = [
    "job_dir",
    "jobs_root",
    "secrets_path",
    "spec_path",
    "staging_root",
    "status_path",
    "task_log_path",
]


def jobs_root(user: str) -> str:
    """Where every job record of ``user`` lives."""
    return f"/user/{user}/.dlsubmit/jobs"


def staging_root(user: str) -> str:
    """Where submissions stage files (content-addressed, shared between jobs)."""
    return f"/user/{user}/.dlsubmit/staging"


def job_dir(user: str, app_id: str) -> str:
    """The record directory of one job."""
    return posixpath.join(jobs_root(user), app_id)


def spec_path(user: str, app_id: str) -> str:
    """The stored spec of a job (read by ``clone``)."""
    return posixpath.join(job_dir(user, app_id), "spec.json")


def status_path(user: str, app_id: str) -> str:
    """The AppMaster's status record of a job."""
    return posixpath.join(job_dir(user, app_id), "status.json")


def secrets_path(user: str, app_id: str) -> str:
    """The sealed copy of a job's ``environment.secrets`` (owner-only, encrypted)."""
    return posixpath.join(job_dir(user, app_id), "secrets.sealed")


def task_log_path(user: str, app_id: str, attempt: int, task: str) -> str:
    """Where a task's launcher uploads its output (``task`` is ``worker:0``)."""
    role, _, index = task.partition(":")
    return posixpath.join(
        job_dir(user, app_id), "logs", f"attempt-{attempt}", f"{role}-{index}.log"
    )
