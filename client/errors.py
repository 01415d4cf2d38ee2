"""The one exception tree of dlsubmit.

Every error a user can cause is a :class:`DLSubmitError`; each class knows the CLI exit code it
maps to (JOBSPEC.md, "Exit codes"), and also inherits the builtin it resembles so that callers
who only know Python's builtins can still catch it::

    DLSubmitError (exit 1)
    ├── SpecError(ValueError)            exit 2  a job spec or a --set override is wrong
    │   └── PreflightError               exit 2  the spec does not fit the live cluster
    ├── UsageError(ValueError)           exit 2  the CLI/library was called wrongly
    ├── ClusterUnreachableError(ConnectionError)  exit 3  RM / NameNode cannot be reached
    ├── NoSuchApplicationError(LookupError)       exit 4  the application id is unknown
    ├── WaitTimeoutError(TimeoutError)   exit 5  `wait` ran past its timeout
    ├── HdfsError(OSError)               exit 1  an HDFS operation failed (path + reason)
    └── JobFailedError                   exit 1  the job ended FAILED or KILLED

Third-party errors (requests, hdfs, skein) are translated into this tree in the one module
that talks to each library; nothing else raises them.
"""

from __future__ import annotations

__all__ = [
    "ClusterUnreachableError",
    "DLSubmitError",
    "HdfsError",
    "JobFailedError",
    "NoSuchApplicationError",
    "PreflightError",
    "SpecError",
    "UsageError",
    "WaitTimeoutError",
]


class DLSubmitError(Exception):
    """Root of every error dlsubmit raises on purpose."""

    exit_code: int = 1


class SpecError(DLSubmitError, ValueError):
    """The job spec (or an override) is invalid. The message starts with the field path."""

    exit_code = 2


class PreflightError(SpecError):
    """The spec is well formed but does not fit the cluster (queue, sizes, GPUs, HDFS paths)."""


class UsageError(DLSubmitError, ValueError):
    """A command or library call was used wrongly (bad argument, bad task name)."""

    exit_code = 2


class ClusterUnreachableError(DLSubmitError, ConnectionError):
    """The ResourceManager or the NameNode did not answer."""

    exit_code = 3


class NoSuchApplicationError(DLSubmitError, LookupError):
    """No YARN application has this id."""

    exit_code = 4


class WaitTimeoutError(DLSubmitError, TimeoutError):
    """Waiting for a job ran past its timeout; the job itself keeps running."""

    exit_code = 5


class HdfsError(DLSubmitError, OSError):
    """An HDFS operation failed; the message names the path and the reason."""

    exit_code = 1


class JobFailedError(DLSubmitError):
    """The job ended in FAILED or KILLED."""

    exit_code = 1
