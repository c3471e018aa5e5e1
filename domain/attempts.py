"""A task's attempts, as its own events tell them: who ran it, when, and how each ended.

Pure: one task's events in log order in, its attempts out (``GET /v1/tasks/{id}`` and the
dashboard show them). An attempt begins with an assignment and ends with the task's
success, its failure for good (``Failed``), a retry (``RetryScheduled``), a dead letter
(``DeadLettered``) or a cancel while a bot held it; an attempt not yet ended is
``running`` (its bot may not have reported the start yet). A lease lost before the start
(``LeaseExpired`` while assigned) is no attempt: as far as the hive knows nothing ran, and
it is left out. A re-drive (``Redriven``) begins a new series, numbered from attempt 1.

When an attempt began: its ``Started`` event's time; else the start its end implies (a
fast task reports ``ran_s`` with its end); else its assignment's time.

An old log (before retries) may hold a ``LeaseExpired`` after the start: it is shown as a
``lost`` attempt, numbered as the task counted it then (the next attempt has the same
number, since before retries a lost bot did not end an attempt).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from domain.tasks import Task, implied_start


class AttemptOutcome(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    LOST = "lost"
    TIMED_OUT = "timed-out"
    RUNNING = "running"  # not ended yet
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class Attempt:
    series: int  # 1 + the re-drives before it
    attempt: int  # 1-based within its series
    bot_id: UUID
    started_at: datetime
    ended_at: datetime | None  # None while running
    outcome: AttemptOutcome
    error: str | None = None
    error_kind: str | None = None


@dataclass(frozen=True)
class _Open:
    """The attempt under way: assigned, maybe started."""

    bot_id: UUID
    assigned_at: datetime
    started_at: datetime | None = None


def attempts(events: Iterable[Any]) -> list[Attempt]:
    """One task's attempts, oldest first; events of other kinds (a flag) are passed over."""
    done: list[Attempt] = []
    series, number = 1, 1
    held: _Open | None = None
    for e in events:
        match e:
            case Task.Assigned():
                held = _Open(e.bot_id, e.timestamp)
            case Task.Started() if held is not None:
                held = replace(held, started_at=e.timestamp)
            case Task.Succeeded() | Task.Failed() if held is not None:
                outcome = AttemptOutcome("succeeded" if isinstance(e, Task.Succeeded) else "failed")
                kind = e.error_kind if isinstance(e, Task.Failed) else None
                error = e.error if isinstance(e, Task.Failed) else None
                done.append(_ended(held, series, number, e, outcome, error, kind))
                held = None
            case Task.RetryScheduled() | Task.DeadLettered():
                opened = held or _Open(e.bot_id, e.timestamp)
                outcome = AttemptOutcome(e.outcome)
                done.append(_ended(opened, series, e.attempt, e, outcome, e.error, e.error_kind))
                number, held = e.attempt + 1, None
            case Task.LeaseExpired() if held is not None:
                if held.started_at is not None:  # an old log's bot lost after its start
                    done.append(_ended(held, series, number, e, AttemptOutcome.LOST, e.reason))
                held = None
            case Task.Cancelled() if held is not None:
                done.append(_ended(held, series, number, e, AttemptOutcome.CANCELLED, e.reason))
                held = None
            case Task.Redriven():
                series, number, held = e.series, 1, None
    if held is not None:
        began = held.started_at or held.assigned_at
        done.append(Attempt(series, number, held.bot_id, began, None, AttemptOutcome.RUNNING))
    return done


def _ended(
    held: _Open,
    series: int,
    number: int,
    end: Any,
    outcome: AttemptOutcome,
    error: str | None = None,
    error_kind: str | None = None,
) -> Attempt:
    began = held.started_at or _implied(end) or held.assigned_at
    return Attempt(series, number, held.bot_id, began, end.timestamp, outcome, error, error_kind)


def _implied(end: Any) -> datetime | None:
    """The start a fast task's end implies (it ran ``ran_s`` before it), if it says one."""
    if isinstance(end, Task.Succeeded | Task.Failed | Task.RetryScheduled | Task.DeadLettered):
        return implied_start(end)
    return None
