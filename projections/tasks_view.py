"""The tasks view: one row per task, as the log says it is now.

A page of events is folded per task in memory first (a task submitted, assigned, started
and finished within one page becomes one INSERT), then written with one statement per
kind of change (``projections/folded.py``): the cost per event falls as the page fills.
The same page moves the counts per (state, type, priority) in ``task_counts``.

An ``UnroutableTasks`` record flags, at its place in the log, the tasks it names that are
still pending there: the page is folded and written up to it, the flag is set with one
statement, and the rest of the page follows. Each flagged task keeps the record's position
in ``flagged_at`` (its timeline shows the record), even once an assignment clears the flag.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
import psycopg

from domain.aggregate import event_topics
from domain.tasks import Task, implied_start
from domain.unroutable import UnroutableTasks
from projections.counts import TASK_KEY
from projections.folded import RowTable, fold
from projections.runner import Positioned
from store.migrations import Migration

JSONB = frozenset({"payload", "result", "assignment", "unroutable"})

_INSERT_COLUMNS = (
    "task_id",
    "type",
    "priority",
    "capabilities",
    "state",
    "payload",
    "result",
    "error",
    "bot_id",
    "fencing_token",
    "idempotency_key",
    "submitted_by",
    "submitted_at",
    "assigned_at",
    "started_at",
    "finished_at",
    "assignment",
    "unroutable",
    "seq",
    "version",
    "position",
    "not_before",
    "schedule_id",
)


# Each column's type in the page's JSON document (jsonb as its text).
TYPES = {
    **dict.fromkeys(("type", "state", "error", "idempotency_key", "submitted_by", *JSONB), "text"),
    **dict.fromkeys(("task_id", "bot_id", "schedule_id"), "uuid"),
    **dict.fromkeys(
        ("submitted_at", "assigned_at", "started_at", "finished_at", "not_before"), "timestamptz"
    ),
    **dict.fromkeys(("seq", "position"), "bigint"),
    **dict.fromkeys(("version", "fencing_token"), "integer"),
    "priority": "smallint",
    "capabilities": "text[]",
}


def _changes(event: Any) -> dict[str, Any]:
    """The columns an event changes (after the submission)."""
    at = event.timestamp
    match event:
        case Task.Assigned():
            return {
                "state": "assigned",
                "bot_id": event.bot_id,
                "fencing_token": event.fencing_token,
                "assigned_at": at,
                "started_at": None,
                "assignment": orjson.dumps(event.why).decode(),
                "unroutable": None,
            }
        case Task.Unroutable():
            return {"unroutable": _flag(event)}
        case Task.Started():
            return {"state": "running", "started_at": at}
        case Task.Succeeded():
            return {"state": "succeeded", "result": event.result, "finished_at": at, **_ran(event)}
        case Task.Failed():
            return {"state": "failed", "error": event.error, "finished_at": at, **_ran(event)}
        case Task.Cancelled():
            return {"state": "cancelled", "error": event.reason, "finished_at": at}
        case Task.LeaseExpired():
            return {"state": "pending", "bot_id": None, "started_at": None}
    return {}


def _ran(event: Any) -> dict[str, Any]:
    """A finish that says its start too: the start it implies."""
    started = implied_start(event)
    return {} if started is None else {"started_at": started}


def _flag(event: Any) -> str:
    """Why no bot could do the task (an ``UnroutableTasks`` record, or an old log's
    ``Task.Unroutable``), as the ``unroutable`` column holds it."""
    flag = {"reason": event.reason, "missing": event.missing, "at": event.timestamp.isoformat()}
    return orjson.dumps(flag).decode()


def _submitted(p: Positioned) -> dict[str, Any]:
    e = p.event
    return {
        "task_id": e.originator_id,
        "type": e.type,
        "priority": e.priority,
        "capabilities": e.capabilities,
        "state": "pending",
        "payload": e.payload,
        "result": None,
        "error": None,
        "bot_id": None,
        "fencing_token": 0,
        "idempotency_key": e.idempotency_key,
        "submitted_by": e.actor,
        "submitted_at": e.timestamp,
        "assigned_at": None,
        "started_at": None,
        "finished_at": None,
        "assignment": None,
        "unroutable": None,
        "seq": p.position,
        "version": e.originator_version,
        "position": p.position,
        "not_before": e.not_before,
        "schedule_id": e.schedule_id,
    }


ROWS = RowTable(
    table="tasks_view",
    key="task_id",
    types=TYPES,
    jsonb=JSONB,
    columns=_INSERT_COLUMNS,
    counts="task_counts",
    counted=TASK_KEY,
)


FLAG_MIGRATIONS = [
    Migration(
        180,
        "views: the positions of the unroutable records that flagged a task",
        """
        ALTER TABLE public.tasks_view
            ADD COLUMN IF NOT EXISTS flagged_at bigint[] NOT NULL DEFAULT '{}';
        """,
    ),
]
FLAG = (
    "UPDATE tasks_view SET unroutable = %s::jsonb, flagged_at = flagged_at || %s::bigint "
    "WHERE task_id = ANY(%s) AND state = 'pending'"
)


class TasksView:
    name = "tasks"
    tables: tuple[str, ...] = ("tasks_view", "task_counts")
    topics: tuple[str, ...] = (*event_topics(Task), *event_topics(UnroutableTasks))
    handles: frozenset[type] = frozenset(
        {
            Task.Submitted,
            Task.Assigned,
            Task.Unroutable,
            Task.Started,
            Task.Succeeded,
            Task.Failed,
            Task.Cancelled,
            Task.LeaseExpired,
            UnroutableTasks.Unroutable,
        }
    )
    ignores: frozenset[type] = frozenset()

    def apply(self, cur: psycopg.Cursor[Any], events: Sequence[Positioned]) -> None:
        start = 0
        for i, p in enumerate(events):
            if isinstance(p.event, UnroutableTasks.Unroutable):
                self._write(cur, events[start:i])
                cur.execute(FLAG, (_flag(p.event), p.position, p.event.task_ids))
                start = i + 1
        self._write(cur, events[start:])

    def _write(self, cur: psycopg.Cursor[Any], events: Sequence[Positioned]) -> None:
        if events:
            ROWS.write(cur, *fold(events, "task_id", Task.Submitted, _submitted, _changes))
