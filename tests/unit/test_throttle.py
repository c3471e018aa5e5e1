"""Rate limits (api/buckets.py, api/throttle.py): the buckets' arithmetic on a clock the
test moves, the roles' limits, a config change applied at once, the 429 as the API answers
it, and 429 in the OpenAPI document wherever a key is checked."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from api.buckets import Buckets
from api.throttle import Throttle
from domain.hive import Hive
from runtime.config import Knobs, RateLimit, RateLimits
from tests.clock import FakeClock
from tests.unit.test_api_contract import World, assert_problem, register, world_of

SAME_ORIGIN = {"Origin": "http://testserver"}  # what the dashboard's own pages send


def test_a_bucket_admits_its_burst_then_its_rate() -> None:
    clock = FakeClock()
    buckets = Buckets(clock=clock.monotonic)
    assert [buckets.take("k", 2.0, 3) for _ in range(3)] == [None, None, None]
    refusal = buckets.take("k", 2.0, 3)
    assert refusal is not None
    assert refusal.retry_after_s == pytest.approx(0.5)
    assert refusal.full_after_s == pytest.approx(1.5)
    assert refusal.burst == 3
    clock.advance(0.5)
    assert buckets.take("k", 2.0, 3) is None  # one token came back
    assert buckets.take("k", 2.0, 3) is not None
    clock.advance(60)
    assert [buckets.take("k", 2.0, 3) for _ in range(4)][-1] is not None  # full is the burst
    assert buckets.take("other", 2.0, 3) is None  # every key has a bucket of its own


def test_empty_looks_without_taking() -> None:
    clock = FakeClock()
    buckets = Buckets(clock=clock.monotonic)
    assert buckets.empty("a", 1.0, 2) is None
    buckets.take("a", 1.0, 2)
    assert buckets.empty("a", 1.0, 2) is None
    buckets.take("a", 1.0, 2)
    assert buckets.empty("a", 1.0, 2) is not None
    assert buckets.empty("a", 1.0, 2) is not None  # looking spent nothing more
    clock.advance(1.0)
    assert buckets.empty("a", 1.0, 2) is None


def test_buckets_are_bounded_idle_ones_first() -> None:
    clock = FakeClock()
    buckets = Buckets(max_entries=10, clock=clock.monotonic)
    for i in range(10):
        buckets.take(i, 1.0, 1)
    clock.advance(5)
    buckets.take("busy", 1.0, 1)  # the ten idle ones are full again: dropped
    assert len(buckets) == 1
    for i in range(20):
        buckets.take(i, 1.0, 1)
    assert len(buckets) <= 10


LOW = RateLimit(per_s=1, burst=2)


def low(**roles: RateLimit) -> Knobs:
    return Knobs(rate_limits=RateLimits(**roles))


@pytest.fixture
def world() -> Iterator[World]:
    with world_of(Hive(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})) as w:
        w.container.throttle = Throttle(clock=w.clock.monotonic)
        yield w


def test_a_key_over_its_rate_gets_429_with_the_ratelimit_headers(world: World) -> None:
    world.container.throttle.configure(low(client=LOW))
    get = lambda who: world.client.get("/v1/tasks", headers=world.auth(who))  # noqa: E731
    assert [get("client").status_code for _ in range(2)] == [200, 200]
    refused = get("client")
    body = assert_problem(refused, 429, "rate-limited")
    assert "rate limit" in body["detail"]
    assert refused.headers["Retry-After"] == "1"
    assert refused.headers["RateLimit-Limit"] == "2"
    assert refused.headers["RateLimit-Remaining"] == "0"
    assert refused.headers["RateLimit-Reset"] == "2"
    assert get("admin").status_code == 200  # another key (another role) is not held back
    world.clock.advance(1.0)
    assert get("client").status_code == 200


def test_each_role_has_its_limit_and_a_bot_its_own_bucket(world: World) -> None:
    bot_a, token_a = register(world, "a")
    bot_b, token_b = register(world, "b")
    world.container.throttle.configure(low(bot=LOW))

    def heartbeat(bot: str, token: str) -> int:
        return world.client.post(
            f"/v1/bots/{bot}/heartbeat", headers={"Authorization": f"Bearer {token}"}
        ).status_code

    assert [heartbeat(bot_a, token_a) for _ in range(3)] == [200, 200, 429]
    assert heartbeat(bot_b, token_b) == 200
    assert world.client.get("/v1/tasks", headers=world.auth("client")).status_code == 200


def test_a_config_change_applies_to_the_next_request(world: World) -> None:
    get = lambda: world.client.get("/v1/tasks", headers=world.auth("client"))  # noqa: E731
    assert all(get().status_code == 200 for _ in range(5))
    world.container.throttle.configure(low(client=LOW))
    # the bucket keeps its tokens, up to the new burst
    assert [get().status_code for _ in range(3)] == [200, 200, 429]
    world.container.throttle.configure(Knobs())
    world.clock.advance(0.02)  # at the default 1,000/s: twenty tokens
    assert [get().status_code for _ in range(10)] == [200] * 10


def test_failed_authentication_is_limited_per_address_before_the_key_is_checked(
    world: World,
) -> None:
    world.container.throttle.configure(low(failed_auth=LOW))
    bad = {"Authorization": "Bearer apk_nope"}
    statuses = [world.client.get("/v1/tasks", headers=bad).status_code for _ in range(2)]
    assert statuses == [401, 401]
    assert_problem(world.client.get("/v1/tasks", headers=bad), 429, "rate-limited")
    assert world.client.get("/v1/tasks").status_code == 429  # no key at all: the same
    # a good key from that address waits too: the address is refused before any key
    assert world.client.get("/v1/tasks", headers=world.auth("client")).status_code == 429
    world.clock.advance(1.0)
    assert world.client.get("/v1/tasks", headers=world.auth("client")).status_code == 200
    other = TestClient(world.client.app, client=("192.0.2.7", 1234), raise_server_exceptions=False)
    assert other.get("/v1/tasks", headers=bad).status_code == 401


def test_sign_ins_are_limited_per_address(world: World) -> None:
    world.container.throttle.configure(low(sign_in=LOW))
    sign_in = lambda: world.client.post(  # noqa: E731
        "/dashboard/session", json={"key": world.tokens["client"]}, headers=SAME_ORIGIN
    )
    assert [sign_in().status_code for _ in range(2)] == [200, 200]
    assert_problem(sign_in(), 429, "rate-limited")


def test_429_is_documented_wherever_a_key_is_checked(world: World) -> None:
    document = world.client.get("/openapi.json").json()
    checked = 0
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            if "401" not in responses:
                assert "429" not in responses, (method, path)
                continue
            checked += 1
            limited = responses["429"]
            assert "application/problem+json" in limited["content"], (method, path)
            assert set(limited["headers"]) == {
                "Retry-After",
                "RateLimit-Limit",
                "RateLimit-Remaining",
                "RateLimit-Reset",
            }
    assert checked > 20
