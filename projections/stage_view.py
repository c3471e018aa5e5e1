"""The stages view: how long tasks of each type spend in each stage of their life, as
histograms, and how many finish each minute.

Stages, all measured between the timestamps of a task's own events:

- ``submit_assign``: from when the task could first be assigned (its submission, or its
  ``not_before`` when it was delayed past that) to its FIRST assignment. A task that goes
  back to pending (its bot lost) and is assigned again counts once: the wait of a retry
  is the bot's fault, not the queue's.
- ``assign_start``: from the assignment that led to the start, to the start.
- ``start_done``: from the start to success or failure.
- ``end_to_end``: from the submission to success or failure (a delay included).

A cancelled task ends no stage that it had not already ended. Events do not carry the
task's type after the submission, so ``stage_open_tasks`` follows each unfinished task
(type and the times so far) and forgets it when it ends.

``stage_minutes`` counts successes, failures and the summed end-to-end milliseconds per
type and minute. It keeps the 24 h before the newest minute it has counted: a minute
older than that is dropped, and a completion that lands there is not counted. The newest
minute only grows with the log, so what is kept does not depend on how the log was paged,
and a rebuild from zero equals the view kept incrementally. Sums are whole milliseconds
(integers) for the same reason: float sums would depend on the order of the additions.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg
from eventsourcing.utils import get_topic

from domain.tasks import Task, implied_start
from projections.histogram import bucket_of
from projections.recordset import rows_from, tuples
from projections.runner import Positioned

STAGES = ("submit_assign", "assign_start", "start_done", "end_to_end")
KEEP_MINUTES = timedelta(hours=24)
MS = timedelta(milliseconds=1)
READS = (Task.Submitted, Task.Assigned, Task.Started, Task.Succeeded, Task.Failed, Task.Cancelled)
TOPICS = tuple(get_topic(c) for c in READS)

OPEN_COLUMNS = (
    ("task_id", "uuid"),
    ("type", "text"),
    *((c, "timestamptz") for c in ("submitted_at", "ready_at", "assigned_at", "started_at")),
)
BUCKET_COLUMNS = (("type", "text"), ("stage", "text"), ("bucket", "smallint"), ("count", "bigint"))
TOTAL_COLUMNS = (("type", "text"), ("stage", "text"), ("count", "bigint"), ("sum_ms", "bigint"))
MINUTE_COLUMNS = (
    ("type", "text"),
    ("minute", "timestamptz"),
    *((c, "bigint") for c in ("succeeded", "failed", "e2e_sum_ms")),
)
UPSERT_OPEN = (
    "INSERT INTO stage_open_tasks (task_id, type, submitted_at, ready_at, assigned_at, "
    f"started_at) {rows_from(OPEN_COLUMNS)} "
    "ON CONFLICT (task_id) DO UPDATE SET assigned_at = EXCLUDED.assigned_at, "
    "started_at = EXCLUDED.started_at"
)
ADD_BUCKET = (
    "INSERT INTO stage_histograms (type, stage, bucket, count) "
    f"{rows_from(BUCKET_COLUMNS)} "
    "ON CONFLICT (type, stage, bucket) DO UPDATE SET "
    "count = stage_histograms.count + EXCLUDED.count"
)
ADD_TOTAL = (
    "INSERT INTO stage_totals (type, stage, count, sum_ms) "
    f"{rows_from(TOTAL_COLUMNS)} "
    "ON CONFLICT (type, stage) DO UPDATE SET count = stage_totals.count + EXCLUDED.count, "
    "sum_ms = stage_totals.sum_ms + EXCLUDED.sum_ms"
)
ADD_MINUTE = (
    "INSERT INTO stage_minutes (type, minute, succeeded, failed, e2e_sum_ms) "
    f"{rows_from(MINUTE_COLUMNS)} "
    "ON CONFLICT (type, minute) DO UPDATE SET "
    "succeeded = stage_minutes.succeeded + EXCLUDED.succeeded, "
    "failed = stage_minutes.failed + EXCLUDED.failed, "
    "e2e_sum_ms = stage_minutes.e2e_sum_ms + EXCLUDED.e2e_sum_ms"
)


@dataclass(frozen=True)
class OpenTask:
    type: str
    submitted_at: datetime
    ready_at: datetime  # the submission, or a later not_before
    assigned_at: datetime | None = None  # the latest assignment (None: never assigned)
    started_at: datetime | None = None


@dataclass
class Tally:
    """What one page adds to the tables, folded in memory."""

    buckets: Counter[tuple[str, str, int]]
    totals: dict[tuple[str, str], tuple[int, int]]
    minutes: dict[tuple[str, datetime], tuple[int, int, int]]

    def observe(self, type_: str, stage: str, took: timedelta) -> int:
        """Count one duration; returns it in whole milliseconds."""
        ms = took // MS
        self.buckets[type_, stage, bucket_of(took.total_seconds())] += 1
        n, total = self.totals.get((type_, stage), (0, 0))
        self.totals[type_, stage] = (n + 1, total + ms)
        return ms

    def finish(self, type_: str, minute: datetime, succeeded: bool, e2e_ms: int) -> None:
        ok, failed, total = self.minutes.get((type_, minute), (0, 0, 0))
        self.minutes[type_, minute] = (ok + succeeded, failed + (not succeeded), total + e2e_ms)


class StageView:
    name = "stages"
    tables: tuple[str, ...] = (
        "stage_open_tasks",
        "stage_histograms",
        "stage_totals",
        "stage_minutes",
    )
    topics: tuple[str, ...] = TOPICS
    handles: frozenset[type] = frozenset(READS)
    # a lost bot's wait is not timed again; a flag is no stage
    ignores: frozenset[type] = frozenset({Task.Unroutable, Task.LeaseExpired})

    def apply(self, cur: psycopg.Cursor[Any], events: Sequence[Positioned]) -> None:
        tasks, stored = self._open(cur, events)
        row = cur.execute("SELECT max(minute) FROM stage_minutes").fetchone()
        newest: datetime | None = row[0] if row else None
        tally = Tally(Counter(), {}, {})
        changed: set[UUID] = set()
        for p in events:
            e = p.event
            task_id = e.originator_id
            task = tasks.get(task_id)
            changed.add(task_id)
            if isinstance(e, Task.Submitted):
                ready = max(e.timestamp, e.not_before or e.timestamp)
                tasks[task_id] = OpenTask(e.type, e.timestamp, ready)
            elif task is None:
                continue  # never seen submitted (nothing to time it from)
            elif isinstance(e, Task.Assigned):
                if task.assigned_at is None:
                    tally.observe(task.type, "submit_assign", e.timestamp - task.ready_at)
                tasks[task_id] = replace(task, assigned_at=e.timestamp, started_at=None)
            elif isinstance(e, Task.Started):
                if task.assigned_at is not None:
                    tally.observe(task.type, "assign_start", e.timestamp - task.assigned_at)
                tasks[task_id] = replace(task, started_at=e.timestamp)
            elif isinstance(e, Task.Succeeded | Task.Failed):
                started = implied_start(e)
                if task.started_at is None and started is not None:  # it says its start too
                    if task.assigned_at is not None:
                        tally.observe(task.type, "assign_start", started - task.assigned_at)
                    task = replace(task, started_at=started)
                if task.started_at is not None:
                    tally.observe(task.type, "start_done", e.timestamp - task.started_at)
                e2e = tally.observe(task.type, "end_to_end", e.timestamp - task.submitted_at)
                minute = e.timestamp.replace(second=0, microsecond=0)
                newest = minute if newest is None else max(newest, minute)
                if minute >= newest - KEEP_MINUTES:
                    tally.finish(task.type, minute, isinstance(e, Task.Succeeded), e2e)
                del tasks[task_id]
            else:  # cancelled
                del tasks[task_id]
        self._write(cur, tasks, stored, changed, tally, newest)

    def _open(
        self, cur: psycopg.Cursor[Any], events: Sequence[Positioned]
    ) -> tuple[dict[UUID, OpenTask], set[UUID]]:
        """The stored open tasks among the page's, those submitted before it."""
        fresh = {p.event.originator_id for p in events if isinstance(p.event, Task.Submitted)}
        older = list({p.event.originator_id for p in events} - fresh)
        if not older:
            return {}, set()
        cur.execute(
            "SELECT task_id, type, submitted_at, ready_at, assigned_at, started_at "
            "FROM stage_open_tasks WHERE task_id = ANY(%s)",
            (older,),
        )
        tasks = {task_id: OpenTask(*rest) for task_id, *rest in cur.fetchall()}
        return tasks, set(tasks)

    def _write(
        self,
        cur: psycopg.Cursor[Any],
        tasks: dict[UUID, OpenTask],
        stored: set[UUID],
        changed: set[UUID],
        tally: Tally,
        newest: datetime | None,
    ) -> None:
        gone = [t for t in stored if t not in tasks]
        if gone:
            cur.execute("DELETE FROM stage_open_tasks WHERE task_id = ANY(%s)", (gone,))
        kept = [
            (t, o.type, o.submitted_at, o.ready_at, o.assigned_at, o.started_at)
            for t, o in tasks.items()
            if t in changed
        ]
        if kept:
            cur.execute(UPSERT_OPEN, (tuples(OPEN_COLUMNS, kept),))
        if tally.buckets:
            buckets = [(*k, n) for k, n in sorted(tally.buckets.items())]
            cur.execute(ADD_BUCKET, (tuples(BUCKET_COLUMNS, buckets),))
            cur.execute(ADD_TOTAL, _keyed(TOTAL_COLUMNS, tally.totals))
        if tally.minutes and newest is not None:
            cur.execute(ADD_MINUTE, _keyed(MINUTE_COLUMNS, tally.minutes))
            cur.execute("DELETE FROM stage_minutes WHERE minute < %s", (newest - KEEP_MINUTES,))


def _keyed(
    columns: Sequence[tuple[str, str]], sums: Mapping[tuple[Any, ...], tuple[int, ...]]
) -> tuple[str]:
    """Sums per key as the parameter of one UPSERT: a key's columns, then its sums."""
    return (tuples(columns, [(*k, *v) for k, v in sorted(sums.items())]),)
