"""The config endpoints (``/v1/config``), through ``create_app`` with a real Hive whose
config is seeded, and a real ``LiveConfig`` fed by the hive's saves giving the settings in
force per request (as ``Node.settings_now`` does): a change is felt by the next request."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from api.settings import Settings
from domain.cause import Cause
from domain.hive import Hive
from runtime.config import Knobs
from runtime.live_config import LiveConfig
from tests.unit.test_api_contract import World, assert_problem, make_settings, world_of

SEEDER = Cause("process:all", "config-seed")
GPU_POOL = {"name": "gpu", "capabilities": ["gpu"], "max_bots": 2}


def live_settings(base: Settings, live: LiveConfig) -> Settings:
    """``base`` with the knobs in force (what ``Node.settings_now`` gives a request)."""
    knobs = live.knobs
    return base.model_copy(update={name: getattr(knobs, name) for name in Knobs.model_fields})


@pytest.fixture
def world() -> Iterator[World]:
    """The API world with a seeded config (version 1: the test settings' knobs)."""
    hive = Hive(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    base = make_settings()
    live = LiveConfig(Knobs.of(base))
    hive.listeners.append(live.apply)
    hive.config.seed(Knobs.of(base).document(), "seeded from the environment", SEEDER)
    assert live.version == 1
    with world_of(hive, settings_now=lambda: live_settings(base, live)) as w:
        yield w


def config(world: World, who: str = "admin") -> httpx.Response:
    return world.client.get("/v1/config", headers=world.auth(who))


def patch(
    world: World, changes: dict[str, Any], if_match: str | None, reason: str = "tuning"
) -> httpx.Response:
    headers = world.auth("admin") | ({} if if_match is None else {"If-Match": if_match})
    return world.client.patch(
        "/v1/config", json={"changes": changes, "reason": reason}, headers=headers
    )


def error_locs(response: httpx.Response) -> list[list[Any]]:
    body = assert_problem(response, 422, "validation-failed")
    return [e["loc"] for e in body["errors"]]


def batch(world: World, n: int) -> httpx.Response:
    return world.client.post(
        "/v1/tasks/batch",
        json={"tasks": [{"type": "code"}] * n},
        headers=world.auth("client"),
    )


def submit_payload(world: World, size: int) -> httpx.Response:
    return world.client.post(
        "/v1/tasks",
        json={"type": "code", "payload": {"blob": "x" * size}},
        headers=world.auth("client"),
    )


# -- reading ------------------------------------------------------------------------------


def test_get_shows_version_1_with_every_knob_and_its_etag(world: World) -> None:
    response = config(world)
    assert response.status_code == 200, response.text
    assert response.headers["ETag"] == '"1"'
    body = response.json()
    assert body["version"] == 1
    assert set(body["document"]) == set(Knobs.model_fields)
    assert Knobs.model_validate(body["document"]) == Knobs.of(make_settings())
    assert (body["actor"], body["reason"]) == ("process:all", "seeded from the environment")


@pytest.mark.parametrize("who", ["client", "enrol"])
def test_only_an_admin_may_read_or_change_the_config(world: World, who: str) -> None:
    before = world.persisted()
    assert_problem(config(world, who), 403, "forbidden")
    for method, path, body in (
        ("PATCH", "/v1/config", {"changes": {"max_batch": 5}, "reason": "r"}),
        ("PUT", "/v1/config", {"document": {}, "reason": "r"}),
        ("POST", "/v1/config/rollback", {"version": 1, "reason": "r"}),
        ("GET", "/v1/config/history", None),
        ("GET", "/v1/config/versions/1", None),
    ):
        headers = world.auth(who) | {"If-Match": '"1"'}
        response = world.client.request(method, path, json=body, headers=headers)
        assert_problem(response, 403, "forbidden")
    assert world.persisted() == before


# -- If-Match -----------------------------------------------------------------------------


def test_a_change_without_if_match_is_428_and_saves_nothing(world: World) -> None:
    before = world.persisted()
    body = assert_problem(patch(world, {"max_batch": 5}, None), 428, "precondition-required")
    assert "If-Match" in body["detail"]
    replaced = world.client.put(
        "/v1/config",
        json={"document": {}, "reason": "defaults"},
        headers=world.auth("admin"),
    )
    assert_problem(replaced, 428, "precondition-required")
    rolled = world.client.post(
        "/v1/config/rollback", json={"version": 1, "reason": "r"}, headers=world.auth("admin")
    )
    assert_problem(rolled, 428, "precondition-required")
    assert world.persisted() == before


@pytest.mark.parametrize("if_match", ['"0"', '"7"', "*", "W/abc", ""])
def test_an_if_match_that_is_not_the_current_version_is_412(world: World, if_match: str) -> None:
    before = world.persisted()
    assert_problem(patch(world, {"max_batch": 5}, if_match), 412, "stale-version")
    assert world.persisted() == before
    assert config(world).json()["version"] == 1


def test_a_change_made_against_an_older_version_is_412_naming_the_current(
    world: World,
) -> None:
    assert patch(world, {"max_batch": 5}, '"1"').status_code == 200
    before = world.persisted()
    body = assert_problem(patch(world, {"max_batch": 7}, '"1"'), 412, "stale-version")
    assert "version 2" in body["detail"]
    assert world.persisted() == before
    assert world.container.settings.max_batch == 5


# -- validation ---------------------------------------------------------------------------


def test_an_unknown_knob_is_422_naming_it_and_saves_nothing(world: World) -> None:
    before = world.persisted()
    response = patch(world, {"nonsense": 1, "max_batch": 5}, '"1"')
    assert error_locs(response) == [["body", "changes", "nonsense"]]
    assert world.persisted() == before


def test_values_out_of_range_are_422_naming_each_and_save_nothing(world: World) -> None:
    before = world.persisted()
    response = patch(world, {"max_batch": 0, "routing_alpha": 1.5, "dispatch_page": 7}, '"1"')
    assert sorted(error_locs(response)) == [
        ["body", "changes", "max_batch"],
        ["body", "changes", "routing_alpha"],
    ]
    assert world.persisted() == before
    assert world.container.settings.dispatch_page == make_settings().dispatch_page
    pools = patch(world, {"pools": [GPU_POOL, {**GPU_POOL, "capabilities": []}]}, '"1"')
    assert ["body", "changes", "pools", 1, "capabilities"] in error_locs(pools)
    assert world.persisted() == before


def test_a_reason_is_required_and_bounded(world: World) -> None:
    before = world.persisted()
    for reason in ("", "x" * 501):
        assert error_locs(patch(world, {"max_batch": 5}, '"1"', reason)) == [["body", "reason"]]
    assert world.persisted() == before


# -- a change and what it does ------------------------------------------------------------


def test_a_patch_makes_version_2_and_the_next_request_has_its_limits(world: World) -> None:
    assert_problem(batch(world, 4), 422, "validation-failed")  # the seeded max_batch is 3
    assert_problem(submit_payload(world, 2000), 413, "payload-too-large")  # limit 1024
    response = patch(world, {"max_batch": 5, "max_payload_bytes": 4096}, '"1"')
    assert response.status_code == 200, response.text
    assert response.headers["ETag"] == '"2"'
    body = response.json()
    assert body["version"] == 2 and body["actor"] == "root" and body["reason"] == "tuning"
    assert (body["document"]["max_batch"], body["document"]["max_payload_bytes"]) == (5, 4096)
    assert body["document"]["dispatch_page"] == make_settings().dispatch_page  # kept
    settings = world.container.settings
    assert (settings.max_batch, settings.max_payload_bytes) == (5, 4096)
    assert config(world).headers["ETag"] == '"2"'

    assert batch(world, 5).status_code == 201
    assert error_locs(batch(world, 6)) == [["body", "tasks"]]
    assert submit_payload(world, 2000).status_code == 201
    assert_problem(submit_payload(world, 5000), 413, "payload-too-large")


def test_a_smaller_payload_limit_refuses_what_was_accepted(world: World) -> None:
    assert patch(world, {"max_payload_bytes": 4096}, '"1"').status_code == 200
    assert submit_payload(world, 3000).status_code == 201
    assert patch(world, {"max_payload_bytes": 2048}, '"2"').status_code == 200
    assert_problem(submit_payload(world, 3000), 413, "payload-too-large")
    assert submit_payload(world, 1500).status_code == 201


def test_the_same_values_again_write_no_new_version(world: World) -> None:
    before = world.persisted()
    response = patch(world, {"max_batch": make_settings().max_batch}, '"1"')
    assert response.status_code == 200 and response.headers["ETag"] == '"1"'
    assert world.persisted() == before


def test_put_replaces_the_whole_document(world: World) -> None:
    document = Knobs().model_dump(mode="json") | {"dispatch_page": 9}
    response = world.client.put(
        "/v1/config",
        json={"document": document, "reason": "back to the defaults, smaller pages"},
        headers=world.auth("admin") | {"If-Match": '"1"'},
    )
    assert response.status_code == 200, response.text
    assert response.headers["ETag"] == '"2"'
    assert response.json()["document"] == document
    settings = world.container.settings
    assert (settings.dispatch_page, settings.max_batch) == (9, Knobs().max_batch)
    before = world.persisted()
    bad = world.client.put(
        "/v1/config",
        json={"document": {"max_batch": -1, "typo": 1}, "reason": "r"},
        headers=world.auth("admin") | {"If-Match": '"2"'},
    )
    assert sorted(error_locs(bad)) == [
        ["body", "document", "max_batch"],
        ["body", "document", "typo"],
    ]
    assert world.persisted() == before


# -- history, versions, rollback ----------------------------------------------------------


def test_history_is_newest_first_with_each_change_and_who_made_it(world: World) -> None:
    assert patch(world, {"max_batch": 5}, '"1"', "bigger batches").status_code == 200
    assert patch(world, {"max_batch": 4, "dispatch_page": 9}, '"2"', "pages").status_code == 200
    response = world.client.get("/v1/config/history", headers=world.auth("admin"))
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    assert [(i["version"], i["actor"], i["reason"]) for i in items] == [
        (3, "root", "pages"),
        (2, "root", "bigger batches"),
        (1, "process:all", "seeded from the environment"),
    ]
    assert items[0]["changes"] == [
        {"path": "dispatch_page", "before": make_settings().dispatch_page, "after": 9},
        {"path": "max_batch", "before": 5, "after": 4},
    ]
    assert items[1]["changes"] == [{"path": "max_batch", "before": 3, "after": 5}]
    assert {c["path"] for c in items[2]["changes"]} == set(Knobs.model_fields)
    assert all(c["before"] is None for c in items[2]["changes"])
    assert [i["restores"] for i in items] == [None, None, None]
    latest = world.client.get("/v1/config/history?limit=1", headers=world.auth("admin"))
    assert [i["version"] for i in latest.json()["items"]] == [3]


def test_a_version_is_read_as_it_was_written(world: World) -> None:
    first = config(world).json()
    assert patch(world, {"max_batch": 5}, '"1"').status_code == 200
    response = world.client.get("/v1/config/versions/1", headers=world.auth("admin"))
    assert response.status_code == 200, response.text
    assert response.json() == first
    missing = world.client.get("/v1/config/versions/99", headers=world.auth("admin"))
    assert "99" in assert_problem(missing, 404, "not-found")["detail"]


def test_rollback_makes_a_new_version_with_the_old_document(world: World) -> None:
    first = config(world).json()["document"]
    assert patch(world, {"max_batch": 5, "dispatch_page": 9}, '"1"').status_code == 200
    response = world.client.post(
        "/v1/config/rollback",
        json={"version": 1, "reason": "undo"},
        headers=world.auth("admin") | {"If-Match": '"2"'},
    )
    assert response.status_code == 200, response.text
    assert response.headers["ETag"] == '"3"'
    assert response.json()["version"] == 3 and response.json()["document"] == first
    assert world.container.settings.max_batch == 3
    newest = world.client.get("/v1/config/history", headers=world.auth("admin")).json()["items"][0]
    assert (newest["version"], newest["restores"], newest["actor"]) == (3, 1, "root")
    assert {c["path"] for c in newest["changes"]} == {"dispatch_page", "max_batch"}
    before = world.persisted()
    gone = world.client.post(
        "/v1/config/rollback",
        json={"version": 99, "reason": "nowhere"},
        headers=world.auth("admin") | {"If-Match": '"3"'},
    )
    assert_problem(gone, 404, "not-found")
    assert world.persisted() == before


# -- a pool with live bots ----------------------------------------------------------------


def register_in_pool(world: World, pool: str) -> str:
    response = world.client.post(
        "/v1/bots",
        json={
            "name": "g1",
            "capabilities": ["gpu"],
            "max_concurrency": 4,
            "version": "1",
            "pool": pool,
        },
        headers=world.auth("enrol"),
    )
    assert response.status_code == 201, response.text
    bot_id: str = response.json()["bot_id"]
    assert world.container.presence.bots_in_pool(pool) == 1  # type: ignore[attr-defined]
    return bot_id


def test_a_pool_with_live_bots_cannot_be_removed_or_remade_but_can_be_resized(
    world: World,
) -> None:
    assert patch(world, {"pools": [GPU_POOL]}, '"1"').status_code == 200
    bot_id = register_in_pool(world, "gpu")
    before = world.persisted()
    body = assert_problem(patch(world, {"pools": []}, '"2"'), 409, "not-applicable")
    assert "gpu" in body["detail"]
    remade = {**GPU_POOL, "capabilities": ["gpu", "cuda"]}
    assert_problem(patch(world, {"pools": [remade]}, '"2"'), 409, "not-applicable")
    rollback = world.client.post(
        "/v1/config/rollback",
        json={"version": 1, "reason": "no pools"},
        headers=world.auth("admin") | {"If-Match": '"2"'},
    )
    assert_problem(rollback, 409, "not-applicable")
    assert world.persisted() == before

    resized = patch(world, {"pools": [{**GPU_POOL, "max_bots": 1}]}, '"2"')
    assert resized.status_code == 200, resized.text
    assert resized.json()["document"]["pools"][0]["max_bots"] == 1
    assert [p.max_bots for p in world.container.settings.pools] == [1]

    gone = world.client.delete(f"/v1/bots/{bot_id}", headers=world.auth("admin"))
    assert gone.status_code == 200, gone.text
    removed = patch(world, {"pools": []}, '"3"')
    assert removed.status_code == 200, removed.text
    assert world.container.settings.pools == []
