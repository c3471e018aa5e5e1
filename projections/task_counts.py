"""How many tasks per (state, type, priority): a small table the tasks view keeps.

The overview reads these counts instead of grouping a million rows of ``tasks_view``.
The tasks view folds each page into deltas per key in memory (a task's type and priority
are fixed at its submission; only a change of state moves it from one key to another)
and writes them with one UPSERT per changed key, in the page's transaction: the counts
are always those of the view's rows at its position, and a rebuild from zero (which
empties both tables) rebuilds them too. A key whose count falls to zero is deleted, so
the table holds exactly the rows a ``GROUP BY`` over the view would give.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import psycopg

from store.migrations import Migration

Key = tuple[str, str, int]  # state, type, priority

COUNT_MIGRATIONS = [
    Migration(
        160,
        "views: tasks counted by state, type and priority, kept by the tasks view",
        """
        CREATE TABLE IF NOT EXISTS public.task_counts (
            state text NOT NULL,
            type text NOT NULL,
            priority smallint NOT NULL,
            n bigint NOT NULL,
            PRIMARY KEY (state, type, priority)
        );
        INSERT INTO public.task_counts (state, type, priority, n)
            SELECT state, type, priority, count(*) FROM public.tasks_view
            GROUP BY state, type, priority
        ON CONFLICT (state, type, priority) DO UPDATE SET n = EXCLUDED.n;
        """,
    ),
]

UPSERT = (
    "INSERT INTO task_counts (state, type, priority, n) VALUES (%s, %s, %s, %s) "
    "ON CONFLICT (state, type, priority) DO UPDATE SET n = task_counts.n + EXCLUDED.n"
)
EMPTIED = "DELETE FROM task_counts WHERE state = %s AND type = %s AND priority = %s AND n = 0"


class CountDeltas:
    """One page's changes to the counts, folded in memory until ``write``."""

    def __init__(self) -> None:
        self.deltas: Counter[Key] = Counter()

    def added(self, key: Key) -> None:
        self.deltas[key] += 1

    def moved(self, was: Key, state: str) -> None:
        if was[0] != state:
            self.deltas[was] -= 1
            self.deltas[(state, was[1], was[2])] += 1

    def write(self, cur: psycopg.Cursor[Any]) -> None:
        rows = [(*key, n) for key, n in sorted(self.deltas.items()) if n]
        if rows:
            cur.executemany(UPSERT, rows)
        fallen = [key for key, n in sorted(self.deltas.items()) if n < 0]
        if fallen:
            cur.executemany(EMPTIED, fallen)
