"""Adaptive routing on real PostgreSQL, through a whole engine (views, live index, learned
performance, dispatcher) with a fake clock: what a bot's record does to its share of
work, unroutable tasks, the performance view against a rebuild, and the why on the API."""

from __future__ import annotations

from collections import Counter
from typing import Any
from uuid import UUID

import psycopg
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.bootstrap import Node
from api.cli import main as apiary
from domain.cause import Cause
from domain.hive import Report, TaskSpec
from domain.keys import Role
from domain.tasks import Task, TaskState
from projections.performance_view import PerformanceView
from projections.runner import reset_view
from runtime.scaling.pools import PoolConfig
from tests.clock import FakeClock
from tests.integration.helpers import StartNode, view_caught_up
from tests.waiting import wait_for

ALICE = Cause("alice", "req")
PERFORMANCE_TABLES = ("bot_performance_view", "bot_performance_runs")


@pytest.fixture
def node(start_node: StartNode) -> Node:
    return start_node(bot_lease_ttl_s=60.0, crashes_fail=True)


def register(node: Node, name: str, caps: list[str], slots: int) -> UUID:
    bot, _, _ = node.hive.fleet.register(
        name=name, capabilities=caps, max_concurrency=slots, version_label="v1", cause=ALICE
    )
    node.liveness.renew(bot.id, 60)
    return bot.id


def assigned(node: Node, task_ids: list[UUID]) -> dict[UUID, Task]:
    tasks = node.hive.load_many(Task, task_ids)
    return tasks if all(t.state is TaskState.ASSIGNED for t in tasks.values()) else {}


def head(node: Node) -> int:
    return node.hive.recorder.max_notification_id() or 0


