"""A finish that says its start (``ran_s``), on real PostgreSQL: the tasks view shows the
start it implies, the stages view times both stages, the performance view learns the run's
duration, all as a rebuild does."""

from __future__ import annotations

from datetime import timedelta

import psycopg

from api.bootstrap import rebuild_views
from api.settings import Settings
from domain.cause import Cause
from domain.hive import Hive, Report, TaskSpec
from domain.policies.routing import Assignment
from tests.integration.helpers import runner, snapshot

ALICE = Cause("alice", "req")
ENGINE = Cause.engine("test", "r")


def test_the_views_read_a_finish_that_says_its_start(db_url: str, hive: Hive) -> None:
    bot, _, _ = hive.fleet.register(
        name="b", capabilities=["noop"], max_concurrency=2, version_label="v1", cause=ALICE
    )
    started, unstarted = (s.task.id for s in hive.tasks.submit([TaskSpec("noop")] * 2, ALICE).items)
    hive.tasks.assign([Assignment(t, bot.id, {}) for t in (started, unstarted)], ENGINE)
    hive.tasks.start(bot.id, [Report(started, 1)], ENGINE)
    hive.tasks.finish(
        bot.id,
        [Report(started, 1, result="{}"), Report(unstarted, 1, result="{}", ran_s=0.004)],
        ENGINE,
    )
    for name in ("tasks", "stages", "performance"):
        runner(db_url, hive, name).catch_up()
    with psycopg.connect(db_url) as conn:
        assigned_at, started_at, finished_at = conn.execute(
            "SELECT assigned_at, started_at, finished_at FROM tasks_view WHERE task_id = %s",
            (unstarted,),
        ).fetchone()  # type: ignore[misc]
        totals = dict(
            conn.execute("SELECT stage, count FROM stage_totals WHERE type = 'noop'").fetchall()
        )
        samples, duration = conn.execute(
            "SELECT samples, duration_s FROM bot_performance_view WHERE bot_id = %s", (bot.id,)
        ).fetchone()  # type: ignore[misc]
    assert finished_at - started_at == timedelta(seconds=0.004)
    assert assigned_at <= started_at
    assert totals["assign_start"] == totals["start_done"] == 2  # both tasks, both stages
    assert samples == 2 and duration is not None  # the one-event run was learned, and timed
    kept = snapshot(db_url)
    for name in ("tasks", "stages", "performance"):
        rebuild_views(db_url, Settings(), name)
    assert snapshot(db_url) == kept
