"""The views on real PostgreSQL: exactly once, read-your-writes, rebuild, crash and restart."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from typing import Any
from uuid import uuid4

import psycopg
import pytest

from api.bootstrap import rebuild_views, views
from api.settings import Settings
from domain.cause import Cause
from domain.hive import Hive, Report, TaskSpec
from domain.policies.retry import RetryPolicy
from domain.policies.routing import Assignment
from projections.runner import read_position
from tests.integration.helpers import runner, snapshot
from tests.waiting import wait_for

ALICE = Cause("alice", "req")
ENGINE = Cause.engine("test", "r")


def busy_history(hive: Hive, tasks: int) -> None:
    """Tasks in every state, bots registered and lost: every kind of event the views read."""
    bot, _, _ = hive.fleet.register(
        name="b1",
        capabilities=["code", "writing"],
        max_concurrency=9,
        version_label="v1",
        cause=ALICE,
    )
    other, _, _ = hive.fleet.register(
        name="b2", capabilities=["code"], max_concurrency=9, version_label="v2", cause=ALICE
    )
    ids = [
        s.task.id
        for s in hive.tasks.submit(
            [
                TaskSpec("code" if i % 3 else "writing", priority=i % 10, payload=f'{{"i": {i}}}')
                for i in range(tasks)
            ],
            ALICE,
        ).items
    ]
    hive.tasks.mark_unroutable(["writing"], ids[::3], "no bot writes", ["writing"], ENGINE)
    hive.tasks.assign(
        [Assignment(t, bot.id, {"n": i}) for i, t in enumerate(ids[: tasks // 2])], ENGINE
    )
    started = ids[: tasks // 3]
    hive.tasks.start(bot.id, [Report(t, 1) for t in started], ENGINE)
    hive.tasks.finish(bot.id, [Report(t, 1, result='{"ok": 1}') for t in started[::2]], ENGINE)
    failed = started[1::2]
    for_good, retried = failed[: len(failed) // 2], failed[len(failed) // 2 :]
    hive.tasks.finish(
        bot.id, [Report(t, 1, error="bad", retryable=False) for t in for_good], ENGINE
    )
    hive.tasks.policies = lambda _type: RetryPolicy(max_attempts=2)
    hive.tasks.finish(
        bot.id, [Report(t, 1, error="boom", error_kind="io") for t in retried], ENGINE
    )
    hive.tasks.assign([Assignment(t, bot.id, {}) for t in retried], ENGINE)  # attempt 2
    hive.tasks.start(bot.id, [Report(t, 2) for t in retried], ENGINE)
    hive.tasks.finish(
        bot.id, [Report(t, 2, error="boom", error_kind="io") for t in retried], ENGINE
    )
    hive.tasks.redrive(retried[:2], "fixed", ALICE)  # dead letters sent round again
    hive.tasks.cancel(ids[-1], "not needed", ALICE)
    hive.fleet.lose(bot.id, ids[tasks // 3 : tasks // 2], "silence", ENGINE)
    hive.fleet.deregister(other.id, ALICE)


def test_views_show_every_state_and_equal_a_rebuild(db_url: str, hive: Hive) -> None:
    busy_history(hive, 60)
    for view in views():  # every view: the rebuild below replays them all
        runner(db_url, hive, view.name, page=7).catch_up()
    incremental = snapshot(db_url)
    with psycopg.connect(db_url) as conn:
        states = dict(conn.execute("SELECT state, count(*) FROM tasks_view GROUP BY 1").fetchall())
        bots = dict(conn.execute("SELECT name, state FROM fleet_view").fetchall())
    # 60 tasks: 30 assigned, 20 of them started (10 succeed, 5 fail for good, 5 fail twice
    # and are dead-lettered, 2 of those re-driven), the other 10 released when their bot is
    # lost; the last one cancelled while pending.
    assert states == {"pending": 41, "succeeded": 10, "failed": 5, "dead": 3, "cancelled": 1}
    assert bots == {"b1": "lost", "b2": "deregistered"}
    rebuild_views(db_url, Settings())
    assert snapshot(db_url) == incremental


COUNTS = "SELECT state, type, priority, n FROM task_counts ORDER BY 1, 2, 3"
GROUPED = "SELECT state, type, priority, count(*) FROM tasks_view GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"


def counts_and_grouped(url: str) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    with psycopg.connect(url) as conn:
        return conn.execute(COUNTS).fetchall(), conn.execute(GROUPED).fetchall()


@pytest.mark.parametrize("page", [7, 500])  # moves across pages; folded within one
def test_task_counts_equal_a_group_by_over_the_view_and_after_a_rebuild(
    db_url: str, hive: Hive, page: int
) -> None:
    tasks = runner(db_url, hive, "tasks", page=page)
    busy_history(hive, 60)
    tasks.catch_up()
    counts, grouped = counts_and_grouped(db_url)
    assert counts == grouped
    assert {state for state, *_ in counts} == {
        "pending",
        "succeeded",
        "failed",
        "dead",
        "cancelled",
    }
    more = hive.tasks.submit([TaskSpec("code", priority=9)] * 5, ALICE).items
    hive.tasks.cancel(more[0].task.id, "changed my mind", ALICE)
    tasks.catch_up()
    counts, grouped = counts_and_grouped(db_url)
    assert counts == grouped
    rebuild_views(db_url, Settings(), "tasks")
    assert counts_and_grouped(db_url) == (counts, grouped)


def test_runner_follows_live_writes_and_readers_can_wait_for_them(db_url: str, hive: Hive) -> None:
    from psycopg_pool import ConnectionPool

    from projections.positions import ViewPositions

    stop = threading.Event()
    runners = [runner(db_url, hive, n) for n in ("tasks", "fleet")]
    threads = [threading.Thread(target=r.run, args=(stop,), daemon=True) for r in runners]
    for t in threads:
        t.start()
    pool = ConnectionPool(db_url, min_size=1, max_size=2, open=True)
    positions = ViewPositions(pool, db_url, ("tasks", "fleet")).start()
    try:
        committed = hive.tasks.submit([TaskSpec("code")], ALICE)
        assert committed.position is not None
        assert positions.wait(committed.position, timeout=10)
        with psycopg.connect(db_url) as conn:
            row = conn.execute(
                "SELECT state FROM tasks_view WHERE task_id = %s", (committed.items[0].task.id,)
            ).fetchone()
        assert row == ("pending",)
        assert not positions.wait(committed.position + 1000, timeout=0.3)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=10)
        positions.stop()
        pool.close()


def test_runner_survives_its_connections_being_killed(db_url: str, hive: Hive) -> None:
    stop = threading.Event()
    r = runner(db_url, hive, "tasks")
    thread = threading.Thread(target=r.run, args=(stop,), daemon=True)
    thread.start()
    try:
        first = hive.tasks.submit([TaskSpec("code")], ALICE).position
        wait_for(lambda: r.position >= first, what="first task applied")
        with psycopg.connect(db_url, autocommit=True) as conn:
            killed = conn.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ).fetchone()
        assert killed and killed[0] >= 1
        second = hive.tasks.submit([TaskSpec("code")], ALICE).position
        wait_for(lambda: r.position >= second, timeout=15, what="runner to resume after kill")
    finally:
        stop.set()
        thread.join(timeout=10)


CATCH_UP_SCRIPT = """
import sys
from tests.integration.helpers import hive_on, runner
url = sys.argv[1]
hive = hive_on(url)
print("ready", flush=True)
runner(url, hive, "tasks", page=20).catch_up()
"""


def test_kill_9_mid_catch_up_then_restart_equals_rebuild(db_url: str, hive: Hive) -> None:
    for _ in range(10):
        busy_history(hive, 300)
    head = hive.recorder.max_notification_id()
    proc = subprocess.Popen(
        [sys.executable, "-c", CATCH_UP_SCRIPT, db_url], stdout=subprocess.PIPE, cwd=os.getcwd()
    )

    def position() -> int:
        with psycopg.connect(db_url) as conn, conn.transaction():
            return read_position(conn, "tasks")

    try:
        wait_for(lambda: position() > 200, timeout=60, what="the runner to be mid catch-up")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    stopped_at = position()
    assert head is not None and 0 < stopped_at < head, "killed mid catch-up"
    for view in views():
        runner(db_url, hive, view.name).catch_up()
    restarted = snapshot(db_url)
    rebuild_views(db_url, Settings())
    assert snapshot(db_url) == restarted


def test_two_runners_of_one_view_apply_each_event_once(db_url: str, hive: Hive) -> None:
    busy_history(hive, 200)
    a, b = runner(db_url, hive, "tasks", page=5), runner(db_url, hive, "tasks", page=5)
    threads = [threading.Thread(target=r.catch_up) for r in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    together = snapshot(db_url)
    rebuild_views(db_url, Settings(), "tasks")
    assert snapshot(db_url) == together


def test_unknown_view_position_starts_at_zero(db_url: str) -> None:
    with psycopg.connect(db_url) as conn, conn.transaction():
        assert read_position(conn, f"nothing-{uuid4().hex[:6]}") == 0
