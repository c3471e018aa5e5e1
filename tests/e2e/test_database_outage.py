"""With the database gone, requests fail fast with 503 and Retry-After; the hive recovers by
itself when it comes back. The outage is real: the server refuses the database's
connections and drops the open ones."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.e2e.harness import Hive, outage
from tests.waiting import wait_for

pytestmark = pytest.mark.e2e


def submit(client: httpx.Client) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = client.post("/v1/tasks", json={"type": "code"})
    return response, time.monotonic() - started


def test_outage_fails_fast_and_the_hive_recovers_by_itself(hive: Hive) -> None:
    hive.start()
    client = hive.client(hive.key("client"))
    assert submit(client)[0].status_code == 201
    with outage(hive.db_url):
        first, first_s = submit(client)
        assert first.status_code == 503, first.text
        assert first.headers["content-type"].startswith("application/problem+json")
        assert int(first.headers["Retry-After"]) >= 1
        assert first_s < 10, f"the first refusal took {first_s:.1f}s"
        later, later_s = submit(client)
        assert later.status_code == 503 and later_s < 1.0, f"{later.status_code} {later_s:.2f}s"
        assert httpx.get(f"{hive.url}/readyz").status_code == 503
    recovered = wait_for(
        lambda: (r := submit(client)[0]).status_code == 201 and r,
        timeout=20,
        what="submissions to succeed again",
    )
    wait_for(
        lambda: httpx.get(f"{hive.url}/readyz").status_code == 200, timeout=20, what="ready again"
    )
    task_id = recovered.json()["id"]
    wait_for(
        lambda: client.get(f"/v1/tasks/{task_id}").status_code == 200,
        timeout=20,
        what="the views to follow again",
    )
