"""The stages view on real PostgreSQL: stage durations from a hive on an injected clock,
read back as histograms and percentiles, equal to a rebuild from zero."""

from __future__ import annotations

import math
from datetime import timedelta

import psycopg
import pytest

from api.bootstrap import Node, open_hive, rebuild_views
from api.cli import main as apiary
from api.settings import Settings
from domain.cause import Cause
from domain.hive import Report, TaskSpec
from domain.policies.retry import RetryPolicy
from domain.policies.routing import Assignment
from projections.histogram import bucket_of, bucket_range
from projections.stage_reads import StageHistogram
from tests.clock import T0, FakeClock
from tests.integration.helpers import StartNode, held, runner, snapshot, view_caught_up
from tests.waiting import wait_for

ALICE = Cause("alice", "req")
ENGINE = Cause.engine("test", "r")
STAGE_TABLES = (
    "stage_open_tasks",
    "stage_histograms",
    "stage_totals",
    "stage_minutes",
    "stage_window",
    "stage_bot_pools",
)


@pytest.fixture
def node(start_node: StartNode) -> Node:
    return start_node(bot_lease_ttl_s=60.0)


def by_stage(node: Node, type_: str, retried: bool = False) -> dict[str, StageHistogram]:
    return {
        h.stage: h for h in node.stages.histograms() if h.type == type_ and h.retried == retried
    }


def assert_all_in_bucket(h: StageHistogram, seconds: float, n: int) -> None:
    assert h.count == n and h.counts[bucket_of(seconds)] == n
    assert h.sum_s == pytest.approx(n * seconds)


def test_stage_durations_come_out_as_the_clock_made_them(node: Node, clock: FakeClock) -> None:
    """Ten code tasks wait 2 s for a bot, start 0.5 s after it takes them and run 1..10 s;
    a delayed one is measured from its not_before, not from its submission."""
    ids = [s.task.id for s in node.hive.tasks.submit([TaskSpec("code")] * 10, ALICE).items]
    delayed = node.hive.tasks.submit(
        [TaskSpec("report", capabilities=["code"], not_before=T0 + timedelta(seconds=30))],
        ALICE,
    )
    clock.advance(2.0)
    bot, _, _ = node.hive.fleet.register(
        name="coder", capabilities=["code"], max_concurrency=20, version_label="v1", cause=ALICE
    )
    node.liveness.renew(bot.id, 60)
    tasks = wait_for(lambda: held(node.hive, ids), what="the ten tasks assigned")
    clock.advance(0.5)
    me = Cause(f"bot:{bot.id}", "r")
    node.hive.tasks.start(bot.id, [Report(t.id, t.fencing_token) for t in tasks], me)
    for k, t in enumerate(tasks, start=1):
        clock.advance(1.0)
        ok = k % 2 == 0
        outcome = Report(
            t.id, t.fencing_token, "1" if ok else None, None if ok else "boom", retryable=ok
        )  # a failure for good: the task's answer, not retried
        node.hive.tasks.finish(bot.id, [outcome], me)
    clock.advance(30.0)  # now T0 + 42.5 s: the delayed task is 12.5 s past its due time
    late = delayed.items[0].task.id
    wait_for(lambda: held(node.hive, [late]), what="the delayed task assigned")
    view_caught_up(node, "stages")

    code = by_stage(node, "code")
    assert_all_in_bucket(code["submit_assign"], 2.0, 10)
    assert_all_in_bucket(code["assign_start"], 0.5, 10)
    run = code["start_done"]
    assert run.count == 10 and run.sum_s == pytest.approx(55.0)
    assert code["end_to_end"].sum_s == pytest.approx(10 * 2.5 + 55.0)
    for q, estimate in run.percentiles().items():
        true = math.ceil(q * 10)  # the nearest-rank sample of 1, 2, ..., 10 s
        lower, upper = bucket_range(bucket_of(true))
        assert estimate is not None and lower <= estimate <= upper
    assert by_stage(node, "report").keys() == {"submit_assign"}
    assert_all_in_bucket(by_stage(node, "report")["submit_assign"], 12.5, 1)

    minutes = node.stages.minutes(15, clock())
    assert [(m.type, m.minute, m.succeeded, m.failed) for m in minutes] == [("code", T0, 5, 5)]
    assert minutes[0].e2e_mean_s == pytest.approx((10 * 2.5 + 55.0) / 10)
    assert node.stages.minutes(1, clock() + timedelta(minutes=1)) == []


