"""A task's attempts, read from its own events in the log (its timeline's entries).

An attempt begins with an assignment and ends with the bot's success or failure, a
retry scheduled or a dead-lettering (each naming the attempt that ended and how:
``failed``, ``lost``, ``timed-out``), or a cancel while the task was held. A lease that
expired before the start was reported ended no attempt (the domain's rule): the next
assignment is the same attempt again. A re-drive begins a new series at attempt 1.

One function, ``attempts``, over entries with ``kind``, ``at`` and ``fields``: what the
dashboard's task page draws as its attempts table.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

ENDS = {
    "Succeeded": "succeeded",
    "Failed": "failed",
    "Cancelled": "cancelled",
}


def attempts(entries: Sequence[Any]) -> list[dict[str, Any]]:
    """Each attempt, oldest first: ``series``, ``attempt``, ``bot_id``, ``started_at``
    (None while it was not reported), ``ended_at`` and ``outcome`` (None while it runs),
    ``error_kind``, ``error`` and, for the one that was dead-lettered, ``dead_reason``."""
    found: list[dict[str, Any]] = []
    series, number, current = 1, 1, None
    for e in entries:
        f = e.fields
        if e.kind == "Assigned":
            current = _begun(series, number, f["bot_id"], e.at)
            found.append(current)
        elif e.kind == "Started" and current is not None:
            current["started_at"] = e.at
        elif e.kind == "LeaseExpired" and current is not None and current["outcome"] is None:
            found.remove(current)  # lost before its start: no attempt, as the domain counts
            current = None
        elif e.kind in ("RetryScheduled", "DeadLettered") and current is not None:
            _ended(current, e, f["outcome"], f.get("ran_s"))
            current.update(attempt=f["attempt"], error_kind=f.get("error_kind"))
            if e.kind == "DeadLettered":
                current["dead_reason"] = f["reason"]
            number, current = f["attempt"] + 1, None
        elif e.kind in ENDS and current is not None and current["outcome"] is None:
            _ended(current, e, ENDS[e.kind], f.get("ran_s"))
            current["error_kind"] = f.get("error_kind")
            current = None
        elif e.kind == "Redriven":
            series, number, current = f["series"], 1, None
    return found


def _begun(series: int, number: int, bot_id: Any, at: Any) -> dict[str, Any]:
    return {
        "series": series,
        "attempt": number,
        "bot_id": bot_id,
        "assigned_at": at,
        "started_at": None,
        "ended_at": None,
        "outcome": None,
        "error_kind": None,
        "error": None,
        "dead_reason": None,
    }


def _ended(attempt: dict[str, Any], entry: Any, outcome: str, ran_s: float | None) -> None:
    """``ran_s``: a finish whose start was never reported says how long it ran."""
    if attempt["started_at"] is None and ran_s is not None:
        attempt["started_at"] = entry.at - timedelta(seconds=ran_s)
    error = entry.fields.get("error", entry.fields.get("reason"))
    if outcome == "succeeded":
        error = None
    attempt.update(ended_at=entry.at, outcome=outcome, error=error)
