"""A task's attempts read back on real PostgreSQL: ``GET /v1/tasks/{id}`` shows them from
the log beside the view's row, the list filters dead letters by kind and finish time, and a
log written before retries (``Task.Submitted`` v2, ``Task.Failed`` v2, a bot lost after the
start as ``LeaseExpired``; stored exactly as that code wrote them) still replays into the
aggregate, the tasks view rebuilt from zero and the API."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import UUID

import psycopg
import pytest
from eventsourcing.persistence import StoredEvent
from fastapi.testclient import TestClient

from api.app import create_app
from api.bootstrap import Node, rebuild_views
from api.settings import Settings
from domain.cause import Cause
from domain.hive import Report, TaskSpec
from domain.keys import Role
from domain.policies.retry import RetryLimits
from domain.tasks import Task, TaskState
from tests.clock import T0
from tests.integration.helpers import StartNode, held, snapshot
from tests.waiting import wait_for

ALICE = Cause("alice", "req")
TASKS_TABLES = ("tasks_view", "task_counts", "retry_counts")


def ts(seconds: int) -> bytes:
    return b'{"_type_":"datetime_iso","_data_":"2030-01-01T00:00:%02d+00:00"}' % seconds


def uuid(hex_: str) -> bytes:
    return b'{"_type_":"uuid_hex","_data_":"%s"}' % hex_.encode()


B1, B2 = "0b0b0b0b000040008000000000000001", "0b0b0b0b000040008000000000000002"
OLD_TASK = UUID("6b9d1c2e-0a4f-4e2b-9d7c-3f1e5a8b7c61")
# A task as the code before retries stored it: submitted (v2: no retry limits), assigned,
# started, its bot lost (back to pending), assigned again, started, failed (v2: no kind).
OLD_EVENTS = [
    (
        "Submitted",
        b'{"timestamp":' + ts(0) + b',"originator_topic":"domain.tasks:Task","actor":"alice",'
        b'"request_id":"req-1","type":"render","priority":5,"capabilities":["render"],'
        b'"payload":"{}","idempotency_key":null,"not_before":null,"schedule_id":null,'
        b'"class_version":2}',
    ),
    (
        "Assigned",
        b'{"timestamp":' + ts(1) + b',"actor":"engine:dispatcher","request_id":"round-1",'
        b'"bot_id":' + uuid(B1) + b',"fencing_token":1,"why":{"policy":"test"},'
        b'"round_id":null,"class_version":2}',
    ),
    (
        "Started",
        b'{"timestamp":' + ts(2) + b',"actor":"bot:b1","request_id":"r-1","fencing_token":1}',
    ),
    (
        "LeaseExpired",
        b'{"timestamp":' + ts(7) + b',"actor":"engine:reaper","request_id":"r-2",'
        b'"bot_id":' + uuid(B1) + b',"reason":"bot lost: silent past its lease"}',
    ),
    (
        "Assigned",
        b'{"timestamp":' + ts(8) + b',"actor":"engine:dispatcher","request_id":"round-1",'
        b'"bot_id":' + uuid(B2) + b',"fencing_token":2,"why":{"policy":"test"},'
        b'"round_id":null,"class_version":2}',
    ),
    (
        "Started",
        b'{"timestamp":' + ts(9) + b',"actor":"bot:b2","request_id":"r-3","fencing_token":2}',
    ),
    (
        "Failed",
        b'{"timestamp":' + ts(11) + b',"actor":"bot:b2","request_id":"r-4","fencing_token":2,'
        b'"error":"boom","ran_s":null,"class_version":2}',
    ),
]


@pytest.fixture
def node(start_node: StartNode) -> Node:
    return start_node(bot_lease_ttl_s=60.0)


def client_of(node: Node) -> tuple[TestClient, dict[str, str]]:
    token = node.hive.keys.issue("reader", Role.CLIENT, ALICE).token
    return TestClient(create_app(node.container())), {"Authorization": f"Bearer {token}"}


def tasks_tables(url: str) -> dict[str, list[tuple[Any, ...]]]:
    return {t: rows for t, rows in snapshot(url).items() if t in TASKS_TABLES}


def read(client: TestClient, auth: dict[str, str], url: str, head: int) -> Any:
    answer = client.get(url, params={"min_position": head}, headers=auth)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_an_old_log_replays_into_the_aggregate_the_view_and_the_api(node: Node) -> None:
    node.hive.recorder.insert_events(
        [
            StoredEvent(OLD_TASK, version, f"domain.tasks:Task.{kind}", state)
            for version, (kind, state) in enumerate(OLD_EVENTS, start=1)
        ]
    )
    task = node.hive.get(Task, OLD_TASK)
    assert (task.state, task.error, task.error_kind) == (TaskState.FAILED, "boom", None)
    assert (task.attempt, task.series, task.retry, task.limits) == (1, 1, None, None)

    head = node.hive.recorder.max_notification_id() or 0
    client, auth = client_of(node)
    with client:
        got = read(client, auth, f"/v1/tasks/{OLD_TASK}", head)
    assert (got["state"], got["error"], got["error_kind"]) == ("failed", "boom", None)
    assert (got["attempt"], got["series"], got["limits"], got["retry_at"]) == (1, 1, None, None)
    assert [
        (a["outcome"], a["bot_id"], a["started_at"], a["ended_at"]) for a in got["attempts"]
    ] == [
        ("lost", str(UUID(B1)), "2030-01-01T00:00:02Z", "2030-01-01T00:00:07Z"),
        ("failed", str(UUID(B2)), "2030-01-01T00:00:09Z", "2030-01-01T00:00:11Z"),
    ]

    kept = tasks_tables(node.url)
    assert kept["tasks_view"] and kept["task_counts"]
    rebuild_views(node.url, Settings(), "tasks")  # from zero: the same rows
    assert tasks_tables(node.url) == kept


def test_a_task_s_attempts_and_the_dead_letters_list(node: Node) -> None:
    """Two tasks fail their first attempt: one is retried (the default policy), one
    dead-lettered (its submission allows one attempt)."""
    bot, _, _ = node.hive.fleet.register(
        name="r", capabilities=["render"], max_concurrency=2, version_label="v1", cause=ALICE
    )
    node.liveness.renew(bot.id, 60)
    once = RetryLimits(max_attempts=1, timeout_s=30.0)
    retried, dead = (
        s.task.id
        for s in node.hive.tasks.submit(
            [TaskSpec("render"), TaskSpec("render", retry=once)], ALICE
        ).items
    )
    wait_for(lambda: held(node.hive, [retried, dead]), what="both assigned")
    me = Cause(f"bot:{bot.id}", "r")
    node.hive.tasks.start(bot.id, [Report(retried, 1), Report(dead, 1)], me)
    node.clock.advance(2.0)  # type: ignore[attr-defined]
    fails = [Report(t, 1, error="disk full", error_kind="io") for t in (retried, dead)]
    done = node.hive.tasks.finish(bot.id, fails, me)
    head = done.position or 0

    client, auth = client_of(node)
    with client:
        again = read(client, auth, f"/v1/tasks/{retried}", head)
        gone = read(client, auth, f"/v1/tasks/{dead}", head)
        listed = client.get("/v1/tasks?state=dead&error_kind=io", headers=auth).json()
        since = (T0 + timedelta(seconds=1)).isoformat()
        finished = client.get("/v1/tasks", params={"finished_since": since}, headers=auth).json()
        later = client.get(
            "/v1/tasks",
            params={"finished_since": (T0 + timedelta(hours=1)).isoformat()},
            headers=auth,
        ).json()
        wrong = client.get("/v1/tasks?error_kinds=io", headers=auth)
        bad_time = client.get("/v1/tasks?finished_until=yesterday", headers=auth)

    assert (again["state"], again["attempt"], again["error_kind"]) == ("pending", 2, "io")
    assert again["retry_at"] is not None and again["retry_at"] > "2030-01-01T09:00:02Z"
    [first] = again["attempts"]
    assert (first["series"], first["attempt"], first["outcome"]) == (1, 1, "failed")
    assert (first["error"], first["error_kind"]) == ("disk full", "io")

    assert (gone["state"], gone["dead_reason"]) == ("dead", "attempts exhausted: 1 of 1")
    assert gone["limits"] == {"max_attempts": 1, "timeout_s": 30.0}
    assert gone["retry_at"] is None and len(gone["attempts"]) == 1

    assert [t["id"] for t in listed["items"]] == [str(dead)]
    assert listed["items"][0]["dead_reason"] == "attempts exhausted: 1 of 1"
    assert [t["id"] for t in finished["items"]] == [str(dead)]  # the retried one is not
    assert later["items"] == []
    assert wrong.status_code == 422 and bad_time.status_code == 422
    with psycopg.connect(node.url) as conn:
        counted = conn.execute("SELECT * FROM retry_counts").fetchall()
    assert counted == [("render", "io", 1, 1)]
