"""Unit tests for client.diagnose: the JOBSPEC.md diagnosis document from the RM and the record."""

from __future__ import annotations

from typing import Any

from client.diagnose import diagnosis
from client.rm import AppInfo, YarnAppState

T0 = 1_700_000_000.0


def app(state: str = "FINISHED", final_status: str = "SUCCEEDED") -> AppInfo:
    return AppInfo(
        id="application_1700000000000_0001", name="mnist", user="alice", queue="default",
        queue_path="root.default", state=YarnAppState(state), final_status=final_status,
        progress=100.0, tracking_url="", diagnostics="", started_ms=0, launched_ms=0,
        finished_ms=0, tags=("dlsubmit",), am_host_http="", am_container_logs="",
        application_type="skein", allocated_memory_mib=0, allocated_vcores=0,
        running_containers=0, log_aggregation_status="SUCCEEDED",
    )  # fmt: skip


LOST = {
    "category": "NODE_FAILURE",
    "retryable": True,
    "counted": False,
    "evidence": ["the AppMaster (YARN attempt 1) was lost while attempt 1 ran"],
}


def resumed_record() -> dict[str, Any]:
    """A job whose AppMaster was lost during attempt 1; AppMaster 2 ran attempt 2."""
    return {
        "state": "SUCCEEDED",
        "attempt": 2,
        "am_attempt": 2,
        "root_cause": LOST,
        "attempts": [
            {"attempt": 1, "state": "FAILED", "started": T0, "finished": T0 + 30,
             "failure": LOST, "failures": [LOST], "counted": False, "am_attempt": 1,
             "decision": "AppMaster lost: retried, not counted"},
            {"attempt": 2, "state": "SUCCEEDED", "started": T0 + 40, "finished": T0 + 50,
             "failure": None, "failures": [], "counted": None, "am_attempt": 2, "decision": ""},
        ],
    }  # fmt: skip


def test_attempts_show_which_appmaster_ran_them() -> None:
    doc = diagnosis(app(), resumed_record())
    assert [(a["attempt"], a["am_attempt"], a["state"]) for a in doc["attempts"]] == [
        (1, 1, "FAILED"),
        (2, 2, "SUCCEEDED"),
    ]
    assert doc["attempts"][0]["counted"] is False
    assert doc["attempts"][0]["finished"] == "2023-11-14T22:13:50+00:00"


def test_root_cause_names_the_attempt_it_ended() -> None:
    doc = diagnosis(app(), resumed_record())
    assert doc["root_cause"]["category"] == "NODE_FAILURE"
    assert doc["root_cause"]["attempt"] == 1
    assert doc["state"] == "SUCCEEDED"
