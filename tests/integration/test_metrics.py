"""``/metrics`` and ``/v1/metrics/stages`` on real PostgreSQL: what a scrape shows after
tasks ran on an injected clock, who may read it, and what a scrape costs at 100,000 tasks."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from psycopg_pool import ConnectionPool

from api.app import create_app
from api.bootstrap import Node, views
from api.metrics import HiveCollector, Scrape
from domain.cause import Cause
from domain.hive import Report, TaskSpec
from domain.keys import Role
from domain.policies.retry import RetryLimits
from projections.histogram import BOUNDS
from projections.metric_reads import MetricReads
from projections.stage_reads import StageReads
from tests.clock import FakeClock
from tests.integration.helpers import StartNode, held
from tests.waiting import wait_for

ALICE = Cause("alice", "req")


@pytest.fixture
def node(start_node: StartNode) -> Node:
    return start_node(bot_lease_ttl_s=60.0)


def run_tasks(node: Node) -> None:
    """Six code tasks run 2 s: three succeed, one fails for good, one fails and is retried,
    one fails and is dead-lettered (its submission allows one attempt); two wait at
    priority 7 for a writer."""
    clock: FakeClock = node.clock  # type: ignore[assignment]
    bot, _, _ = node.hive.fleet.register(
        name="coder", capabilities=["code"], max_concurrency=9, version_label="v1", cause=ALICE
    )
    node.liveness.renew(bot.id, 60)
    once = TaskSpec("code", retry=RetryLimits(max_attempts=1))
    specs = [TaskSpec("code")] * 5 + [once]
    ids = [s.task.id for s in node.hive.tasks.submit(specs, ALICE).items]
    node.hive.tasks.submit([TaskSpec("writing", priority=7)] * 2, ALICE)
    tasks = wait_for(lambda: held(node.hive, ids), what="the code tasks assigned")
    me = Cause(f"bot:{bot.id}", "r")
    clock.advance(0.25)
    node.hive.tasks.start(bot.id, [Report(t.id, t.fencing_token) for t in tasks], me)
    clock.advance(2.0)
    reports = [Report(t, 1, "1") for t in ids[:3]]
    failures = [
        Report(ids[3], 1, error="bad", error_kind="bad-input", retryable=False),
        Report(ids[4], 1, error="flaky", error_kind="io"),
        Report(ids[5], 1, error="flaky", error_kind="io"),
    ]
    node.hive.tasks.finish(bot.id, [*reports, *failures], me)


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def caught_up(client: TestClient, auth: dict[str, str]) -> dict[Any, float]:
    """A scrape once every view has applied the whole log (its lag is 0)."""
    got = samples(client.get("/metrics", headers=auth).text)
    lags = [v for (name, _), v in got.items() if name == "apiary_projection_lag_events"]
    return got if len(lags) == len(views()) and not any(lags) else {}


def test_a_scrape_shows_the_views(node: Node) -> None:
    run_tasks(node)
    client_key = node.hive.keys.issue("dash", Role.CLIENT, ALICE).token
    scraper_key = node.hive.keys.issue("prometheus", Role.CLIENT, ALICE).token
    enrolment_key = node.hive.keys.issue("enrol", Role.BOT, ALICE).token
    with TestClient(create_app(node.container())) as client:
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", headers={"Authorization": "Bearer nope"}).status_code == 401
        refused = client.get("/metrics", headers={"Authorization": f"Bearer {enrolment_key}"})
        assert refused.status_code == 403  # an enrolment key only enrols
        auth = {"Authorization": f"Bearer {scraper_key}"}
        got = wait_for(lambda: caught_up(client, auth), what="every view caught up")
        response = client.get("/metrics", headers=auth)
        assert response.headers["content-type"].startswith("text/plain")

        head = node.hive.recorder.max_notification_id()
        assert got["apiary_events_total", ()] == head
        assert got["apiary_tasks", (("state", "succeeded"), ("type", "code"))] == 3
        assert got["apiary_tasks", (("state", "failed"), ("type", "code"))] == 1
        assert got["apiary_tasks", (("state", "dead"), ("type", "code"))] == 1
        assert got["apiary_tasks", (("state", "pending"), ("type", "code"))] == 1  # retried
        assert got["apiary_tasks", (("state", "pending"), ("type", "writing"))] == 2
        io = (("error_kind", "io"), ("type", "code"))
        assert got["apiary_task_retries_total", io] == 1
        assert got["apiary_task_dead_letters_total", io] == 1
        assert not any(
            n == "apiary_task_retries_total" and ("error_kind", "bad-input") in k for n, k in got
        )  # a failure for good is neither
        assert got["apiary_queue_depth", (("priority", "7"), ("type", "writing"))] == 2
        assert got["apiary_bots", (("pool", ""), ("state", "ready"))] == 1
        assert got["apiary_projection_position", (("view", "stages"),)] == head
        run = (("attempt", "first"), ("stage", "start_done"), ("type", "code"))
        assert got["apiary_stage_seconds_count", run] == 6
        assert got["apiary_stage_seconds_sum", run] == pytest.approx(12.0)
        below, at = (("le", "1.47"), *run), (("le", "2.15"), *run)  # 2 s: in (1.47, 2.15]
        assert got["apiary_stage_seconds_bucket", tuple(sorted(below))] == 0
        assert got["apiary_stage_seconds_bucket", tuple(sorted(at))] == 6
        assert got["apiary_stage_seconds_bucket", tuple(sorted((("le", "+Inf"), *run)))] == 6

        stages_url = "/v1/metrics/stages?minutes=5"
        assert client.get(stages_url).status_code == 401
        enrolled = {"Authorization": f"Bearer {enrolment_key}"}
        assert client.get(stages_url, headers=enrolled).status_code == 403  # a client's read
        body = client.get(stages_url, headers={"Authorization": f"Bearer {client_key}"}).json()
    (code,) = body["items"]
    assert code["type"] == "code"
    assert set(code["stages"]) == {
        "submit_assign",
        "assign_start",
        "start_done",
        "end_to_end",
        "overhead",
    }
    start_done = code["stages"]["start_done"]
    assert start_done["count"] == 6 and start_done["sum_s"] == pytest.approx(12.0)
    assert code["retried"] == {}  # the retried task waits out its backoff: no second attempt
    assert code["stages"]["end_to_end"]["count"] == 5  # to each final outcome, not a retry
    assert 1.47 <= start_done["p50_s"] <= start_done["p95_s"] <= start_done["p99_s"] <= 2.15
    assert body["minutes"] == [
        {
            "type": "code",
            "minute": "2030-01-01T09:00:00Z",
            "succeeded": 3,
            "failed": 2,  # the dead letter too
            "e2e_mean_s": pytest.approx(2.25),
        }
    ]


FILL_TASKS = """
INSERT INTO tasks_view (task_id, type, priority, capabilities, state, payload, bot_id,
    submitted_by, submitted_at, finished_at, seq, version, position)
