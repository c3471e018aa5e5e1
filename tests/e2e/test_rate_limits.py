"""Rate limits on a real `apiary serve` over real HTTP (issue 11, finding 5): an abusive
client is throttled while a well-behaved one on another key is not; the limits are the
config's and a change applies without a restart; failed authentication and sign-ins are
limited per client address."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.e2e.harness import Hive
from tests.waiting import wait_for

pytestmark = pytest.mark.e2e

CLIENT_LIMIT = {"per_s": 20, "burst": 20}


def set_rate_limits(admin: httpx.Client, rate_limits: dict[str, Any]) -> None:
    current = admin.get("/v1/config")
    assert current.status_code == 200, current.text
    changed = admin.patch(
        "/v1/config",
        json={"changes": {"rate_limits": rate_limits}, "reason": "test"},
        headers={"If-Match": current.headers["ETag"]},
    )
    assert changed.status_code == 200, changed.text


def hammer(client: httpx.Client, seconds: float, statuses: Counter[int], pace_s: float) -> None:
    """GET /v1/tasks until ``seconds`` are up, ``pace_s`` apart (0: as fast as it can)."""
    until = time.monotonic() + seconds
    stop = threading.Event()
    while time.monotonic() < until:
        response = client.get("/v1/tasks", params={"limit": 1})
        statuses[response.status_code] += 1
        if response.status_code == 429:
            assert response.headers["content-type"] == "application/problem+json"
            assert response.json()["type"].endswith("/rate-limited")
            assert int(response.headers["Retry-After"]) >= 1
            assert response.headers["RateLimit-Limit"] == str(CLIENT_LIMIT["burst"])
            assert response.headers["RateLimit-Remaining"] == "0"
            assert int(response.headers["RateLimit-Reset"]) >= 1
        if pace_s:
            stop.wait(pace_s)  # a well-behaved client's pace, not a wait for an outcome


def test_an_abusive_client_is_throttled_and_a_well_behaved_one_is_not(hive: Hive) -> None:
    hive.start()
    admin = hive.client(hive.key("admin"))
    abusive, polite = hive.client(hive.key("client")), hive.client(hive.key("client"))

    before: Counter[int] = Counter()
    hammer(abusive, 1.0, before, pace_s=0)
    assert before[429] == 0 and before[200] > CLIENT_LIMIT["burst"], before  # the defaults

    set_rate_limits(admin, {"client": CLIENT_LIMIT})  # live: no restart
    abused: Counter[int] = Counter()
    behaved: Counter[int] = Counter()
    threads = [
        *(threading.Thread(target=hammer, args=(abusive, 3.0, abused, 0)) for _ in range(4)),
        threading.Thread(target=hammer, args=(polite, 3.0, behaved, 0.1)),  # 10/s, under 20
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert abused[429] > 0, abused
    # the burst, then about 20/s over 3 s (a little slack for the change's arrival)
    assert abused[200] <= CLIENT_LIMIT["burst"] * 2 + CLIENT_LIMIT["per_s"] * 3, abused
    assert behaved[429] == 0 and behaved[200] >= 10, behaved

    set_rate_limits(admin, {"client": {"per_s": 10_000, "burst": 10_000}})
    wait_for(lambda: abusive.get("/v1/tasks").status_code == 200, what="the bucket to refill")
    after: Counter[int] = Counter()
    hammer(abusive, 1.0, after, pace_s=0)
    assert after[429] == 0 and after[200] > CLIENT_LIMIT["burst"] * 2, after


def test_failed_authentication_and_sign_ins_are_limited_per_address(
    make_hive: Callable[..., Hive],
) -> None:
    # X-Forwarded-For is believed from a proxy the operator names: this machine, here
    hive = make_hive(APIARY_FORWARDED_ALLOW_IPS="127.0.0.1").start()
    good = hive.key("client")
    slow = {"per_s": 0.2, "burst": 20}  # a token per 5 s: what follows does not depend on pace
    set_rate_limits(hive.client(hive.key("admin")), {"failed_auth": slow, "sign_in": slow})
    # an address each, as the trusted proxy says
    attacker = {"X-Forwarded-For": "192.0.2.1"}
    with httpx.Client(base_url=hive.url, timeout=10) as http:
        began = time.monotonic()
        statuses = Counter(
            http.get(
                "/v1/tasks", headers={**attacker, "Authorization": "Bearer apk_bad"}
            ).status_code
            for _ in range(100)
        )
        took = time.monotonic() - began
        assert statuses[401] <= 20 + 0.2 * took + 1 and statuses[429] >= 70, statuses
        refused = http.get("/v1/tasks", headers={**attacker, "Authorization": f"Bearer {good}"})
        assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
        elsewhere = {"X-Forwarded-For": "192.0.2.2", "Authorization": f"Bearer {good}"}
        assert http.get("/v1/tasks", headers=elsewhere).status_code == 200

        sign_ins = Counter(
            http.post(
                "/dashboard/session",
                json={"key": "apk_wrong"},
                headers={"X-Forwarded-For": "192.0.2.3", "Origin": hive.url},
            ).status_code
            for _ in range(100)
        )
        assert sign_ins[429] >= 60, sign_ins
