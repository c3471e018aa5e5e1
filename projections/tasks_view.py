"""The tasks view: one row per task, as the log says it is now.

A page of events is folded per task in memory first (a task submitted, assigned, started
and finished within one page becomes one INSERT), then written with one statement per
kind of change (``projections/folded.py``): the cost per event falls as the page fills.
The same page moves the counts per (state, type, priority) in ``task_counts``, and the
retries and dead letters per (type, error kind) in ``retry_counts``.

An ``UnroutableTasks`` record flags, at its place in the log, the tasks it names that are
still pending there: the page is folded and written up to it, the flag is set with one
statement, and the rest of the page follows. Each flagged task keeps the record's position
in ``flagged_at`` (its timeline shows the record), even once an assignment clears the flag.

``assignment`` holds an assignment's complete explanation, as it always did. One that
names a dispatch round carries only its own choice: it is made whole (``explain``) from
the round's record, which the log holds just ahead of it. The view keeps every round in
``dispatch_rounds``, so an assignment finds its round in its own page (in memory) or, when
a page ends between the two, in that table.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any
from uuid import UUID

import orjson
import psycopg

from domain.aggregate import event_topics
from domain.policies.explanation import RoundInputs
from domain.rounds import DispatchRound
from domain.tasks import Task, implied_start
from domain.unroutable import UnroutableTasks
from projections.counts import TASK_KEY
from projections.folded import RowTable, fold
from projections.recordset import rows_from, tuples
from projections.retry_counts import count_retries
from projections.runner import Positioned
from store.migrations import Migration

JSONB = frozenset({"payload", "result", "assignment", "unroutable", "retry"})

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
    "attempt",
    "series",
    "error_kind",
    "dead_reason",
    "retry",
)


# Each column's type in the page's JSON document (jsonb as its text).
TYPES = {
    **dict.fromkeys(
        ("type", "state", "error", "error_kind", "dead_reason", "idempotency_key"), "text"
    ),
    **dict.fromkeys(("submitted_by", *JSONB), "text"),
    **dict.fromkeys(("task_id", "bot_id", "schedule_id"), "uuid"),
    **dict.fromkeys(
        ("submitted_at", "assigned_at", "started_at", "finished_at", "not_before"), "timestamptz"
    ),
    **dict.fromkeys(("seq", "position"), "bigint"),
    **dict.fromkeys(("version", "fencing_token", "attempt", "series"), "integer"),
    "priority": "smallint",
    "capabilities": "text[]",
}


Rounds = dict[UUID, RoundInputs]  # the dispatch rounds a page's assignments name


def _changes(event: Any, rounds: Rounds) -> dict[str, Any]:
    """The columns an event changes (after the submission)."""
    at = event.timestamp
    match event:
        case Task.Assigned():
            why = event.why if event.round_id is None else rounds[event.round_id].explain(event.why)
            return {
                "state": "assigned",
                "bot_id": event.bot_id,
                "fencing_token": event.fencing_token,
                "assigned_at": at,
                "started_at": None,
                "assignment": orjson.dumps(why).decode(),
                "unroutable": None,
            }
        case Task.Unroutable():
            return {"unroutable": _flag(event)}
        case Task.Started():
            return {"state": "running", "started_at": at}
        case Task.Succeeded():
            return {"state": "succeeded", "result": event.result, "finished_at": at, **_ran(event)}
        case Task.Failed():
            return {
                "state": "failed",
                "error": event.error,
                "error_kind": event.error_kind,
                "finished_at": at,
                **_ran(event),
            }
        case Task.Cancelled():
            return {"state": "cancelled", "error": event.reason, "finished_at": at}
        case Task.LeaseExpired():
            return {"state": "pending", "bot_id": None, "started_at": None}
        case Task.RetryScheduled():
            return {
                "state": "pending",
                "bot_id": None,
                "started_at": None,
                "error": event.error,
                "error_kind": event.error_kind,
                "not_before": event.not_before,
                "attempt": event.attempt + 1,
            }
        case Task.DeadLettered():
            return {
                "state": "dead",
                "error": event.error,
                "error_kind": event.error_kind,
                "dead_reason": event.reason,
                "finished_at": at,
                **_ran(event),
            }
        case Task.Redriven():
            return {
                "state": "pending",
                "bot_id": None,
                "started_at": None,
                "finished_at": None,
                "result": None,
                "error": None,
                "error_kind": None,
                "dead_reason": None,
                "unroutable": None,
                "not_before": at,  # offered from its re-drive, and aged from it
                "attempt": 1,
                "series": event.series,
            }
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
        "attempt": 1,
        "series": 1,
        "error_kind": None,
        "dead_reason": None,
        "retry": None if e.retry is None else orjson.dumps(e.retry).decode(),
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

RETRY_MIGRATIONS = [
    Migration(
        210,
        "views: a task's attempt, series, error kind, why it was dead-lettered, its limits",
        """
        ALTER TABLE public.tasks_view
            ADD COLUMN IF NOT EXISTS attempt integer NOT NULL DEFAULT 1,
            ADD COLUMN IF NOT EXISTS series integer NOT NULL DEFAULT 1,
            ADD COLUMN IF NOT EXISTS error_kind text,
            ADD COLUMN IF NOT EXISTS dead_reason text,
            ADD COLUMN IF NOT EXISTS retry jsonb;
        """,
    ),
]

ROUND_MIGRATIONS = [
    Migration(
        181,
        "views: the dispatch rounds the tasks view explains assignments from",
        """
        CREATE TABLE IF NOT EXISTS public.dispatch_rounds (
            round_id uuid PRIMARY KEY,
            position bigint NOT NULL,
            policy text NOT NULL,
            groups jsonb NOT NULL
        );
        """,
    ),
]
ROUND_COLUMNS = (
    ("round_id", "uuid"),
    ("position", "bigint"),
    ("policy", "text"),
    ("groups", "jsonb"),
)
KEEP_ROUNDS = (
    f"INSERT INTO dispatch_rounds (round_id, position, policy, groups) {rows_from(ROUND_COLUMNS)} "
    "ON CONFLICT (round_id) DO NOTHING"
)
READ_ROUNDS = "SELECT round_id, policy, groups FROM dispatch_rounds WHERE round_id = ANY(%s)"


class TasksView:
    name = "tasks"
    tables: tuple[str, ...] = ("tasks_view", "task_counts", "dispatch_rounds", "retry_counts")
    topics: tuple[str, ...] = (
        *event_topics(Task),
        *event_topics(UnroutableTasks),
        *event_topics(DispatchRound),
    )
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
            Task.RetryScheduled,
            Task.DeadLettered,
            Task.Redriven,
            UnroutableTasks.Unroutable,
            DispatchRound.Decided,
        }
    )
    ignores: frozenset[type] = frozenset()

    def apply(self, cur: psycopg.Cursor[Any], events: Sequence[Positioned]) -> None:
        rounds = _rounds(cur, events)
        tasks = [p for p in events if not isinstance(p.event, DispatchRound.Decided)]
        start = 0
        for i, p in enumerate(tasks):
            if isinstance(p.event, UnroutableTasks.Unroutable):
                _write(cur, tasks[start:i], rounds)
                cur.execute(FLAG, (_flag(p.event), p.position, p.event.task_ids))
                start = i + 1
        _write(cur, tasks[start:], rounds)


def _write(cur: psycopg.Cursor[Any], events: Sequence[Positioned], rounds: Rounds) -> None:
    if events:
        count_retries(cur, events)  # first: it compares the events with the rows as they were
        changes = partial(_changes, rounds=rounds)
        ROWS.write(cur, *fold(events, "task_id", Task.Submitted, _submitted, changes))


def _rounds(cur: psycopg.Cursor[Any], events: Sequence[Positioned]) -> Rounds:
    """Keeps the page's rounds; returns those its assignments name: the page's own, and
    any earlier one (its page ended before its assignments did) read back."""
    made = [p for p in events if isinstance(p.event, DispatchRound.Decided)]
    if made:
        rows = [(p.event.originator_id, p.position, p.event.policy, p.event.groups) for p in made]
        cur.execute(KEEP_ROUNDS, (tuples(ROUND_COLUMNS, rows),))
    rounds = {p.event.originator_id: RoundInputs(p.event.policy, p.event.groups) for p in made}
    named = {p.event.round_id for p in events if isinstance(p.event, Task.Assigned)}
    earlier = [r for r in named if r is not None and r not in rounds]
    if earlier:
        for round_id, policy, groups in cur.execute(READ_ROUNDS, (earlier,)):
            rounds[round_id] = RoundInputs(policy, groups)
    return rounds
