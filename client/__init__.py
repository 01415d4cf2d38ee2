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
from client.spec import JobSpec, TaskId
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
    # Client/Job pull in requests, hdfs and skein; containers import client.spec alone.
    if name in ("Client", "Job"):
        from client import api

        return getattr(api, name)
    raise AttributeError(name)