SELECT gen_random_uuid(), 'type' || (i %% 20), i %% 10, ARRAY['code'],
    (ARRAY['pending', 'assigned', 'running', 'succeeded', 'failed', 'cancelled'])[1 + i %% 6],
    '{}'::jsonb, NULL, 'alice', now(), NULL, i, 1, i
FROM generate_series(1, %s) AS i
"""
# The counts the tasks view keeps with its rows (filled directly too, to match them).
FILL_COUNTS = """
INSERT INTO task_counts (state, type, priority, n)
SELECT state, type, priority, count(*) FROM tasks_view GROUP BY state, type, priority
"""
FILL_HISTOGRAMS = """
INSERT INTO stage_histograms (type, stage, bucket, count)
SELECT 'type' || t, s, b, 1 + b FROM generate_series(0, 19) AS t,
    unnest(ARRAY['submit_assign', 'assign_start', 'start_done', 'end_to_end']) AS s,
    generate_series(0, %s) AS b;
INSERT INTO stage_totals (type, stage, count, sum_ms)
SELECT type, stage, sum(count), 1000 FROM stage_histograms GROUP BY type, stage;
"""


def test_a_scrape_at_100000_tasks_counts_every_one(db_url: str) -> None:
    """100,000 tasks of 20 types in six states, 80 stage histograms: the scrape counts
    them all from the counts the tasks view keeps (its speed is in ``make bench``)."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(FILL_TASKS, (100_000,))
        conn.execute(FILL_COUNTS)
        conn.execute(FILL_HISTOGRAMS.replace("%s", str(len(BOUNDS))))
    with ConnectionPool(db_url, min_size=1, max_size=1, kwargs={"autocommit": True}) as pool:
        text = Scrape(HiveCollector(MetricReads(pool), StageReads(pool), lambda: 100_000)).render()
    got = samples(text.decode())
    assert sum(v for (name, _), v in got.items() if name == "apiary_tasks") == 100_000
    assert got["apiary_tasks", (("state", "pending"), ("type", "type0"))] == 100_000 // 60
