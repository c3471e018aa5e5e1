"""The engine's copy of what the hive learned of its bots, so routing never waits on a query.

It starts from the ``bot_performance_view`` tables (the records and the runs in flight, with
the view's position, in one snapshot) and then follows the log with the live index's feed,
folding each event with the same pure functions as the view (``domain/policies/runs.py``
and ``performance.py``): the two agree. It hears each event once, in log order, from the
feed only (never a process's own writes at once, which the feed would then repeat): an
outcome counted twice would skew the rates, and routing can afford a few milliseconds' lag.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any
from uuid import UUID

import psycopg

from domain.aggregate import event_topics
from domain.config import HiveConfig
from domain.policies.performance import ALPHA, Performance, check_alpha, observe
from domain.policies.runs import RUN_EVENTS, TOPICS, Run, follow
from domain.tasks import Task
from projections.live_reads import learned_performance
from projections.performance_view import alpha_of
from runtime.models import LiveModel


class LivePerformance(LiveModel):
    name = "performance"
    topics = (*TOPICS, *event_topics(HiveConfig))
    handles = frozenset({*RUN_EVENTS, HiveConfig.Seeded, HiveConfig.Changed})
    ignores = frozenset({Task.Unroutable})  # says nothing of how a bot does
    takes_own_writes = False  # an outcome counted twice would skew the rates

    def __init__(self, alpha: float = ALPHA) -> None:
        self.alpha = check_alpha(alpha)
        self.lock = threading.Lock()
        self.position = 0
        self.runs: dict[UUID, Run] = {}
        self.records: dict[tuple[UUID, str], Performance] = {}  # (bot, task type)

    def fill(self, conn: psycopg.Connection[Any]) -> int:
        """Fill from the performance view; returns its position."""
        position, runs, records, alpha = learned_performance(conn)
        with self.lock:
            if alpha is not None:
                self.alpha = alpha
            self.runs = {task_id: Run(*rest) for task_id, *rest in runs}
            self.records = {(b, t): Performance(*rest) for b, t, *rest in records}
        return position

    def apply(self, events: Iterable[tuple[int, Any]]) -> None:
        """Events from the log, in order, each once (the feed's ``follow`` sees to that)."""
        with self.lock:
            for _, event in events:
                if isinstance(event, HiveConfig.Event):  # the alpha in force from here on
                    self.alpha = alpha_of(getattr(event, "document", "{}"), self.alpha)
                    continue
                if not isinstance(event, Task.Event):
                    continue
                task_id = event.originator_id
                run, outcome = follow(self.runs.get(task_id), event)
                if run is None:
                    self.runs.pop(task_id, None)
                else:
                    self.runs[task_id] = run
                if outcome is not None:
                    key = (outcome.bot_id, outcome.type)
                    self.records[key] = observe(
                        self.records.get(key), outcome.succeeded, outcome.duration_s, self.alpha
                    )

    def snapshot(self) -> dict[tuple[UUID, str], Performance]:
        """The records as they are now (a copy: the feed goes on changing them)."""
        with self.lock:
            return dict(self.records)
