"""``dlsubmit diagnose``: the root cause and every attempt's failure (JOBSPEC.md schema)."""

from __future__ import annotations

from typing import Any

from client.rm import AppInfo

__all__ = ["diagnosis"]


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    import datetime

    return datetime.datetime.fromtimestamp(ts, datetime.UTC).isoformat(timespec="seconds")


def diagnosis(app: AppInfo, record: dict[str, Any] | None) -> dict[str, Any]:
    """Build the diagnosis document from the RM's view and the AppMaster's record."""
    from client.api import job_state

    record = record or {}
    attempts = [
        {
            "attempt": a.get("attempt"),
            "state": a.get("state"),
            "started": _iso(a.get("started")),
            "finished": _iso(a.get("finished")),
            "failure": a.get("failure"),
            "failures": a.get("failures", []),
            "decision": a.get("decision", ""),
            "counted": a.get("counted"),
            # Which YARN AppMaster attempt ran it: after an AppMaster loss, the lost attempt
            # shows under AppMaster 1 and the resumed ones under AppMaster 2.
            "am_attempt": a.get("am_attempt"),
        }
        for a in record.get("attempts", [])
    ]
    root = record.get("root_cause")
    if root:
        root = dict(root)
        for a in reversed(record.get("attempts", [])):
            if a.get("failure") and a["failure"].get("category") == root.get("category"):
                root.setdefault("attempt", a.get("attempt"))
                break
    elif app.state in ("FAILED", "KILLED") or app.final_status in ("FAILED", "KILLED"):
        # The AppMaster never wrote a record: say what YARN said.
        root = {
            "category": "UNKNOWN",
            "retryable": False,
            "task": None,
            "evidence": [app.diagnostics] if app.diagnostics else [],
            "hint": "the AppMaster left no record; see `dlsubmit logs` and the RM UI",
        }
    return {
        "app_id": app.id,
        "name": app.name,
        "state": str(job_state(app, record or None)),
        "yarn_state": app.state,
        "final_status": app.final_status,
        "diagnostics": record.get("diagnostics") or app.diagnostics,
        "root_cause": root,
        "attempts": attempts,
    }
