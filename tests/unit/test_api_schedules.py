"""The schedules endpoints (docs/http-api.md), through ``create_app`` with a real Hive."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import pytest

from tests.unit.test_api_contract import World, assert_problem

NIGHTLY = {
    "name": "nightly-report",
    "cron": "30 2 * * *",
    "timezone": "Europe/Berlin",
    "template": {"type": "report", "priority": 7, "payload": {"kind": "daily"}},
    "overlap": "buffer_one",
    "catchup": "run_all",
    "catchup_limit": 3,
}


def create(world: World, body: dict[str, Any], who: str = "client") -> dict[str, Any]:
    response = world.client.post("/v1/schedules", json=body, headers=world.auth(who))
    assert response.status_code == 201, response.text
    assert response.headers["Location"] == f"/v1/schedules/{response.json()['id']}"
    created: dict[str, Any] = response.json()
    return created


def test_create_then_read_and_list(world: World) -> None:
    created = create(world, NIGHTLY)
    assert created["state"] == "active" and created["created_by"] == "alice"
    assert created["template"] == {
        "type": "report",
        "priority": 7,
        "capabilities": ["report"],
        "payload": {"kind": "daily"},
    }
    assert created["next_tick"].endswith("+00:00") or created["next_tick"].endswith("Z")
    got = world.client.get(
        f"/v1/schedules/{created['id']}?min_position={created['position']}",
        headers=world.auth("client"),
    )
    assert got.status_code == 200 and got.json()["cron"] == "30 2 * * *"
    assert got.json()["next_tick"] == created["next_tick"]
    every = create(world, {"name": "poll", "every_s": 30, "template": {"type": "noop"}})
    listed = world.client.get("/v1/schedules?limit=1", headers=world.auth("admin"))
    assert listed.status_code == 200
    assert [s["id"] for s in listed.json()["items"]] == [created["id"]]
    rest = world.client.get(
        f"/v1/schedules?cursor={listed.json()['next_cursor']}", headers=world.auth("client")
    )
    assert [s["id"] for s in rest.json()["items"]] == [every["id"]]


def test_pause_resume_delete_and_409_after_delete(world: World) -> None:
    schedule = create(world, NIGHTLY)
    path = f"/v1/schedules/{schedule['id']}"
    paused = world.client.post(f"{path}/pause", headers=world.auth("client"))
    assert paused.status_code == 200 and paused.json()["state"] == "paused"
    assert paused.json()["next_tick"] is None
    assert_problem(
        world.client.post(f"{path}/pause", headers=world.auth("client")), 409, "invalid-transition"
    )
    resumed = world.client.post(f"{path}/resume", headers=world.auth("admin"))
    assert resumed.status_code == 200 and resumed.json()["state"] == "active"
    deleted = world.client.delete(path, headers=world.auth("client"))
    assert deleted.status_code == 200 and deleted.json()["state"] == "deleted"
    before = world.persisted()
    for method, suffix in (("post", "/pause"), ("post", "/resume"), ("delete", "")):
        response = getattr(world.client, method)(f"{path}{suffix}", headers=world.auth("client"))
        assert_problem(response, 409, "invalid-transition")
    assert world.persisted() == before


def test_unknown_schedule_is_404(world: World) -> None:
    path = f"/v1/schedules/{uuid4()}"
    assert_problem(world.client.get(path, headers=world.auth("client")), 404, "not-found")
    assert_problem(
        world.client.post(f"{path}/pause", headers=world.auth("client")), 404, "not-found"
    )
    assert_problem(world.client.delete(path, headers=world.auth("client")), 404, "not-found")


def test_only_clients_and_admins_change_schedules(world: World) -> None:
    response = world.client.post("/v1/schedules", json=NIGHTLY, headers=world.auth("enrol"))
    assert_problem(response, 403, "forbidden")
    assert_problem(world.client.get("/v1/schedules"), 401, "unauthorized")


@pytest.mark.parametrize(
    ("change", "detail"),
    [
        ({"cron": "61 2 * * *"}, "bad minute field"),
        ({"cron": "30 2 * *"}, "5 fields"),
        ({"cron": "30 2 31 2 *"}, "bad day-of-month field"),
        ({"timezone": "Europe/Atlantis"}, "unknown time zone"),
    ],
)
def test_invalid_cron_or_zone_is_422_saying_what_is_wrong(
    world: World, change: dict[str, Any], detail: str
) -> None:
    before = world.persisted()
    response = world.client.post(
        "/v1/schedules", json={**NIGHTLY, **change}, headers=world.auth("client")
    )
    assert detail in assert_problem(response, 422, "invalid-input")["detail"]
    assert world.persisted() == before


@pytest.mark.parametrize(
    ("change", "loc"),
    [
        ({"cron": None}, ["body"]),  # neither trigger
        ({"every_s": 60}, ["body"]),  # both
        ({"cron": None, "timezone": None, "every_s": 0}, ["body", "every_s"]),
        ({"cron": None, "timezone": None, "every_s": 31_622_401}, ["body", "every_s"]),
        ({"cron": None, "timezone": None, "every_s": "60"}, ["body", "every_s"]),
        ({"cron": None, "every_s": 60}, ["body"]),  # a time zone for an interval
        ({"catchup_limit": 0}, ["body", "catchup_limit"]),
        ({"catchup_limit": 1001}, ["body", "catchup_limit"]),
        ({"overlap": "queue"}, ["body", "overlap"]),
        ({"catchup": "all"}, ["body", "catchup"]),
        ({"start_at": "2030-01-01T09:00:00"}, ["body", "start_at"]),
        ({"template": {"type": "Report!"}}, ["body", "template", "type"]),
        ({"template": {"type": "report", "priority": 10}}, ["body", "template", "priority"]),
        (
            {"template": {"type": "report", "capabilities": []}},
            ["body", "template", "capabilities"],
        ),
        ({"template": {"type": "report", "not_before": "x"}}, ["body", "template", "not_before"]),
        ({"name": "Nightly Report"}, ["body", "name"]),
    ],
)
def test_invalid_schedules_are_422_and_persist_nothing(
    world: World, change: dict[str, Any], loc: list[Any]
) -> None:
    before = world.persisted()
    body = {k: v for k, v in {**NIGHTLY, **change}.items() if v is not None}
    response = world.client.post("/v1/schedules", json=body, headers=world.auth("client"))
    problem = assert_problem(response, 422, "validation-failed")
    assert loc in [e["loc"] for e in problem["errors"]], problem
    assert world.persisted() == before


def test_a_template_payload_over_the_task_limit_is_refused_like_a_task(world: World) -> None:
    body = {**NIGHTLY, "template": {"type": "report", "payload": {"x": "y" * 2000}}}
    response = world.client.post("/v1/schedules", json=body, headers=world.auth("client"))
    assert_problem(response, 413, "payload-too-large")
