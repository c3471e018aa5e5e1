"""The profiler's process measures on real PostgreSQL: an api and an engine process count
their HTTP routes, loop rounds, saves and view pages per minute, report their resources on
their beat, and any process reads both over a window (``/v1/processes/timings``); each
process's ``/metrics`` carries its own."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from uuid import UUID, uuid4

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from api.app import create_app
from api.bootstrap import Node
from domain.cause import Cause
from domain.keys import Role
from projections.process_stats import ProcessWindow, TimingsWindow
from tests.integration.helpers import StartNode, held
from tests.waiting import wait_for

ALICE = Cause("alice", "req")


@pytest.fixture
def nodes(start_node: StartNode) -> Iterator[tuple[Node, Node]]:
    engine = start_node(role="engine", real_time=True, bot_lease_ttl_s=60.0)
    api = start_node(role="api", real_time=True, bot_lease_ttl_s=60.0)
    yield api, engine


def traffic(api: Node, engine: Node, client: TestClient, auth: dict[str, str]) -> None:
    """Three task lists, one miss, two submissions over HTTP; a bot the engine's
    dispatcher assigns them to."""
    bot, _, _ = engine.hive.fleet.register(
        name="coder", capabilities=["code"], max_concurrency=4, version_label="v1", cause=ALICE
    )
    engine.liveness.renew(bot.id, 60)
    for _ in range(3):
        assert client.get("/v1/tasks", headers=auth).status_code == 200
    assert client.get(f"/v1/tasks/{uuid4()}", headers=auth).status_code == 404
    ids = []
    for _ in range(2):
        answer = client.post("/v1/tasks", json={"type": "code"}, headers=auth)
        assert answer.status_code in (201, 202), answer.text
        ids.append(UUID(answer.json()["id"]))
    wait_for(lambda: held(engine.hive, ids), what="the tasks assigned")


def window_of(api: Node, engine: Node) -> TimingsWindow | None:
    """Both processes' minutes written (as their beat does), read from the api's side,
    once the engine's view has applied the submissions."""
    for node in (api, engine):
        node.record_minutes()
    window = api.process_stats.window(300)
    by_role = {p.role: p for p in window.processes}
    engine_side = by_role.get("engine")
    if set(by_role) != {"api", "engine"} or engine_side is None:
        return None
    if "view:tasks" not in engine_side.timings or window.lags.get("tasks", 1) != 0:
        return None
    return window


def test_two_processes_report_their_timings_and_resources(nodes: tuple[Node, Node]) -> None:
    api, engine = nodes
    token = api.hive.keys.issue("reader", Role.CLIENT, ALICE).token
    auth = {"Authorization": f"Bearer {token}"}
    with TestClient(create_app(api.container())) as client:
        traffic(api, engine, client, auth)
        window = wait_for(lambda: window_of(api, engine), what="both processes' minutes")
        assert window is not None
        by_role: dict[str, ProcessWindow] = {p.role: p for p in window.processes}
        served = by_role["api"].timings
        assert served["http:GET /v1/tasks:2xx"].count == 3
        assert served["http:GET /v1/tasks/{task_id}:4xx"].count == 1
        assert served["http:POST /v1/tasks:2xx"].count == 2
        assert served["save"].count >= 2 and served["save"].items >= 2  # the submissions
        assert not any(name.startswith(("loop:", "view:")) for name in served)  # engine's

        ran = by_role["engine"].timings
        dispatcher = ran["loop:dispatcher"]
        assert dispatcher.busy >= 1 and dispatcher.items >= 2  # it assigned both tasks
        assert dispatcher.count >= dispatcher.busy
        assert 0 <= dispatcher.cpu_s <= dispatcher.sum_s * 1.5 + 0.01  # its thread's CPU
        assert ran["loop:reaper"].count >= 1
        assert ran["save"].count >= 1  # the dispatch round, the bot's registration
        assert ran["view:tasks"].items >= 2
        assert not any(name.startswith("http:") for name in ran)
        assert window.hive["save"].count == served["save"].count + ran["save"].count
        p50, p99 = window.hive["save"].p50, window.hive["save"].p99
        assert p50 is not None and p99 is not None and 0 < p50 <= p99

        for p in window.processes:
            r = p.resources
            assert r is not None
            assert r.rss_bytes > 10 * 2**20 and r.threads >= 3 and r.cpu_s > 0
            assert {u.name for u in r.pools} == {"reads", "log"}
            assert r.connections >= 1

        body = client.get("/v1/processes/timings?window=5m", headers=auth).json()
        assert {p["role"] for p in body["processes"]} == {"api", "engine"}
        hive = {t["name"]: t for t in body["hive"]}
        assert hive["http:GET /v1/tasks:2xx"]["count"] >= 3
        assert hive["loop:dispatcher"]["p99_s"] >= hive["loop:dispatcher"]["p50_s"]
        assert body["lags"]["tasks"] >= 0
        for bad in ("5s", "2h", "soon"):
            refused = client.get(f"/v1/processes/timings?window={bad}", headers=auth)
            assert refused.status_code == 422
            assert refused.headers["content-type"] == "application/problem+json"
            assert refused.json()["errors"][0]["loc"] == ["query", "window"]
        assert client.get("/v1/processes/timings").status_code == 401

        listed = client.get("/v1/processes", headers=auth).json()["items"]
        assert all(p["resources"]["pools"] for p in listed) and len(listed) == 2


def families(text: str) -> dict[str, Any]:
    return {f.name: f for f in text_string_to_metric_families(text)}


def test_each_process_metrics_show_its_own_timings(nodes: tuple[Node, Node]) -> None:
    api, engine = nodes
    token = api.hive.keys.issue("prometheus", Role.CLIENT, ALICE).token
    auth = {"Authorization": f"Bearer {token}"}
    with (
        TestClient(create_app(api.container())) as at_api,
        TestClient(create_app(engine.container())) as at_engine,
    ):
        traffic(api, engine, at_api, auth)
        for node in (api, engine):
            node.beat()  # its resources sampled
        served = families(at_api.get("/metrics", headers=auth).text)
        http = served["apiary_http_request_seconds"]
        counts = {
            (s.labels["method"], s.labels["route"], s.labels["status"]): s.value
            for s in http.samples
            if s.name.endswith("_count")
        }
        assert counts[("GET", "/v1/tasks", "2xx")] == 3
        assert counts[("GET", "/v1/tasks/{task_id}", "4xx")] == 1
        assert served["apiary_process_resident_memory_bytes"].samples[0].value > 0
        pools = {s.labels["pool"] for s in served["apiary_pool_connections"].samples}
        assert pools == {"reads", "log"}
        assert "apiary_loop_round_seconds" in served  # the family, empty in an api process
        assert not served["apiary_loop_round_seconds"].samples

        scraped = wait_for(lambda: _with_view(at_engine, auth), what="a view page")
        assert scraped is not None
        ran = families(scraped)
        loops = {
            s.labels["loop"]
            for s in ran["apiary_loop_round_seconds"].samples
            if s.name.endswith("_count")
        }
        assert {"dispatcher", "reaper"} <= loops
        items = {s.labels["loop"]: s.value for s in ran["apiary_loop_items"].samples}
        assert items["dispatcher"] >= 2
        assert [s.value for s in ran["apiary_save_seconds"].samples if s.name.endswith("_count")]


def _with_view(client: TestClient, auth: dict[str, str]) -> str | None:
    text = client.get("/metrics", headers=auth).text
    return text if 'apiary_view_apply_seconds_count{view="tasks"}' in text else None
