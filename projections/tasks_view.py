"""The tasks view: one row per task, as the log says it is now.

A page of events is folded per task in memory first (a task submitted, assigned, started
and finished within one page becomes one INSERT), then written with one statement per
kind of change: the cost per event falls as the page fills.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

import orjson
import psycopg

from domain.aggregate import event_topics
from domain.tasks import Task
from projections.runner import Positioned

# Every column's type as it travels: one array per column, so a page is one statement of
# each kind (set-based), not a statement per row. JSON travels as text, capabilities as one
# comma-joined string (short names have no commas).
TRAVEL = {
    "task_id": "uuid",
    "type": "text",
    "priority": "smallint",
    "capabilities": "text",
    "state": "text",
    "payload": "text",
    "result": "text",
    "error": "text",
    "bot_id": "uuid",
    "fencing_token": "integer",
    "idempotency_key": "text",
    "submitted_by": "text",
    "submitted_at": "timestamptz",
    "assigned_at": "timestamptz",
    "started_at": "timestamptz",
    "finished_at": "timestamptz",
    "assignment": "text",
    "seq": "bigint",
    "version": "integer",
    "position": "bigint",
}
ARRIVE = {
    "payload": "v.payload::jsonb",
    "result": "v.result::jsonb",
    "assignment": "v.assignment::jsonb",
    "capabilities": "string_to_array(v.capabilities, ',')",
}


def _unnest(columns: Sequence[str]) -> str:
    arrays = ", ".join(f"%s::{TRAVEL[c]}[]" for c in columns)
    return f"unnest({arrays}) AS v({', '.join(columns)})"


def _arrive(column: str) -> str:
    return ARRIVE.get(column, f"v.{column}")


_INSERT_COLUMNS = tuple(TRAVEL)
INSERT = (
    f"INSERT INTO tasks_view ({', '.join(_INSERT_COLUMNS)}) "
    f"SELECT {', '.join(_arrive(c) for c in _INSERT_COLUMNS)} FROM {_unnest(_INSERT_COLUMNS)} "
    "ON CONFLICT (task_id) DO NOTHING"
)


def _columns(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> list[list[Any]]:
    return [[row[c] for row in rows] for c in columns]


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
            }
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
        "capabilities": ",".join(e.capabilities),
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
        "seq": p.position,
        "version": e.originator_version,
        "position": p.position,
    }


class TasksView:
    name = "tasks"
    tables: tuple[str, ...] = ("tasks_view",)
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
        if inserts:
            cur.execute(INSERT, _columns(list(inserts.values()), _INSERT_COLUMNS))
        by_shape: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for row in updates.values():
            by_shape.setdefault(tuple(sorted(row)), []).append(row)
        for shape, rows in by_shape.items():
            cur.execute(_update_statement(shape), _columns(rows, shape))


def _update_statement(shape: tuple[str, ...]) -> str:
    sets = ", ".join(f"{c} = {_arrive(c)}" for c in shape if c != "task_id")
    return (
        f"UPDATE tasks_view AS t SET {sets} FROM {_unnest(shape)} "
        "WHERE t.task_id = v.task_id AND t.version < v.version"
    )
