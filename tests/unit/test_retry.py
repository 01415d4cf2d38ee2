"""Unit tests for appmaster.retry: every policy branch and every budget edge."""

from __future__ import annotations

import pytest

from appmaster.classify import LauncherReport, YarnView, classify, user_cancelled
from appmaster.retry import MAX_BACKOFF_S, Decision, RetryBudget, decide, next_budget
from client.failures import Category, Failure

HOST = "127.0.0.1:45452"
FRESH = RetryBudget(0, 0)  # the budget of a job's first attempt


def counted(
    category: Category = Category.USER_CODE_ERROR,
    *,
    retryable: bool = False,
    task: str = "worker:1",
) -> Failure:
    return Failure(category=category, retryable=retryable, task=task, host="node-a", counted=True)


def infra(
    category: Category = Category.NODE_FAILURE, *, host: str | None = HOST, avoid: bool = True
) -> Failure:
    return Failure(
        category=category,
        retryable=True,
        task="worker:0",
        host=host,
        counted=False,
        avoid_host=avoid,
    )


def run(
    failure: Failure,
    *,
    policy: str = "smart",
    max_attempts: int = 3,
    max_infra_retries: int = 10,
    budget: RetryBudget = FRESH,
    backoff_s: float = 10.0,
    avoid_hosts: frozenset[str] = frozenset(),
) -> Decision:
    return decide(
        failure,
        policy=policy,
        max_attempts=max_attempts,
        max_infra_retries=max_infra_retries,
        budget=budget,
        backoff_s=backoff_s,
        avoid_hosts=avoid_hosts,
    )


# --- smart, counted -------------------------------------------------------------------------------


def test_smart_retries_a_retryable_counted_failure() -> None:
    decision = run(counted(Category.NCCL_ERROR, retryable=True, task="worker:0"))
    assert decision == Decision(
        retry=True,
        counted=True,
        delay_s=10.0,
        avoid_hosts=frozenset(),
        reason="attempt 1/3 failed: NCCL_ERROR worker:0: retrying as attempt 2/3 in 10s",
    )


def test_smart_does_not_retry_a_non_retryable_failure() -> None:
    decision = run(counted(), budget=RetryBudget(1, 0))
    assert not decision.retry
    assert decision.counted
    assert decision.delay_s == 0.0
    assert decision.reason == (
        "attempt 2/3 failed: USER_CODE_ERROR worker:1 (not retryable under policy smart)"
    )


@pytest.mark.parametrize(
    ("attempts_counted", "max_attempts", "retry"),
    [
        (0, 1, False),  # a single attempt: nothing to retry
        (0, 2, True),
        (1, 2, False),  # the 2nd attempt of 2 just failed
        (1, 3, True),
        (2, 3, False),
        (5, 3, False),  # a budget already past the limit (resumed record) never retries
    ],
)
def test_counted_budget_edges(attempts_counted: int, max_attempts: int, retry: bool) -> None:
    failure = counted(Category.CRASH_SIGNAL, retryable=True)
    decision = run(failure, max_attempts=max_attempts, budget=RetryBudget(attempts_counted, 0))
    assert decision.retry is retry


def test_counted_budget_exhausted_reason() -> None:
    decision = run(counted(Category.NCCL_ERROR, retryable=True), budget=RetryBudget(2, 4))
    assert not decision.retry
    assert decision.reason == (
        "attempt 3/3 failed: NCCL_ERROR worker:1 (retryable, but retry.max_attempts=3 is used up)"
    )


def test_counted_budget_ignores_infra_retries_used() -> None:
    decision = run(counted(Category.NCCL_ERROR, retryable=True), budget=RetryBudget(1, 10))
    assert decision.retry


def test_user_declared_200_uses_max_attempts() -> None:
    failure = classify("worker:0", None, LauncherReport(exit_code=200, registered=True))
    assert run(failure, budget=RetryBudget(1, 0)).retry
    last = run(failure, budget=RetryBudget(2, 0))
    assert not last.retry and last.counted


def test_user_declared_210_is_not_retried_by_smart() -> None:
    failure = classify("worker:0", None, LauncherReport(exit_code=210, registered=True))
    assert not run(failure).retry


