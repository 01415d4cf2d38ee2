"""Handing environment.secrets to a job: a job that cannot take them is killed, and told why.

Skein's client is faked (the boundary); the hand-over itself is proved on the real cluster by
tests/integration/test_jobs.py::test_secrets_reach_tasks_but_are_not_stored.
"""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest
import skein

from client.errors import ClusterUnreachableError, JobFailedError, WaitTimeoutError
from client.yarn import SECRETS_KEY, hand_over_secrets

APP = "application_1795991410966_0042"


class FakeSkein:
    def __init__(self, *states: str, fail: bool = False) -> None:
        self.states = list(states)
        self.fail = fail
        self.killed: list[str] = []
        self.kv: dict[str, bytes] = {}

    def application_report(self, app_id: str) -> Any:
        if self.fail:
            raise skein.exceptions.ConnectionError("driver gone")
        state = self.states.pop(0) if len(self.states) > 1 else self.states[0]
        return SimpleNamespace(state=state)

    def connect(self, app_id: str, wait: bool = True) -> Any:
        return SimpleNamespace(kv=self.kv)

    def kill_application(self, app_id: str) -> None:
        self.killed.append(app_id)


def test_running_job_gets_the_secrets() -> None:
    fake = FakeSkein("ACCEPTED", "RUNNING")
    hand_over_secrets(fake, APP, {"TOKEN": "x"}, 10, queue="default", poll_s=0)
    assert json.loads(fake.kv[SECRETS_KEY]) == {"TOKEN": "x"}
    assert fake.killed == []


def test_job_stuck_in_the_queue_is_killed_and_the_error_says_what_to_do() -> None:
    fake = FakeSkein("ACCEPTED")
    with pytest.raises(WaitTimeoutError) as info:
        hand_over_secrets(fake, APP, {"TOKEN": "s3cr3t-value"}, 0, queue="research", poll_s=0)
    assert info.value.exit_code == 5
    message = str(info.value)
    assert APP in message and "queue 'research'" in message
    assert "killed" in message and "resubmit" in message
    assert "s3cr3t-value" not in message
    assert fake.killed == [APP]


def test_job_that_ended_first_is_a_failed_job_not_killed_again() -> None:
    fake = FakeSkein("FAILED")
    with pytest.raises(JobFailedError, match=f"dlsubmit diagnose {APP}"):
        hand_over_secrets(fake, APP, {"TOKEN": "x"}, 10, queue="default", poll_s=0)
    assert fake.killed == []


def test_skein_unreachable_kills_the_job_and_exits_3() -> None:
    fake = FakeSkein(fail=True)
    with pytest.raises(ClusterUnreachableError) as info:
        hand_over_secrets(fake, APP, {"TOKEN": "x"}, 10, queue="default", poll_s=0)
    assert info.value.exit_code == 3
    assert fake.killed == [APP]
