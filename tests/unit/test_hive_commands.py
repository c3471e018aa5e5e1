"""The Hive's commands on the in-memory recorder: given events, when command, then events."""

from __future__ import annotations

import json
from uuid import uuid4

import pytest

from domain.cause import Cause
from domain.errors import InvalidInput, InvalidTransition, NotYourTask, StaleFencingToken
from domain.hive import Hive, Report, TaskSpec
from domain.policies.routing import Assignment
from domain.tasks import Task, TaskState

ALICE = Cause("alice", "req-1")
ENGINE = Cause.engine("dispatcher", "round-1")


def submit_one(hive: Hive, **kw: object) -> Task:
    return hive.tasks.submit([TaskSpec(**kw)], ALICE).items[0].task  # type: ignore[arg-type]


def assigned(hive: Hive, task: Task) -> tuple[Task, object]:
    bot, _, _ = hive.fleet.register(
        name="b1", capabilities=["code"], max_concurrency=2, version_label="v1", cause=ALICE
    )
    hive.tasks.assign([Assignment(task.id, bot.id, {"policy": "test"})], ENGINE)
    return hive.get(Task, task.id), bot.id


def test_submit_defaults_capabilities_to_type_and_records_actor(hive: Hive) -> None:
    task = submit_one(hive, type="code", payload='{"x": 1}')
    stored = hive.get(Task, task.id)
    assert stored.capabilities == ["code"]
    assert stored.submitted_by == "alice"
    assert json.loads(stored.payload) == {"x": 1}
    assert stored.state is TaskState.PENDING


def test_repeated_idempotency_key_returns_the_original(hive: Hive) -> None:
    first = hive.tasks.submit([TaskSpec("code", idempotency_key="k1", payload='{"n": 1}')], ALICE)
    again = hive.tasks.submit([TaskSpec("code", idempotency_key="k1", payload='{"n": 2}')], ALICE)
    assert again.items[0].duplicate
    assert again.items[0].task.id == first.items[0].task.id
    assert json.loads(hive.get(Task, first.items[0].task.id).payload) == {"n": 1}


def test_same_key_twice_in_one_batch_makes_one_task(hive: Hive) -> None:
    out = hive.tasks.submit(
        [TaskSpec("code", idempotency_key="k"), TaskSpec("code", idempotency_key="k")], ALICE
    )
    assert out.items[0].task.id == out.items[1].task.id
    assert [s.duplicate for s in out.items] == [False, True]


def test_bad_item_refuses_the_whole_batch(hive: Hive) -> None:
    with pytest.raises(InvalidInput, match="item 1"):
        hive.tasks.submit([TaskSpec("code"), TaskSpec("code", priority=10)], ALICE)
    assert hive.recorder.max_notification_id() in (None, 0)


def test_lifecycle_and_fencing(hive: Hive) -> None:
    task, bot_id = assigned(hive, submit_one(hive, type="code"))
    assert task.state is TaskState.ASSIGNED and task.fencing_token == 1
    cause = Cause(f"bot:{bot_id}", "r")
    with pytest.raises(StaleFencingToken):
        hive.tasks.start(bot_id, [Report(task.id, 0)], cause)  # type: ignore[arg-type]
    with pytest.raises(NotYourTask):
        hive.tasks.start(uuid4(), [Report(task.id, 1)], cause)
    hive.tasks.start(bot_id, [Report(task.id, 1)], cause)  # type: ignore[arg-type]
    hive.tasks.start(bot_id, [Report(task.id, 1)], cause)  # type: ignore[arg-type]  # repeat: no-op
    hive.tasks.finish(bot_id, [Report(task.id, 1, result='"done"')], cause)  # type: ignore[arg-type]
    done = hive.get(Task, task.id)
    assert done.state is TaskState.SUCCEEDED and done.result == '"done"'
    assert done.version == 4
    with pytest.raises(InvalidTransition):
        hive.tasks.cancel(task.id, "too late", ALICE)


def test_released_task_gets_a_new_token_and_old_reports_are_refused(hive: Hive) -> None:
    task, bot_id = assigned(hive, submit_one(hive, type="code"))
    hive.tasks.release(bot_id, [task.id], "bot lost", ENGINE)  # type: ignore[arg-type]
    assert hive.get(Task, task.id).state is TaskState.PENDING
    with pytest.raises(NotYourTask):
        hive.tasks.start(bot_id, [Report(task.id, 1)], ENGINE)  # type: ignore[arg-type]
    other, _, _ = hive.fleet.register(
        name="b2", capabilities=["code"], max_concurrency=1, version_label="v1", cause=ALICE
    )
    hive.tasks.assign([Assignment(task.id, other.id, {})], ENGINE)
    assert hive.get(Task, task.id).fencing_token == 2


def test_assign_skips_tasks_no_longer_pending(hive: Hive) -> None:
    task = submit_one(hive, type="code")
    hive.tasks.cancel(task.id, "changed my mind", ALICE)
    out = hive.tasks.assign([Assignment(task.id, uuid4(), {})], ENGINE)
    assert out.items == []
    assert hive.get(Task, task.id).state is TaskState.CANCELLED


@pytest.mark.parametrize(
    ("value", "refused"),
    [
        ("a\x00b", True),
        ("\\\x00", True),
        ("\\u0000", False),
        ("\\\\u0000", False),
        ("plain", False),
    ],
)
def test_payloads_with_nul_are_refused_and_only_those(
    hive: Hive, value: str, refused: bool
) -> None:
    payload = json.dumps({"text": value})
    if refused:
        with pytest.raises(InvalidInput, match="NUL"):
            submit_one(hive, type="code", payload=payload)
    else:
        assert json.loads(submit_one(hive, type="code", payload=payload).payload) == {"text": value}
