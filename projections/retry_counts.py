"""Retries and dead letters counted per task type and error kind, for the metrics scrape.

The tasks view keeps ``retry_counts`` in the page's transaction, as it keeps
``task_counts``: each ``RetryScheduled`` adds a retry and each ``DeadLettered`` a dead
letter to its (type, error kind), so the scrape reads a few rows and never counts the log.
The events do not carry the type: it is the Submitted event's when the task was submitted
in the same page, else the view's row's, read by primary key (one query per page that has
any). An event the row has already applied (its version is not past the row's) is not
counted, as the view's own UPDATE would not apply it. A failure without a kind is counted
under the empty kind. A rebuild empties the table with the view and counts again.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any
from uuid import UUID

import psycopg

from domain.tasks import Task
from projections.runner import Positioned
from store.migrations import Migration

RETRY_COUNT_MIGRATIONS = [
    Migration(
        212,
        "views: retries and dead letters per task type and error kind, kept by the tasks view",
        """
        CREATE TABLE IF NOT EXISTS public.retry_counts (
            type text NOT NULL,
            error_kind text NOT NULL,
            retries bigint NOT NULL,
            dead_letters bigint NOT NULL,
            PRIMARY KEY (type, error_kind)
        );
        """,
    ),
    Migration(
        213,
        "views: tasks listed by their last failure's kind",
        """
        CREATE INDEX IF NOT EXISTS tasks_view_error_kind_seq
            ON public.tasks_view (error_kind, seq) WHERE error_kind IS NOT NULL;
        """,
    ),
]
ADD = (
    "INSERT INTO retry_counts (type, error_kind, retries, dead_letters) "
    "VALUES (%s, %s, %s, %s) ON CONFLICT (type, error_kind) DO UPDATE SET "
    "retries = retry_counts.retries + EXCLUDED.retries, "
    "dead_letters = retry_counts.dead_letters + EXCLUDED.dead_letters"
)
STORED = "SELECT task_id, type, version FROM tasks_view WHERE task_id = ANY(%s)"
COUNTED = (Task.RetryScheduled, Task.DeadLettered)


def count_retries(cur: psycopg.Cursor[Any], events: Sequence[Positioned]) -> None:
    """Before the tasks view writes these events: count their retries and dead letters."""
    ends = [p.event for p in events if isinstance(p.event, COUNTED)]
    if not ends:
        return
    known: dict[UUID, tuple[str, int]] = {
        p.event.originator_id: (p.event.type, 0)
        for p in events
        if isinstance(p.event, Task.Submitted)
    }
    older = list({e.originator_id for e in ends} - set(known))
    if older:
        for task_id, type_, version in cur.execute(STORED, (older,)):
            known[task_id] = (type_, version)
    counts: Counter[tuple[str, str, bool]] = Counter()
    for e in ends:
        type_, version = known.get(e.originator_id, (None, 0))
        if type_ is not None and e.originator_version > version:
            counts[type_, e.error_kind or "", isinstance(e, Task.DeadLettered)] += 1
    rows = sorted({(t, k) for t, k, _ in counts})
    if rows:
        cur.executemany(ADD, [(t, k, counts[t, k, False], counts[t, k, True]) for t, k in rows])