def stage_rows(url: str) -> dict[str, list[tuple[object, ...]]]:
    return {t: v for t, v in snapshot(url).items() if t in STAGE_TABLES}


def test_a_reassigned_task_waits_once_and_the_view_equals_a_rebuild(
    db_url: str, clock: FakeClock
) -> None:
    """Submitted, assigned after 1 s, its bot lost, assigned again 2 s later, started 1 s
    after that and done in 3 s: one queue wait of 1 s, the start timed from the second
    assignment. Kept one event a page, the view equals a rebuild in pages of 500."""
    hive = open_hive(db_url, Settings(), clock=clock)
    try:
        a, _, _ = hive.fleet.register(
            name="a", capabilities=["code"], max_concurrency=5, version_label="v1", cause=ALICE
        )
        b, _, _ = hive.fleet.register(
            name="b", capabilities=["code"], max_concurrency=5, version_label="v1", cause=ALICE
        )
        ids = [s.task.id for s in hive.tasks.submit([TaskSpec("code")] * 3, ALICE).items]
        clock.advance(1.0)
        hive.tasks.assign([Assignment(t, a.id, {}) for t in ids], ENGINE)
        clock.advance(1.0)
        hive.fleet.lose(a.id, ids, "silence", ENGINE)
        clock.advance(2.0)
        hive.tasks.assign([Assignment(t, b.id, {}) for t in ids], ENGINE)
        clock.advance(1.0)
        hive.tasks.start(b.id, [Report(t, 2) for t in ids], ENGINE)
        clock.advance(3.0)
        hive.tasks.finish(b.id, [Report(ids[0], 2, result="1")], ENGINE)
        hive.tasks.cancel(ids[1], "not needed", ALICE)  # ids[2] stays running
        runner(db_url, hive, "stages", page=1).catch_up()
        kept = stage_rows(db_url)
        with psycopg.connect(db_url) as conn:
            totals = conn.execute(
                "SELECT stage, count, sum_ms FROM stage_totals ORDER BY stage"
            ).fetchall()
            still_open = conn.execute("SELECT task_id FROM stage_open_tasks").fetchall()
        assert totals == [
            ("assign_start", 3, 3000),
            ("end_to_end", 1, 8000),
            ("overhead", 1, 5000),  # end to end less the 3 s run
            ("start_done", 1, 3000),
            ("submit_assign", 3, 3000),
        ]
        assert still_open == [(ids[2],)]
        rebuild_views(db_url, Settings(), "stages")
        assert stage_rows(db_url) == kept
    finally:
        hive.close()


