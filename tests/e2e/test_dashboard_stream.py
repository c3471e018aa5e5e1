"""The dashboard's live stream against a real `apiary serve`: a signed-in subscriber hears
of a submitted task without asking (how fast: `python -m tests.bench.dashboard_stream`),
and of the hive's mode as a real database outage degrades it and its end restores it."""

from __future__ import annotations

import pytest

from tests.e2e.harness import Hive, outage, signed_in
from tests.e2e.sse import DashboardStream

pytestmark = pytest.mark.e2e


def test_a_subscriber_hears_that_the_views_moved_past_a_submitted_task(hive: Hive) -> None:
    hive.start()
    key = hive.key("client")
    with DashboardStream(hive.url, key) as stream:
        since = len(stream.heard)
        created = hive.client(key).post("/v1/tasks", json={"type": "code"})
        assert created.status_code == 201, created.text
        position = created.json()["position"]
        heard = stream.wait(
            lambda h: h.kind == "views" and h.data.get("tasks", 0) >= position,
            since=since,
            timeout=10,
        )
    assert heard.data["tasks"] >= position


def test_the_badge_is_normal_then_pushed_critical_through_an_outage_and_back(hive: Hive) -> None:
    hive.start()
    key = hive.key("client")
    overview = signed_in(hive.url, key).get("/dashboard/data/overview").json()
    badge = overview["mode"]
    assert (badge["mode"], badge["recorded"], badge["readiness"]) == (
        "normal",
        "normal",
        {"ready": True, "failing": {}},
    )
    with DashboardStream(hive.url, key) as stream:
        # Readiness is looked at every second: the badge a stream opens with may still be
        # from the start-up (a view runner not yet connected).
        stream.wait(
            lambda h: h.kind == "mode" and h.data["readiness"]["ready"], since=0, timeout=10
        )
        since = len(stream.heard)
        with outage(hive.db_url):
            away = stream.wait(
                lambda h: h.kind == "mode" and "database" in h.data["readiness"]["failing"],
                since=since,
                timeout=20,
            )
            # As far as this process can tell, the hive is critical: nothing is recorded.
            assert (away.data["mode"], away.data["recorded"]) == ("critical", "normal")
            since = len(stream.heard)
        back = stream.wait(
            lambda h: h.kind == "mode" and h.data["readiness"]["ready"], since=since, timeout=30
        )
    assert back.data["mode"] == "normal"
