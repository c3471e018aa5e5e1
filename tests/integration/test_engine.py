"""The engine's loops on real PostgreSQL, in process: routing order, leases, fencing."""

from __future__ import annotations

import asyncio
from uuid import UUID

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.bootstrap import Node
from domain.bots import Bot, BotState
from domain.cause import Cause
from domain.errors import NotYourTask
from domain.hive import Report, TaskSpec
from domain.tasks import Task, TaskState
from projections.rows import BotFilter
from tests.integration.helpers import StartNode, change_config, view_caught_up
from tests.waiting import wait_for

ALICE = Cause("alice", "req")


@pytest.fixture
def node(start_node: StartNode) -> Node:
    """On the wall clock: a silent bot's lease runs out as real time passes."""
    return start_node(real_time=True, bot_lease_ttl_s=1.0, reaper_interval_s=0.1, crashes_fail=True)


def register(node: Node, name: str, caps: list[str], slots: int) -> UUID:
    bot, _, _ = node.hive.fleet.register(
        name=name, capabilities=caps, max_concurrency=slots, version_label="v1", cause=ALICE
    )
    node.liveness.renew(bot.id, 60)
    return bot.id


def claim(node: Node, bot_id: UUID, n: int = 100, wait: float = 5.0) -> list[UUID]:
    return [c.task_id for c in asyncio.run(node.claims.claim(bot_id, n, wait))]


def test_higher_priority_first_then_oldest_and_only_capable_bots(node: Node) -> None:
    low = node.hive.tasks.submit([TaskSpec("code", priority=1) for _ in range(3)], ALICE)
    high = node.hive.tasks.submit([TaskSpec("code", priority=8) for _ in range(2)], ALICE)
    writing = node.hive.tasks.submit([TaskSpec("writing", priority=9)], ALICE)
    coder = register(node, "coder", ["code"], slots=3)
    got = wait_for(lambda: claim(node, coder, wait=0.5), what="assignments")
    wait_for(lambda: len(claim(node, coder, wait=0.2)) == 3, what="all three slots filled")
    got = claim(node, coder)
    assert got == [s.task.id for s in high.items] + [low.items[0].task.id]
    task = node.hive.get(Task, got[0])
    assert task.state is TaskState.ASSIGNED
    assert node.hive.get(Task, writing.items[0].task.id).state is TaskState.PENDING


def test_silent_bot_is_lost_and_its_task_runs_elsewhere_with_a_new_token(node: Node) -> None:
    task_id = node.hive.tasks.submit([TaskSpec("code")], ALICE).items[0].task.id
    first = register(node, "first", ["code"], slots=1)
    node.liveness.renew(first, 0.5)  # then silence
    assert wait_for(lambda: claim(node, first, wait=0.5), what="first assignment") == [task_id]
    node.hive.tasks.start(first, [Report(task_id, 1)], Cause(f"bot:{first}", "r"))
    wait_for(
        lambda: node.hive.get(Bot, first).state is BotState.LOST,
        timeout=15,
        what="the silent bot to be marked lost",
    )
    second = register(node, "second", ["code"], slots=1)
    assert wait_for(lambda: claim(node, second, wait=0.5), what="reassignment") == [task_id]
    task = node.hive.get(Task, task_id)
    assert task.bot_id == second and task.fencing_token == 2
    with pytest.raises(NotYourTask):
        node.hive.tasks.finish(first, [Report(task_id, 1, result="1")], Cause(f"bot:{first}", "r"))
    assert node.hive.get(Task, task_id).state is TaskState.ASSIGNED


def test_deregistered_bot_gives_back_what_it_held(node: Node) -> None:
    ids = [s.task.id for s in node.hive.tasks.submit([TaskSpec("code")] * 2, ALICE).items]
    leaving = register(node, "leaving", ["code"], slots=2)
    wait_for(lambda: len(claim(node, leaving, wait=0.3)) == 2, what="both assigned")
    node.hive.fleet.deregister(leaving, ALICE)
    wait_for(
        lambda: all(node.hive.get(Task, t).state is TaskState.PENDING for t in ids),
        what="tasks back to pending",
    )


def test_tasks_nobody_can_take_do_not_block_those_somebody_can(node: Node) -> None:
    node.hive.tasks.submit([TaskSpec("painting", priority=9)] * 50, ALICE)
    wanted = node.hive.tasks.submit([TaskSpec("code", priority=0)], ALICE).items[0].task.id
    coder = register(node, "coder", ["code"], slots=1)
    assert wait_for(lambda: claim(node, coder, wait=0.5), what="the code task") == [wanted]


def test_repeated_idempotency_key_on_postgres_returns_the_original(node: Node) -> None:
    first = node.hive.tasks.submit([TaskSpec("code", idempotency_key="once")], ALICE)
    again = node.hive.tasks.submit(
        [TaskSpec("code", idempotency_key="once"), TaskSpec("code", idempotency_key="new")], ALICE
    )
    assert again.items[0].duplicate and again.items[0].task.id == first.items[0].task.id
    assert not again.items[1].duplicate
    log = node.hive.recorder.select_notifications(start=1, limit=1000)
    submitted = [
        e for e in map(node.hive.mapper.to_domain_event, log) if isinstance(e, Task.Submitted)
    ]  # the repeat wrote nothing (the dispatcher may note the tasks unroutable meanwhile)
    assert [e.originator_id for e in submitted] == [first.items[0].task.id, again.items[1].task.id]


