"""The bot performance view: what the hive learned of each bot, per task type.

``bot_performance_view`` holds one row per (bot, task type) that has an outcome: the
weighted success rate, run duration and sample count (``domain/policies/performance.py``).
To know whose run an outcome ends and when it began, the view follows every unfinished
task in ``bot_performance_runs`` (task -> type, bot, start), from the log alone: the
events of a task carry its type only at submission and its bot only at assignment.

A page is folded in memory with the same pure functions as the engine's copy
(``runtime/performance.py``): the runs it touches are read once, the records its outcomes
change are read once, and each table is written with one statement per kind of change; a
task that starts and ends within the page never touches the runs table at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

import psycopg

from domain.policies.performance import ALPHA, Performance, check_alpha, observe
from domain.policies.runs import RUN_EVENTS, TOPICS, Outcome, Run, follow
from domain.tasks import Task
from projections.recordset import rows_from, tuples
from projections.runner import Positioned

RUN_COLUMNS = (
    ("task_id", "uuid"),
    ("type", "text"),
    ("bot_id", "uuid"),
    ("started_at", "timestamptz"),
)
UPSERT_RUN = (
    "INSERT INTO bot_performance_runs (task_id, type, bot_id, started_at) "
    f"{rows_from(RUN_COLUMNS)} ON CONFLICT (task_id) DO UPDATE SET "
    "bot_id = EXCLUDED.bot_id, started_at = EXCLUDED.started_at"
)
UPSERT_RECORD = (
    "INSERT INTO bot_performance_view "
    "(bot_id, type, success, duration_s, samples, updated_at, position) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (bot_id, type) DO UPDATE SET "
    "success = EXCLUDED.success, duration_s = EXCLUDED.duration_s, "
    "samples = EXCLUDED.samples, updated_at = EXCLUDED.updated_at, position = EXCLUDED.position"
)


class PerformanceView:
    name = "performance"
    tables: tuple[str, ...] = ("bot_performance_view", "bot_performance_runs")
    topics: tuple[str, ...] = TOPICS
    handles: frozenset[type] = frozenset(RUN_EVENTS)
    ignores: frozenset[type] = frozenset({Task.Unroutable})  # says nothing of how a bot does

    def __init__(self, alpha: float = ALPHA) -> None:
        self.alpha = check_alpha(alpha)

    def apply(self, cur: psycopg.Cursor[Any], events: Sequence[Positioned]) -> None:
        runs, stored = self._runs(cur, events)
        changed: set[UUID] = set()
        outcomes: list[tuple[int, Outcome]] = []
        for p in events:
            task_id = p.event.originator_id
            run, outcome = follow(runs.get(task_id), p.event)
            if run is None:
                runs.pop(task_id, None)
            else:
                runs[task_id] = run
            changed.add(task_id)
            if outcome is not None:
                outcomes.append((p.position, outcome))
        gone = [t for t in changed if t not in runs and t in stored]
        if gone:
            cur.execute("DELETE FROM bot_performance_runs WHERE task_id = ANY(%s)", (gone,))
        kept = [(t, r.type, r.bot_id, r.started_at) for t, r in runs.items() if t in changed]
        if kept:
            cur.execute(UPSERT_RUN, (tuples(RUN_COLUMNS, kept),))
        if outcomes:
            self._learn(cur, outcomes)

    def _runs(
        self, cur: psycopg.Cursor[Any], events: Sequence[Positioned]
    ) -> tuple[dict[UUID, Run], set[UUID]]:
        """The stored runs of the page's tasks that were submitted before it."""
        fresh = {p.event.originator_id for p in events if isinstance(p.event, Task.Submitted)}
        older = list({p.event.originator_id for p in events} - fresh)
        if not older:
            return {}, set()
        cur.execute(
            "SELECT task_id, type, bot_id, started_at FROM bot_performance_runs "
            "WHERE task_id = ANY(%s)",
            (older,),
        )
        runs = {task_id: Run(*rest) for task_id, *rest in cur.fetchall()}
        return runs, set(runs)

    def _learn(self, cur: psycopg.Cursor[Any], outcomes: list[tuple[int, Outcome]]) -> None:
        keys = list({(o.bot_id, o.type) for _, o in outcomes})
        cur.execute(
            "SELECT bot_id, type, success, duration_s, samples FROM bot_performance_view "
            "WHERE (bot_id, type) IN (SELECT * FROM unnest(%s::uuid[], %s::text[]))",
            ([b for b, _ in keys], [t for _, t in keys]),
        )
        records = {(b, t): Performance(*rest) for b, t, *rest in cur.fetchall()}
        last: dict[tuple[UUID, str], tuple[int, Outcome]] = {}
        for position, o in outcomes:
            key = (o.bot_id, o.type)
            records[key] = observe(records.get(key), o.succeeded, o.duration_s, self.alpha)
            last[key] = (position, o)
        cur.executemany(
            UPSERT_RECORD,
            [
                (b, t, r.success, r.duration_s, r.samples, last[b, t][1].at, last[b, t][0])
                for (b, t), r in records.items()
                if (b, t) in last
            ],
        )
