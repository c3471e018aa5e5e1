"""Each bot's circuit breaker on real PostgreSQL, through a whole engine (views, live index,
the breaker's model and loop, the dispatcher) on a fake clock: a bot whose attempts keep
failing is quarantined with the evidence; after the cooldown it gets one probe; a failed
probe doubles the cooldown, a successful one reinstates it. The fleet view shows each step."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import UUID

import psycopg
import pytest

from api.bootstrap import Node
from domain.bots import Bot, BotState
from domain.cause import Cause
from domain.hive import Report, TaskSpec
from domain.tasks import Task
from tests.clock import FakeClock
from tests.integration.helpers import StartNode, change_config, view_caught_up
from tests.waiting import wait_for

ALICE = Cause("alice", "req")
BREAKER = {"consecutive_failures": 3, "cooldown_s": 30.0, "max_cooldown_s": 100.0}
RETRY = {"default": {"max_attempts": 3, "initial_backoff_s": 0.0, "max_backoff_s": 0.0}}


@pytest.fixture
def node(start_node: StartNode) -> Node:
    node = start_node(bot_lease_ttl_s=60.0, crashes_fail=True)
    change_config(node, ALICE, breaker=BREAKER, retry=RETRY)
    return node


def register(node: Node, slots: int) -> UUID:
    bot, _, _ = node.hive.fleet.register(
        name="flaky", capabilities=["code"], max_concurrency=slots, version_label="v1", cause=ALICE
    )
    node.liveness.renew(bot.id, 600)
    return bot.id


def report(node: Node, bot_id: UUID, *, ok: bool) -> int:
    """The bot reports every task it holds: done or failed (retryable); returns how many."""
    held = node.index.held_by(bot_id)
    tasks = node.hive.load_many(Task, held)
    reports = [
        Report(t, tasks[t].fencing_token, "1", ran_s=0.1)
        if ok
        else Report(t, tasks[t].fencing_token, error="segfault", ran_s=0.1, error_kind="crash")
        for t in held
    ]
    if reports:
        node.hive.tasks.finish(bot_id, reports, Cause(f"bot:{bot_id}", "r"))
    return len(reports)


def state(node: Node, bot_id: UUID, expected: BotState) -> Bot | None:
    bot = node.hive.load_many(Bot, [bot_id])[bot_id]
    return bot if bot.state is expected else None


def fleet_row(node: Node, bot_id: UUID) -> dict[str, Any]:
    view_caught_up(node, "fleet")
    with psycopg.connect(node.url) as conn:
        cur = conn.execute(
            "SELECT state, state_by, breaker, breaker_evidence, breaker_cooldown_s, "
            "breaker_probe_at, breaker_tripped_at FROM fleet_view WHERE bot_id = %s",
            (bot_id,),
        )
        names = [c.name for c in cur.description or ()]
        row = cur.fetchone()
    assert row is not None
    return dict(zip(names, row, strict=True))


def quarantines(node: Node, bot_id: UUID) -> list[Bot.Quarantined]:
    return [e for e in node.hive.history(bot_id) if isinstance(e, Bot.Quarantined)]


def test_a_failing_bot_is_quarantined_probed_doubled_and_reinstated(
    node: Node, clock: FakeClock
) -> None:
    bad = register(node, slots=3)
    node.hive.tasks.submit([TaskSpec("code")] * 30, ALICE)

    failed = 0
    while failed < BREAKER["consecutive_failures"]:
        wait_for(lambda: node.index.held_by(bad), what="tasks for the bot")
        failed += report(node, bad, ok=False)
    wait_for(lambda: state(node, bad, BotState.QUARANTINED), what="the breaker to trip")
    (tripped,) = quarantines(node, bad)
    assert tripped.actor == "engine:breaker" and tripped.cooldown_s == 30.0
    assert tripped.evidence is not None
    assert tripped.evidence["rule"] == "consecutive"
    assert tripped.evidence["consecutive_failures"] >= 3
    assert tripped.evidence["kinds"][-3:] == ["crash"] * 3
    row = fleet_row(node, bad)
    assert (row["state"], row["state_by"], row["breaker"]) == (
        "quarantined",
        "engine:breaker",
        "open",
    )
    assert row["breaker_evidence"] == tripped.evidence and row["breaker_cooldown_s"] == 30.0
    assert row["breaker_probe_at"] == tripped.timestamp + timedelta(seconds=30)
    report(node, bad, ok=False)  # what it held when it tripped: not counted, never retried here

    clock.advance(30)
    wait_for(lambda: state(node, bad, BotState.PROBING), what="the probe")
    assert fleet_row(node, bad)["breaker"] == "half-open"
    (probe,) = wait_for(lambda: node.index.held_by(bad), what="the probe task")
    assert report(node, bad, ok=False) == 1  # one task, though the bot has three slots
    wait_for(lambda: len(quarantines(node, bad)) == 2, what="the breaker to open again")
    assert quarantines(node, bad)[-1].cooldown_s == 60.0  # doubled
    ended = node.hive.history(probe)[-1]  # the probe's attempt ended as a failure
    assert isinstance(ended, Task.RetryScheduled | Task.DeadLettered) and ended.bot_id == bad
    assert fleet_row(node, bad)["breaker_cooldown_s"] == 60.0

    clock.advance(60)
    wait_for(lambda: state(node, bad, BotState.PROBING), what="the second probe")
    wait_for(lambda: node.index.held_by(bad), what="the second probe task")
    assert report(node, bad, ok=True) == 1
    reinstated = wait_for(lambda: state(node, bad, BotState.READY), what="the bot reinstated")
    assert reinstated is not None and reinstated.cooldown_s is None
    row = fleet_row(node, bad)
    assert (row["state"], row["breaker"]) == ("ready", "closed")
    assert row["breaker_evidence"]["rule"] == "probe"  # the last trip's, kept to be read
    wait_for(lambda: len(node.index.held_by(bad)) == 3, what="all its slots again")