def test_draining_and_quarantined_bots_get_no_new_work_but_finish_what_they_hold(
    node: Node,
) -> None:
    held = node.hive.tasks.submit([TaskSpec("code")], ALICE).items[0].task.id
    old = register(node, "old", ["code"], slots=4)
    assert wait_for(lambda: claim(node, old, wait=0.5), what="the first task") == [held]
    node.hive.fleet.drain([old], "scale down", ALICE)
    flaky = register(node, "flaky", ["code"], slots=4)
    node.hive.fleet.quarantine(flaky, "fails every task", ALICE)
    later = node.hive.tasks.submit([TaskSpec("code")] * 3, ALICE).items
    fresh = register(node, "fresh", ["code"], slots=4)
    wait_for(lambda: len(claim(node, fresh, wait=0.3)) == 3, what="the new tasks on fresh")
    assert all(node.hive.get(Task, s.task.id).bot_id == fresh for s in later)
    node.hive.tasks.start(old, [Report(held, 1)], ALICE)  # the draining bot still reports
    node.hive.tasks.finish(old, [Report(held, 1, result="1")], ALICE)
    assert node.hive.get(Task, held).state is TaskState.SUCCEEDED

    node.hive.fleet.reinstate(flaky, ALICE)
    again = node.hive.tasks.submit([TaskSpec("code")] * 5, ALICE).items  # the free slots
    wait_for(
        lambda: all(node.hive.get(Task, s.task.id).bot_id is not None for s in again),
        what="all five assigned",
    )
    owners = {node.hive.get(Task, s.task.id).bot_id for s in again}
    assert flaky in owners and old not in owners
    view_caught_up(node, "fleet")  # the reinstatement too (the rows below were settled before)
    rows = {r.bot_id: r for r in wait_for(lambda: _settled_fleet(node), what="fleet view")}
    assert (rows[old].state, rows[old].state_reason) == ("draining", "scale down")
    assert (rows[flaky].state, rows[flaky].state_reason) == ("ready", None)


def _settled_fleet(node: Node) -> list | None:  # type: ignore[type-arg]
    rows = node.fleet.list(BotFilter(state="all"), limit=100, cursor=None)[0]
    return rows if any(r.state == "draining" for r in rows) and len(rows) == 3 else None


def test_an_idle_leader_assigns_a_new_task_in_its_own_submission(node: Node) -> None:
    """No wait for a round: one transaction records the submission and its assignment."""
    coder = register(node, "coder", ["code"], slots=2)
    wake = node.loop("dispatcher").wake
    assert wake is not None
    wait_for(
        lambda: node.leaderships["dispatcher"].leading and not wake.is_set(),
        what="an idle dispatcher that leads",
    )
    submitted = node.hive.tasks.submit([TaskSpec("code")], ALICE)
    task = submitted.items[0].task
    assert task.state is TaskState.ASSIGNED and task.bot_id == coder
    (submission, assignment) = [e for p, e in submitted.recorded]
    assert [p for p, _ in submitted.recorded] == sorted(p for p, _ in submitted.recorded)
    assert assignment.timestamp == submission.timestamp
    assert assignment.actor == "engine:dispatcher"
    assert claim(node, coder, wait=1.0) == [task.id]


def test_an_attempt_past_its_timeout_is_retried_and_its_late_report_refused(
    node: Node,
) -> None:
    retry = {"default": {"timeout_s": 1.0, "initial_backoff_s": 30.0, "jitter": 0.0}}
    change_config(node, ALICE, retry=retry)
    task_id = node.hive.tasks.submit([TaskSpec("code")], ALICE).items[0].task.id
    bot, issued, _ = node.hive.fleet.register(
        name="slow", capabilities=["code"], max_concurrency=1, version_label="v1", cause=ALICE
    )
    node.liveness.renew(bot.id, 60)
    assert wait_for(lambda: claim(node, bot.id, wait=0.5), what="the assignment") == [task_id]
    node.hive.tasks.start(bot.id, [Report(task_id, 1)], Cause(f"bot:{bot.id}", "r"))
    started = node.hive.get(Task, task_id).started_at
    timed_out = wait_for(
        lambda: (t := node.hive.get(Task, task_id)).attempt == 2 and t,
        timeout=15,
        what="the engine to end the attempt past its timeout",
    )
    assert (timed_out.state, timed_out.error_kind) == (TaskState.PENDING, "timeout")
    [ended] = [e for e in node.hive.history(task_id) if isinstance(e, Task.RetryScheduled)]
    assert ended.outcome == "timed-out" and ended.actor == "engine:timeouts"
    assert started is not None and (ended.timestamp - started).total_seconds() >= 1.0
    late = {"tasks": [{"task_id": str(task_id), "fencing_token": 1, "result": 1}]}
    with TestClient(create_app(node.container())) as api:
        response = api.post(
            f"/v1/bots/{bot.id}/complete",
            json=late,
            headers={"Authorization": f"Bearer {issued.token}"},
        )
    assert response.status_code == 409, response.text
    assert node.hive.get(Task, task_id).state is TaskState.PENDING