# --- smart, uncounted (infrastructure) ------------------------------------------------------------


def test_infra_retry_is_not_counted_and_avoids_the_host() -> None:
    decision = run(infra())
    assert decision.retry
    assert not decision.counted
    assert decision.avoid_hosts == frozenset({HOST})
    assert decision.reason.startswith("NODE_FAILURE worker:0 is an infrastructure failure: ")
    assert "retry 1/10 not counted, avoiding 127.0.0.1:45452" in decision.reason


def test_infra_retry_does_not_need_counted_attempts_left() -> None:
    decision = run(infra(), max_attempts=1, budget=RetryBudget(0, 0))
    assert decision.retry


@pytest.mark.parametrize(
    ("used", "max_infra", "retry"),
    [(0, 0, False), (0, 1, True), (1, 1, False), (9, 10, True), (10, 10, False)],
)
def test_infra_budget_edges(used: int, max_infra: int, retry: bool) -> None:
    decision = run(infra(), max_infra_retries=max_infra, budget=RetryBudget(2, used))
    assert decision.retry is retry
    assert not decision.counted


def test_infra_budget_exhausted_reason() -> None:
    decision = run(
        infra(Category.PREEMPTED, avoid=False), max_infra_retries=2, budget=RetryBudget(0, 2)
    )
    assert decision.reason == (
        "PREEMPTED worker:0 is an infrastructure failure: retry.max_infra_retries=2 is used up"
    )


def test_preemption_does_not_avoid_the_host() -> None:
    decision = run(infra(Category.PREEMPTED, avoid=False))
    assert decision.retry
    assert decision.avoid_hosts == frozenset()


def test_gpu_hardware_adds_to_the_hosts_already_avoided() -> None:
    decision = run(infra(Category.GPU_HARDWARE, host="node-b"), avoid_hosts=frozenset({"node-a"}))
    assert decision.avoid_hosts == frozenset({"node-a", "node-b"})
    assert "avoiding node-a, node-b" in decision.reason


def test_failure_without_host_adds_nothing() -> None:
    decision = run(infra(host=None), avoid_hosts=frozenset({"node-a"}))
    assert decision.avoid_hosts == frozenset({"node-a"})


def test_avoided_hosts_are_kept_when_not_retrying() -> None:
    decision = run(counted(), avoid_hosts=frozenset({"node-a"}))
    assert not decision.retry
    assert decision.avoid_hosts == frozenset({"node-a"})


def test_allocation_timeout_is_infra_with_backoff() -> None:
    failure = Failure(category=Category.ALLOCATION_TIMEOUT, retryable=True, counted=False)
    decision = run(failure, budget=RetryBudget(0, 2))
    assert decision.retry and not decision.counted
    assert decision.delay_s == 40.0
    assert decision.reason == (
        "ALLOCATION_TIMEOUT is an infrastructure failure: retry 3/10 not counted, in 40s"
    )


def test_infra_failure_marked_not_retryable_is_refused_by_smart() -> None:
    failure = Failure(category=Category.NODE_FAILURE, retryable=False, counted=False)
    decision = run(failure)
    assert not decision.retry
    assert decision.reason.endswith("not retryable under policy smart")


# --- backoff --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("used", "delay_s"), [(0, 10.0), (1, 20.0), (2, 40.0), (4, 160.0), (5, 300.0), (9, 300.0)]
)
def test_infra_backoff_doubles_up_to_five_minutes(used: int, delay_s: float) -> None:
    assert run(infra(), budget=RetryBudget(0, used)).delay_s == delay_s


def test_infra_backoff_never_overflows() -> None:
    decision = run(infra(), max_infra_retries=10_000, budget=RetryBudget(0, 5_000))
    assert decision.delay_s == MAX_BACKOFF_S


def test_infra_backoff_above_the_cap_is_kept() -> None:
    assert run(infra(), backoff_s=600.0, budget=RetryBudget(0, 3)).delay_s == 600.0


def test_zero_backoff() -> None:
    assert run(infra(), backoff_s=0.0, budget=RetryBudget(0, 3)).delay_s == 0.0


