"""Dispatch rounds on the in-memory recorder: a round of two or more assignments is one
``DispatchRound`` record ahead of them, each assignment naming it and carrying only its
choice; a round of one records none; tasks taken meanwhile are left out (all of them:
nothing is written). ``Task.Assigned`` as the code before rounds stored it still loads."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import pytest
from eventsourcing.persistence import StoredEvent

from domain.cause import Cause
from domain.errors import InvalidInput
from domain.hive import Committed, Hive, TaskSpec
from domain.policies.explanation import RoundInputs
from domain.policies.routing import POLICY, Assignment, BotSlots, PendingTask, route
from domain.rounds import DispatchRound
from domain.tasks import Task, TaskState
from tests.clock import FakeClock

ALICE = Cause("alice", "req-1")
ENGINE = Cause.engine("dispatcher", "round-1")


def routed(hive: Hive, clock: FakeClock, tasks: int, bots: int = 2) -> list[Assignment]:
    """A routing round over ``tasks`` new render tasks and ``bots`` render bots."""
    slots = []
    for n in range(bots):
        bot, _, _ = hive.fleet.register(
            name=f"r{n}",
            capabilities=["render"],
            max_concurrency=tasks,
            version_label="v1",
            cause=ALICE,
        )
        slots.append(BotSlots(bot.id, frozenset({"render"}), tasks))
    ids = [s.task.id for s in hive.tasks.submit([TaskSpec("render")] * tasks, ALICE).items]
    now = clock().timestamp()
    pending = [
        PendingTask(t, 5, i, frozenset({"render"}), "render", now - i) for i, t in enumerate(ids)
    ]
    return route(pending, slots, {}, now)


def events(committed: Committed[Any]) -> list[Any]:
    return [e for _, e in committed.recorded]


def test_a_round_of_several_tasks_is_one_record_ahead_of_its_assignments(
    hive: Hive, clock: FakeClock
) -> None:
    assignments = routed(hive, clock, 5)
    committed = hive.tasks.assign(assignments, ENGINE)
    record, *assigned = events(committed)
    assert isinstance(record, DispatchRound.Decided) and record.policy == POLICY
    assert [e.originator_id for e in assigned] == [a.task_id for a in assignments]
    assert {type(e) for e in assigned} == {Task.Assigned}
    assert all(e.round_id == record.originator_id for e in assigned)
    assert [t.id for t in committed.items] == [a.task_id for a in assignments]  # tasks only
    made = hive.get(DispatchRound, record.originator_id)
    for a, e in zip(assignments, assigned, strict=True):
        assert set(e.why) == {"group", "effective_priority", "waited_s", "bots"}
        assert made.explain(e.why) == a.why
        assert hive.get(Task, a.task_id).state is TaskState.ASSIGNED


def test_a_round_of_one_task_records_no_round(hive: Hive, clock: FakeClock) -> None:
    [a] = routed(hive, clock, 1)
    [assigned] = events(hive.tasks.assign([a], ENGINE))
    assert isinstance(assigned, Task.Assigned) and assigned.round_id is None
    assert assigned.why == a.why and assigned.why["policy"] == POLICY


def test_tasks_taken_meanwhile_are_left_out_of_the_round(hive: Hive, clock: FakeClock) -> None:
    assignments = routed(hive, clock, 3)
    hive.tasks.cancel(assignments[0].task_id, "no longer wanted", ALICE)
    record, *assigned = events(hive.tasks.assign(assignments, ENGINE))
    assert isinstance(record, DispatchRound.Decided)
    assert [e.originator_id for e in assigned] == [a.task_id for a in assignments[1:]]
    made = hive.get(DispatchRound, record.originator_id)
    assert [made.explain(e.why) for e in assigned] == [a.why for a in assignments[1:]]


def test_a_round_left_with_one_task_records_no_round(hive: Hive, clock: FakeClock) -> None:
    first, second, third = routed(hive, clock, 3)
    for gone in (first, third):
        hive.tasks.cancel(gone.task_id, "no longer wanted", ALICE)
    [assigned] = events(hive.tasks.assign([first, second, third], ENGINE))
    assert assigned.originator_id == second.task_id
    assert assigned.round_id is None and assigned.why == second.why


def test_a_round_whose_tasks_were_all_taken_writes_nothing(hive: Hive, clock: FakeClock) -> None:
    assignments = routed(hive, clock, 4)
    for a in assignments:
        hive.tasks.cancel(a.task_id, "no longer wanted", ALICE)
    head = hive.recorder.max_notification_id()
    committed = hive.tasks.assign(assignments, ENGINE)
    assert committed.items == [] and committed.recorded == [] and committed.position is None
    assert hive.recorder.max_notification_id() == head


def test_assignments_made_by_hand_carry_their_explanation_whole(
    hive: Hive, clock: FakeClock
) -> None:
    assignments = routed(hive, clock, 2)
    by_hand = [Assignment(a.task_id, a.bot_id, {"policy": "by-hand"}) for a in assignments]
    recorded = events(hive.tasks.assign(by_hand, ENGINE))
    assert [(e.round_id, e.why) for e in recorded] == [(None, {"policy": "by-hand"})] * 2


def test_a_round_record_keeps_only_the_bots_its_assignments_name(
    hive: Hive, clock: FakeClock
) -> None:
    assignments = routed(hive, clock, 2, bots=8)  # 3 bots shown per task, at most 6 named
    record, *_ = events(hive.tasks.assign(assignments, ENGINE))
    named = {b["bot"] for a in assignments for b in a.why["bots"]}
    [group] = record.groups
    assert {b["bot"] for b in group["bots"]} == named and len(named) < 8


@pytest.mark.parametrize(
    ("groups", "refused"),
    [
        ([], "at least one group"),
        (
            [{"type": "render", "required": ["render"], "w_free": 0.3, "bots": [], "base": []}],
            "bot",
        ),
        (
            [
                {
                    "type": "render",
                    "required": ["render"],
                    "w_free": 0.3,
                    "bots": [{"bot": "b", "capacity": 1, "samples": 0}],
                    "base": [],
                }
            ],
            "base score",
        ),
    ],
)
def test_a_round_record_refuses_what_explains_nothing(
    hive: Hive, groups: list[dict[str, Any]], refused: str
) -> None:
    with pytest.raises(InvalidInput, match=refused):
        DispatchRound.record(
            round_id=UUID(int=7),
            inputs=RoundInputs(POLICY, groups),
            cause=ENGINE,
            at=hive.kernel.clock(),
        )


# Task.Assigned exactly as the code before dispatch rounds stored it (captured from it:
# a dispatcher's round over a proven bot and a new one).
V1_TASK = UUID("6b9d1c2e-0a4f-4e2b-9d7c-3f1e5a8b7c0e")
V1_ASSIGNED = (
    b'{"timestamp":{"_type_":"datetime_iso","_data_":"2030-01-01T00:00:21.250000+00:00"},'
    b'"actor":"engine:dispatcher","request_id":"round-1",'
    b'"bot_id":{"_type_":"uuid_hex","_data_":"6b9d1c2e0a4f4e2b9d7c3f1e5a8b7c01"},'
    b'"fencing_token":1,"why":{"policy":"adaptive-1","type":"render","effective_priority":4.242,'
    b'"waited_s":7.25,"required":["render"],"bots":[{"score":1.0,"free":3,'
    b'"bot":"6b9d1c2e-0a4f-4e2b-9d7c-3f1e5a8b7c01","capacity":3,"samples":6,"success":1.0,'
    b'"duration_s":0.25},{"score":1.0,"free":2,"bot":"6b9d1c2e-0a4f-4e2b-9d7c-3f1e5a8b7c03",'
    b'"capacity":2,"samples":0}]}}'
)
V1_SUBMITTED = (
    b'{"timestamp":{"_type_":"datetime_iso","_data_":"2030-01-01T00:00:14+00:00"},'
    b'"originator_topic":"domain.tasks:Task","actor":"alice","request_id":"req-1",'
    b'"type":"render","priority":4,"capabilities":["render"],"payload":"{}",'
    b'"idempotency_key":null,"not_before":null,"schedule_id":null,"class_version":2}'
)
V1_WHY = {
    "policy": "adaptive-1",
    "type": "render",
    "effective_priority": 4.242,
    "waited_s": 7.25,
    "required": ["render"],
    "bots": [
        {
            "score": 1.0,
            "free": 3,
            "bot": "6b9d1c2e-0a4f-4e2b-9d7c-3f1e5a8b7c01",
            "capacity": 3,
            "samples": 6,
            "success": 1.0,
            "duration_s": 0.25,
        },
        {
            "score": 1.0,
            "free": 2,
            "bot": "6b9d1c2e-0a4f-4e2b-9d7c-3f1e5a8b7c03",
            "capacity": 2,
            "samples": 0,
        },
    ],
}
V1_EVENTS = [
    StoredEvent(V1_TASK, 1, "domain.tasks:Task.Submitted", V1_SUBMITTED),
    StoredEvent(V1_TASK, 2, "domain.tasks:Task.Assigned", V1_ASSIGNED),
]


def test_an_assignment_stored_by_the_old_code_still_loads_whole(hive: Hive) -> None:
    hive.recorder.insert_events(V1_EVENTS)
    [_, assigned] = hive.history(V1_TASK)
    assert isinstance(assigned, Task.Assigned) and assigned.round_id is None
    assert assigned.why == V1_WHY
    assert [
        type(v) for v in (assigned.why["effective_priority"], assigned.why["bots"][0]["score"])
    ] == [float, float]
    task = hive.get(Task, V1_TASK)
    assert task.state is TaskState.ASSIGNED and task.fencing_token == 1
    assert task.bot_id == UUID("6b9d1c2e-0a4f-4e2b-9d7c-3f1e5a8b7c01")