def rows(url: str, table: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(f"SELECT * FROM {table} ORDER BY 1, 2").fetchall()


def work_rounds(
    node: Node, clock: FakeClock, good: UUID, poor: UUID, rounds: int
) -> list[Counter[UUID]]:
    """Two code tasks a round while both bots have room; the good bot succeeds in 2 s, the
    poor one fails in 0.5 s, for good (not retryable: no retry comes back to compete with
    the next round's tasks). Returns who got what, per round."""
    shares = []
    for _ in range(rounds):
        ids = [s.task.id for s in node.hive.tasks.submit([TaskSpec("code")] * 2, ALICE).items]
        tasks = wait_for(lambda ids=ids: assigned(node, ids), what="both tasks assigned")
        shares.append(Counter(t.bot_id for t in tasks.values()))
        clock.advance(1.0)
        for bot_id, ok, took in ((good, True, 2.0), (poor, False, 0.5)):
            mine = [Report(t.id, t.fencing_token) for t in tasks.values() if t.bot_id == bot_id]
            if not mine:
                continue
            who = Cause(f"bot:{bot_id}", "r")
            node.hive.tasks.start(bot_id, mine, who)
            clock.advance(took)
            outcome = [
                Report(r.task_id, r.fencing_token, "1" if ok else None, None if ok else "boom")
                if ok
                else Report(r.task_id, r.fencing_token, error="boom", retryable=False)
                for r in mine
            ]
            node.hive.tasks.finish(bot_id, outcome, who)
        end = head(node)  # the next round decides on what this one taught
        wait_for(lambda end=end: node.performance.position >= end, what="learning caught up")
    return shares


def test_a_bot_that_keeps_failing_a_type_gets_less_of_it(node: Node, clock: FakeClock) -> None:
    good, poor = register(node, "good", ["code"], 2), register(node, "poor", ["code"], 2)
    shares = work_rounds(node, clock, good, poor, rounds=10)
    total = sum(shares, Counter())
    assert shares[0] == {good: 1, poor: 1}, "untried, both get a fair trial"
    assert total[poor] < total[good]
    assert all(s == {good: 2} for s in shares[4:]), f"the poor bot still got work: {shares}"
    learned = node.performance.snapshot()
    assert learned[poor, "code"].success < 0.2 < 0.99 < learned[good, "code"].success
    assert learned[good, "code"].duration_s == pytest.approx(2.0)
    assert learned[poor, "code"].duration_s is None


def test_the_performance_view_equals_the_engine_copy_and_a_rebuild_from_zero(
    node: Node, clock: FakeClock, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    good, poor = register(node, "good", ["code"], 2), register(node, "poor", ["code"], 2)
    done = sum(work_rounds(node, clock, good, poor, rounds=4), Counter())[good]
    running = node.hive.tasks.submit([TaskSpec("code")], ALICE).items[0].task.id
    task = wait_for(lambda: assigned(node, [running]), what="one more assigned")[running]
    assert task.bot_id == good
    node.hive.tasks.start(good, [Report(running, task.fencing_token)], ALICE)
    node.hive.fleet.lose(good, [running], "silence", Cause.engine("test", "r"))  # a lost run
    for attempt in (2, 3):  # the poor bot fails the retries: the last is dead-lettered
        clock.advance(120.0)  # past the backoff
        task = wait_for(lambda: assigned(node, [running]), what="the retry assigned")[running]
        assert (task.bot_id, task.attempt) == (poor, attempt)
        fail = Report(running, task.fencing_token, error="boom", ran_s=0.0)
        node.hive.tasks.finish(poor, [fail], ALICE)
    assert node.hive.load_many(Task, [running])[running].state is TaskState.DEAD
    node.hive.tasks.redrive([running], "once more", ALICE)  # says nothing of any bot
    wait_for(lambda: assigned(node, [running]), what="the re-driven task assigned")
    view_caught_up(node, "performance")
    end = head(node)
    wait_for(lambda: node.performance.position >= end, what="learning caught up")
    kept = {t: rows(db_url, t) for t in PERFORMANCE_TABLES}
    assert {(b, t): (s, d, n) for b, t, s, d, n, *_ in kept["bot_performance_view"]} == {
        key: (r.success, r.duration_s, r.samples) for key, r in node.performance.snapshot().items()
    }
    learned = node.performance.snapshot()
    assert learned[good, "code"].samples == done + 1  # and one lost run
    assert learned[poor, "code"].samples == 4 * 2 - done + 2  # and two failed retries
    assert kept["bot_performance_runs"] == [(running, "code", poor, None)]
    monkeypatch.setenv("APIARY_DATABASE_URL", db_url)
    assert apiary(["projections", "rebuild", "--view", "performance"]) == 0
    assert {t: rows(db_url, t) for t in PERFORMANCE_TABLES} == kept


def test_unroutable_is_shown_until_a_capable_bot_takes_the_task(node: Node) -> None:
    register(node, "coder", ["code"], 1)
    submitted = node.hive.tasks.submit([TaskSpec("render", priority=7)], ALICE)
    task_id, position = submitted.items[0].task.id, submitted.position
    token = node.hive.keys.issue("root", Role.ADMIN, ALICE).token
    with TestClient(create_app(node.container())) as client:
        auth = {"Authorization": f"Bearer {token}"}

        def detail() -> dict[str, Any]:
            url = f"/v1/tasks/{task_id}?min_position={position}"  # read our own write
            response = client.get(url, headers=auth)
            assert response.status_code == 200, response.text
            return response.json()

        shown = wait_for(lambda: detail()["unroutable"], what="the task shown unroutable")
        assert shown["missing"] == ["render"] and "render" in shown["reason"]
        assert detail()["state"] == "pending"
        renderer = register(node, "renderer", ["render"], 1)
        task = wait_for(
            lambda: detail()["state"] == "assigned" and detail(), what="the task assigned"
        )
        assert task["unroutable"] is None and task["bot_id"] == str(renderer)
        why = task["assignment"]
        assert why["policy"] == "adaptive-1" and why["type"] == "render"
        assert why["required"] == ["render"] and why["effective_priority"] == 7.0
        assert why["bots"] == [
            {"bot": str(renderer), "capacity": 1, "samples": 0, "free": 1, "score": 1.0}
        ]


def test_a_restarted_engine_learns_what_its_view_has_not_applied_yet(
    db_url: str, clock: FakeClock, start_node: StartNode
) -> None:
    """The view may lag (here: emptied, as by a rebuild that has not run yet): the engine's
    copy reads the rest from the log, up to where its feed starts, and misses nothing."""
    first = start_node(bot_lease_ttl_s=60.0)
    try:
        good, poor = register(first, "good", ["code"], 2), register(first, "poor", ["code"], 2)
        work_rounds(first, clock, good, poor, rounds=3)
        learned = first.performance.snapshot()
    finally:
        first.stop()
    reset_view(db_url, PerformanceView())
    second = start_node(bot_lease_ttl_s=60.0)
    try:
        assert second.performance.snapshot() == learned
        view_caught_up(second, "performance")
        assert {
            (b, t): (s, d, n) for b, t, s, d, n, *_ in rows(db_url, "bot_performance_view")
        } == {key: (r.success, r.duration_s, r.samples) for key, r in learned.items()}
    finally:
        second.stop()


def test_a_task_only_a_pool_could_serve_is_not_unroutable(start_node: StartNode) -> None:
    """The autoscaler will grow the pool for it; a task no pool can serve is flagged."""
    pools = [PoolConfig(name="renderers", capabilities=["render", "gpu"])]
    node = start_node(pools=pools)
    try:
        register(node, "coder", ["code"], 1)
        poolable, hopeless = (
            s.task.id
            for s in node.hive.tasks.submit([TaskSpec("render"), TaskSpec("painting")], ALICE).items
        )
        wait_for(lambda: node.index.tasks[hopeless].unroutable, what="the painting task flagged")
        assert not node.index.tasks[poolable].unroutable
    finally:
        node.stop()
