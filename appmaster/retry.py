"""The retry policy: given an attempt's root-cause failure, is another attempt worth it?

Pure: no clock, no sleeping. The AppMaster loop calls :func:`decide` with the root cause of the
attempt that just failed and the budget as it stood before that attempt; it waits
``Decision.delay_s`` itself, then starts the next attempt with :func:`next_budget`'s result.

Budget (JOBSPEC.md, ``retry``)
==============================
A job has two separate budgets:

* ``retry.max_attempts`` limits attempts whose failure *counted* (the first run included).
  A counted failure is retried only if ``attempts_counted + 1 < max_attempts``: the ``+ 1`` is
  the attempt that just failed.
* ``retry.max_infra_retries`` limits extra attempts granted for *uncounted* (infrastructure)
  failures: PREEMPTED, NODE_FAILURE, GPU_HARDWARE, ALLOCATION_TIMEOUT. One is granted only if
  ``infra_retries_used < max_infra_retries``; it never uses up ``max_attempts``.

:class:`RetryBudget` always describes the state *before* the failure being decided on is
charged, so the first decision of a job is made with ``RetryBudget(0, 0)``. :func:`next_budget`
charges the failure (counted → ``attempts_counted + 1``, uncounted → ``infra_retries_used + 1``)
whatever the decision, so ``attempts_counted + infra_retries_used`` is always the number of
attempts that have failed, and the next attempt's number (``DLSUBMIT_ATTEMPT``) is that plus one.

Policies: ``never`` retries nothing; ``smart`` retries what :func:`appmaster.classify.classify`
marked ``retryable``; ``always`` retries every category but SPEC_INVALID, USER_CANCELLED and
DEADLINE_EXCEEDED. All three stay within the budgets.

Backoff: counted failures wait ``backoff_s``; uncounted failures wait ``backoff_s × 2^(n-1)``
for the n-th infrastructure retry, capped at :data:`MAX_BACKOFF_S` (or at ``backoff_s`` if the
user asked for more), so a busy or broken cluster is not hammered.
"""

from __future__ import annotations

from dataclasses import dataclass

from client.failures import Category, Failure

__all__ = ["MAX_BACKOFF_S", "POLICIES", "Decision", "RetryBudget", "decide", "next_budget"]

POLICIES = ("smart", "always", "never")
MAX_BACKOFF_S = 300.0
# No policy retries these: the spec is wrong, the user asked to stop, or time is up.
NEVER_RETRIED = frozenset(
    {Category.SPEC_INVALID, Category.USER_CANCELLED, Category.DEADLINE_EXCEEDED}
)


@dataclass(frozen=True)
class RetryBudget:
    """What a job has used of its retry budgets, before the failure being decided on.

    Attributes:
        attempts_counted: failed attempts whose failure counted against ``retry.max_attempts``.
        infra_retries_used: failed attempts whose failure was uncounted (infrastructure).
    """

    attempts_counted: int = 0
    infra_retries_used: int = 0

    @property
    def failed_attempts(self) -> int:
        """How many attempts have failed so far; the next attempt is this + 1."""
        return self.attempts_counted + self.infra_retries_used


@dataclass(frozen=True)
class Decision:
    """What to do after an attempt failed.

    Attributes:
        retry: start another attempt.
        counted: the failure counts against ``retry.max_attempts`` (else against
            ``retry.max_infra_retries``).
        delay_s: how long to wait before the next attempt (0 when not retrying).
        avoid_hosts: hosts the next attempt should not be placed on (the input set, plus the
            failure's host when the failure says to avoid it).
        reason: the decision in plain words, for the log and the job record.
    """

    retry: bool
    counted: bool
    delay_s: float
    avoid_hosts: frozenset[str]
    reason: str


def decide(
    failure: Failure,
    *,
    policy: str,
    max_attempts: int,
    max_infra_retries: int,
    budget: RetryBudget,
    backoff_s: float,
    avoid_hosts: frozenset[str] = frozenset(),
) -> Decision:
    """Decide whether the attempt that failed with ``failure`` is retried.

    Args:
        failure: the attempt's root cause (:func:`appmaster.classify.root_cause`).
        policy: ``retry.policy``: "smart", "always" or "never".
        max_attempts: ``retry.max_attempts`` (>= 1).
        max_infra_retries: ``retry.max_infra_retries`` (>= 0).
        budget: the budget before this failure is charged.
        backoff_s: ``retry.backoff`` in seconds (>= 0).
        avoid_hosts: hosts already avoided by earlier decisions.

    Returns:
        The decision; charge it with :func:`next_budget`.

    Raises:
        ValueError: on an unknown policy or a negative limit (a bug: the spec was validated).
    """
    _check(policy, max_attempts, max_infra_retries, backoff_s)
    hosts = avoid_hosts
    if failure.avoid_host and failure.host:
        hosts = avoid_hosts | {failure.host}
    allowed = _policy_allows(failure, policy)
    if failure.counted:
        return _decide_counted(failure, policy, allowed, max_attempts, budget, backoff_s, hosts)
    return _decide_infra(failure, policy, allowed, max_infra_retries, budget, backoff_s, hosts)


