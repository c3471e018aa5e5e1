"""Dispatch rounds on real PostgreSQL: a real round of the dispatcher is one
``DispatchRound`` record and an ``Assigned`` per task that carries only its own choice; the
tasks view, ``GET /v1/tasks/{id}`` and the dashboard's timeline show each explanation whole,
as before, also when a page of the view ends between a round and its assignments, and as a
rebuild of the tasks view alone does. An assignment stored by the code before rounds reads
as it did; a round decided again from the log (another writer got there first) is made
again."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from uuid import UUID

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg_pool import ConnectionPool

from api.app import create_app
from api.bootstrap import Node, rebuild_views
from api.dashboard.timeline import task_timeline
from api.settings import Settings
from domain.cause import Cause
from domain.hive import Hive, TaskSpec
from domain.keys import Role
from domain.policies.routing import Assignment, BotSlots, PendingTask, route
from domain.rounds import DispatchRound
from domain.tasks import Task, TaskState
from store.history import History
from tests.integration.helpers import StartNode, hive_on, runner, snapshot, view_caught_up
from tests.unit.test_dispatch_rounds import V1_EVENTS, V1_TASK, V1_WHY
from tests.waiting import wait_for

ALICE = Cause("alice", "req")
ENGINE = Cause.engine("dispatcher", "round-1")
TASKS = 20
ASSIGNED = "domain.tasks:Task.Assigned"


@pytest.fixture
def node(start_node: StartNode) -> Node:
    return start_node(bot_lease_ttl_s=60.0, crashes_fail=True)


@pytest.fixture
def history(db_url: str, hive: Hive) -> Iterator[History]:
    with ConnectionPool(db_url, min_size=1, max_size=1, open=True) as pool:
        yield History(pool, hive.mapper)


def assignments_shown(url: str, task_ids: list[UUID]) -> dict[UUID, Any]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT task_id, assignment FROM tasks_view WHERE task_id = ANY(%s)", (task_ids,)
        ).fetchall()
    return dict(rows)


def stored_sizes(url: str, task_ids: list[UUID]) -> list[int]:
    """The bytes of each task's ``Assigned`` as the log stores it."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT octet_length(state) FROM hive_events "
            "WHERE originator_id = ANY(%s) AND topic = %s",
            (task_ids, ASSIGNED),
        ).fetchall()
    return [size for (size,) in rows]


def whole(hive: Hive, assigned: Task.Assigned) -> dict[str, Any]:
    """An assignment's explanation, made whole from its round's record."""
    if assigned.round_id is None:
        return assigned.why
    return hive.get(DispatchRound, assigned.round_id).explain(assigned.why)


def latest_assigned(hive: Hive, task_id: UUID) -> Task.Assigned:
    [*_, assigned] = [e for e in hive.history(task_id) if isinstance(e, Task.Assigned)]
    return assigned


def test_a_dispatch_round_is_one_record_and_each_assignment_is_shown_whole(
    db_url: str, node: Node
) -> None:
    bots = []
    for name, slots in (("r1", 7), ("r2", 7), ("r3", 6)):  # room for the TASKS, 3 shown each
        bot, _, _ = node.hive.fleet.register(
            name=name,
            capabilities=["render"],
            max_concurrency=slots,
            version_label="v1",
            cause=ALICE,
        )
        node.liveness.renew(bot.id, 60)
        bots.append(bot.id)
    specs = [TaskSpec("render", priority=i % 10) for i in range(TASKS)]
    ids = [s.task.id for s in node.hive.tasks.submit(specs, ALICE).items]

    def all_assigned() -> bool:
        tasks = node.hive.load_many(Task, ids)
        return all(t.state is TaskState.ASSIGNED for t in tasks.values())

    wait_for(all_assigned, what="the tasks assigned")
    assigned = [latest_assigned(node.hive, t) for t in ids]
    [round_id] = {e.round_id for e in assigned}  # one round took them all
    assert round_id is not None and node.hive.get(DispatchRound, round_id).policy == "adaptive-1"
    explained = {e.originator_id: whole(node.hive, e) for e in assigned}
    assert all(explained[e.originator_id]["bots"][0]["bot"] == str(e.bot_id) for e in assigned)

    # Each Assigned carries only its choice: much smaller than with its explanation whole.
    for e in assigned:
        assert len(json.dumps(e.why, separators=(",", ":"))) < 150
    complete = [
        len(node.hive.mapper.to_stored_event(_with_whole_why(e, explained)).state) for e in assigned
    ]
    stored = stored_sizes(db_url, ids)
    assert len(stored) == TASKS and sum(stored) < 0.7 * sum(complete), (stored, complete)

    # The API, the view and the timeline show each explanation whole, as before.
    token = node.hive.keys.issue("root", Role.ADMIN, ALICE).token
    view_caught_up(node, "tasks")  # the log ends here: nothing more is written
    with TestClient(create_app(node.container())) as client:
        for task_id in ids[:3]:
            got = client.get(f"/v1/tasks/{task_id}", headers={"Authorization": f"Bearer {token}"})
            assert got.status_code == 200 and got.json()["assignment"] == explained[task_id]
    assert assignments_shown(db_url, ids) == explained
    with ConnectionPool(db_url, min_size=1, max_size=1, open=True) as pool:
        timeline = task_timeline(History(pool, node.hive.mapper), ids[0], None)
    [entry] = [e for e in timeline if e.kind == "Assigned"]
    assert entry.fields["why"] == explained[ids[0]] and entry.fields["round_id"] == round_id

    node.stop()  # the views stand still: a rebuild of the tasks view alone gives the same
    kept = snapshot(db_url)
    rebuild_views(db_url, Settings(), "tasks")
    assert snapshot(db_url) == kept


