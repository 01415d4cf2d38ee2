"""Failure categories and the Failure record (JOBSPEC.md, "Failure categories", "Diagnosis").

Shared contract: the AppMaster's classifier produces :class:`Failure` values, the job record in
HDFS stores them as dicts, and the client renders them (`status`, `diagnose`).
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["Category", "Failure"]


class Category(enum.StrEnum):
    """Why a task (and so an attempt) failed."""

    SPEC_INVALID = "SPEC_INVALID"
    ALLOCATION_TIMEOUT = "ALLOCATION_TIMEOUT"
    PREEMPTED = "PREEMPTED"
    NODE_FAILURE = "NODE_FAILURE"
    HOST_OOM = "HOST_OOM"
    GPU_OOM = "GPU_OOM"
    GPU_HARDWARE = "GPU_HARDWARE"
    CUDA_ENV_MISMATCH = "CUDA_ENV_MISMATCH"
    NCCL_ERROR = "NCCL_ERROR"
    RENDEZVOUS_TIMEOUT = "RENDEZVOUS_TIMEOUT"
    SETUP_FAILED = "SETUP_FAILED"
    COMMAND_NOT_FOUND = "COMMAND_NOT_FOUND"
    USER_CODE_ERROR = "USER_CODE_ERROR"
    DATA_ACCESS = "DATA_ACCESS"
    CRASH_SIGNAL = "CRASH_SIGNAL"
    KILLED_EXTERNALLY = "KILLED_EXTERNALLY"
    PEER_ABORTED = "PEER_ABORTED"
    DEADLINE_EXCEEDED = "DEADLINE_EXCEEDED"
    USER_CANCELLED = "USER_CANCELLED"
    USER_DECLARED = "USER_DECLARED"
    UNKNOWN = "UNKNOWN"


@dataclass(frozen=True)
class Failure:
    """One classified failure of one task (or of a whole attempt, e.g. ALLOCATION_TIMEOUT)."""

    category: Category
    retryable: bool
    task: str | None = None  # "worker:1"; None for attempt-wide failures
    host: str | None = None
    exit_code: int | None = None  # what the user process returned (launcher's report)
    yarn_exit_status: int | None = None  # what YARN said of the container
    evidence: tuple[str, ...] = field(default_factory=tuple)
    hint: str = ""
    counted: bool = True  # False: an infrastructure failure that does not use up max_attempts
    avoid_host: bool = False  # the next attempt should not be placed on `host`
    time: float | None = None  # when it was observed (epoch seconds)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the JOBSPEC.md diagnosis schema's failure object)."""
        data = asdict(self)
        data["category"] = str(self.category)
        data["evidence"] = list(self.evidence)
        return data

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Failure:
        """Inverse of :meth:`to_dict`; unknown keys are ignored (older/newer records)."""
        known = {f for f in cls.__dataclass_fields__}
        data = {k: v for k, v in raw.items() if k in known}
        data["category"] = Category(data["category"])
        data["evidence"] = tuple(data.get("evidence") or ())
        return cls(**data)

    def one_line(self) -> str:
        """The YARN diagnostics line: ``HOST_OOM worker:1 on node-a (exit 143): hint``."""
        where = f" {self.task}" if self.task else ""
        if self.host:
            where += f" on {self.host}"
        code = f" (exit {self.exit_code})" if self.exit_code is not None else ""
        text = f"{self.category}{where}{code}"
        if self.evidence:
            # The last two items: usually the last output line and the exit/kill statement.
            text += ": " + " | ".join(self.evidence[-2:])
        if self.hint:
            text += f" -- {self.hint}"
        return text
