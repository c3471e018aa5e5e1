"""Unroutable tasks on real PostgreSQL: one record flags many pending tasks in the tasks
view, the live index and each task's timeline; a log of the old per-task flags
(``Task.Unroutable``, stored exactly as the code before the records wrote it) reads as
it always did."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from uuid import UUID

import psycopg
import pytest
from eventsourcing.persistence import StoredEvent
from psycopg_pool import ConnectionPool

from api.bootstrap import rebuild_views
from api.settings import Settings
from domain.cause import Cause
from domain.hive import Hive, TaskSpec
from domain.policies.routing import Assignment
from runtime.live import LiveIndex
from store.history import History
from tests.integration.helpers import runner, snapshot

ALICE = Cause("alice", "req")
ENGINE = Cause.engine("dispatcher", "round-1")

# Exactly as the code before UnroutableTasks stored a task and its flag (captured from it).
OLD_TASK = UUID("6b9d1c2e-0a4f-4e2b-9d7c-3f1e5a8b7c60")
OLD_EVENTS = [
    (
        1,
        "domain.tasks:Task.Submitted",
        b'{"timestamp":{"_type_":"datetime_iso","_data_":"2030-01-01T00:00:00+00:00"},'
        b'"originator_topic":"domain.tasks:Task","actor":"alice","request_id":"req-1",'
        b'"type":"render","priority":5,"capabilities":["render"],"payload":"{}",'
        b'"idempotency_key":null,"not_before":null,"schedule_id":null,"class_version":2}',
    ),
    (
        2,
        "domain.tasks:Task.Unroutable",
        b'{"timestamp":{"_type_":"datetime_iso","_data_":"2030-01-01T00:00:00+00:00"},'
        b'"actor":"engine:dispatcher","request_id":"round-1",'
        b'"reason":"no ready or quarantined bot has render","missing":["render"]}',
    ),
]
OLD_FLAG = {
    "reason": "no ready or quarantined bot has render",
    "missing": ["render"],
    "at": "2030-01-01T00:00:00+00:00",
}


@pytest.fixture
def history(db_url: str, hive: Hive) -> Iterator[History]:
    with ConnectionPool(db_url, min_size=1, max_size=1, open=True) as pool:
        yield History(pool, hive.mapper)


def row(db_url: str, task_id: UUID) -> tuple[Any, ...]:
    with psycopg.connect(db_url) as conn:
        found = conn.execute(
            "SELECT state, unroutable, flagged_at FROM tasks_view WHERE task_id = %s", (task_id,)
        ).fetchone()
    assert found is not None
    return tuple(found)


def index_of(db_url: str, hive: Hive) -> LiveIndex:
    """A live index as a node starts one: from the view, then the log after it."""
    index = LiveIndex()
    with psycopg.connect(db_url) as conn:
        index.load(conn)
    head = hive.recorder.max_notification_id() or 0
    notes = hive.recorder.select_notifications(index.position, 1000, stop=head)
    index.follow([(n.id, hive.mapper.to_domain_event(n)) for n in notes], head)
    return index


def test_a_log_of_the_old_per_task_flags_reads_as_it_did(
    db_url: str, hive: Hive, history: History
) -> None:
    hive.recorder.insert_events(
        [StoredEvent(OLD_TASK, version, topic, state) for version, topic, state in OLD_EVENTS]
    )
    assert runner(db_url, hive, "tasks").catch_up() == hive.recorder.max_notification_id()
    assert row(db_url, OLD_TASK) == ("pending", OLD_FLAG, [])
    assert index_of(db_url, hive).tasks[OLD_TASK].unroutable
    assert [e.kind for e in history.of(OLD_TASK)] == ["Submitted", "Unroutable"]
    kept = snapshot(db_url)
    rebuild_views(db_url, Settings(), "tasks")
    assert snapshot(db_url) == kept


def test_one_record_flags_the_named_tasks_still_pending_where_it_stands(
    db_url: str, hive: Hive, history: History
) -> None:
    bot, _, _ = hive.fleet.register(
        name="r", capabilities=["render"], max_concurrency=1, version_label="v1", cause=ALICE
    )
    first, second, taken = (
        s.task.id for s in hive.tasks.submit([TaskSpec("render")] * 3, ALICE).items
    )
    hive.tasks.assign([Assignment(taken, bot.id, {})], ENGINE)  # no longer pending
    record = hive.tasks.mark_unroutable(
        ["render"], [first, second, taken], "no bot has render", ["render"], ENGINE
    )
    assert len(record.recorded) == 1  # one event, whatever the number of tasks
    where = record.position
    hive.tasks.assign([Assignment(second, bot.id, {"policy": "test"})], ENGINE)
    runner(db_url, hive, "tasks").catch_up()

    state, flag, flagged_at = row(db_url, first)
    assert (state, flagged_at) == ("pending", [where])
    assert flag["reason"] == "no bot has render" and flag["missing"] == ["render"]
    assert row(db_url, second)[:3] == ("assigned", None, [where])  # cleared, remembered
    assert row(db_url, taken) == ("assigned", None, [])  # was not pending there
    index = index_of(db_url, hive)
    assert index.tasks[first].unroutable and not index.tasks[second].unroutable

    timeline = history.at([where])
    assert [e.kind for e in timeline] == ["Unroutable"]
    assert timeline[0].fields["task_ids"] == [first, second, taken]
    kept = snapshot(db_url)
    rebuild_views(db_url, Settings(), "tasks")
    assert snapshot(db_url) == kept
