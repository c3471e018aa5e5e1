"""The incident detector on real PostgreSQL, through a whole engine (the views, the live
index, the detector's model and loop, the dispatcher) on a fake clock: failures on three
bots open one cascade citing their events by position; the API lists, shows, acknowledges
and resolves it; quiet resolves it; ``/metrics`` counts it. And two engines opening the
same episode collide on the log's key: one opens it, the other updates it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.utils import get_topic
from fastapi.testclient import TestClient

from api.app import create_app
from api.bootstrap import Node, rebuild_views
from api.dashboard.csrf import TOKEN_HEADER, token_for
from api.dashboard.session import COOKIE
from api.settings import Settings
from domain.cause import Cause
from domain.hive import Hive, Report, TaskSpec
from domain.incidents import Finding, Incident, incident_id
from domain.keys import Role
from domain.tasks import Task
from tests.clock import FakeClock
from tests.integration.helpers import StartNode, change_config, hive_on, runner, snapshot
from tests.waiting import wait_for

ALICE = Cause("alice", "req")
RETRY = {"default": {"max_attempts": 5, "initial_backoff_s": 0.0, "max_backoff_s": 0.0}}
INCIDENTS = {"window_s": 60.0, "quiet_s": 30.0, "update_every_s": 1.0}
TYPES = ("a", "b", "c")


@pytest.fixture
def node(start_node: StartNode) -> Node:
    node = start_node(bot_lease_ttl_s=60.0, crashes_fail=True)
    change_config(node, ALICE, retry=RETRY, incidents=INCIDENTS)
    return node


@pytest.fixture
def keys(node: Node) -> dict[str, str]:
    return {
        "admin": node.hive.keys.issue("ops", Role.ADMIN, ALICE).token,
        "client": node.hive.keys.issue("app", Role.CLIENT, ALICE).token,
    }


@pytest.fixture
def api(node: Node, keys: dict[str, str]) -> Iterator[TestClient]:
    with TestClient(create_app(node.container())) as client:
        client.headers["Authorization"] = f"Bearer {keys['admin']}"
        yield client


def fail_on_three_bots(node: Node) -> list[UUID]:
    """A bot per type, a task each; each bot's attempt fails. Returns the failed tasks."""
    bots = []
    for type_ in TYPES:
        bot, _, _ = node.hive.fleet.register(
            name=type_, capabilities=[type_], max_concurrency=1, version_label="v1", cause=ALICE
        )
        node.liveness.renew(bot.id, 600)
        bots.append(bot.id)
    tasks = [s.task.id for s in node.hive.tasks.submit([TaskSpec(t) for t in TYPES], ALICE).items]
    for bot in bots:
        [task_id] = wait_for(lambda b=bot: node.index.held_by(b), what="the bot's task")
        task = node.hive.get(Task, task_id)
        failure = Report(task_id, task.fencing_token, error="segfault", ran_s=0.1)
        node.hive.tasks.finish(bot, [failure], Cause(f"bot:{bot}", "r"))
    return tasks


def the_incident(api: TestClient, **params: Any) -> dict[str, Any] | None:
    response = api.get("/v1/incidents", params=params)
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    return items[0] if items else None


