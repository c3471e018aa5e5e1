"""Re-drives on real PostgreSQL (issue 12, "Dead letters and re-drive"): the bulk re-drive's
query over the tasks view (filters, oldest finish first, the limit), its dry run and its
one event per task with the actor and the reason; and a task cancelled while it waits out
its backoff is never tried again."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from uuid import UUID

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.bootstrap import Node
from domain.cause import Cause
from domain.hive import Report, TaskSpec
from domain.keys import Role
from domain.policies.retry import RetryLimits
from domain.tasks import Task, TaskState
from projections.redrive_reads import RedriveFilter, RedriveReads
from tests.integration.helpers import StartNode, change_config, held, view_caught_up
from tests.waiting import wait_for

OPERATOR = Cause("operator", "redrive-test")


@pytest.fixture
def node(start_node: StartNode) -> Node:
    """On the wall clock, with a lease long enough that no bot is lost within a test; an
    error logged (a loop that tried to run a cancelled task, say) fails the test."""
    return start_node(real_time=True, crashes_fail=True, bot_lease_ttl_s=60.0)


@pytest.fixture
def admin(node: Node) -> Iterator[TestClient]:
    key = node.hive.keys.issue("ops", Role.ADMIN, OPERATOR).token
    with TestClient(create_app(node.container())) as client:
        client.headers["Authorization"] = f"Bearer {key}"
        yield client


def bot(node: Node, caps: list[str]) -> UUID:
    registered, _, _ = node.hive.fleet.register(
        name="worker", capabilities=caps, max_concurrency=10, version_label="1", cause=OPERATOR
    )
    node.liveness.renew(registered.id, 60)  # it heartbeats
    return registered.id


def running(node: Node, bot_id: UUID, specs: list[TaskSpec]) -> list[Task]:
    """``specs`` submitted, assigned to ``bot_id`` by the dispatcher, and started."""
    ids = [s.task.id for s in node.hive.tasks.submit(specs, OPERATOR).items]
    tasks = wait_for(lambda: held(node.hive, ids), what="the tasks assigned")
    node.hive.tasks.start(bot_id, [Report(t.id, t.fencing_token) for t in tasks], OPERATOR)
    return tasks


def fail(node: Node, bot_id: UUID, tasks: list[Task], kind: str = "flaky") -> None:
    reports = [Report(t.id, t.fencing_token, error="boom", error_kind=kind) for t in tasks]
    node.hive.tasks.finish(bot_id, reports, Cause(f"bot:{bot_id}", "fail"))


def test_the_bulk_re_drive_finds_by_filter_oldest_finish_first_and_records_who_and_why(
    node: Node, admin: TestClient
) -> None:
    bot_id = bot(node, ["code", "paint"])
    once = RetryLimits(max_attempts=1)  # the first failure is its last: dead
    c0, c1, c2, p0 = running(
        node,
        bot_id,
        [*(TaskSpec(type="code", retry=once) for _ in range(3)), TaskSpec("paint", retry=once)],
    )
    for task, kind in ((c2, "flaky"), (c0, "flaky"), (c1, "oom"), (p0, "flaky")):  # finish order
        fail(node, bot_id, [task], kind)
    assert {node.hive.get(Task, t.id).state for t in (c0, c1, c2, p0)} == {TaskState.DEAD}
    view_caught_up(node, "tasks")

    reads = RedriveReads(node.pool)
    assert reads.find(RedriveFilter(type="code"), 10) == [c2.id, c0.id, c1.id]
    assert reads.find(RedriveFilter(error_kind="flaky"), 10) == [c2.id, c0.id, p0.id]
    assert reads.find(RedriveFilter(type="code"), 1) == [c2.id]
    assert reads.find(RedriveFilter(states=("failed", "cancelled")), 10) == []
    since = node.tasks.get(c0.id).finished_at  # type: ignore[union-attr]
    assert reads.find(RedriveFilter(finished_since=since), 10) == [c0.id, c1.id, p0.id]
    assert reads.find(RedriveFilter(finished_until=since), 10) == [c2.id]

    before = node.hive.recorder.max_notification_id()
    body: dict[str, Any] = {
        "filter": {"type": "code", "error_kind": "flaky"},
        "reason": "the mirror is back",
    }
    dry = admin.post("/v1/tasks/redrive", json={**body, "dry_run": True})
    assert dry.json() == {"dry_run": True, "count": 2, "task_ids": None, "position": None}
    assert node.hive.recorder.max_notification_id() == before

    done = admin.post("/v1/tasks/redrive", json=body)
    assert done.status_code == 200, done.text
    assert done.json()["task_ids"] == [str(c2.id), str(c0.id)]
    for task in (c2, c0):
        redriven = [e for e in node.hive.history(task.id) if isinstance(e, Task.Redriven)]
        assert [(e.actor, e.reason, e.series) for e in redriven] == [
            ("ops", "the mirror is back", 2)
        ]
    assert node.hive.get(Task, c1.id).state is TaskState.DEAD  # another kind: not found

    again = admin.post("/v1/tasks/redrive", json=body)  # re-driven already: passed over
    assert (again.json()["count"], again.json()["task_ids"]) == (0, [])


def test_a_task_cancelled_while_it_waits_out_its_backoff_is_never_tried_again(
    node: Node, admin: TestClient
) -> None:
    change_config(
        node,
        OPERATOR,
        retry={"default": {"initial_backoff_s": 0.5, "max_backoff_s": 0.5, "jitter": 0}},
    )
    bot_id = bot(node, ["code"])
    cancelled, control = running(node, bot_id, [TaskSpec("code"), TaskSpec("code")])
    fail(node, bot_id, [cancelled, control])  # one report: both due again at the same time
    waiting = node.hive.load_many(Task, [cancelled.id, control.id])
    assert {t.state for t in waiting.values()} == {TaskState.PENDING}
    assert waiting[cancelled.id].not_before == waiting[control.id].not_before

    answer = admin.post(f"/v1/tasks/{cancelled.id}/cancel", json={"reason": "not needed"})
    assert answer.status_code == 200 and answer.json()["state"] == "cancelled"

    # The control's retry fires; had the cancelled one's been queued, it would have too.
    wait_for(lambda: held(node.hive, [control.id]), what="the control task tried again")
    history = node.hive.history(cancelled.id)
    assert isinstance(history[-1], Task.Cancelled)
    assert node.hive.get(Task, cancelled.id).state is TaskState.CANCELLED
