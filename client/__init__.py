"""dlsubmit's client library: job specs, submission, status, logs, diagnosis.

    from client import Client, JobSpec
    job = Client().submit(JobSpec.load("job.yaml"))
    job.wait(timeout=600)
"""

from client.errors import (
    ClusterUnreachableError,
    DLSubmitError,
    HdfsError,
    JobFailedError,
    NoSuchApplicationError,
    PreflightError,
    SpecError,
    UsageError,
    WaitTimeoutError,
)
from client.states import JobState

__all__ = [
    "Client",
    "ClusterUnreachableError",
    "DLSubmitError",
    "HdfsError",
    "Job",
    "JobFailedError",
    "JobSpec",
    "JobState",
    "NoSuchApplicationError",
    "PreflightError",
    "SpecError",
    "TaskId",
    "UsageError",
    "WaitTimeoutError",
]


def __getattr__(name: str) -> object:
    # Imported on first use: the CLI's read paths (`dlsubmit status`) need neither the spec
    # model (yaml) nor the submission machinery, and a new process pays for every import.
    if name in ("Client", "Job"):
        from client import api

        return getattr(api, name)
    if name in ("JobSpec", "TaskId"):
        from client import spec

        return getattr(spec, name)
    raise AttributeError(name)
