"""The runtime configuration on real PostgreSQL: a change reaches every Node (one started
before it, one started after it) and the parts that take their knobs from it; what routing
learned takes ``routing_alpha`` from the version in force at each point of the log, in the
view, in the engine's copy and in a rebuild from zero."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import psycopg
import pytest

from api.bootstrap import Node, rebuild_views
from api.settings import Settings
from domain.cause import Cause
from domain.hive import Hive, Report, TaskSpec
from domain.policies.performance import Performance, observe
from domain.policies.routing import Assignment
from domain.tasks import Task, TaskState
from runtime.config import Knobs
from runtime.dispatcher import Dispatcher
from tests.clock import FakeClock
from tests.integration.helpers import StartNode, view_caught_up
from tests.waiting import wait_for

OPERATOR = Cause("operator", "req-config")
ALICE = Cause("alice", "req")
PERFORMANCE_TABLES = ("bot_performance_view", "bot_performance_runs", "bot_performance_alpha")


def change(node: Node, reason: str = "tuning", **knobs: Any) -> int:
    """A new config version with ``knobs`` changed; returns its number."""
    current = node.hive.config.current()
    document = Knobs.parse(current.document).with_changes(knobs).document()
    node.hive.config.change(document, current.version, reason, OPERATOR)
    return current.version + 1


def dispatcher_of(node: Node) -> Dispatcher:
    dispatcher = node.loop("dispatcher").step.__self__  # type: ignore[attr-defined]
    assert isinstance(dispatcher, Dispatcher)
    return dispatcher


def head(node: Node) -> int:
    return node.hive.recorder.max_notification_id() or 0


def rows(url: str, table: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(f"SELECT * FROM {table} ORDER BY 1, 2").fetchall()


def learned_rows(url: str) -> dict[tuple[UUID, str], Performance]:
    return {(b, t): Performance(s, d, n) for b, t, s, d, n, *_ in rows(url, "bot_performance_view")}


def register(node: Node, name: str, slots: int) -> UUID:
    bot, _, _ = node.hive.fleet.register(
        name=name, capabilities=["code"], max_concurrency=slots, version_label="v1", cause=ALICE
    )
    node.liveness.renew(bot.id, 60)
    return bot.id


def assigned(hive: Hive, task_ids: list[UUID]) -> dict[UUID, Task]:
    tasks = hive.load_many(Task, task_ids)
    return tasks if all(t.state is TaskState.ASSIGNED for t in tasks.values()) else {}


def assigning_rounds(hive: Hive, task_ids: list[UUID]) -> set[str]:
    """The dispatcher rounds (their request ids) that assigned these tasks."""
    return {
        e.request_id
        for task_id in task_ids
        for e in hive.history(task_id)
        if isinstance(e, Task.Assigned)
    }


# -- a change reaches every process -------------------------------------------------------


def test_a_change_reaches_every_node_and_the_parts_that_take_its_knobs(
    start_node: StartNode,
) -> None:
    engine = start_node(bot_lease_ttl_s=60.0, crashes_fail=True)
    api = start_node(role="api")
    assert engine.config.version == api.config.version == 1
    dispatcher = dispatcher_of(engine)
    assert dispatcher.page == Knobs().dispatch_page
    bot = register(engine, "wide", slots=6)

    first = [s.task.id for s in engine.hive.tasks.submit([TaskSpec("code")] * 3, ALICE).items]
    wait_for(lambda: assigned(engine.hive, first), what="the first three assigned")
    assert len(assigning_rounds(engine.hive, first)) == 1  # one round takes a page of 2000

    version = change(
        engine, max_batch=10, dispatch_page=1, routing_free_weight=0.6, message_visibility_s=7.0
    )
    assert version == 2
    wait_for(lambda: engine.config.version == 2, timeout=1.0, what="the engine at version 2")
    wait_for(lambda: api.config.version == 2, timeout=1.0, what="the API node at version 2")
    for node in (engine, api):
        settings = node.settings_now()
        assert (settings.max_batch, settings.dispatch_page) == (10, 1)
        assert settings.routing_free_weight == 0.6
        assert node.messages.visibility_s == 7.0
        assert node.container().settings.max_batch == 10
    wait_for(lambda: dispatcher.page == 1, timeout=1.0, what="the dispatcher's new page")
    assert dispatcher.config.weights.free == 0.6

    second = [s.task.id for s in engine.hive.tasks.submit([TaskSpec("code")] * 3, ALICE).items]
    tasks = wait_for(lambda: assigned(engine.hive, second), what="the next three assigned")
    assert {t.bot_id for t in tasks.values()} == {bot}
    assert len(assigning_rounds(engine.hive, second)) == 3  # a page of 1: a round each


def test_a_node_started_after_several_changes_starts_with_the_version_in_force(
    start_node: StartNode,
) -> None:
    engine = start_node()
    change(engine, max_batch=10)
    change(engine, max_batch=20, claim_max_wait_s=3.0)
    assert change(engine, dispatch_page=5) == 4
    view_caught_up(engine, "config")  # the late node reads the version from the view
    late = start_node(role="api")
    assert late.config.version == 4
    settings = late.settings_now()
    assert (settings.max_batch, settings.claim_max_wait_s, settings.dispatch_page) == (20, 3.0, 5)
    assert change(engine, max_batch=30) == 5
    wait_for(lambda: late.config.version == 5, timeout=1.0, what="the late node at version 5")
    assert late.settings_now().max_batch == 30


# -- what routing learned follows the alpha in force --------------------------------------


def run_one(node: Node, clock: FakeClock, bot: UUID, ok: bool, took: float) -> None:
    """One code task through ``bot`` (its only slot): assigned, started, and after
    ``took`` seconds succeeded or failed."""
    [submitted] = node.hive.tasks.submit([TaskSpec("code")], ALICE).items
    task_id = submitted.task.id
    task = wait_for(lambda: assigned(node.hive, [task_id]), what="the task assigned")[task_id]
    assert task.bot_id == bot
    who = Cause(f"bot:{bot}", "r")
    clock.advance(1.0)
    node.hive.tasks.start(bot, [Report(task_id, task.fencing_token)], who)
    clock.advance(took)
    outcome = Report(  # a failure for good: a retry would take the slot the next one needs
        task_id, task.fencing_token, "1" if ok else None, None if ok else "boom", retryable=False
    )
    node.hive.tasks.finish(bot, [outcome], who)


def folded(outcomes: list[tuple[bool, float, float]]) -> Performance | None:
    """What the outcomes (succeeded, seconds, alpha in force) teach, folded in order."""
    record = None
    for ok, took, alpha in outcomes:
        record = observe(record, ok, took if ok else None, alpha)
    return record


def caught_up(node: Node) -> None:
    view_caught_up(node, "performance")
    end = head(node)
    wait_for(lambda: node.performance.position >= end, what="the engine's copy caught up")


def test_what_routing_learned_takes_the_alpha_in_force_at_each_outcome(
    start_node: StartNode, clock: FakeClock, db_url: str
) -> None:
    node = start_node(bot_lease_ttl_s=60.0, crashes_fail=True)
    bot = register(node, "solo", slots=1)
    before = [(True, 2.0), (False, 0.5), (True, 4.0), (True, 1.0), (False, 1.0)]
    after = [(True, 3.0), (False, 1.0), (True, 1.0), (True, 5.0), (False, 2.0)]
    for ok, took in before:
        run_one(node, clock, bot, ok, took)
    change(node, "learn faster", routing_alpha=0.7)
    for ok, took in after:
        run_one(node, clock, bot, ok, took)
    caught_up(node)

    learned = learned_rows(db_url)
    assert learned == node.performance.snapshot()
    expected = folded([(ok, s, 0.2) for ok, s in before] + [(ok, s, 0.7) for ok, s in after])
    constant = folded([(ok, s, 0.2) for ok, s in before + after])
    assert expected is not None and constant is not None
    record = learned[bot, "code"]
    assert record.samples == len(before) + len(after)
    assert record.success == pytest.approx(expected.success)
    assert record.duration_s == pytest.approx(expected.duration_s)
    assert record.success != pytest.approx(constant.success)  # the alpha mattered
    assert record.duration_s != pytest.approx(constant.duration_s)
    assert rows(db_url, "bot_performance_alpha") == [(1, 0.7)]
    assert node.performance.alpha == 0.7

    kept, end = {t: rows(db_url, t) for t in PERFORMANCE_TABLES}, head(node)
    assert rebuild_views(db_url, Settings(), "performance")["performance"] >= end
    assert {t: rows(db_url, t) for t in PERFORMANCE_TABLES} == kept


def test_outcomes_from_before_the_first_config_version_count_with_the_environments_alpha(
    hive: Hive, start_node: StartNode, db_url: str
) -> None:
    """A hive whose log holds outcomes from before it had a config (made by an earlier
    release): the view and the engine's copy count them with APIARY_ROUTING_ALPHA, as the
    process that seeds the first version does, and agree with each other and a rebuild."""
    bot, _, _ = hive.fleet.register(
        name="old", capabilities=["code"], max_concurrency=1, version_label="v0", cause=ALICE
    )
    who = Cause(f"bot:{bot.id}", "r")
    for ok in (True, False, False, True, False):
        [submitted] = hive.tasks.submit([TaskSpec("code")], ALICE).items
        task_id = submitted.task.id
        hive.tasks.assign([Assignment(task_id, bot.id, {"policy": "test"})], ALICE)
        hive.tasks.start(bot.id, [Report(task_id, 1)], who)
        report = Report(task_id, 1, "1" if ok else None, None if ok else "boom")
        hive.tasks.finish(bot.id, [report], who)

    node = start_node(routing_alpha=0.5)
    assert Knobs.parse(node.hive.config.current().document).routing_alpha == 0.5
    caught_up(node)
    learned = learned_rows(db_url)
    assert learned == node.performance.snapshot()
    expected = folded([(ok, 0.0, 0.5) for ok in (True, False, False, True, False)])
    assert expected is not None
    assert learned[bot.id, "code"].success == pytest.approx(expected.success)
    kept = {t: rows(db_url, t) for t in PERFORMANCE_TABLES}
    rebuild_views(db_url, Settings(routing_alpha=0.5), "performance")
    assert {t: rows(db_url, t) for t in PERFORMANCE_TABLES} == kept