def _with_whole_why(e: Task.Assigned, explained: dict[UUID, Any]) -> Task.Assigned:
    """The event as the code before rounds would have stored it."""
    fields = {k: v for k, v in vars(e).items() if k not in ("why", "round_id")}
    return Task.Assigned(**fields, why=explained[e.originator_id], round_id=None)


def routed(hive: Hive, n: int) -> list[Assignment]:
    bot, _, _ = hive.fleet.register(
        name="r", capabilities=["render"], max_concurrency=n, version_label="v1", cause=ALICE
    )
    ids = [s.task.id for s in hive.tasks.submit([TaskSpec("render")] * n, ALICE).items]
    now = hive.kernel.clock().timestamp()
    pending = [
        PendingTask(t, 5, i, frozenset({"render"}), "render", now) for i, t in enumerate(ids)
    ]
    return route(pending, [BotSlots(bot.id, frozenset({"render"}), n)], {}, now)


@pytest.mark.parametrize("page", [1, 2, 3])
def test_the_tasks_view_finds_a_round_a_page_before_its_assignments(
    db_url: str, hive: Hive, page: int
) -> None:
    assignments = routed(hive, 5)
    hive.tasks.assign(assignments, ENGINE)
    runner(db_url, hive, "tasks", page=page).catch_up()  # rounds read back from the table
    ids = [a.task_id for a in assignments]
    assert assignments_shown(db_url, ids) == {a.task_id: a.why for a in assignments}
    kept = snapshot(db_url)
    rebuild_views(db_url, Settings(), "tasks")  # one page: the round in memory
    assert snapshot(db_url) == kept


def test_an_assignment_stored_by_the_old_code_reads_as_it_did(
    db_url: str, hive: Hive, history: History
) -> None:
    hive.recorder.insert_events(V1_EVENTS)
    runner(db_url, hive, "tasks").catch_up()
    assert assignments_shown(db_url, [V1_TASK]) == {V1_TASK: V1_WHY}
    [entry] = [e for e in task_timeline(history, V1_TASK, None) if e.kind == "Assigned"]
    assert entry.fields["why"] == V1_WHY and entry.fields["round_id"] is None


def test_a_round_decided_again_from_the_log_is_made_again(db_url: str, hive: Hive) -> None:
    """This writer's cache still has every task pending; another writer took one. The save
    loses on that task's version, and the round is decided again from the log: one record,
    for the two tasks left, and nothing of the first attempt."""
    assignments = routed(hive, 3)
    other = hive_on(db_url)
    try:
        other.tasks.cancel(assignments[0].task_id, "taken elsewhere", ALICE)
    finally:
        other.close()
    made: list[UUID] = []  # the ids the kernel hands out: one per round record it makes
    new_id = hive.kernel.new_id
    hive.kernel.new_id = lambda: made.append(new_id()) or made[-1]
    head = hive.recorder.max_notification_id() or 0
    committed = hive.tasks.assign(assignments, ENGINE)
    assert len(made) == 2  # decided on the cache, then again from the log
    assert [t.id for t in committed.items] == [a.task_id for a in assignments[1:]]
    notes = hive.recorder.select_notifications(head + 1, 100)
    record, *assigned = [hive.mapper.to_domain_event(n) for n in notes]
    assert isinstance(record, DispatchRound.Decided) and len(assigned) == 2
    assert record.originator_id == made[-1]
    assert all(e.round_id == record.originator_id for e in assigned)
    assert [whole(hive, e) for e in assigned] == [a.why for a in assignments[1:]]
