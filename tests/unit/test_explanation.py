"""Routing's explanations, shared by a round: each assignment's explanation, made whole
by ``explain`` from the round's groups and the task's choice, is byte for byte the dict the
code before rounds built per task (``routing_before_rounds.py``), for random bots, learned
records, weights and tasks; as routing hands it over, and as the log gives it back (the
hive's JSON transcoder: floats must survive it exactly)."""

from __future__ import annotations

import itertools
from typing import Any
from uuid import UUID, uuid4

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.cause import Cause
from domain.hive import Hive, TaskSpec
from domain.policies.aging import Aging
from domain.policies.explanation import RoundInputs, explain
from domain.policies.routing import (
    POLICY,
    BotSlots,
    PendingTask,
    RoutingConfig,
    Stats,
    Weights,
    route,
)
from domain.rounds import DispatchRound
from domain.tasks import Task
from tests.unit.routing_before_rounds import route_before_rounds
from tests.unit.test_routing_policy import NOW, hives

ALICE = Cause("alice", "req")
ENGINE = Cause.engine("dispatcher", "round-1")

Round = tuple[list[PendingTask], list[BotSlots], Stats, RoutingConfig]


@st.composite
def rounds(draw: st.DrawFn) -> Round:
    tasks, bots, stats = draw(hives())
    parts = st.tuples(*[st.floats(0.0, 3.0)] * 3).filter(lambda p: sum(p) > 0)
    weights = draw(st.just(Weights()) | parts.map(lambda p: Weights(*p)))
    config = RoutingConfig(
        aging=Aging(draw(st.floats(0.5, 120.0))),
        trial_samples=draw(st.integers(0, 8)),
        weights=weights,
    )
    return tasks, bots, stats, config


def text(why: dict[str, Any]) -> bytes:
    """As the tasks view writes it: the keys in order, 1 and 1.0 apart."""
    return orjson.dumps(why)


@given(rounds())
def test_each_assignment_is_explained_exactly_as_before_rounds(r: Round) -> None:
    tasks, bots, stats, config = r
    before = route_before_rounds(tasks, bots, stats, NOW, config)
    now = route(tasks, bots, stats, NOW, config)
    assert [(a.task_id, a.bot_id, text(a.why)) for a in now] == [
        (t, b, text(why)) for t, b, why in before
    ]
    assert len({id(a.shared) for a in now}) <= 1  # one round, one set of shared inputs


@given(rounds())
def test_a_narrowed_round_explains_its_choices_the_same(r: Round) -> None:
    tasks, bots, stats, config = r
    assignments = route(tasks, bots, stats, NOW, config)
    if not assignments:
        return
    shared = assignments[0].shared
    assert shared is not None
    kept = assignments[::2]  # the others were taken meanwhile
    narrowed, choices = shared.narrowed([a.choice for a in kept])
    assert [text(narrowed.explain(c)) for c in choices] == [text(a.why) for a in kept]
    named = {(c["group"], i) for c in choices for i, _ in c["bots"]}
    assert sum(len(g["bots"]) for g in narrowed.groups) == len(named)  # nothing else kept


@settings(max_examples=60, deadline=None)
@given(rounds())
def test_what_the_log_holds_explains_each_assignment_as_before(r: Round) -> None:
    """Through the tasks room and the hive's transcoder: a round of two or more is one
    record and choices; a round of one, the complete explanation; both read back exact."""
    tasks, bots, stats, config = r
    before = {t: why for t, _, why in route_before_rounds(tasks, bots, stats, NOW, config)}
    ids = iter([t.task_id for t in tasks])
    hive = Hive(
        env={"PERSISTENCE_MODULE": "eventsourcing.popo"}, new_id=lambda: next(ids, None) or uuid4()
    )
    try:
        specs = [TaskSpec(t.type, t.priority, sorted(t.capabilities)) for t in tasks]
        if specs:
            hive.tasks.submit(specs, ALICE)
        start = (hive.recorder.max_notification_id() or 0) + 1
        hive.tasks.assign(route(tasks, bots, stats, NOW, config), ENGINE)
        events = [
            hive.mapper.to_domain_event(n)
            for n in hive.recorder.select_notifications(start, 10_000)
        ]
    finally:
        hive.close()
    made = {
        e.originator_id: RoundInputs(e.policy, e.groups)
        for e in events
        if isinstance(e, DispatchRound.Decided)
    }
    assigned = [e for e in events if isinstance(e, Task.Assigned)]
    assert len(made) == (1 if len(before) >= 2 else 0)
    assert all((e.round_id is None) == (not made) for e in assigned)
    read = {
        e.originator_id: e.why if e.round_id is None else made[e.round_id].explain(e.why)
        for e in assigned
    }
    assert {t: text(why) for t, why in read.items()} == {t: text(w) for t, w in before.items()}


def test_an_explanation_made_whole() -> None:
    """What a group and a choice hold, and the explanation they make."""
    fast, new = UUID(int=1), UUID(int=2)
    group = {
        "type": "render",
        "required": ["gpu", "render"],
        "w_free": 0.3,
        "bots": [
            {"bot": str(fast), "capacity": 4, "samples": 9, "success": 0.9, "duration_s": 1.5},
            {"bot": str(new), "capacity": 2, "samples": 0},
        ],
        "base": [0.65, 0.7],
    }
    choice = {"group": 0, "effective_priority": 5.5, "waited_s": 15.0, "bots": [[1, 2], [0, 3]]}
    assert explain(POLICY, [group], choice) == {
        "policy": POLICY,
        "type": "render",
        "effective_priority": 5.5,
        "waited_s": 15.0,
        "required": ["gpu", "render"],
        "bots": [
            {"score": 1.0, "free": 2, "bot": str(new), "capacity": 2, "samples": 0},
            {
                "score": 0.875,
                "free": 3,
                "bot": str(fast),
                "capacity": 4,
                "samples": 9,
                "success": 0.9,
                "duration_s": 1.5,
            },
        ],
    }


def test_round_inputs_are_one_round_each() -> None:
    """Shared inputs are told apart by identity: two rounds never merge into one record."""
    a, b = RoundInputs(POLICY), RoundInputs(POLICY)
    assert a != b and len({a, b}) == 2
    assert list(itertools.islice(iter({a: 1, b: 2}.values()), 2)) == [1, 2]
