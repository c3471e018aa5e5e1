"""Keys over HTTP (admin only): list, show, issue (the token shown once), revoke, rotate;
expiry refused like revocation; a key's news reaches the key ring at once (KeyWatch)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from uuid import UUID

import pytest

from domain.hive import Hive
from runtime.key_watch import KeyWatch
from tests.clock import T0, FakeClock
from tests.unit.test_api_contract import World, assert_problem, register, world_of


@pytest.fixture
def keys_world(clock: FakeClock) -> Iterator[World]:
    """The API world on the test's clock, its key ring told of every key's news as a
    process's is (the watch on its own writes)."""
    with world_of(Hive(env={"PERSISTENCE_MODULE": "eventsourcing.popo"}, clock=clock)) as w:
        watch = KeyWatch()
        watch.listeners.append(w.container.keys.forget)
        w.hive.listeners.append(watch.apply)
        yield w


def create(w: World, **body: object) -> dict[str, object]:
    response = w.client.post("/v1/keys", json=body, headers=w.auth("admin"))
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def bearer(token: object) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_an_issued_key_shows_its_token_once_and_works(keys_world: World) -> None:
    w = keys_world
    made = create(w, role="client", name="ci-pipeline", expires_in_s=3600)
    assert made["token"] and made["state"] == "active" and made["created_by"] == "root"
    assert made["expires_at"] == (T0 + timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    assert made["principal"] == "ci-pipeline" and made["created_at"].startswith("2030-")
    assert w.client.get("/v1/tasks", headers=bearer(made["token"])).status_code == 200
    shown = w.client.get(f"/v1/keys/{made['id']}", headers=w.auth("admin"))
    assert shown.status_code == 200
    body = shown.json()
    assert "token" not in body and "secret_hash" not in body
    assert str(made["token"]).rsplit("_", 1)[1] not in shown.text
    assert {k: body[k] for k in ("id", "name", "role")} == {
        "id": made["id"],
        "name": "ci-pipeline",
        "role": "client",
    }


def test_an_expired_key_is_refused_like_a_revoked_one(keys_world: World, clock: FakeClock) -> None:
    w = keys_world
    made = create(w, role="client", name="temp", expires_at="2030-01-01T11:00:00+01:00")
    assert w.client.get("/v1/tasks", headers=bearer(made["token"])).status_code == 200
    clock.advance(timedelta(hours=1))  # the cache still holds it: expiry is checked anyway
    refused = w.client.get("/v1/tasks", headers=bearer(made["token"]))
    assert "expired" in assert_problem(refused, 401, "unauthorized")["detail"]
    assert w.client.get(f"/v1/keys/{made['id']}", headers=w.auth("admin")).json()["state"] == (
        "expired"
    )


def test_revocation_is_in_force_at_once_and_only_once(keys_world: World) -> None:
    w = keys_world
    made = create(w, role="admin", name="ops")
    assert w.client.get("/v1/keys", headers=bearer(made["token"])).status_code == 200  # cached
    revoked = w.client.post(f"/v1/keys/{made['id']}/revoke", headers=w.auth("admin"))
    assert revoked.status_code == 200 and revoked.json()["state"] == "revoked"
    assert revoked.json()["revoked_by"] == "root"
    assert_problem(w.client.get("/v1/keys", headers=bearer(made["token"])), 401, "unauthorized")
    again = w.client.post(f"/v1/keys/{made['id']}/revoke", headers=w.auth("admin"))
    assert_problem(again, 409, "invalid-transition")


def test_rotation_hands_over_to_a_new_token_and_refuses_the_old_one(keys_world: World) -> None:
    w = keys_world
    old = create(w, role="client", name="deploy", expires_in_s=86400)
    assert w.client.get("/v1/tasks", headers=bearer(old["token"])).status_code == 200
    rotated = w.client.post(f"/v1/keys/{old['id']}/rotate", headers=w.auth("admin"))
    assert rotated.status_code == 201, rotated.text
    new = rotated.json()
    assert (new["name"], new["role"], new["expires_at"]) == ("deploy", "client", old["expires_at"])
    assert new["replaces"] == old["id"] and new["token"] != old["token"]
    assert rotated.headers["Location"] == f"/v1/keys/{new['id']}"
    assert w.client.get("/v1/tasks", headers=bearer(new["token"])).status_code == 200
    assert_problem(w.client.get("/v1/tasks", headers=bearer(old["token"])), 401, "unauthorized")
    shown = w.client.get(f"/v1/keys/{old['id']}", headers=w.auth("admin")).json()
    assert (shown["state"], shown["replaced_by"]) == ("revoked", new["id"])
    again = w.client.post(f"/v1/keys/{old['id']}/rotate", headers=w.auth("admin"))
    assert_problem(again, 409, "invalid-transition")


def test_the_list_pages_filters_and_shows_bots_own_keys_as_such(
    keys_world: World, clock: FakeClock
) -> None:
    w = keys_world
    bot_id, _ = register(w, "builder")
    temp = create(w, role="client", name="temp", expires_in_s=60)
    gone = create(w, role="client", name="gone")
    w.client.post(f"/v1/keys/{gone['id']}/revoke", headers=w.auth("admin"))
    clock.advance(61)

    def names(query: str = "") -> list[str]:
        response = w.client.get(f"/v1/keys{query}", headers=w.auth("admin"))
        assert response.status_code == 200, response.text
        return [k["name"] for k in response.json()["items"]]

    assert names() == ["root", "alice", "enrolment", "builder"]
    assert names("?include_expired=true&include_revoked=true")[-2:] == ["temp", "gone"]
    assert names("?include_expired=true") == ["root", "alice", "enrolment", "builder", "temp"]
    own = w.client.get(f"/v1/keys?bot_id={bot_id}", headers=w.auth("admin")).json()["items"]
    assert [(k["name"], k["role"], k["bot_id"]) for k in own] == [("builder", "bot", bot_id)]
    assert names("?role=client") == ["alice"]
    first = w.client.get("/v1/keys?limit=3", headers=w.auth("admin")).json()
    assert len(first["items"]) == 3 and first["next_cursor"]
    rest = w.client.get(f"/v1/keys?cursor={first['next_cursor']}", headers=w.auth("admin"))
    assert [k["name"] for k in rest.json()["items"]] == ["builder"]
    assert rest.json()["next_cursor"] is None
    assert temp["id"] not in str(first)


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/v1/keys?colour=red", None),
        ("GET", "/v1/keys?cursor=nope", None),
        ("GET", "/v1/keys/not-a-uuid", None),
        ("POST", "/v1/keys", {"role": "client", "name": "x", "secret": "mine"}),
        ("POST", "/v1/keys", {"role": "root", "name": "x"}),
        ("POST", "/v1/keys", {"role": "client", "name": "Not A Name"}),
        ("POST", "/v1/keys", {"role": "client", "name": "x", "expires_in_s": 0}),
        ("POST", "/v1/keys", {"role": "client", "name": "x", "expires_at": "2020-01-01T00:00Z"}),
        ("POST", "/v1/keys", {"role": "client", "name": "x", "expires_at": "2031-01-01T00:00"}),
        (
            "POST",
            "/v1/keys",
            {"role": "client", "name": "x", "expires_in_s": 5, "expires_at": "2031-01-01T00:00Z"},
        ),
    ],
)
def test_bad_input_is_refused_with_422_and_nothing_written(
    keys_world: World, method: str, path: str, body: object
) -> None:
    w = keys_world
    before = w.persisted()
    response = w.client.request(method, path, json=body, headers=w.auth("admin"))
    assert_problem(response, 422, "invalid-input" if "2020" in str(body) else "validation-failed")
    assert w.persisted() == before


@pytest.mark.parametrize("who", ["client", "enrol", "bot"])
def test_only_an_admin_manages_keys(keys_world: World, who: str) -> None:
    w = keys_world
    if who == "bot":
        register(w, "bot")
    key_id = UUID(w.tokens["client"].split("_")[1])
    for method, path in (
        ("GET", "/v1/keys"),
        ("GET", f"/v1/keys/{key_id}"),
        ("POST", "/v1/keys"),
        ("POST", f"/v1/keys/{key_id}/revoke"),
        ("POST", f"/v1/keys/{key_id}/rotate"),
    ):
        body = (
            {"role": "admin", "name": "mine"} if path == "/v1/keys" and method == "POST" else None
        )
        response = w.client.request(method, path, json=body, headers=w.auth(who))
        assert_problem(response, 403, "forbidden")
    assert_problem(w.client.get("/v1/keys"), 401, "unauthorized")


def test_an_unknown_key_is_404(keys_world: World) -> None:
    w = keys_world
    for method, path in (("GET", ""), ("POST", "/revoke"), ("POST", "/rotate")):
        response = w.client.request(
            method, f"/v1/keys/{UUID(int=1)}{path}", headers=w.auth("admin")
        )
        assert_problem(response, 404, "not-found")
