"""Job states (JOBSPEC.md, "Job states") and their legal moves.

``SUBMITTED → QUEUED → RUNNING → (RETRYING → QUEUED → RUNNING)* → SUCCEEDED | FAILED | KILLED``

The table is shared by the AppMaster (which moves a job through it) and the client (which only
reads states); :func:`check_move` is the one place that refuses an illegal move.
"""

from __future__ import annotations

import enum

__all__ = ["IllegalTransitionError", "JobState", "check_move"]


class JobState(enum.StrEnum):
    """Where a dlsubmit job is."""

    SUBMITTED = "SUBMITTED"  # the RM accepted the application; the AppMaster has not reported yet
    QUEUED = "QUEUED"  # waiting for the AppMaster or for this attempt's containers (gang)
    RUNNING = "RUNNING"  # every task of the attempt has a container and the tasks run
    RETRYING = "RETRYING"  # the attempt failed, a retry was judged useful; next attempt prepared
    SUCCEEDED = "SUCCEEDED"  # every tracked task exited 0
    FAILED = "FAILED"  # an attempt failed and no retry is allowed (or none would help)
    KILLED = "KILLED"  # stopped by `dlsubmit kill` (or by YARN)

    def is_terminal(self) -> bool:
        """True for SUCCEEDED, FAILED and KILLED: states a job never leaves."""
        return self in _TERMINAL


_TERMINAL = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.KILLED})

_END = {JobState.SUCCEEDED, JobState.FAILED, JobState.KILLED}
TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.SUBMITTED: frozenset({JobState.QUEUED, *_END}),
    JobState.QUEUED: frozenset({JobState.RUNNING, JobState.RETRYING, *_END}),
    JobState.RUNNING: frozenset({JobState.RETRYING, *_END}),
    JobState.RETRYING: frozenset({JobState.QUEUED, *_END}),
    JobState.SUCCEEDED: frozenset(),
    JobState.FAILED: frozenset(),
    JobState.KILLED: frozenset(),
}


class IllegalTransitionError(RuntimeError):
    """A bug: code tried to move a job along an edge the table does not have."""


def check_move(current: JobState, new: JobState) -> JobState:
    """Return ``new`` if ``current → new`` is legal, else raise :class:`IllegalTransitionError`."""
    if new not in TRANSITIONS[current]:
        raise IllegalTransitionError(f"job state cannot move from {current} to {new}")
    return new
