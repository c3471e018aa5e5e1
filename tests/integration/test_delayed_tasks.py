"""Delayed tasks on real PostgreSQL: held back until due, by an engine on an injected clock."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from uuid import UUID

import psycopg

from api.bootstrap import Node
from domain.cause import Cause
from domain.hive import TaskSpec
from domain.tasks import Task, TaskState
from tests.clock import T0, FakeClock
from tests.integration.helpers import StartNode
from tests.waiting import wait_for

ALICE = Cause("alice", "req")


def register(node: Node) -> UUID:
    bot, _, _ = node.hive.fleet.register(
        name="coder", capabilities=["code"], max_concurrency=5, version_label="v1", cause=ALICE
    )
    node.liveness.renew(bot.id, 60)
    return bot.id


def claim(node: Node, bot_id: UUID, wait: float) -> list[UUID]:
    return [c.task_id for c in asyncio.run(node.claims.claim(bot_id, 10, wait))]


def test_a_delayed_task_is_assigned_only_once_it_is_due(node: Node, clock: FakeClock) -> None:
    due = T0 + timedelta(minutes=10)
    delayed = node.hive.tasks.submit([TaskSpec("code", not_before=due)], ALICE).items[0].task.id
    at_once = node.hive.tasks.submit([TaskSpec("code")], ALICE).items[0].task.id
    bot = register(node)
    assert wait_for(lambda: claim(node, bot, 0.5), what="the task due now") == [at_once]
    assert claim(node, bot, 1.0) == [at_once]  # a whole second (5 dispatch polls) later
    assert node.hive.get(Task, delayed).state is TaskState.PENDING

    clock.advance(timedelta(minutes=9, seconds=59))
    assert claim(node, bot, 0.5) == [at_once]
    clock.advance(timedelta(seconds=1))
    got = wait_for(lambda: len(claim(node, bot, 0.5)) == 2, what="the delayed task, now due")
    assert got
    assert node.hive.get(Task, delayed).state is TaskState.ASSIGNED


def test_a_restarted_engine_still_holds_a_delayed_task_back(
    db_url: str, node: Node, clock: FakeClock, start_node: StartNode
) -> None:
    due = T0 + timedelta(minutes=5)
    delayed = node.hive.tasks.submit([TaskSpec("code", not_before=due)], ALICE).items[0].task.id
    wait_for(lambda: _view_not_before(db_url, delayed) == due, what="the view to show the delay")
    node.stop()
    later = start_node()  # loads the view
    try:
        assert later.index.next_due() == due
        bot = register(later)
        assert claim(later, bot, 0.6) == []
        clock.advance(timedelta(minutes=5))
        assert wait_for(lambda: claim(later, bot, 0.5), what="the delayed task") == [delayed]
    finally:
        later.stop()


def _view_not_before(url: str, task_id: UUID) -> datetime | None:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT not_before FROM tasks_view WHERE task_id = %s", (task_id,))
        found = row.fetchone()
    return found[0] if found else None