def test_a_cascade_opens_citing_its_events_is_acknowledged_and_resolves_when_quiet(
    node: Node, api: TestClient, keys: dict[str, str], clock: FakeClock
) -> None:
    failed = fail_on_three_bots(node)
    listed = wait_for(lambda: the_incident(api, rule="cascade"), what="a cascade incident")
    assert (listed["subject"], listed["severity"], listed["state"]) == ("hive", "critical", "open")
    assert listed["id"] == str(incident_id("cascade", "hive", 1))

    detail = api.get(f"/v1/incidents/{listed['id']}").json()
    retried = {
        n.id: n
        for n in node.hive.recorder.select_notifications(
            1, 1000, topics=[get_topic(Task.RetryScheduled)]
        )
    }
    assert {e["aggregate_id"] for e in detail["evidence"]} == {str(t) for t in failed}
    for item in detail["evidence"]:  # each cites its event: position, id and version
        stored = retried[item["position"]]
        assert str(stored.originator_id) == item["aggregate_id"]
        assert stored.originator_version == item["version"]
        assert item["event"] == "Task.RetryScheduled" and item["task_type"] in TYPES
    assert detail["timeline"][0]["event"] == "opened"
    assert detail["timeline"][0]["actor"] == "engine:incidents"

    as_client = {"Authorization": f"Bearer {keys['client']}"}
    refused = api.post(f"/v1/incidents/{listed['id']}/ack", json={"note": "x"}, headers=as_client)
    assert refused.status_code == 403
    assert api.post(f"/v1/incidents/{listed['id']}/ack", json={}).status_code == 422
    acked = api.post(f"/v1/incidents/{listed['id']}/ack", json={"note": "on it"})
    assert acked.status_code == 200, acked.text
    body = acked.json()  # read after the view applied it
    assert body["state"] == "acknowledged" and body["note"] == "on it"
    assert [t["event"] for t in body["timeline"]][-1] == "acknowledged"
    assert api.post(f"/v1/incidents/{listed['id']}/ack", json={"note": "2"}).status_code == 409

    clock.advance(INCIDENTS["window_s"] + INCIDENTS["quiet_s"] + 1)  # nothing fails any more
    resolved = wait_for(
        lambda: the_incident(api, rule="cascade", state="resolved"), what="the quiet cascade"
    )
    assert resolved["resolved_by"] == "engine:incidents"
    assert resolved["resolution"].startswith("quiet for")
    assert node.hive.get(Incident, UUID(resolved["id"])).resolved

    metrics = api.get("/metrics").text
    assert 'apiary_incidents{rule="cascade",severity="critical",state="resolved"} 1.0' in metrics
    assert 'apiary_incidents_opened_total{rule="cascade"} 1.0' in metrics


def test_an_operator_resolves_by_hand_with_a_reason(node: Node, api: TestClient) -> None:
    fail_on_three_bots(node)
    listed = wait_for(lambda: the_incident(api, rule="cascade"), what="a cascade incident")
    url = f"/v1/incidents/{listed['id']}/resolve"
    assert api.post(url, json={"reason": ""}).status_code == 422
    done = api.post(url, json={"reason": "the bots' host was rebooted"})
    assert done.status_code == 200, done.text
    assert done.json()["state"] == "resolved"
    assert done.json()["resolution"] == "the bots' host was rebooted"
    again = api.post(url, json={"reason": "twice"})
    assert again.status_code == 409
    assert again.headers["content-type"] == "application/problem+json"
    missing = api.post(
        f"/v1/incidents/{incident_id('cascade', 'hive', 99)}/resolve", json={"reason": "x"}
    )
    assert missing.status_code == 404
    assert api.get("/v1/incidents", params={"rule": "nope"}).status_code == 422
    page = api.get("/v1/incidents", params={"limit": 1, "state": "resolved"}).json()
    assert [i["id"] for i in page["items"]] == [listed["id"]]


class Interleaving:
    """A second engine's clock: read when its command decides, after it found no
    incident. The first time, the first engine opens the same episode just then (a
    port we own, so the race is the same every run)."""

    def __init__(self, clock: FakeClock, first: Hive, finding: Finding) -> None:
        self.clock, self.first, self.finding = clock, first, finding
        self.raced = False

    def __call__(self) -> Any:
        if not self.raced:
            self.raced = True
            self.first.incidents.report(self.finding, 1, Cause("engine:incidents", "first"))
        return self.clock()


