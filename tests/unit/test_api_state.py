"""Unit tests for client.api.job_state: the RM's view and the AppMaster's record → one JobState."""

from __future__ import annotations

from typing import Any

import pytest

from client.api import job_state
from client.rm import AppInfo, YarnAppState
from client.states import JobState


def app(state: str, final_status: str = "UNDEFINED") -> AppInfo:
    return AppInfo(
        id="application_1700000000000_0001", name="mnist", user="alice", queue="default",
        queue_path="root.default", state=YarnAppState(state), final_status=final_status,
        progress=0.0, tracking_url="", diagnostics="", started_ms=0, launched_ms=0,
        finished_ms=0, tags=("dlsubmit",), am_host_http="", am_container_logs="",
        application_type="skein", allocated_memory_mib=0, allocated_vcores=0,
        running_containers=0, log_aggregation_status="NOT_START",
    )


def record(state: str) -> dict[str, Any]:
    return {"state": state, "attempt": 1}


@pytest.mark.parametrize("rm_state", ["NEW", "NEW_SAVING", "SUBMITTED"])
def test_not_yet_accepted_is_submitted(rm_state: str) -> None:
    assert job_state(app(rm_state), None) is JobState.SUBMITTED
    # A record left by an earlier AppMaster attempt does not matter yet.
    assert job_state(app(rm_state), record("RUNNING")) is JobState.SUBMITTED


def test_accepted_without_record_is_queued() -> None:
    assert job_state(app("ACCEPTED"), None) is JobState.QUEUED
    assert job_state(app("ACCEPTED"), {}) is JobState.QUEUED


@pytest.mark.parametrize("recorded", ["QUEUED", "RUNNING", "RETRYING"])
def test_running_app_shows_the_appmasters_state(recorded: str) -> None:
    assert job_state(app("RUNNING"), record(recorded)) is JobState(recorded)


def test_running_app_with_submitted_record_is_queued() -> None:
    assert job_state(app("RUNNING"), record("SUBMITTED")) is JobState.QUEUED
    assert job_state(app("RUNNING"), None) is JobState.QUEUED


@pytest.mark.parametrize(
    ("rm_state", "final_status", "expected"),
    [
        ("FINISHED", "SUCCEEDED", JobState.SUCCEEDED),
        ("FINISHED", "FAILED", JobState.FAILED),
        ("FINISHED", "KILLED", JobState.KILLED),
        ("FINISHED", "UNDEFINED", JobState.FAILED),
        ("FAILED", "FAILED", JobState.FAILED),
        ("KILLED", "KILLED", JobState.KILLED),
        ("KILLED", "UNDEFINED", JobState.KILLED),
    ],
)
def test_ended_app_without_record_follows_yarn(
    rm_state: str, final_status: str, expected: JobState
) -> None:
    assert job_state(app(rm_state, final_status), None) is expected


def test_ended_app_trusts_the_recorded_outcome() -> None:
    # The AppMaster said why; YARN only knows the final status it was given.
    assert job_state(app("FINISHED", "FAILED"), record("KILLED")) is JobState.KILLED
    assert job_state(app("FINISHED", "SUCCEEDED"), record("SUCCEEDED")) is JobState.SUCCEEDED


def test_appmaster_that_died_mid_attempt_is_not_reported_running() -> None:
    # The record still says RUNNING (the AppMaster was lost), but YARN says it is over.
    assert job_state(app("FAILED", "FAILED"), record("RUNNING")) is JobState.FAILED
    assert job_state(app("KILLED", "KILLED"), record("RETRYING")) is JobState.KILLED
    assert job_state(app("FINISHED", "SUCCEEDED"), record("RUNNING")) is JobState.SUCCEEDED


@pytest.mark.parametrize("recorded", ["SUCCEEDED", "FAILED", "KILLED"])
def test_recorded_outcome_shows_before_yarn_catches_up(recorded: str) -> None:
    # The AppMaster wrote its final record but has not unregistered yet (or, after a FAILED
    # attempt, Skein keeps the app registered for a second AppMaster): the job is over, and
    # must not appear to go back to QUEUED.
    assert job_state(app("RUNNING"), record(recorded)) is JobState(recorded)
    assert job_state(app("ACCEPTED"), record(recorded)) is JobState(recorded)
