"""Runs: which task events make one bot's run of one type of task, and how it ended.

A task is followed from its submission (the event that names its type). Its run begins
when the bot it is assigned to reports ``Started`` (or, for a finish that says its start
too, ``ran_s`` before that finish) and ends with

* ``Succeeded``: a success, timed start -> finish: how long the bot takes to do the work;
* ``Failed``: a failure, untimed: how soon a bot gives up says nothing of how fast it
  works (timed, a bot that fails at once would look the fastest of all);
* ``LeaseExpired`` after the start: a failure. The bot began the task and did not finish
  it, which is what the requester sees. (Lost and deregistered bots never come back under
  the same id, so this counts mostly for the record.)
* ``RetryScheduled`` and ``DeadLettered``: an attempt that ended without success (its bot
  reported a failure, was lost after the start, or ran past the timeout), untimed as a
  ``Failed``, charged to the bot the event names. After a ``RetryScheduled`` the task
  waits for its next attempt, whoever takes it; a ``DeadLettered`` ends it.
* ``Redriven``: says nothing of any bot; the task is followed again (its type is on the
  event), for the attempts of its new series.

A lease that expires before the start, and a cancellation, say nothing of the bot: the run
is dropped without an outcome. Times come from the events, so a rebuild learns the same.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.utils import get_topic

from domain.tasks import Task, implied_start

RUN_EVENTS = (
    Task.Submitted,
    Task.Assigned,
    Task.Started,
    Task.Succeeded,
    Task.Failed,
    Task.Cancelled,
    Task.LeaseExpired,
    Task.RetryScheduled,
    Task.DeadLettered,
    Task.Redriven,
)
TOPICS = tuple(get_topic(cls) for cls in RUN_EVENTS)


@dataclass(frozen=True)
class Run:
    """A task not finished yet, as far as learning needs it."""

    type: str
    bot_id: UUID | None = None
    started_at: datetime | None = None


@dataclass(frozen=True)
class Outcome:
    bot_id: UUID
    type: str
    succeeded: bool
    duration_s: float | None
    at: datetime


def follow(run: Run | None, event: Any) -> tuple[Run | None, Outcome | None]:
    """The task's run after ``event``, and the outcome the event ends it with, if any."""
    if isinstance(event, Task.Submitted | Task.Redriven):
        return Run(event.type), None
    if run is None:
        return None, None
    match event:
        case Task.Assigned():
            return Run(run.type, event.bot_id), None
        case Task.Started():
            return replace(run, started_at=event.timestamp), None
        case Task.Succeeded():
            return None, _ended(_started_with(run, event), event, succeeded=True)
        case Task.Failed():
            return None, _ended(_started_with(run, event), event, succeeded=False)
        case Task.LeaseExpired():
            return Run(run.type), _ended(run, event, succeeded=False)
        case Task.RetryScheduled():
            return Run(run.type), _attempt_failed(run, event)
        case Task.DeadLettered():
            return None, _attempt_failed(run, event)
        case Task.Cancelled():
            return None, None
    return run, None


def _started_with(run: Run, event: Any) -> Run:
    """A finish that says its start too (``ran_s``): the run began then."""
    started = implied_start(event)
    return (
        run if started is None or run.started_at is not None else replace(run, started_at=started)
    )


def _attempt_failed(run: Run, event: Task.RetryScheduled | Task.DeadLettered) -> Outcome:
    """Every way an attempt ends without success is the failure of the bot that had it
    (a timeout may come before its start was reported: the bot held it all that time)."""
    return Outcome(event.bot_id, run.type, False, None, event.timestamp)


def _ended(run: Run, event: Any, *, succeeded: bool) -> Outcome | None:
    if run.bot_id is None or run.started_at is None:
        return None
    duration = None
    if succeeded:  # a clock that went back between start and end: no time, not a negative one
        duration = max((event.timestamp - run.started_at).total_seconds(), 0.0)
    return Outcome(run.bot_id, run.type, succeeded, duration, event.timestamp)