def test_minutes_older_than_a_day_before_the_newest_are_dropped(
    db_url: str, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    hive = open_hive(db_url, Settings(), clock=clock)
    try:
        bot, _, _ = hive.fleet.register(
            name="a", capabilities=["code"], max_concurrency=5, version_label="v1", cause=ALICE
        )
        for _ in range(3):  # one task a day, run in 10 s
            (task,) = [s.task.id for s in hive.tasks.submit([TaskSpec("code")], ALICE).items]
            hive.tasks.assign([Assignment(task, bot.id, {})], ENGINE)
            hive.tasks.start(bot.id, [Report(task, 1)], ENGINE)
            clock.advance(10.0)
            hive.tasks.finish(bot.id, [Report(task, 1, result="1")], ENGINE)
            clock.advance(timedelta(days=1).total_seconds())
        runner(db_url, hive, "stages", page=2).catch_up()
        with psycopg.connect(db_url) as conn:
            minutes = conn.execute("SELECT minute FROM stage_minutes ORDER BY 1").fetchall()
            ends = conn.execute("SELECT count FROM stage_totals WHERE stage = 'end_to_end'")
            assert ends.fetchall() == [(3,)]  # the histograms keep everything
        assert minutes == [(T0 + timedelta(days=1),), (T0 + timedelta(days=2),)]
        kept = stage_rows(db_url)
        monkeypatch.setenv("APIARY_DATABASE_URL", db_url)
        assert apiary(["projections", "rebuild", "--view", "stages"]) == 0
        assert stage_rows(db_url) == kept
    finally:
        hive.close()


def test_retried_attempts_are_timed_apart_and_end_to_end_runs_to_the_final_outcome(
    db_url: str, clock: FakeClock
) -> None:
    """Two tasks fail twice (1 s backoff, then 2 s); on the third attempt one succeeds and
    the other is dead-lettered; re-driven, the dead one's new series is timed from the
    re-drive. Kept one event a page, the view equals a rebuild."""
    hive = open_hive(db_url, Settings(), clock=clock)
    hive.tasks.policies = lambda _type: RetryPolicy(max_attempts=3, jitter=0.0)
    try:
        bot, _, _ = hive.fleet.register(
            name="a", capabilities=["code"], max_concurrency=5, version_label="v1", cause=ALICE
        )
        ok, dead = [s.task.id for s in hive.tasks.submit([TaskSpec("code")] * 2, ALICE).items]
        for attempt in (1, 2, 3):
            clock.advance(1.0)  # the wait for a bot: 1 s, then the backoff (1 s, 2 s) + 1 s
            hive.tasks.assign([Assignment(t, bot.id, {}) for t in (ok, dead)], ENGINE)
            hive.tasks.start(bot.id, [Report(t, attempt) for t in (ok, dead)], ENGINE)
            clock.advance(2.0)  # each attempt runs 2 s
            good = attempt == 3
            hive.tasks.finish(
                bot.id,
                [
                    Report(ok, attempt, "1" if good else None, None if good else "boom"),
                    Report(dead, attempt, error="boom", error_kind="io"),
                ],
                ENGINE,
            )
            clock.advance(float(2 ** (attempt - 1)))  # waits out the backoff
        clock.advance(10.0)
        hive.tasks.redrive([dead], "fixed", ALICE)
        clock.advance(1.0)
        hive.tasks.assign([Assignment(dead, bot.id, {})], ENGINE)
        clock.advance(1.0)
        hive.tasks.finish(bot.id, [Report(dead, 4, result="1", ran_s=0.5)], ENGINE)
        runner(db_url, hive, "stages", page=1).catch_up()
        with psycopg.connect(db_url) as conn:
            totals = conn.execute(
                "SELECT stage, retried, count, sum_ms FROM stage_totals ORDER BY 1, 2"
            ).fetchall()
            minutes = conn.execute("SELECT succeeded, failed FROM stage_minutes").fetchall()
        assert totals == [
            ("assign_start", False, 2, 0),
            ("assign_start", True, 5, 500),  # the re-driven one's start is implied
            ("end_to_end", True, 3, 12_000 + 12_000 + 2_000),  # never to a retry
            ("overhead", True, 3, 6000 + 6000 + 1500),  # less every attempt's run
            ("start_done", False, 2, 4000),
            ("start_done", True, 5, 4 * 2000 + 500),
            ("submit_assign", False, 2, 2000),
            ("submit_assign", True, 5, 5 * 1000),  # from each retry's time, and the re-drive
        ]
        assert minutes == [(2, 1)]
        kept = stage_rows(db_url)
        rebuild_views(db_url, Settings(), "stages")
        assert stage_rows(db_url) == kept
    finally:
        hive.close()
