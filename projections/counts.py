"""Counts a view keeps of its own rows, so that no reader groups a million of them.

``task_counts`` holds tasks per (state, type, priority), kept by the tasks view;
``message_counts`` messages per state, kept by the messages view. A view folds each page
into deltas per key in memory (only a change of state moves a row from one key to
another: a task's type and priority are fixed at its submission) and writes them with
one UPSERT per changed key, in the page's transaction: the counts are always those of the
view's rows at its position, and a rebuild from zero (which empties the view's tables)
rebuilds them too. A key whose count falls to zero is deleted, so a counts table holds
exactly the rows a ``GROUP BY`` over its view would give.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import psycopg

from store.migrations import Migration

TASK_KEY = ("state", "type", "priority")

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


class CountDeltas:
    """One page's changes to a counts table (``table``, keyed by ``columns``, whose first
    column is the state), folded in memory until ``write``: one UPSERT per changed key, and
    a key whose count falls to zero is deleted."""

    def __init__(self, table: str, columns: Sequence[str]) -> None:
        self.deltas: Counter[tuple[Any, ...]] = Counter()
        keys = ", ".join(columns)
        self.upsert = (
            f"INSERT INTO {table} ({keys}, n) VALUES ({', '.join(['%s'] * (len(columns) + 1))}) "
            f"ON CONFLICT ({keys}) DO UPDATE SET n = {table}.n + EXCLUDED.n"
        )
        self.emptied = (
            f"DELETE FROM {table} WHERE {' AND '.join(f'{c} = %s' for c in columns)} AND n = 0"
        )

    def added(self, key: tuple[Any, ...]) -> None:
        self.deltas[key] += 1

    def moved(self, was: tuple[Any, ...], state: str) -> None:
        """One counted thing changed state: from its key ``was`` to the same key in ``state``."""
        if was[0] != state:
            self.deltas[was] -= 1
            self.deltas[(state, *was[1:])] += 1

    def write(self, cur: psycopg.Cursor[Any]) -> None:
        rows = [(*key, n) for key, n in sorted(self.deltas.items()) if n]
        if rows:
            cur.executemany(self.upsert, rows)
        fallen = [key for key, n in sorted(self.deltas.items()) if n < 0]
        if fallen:
            cur.executemany(self.emptied, fallen)