def test_counted_backoff_is_flat() -> None:
    failure = counted(Category.KILLED_EXTERNALLY, retryable=True)
    assert run(failure, max_attempts=10, budget=RetryBudget(5, 3)).delay_s == 10.0


# --- always / never -------------------------------------------------------------------------------


def test_always_retries_non_retryable_categories() -> None:
    decision = run(counted(Category.USER_CODE_ERROR), policy="always")
    assert decision.retry and decision.counted


def test_always_still_respects_max_attempts() -> None:
    decision = run(counted(Category.HOST_OOM), policy="always", budget=RetryBudget(2, 0))
    assert not decision.retry


def test_always_still_respects_max_infra_retries() -> None:
    decision = run(infra(), policy="always", max_infra_retries=1, budget=RetryBudget(0, 1))
    assert not decision.retry


@pytest.mark.parametrize(
    "category", [Category.SPEC_INVALID, Category.USER_CANCELLED, Category.DEADLINE_EXCEEDED]
)
def test_always_never_retries_the_final_categories(category: Category) -> None:
    decision = run(counted(category, task=""), policy="always")
    assert not decision.retry
    assert decision.reason == f"attempt 1/3 failed: {category} ({category} is never retried)"


def test_always_refuses_the_real_user_cancelled_failure() -> None:
    # the real USER_CANCELLED failure, to be sure the constructor and the policy agree
    assert not run(user_cancelled(), policy="always").retry


@pytest.mark.parametrize(
    "failure",
    [
        counted(Category.NCCL_ERROR, retryable=True),
        infra(),
        counted(Category.UNKNOWN, retryable=True),
    ],
)
def test_never_retries_nothing(failure: Failure) -> None:
    decision = run(failure, policy="never")
    assert not decision.retry
    assert decision.counted is failure.counted
    assert "retry.policy is never" in decision.reason


# --- budget accounting ----------------------------------------------------------------------------


def test_next_budget_charges_counted_failures() -> None:
    budget = RetryBudget(1, 2)
    decision = run(counted(Category.NCCL_ERROR, retryable=True), budget=budget)
    assert next_budget(budget, decision) == RetryBudget(2, 2)


def test_next_budget_charges_infra_failures() -> None:
    budget = RetryBudget(1, 2)
    assert next_budget(budget, run(infra(), budget=budget)) == RetryBudget(1, 3)


def test_next_budget_charges_even_when_not_retrying() -> None:
    budget = RetryBudget(2, 0)
    decision = run(counted(), budget=budget)
    assert not decision.retry
    assert next_budget(budget, decision).failed_attempts == 3


def test_a_whole_job() -> None:
    """Node loss, NCCL, preemption, NCCL, NCCL: the last one exhausts max_attempts=3."""
    failures = [
        infra(),
        counted(Category.NCCL_ERROR, retryable=True),
        infra(Category.PREEMPTED, avoid=False),
        counted(Category.NCCL_ERROR, retryable=True),
        counted(Category.NCCL_ERROR, retryable=True),
    ]
    budget = RetryBudget()
    hosts: frozenset[str] = frozenset()
    outcomes = []
    for attempt, failure in enumerate(failures, start=1):
        assert budget.failed_attempts + 1 == attempt  # DLSUBMIT_ATTEMPT of the attempt that failed
        decision = run(failure, budget=budget, avoid_hosts=hosts)
        outcomes.append(decision.retry)
        budget, hosts = next_budget(budget, decision), decision.avoid_hosts
    assert outcomes == [True, True, True, True, False]
    assert budget == RetryBudget(3, 2)
    assert hosts == frozenset({HOST})


# --- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"policy": "sometimes"}, "retry.policy"),
        ({"max_attempts": 0}, "retry.max_attempts"),
        ({"max_infra_retries": -1}, "retry.max_infra_retries"),
        ({"backoff_s": -1.0}, "retry.backoff"),
    ],
)
def test_invalid_arguments(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        run(infra(), **kwargs)  # type: ignore[arg-type]


def test_classifier_output_feeds_decide() -> None:
    failure = classify(
        "worker:0", YarnView("FAILED", -100, "Container released on a *lost* node", HOST), None
    )
    decision = run(failure)
    assert decision.retry and not decision.counted
    assert decision.avoid_hosts == frozenset({HOST})