def test_two_engines_opening_one_episode_collide_and_the_second_updates_it(
    db_url: str, clock: FakeClock
) -> None:
    lost = Finding("bots-lost", "fleet", "warning", "2 bots lost", ({"position": 1},), 2)
    more = Finding("bots-lost", "fleet", "critical", "9 bots lost", ({"position": 7},), 9)
    first, second = hive_on(db_url), hive_on(db_url)
    try:
        second.clock = Interleaving(clock, first, lost)
        committed = second.incidents.report(more, 1, Cause("engine:incidents", "second"))
        assert second.clock.raced
        key = incident_id("bots-lost", "fleet", 1)
        history = [type(e).__name__ for e in first.history(key)]
        assert history == ["Opened", "Escalated", "Updated"]  # one opened, one updated
        [incident] = committed.items
        assert incident.id == key and incident.severity == "critical" and incident.total == 9
        assert [e["position"] for e in incident.evidence] == [1, 7]
    finally:
        first.close()
        second.close()


SAME_SITE = {"Origin": "http://testserver"}  # what a browser on the dashboard's page sends


def signed_in(api: TestClient, key: str) -> dict[str, str]:
    """Signs ``api`` in to the dashboard with ``key``; returns an action's headers."""
    api.cookies.clear()
    r = api.post("/dashboard/session", json={"key": key}, headers=SAME_SITE)
    assert r.status_code == 200, r.text
    return {**SAME_SITE, TOKEN_HEADER: token_for(api.cookies[COOKIE])}


def test_the_dashboard_lists_shows_and_acknowledges_an_incident(
    node: Node, api: TestClient, keys: dict[str, str]
) -> None:
    fail_on_three_bots(node)
    listed = wait_for(lambda: the_incident(api, rule="cascade"), what="a cascade incident")
    del api.headers["Authorization"]  # the dashboard's session, not a bearer key

    as_client = signed_in(api, keys["client"])
    page = api.get("/dashboard/incidents", params={"state": "open"})
    assert page.status_code == 200 and 'href="/dashboard/incidents"' in page.text
    data = api.get("/dashboard/data/incidents", params={"rule": "cascade"}).json()
    assert [i["id"] for i in data["items"]] == [listed["id"]]
    detail = api.get(f"/dashboard/data/incidents/{listed['id']}").json()
    assert {e["event"] for e in detail["evidence"]} == {"Task.RetryScheduled"}
    ack = f"/dashboard/actions/incidents/{listed['id']}/ack"
    assert api.post(ack, json={"reason": "mine"}, headers=as_client).status_code == 403

    as_admin = signed_in(api, keys["admin"])
    assert api.post(ack, json={"reason": "no token"}, headers=SAME_SITE).status_code == 403
    assert api.post(ack, json={}, headers=as_admin).status_code == 422  # a note is needed
    done = api.post(ack, json={"reason": "looking at the hosts"}, headers=as_admin)
    assert done.status_code == 200, done.text
    assert done.json()["state"] == "acknowledged" and done.json()["note"] == "looking at the hosts"
    resolve = f"/dashboard/actions/incidents/{listed['id']}/resolve"
    assert api.post(resolve, json={"reason": "rebooted"}, headers=as_admin).json()["state"] == (
        "resolved"
    )
    assert api.get(f"/dashboard/incidents/{listed['id']}").status_code == 200


def test_the_incidents_view_built_in_small_pages_equals_a_rebuild(db_url: str) -> None:
    hive = hive_on(db_url)
    try:
        engine, ops = Cause("engine:incidents", "r"), Cause("ops", "r")
        first = hive.incidents.report(
            Finding("cascade", "hive", "critical", "3 bots", ({"position": 3},), 3), 1, engine
        ).items[0]
        hive.incidents.report(
            Finding("cascade", "hive", "critical", "4 bots", ({"position": 9},), 4), 1, engine
        )
        hive.incidents.acknowledge(first.id, "on it", ops)
        hive.incidents.settle(first.id, "quiet for 120 s", engine)
        hive.incidents.report(Finding("view-lag", "tasks", "warning", "behind"), 1, engine)
        runner(db_url, hive, "incidents", page=2).catch_up()
        before = {t: rows for t, rows in snapshot(db_url).items() if "incident" in t}
        rebuild_views(db_url, Settings(), "incidents")
        after = {t: rows for t, rows in snapshot(db_url).items() if "incident" in t}
        assert before == after and len(before["incident_timeline"]) == 5
    finally:
        hive.close()