def next_budget(budget: RetryBudget, decision: Decision) -> RetryBudget:
    """The budget after charging the failure that ``decision`` was made for.

    Args:
        budget: the budget passed to :func:`decide`.
        decision: what :func:`decide` returned.

    Returns:
        ``attempts_counted + 1`` for a counted failure, ``infra_retries_used + 1`` otherwise.
    """
    if decision.counted:
        return RetryBudget(budget.attempts_counted + 1, budget.infra_retries_used)
    return RetryBudget(budget.attempts_counted, budget.infra_retries_used + 1)


def _check(policy: str, max_attempts: int, max_infra_retries: int, backoff_s: float) -> None:
    if policy not in POLICIES:
        raise ValueError(f"retry.policy: expected one of {', '.join(POLICIES)}, got {policy!r}")
    if max_attempts < 1:
        raise ValueError(f"retry.max_attempts: must be >= 1, got {max_attempts}")
    if max_infra_retries < 0:
        raise ValueError(f"retry.max_infra_retries: must be >= 0, got {max_infra_retries}")
    if backoff_s < 0:
        raise ValueError(f"retry.backoff: must be >= 0, got {backoff_s}")


def _policy_allows(failure: Failure, policy: str) -> bool:
    if policy == "never":
        return False
    if policy == "always":
        return failure.category not in NEVER_RETRIED
    return failure.retryable


def _refusal(failure: Failure, policy: str) -> str:
    if policy == "never":
        return "not retried: retry.policy is never"
    if failure.category in NEVER_RETRIED:
        return f"{failure.category} is never retried"
    return f"not retryable under policy {policy}"


def _decide_counted(
    failure: Failure,
    policy: str,
    allowed: bool,
    max_attempts: int,
    budget: RetryBudget,
    backoff_s: float,
    hosts: frozenset[str],
) -> Decision:
    number = budget.attempts_counted + 1
    head = f"attempt {number}/{max_attempts} failed: {_what(failure)}"
    if not allowed:
        return Decision(False, True, 0.0, hosts, f"{head} ({_refusal(failure, policy)})")
    if number >= max_attempts:
        why = f"retryable, but retry.max_attempts={max_attempts} is used up"
        return Decision(False, True, 0.0, hosts, f"{head} ({why})")
    reason = f"{head}: retrying as attempt {number + 1}/{max_attempts} in {backoff_s:g}s"
    return Decision(True, True, float(backoff_s), hosts, reason + _avoiding(hosts))


def _decide_infra(
    failure: Failure,
    policy: str,
    allowed: bool,
    max_infra_retries: int,
    budget: RetryBudget,
    backoff_s: float,
    hosts: frozenset[str],
) -> Decision:
    head = f"{_what(failure)} is an infrastructure failure"
    if not allowed:
        return Decision(False, False, 0.0, hosts, f"{head}: {_refusal(failure, policy)}")
    number = budget.infra_retries_used + 1
    if number > max_infra_retries:
        why = f"retry.max_infra_retries={max_infra_retries} is used up"
        return Decision(False, False, 0.0, hosts, f"{head}: {why}")
    delay_s = _infra_backoff_s(backoff_s, number)
    reason = f"{head}: retry {number}/{max_infra_retries} not counted{_avoiding(hosts)}"
    return Decision(True, False, delay_s, hosts, f"{reason}, in {delay_s:g}s")


def _infra_backoff_s(backoff_s: float, number: int) -> float:
    """``backoff_s × 2^(number-1)``, capped at 5 minutes (or at ``backoff_s`` if larger)."""
    cap = max(MAX_BACKOFF_S, backoff_s)
    exponent = min(number - 1, 32)  # 2^32 × any positive backoff is far past the cap
    return float(min(backoff_s * 2**exponent, cap))


def _what(failure: Failure) -> str:
    return f"{failure.category} {failure.task}" if failure.task else str(failure.category)


def _avoiding(hosts: frozenset[str]) -> str:
    return f", avoiding {', '.join(sorted(hosts))}" if hosts else ""
