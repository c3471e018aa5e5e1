"""The stages view: how long tasks of each type spend in each stage of their life, as
histograms, and how many finish each minute.

Stages, all measured between the timestamps of a task's own events, per attempt:

- ``submit_assign``: from when the attempt could first be assigned (the submission, or its
  ``not_before`` when it was delayed past that; after a retry, the retry's ``not_before``;
  after a re-drive, the re-drive) to its FIRST assignment. A lease lost before the start
  (``LeaseExpired``) is no attempt: the next assignment is not timed again, since the wait
  is the bot's fault, not the queue's.
- ``assign_start``: from the assignment that led to the start, to the start.
- ``start_done``: from the start to the attempt's end: success, failure, a retry
  (``RetryScheduled``: the attempt failed) or a dead letter.
- ``end_to_end``: from the submission (or the re-drive that began the series) to the
  task's final outcome (success, failure, dead letter), through its retries; never to a
  retry.
- ``overhead``: the orchestration's share of an ``end_to_end``: it minus the bot's own run
  time, the sum of the series' attempts' ``start_done`` (an attempt never reported started
  ran its outcome's ``ran_s``: ``domain.tasks.implied_start``). Queue waits, pick-up,
  reporting and retries' backoffs are all in it.

Every stage is counted apart (``retried``) for an attempt after the first, a retry or an
attempt of a re-driven series, so that first attempts keep their own latencies; an
``end_to_end`` is ``retried`` when the attempt that ended it was.

A cancelled task ends no stage that it had not already ended. Events do not carry the
task's type after the submission, so ``stage_open_tasks`` follows each unfinished task
(type and the times so far) and forgets it when it ends; a re-drive carries the type, and
opens it again.

``stage_minutes`` counts successes, failures (a dead letter is one) and the summed
end-to-end milliseconds per type and minute. It keeps the 24 h before the newest minute it
has counted: a minute older than that is dropped, and a completion that lands there is not
counted. The newest minute only grows with the log, so what is kept does not depend on how
the log was paged, and a rebuild from zero equals the view kept incrementally. Sums are
whole milliseconds (integers) for the same reason: float sums would depend on the order of
the additions.

Each duration is also counted, with the minute it ended in, per type, per bot and per
pool in ``stage_window`` (the last hour; ``projections/stage_window.py``): the bot is the
one holding the attempt when the stage ends (for ``end_to_end`` and ``overhead``, the
final attempt's), and its pool the one it registered in, so the view also follows
``Bot.Registered``.
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

from domain.bots import Bot
from domain.tasks import Finish, Task, implied_start
from projections.histogram import bucket_of
from projections.recordset import rows_from, tuples
from projections.runner import Positioned
from projections.stage_window import WindowTally, newest_minute, note_pools, pools_of
from store.migrations import Migration

STAGES = ("submit_assign", "assign_start", "start_done", "end_to_end", "overhead")
KEEP_MINUTES = timedelta(hours=24)
MS = timedelta(milliseconds=1)
US = timedelta(microseconds=1)
ZERO = timedelta(0)
READS = (
    Task.Submitted,
    Task.Assigned,
    Task.Started,
    Task.Succeeded,
    Task.Failed,
    Task.Cancelled,
    Task.RetryScheduled,
    Task.DeadLettered,
    Task.Redriven,
)
FINAL = (Task.Succeeded, Task.Failed, Task.DeadLettered)
TOPICS = (*(get_topic(c) for c in READS), get_topic(Bot.Registered))

OPEN_COLUMNS = (
    ("task_id", "uuid"),
    ("type", "text"),
    *((c, "timestamptz") for c in ("submitted_at", "ready_at", "assigned_at", "started_at")),
    ("retried", "boolean"),
    ("bot_id", "uuid"),
    ("pool", "text"),
    ("ran_us", "bigint"),
)
KEY_COLUMNS = (("type", "text"), ("stage", "text"), ("retried", "boolean"))
BUCKET_COLUMNS = (*KEY_COLUMNS, ("bucket", "smallint"), ("count", "bigint"))
TOTAL_COLUMNS = (*KEY_COLUMNS, ("count", "bigint"), ("sum_ms", "bigint"))
MINUTE_COLUMNS = (
    ("type", "text"),
    ("minute", "timestamptz"),
    *((c, "bigint") for c in ("succeeded", "failed", "e2e_sum_ms")),
)
UPSERT_OPEN = (
    "INSERT INTO stage_open_tasks (task_id, type, submitted_at, ready_at, assigned_at, "
    f"started_at, retried, bot_id, pool, ran_us) {rows_from(OPEN_COLUMNS)} "
    "ON CONFLICT (task_id) DO UPDATE SET submitted_at = EXCLUDED.submitted_at, "
    "ready_at = EXCLUDED.ready_at, assigned_at = EXCLUDED.assigned_at, "
    "started_at = EXCLUDED.started_at, retried = EXCLUDED.retried, "
    "bot_id = EXCLUDED.bot_id, pool = EXCLUDED.pool, ran_us = EXCLUDED.ran_us"
)
ADD_BUCKET = (
    "INSERT INTO stage_histograms (type, stage, retried, bucket, count) "
    f"{rows_from(BUCKET_COLUMNS)} "
    "ON CONFLICT (type, stage, retried, bucket) DO UPDATE SET "
    "count = stage_histograms.count + EXCLUDED.count"
)
ADD_TOTAL = (
    "INSERT INTO stage_totals (type, stage, retried, count, sum_ms) "
    f"{rows_from(TOTAL_COLUMNS)} "
    "ON CONFLICT (type, stage, retried) DO UPDATE SET "
    "count = stage_totals.count + EXCLUDED.count, "
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


STAGE_MIGRATIONS = [
    Migration(
        211,
        "views: stages counted apart for an attempt after the first (a retry, a re-drive)",
        """
        ALTER TABLE public.stage_open_tasks
            ADD COLUMN IF NOT EXISTS retried boolean NOT NULL DEFAULT false;
        ALTER TABLE public.stage_histograms
            ADD COLUMN IF NOT EXISTS retried boolean NOT NULL DEFAULT false;
        ALTER TABLE public.stage_histograms DROP CONSTRAINT stage_histograms_pkey;
        ALTER TABLE public.stage_histograms ADD PRIMARY KEY (type, stage, retried, bucket);
        ALTER TABLE public.stage_totals
            ADD COLUMN IF NOT EXISTS retried boolean NOT NULL DEFAULT false;
        ALTER TABLE public.stage_totals DROP CONSTRAINT stage_totals_pkey;
        ALTER TABLE public.stage_totals ADD PRIMARY KEY (type, stage, retried);
        """,
    ),
]


@dataclass(frozen=True)
class OpenTask:
    type: str
    submitted_at: datetime  # of its series: the submission, or the re-drive
    ready_at: datetime  # when its attempt could first be assigned
    assigned_at: datetime | None = None  # the attempt's latest assignment (None: not yet)
    started_at: datetime | None = None
    retried: bool = False  # its attempt is not the task's first
    bot_id: UUID | None = None  # who holds its attempt (None: nobody yet)
    pool: str | None = None  # that bot's pool, if it has one
    ran_us: int = 0  # its series' run time so far (its attempts' start_done), microseconds

    def stages_key(self, stage: str) -> tuple[str, str, bool]:
        return (self.type, stage, self.retried)


@dataclass
class Tally:
    """What one page adds to the tables, folded in memory."""

    buckets: Counter[tuple[str, str, bool, int]]
    totals: dict[tuple[str, str, bool], tuple[int, int]]
    minutes: dict[tuple[str, datetime], tuple[int, int, int]]
    window: WindowTally

    def observe(self, task: OpenTask, stage: str, took: timedelta, minute: datetime) -> int:
        """Count one duration of ``task``'s attempt, which ended in ``minute``; returns it
        in whole milliseconds."""
        ms = took // MS
        bucket = bucket_of(took.total_seconds())
        key = task.stages_key(stage)
        self.buckets[(*key, bucket)] += 1
        n, total = self.totals.get(key, (0, 0))
        self.totals[key] = (n + 1, total + ms)
        self.window.observe(task.type, task.bot_id, task.pool, stage, minute, bucket, ms)
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
        "stage_window",
        "stage_bot_pools",
    )
    topics: tuple[str, ...] = TOPICS
    handles: frozenset[type] = frozenset({*READS, Bot.Registered})
    # a lease lost before the start is no attempt (its wait is not timed again); a flag is
    # no stage; of a bot, only its pool (fixed when it registers) matters here
    ignores: frozenset[type] = frozenset(
        {
            Task.Unroutable,
            Task.LeaseExpired,
            Bot.Draining,
            Bot.Quarantined,
            Bot.Probing,
            Bot.Reinstated,
            Bot.Lost,
            Bot.Deregistered,
        }
    )

    def apply(self, cur: psycopg.Cursor[Any], events: Sequence[Positioned]) -> None:
        registered = {
            p.event.originator_id: p.event.pool
            for p in events
            if isinstance(p.event, Bot.Registered) and p.event.pool is not None
        }
        note_pools(cur, registered)
        assigned = [p.event.bot_id for p in events if isinstance(p.event, Task.Assigned)]
        pools = pools_of(cur, assigned, registered) if assigned else registered
        tasks, stored = self._open(cur, events)
        row = cur.execute("SELECT max(minute) FROM stage_minutes").fetchone()
        newest: datetime | None = row[0] if row else None
        tally = Tally(Counter(), {}, {}, WindowTally(newest_minute(cur)))
        changed: set[UUID] = set()
        stamp: datetime | None = None
        minute = datetime.min
        for p in events:
            e = p.event
            if isinstance(e, Bot.Registered):
                continue
            task_id = e.originator_id
            task = tasks.get(task_id)
            changed.add(task_id)
            if e.timestamp != stamp:  # a save's events share theirs: one replace a save
                stamp = e.timestamp
                minute = stamp.replace(second=0, microsecond=0)
            if isinstance(e, Task.Submitted):
                ready = max(e.timestamp, e.not_before or e.timestamp)
                tasks[task_id] = OpenTask(e.type, e.timestamp, ready)
            elif isinstance(e, Task.Redriven):  # a new series: it carries the type
                tasks[task_id] = OpenTask(e.type, e.timestamp, e.timestamp, retried=True)
            elif task is None:
                continue  # never seen submitted (nothing to time it from)
            elif isinstance(e, Task.Assigned):
                first = task.assigned_at is None
                bot = e.bot_id
                task = tasks[task_id] = replace(
                    task, assigned_at=e.timestamp, started_at=None, bot_id=bot, pool=pools.get(bot)
                )
                if first:
                    tally.observe(task, "submit_assign", e.timestamp - task.ready_at, minute)
            elif isinstance(e, Task.Started):
                if task.assigned_at is not None:
                    tally.observe(task, "assign_start", e.timestamp - task.assigned_at, minute)
                tasks[task_id] = replace(task, started_at=e.timestamp)
            elif isinstance(e, Task.RetryScheduled):
                ran = _ended(tally, task, e, minute)
                tasks[task_id] = replace(
                    task,
                    ready_at=e.not_before,
                    assigned_at=None,
                    started_at=None,
                    retried=True,
                    ran_us=task.ran_us + ran,
                )
            elif isinstance(e, FINAL):
                ran_us = task.ran_us + _ended(tally, task, e, minute)
                took = e.timestamp - task.submitted_at
                e2e = tally.observe(task, "end_to_end", took, minute)
                tally.observe(task, "overhead", max(took - ran_us * US, ZERO), minute)
                newest = minute if newest is None else max(newest, minute)
                if minute >= newest - KEEP_MINUTES:
                    tally.finish(task.type, minute, isinstance(e, Task.Succeeded), e2e)
                del tasks[task_id]
            else:  # cancelled
                del tasks[task_id]
        self._write(cur, tasks, stored, changed, tally, newest)
        tally.window.write(cur)

    def _open(
        self, cur: psycopg.Cursor[Any], events: Sequence[Positioned]
    ) -> tuple[dict[UUID, OpenTask], set[UUID]]:
        """The stored open tasks among the page's, those submitted before it."""
        fresh = {p.event.originator_id for p in events if isinstance(p.event, Task.Submitted)}
        older = list(
            {p.event.originator_id for p in events if not isinstance(p.event, Bot.Registered)}
            - fresh
        )
        if not older:
            return {}, set()
        cur.execute(
            "SELECT task_id, type, submitted_at, ready_at, assigned_at, started_at, retried, "
            "bot_id, pool, ran_us FROM stage_open_tasks WHERE task_id = ANY(%s)",
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
            (
                t,
                o.type,
                o.submitted_at,
                o.ready_at,
                o.assigned_at,
                o.started_at,
                o.retried,
                o.bot_id,
                o.pool,
                o.ran_us,
            )
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


def _ended(tally: Tally, task: OpenTask, e: Finish, minute: datetime) -> int:
    """The attempt ended: its run (``start_done``) is timed, and its start when only the
    end says it (``ran_s``); returns the run in microseconds (0: it never started)."""
    started = implied_start(e)
    if task.started_at is None and started is not None and task.assigned_at is not None:
        tally.observe(task, "assign_start", started - task.assigned_at, minute)
    began = task.started_at or started
    if began is None:
        return 0
    ran = e.timestamp - began
    tally.observe(task, "start_done", ran, minute)
    return ran // US


def _keyed(
    columns: Sequence[tuple[str, str]], sums: Mapping[tuple[Any, ...], tuple[int, ...]]
) -> tuple[str]:
    """Sums per key as the parameter of one UPSERT: a key's columns, then its sums."""
    return (tuples(columns, [(*k, *v) for k, v in sorted(sums.items())]),)
