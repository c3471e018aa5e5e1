"""The tasks view: one row per task, as the log says it is now.

A page of events is folded per task in memory first (a task submitted, assigned, started
and finished within one page becomes one INSERT), then written with one statement per
kind of change: the cost per event falls as the page fills. The same page moves the
counts per (state, type, priority) in ``task_counts`` (``projections/counts.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

import orjson
import psycopg

from domain.aggregate import event_topics
from domain.tasks import Task
from projections.counts import TASK_KEY, CountDeltas
from projections.recordset import document, recordset
from projections.runner import Positioned

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


def _value(column: str) -> str:
    """The column's value in ``u``, cast back from the type it travelled as."""
    return f"u.{column}::jsonb" if column in JSONB else f"u.{column}"


INSERT = (
    f"INSERT INTO tasks_view ({', '.join(_INSERT_COLUMNS)}) "
    f"SELECT {', '.join(_value(c) for c in _INSERT_COLUMNS)} "
    f"FROM {recordset(TYPES, _INSERT_COLUMNS)} "
    "ON CONFLICT (task_id) DO NOTHING RETURNING state, type, priority"
)
# What the updates of a page find before they change it: the keys their counts move from.
BEFORE = "SELECT task_id, state, type, priority, version FROM tasks_view WHERE task_id = ANY(%s)"


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
            flag = {"reason": event.reason, "missing": event.missing, "at": at.isoformat()}
            return {"unroutable": orjson.dumps(flag).decode()}
        case Task.Started():
            return {"state": "running", "started_at": at}
        case Task.Succeeded():
            return {"state": "succeeded", "result": event.result, "finished_at": at}
        case Task.Failed():
            return {"state": "failed", "error": event.error, "finished_at": at}
        case Task.Cancelled():
            return {"state": "cancelled", "error": event.reason, "finished_at": at}
        case Task.LeaseExpired():
            return {"state": "pending", "bot_id": None, "started_at": None}
    return {}


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


class TasksView:
    name = "tasks"
    tables: tuple[str, ...] = ("tasks_view", "task_counts")
    topics: tuple[str, ...] = event_topics(Task)

    def apply(self, cur: psycopg.Cursor[Any], events: Sequence[Positioned]) -> None:
        inserts: dict[UUID, dict[str, Any]] = {}
        updates: dict[UUID, dict[str, Any]] = {}
        for p in events:
            task_id = p.event.originator_id
            if isinstance(p.event, Task.Submitted):
                inserts[task_id] = _submitted(p)
                continue
            row = inserts.get(task_id)
            if row is None:
                row = updates.setdefault(task_id, {"task_id": task_id})
            row.update(_changes(p.event))
            row["version"] = p.event.originator_version
            row["position"] = p.position
        counts = CountDeltas("task_counts", TASK_KEY)
        if inserts:
            cur.execute(INSERT, (document(inserts.values()),))
            for state, type_, priority in cur.fetchall():  # none for a row already there
                counts.added((state, type_, priority))
        if updates:
            for task_id, state, type_, priority, version in cur.execute(BEFORE, (list(updates),)):
                row = updates[task_id]
                if "state" in row and version < row["version"]:  # as the UPDATE's guard
                    counts.moved((state, type_, priority), row["state"])
        counts.write(cur)
        by_shape: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for row in updates.values():
            by_shape.setdefault(tuple(sorted(row)), []).append(row)
        for shape, rows in by_shape.items():
            cur.execute(_update_statement(shape), (document(rows),))


def _update_statement(shape: tuple[str, ...]) -> str:
    sets = ", ".join(f"{c} = {_value(c)}" for c in shape if c != "task_id")
    return (
        f"UPDATE tasks_view t SET {sets} FROM {recordset(TYPES, shape)} "
        "WHERE t.task_id = u.task_id AND t.version < u.version"
    )
