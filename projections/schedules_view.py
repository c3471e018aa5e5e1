"""The schedules view: one row per schedule, with its next tick worked out for readers.

Schedules change rarely (a decision per tick at most), so a page is folded into the rows
it touches, read first, and each changed row is written back whole. The next tick comes
from the same pure policy the engine decides with; it is a reader's (and the scheduler's)
hint of when to look, never the decision itself, which the aggregate makes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

import psycopg
from psycopg.rows import dict_row

from domain.aggregate import event_topics
from domain.policies import triggers
from domain.policies.schedule import Catchup, Overlap, Timing, next_tick
from domain.schedules import Schedule, ScheduleState
from projections.runner import Positioned

COLUMNS = (
    "schedule_id",
    "name",
    "cron",
    "timezone",
    "every_s",
    "start_at",
    "task_type",
    "priority",
    "capabilities",
    "payload",
    "overlap",
    "catchup",
    "catchup_limit",
    "state",
    "not_before",
    "last_tick",
    "next_tick",
    "buffered_tick",
    "fired",
    "skipped",
    "last_task_id",
    "created_by",
    "created_at",
    "updated_at",
    "seq",
    "version",
    "position",
)
# The payload is read back as JSON text, as the log holds it, and written back the same way.
SELECTED = ", ".join("payload::text AS payload" if c == "payload" else c for c in COLUMNS)
UPSERT = (
    f"INSERT INTO schedules_view ({', '.join(COLUMNS)}) VALUES ("
    + ", ".join(f"%({c})s::jsonb" if c == "payload" else f"%({c})s" for c in COLUMNS)
    + ") ON CONFLICT (schedule_id) DO UPDATE SET "
    + ", ".join(f"{c} = EXCLUDED.{c}" for c in COLUMNS if c != "schedule_id")
)


def _created(p: Positioned) -> dict[str, Any]:
    e = p.event
    return {
        "schedule_id": e.originator_id,
        "name": e.name,
        "cron": e.cron,
        "timezone": e.timezone,
        "every_s": e.every_s,
        "start_at": e.start_at,
        "task_type": e.task_type,
        "priority": e.priority,
        "capabilities": e.capabilities,
        "payload": e.payload,
        "overlap": e.overlap,
        "catchup": e.catchup,
        "catchup_limit": e.catchup_limit,
        "state": str(ScheduleState.ACTIVE),
        "not_before": max(e.start_at, e.timestamp),
        "last_tick": None,
        "buffered_tick": None,
        "fired": 0,
        "skipped": 0,
        "last_task_id": None,
        "created_by": e.actor,
        "created_at": e.timestamp,
        "seq": p.position,
    }


def _fold(row: dict[str, Any], e: Any) -> None:
    """What an event after the creation changes (as the aggregate's ``apply`` does)."""
    match e:
        case Schedule.Fired():
            row.update(last_tick=e.tick, last_task_id=e.task_id, fired=row["fired"] + 1)
        case Schedule.Released():
            row.update(buffered_tick=None, last_task_id=e.task_id, fired=row["fired"] + 1)
        case Schedule.Buffered():
            row.update(last_tick=e.tick, buffered_tick=e.tick)
        case Schedule.Skipped():
            row.update(last_tick=e.tick, skipped=row["skipped"] + e.count)
        case Schedule.Paused():
            row["state"] = str(ScheduleState.PAUSED)
        case Schedule.Resumed():
            row.update(
                state=str(ScheduleState.ACTIVE), not_before=max(row["not_before"], e.timestamp)
            )
        case Schedule.Deleted():
            row.update(state=str(ScheduleState.DELETED), buffered_tick=None)


def upcoming(row: dict[str, Any]) -> Any:
    """The next tick to decide, for an active schedule (None otherwise)."""
    if row["state"] != ScheduleState.ACTIVE:
        return None
    trigger: triggers.Trigger = (
        triggers.Cron(row["cron"], row["timezone"] or "UTC")
        if row["cron"] is not None
        else triggers.Interval(row["every_s"], row["start_at"])
    )
    timing = Timing(
        trigger=trigger,
        overlap=Overlap(row["overlap"]),
        catchup=Catchup(row["catchup"]),
        catchup_limit=row["catchup_limit"],
        not_before=row["not_before"],
        last_tick=row["last_tick"],
        buffered=row["buffered_tick"],
        active=True,
    )
    return next_tick(timing)


class SchedulesView:
    name = "schedules"
    tables: tuple[str, ...] = ("schedules_view",)
    topics: tuple[str, ...] = event_topics(Schedule)
    handles: frozenset[type] = frozenset(
        {
            Schedule.Created,
            Schedule.Fired,
            Schedule.Released,
            Schedule.Buffered,
            Schedule.Skipped,
            Schedule.Paused,
            Schedule.Resumed,
            Schedule.Deleted,
        }
    )
    ignores: frozenset[type] = frozenset()

    def apply(self, cur: psycopg.Cursor[Any], events: Sequence[Positioned]) -> None:
        rows = self._rows(cur, {p.event.originator_id for p in events})
        changed: set[UUID] = set()
        for p in events:
            e, schedule_id = p.event, p.event.originator_id
            row = rows.get(schedule_id)
            if isinstance(e, Schedule.Created):
                if row is not None:
                    continue  # applied already
                row = rows[schedule_id] = _created(p)
            elif row is None or e.originator_version <= row["version"]:
                continue
            else:
                _fold(row, e)
            row.update(version=e.originator_version, position=p.position, updated_at=e.timestamp)
            changed.add(schedule_id)
        for schedule_id in changed:
            row = rows[schedule_id]
            row["next_tick"] = upcoming(row)
            cur.execute(UPSERT, row)

    @staticmethod
    def _rows(cur: psycopg.Cursor[Any], ids: set[UUID]) -> dict[UUID, dict[str, Any]]:
        with cur.connection.cursor(row_factory=dict_row) as reading:
            reading.execute(
                f"SELECT {SELECTED} FROM schedules_view WHERE schedule_id = ANY(%s)",
                (list(ids),),
            )
            return {r["schedule_id"]: dict(r) for r in reading.fetchall()}
