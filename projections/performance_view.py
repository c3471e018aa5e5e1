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

import json
from collections.abc import Sequence
from typing import Any
from uuid import UUID

import psycopg

from domain.aggregate import event_topics
from domain.config import HiveConfig
from domain.policies.performance import ALPHA, Performance, check_alpha, observe
from domain.policies.runs import RUN_EVENTS, TOPICS, Outcome, Run, follow
from domain.tasks import Task
from projections.recordset import rows_from, tuples
from projections.runner import Positioned
from store.migrations import Migration

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


ALPHA_TABLE = "bot_performance_alpha"
ALPHA_MIGRATIONS = [
    Migration(
        171,
        "views: the routing alpha in force at the performance view's position",
        f"""
        CREATE TABLE {ALPHA_TABLE} (
            id smallint PRIMARY KEY DEFAULT 1 CHECK (id = 1),
            alpha double precision NOT NULL
        );
        """,
    ),
]
UPSERT_ALPHA = (
    f"INSERT INTO {ALPHA_TABLE} (alpha) VALUES (%s) "
    "ON CONFLICT (id) DO UPDATE SET alpha = EXCLUDED.alpha"
)


def alpha_in_force(cur: psycopg.Cursor[Any], default: float) -> float:
    """The alpha the view last took from a config version (``default`` before any)."""
    row = cur.execute(f"SELECT alpha FROM {ALPHA_TABLE}").fetchone()
    return default if row is None else float(row[0])


def alpha_of(document: str, default: float) -> float:
    """The ``routing_alpha`` of a config document (kept as it was if it has none)."""
    value = json.loads(document).get("routing_alpha", default)
    return value if isinstance(value, int | float) and 0 < value <= 1 else default


class PerformanceView:
    """What routing learned. How much each outcome counts (``routing_alpha``) is the
    config's at that point of the log: the view follows the config's versions too and
    keeps the alpha in force beside its rows, so a rebuild from zero gives the same rows."""

    name = "performance"
    tables: tuple[str, ...] = ("bot_performance_view", "bot_performance_runs", ALPHA_TABLE)
    topics: tuple[str, ...] = (*TOPICS, *event_topics(HiveConfig))
    handles: frozenset[type] = frozenset({*RUN_EVENTS, HiveConfig.Seeded, HiveConfig.Changed})
    ignores: frozenset[type] = frozenset({Task.Unroutable})  # says nothing of how a bot does

    def __init__(self, alpha: float = ALPHA) -> None:
        self.alpha = check_alpha(alpha)  # before the first config version

    def apply(self, cur: psycopg.Cursor[Any], events: Sequence[Positioned]) -> None:
        alpha = alpha_in_force(cur, self.alpha)
        configs = [p for p in events if isinstance(p.event, HiveConfig.Event)]
        if configs:
            events = [p for p in events if not isinstance(p.event, HiveConfig.Event)]
        runs, stored = self._runs(cur, events)
        changed: set[UUID] = set()
        outcomes: list[tuple[int, Outcome, float]] = []
        for p in sorted([*events, *configs], key=lambda p: p.position) if configs else events:
            if isinstance(p.event, HiveConfig.Event):
                alpha = alpha_of(getattr(p.event, "document", "{}"), alpha)
                continue
            task_id = p.event.originator_id
            run, outcome = follow(runs.get(task_id), p.event)
            if run is None:
                runs.pop(task_id, None)
            else:
                runs[task_id] = run
            changed.add(task_id)
            if outcome is not None:
                outcomes.append((p.position, outcome, alpha))
        gone = [t for t in changed if t not in runs and t in stored]
        if gone:
            cur.execute("DELETE FROM bot_performance_runs WHERE task_id = ANY(%s)", (gone,))
        kept = [(t, r.type, r.bot_id, r.started_at) for t, r in runs.items() if t in changed]
        if kept:
            cur.execute(UPSERT_RUN, (tuples(RUN_COLUMNS, kept),))
        if outcomes:
            self._learn(cur, outcomes)
        if configs:
            cur.execute(UPSERT_ALPHA, (alpha,))

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

    def _learn(self, cur: psycopg.Cursor[Any], outcomes: list[tuple[int, Outcome, float]]) -> None:
        keys = list({(o.bot_id, o.type) for _, o, _ in outcomes})
        cur.execute(
            "SELECT bot_id, type, success, duration_s, samples FROM bot_performance_view "
            "WHERE (bot_id, type) IN (SELECT * FROM unnest(%s::uuid[], %s::text[]))",
            ([b for b, _ in keys], [t for _, t in keys]),
        )
        records = {(b, t): Performance(*rest) for b, t, *rest in cur.fetchall()}
        last: dict[tuple[UUID, str], tuple[int, Outcome]] = {}
        for position, o, alpha in outcomes:
            key = (o.bot_id, o.type)
            records[key] = observe(records.get(key), o.succeeded, o.duration_s, alpha)
            last[key] = (position, o)
        cur.executemany(
            UPSERT_RECORD,
            [
                (b, t, r.success, r.duration_s, r.samples, last[b, t][1].at, last[b, t][0])
                for (b, t), r in records.items()
                if (b, t) in last
            ],
        )
